//! What can go wrong: one op on bad data ([`EvalError`]), or a whole run ([`ExecError`]).

use resnetc_ir::{DType, TensorType, ValidationError};
use thiserror::Error;

/// Why one op could not be evaluated on the inputs it was given.
///
/// Every message starts with the op's ONNX name, so it reads on its own and after a node label.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum EvalError {
    #[error("{op}: takes at most {max} inputs, got {got}")]
    TooManyInputs {
        op: &'static str,
        got: usize,
        max: usize,
    },
    #[error("{op}: required input {slot} ({name}) is missing")]
    MissingInput {
        op: &'static str,
        slot: usize,
        name: &'static str,
    },
    #[error("{op}: {what} has element type {got}, expected {expected}")]
    DType {
        op: &'static str,
        what: &'static str,
        got: DType,
        expected: String,
    },
    /// The result would be over [`MAX_ELEMENTS`]: refused rather than allocated, since shapes
    /// can come from data (ConstantOfShape, Expand, Range, Pad) and data can be hostile.
    #[error("{op}: the result would have shape {}, more than 2^31 elements", crate::util::dims(.shape))]
    TooLarge { op: &'static str, shape: Vec<u64> },
    #[error("{op}: integer division by zero")]
    DivisionByZero { op: &'static str },
    /// Shapes, attributes or values that the op does not accept; the message says which and why.
    #[error("{op}: {message}")]
    Invalid { op: &'static str, message: String },
    /// `Input` has nothing to compute from; [`crate::run`] supplies its value.
    #[error("{op}: has no inputs to compute a value from; `run` binds graph inputs")]
    NotEvaluable { op: &'static str },
}

/// The largest number of elements a single result may have.
pub const MAX_ELEMENTS: u64 = resnetc_ir::limits::ELEMENTS.value;

/// Why a graph input was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InputProblem {
    #[error("expected element type {expected}, got {got}")]
    DType { expected: DType, got: DType },
    #[error("expected rank {expected}, got shape {}", crate::util::dims(.got))]
    Rank { expected: usize, got: Vec<usize> },
    #[error("dimension {axis} must be {expected}, got {got}")]
    Dim {
        axis: usize,
        expected: usize,
        got: usize,
    },
    #[error(
        "dimension {axis} is '{symbol}' = {got}, but '{symbol}' = {bound} in input '{bound_by}'"
    )]
    Symbol {
        axis: usize,
        symbol: String,
        got: usize,
        bound: usize,
        bound_by: String,
    },
}

/// Why [`crate::run`] failed.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ExecError {
    #[error("invalid graph: {0}")]
    Invalid(#[from] ValidationError),
    #[error("the graph takes {expected} inputs, got {got}")]
    InputCount { expected: usize, got: usize },
    #[error("input {index} '{name}' ({expected}): {problem}")]
    Input {
        index: usize,
        name: String,
        expected: Box<TensorType>,
        problem: InputProblem,
    },
    /// An `Input` node that is not listed in `Graph::inputs`, so no value can be bound to it.
    #[error("node '{node}' is an Input but not one of the graph's inputs")]
    UnboundInput { node: String },
    #[error("node '{node}': {source}")]
    Node {
        node: String,
        op: &'static str,
        source: EvalError,
    },
    /// The executor computed a value that the validator typed differently: a bug in one of them.
    #[error("node '{node}' ({op}): computed {got_dtype}{} but the validator inferred {inferred}", crate::util::dims(.got_shape))]
    TypeMismatch {
        node: String,
        op: &'static str,
        inferred: Box<TensorType>,
        got_dtype: DType,
        got_shape: Vec<usize>,
    },
}
