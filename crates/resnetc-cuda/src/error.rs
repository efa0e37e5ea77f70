//! The CUDA backend's errors: one enum for code generation, NVRTC and the driver.
//!
//! A graph the generator cannot lower is the model's problem ([`CudaError::Unsupported`]) and names
//! the node; a missing NVRTC or driver is the machine's ([`CudaError::NvrtcNotFound`],
//! [`CudaError::NoDriver`]) and says what to install; a failed NVRTC compilation of generated source
//! is resnetc's own bug ([`CudaError::Compile`]) and carries the log.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CudaError {
    /// The graph has something the CUDA lowering does not handle.
    #[error("node '{node}' ({op}): {reason}; the CUDA backend lowers the fused graph of opt level 3 (FusedConv, GlobalAveragePool → Flatten → Gemm), run `resnetc compile --target cpu` or the reference executor instead")]
    Unsupported {
        node: String,
        op: &'static str,
        reason: String,
    },
    /// The graph's inputs or outputs are not what the backend needs (one NCHW float32 input, one output).
    #[error("{0}")]
    Interface(String),
    /// The validator left a type unknown: the graph was not canonicalized or validated.
    #[error(
        "node '{node}': the type of its {what} is unknown; lower a validated, canonicalized graph"
    )]
    UnknownType { node: String, what: String },
    /// A batch size that the program cannot run.
    #[error("{0}")]
    Batch(String),
    /// An architecture name NVRTC would not understand.
    #[error("'{0}' is not a CUDA architecture; expected sm_XX (cubin and PTX) or compute_XX (PTX only), e.g. sm_80")]
    BadArch(String),
    /// No NVRTC library could be loaded.
    #[error("NVRTC (libnvrtc.so) was not found; tried: {tried}. Install it with `python3 -m pip install nvidia-cuda-nvrtc` (or a CUDA toolkit) and/or point RESNETC_NVRTC at the library, e.g. `eval \"$(bash scripts/ci-nvrtc.sh)\"`")]
    NvrtcNotFound { tried: String },
    /// An NVRTC call failed for a reason other than the source.
    #[error("NVRTC call {call} failed: {message}")]
    Nvrtc { call: &'static str, message: String },
    /// NVRTC rejected the generated source: a bug in resnetc's code generator.
    #[error(
        "internal error: NVRTC could not compile the generated CUDA source for {arch}; please report this with the model. Log:\n{log}"
    )]
    Compile { arch: String, log: String },
    /// The CUDA driver library (libcuda.so.1) could not be loaded.
    #[error("no CUDA driver: {0}. The CUDA backend needs an NVIDIA GPU with its driver installed; use the CPU backend on this machine")]
    NoDriver(String),
    /// The driver loaded but there is no usable device.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A driver API call failed.
    #[error("CUDA driver call {call} failed: {code} ({name}: {message})")]
    Driver {
        call: &'static str,
        code: i32,
        name: String,
        message: String,
    },
    /// None of the compiled images can be loaded on the device.
    #[error(
        "no compiled image for this GPU ({device}, {arch}); compiled: {available}. Recompile with `--target cuda:{arch}` or include PTX"
    )]
    NoImage {
        device: String,
        arch: String,
        available: String,
    },
    /// A launch plan whose parts do not fit together (a damaged or hand-edited artifact): it is
    /// refused before anything reaches the GPU.
    #[error("the CUDA launch plan is inconsistent: {0}; recompile the model")]
    Program(String),
    /// Input data of the wrong size.
    #[error("{0}")]
    Input(String),
}
