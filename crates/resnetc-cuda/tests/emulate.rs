//! The generated kernels, compiled as host C++ (tests/emu/cuda_host.h runs each CUDA thread as a
//! fiber), against the reference executor and PyTorch: this checks the generated indexing, tiling,
//! epilogues and launch plan without a GPU.

mod common;

use common::*;
use ndarray::ArrayD;
use resnetc_cuda::{generate, generate_with, CudaProgram, GenOptions};
use resnetc_ir::Tensor;

/// Runs `program` emulated and the reference executor on `graph`, for `batch` images of `input`.
fn check(
    program: &CudaProgram,
    emu: &Emulator,
    graph: &resnetc_ir::Graph,
    input: &ArrayD<f32>,
    batch: usize,
) -> f32 {
    let x = input
        .slice(ndarray::s![..batch, .., .., ..])
        .to_owned()
        .into_dyn();
    let flat: Vec<f32> = x.iter().copied().collect();
    let got = emu.run(program, &flat, batch);
    let want = resnetc_reference::run(graph, &[Tensor::f32(x)]).expect("reference run");
    let want: Vec<f32> = want[0].as_f32().unwrap().iter().copied().collect();
    let d = max_abs_diff(&got, &want);
    // The project's tolerance for logits: max(1e-4, 2e-5 × max|expected|).
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let tol = 1e-4f32.max(2e-5 * scale);
    assert!(d <= tol, "batch {batch}: the emulated CUDA program differs from the reference executor by {d} (tolerance {tol})");
    eprintln!("batch {batch}: max |emulated - reference| = {d:e} (max |reference| {scale})");
    d
}

#[test]
fn resnet20_option_a_static_batch() {
    let f = fixture("r20_a_ts17_static");
    let m = load_fused(&f.path());
    let p = generate(m.graph(), m.info(), None).unwrap();
    assert_eq!(p.batch, Some(2));
    let emu = Emulator::build(&p, "r20a-static", true);
    check(&p, &emu, m.graph(), &f.input(), 2);
    let got = emu.run(&p, &f.input().iter().copied().collect::<Vec<_>>(), 2);
    let torch: Vec<f32> = f.expected().iter().copied().collect();
    assert!(
        max_abs_diff(&got, &torch) <= 1e-3,
        "differs from PyTorch by {}",
        max_abs_diff(&got, &torch)
    );
}

#[test]
fn resnet20_option_b_dynamic_batch_every_tile() {
    let f = fixture("r20_b_ts17_dynamic");
    let m = load_fused(&f.path());
    let input = f.input();
    // Small tiles (planned for a big GPU at small batches) and the largest ones (planned for one SM).
    for (sm, tag) in [(132, "r20b-dyn-small"), (1, "r20b-dyn-large")] {
        let p = generate_with(
            m.graph(),
            m.info(),
            &GenOptions {
                batch: None,
                sm_count: sm,
            },
        )
        .unwrap();
        assert_eq!(p.batch, None);
        let emu = Emulator::build(&p, tag, true);
        for batch in [1, 3] {
            check(&p, &emu, m.graph(), &input, batch);
        }
    }
}

#[test]
fn resnet56_pretrained_on_cifar_images() {
    let m = load_fused(&pretrained_model("resnet56"));
    let images = cifar_test_images(5).0.into_dyn();
    // sm_count 8: the medium tiles for 5 images, the large ones for the first layers.
    let p = generate_with(
        m.graph(),
        m.info(),
        &GenOptions {
            batch: None,
            sm_count: 8,
        },
    )
    .unwrap();
    let emu = Emulator::build(&p, "r56-pretrained", false);
    check(&p, &emu, m.graph(), &images, 5);
    let logits = pretrained_logits("resnet56");
    let got = emu.run(&p, &images.iter().copied().collect::<Vec<_>>(), 5);
    let torch: Vec<f32> = logits.iter().take(50).copied().collect();
    assert!(
        max_abs_diff(&got, &torch) <= 1e-3,
        "differs from PyTorch by {}",
        max_abs_diff(&got, &torch)
    );
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(ArrayD::from_shape_vec(shape.to_vec(), values(n, seed)).unwrap())
}

