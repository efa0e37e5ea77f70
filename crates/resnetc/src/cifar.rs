//! The CIFAR-10 binary format and the preprocessing the pretrained models were trained with.

use std::path::Path;

use ndarray::Array4;

use crate::{escape, Error, Result};

/// Bytes per record: one label, then 3×32×32 channel-planar pixels.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// Per-channel mean and standard deviation (RGB) used by the pretrained models (`../shared/README.md`).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Reads up to `limit` images: NCHW float32 preprocessed as in training, and their labels.
pub fn read_batch(path: &Path, limit: usize) -> Result<(Array4<f32>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    if bytes.len() % RECORD != 0 {
        return Err(Error::invalid_input(format!(
            "{} is {} bytes, not a whole number of {RECORD}-byte CIFAR-10 records",
            escape::path(path),
            bytes.len()
        )));
    }
    let n = (bytes.len() / RECORD).min(limit);
    let mut x = Array4::<f32>::zeros((n, 3, 32, 32));
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).take(n).enumerate() {
        labels.push(rec[0]);
        for c in 0..3 {
            for p in 0..1024 {
                let v = rec[1 + c * 1024 + p] as f32 / 255.0;
                x[[i, c, p / 32, p % 32]] = (v - MEAN[c]) / STD[c];
            }
        }
    }
    Ok((x, labels))
}
