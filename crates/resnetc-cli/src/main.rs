//! The `resnetc` command line: clap and printing over the `resnetc` library (and
//! `resnetc-validate`). Each command parses its arguments, calls one library function and prints
//! what it returns; exit codes come from the error's kind.

mod out;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
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
#[command(name = "resnetc", about, after_help = EXIT_CODES, disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Print the version, the commit, the CPU kernel sets this machine runs and whether NVRTC and
    /// a CUDA driver were found.
    #[arg(short = 'V', long)]
    version: bool,
    /// Print errors only (no notes, no progress bars).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print how long each phase took (load, optimize, plan, run).
    #[arg(short, long, global = true)]
    verbose: bool,
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
    /// on outputs of 16×16 and up (and on AVX-512 on 8×8 ones of 64 channels), F(2×2) below; `off`: direct convolution everywhere, the closest
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
        let start = std::time::Instant::now();
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
        out::phase("load model", start);
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
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Shows a model's inputs, outputs, op counts, parameters and MACs per image; or draws its graph.
    Inspect {
        model: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Print the graph in resnetc's IR after loading.
        #[arg(long)]
        dump: bool,
        /// Print the graph as Graphviz DOT (op, output shape and fused epilogue in each label;
        /// fused nodes filled). `--opt-level` picks the graph (default 3 here).
        #[arg(long, conflicts_with_all = ["json", "svg", "compare_levels"])]
        dot: bool,
        /// Draw the graph into an SVG file (in-process; Graphviz is not needed).
        #[arg(long, value_name = "OUT.svg", conflicts_with_all = ["compare_levels"])]
        svg: Option<PathBuf>,
        /// For a `.rnc` compiled for CUDA: write its CUDA source, each architecture's PTX and
        /// cubin, and the launch plan (JSON) into this folder.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["dot", "svg", "compare_levels"])]
        extract: Option<PathBuf>,
        /// Print a table of op counts at these optimization levels, e.g. `0,3`, with the file's
        /// own node count before canonicalization.
        #[arg(long, value_name = "LEVELS", value_delimiter = ',', value_parser = clap::value_parser!(u8).range(0..=3))]
        compare_levels: Option<Vec<u8>>,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Measures a model's accuracy on a CIFAR-10 or CIFAR-100 test set: top-1, top-5, per class,
    /// the confusion matrix. Exits 1 when `--min-top1` is not reached.
    Eval(EvalArgs),
    /// Runs a model on a float32 NCHW `.npy` input of any batch size, or on image files; prints
    /// the most likely classes with their softmax probabilities.
    Run {
        model: PathBuf,
        /// The input batch: a float32 NCHW `.npy` array.
        #[arg(long, required_unless_present = "image", conflicts_with = "image")]
        input: Option<PathBuf>,
        /// Image files (PNG, JPEG, BMP), 32×32 unless `--resize`; normalized with --mean/--std.
        #[arg(long, num_args = 1.., value_name = "FILE")]
        image: Vec<PathBuf>,
        #[command(flatten)]
        norm: NormArgs,
        /// Scale images of another size to 32×32 with this filter.
        #[arg(long, value_parser = resize_filter, value_name = "nearest|triangle|catmull-rom|gaussian|lanczos3")]
        resize: Option<resnetc::images::Resize>,
        /// Print the K most likely classes of each image [default: 1; 5 with --json].
        #[arg(long, value_name = "K")]
        top: Option<usize>,
        /// Class names, one a line (CIFAR-10's are built in for 10-class models).
        #[arg(long, value_name = "FILE")]
        classes: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long, conflicts_with = "output")]
        json: bool,
        /// Where to write the output tensor (.npy) instead of printing classes.
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
        /// Untimed runs first [default: at least one, and 0.2 s of them].
        #[arg(long)]
        warmup: Option<usize>,
        /// Timed runs (with --duration: the most).
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Timed runs until this many seconds have passed, instead of a fixed count.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
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
        /// Print one JSON object (what was written) instead of notes.
        #[arg(long)]
        json: bool,
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
        /// Print one JSON object (what was written) instead of a note.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Builds one of He et al.'s CIFAR ResNets (He-initialised weights, non-trivial BatchNorm
    /// statistics) and writes it as standard ONNX.
    Zoo(ZooArgs),
    /// Prints a shell completion script: `resnetc completions bash > /etc/bash_completion.d/resnetc`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Checks a model's optimized graph against expected outputs (PyTorch's), resnetc's unoptimized
    /// graph and tract-onnx; on failure, names the first node where the values diverge. Ends with
    /// one line, `PASSED …` or `FAILED …`; exits 1 when a comparison failed.
    Validate(ValidateArgs),
}

