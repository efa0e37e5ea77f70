//! ONNX → IR.
//!
//! The importer is faithful: it builds one IR node per ONNX node (plus constants for attributes that
//! newer opsets pass as inputs) and folds nothing; canonicalization is a pass. What it does normalize
//! is the form of each op across opsets, so the IR has one form per op: e.g. Unsqueeze's `axes` is an
//! attribute before opset 13 and an input from 13 on, and is always an input in the IR.
//!
//! Every size, index and name that comes from the file is checked before use; bad input yields an
//! [`ImportError`] naming the node, op and opset.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use resnetc_ir::limits;
use resnetc_ir::{
    AvgPool, BinOp, Conv, Dim, Gemm, Graph, NodeId, Op, PadMode, Padding, Tensor, TensorType,
    ValueRef,
};

use crate::error::{ImportError, NodeSite, MAX_IR_VERSION, MAX_OPSET, MIN_IR_VERSION, MIN_OPSET};
use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_shape_proto::dimension;
use crate::proto::type_proto;
use crate::proto::{AttributeProto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{dtype_from_onnx, onnx_dtype_name, tensor_from_proto};

/// Reads and imports an ONNX file. External data is looked up next to it.
pub fn import_file(path: &Path) -> Result<Graph, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    import_bytes(&bytes, path.parent())
}

/// Imports an encoded `ModelProto`; `base_dir` is where external data lives, if any.
pub fn import_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Graph, ImportError> {
    let model = ModelProto::decode(bytes).map_err(|source| ImportError::Decode { source })?;
    import_model(&model, base_dir)
}

/// Imports a decoded model.
pub fn import_model(model: &ModelProto, base_dir: Option<&Path>) -> Result<Graph, ImportError> {
    // IR versions 3 (the first with opset imports) to 13 (the newest seen, in onnx's own node
    // tests); a file without the field is taken as current. onnxruntime refuses the others too.
    if let Some(v) = model.ir_version {
        if !(MIN_IR_VERSION..=MAX_IR_VERSION).contains(&v) {
            return Err(ImportError::IrVersion { version: v });
        }
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain(), "" | "ai.onnx"))
        .map(|o| o.version())
        .ok_or(ImportError::NoOpset)?;
    if opset < MIN_OPSET as i64 || opset > MAX_OPSET as i64 {
        return Err(ImportError::Opset { version: opset });
    }
    let proto = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let limit = |m: String| ImportError::Limit { message: m };
    limits::NODES
        .check(
            (proto.node.len() + proto.initializer.len()) as u64,
            "the count of its nodes and initializers",
        )
        .map_err(limit)?;
    let mut b = Builder {
        graph: Graph::new(),
        names: HashMap::new(),
        opset: opset as u64,
        base_dir,
        pending: Vec::new(),
    };
    b.graph.opset = opset as u64;
    b.graph.name = proto.name().to_string();

    let mut weight_bytes = 0u64;
    for init in &proto.initializer {
        let t = tensor_from_proto(init, base_dir)?;
        weight_bytes += (t.len() * t.dtype().size_of()) as u64;
        limits::WEIGHT_BYTES
            .check(weight_bytes, "the size in bytes of its initializers so far")
            .map_err(limit)?;
        let id = b.graph.add_const(init.name(), t);
        b.define(init.name(), id.into(), None)?;
    }
    for input in &proto.input {
        if b.names.contains_key(input.name()) {
            // An initializer that is also listed as an input: ONNX calls it overridable; for inference
            // we take the initializer, as onnxruntime and tract do.
            continue;
        }
        let ty = input_type(input)?;
        let id = b.graph.add_input(input.name(), ty);
        b.define(input.name(), id.into(), None)?;
    }
    for node in &proto.node {
        b.add_node(node)?;
    }
    b.connect()?;
    let opset = b.opset;
    infer_conv_kernels(&mut b.graph).map_err(|node| ImportError::Attribute {
        site: NodeSite { node, op: "Conv".into(), opset },
        name: "kernel_shape".into(),
        message: "is absent and the weights' shape is not known from the file; add kernel_shape to the node".into(),
    })?;
    for out in &proto.output {
        let v = *b
            .names
            .get(out.name())
            .ok_or_else(|| ImportError::DanglingOutput {
                name: out.name().to_string(),
            })?;
        b.graph.add_output(out.name(), v);
    }
    resnetc_ir::validate(&b.graph)?;
    check_batchnorm_statistics(&b.graph, opset)?;
    Ok(b.graph)
}

