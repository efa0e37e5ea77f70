//! The direct micro-kernel, written once over [`Lanes16`] and compiled per kernel set.
//!
//! One output block of 16 channels is one [`Lanes16`] value per pixel, so a `P`-pixel strip keeps
//! `P` accumulators in registers while it walks the input channels and kernel taps: each step
//! loads the 16 weights of one input channel and tap, broadcasts that channel's value at each
//! pixel, and issues one fused multiply-add per pixel; then the epilogue runs before the single
//! store. `P` is as wide as leaves registers for the weights and a broadcast:
//!
//! | kernel set | one block | `P` | accumulator registers |
//! |---|---|---|---|
//! | AVX-512F | one `zmm` | 16 | 16 of 32 |
//! | AVX2 + FMA | two `ymm` | 6 | 12 of 16 |
//! | NEON | four `q` | 6 | 24 of 32 |
//! | portable | `[f32; 16]` | 6 | what the compiler finds |
//!
//! AVX-512 also has strips several output blocks deep (`deep_fn`: up to 8 pixels × 2 blocks or
//! 4 × 4, 16 sums), for Winograd's products over short chunks of tiles: each broadcast then feeds
//! two or four fused multiply-adds.
//!
//! The SIMD sets are selected only where [`crate::Isa::resolve`] detected their features at run
//! time; `kernels::strip_fn` hands out a set's functions only for its `Isa`.
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_arch = "aarch64")]
use super::simd::Neon;
use super::simd::{by_epilogue, finish_as, Lanes16, Plain};
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::{StripArgs, StripFn, MAX_P};
use crate::program::BLOCK;

