//! Tensors: dense, row-major, cheap to clone (shared storage).
//!
//! The IR needs only a handful of element types: `f32` for activations and weights, `i64`/`i32` for the
//! shape arithmetic PyTorch's exporters emit, `bool` for the odd comparison, and `f64` because some
//! exports cast through it. Anything else is rejected at import.

use std::fmt;

use ndarray::{ArcArray, ArrayD, IxDyn};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    I32,
    I64,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    pub fn size_of(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense tensor of one of the [`DType`]s.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArcArray<f32, IxDyn>),
    F64(ArcArray<f64, IxDyn>),
    I32(ArcArray<i32, IxDyn>),
    I64(ArcArray<i64, IxDyn>),
    Bool(ArcArray<bool, IxDyn>),
}

macro_rules! each_tensor {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => $body,
            Tensor::F64($a) => $body,
            Tensor::I32($a) => $body,
            Tensor::I64($a) => $body,
            Tensor::Bool($a) => $body,
        }
    };
}
pub(crate) use each_tensor;

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I32(_) => DType::I32,
            Tensor::I64(_) => DType::I64,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        each_tensor!(self, a => a.shape())
    }

    pub fn len(&self) -> usize {
        each_tensor!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// Size of the payload in bytes.
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype().size_of()
    }

    pub fn f32(a: ArrayD<f32>) -> Tensor {
        Tensor::F32(a.into_shared())
    }

    pub fn i64(a: ArrayD<i64>) -> Tensor {
        Tensor::I64(a.into_shared())
    }

    /// A 1-D `i64` tensor.
    pub fn i64_vec(v: Vec<i64>) -> Tensor {
        let n = v.len();
        Tensor::I64(ArcArray::from_shape_vec(IxDyn(&[n]), v).expect("length matches"))
    }

    /// A rank-0 `f32` tensor.
    pub fn f32_scalar(v: f32) -> Tensor {
        Tensor::F32(ArcArray::from_elem(IxDyn(&[]), v))
    }

    /// All elements as `i64` if this is an integer tensor (any rank, row-major order).
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        match self {
            Tensor::I64(a) => Some(a.iter().copied().collect()),
            Tensor::I32(a) => Some(a.iter().map(|&x| x as i64).collect()),
            _ => None,
        }
    }

    /// All elements as `f64` (any dtype; bools become 0/1).
    pub fn to_f64s(&self) -> Vec<f64> {
        match self {
            Tensor::F32(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::F64(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::I64(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::Bool(a) => a.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    pub fn as_f32(&self) -> Option<&ArcArray<f32, IxDyn>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    /// Little-endian bytes of the payload, row-major. Used for hashing and serialization.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        match self {
            Tensor::F32(a) => a
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Tensor::F64(a) => a
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Tensor::I32(a) => a
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Tensor::I64(a) => a
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Tensor::Bool(a) => a.iter().for_each(|&x| out.push(x as u8)),
        }
        out
    }

    /// A stable 64-bit FNV-1a digest of dtype, shape and payload, for dumps and artifact checks.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write(self.dtype().name().as_bytes());
        for &d in self.shape() {
            h.write(&(d as u64).to_le_bytes());
        }
        h.write(&self.to_le_bytes());
        h.finish()
    }
}

/// FNV-1a, 64 bit: tiny, deterministic across platforms and releases (unlike `std`'s hasher).
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Fnv64 {
    pub fn new() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}
