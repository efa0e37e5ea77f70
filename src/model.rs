//! Loading a model: import, then level-0 canonicalization, so every consumer sees static shapes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use resnetc_ir::{validate, Graph, GraphInfo, Op, Tensor, ValueRef};
use resnetc_passes::{run_passes, PassOptions, PassReport};

/// Where a model runs: resnetc's fast CPU backend, its reference executor (the plain interpreter
/// every backend is tested against), or the CUDA backend on GPU 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    Cpu,
    Reference,
    Cuda,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Reference => "reference",
            Device::Cuda => "cuda",
        }
    }
}

/// A loaded, canonicalized and validated graph.
pub struct Model {
    pub graph: Graph,
    pub info: GraphInfo,
    pub reports: Vec<PassReport>,
    /// The artifact it came from, when loaded from a `.rnc`.
    pub artifact: Option<resnetc_artifact::Artifact>,
    /// How to compile the CPU plan. A Winograd choice here (not `None`) also overrides the plan an
    /// artifact stores: the graph is compiled again with it.
    pub cpu: resnetc_cpu::CpuOptions,
}

/// Loads an ONNX model (running the passes `opts` selects) or a compiled `.rnc` artifact (already
/// optimized: `opts` does not apply), telling them apart by the artifact's magic bytes.
pub fn load_any(
    path: &Path,
    opts: &PassOptions,
    after: &mut dyn FnMut(&str, &Graph),
) -> Result<Model> {
    let mut head = [0u8; 8];
    let is_artifact = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|_| resnetc_artifact::is_artifact(&head));
    if !is_artifact {
        return load_model_with(path, opts, after);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let artifact = resnetc_artifact::decode(&bytes, None)
        .with_context(|| format!("loading {}", path.display()))?;
    let mut graph = resnetc_artifact::graph(&artifact)
        .with_context(|| format!("loading {}", path.display()))?;
    // The stored graph is already optimized; canonicalization only re-checks it.
    let reports = resnetc_passes::canonicalize(&mut graph)?;
    let info = validate(&graph).context("validating the artifact's graph")?;
    Ok(Model {
        cpu: resnetc_cpu::CpuOptions::default(),
        graph,
        info,
        reports,
        artifact: Some(artifact),
    })
}

/// Fixes the batch dimension of every graph input to `batch`.
pub fn fix_batch(graph: &mut Graph, batch: usize) -> Result<()> {
    for &id in &graph.inputs.clone() {
        if let Op::Input { ty, .. } = &mut graph.node_mut(id).op {
            match ty.shape.first_mut() {
                Some(d @ resnetc_ir::Dim::Sym(_)) => *d = resnetc_ir::Dim::Fixed(batch),
                Some(resnetc_ir::Dim::Fixed(n)) if *n == batch => {}
                Some(resnetc_ir::Dim::Fixed(n)) => anyhow::bail!(
                    "the model's batch is fixed at {n}; it cannot be compiled for batch {batch}"
                ),
                None => anyhow::bail!("input has no batch dimension"),
            }
        }
    }
    Ok(())
}

/// Imports an ONNX file and runs the passes `opts` selects (level 0: canonicalization only).
pub fn load_model(path: &Path, opts: &PassOptions) -> Result<Model> {
    load_model_with(path, opts, &mut |_, _| {})
}

/// Like [`load_model`], calling `after(pass, graph)` after each pass (for `--print-ir-after`).
pub fn load_model_with(
    path: &Path,
    opts: &PassOptions,
    after: &mut dyn FnMut(&str, &Graph),
) -> Result<Model> {
    for name in &opts.disabled {
        if resnetc_passes::pass_named(name).is_none() {
            let names: Vec<&str> = resnetc_passes::PASSES.iter().map(|p| p.name).collect();
            anyhow::bail!(
                "there is no pass named '{name}'; the passes are: {}",
                names.join(", ")
            );
        }
    }
    let mut graph =
        resnetc_onnx::import_file(path).with_context(|| format!("importing {}", path.display()))?;
    let reports = run_passes(&mut graph, opts, after)
        .with_context(|| format!("compiling {}", path.display()))?;
    let info = validate(&graph).context("validating the compiled graph")?;
    Ok(Model {
        cpu: resnetc_cpu::CpuOptions::default(),
        graph,
        info,
        reports,
        artifact: None,
    })
}

impl Model {
    /// Runs the reference executor.
    pub fn run_reference(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(resnetc_reference::run(&self.graph, inputs)?)
    }

