//! Shapes with symbolic dimensions.
//!
//! CifarResNet exports are static except, optionally, in the batch dimension, which ONNX names with a
//! `dim_param` (`"batch_size"`, `"s0"`, …). A [`Dim`] is either a known size or such a symbol; symbols
//! carry no arithmetic, which is all these models need: every other size is fixed.

use std::fmt;

use crate::tensor::DType;

/// One dimension: a known size or a named symbol (the batch).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    Sym(String),
}

impl Dim {
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Fixed(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// A shape of known rank.
pub type Shape = Vec<Dim>;

/// Writes a shape as `[N,3,32,32]`.
pub fn fmt_shape(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// Element type and shape of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType { dtype, shape }
    }

    pub fn fixed(dtype: DType, shape: &[usize]) -> TensorType {
        TensorType {
            dtype,
            shape: shape.iter().map(|&d| Dim::Fixed(d)).collect(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The dimensions after the first (the batch), if all are fixed.
    pub fn concrete_tail(&self) -> Option<Vec<usize>> {
        self.shape.iter().skip(1).map(Dim::fixed).collect()
    }

    /// The concrete shape, if no dimension is symbolic.
    pub fn concrete(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(Dim::fixed).collect()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, fmt_shape(&self.shape))
    }
}
