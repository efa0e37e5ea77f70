//! The kernels, and the drivers that cut each op into the pieces they compute.
//!
//! A convolution is computed one output row at a time ([`conv_rows`]), and each row in strips of up
//! to [`MAX_P`] pixels × one block of 16 output channels: the micro-kernel keeps those `P × 16`
//! sums in registers while it walks the input channels and kernel taps (a broadcast input value
//! times a vector of 16 weights, fused multiply-add), then applies the epilogue (bias, residual, ReLU)
//! before the single store. The kernel sets — AVX-512F, AVX2 + FMA, NEON and portable — are one
//! generic micro-kernel ([`direct`]) and one generic Winograd driver ([`winograd`]) compiled over
//! each set's 16-lane register type ([`simd`]), so the drivers here are shared and the sets differ
//! only in arithmetic and strip width.

use std::cell::RefCell;

use crate::plan::{Block, ConvKernel, GemmKernel, Post, ResidualRead2, BLOCK};
use crate::Isa;

mod direct;
mod simd;
mod winograd;

pub(crate) use winograd::{transform_weights, Form};

/// The widest strip of output pixels any micro-kernel computes at once.
pub(crate) const MAX_P: usize = 16;

/// The widest strip of `isa`'s micro-kernel: as many pixels as leave registers for the weights and
/// a broadcast (AVX2: 2 × 6 accumulators of 16; NEON: 4 × 6 of 32; AVX-512: 16 of 32).
pub(crate) fn max_strip(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        _ => 6,
    }
}

/// One strip's operands. Indices are into the slices; the kernels check the furthest index they
/// will touch before they start.
pub(crate) struct StripArgs<'a> {
    /// The input image, blocked.
    pub x: &'a [f32],
    /// Index of input block 0, the first tap's row and column, lane 0, for the strip's first pixel.
    pub x_off: usize,
    /// Floats between input channel blocks.
    pub x_cb_stride: usize,
    /// Floats between input rows.
    pub x_row_stride: usize,
    /// The horizontal stride.
    pub sw: usize,
    /// Input channel blocks, and the valid lanes of the last one.
    pub icb: usize,
    pub lanes_last: usize,
    pub kh: usize,
    pub kw: usize,
    /// This output block's packed weights: `[icb][kh][kw][16 input lanes][16 output channels]`.
    pub w: &'a [f32],
    /// This output block's 16 biases (zeros when the epilogue has none).
    pub bias: &'a [f32],
    /// The residual for the strip's first pixel (16 values) and the distance between pixels, when
    /// this output block adds one.
    pub res: Option<(&'a [f32], usize)>,
    /// The epilogue after the bias.
    pub post: &'a [Post],
    /// Independent strips computed by one call (Winograd's 16 transform positions).
    pub reps: Reps,
}

/// `n` strips in one call: repetition `r` reads input and weights `r·x` and `r·w` floats further
/// on and writes its output `r·out` floats further on; all share bias, residual and epilogue.
#[derive(Clone, Copy)]
pub(crate) struct Reps {
    pub n: usize,
    pub x: usize,
    pub w: usize,
    pub out: usize,
}

impl Reps {
    pub const ONE: Reps = Reps {
        n: 1,
        x: 0,
        w: 0,
        out: 0,
    };
}

impl StripArgs<'_> {
    /// Panics unless every index a `p`-pixel strip reads lies inside its slice; the SIMD kernels
    /// call it before using unchecked loads.
    pub(crate) fn check(&self, p: usize, out: &[f32]) {
        assert!(
            self.icb > 0
                && self.kh > 0
                && self.kw > 0
                && self.lanes_last >= 1
                && self.lanes_last <= BLOCK
                && self.reps.n >= 1
        );
        let last = self.reps.n - 1;
        let last_x = last * self.reps.x
            + self.x_off
            + (self.icb - 1) * self.x_cb_stride
            + (self.kh - 1) * self.x_row_stride
            + ((p - 1) * self.sw + self.kw - 1) * BLOCK
            + BLOCK;
        assert!(
            last_x <= self.x.len(),
            "strip reads input up to {last_x}, have {}",
            self.x.len()
        );
        assert!(self.w.len() >= last * self.reps.w + self.icb * self.kh * self.kw * BLOCK * BLOCK);
        assert!(self.bias.len() >= BLOCK);
        if let Some((r, stride)) = self.res {
            assert!((p - 1) * stride + BLOCK <= r.len());
        }
        assert!(out.len() >= last * self.reps.out + p * BLOCK);
    }
}

