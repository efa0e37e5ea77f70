//! `resnetc compile` and the `.rnc` artifact: compiled models run like their sources, `inspect`
//! reads them, and every mismatch on load gets its own message.

mod common;

use common::*;
use prost::Message;
use resnetc_artifact::{decode, encode, Artifact};

#[test]
fn compiled_artifacts_run_like_their_sources() {
    let dir = tmp("run");
    for f in fixtures() {
        let rnc = dir.join(format!("{}.rnc", f.name));
        let y = dir.join(format!("{}.npy", f.name));
        ok(&[
            "compile",
            f.path().to_str().unwrap(),
            "--target",
            "cpu",
            "-o",
            rnc.to_str().unwrap(),
        ]);
        let input = repo().join("fixtures").join(&f.input);
        ok(&[
            "run",
            rnc.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            y.to_str().unwrap(),
        ]);
        assert_logits_close(&format!("{} (.rnc)", f.name), &read_npy(&y), &f.expected());
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["inspect", rnc.to_str().unwrap(), "--json"])).unwrap();
        assert_eq!(v["artifact"]["target"], "cpu");
        assert!(
            v["ops"]["FusedConv"].as_u64().unwrap() >= 19,
            "{}: {v}",
            f.name
        );
    }
}

#[test]
fn compile_with_a_fixed_batch() {
    let dir = tmp("batch");
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "r20_b_ts17_dynamic")
        .unwrap();
    let rnc = dir.join("b3.rnc");
    ok(&[
        "compile",
        f.path().to_str().unwrap(),
        "--batch",
        "3",
        "-o",
        rnc.to_str().unwrap(),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", rnc.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([3, 3, 32, 32]));
    assert_eq!(v["artifact"]["batch"], 3);
    let static_model = fixtures()
        .into_iter()
        .find(|f| f.name == "r20_b_ts17_static")
        .unwrap();
    let out = resnetc(&[
        "compile",
        static_model.path().to_str().unwrap(),
        "--batch",
        "3",
        "-o",
        dir.join("x.rnc").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch is fixed at 2"));
}

#[test]
fn inspect_reports_ops_after_optimization() {
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "r56_b_ts17_static")
        .unwrap();
    let v0: serde_json::Value = serde_json::from_str(&ok(&[
        "inspect",
        f.path().to_str().unwrap(),
        "--json",
        "--opt-level",
        "0",
    ]))
    .unwrap();
    assert_eq!(v0["ops"]["Conv"], 57);
    let v3: serde_json::Value = serde_json::from_str(&ok(&[
        "inspect",
        f.path().to_str().unwrap(),
        "--json",
        "--opt-level",
        "3",
    ]))
    .unwrap();
    assert_eq!(
        v3["ops"],
        serde_json::json!({"FusedConv": 57, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1})
    );
    assert_eq!(v3["macs"], v0["macs"]);
    assert_eq!(v3["params"], v0["params"]);
}

#[test]
fn pass_flags() {
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "r20_a_ts13_bnkept")
        .unwrap();
    let path = f.path();
    let out = resnetc(&[
        "inspect",
        path.to_str().unwrap(),
        "--opt-level",
        "3",
        "--disable-pass",
        "fold-batchnorm",
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Without BN folding, the standalone BatchNorms become scale-and-shift Mul/Add.
    assert!(v["ops"]["Mul"].as_u64().unwrap() > 0, "{v}");
    let out = resnetc(&[
        "inspect",
        path.to_str().unwrap(),
        "--opt-level",
        "3",
        "--print-ir-after",
        "fuse-conv-epilogue",
        "--pass-report",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("// IR after fuse-conv-epilogue")
            && err.contains("FusedConv")
            && err.contains("fold-batchnorm: batchnorm-into-conv="),
        "{err}"
    );
    let out = resnetc(&[
        "inspect",
        path.to_str().unwrap(),
        "--disable-pass",
        "no-such-pass",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no pass named 'no-such-pass'"));
}

fn artifact() -> Artifact {
    let dir = tmp("lib");
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "r20_a_ts17_static")
        .unwrap();
    let rnc = dir.join("a.rnc");
    ok(&[
        "compile",
        f.path().to_str().unwrap(),
        "-o",
        rnc.to_str().unwrap(),
    ]);
    decode(&std::fs::read(rnc).unwrap(), Some("cpu")).unwrap()
}

fn load_error(bytes: &[u8], target: Option<&str>) -> String {
    decode(bytes, target).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn mismatches_are_reported_precisely() {
    let a = artifact();
    let mut errors = Vec::new();
    errors.push(load_error(b"not an artifact", None));
    errors.push(load_error(&encode(&a), Some("cuda")));
    let mut old = a.clone();
    old.format_version = 0;
    errors.push(load_error(&encode(&old), None));
    let mut other = a.clone();
    other.resnetc_version = "0.0.1".into();
    errors.push(load_error(&encode(&other), None));
    let mut damaged = a.clone();
    let k = damaged.graph.len() / 2;
    damaged.graph[k] ^= 0xff;
    errors.push(load_error(&encode(&damaged), None));
    let mut damaged_plan = a.clone();
    let plan = &mut damaged_plan.cpu.as_mut().unwrap().packed_plan;
    let k = plan.len() / 2;
    plan[k] ^= 0xff;
    errors.push(load_error(&encode(&damaged_plan), None));
    // Cut inside the graph (the fields before it take a few hundred bytes).
    let mut truncated = encode(&a);
    truncated.truncate(8 + a.graph.len() / 2);
    errors.push(load_error(&truncated, None));
    errors.push(
        resnetc_artifact::check_source(&a, b"another model", "other.onnx")
            .unwrap_err()
            .to_string(),
    );
    insta::assert_snapshot!(errors.join("\n"));
    // The untouched artifact still loads, and its graph re-encodes to the same bytes.
    let g = resnetc_artifact::graph(&decode(&encode(&a), Some("cpu")).unwrap()).unwrap();
    assert!(g.node_count() > 20);
    assert_eq!(a.encode_to_vec().len(), encode(&a).len() - 8);
}

/// `--target cuda:sm_XX` compiles through NVRTC (installed by .ci/run) and records the architectures;
/// `run --device cuda` then runs on a GPU, or says clearly that there is no driver.
#[test]
fn compile_for_cuda() {
    let dir = tmp("cuda");
    let f = fixtures()
        .into_iter()
        .find(|f| f.name == "r20_a_ts17_static")
        .unwrap();
    let rnc = dir.join("r20.rnc");
    ok(&[
        "compile",
        f.path().to_str().unwrap(),
        "--target",
        "cuda:sm_80",
        "-o",
        rnc.to_str().unwrap(),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", rnc.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["cuda_archs"], serde_json::json!(["sm_80"]));
    assert_eq!(v["artifact"]["target"], "cuda:sm_80");
    let input = repo().join("fixtures").join(&f.input);
    let y = dir.join("y.npy");
    let out = resnetc(&[
        "run",
        rnc.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
        "--device",
        "cuda",
    ]);
    if out.status.success() {
        let got = read_npy(&y);
        assert!(max_abs_diff(&got, &f.expected()) <= 1e-3);
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no CUDA driver") || err.contains("no CUDA device"),
            "{err}"
        );
    }
    let bad = resnetc(&[
        "compile",
        f.path().to_str().unwrap(),
        "--target",
        "tpu",
        "-o",
        dir.join("x.rnc").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown target 'tpu'"));
}