/// Refuses a BatchNormalization whose constant statistics make `var + epsilon` zero, negative or
/// not finite in some channel (or whose epsilon is not finite): its output there is NaN or
/// infinite for every image (onnxruntime gives NaN logits), which no trained model has, so the
/// file is corrupt or was exported from a model in training state.
fn check_batchnorm_statistics(graph: &Graph, opset: u64) -> Result<(), ImportError> {
    for id in graph.node_ids() {
        let Op::BatchNorm { epsilon } = *graph.op(id) else {
            continue;
        };
        let site = || NodeSite {
            node: graph.node(id).label().to_string(),
            op: "BatchNormalization".into(),
            opset,
        };
        if !epsilon.is_finite() {
            return Err(ImportError::Attribute {
                site: site(),
                name: "epsilon".into(),
                message: format!("is {epsilon}; it must be a finite number (PyTorch uses 1e-5)"),
            });
        }
        let Some(var) = constant_input(graph, id, 4).and_then(|t| t.as_f32()) else {
            continue;
        };
        let bad = var.iter().enumerate().find(|&(_, &v)| {
            let d = v as f64 + epsilon as f64;
            !(d.is_finite() && d > 0.0)
        });
        if let Some((channel, &v)) = bad {
            return Err(ImportError::Node {
                site: site(),
                message: format!(
                    "channel {channel} has variance {v} and epsilon {epsilon}, so var + epsilon is not a positive number and every output there is NaN or infinite; the statistics are corrupt (export the trained model after model.eval())"
                ),
            });
        }
    }
    Ok(())
}

/// The constant feeding input `slot` of `id`, through any Identity nodes.
fn constant_input(graph: &Graph, id: NodeId, slot: usize) -> Option<&Tensor> {
    let mut v = graph.input(id, slot)?;
    loop {
        match graph.op(v.node) {
            Op::Constant(t) => return Some(t),
            Op::Identity => v = graph.input(v.node, 0)?,
            _ => return None,
        }
    }
}

/// How one slot of an IR node gets its value.
enum Arg {
    /// A named ONNX value (empty = absent optional input).
    Name(String),
    /// A constant made from an attribute of an older opset.
    Const(Tensor),
}

struct Builder<'a> {
    graph: Graph,
    names: HashMap<String, ValueRef>,
    opset: u64,
    base_dir: Option<&'a Path>,
    /// Nodes whose inputs are still to be connected, with the ONNX site for messages.
    pending: Vec<(resnetc_ir::NodeId, Vec<Arg>, NodeSite)>,
}

