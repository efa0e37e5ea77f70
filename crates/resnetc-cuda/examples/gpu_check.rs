//! The CUDA backend on a real GPU: every fixture and pretrained model against PyTorch's outputs and
//! the CPU reference executor, then ResNet-56 timings at batch 1 and 256. `scripts/gpu_check.sh`
//! runs this and compares the timings with PyTorch.
//!
//! `cargo run --release -p resnetc-cuda --example gpu_check -- [--shared DIR] [--json FILE] [--tol 1e-3]`
//!
//! Exits with status 1 when a model is wrong on the GPU, 2 when the GPU or NVRTC is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ndarray::ArrayD;
use resnetc_cuda::{nvrtc, Compiled, CudaProgram, CudaSession, DeviceInfo, GenOptions};
use resnetc_ir::Tensor;
use resnetc_passes::PassOptions;
use serde_json::json;

type Error = Box<dyn std::error::Error>;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs()
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0, f32::max)
}

fn argmax_rows(v: &[f32], width: usize) -> Vec<usize> {
    v.chunks(width)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &x)| if x > b.1 { (i, x) } else { b },
                )
                .0
        })
        .collect()
}

/// Compiles for the device: its own cubin when NVRTC knows the architecture, else PTX for sm_80.
/// Models with the same shapes share a source, so compilations are cached by source.
fn compile_for(dev: &DeviceInfo, program: &CudaProgram) -> Result<Vec<Compiled>, Error> {
    static CACHE: Mutex<BTreeMap<String, Vec<Compiled>>> = Mutex::new(BTreeMap::new());
    if let Some(c) = CACHE.lock().unwrap().get(&program.source) {
        return Ok(c.clone());
    }
    let nv = nvrtc::shared()?;
    let compiled = match nv.compile(&program.source, &dev.arch()) {
        Ok(c) => vec![c],
        Err(resnetc_cuda::CudaError::Compile { log, .. }) if log.contains("arch") => {
            eprintln!(
                "  (NVRTC does not know {}; using PTX for compute_80)",
                dev.arch()
            );
            vec![nv.compile(&program.source, "compute_80")?]
        }
        Err(e) => return Err(e.into()),
    };
    CACHE
        .lock()
        .unwrap()
        .insert(program.source.clone(), compiled.clone());
    Ok(compiled)
}

fn load(path: &Path) -> Result<resnetc::Model, Error> {
    Ok(resnetc::load_model(
        path,
        &PassOptions {
            level: 3,
            ..Default::default()
        },
    )
    .map_err(|e| format!("{}: {e:#}", path.display()))?)
}

fn reference(m: &resnetc::Model, x: &ArrayD<f32>) -> Result<Vec<f32>, Error> {
    let y = resnetc_reference::run(&m.graph, &[Tensor::f32(x.clone())])?;
    Ok(y[0]
        .as_f32()
        .ok_or("the reference output is not f32")?
        .iter()
        .copied()
        .collect())
}

