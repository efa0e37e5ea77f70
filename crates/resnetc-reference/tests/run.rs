//! Whole graphs: results checked against an independent computation, the observe/reinject hook,
//! and the errors `run` reports for bad graphs and bad inputs.

mod common;

use common::*;
use resnetc_ir::{
    BinOp, DType, Dim, Gemm, Graph, NodeId, Op, Padding, Tensor, TensorType, ValidationError,
};
use resnetc_reference::{run, run_with, EvalError, ExecError, InputProblem};

fn sym(dims: &[Option<usize>]) -> Vec<Dim> {
    dims.iter()
        .map(|d| d.map_or(Dim::Sym("N".into()), Dim::Fixed))
        .collect()
}

/// Parameters of the small network below, kept so the test can recompute it.
struct Small {
    graph: Graph,
    w1: Tensor,
    b1: Tensor,
    bn: [Vec<f32>; 4],
    w2: Tensor,
    fc: Tensor,
    fc_b: Tensor,
}

/// x → conv 3x3 (+bias) → BN → relu → + conv 1x1(x) → GAP → flatten → gemm, batch symbolic.
fn small() -> Small {
    let mut b = Builder::new(7);
    let x = b.g.add_input(
        "x",
        TensorType::new(DType::F32, sym(&[None, Some(2), Some(4), Some(4)])),
    );
    let w1 = b.rng.tensor(&[3, 2, 3, 3]);
    let b1 = b.rng.tensor(&[3]);
    let bn = [
        vec![1.5, 0.5, 1.0],
        vec![0.1, -0.2, 0.3],
        vec![0.05, -0.1, 0.0],
        vec![0.5, 2.0, 1.0],
    ];
    let w2 = b.rng.tensor(&[3, 2, 1, 1]);
    let fc = b.rng.tensor(&[2, 3]);
    let fc_b = b.rng.tensor(&[2]);
    let (cw1, cb1, cw2, cfc, cfc_b) = (
        b.constant(w1.clone()),
        b.constant(b1.clone()),
        b.constant(w2.clone()),
        b.constant(fc.clone()),
        b.constant(fc_b.clone()),
    );
    let c1 = b.node(
        "conv",
        conv([3, 3], [1, 1], [1, 1], Padding::Explicit([1; 4]), 1),
        &[Some(x.into()), Some(cw1.into()), Some(cb1.into())],
    );
    let params: Vec<NodeId> = bn
        .iter()
        .map(|p| b.constant(f32t(&[3], p.clone())))
        .collect();
    let mut bn_in = vec![Some(c1.into())];
    bn_in.extend(params.iter().map(|&p| Some(p.into())));
    let n = b.node("bn", Op::BatchNorm { epsilon: 1e-5 }, &bn_in);
    let r = b.relu(n);
    let s = b.node(
        "shortcut",
        conv([1, 1], [1, 1], [1, 1], Padding::Explicit([0; 4]), 1),
        &[Some(x.into()), Some(cw2.into())],
    );
    let sum = b.node(
        "add",
        Op::Binary(BinOp::Add),
        &[Some(r.into()), Some(s.into())],
    );
    let gap = b.node("gap", Op::GlobalAveragePool, &[Some(sum.into())]);
    let flat = b.node("flatten", Op::Flatten { axis: 1 }, &[Some(gap.into())]);
    let gemm = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    });
    let y = b.node(
        "fc",
        gemm,
        &[Some(flat.into()), Some(cfc.into()), Some(cfc_b.into())],
    );
    b.g.add_output("y", y.into());
    Small {
        graph: b.g,
        w1,
        b1,
        bn,
        w2,
        fc,
        fc_b,
    }
}

/// The small network computed directly, in f64 after the convolutions.
fn expected(s: &Small, x: &Tensor) -> Vec<f64> {
    let xs = f32s(x);
    let n = x.shape()[0];
    let (c1, _) = naive_conv(
        &xs,
        [n, 2, 4, 4],
        &f32s(&s.w1),
        [3, 2, 3, 3],
        Some(&f32s(&s.b1)),
        [1, 1],
        [1, 1],
        [1; 4],
        1,
    );
    let (c2, _) = naive_conv(
        &xs,
        [n, 2, 4, 4],
        &f32s(&s.w2),
        [3, 2, 1, 1],
        None,
        [1, 1],
        [1, 1],
        [0; 4],
        1,
    );
    let [scale, bias, mean, var] = &s.bn;
    let (fc, fc_b) = (f32s(&s.fc), f32s(&s.fc_b));
    let mut out = Vec::new();
    for b in 0..n {
        let mut pooled = [0f64; 3];
        for (c, p) in pooled.iter_mut().enumerate() {
            for i in 0..16 {
                let k = (b * 3 + c) * 16 + i;
                let bn = (c1[k] as f64 - mean[c] as f64) / (var[c] as f64 + 1e-5).sqrt()
                    * scale[c] as f64
                    + bias[c] as f64;
                *p += bn.max(0.0) + c2[k] as f64;
            }
            *p /= 16.0;
        }
        for o in 0..2 {
            out.push(
                fc_b[o] as f64
                    + (0..3)
                        .map(|c| pooled[c] * fc[o * 3 + c] as f64)
                        .sum::<f64>(),
            );
        }
    }
    out
}

