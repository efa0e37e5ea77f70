//! Whole models through the CPU backend: every fixture in `fixtures/manifest.json` within the
//! project's tolerance of PyTorch's output, and the pretrained models in `../shared` predicting
//! exactly PyTorch's classes on the first 1000 CIFAR-10 test images.

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use resnetc_cpu::{CpuOptions, CpuPlan, Isa, Session};
use resnetc_passes::PassOptions;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared() -> PathBuf {
    let dir = std::env::var_os("RESNETC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    assert!(
        dir.join("README.md").exists(),
        "the shared data folder {} is missing (put it beside the repository or set RESNETC_SHARED)",
        dir.display()
    );
    dir
}

fn read_npy(path: &Path) -> ArrayD<f32> {
    resnetc::npy::read_f32(path).unwrap_or_else(|e| panic!("{e:#}"))
}

fn load(path: &Path) -> resnetc::Model {
    resnetc::load_model(
        path,
        &PassOptions {
            level: 3,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn argmax_rows(v: &[f32], classes: usize) -> Vec<usize> {
    v.chunks_exact(classes)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &x)| if x > b.1 { (i, x) } else { b },
                )
                .0
        })
        .collect()
}

fn isas() -> Vec<Isa> {
    Isa::all_available()
}

/// Runs `x` (batch first) through a plan on `threads` threads.
fn run(plan: &CpuPlan, x: &ArrayD<f32>, threads: usize) -> Vec<f32> {
    let batch = x.shape()[0];
    let floats = plan.outputs().next().unwrap().floats;
    let mut y = vec![0f32; floats * batch];
    let input: Vec<f32> = x.iter().copied().collect();
    Session::new(plan, threads)
        .run(&input, batch, &mut y)
        .unwrap();
    y
}

#[derive(serde::Deserialize)]
struct Fixture {
    name: String,
    file: String,
    input: String,
    output: String,
}

#[test]
fn every_fixture_matches_pytorch() {
    #[derive(serde::Deserialize)]
    struct Manifest {
        models: Vec<Fixture>,
    }
    let text = std::fs::read_to_string(repo().join("fixtures/manifest.json")).unwrap();
    let m: Manifest = serde_json::from_str(&text).unwrap();
    assert!(m.models.len() >= 20);
    for f in &m.models {
        let model = load(&repo().join("fixtures").join(&f.file));
        let x = read_npy(&repo().join("fixtures").join(&f.input));
        let expected = read_npy(&repo().join("fixtures").join(&f.output));
        let classes = expected.shape()[1];
        let exp: Vec<f32> = expected.iter().copied().collect();
        let tol = 1e-4f32.max(2e-5 * exp.iter().fold(0f32, |m, v| m.max(v.abs())));
        for isa in isas() {
            for winograd in [false, true] {
                let plan = CpuPlan::compile_with(
                    &model.graph,
                    &model.info,
                    &CpuOptions {
                        isa,
                        winograd: Some(winograd),
                    },
                )
                .unwrap_or_else(|e| panic!("{}: {e}", f.name));
                for threads in [1, 2] {
                    let y = run(&plan, &x, threads);
                    let diff = y
                        .iter()
                        .zip(&exp)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        diff <= tol,
                        "{} ({isa}, {threads} threads): max |diff| {diff:.3e} exceeds {tol:.3e}",
                        f.name
                    );
                    assert_eq!(
                        argmax_rows(&y, classes),
                        argmax_rows(&exp, classes),
                        "{} ({isa}): top-1 differs",
                        f.name
                    );
                }
            }
        }
    }
}

fn pretrained(name: &str) {
    let model = load(&shared().join(format!("models/pretrained/{name}_cifar10_pretrained.onnx")));
    let (images, labels) =
        resnetc::cifar::read_batch(&shared().join("data/cifar10/test_first1000.bin"), 1000)
            .unwrap();
    let expected = read_npy(&shared().join(format!(
        "models/pretrained/{name}_cifar10_pretrained.logits_first1000.npy"
    )));
    let exp: Vec<f32> = expected.iter().copied().collect();
    let plan = CpuPlan::compile(&model.graph, &model.info).unwrap();
    let y = run(&plan, &images.into_dyn(), 0);
    let (p, e) = (argmax_rows(&y, 10), argmax_rows(&exp, 10));
    let mismatches: Vec<usize> = (0..1000).filter(|&i| p[i] != e[i]).collect();
    assert!(
        mismatches.is_empty(),
        "{name} ({}): predictions differ from PyTorch's on images {mismatches:?}",
        plan.isa()
    );
    let diff = y
        .iter()
        .zip(&exp)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let tol = 1e-4f32.max(2e-5 * exp.iter().fold(0f32, |m, v| m.max(v.abs())));
    assert!(
        diff <= tol,
        "{name}: max |diff| {diff:.3e} exceeds {tol:.3e}"
    );
    let correct = p
        .iter()
        .zip(&labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    eprintln!(
        "{name} ({}): {correct}/1000 correct, max |Δlogit| {diff:.2e}",
        plan.isa()
    );
}

#[test]
fn pretrained_resnet20() {
    pretrained("resnet20");
}

#[test]
fn pretrained_resnet32() {
    pretrained("resnet32");
}

#[test]
fn pretrained_resnet44() {
    pretrained("resnet44");
}

#[test]
fn pretrained_resnet56() {
    pretrained("resnet56");
}

/// The arena reuses memory: a ResNet-56 needs a few activations' worth, not one per layer.
#[test]
fn the_memory_plan_reuses_buffers() {
    let model = load(&shared().join("models/pretrained/resnet56_cifar10_pretrained.onnx"));
    let plan = CpuPlan::compile(&model.graph, &model.info).unwrap();
    // One 16×34×34 activation (the halo included) is 18 496 floats; the widest point of the network
    // holds three of them (the block's input, its first conv's output, the second's).
    let per_image = plan.arena_bytes(1) / 4;
    assert!(
        per_image <= 4 * 18_496,
        "arena per image {per_image} floats"
    );
    assert_eq!(plan.arena_bytes(64) / 4 - 16, (per_image - 16) * 64);
}

/// Anything the backend has no kernel for is a typed error naming the node and op.
#[test]
fn unsupported_ops_name_the_node() {
    // Level 0 keeps BatchNormalization in the bnkept fixture.
    let model = resnetc::load_model(
        &repo().join("fixtures/models/r20_a_ts13_bnkept.onnx"),
        &PassOptions::default(),
    )
    .unwrap();
    let err = CpuPlan::compile(&model.graph, &model.info).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, resnetc_cpu::CpuError::Unsupported { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("node '") && msg.contains("reference executor"),
        "{msg}"
    );
}
