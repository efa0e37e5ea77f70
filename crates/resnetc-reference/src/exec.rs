//! [`run`] and [`run_with`]: a whole graph, node by node.

use std::collections::{HashMap, HashSet};

use resnetc_ir::{Dim, Graph, GraphInfo, NodeId, Op, Site, Tensor, ValidationError, ValueRef};

use crate::error::{ExecError, InputProblem};
use crate::eval::eval_op;

/// Runs the whole graph. `inputs` are in [`Graph::inputs`] order; returns the graph outputs in order.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
    run_with(graph, inputs, &mut |_, _| None)
}

/// Like [`run`], but calls `observe(node, &value)` after each node, in the canonical topological
/// order, and uses the tensor it returns, if any, in place of the computed value (to reinject a
/// reference value and find where two executions first diverge).
///
/// Nodes from which no graph output is reachable are not run. Each computed value is checked
/// against the type the validator inferred for it before `observe` sees it; a replacement is not.
pub fn run_with(
    graph: &Graph,
    inputs: &[Tensor],
    observe: &mut dyn FnMut(NodeId, &Tensor) -> Option<Tensor>,
) -> Result<Vec<Tensor>, ExecError> {
    let info = resnetc_ir::validate(graph)?;
    let (bound, symbols) = bind_inputs(graph, inputs)?;
    let dead: HashSet<NodeId> = graph.dead_nodes().into_iter().collect();
    let order: Vec<NodeId> = info
        .order
        .iter()
        .copied()
        .filter(|n| !dead.contains(n))
        .collect();

    // A value is dropped after the last node that reads it, unless it is a graph output.
    let mut last_use: HashMap<ValueRef, usize> = HashMap::new();
    for (pos, &id) in order.iter().enumerate() {
        for v in graph.inputs(id).into_iter().flatten() {
            last_use.insert(v, pos);
        }
    }
    let outputs: HashSet<ValueRef> = graph.outputs.iter().map(|o| o.value).collect();

    let mut values: HashMap<ValueRef, Tensor> = HashMap::new();
    for (pos, &id) in order.iter().enumerate() {
        let node = graph.node(id);
        let slots = graph.inputs(id);
        let value = match &node.op {
            Op::Input { .. } => match bound.get(&id) {
                Some(&t) => t.clone(),
                None => {
                    return Err(ExecError::UnboundInput {
                        node: node.label().to_string(),
                    })
                }
            },
            op => {
                // The validated order puts producers first and every op has one output.
                let args: Vec<Option<&Tensor>> = slots
                    .iter()
                    .map(|s| {
                        s.map(|v| {
                            values
                                .get(&v)
                                .expect("a validated order computes inputs first")
                        })
                    })
                    .collect();
                eval_op(op, &args).map_err(|source| ExecError::Node {
                    node: node.label().to_string(),
                    op: op.onnx_name(),
                    source,
                })?
            }
        };
        check_type(&info, &symbols, graph, id, &value)?;
        let value = observe(id, &value).unwrap_or(value);
        for v in slots.into_iter().flatten() {
            if last_use.get(&v) == Some(&pos) && !outputs.contains(&v) {
                values.remove(&v);
            }
        }
        let out = ValueRef::new(id, 0);
        if last_use.contains_key(&out) || outputs.contains(&out) {
            values.insert(out, value);
        }
    }
    Ok(graph
        .outputs
        .iter()
        .map(|o| values[&o.value].clone())
        .collect())
}

/// The value each symbolic dimension took, and the input that fixed it.
type Symbols = HashMap<String, (usize, String)>;

/// Checks `inputs` against the graph's `Input` types and binds the symbolic dimensions.
fn bind_inputs<'a>(
    graph: &Graph,
    inputs: &'a [Tensor],
) -> Result<(HashMap<NodeId, &'a Tensor>, Symbols), ExecError> {
    if inputs.len() != graph.inputs.len() {
        return Err(ExecError::InputCount {
            expected: graph.inputs.len(),
            got: inputs.len(),
        });
    }
    let mut bound = HashMap::new();
    let mut symbols = Symbols::new();
    for (index, (&id, t)) in graph.inputs.iter().zip(inputs).enumerate() {
        let node = graph.node(id);
        let Op::Input { ty, .. } = &node.op else {
            let site = Site {
                node: node.label().to_string(),
                op: node.op.onnx_name(),
                opset: graph.opset,
            };
            return Err(ValidationError::Type {
                site,
                message: "is listed among the graph inputs but is not an Input".into(),
            }
            .into());
        };
        let name = node.label().to_string();
        let fail = |problem| ExecError::Input {
            index,
            name: name.clone(),
            expected: Box::new(ty.clone()),
            problem,
        };
        if t.dtype() != ty.dtype {
            return Err(fail(InputProblem::DType {
                expected: ty.dtype,
                got: t.dtype(),
            }));
        }
        if t.rank() != ty.rank() {
            return Err(fail(InputProblem::Rank {
                expected: ty.rank(),
                got: t.shape().to_vec(),
            }));
        }
        for (axis, (d, &got)) in ty.shape.iter().zip(t.shape()).enumerate() {
            match d {
                Dim::Fixed(expected) if *expected != got => {
                    return Err(fail(InputProblem::Dim {
                        axis,
                        expected: *expected,
                        got,
                    }))
                }
                Dim::Fixed(_) => {}
                Dim::Sym(s) => match symbols.get(s) {
                    Some((bound, by)) if *bound != got => {
                        return Err(fail(InputProblem::Symbol {
                            axis,
                            symbol: s.clone(),
                            got,
                            bound: *bound,
                            bound_by: by.clone(),
                        }))
                    }
                    Some(_) => {}
                    None => {
                        symbols.insert(s.clone(), (got, name.clone()));
                    }
                },
            }
        }
        bound.insert(id, t);
    }
    Ok((bound, symbols))
}

/// Checks a computed value against the validator's inferred type, where it inferred one.
fn check_type(
    info: &GraphInfo,
    symbols: &Symbols,
    graph: &Graph,
    id: NodeId,
    value: &Tensor,
) -> Result<(), ExecError> {
    let Some(ty) = info.ty(ValueRef::new(id, 0)) else {
        return Ok(());
    };
    let dim_ok = |d: &Dim, got: usize| match d {
        Dim::Fixed(n) => *n == got,
        Dim::Sym(s) => symbols.get(s).is_none_or(|(n, _)| *n == got),
    };
    let agrees = ty.dtype == value.dtype()
        && ty.rank() == value.rank()
        && ty
            .shape
            .iter()
            .zip(value.shape())
            .all(|(d, &g)| dim_ok(d, g));
    if agrees {
        return Ok(());
    }
    let node = graph.node(id);
    Err(ExecError::TypeMismatch {
        node: node.label().to_string(),
        op: node.op.onnx_name(),
        inferred: Box::new(ty.clone()),
        got_dtype: value.dtype(),
        got_shape: value.shape().to_vec(),
    })
}
