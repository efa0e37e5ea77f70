//! The `resnetc` command line: clap and printing over the `resnetc` library (and
//! `resnetc-validate`). Each command parses its arguments, calls one library function and prints
//! what it returns; exit codes come from the error's kind.

mod out;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use resnetc::{Device, Error, ErrorKind, LoadOptions, Model, Result};

use crate::out::outln;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a check failed (a validate mismatch)
  2  usage error (unknown option or value, a malformed --target)
  3  the model or the input is invalid or unsupported (import errors, wrong input shape, corrupt artifact)
  4  environment (a file that cannot be read or written, NVRTC or the GPU driver missing)";

/// A compiler toolchain for CIFAR ResNets exported from PyTorch to ONNX.
#[derive(Parser)]
#[command(name = "resnetc", version, about, after_help = EXIT_CODES)]
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
    #[arg(long = "disable-pass", value_name = "NAME", value_parser = pass_name)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DeviceArg {
    Cpu,
    Reference,
    Cuda,
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Reference => Device::Reference,
            DeviceArg::Cuda => Device::Cuda,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AgainstArg {
    Reference,
    Tract,
    All,
}

fn pass_name(s: &str) -> std::result::Result<String, String> {
    resnetc::check_pass(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn target(s: &str) -> std::result::Result<resnetc::Target, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

impl OptArgs {
    fn load(&self, path: &Path, default_level: u8) -> Result<Model> {
        let opts = LoadOptions {
            opt_level: self.opt_level.unwrap_or(default_level),
            disabled_passes: self.disable_pass.clone(),
        };
        let which = self.print_ir_after.clone();
        let m = Model::load_observed(path, &opts, &mut |pass, graph| {
            if which.as_deref().is_some_and(|w| w == "all" || w == pass) {
                eprintln!("// IR after {pass}");
                let info = resnetc::ir::validate(graph).ok();
                eprint!(
                    "{}",
                    resnetc::escape::text(&resnetc::ir::dump(graph, info.as_ref()))
                );
            }
        })?;
        if self.pass_report {
            for r in m.pass_reports() {
                eprintln!("{}", resnetc::escape::text(&r.to_string()));
            }
        }
        Ok(m)
    }

    fn session(&self, threads: Option<usize>) -> resnetc::SessionOptions {
        resnetc::SessionOptions {
            threads,
            winograd: self.winograd.map(|w| match w {
                WinogradArg::Auto => resnetc::Winograd::Auto,
                WinogradArg::F4 => resnetc::Winograd::F4,
                WinogradArg::F2 => resnetc::Winograd::F2,
                WinogradArg::Off => resnetc::Winograd::Off,
            }),
            ..Default::default()
        }
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
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Threads for the CPU backend (default and most: the cores this process may use).
        #[arg(long)]
        threads: Option<usize>,
        /// Run inputs that hold NaN or an infinity (NaN then reaches the logits, as in PyTorch)
        /// instead of refusing them.
        #[arg(long)]
        allow_nonfinite: bool,
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
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Optimizes a model and writes a compiled artifact (.rnc) for a target.
    Compile {
        model: PathBuf,
        /// `cpu` (the default) or `cuda` / `cuda:sm_XX`.
        #[arg(long, default_value = "cpu", value_parser = target)]
        target: resnetc::Target,
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
    /// graph and tract-onnx; on failure, names the first node where the values diverge. Ends with
    /// one line, `PASSED …` or `FAILED …`; exits 1 when a comparison failed.
    Validate(ValidateArgs),
}

/// The arguments of `resnetc validate`.
#[derive(Clone, Debug, clap::Args)]
struct ValidateArgs {
    /// The ONNX model.
    model: PathBuf,
    /// The input batch: a float32 NCHW `.npy` array.
    #[arg(long, requires = "expected", required_unless_present = "npz")]
    input: Option<PathBuf>,
    /// The expected outputs for it (e.g. PyTorch's logits): a float32 `.npy` array.
    #[arg(long, requires = "input")]
    expected: Option<PathBuf>,
    /// An `.npz` archive holding arrays named `input` and `expected`, instead of --input/--expected.
    #[arg(long, conflicts_with_all = ["input", "expected"])]
    npz: Option<PathBuf>,
    /// What else to compare with: resnetc's unoptimized graph, tract-onnx, or both.
    #[arg(long, value_enum, default_value = "all")]
    against: AgainstArg,
    /// Absolute tolerance [default: max(1e-4, 2e-5 × max|expected|)].
    #[arg(long)]
    atol: Option<f64>,
    /// Relative tolerance: a value passes if |a - b| <= atol + rtol × |b| [default: 0].
    #[arg(long)]
    rtol: Option<f64>,
    /// The optimization level of the graph under test (0: canonicalize only, ... 3: everything).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=3))]
    opt_level: u8,
    /// Skip an optimizer pass by name in the graph under test (repeatable), e.g. to find which pass breaks a model.
    #[arg(long = "disable-pass", value_name = "NAME", value_parser = pass_name)]
    disable_pass: Vec<String>,
    /// Also run the graph under test on this backend and compare it with the expected values:
    /// `cpu` (the default: skipped, with a note, when the CPU backend cannot run the graph),
    /// `cuda` (GPU 0, compiled for it now), or `reference` (no backend).
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
    /// Validate inputs that hold NaN or an infinity instead of refusing them.
    #[arg(long)]
    allow_nonfinite: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(e.kind()))
        }
    }
}

/// The documented exit code of an error kind (see `EXIT_CODES`).
fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::CheckFailed => 1,
        ErrorKind::InvalidModel | ErrorKind::UnsupportedModel | ErrorKind::InvalidInput => 3,
        ErrorKind::Environment => 4,
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
            allow_nonfinite,
            opt,
        } => {
            if let Some(out) = &output {
                resnetc::fsio::check_distinct(out, &[&input, &model])?;
            }
            let m = opt.load(&model, 3)?;
            run(
                &m,
                &input,
                output.as_deref(),
                device.into(),
                &resnetc::SessionOptions {
                    allow_nonfinite,
                    ..opt.session(threads)
                },
            )
        }
        Command::Bench {
            model,
            batch,
            threads,
            iters,
            json,
            device,
            opt,
        } => {
            let m = opt.load(&model, 3)?;
            note_cuda_compile(&m, device.into());
            let r = resnetc::bench(
                &m,
                device.into(),
                &resnetc::BenchOptions {
                    batch,
                    iters,
                    session: opt.session(threads),
                },
            )?;
            print_bench(&r, json)
        }
        Command::Compile {
            model,
            target,
            output,
            batch,
            opt,
        } => {
            let out = output.unwrap_or_else(|| model.with_extension("rnc"));
            resnetc::fsio::check_distinct(&out, &[&model])?;
            let start = std::time::Instant::now();
            let m = opt.load(&model, resnetc::LoadOptions::DEFAULT_OPT_LEVEL)?;
            let artifact = resnetc::compile_with(
                &m,
                target.clone(),
                &resnetc::CompileOptions {
                    batch,
                    winograd: opt.session(None).winograd,
                },
            )?;
            for note in artifact.notes() {
                eprintln!("{note}");
            }
            artifact.save(&out)?;
            eprintln!(
                "wrote {} (target {target}, -O{}) in {:.0} ms",
                resnetc::escape::path(&out),
                m.opt_level(),
                start.elapsed().as_secs_f64() * 1e3
            );
            Ok(())
        }
        Command::Export {
            model,
            output,
            optimize,
            keep_fused,
            opt,
        } => {
            resnetc::fsio::check_distinct(&output, &[&model])?;
            let m = opt.load(&model, if optimize { 3 } else { 0 })?;
            resnetc::export_onnx(&m, &output, &resnetc::ExportOptions { keep_fused })?;
            eprintln!("wrote {}", resnetc::escape::path(&output));
            Ok(())
        }
        Command::Validate(args) => validate(&args),
    }
}

