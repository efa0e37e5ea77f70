//! Type and shape inference, one function per op.
//!
//! Besides types, inference tracks the contents of small integer values (rank 0 or 1) when they are
//! known, possibly symbolically: `Shape(x)` of an `f32[N,64,1,1]` is `[N,64,1,1]`. That is what lets a
//! `Reshape` fed by PyTorch's `Shape → Gather → Unsqueeze → Concat` chain get an output shape, and what
//! the canonicalizer uses to replace those chains by constants.

use crate::op::{BinOp, Op};
use crate::shape::{Dim, TensorType};
use crate::tensor::{DType, Tensor};

/// An integer that is known, or equal to a named symbolic dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymInt {
    Int(i64),
    Sym(String),
}

impl From<&Dim> for SymInt {
    fn from(d: &Dim) -> SymInt {
        match d {
            Dim::Fixed(n) => SymInt::Int(*n as i64),
            Dim::Sym(s) => SymInt::Sym(s.clone()),
        }
    }
}

/// The known contents of a rank-0 or rank-1 integer value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value {
    /// Rank 0 when true (then `elems` has one element).
    pub scalar: bool,
    pub elems: Vec<SymInt>,
}

impl Value {
    fn vec(elems: Vec<SymInt>) -> Value {
        Value {
            scalar: false,
            elems,
        }
    }

    fn ints(&self) -> Option<Vec<i64>> {
        self.elems
            .iter()
            .map(|e| match e {
                SymInt::Int(i) => Some(*i),
                SymInt::Sym(_) => None,
            })
            .collect()
    }
}

type Inferred = (Option<TensorType>, Option<Value>);
type R<T> = Result<T, String>;

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

/// Numpy-style broadcast of two shapes. `Ok(None)` where a symbol meets a size other than 1.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> R<Option<Vec<Dim>>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank].clone()
        } else {
            Dim::Fixed(1)
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank].clone()
        } else {
            Dim::Fixed(1)
        };
        let d = match (&da, &db) {
            _ if da == db => da,
            (Dim::Fixed(1), _) => db,
            (_, Dim::Fixed(1)) => da,
            (Dim::Fixed(x), Dim::Fixed(y)) => {
                return Err(format!(
                    "shapes {} and {} do not broadcast (dimension {i}: {x} vs {y})",
                    crate::shape::fmt_shape(a),
                    crate::shape::fmt_shape(b)
                ))
            }
            _ => return Ok(None),
        };
        out.push(d);
    }
    Ok(Some(out))
}

fn need<'a>(t: &[Option<&'a TensorType>], slot: usize) -> Option<&'a TensorType> {
    t.get(slot).copied().flatten()
}

fn val<'a>(v: &[Option<&'a Value>], slot: usize) -> Option<&'a Value> {
    v.get(slot).copied().flatten()
}

fn same_dtype(a: &TensorType, b: &TensorType, what: &str) -> R<()> {
    if a.dtype != b.dtype {
        return Err(format!(
            "{what}: element types differ ({} vs {})",
            a.dtype, b.dtype
        ));
    }
    Ok(())
}

