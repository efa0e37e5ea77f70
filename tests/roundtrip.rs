//! import → export → import gives the same IR, and onnxruntime runs the exported file with the
//! original's outputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use resnetc_passes::PassOptions;

fn dump_of(path: &Path) -> String {
    let m = resnetc::load_model(path, &PassOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    resnetc_ir::dump(&m.graph, Some(&m.info))
}

fn all_models() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = fixtures()
        .into_iter()
        .map(|f| (f.name.clone(), f.path()))
        .collect();
    v.extend(
        PRETRAINED
            .iter()
            .map(|n| (n.to_string(), pretrained_model(n))),
    );
    v
}

fn export_to(src: &Path, dst: &Path) {
    let m = resnetc::load_model(src, &PassOptions::default()).unwrap();
    resnetc_onnx::export_file(&m.graph, &m.info, dst).unwrap();
}

#[test]
fn import_export_import_gives_the_same_dump() {
    let dir = tempdir("roundtrip");
    for (name, path) in all_models() {
        let out = dir.join(format!("{name}.onnx"));
        export_to(&path, &out);
        let (a, b) = (dump_of(&path), dump_of(&out));
        assert!(a == b, "{name}: the dump changed across export and re-import\n--- original\n{a}\n--- re-imported\n{b}");
    }
}

/// Runs `tests/ort_compare.py`, which feeds each exported file and its input to onnxruntime and
/// compares with the expected outputs. onnxruntime is installed by `.ci/run`.
#[test]
fn onnxruntime_runs_the_exported_files() {
    let dir = tempdir("ort");
    let mut args = Vec::new();
    for f in fixtures() {
        let out = dir.join(format!("{}.onnx", f.name));
        export_to(&f.path(), &out);
        args.push(format!(
            "{}={}={}",
            out.display(),
            repo().join("fixtures").join(&f.input).display(),
            repo().join("fixtures").join(&f.output).display()
        ));
    }
    let status = Command::new(python())
        .arg(repo().join("tests/ort_compare.py"))
        .args(&args)
        .status()
        .expect("python3 must be installed to run onnxruntime (see .ci/run)");
    assert!(
        status.success(),
        "onnxruntime disagreed on an exported model (see the output above)"
    );
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnetc-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