/// A micro-kernel: computes `P` pixels of one output block into `out[..P*16]`.
pub(crate) type StripFn = fn(&StripArgs, &mut [f32]);

/// The strip function for `isa`, `p` pixels wide (1..=MAX_P) and horizontal stride `sw`.
pub(crate) fn strip_fn(isa: Isa, p: usize, sw: usize) -> StripFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => direct::avx2::strip_fn(p, sw),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => direct::avx512::strip_fn(p, sw),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => direct::neon::strip_fn(p, sw),
        _ => direct::portable::strip_fn(p, sw),
    }
}

/// Splits a row of `w` pixels into as few strips `(x0, p)` of at most `max` pixels as possible,
/// of near-equal widths (32 at most 6 → 6,6,5,5,5,5; 8 → 4,4), so no strip is a ragged remainder.
pub(crate) fn strips(w: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let n = w.div_ceil(max).max(1);
    let (base, extra) = (w / n, w % n);
    (0..n)
        .filter(move |_| w > 0)
        .map(move |i| (i * base + i.min(extra), base + (i < extra) as usize))
}

/// Computes the output rows `first_row..first_row + out.len() / row_len` of a convolution over a
/// batch: row `g` is padded row `g % hp` of output plane `g / hp` (plane = image × channel block),
/// halo rows and columns are written as zeros. `x` and `res` hold the whole batch. Kernels with a
/// Winograd form compute whole rows of m×m tiles (starting at a multiple of m, all m rows in `out`)
/// that way, and the other rows directly.
pub(crate) fn conv_rows(
    isa: Isa,
    k: &ConvKernel,
    x: &[f32],
    res: Option<&[f32]>,
    out: &mut [f32],
    first_row: usize,
) {
    thread_local! {
        /// Winograd's transformed input tiles, grown to the largest convolution this thread has run.
        static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| conv_rows_with(isa, k, x, res, out, first_row, &mut cell.borrow_mut()));
}