impl Builder<'_> {
    fn define(
        &mut self,
        name: &str,
        v: ValueRef,
        site: Option<&NodeSite>,
    ) -> Result<(), ImportError> {
        if name.is_empty() {
            return Ok(());
        }
        if let Some(prev) = self.names.get(name) {
            let previous = self.graph.node(prev.node).label().to_string();
            return Err(match site {
                Some(site) => ImportError::DuplicateValue {
                    site: site.clone(),
                    name: name.to_string(),
                    previous,
                },
                None => ImportError::DuplicateValue {
                    site: NodeSite {
                        node: name.to_string(),
                        op: "initializer/input".into(),
                        opset: self.opset,
                    },
                    name: name.to_string(),
                    previous,
                },
            });
        }
        self.names.insert(name.to_string(), v);
        Ok(())
    }

    fn add_node(&mut self, node: &NodeProto) -> Result<(), ImportError> {
        let label = if node.name().is_empty() {
            node.output.first().cloned().unwrap_or_default()
        } else {
            node.name().to_string()
        };
        let site = NodeSite {
            node: label,
            op: node.op_type().to_string(),
            opset: self.opset,
        };
        limits::NODE_INPUTS
            .check(node.input.len() as u64, "the count of its inputs")
            .map_err(|message| ImportError::Node {
                site: site.clone(),
                message,
            })?;
        // Duplicate attributes: refused, as onnx.checker and onnxruntime do (which one would win
        // is not defined). Unknown attributes are accepted and ignored, as exporters add some.
        let mut seen = std::collections::HashSet::with_capacity(node.attribute.len());
        if let Some(dup) = node.attribute.iter().find(|a| !seen.insert(a.name())) {
            return Err(ImportError::Attribute {
                site,
                name: dup.name().to_string(),
                message: "appears twice; a node's attribute names must be distinct".into(),
            });
        }
        let outputs: Vec<&String> = node.output.iter().collect();
        let (op, args) = match node.domain() {
            "" | "ai.onnx" => convert(node, &site, self.opset, self.base_dir)?,
            crate::export::RESNETC_DOMAIN => convert_resnetc(node, &site)?,
            other => {
                return Err(ImportError::UnsupportedOp {
                    site,
                    domain: other.to_string(),
                })
            }
        };
        // Every IR op has one output; ONNX allows trailing optional outputs, which must be unused.
        let main = outputs.first().map(|s| s.to_string()).unwrap_or_default();
        if main.is_empty() {
            return Err(ImportError::Node {
                site,
                message: "has no output".into(),
            });
        }
        if let Some(extra) = outputs.iter().skip(1).find(|o| !o.is_empty()) {
            return Err(ImportError::Node {
                site,
                message: format!(
                    "produces a second output '{extra}'; resnetc runs inference graphs only (export with model.eval() and training=TrainingMode.EVAL)"
                ),
            });
        }
        // Constants are known by their value's name, like initializers.
        let name = if matches!(op, Op::Constant(_)) {
            main.as_str()
        } else {
            node.name()
        };
        // Arity now, before anything is connected: a node with 200,000 inputs is refused at once.
        let given = args
            .iter()
            .rposition(|a| !matches!(a, Arg::Name(n) if n.is_empty()))
            .map_or(0, |p| p + 1);
        if let Err(message) = op.check_arity(given) {
            return Err(ImportError::Node { site, message });
        }
        let id = self.graph.add_node(name, op, vec![main.clone()], &[]);
        self.define(&main, id.into(), Some(&site))?;
        self.pending.push((id, args, site));
        Ok(())
    }

    fn connect(&mut self) -> Result<(), ImportError> {
        for (id, mut args, site) in std::mem::take(&mut self.pending) {
            // Trailing absent optional inputs ("") are the same as none: drop them, so the IR has one form.
            while matches!(args.last(), Some(Arg::Name(n)) if n.is_empty()) {
                args.pop();
            }
            let mut inputs = Vec::with_capacity(args.len());
            for (slot, arg) in args.into_iter().enumerate() {
                let v = match arg {
                    Arg::Name(name) if name.is_empty() => None,
                    Arg::Name(name) => match self.names.get(&name) {
                        Some(v) => Some(*v),
                        None => return Err(ImportError::DanglingInput { site, input: name }),
                    },
                    Arg::Const(t) => {
                        let base = format!("{}_{}", self.graph.node(id).outputs[0], slot);
                        let mut name = base.clone();
                        let mut k = 0;
                        while self.names.contains_key(&name) {
                            k += 1;
                            name = format!("{base}_{k}");
                        }
                        self.names.insert(name.clone(), ValueRef::new(id, 0));
                        Some(self.graph.add_const(name, t).into())
                    }
                };
                inputs.push(v);
            }
            self.graph.set_inputs(id, &inputs);
        }
        Ok(())
    }
}