/// Input normalization: `(pixel / 255 - mean) / std` per channel.
#[derive(clap::Args, Clone, Debug)]
struct NormArgs {
    /// Per-channel mean (R,G,B) of pixels scaled to 0..1 [default: 0.485,0.456,0.406, what the
    /// shared pretrained models were trained with].
    #[arg(long, value_parser = rgb, value_name = "R,G,B")]
    mean: Option<[f32; 3]>,
    /// Per-channel standard deviation (R,G,B) [default: 0.229,0.224,0.225, as for --mean].
    #[arg(long, value_parser = rgb, value_name = "R,G,B")]
    std: Option<[f32; 3]>,
}

impl NormArgs {
    fn get(&self) -> Result<resnetc::cifar::Normalize> {
        resnetc::cifar::Normalize::new(
            self.mean.unwrap_or(resnetc::cifar::MEAN),
            self.std.unwrap_or(resnetc::cifar::STD),
        )
    }
}

fn rgb(s: &str) -> std::result::Result<[f32; 3], String> {
    resnetc::cifar::Normalize::parse_rgb(s).map_err(|e| e.to_string())
}

fn resize_filter(s: &str) -> std::result::Result<resnetc::images::Resize, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn dataset_format(s: &str) -> std::result::Result<resnetc::cifar::Format, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// The arguments of `resnetc eval`.
#[derive(Clone, Debug, clap::Args)]
struct EvalArgs {
    /// The model (ONNX or .rnc).
    model: PathBuf,
    /// A CIFAR-10 or CIFAR-100 test set: the binary version (`test_batch.bin`, `test.bin`, or the
    /// folders `cifar-10-batches-bin/`, `cifar-100-binary/`) or the python version torchvision
    /// downloads (`cifar-10-batches-py/test_batch`, `cifar-100-python/test`, or their folders).
    #[arg(long)]
    data: PathBuf,
    /// The dataset's layout, instead of recognising it from the content.
    #[arg(long, value_parser = dataset_format, value_name = "cifar10-bin|cifar100-bin|cifar10-py|cifar100-py")]
    format: Option<resnetc::cifar::Format>,
    #[command(flatten)]
    norm: NormArgs,
    /// Evaluate the first N images only.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Images per run.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// `cpu`, `reference` or `cuda` (as for `run`).
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Threads for the CPU backend (default and most: the cores this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// Exit with status 1 when top-1 accuracy is below PCT percent.
    #[arg(long, value_name = "PCT")]
    min_top1: Option<f64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    opt: OptArgs,
}

/// The arguments of `resnetc zoo`.
#[derive(Clone, Debug, clap::Args)]
struct ZooArgs {
    /// resnet20, resnet32, resnet44, resnet56 or resnet110 (any resnet{6n+2}).
    name: String,
    /// CIFAR-10 or CIFAR-100.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Option A (zero-padded identity) or B (1×1 projection convolutions) shortcuts.
    #[arg(long, value_enum, default_value = "a", ignore_case = true)]
    shortcut: ShortcutArg,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fix the batch size (default: a symbolic `batch` dimension).
    #[arg(long)]
    batch: Option<usize>,
    #[arg(short, long)]
    output: PathBuf,
    /// Print one JSON object (what was written) instead of a note.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ShortcutArg {
    A,
    B,
}

/// The arguments of `resnetc validate`.
#[derive(Clone, Debug, clap::Args)]
struct ValidateArgs {
    /// The model: ONNX, or a `.rnc` artifact (validated as stored: its graph and its CPU plan, or
    /// its CUDA program with `--device cuda`).
    model: PathBuf,
    /// The input batch: a float32 NCHW `.npy` array.
    #[arg(long, requires = "expected", required_unless_present_any = ["npz", "data"])]
    input: Option<PathBuf>,
    /// The expected outputs for it (e.g. PyTorch's logits): a float32 `.npy` array.
    #[arg(long)]
    expected: Option<PathBuf>,
    /// An `.npz` archive holding arrays named `input` and `expected`, instead of --input/--expected.
    #[arg(long, conflicts_with_all = ["input", "expected", "data"])]
    npz: Option<PathBuf>,
    /// Take the input batch from a CIFAR test set (any layout `eval` reads), normalized with
    /// --mean/--std, instead of --input; --expected holds the outputs for its first --limit images.
    #[arg(long, conflicts_with = "input", requires = "expected")]
    data: Option<PathBuf>,
    /// The layout of --data, instead of recognising it.
    #[arg(long, value_parser = dataset_format, requires = "data")]
    format: Option<resnetc::cifar::Format>,
    /// With --data: the first N images only.
    #[arg(long, requires = "data")]
    limit: Option<usize>,
    #[command(flatten)]
    norm: NormArgs,
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
    out::set_verbosity(if cli.quiet {
        out::Verbosity::Quiet
    } else if cli.verbose {
        out::Verbosity::Verbose
    } else {
        out::Verbosity::Normal
    });
    let result = match cli.command {
        _ if cli.version => version(),
        Some(command) => dispatch(command),
        None => {
            eprintln!("{}", Cli::command().render_usage());
            eprintln!("error: a command is required (see `resnetc --help`)");
            return ExitCode::from(2);
        }
    };
    match result {
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
        Command::Demo { shared, json } => demo(&shared, json),
        Command::Inspect {
            model,
            json,
            dump,
            dot,
            svg,
            extract,
            compare_levels,
            opt,
        } => {
            if let Some(dir) = extract {
                let m = opt.load(&model, 3)?;
                let files = resnetc::extract_cuda(&m, &dir)?;
                if json {
                    let report = resnetc::ExtractReport {
                        schema_version: resnetc::SCHEMA_VERSION,
                        files: files
                            .iter()
                            .map(|f| resnetc::WroteReport::of(f, Vec::new()))
                            .collect(),
                    };
                    outln!("{}", out::json(&report)?);
                } else {
                    for f in &files {
                        outln!("{}", resnetc::escape::path(f));
                    }
                }
                return Ok(());
            }
            if let Some(levels) = compare_levels {
                let r = resnetc::picture::compare_levels(&model, &levels)?;
                if json {
                    outln!("{}", out::json(&r)?);
                } else {
                    out::text(&r.to_string())?;
                }
                return Ok(());
            }
            if dot || svg.is_some() {
                let m = opt.load(&model, 3)?;
                if dot {
                    out::text(&resnetc::picture::dot(&m))?;
                }
                if let Some(path) = svg {
                    resnetc::fsio::check_distinct(&path, &[&model])?;
                    let start = std::time::Instant::now();
                    resnetc::fsio::write_atomic(&path, resnetc::picture::svg(&m)?.as_bytes())?;
                    out::phase("layout", start);
                    out::note(format_args!(
                        "wrote {} (-O{})",
                        resnetc::escape::path(&path),
                        m.opt_level()
                    ));
                }
                return Ok(());
            }
            inspect(&opt.load(&model, 0)?, &model, json, dump)
        }
        Command::Eval(args) => eval(&args),
        Command::Run {
            model,
            input,
            image,
            norm,
            resize,
            top,
            classes,
            json,
            output,
            device,
            threads,
            allow_nonfinite,
            opt,
        } => {
            let inputs: Vec<&Path> = input.iter().chain(&image).map(PathBuf::as_path).collect();
            if let Some(out) = &output {
                let mut all = inputs.clone();
                all.push(&model);
                resnetc::fsio::check_distinct(out, &all)?;
            }
            let m = opt.load(&model, 3)?;
            let (x, files): (ndarray::ArrayD<f32>, Vec<String>) = match &input {
                Some(p) => {
                    let x = resnetc::npy::read_f32(p)?;
                    let n = x.shape().first().copied().unwrap_or(0);
                    let name = resnetc::escape::path(p);
                    (x, (0..n).map(|i| format!("{name}[{i}]")).collect())
                }
                None => (
                    resnetc::images::read_images(&image, resize, &norm.get()?)?.into_dyn(),
                    image.iter().map(|p| resnetc::escape::path(p)).collect(),
                ),
            };
            let labels = resnetc::eval::class_names(&m, classes.as_deref())?;
            let show = Show {
                files,
                top: top.unwrap_or(if json { 5 } else { 1 }),
                labels,
                json,
            };
            run(
                &m,
                x,
                output.as_deref(),
                &show,
                device.into(),
                &resnetc::SessionOptions {
                    allow_nonfinite,
                    ..opt.session(threads)
                },
            )
        }
        Command::Zoo(args) => zoo(&args),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "resnetc", &mut buf);
            out::text(&String::from_utf8_lossy(&buf))
        }
        Command::Bench {
            model,
            batch,
            threads,
            warmup,
            iters,
            duration,
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
                    warmup,
                    iters,
                    duration_s: duration,
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
            json,
            opt,
        } => {
            let out = output.unwrap_or_else(|| model.with_extension("rnc"));
            resnetc::fsio::check_distinct(&out, &[&model])?;
            let start = std::time::Instant::now();
            let m = opt.load(&model, resnetc::LoadOptions::DEFAULT_OPT_LEVEL)?;
            let spinner = match &target {
                resnetc::Target::Cuda { archs } => Some(out::spinner(format!(
                    "compiling for {} (NVRTC)",
                    archs.join(", ")
                ))),
                _ => None,
            };
            let artifact = resnetc::compile_with(
                &m,
                target.clone(),
                &resnetc::CompileOptions {
                    batch,
                    winograd: opt.session(None).winograd,
                },
            );
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            let artifact = artifact?;
            artifact.save(&out)?;
            let notes = artifact.notes().to_vec();
            if json {
                return wrote(&out, notes, true);
            }
            for note in notes {
                out::note(note);
            }
            out::note(format_args!(
                "wrote {} (target {target}, -O{}) in {:.0} ms",
                resnetc::escape::path(&out),
                m.opt_level(),
                start.elapsed().as_secs_f64() * 1e3
            ));
            Ok(())
        }
        Command::Export {
            model,
            output,
            optimize,
            keep_fused,
            json,
            opt,
        } => {
            resnetc::fsio::check_distinct(&output, &[&model])?;
            let m = opt.load(&model, if optimize { 3 } else { 0 })?;
            resnetc::export_onnx(&m, &output, &resnetc::ExportOptions { keep_fused })?;
            wrote(&output, Vec::new(), json)
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

/// How `run` prints classes.
struct Show {
    /// What each image is called: its file, or `x.npy[i]`.
    files: Vec<String>,
    top: usize,
    labels: Option<Vec<String>>,
    json: bool,
}

fn run(
    m: &Model,
    x: ndarray::ArrayD<f32>,
    output: Option<&Path>,
    show: &Show,
    device: Device,
    opts: &resnetc::SessionOptions,
) -> Result<()> {
    // Before any backend is set up (a CUDA session may compile for seconds first).
    m.check_input(resnetc::ir::DType::F32, x.shape())?;
    note_cuda_compile(m, device);
    let opts = resnetc::SessionOptions {
        fallback_to_reference: true,
        ..opts.clone()
    };
    let mut session = m.session_with(device, &opts)?;
    if let Some(why) = session.fallback() {
        out::note(format_args!(
            "note: the CPU backend cannot run this graph ({why}); using the reference executor"
        ));
    }
    if let Some(note) = session.threads_note() {
        out::note(format_args!("note: {note}"));
    }
    let y = session.run_dyn(x.view())?;
    match output {
        Some(path) => {
            resnetc::npy::write_f32(path, &y)?;
            out::note(format_args!(
                "wrote {} {:?}",
                resnetc::escape::path(path),
                y.shape()
            ));
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
            let y = y
                .into_dimensionality::<ndarray::Ix2>()
                .expect("checked to be two-dimensional");
            let ranked = resnetc::eval::classify(y.view(), show.top, show.labels.as_deref())?;
            if show.json {
                let report = resnetc::eval::RunReport {
                    schema_version: resnetc::SCHEMA_VERSION,
                    images: show
                        .files
                        .iter()
                        .zip(ranked)
                        .map(|(file, top)| resnetc::eval::ImageClasses {
                            file: file.clone(),
                            top,
                        })
                        .collect(),
                };
                outln!("{}", out::json(&report)?);
                return Ok(());
            }
            for (file, top) in show.files.iter().zip(&ranked) {
                if top.is_empty() {
                    outln!("{file}\tNaN\t(the logits hold NaN or an infinity)");
                    continue;
                }
                let cols: Vec<String> = top
                    .iter()
                    .map(|p| {
                        let label = p.label.as_deref().map(resnetc::escape::name);
                        format!(
                            "{}\t{} {}",
                            p.index,
                            label.unwrap_or_else(|| format!("class {}", p.index)),
                            percent(p.probability.unwrap_or(f64::NAN))
                        )
                    })
                    .collect();
                outln!("{file}\t{}", cols.join("\t"));
            }
        }
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let data = resnetc::cifar::Dataset::open(&args.data, args.format, args.limit)?;
    out::phase("read dataset", start);
    let m = args.opt.load(&args.model, 3)?;
    note_cuda_compile(&m, args.device.into());
    let opts = resnetc::eval::EvalOptions {
        normalize: args.norm.get()?,
        batch: args.batch,
        device: args.device.into(),
        session: args.opt.session(args.threads),
    };
    let bar = out::progress(data.len(), "eval");
    let r = resnetc::eval::evaluate(&m, &data, &opts, &mut |done, _| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let r = r?;
    for note in &r.notes {
        out::note(format_args!("note: {note}"));
    }
    if args.json {
        outln!("{}", out::json(&r)?);
    } else {
        out::text(&eval_text(&r, &data))?;
    }
    if let Some(min) = args.min_top1 {
        if 100.0 * r.top1 < min {
            return Err(Error::new(
                ErrorKind::CheckFailed,
                format!(
                    "top-1 accuracy {:.2} % is below --min-top1 {min} %",
                    100.0 * r.top1
                ),
            ));
        }
    }
    Ok(())
}

/// The text form of an eval report: the summary, per-class accuracy and (up to 20 classes) the
/// confusion matrix.
fn eval_text(r: &resnetc::eval::EvalReport, data: &resnetc::cifar::Dataset) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let pct = |x: f64| 100.0 * x;
    let _ = writeln!(
        s,
        "{} images of {} ({}), {}",
        r.images,
        resnetc::escape::path(&data.path),
        r.format,
        r.device
    );
    let _ = writeln!(
        s,
        "top-1 {:.2} % ({} correct), top-5 {:.2} %, {:.0} images/s",
        pct(r.top1),
        r.correct,
        pct(r.top5),
        r.images_per_s
    );
    if r.nonfinite > 0 {
        let _ = writeln!(
            s,
            "{} images gave NaN or infinite logits (counted as wrong)",
            r.nonfinite
        );
    }
    let names: Vec<String> = r
        .per_class
        .iter()
        .map(|c| resnetc::escape::name(&c.label))
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(s, "per class:");
    for (c, name) in r.per_class.iter().zip(&names) {
        let _ = match c.accuracy {
            Some(a) => writeln!(
                s,
                "  {name:<width$} {:>6.1} %  ({}/{})",
                pct(a),
                c.correct,
                c.images
            ),
            None => writeln!(s, "  {name:<width$}      -    (no images)"),
        };
    }
    if r.confusion.len() <= 20 {
        let _ = writeln!(s, "confusion (rows: true class, columns: predicted class):");
        let _ = write!(s, "  {:<width$}", "");
        for c in 0..r.confusion.len() {
            let _ = write!(s, " {c:>4}");
        }
        let _ = writeln!(s);
        for (row, name) in r.confusion.iter().zip(&names) {
            let _ = write!(s, "  {name:<width$}");
            for n in row {
                let _ = write!(s, " {n:>4}");
            }
            let _ = writeln!(s);
        }
    } else {
        let _ = writeln!(
            s,
            "({0}×{0} confusion matrix: see --json)",
            r.confusion.len()
        );
    }
    s
}

fn zoo(args: &ZooArgs) -> Result<()> {
    let depth = args
        .name
        .strip_prefix("resnet")
        .and_then(|d| d.parse::<usize>().ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "'{}' is not resnetN (resnet20, resnet32, resnet44, resnet56, resnet110)",
                    resnetc::escape::name(&args.name)
                ),
            )
        })?;
    let spec = resnetc::zoo::ZooSpec {
        depth,
        classes: args.classes,
        shortcut: match args.shortcut {
            ShortcutArg::A => resnetc::zoo::Shortcut::A,
            ShortcutArg::B => resnetc::zoo::Shortcut::B,
        },
        seed: args.seed,
        batch: args.batch,
    };
    let m = resnetc::zoo::zoo_model(&spec, &LoadOptions::level(0))?;
    resnetc::export_onnx(&m, &args.output, &resnetc::ExportOptions::default())?;
    wrote(&args.output, Vec::new(), args.json)
}

