//! Optimization passes: the rewrites that turn an imported CifarResNet into the fused graph the
//! backends run — BatchNorm folded into convolutions, the option-A shortcut as one op, and each
//! convolution's bias, residual add (through the shortcut, when there is one) and ReLU in its epilogue.
//!
//! A node that absorbs others takes the name of the last value it now produces (the Relu's output,
//! say), so the optimized graph's values can be matched by name with the unoptimized graph's
//! (`resnetc validate` relies on it).

use ndarray::{ArcArray, ArrayD, Axis, IxDyn};
use resnetc_ir::{
    Dim, Epilogue, Graph, GraphInfo, NodeId, Op, Padding, ResidualRead, Tensor, ValueRef,
};

use crate::{PassError, PassReport};

/// The one reader of `v`, if it has exactly one and is not a graph output.
fn single_user(graph: &Graph, v: ValueRef) -> Option<(NodeId, usize)> {
    let users = graph.users(v);
    if users.len() == 1 && !graph.is_graph_output(v) {
        Some(users[0])
    } else {
        None
    }
}

fn const_f32(graph: &Graph, v: Option<ValueRef>) -> Option<ArcArray<f32, IxDyn>> {
    match graph.op(v?.node) {
        Op::Constant(Tensor::F32(a)) => Some(a.clone()),
        _ => None,
    }
}

fn const_ints(graph: &Graph, v: Option<ValueRef>) -> Option<Vec<i64>> {
    match graph.op(v?.node) {
        Op::Constant(t) => t.as_i64s(),
        _ => None,
    }
}

/// Replaces `absorbed`'s value by `into`'s: readers move over, `into` takes the absorbed value's name.
fn absorb(graph: &mut Graph, into: NodeId, absorbed: NodeId) {
    let name = graph.node(absorbed).outputs[0].clone();
    graph.replace_all_uses(ValueRef::new(absorbed, 0), ValueRef::new(into, 0));
    graph.remove_node(absorbed);
    graph.node_mut(into).outputs[0] = name;
}

fn label(graph: &Graph, id: NodeId) -> String {
    graph.node(id).label().to_string()
}

/// Per-channel `scale / sqrt(var + eps)` and `beta - mean * that`, computed in f64.
fn bn_affine(graph: &Graph, bn: NodeId, epsilon: f32) -> Option<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let p: Vec<ArcArray<f32, IxDyn>> = (1..5)
        .map(|k| const_f32(graph, graph.input(bn, k)))
        .collect::<Option<_>>()?;
    let n = p[0].len();
    if p.iter().any(|a| a.ndim() != 1 || a.len() != n) {
        return None;
    }
    let (scale, beta, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
    let s: Vec<f64> = (0..n)
        .map(|c| scale[c] as f64 / (var[c] as f64 + epsilon as f64).sqrt())
        .collect();
    let mean: Vec<f64> = (0..n).map(|c| mean[c] as f64).collect();
    let beta: Vec<f64> = (0..n).map(|c| beta[c] as f64).collect();
    Some((s, mean, beta))
}

/// Folds an inference BatchNormalization into the convolution that feeds it: `w' = w·s`,
/// `b' = (b − mean)·s + beta` with `s = scale / sqrt(var + eps)`; a conv without a bias gets one.
pub fn fold_batchnorm(
    graph: &mut Graph,
    info: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for &bn in &info.order {
        let Op::BatchNorm { epsilon } = graph.op(bn).clone() else {
            continue;
        };
        let Some(x) = graph.input(bn, 0) else {
            continue;
        };
        let conv = x.node;
        let plain_conv = match graph.op(conv) {
            Op::Conv(_) => true,
            Op::FusedConv { epilogue, .. } => epilogue.iter().all(|e| *e == Epilogue::Bias),
            _ => false,
        };
        if !plain_conv {
            report.skip(format!(
                "'{}': its input comes from {}, not a convolution (becomes a scale and shift)",
                label(graph, bn),
                graph.op(conv).onnx_name()
            ));
            continue;
        }
        if single_user(graph, x).is_none() {
            report.skip(format!(
                "'{}': the convolution's output has other readers",
                label(graph, bn)
            ));
            continue;
        }
        let (Some((s, mean, beta)), Some(w)) = (
            bn_affine(graph, bn, epsilon),
            const_f32(graph, graph.input(conv, 1)),
        ) else {
            report.skip(format!(
                "'{}': its parameters or the convolution's weights are not constant",
                label(graph, bn)
            ));
            continue;
        };
        let cout = w.shape()[0];
        if s.len() != cout {
            report.skip(format!(
                "'{}': {} channels but the convolution has {cout}",
                label(graph, bn),
                s.len()
            ));
            continue;
        }
        let bias: Vec<f64> = match graph.input(conv, 2) {
            Some(b) => match const_f32(graph, Some(b)) {
                Some(b) if b.len() == cout => b.iter().map(|&v| v as f64).collect(),
                _ => {
                    report.skip(format!(
                        "'{}': the convolution's bias is not a constant",
                        label(graph, bn)
                    ));
                    continue;
                }
            },
            None => vec![0.0; cout],
        };
        let mut w2: ArrayD<f32> = w.to_owned();
        for (c, mut plane) in w2.axis_iter_mut(Axis(0)).enumerate() {
            plane.mapv_inplace(|v| (v as f64 * s[c]) as f32);
        }
        let b2: Vec<f32> = (0..cout)
            .map(|c| ((bias[c] - mean[c]) * s[c] + beta[c]) as f32)
            .collect();
        let base = graph.node(conv).outputs[0].clone();
        let wc = graph.add_const(format!("{base}_folded_w"), Tensor::f32(w2));
        let bc = graph.add_const(
            format!("{base}_folded_b"),
            Tensor::f32(ArrayD::from_shape_vec(IxDyn(&[cout]), b2).expect("1-D")),
        );
        graph.set_input(conv, 1, Some(wc.into()));
        graph.set_input(conv, 2, Some(bc.into()));
        if let Op::FusedConv { epilogue, .. } = &mut graph.node_mut(conv).op {
            *epilogue = vec![Epilogue::Bias];
        }
        absorb(graph, conv, bn);
        report.fire("batchnorm-into-conv");
    }
    Ok(())
}

