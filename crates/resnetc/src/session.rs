//! [`Session`]: a model planned for one device, run as often as needed. Every run checks its input
//! against the model's (dtype, rank, every fixed dimension) before a backend sees it.

use std::sync::Arc;

use ndarray::{Array2, ArrayD, ArrayView4, ArrayViewD, Ix2, IxDyn};
use resnetc_ir::{DType, Graph, Tensor};

use crate::input::Port;
use crate::{Error, ErrorKind, Model, Result};

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// resnetc's fast CPU backend (SIMD kernels, Winograd, threads).
    Cpu,
    /// The reference executor: the plain interpreter every backend is tested against.
    Reference,
    /// The CUDA backend on a GPU ([`SessionOptions::gpu`]; GPU 0 by default).
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

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "reference" => Ok(Device::Reference),
            "cuda" => Ok(Device::Cuda),
            _ => Err(Error::invalid_input(format!(
                "unknown device '{}'; use cpu, reference or cuda",
                crate::escape::name(s)
            ))),
        }
    }
}

pub use resnetc_cpu::Winograd;

/// How a [`Session`] runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// CPU threads; `None`: all the cores this process may use, which is also the most it uses
    /// ([`cpu_threads`]).
    pub threads: Option<usize>,
    /// Which stride-1 3×3 convolutions the CPU backend runs as Winograd; `None`: the kernel set's
    /// default (or the plan an artifact stores). An explicit choice packs a new plan.
    pub winograd: Option<Winograd>,
    /// The GPU for [`Device::Cuda`] (an ordinal; 0 by default).
    pub gpu: usize,
    /// For [`Device::Cpu`]: run a graph the CPU backend has no kernels for on the reference
    /// executor instead of refusing it ([`Session::fallback`] then says why).
    pub fallback_to_reference: bool,
    /// Run inputs that hold NaN or an infinity (NaN then reaches the logits, as in PyTorch)
    /// instead of refusing them ([`crate::check_finite`]).
    pub allow_nonfinite: bool,
}

/// A model planned for one device. Reuse it: the CPU plan, its arenas and threads, or the GPU's
/// module and buffers, are set up once.
///
/// ```
/// # fn main() -> resnetc::Result<()> {
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models/r20_a_ts17_dynamic.onnx");
/// use resnetc::ndarray::Array4;
/// let model = resnetc::Model::load(path)?;
/// let mut session = model.session(resnetc::Device::Cpu)?;
/// let images = Array4::<f32>::zeros((4, 3, 32, 32));
/// let logits = session.run(images.view())?;
/// assert_eq!(logits.shape(), &[4, 10]);
///
/// // Channels-last images are refused, never misread.
/// let nhwc = Array4::<f32>::zeros((4, 32, 32, 3));
/// let err = session.run(nhwc.view()).unwrap_err();
/// assert_eq!(err.kind(), resnetc::ErrorKind::InvalidInput);
/// assert!(err.to_string().contains("looks like NHWC"));
/// # Ok(()) }
/// ```
pub struct Session {
    input: Port,
    output: Port,
    backend: Backend,
    fallback: Option<String>,
    allow_nonfinite: bool,
}

enum Backend {
    Cpu {
        session: resnetc_cpu::Session<'static>,
        /// Floats per image of the output.
        out_floats: usize,
        /// Why it runs on fewer threads than asked for ([`cpu_threads`]).
        threads_note: Option<String>,
    },
    Reference(Box<Graph>),
    Cuda {
        session: Box<resnetc_cuda::CudaSession>,
        out_shape: Vec<usize>,
    },
}

impl Model {
    /// A session on `device` with default options.
    pub fn session(&self, device: Device) -> Result<Session> {
        self.session_with(device, &SessionOptions::default())
    }

    /// A session on `device`.
    pub fn session_with(&self, device: Device, opts: &SessionOptions) -> Result<Session> {
        let mut inputs = self.inputs();
        let mut outputs = self.outputs();
        if inputs.len() != 1 || outputs.is_empty() {
            return Err(Error::new(
                ErrorKind::UnsupportedModel,
                format!(
                    "resnetc runs models with one input and an output; this one has {} inputs and {} outputs",
                    inputs.len(),
                    outputs.len()
                ),
            ));
        }
        let (input, output) = (inputs.remove(0), outputs.remove(0));
        let mut fallback = None;
        let backend = match device {
            Device::Reference => Backend::Reference(Box::new(self.graph().clone())),
            Device::Cpu => match self.cpu_plan(opts.winograd) {
                Ok(plan) => cpu_backend(plan, opts.threads),
                Err(e)
                    if opts.fallback_to_reference
                        && e.downcast_ref::<resnetc_cpu::CpuError>().is_some() =>
                {
                    fallback = Some(e.to_string());
                    Backend::Reference(Box::new(self.graph().clone()))
                }
                Err(e) => return Err(e),
            },
            Device::Cuda => {
                let (program, images) = self.cuda_program(opts.gpu)?;
                let out_shape = program.output.shape.clone();
                let session = resnetc_cuda::CudaSession::new(&program, &images, opts.gpu)?;
                Backend::Cuda {
                    session: Box::new(session),
                    out_shape,
                }
            }
        };
        Ok(Session {
            input,
            output,
            backend,
            fallback,
            allow_nonfinite: opts.allow_nonfinite,
        })
    }
}

