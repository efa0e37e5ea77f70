//! IR → ONNX.
//!
//! Writes standard-domain ONNX at the graph's own opset, choosing for each op the form that opset
//! expects (Unsqueeze/Squeeze axes as an attribute before 13, ReduceMean axes before 18), so that
//! import → export → import gives the same IR. Constants become initializers, stored as `raw_data`.

use std::path::Path;

use prost::Message;
use resnetc_ir::{Dim, Graph, GraphInfo, Op, PadMode, Padding, Tensor, TensorType, ValueRef};

use crate::error::ExportError;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::tensor::{dtype_to_onnx, tensor_to_proto};

/// The opset written when the graph does not name one (built by hand).
pub const DEFAULT_EXPORT_OPSET: u64 = 17;

/// The domain of resnetc's own ops (`FusedConv`, `Shortcut`) and its version.
pub const RESNETC_DOMAIN: &str = "ai.resnetc";
pub const RESNETC_DOMAIN_VERSION: i64 = 1;

/// How to write resnetc's own ops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Write `FusedConv` and `Shortcut` as ops of the `ai.resnetc` domain (which only resnetc reads)
    /// instead of expanding them into standard ONNX ops.
    pub keep_fused: bool,
}

/// Encodes `graph` (validated as `info`) as a standard ONNX model.
pub fn export(graph: &Graph, info: &GraphInfo) -> Result<ModelProto, ExportError> {
    export_with(graph, info, ExportOptions::default())
}

/// Encodes `graph` (validated as `info`) as an ONNX model.
pub fn export_with(
    graph: &Graph,
    info: &GraphInfo,
    options: ExportOptions,
) -> Result<ModelProto, ExportError> {
    let opset = if graph.opset == 0 {
        DEFAULT_EXPORT_OPSET
    } else {
        graph.opset.max(crate::error::MIN_OPSET)
    };
    let mut fresh = Fresh::new(graph);
    let mut uses_domain = false;
    let mut g = GraphProto {
        name: Some(if graph.name.is_empty() {
            "resnetc".into()
        } else {
            graph.name.clone()
        }),
        ..Default::default()
    };
    let value_name = |v: ValueRef| graph.node(v.node).outputs[v.output].clone();
    let as_attribute = attribute_operands(graph, opset);
    for &id in &info.order {
        let node = graph.node(id);
        let out = node.outputs[0].clone();
        match &node.op {
            Op::Input { ty, .. } => {
                let _ = ty;
            }
            Op::Constant(t) => {
                // A constant read only as an attribute (axes before opset 13/18) is written there alone.
                if !as_attribute.contains(&id) {
                    g.initializer.push(tensor_to_proto(&out, t));
                }
            }
            op if op.is_resnetc_domain() && !options.keep_fused => {
                let inputs: Vec<Option<String>> = graph
                    .inputs(id)
                    .into_iter()
                    .map(|v| v.map(value_name))
                    .collect();
                let out_ty = info.ty(ValueRef::new(id, 0));
                let res_ty = graph
                    .input(id, 3)
                    .or(graph.input(id, 0))
                    .and_then(|v| info.ty(v));
                crate::expand::expand(node, &inputs, out_ty, res_ty, opset, &mut fresh, &mut g)?;
            }
            op => {
                let err = |m: String| ExportError::Node {
                    node: node.label().to_string(),
                    op: op.onnx_name(),
                    message: m,
                };
                let mut inputs: Vec<String> = graph
                    .inputs(id)
                    .into_iter()
                    .map(|v| v.map_or_else(String::new, value_name))
                    .collect();
                let mut attrs = Vec::new();
                // Older opsets take some operands as attributes: they must then be constants.
                let const_input = |slot: usize| -> Result<Vec<i64>, ExportError> {
                    graph
                        .input(id, slot)
                        .and_then(|v| match graph.op(v.node) {
                            Op::Constant(t) => t.as_i64s(),
                            _ => None,
                        })
                        .ok_or_else(|| {
                            err(format!(
                                "input {slot} must be a constant to be written at opset {opset}"
                            ))
                        })
                };
                match op {
                    Op::Unsqueeze | Op::Squeeze if opset < 13 && inputs.len() > 1 => {
                        attrs.push(ints("axes", const_input(1)?));
                        inputs.truncate(1);
                    }
                    Op::ReduceMean { .. } if opset < 18 => {
                        if inputs.len() > 1 && !inputs[1].is_empty() {
                            attrs.push(ints("axes", const_input(1)?));
                        }
                        inputs.truncate(1);
                    }
                    Op::Pad { .. } if opset < 18 && inputs.len() > 3 && !inputs[3].is_empty() => {
                        return Err(err(format!(
                            "Pad with an axes input needs opset 18, the graph is opset {opset}"
                        )));
                    }
                    _ => {}
                }
                while inputs.last().is_some_and(String::is_empty) {
                    inputs.pop();
                }
                attrs.extend(attributes(op, opset).map_err(err)?);
                let domain = if op.is_resnetc_domain() {
                    uses_domain = true;
                    Some(RESNETC_DOMAIN.to_string())
                } else {
                    None
                };
                g.node.push(NodeProto {
                    input: inputs,
                    output: vec![out],
                    name: Some(node.name.clone()),
                    op_type: Some(op.onnx_name().to_string()),
                    domain,
                    attribute: attrs,
                    ..Default::default()
                });
            }
        }
    }
    for &id in &graph.inputs {
        let node = graph.node(id);
        if let Op::Input { ty, .. } = &node.op {
            g.input.push(value_info(&node.outputs[0], ty));
        }
    }
    for o in &graph.outputs {
        let name = value_name(o.value);
        if name != o.name {
            g.node.push(NodeProto {
                input: vec![name],
                output: vec![o.name.clone()],
                name: Some(format!("{}_identity", o.name)),
                op_type: Some("Identity".into()),
                ..Default::default()
            });
        }
        let ty = info.ty(o.value).cloned();
        g.output.push(match ty {
            Some(ty) => value_info(&o.name, &ty),
            None => ValueInfoProto {
                name: Some(o.name.clone()),
                ..Default::default()
            },
        });
    }
    let mut opset_import = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(opset as i64),
    }];
    if uses_domain {
        opset_import.push(OperatorSetIdProto {
            domain: Some(RESNETC_DOMAIN.into()),
            version: Some(RESNETC_DOMAIN_VERSION),
        });
    }
    Ok(ModelProto {
        ir_version: Some(if opset >= 21 { 10 } else { 8 }),
        opset_import,
        producer_name: Some("resnetc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(g),
        ..Default::default()
    })
}

