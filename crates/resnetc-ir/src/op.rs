//! The closed op set.
//!
//! One variant per operation PyTorch's exporters emit for CifarResNet, plus the shape arithmetic around
//! them. Attributes are normalized at import so each op has one form whatever the opset: operands that
//! older opsets pass as attributes (Slice `starts`, Pad `pads`, Unsqueeze `axes`, ReduceMean `axes`, …)
//! are always inputs here. Adding a variant breaks every exhaustive `match`, which is the point: the
//! validator, the reference executor and the exporter must all learn it.

use std::fmt;

use crate::tensor::{DType, Tensor};

/// Spatial padding of a 2-D window op, resolved against the input size at inference time when automatic.
#[derive(Clone, Debug, PartialEq)]
pub enum Padding {
    /// Explicit `[top, left, bottom, right]` (ONNX `pads` order `[x1_begin, x2_begin, x1_end, x2_end]`).
    Explicit([usize; 4]),
    /// ONNX `auto_pad = SAME_UPPER`: output = ceil(input / stride), extra padding at the end.
    SameUpper,
    /// ONNX `auto_pad = SAME_LOWER`: output = ceil(input / stride), extra padding at the start.
    SameLower,
}

impl Padding {
    /// Resolves to `[top, left, bottom, right]` for an input of spatial size `hw`. Zero strides or
    /// kernels (which the validator rejects) are treated as 1 rather than dividing by zero.
    pub fn resolve(
        &self,
        hw: [usize; 2],
        kernel: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
    ) -> [usize; 4] {
        match self {
            Padding::Explicit(p) => *p,
            Padding::SameUpper | Padding::SameLower => {
                let mut begin = [0; 2];
                let mut end = [0; 2];
                for i in 0..2 {
                    let stride = strides[i].max(1);
                    let out = hw[i].div_ceil(stride);
                    let eff_k = kernel[i]
                        .max(1)
                        .saturating_sub(1)
                        .saturating_mul(dilations[i])
                        .saturating_add(1);
                    let total = (out
                        .saturating_sub(1)
                        .saturating_mul(stride)
                        .saturating_add(eff_k))
                    .saturating_sub(hw[i]);
                    let small = total / 2;
                    let large = total - small;
                    if matches!(self, Padding::SameUpper) {
                        begin[i] = small;
                        end[i] = large;
                    } else {
                        begin[i] = large;
                        end[i] = small;
                    }
                }
                [begin[0], begin[1], end[0], end[1]]
            }
        }
    }
}

/// Where a 2-D sliding window (a convolution or a pooling) lands on an input: the padding it resolves
/// to, `[top, left, bottom, right]`, and the output's `[height, width]`. [`window`] is the one
/// definition; the validator, the reference executor and every backend take their geometry from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub pads: [usize; 4],
    pub out: [usize; 2],
}

/// The geometry of a window with `kernel`, `strides` and `dilations` over an input of spatial size
/// `hw`, in floor mode (ONNX's default): `out = (padded - effective kernel) / stride + 1`. Fails
/// when a kernel, stride or dilation is zero, when the window is larger than the padded input, or
/// when a size overflows; the message says which.
pub fn window(
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    padding: &Padding,
) -> Result<Window, String> {
    if kernel.contains(&0) || strides.contains(&0) || dilations.contains(&0) {
        return Err(format!(
            "kernel {kernel:?}, strides {strides:?} and dilations {dilations:?} must be positive"
        ));
    }
    let pads = padding.resolve(hw, kernel, strides, dilations);
    let widest = pads.iter().copied().max().unwrap_or(0);
    crate::limits::PADDING.check(
        widest as u64,
        format_args!("the widest side of its padding {pads:?}"),
    )?;
    let mut out = [0; 2];
    for i in 0..2 {
        let axis = ["height", "width"][i];
        let eff = (kernel[i] - 1)
            .checked_mul(dilations[i])
            .and_then(|k| k.checked_add(1));
        let padded = hw[i]
            .checked_add(pads[i])
            .and_then(|n| n.checked_add(pads[i + 2]));
        let (Some(eff), Some(padded)) = (eff, padded) else {
            return Err(format!("the {axis} window or padding overflows"));
        };
        if padded < eff {
            let dilated = match dilations[i] {
                1 => String::new(),
                d => format!(" with dilation {d}"),
            };
            return Err(format!(
                "the {axis} window ({eff}{dilated}) is larger than the padded input ({padded})"
            ));
        }
        out[i] = (padded - eff) / strides[i] + 1;
    }
    Ok(Window { pads, out })
}

