//! Tile shapes of the implicit-GEMM convolution, and which one a layer uses for a batch.
//!
//! A convolution is a matrix product C[m, n] = Σ_k A[m, k] · B[k, n] with m = (image, output pixel),
//! n = output channel and k = (input channel, kernel row, kernel column); A is gathered from the input
//! on the fly. A block computes a `bm × bn` tile of C in steps of `bk` along k; each thread computes
//! `tm` consecutive pixels × `tn` channels in registers. The lanes of a warp form an 8 × 4 grid over
//! (pixel groups, channel groups), so one shared-memory read of A feeds four channel groups and one of
//! B eight pixel groups.
//!
//! Large tiles reuse more data per load, small ones give more blocks: a layer takes the largest tile
//! that still gives every SM of the GPU a block ([`choose`]), so small batches get small tiles.

/// One tile shape. See the module docs for the meaning of each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Tile {
    pub bm: usize,
    pub bn: usize,
    pub bk: usize,
    pub tm: usize,
    pub tn: usize,
}

/// Lanes of a warp along m.
pub(crate) const WARP_M: usize = 8;
/// The reduction is padded to a multiple of this (every tile's `bk` divides it).
pub(crate) const K_ALIGN: usize = 16;
/// Output channels are padded to a multiple of this in the weight layout (every `bn` divides it).
pub(crate) const N_ALIGN: usize = 16;

impl Tile {
    pub fn threads(&self) -> usize {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Whether the generated kernel's static assertions hold (checked here so that a bad table entry
    /// is a Rust test failure, not an NVRTC error).
    pub fn is_valid(&self) -> bool {
        let (mg, ng) = (self.bm / self.tm, self.bn / self.tn);
        let t = self.threads();
        self.tm.is_multiple_of(4)
            && self.tn.is_multiple_of(4)
            && self.bm.is_multiple_of(self.tm)
            && self.bn.is_multiple_of(self.tn)
            && t.is_multiple_of(32)
            && t <= 1024
            && mg % WARP_M == 0
            && ng % (32 / WARP_M) == 0
            && t.is_multiple_of(self.bm)
            && self.bk.is_multiple_of(t / self.bm)
            && K_ALIGN.is_multiple_of(self.bk)
            && N_ALIGN.is_multiple_of(4)
    }

    /// Blocks for `rows` output pixels (batch × pixels per image) and `coutp` padded channels.
    pub fn blocks(&self, rows: u64, coutp: usize) -> u64 {
        rows.div_ceil(self.bm as u64) * (coutp / self.bn) as u64
    }
}

/// The tiles a layer with `coutp` padded output channels may use, largest first.
pub(crate) fn ladder(coutp: usize) -> Vec<Tile> {
    let t = |bm, bn, tm, tn| Tile {
        bm,
        bn,
        bk: 16,
        tm,
        tn,
    };
    let bn = if coutp.is_multiple_of(64) {
        64
    } else if coutp.is_multiple_of(32) {
        32
    } else {
        16
    };
    let mut tiles = match bn {
        64 => vec![t(128, 64, 4, 8), t(64, 64, 4, 4)],
        32 => vec![t(256, 32, 4, 8), t(64, 32, 4, 4)],
        _ => vec![t(256, 16, 4, 4), t(64, 16, 4, 4)],
    };
    tiles.push(t(32, 16, 4, 4));
    tiles.dedup();
    debug_assert!(tiles.iter().all(Tile::is_valid));
    tiles
}

/// The tile for `rows` output pixels: the first of the ladder giving at least `target_blocks` blocks,
/// else the smallest.
pub(crate) fn choose(ladder: &[Tile], rows: u64, coutp: usize, target_blocks: u64) -> Tile {
    *ladder
        .iter()
        .find(|t| t.blocks(rows, coutp) >= target_blocks)
        .unwrap_or(ladder.last().expect("ladders are not empty"))
}

/// The smallest batch for which [`choose`] picks `tile` or a larger one: `tile` gives at least
/// `target_blocks` blocks from this batch on.
pub(crate) fn min_batch(tile: &Tile, pixels: u64, coutp: usize, target_blocks: u64) -> usize {
    let gy = (coutp / tile.bn) as u64;
    let need_x = target_blocks.div_ceil(gy).max(1);
    // ceil(b·P / bm) >= need_x  ⟺  b·P > (need_x − 1)·bm
    (((need_x - 1) * tile.bm as u64) / pixels.max(1) + 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ladder_tile_is_valid() {
        for coutp in [16, 32, 48, 64, 128, 80] {
            for t in ladder(coutp) {
                assert!(t.is_valid(), "{t:?} for {coutp} channels");
                assert_eq!(coutp % t.bn, 0);
            }
        }
    }

    #[test]
    fn min_batch_agrees_with_choose() {
        for coutp in [16, 32, 64] {
            let l = ladder(coutp);
            for pixels in [1024u64, 256, 64, 49] {
                for target in [1u64, 66, 132, 264] {
                    for (k, tile) in l.iter().enumerate() {
                        let b = min_batch(tile, pixels, coutp, target);
                        assert!(tile.blocks(b as u64 * pixels, coutp) >= target);
                        if b > 1 {
                            assert!(tile.blocks((b - 1) as u64 * pixels, coutp) < target);
                        }
                        // choose() picks this tile or an earlier one at that batch.
                        let chosen = choose(&l, b as u64 * pixels, coutp, target);
                        assert!(l.iter().position(|t| *t == chosen).unwrap() <= k);
                    }
                }
            }
        }
    }
}
