//! Winograd F(2×2, 3×3) for the stride-1 3×3 convolutions: each 2×2 output tile takes 16
//! multiplies per input and output channel instead of 36.
//!
//! Weights are transformed once at compile time, `U = G·g·Gᵀ`, and packed per transform position
//! ξ ∈ 0..16 like the weights of a 1×1 convolution (`[ξ][ocb][icb][16 in][16 out]`). For a pair of
//! output rows, a strip of tiles and one block of 16 output channels, [`row_pair`]:
//! 1. transforms the 4×4 input tiles of every input channel, `V = Bᵀ·d·B` (16 lanes at a time),
//!    into a per-thread scratch (kept by the caller across calls) laid out `[ξ][icb][tile][16]`;
//! 2. for each ξ, runs the ISA's direct micro-kernel as a 1×1 convolution over that scratch
//!    (`M_ξ = U_ξ · V_ξ`, the sums in registers as usual);
//! 3. transforms back, `Y = Aᵀ·M·A`, into the two output rows and applies the epilogue there.
//!
//! The transforms are written as plain loops over 16-lane arrays and compiled inside
//! `#[target_feature]` wrappers, so they vectorize with the same instructions as the micro-kernel.
//! Numerically F(2×2, 3×3) is mild (coefficients 0, ±½, ±1): its error against the reference stays
//! within the same tolerance as the direct kernels (tested in `tests/kernels.rs`).

use std::ops::Range;

use super::{epilogue_scalar, max_strip, residual_source, strip_fn, strips, StripArgs, MAX_P};
use crate::plan::{ConvKernel, BLOCK};
use crate::Isa;

/// Transform positions per tile.
const XI: usize = 16;

/// `U = G·g·Gᵀ` of OIHW 3×3 weights, packed `[16][ocb][icb][16 input lanes][16 output channels]`.
pub(crate) fn transform_weights(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let (ocb, icb) = (cout.div_ceil(BLOCK), cin.div_ceil(BLOCK));
    let mut u = vec![0f32; XI * ocb * icb * BLOCK * BLOCK];
    for o in 0..cout {
        for i in 0..cin {
            let g = &w[(o * cin + i) * 9..][..9];
            for (a, ga) in G.iter().enumerate() {
                for (b, gb) in G.iter().enumerate() {
                    let mut s = 0f64;
                    for (r, gar) in ga.iter().enumerate() {
                        for (c, gbc) in gb.iter().enumerate() {
                            s += gar * g[r * 3 + c] as f64 * gbc;
                        }
                    }
                    let at = ((((a * 4 + b) * ocb + o / BLOCK) * icb + i / BLOCK) * BLOCK
                        + i % BLOCK)
                        * BLOCK
                        + o % BLOCK;
                    u[at] = s as f32;
                }
            }
        }
    }
    u
}

/// Where [`row_pair`] writes: output row `oy + dy` of channel block `cb` starts at
/// `base + (cb - cbs.start)·plane + dy·row` in its `out` slice.
#[derive(Clone, Copy)]
pub(super) struct RowMap {
    pub base: usize,
    pub plane: usize,
    pub row: usize,
}

/// The operands of [`row_pair`] that stay fixed over a convolution.
pub(super) struct PairArgs<'a> {
    pub isa: Isa,
    pub k: &'a ConvKernel,
    pub x_img: &'a [f32],
    pub r_img: &'a [f32],
}