/// Attributes of a 2-D convolution (NCHW input, OIHW weights).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub padding: Padding,
    pub group: usize,
}

impl Conv {
    /// This convolution's geometry over an input of spatial size `hw` (see [`window`]).
    pub fn window(&self, hw: [usize; 2]) -> Result<Window, String> {
        window(hw, self.kernel, self.strides, self.dilations, &self.padding)
    }
}

/// Attributes of a 2-D average pool.
#[derive(Clone, Debug, PartialEq)]
pub struct AvgPool {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub padding: Padding,
    pub count_include_pad: bool,
    pub ceil_mode: bool,
}

impl AvgPool {
    /// This pooling's geometry over an input of spatial size `hw`: [`window`] with dilation 1,
    /// plus, in `ceil_mode`, the last partial window, dropped (as ONNX and PyTorch do) when it
    /// would start inside the end padding.
    pub fn window(&self, hw: [usize; 2]) -> Result<Window, String> {
        let mut w = window(hw, self.kernel, self.strides, [1, 1], &self.padding)?;
        if self.ceil_mode {
            #[allow(clippy::needless_range_loop)] // `i` indexes five arrays, pads twice
            for i in 0..2 {
                let span = hw[i] + w.pads[i] + w.pads[i + 2] - self.kernel[i];
                let mut n = span.div_ceil(self.strides[i]) + 1;
                let start = (n - 1).checked_mul(self.strides[i]);
                if n > 1 && start.is_none_or(|s| s >= hw[i] + w.pads[i]) {
                    n -= 1;
                }
                w.out[i] = n;
            }
        }
        Ok(w)
    }
}

/// Attributes of Gemm: `alpha * A' * B' + beta * C`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Element-wise binary ops with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// One step of a fused convolution's epilogue. Steps apply in order to each output value while it
/// is still in registers; every backend interprets the same list, and the reference executor
/// defines what it means.
#[derive(Clone, Debug, PartialEq)]
pub enum Epilogue {
    /// Adds the per-channel bias, input slot 2.
    Bias,
    /// Adds the residual, input slot 3, read as [`ResidualRead`] says.
    AddResidual(ResidualRead),
    /// `max(x, 0)`.
    Relu,
}

/// A fused convolution's epilogue in the one shape every backend implements: an optional bias,
/// which is part of the convolution's own sum and so only ever the first step, then ReLUs and at
/// most one residual add in order. [`Epilogue::split`] is the one place these rules live; the
/// validator applies it to every `FusedConv`, so a backend given a validated graph never sees it fail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpilogueParts<'a> {
    /// The first step adds the bias (input slot 2).
    pub bias: bool,
    /// The steps after the bias, in order.
    pub steps: &'a [Epilogue],
    /// How the one residual add, if any, reads input slot 3.
    pub residual: Option<ResidualRead>,
}

impl Epilogue {
    /// Splits an epilogue into its bias and the steps after it, or says which rule it breaks.
    pub fn split(epilogue: &[Epilogue]) -> Result<EpilogueParts<'_>, String> {
        let bias = epilogue.first() == Some(&Epilogue::Bias);
        let steps = &epilogue[bias as usize..];
        let mut residual = None;
        for step in steps {
            match step {
                Epilogue::Bias => return Err("the bias must be the first epilogue step".into()),
                Epilogue::AddResidual(read) if residual.is_none() => residual = Some(*read),
                Epilogue::AddResidual(_) => return Err("two residual adds in one epilogue".into()),
                Epilogue::Relu => {}
            }
        }
        Ok(EpilogueParts {
            bias,
            steps,
            residual,
        })
    }
}

/// How a fused convolution reads its residual input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResidualRead {
    /// The residual has the output's shape.
    Direct,
    /// CifarResNet's option-A shortcut, read in place: output channel `c` adds
    /// `residual[n, c - pad_before, h * stride, w * stride]` when that channel exists, else nothing
    /// (the zero padding).
    Subsampled { stride: usize, pad_before: usize },
}

