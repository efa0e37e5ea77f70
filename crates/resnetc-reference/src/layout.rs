//! Ops that move, select or make data without arithmetic on it: Flatten, Reshape, Pad, Slice, Shape,
//! Gather, Unsqueeze, Squeeze, Concat, ConstantOfShape, Expand, Transpose, Range and Cast.
//!
//! These are defined for every element type. Their results are fresh row-major arrays.

use ndarray::{ArcArray, ArrayD, Axis, IxDyn, Slice};
use resnetc_ir::{DType, Tensor};

use crate::arith::broadcast_shape;
use crate::error::EvalError;
use crate::util::{
    axes, axis, check_size, check_size_u64, dims, dtype_error, from_vec, int_list, invalid,
    map_tensor, reshaped, typed, Elem,
};

pub(crate) fn flatten(axis_attr: i64, x: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "Flatten";
    let r = x.rank() as i64;
    if !(-r..=r).contains(&axis_attr) {
        return Err(invalid(
            OP,
            format!(
                "axis {axis_attr} is out of range for rank {r} (allowed: {}..={r})",
                -r
            ),
        ));
    }
    let a = if axis_attr < 0 {
        axis_attr + r
    } else {
        axis_attr
    } as usize;
    let shape = [
        x.shape()[..a].iter().product(),
        x.shape()[a..].iter().product(),
    ];
    Ok(map_tensor!(x, t => reshaped(OP, t, &shape)?))
}

pub(crate) fn reshape(allowzero: bool, x: &Tensor, shape: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "Reshape";
    if shape.rank() != 1 {
        return Err(invalid(
            OP,
            format!("shape must be 1-D, got shape {}", dims(shape.shape())),
        ));
    }
    let spec = int_list(OP, "shape", shape)?;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(invalid(
                        OP,
                        format!("shape {} has more than one -1", dims(&spec)),
                    ));
                }
                out.push(1);
            }
            0 if !allowzero => match x.shape().get(i) {
                Some(&d) => out.push(d),
                None => {
                    return Err(invalid(
                        OP,
                        format!(
                            "shape {} copies dimension {i} (0), but the input has rank {}",
                            dims(&spec),
                            x.rank()
                        ),
                    ))
                }
            },
            s if s >= 0 => out.push(
                usize::try_from(s)
                    .map_err(|_| invalid(OP, format!("shape entry {s} is too large")))?,
            ),
            s => {
                return Err(invalid(
                    OP,
                    format!("shape entry {i} is {s}; entries must be -1 (infer), 0 or a size"),
                ))
            }
        }
    }
    if allowzero && infer_at.is_some() && spec.contains(&0) {
        return Err(invalid(
            OP,
            format!(
                "shape {} has both 0 and -1, which allowzero forbids",
                dims(&spec)
            ),
        ));
    }
    let cannot = || {
        invalid(
            OP,
            format!("cannot reshape {} elements into {}", x.len(), dims(&spec)),
        )
    };
    let known = out
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(cannot)?;
    match infer_at {
        Some(at) => {
            if known == 0 || !x.len().is_multiple_of(known) {
                return Err(cannot());
            }
            out[at] = x.len() / known;
        }
        None if known != x.len() => return Err(cannot()),
        None => {}
    }
    Ok(map_tensor!(x, t => reshaped(OP, t, &out)?))
}

