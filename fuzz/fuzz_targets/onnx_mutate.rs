//! The seed models (`resnetc_fuzz::seeds`: CifarResNet-8s in four export styles, a tiny
//! classifier), each changed in a few places by the structure-aware protobuf mutator
//! (`resnetc_fuzz::wire`): a dimension, an attribute, an int64 constant (Slice, Pad, Reshape), a
//! name or an op type changed, a node, input or attribute removed or repeated, a tensor's data
//! resized. What loads (default options) and has a small fixed input runs a fixed input in [-1, 1]
//! on the reference executor at level 0 (the oracle), and on the reference executor and the CPU
//! backend at the default level; where the oracle is finite and modest (max |y| ≤ 1e6) and so are
//! the model's float constants (every |w| ≤ 1e3: a mutated weight byte can make one 1e20), the
//! others must agree with it within max(1e-3, 1e-4·max|oracle|). Errors are fine; a panic, abort,
//! OOM, timeout or disagreement is a finding.
//!
//! The bound on the weights is not for show: Winograd (the CPU backend's default for stride-1 3×3
//! convolutions) keeps its transformed weights `G·g·Gᵀ` in f32, so a 3×3 kernel with one tap of
//! 1e10 among taps of 0.1 loses the small taps where the big one is mixed in, and the logits move
//! by ~1.5% while direct convolution and the reference agree (the first finding of this target,
//! `fuzz/findings/onnx_mutate/winograd-huge-weight-precision.{input,onnx}`: a floating-point limit
//! rather than a bug).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use resnetc::ndarray::{ArrayD, IxDyn};
use resnetc::{Device, LoadOptions, Model};
use resnetc_fuzz::seeds::{mutate_models, mutated, MutateInput};
use resnetc_fuzz::wire::{self, Field};
use resnetc_fuzz::{note, zero_input_shape};

fn models() -> &'static [Vec<Field>] {
    static MODELS: OnceLock<Vec<Vec<Field>>> = OnceLock::new();
    MODELS.get_or_init(|| {
        mutate_models()
            .iter()
            .map(|m| {
                let f = wire::parse(m).expect("a seed model parses");
                assert_eq!(&wire::encode(&f), m, "the mutator round-trips a model");
                f
            })
            .collect()
    })
}

fn run(model: &Model, device: Device, x: &ArrayD<f32>) -> Option<ArrayD<f32>> {
    let mut s = model.session(device).map_err(|e| note(&format!("{device} session"), &e)).ok()?;
    s.run_dyn(x.view()).map_err(|e| note(&format!("{device} run"), &e)).ok()
}

fn agree(what: &str, oracle: &ArrayD<f32>, got: &ArrayD<f32>, bytes: &[u8]) {
    let max = oracle.iter().fold(0f32, |m, v| m.max(v.abs()));
    if !oracle.iter().all(|v| v.is_finite()) || max > 1e6 {
        return;
    }
    assert_eq!(oracle.shape(), got.shape(), "{what}: output shape differs from the reference at level 0 ({} bytes)", bytes.len());
    let tol = 1e-3f32.max(1e-4 * max);
    for (i, (a, b)) in oracle.iter().zip(got.iter()).enumerate() {
        assert!((a - b).abs() <= tol, "{what}: element {i} is {b}, the reference at level 0 says {a} (tolerance {tol})");
    }
}

fuzz_target!(|input: MutateInput| {
    let bytes = mutated(models(), &input);
    let model = match Model::from_onnx_bytes(&bytes, None, &LoadOptions::default()) {
        Ok(m) => m,
        Err(e) => {
            note("load", &e);
            return;
        }
    };
    let Some(dims) = zero_input_shape(&model) else {
        return;
    };
    let n: usize = dims.iter().product();
    let x = ArrayD::from_shape_vec(IxDyn(&dims), (0..n).map(|i| ((i * 7919 % 2001) as f32 / 1000.0) - 1.0).collect())
        .expect("dims fit");
    let cpu = run(&model, Device::Cpu, &x);
    let reference = run(&model, Device::Reference, &x);
    let Ok(level0) = Model::from_onnx_bytes(&bytes, None, &LoadOptions::level(0)) else {
        return;
    };
    let graph = level0.graph();
    let modest = graph.node_ids().all(|id| match graph.op(id) {
        resnetc::ir::Op::Constant(t) => t.as_f32().is_none_or(|a| a.iter().all(|v| v.abs() <= 1e3)),
        _ => true,
    });
    if !modest {
        return;
    }
    let Some(oracle) = run(&level0, Device::Reference, &x) else {
        return;
    };
    if let Some(y) = reference {
        agree("reference at the default level", &oracle, &y, &bytes);
    }
    if let Some(y) = cpu {
        agree("cpu at the default level", &oracle, &y, &bytes);
    }
});