/// Infers the output type (and known integer contents) of one node from its inputs'.
pub fn infer_node(op: &Op, t: &[Option<&TensorType>], v: &[Option<&Value>]) -> R<Inferred> {
    match op {
        Op::Input { ty, .. } => Ok((Some(ty.clone()), None)),
        Op::Constant(c) => Ok((
            Some(TensorType::fixed(c.dtype(), c.shape())),
            const_value(c),
        )),
        Op::Identity => Ok((need(t, 0).cloned(), val(v, 0).cloned())),
        Op::Relu => {
            if let Some(x) = need(t, 0) {
                float_only(x, "Relu")?;
            }
            Ok((need(t, 0).cloned(), None))
        }
        Op::Conv(c) => conv(c, t),
        Op::FusedConv { conv: c, epilogue } => {
            let (out, _) = conv(c, t)?;
            let parts = crate::op::Epilogue::split(epilogue)?;
            if parts.bias != t.get(2).is_some_and(Option::is_some) {
                return Err(format!(
                    "the epilogue {} a bias but input 2 is {}",
                    if parts.bias { "adds" } else { "has no" },
                    if parts.bias { "absent" } else { "present" }
                ));
            }
            if parts.residual.is_some() != t.get(3).is_some_and(Option::is_some) {
                return Err(
                    "input 3 (the residual) must be present exactly when the epilogue adds one"
                        .into(),
                );
            }
            if let (Some(read), Some(out), Some(r)) = (parts.residual, out.as_ref(), need(t, 3)) {
                let per_image = |t: &TensorType| match t.concrete_tail().as_deref() {
                    Some(&[c, h, w]) => Some([c, h, w]),
                    _ => None,
                };
                let ok = r.rank() == 4
                    && r.shape[0] == out.shape[0]
                    && match (per_image(r), per_image(out)) {
                        (Some(rs), Some(os)) => read.fits(rs, os),
                        // Symbolic sizes: only a direct read of the very same shape is known to fit.
                        _ => read == crate::op::ResidualRead::Direct && r.shape == out.shape,
                    };
                if !ok {
                    return Err(format!(
                        "residual {r} does not fit the output {out} read as {read:?}"
                    ));
                }
            }
            Ok((out, None))
        }
        Op::Shortcut {
            stride,
            pad_before,
            pad_after,
        } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            if x.rank() != 4 || *stride == 0 {
                return Err(format!(
                    "expects an NCHW input and a positive stride, got {x} and stride {stride}"
                ));
            }
            let Some(tail) = x.concrete_tail() else {
                return Ok((None, None));
            };
            let out = vec![
                x.shape[0].clone(),
                Dim::Fixed(tail[0] + pad_before + pad_after),
                Dim::Fixed(tail[1].div_ceil(*stride)),
                Dim::Fixed(tail[2].div_ceil(*stride)),
            ];
            Ok((Some(TensorType::new(x.dtype, out)), None))
        }
        Op::BatchNorm { .. } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            float_only(x, "BatchNormalization input")?;
            if x.rank() < 2 {
                return Err(format!("input must have rank >= 2, got {x}"));
            }
            for (slot, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
                if let Some(p) = need(t, slot) {
                    if p.rank() != 1 || (p.shape[0] != x.shape[1]) {
                        return Err(format!("{what} must be [{}], got {p}", x.shape[1]));
                    }
                }
            }
            Ok((Some(x.clone()), None))
        }
        Op::Binary(b) => binary(*b, t, v),
        Op::Gemm(g) => {
            let (Some(a), Some(b)) = (need(t, 0), need(t, 1)) else {
                return Ok((None, None));
            };
            if a.rank() != 2 || b.rank() != 2 {
                return Err(format!("A and B must be matrices, got {a} and {b}"));
            }
            same_dtype(a, b, "A and B")?;
            let (m, ka) = if g.trans_a {
                (&a.shape[1], &a.shape[0])
            } else {
                (&a.shape[0], &a.shape[1])
            };
            let (kb, n) = if g.trans_b {
                (&b.shape[1], &b.shape[0])
            } else {
                (&b.shape[0], &b.shape[1])
            };
            if ka != kb {
                return Err(format!(
                    "inner dimensions differ: A is {a} and B is {b} (transA={}, transB={})",
                    g.trans_a as u8, g.trans_b as u8
                ));
            }
            let out = vec![m.clone(), n.clone()];
            if let Some(c) = need(t, 2) {
                if broadcast(&c.shape, &out)?.is_some_and(|s| s != out) {
                    return Err(format!(
                        "C {c} does not broadcast to the output {}",
                        crate::shape::fmt_shape(&out)
                    ));
                }
            }
            Ok((Some(TensorType::new(a.dtype, out)), None))
        }
        Op::MatMul => {
            let (Some(a), Some(b)) = (need(t, 0), need(t, 1)) else {
                return Ok((None, None));
            };
            same_dtype(a, b, "A and B")?;
            if a.rank() < 2 || b.rank() != 2 {
                return Err(format!(
                    "only [.., M, K] x [K, N] products are supported, got {a} and {b}"
                ));
            }
            if a.shape[a.rank() - 1] != b.shape[0] {
                return Err(format!("inner dimensions differ: {a} and {b}"));
            }
            let mut out = a.shape.clone();
            *out.last_mut().expect("rank >= 2") = b.shape[1].clone();
            Ok((Some(TensorType::new(a.dtype, out)), None))
        }
        Op::GlobalAveragePool => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            float_only(x, "GlobalAveragePool")?;
            if x.rank() < 3 {
                return Err(format!("input must have rank >= 3, got {x}"));
            }
            let mut out = x.shape[..2].to_vec();
            out.extend(std::iter::repeat_n(Dim::Fixed(1), x.rank() - 2));
            Ok((Some(TensorType::new(x.dtype, out)), None))
        }
        Op::AveragePool(p) => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            float_only(x, "AveragePool")?;
            if x.rank() != 4 {
                return Err(format!("only 2-D pooling over NCHW is supported, got {x}"));
            }
            let (Some(h), Some(w)) = (x.shape[2].fixed(), x.shape[3].fixed()) else {
                return Ok((None, None));
            };
            let win = p.window([h, w])?;
            let mut out = x.shape[..2].to_vec();
            out.extend(win.out.map(Dim::Fixed));
            Ok((Some(TensorType::new(x.dtype, out)), None))
        }
        Op::ReduceMean {
            keepdims,
            noop_with_empty_axes,
        } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            float_only(x, "ReduceMean")?;
            let axes: Vec<usize> = match t.get(1).is_some_and(Option::is_some)
                || v.get(1).is_some_and(Option::is_some)
            {
                true => match val(v, 1).and_then(Value::ints) {
                    Some(a) => a
                        .into_iter()
                        .map(|a| norm_axis(a, x.rank()))
                        .collect::<R<_>>()?,
                    None => return Ok((None, None)),
                },
                false => Vec::new(),
            };
            let axes: Vec<usize> = if axes.is_empty() {
                if *noop_with_empty_axes {
                    return Ok((Some(x.clone()), None));
                }
                (0..x.rank()).collect()
            } else {
                axes
            };
            let mut out = Vec::new();
            for (i, d) in x.shape.iter().enumerate() {
                if axes.contains(&i) {
                    if *keepdims {
                        out.push(Dim::Fixed(1));
                    }
                } else {
                    out.push(d.clone());
                }
            }
            Ok((Some(TensorType::new(x.dtype, out)), None))
        }
        Op::Flatten { axis } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            let r = x.rank() as i64;
            if *axis < -r || *axis > r {
                return Err(format!("axis {axis} is out of range for rank {r}"));
            }
            let axis = if *axis < 0 {
                (axis + r) as usize
            } else {
                *axis as usize
            };
            let (Some(a), Some(b)) = (product(&x.shape[..axis]), product(&x.shape[axis..])) else {
                return Ok((None, None));
            };
            Ok((Some(TensorType::new(x.dtype, vec![a, b])), None))
        }
        Op::Reshape { allowzero } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            if let Some(s) = need(t, 1) {
                int_vector(s, "shape")?;
            }
            let Some(shape) = val(v, 1) else {
                return Ok((None, None));
            };
            let out = reshape_dims(&x.shape, &shape.elems, *allowzero)?;
            let value = match val(v, 0) {
                Some(xv) if out.as_ref().is_some_and(|o| o.len() <= 1) => Some(Value {
                    scalar: out.as_ref().is_some_and(|o| o.is_empty()),
                    elems: xv.elems.clone(),
                }),
                _ => None,
            };
            Ok((out.map(|o| TensorType::new(x.dtype, o)), value))
        }
        Op::Pad { .. } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            let Some(pads) = val(v, 1).and_then(Value::ints) else {
                return Ok((None, None));
            };
            let axes: Vec<usize> = match t.get(3).copied().flatten() {
                Some(_) => match val(v, 3).and_then(Value::ints) {
                    Some(a) => a
                        .into_iter()
                        .map(|a| norm_axis(a, x.rank()))
                        .collect::<R<_>>()?,
                    None => return Ok((None, None)),
                },
                None => (0..x.rank()).collect(),
            };
            if pads.len() != 2 * axes.len() {
                return Err(format!(
                    "pads has {} entries, expected {} (2 per padded axis)",
                    pads.len(),
                    2 * axes.len()
                ));
            }
            let mut out = x.shape.clone();
            for (k, &a) in axes.iter().enumerate() {
                let (b, e) = (pads[k], pads[k + axes.len()]);
                if b == 0 && e == 0 {
                    continue;
                }
                let Some(d) = out[a].fixed() else {
                    return Ok((None, None));
                };
                let n = d as i64 + b + e;
                if n < 0 {
                    return Err(format!(
                        "negative pads {b},{e} remove more than the {d} elements of axis {a}"
                    ));
                }
                out[a] = Dim::Fixed(n as usize);
            }
            Ok((Some(TensorType::new(x.dtype, out)), None))
        }
        Op::Slice => slice(t, v),
        Op::Shape { start, end } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            let (s, e) = shape_range(x.rank(), *start, *end);
            let elems: Vec<SymInt> = x.shape[s..e].iter().map(SymInt::from).collect();
            Ok((
                Some(TensorType::fixed(DType::I64, &[elems.len()])),
                Some(Value::vec(elems)),
            ))
        }
        Op::Gather { axis } => {
            let (Some(x), Some(i)) = (need(t, 0), need(t, 1)) else {
                return Ok((None, None));
            };
            if !i.dtype.is_int() {
                return Err(format!("indices must be integers, got {}", i.dtype));
            }
            if x.rank() == 0 {
                return Err("cannot gather from a scalar".into());
            }
            let a = norm_axis(*axis, x.rank())?;
            let mut out = x.shape[..a].to_vec();
            out.extend(i.shape.iter().cloned());
            out.extend(x.shape[a + 1..].iter().cloned());
            let value = match (val(v, 0), val(v, 1).and_then(Value::ints)) {
                (Some(xv), Some(idx)) if a == 0 && !xv.scalar => {
                    let n = xv.elems.len() as i64;
                    idx.iter()
                        .map(|&k| {
                            let k = if k < 0 { k + n } else { k };
                            if k < 0 || k >= n {
                                Err(format!("index {k} is out of range for {n} elements"))
                            } else {
                                Ok(xv.elems[k as usize].clone())
                            }
                        })
                        .collect::<R<Vec<_>>>()?
                        .into()
                }
                _ => None,
            };
            let value = value.map(|elems: Vec<SymInt>| Value {
                scalar: i.rank() == 0,
                elems,
            });
            Ok((Some(TensorType::new(x.dtype, out)), value))
        }
        Op::Unsqueeze => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            let Some(axes) = val(v, 1).and_then(Value::ints) else {
                return Ok((None, None));
            };
            let r = x.rank() + axes.len();
            let mut axes: Vec<usize> = axes
                .into_iter()
                .map(|a| norm_axis(a, r))
                .collect::<R<_>>()?;
            axes.sort();
            if axes.windows(2).any(|w| w[0] == w[1]) {
                return Err("axes has duplicates".into());
            }
            let mut out = Vec::with_capacity(r);
            let mut src = x.shape.iter();
            for i in 0..r {
                if axes.contains(&i) {
                    out.push(Dim::Fixed(1));
                } else {
                    out.push(src.next().cloned().unwrap_or(Dim::Fixed(1)));
                }
            }
            let value = val(v, 0)
                .filter(|xv| xv.scalar && r == 1)
                .map(|xv| Value::vec(xv.elems.clone()));
            Ok((Some(TensorType::new(x.dtype, out)), value))
        }
        Op::Squeeze => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            let given = match val(v, 1).and_then(Value::ints) {
                Some(a) => Some(a),
                None if need(t, 1).is_some() => return Ok((None, None)),
                None => None,
            };
            // An empty axes list squeezes every size-1 dimension, as no list does (onnxruntime's reading).
            let axes: Vec<usize> = if let Some(a) = given.filter(|a| !a.is_empty()) {
                a.into_iter()
                    .map(|a| norm_axis(a, x.rank()))
                    .collect::<R<_>>()?
            } else {
                let mut axes = Vec::new();
                for (i, d) in x.shape.iter().enumerate() {
                    match d {
                        Dim::Fixed(1) => axes.push(i),
                        Dim::Fixed(_) => {}
                        Dim::Sym(_) => return Ok((None, None)),
                    }
                }
                axes
            };
            let mut out = Vec::new();
            for (i, d) in x.shape.iter().enumerate() {
                if axes.contains(&i) {
                    if *d != Dim::Fixed(1) {
                        return Err(format!("cannot squeeze axis {i} of {x}: its size is not 1"));
                    }
                } else {
                    out.push(d.clone());
                }
            }
            let value = val(v, 0)
                .filter(|xv| out.is_empty() && xv.elems.len() == 1)
                .map(|xv| Value {
                    scalar: true,
                    elems: xv.elems.clone(),
                });
            Ok((Some(TensorType::new(x.dtype, out)), value))
        }
        Op::Concat { axis } => {
            let types: Vec<&TensorType> = match t.iter().copied().collect::<Option<Vec<_>>>() {
                Some(ts) if !ts.is_empty() => ts,
                _ => return Ok((None, None)),
            };
            let first = types[0];
            let a = norm_axis(*axis, first.rank())?;
            let mut total: Option<usize> = Some(0);
            for ty in &types {
                same_dtype(first, ty, "Concat inputs")?;
                if ty.rank() != first.rank() {
                    return Err(format!("inputs have different ranks: {first} and {ty}"));
                }
                for i in 0..first.rank() {
                    if i != a
                        && ty.shape[i] != first.shape[i]
                        && ty.shape[i].fixed().is_some()
                        && first.shape[i].fixed().is_some()
                    {
                        return Err(format!("inputs {first} and {ty} differ outside axis {a}"));
                    }
                }
                total = match (total, ty.shape[a].fixed()) {
                    (Some(s), Some(d)) => Some(s + d),
                    _ => None,
                };
            }
            let Some(total) = total else {
                return Ok((None, None));
            };
            let mut out = first.shape.clone();
            out[a] = Dim::Fixed(total);
            let value = if first.rank() == 1 {
                v.iter()
                    .map(|x| x.map(|x| x.elems.clone()))
                    .collect::<Option<Vec<_>>>()
                    .map(|parts| Value::vec(parts.concat()))
            } else {
                None
            };
            Ok((Some(TensorType::new(first.dtype, out)), value))
        }
        Op::ConstantOfShape { value } => {
            if let Some(s) = need(t, 0) {
                int_vector(s, "shape")?;
            }
            let Some(shape) = val(v, 0) else {
                return Ok((None, None));
            };
            let dims = shape
                .elems
                .iter()
                .map(|e| match e {
                    SymInt::Int(i) if *i >= 0 => Ok(Dim::Fixed(*i as usize)),
                    SymInt::Int(i) => Err(format!("negative dimension {i}")),
                    SymInt::Sym(s) => Ok(Dim::Sym(s.clone())),
                })
                .collect::<R<Vec<_>>>()?;
            let known = match (
                value.as_i64s(),
                dims.iter().map(Dim::fixed).collect::<Option<Vec<_>>>(),
            ) {
                (Some(x), Some(d)) if d.len() <= 1 && d.iter().product::<usize>() <= 64 => {
                    Some(Value {
                        scalar: d.is_empty(),
                        elems: vec![SymInt::Int(x[0]); d.iter().product()],
                    })
                }
                _ => None,
            };
            Ok((Some(TensorType::new(value.dtype(), dims)), known))
        }
        Op::Cast { to } => {
            let value = if to.is_int() {
                val(v, 0).cloned()
            } else {
                None
            };
            Ok((
                need(t, 0).map(|x| TensorType::new(*to, x.shape.clone())),
                value,
            ))
        }
        Op::CastLike => {
            let (Some(x), Some(like)) = (need(t, 0), need(t, 1)) else {
                return Ok((None, None));
            };
            let value = if like.dtype.is_int() {
                val(v, 0).cloned()
            } else {
                None
            };
            Ok((Some(TensorType::new(like.dtype, x.shape.clone())), value))
        }
        Op::Transpose { perm } => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            let perm: Vec<usize> = perm
                .clone()
                .unwrap_or_else(|| (0..x.rank()).rev().collect());
            let mut sorted = perm.clone();
            sorted.sort();
            if sorted != (0..x.rank()).collect::<Vec<_>>() {
                return Err(format!(
                    "perm {perm:?} is not a permutation of the {} axes of {x}",
                    x.rank()
                ));
            }
            Ok((
                Some(TensorType::new(
                    x.dtype,
                    perm.iter().map(|&p| x.shape[p].clone()).collect(),
                )),
                None,
            ))
        }
        Op::Range => {
            let Some(s) = need(t, 0) else {
                return Ok((None, None));
            };
            let vals: Option<Vec<i64>> = (0..3)
                .map(|k| {
                    val(v, k)
                        .and_then(Value::ints)
                        .and_then(|x| x.first().copied())
                })
                .collect();
            let Some(vals) = vals else {
                return Ok((None, None));
            };
            let (start, limit, delta) = (vals[0], vals[1], vals[2]);
            if delta == 0 {
                return Err("delta is zero".into());
            }
            let n = ((limit as i128 - start as i128) as f64 / delta as f64)
                .ceil()
                .max(0.0) as i64;
            if n > 1 << 20 {
                return Err(format!(
                    "the range has {n} elements, more than resnetc accepts for shape arithmetic"
                ));
            }
            let elems: Vec<SymInt> = (0..n)
                .map(|k| SymInt::Int(start.wrapping_add(k.wrapping_mul(delta))))
                .collect();
            Ok((
                Some(TensorType::fixed(s.dtype, &[elems.len()])),
                Some(Value::vec(elems)),
            ))
        }
        Op::Expand => {
            let Some(x) = need(t, 0) else {
                return Ok((None, None));
            };
            let Some(shape) = val(v, 1) else {
                return Ok((None, None));
            };
            let dims: Vec<Dim> = shape
                .elems
                .iter()
                .map(|e| match e {
                    SymInt::Int(i) if *i >= 0 => Ok(Dim::Fixed(*i as usize)),
                    SymInt::Int(i) => Err(format!("negative dimension {i} in the shape")),
                    SymInt::Sym(s) => Ok(Dim::Sym(s.clone())),
                })
                .collect::<R<_>>()?;
            let out = broadcast(&x.shape, &dims)?;
            Ok((out.map(|o| TensorType::new(x.dtype, o)), None))
        }
    }
}

