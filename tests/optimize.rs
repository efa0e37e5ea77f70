//! The optimizer: every pass keeps outputs within tolerance, the fused graph has the expected shape,
//! optimized exports run in onnxruntime, and `--keep-fused` exports round-trip.

mod common;

use std::collections::BTreeMap;

use common::*;
use resnetc_ir::{validate, Op, Tensor};
use resnetc_passes::{PassOptions, PassReport, PASSES};

fn opts(level: u8) -> resnetc::LoadOptions {
    resnetc::LoadOptions::level(level)
}

fn ops_of(m: &resnetc::Model) -> BTreeMap<String, usize> {
    m.stats().ops
}

#[test]
fn optimized_graphs_match_pytorch_and_the_unoptimized_graph() {
    for f in fixtures() {
        let base = resnetc::Model::load_with(f.path(), &opts(0)).unwrap();
        let x = Tensor::f32(f.input());
        let y0 =
            f32_of(&resnetc::reference::run(base.graph(), std::slice::from_ref(&x)).unwrap()[0]);
        for level in 1..=3 {
            let m = resnetc::Model::load_with(f.path(), &opts(level))
                .unwrap_or_else(|e| panic!("{} -O{level}: {e:#}", f.name));
            let y =
                f32_of(&resnetc::reference::run(m.graph(), std::slice::from_ref(&x)).unwrap()[0]);
            assert_logits_close(
                &format!("{} -O{level} vs PyTorch", f.name),
                &y,
                &f.expected(),
            );
            assert_logits_close(&format!("{} -O{level} vs -O0", f.name), &y, &y0);
        }
    }
}

/// Each optimization pass applied alone to the canonical graph keeps the outputs within tolerance.
#[test]
fn each_pass_alone_keeps_outputs() {
    for f in fixtures() {
        let x = Tensor::f32(f.input());
        let mut base = resnetc_onnx::import_file(&f.path()).unwrap();
        resnetc_passes::canonicalize(&mut base).unwrap();
        let y0 = f32_of(&resnetc_reference::run(&base, std::slice::from_ref(&x)).unwrap()[0]);
        for pass in PASSES.iter().filter(|p| p.level > 0) {
            let mut g = base.clone();
            let mut report = PassReport::new(pass.name);
            let info = validate(&g).unwrap();
            (pass.run)(&mut g, &info, &mut report)
                .unwrap_or_else(|e| panic!("{} {}: {e}", f.name, pass.name));
            validate(&g).unwrap_or_else(|e| {
                panic!("{} {}: invalid after the pass: {e}", f.name, pass.name)
            });
            let y = f32_of(&resnetc_reference::run(&g, std::slice::from_ref(&x)).unwrap()[0]);
            assert_logits_close(&format!("{} after {} alone", f.name, pass.name), &y, &y0);
        }
    }
}

#[test]
fn fused_graphs_hold_only_fused_convs_pool_flatten_and_gemm() {
    for f in fixtures() {
        let m = resnetc::Model::load_with(f.path(), &opts(3)).unwrap();
        let ops = ops_of(&m);
        let n = (f.depth - 2) / 6;
        let convs = 6 * n + 1 + if f.shortcut == "B" { 2 } else { 0 };
        let mut want = BTreeMap::from([
            ("FusedConv".to_string(), convs),
            ("GlobalAveragePool".into(), 1),
            ("Flatten".into(), 1),
            ("Gemm".into(), 1),
        ]);
        if f.name == "r56_b_ts17_static" {
            assert_eq!(
                ops.values().sum::<usize>(),
                60,
                "resnet56 option B: 57 convs, the pool, Flatten and Gemm"
            );
        }
        // Option A folds both shortcuts into the residual reads of the convs that consume them.
        assert_eq!(ops, std::mem::take(&mut want), "{}", f.name);
        for &id in &m.info().order {
            if let Op::FusedConv { epilogue, .. } = m.graph().op(id) {
                assert!(
                    epilogue.contains(&resnetc_ir::Epilogue::Bias),
                    "{}: a conv without a bias after folding",
                    f.name
                );
            }
        }
    }
}

#[test]
fn pretrained_models_fuse_the_same_way() {
    for name in PRETRAINED {
        let m = resnetc::Model::load_with(pretrained_model(name), &opts(3)).unwrap();
        let ops = ops_of(&m);
        assert_eq!(
            ops.get("FusedConv").copied().unwrap_or(0) + 3,
            ops.values().sum::<usize>(),
            "{name}: {ops:?}"
        );
    }
}

#[test]
fn optimized_exports_run_in_onnxruntime() {
    let dir = tmp("opt-ort");
    let mut exports = Vec::new();
    for f in fixtures() {
        let m = resnetc::Model::load_with(f.path(), &opts(3)).unwrap();
        let out = dir.path().join(format!("{}.onnx", f.name));
        resnetc_onnx::export_file(m.graph(), m.info(), &out).unwrap();
        // The standard export re-imports, and re-optimizes to the same fused graph.
        let again = resnetc::Model::load_with(&out, &opts(3)).unwrap();
        assert_eq!(
            ops_of(&again),
            ops_of(&m),
            "{}: re-optimized export differs",
            f.name
        );
        exports.push((out, f));
    }
    assert!(
        onnxruntime_agrees(&exports),
        "onnxruntime disagreed on an optimized export"
    );
}

#[test]
fn keep_fused_exports_round_trip() {
    let dir = tmp("keep-fused");
    for f in fixtures() {
        let m = resnetc::Model::load_with(f.path(), &opts(3)).unwrap();
        let out = dir.path().join(format!("{}.onnx", f.name));
        let options = resnetc_onnx::ExportOptions { keep_fused: true };
        resnetc_onnx::export_file_with(m.graph(), m.info(), &out, options).unwrap();
        let again = resnetc::Model::load_with(&out, &opts(3)).unwrap();
        assert_eq!(
            resnetc_ir::dump(again.graph(), Some(again.info())),
            resnetc_ir::dump(m.graph(), Some(m.info())),
            "{}",
            f.name
        );
        let y =
            f32_of(&resnetc::reference::run(again.graph(), &[Tensor::f32(f.input())]).unwrap()[0]);
        assert_logits_close(&format!("{} keep-fused", f.name), &y, &f.expected());
    }
}

/// The IR of a ResNet-20 fixture after import and after each pass, and the pass report.
#[test]
fn snapshots_of_resnet20_through_the_passes() {
    let mut graph = resnetc_onnx::import_file(&fixture("r20_a_ts17_static").path()).unwrap();
    insta::assert_snapshot!(
        "r20_after_import",
        resnetc_ir::dump(&graph, validate(&graph).ok().as_ref())
    );
    let mut dumps = Vec::new();
    let reports = resnetc_passes::run_passes(
        &mut graph,
        &PassOptions {
            level: 3,
            ..Default::default()
        },
        &mut |pass, g| {
            dumps.push((
                pass.to_string(),
                resnetc_ir::dump(g, validate(g).ok().as_ref()),
            ));
        },
    )
    .unwrap();
    for (pass, dump) in dumps {
        insta::assert_snapshot!(format!("r20_after_{pass}"), dump);
    }
    let report: Vec<String> = reports.iter().map(|r| r.to_string()).collect();
    insta::assert_snapshot!("r20_pass_report", report.join("\n"));
}
