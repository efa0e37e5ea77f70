//! Code generation: the source and plan for ResNet-20 (snapshots), what varies with the batch,
//! identifiers, errors, and generation time.

mod common;

use std::fmt::Write;
use std::time::Instant;

use common::*;
use resnetc_cuda::{generate, generate_with, Arg, CudaError, CudaProgram, GenOptions};

fn r20() -> resnetc::Model {
    load_fused(&repo().join("fixtures/models/r20_a_ts17_static.onnx"))
}

/// The plan as text: buffers, then each step with its kernel variants and arguments.
fn plan_text(p: &CudaProgram) -> String {
    let mut s = String::new();
    let bufs: Vec<String> = p
        .buffers
        .iter()
        .map(|b| b.elems_per_image.to_string())
        .collect();
    let _ = writeln!(
        s,
        "batch {:?}; buffers (floats per image) [{}]; input {:?}; output {:?}",
        p.batch,
        bufs.join(", "),
        p.input,
        p.output
    );
    let _ = writeln!(
        s,
        "weights: {} floats; kernels: {}",
        p.weights.len(),
        p.kernels.join(" ")
    );
    for (k, step) in p.steps.iter().enumerate() {
        let args: Vec<String> = step
            .args
            .iter()
            .map(|a| match a {
                Arg::Buffer(b) => format!("B{b}"),
                Arg::Weights { offset, len } => format!("W{offset}+{len}"),
                Arg::Null => "null".into(),
                Arg::Batch => "batch".into(),
            })
            .collect();
        let _ = writeln!(s, "{k:2} {} ({})", step.what, args.join(", "));
        for v in &step.variants {
            let _ = writeln!(
                s,
                "     batch>={:<4} {} <<<ceil(batch*{}/{}), {}>>> x {}",
                v.min_batch, v.kernel, v.rows_per_image, v.rows_per_block, v.grid_y, v.block
            );
        }
    }
    s
}

#[test]
fn resnet20_source() {
    let m = r20();
    let p = generate(m.graph(), m.info(), None).unwrap();
    insta::assert_snapshot!("resnet20_static_batch2.cu", p.source);
    insta::assert_snapshot!("resnet20_static_batch2_plan", plan_text(&p));
}

#[test]
fn resnet20_dynamic_batch_plan() {
    let m = load_fused(&repo().join("fixtures/models/r20_a_ts17_dynamic.onnx"));
    let p = generate(m.graph(), m.info(), None).unwrap();
    assert_eq!(p.batch, None);
    insta::assert_snapshot!("resnet20_dynamic_plan", plan_text(&p));
    // Small batches take small tiles, large ones the largest.
    let kernels = |b: usize| {
        p.plan(b)
            .unwrap()
            .into_iter()
            .map(|l| l.kernel)
            .collect::<Vec<_>>()
    };
    let (one, many) = (kernels(1), kernels(1024));
    assert_ne!(one, many);
    assert_eq!(many[0], p.steps[0].variants[0].kernel);
    assert_eq!(one[0], p.steps[0].variants.last().unwrap().kernel);
    // Grids cover every output pixel.
    for b in [1, 7, 256] {
        for (l, s) in p.plan(b).unwrap().iter().zip(&p.steps) {
            let v = s.variants.iter().find(|v| v.kernel == l.kernel).unwrap();
            assert!(l.grid[0] as u64 * v.rows_per_block >= b as u64 * v.rows_per_image);
            assert!((l.grid[0] as u64 - 1) * v.rows_per_block < b as u64 * v.rows_per_image);
        }
    }
}

#[test]
fn weights_are_aligned_and_buffers_few() {
    for name in PRETRAINED {
        let m = load_fused(&pretrained_model(name));
        let p = generate(m.graph(), m.info(), None).unwrap();
        assert_eq!(
            p.buffers.len(),
            3,
            "{name}: a ResNet needs three activation buffers"
        );
        for s in &p.steps {
            for a in &s.args {
                if let Arg::Weights { offset, len } = a {
                    assert_eq!(
                        offset % 4,
                        0,
                        "{name}: float4 loads need 16-byte aligned weights"
                    );
                    assert!(offset + len <= p.weights.len());
                }
            }
            // No step writes a buffer it reads.
            let bufs: Vec<usize> = s
                .args
                .iter()
                .filter_map(|a| {
                    if let Arg::Buffer(b) = a {
                        Some(*b)
                    } else {
                        None
                    }
                })
                .collect();
            let out = *bufs.last().unwrap();
            assert!(
                !bufs[..bufs.len() - 1].contains(&out),
                "{name}: step '{}' writes a buffer it reads",
                s.what
            );
        }
    }
}