fn float_only(x: &TensorType, what: &str) -> R<()> {
    if !x.dtype.is_float() {
        return Err(format!("{what} needs a float tensor, got {x}"));
    }
    Ok(())
}

fn int_vector(s: &TensorType, what: &str) -> R<()> {
    if !s.dtype.is_int() || s.rank() != 1 {
        return Err(format!("{what} must be a 1-D integer tensor, got {s}"));
    }
    Ok(())
}

fn const_value(c: &Tensor) -> Option<Value> {
    if c.rank() > 1 || c.len() > 64 {
        return None;
    }
    let ints = c.as_i64s()?;
    Some(Value {
        scalar: c.rank() == 0,
        elems: ints.into_iter().map(SymInt::Int).collect(),
    })
}

/// Product of dimensions: fixed if all are, the symbol itself if exactly one symbol and the rest are 1.
fn product(dims: &[Dim]) -> Option<Dim> {
    let mut n = 1usize;
    let mut sym = None;
    for d in dims {
        match d {
            Dim::Fixed(k) => n = n.checked_mul(*k)?,
            Dim::Sym(s) if sym.is_none() => sym = Some(s.clone()),
            Dim::Sym(_) => return None,
        }
    }
    match sym {
        None => Some(Dim::Fixed(n)),
        Some(s) if n == 1 => Some(Dim::Sym(s)),
        Some(_) => None,
    }
}

