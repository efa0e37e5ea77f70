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

/// How much goes to standard error besides errors: `-q` nothing, `-v` phase timings too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, std::sync::atomic::Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// A line on standard error, unless `-q`.
pub fn note(line: impl std::fmt::Display) {
    if verbosity() >= Verbosity::Normal {
        eprintln!("{line}");
    }
}

/// A phase's wall time on standard error, with `-v`.
pub fn phase(what: &str, since: std::time::Instant) {
    if verbosity() >= Verbosity::Verbose {
        eprintln!("[{what}: {:.1} ms]", since.elapsed().as_secs_f64() * 1e3);
    }
}

/// A progress bar on standard error: hidden when standard error is not a terminal (indicatif's
/// own rule) or with `-q`.
pub fn progress(total: usize, what: &str) -> indicatif::ProgressBar {
    let bar = if verbosity() == Verbosity::Quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        )
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} images, {per_sec}, {eta} left",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// A spinner on standard error for work without steps to count (NVRTC compiling), on the same
/// terms as [`progress`].
pub fn spinner(what: String) -> indicatif::ProgressBar {
    let bar = if verbosity() == Verbosity::Quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .expect("a valid template"),
    );
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}