fn input_type(v: &ValueInfoProto) -> Result<TensorType, ImportError> {
    let err = |m: String| ImportError::Input {
        name: v.name().to_string(),
        message: m,
    };
    let tt = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(_) => {
            return Err(err(
                "is not a tensor; resnetc takes tensor inputs only".into()
            ))
        }
        None => {
            return Err(err(
                "has no type; re-export the model with input shapes".into()
            ))
        }
    };
    let dtype = dtype_from_onnx(tt.elem_type()).ok_or_else(|| {
        err(format!(
            "has element type {}; resnetc takes float inputs",
            onnx_dtype_name(tt.elem_type())
        ))
    })?;
    let shape = tt
        .shape
        .as_ref()
        .ok_or_else(|| err("has no shape; resnetc needs at least the rank".into()))?;
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (k, d) in shape.dim.iter().enumerate() {
        dims.push(match &d.value {
            Some(dimension::Value::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
            Some(dimension::Value::DimValue(n)) => {
                return Err(err(format!("dimension {k} is negative ({n})")))
            }
            Some(dimension::Value::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
            _ => Dim::Sym(format!("{}_{k}", v.name())),
        });
    }
    Ok(TensorType::new(dtype, dims))
}

/// Typed access to a node's attributes.
struct Attrs<'a> {
    node: &'a NodeProto,
    site: &'a NodeSite,
}

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }

    fn err(&self, name: &str, message: impl Into<String>) -> ImportError {
        ImportError::Attribute {
            site: self.site.clone(),
            name: name.to_string(),
            message: message.into(),
        }
    }

    fn check_type(&self, a: &AttributeProto, want: AttributeType) -> Result<(), ImportError> {
        // Files that omit `type` predate IR version 2; accept them by the field that is set.
        if a.r#type.is_some() && a.r#type() != want {
            return Err(self.err(
                a.name(),
                format!("has type {:?}, expected {:?}", a.r#type(), want),
            ));
        }
        Ok(())
    }

    fn int(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        match self.get(name) {
            None => Ok(default),
            Some(a) => {
                self.check_type(a, AttributeType::Int)?;
                Ok(a.i())
            }
        }
    }

    fn float(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        match self.get(name) {
            None => Ok(default),
            Some(a) => {
                self.check_type(a, AttributeType::Float)?;
                Ok(a.f())
            }
        }
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => {
                self.check_type(a, AttributeType::Ints)?;
                Ok(Some(a.ints.clone()))
            }
        }
    }

    fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => {
                self.check_type(a, AttributeType::Floats)?;
                Ok(Some(a.floats.clone()))
            }
        }
    }

    fn string(&self, name: &str) -> Result<Option<String>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => {
                self.check_type(a, AttributeType::String)?;
                Ok(Some(String::from_utf8_lossy(a.s()).into_owned()))
            }
        }
    }

    fn tensor(&self, name: &str, base_dir: Option<&Path>) -> Result<Option<Tensor>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(a) => {
                self.check_type(a, AttributeType::Tensor)?;
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.err(name, "has no tensor"))?;
                Ok(Some(tensor_from_proto(t, base_dir)?))
            }
        }
    }

    fn pair(&self, name: &str, default: usize) -> Result<[usize; 2], ImportError> {
        match self.ints(name)? {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| (1..=1 << 16).contains(&x)) => {
                Ok([v[0] as usize, v[1] as usize])
            }
            Some(v) => Err(self.err(
                name,
                format!("must be two positive values for a 2-D op, got {v:?}"),
            )),
        }
    }

    fn padding(&self) -> Result<Padding, ImportError> {
        let auto = self.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        match auto.as_str() {
            "NOTSET" => match self.ints("pads")? {
                None => Ok(Padding::Explicit([0; 4])),
                Some(p) if p.len() == 4 && p.iter().all(|&x| (0..=1 << 16).contains(&x)) => {
                    Ok(Padding::Explicit([
                        p[0] as usize,
                        p[1] as usize,
                        p[2] as usize,
                        p[3] as usize,
                    ]))
                }
                Some(p) => Err(self.err(
                    "pads",
                    format!("must be four non-negative values for a 2-D op, got {p:?}"),
                )),
            },
            "VALID" => Ok(Padding::Explicit([0; 4])),
            "SAME_UPPER" => Ok(Padding::SameUpper),
            "SAME_LOWER" => Ok(Padding::SameLower),
            other => Err(self.err("auto_pad", format!("unknown value '{other}'"))),
        }
    }

    fn args(&self) -> Vec<Arg> {
        self.node
            .input
            .iter()
            .map(|s| Arg::Name(s.clone()))
            .collect()
    }
}

fn axes_tensor(axes: Vec<i64>) -> Tensor {
    Tensor::i64_vec(axes)
}

