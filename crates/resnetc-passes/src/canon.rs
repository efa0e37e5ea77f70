//! Canonicalization: turn the shape arithmetic of PyTorch exports into constants and drop what is dead.

use ndarray::{ArcArray, IxDyn};
use resnetc_ir::{validate, Dim, Graph, GraphInfo, NodeId, Op, SymInt, Tensor, ValueRef};

use crate::{PassError, PassReport};

/// Largest tensor constant folding will create: 16 MiB. Keeps a hostile ConstantOfShape from
/// materializing gigabytes at compile time.
pub const FOLD_BUDGET_BYTES: usize = 16 << 20;

/// How many sweeps constant folding makes at most; each sweep folds everything foldable in
/// topological order, so one usually suffices and a second finds nothing.
const MAX_SWEEPS: usize = 8;

fn invalid(e: resnetc_ir::ValidationError) -> PassError {
    PassError::Invalid(e)
}

/// Turns `id` into a constant. A constant is known by its value's name (as an initializer is), so
/// the node takes that name: export and re-import then give the same graph.
fn make_constant(graph: &mut Graph, id: NodeId, t: Tensor) {
    graph.truncate_inputs(id, 0);
    let node = graph.node_mut(id);
    node.op = Op::Constant(t);
    node.name = node.outputs[0].clone();
}