/// Reports a file just written: a note on stderr, or with `--json` the [`resnetc::WroteReport`].
fn wrote(path: &Path, notes: Vec<String>, json: bool) -> Result<()> {
    if json {
        outln!("{}", out::json(&resnetc::WroteReport::of(path, notes))?);
    } else {
        for n in notes {
            out::note(n);
        }
        out::note(format_args!("wrote {}", resnetc::escape::path(path)));
    }
    Ok(())
}

fn version() -> Result<()> {
    out::text(&format!("{}\n", resnetc::about::about()))
}

/// A probability as a percentage that keeps small ones readable: `87.1 %`, `0.042 %`, `3.1e-7 %`.
fn percent(p: f64) -> String {
    let pct = 100.0 * p;
    if pct >= 99.95 && p < 1.0 {
        format!("{pct:.3} %")
    } else if pct >= 0.1 || pct == 0.0 {
        format!("{pct:.1} %")
    } else if pct >= 0.001 {
        format!("{pct:.3} %")
    } else {
        format!("{pct:.1e} %")
    }
}

/// Says, when a model without a stored CUDA program goes to the GPU, that it is compiled now and
/// how to do that once instead.
fn note_cuda_compile(m: &Model, device: Device) {
    if device == Device::Cuda && !m.has_cuda_program() {
        out::note("note: compiling the model for GPU 0 now (NVRTC, seconds); `resnetc compile MODEL --target cuda` does it once");
    }
}