/// Constants whose every reader takes them as an attribute at `opset`.
fn attribute_operands(graph: &Graph, opset: u64) -> std::collections::HashSet<resnetc_ir::NodeId> {
    let takes_attribute = |op: &Op, slot: usize| match op {
        Op::Unsqueeze | Op::Squeeze => opset < 13 && slot == 1,
        Op::ReduceMean { .. } => opset < 18 && slot == 1,
        _ => false,
    };
    graph
        .node_ids()
        .filter(|&id| matches!(graph.op(id), Op::Constant(_)))
        .filter(|&id| {
            let users = graph.users(ValueRef::new(id, 0));
            !users.is_empty()
                && !graph.is_graph_output(ValueRef::new(id, 0))
                && users
                    .iter()
                    .all(|&(u, slot)| takes_attribute(graph.op(u), slot))
        })
        .collect()
}

/// Fresh value names that collide with none in the graph.
pub(crate) struct Fresh {
    taken: std::collections::HashSet<String>,
}

impl Fresh {
    fn new(graph: &Graph) -> Fresh {
        let mut taken = std::collections::HashSet::new();
        for id in graph.node_ids() {
            taken.extend(graph.node(id).outputs.iter().cloned());
        }
        for o in &graph.outputs {
            taken.insert(o.name.clone());
        }
        Fresh { taken }
    }

    pub(crate) fn name(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 0;
        while !self.taken.insert(name.clone()) {
            k += 1;
            name = format!("{base}_{k}");
        }
        name
    }
}

/// Encodes and writes `graph` to `path` as standard ONNX.
pub fn export_file(graph: &Graph, info: &GraphInfo, path: &Path) -> Result<(), ExportError> {
    export_file_with(graph, info, path, ExportOptions::default())
}

/// Encodes and writes `graph` to `path`.
pub fn export_file_with(
    graph: &Graph,
    info: &GraphInfo,
    path: &Path,
    options: ExportOptions,
) -> Result<(), ExportError> {
    let model = export_with(graph, info, options)?;
    std::fs::write(path, model.encode_to_vec()).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn value_info(name: &str, ty: &TensorType) -> ValueInfoProto {
    let dim = ty
        .shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Sym(s) => dimension::Value::DimParam(s.clone()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype_to_onnx(ty.dtype)),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

pub(crate) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

pub(crate) fn ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v,
        ..Default::default()
    }
}

pub(crate) fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn tensor(name: &str, t: &Tensor) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(tensor_to_proto("", t)),
        ..Default::default()
    }
}

