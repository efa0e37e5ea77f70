//! Files in and out. Writing so that nothing is lost: a temporary file in the same folder, synced,
//! then renamed over the destination, which therefore holds the old contents or the new, never
//! half. Reading only regular files: a FIFO would block the open or the read forever, a device may
//! never end, a folder cannot be read.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::{Error, ErrorKind, Result};

/// Opens `path` for reading if it is a regular file, with its size. Checked on the path before
/// opening (so a FIFO found there is not opened) and again on the opened file (the path may have
/// changed in between; only a FIFO swapped in at that instant could still block the open).
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let not_regular = || {
        Error::new(
            ErrorKind::Environment,
            format!(
                "cannot read {}: not a regular file",
                crate::escape::path(path)
            ),
        )
    };
    let io = |e: std::io::Error| Error::io("cannot read", path, e);
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(not_regular());
    }
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((file, meta.len()))
}

/// A regular file's bytes (see [`open_regular`]), its size passed to `check` (which names the
/// limit it holds to) before anything is read or allocated.
pub fn read_regular(path: &Path, check: impl FnOnce(u64) -> Result<()>) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    check(len)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // `len` is bounded by `check`; `take`: a file that grew since it was measured is read no
    // further than the size checked.
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read", path, e))?;
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], with `write` filling the temporary file.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("cannot write", path, e);
    if path.is_dir() {
        return Err(Error::new(
            ErrorKind::Environment,
            format!(
                "cannot write {}: it is a directory",
                crate::escape::path(path)
            ),
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".resnetc-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut w).map_err(io)?;
        w.flush().map_err(io)?;
    }
    // tempfile creates 0600; give the file the permissions the one it replaces had, else 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Refuses an output path that names one of the inputs (the same file, by identity where both
/// exist), before any work is done.
pub fn check_distinct(output: &Path, inputs: &[&Path]) -> Result<()> {
    for input in inputs {
        let same = match (std::fs::canonicalize(output), std::fs::canonicalize(input)) {
            (Ok(a), Ok(b)) => a == b,
            _ => output == *input,
        };
        if same {
            return Err(Error::invalid_input(format!(
                "the output {} is also an input; write it somewhere else",
                crate::escape::path(output)
            )));
        }
    }
    Ok(())
}