    /// The CPU backend's plan: the one an artifact stores, used as it is (nothing is packed; it runs
    /// on this machine's best kernel set), else compiled from the graph (an ONNX model, or an
    /// artifact written without a plan). A stored plan that fails validation, or whose inputs and
    /// outputs are not the graph's, is an error (a damaged artifact), not a reason to recompile.
    /// A graph the backend cannot run gives a [`resnetc_cpu::CpuError`]. An explicit Winograd choice
    /// in [`Model::cpu`] compiles the graph even when a plan is stored.
    pub fn cpu_plan(&self) -> Result<resnetc_cpu::CpuPlan> {
        let stored = (self.artifact.as_ref())
            .and_then(resnetc_artifact::packed_plan)
            .filter(|_| self.cpu.winograd.is_none());
        let Some(bytes) = stored else {
            return Ok(resnetc_cpu::CpuPlan::compile_with(
                &self.graph,
                &self.info,
                &self.cpu,
            )?);
        };
        let plan = resnetc_cpu::CpuPlan::from_bytes(bytes, resnetc_cpu::Isa::Auto)?;
        // Each port as (name, dimensions after the batch).
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
            anyhow::bail!(
                "the artifact's CPU plan does not fit its graph: the plan takes {plan_inputs:?} and gives {plan_outputs:?}, the graph {graph_inputs:?} and {graph_outputs:?} (per image); recompile it"
            );
        }
        Ok(plan)
    }

    /// Runs the fast CPU backend on a single float32 input (NCHW, batch in dim 0), or says why it
    /// cannot (then callers fall back to the reference executor).
    pub fn run_cpu(&self, input: &Tensor, threads: usize) -> Result<Tensor> {
        let plan = self.cpu_plan()?;
        let x = input
            .as_f32()
            .context("the CPU backend takes a float32 input")?;
        let batch = x
            .shape()
            .first()
            .copied()
            .context("the input has no batch dimension")?;
        let x = x.as_standard_layout();
        let out = plan.outputs().next().context("the plan has no output")?;
        let mut y = vec![0f32; batch * out.floats];
        let mut session = resnetc_cpu::Session::new(&plan, threads);
        session.run(x.as_slice().context("contiguous input")?, batch, &mut y)?;
        let mut shape = vec![batch];
        shape.extend(out.dims.iter().copied());
        Ok(Tensor::f32(ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&shape),
            y,
        )?))
    }

    /// The CUDA program to run on GPU 0: the one an artifact compiled with `--target cuda` stores
    /// (its launch plan with the weights, and cubin and PTX per architecture), else one lowered from
    /// the graph and compiled by NVRTC for that GPU now (the graph must be fused: opt level 3).
    pub fn cuda_program(&self) -> Result<(resnetc_cuda::CudaProgram, Vec<resnetc_cuda::Compiled>)> {
        let Some(cuda) = self.artifact.as_ref().and_then(|a| a.cuda.as_ref()) else {
            let dev = resnetc_cuda::DeviceInfo::query(0)?;
            let opts = resnetc_cuda::GenOptions {
                batch: None,
                sm_count: dev.sm_count,
            };
            let program = resnetc_cuda::generate_with(&self.graph, &self.info, &opts)?;
            let image = resnetc_cuda::compile(&program.source, &dev.arch())?;
            return Ok((program, vec![image]));
        };
        let mut program: resnetc_cuda::CudaProgram =
            serde_json::from_slice(&cuda.launch_plan).context("the artifact's CUDA launch plan")?;
        if cuda.weights.len() % 4 != 0 {
            anyhow::bail!("the artifact's CUDA weights are damaged; recompile it");
        }
        program.weights = cuda
            .weights
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        program.check().context("the artifact's CUDA program")?;
        let images = cuda
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

    /// Runs the CUDA backend on GPU 0 on a single float32 input (NCHW, batch in dim 0); also says
    /// what ran, e.g. `cubin sm_90 on NVIDIA H100 80GB HBM3`.
    pub fn run_cuda(&self, input: &Tensor) -> Result<(Tensor, String)> {
        let (program, images) = self.cuda_program()?;
        let x = input
            .as_f32()
            .context("the CUDA backend takes a float32 input")?
            .as_standard_layout()
            .to_owned();
        let batch = x
            .shape()
            .first()
            .copied()
            .context("the input has no batch dimension")?;
        let mut session = resnetc_cuda::CudaSession::new(&program, &images, 0)?;
        let y = session.run(x.as_slice().context("contiguous input")?, batch)?;
        let mut shape = vec![batch];
        shape.extend(program.output.shape.iter().copied());
        let what = format!("{} on {}", session.image(), session.device().name);
        let y = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), y)?;
        Ok((Tensor::f32(y), what))
    }

    pub fn stats(&self) -> ModelStats {
        ModelStats::of(&self.graph, &self.info)
    }
}