fn conv_rows_with(
    isa: Isa,
    k: &ConvKernel,
    x: &[f32],
    res: Option<&[f32]>,
    out: &mut [f32],
    first_row: usize,
    scratch: &mut Vec<f32>,
) {
    let ob = k.out;
    let hp = ob.hp();
    let row_len = ob.wp() * BLOCK;
    let x_img_len = k.input.floats();
    let res_img_len = k.residual.as_ref().map_or(0, |r| r.block.floats());
    let max = max_strip(isa);
    // Strip functions for this row width, looked up once.
    let mut fns: [Option<StripFn>; MAX_P + 1] = [None; MAX_P + 1];
    for (_, p) in strips(ob.w, max) {
        fns[p] = Some(strip_fn(isa, p, k.sw));
    }
    let mut gathered = [0f32; 2 * MAX_P * BLOCK];
    let rows = out.len() / row_len;
    let img_rows = k.ocb * hp;
    if k.winograd.is_some() && first_row.is_multiple_of(img_rows) && rows.is_multiple_of(img_rows) {
        // Whole images: each chunk of tiles is transformed once for all output channel blocks.
        for (j, img) in out.chunks_exact_mut(img_rows * row_len).enumerate() {
            let n = first_row / img_rows + j;
            let x_img = &x[n * x_img_len..][..x_img_len];
            let r_img: &[f32] = match res {
                Some(res) if res_img_len > 0 => &res[n * res_img_len..][..res_img_len],
                _ => &[],
            };
            for (r, row) in img.chunks_exact_mut(row_len).enumerate() {
                let r = r % hp;
                if r < ob.halo || r >= ob.halo + ob.h {
                    row.fill(0.0);
                } else {
                    row[..ob.halo * BLOCK].fill(0.0);
                    row[(ob.halo + ob.w) * BLOCK..].fill(0.0);
                }
            }
            let args = winograd::TileArgs {
                isa,
                k,
                x_img,
                r_img,
            };
            let map = winograd::RowMap {
                base: ob.halo * row_len,
                plane: hp * row_len,
                row: row_len,
            };
            let m = k.winograd.as_ref().map_or(1, |w| w.form.m());
            let whole = ob.h - ob.h % m;
            winograd::tiles(&args, 0..k.ocb, 0..whole, img, map, &mut gathered, scratch);
            for oy in whole..ob.h {
                for (cb, plane) in img.chunks_exact_mut(hp * row_len).enumerate() {
                    direct_row(
                        k,
                        &fns,
                        max,
                        x_img,
                        r_img,
                        cb,
                        oy,
                        &mut plane[(ob.halo + oy) * row_len..][..row_len],
                        &mut gathered,
                    );
                }
            }
        }
        return;
    }
    let mut i = 0;
    while i < rows {
        let g = first_row + i;
        let plane = g / hp;
        let r = g % hp;
        let (n, cb) = (plane / k.ocb, plane % k.ocb);
        if r < ob.halo || r >= ob.halo + ob.h {
            out[i * row_len..][..row_len].fill(0.0);
            i += 1;
            continue;
        }
        let oy = r - ob.halo;
        let x_img = &x[n * x_img_len..][..x_img_len];
        let r_img: &[f32] = match res {
            Some(res) if res_img_len > 0 => &res[n * res_img_len..][..res_img_len],
            _ => &[],
        };
        // As many whole rows of Winograd tiles of this plane as lie in `out` from here.
        let m = k.winograd.as_ref().map_or(1, |w| w.form.m());
        let tile_rows = (rows - i).min(ob.h - oy) / m * m;
        if k.winograd.is_some() && oy.is_multiple_of(m) && tile_rows > 0 {
            for row in out[i * row_len..][..tile_rows * row_len].chunks_exact_mut(row_len) {
                row[..ob.halo * BLOCK].fill(0.0);
                row[(ob.halo + ob.w) * BLOCK..].fill(0.0);
            }
            let args = winograd::TileArgs {
                isa,
                k,
                x_img,
                r_img,
            };
            let map = winograd::RowMap {
                base: i * row_len,
                plane: 0,
                row: row_len,
            };
            let oys = oy..oy + tile_rows;
            winograd::tiles(&args, cb..cb + 1, oys, out, map, &mut gathered, scratch);
            i += tile_rows;
            continue;
        }
        let row = &mut out[i * row_len..][..row_len];
        row[..ob.halo * BLOCK].fill(0.0);
        row[(ob.halo + ob.w) * BLOCK..].fill(0.0);
        direct_row(k, &fns, max, x_img, r_img, cb, oy, row, &mut gathered);
        i += 1;
    }
}

/// Where task `t` of `tasks` near-equal ranges of `rows` output rows of `k` (counted as in
/// [`conv_rows`]) starts, for threads to share a convolution. A cut never falls inside a row of
/// Winograd tiles, so every tile is computed as one.
pub(crate) fn row_cut(k: &ConvKernel, rows: usize, tasks: usize, t: usize) -> usize {
    let (hp, halo) = (k.out.hp(), k.out.halo);
    let b = rows * t / tasks;
    let r = b % hp;
    let into_tile = match &k.winograd {
        Some(w) if r > halo && r < halo + k.out.h => (r - halo) % w.form.m(),
        _ => 0,
    };
    let m = k.winograd.as_ref().map_or(1, |w| w.form.m());
    (b + (m - into_tile) % m).min(rows)
}