#[test]
fn small_network_matches_direct_computation() {
    let s = small();
    for batch in [1, 2] {
        let x = Gen::new(batch as u64).tensor(&[batch, 2, 4, 4]);
        let y = run(&s.graph, std::slice::from_ref(&x)).unwrap();
        assert_eq!(y.len(), 1);
        assert_eq!(y[0].shape(), [batch, 2]);
        for (got, want) in f32s(&y[0]).iter().zip(expected(&s, &x)) {
            assert!((*got as f64 - want).abs() < 1e-5, "got {got}, want {want}");
        }
    }
}

#[test]
fn observe_sees_every_live_node_in_order_and_can_reinject() {
    let s = small();
    let x = Gen::new(3).tensor(&[2, 2, 4, 4]);
    let mut seen = Vec::new();
    let plain = run_with(&s.graph, std::slice::from_ref(&x), &mut |id, _| {
        seen.push(id);
        None
    })
    .unwrap();
    assert_eq!(seen, resnetc_ir::validate(&s.graph).unwrap().order);
    assert_eq!(plain, run(&s.graph, std::slice::from_ref(&x)).unwrap());

    // Zero the relu's output: the add then passes the shortcut through unchanged.
    let label = |id: NodeId| s.graph.node(id).label().to_string();
    let mut shortcut = None;
    let mut sum = None;
    let zeroed = run_with(&s.graph, &[x], &mut |id, t| match label(id).as_str() {
        l if l.starts_with("relu") => {
            Some(Tensor::F32(t.as_f32().unwrap().mapv(|_| 0.0).into_shared()))
        }
        l if l.starts_with("shortcut") => {
            shortcut = Some(t.clone());
            None
        }
        l if l.starts_with("add") => {
            sum = Some(t.clone());
            None
        }
        _ => None,
    })
    .unwrap();
    assert_eq!(sum.unwrap(), shortcut.unwrap());
    assert_ne!(zeroed, plain);
}

#[test]
fn dynamic_reshape_from_shape_arithmetic() {
    // PyTorch's `x.view(x.size(0), -1)`: Shape → Gather → Unsqueeze → Concat([n, -1]) → Reshape.
    let mut b = Builder::new(1);
    let x = b.g.add_input(
        "x",
        TensorType::new(DType::F32, sym(&[None, Some(3), Some(2), Some(2)])),
    );
    let shape = b.node(
        "shape",
        Op::Shape {
            start: 0,
            end: None,
        },
        &[Some(x.into())],
    );
    let zero = b.constant(i64_scalar(0));
    let n = b.node(
        "gather",
        Op::Gather { axis: 0 },
        &[Some(shape.into()), Some(zero.into())],
    );
    let axes = b.constant(ints(&[0]));
    let n1 = b.node(
        "unsqueeze",
        Op::Unsqueeze,
        &[Some(n.into()), Some(axes.into())],
    );
    let rest = b.constant(ints(&[-1]));
    let spec = b.node(
        "concat",
        Op::Concat { axis: 0 },
        &[Some(n1.into()), Some(rest.into())],
    );
    let y = b.node(
        "reshape",
        Op::Reshape { allowzero: false },
        &[Some(x.into()), Some(spec.into())],
    );
    b.g.add_output("y", y.into());
    for batch in [1, 3] {
        let input = iota(&[batch, 3, 2, 2]);
        let out = run(&b.g, std::slice::from_ref(&input)).unwrap();
        assert_eq!(out[0].shape(), [batch, 12]);
        assert_eq!(f32s(&out[0]), f32s(&input));
    }
}

