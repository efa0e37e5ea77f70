//! resnetc for Python: the native module `resnetc._resnetc`, which the `resnetc` package
//! (`python/resnetc/__init__.py`) re-exports.
//!
//! Everything here is conversion, as the library's CLI is printing: Python arguments become the
//! `resnetc` library's types, its results become numpy arrays and dicts (the dicts are the same
//! objects `resnetc … --json` prints, through serde_json), and its errors become the exception
//! classes of `resnetc._errors`, chosen by [`ErrorKind`], with the library's message. Work runs
//! with the GIL released, so other Python threads go on meanwhile.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use numpy::{
    dtype, IntoPyArray, PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use pyo3::IntoPyObjectExt as _;
use resnetc::ir::{DType, Dim};
use resnetc::{Device, ErrorKind, SessionOptions};

/// A library result on its way to Python: its error raised as the exception of its kind.
trait OrRaise<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for resnetc::Result<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| raise(py, &e))
    }
}

/// The exception for a library error: the class of its kind (from `resnetc/_errors.py`, where
/// `InvalidInput` is also a `ValueError` and the environment's error an `OSError`), carrying the
/// library's message.
fn raise(py: Python<'_>, e: &resnetc::Error) -> PyErr {
    let class = match e.kind() {
        ErrorKind::InvalidModel => "InvalidModel",
        ErrorKind::UnsupportedModel => "UnsupportedModel",
        ErrorKind::InvalidInput => "InvalidInput",
        ErrorKind::Environment => "ResnetcEnvironmentError",
        ErrorKind::CheckFailed => "CheckFailed",
    };
    let class = py
        .import("resnetc._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| Ok(c.cast_into::<PyType>()?));
    match class {
        Ok(class) => PyErr::from_type(class, e.to_string()),
        Err(missing) => missing,
    }
}

/// A report as the Python object its JSON is (`json.loads` of serde_json's text): the dicts the
/// CLI's `--json` prints, key for key.
fn to_python<'py>(py: Python<'py>, report: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(report).map_err(|e| {
        raise(
            py,
            &resnetc::Error::new(
                ErrorKind::InvalidModel,
                format!("internal error: cannot serialize the report: {e}"),
            ),
        )
    })?;
    py.import("json")?.call_method1("loads", (text,))
}

/// The library's element type of a numpy dtype, when it has one.
fn ir_dtype(d: &Bound<'_, PyArrayDescr>) -> Option<DType> {
    let py = d.py();
    [
        (dtype::<f32>(py), DType::F32),
        (dtype::<f64>(py), DType::F64),
        (dtype::<i32>(py), DType::I32),
        (dtype::<i64>(py), DType::I64),
        (dtype::<bool>(py), DType::Bool),
    ]
    .into_iter()
    .find(|(t, _)| d.is_equiv_to(t))
    .map(|(_, ir)| ir)
}

/// The numpy name of a library element type (what `numpy.dtype` takes).
fn numpy_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::Bool => "bool",
    }
}

/// `x` as a C-contiguous, aligned float32 numpy array: what `numpy.asarray(x)` gives (so a CPU
/// torch tensor, or anything with `__array__`, is read without a copy where it can be), copied by
/// numpy when it is strided or misaligned (`numpy.require(x, None, ["C", "A"])`: rust-numpy's views
/// assume aligned elements and strides in whole elements). Any other dtype is refused, never
/// converted: with the library's message when it knows the dtype (it names the model's input and
/// shape), in the same words otherwise.
fn float32_array<'py>(
    x: &Bound<'py, PyAny>,
    what: &str,
    model: Option<&resnetc::Model>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let py = x.py();
    let array = py
        .import("numpy")?
        .call_method1("require", (x, py.None(), ["C", "A"]))?;
    let untyped = array.cast::<PyUntypedArray>()?;
    let dt = untyped.dtype();
    if !dt.is_equiv_to(&dtype::<f32>(py)) {
        if let (Some(model), Some(ir)) = (model, ir_dtype(&dt)) {
            model.check_input(ir, untyped.shape()).or_raise(py)?;
        }
        // A dtype the library has no name for (float16, uint8, …): the same message in its words.
        let given = untyped
            .shape()
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let expected = match model.map(resnetc::Model::inputs).as_deref() {
            Some([port]) => format!(
                "input '{}' must be f32 {}",
                resnetc::escape::name(&port.name),
                port.shape_text()
            ),
            _ => format!("{what} must be float32"),
        };
        let message = format!(
            "{expected}, but the given array is {} [{given}] (convert it with x.astype(np.float32))",
            dt.str()?
        );
        return Err(raise(
            py,
            &resnetc::Error::new(ErrorKind::InvalidInput, message),
        ));
    }
    Ok(array.cast_into::<PyArrayDyn<f32>>()?)
}