/// Turns a BatchNormalization that no convolution could absorb into `x · s + t` per channel.
pub fn batchnorm_to_affine(
    graph: &mut Graph,
    info: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for &bn in &info.order {
        let Op::BatchNorm { epsilon } = graph.op(bn).clone() else {
            continue;
        };
        let (Some(x), Some((s, mean, beta))) = (graph.input(bn, 0), bn_affine(graph, bn, epsilon))
        else {
            report.skip(format!(
                "'{}': its parameters are not constant",
                label(graph, bn)
            ));
            continue;
        };
        let Some(rank) = info.ty(x).map(|t| t.rank()) else {
            continue;
        };
        let mut shape = vec![s.len()];
        shape.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
        let scale: Vec<f32> = s.iter().map(|&v| v as f32).collect();
        let shift: Vec<f32> = (0..s.len())
            .map(|c| (beta[c] - mean[c] * s[c]) as f32)
            .collect();
        let out = graph.node(bn).outputs[0].clone();
        let name = graph.node(bn).name.clone();
        let sc = graph.add_const(
            format!("{out}_scale"),
            Tensor::f32(ArrayD::from_shape_vec(IxDyn(&shape), scale).expect("shape")),
        );
        let tc = graph.add_const(
            format!("{out}_shift"),
            Tensor::f32(ArrayD::from_shape_vec(IxDyn(&shape), shift).expect("shape")),
        );
        let mul = graph.add_node(
            format!("{name}/scale"),
            Op::Binary(resnetc_ir::BinOp::Mul),
            vec![format!("{out}_scaled")],
            &[Some(x), Some(sc.into())],
        );
        let add = graph.add_node(
            format!("{name}/shift"),
            Op::Binary(resnetc_ir::BinOp::Add),
            vec![format!("{out}_affine")],
            &[Some(mul.into()), Some(tc.into())],
        );
        absorb(graph, add, bn);
        report.fire("batchnorm-to-scale-shift");
    }
    Ok(())
}

/// AveragePool over the whole map and ReduceMean over H and W become GlobalAveragePool
/// (followed by a Flatten when ReduceMean dropped the reduced axes).
pub fn canonical_pooling(
    graph: &mut Graph,
    info: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for &id in &info.order {
        let Some(x) = graph.input(id, 0) else {
            continue;
        };
        let Some(xt) = info.ty(x).cloned() else {
            continue;
        };
        match graph.op(id).clone() {
            Op::AveragePool(p) => {
                let whole = xt.rank() == 4
                    && xt.shape[2] == Dim::Fixed(p.kernel[0])
                    && xt.shape[3] == Dim::Fixed(p.kernel[1]);
                if whole && p.padding == Padding::Explicit([0; 4]) {
                    graph.node_mut(id).op = Op::GlobalAveragePool;
                    report.fire("average-pool-is-global");
                } else {
                    report.skip(format!(
                        "'{}': the pool does not cover the whole {xt} map",
                        label(graph, id)
                    ));
                }
            }
            Op::ReduceMean { keepdims, .. } => {
                let axes = const_ints(graph, graph.input(id, 1));
                let hw = xt.rank() == 4
                    && axes.as_ref().is_some_and(|a| {
                        let mut a: Vec<i64> =
                            a.iter().map(|&x| if x < 0 { x + 4 } else { x }).collect();
                        a.sort();
                        a == [2, 3]
                    });
                if !hw {
                    report.skip(format!(
                        "'{}': ReduceMean over axes {axes:?} is not a spatial mean",
                        label(graph, id)
                    ));
                    continue;
                }
                graph.truncate_inputs(id, 1);
                graph.node_mut(id).op = Op::GlobalAveragePool;
                if !keepdims {
                    let out = graph.node(id).outputs[0].clone();
                    graph.node_mut(id).outputs[0] = format!("{out}_pooled");
                    let name = graph.node(id).name.clone();
                    let flat = graph.add_node(
                        format!("{name}/flatten"),
                        Op::Flatten { axis: 1 },
                        vec![out],
                        &[],
                    );
                    graph.replace_all_uses(ValueRef::new(id, 0), ValueRef::new(flat, 0));
                    graph.set_input(flat, 0, Some(ValueRef::new(id, 0)));
                }
                report.fire("reduce-mean-is-global");
            }
            _ => {}
        }
    }
    Ok(())
}