/// Generated programs pass `CudaProgram::check`; each kind of damage a file could bring is refused
/// with what is wrong, before a session touches the driver.
#[test]
fn launch_plans_are_checked() {
    for name in PRETRAINED {
        let m = load_fused(&pretrained_model(name));
        for batch in [None, Some(1), Some(256)] {
            let p = generate(m.graph(), m.info(), batch).unwrap();
            p.check()
                .unwrap_or_else(|e| panic!("{name} batch {batch:?}: {e}"));
        }
    }
    let good = generate(r20().graph(), r20().info(), None).unwrap();
    fn weights_arg(p: &mut CudaProgram) -> &mut Arg {
        (p.steps.iter_mut().flat_map(|s| s.args.iter_mut()))
            .find(|a| matches!(a, Arg::Weights { .. }))
            .unwrap()
    }
    type Damage = (&'static str, fn(&mut CudaProgram), &'static str);
    let cases: Vec<Damage> = vec![
        (
            "input buffer",
            |p| p.input.buffer = 7,
            "the input is buffer 7, but there are 3",
        ),
        (
            "output shape",
            |p| p.output.shape = vec![1 << 40],
            "the output [1099511627776] needs",
        ),
        (
            "argument buffer",
            |p| p.steps[2].args[0] = Arg::Buffer(3),
            "an argument of",
        ),
        (
            "weights past the blob",
            |p| p.weights.truncate(100),
            "the blob has 100 floats",
        ),
        (
            "unaligned weights",
            |p| {
                let a = weights_arg(p);
                if let Arg::Weights { offset, .. } = a {
                    *offset += 1;
                }
            },
            "offsets are multiples of 4",
        ),
        (
            "no batch-1 kernel",
            |p| p.steps[0].variants.last_mut().unwrap().min_batch = 2,
            "has no kernel for batch 1",
        ),
        (
            "unknown kernel",
            |p| p.steps[1].variants[0].kernel = "k99_conv".into(),
            "launches k99_conv, which the source does not define",
        ),
        (
            "block size",
            |p| p.steps[1].variants[0].block = 2048,
            "with 2048 threads per block",
        ),
    ];
    for (what, damage, expect) in cases {
        let mut p = good.clone();
        damage(&mut p);
        let e = p.check().expect_err(what);
        assert!(matches!(e, CudaError::Program(_)), "{what}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains(expect) && text.ends_with("; recompile the model"),
            "{what}: {text}"
        );
        // The session refuses it first thing, whether or not there is a driver.
        let err = resnetc_cuda::CudaSession::new(&p, &[], 0)
            .err()
            .expect(what);
        assert_eq!(err, e, "{what}");
    }
}

#[test]
fn identifiers_never_come_from_the_model() {
    let m = r20();
    let clean = generate(m.graph(), m.info(), None).unwrap();
    let mut g = m.graph().clone();
    let ids: Vec<_> = g.node_ids().collect();
    for (k, id) in ids.into_iter().enumerate() {
        let n = g.node_mut(id);
        n.name = format!("*/ #error injected {k}\n\"");
        n.outputs = n
            .outputs
            .iter()
            .map(|o| format!("{o}*/ asm(\"trap;\"); /*"))
            .collect();
    }
    let info = resnetc_ir::validate(&g).unwrap();
    let p = generate(&g, &info, None).unwrap();
    assert_eq!(p.source, clean.source);
    assert!(!p.source.contains("injected") && !p.source.contains("/layer"));
}

#[test]
fn batches() {
    let m = r20();
    // The fixture's batch is fixed at 2.
    assert!(matches!(
        generate(m.graph(), m.info(), Some(4)),
        Err(CudaError::Batch(_))
    ));
    let p = generate(m.graph(), m.info(), Some(2)).unwrap();
    assert_eq!(p.batch, Some(2));
    insta::assert_snapshot!(p.plan(3).unwrap_err().to_string(), @"the program was compiled for batch 2, not 3; compile without a fixed batch to run any batch");
    assert!(matches!(p.plan(0), Err(CudaError::Batch(_))));
    let d = load_fused(&repo().join("fixtures/models/r20_a_ts17_dynamic.onnx"));
    let p = generate(d.graph(), d.info(), Some(64)).unwrap();
    assert_eq!(p.batch, Some(64));
    assert!(p.steps.iter().all(|s| s.variants.len() == 1));
    assert!(
        p.source.contains("(x, w, bias, res, y, 64, t"),
        "the batch is baked into the kernels"
    );
    assert!(matches!(
        generate(d.graph(), d.info(), Some(0)),
        Err(CudaError::Batch(_))
    ));
    assert!(matches!(p.plan(1 << 30), Err(CudaError::Batch(_))));
}

#[test]
fn unfused_graphs_are_refused_with_the_node() {
    let m = resnetc::Model::load_with(
        repo().join("fixtures/models/r20_a_ts17_static.onnx"),
        &resnetc::LoadOptions::level(0),
    )
    .unwrap();
    let e = generate(m.graph(), m.info(), None).unwrap_err();
    insta::assert_snapshot!(e.to_string(), @"node '/conv1/Conv' (Conv): Conv has no CUDA lowering; the CUDA backend lowers the fused graph of opt level 3 (FusedConv, GlobalAveragePool → Flatten → Gemm), run `resnetc compile --target cpu` or the reference executor instead");
}

#[test]
fn generation_is_fast() {
    let m = load_fused(&pretrained_model("resnet56"));
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let p = generate(m.graph(), m.info(), None).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(p.steps.len(), 56);
    }
    eprintln!("generate(resnet56): {:.1} ms", best * 1e3);
    assert!(best < 1.0, "generate() took {best:.2} s for ResNet-56");
    // The tile choice follows the SM count.
    let one = generate_with(
        m.graph(),
        m.info(),
        &GenOptions {
            batch: Some(1),
            sm_count: 1,
        },
    )
    .unwrap();
    let many = generate_with(
        m.graph(),
        m.info(),
        &GenOptions {
            batch: Some(1),
            sm_count: 132,
        },
    )
    .unwrap();
    assert_ne!(one.source, many.source);
}
