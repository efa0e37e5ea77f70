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
use std::ops::Range;

use crate::program::{Block, ConvKernel, GemmKernel, Post, ResidualRead2, BLOCK};
use crate::Isa;

mod direct;
mod simd;
mod winograd;

use winograd::Out;
pub(crate) use winograd::{
    from_stored_order, to_stored_order, transform_weights, weight_spread, MAX_WEIGHT_SPREAD,
};

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
    /// This output block's 16 biases; `None` for none (Winograd's products, whose bias is added
    /// after the output transform).
    pub bias: Option<&'a [f32]>,
    /// The residual for the strip's first pixel (16 values) and the distance between pixels, when
    /// this output block adds one.
    pub res: Option<(&'a [f32], usize)>,
    /// The epilogue after the bias.
    pub post: &'a [Post],
    /// Independent strips computed by one call (Winograd's 16 transform positions).
    pub reps: Reps,
    /// For a strip several output blocks deep ([`deep_fn`]): floats between one block's weights
    /// and the next's, and between their outputs (0 for one block).
    pub w_block: usize,
    pub out_block: usize,
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
    /// Panics unless every index a `p`-pixel strip `r` output blocks deep reads lies inside its
    /// slice (a deep strip has no bias or residual); the SIMD kernels call it before using
    /// unchecked loads.
    pub(crate) fn check_blocks(&self, p: usize, r: usize, out: &[f32]) {
        assert!(
            self.icb > 0
                && self.kh > 0
                && self.kw > 0
                && self.lanes_last >= 1
                && self.lanes_last <= BLOCK
                && self.reps.n >= 1
                && r >= 1
                && (r == 1 || (self.bias.is_none() && self.res.is_none()))
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
        assert!(
            self.w.len()
                >= last * self.reps.w
                    + (r - 1) * self.w_block
                    + self.icb * self.kh * self.kw * BLOCK * BLOCK
        );
        assert!(self.bias.is_none_or(|b| b.len() >= BLOCK));
        if let Some((r, stride)) = self.res {
            assert!((p - 1) * stride + BLOCK <= r.len());
        }
        assert!(out.len() >= last * self.reps.out + (r - 1) * self.out_block + p * BLOCK);
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

/// `isa`'s stride-1 strip `p` pixels wide and `r > 1` output blocks deep, where it has one
/// (AVX-512: up to 8 pixels 2 deep, 4 pixels 4 deep; one block deep is [`strip_fn`]).
pub(crate) fn deep_fn(isa: Isa, p: usize, r: usize) -> Option<StripFn> {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        return direct::avx512::deep_fn(p, r);
    }
    let _ = (isa, p, r);
    None
}

/// Whether `tiles` F(4×4) tiles of an output `ocb` channel blocks deep keep the micro-kernel's
/// registers busy, so that [`crate::Winograd::Auto`] takes F(4×4) over F(2×2): a strip's worth of
/// tiles (16: outputs of 16×16 and up), or fewer computed several blocks deep (an 8×8 output of
/// 64 channels on AVX-512: four tiles, four blocks deep). Below that F(2×2)'s four times as many
/// tiles run faster despite their 1.8× the products.
pub(crate) fn f4_fills_strip(isa: Isa, tiles: usize, ocb: usize) -> bool {
    const FULL: usize = 16;
    tiles >= FULL || winograd::deep_blocks(isa, ocb, tiles, max_strip(isa)).0 * tiles >= FULL
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
/// Winograd form take whole images (the rows of m×m tiles that way, any rows below them directly);
/// threads share one through [`conv_member`].
pub(crate) fn conv_rows(
    isa: Isa,
    k: &ConvKernel,
    x: &[f32],
    res: Option<&[f32]>,
    out: &mut [f32],
    first_row: usize,
) {
    with_scratch(|scratch| conv_rows_with(isa, k, x, res, out, first_row, scratch));
}

/// Runs `f` with this thread's Winograd scratch (transformed input tiles), grown to the largest
/// convolution the thread has run.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| f(&mut cell.borrow_mut()))
}

/// Member `member` of a team of `members` threads computing one convolution over a batch together,
/// each writing its own part of `out` (the whole batch's output) while the others write theirs.
/// A Winograd convolution is shared out by rows of tiles, every channel block of a row of tiles
/// computed by one member, so each input tile is transformed once, or by channel blocks where
/// [`splits_channels`]; a direct one by output rows.
///
/// # Safety
/// `out..out + out_len` is the convolution's output, valid for writes, and for the duration of the
/// call nothing but the team's members (with the same `members`, each `member` once) reads or
/// writes it, nor writes `x` or `res`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv_member(
    isa: Isa,
    k: &ConvKernel,
    x: &[f32],
    res: Option<&[f32]>,
    out: *mut f32,
    out_len: usize,
    member: usize,
    members: usize,
) {
    let ob = k.out;
    let row_len = ob.wp() * BLOCK;
    let img_len = k.ocb * ob.hp() * row_len;
    let share = |n: usize| n * member / members..n * (member + 1) / members;
    match &k.winograd {
        Some(w) => {
            let m = w.form.m();
            let images = out_len / img_len;
            let (oys, cbs, edges) = if splits_channels(isa, k, members) {
                (0..ob.h - ob.h % m, share(k.ocb), (true, true))
            } else {
                let tile_rows = share(ob.h / m);
                let oys = tile_rows.start * m..tile_rows.end * m;
                (oys, 0..k.ocb, (member == 0, member + 1 == members))
            };
            with_scratch(|scratch| {
                for n in 0..images {
                    // SAFETY: the members' parts are disjoint (channel blocks `cbs` of rows `oys`),
                    // and `image_tiles` writes only those of image `n`, plus the halo rows of its
                    // blocks where `edges` says so: member 0's (top) and the last member's
                    // (bottom, and any rows below the last row of tiles) when they share rows.
                    let mut img = unsafe { Out::from_raw(out.add(n * img_len), img_len) };
                    image_tiles(
                        isa,
                        k,
                        x,
                        res,
                        n,
                        &mut img,
                        (oys.clone(), cbs.clone()),
                        edges,
                        scratch,
                    );
                }
            });
        }
        None => {
            let rows = share(out_len / row_len);
            // SAFETY: the members' rows are disjoint.
            let mine = unsafe {
                std::slice::from_raw_parts_mut(out.add(rows.start * row_len), rows.len() * row_len)
            };
            conv_rows(isa, k, x, res, mine, rows.start);
        }
    }
}

/// Whether a team of `members` shares Winograd convolution `k` out by output channel blocks (each
/// member all the tiles, for its blocks) rather than by rows of tiles (each member its rows, for
/// every block): where a member's rows of tiles would not fill the chunk the output's depth asks
/// for ([`winograd::chunk_tiles`]), as with 64 channels at 8×8 (two rows of two 4×4 tiles, four
/// blocks deep). By blocks, each member then multiplies all of an image's tiles and reads only its
/// blocks' transformed weights (590 kB a convolution there, which a batch of one reads once, from
/// L3); the price is that every member transforms all the input tiles. Measured on Xeon AVX-512,
/// batch 1, 2 threads, in one process: resnet56 1.65 ms against 1.74 (medians of 400 runs),
/// resnet20 0.565 against 0.615; splitting the 32-channel 16×16 stage (whose rows fill a chunk)
/// by blocks as well gave no gain.
pub(crate) fn splits_channels(isa: Isa, k: &ConvKernel, members: usize) -> bool {
    let Some(w) = &k.winograd else {
        return false;
    };
    let m = w.form.m();
    let my_tiles = (k.out.h / m).div_ceil(members.max(1)) * (k.out.w / m);
    members > 1
        && k.ocb.is_multiple_of(members)
        && my_tiles < winograd::chunk_tiles(isa, k.ocb, max_strip(isa))
}

/// Image `n`'s output rows `part.0` (whole rows of Winograd tiles) of channel blocks `part.1`
/// through `img` (the image's output), each chunk of tiles transformed once for all those blocks,
/// with the halo columns of those rows. `edges.0`: also the top halo rows of those blocks;
/// `edges.1`: also the bottom ones, and the rows below the last row of tiles (computed directly).
#[allow(clippy::too_many_arguments)]
fn image_tiles(
    isa: Isa,
    k: &ConvKernel,
    x: &[f32],
    res: Option<&[f32]>,
    n: usize,
    img: &mut Out,
    (oys, cbs): (Range<usize>, Range<usize>),
    edges: (bool, bool),
    scratch: &mut Vec<f32>,
) {
    let ob = k.out;
    let (hp, row_len) = (ob.hp(), ob.wp() * BLOCK);
    let x_img = &x[n * k.input.floats()..][..k.input.floats()];
    let r_len = k.residual.as_ref().map_or(0, |r| r.block.floats());
    let r_img: &[f32] = match res {
        Some(res) if r_len > 0 => &res[n * r_len..][..r_len],
        _ => &[],
    };
    let m = k.winograd.as_ref().map_or(1, |w| w.form.m());
    let whole = ob.h - ob.h % m;
    for cb in cbs.clone() {
        let mut zero_row = |r: usize| img.at((cb * hp + r) * row_len, row_len).fill(0.0);
        if edges.0 {
            (0..ob.halo).for_each(&mut zero_row);
        }
        if edges.1 {
            (ob.halo + ob.h..hp).for_each(&mut zero_row);
        }
        for oy in oys.clone() {
            let row = img.at((cb * hp + ob.halo + oy) * row_len, row_len);
            row[..ob.halo * BLOCK].fill(0.0);
            row[(ob.halo + ob.w) * BLOCK..].fill(0.0);
        }
    }
    let args = winograd::TileArgs {
        isa,
        k,
        x_img,
        r_img,
        cbs: cbs.clone(),
    };
    let mut gathered = [0f32; 2 * MAX_P * BLOCK];
    winograd::tiles(&args, oys, img, &mut gathered, scratch);
    if edges.1 {
        let (max, fns) = strip_fns(isa, k);
        for oy in whole..ob.h {
            for cb in cbs.clone() {
                let row = img.at((cb * hp + ob.halo + oy) * row_len, row_len);
                row[..ob.halo * BLOCK].fill(0.0);
                row[(ob.halo + ob.w) * BLOCK..].fill(0.0);
                direct_row(k, &fns, max, x_img, r_img, cb, oy, row, &mut gathered);
            }
        }
    }
}

/// `isa`'s widest strip, and its strip functions for the widths `k`'s output rows are cut into.
fn strip_fns(isa: Isa, k: &ConvKernel) -> (usize, [Option<StripFn>; MAX_P + 1]) {
    let max = max_strip(isa);
    let mut fns: [Option<StripFn>; MAX_P + 1] = [None; MAX_P + 1];
    for (_, p) in strips(k.out.w, max) {
        fns[p] = Some(strip_fn(isa, p, k.sw));
    }
    (max, fns)
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
    let rows = out.len() / row_len;
    let img_rows = k.ocb * hp;
    if let Some(w) = &k.winograd {
        assert!(
            first_row.is_multiple_of(img_rows) && rows.is_multiple_of(img_rows),
            "a Winograd convolution is computed by whole images (or by `conv_member`)"
        );
        // Each chunk of tiles is transformed once for all output channel blocks.
        let oys = 0..ob.h - ob.h % w.form.m();
        for (j, img) in out.chunks_exact_mut(img_rows * row_len).enumerate() {
            let n = first_row / img_rows + j;
            let mut img = Out::new(img);
            image_tiles(
                isa,
                k,
                x,
                res,
                n,
                &mut img,
                (oys.clone(), 0..k.ocb),
                (true, true),
                scratch,
            );
        }
        return;
    }
    let x_img_len = k.input.floats();
    let res_img_len = k.residual.as_ref().map_or(0, |r| r.block.floats());
    let (max, fns) = strip_fns(isa, k);
    let mut gathered = [0f32; 2 * MAX_P * BLOCK];
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
        let row = &mut out[i * row_len..][..row_len];
        row[..ob.halo * BLOCK].fill(0.0);
        row[(ob.halo + ob.w) * BLOCK..].fill(0.0);
        direct_row(k, &fns, max, x_img, r_img, cb, oy, row, &mut gathered);
        i += 1;
    }
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
        let res_arg = residual(k, r_img, cb, oy, x0, p, gathered);
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
            bias: Some(bias),
            res: res_arg,
            post: &k.post,
            reps: Reps::ONE,
            w_block: 0,
            out_block: 0,
        };
        let f = fns[p].expect("strip function looked up for every width");
        f(&args, &mut row[(ob.halo + x0) * BLOCK..][..p * BLOCK]);
    }
}

