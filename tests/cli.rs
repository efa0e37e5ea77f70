//! The `resnetc` binary, end to end: inspect, run, export, demo.

mod common;

use common::*;

/// MACs of CifarResNet-(6n+2) for one 32×32 image, computed from the architecture.
fn cifar_resnet_macs(n: u64, classes: u64, option_b: bool) -> u64 {
    let conv = |hw: u64, cout: u64, cin: u64, k: u64| hw * hw * cout * cin * k * k;
    let mut macs = conv(32, 16, 3, 3);
    for (stage, (hw, c)) in [(32, 16), (16, 32), (8, 64)].into_iter().enumerate() {
        for block in 0..n {
            let cin = if block == 0 && stage > 0 { c / 2 } else { c };
            macs += conv(hw, c, cin, 3) + conv(hw, c, c, 3);
            if block == 0 && stage > 0 && option_b {
                macs += conv(hw, c, cin, 1);
            }
        }
    }
    macs + 64 * classes
}

#[test]
fn inspect_json_reports_ops_params_and_macs() {
    let path = pretrained_model("resnet20");
    let v = inspect_json(&path, &[]);
    assert_eq!(v["macs"], cifar_resnet_macs(3, 10, false));
    assert_eq!(v["ops"]["Conv"], 19);
    assert_eq!(v["ops"]["Gemm"], 1);
    assert_eq!(
        v["inputs"][0]["shape"],
        serde_json::json!(["batch", 3, 32, 32])
    );
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!(["batch", 10]));
    // 3x3 conv weights + biases (BN folded by the exporter) + the classifier.
    assert_eq!(v["params"], 269_034);
}

#[test]
fn inspect_counts_option_b_downsample_convs() {
    for f in fixtures() {
        let v = inspect_json(&f.path(), &[]);
        let n = (f.depth as u64 - 2) / 6;
        let b = f.shortcut == "B";
        assert_eq!(
            v["macs"],
            cifar_resnet_macs(n, f.classes as u64, b),
            "{}",
            f.name
        );
        assert_eq!(
            v["ops"]["Conv"],
            (6 * n + 1 + if b { 2 } else { 0 }),
            "{}",
            f.name
        );
    }
}

#[test]
fn run_writes_npy_and_prints_top1() {
    let f = fixture("r20_b_ts13_static");
    let dir = tmp("cli");
    let out = dir.path().join("y.npy");
    let (model, input) = (f.path(), f.input_path());
    ok(&run_args(&model, &input, &out, &[]));
    assert_logits_close("run --output", &read_npy(&out), &f.expected());
    let printed = ok(&["run", utf8(&model), "--input", utf8(&input)]);
    let classes: Vec<usize> = printed
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(classes, argmax_rows(&f.expected()));
}

#[test]
fn export_then_run() {
    let f = fixture("r20_a_dynamo18_noopt");
    let dir = tmp("cli-export");
    let exported = dir.path().join("m.onnx");
    let y = dir.path().join("y.npy");
    ok(&["export", utf8(&f.path()), "-o", utf8(&exported)]);
    ok(&run_args(&exported, &f.input_path(), &y, &[]));
    assert_logits_close("exported", &read_npy(&y), &f.expected());
}

#[test]
fn errors_are_reported_not_panicked() {
    let err = fails(&["run", "Cargo.toml", "--input", "nothing.npy"]);
    assert!(err.contains("not a valid ONNX model"), "{err}");
}

#[test]
fn demo_runs_the_builtin_model() {
    let text = ok(&["demo", "--shared", utf8(&shared())]);
    assert!(text.contains("built-in ResNet-20"), "{text}");
    assert!(
        text.contains("pretrained ResNet-20 on 1000 CIFAR-10 test images: 91.5 %"),
        "{text}"
    );
}

#[test]
fn run_on_the_cpu_backend_and_the_reference_agree() {
    let f = fixture("r20_a_dynamo18_opt_dynamic");
    let dir = tmp("cli-dev");
    let (model, input) = (f.path(), f.input_path());
    // The CPU backend with each Winograd choice, and the reference executor.
    for (device, winograd) in [
        ("cpu", None),
        ("cpu", Some("off")),
        ("cpu", Some("f2")),
        ("cpu", Some("f4")),
        ("reference", None),
    ] {
        let what = format!("run --device {device} --winograd {winograd:?}");
        let y = dir
            .path()
            .join(format!("{device}-{}.npy", winograd.unwrap_or("default")));
        let mut args = run_args(&model, &input, &y, &["--device", device, "--threads", "2"]);
        args.extend(winograd.iter().flat_map(|w| ["--winograd", w]));
        ok(&args);
        assert_logits_close(&what, &read_npy(&y), &f.expected());
    }
}

/// `--winograd` decides which convolutions `bench` runs as Winograd: none when off, the 16 stride-1
/// 3×3 convolutions after the stem of a ResNet-20 (and the stem) otherwise.
#[test]
fn winograd_choice_reaches_the_cpu_plan() {
    let model = fixture("r20_b_ts17_static").path();
    let convs = |winograd: &str| {
        let v = ok_json(&[
            "bench",
            utf8(&model),
            "--batch",
            "1",
            "--iters",
            "1",
            "--json",
            "--winograd",
            winograd,
        ]);
        v["winograd_convs"]
            .as_u64()
            .expect("bench --json reports winograd_convs")
    };
    assert_eq!(convs("off"), 0);
    assert_eq!(convs("f2"), 17);
    assert_eq!(convs("auto"), 17);
}

#[test]
fn bench_json_reports_throughput() {
    let model = fixture("r20_b_ts17_static").path();
    let v = ok_json(&[
        "bench",
        utf8(&model),
        "--batch",
        "2",
        "--threads",
        "1",
        "--iters",
        "3",
        "--json",
    ]);
    for key in [
        "images_per_s",
        "median_ms",
        "batch",
        "threads",
        "effective_gflops",
        "executed_gflops",
        "percent_of_peak",
        "min_ms",
        "mean_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
    ] {
        assert!(v[key].is_number(), "bench --json lacks {key}: {v}");
    }
    assert_eq!(v["batch"], 2);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["iters"], 3);
    let ms = |k: &str| v[k].as_f64().unwrap();
    assert!(ms("min_ms") <= ms("median_ms") && ms("median_ms") <= ms("p90_ms"));
    assert!(ms("p90_ms") <= ms("p99_ms") && ms("p99_ms") <= ms("max_ms"));
    // Winograd does fewer multiply-adds than direct convolution: executed < effective.
    assert!(ms("executed_gflops") < ms("effective_gflops"), "{v}");
}

#[test]
fn bench_runs_for_a_duration_after_a_fixed_warmup() {
    let model = fixture("r20_a_ts17_static").path();
    let v = ok_json(&[
        "bench",
        utf8(&model),
        "--threads",
        "1",
        "--warmup",
        "2",
        "--iters",
        "100000",
        "--duration",
        "0.3",
        "--json",
    ]);
    assert_eq!(v["warmup"], 2);
    let iters = v["iters"].as_u64().unwrap();
    assert!((1..100000).contains(&iters), "{v}");
}
