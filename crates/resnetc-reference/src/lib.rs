//! The reference executor: a plain interpreter of resnetc's IR on `ndarray`.
//!
//! It is the oracle that every fast path (optimized graphs, CPU kernels, generated CUDA) is tested
//! against, so each op is written to be checked by reading it against the ONNX operator spec, not to
//! be fast. It is still quick enough to run a CIFAR ResNet-56 in a fraction of a second, which is what
//! differential tests need.
//!
//! What it assumes and promises:
//! - **Graphs are validated first.** [`run`] calls [`resnetc_ir::validate()`] and executes in its
//!   canonical order, then checks every computed value against the type the validator inferred, so
//!   a disagreement between the two surfaces as [`ExecError::TypeMismatch`] instead of a wrong answer.
//! - **ONNX semantics as the IR normalizes them**: operands that old opsets pass as attributes are
//!   inputs ([`resnetc_ir::Op`] documents each op's slots). Where the spec leaves a choice open, the
//!   module implementing the op says which one it makes and why (usually: what onnxruntime does).
//! - **Arithmetic in the element type, in a fixed order.** `f32` stays `f32`, as in PyTorch and
//!   onnxruntime; every sum runs from zero in an order documented by the op's module, and
//!   Rust never fuses or reorders float operations, so results are bit-for-bit reproducible on every
//!   machine. Other engines sum in other orders, so comparisons need a tolerance; resnetc uses
//!   max(1e-4, 2e-5 * max|logit|).
//! - **Bad data is an error, never a panic.** Shapes can come from data, so every op checks its
//!   inputs and refuses to allocate a result over 2^31 elements ([`EvalError::TooLarge`]).

mod arith;
mod conv;
mod error;
mod eval;
mod exec;
mod fused;
mod layout;
mod pool;
mod util;

pub use error::{EvalError, ExecError, InputProblem, MAX_ELEMENTS};
pub use eval::eval_op;
pub use exec::{run, run_with};
