//! The integration tests' own helpers: running the `resnetc` binary (which only this package's
//! tests can find); everything else comes from `resnetc-testkit`.
#![allow(dead_code)]

use std::path::Path;

pub use resnetc_testkit::*;

/// Runs the `resnetc` binary in the repository.
pub fn resnetc(args: &[&str]) -> std::process::Output {
    resnetc_env(args, std::iter::empty::<(&str, &str)>())
}

/// Runs the `resnetc` binary in the repository with extra environment variables.
pub fn resnetc_env<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    args: &[&str],
    env: impl IntoIterator<Item = (K, V)>,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_resnetc"))
        .args(args)
        .envs(env)
        .current_dir(repo())
        .output()
        .unwrap()
}

/// Runs `resnetc`, requires success, and returns its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = resnetc(args);
    assert!(
        out.status.success(),
        "resnetc {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `resnetc` (with `--json` among `args`), requires success, and parses its standard output.
pub fn ok_json(args: &[&str]) -> serde_json::Value {
    let text = ok(args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("resnetc {args:?}: not JSON ({e}): {text}"))
}

/// `resnetc inspect MODEL --json ARGS…`, required to succeed, parsed.
pub fn inspect_json(model: &Path, args: &[&str]) -> serde_json::Value {
    ok_json(&[&["inspect", utf8(model), "--json"], args].concat())
}

/// Runs `resnetc`, requires failure (an error, never a panic), and returns its standard error.
pub fn fails(args: &[&str]) -> String {
    let out = resnetc(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "resnetc {args:?} succeeded");
    assert!(
        !err.contains("panicked"),
        "resnetc {args:?} panicked:\n{err}"
    );
    err
}

/// The arguments of `resnetc run MODEL --input X --output Y ARGS…`.
pub fn run_args<'a>(
    model: &'a Path,
    input: &'a Path,
    output: &'a Path,
    args: &[&'a str],
) -> Vec<&'a str> {
    [
        &[
            "run",
            utf8(model),
            "--input",
            utf8(input),
            "--output",
            utf8(output),
        ],
        args,
    ]
    .concat()
}

/// The arguments of `resnetc compile MODEL -o OUT ARGS…`.
pub fn compile_args<'a>(model: &'a Path, out: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    [&["compile", utf8(model), "-o", utf8(out)], args].concat()
}
