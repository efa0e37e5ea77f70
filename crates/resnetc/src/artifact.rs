//! Building a `.rnc` artifact from a model ([`compile`]) and reading the CUDA program back. The
//! container and its checks are `resnetc-artifact`'s; the sections are the backends' own encodings.

use std::path::Path;
use std::time::Instant;

use crate::error::Context as _;
use crate::escape;
use crate::{Error, ErrorKind, Model, Result};

/// What to compile for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The CPU backend: the packed plan, run on whichever kernel set the loading machine has.
    Cpu,
    /// CUDA: generated kernels compiled by NVRTC to cubin and PTX for each architecture
    /// (`sm_80`, `sm_90`, …; [`Target::cuda`] gives the default set).
    Cuda { archs: Vec<String> },
}

impl Target {
    /// CUDA for the default architectures (cubin and PTX for each of `resnetc_cuda::DEFAULT_ARCHS`).
    pub fn cuda() -> Target {
        Target::Cuda {
            archs: resnetc_cuda::DEFAULT_ARCHS
                .iter()
                .map(|a| a.to_string())
                .collect(),
        }
    }

    /// The target's name as the artifact records it: `cpu`, `cuda`, `cuda:sm_90`.
    pub fn name(&self) -> String {
        match self {
            Target::Cpu => "cpu".into(),
            Target::Cuda { archs } if *archs == Target::cuda_default_archs() => "cuda".into(),
            Target::Cuda { archs } => format!("cuda:{}", archs.join(",")),
        }
    }

    fn cuda_default_archs() -> Vec<String> {
        resnetc_cuda::DEFAULT_ARCHS
            .iter()
            .map(|a| a.to_string())
            .collect()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Target {
    type Err = Error;
    /// `cpu`, `cuda`, or `cuda:sm_XX` (several separated by commas: `cuda:sm_80,sm_90`).
    fn from_str(s: &str) -> Result<Target> {
        let arch_ok = |a: &str| {
            a.strip_prefix("sm_")
                .or_else(|| a.strip_prefix("compute_"))
                .is_some_and(|n| {
                    !n.is_empty() && n.len() <= 4 && n.chars().all(|c| c.is_ascii_digit())
                })
        };
        match s.split_once(':') {
            None if s == "cpu" => Ok(Target::Cpu),
            None if s == "cuda" => Ok(Target::cuda()),
            Some(("cuda", archs)) if archs.split(',').all(arch_ok) => Ok(Target::Cuda {
                archs: archs.split(',').map(str::to_string).collect(),
            }),
            _ => Err(Error::invalid_input(format!(
                "unknown target '{}'; use cpu, cuda or cuda:sm_XX (e.g. cuda:sm_90)",
                escape::name(s)
            ))),
        }
    }
}

/// How [`compile_with`] builds the artifact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// Fix the batch size (the model's own, possibly symbolic, batch by default).
    pub batch: Option<usize>,
    /// The CPU plan's Winograd choice (the kernel set's default when `None`).
    pub winograd: Option<crate::Winograd>,
}

/// A compiled artifact, ready to [`save`](Artifact::save) as a `.rnc` (which [`Model::load`] reads).
pub struct Artifact {
    proto: resnetc_artifact::Artifact,
    notes: Vec<String>,
    /// The model file it was compiled from, which `save` never overwrites.
    source_path: Option<std::path::PathBuf>,
}

impl Artifact {
    /// The encoded `.rnc` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        resnetc_artifact::encode(&self.proto)
    }

    /// Writes the artifact to `path`, through a temporary file in the same folder renamed into
    /// place, so an existing file is replaced whole or not at all.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        if let Some(src) = &self.source_path {
            crate::fsio::check_distinct(path.as_ref(), &[src])?;
        }
        crate::fsio::write_atomic(path.as_ref(), &self.to_bytes())
    }

    /// What compiling did, one line each (the packed plan's size, NVRTC's time, what was left out).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The container, for inspection.
    pub fn proto(&self) -> &resnetc_artifact::Artifact {
        &self.proto
    }
}

