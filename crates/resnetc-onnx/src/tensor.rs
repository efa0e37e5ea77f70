//! `TensorProto` ↔ [`Tensor`], with every size taken from the file checked before anything is allocated.

use std::path::{Component, Path};

use ndarray::{ArcArray, IxDyn};
use resnetc_ir::{DType, Tensor};

use crate::error::ImportError;
use crate::proto::tensor_proto::{DataLocation, DataType};
use crate::proto::TensorProto;

/// The largest tensor resnetc will materialize from a file ([`resnetc_ir::limits::TENSOR_BYTES`]).
pub const MAX_TENSOR_BYTES: u64 = resnetc_ir::limits::TENSOR_BYTES.value;

pub fn dtype_from_onnx(code: i32) -> Option<DType> {
    match DataType::try_from(code).ok()? {
        DataType::Float => Some(DType::F32),
        DataType::Double => Some(DType::F64),
        DataType::Int32 => Some(DType::I32),
        DataType::Int64 => Some(DType::I64),
        DataType::Bool => Some(DType::Bool),
        _ => None,
    }
}

pub fn dtype_to_onnx(d: DType) -> i32 {
    (match d {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::Bool => DataType::Bool,
    }) as i32
}

/// The ONNX name of an element type code, for messages.
pub fn onnx_dtype_name(code: i32) -> String {
    DataType::try_from(code).map_or_else(
        |_| format!("unknown type {code}"),
        |d| d.as_str_name().to_lowercase(),
    )
}

