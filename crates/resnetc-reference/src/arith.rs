//! Arithmetic: Relu, the broadcasting binary ops, inference BatchNorm, Gemm and MatMul.
//!
//! Products are summed from zero over the inner dimension in increasing order; Gemm then scales
//! by alpha and adds beta * C.

use ndarray::{ArcArray, Array2, ArrayView2, Ix2, IxDyn, Zip};
use resnetc_ir::{BinOp, Dim, Gemm, Op, Tensor};

use crate::error::EvalError;
use crate::util::{
    check_size, dims, from_vec, invalid, map_float, reshaped, row_major, typed, Elem, Float,
};

pub(crate) fn relu(x: &Tensor) -> Result<Tensor, EvalError> {
    Ok(map_float!("Relu", "input", x, a => relu_t(a)))
}

fn relu_t<T: Float>(x: &ArcArray<T, IxDyn>) -> ArcArray<T, IxDyn> {
    // `x < 0` rather than `max(x, 0)`, so NaN stays NaN as in PyTorch.
    x.mapv(|v| if v < T::zero() { T::zero() } else { v })
        .into_shared()
}

/// The numpy broadcast of two concrete shapes.
pub(crate) fn broadcast_shape(
    op: &'static str,
    a: &[usize],
    b: &[usize],
) -> Result<Vec<usize>, EvalError> {
    let fixed = |s: &[usize]| s.iter().map(|&d| Dim::Fixed(d)).collect::<Vec<_>>();
    let out = resnetc_ir::infer::broadcast(&fixed(a), &fixed(b)).map_err(|m| invalid(op, m))?;
    out.and_then(|o| o.iter().map(Dim::fixed).collect::<Option<Vec<_>>>())
        .ok_or_else(|| {
            invalid(
                op,
                format!("shapes {} and {} do not broadcast", dims(a), dims(b)),
            )
        })
}

/// Integer arithmetic as C++ runtimes do it on two's complement hardware: wrapping, with division
/// truncating toward zero. `None` for division by zero.
trait Int: Elem + Copy {
    fn apply(op: BinOp, a: Self, b: Self) -> Option<Self>;
}

macro_rules! int {
    ($t:ty) => {
        impl Int for $t {
            fn apply(op: BinOp, a: $t, b: $t) -> Option<$t> {
                match op {
                    BinOp::Add => Some(a.wrapping_add(b)),
                    BinOp::Sub => Some(a.wrapping_sub(b)),
                    BinOp::Mul => Some(a.wrapping_mul(b)),
                    BinOp::Div => (b != 0).then(|| a.wrapping_div(b)),
                }
            }
        }
    };
}
int!(i32);
int!(i64);

pub(crate) fn binary(op: BinOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    let name = Op::Binary(op).onnx_name();
    if a.dtype() != b.dtype() {
        return Err(invalid(
            name,
            format!(
                "operand element types differ: {} and {}",
                a.dtype(),
                b.dtype()
            ),
        ));
    }
    let shape = broadcast_shape(name, a.shape(), b.shape())?;
    check_size(name, &shape)?;
    Ok(match (a, b) {
        (Tensor::F32(x), Tensor::F32(y)) => Tensor::F32(float_binary(op, x, y, &shape)),
        (Tensor::F64(x), Tensor::F64(y)) => Tensor::F64(float_binary(op, x, y, &shape)),
        (Tensor::I32(x), Tensor::I32(y)) => Tensor::I32(int_binary(name, op, x, y, &shape)?),
        (Tensor::I64(x), Tensor::I64(y)) => Tensor::I64(int_binary(name, op, x, y, &shape)?),
        _ => {
            return Err(crate::util::dtype_error(
                name,
                "operands",
                a.dtype(),
                "a number type",
            ))
        }
    })
}

fn zip_broadcast<T: Clone, O: Clone>(
    x: &ArcArray<T, IxDyn>,
    y: &ArcArray<T, IxDyn>,
    shape: &[usize],
    f: impl FnMut(&T, &T) -> O,
) -> ArcArray<O, IxDyn> {
    let x = x
        .broadcast(IxDyn(shape))
        .expect("shape is the broadcast of both operands");
    let y = y
        .broadcast(IxDyn(shape))
        .expect("shape is the broadcast of both operands");
    Zip::from(&x).and(&y).map_collect(f).into_shared()
}

fn float_binary<T: Float>(
    op: BinOp,
    x: &ArcArray<T, IxDyn>,
    y: &ArcArray<T, IxDyn>,
    shape: &[usize],
) -> ArcArray<T, IxDyn> {
    zip_broadcast(x, y, shape, |&p, &q| match op {
        BinOp::Add => p + q,
        BinOp::Sub => p - q,
        BinOp::Mul => p * q,
        BinOp::Div => p / q,
    })
}

fn int_binary<T: Int>(
    name: &'static str,
    op: BinOp,
    x: &ArcArray<T, IxDyn>,
    y: &ArcArray<T, IxDyn>,
    shape: &[usize],
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    let mut by_zero = false;
    let out = zip_broadcast(x, y, shape, |&p, &q| {
        T::apply(op, p, q).unwrap_or_else(|| {
            by_zero = true;
            T::default()
        })
    });
    if by_zero {
        return Err(EvalError::DivisionByZero { op: name });
    }
    Ok(out)
}

const BN: &str = "BatchNormalization";

pub(crate) fn batch_norm(
    epsilon: f32,
    x: &Tensor,
    params: [&Tensor; 4],
) -> Result<Tensor, EvalError> {
    if x.rank() < 2 {
        return Err(invalid(
            BN,
            format!(
                "input must have rank >= 2 (N, C, ...), got shape {}",
                dims(x.shape())
            ),
        ));
    }
    Ok(map_float!(BN, "input", x, a => {
        let [s, b, m, v] = params;
        batch_norm_t(epsilon, a, [typed(BN, "scale", s)?, typed(BN, "bias", b)?, typed(BN, "mean", m)?, typed(BN, "var", v)?])?
    }))
}