/// Compiles a model for `target` with default options.
///
/// ```
/// # fn main() -> resnetc::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("resnetc-doctest-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models/r20_b_ts17_dynamic.onnx");
/// let model = resnetc::Model::load(path)?;
/// let rnc = dir.join("r20.rnc");
/// resnetc::compile(&model, resnetc::Target::Cpu)?.save(&rnc)?;
///
/// // The artifact stores the packed plan: loading it packs nothing.
/// let compiled = resnetc::Model::load(&rnc)?;
/// let images = resnetc::ndarray::Array4::<f32>::from_elem((2, 3, 32, 32), 0.5);
/// let a = model.session(resnetc::Device::Cpu)?.run(images.view())?;
/// let b = compiled.session(resnetc::Device::Cpu)?.run(images.view())?;
/// assert_eq!(a, b);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
pub fn compile(model: &Model, target: Target) -> Result<Artifact> {
    compile_with(model, target, &CompileOptions::default())
}

/// [`compile`] with options.
pub fn compile_with(model: &Model, target: Target, opts: &CompileOptions) -> Result<Artifact> {
    if model.artifact().is_some() {
        return Err(Error::invalid_input(
            "the model is already a compiled artifact; compile the ONNX model it came from",
        ));
    }
    let fixed;
    let m = match opts.batch {
        Some(b) => {
            fixed = model.with_batch(b)?;
            &fixed
        }
        None => model,
    };
    let onnx = resnetc_onnx::export_with(
        m.graph(),
        m.info(),
        resnetc_onnx::ExportOptions { keep_fused: true },
    )?;
    let (source_name, source_sha) = match m.source() {
        Some(s) => (s.name.clone(), s.sha256.clone()),
        None => (String::new(), Vec::new()),
    };
    let mut proto = resnetc_artifact::new_artifact(
        prost::Message::encode_to_vec(&onnx),
        &[],
        &source_name,
        &target.name(),
        m.opt_level() as u32,
        opts.batch.unwrap_or(0) as u64,
    );
    proto.source_sha256 = source_sha;
    let mut notes = Vec::new();
    match &target {
        Target::Cpu => {
            // The packed plan, so that `run` packs nothing. A graph the CPU backend cannot run still
            // compiles: the artifact then holds only the graph, which runs on the reference executor.
            match m.cpu_plan(opts.winograd) {
                Ok(plan) => {
                    let bytes = plan.to_bytes();
                    notes.push(format!(
                        "packed the CPU plan for {} ({} steps, {} Winograd convolutions, {:.1} MiB)",
                        plan.isa(),
                        plan.describe().len(),
                        plan.winograd_convs(),
                        bytes.len() as f64 / (1 << 20) as f64
                    ));
                    #[cfg(debug_assertions)]
                    resnetc_cpu::CpuPlan::from_bytes(&bytes, resnetc_cpu::Isa::Auto)
                        .context("internal error: the plan just packed does not verify")?;
                    proto.cpu = Some(resnetc_artifact::cpu_section(bytes, &proto.graph_sha256));
                }
                Err(e) if e.downcast_ref::<resnetc_cpu::CpuError>().is_some() => {
                    notes.push(format!(
                    "the CPU backend cannot run this graph ({e}); the artifact holds no CPU plan"
                ))
                }
                Err(e) => return Err(e),
            }
        }
        Target::Cuda { archs } => {
            let gen_start = Instant::now();
            let mut program = resnetc_cuda::generate(m.graph(), m.info(), opts.batch)?;
            let gen_ms = gen_start.elapsed().as_secs_f64() * 1e3;
            let arch_refs: Vec<&str> = archs.iter().map(String::as_str).collect();
            let images = resnetc_cuda::compile_archs(&program.source, &arch_refs)?;
            let nvrtc_ms = images.iter().map(|c| c.nvrtc_ms).fold(0.0, f64::max);
            let per_arch: Vec<String> = images
                .iter()
                .map(|c| {
                    let what = if c.cubin.is_some() {
                        "cubin + PTX"
                    } else {
                        "PTX"
                    };
                    format!("{}: {what} in {:.0} ms", c.arch, c.nvrtc_ms)
                })
                .collect();
            let weights: Vec<u8> = program
                .weights
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect();
            program.weights = Vec::new();
            let section = resnetc_artifact::CudaSection {
                source: program.source.clone(),
                binaries: images
                    .into_iter()
                    .map(|c| resnetc_artifact::CudaBinary {
                        arch: c.arch,
                        cubin: c.cubin.unwrap_or_default(),
                        ptx: c.ptx,
                    })
                    .collect(),
                launch_plan: resnetc_cuda::encode_program(&program),
                weights,
                ..Default::default()
            };
            proto.cuda = Some(resnetc_artifact::seal_cuda(section, &proto.graph_sha256));
            notes.push(format!(
                "generated CUDA for {} in {gen_ms:.0} ms; NVRTC took {nvrtc_ms:.0} ms ({}, in parallel)",
                archs.join(", "),
                per_arch.join("; ")
            ));
        }
    }
    let source_path = model.source().and_then(|s| s.path.clone());
    Ok(Artifact {
        proto,
        notes,
        source_path,
    })
}

