//! What can go wrong: a graph the backend cannot plan ([`CpuError::Unsupported`] and friends, at
//! compile time — callers then fall back to the reference executor), or a run given buffers of the
//! wrong size.

use thiserror::Error;

/// Why a graph could not be compiled for the CPU backend, or a run was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CpuError {
    /// A node the CPU backend has no kernel for (op, attribute or operand form); the reference
    /// executor can still run the graph.
    #[error("node '{node}' ({op}): the CPU backend cannot run it: {reason}; run the graph on the reference executor instead")]
    Unsupported {
        node: String,
        op: &'static str,
        reason: String,
    },
    /// The validator left a value's type unknown, or its batch dimension differs from the input's.
    #[error("node '{node}' ({op}): {reason}")]
    Shape {
        node: String,
        op: &'static str,
        reason: String,
    },
    /// The graph's interface: the plan needs at least one input and one output, all float32 NCHW.
    #[error("the graph's {what}: {reason}")]
    Interface { what: String, reason: String },
    /// The kernel set asked for is not available on this machine.
    #[error("the {isa} kernels cannot run on this machine ({reason})")]
    IsaUnavailable {
        isa: &'static str,
        reason: &'static str,
    },
    /// A buffer given to `run` has the wrong length for the batch.
    #[error("{what} has {got} elements, but batch {batch} needs {expected}")]
    BufferSize {
        what: String,
        got: usize,
        expected: usize,
        batch: usize,
    },
    /// `run` was given the wrong number of inputs or outputs.
    #[error("the plan takes {expected} {what}, got {got}")]
    Count {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Why a stored plan ([`crate::CpuPlan::from_bytes`], the CPU section of a `.rnc` artifact) was
/// refused. A plan that loads has passed every check the executor and kernels rely on, so a damaged
/// or hostile file is an error here, never a panic or an out-of-bounds read later.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The bytes are not an encoded plan (truncated, or not protobuf).
    #[error(
        "the stored CPU plan cannot be decoded ({0}); recompile the model with `resnetc compile`"
    )]
    Decode(String),
    /// The plan was written in another version of the plan format.
    #[error("the stored CPU plan has format version {found}, this resnetc reads version {}; recompile the model with `resnetc compile`", crate::PLAN_VERSION)]
    Version { found: u32 },
    /// A field is missing, out of range or inconsistent with the rest of the plan; `at` names the
    /// step (with its node), buffer, input or output.
    #[error("the stored CPU plan is invalid: {at}: {reason}; recompile the model with `resnetc compile`")]
    Invalid { at: String, reason: String },
    /// The kernel set asked for cannot run here.
    #[error(transparent)]
    Isa(CpuError),
}
