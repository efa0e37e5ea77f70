//! `resnetc validate`: checks a model's outputs against expected values (PyTorch's), against
//! resnetc's own unoptimized graph, and against tract-onnx run on the original file; when a check
//! fails, finds the first node where the values diverge.
//!
//! Comparisons. `got` is compared element by element with `want`:
//! - **pass**: every element satisfies `|got - want| <= atol + rtol * |want|` (NaN only matches NaN,
//!   an infinity only the same infinity). The default is `atol = max(1e-4, 2e-5 * max|want|)`,
//!   `rtol = 0`, the project's tolerance for logits; `--atol`/`--rtol` override either.
//! - **max abs**: the largest `|got - want|` (infinite where one side is NaN or infinite and the other
//!   is not).
//! - **max rel**: the largest `|got - want| / max(|want|, 1e-6)`. It is informative only (values at or
//!   near zero make it large); pass/fail uses the rule above.
//! - **top-1**: the number of rows (first axis) whose arg-max agrees, over the number of rows.
//!
//! Backends. The graph under test runs on the reference executor (the comparisons above); with
//! `--device cpu` (the default, when the CPU backend can run the graph) or `--device cuda` it also
//! runs on that backend, which is compared with the expected values too (row `cpu` or `cuda`): what
//! `resnetc run` gives is what is checked. When only that row fails, the backend is to blame and
//! the divergence says so, with its distance from the graph it runs.
//!
//! Divergence. When a check fails, [`find_divergence`] runs the unoptimized graph and records every
//! value by name, then runs the optimized graph with each same-named value *reinjected*: every
//! optimized node computes from the reference values of its inputs, its result is compared with the
//! reference value of the same name, and then replaced by it. A node that differs therefore differs
//! by its own doing, not because of something upstream; the first such node in the unoptimized
//! graph's topological order is the culprit. When the two graphs agree (the failure is between
//! resnetc and the expected values, or tract), the culprit is the node producing the graph output.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use ndarray::{ArrayD, Axis};
use resnetc::ir::{Dim, Graph, Op, Tensor};
use resnetc::{escape, Context as _, Device, Error, ErrorKind, LoadOptions, Model, Result};
use serde::Serialize;

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

/// What the optimized graph's outputs are compared with, besides the expected values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Against {
    /// resnetc's unoptimized (level 0) graph.
    Reference,
    /// tract-onnx, run on the original ONNX file.
    Tract,
    /// Both.
    #[default]
    All,
}

impl Against {
    pub fn name(self) -> &'static str {
        match self {
            Against::Reference => "reference",
            Against::Tract => "tract",
            Against::All => "all",
        }
    }

    fn reference(self) -> bool {
        matches!(self, Against::Reference | Against::All)
    }

    fn tract(self) -> bool {
        matches!(self, Against::Tract | Against::All)
    }
}

/// Reads the arrays `input` and `expected` from an `.npz` archive (as `np.savez(path, input=x, expected=y)` writes).
/// Each entry is read whole (at most its stated size, bounded by the 'file bytes' limit) and its
/// `.npy` header checked against that size before the array is allocated.
pub fn read_npz(path: &Path) -> Result<(ArrayD<f32>, ArrayD<f32>)> {
    use std::io::Read as _;
    let shown = escape::path(path);
    let (file, _) = resnetc::fsio::open_regular(path)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| invalid(format!("{shown} is not an .npz archive: {e}")))?;
    let mut get = |name: &str| -> Result<ArrayD<f32>> {
        let mut entry = zip.by_name(&format!("{name}.npy")).map_err(|e| {
            invalid(format!("{shown}: no float32 array named '{name}' ({e}; write it with np.savez(path, input=x, expected=y))"))
        })?;
        let size = entry.size();
        resnetc::ir::limits::FILE_BYTES
            .check(size, format_args!("{shown}'s '{name}' size"))
            .map_err(invalid)?;
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry)
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| invalid(format!("{shown}: cannot read '{name}': {e}")))?;
        resnetc::npy::read_f32_bytes(&bytes, &format!("{shown}'s '{name}'"))
    };
    Ok((get("input")?, get("expected")?))
}

