//! The CUDA backend on a real GPU: every fixture and pretrained model against PyTorch's outputs and
//! resnetc's CPU backend, then ResNet-56 timings at batch 1 and 256. `scripts/gpu_check.sh` runs
//! this and compares the timings with PyTorch.
//!
//! `cargo run --release -p resnetc-cuda --example gpu_check -- [--repo DIR] [--shared DIR] [--json FILE] [--tol 1e-3] [--compile-only] [--keep DIR] [--reuse DIR] [--quick]`
//!
//! `--repo` is the checkout whose `fixtures/` to read (default: the one this was built in, else the
//! current folder), for a binary built on one machine and run on another. `--compile-only` stops
//! after generating and compiling every program, and needs no GPU. `--keep DIR` writes each
//! distinct program there (`program-NN/`: the source, its kernel names, PTX and cubin per
//! architecture); `--reuse DIR` takes the images of such a folder for the sources it holds instead
//! of compiling them again. `--quick` is a dry run of the whole check: the pretrained models on 8 images,
//! ResNet-56 timed at batches 1 and 2 with 2 runs each; the tests run it on the fake driver
//! (`tests/gpu_check_dry_run.rs`), where the timings mean nothing.
//!
//! Exits with status 1 when a model is wrong on the GPU, 2 when the GPU or NVRTC is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ndarray::ArrayD;
use resnetc_cuda::{nvrtc, Compiled, CudaProgram, CudaSession, DeviceInfo, GenOptions};
use serde_json::json;

type Error = Box<dyn std::error::Error>;

/// The checkout this example was built in, when it still exists; else the current folder.
fn default_repo() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("fixtures/manifest.json").exists() {
        built
    } else {
        PathBuf::from(".")
    }
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
fn compile_one(arch: &str, source: &str) -> Result<Vec<Compiled>, String> {
    let nv = nvrtc::shared().map_err(|e| e.to_string())?;
    match nv.compile(source, arch) {
        Ok(c) => Ok(vec![c]),
        Err(resnetc_cuda::CudaError::Compile { log, .. }) if log.contains("arch") => {
            eprintln!("  (NVRTC does not know {arch}; using PTX for compute_80)");
            nv.compile(source, "compute_80")
                .map(|c| vec![c])
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Compiled images by source: models with the same shapes share a source.
type Cache = BTreeMap<String, Vec<Compiled>>;

/// Compiles every distinct source among `programs` at once, one thread each up to the machine's
/// cores (NVRTC takes seconds per program and is safe to call from several threads).
fn compile_all<'a>(
    arch: &str,
    programs: impl IntoIterator<Item = &'a CudaProgram>,
    cache: &mut Cache,
) -> Result<(), Error> {
    let mut todo: Vec<&str> = programs
        .into_iter()
        .map(|p| p.source.as_str())
        .filter(|s| !cache.contains_key(*s))
        .collect();
    todo.sort_unstable();
    todo.dedup();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Vec<(usize, Result<Vec<Compiled>, String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(todo.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(src) = todo.get(i) else { break mine };
                        mine.push((i, compile_one(arch, src)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("an NVRTC thread panicked"))
            .collect()
    });
    println!(
        "NVRTC: {} programs on {} threads in {:.1} s",
        todo.len(),
        threads.min(todo.len()).max(1),
        t.elapsed().as_secs_f64()
    );
    for (i, r) in results {
        cache.insert(todo[i].to_string(), r?);
    }
    Ok(())
}

/// Writes each distinct program among `programs` to `dir/program-NN/`: `kernels.cu`, `kernels.txt`
/// (the kernel names, one a line) and `ARCH.ptx` / `ARCH.cubin` for each compiled image.
fn keep<'a>(
    dir: &Path,
    programs: impl IntoIterator<Item = &'a CudaProgram>,
    cache: &Cache,
) -> Result<(), Error> {
    let mut distinct = BTreeMap::new();
    for p in programs {
        distinct.entry(p.source.as_str()).or_insert(&p.kernels);
    }
    for (i, (source, kernels)) in distinct.into_iter().enumerate() {
        let d = dir.join(format!("program-{i:02}"));
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("kernels.cu"), source)?;
        std::fs::write(d.join("kernels.txt"), kernels.join("\n") + "\n")?;
        for c in &cache[source] {
            std::fs::write(d.join(format!("{}.ptx", c.arch)), &c.ptx)?;
            if let Some(cubin) = &c.cubin {
                std::fs::write(d.join(format!("{}.cubin", c.arch)), cubin)?;
            }
        }
    }
    println!("kept the programs in {}", dir.display());
    Ok(())
}

/// Fills `cache` with the images of the programs a `--keep DIR` run wrote, so that NVRTC compiles
/// only sources that changed since.
fn reuse(dir: &Path, cache: &mut Cache) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let d = entry?.path();
        let Ok(source) = std::fs::read_to_string(d.join("kernels.cu")) else {
            continue;
        };
        let mut images = Vec::new();
        for file in std::fs::read_dir(&d)? {
            let path = file?.path();
            if path.extension().is_some_and(|x| x == "ptx") {
                images.push(Compiled {
                    arch: path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    ptx: std::fs::read_to_string(&path)?,
                    cubin: std::fs::read(path.with_extension("cubin")).ok(),
                    log: String::new(),
                    nvrtc_ms: 0.0,
                });
            }
        }
        cache.insert(source, images);
    }
    Ok(())
}

