//! [`Model`]: a graph loaded from an ONNX file (imported, canonicalized, optimized at the level
//! [`LoadOptions`] asks for) or from a compiled `.rnc` artifact, validated once, with what the
//! backends need cached so that sessions start without packing anything twice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use resnetc_ir::{validate, Dim, Graph, GraphInfo, Op, ValueRef};
use resnetc_passes::{PassOptions, PassReport};

use crate::error::Context as _;
use crate::escape;
use crate::input::{graph_inputs, graph_outputs, Port};
use crate::stats::ModelStats;
use crate::{Error, ErrorKind, Result};

/// How [`Model::load_with`] prepares a graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// 0: canonicalize only (what the file says, with PyTorch's shape arithmetic folded away);
    /// 1: fold BatchNorm, normalize pooling and flatten; 2–3: fold shortcuts and fuse each
    /// convolution's epilogue. Default: [`LoadOptions::DEFAULT_OPT_LEVEL`]. Ignored for an artifact,
    /// which stores its optimized graph.
    pub opt_level: u8,
    /// Passes to leave out, by name (see [`passes`]).
    pub disabled_passes: Vec<String>,
}

impl LoadOptions {
    /// The level models load at unless told otherwise: everything.
    pub const DEFAULT_OPT_LEVEL: u8 = resnetc_passes::MAX_LEVEL;

    /// Options for `opt_level`, no pass disabled.
    pub fn level(opt_level: u8) -> LoadOptions {
        LoadOptions {
            opt_level,
            ..LoadOptions::default()
        }
    }
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            opt_level: LoadOptions::DEFAULT_OPT_LEVEL,
            disabled_passes: Vec::new(),
        }
    }
}

/// The optimizer's passes, in the order they run: (name, lowest level that runs it, what it does).
pub fn passes() -> impl Iterator<Item = (&'static str, u8, &'static str)> {
    resnetc_passes::PASSES
        .iter()
        .map(|p| (p.name, p.level, p.doc))
}

/// Where a model came from.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    /// The file's name (for the artifact's record), when loaded from a file.
    pub name: String,
    pub path: Option<PathBuf>,
    pub sha256: Vec<u8>,
}

/// A loaded model: one validated graph, ready to run on any device or to compile.
///
/// ```
/// # fn main() -> resnetc::Result<()> {
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models/r20_a_ts17_static.onnx");
/// let model = resnetc::Model::load(path)?;
/// let input = &model.inputs()[0];
/// assert_eq!(input.shape_text(), "[2,3,32,32]");
/// assert_eq!(model.outputs()[0].shape_text(), "[2,10]");
/// # Ok(()) }
/// ```
pub struct Model {
    graph: Graph,
    info: GraphInfo,
    reports: Vec<PassReport>,
    opt_level: u8,
    source: Option<Source>,
    artifact: Option<resnetc_artifact::Artifact>,
    /// The CPU plan of the default options, packed (or decoded from the artifact) on first use.
    cpu_plan: Mutex<Option<Arc<resnetc_cpu::CpuPlan>>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("inputs", &self.inputs())
            .field("outputs", &self.outputs())
            .field("opt_level", &self.opt_level)
            .field("artifact", &self.artifact.is_some())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Loads an ONNX model, optimized at the default level, or a compiled `.rnc` artifact (told apart
    /// by the artifact's magic bytes).
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(path, &LoadOptions::default())
    }

    /// [`Model::load`] with options.
    pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model> {
        Model::load_observed(path.as_ref(), opts, &mut |_, _| {})
    }