pub(crate) fn pad(
    x: &Tensor,
    pads: &Tensor,
    value: Option<&Tensor>,
    axes_input: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    const OP: &str = "Pad";
    let pads = int_list(OP, "pads", pads)?;
    let padded: Vec<usize> = match axes_input {
        Some(t) => axes(OP, &int_list(OP, "axes", t)?, x.rank())?,
        None => (0..x.rank()).collect(),
    };
    if pads.len() != 2 * padded.len() {
        return Err(invalid(
            OP,
            format!(
                "pads has {} entries, expected {} (begin and end for each of {} axes)",
                pads.len(),
                2 * padded.len(),
                padded.len()
            ),
        ));
    }
    let mut begin = vec![0i64; x.rank()];
    let mut out_shape: Vec<u64> = x.shape().iter().map(|&d| d as u64).collect();
    for (k, &a) in padded.iter().enumerate() {
        let (b, e) = (pads[k], pads[k + padded.len()]);
        let d = x.shape()[a];
        let n = d as i128 + b as i128 + e as i128;
        if n < 0 {
            return Err(invalid(
                OP,
                format!("pads {b},{e} on axis {a} remove more than its {d} elements"),
            ));
        }
        begin[a] = b;
        out_shape[a] = u64::try_from(n).unwrap_or(u64::MAX);
    }
    check_size_u64(OP, &out_shape)?;
    let out_shape: Vec<usize> = out_shape.iter().map(|&d| d as usize).collect();
    if let Some(v) = value {
        if v.len() != 1 {
            return Err(invalid(
                OP,
                format!(
                    "constant_value must have one element, got shape {}",
                    dims(v.shape())
                ),
            ));
        }
    }
    Ok(map_tensor!(x, t => pad_t(t, &begin, &out_shape, value)?))
}

/// Fills the output with the constant, then copies the part of the input that survives cropping.
fn pad_t<T: Elem>(
    x: &ArcArray<T, IxDyn>,
    begin: &[i64],
    out_shape: &[usize],
    value: Option<&Tensor>,
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    let fill = match value {
        Some(v) => typed::<T>("Pad", "constant_value", v)?
            .iter()
            .next()
            .cloned()
            .unwrap_or_default(),
        None => T::default(),
    };
    let mut out = ArrayD::from_elem(IxDyn(out_shape), fill);
    // Per axis: where the copied block starts in the input and in the output, and its length.
    let block: Vec<(usize, usize, usize)> = (0..x.ndim())
        .map(|a| {
            let (d, od, b) = (x.shape()[a] as i64, out_shape[a] as i64, begin[a]);
            let (from, to) = (b.saturating_neg().max(0), b.max(0));
            let len = (d - from).min(od - to).max(0);
            (from.min(d) as usize, to.min(od) as usize, len as usize)
        })
        .collect();
    if block.iter().all(|&(_, _, len)| len > 0) {
        let src = x.slice_each_axis(|ax| {
            let (from, _, len) = block[ax.axis.index()];
            Slice::from(from..from + len)
        });
        out.slice_each_axis_mut(|ax| {
            let (_, to, len) = block[ax.axis.index()];
            Slice::from(to..to + len)
        })
        .assign(&src);
    }
    Ok(out.into_shared())
}

pub(crate) fn slice(
    x: &Tensor,
    starts: &Tensor,
    ends: &Tensor,
    axes_input: Option<&Tensor>,
    steps: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    const OP: &str = "Slice";
    let starts = int_list(OP, "starts", starts)?;
    let ends = int_list(OP, "ends", ends)?;
    if starts.len() != ends.len() {
        return Err(invalid(
            OP,
            format!(
                "starts has {} entries but ends has {}",
                starts.len(),
                ends.len()
            ),
        ));
    }
    let sliced: Vec<usize> = match axes_input {
        Some(t) => axes(OP, &int_list(OP, "axes", t)?, x.rank())?,
        None if starts.len() <= x.rank() => (0..starts.len()).collect(),
        None => {
            return Err(invalid(
                OP,
                format!(
                    "starts has {} entries but the input has rank {}",
                    starts.len(),
                    x.rank()
                ),
            ))
        }
    };
    let steps = match steps {
        Some(t) => int_list(OP, "steps", t)?,
        None => vec![1; starts.len()],
    };
    if sliced.len() != starts.len() || steps.len() != starts.len() {
        return Err(invalid(
            OP,
            format!(
                "starts, ends, axes and steps must have the same length ({}, {}, {}, {})",
                starts.len(),
                ends.len(),
                sliced.len(),
                steps.len()
            ),
        ));
    }
    // Per axis: the first index, the step and the count; untouched axes keep everything.
    let mut plan: Vec<(i64, i64, usize)> = x.shape().iter().map(|&d| (0, 1, d)).collect();
    for (k, &a) in sliced.iter().enumerate() {
        if steps[k] == 0 {
            return Err(invalid(OP, format!("step {k} is zero")));
        }
        let len = x.shape()[a] as i64;
        // A step longer than the axis selects at most the first element either way; bounding it
        // keeps `slice_axis`'s arithmetic from overflowing on hostile steps such as i64::MIN.
        let step = steps[k].clamp(-len.max(1), len.max(1));
        plan[a] = resnetc_ir::infer::slice_axis(len, starts[k], ends[k], step);
    }
    Ok(map_tensor!(x, t => slice_t(t, &plan)))
}