/// The CUDA program an artifact's section stores, checked before any of it reaches a GPU.
pub(crate) fn cuda_program(
    section: &resnetc_artifact::CudaSection,
) -> Result<(resnetc_cuda::CudaProgram, Vec<resnetc_cuda::Compiled>)> {
    let mut program = resnetc_cuda::decode_program(&section.launch_plan)
        .context("the artifact's CUDA launch plan")?;
    if !section.weights.len().is_multiple_of(4) {
        return Err(Error::new(
            ErrorKind::InvalidModel,
            "the artifact's CUDA weights are damaged; recompile it",
        ));
    }
    program.weights = section
        .weights
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    program.source = section.source.clone();
    program.check().context("the artifact's CUDA program")?;
    let images = section
        .binaries
        .iter()
        .map(|b| resnetc_cuda::Compiled {
            arch: b.arch.clone(),
            ptx: b.ptx.clone(),
            cubin: (!b.cubin.is_empty()).then(|| b.cubin.clone()),
            log: String::new(),
            nvrtc_ms: 0.0,
        })
        .collect();
    Ok((program, images))
}

/// Writes what an artifact stores for CUDA into `dir` (created if missing): the generated source
/// (`kernels.cu`), each architecture's PTX and cubin (`sm_90.ptx`, `sm_90.cubin`), and the launch
/// plan (`launch_plan.json`: kernels, grids, blocks, arguments, buffers; weights left out).
/// Returns the files written. Names come from the artifact and are checked to be plain
/// architecture names before they become file names.
pub fn extract_cuda(model: &Model, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let section = model
        .artifact()
        .and_then(|a| a.cuda.as_ref())
        .ok_or_else(|| {
            Error::invalid_input(
                "this model holds no CUDA program: extract works on a .rnc compiled with --target cuda",
            )
        })?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let mut written = Vec::new();
    let mut put = |name: String, bytes: &[u8]| -> Result<()> {
        let path = dir.join(name);
        crate::fsio::write_atomic(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    put("kernels.cu".into(), section.source.as_bytes())?;
    for b in &section.binaries {
        let plain = !b.arch.is_empty()
            && b.arch.len() <= 32
            && b.arch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(Error::new(
                ErrorKind::InvalidModel,
                format!(
                    "the artifact names a CUDA architecture '{}', not a plain name like sm_90",
                    crate::escape::name(&b.arch)
                ),
            ));
        }
        if !b.ptx.is_empty() {
            put(format!("{}.ptx", b.arch), b.ptx.as_bytes())?;
        }
        if !b.cubin.is_empty() {
            put(format!("{}.cubin", b.arch), &b.cubin)?;
        }
    }
    let plan = resnetc_cuda::decode_program(&section.launch_plan)?;
    let json = serde_json::to_string_pretty(&plan)
        .map_err(|e| Error::new(ErrorKind::InvalidModel, format!("the launch plan: {e}")))?;
    put("launch_plan.json".into(), json.as_bytes())?;
    Ok(written)
}
