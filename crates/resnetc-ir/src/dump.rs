//! A deterministic text form of a graph, for snapshots and `--print-ir-after`.
//!
//! Nodes are printed in the canonical topological order with ids renumbered from 0, so the dump depends
//! only on the graph's structure, attributes and data, not on how it was built. Large constants print as
//! a digest of their bytes, so a changed weight changes the dump without flooding it.

use std::fmt::Write;

use crate::graph::{Graph, ValueRef};
use crate::tensor::{each_tensor, Tensor};
use crate::validate::GraphInfo;

/// Summary of a tensor: values when small, otherwise dtype, shape and digest.
pub fn tensor_summary(t: &Tensor) -> String {
    let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let head = format!("{}[{}]", t.dtype(), shape.join(","));
    if t.len() <= 8 {
        let vals: Vec<String> = each_tensor!(t, a => a.iter().map(|x| format!("{x:?}")).collect());
        format!("{head} = [{}]", vals.join(", "))
    } else {
        format!("{head} #{:016x}", t.digest())
    }
}

/// Dumps `graph`; `info` (from [`crate::validate()`]) adds each value's type.
pub fn dump(graph: &Graph, info: Option<&GraphInfo>) -> String {
    let order = match info {
        Some(i) => i.order.clone(),
        None => match graph.topo_order() {
            Ok(o) => o,
            Err(c) => return format!("<graph with a cycle through {}>\n", graph.node(c.0).label()),
        },
    };
    let mut number = std::collections::HashMap::new();
    for (k, &id) in order.iter().enumerate() {
        number.insert(id, k);
    }
    let value_name = |v: ValueRef| -> String {
        let k = number[&v.node];
        if v.output == 0 {
            format!("%{k}")
        } else {
            format!("%{k}.{}", v.output)
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "graph opset={}", graph.opset);
    for &id in &order {
        let node = graph.node(id);
        let args: Vec<String> = graph
            .inputs(id)
            .into_iter()
            .map(|v| v.map_or_else(|| "_".to_string(), value_name))
            .collect();
        let ty = info
            .and_then(|i| i.ty(ValueRef::new(id, 0)))
            .map_or_else(|| "?".to_string(), |t| t.to_string());
        let _ = write!(out, "  %{} = {}", number[&id], node.op);
        if !args.is_empty() {
            let _ = write!(out, " ({})", args.join(", "));
        }
        let _ = writeln!(out, " : {ty}  # {}", node.label());
    }
    for o in &graph.outputs {
        let _ = writeln!(out, "  output {:?} = {}", o.name, value_name(o.value));
    }
    out
}