/// How the tolerance is chosen: explicit values, or the defaults derived from the reference values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ToleranceSpec {
    pub atol: Option<f64>,
    pub rtol: Option<f64>,
}

impl ToleranceSpec {
    /// The tolerance for comparing with `reference`: `atol` defaults to max(1e-4, 2e-5 × max|reference|), `rtol` to 0.
    pub fn resolve(&self, reference: &Tensor) -> Tolerance {
        let atol = self.atol.unwrap_or_else(|| {
            let max = elems(reference)
                .filter(|x| x.is_finite())
                .fold(0f64, |m, x| m.max(x.abs()));
            1e-4f64.max(2e-5 * max)
        });
        Tolerance {
            atol,
            rtol: self.rtol.unwrap_or(0.0),
        }
    }
}

/// `|a - b| <= atol + rtol × |b|`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Tolerance {
    /// Whether `got` is close enough to `want`.
    pub fn allows(&self, got: f64, want: f64) -> bool {
        if got == want || (got.is_nan() && want.is_nan()) {
            return true;
        }
        if !got.is_finite() || !want.is_finite() {
            return false;
        }
        (got - want).abs() <= self.atol + self.rtol * want.abs()
    }
}

/// One comparison's result.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    /// What the row compares, in words: `optimized vs expected`, `optimized vs unoptimized`,
    /// `tract vs expected`, `cpu backend vs expected`.
    pub row: String,
    /// What the optimized graph's output was compared with: `expected`, `reference` or `tract`
    /// (for a backend row: the backend, `cpu` or `cuda`).
    pub against: &'static str,
    /// Largest |a - b|; `null` in JSON when infinite (NaN or infinity on one side only, or shapes differ).
    #[schemars(with = "Option<f64>")]
    pub max_abs: f64,
    /// Largest |a - b| / max(|b|, 1e-6).
    #[schemars(with = "Option<f64>")]
    pub max_rel: f64,
    /// Rows (first axis) whose arg-max agrees.
    pub top1_agree: usize,
    pub rows: usize,
    pub passed: bool,
    /// Why the comparison could not be made element by element (shapes differ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The words for a comparison's row.
fn row_name(against: &str) -> String {
    match against {
        "expected" => "optimized vs expected".into(),
        "reference" => "optimized vs unoptimized".into(),
        "tract" => "tract vs expected".into(),
        "optimized" => "backend vs optimized".into(),
        device => format!("{device} backend vs expected"),
    }
}

/// Compares `got` with `want` (the side that `rel` and `rtol` are relative to).
pub fn compare(against: &'static str, got: &Tensor, want: &Tensor, tol: Tolerance) -> Comparison {
    let rows = want.shape().first().copied().unwrap_or(1);
    if got.shape() != want.shape() {
        let note = format!("shape {:?} differs from {:?}", got.shape(), want.shape());
        return Comparison {
            row: row_name(against),
            against,
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            top1_agree: 0,
            rows,
            passed: false,
            note: Some(note),
        };
    }
    let d = diff(got, want, tol);
    let (a, b) = (argmax_rows(got), argmax_rows(want));
    let top1_agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    Comparison {
        row: row_name(against),
        against,
        max_abs: d.max_abs,
        max_rel: d.max_rel,
        top1_agree,
        rows,
        passed: d.close,
        note: None,
    }
}

