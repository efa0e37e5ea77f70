//! One op at a time, on small inputs whose results are worked out by hand in the comments.

mod common;

use common::*;
use resnetc_ir::{AvgPool, BinOp, DType, Gemm, Op, PadMode, Padding, Tensor};
use resnetc_reference::{eval_op, EvalError};

fn invalid(op: &'static str, message: &str) -> EvalError {
    EvalError::Invalid {
        op,
        message: message.into(),
    }
}

// ---- Conv ----------------------------------------------------------------------------------------

/// x = [[1,2,3],[4,5,6],[7,8,9]]
fn x3() -> Tensor {
    f32t(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect())
}

#[test]
fn conv_padding_sums_neighbourhoods() {
    // An all-ones 3x3 kernel with padding 1 sums each element's neighbourhood.
    let ones = f32t(&[1, 1, 3, 3], vec![1.0; 9]);
    let y = eval(
        &conv([3, 3], [1, 1], [1, 1], Padding::Explicit([1; 4]), 1),
        &[&x3(), &ones],
    );
    check(
        &y,
        &[1, 1, 3, 3],
        &[12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0],
    );
}

#[test]
fn conv_stride_and_bias() {
    // Stride 2 keeps the corners of the previous test; the bias adds 0.5.
    let ones = f32t(&[1, 1, 3, 3], vec![1.0; 9]);
    let bias = f32t(&[1], vec![0.5]);
    let y = eval(
        &conv([3, 3], [2, 2], [1, 1], Padding::Explicit([1; 4]), 1),
        &[&x3(), &ones, &bias],
    );
    check(&y, &[1, 1, 2, 2], &[12.5, 16.5, 24.5, 28.5]);
}

#[test]
fn conv_asymmetric_padding() {
    // Padding top 1 and right 1, kernel [[1,2],[3,4]]: out[oy][ox] = sum w[ky][kx] x[oy+ky-1][ox+kx].
    // Row 0 sees only x's row 0 through the kernel's bottom row: 3*1+4*2, 3*2+4*3, 3*3+4*0.
    let w = f32t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let y = eval(
        &conv([2, 2], [1, 1], [1, 1], Padding::Explicit([1, 0, 0, 1]), 1),
        &[&x3(), &w],
    );
    check(
        &y,
        &[1, 1, 3, 3],
        &[11.0, 18.0, 9.0, 37.0, 47.0, 21.0, 67.0, 77.0, 33.0],
    );
}

#[test]
fn conv_dilation() {
    // x[r][c] = 5r + c; kernel [[1,10],[100,1000]] with dilation 2 reads x[v], x[v+2], x[v+10], x[v+12]
    // for v = 5oy + ox, so out = 1111 v + 20 + 1000 + 12000.
    let w = f32t(&[1, 1, 2, 2], vec![1.0, 10.0, 100.0, 1000.0]);
    let y = eval(
        &conv([2, 2], [1, 1], [2, 2], Padding::Explicit([0; 4]), 1),
        &[&iota(&[1, 1, 5, 5]), &w],
    );
    let expect: Vec<f32> = [0, 1, 2, 5, 6, 7, 10, 11, 12]
        .iter()
        .map(|&v| (1111 * v + 13020) as f32)
        .collect();
    check(&y, &[1, 1, 3, 3], &expect);
}