/// A graph with what the CIFAR models lack: 7×7 images (pixel counts not a multiple of 4), channel
/// counts not a multiple of 16, a subsampled residual from an odd size, relu before the residual add,
/// a conv with no bias and no epilogue, an asymmetric kernel, stride and padding, and a head without
/// pooling whose Gemm has transB = 0, alpha, beta and a one-row C.
fn odd_graph(batch: resnetc_ir::Dim) -> resnetc_ir::Graph {
    use resnetc_ir::{
        Conv, DType, Dim, Epilogue, Gemm, Graph, Op, Padding, ResidualRead, TensorType,
    };
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        TensorType::new(
            DType::F32,
            vec![batch, Dim::Fixed(3), Dim::Fixed(7), Dim::Fixed(7)],
        ),
    );
    let conv = |k: [usize; 2], s: [usize; 2], p: [usize; 4]| Conv {
        kernel: k,
        strides: s,
        dilations: [1, 1],
        padding: Padding::Explicit(p),
        group: 1,
    };
    let mut seed = 0;
    let mut constant = |g: &mut Graph, shape: &[usize]| {
        seed += 1;
        g.add_const(format!("c{seed}"), tensor(shape, seed)).into()
    };
    let (w1, b1) = (constant(&mut g, &[10, 3, 3, 3]), constant(&mut g, &[10]));
    let c1 = g.add_node(
        "c1",
        Op::FusedConv {
            conv: conv([3, 3], [1, 1], [1, 1, 1, 1]),
            epilogue: vec![Epilogue::Bias, Epilogue::Relu],
        },
        vec!["y1".into()],
        &[Some(x.into()), Some(w1), Some(b1)],
    );
    let (w2, b2) = (constant(&mut g, &[20, 10, 3, 3]), constant(&mut g, &[20]));
    let c2 = g.add_node(
        "c2",
        Op::FusedConv {
            conv: conv([3, 3], [2, 2], [1, 1, 1, 1]),
            epilogue: vec![
                Epilogue::Bias,
                Epilogue::AddResidual(ResidualRead::Subsampled {
                    stride: 2,
                    pad_before: 5,
                }),
                Epilogue::Relu,
            ],
        },
        vec!["y2".into()],
        &[Some(c1.into()), Some(w2), Some(b2), Some(c1.into())],
    );
    let w3 = constant(&mut g, &[20, 20, 1, 1]);
    let c3 = g.add_node(
        "c3",
        Op::FusedConv {
            conv: conv([1, 1], [1, 1], [0, 0, 0, 0]),
            epilogue: vec![Epilogue::Relu, Epilogue::AddResidual(ResidualRead::Direct)],
        },
        vec!["y3".into()],
        &[Some(c2.into()), Some(w3), None, Some(c2.into())],
    );
    let w4 = constant(&mut g, &[12, 20, 2, 3]);
    let c4 = g.add_node(
        "c4",
        Op::FusedConv {
            conv: conv([2, 3], [1, 2], [1, 0, 0, 1]),
            epilogue: vec![],
        },
        vec!["y4".into()],
        &[Some(c3.into()), Some(w4)],
    );
    let flat = g.add_node(
        "flat",
        Op::Flatten { axis: 1 },
        vec!["f".into()],
        &[Some(c4.into())],
    );
    let (wb, cb) = (constant(&mut g, &[96, 7]), constant(&mut g, &[1, 7]));
    let gemm = g.add_node(
        "fc",
        Op::Gemm(Gemm {
            alpha: 0.5,
            beta: 2.0,
            trans_a: false,
            trans_b: false,
        }),
        vec!["logits".into()],
        &[Some(flat.into()), Some(wb), Some(cb)],
    );
    g.add_output("logits", gemm.into());
    g
}

#[test]
fn odd_shapes_and_epilogues() {
    let input = ArrayD::from_shape_vec(vec![5, 3, 7, 7], values(5 * 3 * 49, 99)).unwrap();
    for (batch, sm, tag) in [
        (None, 132, "odd-dyn-small"),
        (None, 1, "odd-dyn-large"),
        (Some(5), 132, "odd-static"),
    ] {
        let dim = batch.map_or_else(|| resnetc_ir::Dim::Sym("N".into()), resnetc_ir::Dim::Fixed);
        let graph = odd_graph(dim);
        let info = resnetc_ir::validate(&graph).expect("the test graph is valid");
        let p = generate_with(
            &graph,
            &info,
            &GenOptions {
                batch,
                sm_count: sm,
            },
        )
        .unwrap();
        assert_eq!(p.output.shape, [7]);
        let emu = Emulator::build(&p, tag, true);
        let batches: &[usize] = if batch.is_some() { &[5] } else { &[1, 2, 5] };
        for &b in batches {
            check(&p, &emu, &graph, &input, b);
        }
    }
}
