//! [`eval_op`]: one op through the whole backend, the twin of `resnetc_reference::eval_op` that the
//! differential tests compare it with.

use ndarray::{ArrayD, IxDyn};
use resnetc_ir::{validate, Graph, Op, Tensor, TensorType, ValueRef};

use crate::{CpuError, CpuOptions, CpuPlan, Session};

/// Which input slots of `op` are activations (graph inputs, batch first) rather than constants.
fn activation_slot(op: &Op, slot: usize) -> bool {
    match op {
        Op::FusedConv { .. } => slot == 0 || slot == 3,
        _ => slot == 0,
    }
}

/// Evaluates one op on concrete inputs (one per slot, `None` for an absent optional input) the way
/// a compiled plan would: activations become graph inputs (converted to the blocked layout, run,
/// converted back), weights become constants packed at compile time. `threads` as in [`Session`].
pub fn eval_op(
    op: &Op,
    inputs: &[Option<&Tensor>],
    opts: &CpuOptions,
    threads: usize,
) -> Result<Tensor, CpuError> {
    let mut g = Graph::new();
    let mut slots = Vec::new();
    let mut data: Vec<Vec<f32>> = Vec::new();
    for (slot, t) in inputs.iter().enumerate() {
        let Some(t) = t else {
            slots.push(None);
            continue;
        };
        let v: ValueRef = if activation_slot(op, slot) {
            let a = t.as_f32().ok_or_else(|| CpuError::Interface {
                what: format!("input {slot}"),
                reason: "not f32".into(),
            })?;
            data.push(a.iter().copied().collect());
            g.add_input(format!("in{slot}"), TensorType::fixed(t.dtype(), t.shape()))
                .into()
        } else {
            g.add_const(format!("c{slot}"), (*t).clone()).into()
        };
        slots.push(Some(v));
    }
    let node = g.add_node("op", op.clone(), vec!["out".into()], &slots);
    g.add_output("out", node.into());
    let info = validate(&g).map_err(|e| CpuError::Interface {
        what: "one-op graph".into(),
        reason: e.to_string(),
    })?;
    let plan = CpuPlan::compile_with(&g, &info, opts)?;
    let batch = inputs
        .first()
        .copied()
        .flatten()
        .and_then(|t| t.shape().first().copied())
        .unwrap_or(1);
    let out_port = plan.outputs().next().expect("one output").clone();
    let mut out = vec![0f32; out_port.floats * batch];
    let ins: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
    Session::new(&plan, threads).run_many(&ins, batch, &mut [&mut out])?;
    let mut shape = vec![batch];
    shape.extend(&out_port.dims);
    Ok(Tensor::f32(
        ArrayD::from_shape_vec(IxDyn(&shape), out).expect("sizes agree"),
    ))
}