/// One output row of one channel block, computed directly.
#[allow(clippy::too_many_arguments)]
fn direct_row(
    k: &ConvKernel,
    fns: &[Option<StripFn>; MAX_P + 1],
    max: usize,
    x_img: &[f32],
    r_img: &[f32],
    cb: usize,
    oy: usize,
    row: &mut [f32],
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
) {
    let (ib, ob) = (k.input, k.out);
    let wblock = k.icb * k.kh * k.kw * BLOCK * BLOCK;
    let iy0 = oy * k.sh + ib.halo - k.pt;
    assert!(
        k.has_direct_rows(),
        "row {oy} computed directly, but Winograd tiles cover every row and the direct weights were dropped"
    );
    let w = &k.weights[cb * wblock..][..wblock];
    let bias = &k.bias[cb * BLOCK..][..BLOCK];
    for (x0, p) in strips(ob.w, max) {
        let ix0 = x0 * k.sw + ib.halo - k.pl;
        let src = match &k.residual {
            Some(rk) if !r_img.is_empty() => residual_source(rk, r_img, cb, oy, x0, p, gathered),
            _ => None,
        };
        let res_arg = src.map(|(from_scratch, off, stride)| {
            if from_scratch {
                (&gathered[..], stride)
            } else {
                (&r_img[off..], stride)
            }
        });
        let args = StripArgs {
            x: x_img,
            x_off: iy0 * ib.wp() * BLOCK + ix0 * BLOCK,
            x_cb_stride: ib.hp() * ib.wp() * BLOCK,
            x_row_stride: ib.wp() * BLOCK,
            sw: k.sw,
            icb: k.icb,
            lanes_last: k.lanes_last,
            kh: k.kh,
            kw: k.kw,
            w,
            bias,
            res: res_arg,
            post: &k.post,
            reps: Reps::ONE,
        };
        let f = fns[p].expect("strip function looked up for every width");
        f(&args, &mut row[(ob.halo + x0) * BLOCK..][..p * BLOCK]);
    }
}

/// Where a strip's residual comes from: `(gathered, offset into the residual image, pixel stride)`;
/// `gathered` means it was copied into the scratch buffer (a channel offset that is not a multiple of
/// 16), `None` means this output block adds nothing (the option-A zero channels).
pub(crate) fn residual_source(
    rk: &crate::plan::ResidualKernel,
    r_img: &[f32],
    cb: usize,
    oy: usize,
    x0: usize,
    p: usize,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
) -> Option<(bool, usize, usize)> {
    let rb = rk.block;
    let at = |rcb: usize, y: usize, x: usize| {
        ((rcb * rb.hp() + y + rb.halo) * rb.wp() + x + rb.halo) * BLOCK
    };
    match rk.read {
        ResidualRead2::Direct => Some((false, at(cb, oy, x0), BLOCK)),
        ResidualRead2::Subsampled { stride, pad_before } => {
            if pad_before % BLOCK == 0 {
                let shift = pad_before / BLOCK;
                if cb < shift || cb - shift >= rb.blocks() {
                    return None;
                }
                Some((
                    false,
                    at(cb - shift, oy * stride, x0 * stride),
                    stride * BLOCK,
                ))
            } else {
                let lo = cb * BLOCK;
                if lo + BLOCK <= pad_before || lo >= pad_before + rb.c {
                    return None;
                }
                for q in 0..p {
                    for lane in 0..BLOCK {
                        let c = lo + lane;
                        gathered[q * BLOCK + lane] = if c >= pad_before && c - pad_before < rb.c {
                            let rc = c - pad_before;
                            r_img[at(rc / BLOCK, oy * stride, (x0 + q) * stride) + rc % BLOCK]
                        } else {
                            0.0
                        };
                    }
                }
                Some((true, 0, BLOCK))
            }
        }
    }
}