/// Where the values first diverge.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Divergence {
    /// The unoptimized graph's node (its label: node name, else its output's name).
    pub node: String,
    /// Its op.
    pub op: String,
    /// The name of the value it produces.
    pub value: String,
    /// Largest |a - b| at that value.
    #[schemars(with = "Option<f64>")]
    pub max_abs: f64,
    /// The absolute tolerance that was exceeded.
    pub tolerance: f64,
    /// `intermediate`: the optimized graph computes this value differently from the unoptimized graph,
    /// from the same inputs. `output`: the two graphs agree on every value they share, and the
    /// comparison named in `against` differs from this node's output (the graph output). `backend`:
    /// every graph comparison passes, but the backend in `against` (`cpu`, `cuda`) differs from the
    /// optimized graph's output (this node, in the optimized graph) by `max_abs`.
    pub kind: DivergenceKind,
    /// The comparison that failed here: `reference` for `intermediate`, else `expected`, `reference` or `tract`.
    pub against: &'static str,
    /// The optimized graph's node computing the same value, and its op, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimized_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimized_op: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DivergenceKind {
    Intermediate,
    Output,
    /// The graph under test agrees with everything on the reference executor, but the backend
    /// named in `against` running it does not; `max_abs` is the backend's distance from the graph.
    Backend,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "first divergence: node '{}' ({}), output '{}': max abs error {} (tolerance {:.3e})",
            self.node,
            self.op,
            self.value,
            fmt_err(self.max_abs),
            self.tolerance
        )?;
        let by = match (&self.optimized_node, &self.optimized_op) {
            (Some(n), Some(op)) if n != &self.node || op != &self.op => {
                format!("'s node '{n}' ({op})")
            }
            _ => String::new(),
        };
        match (self.kind, self.against) {
            (DivergenceKind::Backend, device) => writeln!(
                f,
                "  the optimized graph gives the expected values on the reference executor, but the {device} backend running it differs from it by that much: a backend bug, not the model's"
            ),
            (DivergenceKind::Intermediate, _) => {
                writeln!(f, "  the optimized graph{by} computes this value differently from the unoptimized graph, from the same inputs")
            }
            (DivergenceKind::Output, "expected") => writeln!(
                f,
                "  the model and resnetc agree (the optimized and unoptimized graphs give the same values), but the expected values differ from there"
            ),
            (DivergenceKind::Output, "tract") => {
                writeln!(f, "  resnetc's optimized and unoptimized graphs agree, but tract's output differs from there")
            }
            (DivergenceKind::Output, _) => writeln!(
                f,
                "  the optimized graph's output differs from the unoptimized graph's, but no intermediate value they share does"
            ),
        }
    }
}

/// Everything `validate` found.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub passed: bool,
    pub tolerance: Tolerance,
    pub comparisons: Vec<Comparison>,
    /// Rows left out, and why: the default backend row when the CPU backend cannot run the graph
    /// under test; the unoptimized-graph and tract rows of an artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub first_divergence: Option<Divergence>,
    pub model: String,
    pub opt_level: u8,
    pub input_shape: Vec<usize>,
    /// The graph output compared (the first).
    pub output: String,
    pub output_shape: Vec<usize>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model: {} (opt-level {})", self.model, self.opt_level)?;
        writeln!(
            f,
            "input {:?}, output '{}' {:?}",
            self.input_shape, self.output, self.output_shape
        )?;
        writeln!(
            f,
            "tolerance: |a - b| <= {:.3e} + {} × |b|",
            self.tolerance.atol, self.tolerance.rtol
        )?;
        writeln!(
            f,
            "  {:<24} {:>10} {:>10} {:>9}  result",
            "comparison", "max abs", "max rel", "top-1"
        )?;
        for c in &self.comparisons {
            let top1 = format!("{}/{}", c.top1_agree, c.rows);
            let result = if c.passed { "pass" } else { "FAIL" };
            write!(
                f,
                "  {:<24} {:>10} {:>10} {:>9}  {result}",
                c.row,
                fmt_err(c.max_abs),
                fmt_err(c.max_rel),
                top1
            )?;
            match &c.note {
                Some(note) => writeln!(f, " ({note})")?,
                None => writeln!(f)?,
            }
        }
        if let Some(why) = &self.skipped {
            writeln!(f, "  ({why})")?;
        }
        if let Some(d) = &self.first_divergence {
            write!(f, "{d}")?;
        }
        writeln!(f, "{}", self.verdict())
    }
}

impl Report {
    /// The last line: `PASSED` or `FAILED`, the model, and the largest difference from the
    /// expected values; one line a script can grep.
    pub fn verdict(&self) -> String {
        let worst = self
            .comparisons
            .iter()
            .filter(|c| c.against == "expected" || !c.passed)
            .map(|c| c.max_abs)
            .fold(0f64, f64::max);
        format!(
            "{} {} max abs error {} (tolerance {:.3e})",
            if self.passed { "PASSED" } else { "FAILED" },
            self.model,
            fmt_err(worst),
            self.tolerance.atol
        )
    }

