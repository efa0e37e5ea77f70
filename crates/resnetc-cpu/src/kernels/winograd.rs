//! Winograd F(m×m, 3×3) for the stride-1 3×3 convolutions, m = 2 or 4: each m×m output tile
//! takes (m+2)² multiplies per input and output channel instead of 9m² (F(2×2): 16 instead of 36,
//! F(4×4): 36 instead of 144).
//!
//! Weights are transformed once at compile time, `U = G·g·Gᵀ`, and packed per output block and
//! transform position ξ ∈ 0..(m+2)² like the weights of a 1×1 convolution
//! (`[ocb][ξ][icb][16 in][16 out]`). For a chunk
//! of tiles as wide as the micro-kernel's strip (taken row-major over a whole image where the
//! caller has one, so that small outputs still fill a strip), [`tiles`]:
//! 1. transforms the input tiles of every input channel, `V = Bᵀ·d·B` (16 lanes at a time),
//!    into a per-thread scratch (kept by the caller across calls) laid out `[ξ][icb][tile][16]`;
//! 2. for each block of 16 output channels, runs the ISA's direct micro-kernel as (m+2)² 1×1
//!    convolutions over that scratch in one call (`M_ξ = U_ξ · V_ξ`, the sums in registers) —
//!    on AVX-512 two or four blocks at once where the chunk is short (an 8×8 output has four
//!    4×4 tiles: 4 tiles × 4 blocks keep 16 sums in registers where one block would keep 4);
//! 3. transforms back, `Y = Aᵀ·M·A`, into the tile's m output rows, with the epilogue.
//!
//! The transforms are written once over the 16-lane register type of `simd.rs` and compiled inside
//! each kernel set's `#[target_feature]` function, with the same instructions as the micro-kernel.
//!
//! Numerics: F(2×2) has coefficients 0, ±½, ±1 and is as accurate as direct convolution. F(4×4)
//! (interpolation points 0, ±1, ±2) has coefficients up to 8 in `Aᵀ` and 5 in `Bᵀ`, so its rounding
//! error is several times larger; `tests/kernels.rs` bounds both against the reference, and the
//! whole-model tests hold the pretrained networks to PyTorch's top-1 and logits with it on.

use std::marker::PhantomData;
use std::ops::Range;

#[cfg(target_arch = "aarch64")]
use super::simd::Neon;
use super::simd::{by_epilogue, finish_as, Epilogue, Lanes16, Part, Plain};
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};
use super::{deep_fn, max_strip, residual, strips, Reps, StripArgs, StripFn, MAX_P};
use crate::program::{ConvKernel, Form, BLOCK};
use crate::Isa;

impl Form {
    /// The output tile's side, m.
    pub(crate) fn m(self) -> usize {
        match self {
            Form::F2 => 2,
            Form::F4 => 4,
        }
    }

    /// Transform positions per tile, (m+2)².
    pub(crate) fn positions(self) -> usize {
        (self.m() + 2) * (self.m() + 2)
    }

