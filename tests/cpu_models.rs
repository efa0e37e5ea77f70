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
    // Every stride-1 3×3 convolution (all but the two entering stages 2 and 3) stays Winograd: the
    // weight-spread guard of `Winograd::Auto` (spreads here: at most 25) leaves trained models alone.
    let depth: usize = name.trim_start_matches("resnet").parse().unwrap();
    assert_eq!(
        plan.winograd_convs(),
        depth - 3,
        "{name}: Winograd convolutions"
    );
    let images = images.into_dyn();
    let y = run(&plan, &images, 0);
    // The batch ran in groups of images (as many as the weights call for: resnet56's 8 per thread
    // on two threads, 16 on one); the images at both ends of the batch, run alone on one thread,
    // come out the same to the bit.
    for i in [0, 1, 999] {
        let one = run(
            &plan,
            &images
                .slice(ndarray::s![i..i + 1, .., .., ..])
                .to_owned()
                .into_dyn(),
            1,
        );
        assert!(
            one.iter()
                .zip(y.slice(ndarray::s![i, ..]))
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: image {i} alone differs from its place in the batch"
        );
    }
    assert_pytorch_predictions(
        &format!("{name} ({})", plan.isa()),
        &y,
        &pretrained_logits(name),
        &labels,
    );
}

/// The fuzz finding `fuzz/findings/onnx_mutate/winograd-huge-weight-precision.onnx`: one weight of
/// the last stage's 3×3 convolution made −7.5e20 among taps of 0.1. Winograd would move the logits
/// by 1.5 % (its tile mixing loses the small taps); the default plan keeps that convolution direct
/// and agrees with the unoptimized reference, while the other convolutions stay Winograd.
#[test]
fn a_weight_far_from_the_others_keeps_its_convolution_direct() {
    use resnetc::{Device, LoadOptions, Model};
    let path = repo().join("fuzz/findings/onnx_mutate/winograd-huge-weight-precision.onnx");
    let o0 = Model::load_with(&path, &LoadOptions::level(0)).unwrap();
    let o3 = Model::load_with(&path, &LoadOptions::level(3)).unwrap();
    let shape = o3.inputs()[0].shape.clone();
    let dims: Vec<usize> = shape
        .iter()
        .map(|d| match d {
            resnetc::ir::Dim::Fixed(n) => *n,
            _ => 1,
        })
        .collect();
    let n: usize = dims.iter().product();
    // The fuzz target's input (the finding's model takes 8×8 images).
    let x = ArrayD::from_shape_vec(
        IxDyn(&dims),
        (0..n)
            .map(|i| ((i * 7919 % 2001) as f32 / 1000.0) - 1.0)
            .collect(),
    )
    .unwrap();
    let expected = o0
        .session(Device::Reference)
        .unwrap()
        .run_dyn(x.view())
        .unwrap();
    for isa in resnetc_cpu::Isa::all_available() {
        let opts = |winograd| CpuOptions {
            isa,
            winograd: Some(winograd),
        };
        let auto = CpuPlan::compile_with(o3.graph(), o3.info(), &opts(Winograd::Auto)).unwrap();
        let off = CpuPlan::compile_with(o3.graph(), o3.info(), &opts(Winograd::Off)).unwrap();
        let f2 = CpuPlan::compile_with(o3.graph(), o3.info(), &opts(Winograd::F2)).unwrap();
        assert!(off.winograd_convs() == 0 && f2.winograd_convs() > auto.winograd_convs());
        assert!(
            auto.winograd_convs() > 0,
            "{isa:?}: the other convolutions stay Winograd"
        );
        let y = run(&auto, &x, 1);
        let y = y.into_shape_with_order(expected.shape()).unwrap();
        assert_logits_close(&format!("{isa:?} default plan"), &y, &expected);
        // The explicit form is obeyed, and shows what the guard avoids.
        let forced = run(&f2, &x, 1)
            .into_shape_with_order(expected.shape())
            .unwrap();
        assert!(
            max_abs_diff(&forced, &expected) > tolerance(&expected),
            "{isa:?}: forced F(2×2) no longer differs; is the finding still a finding?"
        );
    }
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