impl ResidualRead {
    /// Whether a residual of per-image shape `[channels, height, width]` fits an output of
    /// `out`, read this way: the same shape when direct; for the option-A shortcut, its channels
    /// fit after `pad_before` and its subsampled height and width are the output's.
    pub fn fits(&self, residual: [usize; 3], out: [usize; 3]) -> bool {
        match *self {
            ResidualRead::Direct => residual == out,
            ResidualRead::Subsampled { stride, pad_before } => {
                stride > 0
                    && residual[0]
                        .checked_add(pad_before)
                        .is_some_and(|c| c <= out[0])
                    && residual[1].div_ceil(stride) == out[1]
                    && residual[2].div_ceil(stride) == out[2]
            }
        }
    }
}

/// Padding modes; only `constant` is implemented by the executors, the others are rejected at import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
}

/// An operation. The comment on each variant lists its inputs; `?` marks an optional one.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A graph input; `index` is its position in [`crate::Graph::inputs`]. No inputs.
    Input { index: usize, ty: crate::TensorType },
    /// A constant value (initializer or Constant node). No inputs.
    Constant(Tensor),
    /// `x`
    Identity,
    /// `x, w, bias?`
    Conv(Conv),
    /// Inference-mode batch normalization: `x, scale, bias, mean, var`.
    BatchNorm { epsilon: f32 },
    /// `x`
    Relu,
    /// `a, b`
    Binary(BinOp),
    /// `a, b, c?`
    Gemm(Gemm),
    /// `a, b`
    MatMul,
    /// `x`
    GlobalAveragePool,
    /// `x`
    AveragePool(AvgPool),
    /// `data, axes?` — no axes reduces all (unless `noop_with_empty_axes`).
    ReduceMean {
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// `x`
    Flatten { axis: i64 },
    /// `data, shape`
    Reshape { allowzero: bool },
    /// `data, pads, constant_value?, axes?`
    Pad { mode: PadMode },
    /// `data, starts, ends, axes?, steps?`
    Slice,
    /// `x` → its shape as i64, dims `start..end`.
    Shape { start: i64, end: Option<i64> },
    /// `data, indices`
    Gather { axis: i64 },
    /// `data, axes`
    Unsqueeze,
    /// `data, axes?`
    Squeeze,
    /// `x0, x1, …`
    Concat { axis: i64 },
    /// `shape` → a tensor of that shape filled with `value` (a one-element tensor).
    ConstantOfShape { value: Tensor },
    /// `x`
    Cast { to: DType },
    /// `x, like` → `x` cast to `like`'s element type.
    CastLike,
    /// `x`
    Transpose { perm: Option<Vec<usize>> },
    /// `start, limit, delta`
    Range,
    /// `x, shape`
    Expand,
    /// A convolution with its epilogue fused: `x, w, bias?, residual?` (resnetc's own op).
    FusedConv { conv: Conv, epilogue: Vec<Epilogue> },
    /// CifarResNet's option-A shortcut as one op (resnetc's own): `x[:, :, ::stride, ::stride]`
    /// zero-padded with `pad_before` channels in front and `pad_after` behind.
    Shortcut {
        stride: usize,
        pad_before: usize,
        pad_after: usize,
    },
}