fn compiled<'c>(cache: &'c Cache, program: &CudaProgram) -> &'c [Compiled] {
    &cache[&program.source]
}

fn load(path: &Path) -> Result<resnetc::Model, Error> {
    Ok(
        resnetc::Model::load_with(path, &resnetc::LoadOptions::level(3))
            .map_err(|e| format!("{}: {e:#}", path.display()))?,
    )
}

/// The CPU backend's output for `x`, on all cores.
fn cpu(m: &resnetc::Model, x: &ArrayD<f32>) -> Result<Vec<f32>, Error> {
    let y = m
        .session(resnetc::Device::Cpu)
        .and_then(|mut s| s.run_dyn(x.view()))
        .map_err(|e| format!("{e:#}"))?;
    Ok(y.iter().copied().collect())
}

struct Checked {
    name: String,
    batch: usize,
    vs_torch: f32,
    vs_cpu: f32,
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

/// A model to check: its graph, input, PyTorch's output and generated program.
struct Case {
    name: String,
    model: resnetc::Model,
    x: ArrayD<f32>,
    torch: Vec<f32>,
    program: CudaProgram,
}

fn run() -> Result<bool, Error> {
    let mut args = std::env::args().skip(1);
    let mut repo = default_repo();
    let mut shared = std::env::var_os("RESNETC_SHARED").map(PathBuf::from);
    let mut json_out = None;
    let mut tol = 1e-3f32;
    let mut compile_only = false;
    let mut keep_dir = None;
    let mut reuse_dir = None;
    let mut quick = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repo" => repo = PathBuf::from(args.next().ok_or("--repo needs a folder")?),
            "--shared" => {
                shared = Some(PathBuf::from(args.next().ok_or("--shared needs a folder")?))
            }
            "--json" => json_out = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--tol" => tol = args.next().ok_or("--tol needs a number")?.parse()?,
            "--compile-only" => compile_only = true,
            "--keep" => keep_dir = Some(PathBuf::from(args.next().ok_or("--keep needs a folder")?)),
            "--reuse" => {
                reuse_dir = Some(PathBuf::from(args.next().ok_or("--reuse needs a folder")?))
            }
            "--quick" => quick = true,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let shared = shared.unwrap_or_else(|| repo.join("../shared"));
    // Without a GPU, `--compile-only` still loads, generates and compiles everything (for an
    // H100: sm_90, 132 SMs), which checks this program and the models before a GPU is at hand.
    let dev = match DeviceInfo::query(0) {
        Ok(dev) => Some(dev),
        Err(e) if compile_only => {
            println!("no GPU ({e}); compiling for sm_90 with 132 SMs");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (arch, sm_count) = dev
        .as_ref()
        .map_or(("sm_90".to_string(), 132), |d| (d.arch(), d.sm_count));
    let nv = nvrtc::shared()?;
    if let Some(dev) = &dev {
        println!(
            "device 0: {} ({}, {} SMs), driver CUDA {}.{} ({})",
            dev.name,
            dev.arch(),
            dev.sm_count,
            dev.driver_version / 1000,
            dev.driver_version % 1000 / 10,
            dev.driver_library,
        );
    }
    println!("NVRTC {:?} at {}", nv.version()?, nv.path());
    let generate = |m: &resnetc::Model, batch: Option<usize>| {
        resnetc_cuda::generate_with(m.graph(), m.info(), &GenOptions { batch, sm_count })
    };

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
    let fixtures = repo.join("fixtures");
    let manifest: Manifest = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("manifest.json"))
            .map_err(|e| format!("{}: {e} (pass --repo DIR)", fixtures.display()))?,
    )?;
    let mut cases = Vec::new();
    for f in &manifest.models {
        let model = load(&fixtures.join(&f.file))?;
        let x = resnetc::npy::read_f32(&fixtures.join(&f.input)).map_err(|e| format!("{e:#}"))?;
        let torch = resnetc::npy::read_f32(&fixtures.join(&f.output))
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .copied()
            .collect();
        let program = generate(&model, None)?;
        cases.push(Case {
            name: f.name.clone(),
            model,
            x,
            torch,
            program,
        });
    }
    // Pretrained models: 1000 CIFAR-10 images against PyTorch's logits.
    let cifar = shared.join("data/cifar10/test_first1000.bin");
    let (images, labels) = resnetc::cifar::read_batch(&cifar, if quick { 8 } else { 1000 })
        .map_err(|e| format!("{e:#} (pass --shared DIR)"))?;
    let images = images.into_dyn();
    let pretrained = cases.len();
    for name in ["resnet20", "resnet32", "resnet44", "resnet56"] {
        let model =
            load(&shared.join(format!("models/pretrained/{name}_cifar10_pretrained.onnx")))?;
        let torch = resnetc::npy::read_f32(&shared.join(format!(
            "models/pretrained/{name}_cifar10_pretrained.logits_first1000.npy"
        )))
        .map_err(|e| format!("{e:#}"))?
        .iter()
        .copied()
        .take(images.len() / 3072 * 10)
        .collect();
        let program = generate(&model, None)?;
        cases.push(Case {
            name: name.to_string(),
            model,
            x: images.clone(),
            torch,
            program,
        });
    }
    // ResNet-56 for the timings: kernels specialised for each batch (`compile --batch N`) beside
    // the dynamic program (`compile` without a batch).
    let r56 = &cases.last().ok_or("no pretrained models")?.model;
    let t = Instant::now();
    let dynamic = generate(r56, None)?;
    let gen_ms = t.elapsed().as_secs_f64() * 1e3;
    let bench_batches = if quick { [1, 2] } else { [1, 256] };
    let fixed = [
        generate(r56, Some(bench_batches[0]))?,
        generate(r56, Some(bench_batches[1]))?,
    ];

    let mut cache = Cache::new();
    if let Some(dir) = &reuse_dir {
        reuse(dir, &mut cache)?;
    }
    compile_all(
        &arch,
        cases.iter().map(|c| &c.program).chain(&fixed),
        &mut cache,
    )?;
    if let Some(dir) = &keep_dir {
        keep(dir, cases.iter().map(|c| &c.program).chain(&fixed), &cache)?;
    }
    let dev = match dev {
        Some(dev) if !compile_only => dev,
        _ => {
            println!(
                "compile-only: {} models generated and compiled",
                cases.len()
            );
            return Ok(true);
        }
    };

    println!("\n== correctness (max |GPU - expected|, tolerance {tol:e})");
    println!(
        "{:<34} {:>5} {:>11} {:>11}",
        "model", "batch", "vs PyTorch", "vs CPU"
    );
    let mut results: Vec<Checked> = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let batch = c.x.shape()[0];
        let mut s = CudaSession::new(&c.program, compiled(&cache, &c.program), 0)?;
        let got = s.run(&c.x.iter().copied().collect::<Vec<_>>(), batch)?;
        let (dt, dc) = (
            max_abs_diff(&got, &c.torch),
            max_abs_diff(&got, &cpu(&c.model, &c.x)?),
        );
        let mut ok = dt <= tol && dc <= tol;
        let mut note = s.image().to_string();
        if i >= pretrained {
            let pred = argmax_rows(&got, 10);
            let same = pred
                .iter()
                .zip(argmax_rows(&c.torch, 10))
                .filter(|(a, b)| **a == *b)
                .count();
            let correct = pred
                .iter()
                .zip(&labels)
                .filter(|(p, l)| **p == **l as usize)
                .count();
            ok &= same == batch;
            note = format!(
                "top-1 {:.1} %, same prediction as PyTorch on {same}/{batch}",
                correct as f64 * 100.0 / batch as f64
            );
        }
        println!(
            "{:<34} {:>5} {:>11.3e} {:>11.3e}  {}  {note}",
            c.name,
            batch,
            dt,
            dc,
            if ok { "ok" } else { "WRONG" }
        );
        results.push(Checked {
            name: c.name.clone(),
            batch,
            vs_torch: dt,
            vs_cpu: dc,
            note,
            ok,
        });
    }
    let all_ok = results.iter().all(|r| r.ok);
    println!(
        "{} of {} models correct on the GPU",
        results.iter().filter(|r| r.ok).count(),
        results.len()
    );

    println!("\n== resnetc ResNet-56 timings (device time per batch, CUDA events)");
    let dyn_images = compiled(&cache, &dynamic);
    println!(
        "generate {gen_ms:.1} ms; NVRTC {:.0} ms for {} ({} kernels)",
        dyn_images[0].nvrtc_ms,
        dyn_images[0].arch,
        dynamic.kernels.len()
    );
    let mut dyn_session = CudaSession::new(&dynamic, dyn_images, 0)?;
    let mut bench = Vec::new();
    for program in &fixed {
        let batch = program
            .batch
            .ok_or("a batch-specialised program without a batch")?;
        let (warmup, iters) = match (quick, batch) {
            (true, _) => (1, 2),
            (false, 1) => (20, 500),
            (false, _) => (20, 100),
        };
        let mut s = CudaSession::new(program, compiled(&cache, program), 0)?;
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
        let ms_fixed = s.time(batch, warmup, iters)?;
        let ms_dynamic = dyn_session.time(batch, warmup, iters)?;
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
                "name": r.name, "batch": r.batch, "max_abs_vs_pytorch": r.vs_torch, "max_abs_vs_cpu": r.vs_cpu, "ok": r.ok, "note": r.note,
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