fn slice_t<T: Clone>(x: &ArcArray<T, IxDyn>, plan: &[(i64, i64, usize)]) -> ArcArray<T, IxDyn> {
    let mut out = x.to_owned();
    for (a, &(start, step, count)) in plan.iter().enumerate() {
        if (start, step, count) == (0, 1, x.shape()[a]) {
            continue;
        }
        let picked: Vec<usize> = (0..count as i64)
            .map(|i| (start + i * step) as usize)
            .collect();
        out = out.select(Axis(a), &picked);
    }
    out.into_shared()
}

pub(crate) fn shape(start: i64, end: Option<i64>, x: &Tensor) -> Tensor {
    let (s, e) = resnetc_ir::infer::shape_range(x.rank(), start, end);
    Tensor::i64_vec(x.shape()[s..e].iter().map(|&d| d as i64).collect())
}

pub(crate) fn gather(axis_attr: i64, x: &Tensor, indices: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "Gather";
    if x.rank() == 0 {
        return Err(invalid(OP, "cannot gather from a scalar"));
    }
    let a = axis(OP, "axis", axis_attr, x.rank())?;
    let Some(raw) = indices.as_i64s() else {
        return Err(dtype_error(OP, "indices", indices.dtype(), "i32 or i64"));
    };
    let n = x.shape()[a] as i64;
    let picked: Vec<usize> = raw
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(invalid(
                    OP,
                    format!("index {i} is out of range for axis {a} of size {n}"),
                ))
            }
        })
        .collect::<Result<_, _>>()?;
    let mut out_shape = x.shape()[..a].to_vec();
    out_shape.extend_from_slice(indices.shape());
    out_shape.extend_from_slice(&x.shape()[a + 1..]);
    check_size(OP, &out_shape)?;
    Ok(map_tensor!(x, t => reshaped(OP, &t.select(Axis(a), &picked).into_shared(), &out_shape)?))
}

pub(crate) fn unsqueeze(x: &Tensor, axes_input: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "Unsqueeze";
    let list = int_list(OP, "axes", axes_input)?;
    let rank = x.rank() + list.len();
    let inserted = axes(OP, &list, rank)?;
    let mut rest = x.shape().iter();
    let shape: Vec<usize> = (0..rank)
        .map(|i| {
            if inserted.contains(&i) {
                1
            } else {
                *rest.next().expect("rank adds up")
            }
        })
        .collect();
    Ok(map_tensor!(x, t => reshaped(OP, t, &shape)?))
}

/// Without axes, or with an empty list (as onnxruntime reads it), removes every dimension of size 1.
pub(crate) fn squeeze(x: &Tensor, axes_input: Option<&Tensor>) -> Result<Tensor, EvalError> {
    const OP: &str = "Squeeze";
    let list = match axes_input {
        Some(t) => int_list(OP, "axes", t)?,
        None => Vec::new(),
    };
    let removed: Vec<usize> = if list.is_empty() {
        (0..x.rank()).filter(|&i| x.shape()[i] == 1).collect()
    } else {
        axes(OP, &list, x.rank())?
    };
    if let Some(&a) = removed.iter().find(|&&a| x.shape()[a] != 1) {
        return Err(invalid(
            OP,
            format!(
                "cannot squeeze axis {a} of shape {}: its size is not 1",
                dims(x.shape())
            ),
        ));
    }
    let shape: Vec<usize> = (0..x.rank())
        .filter(|i| !removed.contains(i))
        .map(|i| x.shape()[i])
        .collect();
    Ok(map_tensor!(x, t => reshaped(OP, t, &shape)?))
}

