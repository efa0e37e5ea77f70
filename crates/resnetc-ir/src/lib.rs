//! resnetc's intermediate representation.
//!
//! One graph IR ([`Graph`]) that every front end produces and every back end consumes, with a closed op
//! set ([`Op`]), dense tensors ([`Tensor`]), shapes whose batch dimension may be symbolic ([`Dim`]), a
//! validator that also infers types ([`validate()`]) and a deterministic text dump ([`dump()`]).
//!
//! This crate knows nothing of ONNX, protobuf, the command line or any accelerator.

pub mod dot;
pub mod dump;
pub mod graph;
pub mod infer;
pub mod limits;
pub mod op;
pub mod shape;
pub mod tensor;
pub mod validate;

pub use dump::dump;
pub use graph::{Edge, Graph, GraphOutput, Node, NodeId, ValueRef};
pub use infer::{SymInt, Value};
pub use op::{
    window, AvgPool, BinOp, Conv, Epilogue, EpilogueParts, Gemm, Op, PadMode, Padding,
    ResidualRead, Window,
};
pub use shape::{Dim, Shape, TensorType};
pub use tensor::{DType, Tensor};
pub use validate::{validate, GraphInfo, Site, ValidationError};