    /// The comparisons that failed, by name.
    pub fn failed(&self) -> Vec<&'static str> {
        self.comparisons
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.against)
            .collect()
    }
}

fn fmt_err(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_infinite() {
        "inf".into()
    } else {
        format!("{x:.3e}")
    }
}

/// What to validate and how.
#[derive(Clone, Debug)]
pub struct Options {
    pub against: Against,
    pub tolerance: ToleranceSpec,
    /// The optimization level of the graph under test.
    pub opt_level: u8,
    /// Passes left out of the graph under test.
    pub disabled: Vec<String>,
    /// The backend that also runs the graph under test; `None`: the CPU backend when it can.
    pub device: Option<Device>,
    /// Validate inputs that hold NaN or an infinity instead of refusing them
    /// ([`resnetc::check_finite`]).
    pub allow_nonfinite: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            against: Against::All,
            tolerance: ToleranceSpec::default(),
            opt_level: 3,
            disabled: Vec::new(),
            device: None,
            allow_nonfinite: false,
        }
    }
}

/// Validates the model at `path` on one input batch against `expected` (compared with the first
/// graph output), as described in the module documentation.
pub fn validate_model(
    path: &Path,
    input: ArrayD<f32>,
    expected: ArrayD<f32>,
    opts: &Options,
) -> Result<Report> {
    validate_model_observed(path, input, expected, opts, &mut |_, _, _| {})
}

