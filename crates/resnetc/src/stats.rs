//! What `resnetc inspect` reports about a graph: its interface, op counts, parameters, MACs.

use std::collections::BTreeMap;

use resnetc_ir::{Graph, GraphInfo, Op, ValueRef};

/// What `resnetc inspect` reports.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ModelStats {
    pub inputs: Vec<ValueSummary>,
    pub outputs: Vec<ValueSummary>,
    /// Op name → count, constants and graph inputs excluded.
    pub ops: BTreeMap<String, usize>,
    /// Number of constant tensors (weights and other constants).
    pub constants: usize,
    /// Elements in the weights of Conv, Gemm, MatMul and BatchNormalization.
    pub params: usize,
    /// Multiply-accumulates for one image (batch 1) in Conv, Gemm and MatMul.
    pub macs: u64,
}

#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ValueSummary {
    pub name: String,
    pub dtype: String,
    /// Dimensions: a number, or the symbol's name.
    pub shape: Vec<serde_json::Value>,
}

impl ModelStats {
    pub fn of(graph: &Graph, info: &GraphInfo) -> ModelStats {
        let summary = |name: &str, v: ValueRef| {
            let ty = info.ty(v);
            ValueSummary {
                name: name.to_string(),
                dtype: ty.map_or_else(|| "?".into(), |t| t.dtype.to_string()),
                shape: ty.map_or_else(Vec::new, |t| {
                    t.shape
                        .iter()
                        .map(|d| match d {
                            resnetc_ir::Dim::Fixed(n) => serde_json::json!(n),
                            resnetc_ir::Dim::Sym(s) => serde_json::json!(s),
                        })
                        .collect()
                }),
            }
        };
        let inputs = graph
            .inputs
            .iter()
            .map(|&i| summary(&graph.node(i).outputs[0], i.into()))
            .collect();
        let outputs = graph
            .outputs
            .iter()
            .map(|o| summary(&o.name, o.value))
            .collect();
        let mut ops = BTreeMap::new();
        let mut constants = 0;
        let mut params = 0;
        let mut macs = 0u64;
        for &id in &info.order {
            let op = graph.op(id);
            match op {
                Op::Input { .. } => continue,
                Op::Constant(_) => {
                    constants += 1;
                    continue;
                }
                _ => {}
            }
            *ops.entry(op.onnx_name().to_string()).or_insert(0) += 1;
            macs += node_macs(graph, info, id);
        }
        // Parameters: the constant operands of the ops that carry weights, each tensor counted once.
        let mut seen = std::collections::HashSet::new();
        for &id in &info.order {
            let first_param_slot = match graph.op(id) {
                Op::Conv(_)
                | Op::FusedConv { .. }
                | Op::Gemm(_)
                | Op::MatMul
                | Op::BatchNorm { .. } => 1,
                _ => continue,
            };
            // A fused convolution's residual (slot 3) is an activation, not a weight.
            let last = if matches!(graph.op(id), Op::FusedConv { .. }) {
                3
            } else {
                usize::MAX
            };
            for v in graph
                .inputs(id)
                .into_iter()
                .take(last)
                .skip(first_param_slot)
                .flatten()
            {
                if let Op::Constant(t) = graph.op(v.node) {
                    if seen.insert(v.node) {
                        params += t.len();
                    }
                }
            }
        }
        ModelStats {
            inputs,
            outputs,
            ops,
            constants,
            params,
            macs,
        }
    }
}

/// MACs of one node for one image: the batch dimension (dim 0) is left out.
fn node_macs(graph: &Graph, info: &GraphInfo, id: resnetc_ir::NodeId) -> u64 {
    let per_image = |v: ValueRef| -> Option<u64> {
        let t = info.ty(v)?;
        t.shape
            .iter()
            .skip(1)
            .map(|d| d.fixed().map(|x| x as u64))
            .product()
    };
    let out = ValueRef::new(id, 0);
    match graph.op(id) {
        Op::Conv(_) | Op::FusedConv { .. } => {
            let Some(w) = graph
                .input(id, 1)
                .and_then(|w| info.ty(w))
                .and_then(|t| t.concrete())
            else {
                return 0;
            };
            // Each output element takes C/group × kh × kw multiply-adds: exactly the weights' inner size.
            per_image(out).unwrap_or(0) * (w[1] * w[2] * w[3]) as u64
        }
        Op::Gemm(g) => {
            let Some(a) = graph.input(id, 0).and_then(|a| info.ty(a)) else {
                return 0;
            };
            let k = if g.trans_a {
                a.shape[0].fixed()
            } else {
                a.shape.get(1).and_then(|d| d.fixed())
            };
            per_image(out).unwrap_or(0) * k.unwrap_or(0) as u64
        }
        Op::MatMul => {
            let Some(b) = graph.input(id, 1).and_then(|b| info.ty(b)) else {
                return 0;
            };
            per_image(out).unwrap_or(0) * b.shape[0].fixed().unwrap_or(0) as u64
        }
        _ => 0,
    }
}

/// What `resnetc inspect --json` prints: the statistics, and for an artifact what it stores.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct InspectReport {
    pub schema_version: u32,
    pub opset: u64,
    #[serde(flatten)]
    pub stats: ModelStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactInfo>,
}

/// An artifact's record of how it was made, and what sections it holds.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ArtifactInfo {
    pub format_version: u32,
    pub resnetc_version: String,
    pub target: String,
    pub opt_level: u32,
    pub batch: u64,
    pub source: String,
    pub source_sha256: String,
    pub cpu_plan_bytes: usize,
    pub cuda_archs: Vec<String>,
}

impl crate::Model {
    /// The `inspect` report.
    pub fn inspect(&self) -> InspectReport {
        use crate::escape::name;
        let artifact = self.artifact().map(|a| ArtifactInfo {
            format_version: a.format_version,
            resnetc_version: name(&a.resnetc_version),
            target: name(&a.target),
            opt_level: a.opt_level,
            batch: a.batch,
            source: name(&a.source_name),
            source_sha256: resnetc_artifact::hex(&a.source_sha256),
            cpu_plan_bytes: resnetc_artifact::packed_plan(a).map_or(0, <[u8]>::len),
            cuda_archs: a
                .cuda
                .iter()
                .flat_map(|c| c.binaries.iter().map(|b| name(&b.arch)))
                .collect(),
        });
        InspectReport {
            schema_version: crate::SCHEMA_VERSION,
            opset: self.graph().opset,
            stats: self.stats(),
            artifact,
        }
    }
}

/// The arg-max of each row of `[batch, …]` values (the rest flattened); NaN never wins, and a row
/// of NaN gives `None`.
pub fn top1(values: &ndarray::ArrayViewD<f32>) -> Vec<Option<usize>> {
    values
        .outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .fold(None, |best: Option<(usize, f32)>, (i, &v)| match best {
                    Some((_, b)) if b >= v => best,
                    _ => Some((i, v)),
                })
                .map(|(i, _)| i)
        })
        .collect()
}
