//! import → export → import gives the same IR, and onnxruntime runs the exported file with the
//! original's outputs.

mod common;

use std::path::Path;

use common::*;

fn dump_of(path: &Path) -> String {
    let m = resnetc::Model::load_with(path, &resnetc::LoadOptions::level(0))
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    resnetc_ir::dump(m.graph(), Some(m.info()))
}

fn export_to(src: &Path, dst: &Path) {
    let m = resnetc::Model::load_with(src, &resnetc::LoadOptions::level(0)).unwrap();
    resnetc_onnx::export_file(m.graph(), m.info(), dst).unwrap();
}

#[test]
fn import_export_import_gives_the_same_dump() {
    let dir = tmp("roundtrip");
    for (name, path) in all_models() {
        let out = dir.path().join(format!("{name}.onnx"));
        export_to(&path, &out);
        let (a, b) = (dump_of(&path), dump_of(&out));
        assert!(a == b, "{name}: the dump changed across export and re-import\n--- original\n{a}\n--- re-imported\n{b}");
    }
}

/// onnxruntime runs each exported fixture on its input with the expected outputs.
#[test]
fn onnxruntime_runs_the_exported_files() {
    let dir = tmp("ort");
    let exports: Vec<_> = fixtures()
        .into_iter()
        .map(|f| {
            let out = dir.path().join(format!("{}.onnx", f.name));
            export_to(&f.path(), &out);
            (out, f)
        })
        .collect();
    assert!(
        onnxruntime_agrees(&exports),
        "onnxruntime disagreed on an exported model (see the output above)"
    );
}