    /// [`Model::load_with`], calling `after(pass, graph)` after each optimizer pass (to print the
    /// IR as it changes).
    pub fn load_observed(
        path: &Path,
        opts: &LoadOptions,
        after: &mut dyn FnMut(&str, &Graph),
    ) -> Result<Model> {
        check_passes(&opts.disabled_passes)?;
        let bytes = read_model_file(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = Source {
            name,
            path: Some(path.to_path_buf()),
            sha256: resnetc_artifact::sha256(&bytes),
        };
        let what = || format!("loading {}", escape::path(path));
        if resnetc_artifact::is_artifact(&bytes) {
            return Model::from_artifact_bytes(&bytes, source).with_context(what);
        }
        let graph = resnetc_onnx::import_bytes(&bytes, path.parent()).with_context(what)?;
        Model::optimize(graph, opts, Some(source), after).with_context(what)
    }

    /// A model held in memory: a `.rnc` artifact (told apart by its magic bytes) or an ONNX file,
    /// optimized as `opts` says (external data, if any, is looked up beside `base_dir`).
    pub fn from_bytes(bytes: &[u8], base_dir: Option<&Path>, opts: &LoadOptions) -> Result<Model> {
        if resnetc_artifact::is_artifact(bytes) {
            let source = Source {
                name: String::new(),
                path: None,
                sha256: resnetc_artifact::sha256(bytes),
            };
            return Model::from_artifact_bytes(bytes, source);
        }
        Model::from_onnx_bytes(bytes, base_dir, opts)
    }

    /// Imports an ONNX model held in memory (external data, if any, is looked up beside `base_dir`).
    pub fn from_onnx_bytes(
        bytes: &[u8],
        base_dir: Option<&Path>,
        opts: &LoadOptions,
    ) -> Result<Model> {
        check_passes(&opts.disabled_passes)?;
        let graph = resnetc_onnx::import_bytes(bytes, base_dir)?;
        let source = Source {
            name: String::new(),
            path: None,
            sha256: resnetc_artifact::sha256(bytes),
        };
        Model::optimize(graph, opts, Some(source), &mut |_, _| {})
    }

    /// A model of a graph built in memory (by a test, a generator), optimized as `opts` says.
    pub fn from_graph(graph: Graph, opts: &LoadOptions) -> Result<Model> {
        check_passes(&opts.disabled_passes)?;
        Model::optimize(graph, opts, None, &mut |_, _| {})
    }

    fn optimize(
        mut graph: Graph,
        opts: &LoadOptions,
        source: Option<Source>,
        after: &mut dyn FnMut(&str, &Graph),
    ) -> Result<Model> {
        let pass_opts = PassOptions {
            level: opts.opt_level,
            disabled: opts.disabled_passes.clone(),
        };
        let (reports, info) = resnetc_passes::optimize(&mut graph, &pass_opts, after)?;
        Ok(Model {
            graph,
            info,
            reports,
            opt_level: opts.opt_level,
            source,
            artifact: None,
            cpu_plan: Mutex::new(None),
        })
    }

    fn from_artifact_bytes(bytes: &[u8], source: Source) -> Result<Model> {
        let artifact = resnetc_artifact::decode(bytes, None)?;
        let mut graph = resnetc_artifact::graph(&artifact)?;
        // The stored graph is already optimized; canonicalization only re-checks it.
        let reports = resnetc_passes::canonicalize(&mut graph)?;
        let info = validate(&graph)?;
        Ok(Model {
            graph,
            info,
            reports,
            opt_level: artifact.opt_level.min(u8::MAX as u32) as u8,
            source: Some(source),
            artifact: Some(artifact),
            cpu_plan: Mutex::new(None),
        })
    }

    /// The graph inputs (for a CifarResNet, one float32 `[N,3,32,32]`).
    pub fn inputs(&self) -> Vec<Port> {
        graph_inputs(&self.graph)
    }

    /// The graph outputs (for a CifarResNet, the logits `[N,classes]`).
    pub fn outputs(&self) -> Vec<Port> {
        graph_outputs(&self.graph, &self.info)
    }

    /// Checks an input of `dtype` and `shape` against the model's (single) input, as every session
    /// does before it runs: returns the batch, or an [`ErrorKind::InvalidInput`] error that names
    /// the expected and the given shape (and says so when the array looks channels-last).
    pub fn check_input(&self, dtype: resnetc_ir::DType, shape: &[usize]) -> Result<usize> {
        match self.inputs().as_slice() {
            [port] => port.check(dtype, shape),
            ports => Err(Error::new(
                ErrorKind::UnsupportedModel,
                format!(
                    "resnetc runs models with one input; this one has {}",
                    ports.len()
                ),
            )),
        }
    }

    /// The number of classes: the last dimension of the first output, when fixed.
    pub fn classes(&self) -> Option<usize> {
        self.outputs().first()?.shape.last()?.fixed()
    }

    /// The IR graph, as loaded and optimized.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// What validation inferred about the graph (order, types).
    pub fn info(&self) -> &GraphInfo {
        &self.info
    }

    /// What each optimizer pass did.
    pub fn pass_reports(&self) -> &[PassReport] {
        &self.reports
    }

    /// The optimization level the graph was prepared at (an artifact's: the one it was compiled at).
    pub fn opt_level(&self) -> u8 {
        self.opt_level
    }

    /// The artifact the model was loaded from, if any.
    pub fn artifact(&self) -> Option<&resnetc_artifact::Artifact> {
        self.artifact.as_ref()
    }

    pub(crate) fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// Op counts, parameters and MACs per image (what `resnetc inspect` reports).
    pub fn stats(&self) -> ModelStats {
        ModelStats::of(&self.graph, &self.info)
    }

    /// The same model with its batch fixed at `batch` (for artifacts compiled for one batch size).
    pub fn with_batch(&self, batch: usize) -> Result<Model> {
        let mut graph = self.graph.clone();
        fix_batch(&mut graph, batch)?;
        let info = validate(&graph)?;
        Ok(Model {
            graph,
            info,
            reports: self.reports.clone(),
            opt_level: self.opt_level,
            source: self.source.clone(),
            artifact: None,
            cpu_plan: Mutex::new(None),
        })
    }

    /// The CPU plan: with `winograd` `None`, the one an artifact stores (used as it is, on this
    /// machine's best kernel set), else packed from the graph; cached either way. An explicit
    /// Winograd choice packs a new plan. A stored plan that fails validation or does not fit the
    /// graph is an error (a damaged artifact), not a reason to recompile.
    pub fn cpu_plan(
        &self,
        winograd: Option<resnetc_cpu::Winograd>,
    ) -> Result<Arc<resnetc_cpu::CpuPlan>> {
        let opts = resnetc_cpu::CpuOptions {
            winograd,
            ..resnetc_cpu::CpuOptions::default()
        };
        if winograd.is_some() {
            return Ok(Arc::new(resnetc_cpu::CpuPlan::compile_with(
                &self.graph,
                &self.info,
                &opts,
            )?));
        }
        let mut cached = self.cpu_plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = cached.as_ref() {
            return Ok(plan.clone());
        }
        let stored = self
            .artifact
            .as_ref()
            .and_then(resnetc_artifact::packed_plan);
        let plan = match stored {
            Some(bytes) => {
                let plan = resnetc_cpu::CpuPlan::from_bytes(bytes, resnetc_cpu::Isa::Auto)?;
                self.check_plan_fits(&plan)?;
                plan
            }
            None => resnetc_cpu::CpuPlan::compile_with(&self.graph, &self.info, &opts)?,
        };
        let plan = Arc::new(plan);
        *cached = Some(plan.clone());
        Ok(plan)
    }

    /// A stored plan's inputs and outputs must be the graph's (names, dimensions after the batch).
    fn check_plan_fits(&self, plan: &resnetc_cpu::CpuPlan) -> Result<()> {
        let tail = |v: ValueRef| self.info.ty(v).and_then(|t| t.concrete_tail());
        let graph_inputs: Vec<_> = (self.graph.inputs.iter())
            .map(|&i| (self.graph.node(i).outputs[0].clone(), tail(i.into())))
            .collect();
        let graph_outputs: Vec<_> = (self.graph.outputs.iter())
            .map(|o| (o.name.clone(), tail(o.value)))
            .collect();
        let port = |p: &resnetc_cpu::Port| (p.name.clone(), Some(p.dims.clone()));
        let plan_inputs: Vec<_> = plan.inputs().iter().map(port).collect();
        let plan_outputs: Vec<_> = plan.outputs().map(port).collect();
        if plan_inputs != graph_inputs || plan_outputs != graph_outputs {
            return Err(Error::new(
                ErrorKind::InvalidModel,
                escape::text(&format!(
                    "the artifact's CPU plan does not fit its graph: the plan takes {plan_inputs:?} and gives {plan_outputs:?}, the graph {graph_inputs:?} and {graph_outputs:?} (per image); recompile it"
                )),
            ));
        }
        Ok(())
    }

    /// The CUDA program to run on GPU `ordinal`: the one an artifact compiled with `--target cuda`
    /// stores (its launch plan with the weights, and cubin and PTX per architecture), else one
    /// lowered from the graph and compiled by NVRTC for that GPU now (the graph must be fused: opt
    /// level 3).
    pub fn cuda_program(
        &self,
        ordinal: usize,
    ) -> Result<(resnetc_cuda::CudaProgram, Vec<resnetc_cuda::Compiled>)> {
        match self.artifact.as_ref().and_then(|a| a.cuda.as_ref()) {
            Some(section) => crate::artifact::cuda_program(section),
            None => {
                let dev = resnetc_cuda::DeviceInfo::query(ordinal)?;
                let opts = resnetc_cuda::GenOptions {
                    batch: None,
                    sm_count: dev.sm_count,
                };
                let program = resnetc_cuda::generate_with(&self.graph, &self.info, &opts)?;
                let image = resnetc_cuda::compile(&program.source, &dev.arch())?;
                Ok((program, vec![image]))
            }
        }
    }

    /// Whether the model carries a compiled CUDA program (else a CUDA session compiles one).
    pub fn has_cuda_program(&self) -> bool {
        self.artifact.as_ref().is_some_and(|a| a.cuda.is_some())
    }
}

/// Refuses an unknown pass name, listing the real ones.
pub fn check_pass(name: &str) -> Result<()> {
    if resnetc_passes::pass_named(name).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = passes().map(|p| p.0).collect();
    Err(Error::invalid_input(format!(
        "there is no pass named '{}'; the passes are: {}",
        escape::name(name),
        names.join(", ")
    )))
}

fn check_passes(disabled: &[String]) -> Result<()> {
    disabled.iter().try_for_each(|name| check_pass(name))
}

/// Reads a model file, refusing what is not a regular file (a FIFO would block forever) or is
/// larger than the 'file bytes' limit.
fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    crate::fsio::read_regular(path, |len| {
        resnetc_ir::limits::FILE_BYTES
            .check(len, "its size in bytes")
            .map_err(|m| {
                Error::new(
                    ErrorKind::InvalidModel,
                    format!("{}: {m}", escape::path(path)),
                )
            })
    })
}

