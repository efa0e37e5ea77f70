//! resnetc: a compiler toolchain for CIFAR ResNets exported from PyTorch to ONNX.
//!
//! Load a model (ONNX, optimized on load, or a compiled `.rnc`), open a [`Session`] on a
//! [`Device`], run batches of NCHW images; or [`compile`] it into an artifact that loads without
//! packing or compiling anything again.
//!
//! ```
//! # fn main() -> resnetc::Result<()> {
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models/r20_a_ts17_dynamic.onnx");
//! use resnetc::ndarray::Array4;
//!
//! let model = resnetc::Model::load(path)?;                 // ONNX or .rnc; optimized at the default level
//! let mut session = model.session(resnetc::Device::Cpu)?;  // plans once; reuse it for every call
//! let images = Array4::<f32>::zeros((8, 3, 32, 32));       // NCHW, preprocessed as in training
//! let logits: resnetc::ndarray::Array2<f32> = session.run(images.view())?;
//! assert_eq!(logits.dim(), (8, 10));
//! # Ok(()) }
//! ```
//!
//! Errors are one [`Error`] type whose [`ErrorKind`] tells an invalid or unsupported model, an
//! invalid input (a wrong shape, a channels-last array), the environment (files, NVRTC, the GPU
//! driver) and a failed check apart.
//!
//! The layers underneath are crates of their own and reachable here: the IR ([`ir`]), the ONNX
//! importer and exporter ([`onnx`]), the reference executor ([`reference`]), the backends
//! ([`cpu`], [`cuda`]).
//!
//! [`zoo()`] builds He et al.'s CIFAR ResNets of any depth with seeded random weights, for tests and
//! benchmarks that need a model without a file.

pub mod about;
mod artifact;
mod bench;
pub mod cifar;
pub mod demo;
mod error;
pub mod escape;
pub mod eval;
mod export;
pub mod fsio;
pub mod images;
mod input;
mod model;
pub mod npy;
pub mod picture;
pub mod schema;
mod session;
mod stats;
pub mod zoo;

pub use artifact::{compile, compile_with, extract_cuda, Artifact, CompileOptions, Target};
pub use bench::{
    bench, BenchOptions, BenchReport, CpuBench, CudaBench, MAX_BENCH_BATCH, MAX_BENCH_ITERS,
    NOISY_P90_OVER_MEDIAN,
};
pub use error::{Context, Error, ErrorKind, Result};
pub use export::{export_onnx, export_onnx_bytes, ExportOptions};
pub use input::{check_finite, Port};
pub use model::{check_pass, passes, LoadOptions, Model};
pub use schema::{ExtractReport, WroteReport};
pub use session::{cpu_threads, Device, Session, SessionOptions, Winograd};
pub use stats::{top1, ArtifactInfo, InspectReport, ModelStats, ValueSummary};
pub use zoo::{zoo, zoo_model, Shortcut, ZooError, ZooSpec};

pub use ndarray;
pub use resnetc_artifact as rnc;
pub use resnetc_cpu as cpu;
pub use resnetc_cuda as cuda;
pub use resnetc_ir as ir;
pub use resnetc_onnx as onnx;
pub use resnetc_passes as optimizer;
pub use resnetc_reference as reference;

/// The version of every JSON report (`--json`, the Python package's dicts).
pub const SCHEMA_VERSION: u32 = 1;
