//! The `resnetc` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use resnetc::{load_model, npy, Device};
use resnetc_ir::Tensor;
use resnetc_passes::PassOptions;

/// A compiler toolchain for CIFAR ResNets exported from PyTorch to ONNX.
#[derive(Parser)]
#[command(name = "resnetc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Optimizer settings shared by the commands that load a model.
#[derive(clap::Args, Clone, Debug)]
struct OptArgs {
    /// 0: canonicalize only; 1: fold BatchNorm, normalize pooling and flatten; 2-3: fuse shortcuts and conv epilogues.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=3))]
    opt_level: Option<u8>,
    /// Skip a pass by name (repeatable).
    #[arg(long = "disable-pass", value_name = "NAME")]
    disable_pass: Vec<String>,
    /// Print the IR after the named pass, or after every pass with `all`.
    #[arg(long, value_name = "NAME|all")]
    print_ir_after: Option<String>,
    /// Print what each pass rewrote and why it skipped candidates.
    #[arg(long)]
    pass_report: bool,
    /// CPU backend: which stride-1 3×3 convolutions run as Winograd. `auto` (the default): F(4×4)
    /// on outputs of 16×16 and up, F(2×2) below; `off`: direct convolution everywhere, the closest
    /// to the reference (F(4×4) rounds about 50× more, still far inside the project's tolerance).
    /// Given explicitly, it also replaces the plan a `.rnc` stores.
    #[arg(long, value_enum)]
    winograd: Option<WinogradArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WinogradArg {
    Auto,
    F4,
    F2,
    Off,
}

impl OptArgs {
    fn load(&self, path: &Path, default_level: u8) -> Result<resnetc::Model> {
        let opts = PassOptions {
            level: self.opt_level.unwrap_or(default_level),
            disabled: self.disable_pass.clone(),
            verify: true,
        };
        let which = self.print_ir_after.clone();
        let mut m = resnetc::load_any(path, &opts, &mut |pass, graph| {
            if which.as_deref().is_some_and(|w| w == "all" || w == pass) {
                eprintln!("// IR after {pass}");
                eprint!(
                    "{}",
                    resnetc_ir::dump(graph, resnetc_ir::validate(graph).ok().as_ref())
                );
            }
        })?;
        if self.pass_report {
            for r in &m.reports {
                eprintln!("{r}");
            }
        }
        m.cpu.winograd = self.winograd.map(|w| match w {
            WinogradArg::Auto => resnetc_cpu::Winograd::Auto,
            WinogradArg::F4 => resnetc_cpu::Winograd::F4,
            WinogradArg::F2 => resnetc_cpu::Winograd::F2,
            WinogradArg::Off => resnetc_cpu::Winograd::Off,
        });
        Ok(m)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Runs the built-in ResNet-20 on its bundled images and checks it against PyTorch; with
    /// `../shared` present, also classifies the CIFAR-10 test images with the pretrained ResNet-20.
    Demo {
        /// Where the shared data lives.
        #[arg(long, default_value = "../shared")]
        shared: PathBuf,
    },
    /// Shows a model's inputs, outputs, op counts, parameters and MACs per image.
    Inspect {
        model: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Print the graph in resnetc's IR after loading.
        #[arg(long)]
        dump: bool,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Runs a model on a float32 NCHW `.npy` input of any batch size.
    Run {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// Where to write the output tensor (.npy); without it, prints the top-1 class per image.
        #[arg(long)]
        output: Option<PathBuf>,
        /// `cpu`: the fast CPU backend (falls back to the reference executor for graphs it cannot run);
        /// `reference`: the plain interpreter every backend is tested against; `cuda`: GPU 0, with
        /// the program a `.rnc` compiled for CUDA stores, else one compiled for the GPU now (NVRTC).
        #[arg(long, default_value = "cpu")]
        device: Device,
        /// Threads for the CPU backend (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Measures a backend (the CPU's, or CUDA's on GPU 0): warm-up, then median latency, images/s and GFLOP/s.
    Bench {
        model: PathBuf,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 20)]
        iters: usize,
        #[arg(long)]
        json: bool,
        /// `cpu` or `cuda` (as for `run`).
        #[arg(long, default_value = "cpu")]
        device: Device,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Optimizes a model and writes a compiled artifact (.rnc) for a target.
    Compile {
        model: PathBuf,
        /// `cpu` (the default) or `cuda` / `cuda:sm_XX`.
        #[arg(long, default_value = "cpu")]
        target: String,
        /// Where to write the artifact (default: the model's name with .rnc).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Fix the batch size (the model's own batch, possibly symbolic, by default).
        #[arg(long)]
        batch: Option<usize>,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Writes the imported graph back as ONNX.
    Export {
        model: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Write the optimized graph (the default opt level becomes 3), as standard-domain ONNX.
        #[arg(long)]
        optimize: bool,
        /// Write fused convolutions and shortcuts as resnetc's own `ai.resnetc` ops (only resnetc reads them).
        #[arg(long)]
        keep_fused: bool,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Checks a model's optimized graph against expected outputs (PyTorch's), resnetc's unoptimized
    /// graph and tract-onnx; on failure, names the first node where the values diverge.
    Validate(resnetc::validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Demo { shared } => demo(&shared),
        Command::Inspect {
            model,
            json,
            dump,
            opt,
        } => inspect(&opt.load(&model, 0)?, &model, json, dump),
        Command::Run {
            model,
            input,
            output,
            device,
            threads,
            opt,
        } => run(
            &opt.load(&model, 3)?,
            &input,
            output.as_deref(),
            device,
            threads.unwrap_or(0),
        ),
        Command::Bench {
            model,
            batch,
            threads,
            iters,
            json,
            device,
            opt,
        } => bench(
            &opt.load(&model, 3)?,
            batch,
            threads.unwrap_or(0),
            iters,
            json,
            device,
        ),
        Command::Compile {
            model,
            target,
            output,
            batch,
            opt,
        } => compile(&model, &target, output, batch, &opt),
        Command::Export {
            model,
            output,
            optimize,
            keep_fused,
            opt,
        } => {
            let m = opt.load(&model, if optimize { 3 } else { 0 })?;
            resnetc_onnx::export_file_with(
                &m.graph,
                &m.info,
                &output,
                resnetc_onnx::ExportOptions { keep_fused },
            )?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::Validate(args) => resnetc::validate::cli(&args),
    }
}

fn compile(
    model: &Path,
    target: &str,
    output: Option<PathBuf>,
    batch: Option<usize>,
    opt: &OptArgs,
) -> Result<()> {
    let archs: Vec<String> = match target.split_once(':') {
        _ if target == "cpu" => Vec::new(),
        _ if target == "cuda" => resnetc_cuda::DEFAULT_ARCHS
            .iter()
            .map(|a| a.to_string())
            .collect(),
        Some(("cuda", arch))
            if arch
                .strip_prefix("sm_")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())) =>
        {
            vec![arch.to_string()]
        }
        _ => bail!("unknown target '{target}'; use cpu, cuda or cuda:sm_XX (e.g. cuda:sm_90)"),
    };
    let start = std::time::Instant::now();
    let mut m = opt.load(model, resnetc_passes::MAX_LEVEL)?;
    if m.artifact.is_some() {
        bail!(
            "{} is already a compiled artifact; compile the ONNX model it came from",
            model.display()
        );
    }
    if let Some(b) = batch {
        resnetc::fix_batch(&mut m.graph, b)?;
        m.info = resnetc_ir::validate(&m.graph)?;
    }
    let onnx = resnetc_onnx::export_with(
        &m.graph,
        &m.info,
        resnetc_onnx::ExportOptions { keep_fused: true },
    )?;
    let source =
        std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let level = opt.opt_level.unwrap_or(resnetc_passes::MAX_LEVEL) as u32;
    let mut artifact = resnetc_artifact::new_artifact(
        prost::Message::encode_to_vec(&onnx),
        &source,
        &name,
        target,
        level,
        batch.unwrap_or(0) as u64,
    );
    if target == "cpu" {
        // The packed plan, so that `run` packs nothing. A graph the CPU backend cannot run still
        // compiles: the artifact then holds only the graph, which `run` gives the reference executor.
        match resnetc_cpu::CpuPlan::compile_with(&m.graph, &m.info, &m.cpu) {
            Ok(plan) => {
                let bytes = plan.to_bytes();
                eprintln!(
                    "packed the CPU plan for {} ({} steps, {} Winograd convolutions, {:.1} MiB)",
                    plan.isa(),
                    plan.describe().len(),
                    plan.winograd_convs(),
                    bytes.len() as f64 / (1 << 20) as f64
                );
                artifact.cpu = Some(resnetc_artifact::cpu_section(bytes));
            }
            Err(e) => eprintln!(
                "note: the CPU backend cannot run this graph ({e}); the artifact holds no CPU plan"
            ),
        }
    }
    if !archs.is_empty() {
        let gen_start = std::time::Instant::now();
        let mut program = resnetc_cuda::generate(&m.graph, &m.info, batch)?;
        let gen_ms = gen_start.elapsed().as_secs_f64() * 1e3;
        let arch_refs: Vec<&str> = archs.iter().map(String::as_str).collect();
        let images = resnetc_cuda::compile_archs(&program.source, &arch_refs)?;
        let nvrtc_ms = images.iter().map(|c| c.nvrtc_ms).fold(0.0, f64::max);
        let weights: Vec<u8> = program
            .weights
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        program.weights = Vec::new();
        artifact.cuda = Some(resnetc_artifact::CudaSection {
            source: program.source.clone(),
            binaries: images
                .into_iter()
                .map(|c| resnetc_artifact::CudaBinary {
                    arch: c.arch,
                    cubin: c.cubin.unwrap_or_default(),
                    ptx: c.ptx,
                })
                .collect(),
            launch_plan: serde_json::to_vec(&program)?,
            weights,
        });
        eprintln!(
            "generated CUDA for {} in {gen_ms:.0} ms; NVRTC took {nvrtc_ms:.0} ms (reported separately)",
            archs.join(", ")
        );
    }
    let out = output.unwrap_or_else(|| model.with_extension("rnc"));
    std::fs::write(&out, resnetc_artifact::encode(&artifact))
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "wrote {} (target {target}, -O{level}) in {:.0} ms",
        out.display(),
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn inspect(m: &resnetc::Model, path: &Path, json: bool, dump: bool) -> Result<()> {
    let s = m.stats();
    if json {
        let mut v = serde_json::to_value(&s)?;
        if let Some(a) = &m.artifact {
            v["artifact"] = serde_json::json!({
                "format_version": a.format_version,
                "resnetc_version": a.resnetc_version,
                "target": a.target,
                "opt_level": a.opt_level,
                "batch": a.batch,
                "source": a.source_name,
                "source_sha256": resnetc_artifact::hex(&a.source_sha256),
                "cpu_plan_bytes": resnetc_artifact::packed_plan(a).map_or(0, <[u8]>::len),
            });
            let archs: Vec<&str> = a
                .cuda
                .iter()
                .flat_map(|c| c.binaries.iter().map(|b| b.arch.as_str()))
                .collect();
            v["cuda_archs"] = serde_json::json!(archs);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("model: {}  (opset {})", path.display(), m.graph.opset);
    if let Some(a) = &m.artifact {
        println!(
            "artifact: target {}, -O{}, compiled by resnetc {} from {} (sha256 {})",
            a.target,
            a.opt_level,
            a.resnetc_version,
            a.source_name,
            resnetc_artifact::hex(&a.source_sha256)
        );
        if let Some(plan) = resnetc_artifact::packed_plan(a) {
            println!(
                "cpu plan: {:.1} MiB packed (run and bench use it as it is)",
                plan.len() as f64 / (1 << 20) as f64
            );
        }
    }
    for (kind, vals) in [("input", &s.inputs), ("output", &s.outputs)] {
        for v in vals {
            let dims: Vec<String> = v
                .shape
                .iter()
                .map(|d| d.to_string().trim_matches('"').to_string())
                .collect();
            println!("{kind:>7}: {} {}[{}]", v.name, v.dtype, dims.join(","));
        }
    }
    println!(
        "    ops: {}",
        s.ops
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(" params: {} ({} constant tensors)", s.params, s.constants);
    println!(
        "   MACs: {} per image ({:.1} M)",
        s.macs,
        s.macs as f64 / 1e6
    );
    if dump {
        print!("{}", resnetc_ir::dump(&m.graph, Some(&m.info)));
    }
    Ok(())
}

fn run(
    m: &resnetc::Model,
    input: &Path,
    output: Option<&Path>,
    device: Device,
    threads: usize,
) -> Result<()> {
    let x = npy::read_tensor(input)?;
    if device == Device::Cuda {
        note_cuda_compile(m);
    }
    let y = match device {
        Device::Reference => m
            .run_reference(&[x])?
            .into_iter()
            .next()
            .context("the model has no outputs")?,
        Device::Cpu => match m.run_cpu(&x, threads) {
            Ok(y) => y,
            Err(e) if e.downcast_ref::<resnetc_cpu::CpuError>().is_some() => {
                eprintln!("note: the CPU backend cannot run this graph ({e}); using the reference executor");
                m.run_reference(&[x])?
                    .into_iter()
                    .next()
                    .context("the model has no outputs")?
            }
            Err(e) => return Err(e),
        },
        Device::Cuda => m.run_cuda(&x)?.0,
    };
    let y = &y;
    match output {
        Some(path) => {
            npy::write_tensor(path, y)?;
            eprintln!("wrote {} {:?}", path.display(), y.shape());
        }
        None => {
            for (i, class) in top1(y)?.iter().enumerate() {
                println!("{i}\t{class}");
            }
        }
    }
    Ok(())
}

/// Times the CUDA backend on GPU 0 (see [`resnetc::Model::cuda_program`]): the median device time (CUDA events) of
/// `iters` runs after a warm-up, transfers excluded.
fn bench_cuda(m: &resnetc::Model, batch: usize, iters: usize, json: bool) -> Result<()> {
    let (program, images) = m.cuda_program()?;
    let per_image: usize = program.input.shape.iter().product();
    let x = vec![0.5f32; batch * per_image];
    let mut session = resnetc_cuda::CudaSession::new(&program, &images, 0)?;
    session.upload_input(&x, batch)?;
    session.time(batch, 3, 1)?;
    let mut runs = (0..iters.max(1))
        .map(|_| session.time(batch, 0, 1))
        .collect::<Result<Vec<f64>, _>>()?;
    runs.sort_by(f64::total_cmp);
    let ms = runs[runs.len() / 2];
    let images_per_s = batch as f64 / (ms / 1e3);
    let gflops = 2.0 * m.stats().macs as f64 * batch as f64 / (ms * 1e6);
    let gpu = session.device();
    if json {
        let v = serde_json::json!({
            "device": "cuda",
            "gpu": gpu.name,
            "arch": gpu.arch(),
            "image": session.image(),
            "batch": batch,
            "iters": runs.len(),
            "median_ms": ms,
            "images_per_s": images_per_s,
            "gflops": gflops,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} ({}, {}): batch {batch}: median {ms:.3} ms, {images_per_s:.0} images/s, {gflops:.0} GFLOP/s",
            gpu.name,
            gpu.arch(),
            session.image()
        );
    }
    Ok(())
}

/// Says, when a model without a stored CUDA program goes to the GPU, that it is compiled now and
/// how to do that once instead.
fn note_cuda_compile(m: &resnetc::Model) {
    if m.artifact.as_ref().and_then(|a| a.cuda.as_ref()).is_none() {
        eprintln!("note: compiling the model for GPU 0 now (NVRTC, seconds); `resnetc compile MODEL --target cuda` does it once");
    }
}

fn bench(
    m: &resnetc::Model,
    batch: usize,
    threads: usize,
    iters: usize,
    json: bool,
    device: Device,
) -> Result<()> {
    match device {
        Device::Cpu => {}
        Device::Cuda => {
            note_cuda_compile(m);
            return bench_cuda(m, batch, iters, json);
        }
        Device::Reference => bail!("bench measures a backend: --device cpu or --device cuda"),
    }
    let plan = m.cpu_plan()?;
    let r = resnetc_cpu::bench(&plan, batch, threads, iters.max(1))?;
    let peak = resnetc_cpu::fp32_peak_gflops(r.threads);
    let mut v = serde_json::to_value(&r)?;
    v["peak_gflops_estimate"] = serde_json::json!(peak);
    v["percent_of_peak"] = serde_json::json!(100.0 * r.gflops / peak);
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "batch {} threads {} ({:?}): median {:.3} ms, {:.0} images/s, {:.1} GFLOP/s ({:.0} % of an estimated {:.0} GFLOP/s FP32 peak), arena {:.1} MiB",
            r.batch,
            r.threads,
            r.isa,
            r.median_ms,
            r.images_per_s,
            r.gflops,
            100.0 * r.gflops / peak,
            peak,
            r.arena_bytes as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}

/// The arg-max of each row of a `[batch, classes]` float tensor.
fn top1(y: &Tensor) -> Result<Vec<usize>> {
    let Some(a) = y.as_f32() else {
        bail!("output is {}, expected float32 logits", y.dtype())
    };
    if a.ndim() != 2 {
        bail!(
            "output has shape {:?}, expected [batch, classes]",
            a.shape()
        );
    }
    Ok(a.outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect())
}

/// The built-in default model: ResNet-20 (option A, TorchScript opset 17) with two CIFAR-10 images
/// and PyTorch's logits for them, generated by `fixtures/generate.py`.
const DEMO_MODEL: &[u8] = include_bytes!("../fixtures/models/r20_a_ts17_static.onnx");
const DEMO_INPUT: &[u8] = include_bytes!("../fixtures/models/r20_a_ts17_static.input.npy");
const DEMO_OUTPUT: &[u8] = include_bytes!("../fixtures/models/r20_a_ts17_static.output.npy");

fn demo(shared: &Path) -> Result<()> {
    use ndarray::ArrayD;
    use ndarray_npy::ReadNpyExt;
    let mut graph = resnetc_onnx::import_bytes(DEMO_MODEL, None)?;
    resnetc_passes::canonicalize(&mut graph)?;
    let x = ArrayD::<f32>::read_npy(DEMO_INPUT).context("bundled input")?;
    let expected = ArrayD::<f32>::read_npy(DEMO_OUTPUT).context("bundled output")?;
    let y = resnetc_reference::run(&graph, &[Tensor::f32(x)])?;
    let y = y[0].as_f32().context("float output")?;
    let max_diff = (y - &expected).iter().fold(0f32, |m, d| m.max(d.abs()));
    println!("built-in ResNet-20 (option A, opset 17): top-1 {:?}, max |resnetc - PyTorch| = {max_diff:.2e}", top1(&Tensor::F32(y.clone()))?);

    let data = shared.join("data/cifar10/test_first1000.bin");
    let model = shared.join("models/pretrained/resnet20_cifar10_pretrained.onnx");
    if !data.exists() || !model.exists() {
        println!(
            "({} not found: skipping the pretrained CIFAR-10 run)",
            shared.display()
        );
        return Ok(());
    }
    let m = load_model(
        &model,
        &PassOptions {
            level: resnetc_passes::MAX_LEVEL,
            ..Default::default()
        },
    )?;
    let (images, labels) = resnetc::cifar::read_batch(&data, 1000)?;
    let start = std::time::Instant::now();
    let y = m.run_cpu(&Tensor::f32(images.into_dyn()), 0)?;
    let pred = top1(&y)?;
    let correct = pred
        .iter()
        .zip(&labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    println!(
        "pretrained ResNet-20 on {} CIFAR-10 test images: {:.1} % top-1 ({} correct) in {:.2} s (optimized graph, CPU backend)",
        labels.len(),
        100.0 * correct as f64 / labels.len() as f64,
        correct,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
