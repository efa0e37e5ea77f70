//! The CUDA backend of resnetc: fused graph → CUDA C++ → NVRTC → driver API.
//!
//! Three stages, each usable alone:
//! - [`generate`] lowers a validated, fused graph (opt level 3) to a [`CudaProgram`]: CUDA C++ source
//!   with one kernel per layer shape (sizes, strides and the fused epilogue baked in as constants), the
//!   weights as one `f32` blob in the layouts the kernels read, and a launch plan over a few activation
//!   buffers. Pure Rust, no CUDA anywhere; identifiers in the source come from counters, never from
//!   strings in the model.
//! - [`nvrtc::compile`] turns the source into PTX and, for an `sm_XX` architecture, a cubin, through
//!   NVRTC loaded at run time (`RESNETC_NVRTC`, else the library path, else the `nvidia-cuda-nvrtc`
//!   pip wheel).
//! - [`CudaSession`] loads a compiled image through the driver API (libcuda, also loaded at run time),
//!   uploads the weights and runs the plan.
//!
//! Nothing links against CUDA: a machine without it builds the crate and runs everything up to the
//! session, which then fails with [`CudaError::NoDriver`].
//!
//! The lowering treats images independently (every op it accepts does), so a program generated
//! without a fixed batch runs any batch; with a fixed batch the kernels are specialised for it.

mod codegen;
mod driver;
mod error;
pub mod nvrtc;
mod plan;
mod serial;
mod session;

pub use codegen::{generate, generate_with, GenOptions};
pub use error::CudaError;
pub use nvrtc::{compile, compile_archs, Compiled, DEFAULT_ARCHS};
pub use plan::{Arg, BufferDesc, CudaProgram, IoDesc, Launch, Step, Variant};
pub use serial::{decode_program, encode_program, proto, LAUNCH_PLAN_VERSION};
pub use session::{CudaSession, DeviceInfo};

/// The CUDA driver library this process would use, loaded and initialised: its path, or why
/// there is none (`resnetc --version` reports it).
pub fn driver_path() -> Result<String, CudaError> {
    driver::shared().map(|d| d.path.clone())
}

/// A loader error with its causes (libloading's own message is only "dlopen failed").
pub(crate) fn dl_error(e: &libloading::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
