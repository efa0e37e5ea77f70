//! The program a [`CpuPlan`] is: its steps, kernels with their packed weights, buffers and the
//! blocked-layout geometry. The bottom of the crate: the kernels read these types, the planner
//! (`plan.rs`) builds them, the stored-plan codec (`serial.rs`) reads and writes them, and this
//! module depends on none of those (`kernels` → `program` ← `plan`, no circle).

/// Channels per block of the blocked layout (two AVX2 vectors, four NEON vectors).
pub(crate) const BLOCK: usize = 16;
/// Offsets (per image) are multiples of this many floats, so blocked images start 64-byte aligned.
pub(crate) const ALIGN: usize = 16;
/// The largest padding the halo accepts.
pub(crate) const MAX_PAD: usize = 16;

/// The Winograd form of a convolution: the output tile's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// F(2×2, 3×3).
    F2,
    /// F(4×4, 3×3).
    F4,
}

/// The geometry of one blocked image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub halo: usize,
}

impl Block {
    pub fn blocks(&self) -> usize {
        self.c.div_ceil(BLOCK)
    }
    pub fn hp(&self) -> usize {
        self.h + 2 * self.halo
    }
    pub fn wp(&self) -> usize {
        self.w + 2 * self.halo
    }
    pub fn floats(&self) -> usize {
        self.blocks() * self.hp() * self.wp() * BLOCK
    }
    /// Where pixel `(y, x)` of channel block `cb` starts (coordinates inside the halo).
    pub fn at(&self, cb: usize, y: usize, x: usize) -> usize {
        ((cb * self.hp() + y + self.halo) * self.wp() + x + self.halo) * BLOCK
    }
}

/// An epilogue step after the bias (which every kernel adds first, zeros when there is none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Post {
    Residual,
    Relu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResidualRead2 {
    Direct,
    Subsampled { stride: usize, pad_before: usize },
}

#[derive(Clone, Debug)]
pub(crate) struct ResidualKernel {
    pub read: ResidualRead2,
    pub block: Block,
}

/// A convolution with its packed weights and fused epilogue.
#[derive(Clone, Debug)]
pub(crate) struct ConvKernel {
    pub input: Block,
    pub out: Block,
    pub icb: usize,
    pub lanes_last: usize,
    pub ocb: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pt: usize,
    pub pl: usize,
    /// `[ocb][icb][kh][kw][16 input lanes][16 output channels]`, zero where a channel does not exist;
    /// empty where Winograd tiles cover every output row ([`ConvKernel::has_direct_rows`]).
    pub weights: Vec<f32>,
    /// `[ocb·16]`, zeros past `cout` or when the epilogue has no bias.
    pub bias: Vec<f32>,
    pub post: Vec<Post>,
    pub residual: Option<ResidualKernel>,
    /// The Winograd form and weights, for the 3×3 stride-1 convolutions that run that way.
    pub winograd: Option<WinogradKernel>,
}

impl ConvKernel {
    /// Whether any output row is computed directly: all of them without a Winograd form, the
    /// `h mod m` rows below the last row of m×m tiles with one. Only these convolutions keep the
    /// direct weights (resnet56 with Winograd on: 3.4 MB less).
    pub(crate) fn has_direct_rows(&self) -> bool {
        has_direct_rows(self.winograd.as_ref().map(|w| w.form), self.out.h)
    }
}

/// [`ConvKernel::has_direct_rows`] for a convolution of `form` to `h` output rows.
pub(crate) fn has_direct_rows(form: Option<Form>, h: usize) -> bool {
    form.is_none_or(|f| !h.is_multiple_of(f.m()))
}

/// A convolution's Winograd form and its transformed weights, `[ocb][ξ][icb][16 in][16 out]`
/// (`.rnc` files store `[ξ][ocb][icb][16 in][16 out]`; `serial.rs` reorders).
#[derive(Clone, Debug)]
pub(crate) struct WinogradKernel {
    pub form: Form,
    pub u: Vec<f32>,
}

/// Gemm with `B` packed `[k][m]` (transposed at compile time if `transB`) and `beta·C` per column.
#[derive(Clone, Debug)]
pub(crate) struct GemmKernel {
    pub k: usize,
    pub m: usize,
    pub alpha: f32,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
}

pub(crate) type BufId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Graph input `k`, read where the caller keeps it.
    Input(usize),
    /// An arena offset, in floats per image.
    Arena(usize),
}

#[derive(Clone, Debug)]
pub(crate) struct Buffer {
    pub loc: Loc,
    /// Floats per image.
    pub floats: usize,
}

#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    ToBlocked(Block),
    ToPlain(Block),
    Conv(Box<ConvKernel>),
    GlobalAvgPool(Block),
    Gemm(Box<GemmKernel>),
}

#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub kernel: Kernel,
    /// The buffers read: the operand, then the residual for a convolution.
    pub inputs: Vec<BufId>,
    pub output: BufId,
    /// The node this step computes (or converts for), for messages and profiles.
    pub node: String,
}

/// A graph input or output as the plan sees it: plain NCHW, batch first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    /// The dimensions after the batch.
    pub dims: Vec<usize>,
    /// Floats per image.
    pub floats: usize,
}

/// A compiled graph: steps with packed weights and a memory plan, ready to run at any batch.
#[derive(Clone, Debug)]
pub struct CpuPlan {
    pub(crate) isa: crate::Isa,
    pub(crate) buffers: Vec<Buffer>,
    pub(crate) steps: Vec<Step>,
    pub(crate) inputs: Vec<Port>,
    pub(crate) outputs: Vec<(Port, BufId)>,
    pub(crate) arena_floats: usize,
    pub(crate) flops: u64,
}
