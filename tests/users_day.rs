//! A user's day, end to end through the `resnetc` binary: accuracy on CIFAR in every layout,
//! image files in, named classes out, pictures of the graph, and `--json` that validates against
//! the committed schemas.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;

/// The other CIFAR layouts, written once per test binary from the shared binary file by
/// `tests/cifar_layouts.py` (see its docstring for what each folder holds).
fn layouts() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp("layouts");
        let status = std::process::Command::new(
            std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        )
        .arg(repo().join("tests/cifar_layouts.py"))
        .arg(shared().join("data/cifar10/test_first1000.bin"))
        .arg(dir.path())
        .status()
        .expect("python3 with numpy must be installed (see scripts/test.sh)");
        assert!(status.success(), "tests/cifar_layouts.py failed");
        dir
    })
    .path()
}

fn binary_set() -> PathBuf {
    shared().join("data/cifar10/test_first1000.bin")
}

/// The confusion matrix of PyTorch's own predictions (the shared logits) against the labels.
fn pytorch_confusion(model: &str) -> Vec<Vec<u64>> {
    let logits = pretrained_logits(model);
    let (_, labels) = cifar_test_images(1000);
    let mut m = vec![vec![0u64; 10]; 10];
    for (p, l) in argmax_rows(&logits).into_iter().zip(labels) {
        m[l as usize][p] += 1;
    }
    m
}

#[test]
fn eval_gives_pytorchs_accuracy_and_predictions_on_binary_and_pickle_layouts() {
    let cases = [
        ("resnet20", 0.915),
        ("resnet32", 0.928),
        ("resnet44", 0.933),
        ("resnet56", 0.926),
    ];
    let pickle = layouts().join("cifar-10-batches-py");
    for (model, top1) in cases {
        let want = pytorch_confusion(model);
        for data in [binary_set(), pickle.clone()] {
            let path = pretrained_model(model);
            let v = ok_json(&["eval", utf8(&path), "--data", utf8(&data), "--json"]);
            assert_eq!(v["images"], 1000);
            assert_eq!(v["top1"].as_f64().unwrap(), top1, "{model} on {data:?}");
            assert_eq!(
                v["correct"].as_u64().unwrap(),
                (top1 * 1000.0_f64).round() as u64
            );
            let got: Vec<Vec<u64>> = serde_json::from_value(v["confusion"].clone()).unwrap();
            assert_eq!(
                got, want,
                "{model} on {data:?}: predictions differ from PyTorch's"
            );
            assert!(v["top5"].as_f64().unwrap() >= top1);
            assert_eq!(v["per_class"][3]["label"], "cat");
            validates("eval", &v);
        }
    }
}

