//! The graph: petgraph underneath, typed ids on top.
//!
//! Nodes are operations; an edge carries one value from an output slot of its source to an input slot
//! of its target. Edges are the only record of who reads what, so there is nothing to keep in sync.
//! Node ids are stable across removals (a `StableDiGraph`), but their numeric order means nothing:
//! passes that need an order ask for [`Graph::topo_order`], which is canonical (it depends only on the
//! structure reachable from the outputs, not on insertion order), so dumps are reproducible.

use std::collections::HashSet;
use std::fmt;

use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::op::Op;

/// A node of a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) NodeIndex);

impl NodeId {
    /// The raw index, only for diagnostics: it is not a position in any order.
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0.index())
    }
}

/// One output of one node: what an edge carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueRef {
    pub node: NodeId,
    pub output: usize,
}

impl ValueRef {
    pub fn new(node: NodeId, output: usize) -> ValueRef {
        ValueRef { node, output }
    }
}

impl From<NodeId> for ValueRef {
    fn from(node: NodeId) -> ValueRef {
        ValueRef { node, output: 0 }
    }
}

/// An operation with its name and the names of the values it produces (as in ONNX).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The ONNX node name (may be empty); kept for messages and export.
    pub name: String,
    pub op: Op,
    /// Value names, one per output.
    pub outputs: Vec<String>,
    /// Number of input slots, including absent optional ones in the middle.
    pub num_inputs: usize,
}

impl Node {
    /// A name for messages: the node name, else its first output's.
    pub fn label(&self) -> &str {
        if !self.name.is_empty() {
            &self.name
        } else {
            self.outputs.first().map(String::as_str).unwrap_or("")
        }
    }
}

/// Edge weight: from output slot `output` of the source to input slot `input` of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub output: usize,
    pub input: usize,
}

/// A named graph output.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphOutput {
    pub name: String,
    pub value: ValueRef,
}

/// A dataflow graph in resnetc's IR.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, Edge>,
    /// The `Op::Input` nodes, in input order.
    pub inputs: Vec<NodeId>,
    pub outputs: Vec<GraphOutput>,
    /// The default-domain opset the graph was imported from (0 when built by hand).
    pub opset: u64,
    pub name: String,
}

