//! Helpers shared by the test binaries: tensor constructors, a seeded generator, naive reference ops
//! written independently of the crate, and a CIFAR ResNet builder.
#![allow(dead_code)] // each test binary uses a different subset

use ndarray::{ArcArray, ArrayD, IxDyn};
use resnetc_ir::{Conv, DType, Gemm, Graph, NodeId, Op, Padding, Tensor, TensorType, ValueRef};
use resnetc_reference::{eval_op, EvalError};

pub fn f32t(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::f32(ArrayD::from_shape_vec(IxDyn(shape), data).unwrap())
}

pub fn i64t(shape: &[usize], data: Vec<i64>) -> Tensor {
    Tensor::i64(ArrayD::from_shape_vec(IxDyn(shape), data).unwrap())
}

pub fn i32t(shape: &[usize], data: Vec<i32>) -> Tensor {
    Tensor::I32(ArcArray::from_shape_vec(IxDyn(shape), data).unwrap())
}

pub fn ints(v: &[i64]) -> Tensor {
    Tensor::i64_vec(v.to_vec())
}

pub fn i64_scalar(v: i64) -> Tensor {
    i64t(&[], vec![v])
}

/// `0, 1, 2, …` as f32 in the given shape.
pub fn iota(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    f32t(shape, (0..n).map(|i| i as f32).collect())
}

pub fn f32s(t: &Tensor) -> Vec<f32> {
    t.as_f32()
        .unwrap_or_else(|| panic!("expected f32, got {}", t.dtype()))
        .iter()
        .copied()
        .collect()
}

pub fn i64s(t: &Tensor) -> Vec<i64> {
    assert_eq!(t.dtype(), DType::I64);
    t.as_i64s().unwrap()
}

/// Evaluates `op` on all-present inputs, panicking (the test fails) on an error.
pub fn eval(op: &Op, inputs: &[&Tensor]) -> Tensor {
    let slots: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
    eval_op(op, &slots).unwrap_or_else(|e| panic!("{op} failed: {e}"))
}

/// Evaluates `op` expecting an error.
pub fn eval_err(op: &Op, inputs: &[&Tensor]) -> EvalError {
    let slots: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
    match eval_op(op, &slots) {
        Ok(t) => panic!(
            "{op} succeeded with shape {:?}, expected an error",
            t.shape()
        ),
        Err(e) => e,
    }
}

pub fn check(t: &Tensor, shape: &[usize], values: &[f32]) {
    assert_eq!(t.shape(), shape, "shape");
    assert_eq!(f32s(t), values, "values");
}

pub fn conv(
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    padding: Padding,
    group: usize,
) -> Op {
    Op::Conv(Conv {
        kernel,
        strides,
        dilations,
        padding,
        group,
    })
}

/// xorshift64*: a deterministic generator so tests need no seed management.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-1, 1).
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product::<usize>();
        f32t(shape, (0..n).map(|_| self.next()).collect())
    }
}