impl Op {
    /// The ONNX `op_type` this op is imported from and exported to.
    pub fn onnx_name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "Input",
            Op::Constant(_) => "Constant",
            Op::Identity => "Identity",
            Op::Conv(_) => "Conv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Relu => "Relu",
            Op::Binary(BinOp::Add) => "Add",
            Op::Binary(BinOp::Sub) => "Sub",
            Op::Binary(BinOp::Mul) => "Mul",
            Op::Binary(BinOp::Div) => "Div",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::AveragePool(_) => "AveragePool",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Pad { .. } => "Pad",
            Op::Slice => "Slice",
            Op::Shape { .. } => "Shape",
            Op::Gather { .. } => "Gather",
            Op::Unsqueeze => "Unsqueeze",
            Op::Squeeze => "Squeeze",
            Op::Concat { .. } => "Concat",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Cast { .. } => "Cast",
            Op::CastLike => "CastLike",
            Op::Transpose { .. } => "Transpose",
            Op::Range => "Range",
            Op::Expand => "Expand",
            Op::FusedConv { .. } => "FusedConv",
            Op::Shortcut { .. } => "Shortcut",
        }
    }

    /// Whether this op belongs to resnetc's own domain rather than standard ONNX.
    pub fn is_resnetc_domain(&self) -> bool {
        matches!(self, Op::FusedConv { .. } | Op::Shortcut { .. })
    }

    /// How many input slots the op has: `(required, max)`. `max == usize::MAX` means variadic.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input { .. } | Op::Constant(_) => (0, 0),
            Op::Identity
            | Op::Relu
            | Op::GlobalAveragePool
            | Op::AveragePool(_)
            | Op::Flatten { .. }
            | Op::Shape { .. }
            | Op::Cast { .. }
            | Op::Transpose { .. }
            | Op::Shortcut { .. }
            | Op::ConstantOfShape { .. } => (1, 1),
            Op::FusedConv { .. } => (2, 4),
            Op::Conv(_) => (2, 3),
            Op::BatchNorm { .. } => (5, 5),
            Op::Binary(_)
            | Op::MatMul
            | Op::Reshape { .. }
            | Op::Gather { .. }
            | Op::Unsqueeze
            | Op::CastLike
            | Op::Expand => (2, 2),
            Op::Gemm(_) => (2, 3),
            Op::ReduceMean { .. } | Op::Squeeze => (1, 2),
            Op::Pad { .. } => (2, 4),
            Op::Slice => (3, 5),
            Op::Concat { .. } => (1, usize::MAX),
            Op::Range => (3, 3),
        }
    }

    /// Number of outputs. Every op in the set has exactly one.
    /// Why `given` inputs (trailing absent optional ones not counted) do not fit this op, or
    /// `Ok` when they do: the importer's check before it connects a node, and the validator's.
    pub fn check_arity(&self, given: usize) -> Result<(), String> {
        let (min, max) = self.arity();
        if (min..=max).contains(&given) {
            return Ok(());
        }
        Err(match (min, max) {
            (min, max) if min == max => format!("has {given} inputs; it takes {min}"),
            (min, usize::MAX) => format!("has {given} inputs; it takes at least {min}"),
            (min, max) => format!("has {given} inputs; it takes {min} to {max}"),
        })
    }

    pub fn num_outputs(&self) -> usize {
        1
    }

    /// Whether the op only moves shape information around (the "shape subgraph" PyTorch emits).
    pub fn is_shape_arithmetic(&self) -> bool {
        matches!(
            self,
            Op::Shape { .. }
                | Op::Gather { .. }
                | Op::Unsqueeze
                | Op::Squeeze
                | Op::Concat { .. }
                | Op::ConstantOfShape { .. }
                | Op::Cast { .. }
                | Op::CastLike
                | Op::Range
                | Op::Transpose { .. }
                | Op::Expand
        )
    }
}

fn fmt_pads(p: &Padding) -> String {
    match p {
        Padding::Explicit([t, l, b, r]) => format!("{t},{l},{b},{r}"),
        Padding::SameUpper => "same_upper".into(),
        Padding::SameLower => "same_lower".into(),
    }
}

/// Writes a convolution's geometry, shared by `Conv` and `FusedConv`.
fn fmt_conv(f: &mut fmt::Formatter<'_>, name: &str, c: &Conv) -> fmt::Result {
    write!(
        f,
        "{name} k={}x{} s={}x{} p={}",
        c.kernel[0],
        c.kernel[1],
        c.strides[0],
        c.strides[1],
        fmt_pads(&c.padding)
    )?;
    if c.dilations != [1, 1] {
        write!(f, " d={}x{}", c.dilations[0], c.dilations[1])?;
    }
    if c.group != 1 {
        write!(f, " g={}", c.group)?;
    }
    Ok(())
}

