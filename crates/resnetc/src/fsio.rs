//! Writing files so that nothing is lost: a temporary file in the same folder, synced, then
//! renamed over the destination, which therefore holds the old contents or the new, never half.

use std::io::Write;
use std::path::Path;

use crate::{Error, ErrorKind, Result};

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