/// [`validate_model`], calling `progress(row, done, total)` as each row's run goes through the
/// images (the reference executor takes minutes over a thousand).
///
/// A `.rnc` artifact is validated as it is stored: its graph on the reference executor and its
/// CPU plan (or, with `Options::device` CUDA, its CUDA program) against the expected values. It
/// holds no unoptimized graph and no ONNX file for tract, so those rows are skipped with a note.
pub fn validate_model_observed(
    path: &Path,
    input: ArrayD<f32>,
    expected: ArrayD<f32>,
    opts: &Options,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Report> {
    let optimized = Model::load_with(
        path,
        &LoadOptions {
            opt_level: opts.opt_level,
            disabled_passes: opts.disabled.clone(),
        },
    )?;
    if optimized.artifact().is_some() {
        return validate_models_observed(
            path, &optimized, &optimized, input, expected, opts, progress,
        );
    }
    let reference = Model::load_with(path, &LoadOptions::level(0))?;
    validate_models_observed(
        path, &reference, &optimized, input, expected, opts, progress,
    )
}

/// [`validate_model`] on models already loaded from `path`: `reference` at level 0, `under_test`
/// the model under test, whose graph the reference executor runs and whose session (and cached
/// CPU plan) the backend row uses. `path` itself is only read by tract; `opts.opt_level` and
/// `opts.disabled` are only reported.
pub fn validate_models(
    path: &Path,
    reference: &Model,
    under_test: &Model,
    input: ArrayD<f32>,
    expected: ArrayD<f32>,
    opts: &Options,
) -> Result<Report> {
    validate_models_observed(
        path,
        reference,
        under_test,
        input,
        expected,
        opts,
        &mut |_, _, _| {},
    )
}

/// Images per reference-executor run when the batch is free, so that progress can be shown.
const CHUNK: usize = 25;

/// Runs `graph` on the reference executor over `x` in chunks of [`CHUNK`] images (one run when
/// the batch is fixed), reporting progress under `row`.
fn run_chunked(
    graph: &Graph,
    x: &ArrayD<f32>,
    row: &str,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Tensor> {
    let n = x.shape().first().copied().unwrap_or(1);
    if !input_is_symbolic(graph) || n <= CHUNK {
        let t = first_output(resnetc::reference::run(graph, &[Tensor::f32(x.clone())])?)?;
        progress(row, n, n);
        return Ok(t);
    }
    let mut parts = Vec::new();
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let chunk = x.slice_axis(Axis(0), (start..end).into()).to_owned();
        let y = first_output(resnetc::reference::run(graph, &[Tensor::f32(chunk)])?)?;
        parts.push(
            y.as_f32()
                .ok_or_else(|| invalid("the model's output is not float32".into()))?
                .to_owned(),
        );
        progress(row, end, n);
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views)
        .map(Tensor::f32)
        .map_err(|e| invalid(format!("cannot join the output chunks: {e}")))
}

/// [`validate_models`] with progress (see [`validate_model_observed`]).
pub fn validate_models_observed(
    path: &Path,
    reference: &Model,
    under_test: &Model,
    input: ArrayD<f32>,
    expected: ArrayD<f32>,
    opts: &Options,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Report> {
    let artifact = under_test.artifact().is_some();
    let (reference, optimized) = (reference.graph(), under_test.graph());
    if optimized.inputs.len() != 1 {
        return Err(Error::new(
            ErrorKind::UnsupportedModel,
            format!(
                "validate handles models with one input; this one has {}",
                optimized.inputs.len()
            ),
        ));
    }
    let output_name = optimized
        .outputs
        .first()
        .map(|o| o.name.clone())
        .ok_or_else(|| Error::new(ErrorKind::InvalidModel, "the model has no outputs"))?;
    let input_shape = input.shape().to_vec();
    // The input contract, before anything runs: the same check and message as every session's.
    under_test.inputs()[0].check(resnetc::ir::DType::F32, &input_shape)?;
    if !opts.allow_nonfinite {
        resnetc::check_finite(input.view())?;
    }
    let x = Tensor::f32(input.clone());
    let want = Tensor::f32(expected);
    let tol = opts.tolerance.resolve(&want);

    let got = run_chunked(optimized, &input, "optimized graph", progress)
        .context("running the optimized graph")?;
    if got.shape() != want.shape() {
        return Err(invalid(format!(
            "the expected outputs have shape {:?}, but the model's output '{}' has shape {:?}",
            want.shape(),
            escape::name(&output_name),
            got.shape()
        )));
    }
    let mut comparisons = vec![compare("expected", &got, &want, tol)];

    // The unoptimized graph's outputs: compared when asked, and needed to explain a failure.
    let mut unoptimized: Option<Tensor> = None;
    let run_unoptimized = |unoptimized: &mut Option<Tensor>,
                           progress: &mut dyn FnMut(&str, usize, usize)|
     -> Result<Tensor> {
        if let Some(t) = unoptimized {
            return Ok(t.clone());
        }
        let t = run_chunked(reference, &input, "unoptimized graph", progress)
            .context("running the unoptimized graph")?;
        *unoptimized = Some(t.clone());
        Ok(t)
    };
    let mut notes = Vec::new();
    if artifact && (opts.against.reference() || opts.against.tract()) {
        notes.push(
            "an artifact holds only the optimized graph: validate its source ONNX file for the \
             unoptimized-graph and tract rows"
                .to_string(),
        );
    }
    if opts.against.reference() && !artifact {
        let u = run_unoptimized(&mut unoptimized, progress)?;
        comparisons.push(compare("reference", &got, &u, tol));
    }
    if opts.against.tract() && !artifact {
        let symbolic = input_is_symbolic(reference);
        let n = input_shape.first().copied().unwrap_or(1);
        let t = run_tract(path, &input, symbolic)?;
        progress("tract", n, n);
        comparisons.push(compare("tract", &Tensor::f32(t), &want, tol));
    }
    let graph_passed = comparisons.iter().all(|c| c.passed);
    let (device, required) = match opts.device {
        None => (Device::Cpu, false),
        Some(d) => (d, true),
    };
    let mut backend = None;
    if device != Device::Reference {
        let n = input_shape.first().copied().unwrap_or(1);
        let result = run_backend(device, under_test, &x);
        progress(&format!("{} backend", device.name()), n, n);
        match result {
            Ok((y, what)) => {
                let mut c = compare(device.name(), &y, &want, tol);
                c.note = Some(what);
                comparisons.push(c);
                backend = Some(y);
            }
            Err(e) if !required => notes.push(format!("{} backend not run: {e}", device.name())),
            Err(e) => {
                return Err(e.context(format!(
                    "running the graph under test on device {}",
                    device.name()
                )))
            }
        }
    }

    let passed = comparisons.iter().all(|c| c.passed);
    let mut first_divergence = None;
    if let (false, true, Some(y)) = (passed, graph_passed, &backend) {
        // The graph gives the expected values on the reference executor; the backend does not.
        let own = compare("optimized", y, &got, tol);
        first_divergence = Some(at_output(
            optimized,
            own.max_abs,
            tol.atol,
            DivergenceKind::Backend,
            device.name(),
        ));
    } else if !passed {
        let u = run_unoptimized(&mut unoptimized, progress)?;
        let graphs_differ = !compare("reference", &got, &u, tol).passed;
        if graphs_differ {
            // Search on the rows that differ (a few), when the batch is free to change.
            let x_search = if input_is_symbolic(reference) {
                let rows = differing_rows(&got, &u, tol, 8);
                Tensor::f32(input.select(Axis(0), &rows))
            } else {
                x.clone()
            };
            first_divergence = find_divergence(reference, optimized, &[x_search], &opts.tolerance)?;
        }
        if first_divergence.is_none() {
            // Blame the graph output: the first failing comparison says against what.
            let failed = if graphs_differ {
                compare("reference", &got, &u, tol)
            } else {
                comparisons
                    .iter()
                    .find(|c| !c.passed)
                    .expect("a comparison failed")
                    .clone()
            };
            let opt_node = optimized.node(optimized.outputs[0].value.node);
            first_divergence = Some(Divergence {
                optimized_node: Some(opt_node.label().to_string()),
                optimized_op: Some(opt_node.op.onnx_name().to_string()),
                ..at_output(
                    reference,
                    failed.max_abs,
                    tol.atol,
                    DivergenceKind::Output,
                    failed.against,
                )
            });
        }
    }

    Ok(Report {
        schema_version: resnetc::SCHEMA_VERSION,
        passed,
        tolerance: tol,
        comparisons,
        skipped: (!notes.is_empty()).then(|| notes.join("; ")),
        first_divergence,
        model: escape::path(path),
        opt_level: opts.opt_level,
        input_shape,
        output: output_name,
        output_shape: got.shape().to_vec(),
    })
}

/// A divergence blamed on the node producing `graph`'s first output.
fn at_output(
    graph: &Graph,
    max_abs: f64,
    tolerance: f64,
    kind: DivergenceKind,
    against: &'static str,
) -> Divergence {
    let node = graph.node(graph.outputs[0].value.node);
    Divergence {
        node: node.label().to_string(),
        op: node.op.onnx_name().to_string(),
        value: node.outputs.first().cloned().unwrap_or_default(),
        max_abs,
        tolerance,
        kind,
        against,
        optimized_node: None,
        optimized_op: None,
    }
}

/// Runs `graph` on a backend; also says what ran (the CPU kernel set, or the CUDA image and GPU).
/// Runs `x` on `device`; `x` passed the input checks of [`validate_models`] already (its values
/// included, unless `Options::allow_nonfinite`), so the session does not scan them again.
fn run_backend(device: Device, m: &Model, x: &Tensor) -> Result<(Tensor, String)> {
    let mut session = m.session_with(
        device,
        &resnetc::SessionOptions {
            allow_nonfinite: true,
            ..Default::default()
        },
    )?;
    let y = session.run_tensor(x)?;
    Ok((y, session.describe()))
}

/// Finds the first node (in `reference`'s topological order) whose value `optimized` computes
/// differently from the same inputs: both graphs run on `inputs`; every non-constant value of
/// `optimized` that has a same-named value in `reference` is compared with it (within
/// `tol.resolve(reference value)`) and then replaced by it, so each node is judged on reference
/// inputs. Constants are neither compared nor replaced (passes rewrite weights legitimately, and an
/// altered weight shows up in the node that reads it); neither are values whose shape or element type
/// differs between the graphs (a pass reused the name for something else).
///
/// Every shared reference value is kept in memory for the second run, so keep `inputs` small:
/// [`validate_graphs`] searches on at most 8 rows (those that differ) when the batch is symbolic.
///
/// Returns `None` when every shared value agrees.
pub fn find_divergence(
    reference: &Graph,
    optimized: &Graph,
    inputs: &[Tensor],
    tol: &ToleranceSpec,
) -> Result<Option<Divergence>> {
    let skip = |op: &Op| matches!(op, Op::Constant(_) | Op::Input { .. });
    let wanted: HashSet<&str> = optimized
        .node_ids()
        .filter(|&id| !skip(optimized.op(id)))
        .filter_map(|id| optimized.node(id).outputs.first().map(String::as_str))
        .filter(|name| !name.is_empty())
        .collect();

    // The reference values, by name, and each name's position in the reference order.
    let info = resnetc::ir::validate(reference).context("validating the unoptimized graph")?;
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (pos, &id) in info.order.iter().enumerate() {
        if let Some(name) = reference.node(id).outputs.first() {
            position.entry(name.as_str()).or_insert(pos);
        }
    }
    let mut values: HashMap<String, Tensor> = HashMap::new();
    resnetc::reference::run_with(reference, inputs, &mut |id, value| {
        let node = reference.node(id);
        if let Some(name) = node.outputs.first() {
            if !skip(&node.op) && wanted.contains(name.as_str()) && !values.contains_key(name) {
                values.insert(name.clone(), value.clone());
            }
        }
        None
    })
    .context("running the unoptimized graph")?;

    // The optimized graph, reinjecting the reference values; the first difference in reference order wins.
    let mut first: Option<(usize, Divergence)> = None;
    resnetc::reference::run_with(optimized, inputs, &mut |id, value| {
        let node = optimized.node(id);
        if skip(&node.op) {
            return None;
        }
        let name = node.outputs.first()?;
        let want = values.get(name)?;
        if want.shape() != value.shape() || want.dtype() != value.dtype() {
            return None;
        }
        let tol = tol.resolve(want);
        let d = diff(value, want, tol);
        let pos = position.get(name.as_str()).copied().unwrap_or(usize::MAX);
        if !d.close && first.as_ref().is_none_or(|(p, _)| pos < *p) {
            let ref_id = info.order.get(pos).copied();
            let ref_node = ref_id.map(|r| reference.node(r));
            first = Some((
                pos,
                Divergence {
                    node: ref_node
                        .map_or_else(|| node.label().to_string(), |n| n.label().to_string()),
                    op: ref_node
                        .map_or(node.op.onnx_name(), |n| n.op.onnx_name())
                        .to_string(),
                    value: name.clone(),
                    max_abs: d.max_abs,
                    tolerance: tol.atol,
                    kind: DivergenceKind::Intermediate,
                    against: "reference",
                    optimized_node: Some(node.label().to_string()),
                    optimized_op: Some(node.op.onnx_name().to_string()),
                },
            ));
        }
        Some(want.clone())
    })
    .context("running the optimized graph with reinjected values")?;
    Ok(first.map(|(_, d)| d))
}

/// Runs tract-onnx on the ONNX file: with the input's concrete shape for static models, with the
/// model's own (symbolic) input fact otherwise. A panic inside tract is caught and reported as
/// tract's failure.
#[cfg(feature = "tract")]
pub fn run_tract(path: &Path, input: &ArrayD<f32>, symbolic: bool) -> Result<ArrayD<f32>> {
    use tract_onnx::prelude::*;
    let shown = escape::path(path);
    let failed = |what: String| Error::new(ErrorKind::UnsupportedModel, what);
    let shape = input.shape().to_vec();
    let run = || -> std::result::Result<ArrayD<f32>, Error> {
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .and_then(|m| {
                if symbolic {
                    Ok(m)
                } else {
                    m.with_input_fact(0, f32::fact(&shape).into())
                }
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| {
                failed(format!(
                    "tract-onnx cannot load {shown}: {e:#} (compare against the reference only to skip tract: `--against reference`, in Python `against=\"reference\"`)"
                ))
            })?;
        let x: tract_onnx::prelude::Tensor =
            tract_ndarray::ArrayD::from_shape_vec(shape.clone(), input.iter().copied().collect())
                .map_err(|e| failed(format!("tract input: {e}")))?
                .into();
        let out = model
            .run(tvec!(x.into()))
            .map_err(|e| failed(format!("tract-onnx failed to run {shown}: {e:#}")))?;
        let y = out
            .first()
            .ok_or_else(|| failed("tract returned no outputs".into()))?;
        let view = y
            .to_plain_array_view::<f32>()
            .map_err(|e| failed(format!("tract's output is not float32: {e}")))?;
        ArrayD::from_shape_vec(view.shape().to_vec(), view.iter().copied().collect())
            .map_err(|e| failed(format!("tract output: {e}")))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(failed(format!(
                "tract-onnx panicked on {shown}: {} (compare against the reference only to skip tract: `--against reference`, in Python `against=\"reference\"`)",
                escape::name(&why)
            )))
        }
    }
}

/// Without the `tract` feature there is no tract oracle.
#[cfg(not(feature = "tract"))]
pub fn run_tract(path: &Path, _input: &ArrayD<f32>, _symbolic: bool) -> Result<ArrayD<f32>> {
    Err(Error::new(
        ErrorKind::Environment,
        format!(
            "{}: this build of resnetc has no tract oracle (feature `tract`); compare against the reference only (`--against reference`, in Python `against=\"reference\"`)",
            escape::path(path)
        ),
    ))
}

fn first_output(outputs: Vec<Tensor>) -> Result<Tensor> {
    outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::new(ErrorKind::InvalidModel, "the model has no outputs"))
}

/// Whether the (single) graph input has a symbolic dimension.
fn input_is_symbolic(graph: &Graph) -> bool {
    graph.inputs.iter().any(|&id| matches!(graph.op(id), Op::Input { ty, .. } if ty.shape.iter().any(|d| matches!(d, Dim::Sym(_)))))
}

/// All elements as f64, row-major.
fn elems(t: &Tensor) -> Box<dyn Iterator<Item = f64> + '_> {
    match t {
        Tensor::F32(a) => Box::new(a.iter().map(|&x| x as f64)),
        Tensor::F64(a) => Box::new(a.iter().copied()),
        Tensor::I32(a) => Box::new(a.iter().map(|&x| x as f64)),
        Tensor::I64(a) => Box::new(a.iter().map(|&x| x as f64)),
        Tensor::Bool(a) => Box::new(a.iter().map(|&x| x as u8 as f64)),
    }
}

