//! Errors of the ONNX front and back end. Each says where (node, op, opset) and what to do.

use std::path::PathBuf;

use resnetc_ir::ValidationError;
use thiserror::Error;

/// Where in the model a node-level error was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSite {
    pub node: String,
    pub op: String,
    pub opset: u64,
}

impl std::fmt::Display for NodeSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node '{}' ({}, opset {})",
            self.node, self.op, self.opset
        )
    }
}

/// Lowest and highest default-domain opsets the importer accepts.
pub const MIN_OPSET: u64 = 7;
pub const MAX_OPSET: u64 = 25;
/// The ONNX IR versions resnetc reads.
pub const MIN_IR_VERSION: i64 = 3;
pub const MAX_IR_VERSION: i64 = 13;

/// Why an ONNX model could not be imported.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a valid ONNX model: protobuf decoding failed ({source}); the file is truncated, corrupt or not ONNX")]
    Decode { source: prost::DecodeError },
    #[error("the model has no graph; it is not an ONNX model file")]
    NoGraph,
    #[error("the model imports no default-domain ('ai.onnx') opset; re-export it with torch.onnx.export(..., opset_version=17)")]
    NoOpset,
    #[error("the model's IR version is {version}; resnetc reads IR versions {MIN_IR_VERSION} to {MAX_IR_VERSION} (a zero or negative version means the file is damaged, a larger one that it was written by an onnx newer than resnetc knows)")]
    IrVersion { version: i64 },
    #[error("default-domain opset {version} is not supported (resnetc reads opsets {MIN_OPSET} to {MAX_OPSET}); re-export with opset_version between 11 and {MAX_OPSET}")]
    Opset { version: i64 },
    #[error("{site}: unsupported op{}; resnetc supports the ops PyTorch emits for CifarResNet (Conv, BatchNormalization, Relu, Add, Gemm, pooling, Pad, Slice, Reshape, Flatten and shape arithmetic); if your export needs it, please file an issue with the model", domain_note(.domain))]
    UnsupportedOp { site: NodeSite, domain: String },
    #[error("{site}: attribute '{name}': {message}")]
    Attribute {
        site: NodeSite,
        name: String,
        message: String,
    },
    #[error("{site}: {message}")]
    Node { site: NodeSite, message: String },
    #[error("tensor '{name}' {message}")]
    Tensor { name: String, message: String },
    #[error("tensor '{name}' has external data that cannot be used: {message}")]
    ExternalData { name: String, message: String },
    #[error("{site}: input '{input}' is not produced by any node, initializer or graph input; the model is malformed (check the exporter's output with onnx.checker)")]
    DanglingInput { site: NodeSite, input: String },
    #[error("{site}: output '{name}' is already produced by '{previous}'; value names must be unique (the model is malformed)")]
    DuplicateValue {
        site: NodeSite,
        name: String,
        previous: String,
    },
    /// A size above one of [`resnetc_ir::limits`].
    #[error("the model: {message}")]
    Limit { message: String },
    #[error("graph input '{name}': {message}")]
    Input { name: String, message: String },
    #[error("graph output '{name}' is not produced by any node, initializer or graph input")]
    DanglingOutput { name: String },
    // Not a `#[source]`: the message already includes it, and error chains would print it twice.
    #[error("the imported graph is invalid: {0}")]
    Invalid(ValidationError),
}

impl From<ValidationError> for ImportError {
    fn from(e: ValidationError) -> Self {
        ImportError::Invalid(e)
    }
}

fn domain_note(domain: &str) -> String {
    if domain.is_empty() || domain == "ai.onnx" {
        String::new()
    } else {
        format!(" from domain '{domain}'")
    }
}

/// Why a graph could not be written as ONNX.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("node '{node}' ({op}): {message}")]
    Node {
        node: String,
        op: &'static str,
        message: String,
    },
    #[error("cannot write '{path}': {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