/// A port as a dict: `name`, `shape` (ints, a str for a symbolic dimension), `dtype` (numpy's name).
fn port<'py>(py: Python<'py>, p: &resnetc::Port) -> PyResult<Bound<'py, PyDict>> {
    let shape = p
        .shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.into_bound_py_any(py),
            Dim::Sym(s) => s.into_bound_py_any(py),
        })
        .collect::<PyResult<Vec<_>>>()?;
    let dict = PyDict::new(py);
    dict.set_item("name", &p.name)?;
    dict.set_item("shape", PyList::new(py, shape)?)?;
    dict.set_item("dtype", numpy_name(p.dtype))?;
    Ok(dict)
}

/// Sessions are kept per device and thread count.
type SessionKey = (Device, Option<usize>);

/// A session of a host device ([`Device::Cpu`] or [`Device::Reference`]), which may move between
/// threads, as a Python object's contents must.
///
/// `resnetc::Session` is not `Send` as a type because its CUDA backend holds the driver's raw
/// pointers (`resnetc_cuda::CudaSession`); a host session holds none of them (the CPU backend's
/// session, or the reference executor's graph, both `Send`: asserted below). [`HostSession::new`]
/// is the only way to make one and refuses every other device, so a CUDA session is never in one.
/// (With `Send` on `CudaSession` in resnetc-cuda, which sets its context current before each use,
/// this wrapper could go and `device="cuda"` be offered too.)
struct HostSession(resnetc::Session);

// SAFETY: see the type's documentation: the only part of a `resnetc::Session` that is not `Send`
// is the CUDA backend, which a `HostSession` never holds.
unsafe impl Send for HostSession {}

const _: () = {
    const fn send<T: Send>() {}
    send::<resnetc::cpu::Session<'static>>();
    send::<resnetc::ir::Graph>();
};

impl HostSession {
    fn new(model: &resnetc::Model, (device, threads): SessionKey) -> resnetc::Result<HostSession> {
        if !matches!(device, Device::Cpu | Device::Reference) {
            return Err(resnetc::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the Python package runs models on the cpu or the reference device, not {device}; \
                     for the GPU, compile(path, target=\"cuda\") and run the .rnc with `resnetc run --device cuda`"
                ),
            ));
        }
        let opts = SessionOptions {
            threads,
            ..SessionOptions::default()
        };
        model.session_with(device, &opts).map(HostSession)
    }
}

/// A loaded model (from `resnetc.load`): call it on a batch of NCHW images to get the logits.
///
/// `model(x)` is `model.run(x)`. The first call on a device and thread count plans a session
/// (the CPU plan itself is packed once per model); later calls reuse it. Calls from several
/// Python threads at once are safe and run in parallel, each on a session of its own.
#[pyclass(frozen, module = "resnetc", name = "Model")]
struct Model {
    inner: resnetc::Model,
    path: PathBuf,
    /// Sessions not running now. A call takes one (planning a new one when every session of its
    /// key is busy in another thread) and gives it back when done, so there are as many sessions
    /// as calls have ever overlapped, and no call waits for another.
    idle: Mutex<HashMap<SessionKey, Vec<HostSession>>>,
}