/// Output dims of a Reshape; `Ok(None)` where symbols make the answer unknowable.
fn reshape_dims(input: &[Dim], spec: &[SymInt], allowzero: bool) -> R<Option<Vec<Dim>>> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, s) in spec.iter().enumerate() {
        match s {
            SymInt::Int(-1) => {
                if infer_at.replace(i).is_some() {
                    return Err("shape has more than one -1".into());
                }
                out.push(None);
            }
            SymInt::Int(0) if !allowzero => match input.get(i) {
                Some(d) => out.push(Some(d.clone())),
                None => {
                    return Err(format!(
                        "shape entry {i} is 0 (copy) but the input has rank {}",
                        input.len()
                    ))
                }
            },
            SymInt::Int(k) if *k >= 0 => out.push(Some(Dim::Fixed(*k as usize))),
            SymInt::Int(k) => return Err(format!("shape entry {i} is {k}")),
            SymInt::Sym(s) => out.push(Some(Dim::Sym(s.clone()))),
        }
    }
    // Split both sides into a fixed product and a multiset of symbols.
    let split = |dims: &mut dyn Iterator<Item = &Dim>| -> Option<(usize, Vec<String>)> {
        let mut n = 1usize;
        let mut syms = Vec::new();
        for d in dims {
            match d {
                Dim::Fixed(k) => n = n.checked_mul(*k)?,
                Dim::Sym(s) => syms.push(s.clone()),
            }
        }
        syms.sort();
        Some((n, syms))
    };
    let Some((in_n, in_syms)) = split(&mut input.iter()) else {
        return Err("input has too many elements".into());
    };
    let Some((out_n, out_syms)) = split(&mut out.iter().flatten()) else {
        return Err("shape has too many elements".into());
    };
    let mut rest_syms = in_syms.clone();
    for s in &out_syms {
        match rest_syms.iter().position(|r| r == s) {
            Some(p) => {
                rest_syms.remove(p);
            }
            None => return Ok(None),
        }
    }
    match infer_at {
        Some(at) => {
            if out_n == 0 {
                return Err("cannot infer -1 next to a zero-sized dimension".into());
            }
            if in_n % out_n != 0 {
                return Err(format!("cannot reshape {} elements into {:?}", in_n, spec));
            }
            let q = in_n / out_n;
            out[at] = Some(match rest_syms.as_slice() {
                [] => Dim::Fixed(q),
                [s] if q == 1 => Dim::Sym(s.clone()),
                _ => return Ok(None),
            });
        }
        None => {
            if !rest_syms.is_empty() {
                return Ok(None);
            }
            if in_n != out_n {
                return Err(format!(
                    "cannot reshape {} into {:?}: element counts differ ({in_n} vs {out_n})",
                    crate::shape::fmt_shape(input),
                    spec
                ));
            }
        }
    }
    Ok(Some(out.into_iter().map(|d| d.expect("filled")).collect()))
}

