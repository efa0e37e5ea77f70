//! Prints the CUDA source resnetc generates for a model and compiles it with NVRTC, with timings.
//!
//! `cargo run --release -p resnetc-cuda --example cuda_source -- MODEL.onnx [--batch N] [--arch sm_80] [--quiet] [--ptxas-verbose]`
//!
//! `--ptxas-verbose` prints ptxas's report per kernel (registers, spills, shared memory).

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut model = None;
    let mut batch = None;
    let mut arch = "sm_80".to_string();
    let mut quiet = false;
    let mut verbose = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batch" => batch = Some(args.next().ok_or("--batch needs a value")?.parse()?),
            "--arch" => arch = args.next().ok_or("--arch needs a value")?,
            "--quiet" => quiet = true,
            "--ptxas-verbose" => verbose = true,
            _ => model = Some(PathBuf::from(a)),
        }
    }
    let model =
        model.ok_or("usage: cuda_source MODEL.onnx [--batch N] [--arch sm_80] [--quiet]")?;
    let t0 = Instant::now();
    let m = resnetc::Model::load_with(&model, &resnetc::LoadOptions::level(3))?;
    let t1 = Instant::now();
    let program = resnetc_cuda::generate(m.graph(), m.info(), batch)?;
    let t2 = Instant::now();
    if !quiet {
        print!("{}", program.source);
    }
    eprintln!(
        "load+optimize {:.1} ms, generate {:.2} ms: {} steps, {} kernels, {} buffers, {} weights",
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3,
        program.steps.len(),
        program.kernels.len(),
        program.buffers.len(),
        program.weights.len()
    );
    let extra: &[&str] = if verbose {
        &["--ptxas-options=-v"]
    } else {
        &[]
    };
    let nvrtc = resnetc_cuda::nvrtc::shared()?;
    let c = nvrtc.compile_with(&program.source, &arch, extra)?;
    eprintln!(
        "NVRTC {arch}: {:.0} ms, PTX {} bytes, cubin {} bytes ({}), log:\n{}",
        c.nvrtc_ms,
        c.ptx.len(),
        c.cubin.as_ref().map_or(0, Vec::len),
        nvrtc.path(),
        c.log,
    );
    Ok(())
}
