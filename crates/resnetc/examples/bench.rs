//! `resnetc bench` with a choice of kernel set and of Winograd, which the CLI does not offer:
//! `cargo run --release --example bench -- MODEL [--batch N] [--threads N] [--iters N] [--isa portable|avx2|avx512|neon] [--winograd|--winograd-f2|--winograd-f4|--no-winograd] [--json]`

use std::path::PathBuf;

use resnetc::cpu::{bench, CpuOptions, CpuPlan, Isa, Winograd};

fn main() -> anyhow_free::Result {
    let mut args = std::env::args().skip(1);
    let (mut model, mut batch, mut threads, mut iters, mut json, mut isa, mut winograd) =
        (None, 1, 0, 20, false, Isa::Auto, None);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--batch" => batch = val()?.parse().map_err(|e| format!("{e}"))?,
            "--threads" => threads = val()?.parse().map_err(|e| format!("{e}"))?,
            "--iters" => iters = val()?.parse().map_err(|e| format!("{e}"))?,
            "--isa" => {
                isa = match val()?.as_str() {
                    "portable" => Isa::Portable,
                    "avx2" => Isa::Avx2,
                    "avx512" => Isa::Avx512,
                    "neon" => Isa::Neon,
                    _ => Isa::Auto,
                }
            }
            "--json" => json = true,
            "--no-winograd" => winograd = Some(Winograd::Off),
            "--winograd" => winograd = Some(Winograd::Auto),
            "--winograd-f4" => winograd = Some(Winograd::F4),
            "--winograd-f2" => winograd = Some(Winograd::F2),
            _ => model = Some(PathBuf::from(a)),
        }
    }
    let model = model.ok_or("usage: bench MODEL [--batch N] [--threads N] [--iters N] [--json]")?;
    let m = resnetc::Model::load(&model).map_err(|e| format!("{e:#}"))?;
    let plan = CpuPlan::compile_with(m.graph(), m.info(), &CpuOptions { isa, winograd })
        .map_err(|e| e.to_string())?;
    let timing = resnetc::cpu::Timing {
        warmup: None,
        iters,
        duration_s: None,
    };
    let r = bench(&plan, batch, threads, &timing).map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{}: batch {} threads {} ({}): median {:.3} ms, {:.1} images/s, {:.1} GFLOP/s, arena {} KiB",
            model.display(),
            r.batch,
            r.threads,
            r.isa,
            r.median_ms,
            r.images_per_s,
            r.gflops,
            r.arena_bytes / 1024
        );
    }
    Ok(())
}

mod anyhow_free {
    pub type Result = std::result::Result<(), String>;
}
