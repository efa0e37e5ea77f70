//! The IR on its own: canonical order, validation, inference of shapes through shape arithmetic.

use resnetc_ir::{
    validate, BinOp, DType, Dim, Graph, Op, Tensor, TensorType, ValidationError, ValueRef,
};

fn batch_input(g: &mut Graph) -> ValueRef {
    let ty = TensorType::new(
        DType::F32,
        vec![
            Dim::Sym("N".into()),
            Dim::Fixed(64),
            Dim::Fixed(1),
            Dim::Fixed(1),
        ],
    );
    g.add_input("x", ty).into()
}

/// PyTorch's `x.view(x.size(0), -1)`: Shape → Gather(0) → Unsqueeze → Concat([.., -1]) → Reshape.
fn flatten_chain(g: &mut Graph, x: ValueRef) -> ValueRef {
    let shape = g.add_node(
        "shape",
        Op::Shape {
            start: 0,
            end: None,
        },
        vec!["s".into()],
        &[Some(x)],
    );
    let zero = g.add_const(
        "zero",
        Tensor::I64(ndarray::ArcArray::from_elem(ndarray::IxDyn(&[]), 0)),
    );
    let n = g.add_node(
        "gather",
        Op::Gather { axis: 0 },
        vec!["n".into()],
        &[Some(shape.into()), Some(zero.into())],
    );
    let axes = g.add_const("axes", Tensor::i64_vec(vec![0]));
    let n1 = g.add_node(
        "unsq",
        Op::Unsqueeze,
        vec!["n1".into()],
        &[Some(n.into()), Some(axes.into())],
    );
    let minus1 = g.add_const("m1", Tensor::i64_vec(vec![-1]));
    let spec = g.add_node(
        "concat",
        Op::Concat { axis: 0 },
        vec!["spec".into()],
        &[Some(n1.into()), Some(minus1.into())],
    );
    g.add_node(
        "reshape",
        Op::Reshape { allowzero: false },
        vec!["y".into()],
        &[Some(x), Some(spec.into())],
    )
    .into()
}

#[test]
fn inference_sees_through_the_flatten_chain() {
    let mut g = Graph::new();
    let x = batch_input(&mut g);
    let y = flatten_chain(&mut g, x);
    g.add_output("y", y);
    let info = validate(&g).unwrap();
    assert_eq!(info.ty(y).unwrap().to_string(), "f32[N,64]");
}

#[test]
fn topo_order_does_not_depend_on_insertion_order() {
    let build = |reversed: bool| {
        let mut g = Graph::new();
        let x = batch_input(&mut g);
        let (a, b) = if reversed {
            let b = g.add_node("b", Op::Relu, vec!["b".into()], &[Some(x)]);
            let a = g.add_node("a", Op::Relu, vec!["a".into()], &[Some(x)]);
            (a, b)
        } else {
            let a = g.add_node("a", Op::Relu, vec!["a".into()], &[Some(x)]);
            let b = g.add_node("b", Op::Relu, vec!["b".into()], &[Some(x)]);
            (a, b)
        };
        let s = g.add_node(
            "sum",
            Op::Binary(BinOp::Add),
            vec!["s".into()],
            &[Some(a.into()), Some(b.into())],
        );
        g.add_output("s", s.into());
        let info = validate(&g).unwrap();
        resnetc_ir::dump(&g, Some(&info))
    };
    assert_eq!(build(false), build(true));
}

#[test]
fn cycles_are_reported_with_a_node() {
    let mut g = Graph::new();
    let x = batch_input(&mut g);
    let a = g.add_node(
        "a",
        Op::Binary(BinOp::Add),
        vec!["a".into()],
        &[Some(x), None],
    );
    let b = g.add_node("b", Op::Relu, vec!["b".into()], &[Some(a.into())]);
    g.set_input(a, 1, Some(b.into()));
    g.add_output("b", b.into());
    assert!(matches!(validate(&g), Err(ValidationError::Cycle { .. })));
}

#[test]
fn missing_required_inputs_are_reported() {
    let mut g = Graph::new();
    let x = batch_input(&mut g);
    let c = g.add_node(
        "c",
        Op::Binary(BinOp::Add),
        vec!["c".into()],
        &[None, Some(x)],
    );
    g.add_output("c", c.into());
    let err = validate(&g).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'c' (Add, opset 0): required input 0 is missing"
    );
}

#[test]
fn broadcast_mismatch_is_a_type_error() {
    let mut g = Graph::new();
    let x = batch_input(&mut g);
    let k = g.add_const(
        "k",
        Tensor::f32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[3, 1, 1]))),
    );
    let c = g.add_node(
        "c",
        Op::Binary(BinOp::Add),
        vec!["c".into()],
        &[Some(x), Some(k.into())],
    );
    g.add_output("c", c.into());
    let err = validate(&g).unwrap_err();
    assert!(err.to_string().contains("do not broadcast"), "{err}");
}

#[test]
fn dead_nodes_and_removal() {
    let mut g = Graph::new();
    let x = batch_input(&mut g);
    let live = g.add_node("live", Op::Relu, vec!["l".into()], &[Some(x)]);
    let dead = g.add_node("dead", Op::Relu, vec!["d".into()], &[Some(x)]);
    g.add_output("l", live.into());
    assert_eq!(g.dead_nodes(), vec![dead]);
    g.remove_node(dead);
    assert!(validate(&g).is_ok());
    assert_eq!(g.node_count(), 2);
}
