//! A graph as Graphviz DOT (`resnetc inspect --dot`), written by petgraph's DOT writer: one DOT
//! node per graph node, labelled with its op, its name and its output type; fused convolutions
//! filled, constants small and grey, residual inputs dashed.

use petgraph::dot::{Config, Dot};
use petgraph::visit::{EdgeRef, NodeRef};

use crate::graph::{Graph, NodeId, ValueRef};
use crate::op::Op;
use crate::validate::GraphInfo;

/// `graph` in DOT; `info` (from [`crate::validate()`]) adds each node's output type.
pub fn to_dot(graph: &Graph, info: Option<&GraphInfo>) -> String {
    let node_attrs = |_, n: (petgraph::stable_graph::NodeIndex, &crate::Node)| {
        let (idx, node) = (n.id(), n.weight());
        let ty = info
            .and_then(|i| i.ty(ValueRef::new(NodeId(idx), 0)))
            .map(|t| t.to_string());
        let op = match &node.op {
            Op::Constant(t) => format!("Constant {}", crate::dump::tensor_summary(t)),
            op => op.to_string(),
        };
        let mut label = quote(&op);
        if !node.name.is_empty() && !matches!(node.op, Op::Constant(_)) {
            label.push_str("\\n");
            label.push_str(&quote(&node.name));
        }
        if let Some(ty) = ty.filter(|_| !matches!(node.op, Op::Constant(_))) {
            label.push_str("\\n");
            label.push_str(&quote(&ty));
        }
        let style = match node.op {
            Op::FusedConv { .. } | Op::Shortcut { .. } => {
                "shape=box, style=\"rounded,filled\", fillcolor=\"#ffd8a8\""
            }
            Op::Constant(_) => "shape=box, fontsize=8, color=gray50, fontcolor=gray40",
            Op::Input { .. } => "shape=box, style=filled, fillcolor=\"#d0ebff\"",
            _ => "shape=box, style=rounded",
        };
        format!("label=\"{label}\", {style}")
    };
    let edge_attrs = |_, e: petgraph::stable_graph::EdgeReference<'_, crate::Edge>| {
        let residual =
            matches!(graph.op(NodeId(e.target())), Op::FusedConv { .. }) && e.weight().input == 3;
        // Never an empty attribute list: `[ ]` is valid DOT, but some parsers refuse it.
        if residual {
            "style=dashed".to_string()
        } else {
            "style=solid".to_string()
        }
    };
    let g = graph.petgraph();
    let dot = Dot::with_attr_getters(
        g,
        &[Config::NodeNoLabel, Config::EdgeNoLabel],
        &edge_attrs,
        &node_attrs,
    );
    format!("{dot:?}")
}

/// Escapes a string for a quoted DOT label: quotes and backslashes, and control characters
/// (which could reach a terminal) as `\u{..}`-style text.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_escape_quotes_and_controls() {
        assert_eq!(super::quote("a\"b\\c\x1b"), "a\\\"b\\\\c\\\\u{1b}");
    }
}