impl Model {
    fn new(inner: resnetc::Model, path: PathBuf) -> Model {
        Model {
            inner,
            path,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn take_session(&self, key: SessionKey) -> resnetc::Result<HostSession> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&key)
            .and_then(Vec::pop);
        match idle {
            Some(session) => Ok(session),
            None => HostSession::new(&self.inner, key),
        }
    }

    fn give_back(&self, key: SessionKey, session: HostSession) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .push(session);
    }
}

#[pymethods]
impl Model {
    /// Runs a batch: `x` is a float32 NCHW array (`[N,3,32,32]`, preprocessed as in training), or
    /// anything `numpy.asarray` takes (a CPU torch tensor). Returns the logits `[N,classes]` as a
    /// new float32 numpy array.
    ///
    /// `threads`: CPU threads (default: every core this process may use, which is also the most it
    /// uses). `device`: `"cpu"` (the fast backend) or `"reference"` (the plain interpreter every
    /// backend is tested against).
    ///
    /// Raises `InvalidInput` for any other dtype (no silent conversion), a wrong shape (NHWC
    /// images get a message that says how to transpose them) or an input holding NaN or an
    /// infinity.
    #[pyo3(signature = (x, threads=None, device="cpu"))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: Option<usize>,
        device: &str,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let device: Device = device.parse().or_raise(py)?;
        let x = float32_array(x, "the input", Some(&self.inner))?;
        let x = x.try_readonly()?;
        let view = x.as_array();
        let key = (device, threads);
        let y = py
            .detach(|| {
                let mut session = self.take_session(key)?;
                let y = session.0.run_dyn(view);
                self.give_back(key, session);
                y
            })
            .or_raise(py)?;
        Ok(y.into_pyarray(py))
    }

    /// `model(x)` is `model.run(x)`.
    #[pyo3(signature = (x, threads=None, device="cpu"))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: Option<usize>,
        device: &str,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        self.run(py, x, threads, device)
    }

    /// Compiles the model for `target` (`"cpu"`, `"cuda"` or `"cuda:sm_XX"`, several
    /// architectures separated by commas) and writes the `.rnc` artifact to `path`, which
    /// `resnetc.load` reads back without packing or compiling anything. `batch` fixes the batch
    /// size. Returns what `resnetc compile --json` prints: `path`, `bytes`, `notes`.
    #[pyo3(signature = (path, target="cpu", batch=None))]
    fn compile<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        target: &str,
        batch: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let target: resnetc::Target = target.parse().or_raise(py)?;
        let opts = resnetc::CompileOptions {
            batch,
            ..resnetc::CompileOptions::default()
        };
        let report = py
            .detach(|| {
                let artifact = resnetc::compile_with(&self.inner, target, &opts)?;
                artifact.save(&path)?;
                Ok(resnetc::WroteReport::of(&path, artifact.notes().to_vec()))
            })
            .or_raise(py)?;
        to_python(py, &report)
    }

    /// What `resnetc inspect --json` prints, as a dict: `schema_version`, `opset`, `inputs`,
    /// `outputs`, `ops` (op → count), `constants`, `params`, `macs` (per image), and for a `.rnc`
    /// its `artifact` record.
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.inspect())
    }

    /// The graph inputs: a list of dicts with `name`, `shape` (ints; a str for a symbolic
    /// dimension such as a dynamic batch) and `dtype` (numpy's name, `"float32"`).
    #[getter]
    fn inputs<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner.inputs().iter().map(|p| port(py, p)).collect()
    }

    /// The graph outputs, as `inputs` describes them (for a CifarResNet: the logits).
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner.outputs().iter().map(|p| port(py, p)).collect()
    }

    /// The number of classes (the last dimension of the output), or None when it is not fixed.
    #[getter]
    fn classes(&self) -> Option<usize> {
        self.inner.classes()
    }

    /// The optimization level the graph was prepared at (for a `.rnc`: the one it was compiled at).
    #[getter]
    fn opt_level(&self) -> u8 {
        self.inner.opt_level()
    }

    /// The file the model was loaded from.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    fn __repr__(&self) -> String {
        let shapes = |ports: Vec<resnetc::Port>| {
            ports
                .iter()
                .map(resnetc::Port::shape_text)
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "<resnetc.Model {:?} {} -> {}, opt_level {}>",
            self.path.display().to_string(),
            shapes(self.inner.inputs()),
            shapes(self.inner.outputs()),
            self.inner.opt_level()
        )
    }
}

