//! `resnetc validate`: passes on the fixtures and the pretrained ResNet-20, fails on wrong expected
//! values and names the node they diverge from, reads `.npz`; and the divergence finder, on small
//! hand-built graphs with one node deliberately broken.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;
use resnetc_ir::{BinOp, DType, Graph, Op, Tensor, TensorType};
use resnetc_validate::{find_divergence, DivergenceKind, ToleranceSpec};

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_npy(path: &Path, a: &ArrayD<f32>) {
    a.write_npy(std::io::BufWriter::new(
        std::fs::File::create(path).unwrap(),
    ))
    .unwrap();
}

fn write_npz(path: &Path, arrays: &[(&str, &ArrayD<f32>)]) {
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).unwrap());
    for (name, a) in arrays {
        npz.add_array(*name, *a).unwrap();
    }
    npz.finish().unwrap();
}

/// `resnetc validate MODEL --input X --expected Y ARGS…`.
fn validate(model: &Path, input: &Path, expected: &Path, args: &[&str]) -> Output {
    let io = [
        "validate",
        utf8(model),
        "--input",
        utf8(input),
        "--expected",
        utf8(expected),
    ];
    resnetc(&[&io, args].concat())
}

/// [`validate`] of a fixture with its own input and expected output.
fn validate_fixture(f: &Fixture, args: &[&str]) -> Output {
    validate(&f.path(), &f.input_path(), &f.output_path(), args)
}