/// Repetition `rep` of one strip `P` pixels wide and `R` output blocks deep; `SW` is the horizontal
/// stride when known at compile time (1 or 2), 0 to read it from the args.
///
/// With `R > 1` (Winograd's products on AVX-512, where a chunk of tiles is too short to fill a
/// strip) each broadcast input value serves `R` blocks of weights: `R·P` accumulators, `R` weight
/// loads and `P` broadcasts per input lane where `R` strips would load `R·(P + 1)` values.
///
/// # Safety
/// `a.check_blocks(P, R, out)` passed, and `S`'s target feature is enabled in the caller.
#[inline(always)]
unsafe fn strip<S: Lanes16, const P: usize, const SW: usize, const R: usize>(
    a: &StripArgs,
    rep: usize,
    out: &mut [f32],
) {
    let sw = if SW == 0 { a.sw } else { SW };
    // SAFETY: the caller enabled S's feature.
    let mut acc = [[unsafe { S::zero() }; P]; R];
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
                    // and the weights' `(R-1)·w_block + woff + 255`, by the slices' lengths.
                    unsafe {
                        // One block keeps the broadcast inside each FMA (a memory operand on
                        // AVX-512); deeper strips broadcast once into a register for all blocks.
                        if R == 1 {
                            let wv = S::load(w.add(woff + l * BLOCK));
                            for (q, acc) in acc[0].iter_mut().enumerate() {
                                *acc = acc.fma(wv, S::splat(x.add(xoff + q * sw * BLOCK + l)));
                            }
                        } else {
                            let mut wv = [S::zero(); R];
                            for (r, wv) in wv.iter_mut().enumerate() {
                                *wv = S::load(w.add(r * a.w_block + woff + l * BLOCK));
                            }
                            for q in 0..P {
                                let xv = S::splat(x.add(xoff + q * sw * BLOCK + l));
                                for (acc, wv) in acc.iter_mut().zip(&wv) {
                                    acc[q] = acc[q].fma(*wv, xv);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // SAFETY: `check` bounded the bias (16 values), the residual (`(P-1)·stride + 16`) and the
    // output (`(R-1)·out_block + 16·P`) by their slices' lengths; with `R > 1` there is neither
    // bias nor residual.
    unsafe {
        let o = out.as_mut_ptr().add(rep * a.reps.out);
        // The epilogue's shape matched once per strip, not per pixel.
        by_epilogue!(a.post, E => store::<S, P, R, E>(a, acc, o))
    }
}

/// A strip's sums plus the bias, through epilogue `E`, stored at `o`.
///
/// # Safety
/// As for [`strip`], `o` its repetition's output, and `Epilogue::of(a.post) as u8 == E`.
#[inline(always)]
unsafe fn store<S: Lanes16, const P: usize, const R: usize, const E: u8>(
    a: &StripArgs,
    acc: [[S; P]; R],
    o: *mut f32,
) {
    // SAFETY: as `strip` bounded them (its caller's contract).
    unsafe {
        // (A `match`, not `Option::map`: closures are not inlined into target-feature code.)
        #[allow(clippy::manual_map)]
        let bias = match a.bias {
            Some(b) => Some(S::load(b.as_ptr())),
            None => None,
        };
        for (r, acc) in acc.iter().enumerate() {
            for (q, acc) in acc.iter().enumerate() {
                #[allow(clippy::manual_map)]
                let res = match a.res {
                    Some((r, stride)) => Some(r.as_ptr().add(q * stride)),
                    None => None,
                };
                finish_as::<S, E>(o.add(r * a.out_block + q * BLOCK), *acc, bias, res, a.post);
            }
        }
    }
}

/// Defines a kernel set's `strip_fn(p, sw)` over the lane type `$lanes`, for strips
/// `1..=$max` pixels wide, compiled with the target features `$feature` (none for the portable
/// set). The horizontal strides 1 and 2 get their own copies, others read it at run time. With
/// `deep:`, also `deep_fn(p, r)`: stride-1 strips `p` pixels wide and `r` output blocks deep.
macro_rules! kernel_set {
    ($lanes:ty, $(#[$feature:meta])? widths: $($p:literal)+ $(; deep: $(($dp:literal, $dr:literal))+)?) => {
        pub(in crate::kernels) fn strip_fn(p: usize, sw: usize) -> StripFn {
            match (p, sw) {
                $(
                    ($p, 1) => checked::<$p, 1, 1>,
                    ($p, 2) => checked::<$p, 2, 1>,
                    ($p, _) => checked::<$p, 0, 1>,
                )+
                _ => unreachable!("strips are 1..={} pixels wide", MAX_P),
            }
        }

        $(
        pub(in crate::kernels) fn deep_fn(p: usize, r: usize) -> Option<StripFn> {
            match (p, r) {
                $( ($dp, $dr) => Some(checked::<$dp, 1, $dr>), )+
                _ => None,
            }
        }
        )?

        fn checked<const P: usize, const SW: usize, const R: usize>(a: &StripArgs, out: &mut [f32]) {
            a.check_blocks(P, R, out);
            assert!(SW == 0 || SW == a.sw);
            // SAFETY: `check_blocks` proved that every index `strip` reads and writes lies
            // inside its slice, and this set's functions are only handed out for the `Isa`
            // whose features `Isa::resolve` detected (the module's `cfg` and the `strip_fn`
            // dispatch).
            unsafe { with_features::<P, SW, R>(a, out) }
        }

        /// Every repetition, inside the features (one call per strip, not per repetition).
        $(#[$feature])?
        unsafe fn with_features<const P: usize, const SW: usize, const R: usize>(
            a: &StripArgs,
            out: &mut [f32],
        ) {
            for rep in 0..a.reps.n {
                // SAFETY: passed on from the caller; this function enables the features.
                unsafe { super::strip::<$lanes, P, SW, R>(a, rep, out) }
            }
        }
    };
}

/// AVX-512F: one `zmm` per pixel.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::*;
    kernel_set!(Avx512, #[target_feature(enable = "avx512f")] widths: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16;
        deep: (1, 2) (2, 2) (3, 2) (4, 2) (5, 2) (6, 2) (7, 2) (8, 2) (1, 4) (2, 4) (3, 4) (4, 4));
}

/// AVX2 + FMA: two `ymm` per pixel.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use super::*;
    kernel_set!(Avx2, #[target_feature(enable = "avx2,fma")] widths: 1 2 3 4 5 6);
}

/// NEON: four `q` per pixel.
#[cfg(target_arch = "aarch64")]
pub(super) mod neon {
    use super::*;
    kernel_set!(Neon, #[target_feature(enable = "neon")] widths: 1 2 3 4 5 6);
}

/// Plain Rust over the same layouts, for every platform. Multiply and add round separately here
/// (see [`Lanes16::fma`]), so its results differ from the FMA kernels' in the last bits, well
/// inside the tests' tolerance.
pub(super) mod portable {
    use super::*;
    kernel_set!(Plain, widths: 1 2 3 4 5 6);
}
