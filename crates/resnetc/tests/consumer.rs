//! A separate cargo project (`tests/consumer`) that depends on this crate by path and uses only its
//! public API: the pretrained ResNet-56 on the 1000 shared images gives PyTorch's predictions one
//! for one, and an `.rnc` it compiles loads and gives the same logits.

use std::process::Command;

#[test]
fn a_separate_project_runs_resnet56_through_the_public_api() {
    let repo = resnetc_testkit::repo();
    let shared = resnetc_testkit::shared();
    let out = resnetc_testkit::tmp("consumer");
    // A target folder of its own: the outer `cargo test` holds this workspace's.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("consumer-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = Command::new(cargo)
        .args(["run", "--quiet", "--locked", "--manifest-path"])
        .arg(repo.join("tests/consumer/Cargo.toml"))
        .arg("--")
        .arg(&shared)
        .arg(out.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("running cargo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the consumer project failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("0 predictions differ from PyTorch's"),
        "{stdout}"
    );
    assert!(
        stdout.contains("logits equal to the ONNX model's"),
        "{stdout}"
    );
    eprintln!("{stdout}");
}
