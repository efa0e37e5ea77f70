//! Careless and hostile input that must end in a clear error, never an abort, a hang or a lost
//! file (part of the hardening work; see also `errors.rs` for malformed models).

mod common;

use common::*;

/// Runs `resnetc ARGS` and requires exit code `code` without a panic or an abort.
fn exits(code: i32, args: &[&str]) -> String {
    let out = resnetc(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation"),
        "resnetc {args:?}:\n{err}"
    );
    assert_eq!(out.status.code(), Some(code), "resnetc {args:?}:\n{err}");
    err
}

/// An output path that names an input is refused before any work, and the input is untouched.
#[test]
fn outputs_never_overwrite_inputs() {
    let dir = tmp("clobber");
    let f = fixture("r20_a_ts17_dynamic");
    let model = dir.path().join("m.onnx");
    std::fs::copy(f.path(), &model).unwrap();
    let x = dir.path().join("x.npy");
    std::fs::copy(f.input_path(), &x).unwrap();
    let (m, xs) = (utf8(&model), utf8(&x));
    let original = (std::fs::read(&model).unwrap(), std::fs::read(&x).unwrap());
    for args in [
        vec!["export", m, "-o", m],
        vec!["compile", m, "-o", m],
        vec!["run", m, "--input", xs, "--output", xs],
        vec!["run", m, "--input", xs, "--output", m],
    ] {
        let err = exits(3, &args);
        assert!(err.contains("is also an input"), "{args:?}: {err}");
    }
    // The same file by another name is the same file.
    let alias = dir.path().join(".").join("m.onnx");
    exits(3, &["export", m, "-o", utf8(&alias)]);
    assert_eq!(
        (std::fs::read(&model).unwrap(), std::fs::read(&x).unwrap()),
        original
    );
}

/// A `.npy` header is checked against the file before anything is allocated.
#[test]
fn npy_headers_that_lie_are_refused() {
    let dir = tmp("npy");
    let model = fixture("r20_a_ts17_dynamic").path();
    let header = |version: u8, dict: &str, pad: usize| {
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((dict.len() as u16).to_le_bytes());
        } else {
            out.extend((dict.len() as u32).to_le_bytes());
        }
        out.extend(dict.as_bytes());
        out.extend(vec![0u8; pad]);
        out
    };
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "huge",
            header(
                1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }\n",
                100_000,
            ),
            "declares",
        ),
        (
            "overflow",
            header(
                1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 16), }\n",
                64,
            ),
            "overflows",
        ),
        (
            "header-4gb",
            {
                let mut h = b"\x93NUMPY\x02\x00".to_vec();
                h.extend(u32::MAX.to_le_bytes());
                h.extend([0u8; 64]);
                h
            },
            "claims",
        ),
    ];
    for (name, bytes, why) in cases {
        let path = dir.path().join(format!("{name}.npy"));
        std::fs::write(&path, bytes).unwrap();
        let err = exits(3, &["run", utf8(&model), "--input", utf8(&path)]);
        assert!(err.contains(why), "{name}: {err}");
        let ok_y = fixture("r20_a_ts17_dynamic").output_path();
        exits(
            3,
            &[
                "validate",
                utf8(&model),
                "--input",
                utf8(&path),
                "--expected",
                utf8(&ok_y),
            ],
        );
    }
}

/// Sizes from flags are checked before anything is allocated or looped over.
#[test]
fn bench_sizes_are_bounded() {
    let model = fixture("r20_a_ts17_dynamic").path();
    let m = utf8(&model);
    for args in [
        vec!["bench", m, "--batch", "100000000"],
        vec!["bench", m, "--batch", "4611686018427387904"],
        vec!["bench", m, "--iters", "1099511627776"],
        vec!["bench", m, "--batch", "0"],
    ] {
        let err = exits(3, &args);
        assert!(err.contains("must be between 1 and"), "{args:?}: {err}");
    }
}

/// A model path that is a FIFO is refused at once instead of blocking on `open`.
#[cfg(unix)]
#[test]
fn a_fifo_is_not_read() {
    let dir = tmp("fifo");
    let fifo = dir.path().join("m.onnx");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let err = exits(4, &["inspect", utf8(&fifo)]);
    assert!(err.contains("not a regular file"), "{err}");
}

/// A thread count above what the machine runs at once is capped with a note (starting 100,000
/// threads took 14–20 s), and the logits are those of the default count.
#[test]
fn thread_counts_are_capped_at_the_cores() {
    let dir = tmp("threads");
    let f = fixture("r20_a_ts17_dynamic");
    let (model, input) = (f.path(), f.input_path());
    let (capped, default) = (
        dir.path().join("capped.npy"),
        dir.path().join("default.npy"),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let err = exits(
        0,
        &run_args(&model, &input, &capped, &["--threads", "100000"]),
    );
    assert!(
        err.contains("100000 threads asked for") && err.contains(&format!("using {cores}")),
        "{err}"
    );
    exits(0, &run_args(&model, &input, &default, &[]));
    assert_eq!(
        std::fs::read(&capped).unwrap(),
        std::fs::read(&default).unwrap()
    );
    let err = exits(
        0,
        &["bench", utf8(&model), "--threads", "100000", "--iters", "1"],
    );
    assert!(err.contains(&format!("using {cores}")), "{err}");
}