fn print_bench(r: &resnetc::BenchReport, json: bool) -> Result<()> {
    for note in &r.notes {
        out::note(format_args!("note: {note}"));
    }
    if json {
        outln!("{}", out::json(r)?);
        return Ok(());
    }
    outln!(
        "{} runs of batch {} after {} warm-up: min {:.3}  median {:.3}  mean {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms",
        r.iters,
        r.batch,
        r.warmup,
        r.min_ms,
        r.median_ms,
        r.mean_ms,
        r.p90_ms,
        r.p99_ms,
        r.max_ms
    );
    if let Some(c) = &r.cpu {
        outln!(
            "cpu ({}, {} threads): {:.0} images/s; {:.1} effective GFLOP/s (direct-convolution equivalent), {:.1} GFLOP/s executed ({} Winograd convs), {:.0} % of a {:.0} GFLOP/s {} FMA peak measured now; arena {:.1} MiB",
            c.isa,
            c.threads,
            r.images_per_s,
            r.effective_gflops,
            r.executed_gflops,
            c.winograd_convs,
            c.percent_of_peak,
            c.peak_gflops_estimate,
            c.isa,
            c.arena_bytes as f64 / (1 << 20) as f64
        );
    }
    if let Some(c) = &r.cuda {
        outln!(
            "{} ({}, {}): {:.0} images/s, {:.0} GFLOP/s",
            resnetc::escape::name(&c.gpu),
            c.arch,
            c.image,
            r.images_per_s,
            r.executed_gflops
        );
    }
    Ok(())
}