/// The report of a `validate --json` run.
fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// What each comparison of a JSON report was against, in order.
fn against(v: &serde_json::Value) -> Vec<&str> {
    v["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["against"].as_str().unwrap())
        .collect()
}

/// A fixture's unoptimized (level 0) graph, the oracle, and its fused one, the graph under test.
fn unoptimized_and_fused(f: &Fixture) -> (resnetc::Model, resnetc::Model) {
    let unoptimized = resnetc::Model::load_with(f.path(), &resnetc::LoadOptions::level(0)).unwrap();
    (unoptimized, load_fused(&f.path()))
}

/// The fused convolutions of a graph, in its canonical order.
fn fused_convs(m: &resnetc::Model) -> Vec<resnetc_ir::NodeId> {
    m.info()
        .order
        .iter()
        .copied()
        .filter(|&id| matches!(m.graph().op(id), Op::FusedConv { .. }))
        .collect()
}

/// Every fixture validates at the default level against PyTorch, the unoptimized graph and tract.
#[test]
fn passes_on_every_fixture() {
    let fixtures = fixtures();
    // The fixtures are independent: validate them a few at a time.
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = fixtures
            .chunks(fixtures.len().div_ceil(4))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|f| {
                            let out = validate_fixture(f, &[]);
                            let stdout = String::from_utf8_lossy(&out.stdout);
                            let ok = out.status.success()
                                && stdout
                                    .lines()
                                    .last()
                                    .is_some_and(|l| l.starts_with("PASSED "))
                                && [
                                    "optimized vs expected",
                                    "optimized vs unoptimized",
                                    "tract vs expected",
                                ]
                                .iter()
                                .all(|c| stdout.contains(c));
                            (!ok).then(|| format!("{}:\n{}", f.name, text(&out)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "validate failed on {} fixtures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn passes_on_pretrained_resnet20() {
    let (images, _) = cifar_test_images(8);
    let first8 = pretrained_logits("resnet20")
        .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..8))
        .to_owned();
    let dir = tmp("validate-pretrained");
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    write_npy(&x, &images.into_dyn());
    write_npy(&y, &first8);
    let out = validate(&pretrained_model("resnet20"), &x, &y, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = report(&out);
    assert_eq!(v["passed"], true);
    for c in v["comparisons"].as_array().unwrap() {
        assert_eq!(c["rows"], 8, "{c}");
        assert_eq!(c["top1_agree"], 8, "{c}");
    }
}

#[test]
fn json_has_the_documented_fields() {
    let f = fixture("r20_b_ts17_static");
    let out = validate_fixture(&f, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = report(&out);
    assert_eq!(v["passed"], true);
    assert!(v["tolerance"]["atol"].as_f64().unwrap() >= 1e-4);
    assert_eq!(v["tolerance"]["rtol"], 0.0);
    assert!(v["first_divergence"].is_null());
    // The CPU backend runs the graph under test too (by default), and says with which kernels.
    assert_eq!(against(&v), ["expected", "reference", "tract", "cpu"]);
    assert!(
        v["comparisons"][3]["note"]
            .as_str()
            .is_some_and(|n| n.contains(" kernels, ") && n.contains(" thread")),
        "{v}"
    );
    for c in v["comparisons"].as_array().unwrap() {
        for field in ["max_abs", "max_rel", "top1_agree", "rows", "passed"] {
            assert!(c.get(field).is_some(), "comparison lacks {field}: {c}");
        }
        assert_eq!(c["passed"], true);
        assert_eq!(c["rows"], 2);
        assert_eq!(c["top1_agree"], 2);
        assert!(c["max_abs"].as_f64().unwrap() <= v["tolerance"]["atol"].as_f64().unwrap());
    }

    // --against narrows the comparisons; explicit tolerances are reported back.
    let out = validate_fixture(
        &f,
        &[
            "--json",
            "--against",
            "reference",
            "--atol",
            "0.01",
            "--rtol",
            "0.001",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v = report(&out);
    assert_eq!(
        v["tolerance"],
        serde_json::json!({"atol": 0.01, "rtol": 0.001})
    );
    assert_eq!(against(&v), ["expected", "reference", "cpu"]);

    // --device reference leaves the backend out; at opt level 0 the CPU backend cannot run the
    // graph (unfused ReLUs), which the default notes and an explicit --device cpu refuses.
    let out = validate_fixture(&f, &["--json", "--device", "reference"]);
    assert_eq!(against(&report(&out)), ["expected", "reference", "tract"]);
    let out = validate_fixture(&f, &["--opt-level", "0", "--against", "reference"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(cpu backend not run: node "),
        "{}",
        text(&out)
    );
    let out = validate_fixture(&f, &["--opt-level", "0", "--device", "cpu"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("running the graph under test on device cpu"),
        "{}",
        text(&out)
    );
}

/// The node producing the graph output in the unoptimized (level 0) graph, and its output's name.
fn output_producer(f: &Fixture) -> (String, String, String) {
    let m = resnetc::Model::load_with(f.path(), &resnetc::LoadOptions::level(0)).unwrap();
    let node = m.graph().node(m.graph().outputs[0].value.node);
    (
        node.label().to_string(),
        node.op.onnx_name().to_string(),
        node.outputs[0].clone(),
    )
}

#[test]
fn wrong_expected_values_fail_and_name_the_logits_node() {
    let f = fixture("r20_a_ts17_static");
    let (label, op, value) = output_producer(&f);
    assert_eq!(op, "Gemm");
    let mut wrong = f.expected();
    wrong[[1, 3]] += 1.0;
    let dir = tmp("validate-wrong");
    let y = dir.path().join("wrong.npy");
    write_npy(&y, &wrong);
    let out = validate(&f.path(), &f.input_path(), &y, &[]);
    assert!(
        !out.status.success(),
        "validate passed with a wrong logit:\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "first divergence: node '{label}' (Gemm), output '{value}': max abs error 1."
        )),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("the expected values differ"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("FAILED"), "{}", text(&out));

    let out = validate(&f.path(), &f.input_path(), &y, &["--json"]);
    assert!(!out.status.success());
    let v = report(&out);
    assert_eq!(v["passed"], false);
    let by: std::collections::HashMap<&str, bool> = v["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["against"].as_str().unwrap(),
                c["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    // resnetc's two graphs agree with each other; the altered values disagree with both resnetc and tract.
    assert_eq!(
        (by["expected"], by["reference"], by["tract"]),
        (false, true, false)
    );
    let d = &v["first_divergence"];
    assert_eq!(d["node"], label.as_str());
    assert_eq!(d["op"], "Gemm");
    assert_eq!(d["value"], value.as_str());
    assert_eq!(d["kind"], "output");
    assert_eq!(d["against"], "expected");
    let max_abs = d["max_abs"].as_f64().unwrap();
    assert!((max_abs - 1.0).abs() < 1e-3, "{d}");
}

#[test]
fn tolerance_flags_decide() {
    // An absurdly tight tolerance fails against PyTorch (which sums in another order) but not
    // against the unoptimized graph at level 0 (the same graph, bit for bit).
    let f = fixture("r20_b_ts13_static");
    let out = validate_fixture(
        &f,
        &[
            "--against",
            "reference",
            "--opt-level",
            "0",
            "--atol",
            "0",
            "--json",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let v = report(&out);
    assert_eq!(v["comparisons"][0]["passed"], false);
    assert_eq!(v["comparisons"][1]["passed"], true);
    assert_eq!(v["comparisons"][1]["max_abs"], 0.0);
    assert_eq!(v["first_divergence"]["kind"], "output");
}

#[test]
fn npz_input_works() {
    let f = fixture("r20_a_ts17_dynamic");
    let dir = tmp("validate-npz");
    let (model, path) = (f.path(), dir.path().join("batch.npz"));
    write_npz(&path, &[("input", &f.input()), ("expected", &f.expected())]);
    let out = resnetc(&["validate", utf8(&model), "--npz", utf8(&path)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\nPASSED "));

    // An archive without the arrays is an error that says what it needs.
    let bad = dir.path().join("bad.npz");
    write_npz(&bad, &[("x", &f.input())]);
    let out = resnetc(&["validate", utf8(&model), "--npz", utf8(&bad)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no float32 array named 'input'"),
        "{}",
        text(&out)
    );
}

#[test]
fn needs_input_and_expected() {
    let f = fixture("r20_a_ts17_static");
    let out = resnetc(&["validate", utf8(&f.path()), "--input", "x.npy"]);
    assert!(!out.status.success());
    let out = resnetc(&["validate", utf8(&f.path())]);
    assert!(!out.status.success());
}

// ---- the divergence finder, on hand-built graphs ----

/// What to break in the "optimized" copy.
#[derive(Clone, Copy, PartialEq)]
enum Break {
    Nothing,
    /// The Relu becomes an Identity.
    Relu,
    /// The MatMul's weight is altered.
    Weight,
    /// The final Add's constant is altered.
    Bias,
    /// Both the Relu and the bias.
    ReluAndBias,
}

/// x[2,4] → MatMul(w) → Relu → Mul(2) → Add(b) → y, named like an import would name them.
fn graph(b: Break) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 4]));
    let mut w = ArrayD::from_shape_fn(IxDyn(&[4, 3]), |i| {
        (i[0] as f32 - 1.5) * (i[1] as f32 + 1.0) * 0.25
    });
    if b == Break::Weight {
        w[[2, 1]] += 0.5;
    }
    let w = g.add_const("w", Tensor::f32(w));
    let mm = g.add_node(
        "/fc/MatMul",
        Op::MatMul,
        vec!["mm_out".into()],
        &[Some(x.into()), Some(w.into())],
    );
    let act = if matches!(b, Break::Relu | Break::ReluAndBias) {
        Op::Identity
    } else {
        Op::Relu
    };
    let relu = g.add_node(
        "/act/Relu",
        act,
        vec!["relu_out".into()],
        &[Some(mm.into())],
    );
    let two = g.add_const("two", Tensor::f32_scalar(2.0));
    let mul = g.add_node(
        "/scale/Mul",
        Op::Binary(BinOp::Mul),
        vec!["mul_out".into()],
        &[Some(relu.into()), Some(two.into())],
    );
    let bias = if matches!(b, Break::Bias | Break::ReluAndBias) {
        [0.1, 0.2, 0.4]
    } else {
        [0.1, 0.2, 0.3]
    };
    let bias = g.add_const(
        "b",
        Tensor::f32(ArrayD::from_shape_vec(IxDyn(&[3]), bias.to_vec()).unwrap()),
    );
    let add = g.add_node(
        "/bias/Add",
        Op::Binary(BinOp::Add),
        vec!["y".into()],
        &[Some(mul.into()), Some(bias.into())],
    );
    g.add_output("y", add.into());
    g
}

fn x() -> Tensor {
    // Rows with both signs, so that the Relu matters.
    Tensor::f32(
        ArrayD::from_shape_vec(
            IxDyn(&[2, 4]),
            vec![1.0, -2.0, 0.5, 3.0, -1.0, 2.0, -0.5, -3.0],
        )
        .unwrap(),
    )
}

fn divergence(b: Break) -> Option<resnetc_validate::Divergence> {
    find_divergence(
        &graph(Break::Nothing),
        &graph(b),
        &[x()],
        &ToleranceSpec::default(),
    )
    .unwrap()
}

#[test]
fn finder_finds_nothing_in_equal_graphs() {
    assert_eq!(divergence(Break::Nothing), None);
}

#[test]
fn finder_names_a_replaced_relu() {
    let d = divergence(Break::Relu).expect("a divergence");
    assert_eq!(
        (d.node.as_str(), d.op.as_str(), d.value.as_str()),
        ("/act/Relu", "Relu", "relu_out")
    );
    assert_eq!(d.optimized_op.as_deref(), Some("Identity"));
    assert_eq!(d.kind, DivergenceKind::Intermediate);
    assert!(d.max_abs > d.tolerance);
    let text = d.to_string();
    assert!(
        text.starts_with(
            "first divergence: node '/act/Relu' (Relu), output 'relu_out': max abs error "
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "the optimized graph's node '/act/Relu' (Identity) computes this value differently"
        ),
        "{text}"
    );
}

#[test]
fn finder_names_the_reader_of_an_altered_weight() {
    // Constants are not compared (passes rewrite weights); the node reading the altered one diverges.
    let d = divergence(Break::Weight).expect("a divergence");
    assert_eq!((d.node.as_str(), d.op.as_str()), ("/fc/MatMul", "MatMul"));
}

#[test]
fn finder_reinjects_so_downstream_nodes_are_not_blamed() {
    // Only the last node is broken: everything before it agrees.
    let d = divergence(Break::Bias).expect("a divergence");
    assert_eq!(d.node, "/bias/Add");
    // Two breaks: the first in topological order is named, and its error does not reach the
    // Mul after it (which computes from the reinjected reference value and agrees).
    let d = divergence(Break::ReluAndBias).expect("a divergence");
    assert_eq!(d.node, "/act/Relu");
}

#[test]
fn finder_respects_an_explicit_tolerance() {
    // The altered bias changes one output by 0.1: within atol 0.2, beyond 0.05.
    let loose = ToleranceSpec {
        atol: Some(0.2),
        rtol: None,
    };
    assert_eq!(
        find_divergence(&graph(Break::Nothing), &graph(Break::Bias), &[x()], &loose).unwrap(),
        None
    );
    let tight = ToleranceSpec {
        atol: Some(0.05),
        rtol: None,
    };
    let d = find_divergence(&graph(Break::Nothing), &graph(Break::Bias), &[x()], &tight)
        .unwrap()
        .unwrap();
    assert_eq!(d.node, "/bias/Add");
    assert!((d.max_abs - 0.1).abs() < 1e-6, "{}", d.max_abs);
    assert_eq!(d.tolerance, 0.05);
}

/// On a real model at the optimizer's level, the optimized graph's named values match the
/// unoptimized graph's, so the finder finds nothing.
#[test]
fn finder_finds_nothing_between_levels_on_a_fixture() {
    let f = fixture("r20_a_ts17_static");
    let (reference, optimized) = unoptimized_and_fused(&f);
    let d = find_divergence(
        reference.graph(),
        optimized.graph(),
        &[Tensor::f32(f.input())],
        &ToleranceSpec::default(),
    )
    .unwrap();
    assert_eq!(d, None);
}

/// On a real optimized graph, a fused convolution that lost its Relu is found, under the name of
/// the unoptimized graph's Relu whose value it computes.
#[test]
fn finder_names_a_broken_fused_conv_in_a_real_graph() {
    use resnetc_ir::Epilogue;
    let f = fixture("r20_a_ts17_static");
    let (reference, optimized) = unoptimized_and_fused(&f);
    let mut graph = optimized.graph().clone();
    // layer2.1's first conv: the sixth with a plain Relu epilogue (no residual).
    let victim = fused_convs(&optimized)
        .into_iter()
        .filter(|&id| matches!(&graph.op(id), Op::FusedConv { epilogue, .. } if epilogue == &[Epilogue::Bias, Epilogue::Relu]))
        .nth(5)
        .expect("a fused conv with a plain Relu epilogue");
    let value = graph.node(victim).outputs[0].clone();
    if let Op::FusedConv { epilogue, .. } = &mut graph.node_mut(victim).op {
        epilogue.retain(|e| *e != Epilogue::Relu);
    }
    let d = find_divergence(
        reference.graph(),
        &graph,
        &[Tensor::f32(f.input())],
        &ToleranceSpec::default(),
    )
    .unwrap()
    .expect("a divergence");
    assert_eq!(d.value, value);
    assert_eq!(d.op, "Relu");
    assert_eq!(d.optimized_op.as_deref(), Some("FusedConv"));
    assert_eq!(
        d.optimized_node.as_deref(),
        Some(graph.node(victim).label())
    );
}

/// The whole check on a graph under test with a broken weight: the comparisons with PyTorch and the
/// unoptimized graph fail, and the divergence is the node reading that weight, found on the rows
/// that differ (the fixture's batch is dynamic).
#[test]
fn validate_models_reports_an_intermediate_divergence() {
    use resnetc_validate::{validate_models, Against, Options};
    let f = fixture("r20_b_ts17_dynamic");
    let (reference, optimized) = unoptimized_and_fused(&f);
    let mut graph = optimized.graph().clone();
    // The weight of the fourth fused conv, scaled.
    let victim = fused_convs(&optimized)[3];
    let w = graph.input(victim, 1).unwrap().node;
    if let Op::Constant(Tensor::F32(a)) = &mut graph.node_mut(w).op {
        a.mapv_inplace(|x| x * 1.5);
    } else {
        panic!("the weight is not a float constant");
    }
    let value = graph.node(victim).outputs[0].clone();
    let opts = Options {
        against: Against::Reference,
        ..Default::default()
    };
    let under_test = resnetc::Model::from_graph(graph, &resnetc::LoadOptions::level(0)).unwrap();
    let r = validate_models(
        &f.path(),
        &reference,
        &under_test,
        f.input(),
        f.expected(),
        &opts,
    )
    .unwrap();
    assert!(!r.passed);
    assert_eq!(
        r.comparisons
            .iter()
            .map(|c| (c.against, c.passed))
            .collect::<Vec<_>>(),
        [("expected", false), ("reference", false), ("cpu", false)]
    );
    let d = r.first_divergence.clone().expect("a divergence");
    assert_eq!(d.kind, DivergenceKind::Intermediate);
    assert_eq!(d.value, value);
    assert_eq!(d.optimized_op.as_deref(), Some("FusedConv"));
    let text = r.to_string();
    assert!(
        text.contains(&format!(
            "first divergence: node '{}' ({}), output '{value}'",
            d.node, d.op
        )),
        "{text}"
    );
    assert!(text.contains("(FusedConv) computes this value differently from the unoptimized graph, from the same inputs"), "{text}");
}