/// `y = (x - mean) / sqrt(var + epsilon) * scale + bias`, per channel (axis 1), in that order.
fn batch_norm_t<T: Float>(
    epsilon: f32,
    x: &ArcArray<T, IxDyn>,
    params: [&ArcArray<T, IxDyn>; 4],
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    let channels = x.shape()[1];
    for (what, p) in ["scale", "bias", "mean", "var"].into_iter().zip(params) {
        if p.shape() != [channels] {
            return Err(invalid(
                BN,
                format!(
                    "{what} must have shape [{channels}] (one per channel), got {}",
                    dims(p.shape())
                ),
            ));
        }
    }
    if x.is_empty() {
        return Ok(x.clone());
    }
    let [scale, bias, mean, var] = params.map(row_major);
    let eps = T::from_f32(epsilon);
    let inner: usize = x.shape()[2..].iter().product();
    let data = row_major(x);
    let mut out = Vec::with_capacity(data.len());
    for (i, block) in data.chunks_exact(inner).enumerate() {
        let c = i % channels;
        let denom = (var[c] + eps).sqrt();
        out.extend(
            block
                .iter()
                .map(|&v| (v - mean[c]) / denom * scale[c] + bias[c]),
        );
    }
    Ok(from_vec(x.shape(), out))
}

/// `a · b`, each output summed from zero over k in increasing order.
fn matmul2<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    let (m, k) = a.dim();
    let mut out = Array2::zeros((m, b.ncols()));
    for i in 0..m {
        let mut row = out.row_mut(i);
        for p in 0..k {
            let av = a[[i, p]];
            row.zip_mut_with(&b.row(p), |o, &bv| *o += av * bv);
        }
    }
    out
}

pub(crate) fn gemm(
    g: &Gemm,
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    const OP: &str = "Gemm";
    if a.rank() != 2 || b.rank() != 2 {
        return Err(invalid(
            OP,
            format!(
                "A and B must be matrices, got shapes {} and {}",
                dims(a.shape()),
                dims(b.shape())
            ),
        ));
    }
    Ok(map_float!(OP, "A", a, x => {
        let c = c.map(|c| typed(OP, "C", c)).transpose()?;
        gemm_t(g, x, typed(OP, "B", b)?, c)?
    }))
}

fn gemm_t<T: Float>(
    g: &Gemm,
    a: &ArcArray<T, IxDyn>,
    b: &ArcArray<T, IxDyn>,
    c: Option<&ArcArray<T, IxDyn>>,
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    const OP: &str = "Gemm";
    let (a2, b2) = (matrix(a, g.trans_a), matrix(b, g.trans_b));
    let ((m, ka), (kb, n)) = (a2.dim(), b2.dim());
    if ka != kb {
        return Err(invalid(
            OP,
            format!(
                "inner dimensions differ: A is {} and B is {} (transA={}, transB={})",
                dims(a.shape()),
                dims(b.shape()),
                g.trans_a as u8,
                g.trans_b as u8
            ),
        ));
    }
    check_size(OP, &[m, n])?;
    let mut y = matmul2(a2, b2);
    let alpha = T::from_f32(g.alpha);
    y.mapv_inplace(|v| alpha * v);
    if let Some(c) = c {
        let cb = (c.ndim() <= 2).then(|| c.broadcast((m, n))).flatten();
        let Some(cb) = cb else {
            return Err(invalid(
                OP,
                format!(
                    "C of shape {} does not broadcast to the output [{m},{n}]",
                    dims(c.shape())
                ),
            ));
        };
        let beta = T::from_f32(g.beta);
        Zip::from(&mut y).and(&cb).for_each(|y, &c| *y += beta * c);
    }
    Ok(y.into_dyn().into_shared())
}

/// A rank-2 array as a matrix, transposed if asked.
fn matrix<T>(x: &ArcArray<T, IxDyn>, transposed: bool) -> ArrayView2<'_, T> {
    let v = x.view().into_dimensionality::<Ix2>().expect("rank checked");
    if transposed {
        v.reversed_axes()
    } else {
        v
    }
}

pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "MatMul";
    if a.rank() < 2 || b.rank() != 2 {
        return Err(invalid(
            OP,
            format!(
                "only [..,M,K] x [K,N] products are supported, got shapes {} and {}",
                dims(a.shape()),
                dims(b.shape())
            ),
        ));
    }
    Ok(map_float!(OP, "A", a, x => matmul_t(x, typed(OP, "B", b)?)?))
}

fn matmul_t<T: Float>(
    a: &ArcArray<T, IxDyn>,
    b: &ArcArray<T, IxDyn>,
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    const OP: &str = "MatMul";
    let shape = a.shape();
    let (k, n) = (b.shape()[0], b.shape()[1]);
    if shape[shape.len() - 1] != k {
        return Err(invalid(
            OP,
            format!(
                "inner dimensions differ: A is {} and B is {}",
                dims(shape),
                dims(b.shape())
            ),
        ));
    }
    let mut out_shape = shape.to_vec();
    *out_shape.last_mut().expect("rank >= 2") = n;
    check_size(OP, &out_shape)?;
    let rows = shape[..shape.len() - 1].iter().product();
    let a2 = reshaped(OP, a, &[rows, k])?;
    let y = matmul2(matrix(&a2, false), matrix(b, false));
    reshaped(OP, &y.into_dyn().into_shared(), &out_shape)
}
