//! Averages: GlobalAveragePool, AveragePool (2-D) and ReduceMean.
//!
//! Every mean is a sum in the element type, from zero, over the averaged elements in row-major order,
//! divided once by the count at the end. An empty average is 0/0 = NaN, as in onnxruntime.

use ndarray::{ArcArray, IxDyn};
use resnetc_ir::{AvgPool, Tensor};

use crate::conv::{geometry, Axis};
use crate::error::EvalError;
use crate::util::{
    axes, check_size, dims, from_vec, int_list, invalid, map_float, row_major, Float,
};

pub(crate) fn global_average_pool(x: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "GlobalAveragePool";
    if x.rank() < 3 {
        return Err(invalid(
            OP,
            format!(
                "input must have rank >= 3 (N, C, spatial...), got shape {}",
                dims(x.shape())
            ),
        ));
    }
    Ok(map_float!(OP, "input", x, a => gap(a)))
}

fn gap<T: Float>(x: &ArcArray<T, IxDyn>) -> ArcArray<T, IxDyn> {
    let shape = x.shape();
    let plane: usize = shape[2..].iter().product();
    let mut out_shape = shape[..2].to_vec();
    out_shape.resize(shape.len(), 1);
    let data = row_major(x);
    let sums: Vec<T> = if plane == 0 {
        vec![T::zero() / T::zero(); shape[0] * shape[1]]
    } else {
        data.chunks_exact(plane)
            .map(|p| mean(p.iter().copied(), plane))
            .collect()
    };
    from_vec(&out_shape, sums)
}

fn mean<T: Float>(values: impl Iterator<Item = T>, count: usize) -> T {
    values.fold(T::zero(), |s, v| s + v) / T::from_usize(count)
}

pub(crate) fn average_pool(p: &AvgPool, x: &Tensor) -> Result<Tensor, EvalError> {
    const OP: &str = "AveragePool";
    let &[_, _, h, w] = x.shape() else {
        return Err(invalid(
            OP,
            format!(
                "only 2-D pooling over NCHW is supported, got shape {}",
                dims(x.shape())
            ),
        ));
    };
    // Pooling geometry is convolution geometry with dilation 1, plus ceil_mode's extra output,
    // which `AvgPool::window` adds.
    let (axes, end_pads) = geometry(OP, [h, w], p.kernel, p.strides, [1, 1], &p.padding, || {
        p.window([h, w])
    })?;
    Ok(map_float!(OP, "input", x, a => avg_pool(p, a, axes, end_pads)?))
}

fn avg_pool<T: Float>(
    p: &AvgPool,
    x: &ArcArray<T, IxDyn>,
    [ay, ax]: [Axis; 2],
    end_pads: [usize; 2],
) -> Result<ArcArray<T, IxDyn>, EvalError> {
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let (h, w, oh, ow) = (ay.len, ax.len, ay.out, ax.out);
    check_size("AveragePool", &[n, c, oh, ow])?;
    // A window as a range of input positions, `[start, end)`, in padded coordinates shifted back
    // by the begin padding (so it may start below zero); the count with padding stops at the end
    // of the end padding, as in PyTorch and onnxruntime.
    let window = |a: &Axis, end_pad: usize, o: usize| {
        let start = (o * a.stride) as i64 - a.pad as i64;
        let end = start + a.kernel as i64;
        let padded_end = end.min((a.len + end_pad) as i64);
        let inside = start.max(0) as usize..end.clamp(0, a.len as i64) as usize;
        (inside, (padded_end - start) as usize)
    };
    if h * w == 0 {
        // No input elements at all: every window is empty.
        return Ok(from_vec(
            &[n, c, oh, ow],
            vec![T::zero() / T::zero(); n * c * oh * ow],
        ));
    }
    let data = row_major(x);
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for plane in data.chunks_exact(h * w).take(n * c) {
        for oy in 0..oh {
            let (rows, padded_h) = window(&ay, end_pads[0], oy);
            for ox in 0..ow {
                let (cols, padded_w) = window(&ax, end_pads[1], ox);
                let values = rows
                    .clone()
                    .flat_map(|y| plane[y * w..][cols.clone()].iter().copied());
                let count = if p.count_include_pad {
                    padded_h * padded_w
                } else {
                    rows.len() * cols.len()
                };
                out.push(mean(values, count));
            }
        }
    }
    Ok(from_vec(&[n, c, oh, ow], out))
}

pub(crate) fn reduce_mean(
    keepdims: bool,
    noop_with_empty_axes: bool,
    x: &Tensor,
    axes_input: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    const OP: &str = "ReduceMean";
    let list = match axes_input {
        Some(t) => int_list(OP, "axes", t)?,
        None => Vec::new(),
    };
    let reduced: Vec<usize> = if list.is_empty() {
        if noop_with_empty_axes {
            return Ok(x.clone());
        }
        (0..x.rank()).collect()
    } else {
        axes(OP, &list, x.rank())?
    };
    Ok(map_float!(OP, "input", x, a => reduce(a, &reduced, keepdims)))
}

fn reduce<T: Float>(
    x: &ArcArray<T, IxDyn>,
    reduced: &[usize],
    keepdims: bool,
) -> ArcArray<T, IxDyn> {
    let shape = x.shape();
    let kept_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if reduced.contains(&i) { 1 } else { d })
        .collect();
    let count: usize = reduced.iter().map(|&i| shape[i]).product();
    // One pass over the input in row-major order, adding each element to its output slot, so every
    // output's sum runs over its elements in row-major order.
    let mut sums = ndarray::ArrayD::<T>::zeros(IxDyn(&kept_shape));
    let mut index = vec![0usize; shape.len()];
    for (i, &v) in x.indexed_iter() {
        for (k, slot) in index.iter_mut().enumerate() {
            *slot = if reduced.contains(&k) { 0 } else { i[k] };
        }
        let s = &mut sums[index.as_slice()];
        *s += v;
    }
    let denom = T::from_usize(count);
    sums.mapv_inplace(|s| s / denom);
    let out_shape: Vec<usize> = if keepdims {
        kept_shape
    } else {
        shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !reduced.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    from_vec(&out_shape, sums.into_iter().collect())
}
