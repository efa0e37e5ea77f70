//! ONNX front and back end: the protobuf schema (`schemas/onnx.proto`, compiled at build time by
//! protox and prost), [`import`] from a `ModelProto` into resnetc's IR, and [`export()`] back.

pub mod error;
mod expand;
pub mod export;
pub mod import;
pub mod tensor;

pub mod proto {
    //! Types generated from `schemas/onnx.proto`.
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use error::{ExportError, ImportError, NodeSite};
pub use export::{
    export, export_file, export_file_with, export_with, ExportOptions, RESNETC_DOMAIN,
};
pub use import::{import_bytes, import_file, import_model};
pub use tensor::{tensor_from_proto, tensor_to_proto};
