//! Careless and hostile input that must end in a clear error, never an abort, a hang or a lost
//! file (part of the hardening work; see also `errors.rs` for malformed models).

mod common;

use common::*;

/// Runs `resnetc ARGS` under a 4 GiB address-space limit and a 20 s timeout (on Linux, where
/// `prlimit` and `timeout` exist), and requires exit code `code` without a panic, an abort, an
/// allocation failure or a hang.
fn exits(code: i32, args: &[&str]) -> String {
    let out = limited(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation"),
        "resnetc {args:?}:\n{err}"
    );
    assert_ne!(
        out.status.code(),
        Some(124),
        "resnetc {args:?} ran past 20 s:\n{err}"
    );
    assert_eq!(out.status.code(), Some(code), "resnetc {args:?}:\n{err}");
    err
}

fn limited(args: &[&str]) -> std::process::Output {
    let tools = ["prlimit", "timeout"].iter().all(|t| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !cfg!(target_os = "linux") || !tools {
        return resnetc(args);
    }
    std::process::Command::new("prlimit")
        .arg(format!("--as={}", 4u64 << 30))
        .args(["timeout", "20", env!("CARGO_BIN_EXE_resnetc")])
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
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
        // The same array as both entries of an .npz archive (stored, as np.savez writes).
        let npz = dir.path().join(format!("{name}.npz"));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&npz).unwrap());
        for entry in ["input.npy", "expected.npy"] {
            let stored = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            zip.start_file(entry, stored).unwrap();
            std::io::Write::write_all(&mut zip, &bytes).unwrap();
        }
        zip.finish().unwrap();
        let err = exits(3, &["validate", utf8(&model), "--npz", utf8(&npz)]);
        assert!(
            err.contains(why) && err.contains("'input'"),
            "{name}.npz: {err}"
        );

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