struct Diff {
    max_abs: f64,
    max_rel: f64,
    close: bool,
}

/// Element-wise differences of two tensors of the same shape.
fn diff(got: &Tensor, want: &Tensor, tol: Tolerance) -> Diff {
    let mut d = Diff {
        max_abs: 0.0,
        max_rel: 0.0,
        close: true,
    };
    for (a, b) in elems(got).zip(elems(want)) {
        let abs = if a == b || (a.is_nan() && b.is_nan()) {
            0.0
        } else {
            let x = (a - b).abs();
            if x.is_nan() {
                f64::INFINITY
            } else {
                x
            }
        };
        d.max_abs = d.max_abs.max(abs);
        d.max_rel = d.max_rel.max(abs / b.abs().max(1e-6));
        d.close &= tol.allows(a, b);
    }
    d
}

/// The arg-max of each row (first axis; the rest flattened), NaNs ignored.
fn argmax_rows(t: &Tensor) -> Vec<usize> {
    let v: Vec<f64> = elems(t).collect();
    let rows = t.shape().first().copied().unwrap_or(1);
    if rows == 0 {
        return Vec::new();
    }
    let width = v.len() / rows;
    if width == 0 {
        return vec![0; rows];
    }
    v.chunks(width)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, &x)| {
                    if x > best.1 {
                        (i, x)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

/// Up to `limit` rows (first axis) where `got` and `want` differ beyond `tol`; all rows if none does.
fn differing_rows(got: &Tensor, want: &Tensor, tol: Tolerance, limit: usize) -> Vec<usize> {
    let rows = got.shape().first().copied().unwrap_or(1).max(1);
    let (a, b): (Vec<f64>, Vec<f64>) = (elems(got).collect(), elems(want).collect());
    let width = (a.len() / rows).max(1);
    let bad: Vec<usize> = a
        .chunks(width)
        .zip(b.chunks(width))
        .enumerate()
        .filter(|(_, (ra, rb))| ra.iter().zip(rb.iter()).any(|(&x, &y)| !tol.allows(x, y)))
        .map(|(i, _)| i)
        .take(limit)
        .collect();
    if bad.is_empty() {
        (0..rows).collect()
    } else {
        bad
    }
}
