//! Differential tests: every kernel, through a one-op plan ([`resnetc_cpu::eval_op`]), against the
//! reference executor's `eval_op` on random shapes, strides, paddings and epilogues — on the portable
//! kernels and on this machine's SIMD kernels, on one thread and on two.
//!
//! Tolerance: the kernels sum in another order than the reference and the SIMD ones fuse multiply
//! and add, so each output may differ by a few ulps of the magnitudes summed into it. An element
//! passes when `|got − expected| ≤ 1e-5 · m + 1e-6`, where `m` is the sum of the absolute values of
//! everything added into it (`Σ|w·x| + |bias| + |residual|`, computed by the reference on absolute
//! values): a relative error of 1e-5, about 80 ulps, against the worst-case cancellation.
//! Winograd F(4×4, 3×3) rounds more (its transforms multiply by up to 8 and add 6 terms twice):
//! it is held to 1e-4 · m. Measured worst `|got − expected| / m` over these cases: direct
//! 2.9e-7, F(2×2) 3.9e-7, F(4×4) 1.7e-5.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use resnetc_cpu::{eval_op, CpuOptions, Isa, Winograd};
use resnetc_ir::{Conv, Epilogue, Gemm, Op, Padding, ResidualRead, Tensor};

/// Deterministic pseudo-random values in [-1, 1) from a seed.
fn values(seed: u64, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::f32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

fn abs(t: &Tensor) -> Tensor {
    Tensor::f32(t.as_f32().unwrap().mapv(f32::abs).into_owned())
}

/// The relative tolerance of each convolution form (see the module docs).
fn relative_tolerance(w: Winograd) -> f32 {
    match w {
        Winograd::F4 | Winograd::Auto => 1e-4,
        Winograd::Off | Winograd::F2 => 1e-5,
    }
}

/// The kernel sets to test here: the portable one and every SIMD one this machine has.
fn isas() -> Vec<Isa> {
    Isa::all_available()
}

fn check_close(
    what: &str,
    got: &Tensor,
    expected: &Tensor,
    magnitude: &Tensor,
) -> Result<(), TestCaseError> {
    check_close_rel(what, got, expected, magnitude, 1e-5)
}

/// [`check_close`] with relative tolerance `rel` in place of 1e-5.
fn check_close_rel(
    what: &str,
    got: &Tensor,
    expected: &Tensor,
    magnitude: &Tensor,
    rel: f32,
) -> Result<(), TestCaseError> {
    let (g, e, m) = (
        got.as_f32().unwrap(),
        expected.as_f32().unwrap(),
        magnitude.as_f32().unwrap(),
    );
    prop_assert_eq!(g.shape(), e.shape(), "{}: shapes differ", what);
    for ((i, &gv), (&ev, &mv)) in g.indexed_iter().zip(e.iter().zip(m.iter())) {
        let tol = rel * mv + 1e-6;
        prop_assert!(
            (gv - ev).abs() <= tol,
            "{}: at {:?} got {} expected {} (tolerance {:e})",
            what,
            i,
            gv,
            ev,
            tol
        );
    }
    Ok(())
}

#[derive(Clone, Debug)]
struct ConvCase {
    n: usize,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
    bias: bool,
    residual: Option<(ResidualRead, [usize; 3])>,
    relu: bool,
    relu_first: bool,
    seed: u64,
}

impl ConvCase {
    fn out_hw(&self) -> [usize; 2] {
        [0, 1].map(|i| {
            (self.hw[i] + self.pads[i] + self.pads[i + 2] - self.kernel[i]) / self.strides[i] + 1
        })
    }

    fn op(&self) -> Op {
        let conv = Conv {
            kernel: self.kernel,
            strides: self.strides,
            dilations: [1, 1],
            padding: Padding::Explicit(self.pads),
            group: 1,
        };
        let mut epilogue = Vec::new();
        if self.bias {
            epilogue.push(Epilogue::Bias);
        }
        let add = self.residual.map(|(r, _)| Epilogue::AddResidual(r));
        match (add, self.relu, self.relu_first) {
            (Some(a), true, true) => epilogue.extend([Epilogue::Relu, a]),
            (Some(a), true, false) => epilogue.extend([a, Epilogue::Relu]),
            (Some(a), false, _) => epilogue.push(a),
            (None, true, _) => epilogue.push(Epilogue::Relu),
            (None, false, _) => {}
        }
        Op::FusedConv { conv, epilogue }
    }

    fn tensors(&self) -> [Option<Tensor>; 4] {
        let x = values(self.seed, &[self.n, self.cin, self.hw[0], self.hw[1]]);
        let w = values(
            self.seed ^ 1,
            &[self.cout, self.cin, self.kernel[0], self.kernel[1]],
        );
        let b = self.bias.then(|| values(self.seed ^ 2, &[self.cout]));
        let r = self
            .residual
            .map(|(_, [c, h, w])| values(self.seed ^ 3, &[self.n, c, h, w]));
        [Some(x), Some(w), b, r]
    }
}

/// Random convolutions with kernel sizes in `k` and strides in `s`.
fn conv_case(
    k: std::ops::RangeInclusive<usize>,
    s: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = ConvCase> {
    (
        (1usize..=2, 1usize..=40, 1usize..=40),
        (
            [1usize..=12, 1usize..=12],
            [k.clone(), k],
            [s.clone(), s],
            [0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2],
        ),
        (
            any::<bool>(),
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            1usize..=3,
            any::<u64>(),
        ),
    )
        .prop_filter_map(
            "the window must fit the padded input",
            |(
                (n, cin, cout),
                (hw, kernel, strides, pads),
                (bias, res, relu, relu_first, rstride, seed),
            )| {
                if (0..2).any(|i| hw[i] + pads[i] + pads[i + 2] < kernel[i]) {
                    return None;
                }
                let mut case = ConvCase {
                    n,
                    cin,
                    cout,
                    hw,
                    kernel,
                    strides,
                    pads,
                    bias,
                    residual: None,
                    relu,
                    relu_first,
                    seed,
                };
                let [oh, ow] = case.out_hw();
                case.residual = match res {
                    0 => None,
                    1 => Some((ResidualRead::Direct, [cout, oh, ow])),
                    _ => {
                        // Channels and offset from the seed; rows and columns any size that subsamples to the output.
                        let pad_before = (seed as usize >> 8) % cout;
                        let c = 1 + (seed as usize >> 16) % (cout - pad_before);
                        let h = (oh - 1) * rstride + 1 + (seed as usize >> 24) % rstride;
                        let w = (ow - 1) * rstride + 1 + (seed as usize >> 32) % rstride;
                        Some((
                            ResidualRead::Subsampled {
                                stride: rstride,
                                pad_before,
                            },
                            [c, h, w],
                        ))
                    }
                };
                Some(case)
            },
        )
}

/// The reference result and the magnitude bound of each output element.
fn reference(case: &ConvCase) -> (Tensor, Tensor) {
    let op = case.op();
    let t = case.tensors();
    let refs: Vec<Option<&Tensor>> = t.iter().map(Option::as_ref).collect();
    let expected = resnetc_reference::eval_op(&op, &refs).unwrap();
    // Everything summed, in absolute value, and no ReLU (it only shrinks values).
    let abs_t: Vec<Option<Tensor>> = t.iter().map(|x| x.as_ref().map(abs)).collect();
    let Op::FusedConv { conv, epilogue } = &op else {
        unreachable!()
    };
    let epilogue: Vec<Epilogue> = epilogue
        .iter()
        .filter(|e| **e != Epilogue::Relu)
        .cloned()
        .collect();
    let mag_op = Op::FusedConv {
        conv: conv.clone(),
        epilogue,
    };
    let refs: Vec<Option<&Tensor>> = abs_t.iter().map(Option::as_ref).collect();
    let magnitude = resnetc_reference::eval_op(&mag_op, &refs).unwrap();
    (expected, magnitude)
}

fn run_conv_case(case: &ConvCase) -> Result<(), TestCaseError> {
    let (expected, magnitude) = reference(case);
    let t = case.tensors();
    let refs: Vec<Option<&Tensor>> = t.iter().map(Option::as_ref).collect();
    for isa in isas() {
        for winograd in [Winograd::Off, Winograd::F2, Winograd::F4] {
            for threads in [1, 2] {
                let opts = CpuOptions {
                    isa,
                    winograd: Some(winograd),
                };
                let got = eval_op(&case.op(), &refs, &opts, threads)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                check_close_rel(
                    &format!("{isa}, winograd {winograd:?}, {threads} threads"),
                    &got,
                    &expected,
                    &magnitude,
                    relative_tolerance(winograd),
                )?;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn fused_conv_matches_the_reference(case in conv_case(1..=3, 1..=3)) {
        run_conv_case(&case)?;
    }

    /// 3×3 stride 1: the Winograd path (even output widths) and its direct fallbacks.
    #[test]
    fn fused_conv_3x3_matches_the_reference(case in conv_case(3..=3, 1..=1)) {
        run_conv_case(&case)?;
    }

    #[test]
    fn global_average_pool_matches_the_reference(n in 1usize..=3, c in 1usize..=40, h in 1usize..=9, w in 1usize..=9, seed in any::<u64>()) {
        let x = values(seed, &[n, c, h, w]);
        let expected = resnetc_reference::eval_op(&Op::GlobalAveragePool, &[Some(&x)]).unwrap();
        let magnitude = resnetc_reference::eval_op(&Op::GlobalAveragePool, &[Some(&abs(&x))]).unwrap();
        for isa in isas() {
            let got = eval_op(&Op::GlobalAveragePool, &[Some(&x)], &CpuOptions { isa, winograd: Some(Winograd::Off) }, 1).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_close(&format!("{isa}"), &got, &expected, &magnitude)?;
        }
    }

    #[test]
    fn gemm_matches_the_reference(n in 1usize..=4, k in 1usize..=70, m in 1usize..=20, trans_b in any::<bool>(), c_kind in 0u8..3,
                                  alpha in -2f32..2f32, beta in -2f32..2f32, seed in any::<u64>()) {
        let op = Op::Gemm(Gemm { alpha, beta, trans_a: false, trans_b });
        let a = values(seed, &[n, k]);
        let b = values(seed ^ 1, &if trans_b { [m, k] } else { [k, m] });
        let c = match c_kind { 0 => None, 1 => Some(values(seed ^ 2, &[m])), _ => Some(values(seed ^ 2, &[1, m])) };
        let expected = resnetc_reference::eval_op(&op, &[Some(&a), Some(&b), c.as_ref()]).unwrap();
        let mag_op = Op::Gemm(Gemm { alpha: alpha.abs(), beta: beta.abs(), trans_a: false, trans_b });
        let ca = c.as_ref().map(abs);
        let magnitude = resnetc_reference::eval_op(&mag_op, &[Some(&abs(&a)), Some(&abs(&b)), ca.as_ref()]).unwrap();
        for isa in isas() {
            let got = eval_op(&op, &[Some(&a), Some(&b), c.as_ref()], &CpuOptions { isa, winograd: Some(Winograd::Off) }, 1).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_close(&format!("{isa}"), &got, &expected, &magnitude)?;
        }
    }
}

/// The shapes a CifarResNet has, each checked once on every kernel set (proptest rarely draws 64
/// channels at 8×8 with a stride-2 option-A residual).
#[test]
fn cifar_resnet_convolutions_match_the_reference() {
    let base = ConvCase {
        n: 2,
        cin: 16,
        cout: 16,
        hw: [32, 32],
        kernel: [3, 3],
        strides: [1, 1],
        pads: [1; 4],
        bias: true,
        residual: None,
        relu: true,
        relu_first: false,
        seed: 7,
    };
    let cases = [
        ConvCase {
            cin: 3,
            ..base.clone()
        },
        ConvCase {
            residual: Some((ResidualRead::Direct, [16, 32, 32])),
            ..base.clone()
        },
        ConvCase {
            cout: 32,
            strides: [2, 2],
            ..base.clone()
        },
        ConvCase {
            cin: 32,
            cout: 32,
            hw: [16, 16],
            residual: Some((
                ResidualRead::Subsampled {
                    stride: 2,
                    pad_before: 8,
                },
                [16, 32, 32],
            )),
            ..base.clone()
        },
        ConvCase {
            cin: 64,
            cout: 64,
            hw: [8, 8],
            residual: Some((
                ResidualRead::Subsampled {
                    stride: 2,
                    pad_before: 16,
                },
                [32, 16, 16],
            )),
            ..base.clone()
        },
        // Two output blocks over an 8×8 output: F(4×4)'s four tiles are computed two blocks deep
        // on AVX-512 (the 64-channel case above, four deep).
        ConvCase {
            cin: 32,
            cout: 32,
            hw: [8, 8],
            residual: Some((ResidualRead::Direct, [32, 8, 8])),
            ..base.clone()
        },
        ConvCase {
            cin: 32,
            cout: 64,
            hw: [16, 16],
            kernel: [1, 1],
            strides: [2, 2],
            pads: [0; 4],
            relu: false,
            ..base.clone()
        },
    ];
    for case in &cases {
        run_conv_case(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
}
