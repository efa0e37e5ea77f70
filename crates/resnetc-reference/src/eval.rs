//! [`eval_op`]: one op on concrete inputs, dispatched to the module that implements it.

use resnetc_ir::{Op, Tensor};

use crate::error::EvalError;
use crate::{arith, conv, fused, layout, pool};

/// Evaluates one op on concrete inputs (one entry per input slot, `None` for an absent optional
/// input). Trailing `None`s are ignored; `Op::Constant` evaluates to its tensor and `Op::Input`,
/// which has nothing to compute from, to [`EvalError::NotEvaluable`].
pub fn eval_op(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Tensor, EvalError> {
    let name = op.onnx_name();
    let (_, max) = op.arity();
    let got = inputs
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |p| p + 1);
    if got > max {
        return Err(EvalError::TooManyInputs { op: name, got, max });
    }
    let args = Args {
        op: name,
        names: slot_names(op),
        inputs,
    };
    match op {
        Op::Input { .. } => Err(EvalError::NotEvaluable { op: name }),
        Op::Constant(t) => Ok(t.clone()),
        Op::Identity => Ok(args.get(0)?.clone()),
        Op::Conv(c) => conv::conv(c, args.get(0)?, args.get(1)?, args.opt(2)),
        Op::BatchNorm { epsilon } => arith::batch_norm(
            *epsilon,
            args.get(0)?,
            [args.get(1)?, args.get(2)?, args.get(3)?, args.get(4)?],
        ),
        Op::Relu => arith::relu(args.get(0)?),
        Op::Binary(b) => arith::binary(*b, args.get(0)?, args.get(1)?),
        Op::Gemm(g) => arith::gemm(g, args.get(0)?, args.get(1)?, args.opt(2)),
        Op::MatMul => arith::matmul(args.get(0)?, args.get(1)?),
        Op::GlobalAveragePool => pool::global_average_pool(args.get(0)?),
        Op::AveragePool(p) => pool::average_pool(p, args.get(0)?),
        Op::ReduceMean {
            keepdims,
            noop_with_empty_axes,
        } => pool::reduce_mean(*keepdims, *noop_with_empty_axes, args.get(0)?, args.opt(1)),
        Op::Flatten { axis } => layout::flatten(*axis, args.get(0)?),
        Op::Reshape { allowzero } => layout::reshape(*allowzero, args.get(0)?, args.get(1)?),
        Op::Pad {
            mode: resnetc_ir::PadMode::Constant,
        } => layout::pad(args.get(0)?, args.get(1)?, args.opt(2), args.opt(3)),
        Op::Slice => layout::slice(
            args.get(0)?,
            args.get(1)?,
            args.get(2)?,
            args.opt(3),
            args.opt(4),
        ),
        Op::Shape { start, end } => Ok(layout::shape(*start, *end, args.get(0)?)),
        Op::Gather { axis } => layout::gather(*axis, args.get(0)?, args.get(1)?),
        Op::Unsqueeze => layout::unsqueeze(args.get(0)?, args.get(1)?),
        Op::Squeeze => layout::squeeze(args.get(0)?, args.opt(1)),
        Op::Concat { axis } => {
            let parts = (0..got)
                .map(|slot| args.get(slot))
                .collect::<Result<Vec<_>, _>>()?;
            layout::concat(*axis, &parts)
        }
        Op::ConstantOfShape { value } => layout::constant_of_shape(value, args.get(0)?),
        Op::Cast { to } => Ok(layout::cast(args.get(0)?, *to)),
        Op::CastLike => Ok(layout::cast(args.get(0)?, args.get(1)?.dtype())),
        Op::Transpose { perm } => layout::transpose(perm.as_deref(), args.get(0)?),
        Op::Range => layout::range(args.get(0)?, args.get(1)?, args.get(2)?),
        Op::Expand => layout::expand(args.get(0)?, args.get(1)?),
        Op::FusedConv { conv, epilogue } => fused::fused_conv(
            conv,
            epilogue,
            args.get(0)?,
            args.get(1)?,
            args.opt(2),
            args.opt(3),
        ),
        Op::Shortcut {
            stride,
            pad_before,
            pad_after,
        } => fused::shortcut_op(args.get(0)?, *stride, *pad_before, *pad_after),
    }
}

/// The input slots of one call, with the names the op's documentation gives them.
struct Args<'a> {
    op: &'static str,
    names: &'static [&'static str],
    inputs: &'a [Option<&'a Tensor>],
}

impl<'a> Args<'a> {
    /// A required input.
    fn get(&self, slot: usize) -> Result<&'a Tensor, EvalError> {
        self.opt(slot).ok_or(EvalError::MissingInput {
            op: self.op,
            slot,
            name: self.names.get(slot).copied().unwrap_or("input"),
        })
    }

    /// An optional input.
    fn opt(&self, slot: usize) -> Option<&'a Tensor> {
        self.inputs.get(slot).copied().flatten()
    }
}

/// Slot names, as in the comments on [`Op`]'s variants.
fn slot_names(op: &Op) -> &'static [&'static str] {
    match op {
        Op::Input { .. } | Op::Constant(_) => &[],
        Op::Identity
        | Op::Relu
        | Op::GlobalAveragePool
        | Op::AveragePool(_)
        | Op::Flatten { .. }
        | Op::Shape { .. }
        | Op::Cast { .. }
        | Op::Transpose { .. } => &["x"],
        Op::Conv(_) => &["x", "w", "bias"],
        Op::FusedConv { .. } => &["x", "w", "bias", "residual"],
        Op::Shortcut { .. } => &["x"],
        Op::BatchNorm { .. } => &["x", "scale", "bias", "mean", "var"],
        Op::Binary(_) | Op::Gemm(_) | Op::MatMul => &["a", "b", "c"],
        Op::ReduceMean { .. } => &["data", "axes"],
        Op::Reshape { .. } => &["data", "shape"],
        Op::Pad { .. } => &["data", "pads", "constant_value", "axes"],
        Op::Slice => &["data", "starts", "ends", "axes", "steps"],
        Op::Gather { .. } => &["data", "indices"],
        Op::Unsqueeze | Op::Squeeze => &["data", "axes"],
        Op::Concat { .. } => &[],
        Op::ConstantOfShape { .. } => &["shape"],
        Op::CastLike => &["x", "like"],
        Op::Range => &["start", "limit", "delta"],
        Op::Expand => &["x", "shape"],
    }
}