/// Loads an ONNX model (imported and optimized at `opt_level`, 0–3) or a compiled `.rnc` artifact
/// (told apart by its content; its stored graph is used as it is).
///
/// Raises `InvalidModel` for a malformed file, `UnsupportedModel` for a model resnetc does not
/// handle, `ResnetcEnvironmentError` (an `OSError`) when the file cannot be read.
#[pyfunction]
#[pyo3(signature = (path, opt_level=3))]
fn load(py: Python<'_>, path: PathBuf, opt_level: u8) -> PyResult<Model> {
    let model = py
        .detach(|| resnetc::Model::load_with(&path, &resnetc::LoadOptions::level(opt_level)))
        .or_raise(py)?;
    Ok(Model::new(model, path))
}

/// What `eval` runs: a model already loaded, or the file of one.
enum Subject<'a> {
    Loaded(&'a resnetc::Model),
    Path(PathBuf),
}

/// A model's accuracy on a CIFAR-10 or -100 test set: what `resnetc eval --json` prints, as a dict
/// (`top1`, `top5`, `correct`, `images`, `per_class`, `confusion`, `images_per_s`, …).
///
/// `model_or_path`: a `Model`, or the path of one (loaded at the default level). `data_path`: the
/// test set in the binary layout (`test_batch.bin`) or torchvision's python-pickle one
/// (`cifar-10-batches-py/test_batch`), a file or its folder, recognised from the content unless
/// `format` says. `mean`/`std`: per-channel normalization after pixels / 255 (default: the shared
/// pretrained models' (0.485, 0.456, 0.406) and (0.229, 0.224, 0.225)). `limit`: the first N
/// images only. `batch`: images per run.
#[pyfunction]
#[pyo3(signature = (model_or_path, data_path, mean=None, std=None, limit=None, batch=100, threads=None, format=None))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of one Python function
fn eval<'py>(
    py: Python<'py>,
    model_or_path: &Bound<'py, PyAny>,
    data_path: PathBuf,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    limit: Option<usize>,
    batch: usize,
    threads: Option<usize>,
    format: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let subject = match model_or_path.cast::<Model>() {
        Ok(model) => Subject::Loaded(&model.get().inner),
        Err(_) => Subject::Path(model_or_path.extract::<PathBuf>().map_err(|_| {
            PyTypeError::new_err("model_or_path must be a resnetc.Model or the path of a model")
        })?),
    };
    let format = format
        .map(str::parse::<resnetc::cifar::Format>)
        .transpose()
        .or_raise(py)?;
    let normalize = resnetc::cifar::Normalize::new(
        mean.unwrap_or(resnetc::cifar::MEAN),
        std.unwrap_or(resnetc::cifar::STD),
    )
    .or_raise(py)?;
    let opts = resnetc::eval::EvalOptions {
        normalize,
        batch,
        session: SessionOptions {
            threads,
            ..SessionOptions::default()
        },
        ..resnetc::eval::EvalOptions::default()
    };
    let report = py
        .detach(|| {
            let loaded;
            let model = match subject {
                Subject::Loaded(model) => model,
                Subject::Path(path) => {
                    loaded = resnetc::Model::load(path)?;
                    &loaded
                }
            };
            let data = resnetc::cifar::Dataset::open(&data_path, format, limit)?;
            resnetc::eval::evaluate(model, &data, &opts, &mut |_, _| {})
        })
        .or_raise(py)?;
    to_python(py, &report)
}