/// Maps one ONNX node onto an IR op and the arguments for its slots.
fn convert(
    node: &NodeProto,
    site: &NodeSite,
    opset: u64,
    base_dir: Option<&Path>,
) -> Result<(Op, Vec<Arg>), ImportError> {
    let a = Attrs { node, site };
    let node_err = |m: String| ImportError::Node {
        site: site.clone(),
        message: m,
    };
    let simple = |op: Op| Ok((op, a.args()));
    match node.op_type() {
        "Identity" => simple(Op::Identity),
        "Dropout" => {
            // Inference-mode Dropout is the identity; its optional mask output is refused by the caller.
            Ok((Op::Identity, a.args().into_iter().take(1).collect()))
        }
        "Relu" => simple(Op::Relu),
        "Add" => simple(Op::Binary(BinOp::Add)),
        "Sub" => simple(Op::Binary(BinOp::Sub)),
        "Mul" => simple(Op::Binary(BinOp::Mul)),
        "Div" => simple(Op::Binary(BinOp::Div)),
        "MatMul" => simple(Op::MatMul),
        "GlobalAveragePool" => simple(Op::GlobalAveragePool),
        "CastLike" => simple(Op::CastLike),
        "Range" => simple(Op::Range),
        "Expand" => simple(Op::Expand),
        "Constant" => {
            let t = if let Some(t) = a.tensor("value", base_dir)? {
                t
            } else if let Some(attr) = a.get("value_float") {
                a.check_type(attr, AttributeType::Float)?;
                Tensor::f32_scalar(attr.f())
            } else if let Some(v) = a.floats("value_floats")? {
                Tensor::f32(
                    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[v.len()]), v).expect("1-D"),
                )
            } else if let Some(attr) = a.get("value_int") {
                a.check_type(attr, AttributeType::Int)?;
                Tensor::I64(ndarray::ArcArray::from_elem(ndarray::IxDyn(&[]), attr.i()))
            } else if let Some(v) = a.ints("value_ints")? {
                Tensor::i64_vec(v)
            } else {
                return Err(node_err(
                    "has no value attribute resnetc can read (value, value_float(s), value_int(s))"
                        .into(),
                ));
            };
            if !node.input.is_empty() {
                return Err(node_err("a Constant takes no inputs".into()));
            }
            Ok((Op::Constant(t), Vec::new()))
        }
        "Conv" => {
            let strides = a.pair("strides", 1)?;
            let dilations = a.pair("dilations", 1)?;
            let group = a.int("group", 1)?;
            if !(1..=1 << 20).contains(&group) {
                return Err(a.err("group", format!("must be positive, got {group}")));
            }
            let kernel = match a.ints("kernel_shape")? {
                Some(k) if k.len() == 2 && k.iter().all(|&x| (1..=1 << 16).contains(&x)) => {
                    [k[0] as usize, k[1] as usize]
                }
                Some(k) => {
                    return Err(a.err(
                        "kernel_shape",
                        format!("must be two positive values (2-D convolution), got {k:?}"),
                    ))
                }
                // Filled in from the weights' shape once the graph is connected.
                None => [0, 0],
            };
            let conv = Conv {
                kernel,
                strides,
                dilations,
                padding: a.padding()?,
                group: group as usize,
            };
            simple(Op::Conv(conv))
        }
        "BatchNormalization" => {
            if a.int("training_mode", 0)? != 0 {
                return Err(a.err(
                    "training_mode",
                    "is 1; resnetc runs inference graphs only (export with model.eval())",
                ));
            }
            if opset < 9 && a.int("spatial", 1)? != 1 {
                return Err(a.err(
                    "spatial",
                    "non-spatial batch normalization is not supported",
                ));
            }
            simple(Op::BatchNorm {
                epsilon: a.float("epsilon", 1e-5)?,
            })
        }
        "Gemm" => {
            if opset < 7 && a.int("broadcast", 0)? == 0 {
                return Err(a.err("broadcast", "legacy non-broadcasting Gemm is not supported"));
            }
            let g = Gemm {
                alpha: a.float("alpha", 1.0)?,
                beta: a.float("beta", 1.0)?,
                trans_a: a.int("transA", 0)? != 0,
                trans_b: a.int("transB", 0)? != 0,
            };
            simple(Op::Gemm(g))
        }
        "AveragePool" => {
            if a.ints("dilations")?
                .is_some_and(|d| d.iter().any(|&x| x != 1))
            {
                return Err(a.err("dilations", "dilated average pooling is not supported"));
            }
            let kernel = match a.ints("kernel_shape")? {
                Some(k) if k.len() == 2 && k.iter().all(|&x| (1..=1 << 16).contains(&x)) => {
                    [k[0] as usize, k[1] as usize]
                }
                other => {
                    return Err(a.err(
                        "kernel_shape",
                        format!("must be two positive values (2-D pooling), got {other:?}"),
                    ))
                }
            };
            let p = AvgPool {
                kernel,
                strides: a.pair("strides", 1)?,
                padding: a.padding()?,
                count_include_pad: a.int("count_include_pad", 0)? != 0,
                ceil_mode: a.int("ceil_mode", 0)? != 0,
            };
            simple(Op::AveragePool(p))
        }
        "ReduceMean" => {
            let keepdims = a.int("keepdims", 1)? != 0;
            let noop = a.int("noop_with_empty_axes", 0)? != 0;
            let op = Op::ReduceMean {
                keepdims,
                noop_with_empty_axes: noop,
            };
            if opset < 18 {
                let args = match a.ints("axes")? {
                    Some(axes) => vec![
                        Arg::Name(node.input.first().cloned().unwrap_or_default()),
                        Arg::Const(axes_tensor(axes)),
                    ],
                    None => a.args(),
                };
                Ok((op, args))
            } else {
                simple(op)
            }
        }
        "Flatten" => simple(Op::Flatten {
            axis: a.int("axis", 1)?,
        }),
        "Reshape" => {
            let op = Op::Reshape {
                allowzero: a.int("allowzero", 0)? != 0,
            };
            if opset < 5 {
                let shape = a
                    .ints("shape")?
                    .ok_or_else(|| a.err("shape", "is required before opset 5"))?;
                Ok((
                    op,
                    vec![
                        Arg::Name(node.input.first().cloned().unwrap_or_default()),
                        Arg::Const(Tensor::i64_vec(shape)),
                    ],
                ))
            } else {
                simple(op)
            }
        }
        "Pad" => {
            let mode = a.string("mode")?.unwrap_or_else(|| "constant".into());
            if mode != "constant" {
                return Err(a.err("mode", format!("'{mode}' padding is not supported; resnetc implements constant padding (what CifarResNet's option-A shortcut uses)")));
            }
            let op = Op::Pad {
                mode: PadMode::Constant,
            };
            if opset < 11 {
                let pads = a
                    .ints("pads")?
                    .ok_or_else(|| a.err("pads", "is required before opset 11"))?;
                let value = a.float("value", 0.0)?;
                let x = node.input.first().cloned().unwrap_or_default();
                Ok((
                    op,
                    vec![
                        Arg::Name(x),
                        Arg::Const(Tensor::i64_vec(pads)),
                        Arg::Const(Tensor::f32_scalar(value)),
                    ],
                ))
            } else {
                simple(op)
            }
        }
        "Slice" => {
            if opset < 10 {
                let starts = a
                    .ints("starts")?
                    .ok_or_else(|| a.err("starts", "is required before opset 10"))?;
                let ends = a
                    .ints("ends")?
                    .ok_or_else(|| a.err("ends", "is required before opset 10"))?;
                let x = node.input.first().cloned().unwrap_or_default();
                let mut args = vec![
                    Arg::Name(x),
                    Arg::Const(Tensor::i64_vec(starts)),
                    Arg::Const(Tensor::i64_vec(ends)),
                ];
                if let Some(axes) = a.ints("axes")? {
                    args.push(Arg::Const(axes_tensor(axes)));
                }
                Ok((Op::Slice, args))
            } else {
                simple(Op::Slice)
            }
        }
        "Shape" => {
            let start = a.int("start", 0)?;
            let end = match a.get("end") {
                Some(_) => Some(a.int("end", 0)?),
                None => None,
            };
            simple(Op::Shape { start, end })
        }
        "Gather" => simple(Op::Gather {
            axis: a.int("axis", 0)?,
        }),
        "Unsqueeze" | "Squeeze" => {
            let op = if node.op_type() == "Unsqueeze" {
                Op::Unsqueeze
            } else {
                Op::Squeeze
            };
            if opset < 13 {
                let x = node.input.first().cloned().unwrap_or_default();
                match a.ints("axes")? {
                    Some(axes) => Ok((op, vec![Arg::Name(x), Arg::Const(axes_tensor(axes))])),
                    None if matches!(op, Op::Squeeze) => Ok((op, vec![Arg::Name(x)])),
                    None => Err(a.err("axes", "is required for Unsqueeze before opset 13")),
                }
            } else {
                simple(op)
            }
        }
        "Concat" => {
            let axis = a.get("axis").ok_or_else(|| a.err("axis", "is required"))?;
            a.check_type(axis, AttributeType::Int)?;
            simple(Op::Concat { axis: axis.i() })
        }
        "ConstantOfShape" => {
            let value = a
                .tensor("value", base_dir)?
                .unwrap_or_else(|| Tensor::f32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[1]))));
            if value.len() != 1 {
                return Err(a.err(
                    "value",
                    format!("must hold one element, holds {}", value.len()),
                ));
            }
            simple(Op::ConstantOfShape { value })
        }
        "Cast" => {
            let to = a.int("to", 0)?;
            let dtype = i32::try_from(to)
                .ok()
                .and_then(dtype_from_onnx)
                .ok_or_else(|| {
                    a.err(
                        "to",
                        format!(
                            "casts to {}; resnetc handles float, double, int32, int64 and bool",
                            onnx_dtype_name(to as i32)
                        ),
                    )
                })?;
            simple(Op::Cast { to: dtype })
        }
        "Transpose" => {
            let perm = match a.ints("perm")? {
                None => None,
                Some(p) if p.iter().all(|&x| (0..64).contains(&x)) => {
                    Some(p.into_iter().map(|x| x as usize).collect())
                }
                Some(p) => return Err(a.err("perm", format!("is not a permutation: {p:?}"))),
            };
            simple(Op::Transpose { perm })
        }
        _ => Err(ImportError::UnsupportedOp {
            site: site.clone(),
            domain: node.domain().to_string(),
        }),
    }
}

