//! Where users touch resnetc: the input contract on every device, the documented exit codes, and
//! output into a closed pipe.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::*;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;

fn write_npy(path: &std::path::Path, a: &ArrayD<f32>) {
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

/// Runs `resnetc ARGS`, requires exit code `code` (never a panic) and returns standard error.
fn exits(code: i32, args: &[&str]) -> String {
    let out = resnetc(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked"),
        "resnetc {args:?} panicked:\n{err}"
    );
    assert_eq!(out.status.code(), Some(code), "resnetc {args:?}:\n{err}");
    err
}

/// Wrong layouts and sizes, each with the part of the message that says what is wrong. The
/// dynamic-batch fixture takes `[batch,3,32,32]`.
const WRONG_SHAPES: &[(&[usize], &str)] = &[
    (
        &[2, 32, 32, 3],
        "looks like NHWC (channels last); transpose it: in numpy x.transpose(0, 3, 1, 2)",
    ),
    (&[2, 3072], "rank 2 instead of 4"),
    (&[2, 96, 32], "rank 3 instead of 4"),
    (
        &[1, 3, 64, 16],
        "its images are 64×16, but the model takes 32×32 images",
    ),
    (&[2, 1, 32, 32], "it has 1 channels, but the model takes 3"),
];

fn given(shape: &[usize]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

#[test]
fn wrong_input_shapes_exit_3_on_cpu_and_reference_naming_both_shapes() {
    let dir = tmp("shapes");
    let model = fixture("r20_a_ts17_dynamic").path();
    for (shape, why) in WRONG_SHAPES {
        let x = dir.path().join("x.npy");
        write_npy(&x, &ArrayD::from_elem(IxDyn(shape), 0.5));
        for device in ["cpu", "reference"] {
            let err = exits(
                3,
                &["run", utf8(&model), "--input", utf8(&x), "--device", device],
            );
            assert!(err.contains(why), "{device} {shape:?}: {err}");
            assert!(
                err.contains("[batch,3,32,32]") && err.contains(&given(shape)),
                "{device} {shape:?}: {err}"
            );
        }
    }
    // A fixed batch is a dimension like the others.
    let fixed = fixture("r20_a_ts17_static");
    let x = dir.path().join("x8.npy");
    write_npy(&x, &ArrayD::from_elem(IxDyn(&[8, 3, 32, 32]), 0.5));
    let err = exits(3, &["run", utf8(&fixed.path()), "--input", utf8(&x)]);
    assert!(
        err.contains("batch is 8, but this model's batch is fixed at 2"),
        "{err}"
    );
    // validate checks the same contract before running anything.
    let y = dir.path().join("y.npy");
    write_npy(&y, &ArrayD::zeros(IxDyn(&[2, 10])));
    let nhwc = dir.path().join("nhwc.npy");
    write_npy(&nhwc, &ArrayD::from_elem(IxDyn(&[2, 32, 32, 3]), 0.5));
    let err = exits(
        3,
        &[
            "validate",
            utf8(&model),
            "--input",
            utf8(&nhwc),
            "--expected",
            utf8(&y),
        ],
    );
    assert!(err.contains("looks like NHWC"), "{err}");
}

#[test]
fn wrong_input_shapes_are_invalid_input_errors_in_the_library() {
    let model = resnetc::Model::load(fixture("r20_a_ts17_dynamic").path()).unwrap();
    for device in [resnetc::Device::Cpu, resnetc::Device::Reference] {
        let mut session = model.session(device).unwrap();
        for (shape, why) in WRONG_SHAPES {
            let x = ArrayD::<f32>::from_elem(IxDyn(shape), 0.5);
            let e = session.run_dyn(x.view()).unwrap_err();
            assert_eq!(
                e.kind(),
                resnetc::ErrorKind::InvalidInput,
                "{device} {shape:?}: {e}"
            );
            assert!(e.to_string().contains(why), "{device} {shape:?}: {e}");
        }
        // A float64 tensor is refused by element type, before it reaches the backend.
        let x = resnetc::ir::Tensor::F64(ndarray::ArcArray::zeros(IxDyn(&[1, 3, 32, 32])));
        let e = session.run_tensor(&x).unwrap_err();
        assert_eq!(e.kind(), resnetc::ErrorKind::InvalidInput, "{e}");
    }
}

#[test]
fn exit_codes_mean_what_the_help_says() {
    let dir = tmp("exit-codes");
    let f = fixture("r20_a_ts17_dynamic");
    let model = f.path();
    let help = ok(&["--help"]);
    assert!(
        help.contains("Exit codes:") && help.contains("4  environment"),
        "{help}"
    );

    // 1: a check failed.
    let wrong = dir.path().join("wrong.npy");
    write_npy(&wrong, &(f.expected() + 1.0));
    let out = resnetc(&[
        "validate",
        utf8(&model),
        "--input",
        utf8(&f.input_path()),
        "--expected",
        utf8(&wrong),
        "--against",
        "reference",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("FAILED ")
            && last.contains("r20_a_ts17_dynamic.onnx")
            && last.contains("max abs error"),
        "{last}"
    );
    let out = ok(&[
        "validate",
        utf8(&model),
        "--input",
        utf8(&f.input_path()),
        "--expected",
        utf8(&f.output_path()),
        "--against",
        "reference",
    ]);
    assert!(out.lines().last().unwrap().starts_with("PASSED "), "{out}");

    // 2: usage.
    exits(2, &["compile", utf8(&model), "--target", "gpu"]);
    exits(2, &["run", utf8(&model)]);
    exits(
        2,
        &["inspect", utf8(&model), "--disable-pass", "no-such-pass"],
    );

    // 3: the model or the input.
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\x08\x07 not a model at all \xff\xff").unwrap();
    exits(3, &["inspect", utf8(&junk)]);
    let text = dir.path().join("x.npy");
    std::fs::write(&text, b"not numpy").unwrap();
    exits(3, &["run", utf8(&model), "--input", utf8(&text)]);

    // 4: the environment.
    exits(4, &["inspect", utf8(&dir.path().join("missing.onnx"))]);
    let out = dir.path().join("no/such/dir/y.npy");
    exits(
        4,
        &[
            "run",
            utf8(&model),
            "--input",
            utf8(&f.input_path()),
            "--output",
            utf8(&out),
        ],
    );
}

/// Output into a pipe whose reader has gone: the program ends quietly (status 0), never panics.
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let dir = tmp("pipes");
    let f = fixture("r20_b_ts17_dynamic");
    let rnc = dir.path().join("m.rnc");
    ok(&compile_args(&f.path(), &rnc, &[]));
    let big = dir.path().join("big.npy");
    write_npy(&big, &ArrayD::from_elem(IxDyn(&[64, 3, 32, 32]), 0.25));
    let (model, x, y) = (f.path(), f.input_path(), f.output_path());
    let commands: [Vec<&str>; 4] = [
        vec!["inspect", utf8(&model), "--dump"],
        vec!["inspect", utf8(&rnc), "--json"],
        vec!["run", utf8(&rnc), "--input", utf8(&big)],
        vec![
            "validate",
            utf8(&model),
            "--input",
            utf8(&x),
            "--expected",
            utf8(&y),
            "--against",
            "reference",
        ],
    ];
    for args in &commands {
        // As `resnetc … | head -1`: read one line, then close the pipe.
        let mut child = Command::new(env!("CARGO_BIN_EXE_resnetc"))
            .args(args)
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        let _ = stdout.read(&mut first);
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
