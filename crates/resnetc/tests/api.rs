//! The library's front door: error kinds for what users get wrong, artifacts that refuse parts of
//! another model, and files written whole or not at all.

use resnetc::{Device, ErrorKind, LoadOptions, Model, Target};
use resnetc_testkit::{fixture, tmp};

#[test]
fn errors_have_the_kind_of_what_went_wrong() {
    let dir = tmp("kinds");
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\x08\x07 not a model \xff\xff").unwrap();
    let future = dir.path().join("future.onnx");
    {
        // A real fixture with its default-domain opset raised past what resnetc reads.
        use prost::Message;
        let bytes = std::fs::read(fixture("r20_a_ts17_static").path()).unwrap();
        let mut m = resnetc::onnx::proto::ModelProto::decode(bytes.as_slice()).unwrap();
        for o in &mut m.opset_import {
            if matches!(o.domain(), "" | "ai.onnx") {
                o.version = Some(99);
            }
        }
        std::fs::write(&future, m.encode_to_vec()).unwrap();
    }
    let cases: &[(&str, resnetc::Result<Model>, ErrorKind)] = &[
        (
            "missing file",
            Model::load(dir.path().join("missing.onnx")),
            ErrorKind::Environment,
        ),
        (
            "a directory",
            Model::load(dir.path()),
            ErrorKind::Environment,
        ),
        ("random bytes", Model::load(&junk), ErrorKind::InvalidModel),
        (
            "opset 99",
            Model::load(&future),
            ErrorKind::UnsupportedModel,
        ),
        (
            "unknown pass",
            Model::load_with(
                fixture("r20_a_ts17_static").path(),
                &LoadOptions {
                    disabled_passes: vec!["no-such-pass".into()],
                    ..LoadOptions::default()
                },
            ),
            ErrorKind::InvalidInput,
        ),
    ];
    for (what, result, kind) in cases {
        let e = result.as_ref().expect_err(what);
        assert_eq!(e.kind(), *kind, "{what}: {e}");
    }
    assert_eq!(
        "gpu".parse::<Target>().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        "cuda:sm_90".parse::<Target>().unwrap(),
        Target::Cuda {
            archs: vec!["sm_90".into()]
        }
    );
    assert_eq!("cuda".parse::<Target>().unwrap(), Target::cuda());
}

/// A CPU plan copied from another model's artifact (its SHA-256 recomputed, as a careless tool
/// would) is refused on load: every section is tied to the graph it was compiled from.
#[test]
fn a_section_from_another_artifact_is_refused() {
    let dir = tmp("graft");
    let compile = |name: &str| {
        let m = Model::load(fixture(name).path()).unwrap();
        resnetc::compile(&m, Target::Cpu).unwrap().proto().clone()
    };
    let mut a = compile("r20_b_ts17_dynamic");
    let b = compile("r20_a_ts17_dynamic");
    a.cpu = b.cpu.clone();
    let path = dir.path().join("grafted.rnc");
    std::fs::write(&path, resnetc::rnc::encode(&a)).unwrap();
    let e = Model::load(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    assert!(e.to_string().contains("compiled from another graph"), "{e}");
}

#[test]
fn compiled_artifacts_never_replace_their_source_and_replace_old_ones_whole() {
    let dir = tmp("save");
    let src = dir.path().join("m.onnx");
    std::fs::copy(fixture("r20_b_ts17_dynamic").path(), &src).unwrap();
    let model = Model::load(&src).unwrap();
    let artifact = resnetc::compile(&model, Target::Cpu).unwrap();
    let e = artifact.save(&src).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(
        std::fs::read(&src).unwrap(),
        std::fs::read(fixture("r20_b_ts17_dynamic").path()).unwrap()
    );

    let rnc = dir.path().join("m.rnc");
    std::fs::write(&rnc, b"an old file").unwrap();
    artifact.save(&rnc).unwrap();
    assert_eq!(std::fs::read(&rnc).unwrap(), artifact.to_bytes());
    // Nothing is left beside it: the temporary file was renamed into place.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // An artifact is not compiled again.
    let loaded = Model::load(&rnc).unwrap();
    assert_eq!(
        resnetc::compile(&loaded, Target::Cpu)
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::InvalidInput)
    );
}

/// One session, many runs: the same result each time, and equal to a fresh session's.
#[test]
fn sessions_are_reused() {
    let model = Model::load(fixture("r20_a_ts17_dynamic").path()).unwrap();
    let x = fixture("r20_a_ts17_dynamic").input();
    let mut session = model.session(Device::Cpu).unwrap();
    let first = session.run_dyn(x.view()).unwrap();
    for _ in 0..3 {
        assert_eq!(session.run_dyn(x.view()).unwrap(), first);
    }
    let reference = model
        .session(Device::Reference)
        .unwrap()
        .run_dyn(x.view())
        .unwrap();
    let diff = (&first - &reference)
        .iter()
        .fold(0f32, |m, d| m.max(d.abs()));
    assert!(diff < 1e-4, "{diff}");
    assert!(
        session.describe().contains(" kernels, "),
        "{}",
        session.describe()
    );
}
