//! The host side of a generated program: buffers, weights and the steps that launch kernels.
//!
//! A [`CudaProgram`] is plain data (a `.rnc` artifact stores it as `schemas/rnc_cuda.proto`, see
//! `serial.rs`). Activation buffers are sized per image; the host multiplies by the batch. Each
//! [`Step`] runs one kernel, chosen among its [`Variant`]s (tile sizes for small and large
//! batches) by the batch; [`CudaProgram::plan`] resolves the steps for one batch into concrete
//! [`Launch`]es.

use serde::{Deserialize, Serialize};

use crate::CudaError;

/// A generated program: source, launch steps, buffer sizes and weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CudaProgram {
    /// CUDA C++ source for NVRTC (no includes; compiles with `--std=c++17`).
    pub source: String,
    /// The `extern "C" __global__` kernels in `source`, in source order.
    pub kernels: Vec<String>,
    pub steps: Vec<Step>,
    /// Activation buffers; the graph input and output are among them.
    pub buffers: Vec<BufferDesc>,
    pub input: IoDesc,
    pub output: IoDesc,
    /// Every weight the kernels read, at the offsets [`Arg::Weights`] name (multiples of 4 floats).
    pub weights: Vec<f32>,
    /// The batch the kernels were specialised for, or `None` when the batch is a kernel argument.
    pub batch: Option<usize>,
}

/// An activation buffer: `elems_per_image × batch` floats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferDesc {
    pub elems_per_image: usize,
}

/// Where the graph input or output lives, and its per-image shape (without the batch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoDesc {
    pub buffer: usize,
    pub shape: Vec<usize>,
}

impl IoDesc {
    pub fn elems_per_image(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One kernel argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arg {
    /// An activation buffer (its device address).
    Buffer(usize),
    /// The weight blob's device address plus `offset` floats; `len` floats are read from there.
    Weights { offset: usize, len: usize },
    /// A null pointer, for an operand the kernel was generated not to read.
    Null,
    /// The batch, as a 32-bit `int`.
    Batch,
}

/// One layer: a kernel (one of several variants) and its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What the step computes, for messages (numbers only, e.g. `conv 16->32 32x32 k3 s2`).
    pub what: String,
    /// The kernels that can run the step, for decreasing batches: the first whose `min_batch` is at
    /// most the batch is used; the last has `min_batch == 1`.
    pub variants: Vec<Variant>,
    pub args: Vec<Arg>,
}

/// A kernel and its launch geometry: `grid.x = ceil(batch × rows_per_image / rows_per_block)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub kernel: String,
    pub min_batch: usize,
    pub block: u32,
    pub rows_per_image: u64,
    pub rows_per_block: u64,
    pub grid_y: u32,
}

/// A kernel launch, resolved for one batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    pub kernel: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// Dynamic shared memory (the kernels use static shared memory only, so 0).
    pub shared_bytes: u32,
    pub args: Vec<Arg>,
}

/// Grids are limited to 2^31 - 1 blocks in x.
const MAX_GRID_X: u64 = (1 << 31) - 1;

impl CudaProgram {
    /// Checks that the program can run `batch` images.
    pub fn check_batch(&self, batch: usize) -> Result<(), CudaError> {
        if batch == 0 {
            return Err(CudaError::Batch("the batch must be at least 1".into()));
        }
        if let Some(b) = self.batch {
            if b != batch {
                return Err(CudaError::Batch(format!(
                    "the program was compiled for batch {b}, not {batch}; compile without a fixed batch to run any batch"
                )));
            }
        }
        // Kernels index with 32-bit ints within an image and 64-bit across images; keep every
        // buffer within 2^31 elements so per-buffer arithmetic never overflows.
        let widest = self
            .buffers
            .iter()
            .map(|b| b.elems_per_image)
            .max()
            .unwrap_or(0);
        if (widest as u128) * (batch as u128) >= 1 << 31 {
            return Err(CudaError::Batch(format!(
                "batch {batch} needs buffers over 2^31 elements; run it in smaller batches"
            )));
        }
        Ok(())
    }

