//! Opset-aware import: operands that older opsets pass as attributes arrive as inputs in the IR, and
//! the result computes the same as the modern form.

mod common;

use common::value_info;
use prost::Message;
use resnetc_ir::{Op, Tensor};
use resnetc_onnx::proto::attribute_proto::AttributeType;
use resnetc_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(format!("{op}_node")),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(4),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(GraphProto {
            name: Some("t".into()),
            node: nodes,
            initializer,
            input: inputs,
            output: vec![ValueInfoProto {
                name: Some("y".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn run(bytes: &[u8], x: Tensor) -> Tensor {
    let mut g = resnetc_onnx::import_bytes(bytes, None).unwrap();
    resnetc_passes::canonicalize(&mut g).unwrap();
    resnetc_reference::run(&g, &[x]).unwrap().remove(0)
}

fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::f32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), (0..n).map(|v| v as f32).collect())
            .unwrap(),
    )
}

#[test]
fn slice_and_pad_as_attributes_before_opsets_10_and_11() {
    // x[0, 0:3] → Slice(starts=[1], ends=[3], axes=[1]) → [1, 2]; Pad(pads=[0,1,0,2], value=-1) → [1, 5].
    let nodes = vec![
        node(
            "Slice",
            &["x"],
            "s",
            vec![ints("starts", &[1]), ints("ends", &[3]), ints("axes", &[1])],
        ),
        node(
            "Pad",
            &["s"],
            "y",
            vec![
                ints("pads", &[0, 1, 0, 2]),
                AttributeProto {
                    name: Some("value".into()),
                    r#type: Some(AttributeType::Float as i32),
                    f: Some(-1.0),
                    ..Default::default()
                },
            ],
        ),
    ];
    let bytes = model(9, nodes, vec![], vec![value_info("x", &[1, 4])]);
    let y = run(&bytes, iota(&[1, 4]));
    assert_eq!(y.to_f64s(), vec![-1.0, 1.0, 2.0, -1.0, -1.0]);
}

#[test]
fn unsqueeze_squeeze_and_reduce_mean_axes_as_attributes() {
    let nodes = vec![
        node("Unsqueeze", &["x"], "u", vec![ints("axes", &[0])]),
        node("ReduceMean", &["u"], "m", vec![ints("axes", &[2])]),
        node("Squeeze", &["m"], "y", vec![ints("axes", &[0, 2])]),
    ];
    let bytes = model(11, nodes, vec![], vec![value_info("x", &[2, 3])]);
    let y = run(&bytes, iota(&[2, 3]));
    assert_eq!(y.shape(), &[2]);
    assert_eq!(y.to_f64s(), vec![1.0, 4.0]);
    // The IR holds the axes as constant inputs, whatever the opset.
    let g = resnetc_onnx::import_bytes(&bytes, None).unwrap();
    let unsq = g
        .node_ids()
        .find(|&id| matches!(g.op(id), Op::Unsqueeze))
        .unwrap();
    assert!(matches!(
        g.op(g.input(unsq, 1).unwrap().node),
        Op::Constant(_)
    ));
}

#[test]
fn an_initializer_also_listed_as_input_is_a_constant() {
    let w = TensorProto {
        name: Some("w".into()),
        dims: vec![1, 4],
        data_type: Some(1),
        float_data: vec![1.0, 2.0, 3.0, 4.0],
        ..Default::default()
    };
    let bytes = model(
        13,
        vec![node("Add", &["x", "w"], "y", vec![])],
        vec![w],
        vec![value_info("x", &[1, 4]), value_info("w", &[1, 4])],
    );
    let g = resnetc_onnx::import_bytes(&bytes, None).unwrap();
    assert_eq!(g.inputs.len(), 1, "only x is an input");
    let y = run(&bytes, iota(&[1, 4]));
    assert_eq!(y.to_f64s(), vec![1.0, 3.0, 5.0, 7.0]);
}
