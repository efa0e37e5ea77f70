//! A structured small model (Conv, Relu, Add, BatchNormalization, GlobalAveragePool, Flatten, Gemm
//! and the option-A shortcut's Slice + Pad, on an input [batch, C ≤ 8, H ≤ 12, W ≤ 12]; see
//! `resnetc_fuzz::Desc`), built as a valid ONNX ModelProto (opset 17, IR version 8), encoded and
//! loaded with `Model::from_onnx_bytes`. The oracle is the reference executor on the model loaded
//! at opt level 0; against it are checked, elementwise within max(1e-3, 1e-4·max|oracle|):
//!   - the reference executor on the model at the description's opt level (the optimizer),
//!   - the CPU backend on that model,
//!   - the CPU backend on that model compiled to a `.rnc` and loaded back (when asked),
//!   - a CPU plan compiled for one of this machine's kernel sets (portable, AVX2, AVX-512) with a
//!     Winograd choice (off, F2, F4, auto), run straight on `resnetc_cpu::Session` on 1 or 2
//!     threads.
//! Weights are finite and modest (conv/gemm in [-1, 1], BN scale in [0.5, 1.5], var in [0.1, 2]),
//! inputs in [-s, s] for s ∈ {0.25, 1, 4}, so a disagreement is a bug.
//!
//! A backend refusing with an error is fine. Refusals seen (RESNETC_FUZZ_VERBOSE=1 over a corpus of
//! 2035 inputs after 37 minutes), all from the CPU backend (session or plan), all typed errors
//! ("the CPU backend cannot run it …; run the graph on the reference executor instead"):
//!   - no CPU kernel for Mul (a BatchNormalization not after a convolution, folded to Mul + Add),
//!     for BatchNormalization, Relu or Add where they are not fused into a convolution (level 0
//!     or 1, or no convolution before them), for Slice (level 0) and for Shortcut (an option-A
//!     shortcut that no convolution's residual read absorbs);
//!   - Conv/FusedConv with dilations other than 1, or with a group other than 1 (depthwise).
//! The reference executor refused nothing at any level, and no compile or artifact load failed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnetc::ndarray::{ArrayD, IxDyn};
use resnetc::{Device, LoadOptions, Model};
use resnetc_fuzz::{build, note, Desc};

fn run(model: &Model, device: Device, x: &ArrayD<f32>) -> Option<ArrayD<f32>> {
    let mut session = match model.session(device) {
        Ok(s) => s,
        Err(e) => {
            note(&format!("{device} session"), &e);
            return None;
        }
    };
    match session.run_dyn(x.view()) {
        Ok(y) => Some(y),
        Err(e) => {
            note(&format!("{device} run"), &e);
            None
        }
    }
}

fn agree(what: &str, oracle: &ArrayD<f32>, got: &ArrayD<f32>, desc: &Desc) {
    assert_eq!(
        oracle.shape(),
        got.shape(),
        "{what}: output shape differs from the reference at level 0; {desc:?}"
    );
    let max = oracle.iter().fold(0f32, |m, v| m.max(v.abs()));
    let tol = 1e-3f32.max(1e-4 * max);
    for (i, (a, b)) in oracle.iter().zip(got.iter()).enumerate() {
        let ok = (a - b).abs() <= tol || (a.is_nan() && b.is_nan());
        assert!(
            ok,
            "{what}: element {i} is {b}, the reference at level 0 says {a} (tolerance {tol}); {desc:?}"
        );
    }
}

fuzz_target!(|desc: Desc| {
    let built = build(&desc);
    let level0 = match Model::from_onnx_bytes(&built.onnx, None, &LoadOptions::level(0)) {
        Ok(m) => m,
        Err(e) => {
            note("load level 0", &e);
            return;
        }
    };
    let x = ArrayD::from_shape_vec(IxDyn(&built.input_shape), built.input.clone())
        .expect("the input's shape fits its values");
    let Some(oracle) = run(&level0, Device::Reference, &x) else {
        return;
    };
    let model = if built.opt_level == 0 {
        level0
    } else {
        match Model::from_onnx_bytes(&built.onnx, None, &LoadOptions::level(built.opt_level)) {
            Ok(m) => m,
            Err(e) => panic!(
                "the model loads at level 0 but not at level {}: {e}; {desc:?}",
                built.opt_level
            ),
        }
    };
    let level = built.opt_level;
    if level != 0 {
        if let Some(y) = run(&model, Device::Reference, &x) {
            agree(&format!("reference at level {level}"), &oracle, &y, &desc);
        }
    }
    if let Some(y) = run(&model, Device::Cpu, &x) {
        agree(&format!("cpu at level {level}"), &oracle, &y, &desc);
    }
    let opts = resnetc::cpu::CpuOptions {
        isa: built.isa,
        winograd: Some(built.winograd),
    };
    match resnetc::cpu::CpuPlan::compile_with(model.graph(), model.info(), &opts) {
        Ok(plan) => {
            let batch = built.input_shape[0];
            let out = plan.outputs().next().expect("a plan has an output");
            let mut y = vec![0f32; out.floats * batch];
            let mut shape = vec![batch];
            shape.extend(&out.dims);
            let mut session = resnetc::cpu::Session::new(&plan, built.threads);
            match session.run(&built.input, batch, &mut y) {
                Ok(()) => {
                    let y = ArrayD::from_shape_vec(IxDyn(&shape), y)
                        .expect("the output's dims fit its floats");
                    let what = format!(
                        "cpu plan ({}, {:?}, {} threads) at level {level}",
                        built.isa.name(),
                        built.winograd,
                        built.threads
                    );
                    agree(&what, &oracle, &y, &desc);
                }
                Err(e) => note("cpu plan run", &e),
            }
        }
        Err(e) => note("cpu plan", &e),
    }
    if built.compile {
        match resnetc::compile(&model, resnetc::Target::Cpu) {
            Ok(artifact) => {
                let bytes = artifact.to_bytes();
                let loaded = Model::from_bytes(&bytes, None, &LoadOptions::default())
                    .unwrap_or_else(|e| panic!("a compiled artifact does not load: {e}; {desc:?}"));
                if let Some(y) = run(&loaded, Device::Cpu, &x) {
                    agree(&format!("cpu on the .rnc of level {level}"), &oracle, &y, &desc);
                }
            }
            Err(e) => note("compile", &e),
        }
    }
});
