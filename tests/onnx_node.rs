//! A peer's test suite: the ONNX backend node tests for resnetc's ops, vendored under
//! `tests/data/onnx-node/` (see its NOTICE and manifest.toml, which says why any case is excluded).

mod common;

use std::path::Path;

use prost::Message;
use resnetc_ir::Tensor;
use resnetc_onnx::proto::TensorProto;

#[derive(serde::Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    op: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

fn read_pb(path: &Path) -> Tensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = TensorProto::decode(bytes.as_slice()).unwrap();
    resnetc_onnx::tensor_from_proto(&t, None).unwrap()
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() || got.shape() != want.shape() {
        return Err(format!(
            "got {}{:?}, expected {}{:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    for (i, (g, w)) in got.to_f64s().iter().zip(want.to_f64s()).enumerate() {
        if (g - w).abs() > 1e-5 + 1e-5 * w.abs() {
            return Err(format!("element {i}: got {g}, expected {w}"));
        }
    }
    Ok(())
}

#[test]
fn onnx_backend_node_tests() {
    let root = common::repo().join("tests/data/onnx-node");
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(root.join("manifest.toml")).unwrap()).unwrap();
    let required = [
        "Conv",
        "BatchNormalization",
        "Relu",
        "Add",
        "Gemm",
        "GlobalAveragePool",
        "Flatten",
        "Pad",
        "Slice",
        "Reshape",
    ];
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &manifest.case {
        if case.status != "run" {
            assert!(
                case.reason.is_some(),
                "{}: excluded without a reason",
                case.name
            );
            continue;
        }
        let dir = root.join(&case.name);
        let result = (|| -> Result<(), String> {
            let mut graph =
                resnetc_onnx::import_file(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
            resnetc_passes::canonicalize(&mut graph).map_err(|e| e.to_string())?;
            let data = dir.join("test_data_set_0");
            let inputs: Vec<Tensor> = (0..graph.inputs.len())
                .map(|k| read_pb(&data.join(format!("input_{k}.pb"))))
                .collect();
            let outputs = resnetc_reference::run(&graph, &inputs).map_err(|e| e.to_string())?;
            for (k, got) in outputs.iter().enumerate() {
                close(got, &read_pb(&data.join(format!("output_{k}.pb"))))
                    .map_err(|e| format!("output {k}: {e}"))?;
            }
            Ok(())
        })();
        ran += 1;
        if let Err(e) = result {
            failures.push(format!("{} ({}): {e}", case.name, case.op));
        }
    }
    for op in required {
        assert!(
            manifest
                .case
                .iter()
                .any(|c| c.op == op && c.status == "run"),
            "no runnable node test for {op}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} node tests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} ONNX backend node tests passed");
}