/// Writes the op with its attributes, as the dump shows it (`Conv k=3x3 s=1x1 p=1,1,1,1`).
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.onnx_name();
        match self {
            Op::Input { index, ty } => write!(f, "Input #{index} {ty}"),
            Op::Constant(t) => write!(f, "Constant {}", crate::dump::tensor_summary(t)),
            Op::Conv(c) => fmt_conv(f, name, c),
            Op::BatchNorm { epsilon } => write!(f, "{name} eps={epsilon:e}"),
            Op::FusedConv { conv: c, epilogue } => {
                fmt_conv(f, name, c)?;
                let steps: Vec<String> = epilogue
                    .iter()
                    .map(|e| match e {
                        Epilogue::Bias => "bias".to_string(),
                        Epilogue::AddResidual(ResidualRead::Direct) => "add".to_string(),
                        Epilogue::AddResidual(ResidualRead::Subsampled { stride, pad_before }) => {
                            format!("add(subsample={stride},pad={pad_before})")
                        }
                        Epilogue::Relu => "relu".to_string(),
                    })
                    .collect();
                write!(f, " [{}]", steps.join(","))
            }
            Op::Shortcut {
                stride,
                pad_before,
                pad_after,
            } => write!(f, "{name} stride={stride} pad={pad_before},{pad_after}"),
            Op::Gemm(g) => write!(
                f,
                "{name} alpha={} beta={} ta={} tb={}",
                g.alpha, g.beta, g.trans_a as u8, g.trans_b as u8
            ),
            Op::AveragePool(p) => write!(
                f,
                "{name} k={}x{} s={}x{} p={} include_pad={} ceil={}",
                p.kernel[0],
                p.kernel[1],
                p.strides[0],
                p.strides[1],
                fmt_pads(&p.padding),
                p.count_include_pad as u8,
                p.ceil_mode as u8
            ),
            Op::ReduceMean {
                keepdims,
                noop_with_empty_axes,
            } => {
                write!(
                    f,
                    "{name} keepdims={} noop_empty={}",
                    *keepdims as u8, *noop_with_empty_axes as u8
                )
            }
            Op::Flatten { axis } => write!(f, "{name} axis={axis}"),
            Op::Reshape { allowzero } => write!(f, "{name} allowzero={}", *allowzero as u8),
            Op::Pad {
                mode: PadMode::Constant,
            } => write!(f, "{name} constant"),
            Op::Shape { start, end } => match end {
                Some(e) => write!(f, "{name} {start}..{e}"),
                None => write!(f, "{name} {start}.."),
            },
            Op::Gather { axis } => write!(f, "{name} axis={axis}"),
            Op::Concat { axis } => write!(f, "{name} axis={axis}"),
            Op::ConstantOfShape { value } => {
                write!(f, "{name} {}", crate::dump::tensor_summary(value))
            }
            Op::Cast { to } => write!(f, "{name} to={to}"),
            Op::Transpose { perm: Some(p) } => write!(f, "{name} perm={p:?}"),
            Op::Identity
            | Op::Relu
            | Op::Binary(_)
            | Op::MatMul
            | Op::GlobalAveragePool
            | Op::Slice
            | Op::Unsqueeze
            | Op::Squeeze
            | Op::CastLike
            | Op::Transpose { perm: None }
            | Op::Range
            | Op::Expand => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_geometry() {
        // (input, kernel, strides, dilations, padding) → (pads, output) or an error's fragment.
        let cases: &[(
            [usize; 2],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            Padding,
            Result<([usize; 4], [usize; 2]), &str>,
        )] = &[
            (
                [32, 32],
                [3, 3],
                [1, 1],
                [1, 1],
                Padding::Explicit([1; 4]),
                Ok(([1; 4], [32, 32])),
            ),
            (
                [32, 32],
                [3, 3],
                [2, 2],
                [1, 1],
                Padding::Explicit([1; 4]),
                Ok(([1; 4], [16, 16])),
            ),
            (
                [32, 32],
                [1, 1],
                [2, 2],
                [1, 1],
                Padding::Explicit([0; 4]),
                Ok(([0; 4], [16, 16])),
            ),
            (
                [7, 5],
                [3, 3],
                [2, 2],
                [2, 1],
                Padding::Explicit([0; 4]),
                Ok(([0; 4], [2, 2])),
            ),
            (
                [5, 5],
                [2, 2],
                [2, 2],
                [1, 1],
                Padding::SameUpper,
                Ok(([0, 0, 1, 1], [3, 3])),
            ),
            (
                [5, 5],
                [2, 2],
                [2, 2],
                [1, 1],
                Padding::SameLower,
                Ok(([1, 1, 0, 0], [3, 3])),
            ),
            (
                [2, 2],
                [5, 5],
                [1, 1],
                [1, 1],
                Padding::Explicit([0; 4]),
                Err("larger than the padded input"),
            ),
            (
                [8, 8],
                [3, 3],
                [0, 1],
                [1, 1],
                Padding::Explicit([0; 4]),
                Err("must be positive"),
            ),
            (
                [8, 8],
                [0, 3],
                [1, 1],
                [1, 1],
                Padding::Explicit([0; 4]),
                Err("must be positive"),
            ),
            (
                [8, 8],
                [3, 3],
                [1, 1],
                [1, 1],
                Padding::Explicit([usize::MAX, 0, 1, 0]),
                Err("limit 'padding'"),
            ),
            (
                [32, 32],
                [3, 3],
                [1, 1],
                [1, 1],
                Padding::Explicit([1, 65536, 1, 1]),
                Err("limit 'padding'"),
            ),
            (
                [8, 8],
                [3, 3],
                [1, 1],
                [usize::MAX, 1],
                Padding::Explicit([0; 4]),
                Err("overflows"),
            ),
        ];
        for (hw, k, s, d, p, want) in cases {
            let got = window(*hw, *k, *s, *d, p);
            match (want, &got) {
                (Ok((pads, out)), Ok(w)) => assert_eq!(
                    (w.pads, w.out),
                    (*pads, *out),
                    "{hw:?} {k:?} {s:?} {d:?} {p:?}"
                ),
                (Err(frag), Err(m)) => assert!(m.contains(frag), "{m}"),
                _ => panic!("{hw:?} {k:?} {s:?} {d:?} {p:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn pool_ceil_mode_drops_a_window_starting_in_the_end_padding() {
        let pool = |ceil_mode, pads| AvgPool {
            kernel: [2, 2],
            strides: [2, 2],
            padding: Padding::Explicit(pads),
            count_include_pad: false,
            ceil_mode,
        };
        assert_eq!(pool(false, [0; 4]).window([5, 5]).unwrap().out, [2, 2]);
        assert_eq!(pool(true, [0; 4]).window([5, 5]).unwrap().out, [3, 3]);
        // 5 rows: the ceil window starts at row 4, inside the input: kept (above). 4 rows and one
        // end pad: the ceil window would start at row 4, in the end padding: dropped.
        assert_eq!(pool(true, [0, 0, 1, 1]).window([4, 4]).unwrap().out, [2, 2]);
        assert_eq!(pool(true, [1, 1, 1, 1]).window([4, 4]).unwrap().out, [3, 3]);
    }

    #[test]
    fn epilogue_rules() {
        use Epilogue::*;
        let sub = AddResidual(ResidualRead::Subsampled {
            stride: 2,
            pad_before: 8,
        });
        let ok: &[(&[Epilogue], bool, usize, Option<ResidualRead>)] = &[
            (&[], false, 0, None),
            (&[Bias], true, 0, None),
            (&[Bias, Relu], true, 1, None),
            (
                &[Bias, AddResidual(ResidualRead::Direct), Relu],
                true,
                2,
                Some(ResidualRead::Direct),
            ),
            (
                &[Relu, sub.clone()],
                false,
                2,
                Some(ResidualRead::Subsampled {
                    stride: 2,
                    pad_before: 8,
                }),
            ),
        ];
        for (e, bias, steps, residual) in ok {
            let p = Epilogue::split(e).unwrap();
            assert_eq!(
                (p.bias, p.steps.len(), p.residual),
                (*bias, *steps, *residual),
                "{e:?}"
            );
        }
        for (e, frag) in [
            (&[Relu, Bias][..], "bias must be the first"),
            (&[Bias, Bias][..], "bias must be the first"),
            (
                &[AddResidual(ResidualRead::Direct), sub][..],
                "two residual adds",
            ),
        ] {
            assert!(Epilogue::split(e).unwrap_err().contains(frag), "{e:?}");
        }
    }

    #[test]
    fn residual_fits() {
        let d = ResidualRead::Direct;
        let s = |stride, pad_before| ResidualRead::Subsampled { stride, pad_before };
        for (read, r, out, want) in [
            (d, [16, 32, 32], [16, 32, 32], true),
            (d, [16, 32, 32], [32, 16, 16], false),
            (s(2, 8), [16, 32, 32], [32, 16, 16], true),
            (s(2, 8), [16, 31, 31], [32, 16, 16], true),
            (s(2, 17), [16, 32, 32], [32, 16, 16], false),
            (s(2, usize::MAX), [16, 32, 32], [32, 16, 16], false),
            (s(0, 8), [16, 32, 32], [32, 16, 16], false),
            (s(2, 8), [16, 30, 32], [32, 16, 16], false),
        ] {
            assert_eq!(read.fits(r, out), want, "{read:?} {r:?} {out:?}");
        }
    }
}
