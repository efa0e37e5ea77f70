//! Graph passes over resnetc's IR.
//!
//! Every pass is a plain function `fn(&mut Graph, &mut PassReport) -> Result<(), PassError>` listed
//! once in [`PASSES`]. [`run_passes`] runs the selected ones in table order and, unless told not to,
//! validates the graph after each, so a pass that breaks an invariant is caught where it happened.
//! Each pass counts the rewrites it made per rule and says why it skipped a candidate.
//!
//! Levels: 0 canonicalizes (below); 1 folds BatchNorm and normalizes pooling and flattening; 2 and
//! 3 fuse shortcuts and convolution epilogues.
//!
//! Level 0 is canonicalization: folding the shape arithmetic PyTorch's exporters emit into plain
//! constants, dropping identities and dead nodes. Every loaded model goes through it, so backends see
//! static shapes (apart from a symbolic batch).

use std::collections::BTreeMap;

use resnetc_ir::{validate, Graph, GraphInfo, ValidationError};
use thiserror::Error;

pub mod canon;
pub mod opt;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub pass: &'static str,
    /// Rule name → how often it fired.
    pub fired: BTreeMap<&'static str, usize>,
    /// Candidates left alone, with the reason.
    pub skipped: Vec<String>,
}

impl PassReport {
    pub fn new(pass: &'static str) -> PassReport {
        PassReport {
            pass,
            ..Default::default()
        }
    }

    pub fn fire(&mut self, rule: &'static str) {
        *self.fired.entry(rule).or_default() += 1;
    }

    pub fn skip(&mut self, why: impl Into<String>) {
        self.skipped.push(why.into());
    }

    pub fn total(&self) -> usize {
        self.fired.values().sum()
    }
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.pass)?;
        if self.fired.is_empty() {
            write!(f, " no change")?;
        }
        for (rule, n) in &self.fired {
            write!(f, " {rule}={n}")?;
        }
        for s in &self.skipped {
            write!(f, "\n  skipped: {s}")?;
        }
        Ok(())
    }
}

/// A pass failed.
#[derive(Clone, Debug, Error)]
pub enum PassError {
    /// Evaluating a constant subgraph failed: the model itself is inconsistent.
    #[error("node '{node}' ({op}): {message}")]
    Eval {
        node: String,
        op: &'static str,
        message: String,
    },
    /// The graph was invalid before any pass ran.
    #[error("the graph is invalid: {0}")]
    Invalid(ValidationError),
    /// A pass broke an invariant: a bug in resnetc, not in the model.
    #[error("internal error: the graph is invalid after pass '{pass}': {error}; please report this with the model")]
    Verify {
        pass: &'static str,
        error: ValidationError,
    },
}

/// A pass: rewrites the graph, given what validation inferred about it just before (the manager
/// validates once after each pass and hands the result to the next, so no pass validates at its
/// start).
pub type PassFn = fn(&mut Graph, &GraphInfo, &mut PassReport) -> Result<(), PassError>;

/// The highest `--opt-level`.
pub const MAX_LEVEL: u8 = 3;

/// A pass in the table.
pub struct PassDef {
    pub name: &'static str,
    /// The lowest `--opt-level` that runs it.
    pub level: u8,
    pub run: PassFn,
    pub doc: &'static str,
}

/// All passes, in the order they run.
pub const PASSES: &[PassDef] = &[
    PassDef {
        name: "fold-constants",
        level: 0,
        run: canon::fold_constants,
        doc: "evaluates nodes whose inputs are all constant (within a size budget), and integer values inference knows",
    },
    PassDef {
        name: "fold-symbolic-shapes",
        level: 0,
        run: canon::fold_symbolic_shapes,
        doc: "rewrites Reshape/Expand whose shape holds the batch symbol to constant shapes (0 / -1 / 1 entries)",
    },
    PassDef { name: "remove-identity", level: 0, run: canon::remove_identity, doc: "drops Identity nodes (and inference-mode Dropout)" },
    PassDef {
        name: "fold-batchnorm",
        level: 1,
        run: opt::fold_batchnorm,
        doc: "folds BatchNormalization into the convolution before it (creating a bias where there is none)",
    },
    PassDef {
        name: "batchnorm-to-affine",
        level: 1,
        run: opt::batchnorm_to_affine,
        doc: "turns a BatchNormalization with no convolution before it into a per-channel scale and shift",
    },
    PassDef {
        name: "canonical-pooling",
        level: 1,
        run: opt::canonical_pooling,
        doc: "AveragePool over the whole map and ReduceMean over H,W become GlobalAveragePool",
    },
    PassDef { name: "canonical-flatten", level: 1, run: opt::canonical_flatten, doc: "Reshape/Squeeze patterns that keep the batch become Flatten" },
    PassDef { name: "fold-shortcut", level: 2, run: opt::fold_shortcut, doc: "option-A shortcuts (strided Slice + channel zero Pad) become one Shortcut op" },
    PassDef {
        name: "fuse-conv-epilogue",
        level: 2,
        run: opt::fuse_conv_epilogue,
        doc: "moves bias, residual Add (reading a Shortcut in place) and ReLU into the convolution's epilogue",
    },
    PassDef { name: "remove-dead", level: 0, run: canon::remove_dead, doc: "drops nodes no graph output depends on" },
];

/// Which passes to run and how.
#[derive(Clone, Debug, Default)]
pub struct PassOptions {
    pub level: u8,
    pub disabled: Vec<String>,
}

/// Looks a pass up by name.
pub fn pass_named(name: &str) -> Option<&'static PassDef> {
    PASSES.iter().find(|p| p.name == name)
}

/// Runs the passes `opts` selects; `after(pass, graph)` is called after each (for `--print-ir-after`).
pub fn run_passes(
    graph: &mut Graph,
    opts: &PassOptions,
    after: &mut dyn FnMut(&str, &Graph),
) -> Result<Vec<PassReport>, PassError> {
    Ok(optimize(graph, opts, after)?.0)
}

/// [`run_passes`], also returning the validated final graph's info. The graph is validated once
/// before the first pass and once after each (a failure there is [`PassError::Verify`], a resnetc
/// bug), and each pass is handed the info of the graph it receives.
pub fn optimize(
    graph: &mut Graph,
    opts: &PassOptions,
    after: &mut dyn FnMut(&str, &Graph),
) -> Result<(Vec<PassReport>, GraphInfo), PassError> {
    let mut info = validate(graph).map_err(PassError::Invalid)?;
    let mut reports = Vec::new();
    for p in PASSES {
        if p.level > opts.level || opts.disabled.iter().any(|d| d == p.name) {
            continue;
        }
        let mut report = PassReport::new(p.name);
        (p.run)(graph, &info, &mut report)?;
        info = validate(graph).map_err(|error| PassError::Verify {
            pass: p.name,
            error,
        })?;
        after(p.name, graph);
        reports.push(report);
    }
    Ok((reports, info))
}

/// Level-0 canonicalization, as every load does.
pub fn canonicalize(graph: &mut Graph) -> Result<Vec<PassReport>, PassError> {
    run_passes(graph, &PassOptions::default(), &mut |_, _| {})
}