/// Output rows `oy` and `oy + 1` of the channel blocks `cbs` (halo columns already written), the
/// input transformed once for all of them. `v` is scratch, grown as needed.
pub(super) fn row_pair(
    a: &PairArgs,
    cbs: Range<usize>,
    oy: usize,
    out: &mut [f32],
    map: RowMap,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
    v: &mut Vec<f32>,
) {
    match a.isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the plan hands out Isa::Avx512 only where `is_x86_feature_detected!("avx512f")`.
        Isa::Avx512 => unsafe { row_pair_avx512(a, cbs, oy, out, map, gathered, v) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the plan hands out Isa::Avx2 only where avx2 and fma were detected.
        Isa::Avx2 => unsafe { row_pair_avx2(a, cbs, oy, out, map, gathered, v) },
        _ => row_pair_impl(a, cbs, oy, out, map, gathered, v),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_pair_avx512(
    a: &PairArgs,
    cbs: Range<usize>,
    oy: usize,
    out: &mut [f32],
    map: RowMap,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
    v: &mut Vec<f32>,
) {
    row_pair_impl(a, cbs, oy, out, map, gathered, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_pair_avx2(
    a: &PairArgs,
    cbs: Range<usize>,
    oy: usize,
    out: &mut [f32],
    map: RowMap,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
    v: &mut Vec<f32>,
) {
    row_pair_impl(a, cbs, oy, out, map, gathered, v)
}

type Lanes = [f32; BLOCK];

/// `Bᵀ·[a, b, c, d]` for one column (or row) of four 16-lane values. (Plain loops rather than
/// `array::from_fn`, which is not inlined into the `#[target_feature]` callers.)
#[inline(always)]
fn bt(a: &Lanes, b: &Lanes, c: &Lanes, d: &Lanes) -> [Lanes; 4] {
    let mut r = [[0f32; BLOCK]; 4];
    for l in 0..BLOCK {
        r[0][l] = a[l] - c[l];
        r[1][l] = b[l] + c[l];
        r[2][l] = c[l] - b[l];
        r[3][l] = b[l] - d[l];
    }
    r
}

/// `Aᵀ·[a, b, c, d]`.
#[inline(always)]
fn at(a: &Lanes, b: &Lanes, c: &Lanes, d: &Lanes) -> [Lanes; 2] {
    let mut r = [[0f32; BLOCK]; 2];
    for l in 0..BLOCK {
        r[0][l] = a[l] + b[l] + c[l];
        r[1][l] = b[l] - c[l] - d[l];
    }
    r
}

#[inline(always)]
fn lanes_at(s: &[f32], at: usize) -> &Lanes {
    s[at..at + BLOCK].try_into().expect("16 lanes")
}

#[inline(always)]
fn row_pair_impl(
    a: &PairArgs,
    cbs: Range<usize>,
    oy: usize,
    out: &mut [f32],
    map: RowMap,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
    v: &mut Vec<f32>,
) {
    let (isa, k, x_img, r_img) = (a.isa, a.k, a.x_img, a.r_img);
    let u = k
        .winograd
        .as_deref()
        .expect("row_pair is only called for kernels with a Winograd form");
    let (ib, ob, icb) = (k.input, k.out, k.icb);
    let max = max_strip(isa);
    let in_plane = ib.hp() * ib.wp() * BLOCK;
    let in_row = ib.wp() * BLOCK;
    let iy0 = oy + ib.halo - k.pt;
    let zero = [0f32; BLOCK];
    let ublock = icb * BLOCK * BLOCK;
    let need = XI * (icb + 1) * max * BLOCK;
    if v.len() < need {
        v.resize(need, 0.0);
    }
    let (vs_all, m) = v.split_at_mut(XI * icb * max * BLOCK);
    for (t0, p) in strips(ob.w / 2, max) {
        let vs = &mut vs_all[..XI * icb * p * BLOCK];
        // 1. V = Bᵀ·d·B for every input block and tile.
        for c in 0..icb {
            for t in 0..p {
                let col = 2 * (t0 + t) + ib.halo - k.pl;
                let base = c * in_plane + iy0 * in_row + col * BLOCK;
                let px = |i: usize, j: usize| lanes_at(x_img, base + i * in_row + j * BLOCK);
                // Down the columns, then along the rows.
                let mut cols = [[[0f32; BLOCK]; 4]; 4];
                for (j, col) in cols.iter_mut().enumerate() {
                    *col = bt(px(0, j), px(1, j), px(2, j), px(3, j));
                }
                for i in 0..4 {
                    let e = bt(&cols[0][i], &cols[1][i], &cols[2][i], &cols[3][i]);
                    for (j, e) in e.iter().enumerate() {
                        vs[(((i * 4 + j) * icb + c) * p + t) * BLOCK..][..BLOCK].copy_from_slice(e);
                    }
                }
            }
        }
        let f = strip_fn(isa, p, 1);
        for cb in cbs.clone() {
            let bias = &k.bias[cb * BLOCK..][..BLOCK];
            let row_at = |dy: usize| map.base + (cb - cbs.start) * map.plane + dy * map.row;
            // 2. M_ξ = U_ξ·V_ξ, a 1×1 convolution on the micro-kernel.
            for xi in 0..XI {
                let args = StripArgs {
                    x: &vs[xi * icb * p * BLOCK..][..icb * p * BLOCK],
                    x_off: 0,
                    x_cb_stride: p * BLOCK,
                    x_row_stride: 0,
                    sw: 1,
                    icb,
                    lanes_last: k.lanes_last,
                    kh: 1,
                    kw: 1,
                    w: &u[(xi * k.ocb + cb) * ublock..][..ublock],
                    bias: &zero,
                    res: None,
                    post: &[],
                };
                f(&args, &mut m[xi * p * BLOCK..][..p * BLOCK]);
            }
            // 3. Y = Aᵀ·M·A into both rows, then the epilogue on each.
            let x0 = (ob.halo + 2 * t0) * BLOCK;
            for t in 0..p {
                let mv = |xi: usize| lanes_at(m, (xi * p + t) * BLOCK);
                let mut cols = [[[0f32; BLOCK]; 2]; 4];
                for (j, col) in cols.iter_mut().enumerate() {
                    *col = at(mv(j), mv(4 + j), mv(8 + j), mv(12 + j));
                }
                for dy in 0..2 {
                    let y = at(&cols[0][dy], &cols[1][dy], &cols[2][dy], &cols[3][dy]);
                    out[row_at(dy) + x0 + 2 * t * BLOCK..][..2 * BLOCK]
                        .copy_from_slice(y.as_flattened());
                }
            }
            for dy in 0..2 {
                let src = match &k.residual {
                    Some(rk) if !r_img.is_empty() => {
                        residual_source(rk, r_img, cb, oy + dy, 2 * t0, 2 * p, gathered)
                    }
                    _ => None,
                };
                let res = src.map(|(from_scratch, off, stride)| {
                    if from_scratch {
                        (&gathered[..], stride)
                    } else {
                        (&r_img[off..], stride)
                    }
                });
                epilogue_scalar(
                    &mut out[row_at(dy) + x0..][..2 * p * BLOCK],
                    bias,
                    res,
                    &k.post,
                );
            }
        }
    }
}