pub(crate) fn concat(axis_attr: i64, parts: &[&Tensor]) -> Result<Tensor, EvalError> {
    const OP: &str = "Concat";
    let Some(first) = parts.first() else {
        return Err(invalid(OP, "needs at least one input"));
    };
    if first.rank() == 0 {
        return Err(invalid(OP, "cannot concatenate scalars"));
    }
    let a = axis(OP, "axis", axis_attr, first.rank())?;
    let mut total = 0usize;
    for (k, p) in parts.iter().enumerate() {
        if p.dtype() != first.dtype() {
            return Err(invalid(
                OP,
                format!(
                    "input {k} has element type {} but input 0 has {}",
                    p.dtype(),
                    first.dtype()
                ),
            ));
        }
        let same_outside = p.rank() == first.rank()
            && (0..p.rank()).all(|i| i == a || p.shape()[i] == first.shape()[i]);
        if !same_outside {
            return Err(invalid(
                OP,
                format!(
                    "input {k} has shape {} but input 0 has {}; they may differ only on axis {a}",
                    dims(p.shape()),
                    dims(first.shape())
                ),
            ));
        }
        total = total.saturating_add(p.shape()[a]);
    }
    let mut out_shape = first.shape().to_vec();
    out_shape[a] = total;
    check_size(OP, &out_shape)?;
    Ok(match first {
        Tensor::F32(_) => Tensor::F32(concat_t(parts, a)?),
        Tensor::F64(_) => Tensor::F64(concat_t(parts, a)?),
        Tensor::I32(_) => Tensor::I32(concat_t(parts, a)?),
        Tensor::I64(_) => Tensor::I64(concat_t(parts, a)?),
        Tensor::Bool(_) => Tensor::Bool(concat_t(parts, a)?),
    })
}

fn concat_t<T: Elem>(parts: &[&Tensor], a: usize) -> Result<ArcArray<T, IxDyn>, EvalError> {
    let views = parts
        .iter()
        .map(|p| typed::<T>("Concat", "input", p).map(|t| t.view()))
        .collect::<Result<Vec<_>, _>>()?;
    ndarray::concatenate(Axis(a), &views)
        .map(ArrayD::into_shared)
        .map_err(|e| invalid("Concat", e.to_string()))
}

/// A shape given as data: a 1-D integer tensor of sizes, none negative.
fn shape_input(op: &'static str, t: &Tensor) -> Result<Vec<usize>, EvalError> {
    if t.rank() != 1 {
        return Err(invalid(
            op,
            format!("shape must be 1-D, got shape {}", dims(t.shape())),
        ));
    }
    let spec = int_list(op, "shape", t)?;
    spec.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                invalid(
                    op,
                    format!("shape {} has a negative dimension", dims(&spec)),
                )
            })
        })
        .collect()
}

pub(crate) fn constant_of_shape(value: &Tensor, shape: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "ConstantOfShape";
    let shape = shape_input(OP, shape)?;
    check_size(OP, &shape)?;
    if value.len() != 1 {
        return Err(invalid(
            OP,
            format!(
                "value must have one element, got shape {}",
                dims(value.shape())
            ),
        ));
    }
    Ok(
        map_tensor!(value, v => ArcArray::from_elem(IxDyn(&shape), v.iter().next().cloned().unwrap_or_default())),
    )
}

pub(crate) fn expand(x: &Tensor, shape: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "Expand";
    let target = shape_input(OP, shape)?;
    let out = broadcast_shape(OP, x.shape(), &target)?;
    check_size(OP, &out)?;
    Ok(
        map_tensor!(x, t => t.broadcast(IxDyn(&out)).expect("out is a broadcast of x's shape").to_owned().into_shared()),
    )
}

pub(crate) fn transpose(perm: Option<&[usize]>, x: &Tensor) -> Result<Tensor, EvalError> {
    let perm: Vec<usize> = perm.map_or_else(|| (0..x.rank()).rev().collect(), <[usize]>::to_vec);
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..x.rank()).collect::<Vec<_>>() {
        return Err(invalid(
            "Transpose",
            format!(
                "perm {} is not a permutation of the {} axes",
                dims(&perm),
                x.rank()
            ),
        ));
    }
    Ok(
        map_tensor!(x, t => t.view().permuted_axes(perm.clone()).as_standard_layout().into_owned().into_shared()),
    )
}