    /// Checks that the parts fit together: every buffer an argument or the input/output names
    /// exists and holds them, every weight range lies in the blob at a 16-byte boundary (the
    /// kernels read weights as `float4`), every step has variants of kernels the source defines,
    /// the last for batch 1, with a block size a GPU can launch. A generated program always
    /// passes; one read from a file may not, and must not reach the GPU then.
    pub fn check(&self) -> Result<(), CudaError> {
        let bad = |m: String| Err(CudaError::Program(m));
        let buffer = |b: usize, what: &str| -> Result<usize, CudaError> {
            match self.buffers.get(b) {
                Some(d) => Ok(d.elems_per_image),
                None => Err(CudaError::Program(format!(
                    "{what} is buffer {b}, but there are {}",
                    self.buffers.len()
                ))),
            }
        };
        for (io, what) in [(&self.input, "the input"), (&self.output, "the output")] {
            let room = buffer(io.buffer, what)?;
            let need = io
                .shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .unwrap_or(usize::MAX);
            if need > room {
                return bad(format!(
                    "{what} {:?} needs {need} floats per image, its buffer holds {room}",
                    io.shape
                ));
            }
        }
        for s in &self.steps {
            for a in &s.args {
                match *a {
                    Arg::Buffer(b) => {
                        buffer(b, &format!("an argument of '{}'", s.what))?;
                    }
                    Arg::Weights { offset, len } => {
                        if offset % 4 != 0
                            || offset
                                .checked_add(len)
                                .is_none_or(|end| end > self.weights.len())
                        {
                            return bad(format!(
                                "'{}' reads weights {offset}..+{len}, the blob has {} floats (offsets are multiples of 4)",
                                s.what,
                                self.weights.len()
                            ));
                        }
                    }
                    Arg::Null | Arg::Batch => {}
                }
            }
            if s.variants.last().is_none_or(|v| v.min_batch > 1) {
                return bad(format!("'{}' has no kernel for batch 1", s.what));
            }
            for v in &s.variants {
                if !self.kernels.contains(&v.kernel) {
                    return bad(format!(
                        "'{}' launches {}, which the source does not define",
                        s.what, v.kernel
                    ));
                }
                if !(1..=1024).contains(&v.block) || v.grid_y == 0 || v.rows_per_block == 0 {
                    return bad(format!(
                        "'{}' launches {} with {} threads per block, grid y {} and {} rows per block",
                        s.what, v.kernel, v.block, v.grid_y, v.rows_per_block
                    ));
                }
            }
        }
        Ok(())
    }

    /// The launches that run `batch` images, in order.
    pub fn plan(&self, batch: usize) -> Result<Vec<Launch>, CudaError> {
        self.check_batch(batch)?;
        self.steps
            .iter()
            .map(|s| {
                let v = s
                    .variants
                    .iter()
                    .find(|v| v.min_batch <= batch)
                    .or(s.variants.last())
                    .ok_or_else(|| {
                        CudaError::Batch(format!("step '{}' has no kernel variant", s.what))
                    })?;
                let grid_x = (batch as u64 * v.rows_per_image).div_ceil(v.rows_per_block.max(1));
                if grid_x > MAX_GRID_X {
                    return Err(CudaError::Batch(format!(
                        "batch {batch} needs {grid_x} blocks for '{}'; run smaller batches",
                        s.what
                    )));
                }
                Ok(Launch {
                    kernel: v.kernel.clone(),
                    grid: [grid_x as u32, v.grid_y, 1],
                    block: [v.block, 1, 1],
                    shared_bytes: 0,
                    args: s.args.clone(),
                })
            })
            .collect()
    }

    /// Floats in each buffer for `batch` images.
    pub fn buffer_lens(&self, batch: usize) -> Vec<usize> {
        self.buffers
            .iter()
            .map(|b| b.elems_per_image * batch)
            .collect()
    }
}