/// A CIFAR-10 or -100 test set, read as `eval` reads it: a dict with `pixels` (uint8, N × 3 × 32 ×
/// 32, the file's bytes), `labels` (int64, N; CIFAR-100's fine labels), `class_names`, `format`
/// and `path` (the file read). `path`, `format` and `limit` as for `eval`. Turn pixels into a
/// model's input with `resnetc.normalize`.
#[pyfunction]
#[pyo3(signature = (path, format=None, limit=None))]
fn read_cifar<'py>(
    py: Python<'py>,
    path: PathBuf,
    format: Option<&str>,
    limit: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let format = format
        .map(str::parse::<resnetc::cifar::Format>)
        .transpose()
        .or_raise(py)?;
    let data = py
        .detach(|| resnetc::cifar::Dataset::open(&path, format, limit))
        .or_raise(py)?;
    let pixels = numpy::PyArray1::from_slice(py, data.all_pixels()).reshape([data.len(), 3, 32, 32])?;
    let labels: Vec<i64> = data.labels().iter().map(|&l| i64::from(l)).collect();
    let d = PyDict::new(py);
    d.set_item("pixels", pixels)?;
    d.set_item("labels", labels.into_pyarray(py))?;
    d.set_item("class_names", &data.class_names)?;
    d.set_item("format", data.format.name())?;
    d.set_item("path", data.path.display().to_string())?;
    Ok(d)
}

/// CIFAR pixels (uint8, `[N,] 3, 32, 32`, as `read_cifar` gives them) as a model's float32 input:
/// `(pixel / 255 - mean) / std` per channel, as torchvision's `ToTensor` and `Normalize` make it
/// (default: the shared pretrained models' mean and std, as for `eval`).
#[pyfunction]
#[pyo3(signature = (pixels, mean=None, std=None))]
fn normalize<'py>(
    py: Python<'py>,
    pixels: &Bound<'py, PyAny>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let norm = resnetc::cifar::Normalize::new(
        mean.unwrap_or(resnetc::cifar::MEAN),
        std.unwrap_or(resnetc::cifar::STD),
    )
    .or_raise(py)?;
    let array = py
        .import("numpy")?
        .call_method1("require", (pixels, py.None(), ["C", "A"]))?;
    let untyped = array.cast::<PyUntypedArray>()?;
    let shape = untyped.shape().to_vec();
    let image_shape = shape.len() >= 3 && shape[shape.len() - 3..] == [3, 32, 32];
    if !untyped.dtype().is_equiv_to(&dtype::<u8>(py)) || !image_shape || shape.len() > 4 {
        let given = shape.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        let message = format!(
            "pixels must be uint8 [N,3,32,32] or [3,32,32] (what read_cifar gives), but the given array is {} [{given}]",
            untyped.dtype().str()?
        );
        return Err(raise(py, &resnetc::Error::new(ErrorKind::InvalidInput, message)));
    }
    let bytes = array.cast::<PyArrayDyn<u8>>()?.try_readonly()?;
    let bytes = bytes.as_slice()?;
    // With the GIL held (a few milliseconds for a thousand images): released, another Python
    // thread could resize or write the array being read.
    let mut out = vec![0f32; bytes.len()];
    const PIXELS: usize = resnetc::cifar::PIXELS;
    for (image, o) in bytes.chunks_exact(PIXELS).zip(out.chunks_exact_mut(PIXELS)) {
        norm.apply(image, o);
    }
    Ok(numpy::PyArray1::from_vec(py, out).reshape(shape)?)
}

