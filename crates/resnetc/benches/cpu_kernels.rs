//! `cargo bench --bench cpu_kernels`: the CPU backend's convolution forms side by side.
//!
//! For each CifarResNet stage shape (16 channels at 32×32, 32 at 16×16, 64 at 8×8) a chain of six
//! 3×3 convolutions with bias and ReLU runs as direct convolution, Winograd F(2×2) and F(4×4); then
//! the pretrained resnet20 and resnet56 in `../shared` (when present) with Winograd off and on.
//! Variants alternate in one process and each reports its best time over many runs, so a noisy,
//! shared machine shifts all of them alike: read the ratios, not the absolute numbers.
//!
//! `RESNETC_BENCH_ROUNDS` (default 20) sets the alternations; `RESNETC_BENCH_BATCH` (default 16)
//! the batch of the convolution chains, `RESNETC_BENCH_DEPTH` (default 6) their length;
//! `RESNETC_BENCH_CHANNELS` (16, 32 or 64) and `RESNETC_BENCH_FORM` (`direct`, `F(2x2)` or
//! `F(4x4)`) run one stage or one form alone.

use std::path::Path;
use std::time::Instant;

use resnetc::cpu::{CpuOptions, CpuPlan, Isa, Session, Winograd};
use resnetc::ir::{
    validate, Conv, DType, Epilogue, Graph, Op, Padding, Tensor, TensorType, ValueRef,
};

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            (i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// Best seconds per run of each session, alternating them `rounds` times.
fn race(
    sessions: &mut [Session],
    x: &[f32],
    batch: usize,
    out_floats: usize,
    rounds: usize,
) -> Vec<f64> {
    let mut y = vec![0f32; batch * out_floats];
    let mut best = vec![f64::MAX; sessions.len()];
    for _ in 0..rounds {
        for (s, best) in sessions.iter_mut().zip(&mut best) {
            for _ in 0..3 {
                let t = Instant::now();
                s.run(x, batch, &mut y).expect("the plan runs");
                *best = best.min(t.elapsed().as_secs_f64());
            }
        }
    }
    best
}

fn conv_chain(c: usize, hw: usize, depth: usize) -> Graph {
    let mut g = Graph::new();
    let mut v: ValueRef = g
        .add_input("x", TensorType::fixed(DType::F32, &[1, c, hw, hw]))
        .into();
    let op = Op::FusedConv {
        conv: Conv {
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding::Explicit([1, 1, 1, 1]),
            group: 1,
        },
        epilogue: vec![Epilogue::Bias, Epilogue::Relu],
    };
    for d in 0..depth {
        let w = Tensor::f32(
            ndarray::ArrayD::from_shape_vec(
                ndarray::IxDyn(&[c, c, 3, 3]),
                values(c * c * 9, d as u32),
            )
            .expect("sizes agree"),
        );
        let b = Tensor::f32(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[c]), values(c, 99))
                .expect("sizes agree"),
        );
        let w = g.add_const(format!("w{d}"), w).into();
        let b = g.add_const(format!("b{d}"), b).into();
        v = g
            .add_node(
                format!("conv{d}"),
                op.clone(),
                vec![format!("y{d}")],
                &[Some(v), Some(w), Some(b)],
            )
            .into();
    }
    g.add_output("y", v);
    g
}

fn main() {
    let rounds = std::env::var("RESNETC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let chain_batch = std::env::var("RESNETC_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    // `RESNETC_BENCH_DEPTH` (default 6): convolutions per chain; 18 is a resnet56 stage, whose
    // weights no longer fit in the caches the way six convolutions' do.
    let chain_depth = std::env::var("RESNETC_BENCH_DEPTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    // `RESNETC_BENCH_FORM=F(4x4)` runs that form alone (for a profiler; the chains' lines then
    // time it against itself).
    let form = std::env::var("RESNETC_BENCH_FORM").ok();
    let forms: Vec<(&str, Winograd)> = [
        ("direct", Winograd::Off),
        ("F(2x2)", Winograd::F2),
        ("F(4x4)", Winograd::F4),
    ]
    .into_iter()
    .filter(|(name, _)| form.as_deref().is_none_or(|f| f == *name))
    .collect();
    assert!(
        !forms.is_empty(),
        "RESNETC_BENCH_FORM={form:?}: expected direct, F(2x2) or F(4x4)"
    );
    println!(
        "kernel set {}, one thread, batch {chain_batch}, chains of {chain_depth}, best of {rounds}×3 runs",
        Isa::Auto.resolve().map_or("?", |i| i.name())
    );
    // `RESNETC_BENCH_CHANNELS=16` runs only that stage's chain (for a profiler).
    let only: Option<usize> = std::env::var("RESNETC_BENCH_CHANNELS")
        .ok()
        .and_then(|v| v.parse().ok());
    for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
        if only.is_some_and(|o| o != c) {
            continue;
        }
        let (batch, depth) = (chain_batch, chain_depth);
        let g = conv_chain(c, hw, depth);
        let info = validate(&g).expect("the chain is valid");
        let plans: Vec<CpuPlan> = forms
            .iter()
            .map(|&(_, w)| {
                CpuPlan::compile_with(
                    &g,
                    &info,
                    &CpuOptions {
                        isa: Isa::Auto,
                        winograd: Some(w),
                    },
                )
                .expect("compiles")
            })
            .collect();
        let mut sessions: Vec<Session> = plans.iter().map(|p| p.session(1)).collect();
        let best = race(
            &mut sessions,
            &values(batch * c * hw * hw, 7),
            batch,
            c * hw * hw,
            rounds,
        );
        let flops = 2.0 * (batch * depth * c * c * 9 * hw * hw) as f64;
        let cells: Vec<String> = forms
            .iter()
            .zip(&best)
            .map(|((name, _), t)| format!("{name} {:6.2} ms ({:.2}×)", t * 1e3, best[0] / t))
            .collect();
        println!(
            "{c:2} ch {hw:2}×{hw:<2}: {} {:5.1} GFLOP/s | {}",
            forms[0].0,
            flops / best[0] / 1e9,
            cells.join(" | ")
        );
    }
    // `../shared` beside the repository, as the tests find it (or `RESNETC_SHARED`).
    let shared = std::env::var_os("RESNETC_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("models/pretrained");
    for (model, batch, threads) in [
        ("resnet20", 64, 1),
        ("resnet56", 64, 1),
        ("resnet56", 64, 2),
        ("resnet56", 1, 2),
    ] {
        let path = shared.join(format!("{model}_cifar10_pretrained.onnx"));
        let Ok(m) = resnetc::Model::load(&path) else {
            println!("{model}: not found at {}, skipped", path.display());
            continue;
        };
        let variants = [("direct", Winograd::Off), ("auto", Winograd::Auto)];
        let plans: Vec<CpuPlan> = variants
            .iter()
            .map(|&(_, w)| {
                CpuPlan::compile_with(
                    m.graph(),
                    m.info(),
                    &CpuOptions {
                        isa: Isa::Auto,
                        winograd: Some(w),
                    },
                )
                .expect("compiles")
            })
            .collect();
        let mut sessions: Vec<Session> = plans.iter().map(|p| p.session(threads)).collect();
        let best = race(
            &mut sessions,
            &values(batch * 3 * 32 * 32, 3),
            batch,
            10,
            rounds.div_ceil(2),
        );
        println!(
            "{model} batch {batch}, {threads} thread(s): direct {:.1} images/s, Winograd auto {:.1} images/s ({:.2}×)",
            batch as f64 / best[0],
            batch as f64 / best[1],
            best[0] / best[1]
        );
    }
}
