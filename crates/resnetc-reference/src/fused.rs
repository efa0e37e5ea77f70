//! resnetc's own ops: the fused convolution and the option-A shortcut.
//!
//! Their meaning is defined by composition with the standard ops, in the same order of float
//! operations, so an optimized graph evaluates bit for bit like the graph it came from: the
//! convolution (bias added last, as [`crate::conv`] does), then each epilogue step in order.

use ndarray::{ArrayD, IxDyn};
use resnetc_ir::{Conv, Epilogue, ResidualRead, Tensor};

use crate::error::EvalError;

const OP: &str = "FusedConv";

fn f32_of<'a>(
    op: &'static str,
    what: &'static str,
    t: &'a Tensor,
) -> Result<&'a ndarray::ArcArray<f32, IxDyn>, EvalError> {
    t.as_f32().ok_or_else(|| EvalError::DType {
        op,
        what,
        got: t.dtype(),
        expected: "f32".to_string(),
    })
}

pub(crate) fn fused_conv(
    c: &Conv,
    epilogue: &[Epilogue],
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    let invalid = |m: String| EvalError::Invalid { op: OP, message: m };
    let parts = Epilogue::split(epilogue).map_err(invalid)?;
    // The bias is part of the convolution's own sum (added last), exactly as an ONNX Conv with a bias.
    let y = crate::conv::conv(c, x, w, if parts.bias { bias } else { None })?;
    let mut y: ArrayD<f32> = f32_of(OP, "output", &y)?.to_owned();
    for step in parts.steps {
        match step {
            Epilogue::Bias => unreachable!("Epilogue::split allows the bias first only"),
            // `x < 0` rather than `max(x, 0)`, so NaN stays NaN as in PyTorch (and the `Relu` op).
            Epilogue::Relu => y.mapv_inplace(|v| if v < 0.0 { 0.0 } else { v }),
            Epilogue::AddResidual(read) => {
                let r = residual.ok_or_else(|| {
                    invalid("the epilogue adds a residual but input 3 is absent".into())
                })?;
                let r = f32_of(OP, "residual", r)?;
                let per_image = |s: &[usize]| match *s {
                    [_, c, h, w] => Some([c, h, w]),
                    _ => None,
                };
                let fits = r.shape().first() == y.shape().first()
                    && match (per_image(r.shape()), per_image(y.shape())) {
                        (Some(rs), Some(ys)) => read.fits(rs, ys),
                        _ => false,
                    };
                if !fits {
                    return Err(invalid(format!(
                        "residual {:?} does not fit the output {:?} read as {read:?}",
                        r.shape(),
                        y.shape()
                    )));
                }
                match *read {
                    ResidualRead::Direct => y.zip_mut_with(r, |a, &b| *a += b),
                    ResidualRead::Subsampled { stride, pad_before } => {
                        let s = shortcut(r, stride, pad_before, y.shape()[1])?;
                        y.zip_mut_with(&s, |a, &b| *a += b);
                    }
                }
            }
        }
    }
    Ok(Tensor::f32(y))
}

/// The option-A shortcut with `out_channels` channels in all: `x[:, :, ::stride, ::stride]` placed at
/// channel offset `pad_before`, zeros elsewhere.
fn shortcut(
    x: &ndarray::ArcArray<f32, IxDyn>,
    stride: usize,
    pad_before: usize,
    out_channels: usize,
) -> Result<ArrayD<f32>, EvalError> {
    let invalid = |m: String| EvalError::Invalid {
        op: "Shortcut",
        message: m,
    };
    if x.ndim() != 4 || stride == 0 {
        return Err(invalid(format!(
            "expects an NCHW input and a positive stride, got {:?} and {stride}",
            x.shape()
        )));
    }
    let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    if pad_before + c > out_channels {
        return Err(invalid(format!(
            "{c} channels at offset {pad_before} do not fit in {out_channels}"
        )));
    }
    let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
    let mut out = ArrayD::<f32>::zeros(IxDyn(&[n, out_channels, oh, ow]));
    for b in 0..n {
        for ch in 0..c {
            for i in 0..oh {
                for j in 0..ow {
                    out[[b, pad_before + ch, i, j]] = x[[b, ch, i * stride, j * stride]];
                }
            }
        }
    }
    Ok(out)
}

pub(crate) fn shortcut_op(
    x: &Tensor,
    stride: usize,
    pad_before: usize,
    pad_after: usize,
) -> Result<Tensor, EvalError> {
    let a = f32_of("Shortcut", "input", x)?;
    let channels = a.shape().get(1).copied().unwrap_or(0) + pad_before + pad_after;
    Ok(Tensor::f32(shortcut(a, stride, pad_before, channels)?))
}
