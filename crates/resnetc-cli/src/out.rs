//! Standard output that ends the program quietly when the reader goes away (`resnetc … | head -1`)
//! instead of panicking, as `println!` does on a closed pipe.

use std::io::Write;

use resnetc::{Error, ErrorKind, Result};

/// Writes `text` to standard output. A closed pipe exits with status 0 at once: whoever read the
/// output has all they wanted. Any other failure is an environment error.
pub fn text(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::new(
            ErrorKind::Environment,
            format!("cannot write to standard output: {e}"),
        )),
    }
}

/// A report as pretty-printed JSON.
pub fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| {
        Error::new(
            ErrorKind::InvalidModel,
            format!("internal error: cannot serialize the report: {e}"),
        )
    })
}

/// `println!` through [`text`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::text(&format!("{}\n", format_args!($($arg)*)))?
    };
}
pub(crate) use outln;
