//! Shared helpers for the integration tests: where things are, and how outputs are compared.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use resnetc_ir::Tensor;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `resnetc` binary in the repository.
pub fn resnetc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_resnetc"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

/// Runs `resnetc`, requires success, and returns its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = resnetc(args);
    assert!(
        out.status.success(),
        "resnetc {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh directory for one test's files, `resnetc-{tag}-{pid}` under the system's temp dir.
pub fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnetc-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `../shared` beside the repository (or `RESNETC_SHARED`). Tests that need it fail with this message
/// when it is absent, rather than passing without checking anything.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("RESNETC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    assert!(
        dir.join("README.md").exists(),
        "the shared data folder {} is missing: these tests read the pretrained models and CIFAR-10 images from it \
         (put it beside the repository or set RESNETC_SHARED)",
        dir.display()
    );
    dir
}

pub const PRETRAINED: [&str; 4] = ["resnet20", "resnet32", "resnet44", "resnet56"];

pub fn pretrained_model(name: &str) -> PathBuf {
    shared().join(format!("models/pretrained/{name}_cifar10_pretrained.onnx"))
}

/// One fixture from `fixtures/manifest.json`.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Fixture {
    pub name: String,
    pub file: String,
    pub input: String,
    pub output: String,
    pub depth: usize,
    pub shortcut: String,
    pub classes: usize,
    pub exporter: String,
    pub opset: u64,
    pub dynamic_batch: bool,
    pub bn: String,
}

impl Fixture {
    pub fn path(&self) -> PathBuf {
        repo().join("fixtures").join(&self.file)
    }

    pub fn input(&self) -> ArrayD<f32> {
        read_npy(&repo().join("fixtures").join(&self.input))
    }

    pub fn expected(&self) -> ArrayD<f32> {
        read_npy(&repo().join("fixtures").join(&self.output))
    }
}

pub fn fixtures() -> Vec<Fixture> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        models: Vec<Fixture>,
    }
    let text = std::fs::read_to_string(repo().join("fixtures/manifest.json"))
        .expect("fixtures/manifest.json");
    let m: Manifest = serde_json::from_str(&text).expect("manifest parses");
    assert!(
        m.models.len() >= 20,
        "the manifest lists {} fixtures",
        m.models.len()
    );
    m.models
}

pub fn read_npy(path: &Path) -> ArrayD<f32> {
    resnetc::npy::read_f32(path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The project's tolerance for logits: max(1e-4, 2e-5 × max|expected|).
pub fn tolerance(expected: &ArrayD<f32>) -> f32 {
    let max = expected.iter().fold(0f32, |m, x| m.max(x.abs()));
    1e-4f32.max(2e-5 * max)
}

pub fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    a.iter()
        .zip(b.iter())
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

pub fn argmax_rows(a: &ArrayD<f32>) -> Vec<usize> {
    a.outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
        })
        .collect()
}

/// Asserts logits agree within [`tolerance`] and have the same top-1 per row.
pub fn assert_logits_close(what: &str, got: &ArrayD<f32>, expected: &ArrayD<f32>) {
    let tol = tolerance(expected);
    let diff = max_abs_diff(got, expected);
    assert!(
        diff <= tol,
        "{what}: max |diff| {diff:.3e} exceeds tolerance {tol:.3e}"
    );
    assert_eq!(
        argmax_rows(got),
        argmax_rows(expected),
        "{what}: top-1 differs"
    );
}

pub fn f32_of(t: &Tensor) -> ArrayD<f32> {
    t.as_f32().expect("float32 output").to_owned()
}

/// A float32 graph input or output with fixed dims, for tests that build ONNX models by hand.
pub fn value_info(name: &str, dims: &[i64]) -> resnetc_onnx::proto::ValueInfoProto {
    resnetc_onnx::proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(resnetc_onnx::proto::TypeProto {
            value: Some(resnetc_onnx::proto::type_proto::Value::TensorType(resnetc_onnx::proto::type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(resnetc_onnx::proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| resnetc_onnx::proto::tensor_shape_proto::Dimension {
                            value: Some(resnetc_onnx::proto::tensor_shape_proto::dimension::Value::DimValue(d)),
                            denotation: None,
                        })
                        .collect(),
                }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}
