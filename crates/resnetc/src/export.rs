//! Writing a model back as standard ONNX.

use std::path::Path;

use crate::{Model, Result};

/// How [`export_onnx`] writes the graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Keep fused convolutions and shortcuts as resnetc's own `ai.resnetc` ops (only resnetc
    /// reads them); by default they are expanded into standard ops that any runtime runs.
    pub keep_fused: bool,
}

/// The model's graph as an ONNX file's bytes.
pub fn export_onnx_bytes(model: &Model, opts: &ExportOptions) -> Result<Vec<u8>> {
    let proto = resnetc_onnx::export_with(
        model.graph(),
        model.info(),
        resnetc_onnx::ExportOptions {
            keep_fused: opts.keep_fused,
        },
    )?;
    Ok(prost::Message::encode_to_vec(&proto))
}

/// Writes the model's graph as ONNX to `path` (atomically; never over the file it came from).
pub fn export_onnx(model: &Model, path: &Path, opts: &ExportOptions) -> Result<()> {
    if let Some(src) = model.source().and_then(|s| s.path.as_deref()) {
        crate::fsio::check_distinct(path, &[src])?;
    }
    let bytes = export_onnx_bytes(model, opts)?;
    crate::fsio::write_atomic(path, &bytes)
}
