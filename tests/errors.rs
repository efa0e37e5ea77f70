//! Bad input gets a typed error that names the node, op and opset and says what to do — never a
//! panic, a hang or a huge allocation. Each case's message is snapshotted.

mod common;

use common::value_info;

use prost::Message;

use resnetc_onnx::proto::tensor_proto::DataLocation;
use resnetc_onnx::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
};

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn weight(name: &str, dims: &[i64], n: usize) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        raw_data: Some(vec![0u8; n * 4]),
        ..Default::default()
    }
}

/// x[1,3,4,4] → Conv(w) → Relu → y: small and valid.
fn model() -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            name: Some("tiny".into()),
            node: vec![
                node("conv", "Conv", &["x", "w"], &["c"]),
                node("relu", "Relu", &["c"], &["y"]),
            ],
            initializer: vec![weight("w", &[2, 3, 1, 1], 6)],
            input: vec![value_info("x", &[1, 3, 4, 4])],
            output: vec![value_info("y", &[1, 2, 4, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn graph(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().unwrap()
}

fn import_error(m: &ModelProto) -> String {
    import_bytes_error(&m.encode_to_vec(), None)
}

fn import_bytes_error(bytes: &[u8], dir: Option<&std::path::Path>) -> String {
    match resnetc_onnx::import_bytes(bytes, dir) {
        Ok(_) => panic!("the model was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_base_model_is_valid() {
    let g = resnetc_onnx::import_bytes(&model().encode_to_vec(), None).unwrap();
    assert_eq!(g.node_count(), 4);
}

#[test]
fn truncated_file() {
    let bytes =
        std::fs::read(common::repo().join("fixtures/models/r20_a_ts17_static.onnx")).unwrap();
    insta::assert_snapshot!(import_bytes_error(&bytes[..bytes.len() / 2], None));
}

#[test]
fn random_bytes() {
    // A fixed xorshift stream: reproducible garbage.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    insta::assert_snapshot!(import_bytes_error(&bytes, None));
}

#[test]
fn unknown_op() {
    let mut m = model();
    graph(&mut m).node[1].op_type = Some("Softplus".into());
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn custom_domain_op() {
    let mut m = model();
    graph(&mut m).node[1].domain = Some("com.example".into());
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn unsupported_opset() {
    let mut m = model();
    m.opset_import[0].version = Some(3);
    insta::assert_snapshot!(import_error(&m));
    m.opset_import[0].version = Some(99);
    insta::assert_snapshot!("unsupported_opset_future", import_error(&m));
}

#[test]
fn dangling_input_name() {
    let mut m = model();
    graph(&mut m).node[1].input[0] = "nowhere".into();
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn duplicate_output_name() {
    let mut m = model();
    graph(&mut m).node[1].output[0] = "c".into();
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn cycle() {
    let mut m = model();
    let g = graph(&mut m);
    // conv reads relu's output, relu reads conv's: a two-node cycle.
    g.node[0].input[0] = "y".into();
    g.output[0].name = Some("c".into());
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn raw_data_length_disagrees_with_dims() {
    let mut m = model();
    graph(&mut m).initializer[0].raw_data = Some(vec![0u8; 10]);
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn negative_dims() {
    let mut m = model();
    graph(&mut m).initializer[0].dims = vec![2, -3, 1, 1];
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn overflowing_dims() {
    let mut m = model();
    graph(&mut m).initializer[0].dims = vec![1 << 40, 1 << 40, 1 << 40, 1];
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn huge_dims_are_refused_before_allocating() {
    let mut m = model();
    graph(&mut m).initializer[0].dims = vec![1 << 20, 1 << 20, 1, 1];
    insta::assert_snapshot!(import_error(&m));
}

/// The base model with its weight stored in an external file at `location`.
fn with_external_weight(location: &str) -> ModelProto {
    let mut m = model();
    let w = &mut graph(&mut m).initializer[0];
    w.raw_data = None;
    w.data_location = Some(DataLocation::External as i32);
    w.external_data = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some(location.into()),
    }];
    m
}

#[test]
fn external_data_outside_the_model_folder() {
    let dir = common::tmp("ext");
    let m = with_external_weight("../../etc/passwd");
    insta::assert_snapshot!(import_bytes_error(&m.encode_to_vec(), Some(dir.path())));
    let m = with_external_weight("/etc/passwd");
    insta::assert_snapshot!(
        "external_data_absolute_path",
        import_bytes_error(&m.encode_to_vec(), Some(dir.path()))
    );
}

#[test]
fn external_data_inside_the_folder_loads() {
    let dir = common::tmp("ext-ok");
    let bytes: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    std::fs::write(dir.path().join("weights.bin"), &bytes).unwrap();
    let m = with_external_weight("weights.bin");
    let g = resnetc_onnx::import_bytes(&m.encode_to_vec(), Some(dir.path())).unwrap();
    let w = g.node_ids().find_map(|id| match g.op(id) {
        resnetc_ir::Op::Constant(t) => Some(t.clone()),
        _ => None,
    });
    assert_eq!(w.unwrap().to_f64s(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

/// External data must be a regular file: a FIFO used to block the import forever, a folder
/// failed only at read. Checked before opening; the offset and length against the file's size
/// before reading, and only the tensor's bytes are read.
#[test]
fn external_data_must_be_a_regular_file_long_enough() {
    let dir = common::tmp("ext-kind");
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let mut cases = vec![("folder", "is not a regular file")];
    #[cfg(unix)]
    {
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        cases.push(("fifo", "is not a regular file"));
    }
    std::fs::write(dir.path().join("short.bin"), [0u8; 20]).unwrap();
    cases.push((
        "short.bin",
        "has 20 bytes after offset 0, the tensor needs 24",
    ));
    for (location, want) in cases {
        let m = with_external_weight(location);
        let err = import_bytes_error(&m.encode_to_vec(), Some(dir.path()));
        assert!(err.contains(want), "{location}: {err}");
    }
    let mut m = with_external_weight("short.bin");
    graph(&mut m).initializer[0]
        .external_data
        .push(StringStringEntryProto {
            key: Some("offset".into()),
            value: Some("4096".into()),
        });
    let err = import_bytes_error(&m.encode_to_vec(), Some(dir.path()));
    assert!(err.contains("offset 4096 is past the end"), "{err}");
}

/// A node with too many inputs is refused before any of them is connected (connecting them one
/// by one was quadratic: 39 s for 200,000): by the limit on inputs per node, then by its arity.
#[test]
fn arity_is_checked_before_connecting() {
    let mut m = model();
    let inputs: Vec<String> = (0..200_000).map(|_| "c".to_string()).collect();
    graph(&mut m).node[1] = NodeProto {
        input: inputs,
        ..node("add", "Add", &[], &["y"])
    };
    let err = import_error(&m);
    assert!(
        err.contains("'add'") && err.contains("above resnetc's limit 'inputs per node' (4096"),
        "{err}"
    );
    graph(&mut m).node[1] = node("add", "Add", &["c", "c", "c"], &["y"]);
    let err = import_error(&m);
    assert!(
        err.contains("'add'") && err.contains("has 3 inputs; it takes 2"),
        "{err}"
    );
}

/// Each limit a file can reach is checked before the work it sizes and named in the error.
#[test]
fn limits_are_named() {
    // Nodes: 100,001 Identity nodes are refused by their count, before any is built.
    let mut m = model();
    let g = graph(&mut m);
    g.node = (0..100_001)
        .map(|i| {
            let from = if i == 0 {
                "x".to_string()
            } else {
                format!("v{}", i - 1)
            };
            node(&format!("id{i}"), "Identity", &[&from], &[&format!("v{i}")])
        })
        .collect();
    let err = import_error(&m);
    assert!(
        err.contains("above resnetc's limit 'nodes' (100000"),
        "{err}"
    );
    // Rank: a nine-dimensional initializer.
    let mut m = model();
    graph(&mut m).initializer.push(weight("deep", &[1; 9], 1));
    let err = import_error(&m);
    assert!(
        err.contains("tensor 'deep'") && err.contains("limit 'rank' (8"),
        "{err}"
    );
    // Padding: a Conv padded by 65536 on one side (it once made a 2 GiB plane).
    let mut m = model();
    graph(&mut m).node[0]
        .attribute
        .push(resnetc_onnx::proto::AttributeProto {
            name: Some("pads".into()),
            r#type: Some(resnetc_onnx::proto::attribute_proto::AttributeType::Ints as i32),
            ints: vec![1, 65536, 1, 1],
            ..Default::default()
        });
    let err = import_error(&m);
    assert!(
        err.contains("'conv'") && err.contains("limit 'padding' (4096"),
        "{err}"
    );
}

/// Leniency decided per case (onnxruntime refuses all three): a duplicate attribute, a tensor
/// whose values are stored twice, and an IR version outside 3..=13 are refused; a file without an
/// IR version, and unknown attributes, are accepted.
#[test]
fn what_onnxruntime_refuses_is_refused() {
    let mut m = model();
    let attr = |v: i64| resnetc_onnx::proto::AttributeProto {
        name: Some("group".into()),
        r#type: Some(resnetc_onnx::proto::attribute_proto::AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    };
    graph(&mut m).node[0].attribute = vec![attr(1), attr(2)];
    let err = import_error(&m);
    assert!(
        err.contains("'conv'") && err.contains("attribute 'group': appears twice"),
        "{err}"
    );

    let mut m = model();
    graph(&mut m).initializer[0].float_data = vec![0.0; 6];
    let err = import_error(&m);
    assert!(err.contains("tensor 'w' holds its values twice"), "{err}");

    for v in [0, -1, 99] {
        let mut m = model();
        m.ir_version = Some(v);
        let err = import_error(&m);
        assert!(
            err.contains(&format!(
                "IR version is {v}; resnetc reads IR versions 3 to 13"
            )),
            "{err}"
        );
    }

    let mut m = model();
    m.ir_version = None;
    graph(&mut m).node[0]
        .attribute
        .push(resnetc_onnx::proto::AttributeProto {
            name: Some("made_up".into()),
            r#type: Some(resnetc_onnx::proto::attribute_proto::AttributeType::Int as i32),
            i: Some(7),
            ..Default::default()
        });
    resnetc_onnx::import_bytes(&m.encode_to_vec(), None).unwrap();
}

#[test]
fn unsupported_element_type() {
    let mut m = model();
    graph(&mut m).initializer[0].data_type = Some(10); // float16
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn training_mode_batchnorm() {
    let mut m = model();
    let g = graph(&mut m);
    g.node[1] = node(
        "bn",
        "BatchNormalization",
        &["c", "s", "b", "mu", "var"],
        &["y", "mean_out", "var_out"],
    );
    for name in ["s", "b", "mu", "var"] {
        g.initializer.push(weight(name, &[2], 2));
    }
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn conv_weights_disagree_with_input_channels() {
    let mut m = model();
    graph(&mut m).initializer[0] = weight("w", &[2, 5, 1, 1], 10);
    insta::assert_snapshot!(import_error(&m));
}

#[test]
fn no_graph() {
    let mut m = model();
    m.graph = None;
    insta::assert_snapshot!(import_error(&m));
}

/// A fixed xorshift stream for the mutation tests below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Import → optimize → run on corrupted models: every outcome is a value or an error, never a panic.
/// Returns whether the model got as far as running.
fn survive(bytes: &[u8], run: bool) -> bool {
    let Ok(mut g) = resnetc_onnx::import_bytes(bytes, None) else {
        return false;
    };
    let opts = resnetc_passes::PassOptions {
        level: 3,
        ..Default::default()
    };
    if resnetc_passes::run_passes(&mut g, &opts, &mut |_, _| {}).is_err() || !run {
        return false;
    }
    let inputs: Vec<resnetc_ir::Tensor> = g
        .inputs
        .iter()
        .filter_map(|&i| match g.op(i) {
            resnetc_ir::Op::Input { ty, .. } => {
                let dims: Vec<usize> = ty
                    .shape
                    .iter()
                    .map(|d| d.fixed().unwrap_or(1).min(64))
                    .collect();
                Some(resnetc_ir::Tensor::f32(ndarray::ArrayD::zeros(
                    ndarray::IxDyn(&dims),
                )))
            }
            _ => None,
        })
        .collect();
    let _ = resnetc_reference::run(&g, &inputs);
    true
}

#[test]
fn mutated_models_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let tiny = model().encode_to_vec();
    let mut ran = 0;
    for _ in 0..3000 {
        let mut bytes = tiny.clone();
        for _ in 0..1 + rng.next() % 4 {
            let k = (rng.next() as usize) % bytes.len();
            bytes[k] = rng.next() as u8;
        }
        if rng.next().is_multiple_of(8) {
            bytes.truncate((rng.next() as usize) % bytes.len());
        }
        ran += survive(&bytes, true) as usize;
    }
    // Enough mutants must be valid enough to run, or the test checks nothing past the decoder.
    assert!(ran > 100, "only {ran} mutants ran");
    let r20 = std::fs::read(common::repo().join("fixtures/models/r20_a_ts11_static.onnx")).unwrap();
    for _ in 0..60 {
        let mut bytes = r20.clone();
        // Mostly the graph structure, which sits after the weights in these exports.
        let k = bytes.len() - 1 - (rng.next() as usize) % 20_000;
        bytes[k] = rng.next() as u8;
        survive(&bytes, false);
    }
}
