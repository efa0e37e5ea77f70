//! Small helpers shared by the op implementations.

use ndarray::{ArcArray, ArrayD, IxDyn};
use resnetc_ir::{DType, Tensor};

use crate::error::{EvalError, MAX_ELEMENTS};

/// An element type of [`Tensor`], with the conversions Cast performs.
///
/// Conversions are Rust's `as`: float to integer truncates toward zero, saturates out of range and
/// maps NaN to 0 (where C leaves those undefined); integer to integer wraps; to bool is `!= 0`.
pub(crate) trait Elem: Clone + Default + 'static {
    const DTYPE: DType;
    fn get(t: &Tensor) -> Option<&ArcArray<Self, IxDyn>>;
    fn into_f32(self) -> f32;
    fn into_f64(self) -> f64;
    fn into_i32(self) -> i32;
    fn into_i64(self) -> i64;
    fn into_bool(self) -> bool;
}

macro_rules! elem {
    ($t:ty, $variant:ident, $dtype:ident, $zero:expr, |$x:ident| $num:expr) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$dtype;
            fn get(t: &Tensor) -> Option<&ArcArray<$t, IxDyn>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn into_f32(self) -> f32 {
                let $x = self;
                $num as f32
            }
            fn into_f64(self) -> f64 {
                let $x = self;
                $num as f64
            }
            fn into_i32(self) -> i32 {
                let $x = self;
                $num as i32
            }
            fn into_i64(self) -> i64 {
                let $x = self;
                $num as i64
            }
            fn into_bool(self) -> bool {
                self != $zero
            }
        }
    };
}

elem!(f32, F32, F32, 0.0, |x| x);
elem!(f64, F64, F64, 0.0, |x| x);
elem!(i32, I32, I32, 0, |x| x);
elem!(i64, I64, I64, 0, |x| x);
elem!(bool, Bool, Bool, false, |x| x as u8);

/// The array inside `t` if it holds `T`s, else an error naming `what`.
pub(crate) fn typed<'a, T: Elem>(
    op: &'static str,
    what: &'static str,
    t: &'a Tensor,
) -> Result<&'a ArcArray<T, IxDyn>, EvalError> {
    T::get(t).ok_or_else(|| dtype_error(op, what, t.dtype(), T::DTYPE.name()))
}

/// The float element types (`f32`, `f64`) the arithmetic ops are written over.
pub(crate) trait Float: ndarray::NdFloat + Elem {
    fn from_f32(x: f32) -> Self;
    fn from_usize(n: usize) -> Self;
}

impl Float for f32 {
    fn from_f32(x: f32) -> f32 {
        x
    }
    fn from_usize(n: usize) -> f32 {
        n as f32
    }
}

impl Float for f64 {
    fn from_f32(x: f32) -> f64 {
        x as f64
    }
    fn from_usize(n: usize) -> f64 {
        n as f64
    }
}

/// Matches a tensor on its element type and rewraps what `$body` returns (an array of the same type).
macro_rules! map_tensor {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => Tensor::F32($body),
            Tensor::F64($a) => Tensor::F64($body),
            Tensor::I32($a) => Tensor::I32($body),
            Tensor::I64($a) => Tensor::I64($body),
            Tensor::Bool($a) => Tensor::Bool($body),
        }
    };
}
pub(crate) use map_tensor;

/// Like [`map_tensor`] for ops defined on floats only; other element types are an error.
macro_rules! map_float {
    ($op:expr, $what:expr, $t:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => Tensor::F32($body),
            Tensor::F64($a) => Tensor::F64($body),
            other => {
                return Err($crate::util::dtype_error(
                    $op,
                    $what,
                    other.dtype(),
                    "f32 or f64",
                ))
            }
        }
    };
}
pub(crate) use map_float;

pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> EvalError {
    EvalError::Invalid {
        op,
        message: message.into(),
    }
}

pub(crate) fn dtype_error(
    op: &'static str,
    what: &'static str,
    got: DType,
    expected: impl Into<String>,
) -> EvalError {
    EvalError::DType {
        op,
        what,
        got,
        expected: expected.into(),
    }
}

/// Refuses a result shape with more than [`MAX_ELEMENTS`] elements.
pub(crate) fn check_size(op: &'static str, shape: &[usize]) -> Result<(), EvalError> {
    check_size_u64(op, &shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
}

pub(crate) fn check_size_u64(op: &'static str, shape: &[u64]) -> Result<(), EvalError> {
    let n = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    match n {
        Some(n) if n <= MAX_ELEMENTS => Ok(()),
        _ => Err(EvalError::TooLarge {
            op,
            shape: shape.to_vec(),
        }),
    }
}

/// The contents of an integer tensor of rank 0 or 1 (a shape, axes, pads, indices list).
pub(crate) fn int_list(
    op: &'static str,
    what: &'static str,
    t: &Tensor,
) -> Result<Vec<i64>, EvalError> {
    let Some(v) = t.as_i64s() else {
        return Err(dtype_error(op, what, t.dtype(), "i32 or i64"));
    };
    if t.rank() > 1 {
        return Err(invalid(
            op,
            format!(
                "{what} must be a scalar or 1-D, got shape {}",
                dims(t.shape())
            ),
        ));
    }
    Ok(v)
}

/// Normalizes a possibly negative axis against `rank`, for messages naming `what`.
pub(crate) fn axis(op: &'static str, what: &str, a: i64, rank: usize) -> Result<usize, EvalError> {
    resnetc_ir::infer::norm_axis(a, rank).map_err(|m| invalid(op, format!("{what}: {m}")))
}

/// Normalized axes, refusing duplicates.
pub(crate) fn axes(op: &'static str, list: &[i64], rank: usize) -> Result<Vec<usize>, EvalError> {
    let mut out = Vec::with_capacity(list.len());
    for &a in list {
        let a = axis(op, "axes", a, rank)?;
        if out.contains(&a) {
            return Err(invalid(
                op,
                format!("axes {} name axis {a} twice", dims(list)),
            ));
        }
        out.push(a);
    }
    Ok(out)
}

/// A row-major copy of `a` with a new shape of the same element count.
pub(crate) fn reshaped<T: Clone>(
    op: &'static str,
    a: &ArcArray<T, IxDyn>,
    shape: &[usize],
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    a.to_shape(IxDyn(shape))
        .map(|v| v.into_owned().into_shared())
        .map_err(|e| {
            invalid(
                op,
                format!(
                    "cannot view shape {} as {}: {e}",
                    dims(a.shape()),
                    dims(shape)
                ),
            )
        })
}

/// The elements of `a` in row-major order as one slice, copying only if `a` is not laid out that way.
pub(crate) fn row_major<T: Clone>(a: &ArcArray<T, IxDyn>) -> std::borrow::Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().cloned().collect()),
    }
}

/// Builds an array from a row-major buffer whose length the caller computed from `shape`.
pub(crate) fn from_vec<T: Clone>(shape: &[usize], data: Vec<T>) -> ArcArray<T, IxDyn> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .expect("buffer length matches the shape")
        .into_shared()
}

/// Writes a shape or integer list compactly, as `[2,3,-1]`.
pub(crate) fn dims<T: std::fmt::Display>(d: &[T]) -> String {
    let parts: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}