/// The `start..end` range of `Shape` (opset 15), clamped like ONNX does.
pub fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let s = clamp(start);
    let e = end.map_or(rank, clamp);
    (s, e.max(s))
}

/// ONNX Slice semantics on one axis of length `len`: returns (start, step, count). Computed in i128
/// so hostile starts, ends and steps cannot overflow.
pub fn slice_axis(len: i64, start: i64, end: i64, step: i64) -> (i64, i64, usize) {
    if len <= 0 || step == 0 {
        return (0, step, 0);
    }
    let (len, start, end, step) = (len as i128, start as i128, end as i128, step as i128);
    let wrap = |x: i128| if x < 0 { x + len } else { x };
    let (s, e) = if step > 0 {
        (wrap(start).clamp(0, len), wrap(end).clamp(0, len))
    } else {
        (wrap(start).clamp(0, len - 1), wrap(end).clamp(-1, len - 1))
    };
    let count = if step > 0 {
        if e > s {
            (e - s + step - 1) / step
        } else {
            0
        }
    } else if s > e {
        (s - e + (-step) - 1) / (-step)
    } else {
        0
    };
    (s as i64, step as i64, count as usize)
}

fn slice(t: &[Option<&TensorType>], v: &[Option<&Value>]) -> R<Inferred> {
    let Some(x) = need(t, 0) else {
        return Ok((None, None));
    };
    let ints = |slot: usize| val(v, slot).and_then(Value::ints);
    let (Some(starts), Some(ends)) = (ints(1), ints(2)) else {
        return Ok((None, None));
    };
    if starts.len() != ends.len() {
        return Err(format!(
            "starts has {} entries but ends has {}",
            starts.len(),
            ends.len()
        ));
    }
    let axes: Vec<usize> = if need(t, 3).is_some() {
        match ints(3) {
            Some(a) => a
                .into_iter()
                .map(|a| norm_axis(a, x.rank()))
                .collect::<R<_>>()?,
            None => return Ok((None, None)),
        }
    } else {
        (0..starts.len()).collect()
    };
    let steps: Vec<i64> = if need(t, 4).is_some() {
        match ints(4) {
            Some(s) => s,
            None => return Ok((None, None)),
        }
    } else {
        vec![1; starts.len()]
    };
    if axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps must have the same length".into());
    }
    if steps.contains(&0) {
        return Err("a step is zero".into());
    }
    if axes
        .iter()
        .any(|&a| axes.iter().filter(|&&b| b == a).count() > 1)
    {
        return Err("axes has duplicates".into());
    }
    let mut out = x.shape.clone();
    let mut value_range = None;
    for k in 0..axes.len() {
        let a = axes[k];
        match &x.shape[a] {
            Dim::Fixed(len) => {
                let (s, step, n) = slice_axis(*len as i64, starts[k], ends[k], steps[k]);
                out[a] = Dim::Fixed(n);
                if a == 0 {
                    value_range = Some((s, step, n));
                }
            }
            Dim::Sym(_) => {
                // A full-range slice keeps the symbol; anything else is unknowable.
                if !(starts[k] == 0 && ends[k] >= i32::MAX as i64 && steps[k] == 1) {
                    return Ok((None, None));
                }
            }
        }
    }
    let value = match (val(v, 0), value_range) {
        (Some(xv), Some((s, step, n))) if x.rank() == 1 => Some(Value::vec(
            (0..n as i64)
                .map(|i| xv.elems[(s + i * step) as usize].clone())
                .collect(),
        )),
        (Some(xv), None) if x.rank() == 1 => Some(xv.clone()),
        _ => None,
    };
    Ok((Some(TensorType::new(x.dtype, out)), value))
}

