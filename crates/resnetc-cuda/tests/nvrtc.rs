//! NVRTC compiles the generated source of every fixture and pretrained model for sm_80 and sm_90,
//! giving a cubin and PTX for each, with no errors, no warnings, and no kernel that spills registers
//! (ptxas's report). (A `compute_XX` compilation, PTX only, is checked once.)
//!
//! NVRTC is required: CI installs it (`eval "$(bash scripts/ci-nvrtc.sh)"`), and without
//! it this test fails and says how to install it rather than passing without checking anything.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;

use common::*;
use resnetc_cuda::nvrtc::{self, DEFAULT_ARCHS};

fn nvrtc_or_explain() -> &'static nvrtc::Nvrtc {
    match nvrtc::shared() {
        Ok(n) => n,
        Err(e) => panic!(
            "{e}\n\nThese tests compile the generated CUDA with NVRTC and need it (no GPU): run \
             `python3 -m pip install nvidia-cuda-nvrtc`, or `eval \"$(bash scripts/ci-nvrtc.sh)\"`, \
             or set RESNETC_NVRTC=/path/to/libnvrtc.so"
        ),
    }
}

/// What is wrong in an NVRTC log of a compilation with `--ptxas-options=-v`: anything but ptxas's
/// per-kernel report (a warning, an error), and any kernel that spills registers or uses a stack
/// frame (local memory, which on a GPU is slow memory: the register tiles must fit).
fn ptxas_problems(log: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut kernels = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(report) = line.strip_prefix("ptxas         .") {
            kernels += 1;
            // "     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"
            let numbers: Vec<&str> = report
                .split(',')
                .map(|part| part.split_whitespace().next().unwrap_or(""))
                .collect();
            if numbers != ["0", "0", "0"] {
                problems.push(format!("a kernel uses local memory: {}", report.trim()));
            }
        } else if !line.starts_with("ptxas info") {
            problems.push(format!("NVRTC says: {line}"));
        }
    }
    if kernels == 0 {
        problems.push(format!("no ptxas report in the log:\n{log}"));
    }
    problems
}

#[test]
fn every_model_compiles_for_sm80_sm90_and_ptx_without_warnings() {
    let nv = nvrtc_or_explain();
    let models = all_models();
    // Sources depend only on shapes, epilogues and the batch, so many models share one; each
    // distinct source is compiled once per architecture. Batch 1 and 256 of ResNet-56 add the
    // specialised-batch kernels' tile choices.
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, path) in &models {
        let m = load_fused(path);
        let p = resnetc_cuda::generate(m.graph(), m.info(), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        sources.entry(p.source).or_default().push(name.clone());
        if name == "resnet56" {
            for b in [1, 256] {
                let p = resnetc_cuda::generate(m.graph(), m.info(), Some(b)).unwrap();
                sources
                    .entry(p.source)
                    .or_default()
                    .push(format!("{name} batch {b}"));
            }
        }
    }
    let jobs: Vec<(&String, &Vec<String>, &str)> = sources
        .iter()
        .flat_map(|(src, names)| DEFAULT_ARCHS.iter().map(move |a| (src, names, *a)))
        .collect();
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    let total_ms = Mutex::new(0f64);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some((src, names, arch)) = jobs.get(i) else {
                    break;
                };
                match nv.compile_with(src, arch, &["--ptxas-options=-v"]) {
                    Ok(c) => {
                        *total_ms.lock().unwrap() += c.nvrtc_ms;
                        let mut problems = ptxas_problems(&c.log);
                        if !c.ptx.contains(".entry k0_")
                            || !c.ptx.contains(&format!(".target {arch}"))
                        {
                            problems.push("the PTX has no k0_ entry".to_string());
                        }
                        if arch.starts_with("sm_")
                            && c.cubin.as_ref().is_none_or(|b| !b.starts_with(b"\x7fELF"))
                        {
                            problems.push("no ELF cubin".to_string());
                        }
                        for p in problems {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{} ({arch}): {p}", names.join(", ")));
                        }
                    }
                    Err(e) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{} ({arch}): {e}", names.join(", "))),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "{} models, {} distinct sources, {} NVRTC compilations ({:.1} s of NVRTC time) with {} ({:?})",
        models.len(),
        sources.len(),
        jobs.len(),
        total_ms.into_inner().unwrap() / 1e3,
        nv.path(),
        nv.version()
    );
}

#[test]
fn a_compile_error_is_reported_with_its_log() {
    let nv = nvrtc_or_explain();
    let e = nv
        .compile(
            "extern \"C\" __global__ void k() { undefined_thing(); }",
            "sm_80",
        )
        .unwrap_err();
    match e {
        resnetc_cuda::CudaError::Compile { arch, log } => {
            assert_eq!(arch, "sm_80");
            assert!(log.contains("undefined_thing"), "{log}");
        }
        e => panic!("expected a Compile error, got {e:?}"),
    }
    assert_eq!(
        nv.compile("", "sm_8").unwrap_err(),
        resnetc_cuda::CudaError::BadArch("sm_8".into())
    );
}

#[test]
fn a_virtual_architecture_gives_ptx_only() {
    nvrtc_or_explain();
    let m = load_fused(&repo().join("fixtures/models/r20_a_ts17_static.onnx"));
    let p = resnetc_cuda::generate(m.graph(), m.info(), None).unwrap();
    let c = resnetc_cuda::compile_archs(&p.source, &["compute_90", "sm_80"]).unwrap();
    assert_eq!(
        (c[0].arch.as_str(), c[1].arch.as_str()),
        ("compute_90", "sm_80")
    );
    assert_eq!((c[0].log.as_str(), c[1].log.as_str()), ("", ""));
    assert!(c[0].cubin.is_none() && c[1].cubin.is_some());
    assert!(c[0].ptx.contains(".target sm_90") && c[0].ptx.contains(".entry k0_conv"));
}

#[test]
fn the_ptxas_check_sees_spills_and_warnings() {
    let clean = "ptxas info    : Compiling entry function 'k0_conv' for 'sm_90'\n\
                 ptxas info    : Function properties for k0_conv\n\
                 ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
                 ptxas info    : Used 64 registers, used 1 barriers, 17408 bytes smem\n";
    assert_eq!(ptxas_problems(clean), Vec::<String>::new());
    let spills = clean.replace(
        "0 bytes stack frame, 0 bytes spill stores",
        "8 bytes stack frame, 8 bytes spill stores",
    );
    assert!(ptxas_problems(&spills)[0].contains("local memory"));
    let warning = format!("{clean}ptxas warning : Registers are spilled to local memory\n");
    assert!(ptxas_problems(&warning)[0].contains("ptxas warning"));
    assert!(ptxas_problems("")[0].contains("no ptxas report"));
}