/// Maps one of resnetc's own ops (domain `ai.resnetc`, written by `export --keep-fused`).
fn convert_resnetc(node: &NodeProto, site: &NodeSite) -> Result<(Op, Vec<Arg>), ImportError> {
    let a = Attrs { node, site };
    let positive = |name: &str| -> Result<usize, ImportError> {
        let v = a.int(name, 0)?;
        if !(1..=1 << 16).contains(&v) {
            return Err(a.err(name, format!("must be a positive size, got {v}")));
        }
        Ok(v as usize)
    };
    let size = |name: &str| -> Result<usize, ImportError> {
        let v = a.int(name, 0)?;
        if !(0..=1 << 16).contains(&v) {
            return Err(a.err(name, format!("must be a size, got {v}")));
        }
        Ok(v as usize)
    };
    match node.op_type() {
        "FusedConv" => {
            let kernel = a.pair("kernel_shape", 0)?;
            let conv = Conv {
                kernel,
                strides: a.pair("strides", 1)?,
                dilations: a.pair("dilations", 1)?,
                padding: a.padding()?,
                group: positive("group")?,
            };
            let steps = a
                .get("epilogue")
                .map(|e| e.strings.clone())
                .unwrap_or_default();
            let mut epilogue = Vec::new();
            for s in steps {
                epilogue.push(match s.as_slice() {
                    b"bias" => resnetc_ir::Epilogue::Bias,
                    b"relu" => resnetc_ir::Epilogue::Relu,
                    b"add" => resnetc_ir::Epilogue::AddResidual(match a.get("residual_stride") {
                        None => resnetc_ir::ResidualRead::Direct,
                        Some(_) => resnetc_ir::ResidualRead::Subsampled {
                            stride: positive("residual_stride")?,
                            pad_before: size("residual_pad_before")?,
                        },
                    }),
                    other => {
                        return Err(a.err(
                            "epilogue",
                            format!("unknown step '{}'", String::from_utf8_lossy(other)),
                        ))
                    }
                });
            }
            Ok((Op::FusedConv { conv, epilogue }, a.args()))
        }
        "Shortcut" => Ok((
            Op::Shortcut {
                stride: positive("stride")?,
                pad_before: size("pad_before")?,
                pad_after: size("pad_after")?,
            },
            a.args(),
        )),
        _ => Err(ImportError::UnsupportedOp {
            site: site.clone(),
            domain: node.domain().to_string(),
        }),
    }
}

/// Fills in Conv kernels that the file left to be inferred from the weights.
pub(crate) fn infer_conv_kernels(graph: &mut Graph) -> Result<(), String> {
    let ids: Vec<_> = graph.node_ids().collect();
    for id in ids {
        let Op::Conv(c) = graph.op(id) else { continue };
        if c.kernel != [0, 0] {
            continue;
        }
        let w = graph.input(id, 1);
        let shape: Option<Vec<usize>> = w.and_then(|w| match graph.op(w.node) {
            Op::Constant(t) => Some(t.shape().to_vec()),
            Op::Input { ty, .. } => ty.concrete(),
            _ => None,
        });
        match shape {
            Some(s) if s.len() == 4 => {
                if let Op::Conv(c) = &mut graph.node_mut(id).op {
                    c.kernel = [s[2], s[3]];
                }
            }
            _ => return Err(graph.node(id).label().to_string()),
        }
    }
    Ok(())
}