fn conv(c: &crate::op::Conv, t: &[Option<&TensorType>]) -> R<Inferred> {
    let (Some(x), Some(w)) = (need(t, 0), need(t, 1)) else {
        return Ok((None, None));
    };
    float_only(x, "Conv input")?;
    same_dtype(x, w, "input and weights")?;
    if x.rank() != 4 || w.rank() != 4 {
        return Err(format!(
            "only 2-D convolution over NCHW is supported; input is {x}, weights {w}"
        ));
    }
    let Some(wd) = w.concrete() else {
        return Err(format!("weights must have a fixed shape, got {w}"));
    };
    if c.group == 0 || wd[0] % c.group != 0 {
        return Err(format!(
            "group {} does not divide the {} output channels",
            c.group, wd[0]
        ));
    }
    if [wd[2], wd[3]] != c.kernel {
        return Err(format!(
            "kernel_shape {:?} disagrees with the weights {w}",
            c.kernel
        ));
    }
    if let Some(ch) = x.shape[1].fixed() {
        if ch != wd[1] * c.group {
            return Err(format!(
                "input has {ch} channels but the weights {w} with group {} expect {}",
                c.group,
                wd[1] * c.group
            ));
        }
    }
    if let Some(b) = need(t, 2) {
        if b.shape != [Dim::Fixed(wd[0])] {
            return Err(format!("bias must be [{}], got {b}", wd[0]));
        }
    }
    let (Some(h), Some(wi)) = (x.shape[2].fixed(), x.shape[3].fixed()) else {
        return Ok((None, None));
    };
    let win = c.window([h, wi])?;
    let mut out = vec![x.shape[0].clone(), Dim::Fixed(wd[0])];
    out.extend(win.out.map(Dim::Fixed));
    Ok((Some(TensorType::new(x.dtype, out)), None))
}

