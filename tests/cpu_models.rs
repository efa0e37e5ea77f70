//! Whole models through the CPU backend (`resnetc-cpu`): every fixture in `fixtures/manifest.json`
//! within the project's tolerance of PyTorch's output on every kernel set, with and without
//! Winograd, on 1 and 2 threads; and the pretrained models in `../shared` predicting exactly
//! PyTorch's classes on the first 1000 CIFAR-10 test images. (The kernels alone are tested against
//! the reference executor in `crates/resnetc-cpu/tests/kernels.rs`.)

mod common;

use common::*;
use ndarray::{ArrayD, IxDyn};
use resnetc_cpu::{CpuOptions, CpuPlan, Session, Winograd};

/// Runs `x` (batch first) through a plan on `threads` threads (0: all); the logits come back shaped
/// `[batch, floats per image]`.
fn run(plan: &CpuPlan, x: &ArrayD<f32>, threads: usize) -> ArrayD<f32> {
    let batch = x.shape()[0];
    let floats = plan.outputs().next().unwrap().floats;
    let mut y = vec![0f32; floats * batch];
    let input: Vec<f32> = x.iter().copied().collect();
    Session::new(plan, threads)
        .run(&input, batch, &mut y)
        .unwrap();
    ArrayD::from_shape_vec(IxDyn(&[batch, floats]), y).unwrap()
}

#[test]
fn every_fixture_matches_pytorch() {
    for f in fixtures() {
        let model = load_fused(&f.path());
        let (x, expected) = (f.input(), f.expected());
        for isa in resnetc_cpu::Isa::all_available() {
            for winograd in [Winograd::Off, Winograd::F2, Winograd::Auto] {
                let plan = CpuPlan::compile_with(
                    model.graph(),
                    model.info(),
                    &CpuOptions {
                        isa,
                        winograd: Some(winograd),
                    },
                )
                .unwrap_or_else(|e| panic!("{}: {e}", f.name));
                for threads in [1, 2] {
                    let y = run(&plan, &x, threads);
                    assert_logits_close(
                        &format!(
                            "{} ({isa}, winograd {winograd:?}, {threads} threads)",
                            f.name
                        ),
                        &y,
                        &expected,
                    );
                }
            }
        }
    }
}

/// Where a run does not divide the batch among the threads (batch 1, or fewer images than threads),
/// the threads share every convolution as a team (`exec.rs` `run_steps_together`): each chunk computes the same
/// sums in the same order as one thread would, so the outputs are equal to the bit, for any team
/// size (16 threads leave some with no rows of tiles at all).
#[test]
fn a_team_of_threads_computes_exactly_what_one_thread_does() {
    for f in fixtures() {
        let model = load_fused(&f.path());
        let x = f.input();
        for isa in resnetc_cpu::Isa::all_available() {
            for winograd in [Winograd::Off, Winograd::F2, Winograd::F4] {
                let opts = CpuOptions {
                    isa,
                    winograd: Some(winograd),
                };
                let plan = CpuPlan::compile_with(model.graph(), model.info(), &opts).unwrap();
                let one = run(&plan, &x, 1);
                for (batch, threads) in [(1, 2), (1, 3), (1, 16), (x.shape()[0], 3)] {
                    let xb = x.slice_axis(ndarray::Axis(0), (0..batch).into()).to_owned();
                    let team = run(&plan, &xb, threads);
                    let want = one.slice_axis(ndarray::Axis(0), (0..batch).into());
                    assert!(
                        team.iter().zip(want.iter()).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{} ({isa}, {winograd:?}): batch {batch} on {threads} threads differs from 1 thread",
                        f.name
                    );
                }
            }
        }
    }
}

/// The optimized (level 3) pretrained model on the default kernel set: all 1000 predictions are
/// PyTorch's and the logits are within tolerance. (`tests/pretrained.rs` checks the unoptimized
/// graph on the reference executor.)
fn pretrained(name: &str) {
    let model = load_fused(&pretrained_model(name));
    let (images, labels) = cifar_test_images(1000);
    assert_eq!(labels.len(), 1000);
    let plan = CpuPlan::compile(model.graph(), model.info()).unwrap();
    let y = run(&plan, &images.into_dyn(), 0);
    assert_pytorch_predictions(
        &format!("{name} ({})", plan.isa()),
        &y,
        &pretrained_logits(name),
        &labels,
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
    let model = load_fused(&pretrained_model("resnet56"));
    let plan = CpuPlan::compile(model.graph(), model.info()).unwrap();
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
    let model = resnetc::Model::load_with(
        repo().join("fixtures/models/r20_a_ts13_bnkept.onnx"),
        &resnetc::LoadOptions::level(0),
    )
    .unwrap();
    let err = CpuPlan::compile(model.graph(), model.info()).unwrap_err();
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