fn bad(name: &str, message: impl Into<String>) -> ImportError {
    ImportError::Tensor {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Checks dims and returns (shape, element count).
pub fn checked_shape(
    name: &str,
    dims: &[i64],
    dtype: DType,
) -> Result<(Vec<usize>, usize), ImportError> {
    resnetc_ir::limits::RANK
        .check(
            dims.len() as u64,
            format_args!("has dims {dims:?}: its rank"),
        )
        .map_err(|m| bad(name, m))?;
    let mut n: u64 = 1;
    let mut shape = Vec::with_capacity(dims.len());
    for &d in dims {
        if d < 0 {
            return Err(bad(
                name,
                format!("has a negative dimension {d} in dims {dims:?}"),
            ));
        }
        n = n
            .checked_mul(d as u64)
            .ok_or_else(|| bad(name, format!("dims {dims:?} overflow")))?;
        shape.push(d as usize);
    }
    let bytes = n.saturating_mul(dtype.size_of() as u64);
    resnetc_ir::limits::TENSOR_BYTES
        .check(
            bytes,
            format_args!("has dims {dims:?}, whose size in bytes"),
        )
        .map_err(|m| bad(name, m))?;
    Ok((shape, n as usize))
}

/// Decodes a tensor. `base_dir` is the model's folder, for external data.
pub fn tensor_from_proto(t: &TensorProto, base_dir: Option<&Path>) -> Result<Tensor, ImportError> {
    let name = t.name();
    let code = t.data_type();
    let dtype = dtype_from_onnx(code).ok_or_else(|| {
        bad(
            name,
            format!(
                "has element type {}; resnetc handles float, double, int32, int64 and bool",
                onnx_dtype_name(code)
            ),
        )
    })?;
    if t.segment.is_some() {
        return Err(bad(
            name,
            "is segmented; re-save the model without segments",
        ));
    }
    let (shape, n) = checked_shape(name, &t.dims, dtype)?;
    let typed = !(t.float_data.is_empty()
        && t.double_data.is_empty()
        && t.int32_data.is_empty()
        && t.int64_data.is_empty());
    if typed && (t.raw_data.is_some() || t.data_location() == DataLocation::External) {
        return Err(bad(
            name,
            "holds its values twice, in raw_data (or external data) and in a typed field such as float_data; ONNX allows one (onnxruntime refuses it too)",
        ));
    }
    let external;
    let raw: Option<&[u8]> = if t.data_location() == DataLocation::External {
        external = read_external(t, base_dir, n * dtype.size_of())?;
        Some(&external)
    } else {
        t.raw_data.as_deref()
    };
    let shape = IxDyn(&shape);
    let count_err = |got: usize| {
        bad(
            name,
            format!("holds {got} values but dims {:?} need {n}", t.dims),
        )
    };
    macro_rules! from_raw {
        ($ty:ty, $variant:ident, $size:expr, $conv:expr) => {{
            let raw = raw.expect("checked");
            if raw.len() != n * $size {
                return Err(bad(
                    name,
                    format!(
                        "raw_data has {} bytes but dims {:?} of {} need {}",
                        raw.len(),
                        t.dims,
                        dtype,
                        n * $size
                    ),
                ));
            }
            let v: Vec<$ty> = raw.chunks_exact($size).map($conv).collect();
            Tensor::$variant(
                ArcArray::from_shape_vec(shape, v).map_err(|e| bad(name, e.to_string()))?,
            )
        }};
    }
    let tensor = match (dtype, raw) {
        (DType::F32, Some(_)) => from_raw!(f32, F32, 4, |c| f32::from_le_bytes([
            c[0], c[1], c[2], c[3]
        ])),
        (DType::F64, Some(_)) => from_raw!(f64, F64, 8, |c| f64::from_le_bytes(
            c.try_into().expect("8 bytes")
        )),
        (DType::I32, Some(_)) => from_raw!(i32, I32, 4, |c| i32::from_le_bytes([
            c[0], c[1], c[2], c[3]
        ])),
        (DType::I64, Some(_)) => from_raw!(i64, I64, 8, |c| i64::from_le_bytes(
            c.try_into().expect("8 bytes")
        )),
        (DType::Bool, Some(_)) => from_raw!(bool, Bool, 1, |c| c[0] != 0),
        (DType::F32, None) => {
            if t.float_data.len() != n {
                return Err(count_err(t.float_data.len()));
            }
            Tensor::F32(
                ArcArray::from_shape_vec(shape, t.float_data.clone())
                    .map_err(|e| bad(name, e.to_string()))?,
            )
        }
        (DType::F64, None) => {
            if t.double_data.len() != n {
                return Err(count_err(t.double_data.len()));
            }
            Tensor::F64(
                ArcArray::from_shape_vec(shape, t.double_data.clone())
                    .map_err(|e| bad(name, e.to_string()))?,
            )
        }
        (DType::I32, None) => {
            if t.int32_data.len() != n {
                return Err(count_err(t.int32_data.len()));
            }
            Tensor::I32(
                ArcArray::from_shape_vec(shape, t.int32_data.clone())
                    .map_err(|e| bad(name, e.to_string()))?,
            )
        }
        (DType::I64, None) => {
            if t.int64_data.len() != n {
                return Err(count_err(t.int64_data.len()));
            }
            Tensor::I64(
                ArcArray::from_shape_vec(shape, t.int64_data.clone())
                    .map_err(|e| bad(name, e.to_string()))?,
            )
        }
        (DType::Bool, None) => {
            if t.int32_data.len() != n {
                return Err(count_err(t.int32_data.len()));
            }
            let v = t.int32_data.iter().map(|&x| x != 0).collect();
            Tensor::Bool(ArcArray::from_shape_vec(shape, v).map_err(|e| bad(name, e.to_string()))?)
        }
    };
    Ok(tensor)
}

/// Reads external data, refusing any location outside the model's folder.
fn read_external(
    t: &TensorProto,
    base_dir: Option<&Path>,
    expected: usize,
) -> Result<Vec<u8>, ImportError> {
    let name = t.name();
    let ext = |msg: String| ImportError::ExternalData {
        name: name.to_string(),
        message: msg,
    };
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for e in &t.external_data {
        match e.key() {
            "location" => location = Some(e.value().to_string()),
            "offset" => {
                offset = e
                    .value()
                    .parse()
                    .map_err(|_| ext(format!("offset '{}' is not a number", e.value())))?
            }
            "length" => {
                length = Some(
                    e.value()
                        .parse()
                        .map_err(|_| ext(format!("length '{}' is not a number", e.value())))?,
                )
            }
            _ => {}
        }
    }
    let location = location.ok_or_else(|| ext("has no 'location' entry".into()))?;
    let rel = Path::new(&location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ext(format!(
            "location '{location}' leaves the model's folder; external data must be a relative path inside it"
        )));
    }
    let base = base_dir.ok_or_else(|| {
        ext("is stored externally but the model was not loaded from a file".into())
    })?;
    let path = base.join(rel);
    // Symbolic links could still point outside: compare canonical paths.
    let (canon_base, canon) = (base.canonicalize(), path.canonicalize());
    match (canon_base, canon) {
        (Ok(b), Ok(p)) if p.starts_with(&b) => {}
        (Ok(_), Ok(_)) => {
            return Err(ext(format!(
                "location '{location}' resolves outside the model's folder"
            )))
        }
        (_, Err(e)) => return Err(ext(format!("cannot open '{}': {e}", path.display()))),
        (Err(e), _) => {
            return Err(ext(format!(
                "cannot open the model's folder '{}': {e}",
                base.display()
            )))
        }
    }
    if let Some(len) = length {
        if len != expected as u64 {
            return Err(ext(format!(
                "length {len} disagrees with dims {:?} ({expected} bytes)",
                t.dims
            )));
        }
    }
    // Only a regular file: opening a FIFO blocks until someone writes to it, a device may never
    // end, and a directory cannot be read. Checked before opening, on the resolved path.
    let meta = std::fs::metadata(&path)
        .map_err(|e| ext(format!("cannot open '{}': {e}", path.display())))?;
    if !meta.is_file() {
        return Err(ext(format!(
            "'{location}' is not a regular file (a FIFO, a device or a folder); external data must be a file"
        )));
    }
    let size = meta.len();
    let end = offset.checked_add(expected as u64);
    if offset > size {
        return Err(ext(format!(
            "offset {offset} is past the end of '{location}' ({size} bytes)"
        )));
    }
    if end.is_none_or(|e| e > size) {
        return Err(ext(format!(
            "'{location}' has {} bytes after offset {offset}, the tensor needs {expected}",
            size - offset
        )));
    }
    // Only the tensor's bytes, not the whole file (one file usually holds every tensor).
    use std::io::{Read, Seek, SeekFrom};
    let read = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut data = vec![0u8; expected];
        f.read_exact(&mut data)?;
        Ok(data)
    };
    read().map_err(|e| ext(format!("cannot read '{}': {e}", path.display())))
}

/// Encodes a tensor as `raw_data`, little-endian.
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(dtype_to_onnx(t.dtype())),
        name: Some(name.to_string()),
        raw_data: Some(t.to_le_bytes()),
        ..Default::default()
    }
}