pub(crate) fn pair(v: [usize; 2]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

pub(crate) fn padding_attrs(p: &Padding, out: &mut Vec<AttributeProto>) {
    match p {
        Padding::Explicit(p) => out.push(ints("pads", p.iter().map(|&x| x as i64).collect())),
        Padding::SameUpper => out.push(string("auto_pad", "SAME_UPPER")),
        Padding::SameLower => out.push(string("auto_pad", "SAME_LOWER")),
    }
}

/// A convolution's geometry as ONNX Conv attributes (shared by Conv, FusedConv and its expansion).
pub(crate) fn conv_attrs(c: &resnetc_ir::Conv) -> Vec<AttributeProto> {
    let mut a = vec![
        ints("kernel_shape", pair(c.kernel)),
        ints("strides", pair(c.strides)),
        ints("dilations", pair(c.dilations)),
    ];
    padding_attrs(&c.padding, &mut a);
    a.push(int("group", c.group as i64));
    a
}

/// The attributes of `op` at `opset`.
fn attributes(op: &Op, opset: u64) -> Result<Vec<AttributeProto>, String> {
    let mut a = Vec::new();
    match op {
        Op::Conv(c) => {
            a.extend(conv_attrs(c));
        }
        Op::BatchNorm { epsilon } => a.push(float("epsilon", *epsilon)),
        Op::Gemm(g) => {
            a.push(float("alpha", g.alpha));
            a.push(float("beta", g.beta));
            a.push(int("transA", g.trans_a as i64));
            a.push(int("transB", g.trans_b as i64));
        }
        Op::AveragePool(p) => {
            a.push(ints("kernel_shape", pair(p.kernel)));
            a.push(ints("strides", pair(p.strides)));
            padding_attrs(&p.padding, &mut a);
            a.push(int("count_include_pad", p.count_include_pad as i64));
            a.push(int("ceil_mode", p.ceil_mode as i64));
        }
        Op::ReduceMean {
            keepdims,
            noop_with_empty_axes,
        } => {
            a.push(int("keepdims", *keepdims as i64));
            if *noop_with_empty_axes {
                if opset < 18 {
                    return Err(format!(
                        "noop_with_empty_axes needs opset 18, the graph is opset {opset}"
                    ));
                }
                a.push(int("noop_with_empty_axes", 1));
            }
        }
        Op::Flatten { axis } => a.push(int("axis", *axis)),
        Op::Reshape { allowzero } => {
            if *allowzero {
                if opset < 14 {
                    return Err(format!(
                        "allowzero needs opset 14, the graph is opset {opset}"
                    ));
                }
                a.push(int("allowzero", 1));
            }
        }
        Op::Pad {
            mode: PadMode::Constant,
        } => a.push(string("mode", "constant")),
        Op::Shape { start, end } => {
            if *start != 0 || end.is_some() {
                if opset < 15 {
                    return Err(format!(
                        "Shape with start/end needs opset 15, the graph is opset {opset}"
                    ));
                }
                a.push(int("start", *start));
                if let Some(e) = end {
                    a.push(int("end", *e));
                }
            }
        }
        Op::Gather { axis } => a.push(int("axis", *axis)),
        Op::Concat { axis } => a.push(int("axis", *axis)),
        Op::ConstantOfShape { value } => a.push(tensor("value", value)),
        Op::Cast { to } => a.push(int("to", dtype_to_onnx(*to) as i64)),
        Op::Transpose { perm: Some(p) } => {
            a.push(ints("perm", p.iter().map(|&x| x as i64).collect()))
        }
        Op::FusedConv { conv: c, epilogue } => {
            a.extend(conv_attrs(c));
            let mut steps = Vec::new();
            for e in epilogue {
                steps.push(
                    match e {
                        resnetc_ir::Epilogue::Bias => "bias",
                        resnetc_ir::Epilogue::AddResidual(read) => {
                            if let resnetc_ir::ResidualRead::Subsampled { stride, pad_before } =
                                read
                            {
                                a.push(int("residual_stride", *stride as i64));
                                a.push(int("residual_pad_before", *pad_before as i64));
                            }
                            "add"
                        }
                        resnetc_ir::Epilogue::Relu => "relu",
                    }
                    .as_bytes()
                    .to_vec(),
                );
            }
            a.push(AttributeProto {
                name: Some("epilogue".into()),
                r#type: Some(AttributeType::Strings as i32),
                strings: steps,
                ..Default::default()
            });
        }
        Op::Shortcut {
            stride,
            pad_before,
            pad_after,
        } => {
            a.push(int("stride", *stride as i64));
            a.push(int("pad_before", *pad_before as i64));
            a.push(int("pad_after", *pad_after as i64));
        }
        Op::Input { .. }
        | Op::Constant(_)
        | Op::Identity
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
        | Op::Expand => {}
    }
    Ok(a)
}
