//! The model zoo end to end: each of He et al.'s depths for CIFAR-10 and CIFAR-100 with option-A
//! and option-B shortcuts, built in the IR, exported to ONNX and run three ways on the same two
//! images: the reference executor on the unoptimized graph (the expected logits), the CPU backend
//! on the exported file loaded at -O3 (BatchNorm folded, shortcuts folded, epilogues fused), and
//! onnxruntime on the exported file.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::*;
use prost::Message as _;
use resnetc::ndarray::{Array4, ArrayD};
use resnetc::zoo::{Shortcut, ZooSpec, DEPTHS};
use resnetc::{Device, LoadOptions, Model};

/// Images per run: enough to catch a kernel that mixes images up, small enough for ResNet-110 on
/// the reference executor.
const BATCH: usize = 2;

/// `BATCH` images uniform in [-2, 2), about the range of normalized CIFAR pixels (splitmix64, so
/// the test needs no generator crate).
fn images(seed: u64) -> Array4<f32> {
    let mut state = seed;
    Array4::from_shape_simple_fn((BATCH, 3, 32, 32), || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    })
}

fn conv_nodes(onnx: &std::path::Path) -> usize {
    let bytes = std::fs::read(onnx).unwrap();
    let proto = resnetc::onnx::proto::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = proto.graph.unwrap();
    graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Conv"))
        .count()
}

fn fired(model: &Model, pass: &str, rule: &str) -> usize {
    model
        .pass_reports()
        .iter()
        .filter(|r| r.pass == pass)
        .filter_map(|r| r.fired.get(rule))
        .sum()
}

/// Builds, exports and runs every depth × {10, 100} classes with `shortcut`; then onnxruntime.
fn check(shortcut: Shortcut) {
    let dir = tmp(&format!("zoo-{shortcut}"));
    let x = images(2015);
    let input = dir.path().join("input.npy");
    resnetc::npy::write_f32(&input, &x.clone().into_dyn()).unwrap();
    let projections = match shortcut {
        Shortcut::A => 0,
        Shortcut::B => 2,
    };
    let mut ort: Vec<(PathBuf, PathBuf, PathBuf)> = Vec::new();
    for depth in DEPTHS {
        for classes in [10, 100] {
            let start = Instant::now();
            let spec = ZooSpec {
                depth,
                classes,
                shortcut,
                seed: (depth * 1000 + classes) as u64,
                batch: None,
            };
            let name = spec.name();
            let convs = depth - 1 + projections;
            let o0 = resnetc::zoo_model(&spec, &LoadOptions::level(0)).unwrap();
            let onnx = dir.path().join(format!("{name}.onnx"));
            resnetc::export_onnx(&o0, &onnx, &Default::default()).unwrap();
            assert_eq!(conv_nodes(&onnx), convs, "{name}: Conv nodes in the export");

            let expected: ArrayD<f32> = o0
                .session(Device::Reference)
                .unwrap()
                .run(x.view())
                .unwrap()
                .into_dyn();
            assert_eq!(expected.shape(), [BATCH, classes], "{name}");
            let max = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Untrained, but neither exploding nor vanishing with depth (see zoo::RESIDUAL_GAMMA).
            assert!(
                max.is_finite() && (0.05..1e3).contains(&max),
                "{name}: max |logit| {max}"
            );

            let o3 = Model::load_with(&onnx, &LoadOptions::level(3)).unwrap();
            assert_eq!(
                fired(&o3, "fold-batchnorm", "batchnorm-into-conv"),
                convs,
                "{name}: every BatchNorm folds into its convolution"
            );
            assert_eq!(
                fired(&o3, "fold-shortcut", "option-a-shortcut"),
                2 - projections,
                "{name}: option-A shortcuts folded"
            );
            let ops = o3.stats().ops;
            assert_eq!(ops.get("FusedConv"), Some(&convs), "{name}: {ops:?}");
            assert_eq!(
                ops.values().sum::<usize>(),
                convs + 3,
                "{name}: only fused convolutions, the pooling, Flatten and Gemm remain: {ops:?}"
            );
            let got = o3
                .session(Device::Cpu)
                .unwrap()
                .run(x.view())
                .unwrap()
                .into_dyn();
            assert_eq!(got.shape(), [BATCH, classes], "{name}");
            assert_logits_close(
                &format!("{name}: CPU -O3 vs reference -O0"),
                &got,
                &expected,
            );

            let expected_npy = dir.path().join(format!("{name}.expected.npy"));
            resnetc::npy::write_f32(&expected_npy, &expected).unwrap();
            ort.push((onnx, input.clone(), expected_npy));
            eprintln!(
                "{name}: max |logit| {max:.3}, CPU max |diff| {:.2e}, {:.1} s",
                max_abs_diff(&got, &expected),
                start.elapsed().as_secs_f32()
            );
        }
    }
    assert!(
        onnxruntime_agrees_on(&ort),
        "onnxruntime disagreed on an exported zoo model (see the output above)"
    );
}

#[test]
fn option_a_models_agree_everywhere() {
    check(Shortcut::A);
}

#[test]
fn option_b_models_agree_everywhere() {
    check(Shortcut::B);
}
