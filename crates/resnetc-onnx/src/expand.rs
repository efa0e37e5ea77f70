//! Writing resnetc's own ops as standard ONNX: a `FusedConv` becomes Conv, then Add (through
//! Slice + Pad for an option-A residual), then Relu, in its epilogue's order; a `Shortcut` becomes
//! Slice + Pad. The result computes the same function with the same float operations in the same
//! order, so onnxruntime and tract run it and agree.

use resnetc_ir::{Epilogue, Node, Op, ResidualRead, Tensor, TensorType};

use crate::error::ExportError;
use crate::export::{conv_attrs, string, Fresh};
use crate::proto::{GraphProto, NodeProto};
use crate::tensor::tensor_to_proto;

fn push(
    g: &mut GraphProto,
    name: String,
    op: &str,
    inputs: Vec<String>,
    output: String,
    attribute: Vec<crate::proto::AttributeProto>,
) {
    g.node.push(NodeProto {
        input: inputs,
        output: vec![output],
        name: Some(name),
        op_type: Some(op.into()),
        attribute,
        ..Default::default()
    });
}

fn constant(g: &mut GraphProto, fresh: &mut Fresh, base: &str, t: &Tensor) -> String {
    let name = fresh.name(base);
    g.initializer.push(tensor_to_proto(&name, t));
    name
}

/// Slice `x[:, :, ::s, ::s]` then zero-pad channels: the option-A shortcut in standard ops.
fn shortcut(
    g: &mut GraphProto,
    fresh: &mut Fresh,
    base: &str,
    x: String,
    stride: usize,
    pads: (usize, usize),
    output: String,
) {
    let starts = constant(
        g,
        fresh,
        &format!("{base}_starts"),
        &Tensor::i64_vec(vec![0, 0]),
    );
    let ends = constant(
        g,
        fresh,
        &format!("{base}_ends"),
        &Tensor::i64_vec(vec![i64::MAX, i64::MAX]),
    );
    let axes = constant(
        g,
        fresh,
        &format!("{base}_axes"),
        &Tensor::i64_vec(vec![2, 3]),
    );
    let steps = constant(
        g,
        fresh,
        &format!("{base}_steps"),
        &Tensor::i64_vec(vec![stride as i64; 2]),
    );
    let sliced = fresh.name(&format!("{base}_subsampled"));
    push(
        g,
        format!("{base}/Slice"),
        "Slice",
        vec![x, starts, ends, axes, steps],
        sliced.clone(),
        vec![],
    );
    let (b, a) = (pads.0 as i64, pads.1 as i64);
    let p = constant(
        g,
        fresh,
        &format!("{base}_pads"),
        &Tensor::i64_vec(vec![0, b, 0, 0, 0, a, 0, 0]),
    );
    push(
        g,
        format!("{base}/Pad"),
        "Pad",
        vec![sliced, p],
        output,
        vec![string("mode", "constant")],
    );
}

pub(crate) fn expand(
    node: &Node,
    inputs: &[Option<String>],
    out_ty: Option<&TensorType>,
    residual_ty: Option<&TensorType>,
    opset: u64,
    fresh: &mut Fresh,
    g: &mut GraphProto,
) -> Result<(), ExportError> {
    let err = |m: String| ExportError::Node {
        node: node.label().to_string(),
        op: node.op.onnx_name(),
        message: m,
    };
    if opset < 11 {
        return Err(err(format!("expanding into Slice and Pad inputs needs opset 11, the graph is opset {opset}; export with --keep-fused")));
    }
    let input = |slot: usize| {
        inputs
            .get(slot)
            .cloned()
            .flatten()
            .ok_or_else(|| err(format!("input {slot} is absent")))
    };
    let out = node.outputs[0].clone();
    let base = if node.name.is_empty() {
        out.clone()
    } else {
        node.name.clone()
    };
    let channels = |t: Option<&TensorType>| t.and_then(|t| t.shape.get(1)).and_then(|d| d.fixed());
    match &node.op {
        Op::Shortcut {
            stride,
            pad_before,
            pad_after,
        } => {
            shortcut(
                g,
                fresh,
                &base,
                input(0)?,
                *stride,
                (*pad_before, *pad_after),
                out,
            );
        }
        Op::FusedConv { conv: c, epilogue } => {
            let parts = Epilogue::split(epilogue).map_err(err)?;
            let (with_bias, steps) = (parts.bias, parts.steps);
            let mut current = if steps.is_empty() {
                out.clone()
            } else {
                fresh.name(&format!("{out}_conv"))
            };
            let mut conv_inputs = vec![input(0)?, input(1)?];
            if with_bias {
                conv_inputs.push(input(2)?);
            }
            push(
                g,
                base.clone(),
                "Conv",
                conv_inputs,
                current.clone(),
                conv_attrs(c),
            );
            for (k, step) in steps.iter().enumerate() {
                let next = if k + 1 == steps.len() {
                    out.clone()
                } else {
                    fresh.name(&format!("{out}_step{k}"))
                };
                match step {
                    Epilogue::Bias => unreachable!("Epilogue::split allows the bias first only"),
                    Epilogue::Relu => push(
                        g,
                        format!("{base}/Relu"),
                        "Relu",
                        vec![current],
                        next.clone(),
                        vec![],
                    ),
                    Epilogue::AddResidual(read) => {
                        let residual = match read {
                            ResidualRead::Direct => input(3)?,
                            ResidualRead::Subsampled { stride, pad_before } => {
                                let (Some(cout), Some(cres)) =
                                    (channels(out_ty), channels(residual_ty))
                                else {
                                    return Err(err("the channel counts are not known".into()));
                                };
                                let after =
                                    cout.checked_sub(cres + pad_before).ok_or_else(|| {
                                        err("the residual has too many channels".into())
                                    })?;
                                let padded = fresh.name(&format!("{out}_shortcut"));
                                shortcut(
                                    g,
                                    fresh,
                                    &format!("{base}/shortcut"),
                                    input(3)?,
                                    *stride,
                                    (*pad_before, after),
                                    padded.clone(),
                                );
                                padded
                            }
                        };
                        push(
                            g,
                            format!("{base}/Add"),
                            "Add",
                            vec![current, residual],
                            next.clone(),
                            vec![],
                        );
                    }
                }
                current = next;
            }
        }
        other => {
            return Err(err(format!(
                "{} is a standard op, nothing to expand",
                other.onnx_name()
            )))
        }
    }
    Ok(())
}
