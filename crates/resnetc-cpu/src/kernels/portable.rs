//! The portable micro-kernel: plain Rust over the same layouts as the SIMD kernels, for every
//! platform and as their twin in the tests. Multiply and add round separately here (no `mul_add`,
//! which is a slow library call where the hardware has no FMA), so its results differ from the
//! FMA kernels' in the last bits, well inside the tests' tolerance.

use super::{epilogue_scalar, StripArgs, StripFn, MAX_P};
use crate::plan::BLOCK;

pub(super) fn strip_fn(p: usize) -> StripFn {
    match p {
        1 => strip::<1>,
        2 => strip::<2>,
        3 => strip::<3>,
        4 => strip::<4>,
        5 => strip::<5>,
        6 => strip::<6>,
        _ => unreachable!("strips are 1..={MAX_P} pixels wide"),
    }
}

fn strip<const P: usize>(a: &StripArgs, out: &mut [f32]) {
    for rep in 0..a.reps.n {
        strip_once::<P>(a, rep, &mut out[rep * a.reps.out..]);
    }
}

fn strip_once<const P: usize>(a: &StripArgs, rep: usize, out: &mut [f32]) {
    let (x, w) = (&a.x[rep * a.reps.x..], &a.w[rep * a.reps.w..]);
    let mut acc = [[0f32; BLOCK]; P];
    for icb in 0..a.icb {
        let lanes = if icb + 1 == a.icb {
            a.lanes_last
        } else {
            BLOCK
        };
        for ky in 0..a.kh {
            for kx in 0..a.kw {
                let wbase = ((icb * a.kh + ky) * a.kw + kx) * BLOCK * BLOCK;
                let xbase = a.x_off + icb * a.x_cb_stride + ky * a.x_row_stride + kx * BLOCK;
                for l in 0..lanes {
                    let w = &w[wbase + l * BLOCK..][..BLOCK];
                    for (q, acc) in acc.iter_mut().enumerate() {
                        let xv = x[xbase + q * a.sw * BLOCK + l];
                        for (s, &wv) in acc.iter_mut().zip(w) {
                            *s += wv * xv;
                        }
                    }
                }
            }
        }
    }
    let out = &mut out[..P * BLOCK];
    for (o, a) in out.chunks_exact_mut(BLOCK).zip(&acc) {
        o.copy_from_slice(a);
    }
    epilogue_scalar(out, a.bias, a.res, a.post);
}