/// Plain NCHW images `[c][h][w]` into blocked ones with a zero halo.
pub(crate) fn to_blocked(src: &[f32], dst: &mut [f32], b: Block) {
    let (c, h, w) = (b.c, b.h, b.w);
    for (s, d) in src
        .chunks_exact(c * h * w)
        .zip(dst.chunks_exact_mut(b.floats()))
    {
        d.fill(0.0);
        for ch in 0..c {
            let (cb, lane) = (ch / BLOCK, ch % BLOCK);
            for y in 0..h {
                let drow = ((cb * b.hp() + y + b.halo) * b.wp() + b.halo) * BLOCK + lane;
                for (x, &v) in s[(ch * h + y) * w..][..w].iter().enumerate() {
                    d[drow + x * BLOCK] = v;
                }
            }
        }
    }
}

/// Blocked images back to plain NCHW.
pub(crate) fn to_plain(src: &[f32], dst: &mut [f32], b: Block) {
    let (c, h, w) = (b.c, b.h, b.w);
    for (s, d) in src
        .chunks_exact(b.floats())
        .zip(dst.chunks_exact_mut(c * h * w))
    {
        for ch in 0..c {
            let (cb, lane) = (ch / BLOCK, ch % BLOCK);
            for y in 0..h {
                let srow = ((cb * b.hp() + y + b.halo) * b.wp() + b.halo) * BLOCK + lane;
                for (x, v) in d[(ch * h + y) * w..][..w].iter_mut().enumerate() {
                    *v = s[srow + x * BLOCK];
                }
            }
        }
    }
}

/// Global average pool of blocked images into plain `[c]` per image. Each channel is summed in
/// row-major pixel order from zero and divided by the pixel count, as the reference does.
pub(crate) fn global_avg_pool(src: &[f32], dst: &mut [f32], b: Block) {
    let count = (b.h * b.w) as f32;
    for (s, d) in src.chunks_exact(b.floats()).zip(dst.chunks_exact_mut(b.c)) {
        for cb in 0..b.blocks() {
            let mut sum = [0f32; BLOCK];
            for y in 0..b.h {
                let row =
                    &s[((cb * b.hp() + y + b.halo) * b.wp() + b.halo) * BLOCK..][..b.w * BLOCK];
                for px in row.chunks_exact(BLOCK) {
                    for (a, &v) in sum.iter_mut().zip(px) {
                        *a += v;
                    }
                }
            }
            let lanes = (b.c - cb * BLOCK).min(BLOCK);
            for (o, &s) in d[cb * BLOCK..][..lanes].iter_mut().zip(&sum) {
                *o = s / count;
            }
        }
    }
}

/// `alpha · A·B + beta · C` for each row of `a` (`[k]` per image) into `[m]` per image. `B` is
/// packed `[k][m]`, `beta · C` is precomputed per column; the inner loop runs over `m`, so it
/// vectorizes without reordering any sum.
pub(crate) fn gemm(src: &[f32], dst: &mut [f32], g: &GemmKernel) {
    let (k, m) = (g.k, g.m);
    for (a, y) in src.chunks_exact(k).zip(dst.chunks_exact_mut(m)) {
        y.fill(0.0);
        for (kk, &av) in a.iter().enumerate() {
            for (o, &bv) in y.iter_mut().zip(&g.b[kk * m..][..m]) {
                *o += av * bv;
            }
        }
        for (o, &c) in y.iter_mut().zip(&g.c) {
            *o = g.alpha * *o + c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_cover_the_row_once() {
        for max in [1, 4, 6, 16] {
            for w in 1..80 {
                let s: Vec<_> = strips(w, max).collect();
                let mut next = 0;
                for &(x0, p) in &s {
                    assert_eq!(x0, next);
                    assert!((1..=max).contains(&p));
                    next += p;
                }
                assert_eq!(next, w);
                assert_eq!(s.len(), w.div_ceil(max));
            }
        }
        assert_eq!(
            strips(32, 6).map(|s| s.1).collect::<Vec<_>>(),
            [6, 6, 5, 5, 5, 5]
        );
        assert_eq!(strips(8, 6).map(|s| s.1).collect::<Vec<_>>(), [4, 4]);
        assert_eq!(strips(32, 16).map(|s| s.1).collect::<Vec<_>>(), [16, 16]);
    }
}