    /// `G`, (m+2) × 3.
    fn g(self) -> &'static [[f64; 3]] {
        const G2: [[f64; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        const G4: [[f64; 3]; 6] = [
            [1.0 / 4.0, 0.0, 0.0],
            [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
            [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
            [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
            [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
            [0.0, 0.0, 1.0],
        ];
        match self {
            Form::F2 => &G2,
            Form::F4 => &G4,
        }
    }
}

/// The largest spread of weight magnitudes within one output channel (max |w| over the lower
/// median of its non-zero |w|) at which [`crate::Winograd::Auto`] still transforms a convolution.
///
/// Winograd mixes a tile's inputs before the products, so each output's rounding error scales with
/// the tile's largest products rather than its own window's. With weights of one magnitude that
/// is the usual small loss (the four pretrained ResNets: spreads of at most 25, the fixtures 8.5); with one
/// weight of −7.5e20 among taps of 0.1 (a fuzz finding) the small taps' products vanish next to it
/// and logits move by 1.5 %, while direct convolution stays within 1e-6. At a spread of 1e7 the
/// error measured 5e-5; 1e4 keeps it far below the project's 1e-4.
pub(crate) const MAX_WEIGHT_SPREAD: f32 = 1e4;

/// The largest weight spread over the output channels of an `[cout, cin, 3, 3]` weight (see
/// [`MAX_WEIGHT_SPREAD`]): 1 for all-zero channels, infinite where a weight is not finite.
pub(crate) fn weight_spread(w: &[f32], cout: usize) -> f32 {
    let per = w.len() / cout.max(1);
    let mut mags = Vec::with_capacity(per);
    let mut worst = 1f32;
    for channel in w.chunks(per.max(1)) {
        mags.clear();
        mags.extend(channel.iter().map(|v| v.abs()).filter(|m| *m != 0.0));
        if mags.is_empty() {
            continue;
        }
        if mags.iter().any(|m| !m.is_finite()) {
            return f32::INFINITY;
        }
        // The lower median: a channel of two taps, one huge, counts as spread.
        let mid = (mags.len() - 1) / 2;
        let (_, median, _) = mags.select_nth_unstable_by(mid, f32::total_cmp);
        let median = *median;
        let max = mags.iter().copied().fold(0f32, f32::max);
        worst = worst.max(max / median);
    }
    worst
}

/// `U = G·g·Gᵀ` of OIHW 3×3 weights (computed in f64, rounded once), packed
/// `[ocb][ξ][icb][16 input lanes][16 output channels]`: all the positions of one output block
/// in one stream, in the order a chunk's products read them. (With the positions outermost, as
/// `.rnc` files store them, each position's block was a jump away from the last, and resnet56 at
/// batch 1 on Zen 3 AVX2 ran 30 % slower: medians of 8 alternating runs, minimum times 2.76 ms
/// against 1.93, 1 thread.)
pub(crate) fn transform_weights(w: &[f32], cout: usize, cin: usize, form: Form) -> Vec<f32> {
    let g_mat = form.g();
    let n = g_mat.len();
    let (ocb, icb) = (cout.div_ceil(BLOCK), cin.div_ceil(BLOCK));
    let mut u = vec![0f32; n * n * ocb * icb * BLOCK * BLOCK];
    for o in 0..cout {
        for i in 0..cin {
            let g = &w[(o * cin + i) * 9..][..9];
            for (a, ga) in g_mat.iter().enumerate() {
                for (b, gb) in g_mat.iter().enumerate() {
                    let mut s = 0f64;
                    for (r, gar) in ga.iter().enumerate() {
                        for (c, gbc) in gb.iter().enumerate() {
                            s += gar * g[r * 3 + c] as f64 * gbc;
                        }
                    }
                    let at = ((((o / BLOCK) * n * n + a * n + b) * icb + i / BLOCK) * BLOCK
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

/// Winograd weights in the order `.rnc` files store them, `[ξ][ocb][icb][16][16]`, from the
/// order [`transform_weights`] packs for the kernels, `[ocb][ξ][icb][16][16]`.
pub(crate) fn to_stored_order(u: &[f32], form: Form, ocb: usize) -> Vec<f32> {
    swap_outer(u, ocb, form.positions())
}

/// The inverse of [`to_stored_order`], for weights whose length the plan's checks have matched
/// to `(m+2)²·ocb·icb·256`.
pub(crate) fn from_stored_order(u: &[f32], form: Form, ocb: usize) -> Vec<f32> {
    swap_outer(u, form.positions(), ocb)
}

/// `[a][b][rest]` as `[b][a][rest]`; a length that `a·b` does not divide is copied unchanged.
fn swap_outer(u: &[f32], a: usize, b: usize) -> Vec<f32> {
    let n = a * b;
    if n == 0 || !u.len().is_multiple_of(n) {
        return u.to_vec();
    }
    let rest = u.len() / n;
    let mut out = Vec::with_capacity(u.len());
    for j in 0..b {
        for i in 0..a {
            out.extend_from_slice(&u[(i * b + j) * rest..][..rest]);
        }
    }
    out
}

/// The output a kernel writes into: a pointer and a length rather than a slice, so that the threads
/// of a team (`kernels::conv_member`) can each write their own rows of the same planes at once.
pub(crate) struct Out<'a> {
    ptr: *mut f32,
    len: usize,
    _out: PhantomData<&'a mut [f32]>,
}

impl<'a> Out<'a> {
    /// All of `out`, held exclusively.
    pub(crate) fn new(out: &'a mut [f32]) -> Out<'a> {
        Out {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _out: PhantomData,
        }
    }

    /// `len` floats at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr + len` is valid for reads and writes for `'a`, and for as long as the result
    /// lives, nothing else reads or writes the floats written through it.
    pub(crate) unsafe fn from_raw(ptr: *mut f32, len: usize) -> Out<'a> {
        Out {
            ptr,
            len,
            _out: PhantomData,
        }
    }

    /// The `n` floats at `at`. Panics past the end.
    pub(crate) fn at(&mut self, at: usize, n: usize) -> &mut [f32] {
        assert!(at.checked_add(n).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (above); `new` and `from_raw` make the floats this one's to write, and
        // the `&mut self` borrow keeps two such slices of one `Out` from coexisting.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), n) }
    }
}

/// The operands of [`tiles`] that stay fixed over a convolution.
pub(super) struct TileArgs<'a> {
    pub isa: Isa,
    pub k: &'a ConvKernel,
    pub x_img: &'a [f32],
    pub r_img: &'a [f32],
    /// The output channel blocks to compute.
    pub cbs: Range<usize>,
}

/// Output rows `oys` (a multiple of the tile side m of them, starting at a multiple of m) of the
/// channel blocks `a.cbs`, into `out`, the image's blocked output (row `oy` of block `cb` is padded
/// row `halo + oy` of plane `cb`), halo columns already written. The m×m tiles of those rows are
/// taken in row-major order, in chunks of [`chunk_tiles`], so a chunk may span several rows of
/// tiles: each chunk's input is transformed once for all those blocks. `v` is scratch, grown as
/// needed.
pub(super) fn tiles(
    a: &TileArgs,
    oys: Range<usize>,
    out: &mut Out,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
    v: &mut Vec<f32>,
) {
    /// `tiles_impl` over `$lanes`, compiled with the target features `$feature`.
    macro_rules! with_features {
        ($lanes:ty, $feature:literal) => {{
            #[target_feature(enable = $feature)]
            unsafe fn run(
                a: &TileArgs,
                oys: Range<usize>,
                out: &mut Out,
                gathered: &mut [f32; 2 * MAX_P * BLOCK],
                v: &mut Vec<f32>,
            ) {
                tiles_impl::<$lanes>(a, oys, out, gathered, v)
            }
            // SAFETY: the plan hands out an `Isa` only where `Isa::resolve` detected its features.
            unsafe { run(a, oys, out, gathered, v) }
        }};
    }
    match a.isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => with_features!(Avx512, "avx512f"),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => with_features!(Avx2, "avx2,fma"),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => with_features!(Neon, "neon"),
        _ => tiles_impl::<Plain>(a, oys, out, gathered, v),
    }
}

/// The most output blocks one Winograd product computes at once.
const MAX_DEEP: usize = 4;

/// How many output blocks one call of the micro-kernel computes for a chunk of `p` tiles: as many
/// as keep at most a strip's worth of sums in registers (`deep · p ≤ max`, which is also what lets
/// one strip's scratch hold them), dividing `ocb`, where the kernel set has such a strip (AVX-512,
/// with its 32 registers); otherwise one. With the strip function that computes them.
pub(super) fn deep_blocks(isa: Isa, ocb: usize, p: usize, max: usize) -> (usize, StripFn) {
    [MAX_DEEP, 2]
        .into_iter()
        .filter(|&r| ocb.is_multiple_of(r) && r * p <= max)
        .find_map(|r| Some((r, deep_fn(isa, p, r)?)))
        .unwrap_or((1, super::strip_fn(isa, p, 1)))
}

/// How many tiles one chunk takes: a strip's worth (`max`) where the output is one block deep, and
/// `max / deep` where the kernel set computes `deep` output blocks at once. The same sums stay in
/// registers either way, but each broadcast input feeds `deep` products instead of one, and the
/// chunk's transformed input and products take `1 / deep` of the cache (32 channels at 16×16 on
/// AVX-512: 8 tiles two blocks deep ran 13 % faster than 16 tiles one block deep).
pub(super) fn chunk_tiles(isa: Isa, ocb: usize, max: usize) -> usize {
    [MAX_DEEP, 2]
        .into_iter()
        .find(|&r| ocb.is_multiple_of(r) && deep_fn(isa, max / r, r).is_some())
        .map_or(max, |r| max / r)
}

/// The input and output transforms of one form, on one column (or row) of 16-lane values held
/// in registers. Arrays are 6 long for both forms; only the first `N` (or `M`) entries count.
trait Transform {
    /// Output tile side.
    const M: usize;
    /// Input tile side, `M + 2`.
    const N: usize;
    /// `Bᵀ·d`.
    fn bt<S: Part>(d: [S; 6]) -> [S; 6];
    /// `Aᵀ·m`.
    fn at<S: Lanes16>(m: [S; 6]) -> [S; 4];
}

struct F2;
struct F4;

impl Transform for F2 {
    const M: usize = 2;
    const N: usize = 4;

    #[inline(always)]
    fn bt<S: Part>(d: [S; 6]) -> [S; 6] {
        [
            d[0].sub(d[2]),
            d[1].add(d[2]),
            d[2].sub(d[1]),
            d[1].sub(d[3]),
            d[4],
            d[5],
        ]
    }

    #[inline(always)]
    fn at<S: Lanes16>(m: [S; 6]) -> [S; 4] {
        [
            m[0].add(m[1]).add(m[2]),
            m[1].sub(m[2]).sub(m[3]),
            m[4],
            m[5],
        ]
    }
}

impl Transform for F4 {
    const M: usize = 4;
    const N: usize = 6;

    // Lavin & Gray's matrices, with every constant multiple folded into a fused multiply-add
    // (12 operations for `Bᵀ·d` where separate products took 19, 10 for `Aᵀ·m` where they took 13).
    #[inline(always)]
    fn bt<S: Part>(d: [S; 6]) -> [S; 6] {
        // Rows 1–4 share these four terms.
        let a = d[4].fnma_k(d[2], 4.0);
        let b = d[3].fnma_k(d[1], 4.0);
        let c = d[4].sub(d[2]);
        let e = d[3].sub(d[1]);
        [
            d[4].fma_k(d[0], 4.0).fnma_k(d[2], 5.0),
            a.add(b),
            a.sub(b),
            c.fma_k(e, 2.0),
            c.fnma_k(e, 2.0),
            d[5].fma_k(d[1], 4.0).fnma_k(d[3], 5.0),
        ]
    }

    #[inline(always)]
    fn at<S: Lanes16>(m: [S; 6]) -> [S; 4] {
        let (s12, d12) = (m[1].add(m[2]), m[1].sub(m[2]));
        let (s34, d34) = (m[3].add(m[4]), m[3].sub(m[4]));
        [
            m[0].add(s12).add(s34),
            d12.fma_k(d34, 2.0),
            s12.fma_k(s34, 4.0),
            d12.fma_k(d34, 8.0).add(m[5]),
        ]
    }
}

#[inline(always)]
fn tiles_impl<S: Lanes16>(
    a: &TileArgs,
    oys: Range<usize>,
    out: &mut Out,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
    v: &mut Vec<f32>,
) {
    let w =
        a.k.winograd
            .as_ref()
            .expect("tiles is only called for kernels with a Winograd form");
    match w.form {
        Form::F2 => tiles_form::<F2, S>(a, &w.u, oys, out, gathered, v),
        Form::F4 => tiles_form::<F4, S>(a, &w.u, oys, out, gathered, v),
    }
}

#[inline(always)]
fn tiles_form<T: Transform, S: Lanes16>(
    a: &TileArgs,
    u: &[f32],
    oys: Range<usize>,
    out: &mut Out,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
    v: &mut Vec<f32>,
) {
    let (m_side, n_side) = (T::M, T::N);
    let xi_n = n_side * n_side;
    let (isa, k, x_img, r_img) = (a.isa, a.k, a.x_img, a.r_img);
    let (ib, ob, icb) = (k.input, k.out, k.icb);
    debug_assert!(
        oys.start.is_multiple_of(m_side) && oys.len().is_multiple_of(m_side) && oys.end <= ob.h
    );
    let max = max_strip(isa);
    let in_plane = ib.hp() * ib.wp() * BLOCK;
    let in_row = ib.wp() * BLOCK;
    let ublock = icb * BLOCK * BLOCK;
    // V, then one strip's products: `deep · p ≤ max` (`deep_blocks`), so a deep strip's fit too.
    let need = xi_n * (icb + 1) * max * BLOCK;
    if v.len() < need {
        v.resize(need, 0.0);
    }
    let (vs_all, m) = v.split_at_mut(xi_n * icb * max * BLOCK);
    let tw = ob.w / m_side;
    let cbs = a.cbs.clone();
    assert!(cbs.end <= k.ocb);
    for (t0, p) in strips(oys.len() / m_side * tw, chunk_tiles(isa, cbs.len(), max)) {
        let vs = &mut vs_all[..xi_n * icb * p * BLOCK];
        // 1. V = Bᵀ·d·B for every input block and tile: down the columns, then along the rows.
        // The loads and stores are unchecked (this loop is most of the transform's time); the
        // asserts bound every index they use.
        assert!(vs.len() >= n_side * n_side * icb * p * BLOCK);
        let vp = vs.as_mut_ptr();
        let xi_stride = icb * p * BLOCK;
        for c in 0..icb {
            for t in 0..p {
                let (oy, ox) = tile_origin(m_side, oys.start, tw, t0 + t);
                let base =
                    c * in_plane + (oy + ib.halo - k.pt) * in_row + (ox + ib.halo - k.pl) * BLOCK;
                assert!(base + (n_side - 1) * in_row + n_side * BLOCK <= x_img.len());
                // One register's worth of lanes at a time ([`Part`]: AVX2's halves), each part
                // through both passes.
                for h in (0..BLOCK).step_by(<S::Part as Part>::LANES) {
                    // SAFETY (loads and stores): i, j < n_side, c < icb, t < p and
                    // h + LANES ≤ 16 keep every index within the asserts above, and `S`'s
                    // target feature is enabled in the caller.
                    unsafe {
                        input_tile::<T, S::Part>(
                            x_img.as_ptr().add(base + h),
                            in_row,
                            vp.add((c * p + t) * BLOCK + h),
                            xi_stride,
                        )
                    };
                }
            }
        }
        // Output blocks `deep` at a time, where the kernel set has such strips: a short chunk of
        // tiles (an 8×8 output's four 4×4 tiles) then still keeps enough sums in registers.
        let (deep, f) = deep_blocks(isa, cbs.len(), p, max);
        let m_block = xi_n * p * BLOCK;
        for cb0 in cbs.clone().step_by(deep) {
            // 2. M_ξ = U_ξ·V_ξ for every ξ in one call: 1×1 convolutions on the micro-kernel.
            let args = StripArgs {
                x: vs,
                x_off: 0,
                x_cb_stride: p * BLOCK,
                x_row_stride: 0,
                sw: 1,
                icb,
                lanes_last: k.lanes_last,
                kh: 1,
                kw: 1,
                w: &u[cb0 * xi_n * ublock..],
                bias: None,
                res: None,
                post: &[],
                reps: Reps {
                    n: xi_n,
                    x: icb * p * BLOCK,
                    w: ublock,
                    out: p * BLOCK,
                },
                w_block: xi_n * ublock,
                out_block: m_block,
            };
            f(&args, &mut m[..deep * m_block]);
            for cb in cb0..cb0 + deep {
                let m = &m[(cb - cb0) * m_block..][..m_block];
                let bias_at = cb * BLOCK;
                assert!(bias_at + BLOCK <= k.bias.len());
                // SAFETY: within the assert; `S`'s target feature is enabled in the caller.
                let bias = unsafe { S::load(k.bias.as_ptr().add(bias_at)) };
                // 3. Y = Aᵀ·M·A, then the epilogue, into the tile's rows: the epilogue's shape
                // is matched once here, not per pixel.
                let tiles = Untransform {
                    k,
                    r_img,
                    cb,
                    m,
                    p,
                    first: oys.start,
                    tw,
                    t0,
                };
                by_epilogue!(&k.post, E => untransform::<T, S, E>(&tiles, bias, out, gathered));
            }
        }
    }
}

/// `V = Bᵀ·d·B` of one input tile (`x`: its top-left pixel, rows `in_row` floats apart, pixels
/// 16), one [`Part`] of its lanes, stored at `v` and every `xi_stride` floats on for positions
/// ξ = 0, 1, ….
///
/// # Safety
/// The tile's `N` rows of `N` pixels are readable from `x` and the `N²` parts writable from `v`;
/// `P`'s target feature is enabled in the caller.
#[inline(always)]
unsafe fn input_tile<T: Transform, P: Part>(
    x: *const f32,
    in_row: usize,
    v: *mut f32,
    xi_stride: usize,
) {
    let n_side = T::N;
    // Columns first (`cols[j]` = Bᵀ·column j), then each row of those.
    // SAFETY (loads and stores): the caller's contract.
    let mut cols = [[unsafe { P::load(x) }; 6]; 6];
    for (j, col) in cols.iter_mut().enumerate().take(n_side) {
        let mut d = *col;
        for (i, d) in d.iter_mut().enumerate().take(n_side) {
            *d = unsafe { P::load(x.add(i * in_row + j * BLOCK)) };
        }
        *col = T::bt(d);
    }
    // Pointers step by the distance between transform positions rather than recomputing a
    // four-term index per store (the multiplies took the vector units' ports).
    let mut at = v;
    for i in 0..n_side {
        let mut row = cols[0];
        for (j, r) in row.iter_mut().enumerate().take(n_side) {
            *r = cols[j][i];
        }
        let e = T::bt(row);
        // Position ξ = i·n + j.
        for e in e.iter().take(n_side) {
            unsafe { e.store(at) };
            at = at.wrapping_add(xi_stride);
        }
    }
}

/// Tile `t`'s top output row and left output column, for m×m tiles taken row-major from output
/// row `first`, `tw` to a row.
#[inline(always)]
fn tile_origin(m: usize, first: usize, tw: usize, t: usize) -> (usize, usize) {
    (first + m * (t / tw), m * (t % tw))
}

/// What [`untransform`] works on: the products `m` of one output block `cb` for the chunk of `p`
/// tiles from tile `t0` of the rows starting at output row `first`, `tw` tiles to a row.
struct Untransform<'a> {
    k: &'a ConvKernel,
    r_img: &'a [f32],
    cb: usize,
    m: &'a [f32],
    p: usize,
    first: usize,
    tw: usize,
    t0: usize,
}

/// `Y = Aᵀ·M·A` of each tile, plus the bias, then epilogue `E` (an [`Epilogue`]), into the
/// tile's m output rows of block `u.cb`.
#[inline(always)]
fn untransform<T: Transform, S: Lanes16, const E: u8>(
    u: &Untransform,
    bias: S,
    out: &mut Out,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
) {
    let (m_side, n_side) = (T::M, T::N);
    let (k, p, cb) = (u.k, u.p, u.cb);
    let ob = k.out;
    let out_row = ob.wp() * BLOCK;
    let m = u.m;
    assert!(m.len() >= n_side * n_side * p * BLOCK);
    let pb = p * BLOCK;
    for t in 0..p {
        let (oy, ox) = tile_origin(m_side, u.first, u.tw, u.t0 + t);
        // Position ξ = i·n + j of tile t is at `ξ·p + t` blocks.
        let mp = m[t * BLOCK..].as_ptr();
        // SAFETY: i, j < n_side and t < p: within the assert on `m`.
        let mut cols = [[unsafe { S::load(mp) }; 4]; 6];
        for (j, col) in cols.iter_mut().enumerate().take(n_side) {
            let mut mc = [col[0]; 6];
            // (Wrapping: the step after the last load points past `m`.)
            let mut q = mp.wrapping_add(j * pb);
            for mc in mc.iter_mut().take(n_side) {
                *mc = unsafe { S::load(q) };
                q = q.wrapping_add(n_side * pb);
            }
            *col = T::at(mc);
        }
        for dy in 0..m_side {
            let mut mr = [cols[0][0]; 6];
            for (j, r) in mr.iter_mut().enumerate().take(n_side) {
                *r = cols[j][dy];
            }
            let y = T::at(mr);
            let row = (cb * ob.hp() + ob.halo + oy + dy) * out_row;
            let dst = out
                .at(row + (ob.halo + ox) * BLOCK, m_side * BLOCK)
                .as_mut_ptr();
            let res = if E == Epilogue::Bias as u8 || E == Epilogue::Relu as u8 {
                None
            } else {
                residual(k, u.r_img, cb, oy + dy, ox, m_side, gathered)
            };
            if let Some((r, stride)) = res {
                assert!((m_side - 1) * stride + BLOCK <= r.len());
            }
            for (dx, y) in y.iter().enumerate().take(m_side) {
                // (A `match`, not `Option::map`: closures are not inlined here.)
                #[allow(clippy::manual_map)]
                let r = match res {
                    Some((r, stride)) => Some(r[dx * stride..].as_ptr()),
                    None => None,
                };
                // SAFETY: `dst` holds m_side pixels and the assert above bounds the residual's;
                // `S`'s target feature is enabled in the caller; `E` is `k.post`'s shape.
                unsafe { finish_as::<S, E>(dst.add(dx * BLOCK), *y, Some(bias), r, &k.post) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::weight_spread;

    #[test]
    fn weight_spread_is_per_output_channel_over_the_nonzero_median() {
        let cases: &[(&[f32], usize, f32)] = &[
            // Two channels of one magnitude each, 1000× apart: each channel alone has spread 2.
            (&[1.0, 2.0, 1.0, 1000.0, 2000.0, 1000.0], 2, 2.0),
            // Zeros (a pruned filter) are not counted; an all-zero channel has spread 1.
            (&[0.0, 0.0, 0.5, 0.5, 0.0, 0.0], 2, 1.0),
            // The fuzz finding's shape: one tap far above the others.
            (&[0.1, -0.1, 0.1, -7.5e20], 1, 7.5e21),
            (&[0.1, 7.5e20], 1, 7.5e21),
            (&[0.1, f32::NAN, 0.1], 1, f32::INFINITY),
            (&[0.1, f32::INFINITY, 0.1], 1, f32::INFINITY),
        ];
        for (w, cout, want) in cases {
            let got = weight_spread(w, *cout);
            assert!(
                got == *want || (got - want).abs() <= 1e-6 * want,
                "{w:?}: {got} != {want}"
            );
        }
    }
}