/// Fixes the batch dimension of every graph input to `batch`.
fn fix_batch(graph: &mut Graph, batch: usize) -> Result<()> {
    if batch == 0 {
        return Err(Error::invalid_input("the batch size must be at least 1"));
    }
    for &id in &graph.inputs.clone() {
        if let Op::Input { ty, .. } = &mut graph.node_mut(id).op {
            match ty.shape.first_mut() {
                Some(d @ Dim::Sym(_)) => *d = Dim::Fixed(batch),
                Some(Dim::Fixed(n)) if *n == batch => {}
                Some(Dim::Fixed(n)) => {
                    return Err(Error::invalid_input(format!(
                        "the model's batch is fixed at {n}; it cannot be compiled for batch {batch}"
                    )))
                }
                None => {
                    return Err(Error::invalid_input(
                        "the model's input has no batch dimension",
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Nodes in the main graph of the ONNX file at `path` as written, before canonicalization
/// (`None` for an artifact).
pub(crate) fn onnx_node_count(path: &Path) -> Result<Option<usize>> {
    let bytes = read_model_file(path)?;
    if resnetc_artifact::is_artifact(&bytes) {
        return Ok(None);
    }
    let proto =
        <resnetc_onnx::proto::ModelProto as prost::Message>::decode(&*bytes).map_err(|e| {
            Error::new(
                ErrorKind::InvalidModel,
                format!("{}: {e}", escape::path(path)),
            )
        })?;
    Ok(proto.graph.map(|g| g.node.len()))
}
