//! `.npy` input and output.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use resnetc_ir::Tensor;

/// Reads a float32 array (any rank) from an `.npy` file.
pub fn read_f32(path: &Path) -> Result<ArrayD<f32>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    match ArrayD::<f32>::read_npy(std::io::BufReader::new(file)) {
        Ok(a) => Ok(a),
        Err(e) => bail!("{} is not a float32 .npy array: {e} (save it with np.save(path, x.astype(np.float32)))", path.display()),
    }
}

pub fn read_tensor(path: &Path) -> Result<Tensor> {
    Ok(Tensor::f32(read_f32(path)?))
}

/// Writes a float32 tensor as `.npy`.
pub fn write_tensor(path: &Path, t: &Tensor) -> Result<()> {
    let Some(a) = t.as_f32() else {
        bail!(
            "output is {}, only float32 outputs can be written as .npy",
            t.dtype()
        )
    };
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    a.to_owned()
        .write_npy(std::io::BufWriter::new(file))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