fn inspect(m: &Model, path: &Path, json: bool, dump: bool) -> Result<()> {
    let r = m.inspect();
    if json {
        outln!("{}", out::json(&r)?);
        return Ok(());
    }
    use resnetc::escape::name;
    outln!(
        "model: {}  (opset {})",
        resnetc::escape::path(path),
        r.opset
    );
    if let Some(a) = &r.artifact {
        outln!(
            "artifact: target {}, -O{}, compiled by resnetc {} from {} (sha256 {})",
            a.target,
            a.opt_level,
            a.resnetc_version,
            a.source,
            a.source_sha256
        );
        if a.cpu_plan_bytes > 0 {
            outln!(
                "cpu plan: {:.1} MiB packed (run and bench use it as it is)",
                a.cpu_plan_bytes as f64 / (1 << 20) as f64
            );
        }
        if !a.cuda_archs.is_empty() {
            outln!("cuda: {}", a.cuda_archs.join(", "));
        }
    }
    let s = &r.stats;
    for (kind, vals) in [("input", &s.inputs), ("output", &s.outputs)] {
        for v in vals {
            let dims: Vec<String> = v
                .shape
                .iter()
                .map(|d| name(d.to_string().trim_matches('"')))
                .collect();
            outln!(
                "{kind:>7}: {} {}[{}]",
                name(&v.name),
                v.dtype,
                dims.join(",")
            );
        }
    }
    outln!(
        "    ops: {}",
        s.ops
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    outln!(" params: {} ({} constant tensors)", s.params, s.constants);
    outln!(
        "   MACs: {} per image ({:.1} M)",
        s.macs,
        s.macs as f64 / 1e6
    );
    if dump {
        out::text(&resnetc::escape::text(&resnetc::ir::dump(
            m.graph(),
            Some(m.info()),
        )))?;
    }
    Ok(())
}

fn run(
    m: &Model,
    input: &Path,
    output: Option<&Path>,
    device: Device,
    opts: &resnetc::SessionOptions,
) -> Result<()> {
    let x = resnetc::npy::read_f32(input)?;
    // Before any backend is set up (a CUDA session may compile for seconds first).
    m.check_input(resnetc::ir::DType::F32, x.shape())?;
    note_cuda_compile(m, device);
    let opts = resnetc::SessionOptions {
        fallback_to_reference: true,
        ..opts.clone()
    };
    let mut session = m.session_with(device, &opts)?;
    if let Some(why) = session.fallback() {
        eprintln!(
            "note: the CPU backend cannot run this graph ({why}); using the reference executor"
        );
    }
    if let Some(note) = session.threads_note() {
        eprintln!("note: {note}");
    }
    let y = session.run_dyn(x.view())?;
    match output {
        Some(path) => {
            resnetc::npy::write_f32(path, &y)?;
            eprintln!("wrote {} {:?}", resnetc::escape::path(path), y.shape());
        }
        None => {
            if y.ndim() != 2 {
                return Err(Error::new(
                    ErrorKind::UnsupportedModel,
                    format!(
                        "the output has shape {:?}, not [batch, classes]; use --output to save it",
                        y.shape()
                    ),
                ));
            }
            for (i, class) in resnetc::top1(&y.view()).iter().enumerate() {
                match class {
                    Some(c) => outln!("{i}\t{c}"),
                    None => outln!("{i}\tNaN"),
                }
            }
        }
    }
    Ok(())
}

/// Says, when a model without a stored CUDA program goes to the GPU, that it is compiled now and
/// how to do that once instead.
fn note_cuda_compile(m: &Model, device: Device) {
    if device == Device::Cuda && !m.has_cuda_program() {
        eprintln!("note: compiling the model for GPU 0 now (NVRTC, seconds); `resnetc compile MODEL --target cuda` does it once");
    }
}

fn print_bench(r: &resnetc::BenchReport, json: bool) -> Result<()> {
    for note in &r.notes {
        eprintln!("note: {note}");
    }
    if json {
        outln!("{}", out::json(r)?);
        return Ok(());
    }
    if let Some(c) = &r.cpu {
        outln!(
            "batch {} threads {} ({}): median {:.3} ms, {:.0} images/s, {:.1} GFLOP/s ({:.0} % of an estimated {:.0} GFLOP/s FP32 peak), arena {:.1} MiB",
            r.batch,
            c.threads,
            c.isa,
            r.median_ms,
            r.images_per_s,
            r.gflops,
            c.percent_of_peak,
            c.peak_gflops_estimate,
            c.arena_bytes as f64 / (1 << 20) as f64
        );
    }
    if let Some(c) = &r.cuda {
        outln!(
            "{} ({}, {}): batch {}: median {:.3} ms, {:.0} images/s, {:.0} GFLOP/s",
            resnetc::escape::name(&c.gpu),
            c.arch,
            c.image,
            r.batch,
            r.median_ms,
            r.images_per_s,
            r.gflops
        );
    }
    Ok(())
}

fn validate(args: &ValidateArgs) -> Result<()> {
    let (input, expected) = match (&args.npz, &args.input, &args.expected) {
        (Some(npz), _, _) => resnetc_validate::read_npz(npz)?,
        (None, Some(input), Some(expected)) => (
            resnetc::npy::read_f32(input)?,
            resnetc::npy::read_f32(expected)?,
        ),
        _ => unreachable!("clap requires --input and --expected, or --npz"),
    };
    let opts = resnetc_validate::Options {
        against: match args.against {
            AgainstArg::Reference => resnetc_validate::Against::Reference,
            AgainstArg::Tract => resnetc_validate::Against::Tract,
            AgainstArg::All => resnetc_validate::Against::All,
        },
        tolerance: resnetc_validate::ToleranceSpec {
            atol: args.atol,
            rtol: args.rtol,
        },
        opt_level: args.opt_level,
        disabled: args.disable_pass.clone(),
        device: args.device.map(Device::from),
        allow_nonfinite: args.allow_nonfinite,
    };
    let report = resnetc_validate::validate_model(&args.model, input, expected, &opts)?;
    if args.json {
        outln!("{}", out::json(&report)?);
    } else {
        out::text(&report.to_string())?;
    }
    if !report.passed {
        return Err(Error::new(
            ErrorKind::CheckFailed,
            format!("validation failed (against {})", report.failed().join(", ")),
        ));
    }
    Ok(())
}

/// The built-in default model: ResNet-20 (option A, TorchScript opset 17) with two CIFAR-10 images
/// and PyTorch's logits for them, generated by `fixtures/generate.py`.
const DEMO_MODEL: &[u8] = include_bytes!("../../../fixtures/models/r20_a_ts17_static.onnx");
const DEMO_INPUT: &[u8] = include_bytes!("../../../fixtures/models/r20_a_ts17_static.input.npy");
const DEMO_OUTPUT: &[u8] = include_bytes!("../../../fixtures/models/r20_a_ts17_static.output.npy");

fn demo(shared: &Path) -> Result<()> {
    use ndarray_npy::ReadNpyExt;
    let bundled = |e: ndarray_npy::ReadNpyError| {
        Error::new(ErrorKind::InvalidModel, format!("bundled data: {e}"))
    };
    let m = Model::from_onnx_bytes(DEMO_MODEL, None, &LoadOptions::level(0))?;
    let x = ndarray::ArrayD::<f32>::read_npy(DEMO_INPUT).map_err(bundled)?;
    let expected = ndarray::ArrayD::<f32>::read_npy(DEMO_OUTPUT).map_err(bundled)?;
    let y = m.session(Device::Reference)?.run_dyn(x.view())?;
    let max_diff = (&y - &expected).iter().fold(0f32, |m, d| m.max(d.abs()));
    let classes: Vec<usize> = resnetc::top1(&y.view()).into_iter().flatten().collect();
    outln!("built-in ResNet-20 (option A, opset 17): top-1 {classes:?}, max |resnetc - PyTorch| = {max_diff:.2e}");

    let data = shared.join("data/cifar10/test_first1000.bin");
    let model = shared.join("models/pretrained/resnet20_cifar10_pretrained.onnx");
    if !data.exists() || !model.exists() {
        outln!(
            "({} not found: skipping the pretrained CIFAR-10 run)",
            resnetc::escape::path(shared)
        );
        return Ok(());
    }
    let m = Model::load(&model)?;
    let (images, labels) = resnetc::cifar::read_batch(&data, 1000)?;
    let start = std::time::Instant::now();
    let y = m.session(Device::Cpu)?.run(images.view())?;
    let pred = resnetc::top1(&y.view().into_dyn());
    let correct = pred
        .iter()
        .zip(&labels)
        .filter(|(p, l)| **p == Some(**l as usize))
        .count();
    outln!(
        "pretrained ResNet-20 on {} CIFAR-10 test images: {:.1} % top-1 ({} correct) in {:.2} s (optimized graph, CPU backend)",
        labels.len(),
        100.0 * correct as f64 / labels.len() as f64,
        correct,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