#[test]
fn resnet8_runs_and_is_deterministic() {
    let g = cifar_resnet(1, 10, 2, 42);
    let x = Gen::new(9).tensor(&[2, 3, 32, 32]);
    let a = run(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(a[0].shape(), [2, 10]);
    assert!(f32s(&a[0]).iter().all(|v| v.is_finite()));
    assert_eq!(a, run(&g, &[x]).unwrap());
}

/// Two inputs sharing the symbolic batch N, divided elementwise (integers).
fn divide() -> Graph {
    let mut g = Graph::new();
    let a = g.add_input("a", TensorType::new(DType::I64, sym(&[None, Some(2)])));
    let b = g.add_input("b", TensorType::new(DType::I64, sym(&[None, Some(2)])));
    let d = g.add_node(
        "div",
        Op::Binary(BinOp::Div),
        vec!["q".into()],
        &[Some(a.into()), Some(b.into())],
    );
    g.add_output("q", d.into());
    g
}

#[test]
fn input_errors() {
    let g = divide();
    let ok = i64t(&[2, 2], vec![1; 4]);
    assert_eq!(
        run(&g, std::slice::from_ref(&ok)).unwrap_err(),
        ExecError::InputCount {
            expected: 2,
            got: 1
        }
    );
    let problem = |t: &Tensor, index| match run(&g, &[ok.clone(), t.clone()]).unwrap_err() {
        ExecError::Input {
            index: i, problem, ..
        } => {
            assert_eq!(i, index);
            problem
        }
        e => panic!("unexpected error {e}"),
    };
    assert_eq!(
        problem(&f32t(&[2, 2], vec![0.0; 4]), 1),
        InputProblem::DType {
            expected: DType::I64,
            got: DType::F32
        }
    );
    assert_eq!(
        problem(&ints(&[1, 1]), 1),
        InputProblem::Rank {
            expected: 2,
            got: vec![2]
        }
    );
    assert_eq!(
        problem(&i64t(&[2, 3], vec![1; 6]), 1),
        InputProblem::Dim {
            axis: 1,
            expected: 2,
            got: 3
        }
    );
    let e = run(&g, &[ok.clone(), i64t(&[3, 2], vec![1; 6])]).unwrap_err();
    assert_eq!(
        e,
        ExecError::Input {
            index: 1,
            name: "b".into(),
            expected: Box::new(TensorType::new(DType::I64, sym(&[None, Some(2)]))),
            problem: InputProblem::Symbol {
                axis: 0,
                symbol: "N".into(),
                got: 3,
                bound: 2,
                bound_by: "a".into()
            },
        }
    );
    assert_eq!(
        e.to_string(),
        "input 1 'b' (i64[N,2]): dimension 0 is 'N' = 3, but 'N' = 2 in input 'a'"
    );
    // The symbol may take any value as long as it is the same everywhere.
    let three = i64t(&[3, 2], vec![6; 6]);
    assert_eq!(
        run(&g, &[three.clone(), three]).unwrap(),
        vec![i64t(&[3, 2], vec![1; 6])]
    );
}

#[test]
fn node_errors_name_the_node() {
    let g = divide();
    let e = run(&g, &[i64t(&[1, 2], vec![1, 1]), i64t(&[1, 2], vec![1, 0])]).unwrap_err();
    assert_eq!(
        e,
        ExecError::Node {
            node: "div".into(),
            op: "Div",
            source: EvalError::DivisionByZero { op: "Div" }
        }
    );
    assert_eq!(e.to_string(), "node 'div': Div: integer division by zero");
}

#[test]
fn invalid_graphs_are_refused() {
    let mut g = Graph::new();
    g.add_input("x", TensorType::fixed(DType::F32, &[1]));
    assert_eq!(
        run(&g, &[f32t(&[1], vec![0.0])]).unwrap_err(),
        ExecError::Invalid(ValidationError::NoOutputs)
    );

    let mut g = Graph::new();
    let r = g.add_node("r", Op::Relu, vec!["r".into()], &[]);
    g.add_output("r", r.into());
    assert!(matches!(
        run(&g, &[]).unwrap_err(),
        ExecError::Invalid(ValidationError::Arity { .. })
    ));

    // An Input node that Graph::inputs does not list has nothing bound to it.
    let mut g = Graph::new();
    let x = g.add_node(
        "stray",
        Op::Input {
            index: 0,
            ty: TensorType::fixed(DType::F32, &[1]),
        },
        vec!["stray".into()],
        &[],
    );
    g.add_output("y", x.into());
    assert_eq!(
        run(&g, &[]).unwrap_err(),
        ExecError::UnboundInput {
            node: "stray".into()
        }
    );

    // Graph::inputs naming a node that is not an Input.
    let mut g = Graph::new();
    let c = g.add_const("c", f32t(&[1], vec![1.0]));
    g.inputs.push(c);
    g.add_output("c", c.into());
    let e = run(&g, &[f32t(&[1], vec![0.0])]).unwrap_err();
    assert_eq!(e.to_string(), "invalid graph: node 'c' (Constant, opset 0): is listed among the graph inputs but is not an Input");
}
