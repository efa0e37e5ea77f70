//! The CLI's CUDA paths end to end without a GPU, on the fake libcuda
//! (`crates/resnetc-cuda/tests/emu/fake_driver.cpp`: every driver call checked as the real driver
//! would, the generated kernels run on the host): `run`, `bench` and `validate --device cuda` on
//! `.rnc` artifacts and on ONNX models compiled for the GPU on the spot, and what each driver
//! failure, or a wrong kernel, reads like.

mod common;

use std::ffi::OsString;

use common::cuda_host::FakeCuda;
use common::*;

/// Runs `resnetc` with `env`, requires success, and returns its standard output.
fn ok_env(args: &[&str], env: Vec<(&'static str, OsString)>) -> Vec<u8> {
    let out = resnetc_env(args, env);
    assert!(
        out.status.success(),
        "resnetc {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The fake driver's environment plus `extra` variables.
fn fake_env(fake: &FakeCuda, extra: &[(&'static str, &str)]) -> Vec<(&'static str, OsString)> {
    let mut env = fake.env();
    env.extend(extra.iter().map(|(k, v)| (*k, v.into())));
    env
}

/// `run` and `bench --device cuda` on a `.rnc` for the default targets (sm_80, sm_90 and their PTX),
/// through the fake libcuda (`crates/resnetc-cuda/tests/emu/fake_driver.cpp`, the generated kernels
/// on the host): the whole CLI path of a GPU run, and what each driver failure reads like.
#[test]
fn cuda_artifacts_run_on_the_fake_driver() {
    let dir = tmp("fake-cuda");
    let f = fixture("r20_b_ts17_dynamic");
    let rnc = dir.path().join("r20.rnc");
    ok(&compile_args(&f.path(), &rnc, &["--target", "cuda"]));
    let m = resnetc::Model::load(&rnc).unwrap();
    let (program, images) = m.cuda_program(0).unwrap();
    let fake = FakeCuda::new(env!("CARGO_TARGET_TMPDIR"));
    let source = &m.artifact().unwrap().cuda.as_ref().unwrap().source;
    fake.add(source, &program.kernels, &images);
    let with = |extra: &[(&'static str, &str)]| fake_env(&fake, extra);

    let (x, y, y_ref) = (
        f.input_path(),
        dir.path().join("y.npy"),
        dir.path().join("ref.npy"),
    );
    ok(&run_args(&rnc, &x, &y_ref, &["--device", "reference"]));
    let run = run_args(&rnc, &x, &y, &["--device", "cuda"]);
    ok_env(&run, with(&[]));
    let got = read_npy(&y);
    assert!(max_abs_diff(&got, &read_npy(&y_ref)) <= 1e-4);
    assert!(max_abs_diff(&got, &f.expected()) <= 1e-3);

    let bench = [
        "bench",
        utf8(&rnc),
        "--device",
        "cuda",
        "--batch",
        "3",
        "--iters",
        "3",
        "--json",
    ];
    let v: serde_json::Value = serde_json::from_slice(&ok_env(&bench, with(&[]))).unwrap();
    assert_eq!(
        (v["device"].as_str(), v["batch"].as_u64()),
        (Some("cuda"), Some(3))
    );
    assert_eq!(v["image"], "cubin sm_90");
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0, "{v}");

    // Driver failures, each with what it means.
    for (env, expect) in [
        (("RESNETC_FAKE_CUDA_DEVICES", "0"), "no CUDA device: cuInit: CUDA_ERROR_NO_DEVICE"),
        (
            ("RESNETC_FAKE_CUDA_FAIL", "cuLaunchKernel:719"),
            "CUDA driver call cuLaunchKernel failed: 719 (CUDA_ERROR_LAUNCH_FAILED",
        ),
        (("RESNETC_FAKE_CUDA_FAIL", "cuMemAlloc_v2:2"), "cuMemAlloc failed: 2 (CUDA_ERROR_OUT_OF_MEMORY"),
        (
            ("RESNETC_FAKE_CUDA_ARCH", "75"),
            "no compiled image for this GPU (resnetc fake CUDA device (host emulation), sm_75); compiled: sm_80, sm_90. Recompile with `--target cuda:sm_75`",
        ),
    ] {
        let out = resnetc_env(&run, with(&[env]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expect), "{env:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// An ONNX model goes to the GPU without a `.rnc`: `run`, `bench` and `validate --device cuda` lower
/// it and compile it with NVRTC for the GPU they find (the fake one: sm_90, 132 SMs). A kernel that
/// computes a wrong logit makes `validate` fail and blame the backend, not the model.
#[test]
fn onnx_models_run_bench_and_validate_on_the_gpu() {
    let f = fixture("r20_a_ts17_dynamic");
    let m = load_fused(&f.path());
    let opts = resnetc_cuda::GenOptions {
        batch: None,
        sm_count: 132,
    };
    let program = resnetc_cuda::generate_with(m.graph(), m.info(), &opts).unwrap();
    // NVRTC compiles the same source to the same cubin, so the CLI's images find this library.
    let image = resnetc_cuda::compile(&program.source, "sm_90").unwrap();
    let fake = FakeCuda::new(env!("CARGO_TARGET_TMPDIR"));
    fake.add(&program.source, &program.kernels, &[image]);

    let dir = tmp("fake-cuda-onnx");
    let (model, x, y) = (f.path(), f.input_path(), dir.path().join("y.npy"));
    let expected = f.output_path();
    ok_env(
        &run_args(&model, &x, &y, &["--device", "cuda"]),
        fake_env(&fake, &[]),
    );
    assert!(max_abs_diff(&read_npy(&y), &f.expected()) <= 1e-3);

    let bench = [
        "bench",
        utf8(&model),
        "--device",
        "cuda",
        "--batch",
        "2",
        "--iters",
        "2",
        "--json",
    ];
    let v: serde_json::Value =
        serde_json::from_slice(&ok_env(&bench, fake_env(&fake, &[]))).unwrap();
    assert_eq!(v["image"], "cubin sm_90", "{v}");

    // The input contract holds on the GPU too: a channels-last batch is refused before the
    // model is compiled for the device, by the CLI (exit 3) and by the library's session.
    let nhwc = dir.path().join("nhwc.npy");
    ndarray_npy::WriteNpyExt::write_npy(
        &f.input()
            .permuted_axes(vec![0, 2, 3, 1])
            .as_standard_layout()
            .to_owned(),
        std::fs::File::create(&nhwc).unwrap(),
    )
    .unwrap();
    let out = resnetc_env(
        &run_args(&model, &nhwc, &y, &["--device", "cuda"]),
        fake_env(&fake, &[]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("looks like NHWC") && err.contains("[batch,3,32,32]"),
        "{err}"
    );
    // The library loads the driver that RESNETC_CUDA_DRIVER names (the only test of this file
    // that runs the GPU path in-process).
    for (k, v) in fake.env() {
        std::env::set_var(k, v);
    }
    let mut session = m.session(resnetc::Device::Cuda).unwrap();
    for shape in [&[2, 32, 32, 3][..], &[2, 3072], &[1, 3, 64, 16]] {
        let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(shape));
        let e = session.run_dyn(x.view()).unwrap_err();
        assert_eq!(e.kind(), resnetc::ErrorKind::InvalidInput, "{shape:?}: {e}");
    }
    let y_lib = session.run_dyn(f.input().view()).unwrap();
    assert!(max_abs_diff(&y_lib, &f.expected()) <= 1e-3);

    let validate = [
        "validate",
        utf8(&model),
        "--input",
        utf8(&x),
        "--expected",
        utf8(&expected),
        "--against",
        "reference",
        "--device",
        "cuda",
        "--json",
    ];
    let v: serde_json::Value =
        serde_json::from_slice(&ok_env(&validate, fake_env(&fake, &[]))).unwrap();
    let cuda = &v["comparisons"][2];
    assert_eq!(
        (cuda["against"].as_str(), cuda["passed"].as_bool()),
        (Some("cuda"), Some(true)),
        "{v}"
    );
    assert!(
        cuda["note"]
            .as_str()
            .unwrap()
            .starts_with("cubin sm_90 on resnetc fake CUDA device"),
        "{v}"
    );

    // A miscompiled head kernel: the graph is right, the GPU's logits are not.
    let out = resnetc_env(
        &validate,
        fake_env(&fake, &[("RESNETC_FAKE_CUDA_SKEW", "0.5")]),
    );
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let passed: Vec<bool> = (v["comparisons"].as_array().unwrap().iter())
        .map(|c| c["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(passed, [true, true, false], "{v}");
    let d = &v["first_divergence"];
    assert_eq!(
        (d["kind"].as_str(), d["against"].as_str(), d["op"].as_str()),
        (Some("backend"), Some("cuda"), Some("Gemm")),
        "{v}"
    );
    assert!((d["max_abs"].as_f64().unwrap() - 0.5).abs() < 1e-3, "{d}");
    let text = resnetc_env(
        &validate[..validate.len() - 1],
        fake_env(&fake, &[("RESNETC_FAKE_CUDA_SKEW", "0.5")]),
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "but the cuda backend running it differs from it by that much: a backend bug"
        ),
        "{text}"
    );
}