/// The CPU threads a session or a bench uses when asked for `requested`, and a note when the
/// request was capped: at most as many as this process may run at once
/// ([`resnetc_cpu::default_threads`]: the cores, narrowed by the affinity mask and a cgroup CPU
/// quota), which is also the default. More would only take turns on the same cores, and each
/// step would wait for the member whose turn it is not.
pub fn cpu_threads(requested: Option<usize>) -> (usize, Option<String>) {
    let available = resnetc_cpu::default_threads();
    match requested {
        None | Some(0) => (available, None),
        Some(n) if n > available => (
            available,
            Some(format!(
                "{n} threads asked for, but this process may run {available} at once (cores, affinity, CPU quota): using {available}"
            )),
        ),
        Some(n) => (n, None),
    }
}

fn cpu_backend(plan: Arc<resnetc_cpu::CpuPlan>, threads: Option<usize>) -> Backend {
    let out_floats = plan.outputs().next().map_or(0, |p| p.floats);
    let (threads, threads_note) = cpu_threads(threads);
    Backend::Cpu {
        session: resnetc_cpu::Session::shared(plan, threads),
        out_floats,
        threads_note,
    }
}

impl Session {
    /// Runs a batch of NCHW images and returns the logits, `[batch, classes]`.
    pub fn run(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let y = self.run_dyn(images.into_dyn())?;
        let shape = y.shape().to_vec();
        y.into_dimensionality::<Ix2>().map_err(|_| {
            Error::new(
                ErrorKind::UnsupportedModel,
                format!("the model's output has shape {shape:?}, not [batch, classes]; use Session::run_dyn"),
            )
        })
    }

    /// Runs a float32 input of the model's rank and returns the first output.
    pub fn run_dyn(&mut self, input: ArrayViewD<f32>) -> Result<ArrayD<f32>> {
        let batch = self.input.check(DType::F32, input.shape())?;
        if !self.allow_nonfinite {
            crate::input::check_finite(input.view())?;
        }
        match &mut self.backend {
            Backend::Cpu {
                session,
                out_floats,
                ..
            } => {
                let x = input.as_standard_layout();
                let x = x.as_slice().expect("standard layout is contiguous");
                let mut y = vec![0f32; batch * *out_floats];
                session.run(x, batch, &mut y)?;
                let shape = concrete(&self.output, batch);
                Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).map_err(internal)?)
            }
            Backend::Reference(graph) => {
                let y = resnetc_reference::run(graph, &[Tensor::f32(input.to_owned())])?;
                first_f32(y)
            }
            Backend::Cuda { session, out_shape } => {
                let x = input.as_standard_layout();
                let x = x.as_slice().expect("standard layout is contiguous");
                let y = session.run(x, batch)?;
                let mut shape = vec![batch];
                shape.extend(out_shape.iter().copied());
                Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).map_err(internal)?)
            }
        }
    }

    /// Runs an IR tensor (any element type the model takes) and returns the first output.
    pub fn run_tensor(&mut self, input: &Tensor) -> Result<Tensor> {
        self.input.check(input.dtype(), input.shape())?;
        match (&self.backend, input.as_f32()) {
            (_, Some(x)) => Ok(Tensor::f32(self.run_dyn(x.view())?)),
            (Backend::Reference(graph), None) => resnetc_reference::run(graph, std::slice::from_ref(input))?
                .into_iter()
                .next()
                .ok_or_else(|| internal("the model has no outputs")),
            (_, None) => Err(Error::new(
                ErrorKind::UnsupportedModel,
                format!(
                    "this backend runs float32 inputs only; the model takes {}: run it on Device::Reference",
                    input.dtype()
                ),
            )),
        }
    }

    /// The input this session takes.
    pub fn input(&self) -> &Port {
        &self.input
    }

    /// What runs: `avx512 kernels, 2 threads` (CPU), `cubin sm_90 on …` (CUDA), `reference executor`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Cpu { session, .. } => format!(
                "{} kernels, {} thread{}",
                session.plan().isa().name(),
                session.threads(),
                if session.threads() == 1 { "" } else { "s" }
            ),
            Backend::Reference(_) => "reference executor".into(),
            Backend::Cuda { session, .. } => {
                format!("{} on {}", session.image(), session.device().name)
            }
        }
    }

    /// Why this session runs on fewer CPU threads than [`SessionOptions::threads`] asked for, when
    /// it does ([`cpu_threads`]).
    pub fn threads_note(&self) -> Option<&str> {
        match &self.backend {
            Backend::Cpu { threads_note, .. } => threads_note.as_deref(),
            _ => None,
        }
    }

    /// Why a CPU session runs on the reference executor, when it does
    /// ([`SessionOptions::fallback_to_reference`]).
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    pub(crate) fn cuda(&mut self) -> Option<&mut resnetc_cuda::CudaSession> {
        match &mut self.backend {
            Backend::Cuda { session, .. } => Some(session),
            _ => None,
        }
    }
}

/// The output's shape at `batch` (its symbolic batch resolved).
fn concrete(port: &Port, batch: usize) -> Vec<usize> {
    port.shape
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if i == 0 {
                batch
            } else {
                d.fixed().unwrap_or(1)
            }
        })
        .collect()
}

fn first_f32(outputs: Vec<Tensor>) -> Result<ArrayD<f32>> {
    let y = outputs
        .into_iter()
        .next()
        .ok_or_else(|| internal("the model has no outputs"))?;
    match y {
        Tensor::F32(a) => Ok(a.into_owned()),
        other => Err(Error::new(
            ErrorKind::UnsupportedModel,
            format!("the model's output is {}, not float32", other.dtype()),
        )),
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidModel,
        format!("internal error: {e}; please report this with the model"),
    )
}