/// Naive convolution: one scalar loop per dimension, accumulating in the order the crate documents
/// (input channel, kernel row, kernel column; taps in the padding skipped; bias last), so results
/// must match bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn naive_conv(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    wt: &[f32],
    [m, cg, kh, kw]: [usize; 4],
    bias: Option<&[f32]>,
    [sh, sw]: [usize; 2],
    [dh, dw]: [usize; 2],
    [pt, pl, pb, pr]: [usize; 4],
    group: usize,
) -> (Vec<f32>, [usize; 4]) {
    assert_eq!(c, cg * group);
    let oh = (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1;
    let ow = (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
    let mg = m / group;
    let mut out = vec![0f32; n * m * oh * ow];
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0f32;
                    for icg in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sh + ky * dh) as i64 - pt as i64;
                                let ix = (ox * sw + kx * dw) as i64 - pl as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                    continue;
                                }
                                let ic = g * cg + icg;
                                let xv = x[((b * c + ic) * h + iy as usize) * w + ix as usize];
                                let wv = wt[((oc * cg + icg) * kh + ky) * kw + kx];
                                acc += wv * xv;
                            }
                        }
                    }
                    if let Some(bias) = bias {
                        acc += bias[oc];
                    }
                    out[((b * m + oc) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    (out, [n, m, oh, ow])
}

/// Builds graphs with generated weights; every node name is unique.
pub struct Builder {
    pub g: Graph,
    pub rng: Gen,
    count: usize,
}

impl Builder {
    pub fn new(seed: u64) -> Builder {
        Builder {
            g: Graph::new(),
            rng: Gen::new(seed),
            count: 0,
        }
    }

    fn name(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}{}", self.count)
    }

    pub fn node(&mut self, base: &str, op: Op, inputs: &[Option<ValueRef>]) -> NodeId {
        let name = self.name(base);
        self.g.add_node(name.clone(), op, vec![name], inputs)
    }

    pub fn constant(&mut self, t: Tensor) -> NodeId {
        let name = self.name("c");
        self.g.add_const(name, t)
    }

    pub fn random(&mut self, shape: &[usize]) -> NodeId {
        let t = self.rng.tensor(shape);
        self.constant(t)
    }

    /// Conv (no bias) → BatchNorm with generated statistics.
    pub fn conv_bn(
        &mut self,
        x: NodeId,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> NodeId {
        let w = self.rng.tensor(&[cout, cin, k, k]);
        let scale = 1.0 / ((cin * k * k) as f32).sqrt();
        let w = Tensor::F32(w.as_f32().unwrap().mapv(|v| v * scale).into_shared());
        let w = self.constant(w);
        let p = (k - 1) / 2;
        let c = self.node(
            "conv",
            conv(
                [k, k],
                [stride, stride],
                [1, 1],
                Padding::Explicit([p; 4]),
                1,
            ),
            &[Some(x.into()), Some(w.into())],
        );
        let params: Vec<NodeId> = (0..4)
            .map(|i| {
                let v: Vec<f32> = (0..cout).map(|_| self.rng.next()).collect();
                let v = if i == 0 || i == 3 {
                    v.iter().map(|x| 1.0 + 0.5 * x).collect()
                } else {
                    v.iter().map(|x| 0.1 * x).collect()
                };
                self.constant(f32t(&[cout], v))
            })
            .collect();
        let mut inputs = vec![Some(c.into())];
        inputs.extend(params.iter().map(|&p| Some(p.into())));
        self.node("bn", Op::BatchNorm { epsilon: 1e-5 }, &inputs)
    }

    pub fn relu(&mut self, x: NodeId) -> NodeId {
        self.node("relu", Op::Relu, &[Some(x.into())])
    }
}

/// A CIFAR ResNet of depth 6n+2 (option-B shortcuts: 1x1 conv + BN when the shape changes) with
/// generated weights, input `f32[batch,3,32,32]`, output `f32[batch,classes]`.
pub fn cifar_resnet(n: usize, classes: usize, batch: usize, seed: u64) -> Graph {
    let mut b = Builder::new(seed);
    let x =
        b.g.add_input("input", TensorType::fixed(DType::F32, &[batch, 3, 32, 32]));
    let stem = b.conv_bn(x, 3, 16, 3, 1);
    let mut cur = b.relu(stem);
    let mut cin = 16;
    for (stage, cout) in [16usize, 32, 64].into_iter().enumerate() {
        for block in 0..n {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let c1 = b.conv_bn(cur, cin, cout, 3, stride);
            let r1 = b.relu(c1);
            let c2 = b.conv_bn(r1, cout, cout, 3, 1);
            let shortcut = if stride != 1 || cin != cout {
                b.conv_bn(cur, cin, cout, 1, stride)
            } else {
                cur
            };
            let sum = b.node(
                "add",
                Op::Binary(resnetc_ir::BinOp::Add),
                &[Some(c2.into()), Some(shortcut.into())],
            );
            cur = b.relu(sum);
            cin = cout;
        }
    }
    let pooled = b.node("gap", Op::GlobalAveragePool, &[Some(cur.into())]);
    let flat = b.node("flatten", Op::Flatten { axis: 1 }, &[Some(pooled.into())]);
    let fc_w = b.random(&[classes, 64]);
    let fc_b = b.random(&[classes]);
    let gemm = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    });
    let logits = b.node(
        "fc",
        gemm,
        &[Some(flat.into()), Some(fc_w.into()), Some(fc_b.into())],
    );
    b.g.add_output("logits", logits.into());
    b.g
}