struct Checked {
    name: String,
    batch: usize,
    vs_torch: f32,
    vs_reference: f32,
    note: String,
    ok: bool,
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("gpu_check: {e}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool, Error> {
    let mut args = std::env::args().skip(1);
    let mut shared = std::env::var_os("RESNETC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    let mut json_out = None;
    let mut tol = 1e-3f32;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--shared" => shared = PathBuf::from(args.next().ok_or("--shared needs a folder")?),
            "--json" => json_out = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--tol" => tol = args.next().ok_or("--tol needs a number")?.parse()?,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let dev = DeviceInfo::query(0)?;
    let nv = nvrtc::shared()?;
    println!(
        "device 0: {} ({}, {} SMs), driver CUDA {}.{} ({}); NVRTC {:?} at {}",
        dev.name,
        dev.arch(),
        dev.sm_count,
        dev.driver_version / 1000,
        dev.driver_version % 1000 / 10,
        dev.driver_library,
        nv.version()?,
        nv.path()
    );

    let mut results: Vec<Checked> = Vec::new();
    // Fixtures: their own inputs and PyTorch's outputs.
    #[derive(serde::Deserialize)]
    struct Fixture {
        name: String,
        file: String,
        input: String,
        output: String,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        models: Vec<Fixture>,
    }
    let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(
        repo().join("fixtures/manifest.json"),
    )?)?;
    println!("\n== correctness (max |GPU - expected|, tolerance {tol:e})");
    println!(
        "{:<34} {:>5} {:>11} {:>11}",
        "model", "batch", "vs PyTorch", "vs CPU ref"
    );
    for f in &manifest.models {
        let m = load(&repo().join("fixtures").join(&f.file))?;
        let x = resnetc::npy::read_f32(&repo().join("fixtures").join(&f.input))
            .map_err(|e| format!("{e:#}"))?;
        let torch: Vec<f32> = resnetc::npy::read_f32(&repo().join("fixtures").join(&f.output))
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .copied()
            .collect();
        let batch = x.shape()[0];
        let program = resnetc_cuda::generate_with(
            &m.graph,
            &m.info,
            &GenOptions {
                batch: None,
                sm_count: dev.sm_count,
            },
        )?;
        let images = compile_for(&dev, &program)?;
        let mut s = CudaSession::new(&program, &images, 0)?;
        let got = s.run(&x.iter().copied().collect::<Vec<_>>(), batch)?;
        let (dt, dr) = (
            max_abs_diff(&got, &torch),
            max_abs_diff(&got, &reference(&m, &x)?),
        );
        let ok = dt <= tol && dr <= tol;
        println!(
            "{:<34} {:>5} {:>11.3e} {:>11.3e}  {}",
            f.name,
            batch,
            dt,
            dr,
            if ok { "ok" } else { "WRONG" }
        );
        results.push(Checked {
            name: f.name.clone(),
            batch,
            vs_torch: dt,
            vs_reference: dr,
            note: s.image().to_string(),
            ok,
        });
    }
    // Pretrained models: 1000 CIFAR-10 images against PyTorch's logits (the reference on 100).
    let cifar = shared.join("data/cifar10/test_first1000.bin");
    let (images, labels) = resnetc::cifar::read_batch(&cifar, 1000)
        .map_err(|e| format!("{e:#} (pass --shared DIR)"))?;
    let images = images.into_dyn();
    for name in ["resnet20", "resnet32", "resnet44", "resnet56"] {
        let m = load(&shared.join(format!("models/pretrained/{name}_cifar10_pretrained.onnx")))?;
        let torch: Vec<f32> = resnetc::npy::read_f32(&shared.join(format!(
            "models/pretrained/{name}_cifar10_pretrained.logits_first1000.npy"
        )))
        .map_err(|e| format!("{e:#}"))?
        .iter()
        .copied()
        .collect();
        let program = resnetc_cuda::generate_with(
            &m.graph,
            &m.info,
            &GenOptions {
                batch: None,
                sm_count: dev.sm_count,
            },
        )?;
        let compiled = compile_for(&dev, &program)?;
        let mut s = CudaSession::new(&program, &compiled, 0)?;
        let got = s.run(&images.iter().copied().collect::<Vec<_>>(), 1000)?;
        let first100 = images
            .slice(ndarray::s![..100, .., .., ..])
            .to_owned()
            .into_dyn();
        let (dt, dr) = (
            max_abs_diff(&got, &torch),
            max_abs_diff(&got[..1000], &reference(&m, &first100)?),
        );
        let pred = argmax_rows(&got, 10);
        let same = pred
            .iter()
            .zip(argmax_rows(&torch, 10))
            .filter(|(a, b)| **a == *b)
            .count();
        let correct = pred
            .iter()
            .zip(&labels)
            .filter(|(p, l)| **p == **l as usize)
            .count();
        let ok = dt <= tol && dr <= tol && same == 1000;
        println!(
            "{:<34} {:>5} {:>11.3e} {:>11.3e}  {}",
            name,
            1000,
            dt,
            dr,
            if ok { "ok" } else { "WRONG" }
        );
        println!(
            "{:<34} top-1 {:.1} %, same prediction as PyTorch on {same}/1000 (CPU reference: first 100 images)",
            "",
            correct as f64 / 10.0
        );
        results.push(Checked {
            name: name.to_string(),
            batch: 1000,
            vs_torch: dt,
            vs_reference: dr,
            note: format!("top-1 {:.1} %", correct as f64 / 10.0),
            ok,
        });
    }
    let all_ok = results.iter().all(|r| r.ok);
    println!(
        "{} of {} models correct on the GPU",
        results.iter().filter(|r| r.ok).count(),
        results.len()
    );

    // Timings: ResNet-56, kernels specialised for each batch (`compile --batch N`) and the dynamic
    // program (`compile` without a batch), device time per batch over many runs.
    println!("\n== resnetc ResNet-56 timings (device time per batch, CUDA events)");
    let m = load(&shared.join("models/pretrained/resnet56_cifar10_pretrained.onnx"))?;
    let t = Instant::now();
    let dynamic = resnetc_cuda::generate_with(
        &m.graph,
        &m.info,
        &GenOptions {
            batch: None,
            sm_count: dev.sm_count,
        },
    )?;
    let gen_ms = t.elapsed().as_secs_f64() * 1e3;
    let compiled = compile_for(&dev, &dynamic)?;
    println!(
        "generate {gen_ms:.1} ms; NVRTC {:.0} ms for {} ({} kernels)",
        compiled[0].nvrtc_ms,
        compiled[0].arch,
        dynamic.kernels.len()
    );
    let mut dyn_session = CudaSession::new(&dynamic, &compiled, 0)?;
    let mut bench = Vec::new();
    for batch in [1usize, 256] {
        let iters = if batch == 1 { 500 } else { 100 };
        let fixed = resnetc_cuda::generate_with(
            &m.graph,
            &m.info,
            &GenOptions {
                batch: Some(batch),
                sm_count: dev.sm_count,
            },
        )?;
        let fixed_images = compile_for(&dev, &fixed)?;
        let mut s = CudaSession::new(&fixed, &fixed_images, 0)?;
        let x: Vec<f32> = images.iter().copied().cycle().take(batch * 3072).collect();
        // Check the specialised program too before timing it.
        let got = s.run(&x, batch)?;
        let want = dyn_session.run(&x, batch)?;
        let d = max_abs_diff(&got, &want);
        if d > tol {
            return Err(format!(
                "batch {batch}: the batch-specialised program differs from the dynamic one by {d}"
            )
            .into());
        }
        let ms_fixed = s.time(batch, 20, iters)?;
        let ms_dynamic = dyn_session.time(batch, 20, iters)?;
        println!(
            "batch {batch:>3}: {ms_fixed:8.3} ms ({:9.0} images/s) specialised; {ms_dynamic:8.3} ms dynamic-batch program",
            batch as f64 / ms_fixed * 1e3
        );
        bench.push(json!({ "batch": batch, "ms_specialised": ms_fixed, "ms_dynamic": ms_dynamic, "iters": iters }));
    }

    if let Some(path) = json_out {
        let v = json!({
            "device": { "name": dev.name, "arch": dev.arch(), "sm_count": dev.sm_count, "driver_version": dev.driver_version },
            "nvrtc": { "path": nv.path(), "version": format!("{:?}", nv.version()?) },
            "tolerance": tol,
            "models": results.iter().map(|r| json!({
                "name": r.name, "batch": r.batch, "max_abs_vs_pytorch": r.vs_torch, "max_abs_vs_reference": r.vs_reference, "ok": r.ok, "note": r.note,
            })).collect::<Vec<_>>(),
            "all_correct": all_ok,
            "generate_ms_resnet56": gen_ms,
            "resnet56": bench,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(all_ok)
}
