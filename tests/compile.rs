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
        let rnc = dir.path().join(format!("{}.rnc", f.name));
        let y = dir.path().join(format!("{}.npy", f.name));
        ok(&compile_args(&f.path(), &rnc, &["--target", "cpu"]));
        ok(&run_args(&rnc, &f.input_path(), &y, &[]));
        assert_logits_close(&format!("{} (.rnc)", f.name), &read_npy(&y), &f.expected());
        let v = inspect_json(&rnc, &[]);
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
    let f = fixture("r20_b_ts17_dynamic");
    let rnc = dir.path().join("b3.rnc");
    ok(&compile_args(&f.path(), &rnc, &["--batch", "3"]));
    let v = inspect_json(&rnc, &[]);
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([3, 3, 32, 32]));
    assert_eq!(v["artifact"]["batch"], 3);
    let static_model = fixture("r20_b_ts17_static");
    let x = dir.path().join("x.rnc");
    let err = fails(&compile_args(&static_model.path(), &x, &["--batch", "3"]));
    assert!(err.contains("batch is fixed at 2"), "{err}");
}

#[test]
fn inspect_reports_ops_after_optimization() {
    let f = fixture("r56_b_ts17_static");
    let v0 = inspect_json(&f.path(), &["--opt-level", "0"]);
    assert_eq!(v0["ops"]["Conv"], 57);
    let v3 = inspect_json(&f.path(), &["--opt-level", "3"]);
    assert_eq!(
        v3["ops"],
        serde_json::json!({"FusedConv": 57, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1})
    );
    assert_eq!(v3["macs"], v0["macs"]);
    assert_eq!(v3["params"], v0["params"]);
}

#[test]
fn pass_flags() {
    let path = fixture("r20_a_ts13_bnkept").path();
    let v = inspect_json(
        &path,
        &["--opt-level", "3", "--disable-pass", "fold-batchnorm"],
    );
    // Without BN folding, the standalone BatchNorms become scale-and-shift Mul/Add.
    assert!(v["ops"]["Mul"].as_u64().unwrap() > 0, "{v}");
    let out = resnetc(&[
        "inspect",
        utf8(&path),
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
    let err = fails(&["inspect", utf8(&path), "--disable-pass", "no-such-pass"]);
    assert!(
        err.contains("there is no pass named 'no-such-pass'"),
        "{err}"
    );
}

/// A ResNet-20 compiled for the default target (cpu), decoded.
fn artifact() -> Artifact {
    let dir = tmp("lib");
    let rnc = dir.path().join("a.rnc");
    ok(&compile_args(
        &fixture("r20_a_ts17_static").path(),
        &rnc,
        &[],
    ));
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
    let f = fixture("r20_a_ts17_static");
    let rnc = dir.path().join("r20.rnc");
    ok(&compile_args(&f.path(), &rnc, &["--target", "cuda:sm_80"]));
    let v = inspect_json(&rnc, &[]);
    assert_eq!(v["artifact"]["cuda_archs"], serde_json::json!(["sm_80"]));
    assert_eq!(v["artifact"]["target"], "cuda:sm_80");
    let y = dir.path().join("y.npy");
    let out = resnetc(&run_args(&rnc, &f.input_path(), &y, &["--device", "cuda"]));
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
    let x = dir.path().join("x.rnc");
    let err = fails(&compile_args(&f.path(), &x, &["--target", "tpu"]));
    assert!(err.contains("unknown target 'tpu'"), "{err}");

    // NVRTC's time per architecture is reported; the text inspect lists the archs.
    let out = resnetc(&compile_args(&f.path(), &rnc, &["--target", "cuda:sm_80"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sm_80: cubin + PTX in "));
    assert!(ok(&["inspect", utf8(&rnc)]).contains("cuda: sm_80"));
    // --extract writes the source, the PTX and cubin, and the launch plan.
    let ext = dir.path().join("extracted");
    let v = ok_json(&["inspect", utf8(&rnc), "--extract", utf8(&ext), "--json"]);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["files"].as_array().unwrap().len(), 4, "{v}");
    let source = std::fs::read_to_string(ext.join("kernels.cu")).unwrap();
    assert!(source.contains("__global__"));
    assert!(std::fs::read_to_string(ext.join("sm_80.ptx"))
        .unwrap()
        .contains(".target sm_80"));
    assert!(!std::fs::read(ext.join("sm_80.cubin")).unwrap().is_empty());
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ext.join("launch_plan.json")).unwrap())
            .unwrap();
    assert!(!plan["steps"].as_array().unwrap().is_empty());
    // An artifact without a CUDA program: a clear refusal.
    let cpu = dir.path().join("cpu.rnc");
    ok(&compile_args(&f.path(), &cpu, &[]));
    let err = fails(&["inspect", utf8(&cpu), "--extract", utf8(&ext)]);
    assert!(err.contains("holds no CUDA program"), "{err}");
}
