//! Helpers for resnetc's tests (a dev-only crate): where the models and data are (`models.rs`),
//! how outputs are compared, temporary folders, and the host emulation of generated CUDA
//! (`cuda_host.rs`). The root test suite and the crates' own tests share it.
#![allow(dead_code)]

pub mod cuda_host;
mod models;

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use resnetc::ir::Tensor;
use tempfile::TempDir;

pub use models::*;

/// A path as a command-line argument.
pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A fresh directory for one test's files, `resnetc-{tag}-XXXXXX` under the system's temp dir. Keep
/// the guard for as long as the files are used: dropping it removes the directory.
pub fn tmp(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("resnetc-{tag}-"))
        .tempdir()
        .unwrap()
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

/// The check of a pretrained model on the first 1000 CIFAR-10 test images: every prediction is
/// PyTorch's (`expected`) and the logits are within tolerance. Prints the accuracy against `labels`.
pub fn assert_pytorch_predictions(
    what: &str,
    got: &ArrayD<f32>,
    expected: &ArrayD<f32>,
    labels: &[u8],
) {
    let (p, e) = (argmax_rows(got), argmax_rows(expected));
    let mismatches: Vec<usize> = (0..1000).filter(|&i| p[i] != e[i]).collect();
    assert!(
        mismatches.is_empty(),
        "{what}: predictions differ from PyTorch's on images {mismatches:?}"
    );
    assert_logits_close(what, got, expected);
    let correct = p
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    eprintln!(
        "{what}: {correct}/1000 correct, max |Δlogit| {:.2e}",
        max_abs_diff(got, expected)
    );
}

/// Runs `tests/ort_compare.py`, which feeds each exported model its fixture's input in onnxruntime
/// and compares with the fixture's expected output; whether all agreed. onnxruntime is installed by
/// `.ci/run`.
pub fn onnxruntime_agrees(exports: &[(PathBuf, Fixture)]) -> bool {
    let runs: Vec<_> = exports
        .iter()
        .map(|(out, f)| (out.clone(), f.input_path(), f.output_path()))
        .collect();
    onnxruntime_agrees_on(&runs)
}

/// [`onnxruntime_agrees`] on plain `(model, input .npy, expected .npy)` paths, for models that are
/// not fixtures (built in memory, then exported).
pub fn onnxruntime_agrees_on(runs: &[(PathBuf, PathBuf, PathBuf)]) -> bool {
    let args = runs.iter().map(|(model, input, expected)| {
        format!(
            "{}={}={}",
            model.display(),
            input.display(),
            expected.display()
        )
    });
    std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(repo().join("tests/ort_compare.py"))
        .args(args)
        .status()
        .expect("python3 must be installed to run onnxruntime (see .ci/run)")
        .success()
}

pub fn f32_of(t: &Tensor) -> ArrayD<f32> {
    t.as_f32().expect("float32 output").to_owned()
}

/// A float32 graph input or output with fixed dims, for tests that build ONNX models by hand.
pub fn value_info(name: &str, dims: &[i64]) -> resnetc::onnx::proto::ValueInfoProto {
    resnetc::onnx::proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(resnetc::onnx::proto::TypeProto {
            value: Some(resnetc::onnx::proto::type_proto::Value::TensorType(resnetc::onnx::proto::type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(resnetc::onnx::proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| resnetc::onnx::proto::tensor_shape_proto::Dimension {
                            value: Some(resnetc::onnx::proto::tensor_shape_proto::dimension::Value::DimValue(d)),
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