/// Evaluates nodes whose inputs are all constants, and replaces integer values that inference knows
/// in full (e.g. `Shape` of a statically shaped tensor) by constants.
pub fn fold_constants(
    graph: &mut Graph,
    given: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let mut fresh: Option<GraphInfo> = None;
    for sweep in 0..MAX_SWEEPS {
        // The manager's info for the first sweep; a later sweep sees the graph this pass changed.
        if sweep > 0 {
            fresh = Some(validate(graph).map_err(invalid)?);
        }
        let info = fresh.as_ref().unwrap_or(given);
        let mut changed = false;
        for &id in &info.order {
            let op = graph.op(id).clone();
            if matches!(op, Op::Input { .. } | Op::Constant(_)) {
                continue;
            }
            let inputs = graph.inputs(id);
            let consts: Option<Vec<Option<Tensor>>> = inputs
                .iter()
                .map(|v| match v {
                    None => Some(None),
                    Some(v) => match graph.op(v.node) {
                        Op::Constant(t) => Some(Some(t.clone())),
                        _ => None,
                    },
                })
                .collect();
            // CastLike only needs its second operand's element type, which inference knows.
            if let (Op::CastLike, Some(Some(Some(x))), Some(like)) = (
                &op,
                consts_first(&inputs, graph),
                inputs.get(1).copied().flatten().and_then(|v| info.ty(v)),
            ) {
                let cast = Op::Cast { to: like.dtype };
                let label = graph.node(id).label().to_string();
                let t = resnetc_reference::eval_op(&cast, &[Some(&x)]).map_err(|e| {
                    PassError::Eval {
                        node: label,
                        op: op.onnx_name(),
                        message: e.to_string(),
                    }
                })?;
                make_constant(graph, id, t);
                report.fire("castlike-constant");
                changed = true;
                continue;
            }
            if let Some(consts) = consts {
                let refs: Vec<Option<&Tensor>> = consts.iter().map(Option::as_ref).collect();
                let label = graph.node(id).label().to_string();
                let t = resnetc_reference::eval_op(&op, &refs).map_err(|e| PassError::Eval {
                    node: label.clone(),
                    op: op.onnx_name(),
                    message: e.to_string(),
                })?;
                if t.byte_len() > FOLD_BUDGET_BYTES {
                    report.skip(format!(
                        "'{label}' ({}): result of {} bytes exceeds the folding budget",
                        op.onnx_name(),
                        t.byte_len()
                    ));
                    continue;
                }
                make_constant(graph, id, t);
                report.fire("evaluate");
                changed = true;
                continue;
            }
            let out = ValueRef::new(id, 0);
            if let (Some(value), Some(ty)) = (info.value(out), info.ty(out)) {
                let ints: Option<Vec<i64>> = value
                    .elems
                    .iter()
                    .map(|e| match e {
                        SymInt::Int(i) => Some(*i),
                        SymInt::Sym(_) => None,
                    })
                    .collect();
                if let (Some(ints), true) = (ints, ty.dtype.is_int()) {
                    let shape: Vec<usize> = if value.scalar {
                        vec![]
                    } else {
                        vec![ints.len()]
                    };
                    let t = match ty.dtype {
                        resnetc_ir::DType::I32 => Tensor::I32(
                            ArcArray::from_shape_vec(
                                IxDyn(&shape),
                                ints.iter().map(|&x| x as i32).collect(),
                            )
                            .expect("shape matches"),
                        ),
                        _ => Tensor::I64(
                            ArcArray::from_shape_vec(IxDyn(&shape), ints).expect("shape matches"),
                        ),
                    };
                    make_constant(graph, id, t);
                    report.fire("known-shape-value");
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    Ok(())
}

/// The constant in slot 0, if that slot is filled by a constant.
fn consts_first(inputs: &[Option<ValueRef>], graph: &Graph) -> Option<Option<Option<Tensor>>> {
    let v = inputs.first()?;
    Some(v.map(|v| match graph.op(v.node) {
        Op::Constant(t) => Some(t.clone()),
        _ => None,
    }))
}

/// Rewrites shape operands that hold the symbolic batch: `Reshape(x, [N, -1])` where `x`'s dim 0 is
/// `N` becomes `Reshape(x, [0, -1])`; `Expand(x, [N, C, 1, 1])` becomes `Expand(x, [1, C, 1, 1])`
/// where `x` already has `N` there.
pub fn fold_symbolic_shapes(
    graph: &mut Graph,
    info: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for &id in &info.order {
        let (is_reshape, allowzero) = match graph.op(id) {
            Op::Reshape { allowzero } => (true, *allowzero),
            Op::Expand => (false, false),
            _ => continue,
        };
        let (Some(x), Some(s)) = (graph.input(id, 0), graph.input(id, 1)) else {
            continue;
        };
        // `allowzero` only changes what a literal 0 means; without one it can be dropped, which
        // frees 0 to mean "copy the batch" below.
        let allowzero = allowzero
            && info
                .value(s)
                .is_none_or(|v| v.elems.contains(&SymInt::Int(0)));
        if matches!(graph.op(s.node), Op::Constant(_)) {
            continue;
        }
        let label = graph.node(id).label().to_string();
        let (Some(value), Some(xt)) = (info.value(s), info.ty(x)) else {
            report.skip(format!(
                "'{label}': its shape operand is not known statically"
            ));
            continue;
        };
        let mut spec = Vec::with_capacity(value.elems.len());
        let mut ok = true;
        let offset = value.elems.len() as isize - xt.rank() as isize;
        for (i, e) in value.elems.iter().enumerate() {
            match e {
                SymInt::Int(k) => spec.push(*k),
                SymInt::Sym(sym) => {
                    let xi = if is_reshape {
                        i as isize
                    } else {
                        i as isize - offset
                    };
                    let same = xi >= 0 && xt.shape.get(xi as usize) == Some(&Dim::Sym(sym.clone()));
                    if is_reshape && same && !allowzero {
                        spec.push(0);
                    } else if !is_reshape && same {
                        spec.push(1);
                    } else if is_reshape
                        && !spec.contains(&-1)
                        && !value.elems[i + 1..].contains(&SymInt::Int(-1))
                    {
                        spec.push(-1);
                    } else {
                        ok = false;
                        break;
                    }
                }
            }
        }
        if !ok {
            report.skip(format!(
                "'{label}': the symbolic shape {:?} cannot be expressed with 0/-1 entries",
                value.elems
            ));
            continue;
        }
        let name = format!("{}_shape", graph.node(id).outputs[0]);
        let c = graph.add_const(name, Tensor::i64_vec(spec));
        graph.set_input(id, 1, Some(c.into()));
        if let Op::Reshape { allowzero: a } = &mut graph.node_mut(id).op {
            *a = allowzero;
        }
        report.fire(if is_reshape {
            "reshape-symbolic"
        } else {
            "expand-symbolic"
        });
    }
    Ok(())
}

/// Removes Identity nodes, rewiring their readers (and graph outputs) to the identity's input.
pub fn remove_identity(
    graph: &mut Graph,
    _: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let ids: Vec<NodeId> = graph
        .node_ids()
        .filter(|&id| matches!(graph.op(id), Op::Identity))
        .collect();
    for id in ids {
        let Some(src) = graph.input(id, 0) else {
            continue;
        };
        graph.replace_all_uses(ValueRef::new(id, 0), src);
        graph.remove_node(id);
        report.fire("identity");
    }
    Ok(())
}

/// Removes nodes that no graph output depends on. Graph inputs stay: they are the interface.
pub fn remove_dead(
    graph: &mut Graph,
    _: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for id in graph.dead_nodes() {
        if matches!(graph.op(id), Op::Input { .. }) {
            continue;
        }
        graph.remove_node(id);
        report.fire("dead-node");
    }
    Ok(())
}
