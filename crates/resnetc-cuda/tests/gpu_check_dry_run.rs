//! The GPU check (`examples/gpu_check.rs`, what `scripts/gpu_check.sh` runs on a GPU machine) run
//! whole on the fake driver: every fixture, the pretrained models (on 8 images) and the ResNet-56
//! timing path, so that the one run a lent GPU gets does not fail on the check's own code.
//!
//! The example binary is the one `cargo test` builds beside this test (`target/<profile>/examples`).
//! It runs twice: `--compile-only --quick --keep DIR` writes every program it compiles, the test builds the
//! fake driver's kernel library for each, and `--quick --reuse DIR` then runs the check on those
//! images.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cuda_host::FakeCuda;
use common::shared;
use resnetc_cuda::Compiled;

fn gpu_check_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/gpu_check_dry_run-HASH → target/<profile>/examples/gpu_check
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples/gpu_check"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} is missing: `cargo test -p resnetc-cuda` builds it (or `cargo build -p resnetc-cuda --example gpu_check`)",
        bin.display()
    );
    bin
}

/// The programs `--keep` wrote: source, kernel names and images.
fn kept(dir: &std::path::Path) -> Vec<(String, Vec<String>, Vec<Compiled>)> {
    let mut programs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    programs.sort();
    programs
        .iter()
        .map(|p| {
            let source = std::fs::read_to_string(p.join("kernels.cu")).unwrap();
            let kernels = std::fs::read_to_string(p.join("kernels.txt"))
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            let mut images = Vec::new();
            for e in std::fs::read_dir(p).unwrap() {
                let path = e.unwrap().path();
                if path.extension().is_some_and(|x| x == "ptx") {
                    let arch = path.file_stem().unwrap().to_string_lossy().into_owned();
                    images.push(Compiled {
                        ptx: std::fs::read_to_string(&path).unwrap(),
                        cubin: std::fs::read(path.with_extension("cubin")).ok(),
                        arch,
                        log: String::new(),
                        nvrtc_ms: 0.0,
                    });
                }
            }
            (source, kernels, images)
        })
        .collect()
}

#[test]
fn gpu_check_runs_whole_on_the_fake_driver() {
    let bin = gpu_check_binary();
    let fake = FakeCuda::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::Builder::new()
        .prefix("resnetc-gpu-check-")
        .tempdir()
        .unwrap();
    let (keep, json) = (dir.path().join("programs"), dir.path().join("resnetc.json"));
    let check = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(&bin)
            .arg("--shared")
            .arg(shared())
            .args(args)
            .envs(fake.env())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "gpu_check {args:?} failed ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    check(&[
        "--compile-only".as_ref(),
        "--quick".as_ref(),
        "--keep".as_ref(),
        keep.as_os_str(),
    ]);
    let programs = kept(&keep);
    assert!(programs.len() >= 10, "{} programs kept", programs.len());
    // Two compilers at a time (the CI machine's cores).
    let fake = &fake;
    std::thread::scope(|s| {
        for chunk in programs.chunks(programs.len().div_ceil(2)) {
            s.spawn(move || {
                for (source, kernels, images) in chunk {
                    assert!(!images.is_empty());
                    fake.add(source, kernels, images);
                }
            });
        }
    });

    let text = check(&[
        "--quick".as_ref(),
        "--reuse".as_ref(),
        keep.as_os_str(),
        "--json".as_ref(),
        json.as_os_str(),
    ]);
    // Every program was compiled once, by the first run.
    assert!(text.contains("NVRTC: 0 programs"), "{text}");
    assert!(
        text.contains("device 0: resnetc fake CUDA device"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["all_correct"], true, "{v}");
    let models = v["models"].as_array().unwrap();
    let fixtures = common::fixtures().len();
    assert_eq!(models.len(), fixtures + 4, "{v}");
    for m in models {
        assert_eq!(m["ok"], true, "{m}");
        assert!(m["max_abs_vs_pytorch"].as_f64().unwrap() <= 1e-3, "{m}");
    }
    let timed: Vec<u64> = v["resnet56"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(timed, [1, 2]);
}