fn validate(args: &ValidateArgs) -> Result<()> {
    let (input, expected) = match (&args.npz, &args.input, &args.data, &args.expected) {
        (Some(npz), _, _, _) => resnetc_validate::read_npz(npz)?,
        (None, Some(input), None, Some(expected)) => (
            resnetc::npy::read_f32(input)?,
            resnetc::npy::read_f32(expected)?,
        ),
        (None, None, Some(data), Some(expected)) => {
            let d = resnetc::cifar::Dataset::open(data, args.format, args.limit)?;
            let x = d.batch(0..d.len(), &args.norm.get()?).into_dyn();
            (x, resnetc::npy::read_f32(expected)?)
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "give --input and --expected, --data and --expected, or --npz",
            ))
        }
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
    let mut bar: Option<(String, indicatif::ProgressBar)> = None;
    let report = resnetc_validate::validate_model_observed(
        &args.model,
        input,
        expected,
        &opts,
        &mut |row, done, total| {
            if bar.as_ref().is_none_or(|(r, _)| r != row) {
                if let Some((_, b)) = bar.take() {
                    b.finish_and_clear();
                }
                bar = Some((row.to_string(), out::progress(total, row)));
            }
            if let Some((_, b)) = &bar {
                b.set_position(done as u64);
            }
        },
    );
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
    let report = report?;
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

fn demo(shared: &Path, json: bool) -> Result<()> {
    let r = resnetc::demo::demo(shared)?;
    if json {
        outln!("{}", out::json(&r)?);
    } else {
        out::text(&r.to_string())?;
    }
    Ok(())
}