/// The residual a strip of `p` pixels from `(oy, x0)` of output block `cb` adds, and the distance
/// between its pixels: in `r_img` or copied into `gathered` ([`residual_source`]); `None` where
/// the convolution or this block adds none.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn residual<'a>(
    k: &ConvKernel,
    r_img: &'a [f32],
    cb: usize,
    oy: usize,
    x0: usize,
    p: usize,
    gathered: &'a mut [f32; 2 * MAX_P * BLOCK],
) -> Option<(&'a [f32], usize)> {
    let rk = k.residual.as_ref().filter(|_| !r_img.is_empty())?;
    let (from_scratch, off, stride) = residual_source(rk, r_img, cb, oy, x0, p, gathered)?;
    Some(if from_scratch {
        (&gathered[..], stride)
    } else {
        (&r_img[off..], stride)
    })
}

/// Where a strip's residual comes from: `(gathered, offset into the residual image, pixel stride)`;
/// `gathered` means it was copied into the scratch buffer (a channel offset that is not a multiple of
/// 16), `None` means this output block adds nothing (the option-A zero channels). Inlined into
/// the kernels, which call it per row of a strip or tile, but for the gather.
#[inline]
fn residual_source(
    rk: &crate::program::ResidualKernel,
    r_img: &[f32],
    cb: usize,
    oy: usize,
    x0: usize,
    p: usize,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
) -> Option<(bool, usize, usize)> {
    let rb = rk.block;
    let at = |rcb: usize, y: usize, x: usize| rb.at(rcb, y, x);
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
                gather(rk, r_img, lo, oy, x0, p, gathered);
                Some((true, 0, BLOCK))
            }
        }
    }
}

