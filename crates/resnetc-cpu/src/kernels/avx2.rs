//! The x86-64 AVX2 + FMA micro-kernel: one output block of 16 channels is two `ymm` vectors per
//! pixel, so a `P`-pixel strip keeps `2P` accumulators (12 at `P = 6`) plus two weight vectors and
//! one broadcast in the 16 `ymm` registers. Each step loads the 16 weights of one input channel and
//! tap, broadcasts that channel's value at each of the `P` pixels, and issues `2P` FMAs.
//!
//! Selected only when `is_x86_feature_detected!` reports both `avx2` and `fma` ([`crate::Isa`]).
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
        _ => unreachable!("strips are 1..={MAX_P} pixels wide"),
    }
}

/// `SW` is the horizontal stride when known at compile time (1 or 2), 0 to read it from the args.
fn checked<const P: usize, const SW: usize>(a: &StripArgs, out: &mut [f32]) {
    a.check(P, out);
    assert!(SW == 0 || SW == a.sw);
    // SAFETY: `Isa::resolve` hands out `Isa::Avx2` only after `is_x86_feature_detected!` found both
    // avx2 and fma, so the target features hold; `check` proved that every index `strip` reads
    // (input, weights, bias, residual) and writes (out) lies inside its slice.
    for rep in 0..a.reps.n {
        unsafe { strip::<P, SW>(a, rep, out) }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn strip<const P: usize, const SW: usize>(a: &StripArgs, rep: usize, out: &mut [f32]) {
    let sw = if SW == 0 { a.sw } else { SW };
    let mut lo = [_mm256_setzero_ps(); P];
    let mut hi = [_mm256_setzero_ps(); P];
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
                        let w0 = _mm256_loadu_ps(wl);
                        let w1 = _mm256_loadu_ps(wl.add(8));
                        for q in 0..P {
                            let b = _mm256_broadcast_ss(&*x.add(xoff + q * sw * BLOCK + l));
                            lo[q] = _mm256_fmadd_ps(w0, b, lo[q]);
                            hi[q] = _mm256_fmadd_ps(w1, b, hi[q]);
                        }
                    }
                }
            }
        }
    }
    // SAFETY: `check` bounded the bias (16 values), the residual (`(P-1)·stride + 16`) and the
    // output (`16·P`) by their slices' lengths.
    unsafe {
        let b0 = _mm256_loadu_ps(a.bias.as_ptr());
        let b1 = _mm256_loadu_ps(a.bias.as_ptr().add(8));
        let zero = _mm256_setzero_ps();
        let o = out.as_mut_ptr().add(rep * a.reps.out);
        for q in 0..P {
            let mut v0 = _mm256_add_ps(lo[q], b0);
            let mut v1 = _mm256_add_ps(hi[q], b1);
            for step in a.post {
                match step {
                    Post::Residual => {
                        if let Some((r, stride)) = a.res {
                            let rp = r.as_ptr().add(q * stride);
                            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(rp));
                            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(rp.add(8)));
                        }
                    }
                    // max(v, 0) returns the second operand for NaN, as f32::max(NaN, 0) does.
                    Post::Relu => {
                        v0 = _mm256_max_ps(v0, zero);
                        v1 = _mm256_max_ps(v1, zero);
                    }
                }
            }
            _mm256_storeu_ps(o.add(q * BLOCK), v0);
            _mm256_storeu_ps(o.add(q * BLOCK + 8), v1);
        }
    }
}