pub(crate) fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "Range";
    for (what, t) in [("start", start), ("limit", limit), ("delta", delta)] {
        if t.len() != 1 || t.rank() > 1 {
            return Err(invalid(
                OP,
                format!("{what} must be a scalar, got shape {}", dims(t.shape())),
            ));
        }
        if t.dtype() != start.dtype() {
            return Err(invalid(
                OP,
                format!("{what} is {} but start is {}", t.dtype(), start.dtype()),
            ));
        }
    }
    match start.dtype() {
        DType::I32 | DType::I64 => {
            let get = |t: &Tensor| t.as_i64s().map_or(0, |v| v[0]) as i128;
            let (s, l, d) = (get(start), get(limit), get(delta));
            if d == 0 {
                return Err(invalid(OP, "delta is zero"));
            }
            // ceil((l - s) / d) in exact integer arithmetic.
            let n = ((l - s) + d - d.signum()) / d;
            let n = n.max(0);
            check_size_u64(OP, &[u64::try_from(n).unwrap_or(u64::MAX)])?;
            let values = (0..n).map(|i| s + i * d);
            Ok(match start.dtype() {
                DType::I32 => {
                    Tensor::I32(from_vec(&[n as usize], values.map(|v| v as i32).collect()))
                }
                _ => Tensor::I64(from_vec(&[n as usize], values.map(|v| v as i64).collect())),
            })
        }
        DType::F32 => Ok(Tensor::F32(float_range(OP, start, limit, delta)?)),
        DType::F64 => Ok(Tensor::F64(float_range(OP, start, limit, delta)?)),
        DType::Bool => Err(dtype_error(OP, "start", DType::Bool, "a number type")),
    }
}

/// `start + i * delta` for `i < max(ceil((limit - start) / delta), 0)`, all in the element type (as
/// the ONNX reference does; onnxruntime accumulates `+= delta` instead, which can differ in the last bits).
fn float_range<T: crate::util::Float>(
    op: &'static str,
    start: &Tensor,
    limit: &Tensor,
    delta: &Tensor,
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    let get =
        |what, t| typed::<T>(op, what, t).map(|a| a.iter().copied().next().unwrap_or_else(T::zero));
    let (s, l, d) = (
        get("start", start)?,
        get("limit", limit)?,
        get("delta", delta)?,
    );
    if d == T::zero() {
        return Err(invalid(op, "delta is zero"));
    }
    let n = ((l - s) / d).ceil();
    if !n.is_finite() {
        return Err(invalid(
            op,
            format!("the number of elements, ceil(({l} - {s}) / {d}), is not finite"),
        ));
    }
    let n = if n > T::zero() {
        Elem::into_f64(n)
    } else {
        0.0
    };
    if n > crate::error::MAX_ELEMENTS as f64 {
        return Err(EvalError::TooLarge {
            op,
            shape: vec![n as u64],
        });
    }
    let n = n as usize;
    Ok(from_vec(
        &[n],
        (0..n).map(|i| s + T::from_usize(i) * d).collect(),
    ))
}

pub(crate) fn cast(x: &Tensor, to: DType) -> Tensor {
    fn go<T: Elem + Copy>(a: &ArcArray<T, IxDyn>, to: DType) -> Tensor {
        match to {
            DType::F32 => Tensor::F32(a.mapv(T::into_f32).into_shared()),
            DType::F64 => Tensor::F64(a.mapv(T::into_f64).into_shared()),
            DType::I32 => Tensor::I32(a.mapv(T::into_i32).into_shared()),
            DType::I64 => Tensor::I64(a.mapv(T::into_i64).into_shared()),
            DType::Bool => Tensor::Bool(a.mapv(T::into_bool).into_shared()),
        }
    }
    if x.dtype() == to {
        return x.clone();
    }
    match x {
        Tensor::F32(a) => go(a, to),
        Tensor::F64(a) => go(a, to),
        Tensor::I32(a) => go(a, to),
        Tensor::I64(a) => go(a, to),
        Tensor::Bool(a) => go(a, to),
    }
}
