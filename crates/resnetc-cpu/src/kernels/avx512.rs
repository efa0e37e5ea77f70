//! The x86-64 AVX-512F micro-kernel: one output block of 16 channels is one `zmm` per pixel, so a
//! strip of up to 16 pixels keeps 16 accumulators plus a weight vector and a broadcast in the 32
//! `zmm` registers. Each step loads the 16 weights of one input channel and tap, broadcasts that
//! channel's value at each pixel, and issues one FMA per pixel.
//!
//! Selected only when `is_x86_feature_detected!("avx512f")` holds ([`crate::Isa`]).
#![deny(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

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
        7 => by_stride!(7),
        8 => by_stride!(8),
        9 => by_stride!(9),
        10 => by_stride!(10),
        11 => by_stride!(11),
        12 => by_stride!(12),
        13 => by_stride!(13),
        14 => by_stride!(14),
        15 => by_stride!(15),
        16 => by_stride!(16),
        _ => unreachable!("strips are 1..={MAX_P} pixels wide"),
    }
}

/// `SW` is the horizontal stride when known at compile time (1 or 2), 0 to read it from the args.
fn checked<const P: usize, const SW: usize>(a: &StripArgs, out: &mut [f32]) {
    a.check(P, out);
    assert!(SW == 0 || SW == a.sw);
    // SAFETY: `Isa::resolve` hands out `Isa::Avx512` only after `is_x86_feature_detected!` found
    // avx512f, and `check` proved that every index `strip` reads and writes lies inside its slice.
    for rep in 0..a.reps.n {
        unsafe { strip::<P, SW>(a, rep, out) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn strip<const P: usize, const SW: usize>(a: &StripArgs, rep: usize, out: &mut [f32]) {
    let sw = if SW == 0 { a.sw } else { SW };
    let mut acc = [_mm512_setzero_ps(); P];
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
                        let wv = _mm512_loadu_ps(w.add(woff + l * BLOCK));
                        for (q, acc) in acc.iter_mut().enumerate() {
                            let b = _mm512_set1_ps(*x.add(xoff + q * sw * BLOCK + l));
                            *acc = _mm512_fmadd_ps(wv, b, *acc);
                        }
                    }
                }
            }
        }
    }
    // SAFETY: `check` bounded the bias (16 values), the residual (`(P-1)·stride + 16`) and the
    // output (`16·P`) by their slices' lengths.
    unsafe {
        let bias = _mm512_loadu_ps(a.bias.as_ptr());
        let zero = _mm512_setzero_ps();
        let o = out.as_mut_ptr().add(rep * a.reps.out);
        for (q, acc) in acc.iter().enumerate() {
            let mut v = _mm512_add_ps(*acc, bias);
            for step in a.post {
                match step {
                    Post::Residual => {
                        if let Some((r, stride)) = a.res {
                            v = _mm512_add_ps(v, _mm512_loadu_ps(r.as_ptr().add(q * stride)));
                        }
                    }
                    // max(v, 0) returns the second operand for NaN, as f32::max(NaN, 0) does.
                    Post::Relu => v = _mm512_max_ps(v, zero),
                }
            }
            _mm512_storeu_ps(o.add(q * BLOCK), v);
        }
    }
}