fn write_npy(path: &std::path::Path, a: &ndarray::ArrayD<f32>) {
    use ndarray_npy::WriteNpyExt;
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

/// Inputs that hold NaN or an infinity are refused (exit 3) naming the image and the position;
/// with `--allow-nonfinite`, a single NaN pixel makes every logit of its image NaN on every
/// backend and at every level (the fused ReLU used to turn it into 0 at -O3 and print a class),
/// while the other images' logits are untouched.
#[test]
fn nonfinite_inputs_are_refused_or_propagate() {
    let dir = tmp("nonfinite");
    let f = fixture("r20_a_ts17_dynamic");
    let model = f.path();
    let clean = f.input();
    let mut x = clean.clone();
    x[[1, 2, 5, 7]] = f32::NAN;
    let bad = dir.path().join("nan.npy");
    write_npy(&bad, &x);
    let mut inf = clean.clone();
    inf[[0, 0, 0, 3]] = f32::NEG_INFINITY;
    let infp = dir.path().join("inf.npy");
    write_npy(&infp, &inf);
    let y = dir.path().join("y.npy");
    for device in ["cpu", "reference"] {
        let err = exits(3, &run_args(&model, &bad, &y, &["--device", device]));
        assert!(
            err.contains("image 1 holds NaN at [2, 5, 7] (channel 2, row 5, column 7)")
                && err.contains("--allow-nonfinite"),
            "{err}"
        );
        let err = exits(3, &run_args(&model, &infp, &y, &["--device", device]));
        assert!(err.contains("image 0 holds -inf at [0, 0, 3]"), "{err}");
    }
    let expected = dir.path().join("expected.npy");
    std::fs::copy(f.output_path(), &expected).unwrap();
    let err = exits(
        3,
        &[
            "validate",
            utf8(&model),
            "--input",
            utf8(&bad),
            "--expected",
            utf8(&expected),
        ],
    );
    assert!(err.contains("image 1 holds NaN"), "{err}");

    let want = f.expected();
    for (device, level) in [
        ("cpu", "3"),
        ("reference", "3"),
        ("reference", "0"),
        ("cpu", "0"),
    ] {
        let args = [
            "--device",
            device,
            "--opt-level",
            level,
            "--allow-nonfinite",
        ];
        exits(0, &run_args(&model, &bad, &y, &args));
        let got = read_npy(&y);
        let row = |a: &ndarray::ArrayD<f32>, i: usize| a.index_axis(ndarray::Axis(0), i).to_owned();
        assert!(
            row(&got, 1).iter().all(|v| v.is_nan()),
            "{device} -O{level}: image 1 gave {:?}",
            row(&got, 1)
        );
        for i in (0..got.shape()[0]).filter(|&i| i != 1) {
            let d = (&row(&got, i) - &row(&want, i))
                .mapv(f32::abs)
                .fold(0f32, |m, &v| m.max(v));
            assert!(d < 1e-3, "{device} -O{level}: image {i} moved by {d}");
        }
    }
}

/// BatchNormalization statistics with `var + epsilon <= 0` (or a NaN epsilon) are refused at import,
/// naming the node and the channel; onnxruntime gives NaN logits for them.
#[test]
fn batchnorm_statistics_must_be_positive() {
    use prost::Message;
    use resnetc_onnx::proto::ModelProto;
    let dir = tmp("bnstats");
    let f = fixture("r20_a_ts13_bnkept");
    let original = ModelProto::decode(std::fs::read(f.path()).unwrap().as_slice()).unwrap();
    let graph = original.graph.as_ref().unwrap();
    let bn = graph
        .node
        .iter()
        .find(|n| n.op_type() == "BatchNormalization")
        .unwrap();
    let (bn_name, var_name) = (bn.name().to_string(), bn.input[4].clone());
    for (case, channel, value) in [
        ("negative", 3, -0.5f32),
        ("nan", 0, f32::NAN),
        ("inf", 5, f32::INFINITY),
    ] {
        let mut m = original.clone();
        let g = m.graph.as_mut().unwrap();
        let init = g
            .initializer
            .iter_mut()
            .find(|t| t.name() == var_name)
            .unwrap();
        let mut var = resnetc_onnx::tensor_from_proto(init, None).unwrap();
        let resnetc_ir::Tensor::F32(a) = &mut var else {
            panic!("float variance")
        };
        a.as_slice_mut().unwrap()[channel] = value;
        *init = resnetc_onnx::tensor_to_proto(&var_name, &var);
        let path = dir.path().join(format!("{case}.onnx"));
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        let err = exits(3, &["inspect", utf8(&path)]);
        assert!(
            err.contains(&bn_name) && err.contains(&format!("channel {channel} has variance")),
            "{case}: {err}"
        );
    }
    let mut m = original.clone();
    let g = m.graph.as_mut().unwrap();
    let bn = g
        .node
        .iter_mut()
        .find(|n| n.op_type() == "BatchNormalization")
        .unwrap();
    let eps = bn
        .attribute
        .iter_mut()
        .find(|a| a.name() == "epsilon")
        .unwrap();
    eps.f = Some(f32::NAN);
    let path = dir.path().join("eps.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let err = exits(3, &["inspect", utf8(&path)]);
    assert!(err.contains("epsilon") && err.contains("finite"), "{err}");
}

/// A model whose node name holds terminal escapes and whose Conv has 5M strides: the error names
/// the node with its control characters shown as `\u{1b}`, and is cut instead of 15 MB long.
#[test]
fn errors_are_escaped_and_short() {
    use prost::Message;
    use resnetc_onnx::proto::{attribute_proto::AttributeType, AttributeProto, ModelProto};
    let dir = tmp("inject");
    let f = fixture("r20_a_ts17_static");
    let mut m = ModelProto::decode(std::fs::read(f.path()).unwrap().as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let conv = g.node.iter_mut().find(|n| n.op_type() == "Conv").unwrap();
    conv.name = Some("evil\u{1b}]0;owned\u{7}\u{1b}[2J\r".into());
    conv.attribute.retain(|a| a.name() != "strides");
    conv.attribute.push(AttributeProto {
        name: Some("strides".into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: vec![1; 5_000_000],
        ..Default::default()
    });
    let path = dir.path().join("evil.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    for args in [
        vec!["inspect", utf8(&path)],
        vec!["compile", utf8(&path), "-o", "/dev/null"],
    ] {
        let err = exits(3, &args);
        assert!(
            !err.contains('\u{1b}') && !err.contains('\r') && !err.contains('\u{7}'),
            "{err:?}"
        );
        assert!(err.contains("evil\\u{1b}]0;owned\\u{7}"), "{err}");
        assert!(err.len() < 4096, "{} bytes", err.len());
    }
}

/// A model file larger than protobuf's 2 GiB is refused by its size before it is read (a sparse
/// file: nothing is written to disk).
#[test]
fn a_huge_model_file_is_refused_unread() {
    let dir = tmp("hugefile");
    let path = dir.path().join("huge.onnx");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let err = exits(3, &["inspect", utf8(&path)]);
    assert!(err.contains("above resnetc's limit 'file bytes'"), "{err}");
}
