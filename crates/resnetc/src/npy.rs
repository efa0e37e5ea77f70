//! `.npy` input and output. The header is checked against the file's size before anything is
//! allocated, so a small file that declares a huge array is an error, not an abort.

use std::io::{Read, Seek};
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::escape;
use crate::{Error, ErrorKind, Result};

/// The longest `.npy` header read (numpy writes 128 bytes or so).
const MAX_HEADER: usize = 64 * 1024;

/// Reads a float32 array (any rank) from an `.npy` file.
pub fn read_f32(path: &Path) -> Result<ArrayD<f32>> {
    let (file, len) = crate::fsio::open_regular(path)?;
    let what = escape::path(path);
    read_checked(
        std::io::BufReader::new(file),
        len,
        &what,
        "the file is only",
        "np.save(path, x.astype(np.float32))",
    )
}

/// Reads a float32 array from the bytes of an `.npy` file (an `.npz` archive's entry), named
/// `what` in errors; the header is checked against the bytes' length before anything is allocated.
pub fn read_f32_bytes(bytes: &[u8], what: &str) -> Result<ArrayD<f32>> {
    let len = bytes.len() as u64;
    read_checked(
        std::io::Cursor::new(bytes),
        len,
        what,
        "it holds only",
        "np.savez(path, input=x, expected=y)",
    )
}

/// The array in `r` (`len` bytes, named `what`), its header checked against `len` before the
/// array is allocated; `holds` and `save` word the errors.
fn read_checked(
    mut r: impl Read + Seek,
    len: u64,
    what: &str,
    holds: &str,
    save: &str,
) -> Result<ArrayD<f32>> {
    let bad = |why: String| {
        Error::invalid_input(format!(
            "{what} is not a float32 .npy array: {why} (save it with {save})"
        ))
    };
    let declared = declared_bytes(&mut r, len).map_err(bad)?;
    if declared > len {
        return Err(bad(format!(
            "its header declares {declared} bytes of data, but {holds} {len} bytes"
        )));
    }
    r.rewind()
        .map_err(|e| Error::new(ErrorKind::Environment, format!("cannot read {what}: {e}")))?;
    ArrayD::<f32>::read_npy(r).map_err(|e| bad(e.to_string()))
}

/// The bytes of data an `.npy` header declares (elements × item size, the header included), read
/// without trusting any of it.
fn declared_bytes(file: &mut impl Read, file_len: u64) -> std::result::Result<u64, String> {
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)
        .map_err(|_| "the file is too short for an .npy header".to_string())?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("it does not start with the .npy magic".into());
    }
    let (len_bytes, prefix) = match magic[6] {
        1 => (2, 10u64),
        2 | 3 => (4, 12u64),
        v => return Err(format!("unknown .npy format version {v}")),
    };
    let mut len = [0u8; 4];
    file.read_exact(&mut len[..len_bytes])
        .map_err(|_| "the file is too short for an .npy header".to_string())?;
    let header_len = u32::from_le_bytes(len) as usize;
    if header_len > MAX_HEADER || prefix + header_len as u64 > file_len {
        return Err(format!(
            "its header claims {header_len} bytes (the file is {file_len} bytes; at most {MAX_HEADER} are read)"
        ));
    }
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header)
        .map_err(|_| "the header is truncated".to_string())?;
    let header = String::from_utf8_lossy(&header);
    let item = if header.contains("'<f4'") || header.contains("'|f4'") || header.contains("'>f4'") {
        4u64
    } else {
        // Let ndarray-npy name the wrong dtype; its size is not needed to bound the read.
        1
    };
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("its header has no shape")?;
    let mut elements: u64 = 1;
    for d in shape.trim_start().trim_start_matches('(').split(',') {
        let d = d.trim();
        if d.is_empty() {
            continue;
        }
        let n: u64 = d
            .parse()
            .map_err(|_| format!("its shape has a bad dimension '{}'", escape::name(d)))?;
        elements = elements
            .checked_mul(n)
            .ok_or("its shape overflows".to_string())?;
    }
    elements
        .checked_mul(item)
        .and_then(|b| b.checked_add(prefix + header_len as u64))
        .ok_or_else(|| "its shape overflows".to_string())
}

/// Writes a float32 array as `.npy`, atomically (a temporary file renamed into place).
pub fn write_f32(path: &Path, a: &ArrayD<f32>) -> Result<()> {
    crate::fsio::write_atomic_with(path, |w| a.write_npy(w).map_err(std::io::Error::other))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u8, dict: &str) -> Vec<u8> {
        let mut out = b"\x93NUMPY".to_vec();
        out.push(version);
        out.push(0);
        if version == 1 {
            out.extend((dict.len() as u16).to_le_bytes());
        } else {
            out.extend((dict.len() as u32).to_le_bytes());
        }
        out.extend(dict.as_bytes());
        out
    }

    #[test]
    fn headers_are_bounded_before_reading() {
        let ok = header(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
        );
        let len = ok.len() as u64 + 24;
        assert_eq!(declared_bytes(&mut ok.as_slice(), len), Ok(len));
        let huge = header(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }\n",
        );
        assert_eq!(
            declared_bytes(&mut huge.as_slice(), 100_000).map(|b| b > 100_000),
            Ok(true)
        );
        let overflow = header(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }\n",
        );
        assert!(declared_bytes(&mut overflow.as_slice(), 100)
            .unwrap_err()
            .contains("overflows"));
        let mut claims = b"\x93NUMPY\x02\x00".to_vec();
        claims.extend(u32::MAX.to_le_bytes());
        assert!(declared_bytes(&mut claims.as_slice(), 100)
            .unwrap_err()
            .contains("claims"));
    }
}