fn binary(op: BinOp, t: &[Option<&TensorType>], v: &[Option<&Value>]) -> R<Inferred> {
    let (Some(a), Some(b)) = (need(t, 0), need(t, 1)) else {
        return Ok((None, None));
    };
    same_dtype(a, b, "operands")?;
    let shape = broadcast(&a.shape, &b.shape)?;
    let value = match (
        val(v, 0).and_then(Value::ints),
        val(v, 1).and_then(Value::ints),
    ) {
        (Some(x), Some(y)) if x.len() == y.len() || x.len() == 1 || y.len() == 1 => {
            let n = x.len().max(y.len());
            let at = |z: &Vec<i64>, i: usize| if z.len() == 1 { z[0] } else { z[i] };
            let mut elems = Vec::with_capacity(n);
            for i in 0..n {
                let (p, q) = (at(&x, i), at(&y, i));
                let r = match op {
                    BinOp::Add => p.checked_add(q),
                    BinOp::Sub => p.checked_sub(q),
                    BinOp::Mul => p.checked_mul(q),
                    BinOp::Div => p.checked_div(q),
                };
                match r {
                    Some(r) => elems.push(SymInt::Int(r)),
                    None => {
                        return Err(format!(
                            "integer {op:?} of {p} and {q} overflows or divides by zero"
                        ))
                    }
                }
            }
            Some(Value {
                scalar: val(v, 0).is_some_and(|x| x.scalar) && val(v, 1).is_some_and(|y| y.scalar),
                elems,
            })
        }
        _ => None,
    };
    let value = if a.dtype.is_int() { value } else { None };
    Ok((shape.map(|s| TensorType::new(a.dtype, s)), value))
}