/// What `resnetc inspect` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelStats {
    pub inputs: Vec<ValueSummary>,
    pub outputs: Vec<ValueSummary>,
    /// Op name → count, constants and graph inputs excluded.
    pub ops: BTreeMap<String, usize>,
    /// Number of constant tensors (weights and other constants).
    pub constants: usize,
    /// Elements in the weights of Conv, Gemm, MatMul and BatchNormalization.
    pub params: usize,
    /// Multiply-accumulates for one image (batch 1) in Conv, Gemm and MatMul.
    pub macs: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ValueSummary {
    pub name: String,
    pub dtype: String,
    /// Dimensions: a number, or the symbol's name.
    pub shape: Vec<serde_json::Value>,
}

impl ModelStats {
    pub fn of(graph: &Graph, info: &GraphInfo) -> ModelStats {
        let summary = |name: &str, v: ValueRef| {
            let ty = info.ty(v);
            ValueSummary {
                name: name.to_string(),
                dtype: ty.map_or_else(|| "?".into(), |t| t.dtype.to_string()),
                shape: ty.map_or_else(Vec::new, |t| {
                    t.shape
                        .iter()
                        .map(|d| match d {
                            resnetc_ir::Dim::Fixed(n) => serde_json::json!(n),
                            resnetc_ir::Dim::Sym(s) => serde_json::json!(s),
                        })
                        .collect()
                }),
            }
        };
        let inputs = graph
            .inputs
            .iter()
            .map(|&i| summary(&graph.node(i).outputs[0], i.into()))
            .collect();
        let outputs = graph
            .outputs
            .iter()
            .map(|o| summary(&o.name, o.value))
            .collect();
        let mut ops = BTreeMap::new();
        let mut constants = 0;
        let mut params = 0;
        let mut macs = 0u64;
        for &id in &info.order {
            let op = graph.op(id);
            match op {
                Op::Input { .. } => continue,
                Op::Constant(_) => {
                    constants += 1;
                    continue;
                }
                _ => {}
            }
            *ops.entry(op.onnx_name().to_string()).or_insert(0) += 1;
            macs += node_macs(graph, info, id);
        }
        // Parameters: the constant operands of the ops that carry weights, each tensor counted once.
        let mut seen = std::collections::HashSet::new();
        for &id in &info.order {
            let first_param_slot = match graph.op(id) {
                Op::Conv(_)
                | Op::FusedConv { .. }
                | Op::Gemm(_)
                | Op::MatMul
                | Op::BatchNorm { .. } => 1,
                _ => continue,
            };
            // A fused convolution's residual (slot 3) is an activation, not a weight.
            let last = if matches!(graph.op(id), Op::FusedConv { .. }) {
                3
            } else {
                usize::MAX
            };
            for v in graph
                .inputs(id)
                .into_iter()
                .take(last)
                .skip(first_param_slot)
                .flatten()
            {
                if let Op::Constant(t) = graph.op(v.node) {
                    if seen.insert(v.node) {
                        params += t.len();
                    }
                }
            }
        }
        ModelStats {
            inputs,
            outputs,
            ops,
            constants,
            params,
            macs,
        }
    }
}

/// MACs of one node for one image: the batch dimension (dim 0) is left out.
fn node_macs(graph: &Graph, info: &GraphInfo, id: resnetc_ir::NodeId) -> u64 {
    let per_image = |v: ValueRef| -> Option<u64> {
        let t = info.ty(v)?;
        t.shape
            .iter()
            .skip(1)
            .map(|d| d.fixed().map(|x| x as u64))
            .product()
    };
    let out = ValueRef::new(id, 0);
    match graph.op(id) {
        Op::Conv(_) | Op::FusedConv { .. } => {
            let Some(w) = graph
                .input(id, 1)
                .and_then(|w| info.ty(w))
                .and_then(|t| t.concrete())
            else {
                return 0;
            };
            // Each output element takes C/group × kh × kw multiply-adds: exactly the weights' inner size.
            per_image(out).unwrap_or(0) * (w[1] * w[2] * w[3]) as u64
        }
        Op::Gemm(g) => {
            let Some(a) = graph.input(id, 0).and_then(|a| info.ty(a)) else {
                return 0;
            };
            let k = if g.trans_a {
                a.shape[0].fixed()
            } else {
                a.shape.get(1).and_then(|d| d.fixed())
            };
            per_image(out).unwrap_or(0) * k.unwrap_or(0) as u64
        }
        Op::MatMul => {
            let Some(b) = graph.input(id, 1).and_then(|b| info.ty(b)) else {
                return 0;
            };
            per_image(out).unwrap_or(0) * b.shape[0].fixed().unwrap_or(0) as u64
        }
        _ => 0,
    }
}