/// What `resnetc.validate` found: `passed`, the comparisons (`rows`), the first divergent node
/// (`first_divergence`), and the whole report (`to_dict()`, the `resnetc validate --json` object).
/// `str(report)` is the text report `resnetc validate` prints, ending in a `PASSED` or `FAILED`
/// line.
#[pyclass(frozen, module = "resnetc", name = "Report")]
struct Report {
    inner: resnetc_validate::Report,
}

#[pymethods]
impl Report {
    /// Whether every comparison was within the tolerance.
    #[getter]
    fn passed(&self) -> bool {
        self.inner.passed
    }

    /// The comparisons, one dict each: `against` (`expected`, `reference`, `tract`, `cpu`, …),
    /// `max_abs`, `max_rel`, `top1_agree`, `rows`, `passed`, `note`.
    #[getter]
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.comparisons)
    }

    /// Where values first diverge, when a comparison failed: a dict naming the `node`, its `op`,
    /// the `value`, `max_abs` and the `tolerance`, and what was to blame (`kind`); None when
    /// everything passed.
    #[getter]
    fn first_divergence<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.first_divergence)
    }

    /// The tolerance used: a dict with `atol` and `rtol` (`|a - b| <= atol + rtol × |b|`).
    #[getter]
    fn tolerance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.tolerance)
    }

    /// The whole report as a dict: what `resnetc validate --json` prints.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner)
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("<resnetc.Report {}>", self.inner.verdict())
    }
}

/// Validates the model at `model_path` on one batch: its outputs against `expected` (e.g. the
/// PyTorch model's outputs on `inputs`), against resnetc's unoptimized graph (`against`:
/// `"reference"`), against tract-onnx on the file (`"tract"`), or both (`"all"`, the default); the
/// graph also runs on the CPU backend. When something fails, the report names the first node
/// where values diverge.
///
/// `inputs` and `expected` are float32 arrays (or anything `numpy.asarray` takes). `atol`/`rtol`
/// override the tolerance (default: `atol = max(1e-4, 2e-5 × max|expected|)`, `rtol = 0`).
/// `opt_level` is the level of the graph under test. A failed comparison is a `Report` whose
/// `passed` is False, not an exception.
#[pyfunction]
#[pyo3(signature = (model_path, inputs, expected, atol=None, rtol=None, against="all", opt_level=3))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of one Python function
fn validate(
    py: Python<'_>,
    model_path: PathBuf,
    inputs: &Bound<'_, PyAny>,
    expected: &Bound<'_, PyAny>,
    atol: Option<f64>,
    rtol: Option<f64>,
    against: &str,
    opt_level: u8,
) -> PyResult<Report> {
    use resnetc_validate::Against;
    let against = [Against::All, Against::Reference, Against::Tract]
        .into_iter()
        .find(|a| a.name() == against)
        .ok_or_else(|| {
            resnetc::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "unknown against '{}'; use all, reference or tract",
                    resnetc::escape::name(against)
                ),
            )
        })
        .or_raise(py)?;
    let inputs = float32_array(inputs, "inputs", None)?
        .try_readonly()?
        .as_array()
        .to_owned();
    let expected = float32_array(expected, "expected", None)?
        .try_readonly()?
        .as_array()
        .to_owned();
    let opts = resnetc_validate::Options {
        against,
        tolerance: resnetc_validate::ToleranceSpec { atol, rtol },
        opt_level,
        ..resnetc_validate::Options::default()
    };
    let report = py
        .detach(|| resnetc_validate::validate_model(&model_path, inputs, expected, &opts))
        .or_raise(py)?;
    Ok(Report { inner: report })
}

/// resnetc's native module; use it through the `resnetc` package.
#[pymodule]
mod _resnetc {
    #[pymodule_export]
    use super::{eval, load, normalize, read_cifar, validate, Model, Report};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods as _;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("SCHEMA_VERSION", resnetc::SCHEMA_VERSION)?;
        Ok(())
    }
}