/// A cycle was found through this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cycle(pub NodeId);

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a node reading `inputs` (one entry per slot, `None` for an absent optional input).
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        outputs: Vec<String>,
        inputs: &[Option<ValueRef>],
    ) -> NodeId {
        let id = NodeId(self.g.add_node(Node {
            name: name.into(),
            op,
            outputs,
            num_inputs: inputs.len(),
        }));
        self.connect(id, inputs);
        id
    }

    /// Adds an edge into slot `k` of `id` for each present `inputs[k]`.
    fn connect(&mut self, id: NodeId, inputs: &[Option<ValueRef>]) {
        for (slot, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.g.add_edge(
                    v.node.0,
                    id.0,
                    Edge {
                        output: v.output,
                        input: slot,
                    },
                );
            }
        }
    }

    /// Adds a graph input node and registers it in [`Graph::inputs`].
    pub fn add_input(&mut self, name: impl Into<String>, ty: crate::TensorType) -> NodeId {
        let name = name.into();
        let index = self.inputs.len();
        let id = self.add_node(name.clone(), Op::Input { index, ty }, vec![name], &[]);
        self.inputs.push(id);
        id
    }

    /// Adds a constant node.
    pub fn add_const(&mut self, name: impl Into<String>, t: crate::Tensor) -> NodeId {
        let name = name.into();
        self.add_node(name.clone(), Op::Constant(t), vec![name], &[])
    }

    pub fn add_output(&mut self, name: impl Into<String>, value: ValueRef) {
        self.outputs.push(GraphOutput {
            name: name.into(),
            value,
        });
    }

    /// The petgraph graph underneath, for petgraph's algorithms and writers (the DOT writer).
    pub(crate) fn petgraph(&self) -> &StableDiGraph<Node, Edge> {
        &self.g
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.0]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.0]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.0)
    }

    pub fn op(&self, id: NodeId) -> &Op {
        &self.g[id.0].op
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// All node ids in index order (not a topological order).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices().map(NodeId)
    }

    /// The value in each input slot of `id`, `None` where an optional input is absent.
    pub fn inputs(&self, id: NodeId) -> Vec<Option<ValueRef>> {
        let mut slots = vec![None; self.g[id.0].num_inputs];
        for e in self.g.edges_directed(id.0, Direction::Incoming) {
            let w = e.weight();
            if w.input >= slots.len() {
                slots.resize(w.input + 1, None);
            }
            slots[w.input] = Some(ValueRef {
                node: NodeId(e.source()),
                output: w.output,
            });
        }
        slots
    }

    /// The value in slot `slot` of `id`, if present.
    pub fn input(&self, id: NodeId, slot: usize) -> Option<ValueRef> {
        self.g
            .edges_directed(id.0, Direction::Incoming)
            .find(|e| e.weight().input == slot)
            .map(|e| ValueRef {
                node: NodeId(e.source()),
                output: e.weight().output,
            })
    }

    /// Every `(reader, slot)` that reads `v`, sorted.
    pub fn users(&self, v: ValueRef) -> Vec<(NodeId, usize)> {
        let mut users: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(v.node.0, Direction::Outgoing)
            .filter(|e| e.weight().output == v.output)
            .map(|e| (NodeId(e.target()), e.weight().input))
            .collect();
        users.sort();
        users
    }

    /// Whether a graph output is `v`.
    pub fn is_graph_output(&self, v: ValueRef) -> bool {
        self.outputs.iter().any(|o| o.value == v)
    }

    /// Points slot `slot` of `id` at `v` (or clears it).
    pub fn set_input(&mut self, id: NodeId, slot: usize, v: Option<ValueRef>) {
        let old: Vec<EdgeIndex> = self
            .g
            .edges_directed(id.0, Direction::Incoming)
            .filter(|e| e.weight().input == slot)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        if let Some(v) = v {
            self.g.add_edge(
                v.node.0,
                id.0,
                Edge {
                    output: v.output,
                    input: slot,
                },
            );
        }
        let n = &mut self.g[id.0];
        n.num_inputs = n.num_inputs.max(slot + 1);
    }

    /// Replaces all of a node's inputs at once, in slot order: linear in their number, where
    /// [`Graph::set_input`] per slot scans the node's edges each time.
    pub fn set_inputs(&mut self, id: NodeId, inputs: &[Option<ValueRef>]) {
        self.truncate_inputs(id, 0);
        self.connect(id, inputs);
        self.g[id.0].num_inputs = inputs.len();
    }

    /// Sets the number of input slots, dropping the edges into slots past the new end.
    pub fn truncate_inputs(&mut self, id: NodeId, n: usize) {
        let old: Vec<EdgeIndex> = self
            .g
            .edges_directed(id.0, Direction::Incoming)
            .filter(|e| e.weight().input >= n)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        self.g[id.0].num_inputs = n;
    }

    /// Makes every reader of `old` (graph outputs included) read `new` instead.
    pub fn replace_all_uses(&mut self, old: ValueRef, new: ValueRef) {
        for (user, slot) in self.users(old) {
            self.set_input(user, slot, Some(new));
        }
        for o in &mut self.outputs {
            if o.value == old {
                o.value = new;
            }
        }
    }

    /// Removes a node and its edges. Graph inputs are renumbered if it was one.
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        let node = self.g.remove_node(id.0)?;
        if let Some(pos) = self.inputs.iter().position(|&i| i == id) {
            self.inputs.remove(pos);
            for (k, &inp) in self.inputs.iter().enumerate() {
                if let Op::Input { index, .. } = &mut self.g[inp.0].op {
                    *index = k;
                }
            }
        }
        Some(node)
    }

    /// A canonical topological order: a depth-first post-order from the graph outputs (in order, each
    /// node's inputs in slot order), then from the remaining nodes in index order. The result depends
    /// only on the graph's structure and output order, so equal graphs give equal orders.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, Cycle> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let bound = petgraph::visit::NodeIndexable::node_bound(&self.g);
        let mut mark = vec![Mark::New; bound];
        let mut order = Vec::with_capacity(self.g.node_count());
        let mut roots: Vec<NodeId> = self.outputs.iter().map(|o| o.value.node).collect();
        roots.extend(self.inputs.iter().copied());
        roots.extend(self.node_ids());
        // Iterative DFS: untrusted models may be deep chains, so no recursion.
        let mut stack: Vec<(NodeId, Vec<NodeId>)> = Vec::new();
        for root in roots {
            if mark[root.0.index()] != Mark::New {
                continue;
            }
            mark[root.0.index()] = Mark::Open;
            stack.push((root, self.preds_rev(root)));
            while let Some((node, pending)) = stack.last_mut() {
                if let Some(next) = pending.pop() {
                    match mark[next.0.index()] {
                        Mark::New => {
                            mark[next.0.index()] = Mark::Open;
                            let preds = self.preds_rev(next);
                            stack.push((next, preds));
                        }
                        Mark::Open => return Err(Cycle(next)),
                        Mark::Done => {}
                    }
                } else {
                    let node = *node;
                    mark[node.0.index()] = Mark::Done;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }

    /// Predecessors in reverse slot order, so popping visits them in slot order.
    fn preds_rev(&self, id: NodeId) -> Vec<NodeId> {
        let mut preds: Vec<NodeId> = self
            .inputs(id)
            .into_iter()
            .flatten()
            .map(|v| v.node)
            .collect();
        let mut seen = HashSet::new();
        preds.retain(|p| seen.insert(*p));
        preds.reverse();
        preds
    }

    /// Nodes from which no graph output is reachable.
    pub fn dead_nodes(&self) -> Vec<NodeId> {
        let mut live = vec![false; petgraph::visit::NodeIndexable::node_bound(&self.g)];
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|o| o.value.node).collect();
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut live[n.0.index()], true) {
                continue;
            }
            stack.extend(self.inputs(n).into_iter().flatten().map(|v| v.node));
        }
        self.node_ids().filter(|n| !live[n.0.index()]).collect()
    }
}