#[test]
fn conv_groups() {
    // Depthwise with multiplier 2: channels 0,1 read input channel 0 = [1,2]; 2,3 read channel 1 = [3,4].
    let x = f32t(&[1, 2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let w = f32t(&[4, 1, 1, 1], vec![1.0, 2.0, 3.0, 4.0]);
    let y = eval(
        &conv([1, 1], [1, 1], [1, 1], Padding::Explicit([0; 4]), 2),
        &[&x, &w],
    );
    check(
        &y,
        &[1, 4, 1, 2],
        &[1.0, 2.0, 2.0, 4.0, 9.0, 12.0, 12.0, 16.0],
    );
    // Two groups of two input channels: out0 = 1 + 2, out1 = 3 - 4.
    let x = f32t(&[1, 4, 1, 1], vec![1.0, 2.0, 3.0, 4.0]);
    let w = f32t(&[2, 2, 1, 1], vec![1.0, 1.0, 1.0, -1.0]);
    let y = eval(
        &conv([1, 1], [1, 1], [1, 1], Padding::Explicit([0; 4]), 2),
        &[&x, &w],
    );
    check(&y, &[1, 2, 1, 1], &[3.0, -1.0]);
}

#[test]
fn conv_same_padding() {
    // 4x4 ones, 3x3 ones, stride 2: output 2x2 with one padding row/column in total; SAME_UPPER puts
    // it at the end, SAME_LOWER at the start.
    let x = f32t(&[1, 1, 4, 4], vec![1.0; 16]);
    let w = f32t(&[1, 1, 3, 3], vec![1.0; 9]);
    let upper = eval(
        &conv([3, 3], [2, 2], [1, 1], Padding::SameUpper, 1),
        &[&x, &w],
    );
    check(&upper, &[1, 1, 2, 2], &[9.0, 6.0, 6.0, 4.0]);
    let lower = eval(
        &conv([3, 3], [2, 2], [1, 1], Padding::SameLower, 1),
        &[&x, &w],
    );
    check(&lower, &[1, 1, 2, 2], &[4.0, 6.0, 6.0, 9.0]);
}

#[test]
fn conv_f64() {
    let x = Tensor::F64(x3().as_f32().unwrap().mapv(f64::from).into_shared());
    let w = Tensor::F64(ndarray::ArcArray::from_elem(
        ndarray::IxDyn(&[1, 1, 1, 1]),
        2.0,
    ));
    let y = eval(
        &conv([1, 1], [1, 1], [1, 1], Padding::Explicit([0; 4]), 1),
        &[&x, &w],
    );
    assert_eq!(
        y.to_f64s(),
        (1..=9).map(|v| 2.0 * v as f64).collect::<Vec<_>>()
    );
}

#[test]
fn conv_errors() {
    let c = conv([3, 3], [1, 1], [1, 1], Padding::Explicit([1; 4]), 1);
    let x = f32t(&[1, 4, 3, 3], vec![0.0; 36]);
    let w = f32t(&[2, 3, 3, 3], vec![0.0; 54]);
    assert_eq!(
        eval_err(&c, &[&x, &w]),
        invalid("Conv", "input has 4 channels but weights expect 3")
    );
    assert_eq!(
        eval_err(&c, &[&x, &f32t(&[2, 4, 1, 1], vec![0.0; 8])]),
        invalid(
            "Conv",
            "kernel_shape [3,3] disagrees with the weights' [1,1]"
        )
    );
    let w4 = f32t(&[2, 4, 3, 3], vec![0.0; 72]);
    assert_eq!(
        eval_err(&c, &[&x, &w4, &f32t(&[3], vec![0.0; 3])]),
        invalid("Conv", "bias must have shape [2], got [3]")
    );
    let e = eval_err(
        &c,
        &[
            &x,
            &Tensor::F64(w4.as_f32().unwrap().mapv(f64::from).into_shared()),
        ],
    );
    assert_eq!(
        e,
        EvalError::DType {
            op: "Conv",
            what: "weights",
            got: DType::F64,
            expected: "f32".into()
        }
    );
    let zero_stride = conv([3, 3], [0, 1], [1, 1], Padding::SameUpper, 1);
    assert_eq!(
        eval_err(&zero_stride, &[&x, &w4]),
        invalid("Conv", "strides [0,1] must be between 1 and 2^31")
    );
    let too_big = conv(
        [3, 3],
        [1, 1],
        [1, 1],
        Padding::Explicit([1, 1, 1, 1 << 30]),
        1,
    );
    assert_eq!(
        eval_err(&too_big, &[&x, &w4]).to_string(),
        "Conv: the widest side of its padding [1, 1, 1, 1073741824] is 1073741824, above resnetc's limit 'padding' (4096: CifarResNet pads by 1)"
    );
    let missing = eval_op(&c, &[Some(&x), None]).unwrap_err();
    assert_eq!(
        missing,
        EvalError::MissingInput {
            op: "Conv",
            slot: 1,
            name: "w"
        }
    );
    assert_eq!(missing.to_string(), "Conv: required input 1 (w) is missing");
}

// ---- BatchNorm, Relu, Binary ---------------------------------------------------------------------

#[test]
fn batch_norm_per_channel() {
    // Channel 0: (x - 1) / 2 * 2 + 0; channel 1: (x - 3) / 0.5 * 1 + 1.
    let x = f32t(&[1, 2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let p = |a: f32, b: f32| f32t(&[2], vec![a, b]);
    let y = eval(
        &Op::BatchNorm { epsilon: 0.0 },
        &[&x, &p(2.0, 1.0), &p(0.0, 1.0), &p(1.0, 3.0), &p(4.0, 0.25)],
    );
    check(&y, &[1, 2, 1, 2], &[0.0, 1.0, 1.0, 3.0]);
    // Rank 2 works too, and epsilon is added to the variance: sqrt(3 + 1) = 2.
    let x = f32t(&[1, 2], vec![5.0, 5.0]);
    let y = eval(
        &Op::BatchNorm { epsilon: 1.0 },
        &[&x, &p(1.0, 1.0), &p(0.0, 0.0), &p(1.0, 1.0), &p(3.0, 3.0)],
    );
    check(&y, &[1, 2], &[2.0, 2.0]);
    let e = eval_err(
        &Op::BatchNorm { epsilon: 0.0 },
        &[
            &x,
            &f32t(&[3], vec![1.0; 3]),
            &p(0.0, 0.0),
            &p(1.0, 1.0),
            &p(3.0, 3.0),
        ],
    );
    assert_eq!(
        e,
        invalid(
            "BatchNormalization",
            "scale must have shape [2] (one per channel), got [3]"
        )
    );
}

#[test]
fn relu_keeps_nan() {
    let y = eval(&Op::Relu, &[&f32t(&[4], vec![-1.0, -0.0, 2.0, f32::NAN])]);
    let v = f32s(&y);
    assert_eq!(&v[..3], &[0.0, -0.0, 2.0]);
    assert!(v[3].is_nan());
    assert_eq!(
        eval_err(&Op::Relu, &[&ints(&[1])]),
        EvalError::DType {
            op: "Relu",
            what: "input",
            got: DType::I64,
            expected: "f32 or f64".into()
        }
    );
}

#[test]
fn binary_broadcasts() {
    // [2,1] op [3] → [2,3].
    let a = f32t(&[2, 1], vec![10.0, 20.0]);
    let b = f32t(&[3], vec![1.0, 2.0, 4.0]);
    check(
        &eval(&Op::Binary(BinOp::Add), &[&a, &b]),
        &[2, 3],
        &[11.0, 12.0, 14.0, 21.0, 22.0, 24.0],
    );
    check(
        &eval(&Op::Binary(BinOp::Sub), &[&a, &b]),
        &[2, 3],
        &[9.0, 8.0, 6.0, 19.0, 18.0, 16.0],
    );
    check(
        &eval(&Op::Binary(BinOp::Mul), &[&a, &b]),
        &[2, 3],
        &[10.0, 20.0, 40.0, 20.0, 40.0, 80.0],
    );
    check(
        &eval(&Op::Binary(BinOp::Div), &[&a, &b]),
        &[2, 3],
        &[10.0, 5.0, 2.5, 20.0, 10.0, 5.0],
    );
    // Scalars broadcast against anything.
    check(
        &eval(&Op::Binary(BinOp::Mul), &[&Tensor::f32_scalar(3.0), &b]),
        &[3],
        &[3.0, 6.0, 12.0],
    );
}

#[test]
fn integer_division_truncates() {
    let a = ints(&[7, -7, 7, -7]);
    let b = ints(&[2, 2, -2, -2]);
    assert_eq!(
        i64s(&eval(&Op::Binary(BinOp::Div), &[&a, &b])),
        [3, -3, -3, 3]
    );
    let y = eval(
        &Op::Binary(BinOp::Div),
        &[&i32t(&[2], vec![9, -9]), &i32t(&[], vec![4])],
    );
    assert_eq!(y, i32t(&[2], vec![2, -2]));
    assert_eq!(
        eval_err(&Op::Binary(BinOp::Div), &[&a, &ints(&[1, 0, 1, 1])]),
        EvalError::DivisionByZero { op: "Div" }
    );
    // Overflow wraps, as the C++ runtimes do in practice.
    assert_eq!(
        i64s(&eval(
            &Op::Binary(BinOp::Add),
            &[&ints(&[i64::MAX]), &ints(&[1])]
        )),
        [i64::MIN]
    );
}

#[test]
fn binary_errors() {
    let e = eval_err(
        &Op::Binary(BinOp::Add),
        &[&f32t(&[2, 3], vec![0.0; 6]), &f32t(&[4], vec![0.0; 4])],
    );
    assert_eq!(
        e,
        invalid(
            "Add",
            "shapes [2,3] and [4] do not broadcast (dimension 1: 3 vs 4)"
        )
    );
    let e = eval_err(
        &Op::Binary(BinOp::Mul),
        &[&f32t(&[1], vec![0.0]), &ints(&[1])],
    );
    assert_eq!(
        e,
        invalid("Mul", "operand element types differ: f32 and i64")
    );
    // A broadcast that would be too large is refused before anything is allocated.
    let tall = f32t(&[1 << 16, 1], vec![0.0; 1 << 16]);
    let wide = f32t(&[1, 1 << 16], vec![0.0; 1 << 16]);
    assert_eq!(
        eval_err(&Op::Binary(BinOp::Add), &[&tall, &wide]),
        EvalError::TooLarge {
            op: "Add",
            shape: vec![1 << 16, 1 << 16]
        }
    );
}

// ---- Gemm, MatMul --------------------------------------------------------------------------------

#[test]
fn gemm_alpha_beta_transpose_and_c_shapes() {
    // A = [[1,2,3],[4,5,6]], B = [[1,0],[0,1],[1,1]]: AB = [[4,5],[10,11]]; alpha 2 doubles it.
    let a = f32t(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = f32t(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let at = f32t(&[3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let bt = f32t(&[2, 3], vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
    let gemm = |trans_a, trans_b| {
        Op::Gemm(Gemm {
            alpha: 2.0,
            beta: 0.5,
            trans_a,
            trans_b,
        })
    };
    let ab = [8.0, 10.0, 20.0, 22.0];
    for (op, a, b) in [
        (gemm(false, false), &a, &b),
        (gemm(true, false), &at, &b),
        (gemm(false, true), &a, &bt),
        (gemm(true, true), &at, &bt),
    ] {
        check(&eval(&op, &[a, b]), &[2, 2], &ab);
    }
    // beta * C, with C broadcast from each shape ONNX allows.
    let cases: [(Tensor, [f32; 4]); 6] = [
        (Tensor::f32_scalar(2.0), [1.0, 1.0, 1.0, 1.0]),
        (f32t(&[1], vec![2.0]), [1.0, 1.0, 1.0, 1.0]),
        (f32t(&[2], vec![2.0, 4.0]), [1.0, 2.0, 1.0, 2.0]),
        (f32t(&[1, 2], vec![2.0, 4.0]), [1.0, 2.0, 1.0, 2.0]),
        (f32t(&[2, 1], vec![2.0, 4.0]), [1.0, 1.0, 2.0, 2.0]),
        (
            f32t(&[2, 2], vec![2.0, 4.0, 6.0, 8.0]),
            [1.0, 2.0, 3.0, 4.0],
        ),
    ];
    for (c, added) in cases {
        let expect: Vec<f32> = ab.iter().zip(added).map(|(x, y)| x + y).collect();
        check(&eval(&gemm(false, false), &[&a, &b, &c]), &[2, 2], &expect);
    }
    let e = eval_err(&gemm(false, false), &[&a, &b, &f32t(&[3], vec![0.0; 3])]);
    assert_eq!(
        e,
        invalid(
            "Gemm",
            "C of shape [3] does not broadcast to the output [2,2]"
        )
    );
    let e = eval_err(&gemm(false, false), &[&a, &a]);
    assert_eq!(
        e,
        invalid(
            "Gemm",
            "inner dimensions differ: A is [2,3] and B is [2,3] (transA=0, transB=0)"
        )
    );
}

#[test]
fn matmul_batched_rows() {
    // [2,1,3] x [3,2]: each row of A times B.
    let a = f32t(&[2, 1, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = f32t(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    check(
        &eval(&Op::MatMul, &[&a, &b]),
        &[2, 1, 2],
        &[4.0, 5.0, 10.0, 11.0],
    );
    check(
        &eval(&Op::MatMul, &[&f32t(&[1, 3], vec![1.0, 1.0, 1.0]), &b]),
        &[1, 2],
        &[2.0, 2.0],
    );
    let e = eval_err(&Op::MatMul, &[&b, &a]);
    assert_eq!(
        e,
        invalid(
            "MatMul",
            "only [..,M,K] x [K,N] products are supported, got shapes [3,2] and [2,1,3]"
        )
    );
}

// ---- Pools and means -----------------------------------------------------------------------------

fn avg_pool(
    kernel: usize,
    stride: usize,
    pads: usize,
    count_include_pad: bool,
    ceil_mode: bool,
) -> Op {
    Op::AveragePool(AvgPool {
        kernel: [kernel; 2],
        strides: [stride; 2],
        padding: Padding::Explicit([pads; 4]),
        count_include_pad,
        ceil_mode,
    })
}

#[test]
fn average_pool_floor_and_ceil() {
    // 3x3 input, 2x2 windows, stride 2: floor mode keeps one window, (1+2+4+5)/4.
    check(
        &eval(&avg_pool(2, 2, 0, false, false), &[&x3()]),
        &[1, 1, 1, 1],
        &[3.0],
    );
    // Ceil mode adds the partial windows, averaged over what they cover: (3+6)/2, (7+8)/2, 9/1.
    // Without padding, count_include_pad changes nothing: windows are clipped to the input.
    for include in [false, true] {
        check(
            &eval(&avg_pool(2, 2, 0, include, true), &[&x3()]),
            &[1, 1, 2, 2],
            &[3.0, 4.5, 7.5, 9.0],
        );
    }
}

#[test]
fn average_pool_ceil_mode_drops_window_starting_in_padding() {
    // Length 3 with padding 1 on both sides, kernel 2, stride 2: ceil((5-2)/2)+1 = 3 windows, but the
    // third would start at padded position 4, in the end padding, so ONNX drops it: 2x2 output.
    // Windows cover input rows/cols {0} and {1,2}.
    let y = eval(&avg_pool(2, 2, 1, false, true), &[&x3()]);
    check(&y, &[1, 1, 2, 2], &[1.0, 2.5, 5.5, 7.0]);
    // Counting the padding, every window has 4 elements: 1/4, (2+3)/4, (4+7)/4, (5+6+8+9)/4.
    let y = eval(&avg_pool(2, 2, 1, true, true), &[&x3()]);
    check(&y, &[1, 1, 2, 2], &[0.25, 1.25, 2.75, 7.0]);
}

#[test]
fn average_pool_count_include_pad() {
    // 2x2 input [1,2,3,4], 3x3 windows, padding 1: every window covers all four elements.
    let x = f32t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    check(
        &eval(&avg_pool(3, 1, 1, false, false), &[&x]),
        &[1, 1, 2, 2],
        &[2.5; 4],
    );
    check(
        &eval(&avg_pool(3, 1, 1, true, false), &[&x]),
        &[1, 1, 2, 2],
        &[10.0 / 9.0; 4],
    );
    let e = eval_err(&avg_pool(5, 1, 0, false, false), &[&x]);
    assert_eq!(
        e,
        invalid(
            "AveragePool",
            "the height window (5) is larger than the padded input (2)"
        )
    );
}

#[test]
fn global_average_pool() {
    let x = f32t(
        &[1, 2, 2, 2],
        vec![1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 20.0, 20.0],
    );
    check(
        &eval(&Op::GlobalAveragePool, &[&x]),
        &[1, 2, 1, 1],
        &[2.5, 15.0],
    );
    check(
        &eval(
            &Op::GlobalAveragePool,
            &[&f32t(&[1, 1, 4], vec![1.0, 2.0, 3.0, 6.0])],
        ),
        &[1, 1, 1],
        &[3.0],
    );
    let e = eval_err(&Op::GlobalAveragePool, &[&f32t(&[1, 4], vec![0.0; 4])]);
    assert_eq!(
        e,
        invalid(
            "GlobalAveragePool",
            "input must have rank >= 3 (N, C, spatial...), got shape [1,4]"
        )
    );
}

#[test]
fn reduce_mean_axes_and_keepdims() {
    let x = f32t(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let rm = |keepdims, noop| Op::ReduceMean {
        keepdims,
        noop_with_empty_axes: noop,
    };
    check(
        &eval(&rm(true, false), &[&x, &ints(&[1])]),
        &[2, 1],
        &[2.0, 5.0],
    );
    check(
        &eval(&rm(false, false), &[&x, &ints(&[-2])]),
        &[3],
        &[2.5, 3.5, 4.5],
    );
    check(&eval(&rm(true, false), &[&x]), &[1, 1], &[3.5]);
    check(&eval(&rm(false, false), &[&x, &ints(&[])]), &[], &[3.5]);
    assert_eq!(eval(&rm(false, true), &[&x]), x);
    assert_eq!(
        eval_err(&rm(true, false), &[&x, &ints(&[1, -1])]),
        invalid("ReduceMean", "axes [1,-1] name axis 1 twice")
    );
    assert_eq!(
        eval_err(&rm(true, false), &[&x, &ints(&[2])]),
        invalid("ReduceMean", "axes: axis 2 is out of range for rank 2")
    );
}

// ---- Shape and data movement ---------------------------------------------------------------------

#[test]
fn flatten_axes() {
    let x = iota(&[2, 3, 4]);
    for (axis, shape) in [
        (0, [1, 24]),
        (1, [2, 12]),
        (-1, [6, 4]),
        (3, [24, 1]),
        (-3, [1, 24]),
    ] {
        let y = eval(&Op::Flatten { axis }, &[&x]);
        assert_eq!(y.shape(), shape, "axis {axis}");
        assert_eq!(f32s(&y), f32s(&x));
    }
    assert_eq!(
        eval_err(&Op::Flatten { axis: 4 }, &[&x]),
        invalid(
            "Flatten",
            "axis 4 is out of range for rank 3 (allowed: -3..=3)"
        )
    );
}

#[test]
fn reshape_copy_infer_and_allowzero() {
    let x = iota(&[2, 3, 4]);
    let r = |allowzero| Op::Reshape { allowzero };
    assert_eq!(eval(&r(false), &[&x, &ints(&[0, -1])]).shape(), [2, 12]);
    // 0 copies the input's dimension at the same position, even after a -1.
    assert_eq!(eval(&r(false), &[&x, &ints(&[-1, 0])]).shape(), [8, 3]);
    assert_eq!(f32s(&eval(&r(false), &[&x, &ints(&[4, 6])])), f32s(&x));
    // With allowzero a 0 is a real zero-sized dimension.
    let empty = f32t(&[0, 3], vec![]);
    assert_eq!(eval(&r(true), &[&empty, &ints(&[3, 0])]).shape(), [3, 0]);
    assert_eq!(
        eval_err(&r(false), &[&empty, &ints(&[3, 0])]),
        invalid("Reshape", "cannot reshape 0 elements into [3,0]")
    );
    let twelve = iota(&[3, 4]);
    let e = eval_err(&r(false), &[&twelve, &ints(&[5, -1])]);
    assert_eq!(
        e.to_string(),
        "Reshape: cannot reshape 12 elements into [5,-1]"
    );
    assert_eq!(
        eval_err(&r(false), &[&twelve, &ints(&[-1, -1])]),
        invalid("Reshape", "shape [-1,-1] has more than one -1")
    );
    assert_eq!(
        eval_err(&r(false), &[&twelve, &ints(&[0, 0, 0])]),
        invalid(
            "Reshape",
            "shape [0,0,0] copies dimension 2 (0), but the input has rank 2"
        )
    );
    assert_eq!(
        eval_err(&r(false), &[&twelve, &ints(&[-2, 6])]),
        invalid(
            "Reshape",
            "shape entry 0 is -2; entries must be -1 (infer), 0 or a size"
        )
    );
    assert_eq!(
        eval_err(&r(true), &[&twelve, &ints(&[0, -1])]),
        invalid(
            "Reshape",
            "shape [0,-1] has both 0 and -1, which allowzero forbids"
        )
    );
}

#[test]
fn pad_with_axes_and_negative_pads() {
    // x = [[1,2,3],[4,5,6]]; pads begin [1,-1], end [0,2]: a row of 9s on top, the first column
    // cropped, two columns of 9s on the right.
    let x = f32t(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let pad = Op::Pad {
        mode: PadMode::Constant,
    };
    let nine = Tensor::f32_scalar(9.0);
    let y = eval(&pad, &[&x, &ints(&[1, -1, 0, 2]), &nine]);
    check(
        &y,
        &[3, 4],
        &[9.0, 9.0, 9.0, 9.0, 2.0, 3.0, 9.0, 9.0, 5.0, 6.0, 9.0, 9.0],
    );
    // Only the last axis, given as -1: two in front, one cropped at the end.
    let y = eval(
        &pad,
        &[&x, &ints(&[2, -1]), &f32t(&[1], vec![9.0]), &ints(&[-1])],
    );
    check(&y, &[2, 4], &[9.0, 9.0, 1.0, 2.0, 9.0, 9.0, 4.0, 5.0]);
    // Without a constant the fill is zero; a skipped constant_value slot still allows axes.
    let y = eval_op(
        &pad,
        &[Some(&x), Some(&ints(&[1, 0])), None, Some(&ints(&[0]))],
    )
    .unwrap();
    check(&y, &[3, 3], &[0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        eval_err(&pad, &[&x, &ints(&[1, 1])]),
        invalid(
            "Pad",
            "pads has 2 entries, expected 4 (begin and end for each of 2 axes)"
        )
    );
    assert_eq!(
        eval_err(&pad, &[&x, &ints(&[0, -2, 0, -2])]),
        invalid(
            "Pad",
            "pads -2,-2 on axis 1 remove more than its 3 elements"
        )
    );
    let e = eval_err(&pad, &[&x, &ints(&[0, 0, 0, 0]), &ints(&[1])]);
    assert_eq!(
        e,
        EvalError::DType {
            op: "Pad",
            what: "constant_value",
            got: DType::I64,
            expected: "f32".into()
        }
    );
    let e = eval_err(&pad, &[&x, &ints(&[0, 0, 1 << 40, 0])]);
    assert_eq!(
        e,
        EvalError::TooLarge {
            op: "Pad",
            shape: vec![(1 << 40) + 2, 3]
        }
    );
}

#[test]
fn slice_negative_steps_and_clamping() {
    // 0..10 from the last element backwards in steps of 3, to "before the start".
    let x = iota(&[10]);
    check(
        &eval(
            &Op::Slice,
            &[
                &x,
                &ints(&[-1]),
                &ints(&[i64::MIN]),
                &ints(&[0]),
                &ints(&[-3]),
            ],
        ),
        &[4],
        &[9.0, 6.0, 3.0, 0.0],
    );
    // Ends past the end clamp; omitted axes and steps mean 0.. and 1.
    check(
        &eval(&Op::Slice, &[&x, &ints(&[7]), &ints(&[100])]),
        &[3],
        &[7.0, 8.0, 9.0],
    );
    // Two axes given out of order, both backwards: rows 2,1,0 and columns 3,1 of a 3x4 iota.
    let m = iota(&[3, 4]);
    let y = eval(
        &Op::Slice,
        &[
            &m,
            &ints(&[-1, 2]),
            &ints(&[-5, -4]),
            &ints(&[1, 0]),
            &ints(&[-2, -1]),
        ],
    );
    check(&y, &[3, 2], &[11.0, 9.0, 7.0, 5.0, 3.0, 1.0]);
    // Every other row and column, as ResNet's option-A shortcut does.
    let y = eval(
        &Op::Slice,
        &[
            &iota(&[1, 1, 4, 4]),
            &ints(&[0, 0]),
            &ints(&[i64::MAX, i64::MAX]),
            &ints(&[2, 3]),
            &ints(&[2, 2]),
        ],
    );
    check(&y, &[1, 1, 2, 2], &[0.0, 2.0, 8.0, 10.0]);
    // Steps of any size select the first element only; an empty range is fine.
    check(
        &eval(
            &Op::Slice,
            &[
                &x,
                &ints(&[5]),
                &ints(&[-100]),
                &ints(&[0]),
                &ints(&[i64::MIN]),
            ],
        ),
        &[1],
        &[5.0],
    );
    check(
        &eval(
            &Op::Slice,
            &[
                &x,
                &ints(&[5]),
                &ints(&[6]),
                &ints(&[0]),
                &ints(&[i64::MAX]),
            ],
        ),
        &[1],
        &[5.0],
    );
    check(
        &eval(&Op::Slice, &[&x, &ints(&[5]), &ints(&[2])]),
        &[0],
        &[],
    );
    assert_eq!(
        eval_err(
            &Op::Slice,
            &[&x, &ints(&[0]), &ints(&[1]), &ints(&[0]), &ints(&[0])]
        ),
        invalid("Slice", "step 0 is zero")
    );
    assert_eq!(
        eval_err(&Op::Slice, &[&x, &ints(&[0, 0]), &ints(&[1])]),
        invalid("Slice", "starts has 2 entries but ends has 1")
    );
}

#[test]
fn shape_ranges() {
    let x = iota(&[2, 3, 4]);
    assert_eq!(
        i64s(&eval(
            &Op::Shape {
                start: 0,
                end: None
            },
            &[&x]
        )),
        [2, 3, 4]
    );
    assert_eq!(
        i64s(&eval(
            &Op::Shape {
                start: 1,
                end: None
            },
            &[&x]
        )),
        [3, 4]
    );
    assert_eq!(
        i64s(&eval(
            &Op::Shape {
                start: -1,
                end: None
            },
            &[&x]
        )),
        [4]
    );
    assert_eq!(
        i64s(&eval(
            &Op::Shape {
                start: 0,
                end: Some(-1)
            },
            &[&x]
        )),
        [2, 3]
    );
    assert_eq!(
        eval(
            &Op::Shape {
                start: 5,
                end: None
            },
            &[&x]
        )
        .shape(),
        [0]
    );
}

#[test]
fn gather_indices_of_any_rank() {
    let x = f32t(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // A scalar index removes the axis; -1 is the last row.
    check(
        &eval(&Op::Gather { axis: 0 }, &[&x, &i64_scalar(-1)]),
        &[2],
        &[5.0, 6.0],
    );
    // Indices [[1,0]] on axis 1 swap the columns and add the index dimensions in place of the axis.
    check(
        &eval(&Op::Gather { axis: -1 }, &[&x, &i32t(&[1, 2], vec![1, 0])]),
        &[3, 1, 2],
        &[2.0, 1.0, 4.0, 3.0, 6.0, 5.0],
    );
    // The shape subgraph PyTorch emits: Gather(Shape(x), 0).
    let shape = eval(
        &Op::Shape {
            start: 0,
            end: None,
        },
        &[&x],
    );
    assert_eq!(
        eval(&Op::Gather { axis: 0 }, &[&shape, &i64_scalar(0)]),
        i64_scalar(3)
    );
    assert_eq!(
        eval_err(&Op::Gather { axis: 0 }, &[&x, &ints(&[3])]),
        invalid("Gather", "index 3 is out of range for axis 0 of size 3")
    );
    assert_eq!(
        eval_err(&Op::Gather { axis: 2 }, &[&x, &ints(&[0])]),
        invalid("Gather", "axis: axis 2 is out of range for rank 2")
    );
}

#[test]
fn unsqueeze_and_squeeze() {
    let x = iota(&[3]);
    assert_eq!(
        eval(&Op::Unsqueeze, &[&x, &ints(&[0, -1])]).shape(),
        [1, 3, 1]
    );
    assert_eq!(
        eval(&Op::Unsqueeze, &[&i64_scalar(7), &ints(&[0])]),
        ints(&[7])
    );
    let y = iota(&[1, 3, 1]);
    assert_eq!(eval(&Op::Squeeze, &[&y]).shape(), [3]);
    assert_eq!(eval(&Op::Squeeze, &[&y, &ints(&[0])]).shape(), [3, 1]);
    assert_eq!(eval(&Op::Squeeze, &[&y, &ints(&[-1, 0])]).shape(), [3]);
    assert_eq!(
        eval_err(&Op::Squeeze, &[&y, &ints(&[1])]),
        invalid(
            "Squeeze",
            "cannot squeeze axis 1 of shape [1,3,1]: its size is not 1"
        )
    );
    assert_eq!(
        eval_err(&Op::Unsqueeze, &[&x, &ints(&[0, 0])]),
        invalid("Unsqueeze", "axes [0,0] name axis 0 twice")
    );
}

#[test]
fn concat_along_negative_axis() {
    let a = f32t(&[1, 2], vec![1.0, 2.0]);
    let b = f32t(&[2, 2], vec![3.0, 4.0, 5.0, 6.0]);
    check(
        &eval(&Op::Concat { axis: -2 }, &[&a, &b]),
        &[3, 2],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    );
    assert_eq!(
        eval(&Op::Concat { axis: 0 }, &[&ints(&[-1]), &ints(&[64])]),
        ints(&[-1, 64])
    );
    let e = eval_err(&Op::Concat { axis: 1 }, &[&a, &b]);
    assert_eq!(
        e,
        invalid(
            "Concat",
            "input 1 has shape [2,2] but input 0 has [1,2]; they may differ only on axis 1"
        )
    );
    assert_eq!(
        eval_err(&Op::Concat { axis: 0 }, &[&a, &ints(&[1, 2])]),
        invalid("Concat", "input 1 has element type i64 but input 0 has f32")
    );
}

#[test]
fn constant_of_shape() {
    let op = Op::ConstantOfShape { value: ints(&[7]) };
    assert_eq!(eval(&op, &[&ints(&[2, 3])]), i64t(&[2, 3], vec![7; 6]));
    assert_eq!(eval(&op, &[&ints(&[])]), i64_scalar(7));
    let zeros = Op::ConstantOfShape {
        value: Tensor::f32_scalar(0.0),
    };
    check(&eval(&zeros, &[&ints(&[0, 5])]), &[0, 5], &[]);
    assert_eq!(
        eval_err(&op, &[&ints(&[2, -3])]),
        invalid("ConstantOfShape", "shape [2,-3] has a negative dimension")
    );
    let e = eval_err(&op, &[&ints(&[1 << 16, 1 << 16])]);
    assert_eq!(
        e.to_string(),
        "ConstantOfShape: the result would have shape [65536,65536], more than 2^31 elements"
    );
    assert_eq!(
        eval_err(&op, &[&ints(&[i64::MAX, i64::MAX])]),
        EvalError::TooLarge {
            op: "ConstantOfShape",
            shape: vec![i64::MAX as u64; 2]
        }
    );
}

#[test]
fn expand_broadcasts_both_ways() {
    // [3,1] to [2,1,4] gives [2,3,4]: the 1 in the target keeps the input's 3.
    let x = f32t(&[3, 1], vec![1.0, 2.0, 3.0]);
    let y = eval(&Op::Expand, &[&x, &ints(&[2, 1, 4])]);
    assert_eq!(y.shape(), [2, 3, 4]);
    assert_eq!(f32s(&y)[..8], [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
    let e = eval_err(&Op::Expand, &[&x, &ints(&[1 << 20, 1, 1 << 20])]);
    assert_eq!(
        e,
        EvalError::TooLarge {
            op: "Expand",
            shape: vec![1 << 20, 3, 1 << 20]
        }
    );
    assert_eq!(
        eval_err(&Op::Expand, &[&x, &ints(&[2, 2])]),
        invalid(
            "Expand",
            "shapes [3,1] and [2,2] do not broadcast (dimension 0: 3 vs 2)"
        )
    );
}

#[test]
fn cast_between_types() {
    let x = f32t(&[6], vec![-1.7, 1.7, 2.5, f32::NAN, 1e10, 0.0]);
    assert_eq!(
        eval(&Op::Cast { to: DType::I32 }, &[&x]),
        i32t(&[6], vec![-1, 1, 2, 0, i32::MAX, 0])
    );
    assert_eq!(
        i64s(&eval(&Op::Cast { to: DType::I64 }, &[&x])),
        [-1, 1, 2, 0, 10_000_000_000, 0]
    );
    let b = eval(&Op::Cast { to: DType::Bool }, &[&x]);
    assert_eq!(b.to_f64s(), [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    check(
        &eval(&Op::Cast { to: DType::F32 }, &[&b]),
        &[6],
        &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    );
    assert_eq!(
        eval(&Op::Cast { to: DType::F64 }, &[&ints(&[3])]).to_f64s(),
        [3.0]
    );
    assert_eq!(
        eval(&Op::Cast { to: DType::I32 }, &[&ints(&[1 << 32 | 5])]),
        i32t(&[1], vec![5])
    );
    assert_eq!(
        eval(&Op::CastLike, &[&ints(&[2, -2]), &Tensor::f32_scalar(0.0)]),
        f32t(&[2], vec![2.0, -2.0])
    );
}

#[test]
fn transpose_permutes() {
    let x = iota(&[2, 3]);
    check(
        &eval(&Op::Transpose { perm: None }, &[&x]),
        &[3, 2],
        &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
    );
    let y = eval(
        &Op::Transpose {
            perm: Some(vec![1, 2, 0]),
        },
        &[&iota(&[2, 1, 3])],
    );
    check(&y, &[1, 3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(
        eval_err(
            &Op::Transpose {
                perm: Some(vec![0, 0])
            },
            &[&x]
        ),
        invalid("Transpose", "perm [0,0] is not a permutation of the 2 axes")
    );
}

#[test]
fn range_counts() {
    let r = |s, l, d| {
        eval(
            &Op::Range,
            &[&i64_scalar(s), &i64_scalar(l), &i64_scalar(d)],
        )
    };
    assert_eq!(i64s(&r(1, 10, 3)), [1, 4, 7]);
    assert_eq!(i64s(&r(10, 1, -3)), [10, 7, 4]);
    assert_eq!(i64s(&r(0, 0, 1)), Vec::<i64>::new());
    assert_eq!(i64s(&r(5, 0, 1)), Vec::<i64>::new());
    let y = eval(
        &Op::Range,
        &[
            &Tensor::f32_scalar(0.0),
            &Tensor::f32_scalar(1.0),
            &Tensor::f32_scalar(0.25),
        ],
    );
    check(&y, &[4], &[0.0, 0.25, 0.5, 0.75]);
    let zero = eval_err(
        &Op::Range,
        &[&i64_scalar(0), &i64_scalar(1), &i64_scalar(0)],
    );
    assert_eq!(zero, invalid("Range", "delta is zero"));
    let huge = eval_err(
        &Op::Range,
        &[&i64_scalar(i64::MIN), &i64_scalar(i64::MAX), &i64_scalar(1)],
    );
    assert_eq!(
        huge,
        EvalError::TooLarge {
            op: "Range",
            shape: vec![u64::MAX]
        }
    );
    let inf = eval_err(
        &Op::Range,
        &[
            &Tensor::f32_scalar(0.0),
            &Tensor::f32_scalar(f32::INFINITY),
            &Tensor::f32_scalar(1.0),
        ],
    );
    assert_eq!(
        inf,
        invalid(
            "Range",
            "the number of elements, ceil((inf - 0) / 1), is not finite"
        )
    );
}

#[test]
fn identity_constant_input_and_arity() {
    let x = iota(&[2]);
    assert_eq!(eval(&Op::Identity, &[&x]), x);
    assert_eq!(eval(&Op::Constant(x.clone()), &[]), x);
    let input = Op::Input {
        index: 0,
        ty: resnetc_ir::TensorType::fixed(DType::F32, &[2]),
    };
    assert_eq!(
        eval_op(&input, &[]).unwrap_err(),
        EvalError::NotEvaluable { op: "Input" }
    );
    assert_eq!(
        eval_op(&Op::Relu, &[Some(&x), Some(&x)]).unwrap_err(),
        EvalError::TooManyInputs {
            op: "Relu",
            got: 2,
            max: 1
        }
    );
    // Trailing absent inputs do not count.
    assert_eq!(eval_op(&Op::Relu, &[Some(&x), None]).unwrap(), x);
}
