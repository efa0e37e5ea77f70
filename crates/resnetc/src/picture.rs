//! Pictures of a model's graph: Graphviz DOT, an SVG drawn in-process (layout-rs, no Graphviz
//! needed), and an onnxsim-style table of op counts per optimization level.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::{Error, ErrorKind, LoadOptions, Model, Result};

/// The model's graph as Graphviz DOT (see [`resnetc_ir::dot`]).
pub fn dot(model: &Model) -> String {
    resnetc_ir::dot::to_dot(model.graph(), Some(model.info()))
}

/// The model's graph drawn as an SVG document.
pub fn svg(model: &Model) -> Result<String> {
    let dot = dot(model);
    // layout-rs asserts on shapes it does not expect; the DOT is ours, but a panic there must
    // still be an error, not an abort.
    let render = std::panic::catch_unwind(|| -> std::result::Result<String, String> {
        let mut parser = layout::gv::DotParser::new(&dot);
        let ast = parser.process()?;
        let mut builder = layout::gv::GraphBuilder::new();
        builder.visit_graph(&ast);
        let mut graph = builder.get();
        let mut writer = layout::backends::svg::SVGWriter::new();
        graph.do_it(false, false, false, &mut writer);
        Ok(writer.finalize())
    });
    match render {
        Ok(Ok(svg)) => Ok(svg),
        Ok(Err(e)) => Err(internal(format!("cannot lay out the graph: {e}"))),
        Err(_) => Err(internal(
            "the graph layout failed (layout-rs panicked)".into(),
        )),
    }
}

fn internal(message: String) -> Error {
    Error::new(ErrorKind::UnsupportedModel, message)
}

/// Op counts of one model at several optimization levels (`inspect --compare-levels`).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LevelsReport {
    pub schema_version: u32,
    /// Nodes in the ONNX file as written, before canonicalization (`null` for an artifact).
    pub file_nodes: Option<usize>,
    pub levels: Vec<LevelOps>,
}

/// One column of a [`LevelsReport`].
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LevelOps {
    pub level: u8,
    /// Op name → count, constants and graph inputs excluded.
    pub ops: BTreeMap<String, usize>,
    /// All ops together.
    pub total: usize,
    pub constants: usize,
    pub params: usize,
}

/// Loads the model at `path` once per level and counts its ops.
pub fn compare_levels(path: &Path, levels: &[u8]) -> Result<LevelsReport> {
    if levels.is_empty() {
        return Err(Error::invalid_input("no optimization levels to compare"));
    }
    let mut out = Vec::new();
    let mut file_nodes = None;
    for &level in levels {
        let m = Model::load_with(path, &LoadOptions::level(level))?;
        if m.artifact().is_none() && file_nodes.is_none() {
            file_nodes = crate::model::onnx_node_count(path)?;
        }
        let s = m.stats();
        out.push(LevelOps {
            level: m.opt_level(),
            total: s.ops.values().sum(),
            ops: s.ops,
            constants: s.constants,
            params: s.params,
        });
    }
    Ok(LevelsReport {
        schema_version: crate::SCHEMA_VERSION,
        file_nodes,
        levels: out,
    })
}

impl std::fmt::Display for LevelsReport {
    /// The table: one row per op, one column per level, a total row.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.levels.iter().flat_map(|l| l.ops.keys()).collect();
        names.sort();
        names.dedup();
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(10);
        write!(f, "{:<width$}", "op")?;
        for l in &self.levels {
            write!(f, " {:>6}", format!("-O{}", l.level))?;
        }
        writeln!(f)?;
        for name in names {
            write!(f, "{name:<width$}")?;
            for l in &self.levels {
                match l.ops.get(name) {
                    Some(n) => write!(f, " {n:>6}")?,
                    None => write!(f, " {:>6}", "-")?,
                }
            }
            writeln!(f)?;
        }
        write!(f, "{:<width$}", "total")?;
        for l in &self.levels {
            write!(f, " {:>6}", l.total)?;
        }
        writeln!(f)?;
        write!(f, "{:<width$}", "constants")?;
        for l in &self.levels {
            write!(f, " {:>6}", l.constants)?;
        }
        writeln!(f)?;
        if let Some(n) = self.file_nodes {
            writeln!(f, "(the file holds {n} nodes before canonicalization)")?;
        }
        Ok(())
    }
}