/// Copies the residual channels `lo..lo + 16` (shifted by `pad_before`, zeros outside) of a strip
/// of `p` pixels into `gathered`. The lanes that have a source channel are one run, which lies in
/// at most two of the residual's channel blocks, so each pixel is a zero fill and one or two
/// slice copies (a lane at a time, with the index worked out per lane, this was 3 % of resnet20
/// at batch 64).
#[inline(never)]
fn gather(
    rk: &crate::program::ResidualKernel,
    r_img: &[f32],
    lo: usize,
    oy: usize,
    x0: usize,
    p: usize,
    gathered: &mut [f32; 2 * MAX_P * BLOCK],
) {
    let rb = rk.block;
    let ResidualRead2::Subsampled { stride, pad_before } = rk.read else {
        unreachable!("only a subsampled residual is gathered")
    };
    // Output lanes `first..end` read residual channels `first + lo - pad_before..`.
    let first = pad_before.saturating_sub(lo).min(BLOCK);
    let end = (pad_before + rb.c).saturating_sub(lo).clamp(first, BLOCK);
    // The run cut where it crosses from one residual block into the next: (lane, channel, len).
    let mut runs = [(0, 0, 0); 2];
    let mut n = 0;
    let mut lane = first;
    while lane < end {
        let rc = lane + lo - pad_before;
        let len = (end - lane).min(BLOCK - rc % BLOCK);
        runs[n] = (lane, rc, len);
        n += 1;
        lane += len;
    }
    for (q, dst) in gathered.chunks_exact_mut(BLOCK).take(p).enumerate() {
        dst.fill(0.0);
        for &(lane, rc, len) in &runs[..n] {
            let src = rb.at(rc / BLOCK, oy * stride, (x0 + q) * stride) + rc % BLOCK;
            dst[lane..lane + len].copy_from_slice(&r_img[src..src + len]);
        }
    }
}