/// `Reshape(x, [N, -1])`-like and `Squeeze` patterns that keep the batch and merge the rest become
/// `Flatten(axis = 1)`.
pub fn canonical_flatten(
    graph: &mut Graph,
    info: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for &id in &info.order {
        if !matches!(
            graph.op(id),
            Op::Reshape { .. } | Op::Squeeze | Op::Flatten { .. }
        ) {
            continue;
        }
        let (x, out) = (graph.input(id, 0), ValueRef::new(id, 0));
        let (Some(xt), Some(ot)) = (x.and_then(|x| info.ty(x)), info.ty(out)) else {
            continue;
        };
        let merges_tail = xt.rank() >= 2 && ot.rank() == 2 && ot.shape[0] == xt.shape[0];
        if matches!(graph.op(id), Op::Flatten { axis: 1 }) || !merges_tail {
            if !merges_tail {
                report.skip(format!(
                    "'{}': {xt} → {ot} is not a flatten after the batch",
                    label(graph, id)
                ));
            }
            continue;
        }
        graph.truncate_inputs(id, 1);
        graph.node_mut(id).op = Op::Flatten { axis: 1 };
        report.fire("flatten");
    }
    Ok(())
}

/// One slice step of a `Slice` node: (axis, start, end, step).
fn slice_specs(graph: &Graph, id: NodeId, rank: usize) -> Option<Vec<(usize, i64, i64, i64)>> {
    let starts = const_ints(graph, graph.input(id, 1))?;
    let ends = const_ints(graph, graph.input(id, 2))?;
    let axes = match graph.input(id, 3) {
        Some(v) => const_ints(graph, Some(v))?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match graph.input(id, 4) {
        Some(v) => const_ints(graph, Some(v))?,
        None => vec![1; starts.len()],
    };
    if axes.len() != starts.len() || ends.len() != starts.len() || steps.len() != starts.len() {
        return None;
    }
    Some(
        (0..starts.len())
            .map(|k| {
                (
                    if axes[k] < 0 {
                        (axes[k] + rank as i64) as usize
                    } else {
                        axes[k] as usize
                    },
                    starts[k],
                    ends[k],
                    steps[k],
                )
            })
            .collect(),
    )
}

/// Recognizes CifarResNet's option-A shortcut — `Slice`s taking every `s`-th row and column from
/// the start, then a zero `Pad` on the channel axis only — and replaces it with one `Shortcut`.
pub fn fold_shortcut(
    graph: &mut Graph,
    info: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for &pad in &info.order {
        if !matches!(graph.op(pad), Op::Pad { .. }) || !graph.contains(pad) {
            continue;
        }
        let why = |m: &str| format!("'{}': {m}", label(graph, pad));
        let pads = const_ints(graph, graph.input(pad, 1));
        let zero = match graph.input(pad, 2) {
            None => true,
            Some(v) => const_f32(graph, Some(v)).is_some_and(|a| a.iter().all(|&x| x == 0.0)),
        };
        let (Some(pads), true, None) = (pads, zero, graph.input(pad, 3)) else {
            report.skip(why(
                "the pads or the pad value are not constant zeros over all axes",
            ));
            continue;
        };
        if pads.len() != 8
            || pads
                .iter()
                .enumerate()
                .any(|(k, &p)| p < 0 || (k % 4 != 1 && p != 0))
        {
            report.skip(why("it pads more than the channel axis"));
            continue;
        }
        // Walk back through the single-use Slices feeding the Pad.
        let mut src = graph.input(pad, 0).expect("validated");
        let mut slices = Vec::new();
        let mut stride = [None::<i64>; 2];
        let mut ok = true;
        while let Op::Slice = graph.op(src.node) {
            let Some(xt) = graph.input(src.node, 0).and_then(|x| info.ty(x)) else {
                break;
            };
            if single_user(graph, src).is_none() {
                break;
            }
            let Some(specs) = slice_specs(graph, src.node, xt.rank()) else {
                ok = false;
                break;
            };
            for (axis, start, end, step) in specs {
                let full_end = xt
                    .shape
                    .get(axis)
                    .and_then(|d| d.fixed())
                    .is_some_and(|d| end >= d as i64);
                match axis {
                    2 | 3 if start == 0 && step >= 1 && full_end && stride[axis - 2].is_none() => {
                        stride[axis - 2] = Some(step)
                    }
                    _ if start == 0 && step == 1 && full_end => {}
                    _ => ok = false,
                }
            }
            slices.push(src.node);
            src = graph.input(src.node, 0).expect("validated");
        }
        let (true, [Some(sh), Some(sw)]) = (ok, stride) else {
            report.skip(why("its input is not an every-s-th-pixel subsample"));
            continue;
        };
        if sh != sw || info.ty(src).is_none_or(|t| t.rank() != 4) {
            report.skip(why("the subsample is not square over an NCHW tensor"));
            continue;
        }
        let op = Op::Shortcut {
            stride: sh as usize,
            pad_before: pads[1] as usize,
            pad_after: pads[5] as usize,
        };
        let name = graph.node(pad).name.clone();
        let sc = graph.add_node(
            name,
            op,
            vec![format!("{}_shortcut", graph.node(pad).outputs[0])],
            &[Some(src)],
        );
        absorb(graph, sc, pad);
        for s in slices {
            graph.remove_node(s);
        }
        report.fire("option-a-shortcut");
    }
    Ok(())
}

/// Turns each convolution into a `FusedConv` and moves the bias, the residual Add (reading through
/// a `Shortcut` in place) and the ReLU that follow it into its epilogue.
pub fn fuse_conv_epilogue(
    graph: &mut Graph,
    info: &GraphInfo,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let ids: Vec<NodeId> = graph.node_ids().collect();
    for id in ids {
        if let Op::Conv(c) = graph.op(id).clone() {
            let epilogue = if graph.input(id, 2).is_some() {
                vec![Epilogue::Bias]
            } else {
                vec![]
            };
            graph.node_mut(id).op = Op::FusedConv { conv: c, epilogue };
            report.fire("conv");
        }
    }
    // Turning a Conv into a FusedConv with the same operands changes no node, edge or type: the
    // manager's info still describes the graph.
    for &id in &info.order {
        if !graph.contains(id) || !matches!(graph.op(id), Op::FusedConv { .. }) {
            continue;
        }
        loop {
            let out = ValueRef::new(id, 0);
            let Some((user, slot)) = single_user(graph, out) else {
                break;
            };
            let Op::FusedConv { epilogue, .. } = graph.op(id).clone() else {
                unreachable!()
            };
            let has_relu = epilogue.contains(&Epilogue::Relu);
            let has_add = epilogue
                .iter()
                .any(|e| matches!(e, Epilogue::AddResidual(_)));
            match graph.op(user).clone() {
                Op::Relu if !has_relu => {
                    push_step(graph, id, Epilogue::Relu);
                    absorb(graph, id, user);
                    report.fire("relu");
                }
                Op::Binary(resnetc_ir::BinOp::Add) if !has_relu && !has_add => {
                    let Some(other) = graph.input(user, 1 - slot) else {
                        break;
                    };
                    let (Some(ot), Some(rt)) = (info.ty(out), info.ty(other)) else {
                        break;
                    };
                    let (residual, read) = match graph.op(other.node).clone() {
                        Op::Shortcut {
                            stride, pad_before, ..
                        } if single_user(graph, other).is_some() => (
                            graph.input(other.node, 0).expect("validated"),
                            ResidualRead::Subsampled { stride, pad_before },
                        ),
                        _ if ot == rt => (other, ResidualRead::Direct),
                        _ => {
                            report.skip(format!(
                                "'{}': the Add broadcasts {rt} onto {ot}; not a residual",
                                label(graph, user)
                            ));
                            break;
                        }
                    };
                    graph.set_input(id, 3, Some(residual));
                    push_step(graph, id, Epilogue::AddResidual(read));
                    if let ResidualRead::Subsampled { .. } = read {
                        graph.remove_node(other.node);
                        report.fire("residual-through-shortcut");
                    } else {
                        report.fire("residual");
                    }
                    absorb(graph, id, user);
                }
                _ => break,
            }
        }
    }
    Ok(())
}

fn push_step(graph: &mut Graph, id: NodeId, step: Epilogue) {
    if let Op::FusedConv { epilogue, .. } = &mut graph.node_mut(id).op {
        epilogue.push(step);
    }
}
