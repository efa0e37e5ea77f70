//! The aarch64 NEON micro-kernel: one output block of 16 channels is four `q` vectors per pixel,
//! so a `P`-pixel strip keeps `4P` accumulators (24 at `P = 6`) plus four weight vectors and one
//! broadcast in the 32 vector registers.
//!
//! NEON is part of the aarch64 base architecture; `Isa::resolve` still asks
//! `is_aarch64_feature_detected!` before selecting it.
#![deny(unsafe_op_in_unsafe_fn)]

use std::arch::aarch64::*;

use super::{StripArgs, StripFn, MAX_P};
use crate::plan::{Post, BLOCK};

pub(super) fn strip_fn(p: usize, sw: usize) -> StripFn {
    macro_rules! by_stride {
        ($p:literal) => {
            match sw {
                1 => checked::<$p, 1>,
                2 => checked::<$p, 2>,
                _ => checked::<$p, 0>,
            }
        };
    }
    match p {
        1 => by_stride!(1),
        2 => by_stride!(2),
        3 => by_stride!(3),
        4 => by_stride!(4),
        5 => by_stride!(5),
        6 => by_stride!(6),
        _ => unreachable!("strips are 1..={MAX_P} pixels wide"),
    }
}

fn checked<const P: usize, const SW: usize>(a: &StripArgs, out: &mut [f32]) {
    a.check(P, out);
    assert!(SW == 0 || SW == a.sw);
    // SAFETY: `Isa::resolve` hands out `Isa::Neon` only after `is_aarch64_feature_detected!("neon")`,
    // and `check` proved every index `strip` reads and writes lies inside its slice.
    for rep in 0..a.reps.n {
        unsafe { strip::<P, SW>(a, rep, out) }
    }
}

#[target_feature(enable = "neon")]
unsafe fn strip<const P: usize, const SW: usize>(a: &StripArgs, rep: usize, out: &mut [f32]) {
    let sw = if SW == 0 { a.sw } else { SW };
    let mut acc = [[vdupq_n_f32(0.0); 4]; P];
    // SAFETY: `check` bounded every repetition's offsets by the slices' lengths.
    let (x, w) = unsafe {
        (
            a.x.as_ptr().add(rep * a.reps.x),
            a.w.as_ptr().add(rep * a.reps.w),
        )
    };
    for icb in 0..a.icb {
        let lanes = if icb + 1 == a.icb {
            a.lanes_last
        } else {
            BLOCK
        };
        for ky in 0..a.kh {
            for kx in 0..a.kw {
                let xoff = a.x_off + icb * a.x_cb_stride + ky * a.x_row_stride + kx * BLOCK;
                let woff = ((icb * a.kh + ky) * a.kw + kx) * BLOCK * BLOCK;
                for l in 0..lanes {
                    // SAFETY: `check` bounded the largest input index, `xoff + (P-1)·sw·16 + 15`,
                    // and the weights' `woff + 255`, by the slices' lengths.
                    unsafe {
                        let wl = w.add(woff + l * BLOCK);
                        let wv = [
                            vld1q_f32(wl),
                            vld1q_f32(wl.add(4)),
                            vld1q_f32(wl.add(8)),
                            vld1q_f32(wl.add(12)),
                        ];
                        for (q, acc) in acc.iter_mut().enumerate() {
                            let b = vld1q_dup_f32(x.add(xoff + q * sw * BLOCK + l));
                            for (s, &wj) in acc.iter_mut().zip(&wv) {
                                *s = vfmaq_f32(*s, wj, b);
                            }
                        }
                    }
                }
            }
        }
    }
    // SAFETY: `check` bounded the bias (16 values), the residual (`(P-1)·stride + 16`) and the
    // output (`16·P`) by their slices' lengths.
    unsafe {
        let bp = a.bias.as_ptr();
        let bias = [
            vld1q_f32(bp),
            vld1q_f32(bp.add(4)),
            vld1q_f32(bp.add(8)),
            vld1q_f32(bp.add(12)),
        ];
        let zero = vdupq_n_f32(0.0);
        let o = out.as_mut_ptr().add(rep * a.reps.out);
        for (q, acc) in acc.iter().enumerate() {
            let mut v = [
                vaddq_f32(acc[0], bias[0]),
                vaddq_f32(acc[1], bias[1]),
                vaddq_f32(acc[2], bias[2]),
                vaddq_f32(acc[3], bias[3]),
            ];
            for step in a.post {
                match step {
                    Post::Residual => {
                        if let Some((r, stride)) = a.res {
                            let rp = r.as_ptr().add(q * stride);
                            for (j, v) in v.iter_mut().enumerate() {
                                *v = vaddq_f32(*v, vld1q_f32(rp.add(4 * j)));
                            }
                        }
                    }
                    // fmax: NaN in, NaN out; vmaxnmq picks the number, as f32::max(NaN, 0) does.
                    Post::Relu => {
                        for v in v.iter_mut() {
                            *v = vmaxnmq_f32(*v, zero);
                        }
                    }
                }
            }
            for (j, v) in v.iter().enumerate() {
                vst1q_f32(o.add(q * BLOCK + 4 * j), *v);
            }
        }
    }
}