/// Plain NCHW images `[c][h][w]` into blocked ones with a zero halo. Pixel by pixel, each
/// block's 16 lanes (zeros past the last channel) written at once, and only the halo zeroed
/// besides: a channel at a time over a cleared image, resnet20's 3-channel input was 2.3 % of its
/// run at batch 64 (the clear alone 0.9 %).
pub(crate) fn to_blocked(src: &[f32], dst: &mut [f32], b: Block) {
    let (c, h, w, halo) = (b.c, b.h, b.w, b.halo);
    let row_floats = b.wp() * BLOCK;
    for (s, d) in src
        .chunks_exact(c * h * w)
        .zip(dst.chunks_exact_mut(b.floats()))
    {
        for (cb, plane) in d.chunks_exact_mut(b.hp() * row_floats).enumerate() {
            let channels = cb * BLOCK..c.min((cb + 1) * BLOCK);
            let (top, rest) = plane.split_at_mut(halo * row_floats);
            let (rows, bottom) = rest.split_at_mut(h * row_floats);
            top.fill(0.0);
            bottom.fill(0.0);
            for (y, row) in rows.chunks_exact_mut(row_floats).enumerate() {
                let (left, rest) = row.split_at_mut(halo * BLOCK);
                let (pixels, right) = rest.split_at_mut(w * BLOCK);
                left.fill(0.0);
                right.fill(0.0);
                for (x, px) in pixels.chunks_exact_mut(BLOCK).enumerate() {
                    let mut v = [0f32; BLOCK];
                    for (v, ch) in v.iter_mut().zip(channels.clone()) {
                        *v = s[(ch * h + y) * w + x];
                    }
                    px.copy_from_slice(&v);
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
    fn auto_takes_f4_where_its_tiles_fill_the_registers() {
        // (kernel set, 4×4 tiles of the output, output channel blocks, F(4×4)?)
        let mut cases = vec![
            (Isa::Portable, 64, 1, true), // 32×32, 16 channels
            (Isa::Portable, 16, 2, true), // 16×16, 32 channels
            (Isa::Portable, 4, 4, false), // 8×8, 64 channels: four tiles make a short strip
        ];
        #[cfg(target_arch = "x86_64")]
        cases.extend([
            (Isa::Avx2, 4, 4, false),
            (Isa::Avx512, 16, 1, true),
            (Isa::Avx512, 4, 4, true), // four tiles × four blocks
            (Isa::Avx512, 4, 2, false),
            (Isa::Avx512, 4, 3, false),
            (Isa::Avx512, 8, 2, true),
            (Isa::Avx512, 1, 8, false),
        ]);
        for (isa, tiles, ocb, want) in cases {
            assert_eq!(
                f4_fills_strip(isa, tiles, ocb),
                want,
                "{isa:?} {tiles} {ocb}"
            );
        }
    }

    #[test]
    fn a_chunk_is_as_many_tiles_as_its_depth_leaves_registers_for() {
        // (kernel set, output channel blocks, tiles per chunk)
        let mut cases = vec![(Isa::Portable, 1, 6), (Isa::Portable, 4, 6)];
        #[cfg(target_arch = "x86_64")]
        cases.extend([
            (Isa::Avx2, 2, 6),
            (Isa::Avx512, 1, 16), // 16 channels: one block deep
            (Isa::Avx512, 2, 8),  // 32 channels: 8 tiles × 2 blocks
            (Isa::Avx512, 3, 16), // no depth divides 3
            (Isa::Avx512, 4, 4),  // 64 channels: 4 tiles × 4 blocks
            (Isa::Avx512, 6, 8),
            (Isa::Avx512, 8, 4),
        ]);
        for (isa, ocb, want) in cases {
            let max = max_strip(isa);
            let got = winograd::chunk_tiles(isa, ocb, max);
            assert_eq!(got, want, "{isa:?} {ocb} blocks");
            // What `tiles` relies on: the chunk's depth keeps `deep · p` within one strip.
            let (deep, _) = winograd::deep_blocks(isa, ocb, got, max);
            assert!(deep * got <= max && ocb.is_multiple_of(deep));
            assert_eq!(deep * got, if deep > 1 { max } else { got });
        }
    }

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
