//! The validator: structure checks plus type and shape inference.
//!
//! [`validate`] is the gate between producers of IR (the importer, passes) and its consumers (the
//! executors, the exporter): it checks that the graph is acyclic, that every node has the inputs its
//! op needs, that value names are unique, and infers the element type and shape of every value it can.
//! On a freshly imported graph some shapes depend on shape arithmetic that is not folded yet; those are
//! left unknown rather than rejected. After canonicalization every shape is known.

use std::collections::HashMap;

use thiserror::Error;

use crate::graph::{Graph, NodeId, ValueRef};
use crate::infer::{infer_node, SymInt, Value};
use crate::op::Op;
use crate::shape::TensorType;

/// What the validator learned about a valid graph.
#[derive(Clone, Debug, Default)]
pub struct GraphInfo {
    /// The canonical topological order ([`Graph::topo_order`]).
    pub order: Vec<NodeId>,
    types: HashMap<ValueRef, TensorType>,
    values: HashMap<ValueRef, Value>,
}

impl GraphInfo {
    /// The inferred type of `v`, if inference could tell.
    pub fn ty(&self, v: ValueRef) -> Option<&TensorType> {
        self.types.get(&v)
    }

    /// The statically known contents of a small integer value (shape arithmetic), if any.
    pub fn value(&self, v: ValueRef) -> Option<&Value> {
        self.values.get(&v)
    }

    /// Values whose type could not be inferred, in order.
    pub fn unknown_values(&self, graph: &Graph) -> Vec<ValueRef> {
        let mut out = Vec::new();
        for &n in &self.order {
            for k in 0..graph.node(n).outputs.len() {
                let v = ValueRef::new(n, k);
                if !self.types.contains_key(&v) {
                    out.push(v);
                }
            }
        }
        out
    }
}

/// Where a validation error was found: the node's name and op, and the graph's opset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub node: String,
    pub op: &'static str,
    pub opset: u64,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node '{}' ({}, opset {})",
            self.node, self.op, self.opset
        )
    }
}

/// A graph that breaks an IR invariant.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ValidationError {
    #[error("{site}: the graph has a cycle through this node; an ONNX graph must be acyclic (re-export the model)")]
    Cycle { site: Site },
    #[error("{site}: {message}")]
    Arity { site: Site, message: String },
    #[error("{site}: required input {slot} is missing")]
    MissingInput { site: Site, slot: usize },
    #[error("{site}: input {slot} reads output {output} of node '{producer}', which has only {available} outputs")]
    BadOutputSlot {
        site: Site,
        slot: usize,
        producer: String,
        output: usize,
        available: usize,
    },
    #[error("{site}: output value '{name}' is also produced by node '{other}'; value names must be unique")]
    DuplicateValue {
        site: Site,
        name: String,
        other: String,
    },
    #[error("{site}: {message}")]
    Type { site: Site, message: String },
    #[error("graph output '{name}' refers to a node that is not in the graph")]
    DanglingOutput { name: String },
    #[error("the graph has no outputs")]
    NoOutputs,
}

/// Validates `graph` and infers the types of its values.
pub fn validate(graph: &Graph) -> Result<GraphInfo, ValidationError> {
    let site = |id: NodeId| {
        let n = graph.node(id);
        Site {
            node: n.label().to_string(),
            op: n.op.onnx_name(),
            opset: graph.opset,
        }
    };
    if graph.outputs.is_empty() {
        return Err(ValidationError::NoOutputs);
    }
    for o in &graph.outputs {
        if !graph.contains(o.value.node) || o.value.output >= graph.node(o.value.node).outputs.len()
        {
            return Err(ValidationError::DanglingOutput {
                name: o.name.clone(),
            });
        }
    }
    let order = graph
        .topo_order()
        .map_err(|c| ValidationError::Cycle { site: site(c.0) })?;

    let mut names: HashMap<&str, NodeId> = HashMap::new();
    for &id in &order {
        let node = graph.node(id);
        if node.outputs.len() != node.op.num_outputs() {
            return Err(ValidationError::Type {
                site: site(id),
                message: format!(
                    "has {} outputs, the op produces {}",
                    node.outputs.len(),
                    node.op.num_outputs()
                ),
            });
        }
        for name in &node.outputs {
            if name.is_empty() {
                continue;
            }
            if let Some(&other) = names.get(name.as_str()) {
                return Err(ValidationError::DuplicateValue {
                    site: site(id),
                    name: name.clone(),
                    other: graph.node(other).label().to_string(),
                });
            }
            names.insert(name, id);
        }
    }

    let mut info = GraphInfo {
        order: order.clone(),
        types: HashMap::new(),
        values: HashMap::new(),
    };
    for &id in &order {
        let node = graph.node(id);
        let inputs = graph.inputs(id);
        let (min, _) = node.op.arity();
        // Trailing absent optional inputs do not count.
        let got = inputs
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |p| p + 1);
        node.op
            .check_arity(got)
            .map_err(|message| ValidationError::Arity {
                site: site(id),
                message,
            })?;
        for (slot, v) in inputs.iter().enumerate() {
            match v {
                None if slot < min => {
                    return Err(ValidationError::MissingInput {
                        site: site(id),
                        slot,
                    })
                }
                Some(v) => {
                    let available = graph.node(v.node).outputs.len();
                    if v.output >= available {
                        return Err(ValidationError::BadOutputSlot {
                            site: site(id),
                            slot,
                            producer: graph.node(v.node).label().to_string(),
                            output: v.output,
                            available,
                        });
                    }
                }
                None => {}
            }
        }
        let in_types: Vec<Option<&TensorType>> = inputs
            .iter()
            .map(|v| v.and_then(|v| info.types.get(&v)))
            .collect();
        let in_values: Vec<Option<&Value>> = inputs
            .iter()
            .map(|v| v.and_then(|v| info.values.get(&v)))
            .collect();
        let (ty, value) = infer_node(&node.op, &in_types, &in_values).map_err(|message| {
            ValidationError::Type {
                site: site(id),
                message,
            }
        })?;
        let out = ValueRef::new(id, 0);
        if let Some(ty) = ty {
            // Sizes from the file (pads, reshapes, dims) must not describe a value no executor
            // could hold: refused here, before anything is allocated for it. A symbolic batch
            // counts as 1 (a run's batch is checked against the input contract).
            let elements = ty
                .shape
                .iter()
                .try_fold(1u64, |n, d| n.checked_mul(d.fixed().unwrap_or(1) as u64))
                .unwrap_or(u64::MAX);
            crate::limits::ELEMENTS
                .check(
                    elements,
                    format_args!("the element count of its output {ty}"),
                )
                .map_err(|message| ValidationError::Type {
                    site: site(id),
                    message,
                })?;
            info.types.insert(out, ty);
        }
        if let Some(value) = value {
            info.values.insert(out, value);
        }
    }
    Ok(info)
}

/// Whether every element of a known value is a plain integer.
pub fn value_ints(v: &Value) -> Option<Vec<i64>> {
    v.elems
        .iter()
        .map(|e| match e {
            SymInt::Int(i) => Some(*i),
            SymInt::Sym(_) => None,
        })
        .collect()
}

/// Convenience for passes: the constant tensor a value comes straight from, if any.
pub fn constant_of(graph: &Graph, v: ValueRef) -> Option<&crate::Tensor> {
    match graph.op(v.node) {
        Op::Constant(t) => Some(t),
        _ => None,
    }
}