#[test]
fn eval_text_has_per_class_accuracy_and_the_confusion_matrix() {
    let model = pretrained_model("resnet20");
    let text = ok(&["eval", utf8(&model), "--data", utf8(&binary_set())]);
    assert!(text.contains("top-1 91.50 % (915 correct)"), "{text}");
    assert!(text.contains("truck"), "{text}");
    assert!(text.contains("confusion (rows: true class"), "{text}");
    // Below the threshold: exit 1, with the figure.
    let out = resnetc(&[
        "eval",
        utf8(&model),
        "--data",
        utf8(&binary_set()),
        "--limit",
        "200",
        "--min-top1",
        "99.5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("below --min-top1 99.5"));
    ok(&[
        "eval",
        utf8(&model),
        "--data",
        utf8(&binary_set()),
        "--limit",
        "200",
        "--min-top1",
        "80",
    ]);
}

/// Every pickle protocol Python writes, and a folder or a file, read the same images and labels.
#[test]
fn every_layout_reads_the_same_images() {
    use resnetc::cifar::{Dataset, Format};
    let reference = Dataset::open(&binary_set(), None, None).unwrap();
    assert_eq!(reference.format, Format::Cifar10Bin);
    let dir = layouts();
    for (path, format) in [
        (dir.join("cifar-10-batches-py"), Format::Cifar10Py),
        (dir.join("cifar-10-py2/test_batch"), Format::Cifar10Py),
        (dir.join("cifar-10-py4"), Format::Cifar10Py),
        (dir.join("cifar-10-py5/test_batch"), Format::Cifar10Py),
    ] {
        let d = Dataset::open(&path, None, None).unwrap();
        assert_eq!(d.format, format, "{path:?}");
        assert_eq!(d.labels(), reference.labels(), "{path:?}");
        assert_eq!(d.pixels(999), reference.pixels(999), "{path:?}");
        assert_eq!(d.class_names[0], "airplane");
    }
    // batches.meta is read when present: the py2-style folder has one.
    let d = Dataset::open(&dir.join("cifar-10-batches-py"), None, None).unwrap();
    assert!(d.names_from.is_some());

    let fine: Vec<u16> = std::fs::read_to_string(dir.join("cifar100_fine_labels.txt"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for (path, format) in [
        (dir.join("cifar-100-python"), Format::Cifar100Py),
        (dir.join("cifar-100-binary/test.bin"), Format::Cifar100Bin),
    ] {
        let d = Dataset::open(&path, None, Some(500)).unwrap();
        assert_eq!(d.format, format);
        assert_eq!(d.labels(), &fine[..500], "{path:?}: not the fine labels");
        assert_eq!(d.pixels(7), reference.pixels(7));
        assert_eq!(d.class_names[37], "fine_37", "{path:?}");
    }
    // A folder holding several sets needs a choice; --format makes it.
    let err = Dataset::open(dir, None, None).unwrap_err();
    assert!(err.to_string().contains("several CIFAR test sets"), "{err}");
    let d = Dataset::open(dir, Some(Format::Cifar100Bin), Some(3)).unwrap();
    assert_eq!(d.format, Format::Cifar100Bin);
    // Forcing the wrong format is an error, not garbage.
    let err = Dataset::open(&binary_set(), Some(Format::Cifar100Bin), None).unwrap_err();
    assert!(err.to_string().contains("not a cifar100-bin file"), "{err}");
}

#[test]
fn a_ten_class_model_is_refused_on_cifar100() {
    let model = pretrained_model("resnet20");
    for data in [
        layouts().join("cifar-100-python"),
        layouts().join("cifar-100-binary"),
    ] {
        let out = resnetc(&["eval", utf8(&model), "--data", utf8(&data)]);
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the model has 10 classes"), "{err}");
    }
}

/// Malformed datasets are refused with the file and the reason, never a panic.
#[test]
fn malformed_datasets_are_refused() {
    let dir = tmp("bad-data");
    let model = pretrained_model("resnet20");
    let bin = std::fs::read(binary_set()).unwrap();
    let pickle = std::fs::read(layouts().join("cifar-10-batches-py/test_batch")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short.bin", bin[..5000].to_vec(), "not a CIFAR dataset"),
        (
            "label.bin",
            [&[42u8][..], &bin[1..3073]].concat(),
            "label 42",
        ),
        (
            "cut.pickle",
            pickle[..pickle.len() / 2].to_vec(),
            "not a CIFAR pickle",
        ),
        ("empty", Vec::new(), "not a CIFAR dataset"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = resnetc(&["eval", utf8(&model), "--data", utf8(&path)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
}

/// The first images of the shared set as PNG files, and their classes by the `.npy` path.
fn pngs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let d = resnetc::cifar::Dataset::open(&binary_set(), None, Some(n)).unwrap();
    (0..n)
        .map(|i| {
            let p = dir.join(format!("img{i}.png"));
            resnetc::images::write_rgb32(&p, d.pixels(i)).unwrap();
            p
        })
        .collect()
}

#[test]
fn run_on_png_files_gives_the_classes_of_the_npy_path() {
    let dir = tmp("png");
    let model = pretrained_model("resnet20");
    let files = pngs(dir.path(), 12);
    let (x, _) = cifar_test_images(12);
    let npy = dir.path().join("x.npy");
    ndarray_npy::write_npy(&npy, &x).unwrap();
    let by_npy = ok_json(&["run", utf8(&model), "--input", utf8(&npy), "--json"]);
    let mut args = vec!["run", utf8(&model), "--json", "--top", "3", "--image"];
    args.extend(files.iter().map(|p| utf8(p)));
    let by_png = ok_json(&args);
    validates("run", &by_png);
    validates("run", &by_npy);
    for i in 0..12 {
        let (a, b) = (
            &by_npy["images"][i]["top"][0],
            &by_png["images"][i]["top"][0],
        );
        assert_eq!(a["index"], b["index"], "image {i}");
        let (pa, pb) = (
            a["probability"].as_f64().unwrap(),
            b["probability"].as_f64().unwrap(),
        );
        assert!((pa - pb).abs() < 1e-5, "image {i}: {pa} vs {pb}");
        assert_eq!(by_png["images"][i]["top"].as_array().unwrap().len(), 3);
        assert!(by_png["images"][i]["file"]
            .as_str()
            .unwrap()
            .ends_with(&format!("img{i}.png")));
    }
    assert_eq!(by_png["images"][0]["top"][0]["label"], "cat");
    // Text: the file, then index, name and probability of each class.
    let text = ok(&["run", utf8(&model), "--image", utf8(&files[0])]);
    assert!(text.contains("img0.png\t3\tcat "), "{text}");
}

#[test]
fn images_of_other_sizes_and_formats() {
    let dir = tmp("img");
    let model = pretrained_model("resnet20");
    let d = resnetc::cifar::Dataset::open(&binary_set(), None, Some(1)).unwrap();
    let jpg = dir.path().join("a.jpg");
    resnetc::images::write_rgb32(&jpg, d.pixels(0)).unwrap();
    let bmp = dir.path().join("a.bmp");
    resnetc::images::write_rgb32(&bmp, d.pixels(0)).unwrap();
    let v = ok_json(&[
        "run",
        utf8(&model),
        "--json",
        "--image",
        utf8(&jpg),
        utf8(&bmp),
    ]);
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["images"][1]["top"][0]["label"], "cat", "BMP is lossless");

    let big = dir.path().join("big.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([120, 30, 200]))
        .save(&big)
        .unwrap();
    let out = resnetc(&["run", utf8(&model), "--image", utf8(&big)]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("64×64, not 32×32") && err.contains("--resize"),
        "{err}"
    );
    ok(&[
        "run",
        utf8(&model),
        "--image",
        utf8(&big),
        "--resize",
        "triangle",
    ]);
    // A FIFO is refused, not waited on.
    let fifo = dir.path().join("fifo.png");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = resnetc(&["run", utf8(&model), "--image", utf8(&fifo)]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let text = dir.path().join("not-an-image.png");
    std::fs::write(&text, "hello").unwrap();
    let out = resnetc(&["run", utf8(&model), "--image", utf8(&text)]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn dot_parses_back_with_one_node_per_graph_node_and_svg_is_xml() {
    use petgraph::dot::dot_parser::ParseFromDot;
    let model = pretrained_model("resnet20");
    for level in ["0", "3"] {
        let dot = ok(&["inspect", utf8(&model), "--dot", "--opt-level", level]);
        let g = <petgraph::graph::DiGraph<_, _> as ParseFromDot>::try_from(dot.as_str())
            .unwrap_or_else(|e| panic!("-O{level}: DOT does not parse: {e}"));
        let m =
            resnetc::Model::load_with(&model, &resnetc::LoadOptions::level(level.parse().unwrap()))
                .unwrap();
        assert_eq!(g.node_count(), m.graph().node_count(), "-O{level}");
        // The parser keeps a set of edges: count distinct (producer, consumer) pairs.
        let edges: std::collections::HashSet<_> = m
            .graph()
            .node_ids()
            .flat_map(|id| {
                m.graph()
                    .inputs(id)
                    .into_iter()
                    .flatten()
                    .map(move |v| (v.node, id))
            })
            .collect();
        assert_eq!(g.edge_count(), edges.len(), "-O{level}");
        if level == "3" {
            assert!(
                dot.contains("FusedConv") && dot.contains("fillcolor"),
                "{dot}"
            );
        }
    }
    let dir = tmp("svg");
    let svg = dir.path().join("g.svg");
    ok(&["inspect", utf8(&model), "--svg", utf8(&svg)]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(text.contains("FusedConv"));
}

#[test]
fn compare_levels_counts_ops_per_level() {
    let model = pretrained_model("resnet20");
    let v = ok_json(&["inspect", utf8(&model), "--compare-levels", "0,3", "--json"]);
    validates("levels", &v);
    // The README's op counts for resnet20: 109 nodes in the file (Constant nodes included).
    assert_eq!(v["file_nodes"], 109);
    assert_eq!(v["levels"][0]["ops"]["Conv"], 19);
    assert_eq!(v["levels"][1]["ops"]["FusedConv"], 19);
    assert!(v["levels"][1]["ops"].get("Relu").is_none());
    let text = ok(&["inspect", utf8(&model), "--compare-levels", "0,3"]);
    assert!(text.contains("-O0") && text.contains("FusedConv"), "{text}");
}

#[test]
fn version_completions_and_quiet() {
    let v = ok(&["--version"]);
    assert!(v.starts_with("resnetc 0."), "{v}");
    assert!(
        v.contains("commit ") && v.contains("cpu kernels: portable"),
        "{v}"
    );
    assert!(v.contains("nvrtc: ") && v.contains("cuda driver: "), "{v}");
    for shell in ["bash", "zsh", "fish"] {
        let s = ok(&["completions", shell]);
        assert!(s.contains("resnetc") && s.contains("eval"), "{shell}");
    }
    let dir = tmp("quiet");
    let out = dir.path().join("m.onnx");
    let model = fixture("r20_a_ts17_static").path();
    let loud = resnetc(&["export", utf8(&model), "-o", utf8(&out)]);
    assert!(String::from_utf8_lossy(&loud.stderr).contains("wrote"));
    let quiet = resnetc(&["-q", "export", utf8(&model), "-o", utf8(&out)]);
    assert!(quiet.status.success());
    assert!(quiet.stderr.is_empty(), "{quiet:?}");
    let verbose = resnetc(&[
        "eval",
        "-v",
        utf8(&pretrained_model("resnet20")),
        "--data",
        utf8(&binary_set()),
        "--limit",
        "10",
    ]);
    assert!(String::from_utf8_lossy(&verbose.stderr).contains("[load model:"));
}

/// The schemas a report type generates (`resnetc::schema::all` and validate's).
fn generated_schemas() -> Vec<(&'static str, serde_json::Value)> {
    let mut all: Vec<(&str, serde_json::Value)> = resnetc::schema::all()
        .into_iter()
        .map(|(n, s)| (n, s.to_value()))
        .collect();
    all.push((
        "validate",
        schemars::schema_for!(resnetc_validate::Report).to_value(),
    ));
    all
}

fn schema_path(name: &str) -> PathBuf {
    repo().join(format!("schemas/{name}.schema.json"))
}

/// `schemas/*.schema.json` are what the report types generate; `RESNETC_BLESS=1` rewrites them.
#[test]
fn committed_schemas_are_current() {
    for (name, schema) in generated_schemas() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = schema_path(name);
        if std::env::var_os("RESNETC_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{path:?} is missing; run with RESNETC_BLESS=1"));
        assert_eq!(
            committed, text,
            "{path:?} is stale; rerun with RESNETC_BLESS=1"
        );
    }
}

/// Asserts that `value` validates against the committed schema `name`.
fn validates(name: &str, value: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path(name)).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{value}");
    assert_eq!(value["schema_version"], 1, "{name}");
}

#[test]
fn every_json_output_validates_against_its_schema() {
    let model = pretrained_model("resnet20");
    let fixture = fixture("r20_a_ts17_static");
    validates("inspect", &inspect_json(&model, &[]));
    validates(
        "bench",
        &ok_json(&[
            "bench",
            utf8(&fixture.path()),
            "--iters",
            "2",
            "--threads",
            "1",
            "--json",
        ]),
    );
    validates(
        "validate",
        &ok_json(&[
            "validate",
            utf8(&fixture.path()),
            "--input",
            utf8(&fixture.input_path()),
            "--expected",
            utf8(&fixture.output_path()),
            "--json",
        ]),
    );
    let dir = tmp("json");
    let out = dir.path().join("m.rnc");
    validates(
        "wrote",
        &ok_json(&["compile", utf8(&fixture.path()), "-o", utf8(&out), "--json"]),
    );
    let out = dir.path().join("m.onnx");
    validates(
        "wrote",
        &ok_json(&["export", utf8(&fixture.path()), "-o", utf8(&out), "--json"]),
    );
    validates(
        "about",
        &serde_json::to_value(resnetc::about::about()).unwrap(),
    );
    let demo = ok_json(&["demo", "--shared", utf8(&shared()), "--json"]);
    validates("demo", &demo);
    assert_eq!(demo["pretrained"]["correct"], 915);
}

/// `validate --data`: the input comes from a dataset, read and normalized as `eval` does; the
/// rows say what they compare.
#[test]
fn validate_takes_its_input_from_a_dataset() {
    let dir = tmp("validate-data");
    let logits = pretrained_logits("resnet20");
    let expected = dir.path().join("expected.npy");
    ndarray_npy::write_npy(
        &expected,
        &logits
            .slice_axis(ndarray::Axis(0), (0..40).into())
            .to_owned(),
    )
    .unwrap();
    let model = pretrained_model("resnet20");
    let pickle = layouts().join("cifar-10-batches-py");
    let args = [
        "validate",
        utf8(&model),
        "--data",
        utf8(&pickle),
        "--limit",
        "40",
        "--expected",
        utf8(&expected),
    ];
    let text = ok(&args);
    for row in [
        "optimized vs expected",
        "optimized vs unoptimized",
        "tract vs expected",
        "cpu backend vs expected",
    ] {
        assert!(text.contains(row), "{row}: {text}");
    }
    assert!(text.lines().last().unwrap().starts_with("PASSED"), "{text}");
    // The wrong normalization is a real mismatch: exit 1.
    let out = resnetc(&[&args[..], &["--mean", "0,0,0", "--std", "1,1,1"]].concat());
    assert_eq!(out.status.code(), Some(1));
}

/// A `.rnc` is validated as stored: its graph and its CPU plan; the rows it cannot have are
/// named as skipped.
#[test]
fn validate_checks_what_an_artifact_stores() {
    let dir = tmp("validate-rnc");
    let f = fixture("r20_b_ts17_dynamic");
    let rnc = dir.path().join("m.rnc");
    ok(&["compile", utf8(&f.path()), "-o", utf8(&rnc)]);
    let v = ok_json(&[
        "validate",
        utf8(&rnc),
        "--input",
        utf8(&f.input_path()),
        "--expected",
        utf8(&f.output_path()),
        "--json",
    ]);
    validates("validate", &v);
    let rows: Vec<&str> = v["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["row"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ["optimized vs expected", "cpu backend vs expected"]);
    assert!(v["skipped"]
        .as_str()
        .unwrap()
        .contains("an artifact holds only the optimized graph"));
    assert_eq!(v["passed"], true);
    // Expected values off by 1: the artifact fails, and the output node is blamed.
    let wrong = dir.path().join("wrong.npy");
    ndarray_npy::write_npy(&wrong, &(f.expected() + 1.0)).unwrap();
    let out = resnetc(&[
        "validate",
        utf8(&rnc),
        "--input",
        utf8(&f.input_path()),
        "--expected",
        utf8(&wrong),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("first divergence"));
}

/// `resnetc zoo` writes standard ONNX with the architecture asked for.
#[test]
fn zoo_writes_the_network_asked_for() {
    let dir = tmp("zoo-cli");
    let out = dir.path().join("r32.onnx");
    let v = ok_json(&[
        "zoo",
        "resnet32",
        "--classes",
        "100",
        "--shortcut",
        "b",
        "--seed",
        "7",
        "-o",
        utf8(&out),
        "--json",
    ]);
    validates("wrote", &v);
    let inspect = inspect_json(&out, &[]);
    assert_eq!(
        inspect["ops"]["Conv"],
        31 + 2,
        "depth − 1 convs, plus 2 projections"
    );
    assert_eq!(inspect["outputs"][0]["shape"][1], 100);
    let out = resnetc(&["zoo", "resnet33", "-o", utf8(&dir.path().join("x.onnx"))]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6n+2"));
}
