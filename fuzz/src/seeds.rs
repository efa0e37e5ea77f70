//! Tiny CifarResNet-shaped ONNX models built by hand, written the ways PyTorch's exporters write
//! them: the seed corpora (`examples/make_seeds.rs`) and the plans `cpu_plan_mutate` starts from.

use prost::Message;
use resnetc_onnx::proto::{GraphProto, NodeProto, TensorProto};

use crate::*;

/// The opset-dependent ways PyTorch's exporters spell the same network.
#[derive(Clone, Copy)]
pub struct Style {
    pub opset: i64,
    pub dynamic: bool,
    /// Option-A shortcuts (Slice + Pad) where the shape changes; else option B (1×1 conv + BN).
    pub option_a: bool,
    /// BatchNormalization kept; else folded into the convolutions' bias.
    pub bn_kept: bool,
    pub head: Head,
}

#[derive(Clone, Copy)]
pub enum Head {
    /// GlobalAveragePool, Flatten, Gemm (`nn.AdaptiveAvgPool2d`, `torch.flatten`).
    Adaptive,
    /// AveragePool over the whole map, `view(size(0), -1)` as Shape/Gather/Unsqueeze/Concat/Reshape.
    AvgPoolView,
    /// ReduceMean over (2, 3), then Gemm with B not transposed (`mean(dim=(2,3))`).
    Mean,
}

struct B {
    style: Style,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    rng: Rng,
    n: usize,
}

impl B {
    fn fresh(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}_{}", self.n)
    }

    fn init(&mut self, what: &str, dims: &[usize], lo: f32, hi: f32) -> String {
        let name = self.fresh(what);
        let n = dims.iter().product();
        let v = self.rng.vec(n, lo, hi);
        self.inits.push(tensor_f32(&name, dims, &v));
        name
    }

    fn ints(&mut self, what: &str, values: &[i64]) -> String {
        let name = self.fresh(what);
        self.inits.push(tensor_i64(&name, &[values.len()], values));
        name
    }

    /// A Constant node holding int64s (the TorchScript exporter's habit).
    fn constant_ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("const");
        let mut n = node(&name, "Constant", &[], &[&name]);
        n.attribute = vec![resnetc_onnx::proto::AttributeProto {
            name: Some("value".into()),
            r#type: Some(resnetc_onnx::proto::attribute_proto::AttributeType::Tensor as i32),
            t: Some(tensor_i64("", &[values.len()], values)),
            ..Default::default()
        }];
        self.nodes.push(n);
        name
    }

    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<resnetc_onnx::proto::AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        let n = with_attrs(node(&out, op, inputs, &[&out]), attrs);
        self.nodes.push(n);
        out
    }

    /// Conv (k×k, pad k/2), then BN (kept) or a bias (folded).
    fn conv_bn(&mut self, x: &str, cin: usize, cout: usize, k: usize, stride: usize) -> String {
        let scale = (2.0 / (cin * k * k) as f32).sqrt() * 1.7;
        let w = self.init("w", &[cout, cin, k, k], -scale, scale);
        let p = (k / 2) as i64;
        let attrs = vec![
            attr_ints("dilations", &[1, 1]),
            attr_int("group", 1),
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("pads", &[p, p, p, p]),
            attr_ints("strides", &[stride as i64, stride as i64]),
        ];
        if self.style.bn_kept {
            let c = self.op("Conv", &[x, &w], attrs);
            let g = self.init("bn_scale", &[cout], 0.5, 1.5);
            let b = self.init("bn_bias", &[cout], -0.1, 0.1);
            let m = self.init("bn_mean", &[cout], -0.2, 0.2);
            let v = self.init("bn_var", &[cout], 0.5, 2.0);
            self.op(
                "BatchNormalization",
                &[&c, &g, &b, &m, &v],
                vec![attr_float("epsilon", 1e-5), attr_float("momentum", 0.9)],
            )
        } else {
            let b = self.init("b", &[cout], -0.1, 0.1);
            self.op("Conv", &[x, &w, &b], attrs)
        }
    }

    fn block(&mut self, x: &str, cin: usize, cout: usize, stride: usize) -> String {
        let a = self.conv_bn(x, cin, cout, 3, stride);
        let a = self.op("Relu", &[&a], vec![]);
        let a = self.conv_bn(&a, cout, cout, 3, 1);
        let short = if stride == 1 && cin == cout {
            x.to_string()
        } else if self.style.option_a {
            // F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, C/4, C/4))
            let starts = self.ints("starts", &[0]);
            let ends = self.ints("ends", &[i64::MAX]);
            let ax2 = self.ints("axes", &[2]);
            let ax3 = self.ints("axes", &[3]);
            let steps = self.ints("steps", &[2]);
            let s = self.op("Slice", &[x, &starts, &ends, &ax2, &steps], vec![]);
            let s = self.op("Slice", &[&s, &starts, &ends, &ax3, &steps], vec![]);
            let q = (cout / 4) as i64;
            let pads = self.constant_ints(&[0, q, 0, 0, 0, q, 0, 0]);
            self.op("Pad", &[&s, &pads], vec![])
        } else {
            self.conv_bn(x, cin, cout, 1, stride)
        };
        let y = self.op("Add", &[&a, &short], vec![]);
        self.op("Relu", &[&y], vec![])
    }
}

/// A CifarResNet-8 (one block per stage) at 4/8/16 channels on [batch, 3, 8, 8], 10 classes.
pub fn mini_resnet(style: Style, batch: usize) -> Vec<u8> {
    let mut b = B {
        style,
        nodes: Vec::new(),
        inits: Vec::new(),
        rng: Rng(0x5eed ^ style.opset as u64),
        n: 0,
    };
    let x = b.conv_bn("input", 3, 4, 3, 1);
    let x = b.op("Relu", &[&x], vec![]);
    let x = b.block(&x, 4, 4, 1);
    let x = b.block(&x, 4, 8, 2);
    let x = b.block(&x, 8, 16, 2);
    let classes = 10;
    let logits = match style.head {
        Head::Adaptive => {
            let p = b.op("GlobalAveragePool", &[&x], vec![]);
            let f = b.op("Flatten", &[&p], vec![attr_int("axis", 1)]);
            let w = b.init("fc_w", &[classes, 16], -0.5, 0.5);
            let c = b.init("fc_b", &[classes], -0.1, 0.1);
            b.op("Gemm", &[&f, &w, &c], vec![attr_float("alpha", 1.0), attr_float("beta", 1.0), attr_int("transB", 1)])
        }
        Head::AvgPoolView => {
            let p = b.op(
                "AveragePool",
                &[&x],
                vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("pads", &[0, 0, 0, 0]), attr_ints("strides", &[2, 2])],
            );
            let shape = b.op("Shape", &[&p], vec![]);
            let zero = b.fresh("zero");
            b.inits.push(tensor_i64(&zero, &[], &[0]));
            let n = b.op("Gather", &[&shape, &zero], vec![attr_int("axis", 0)]);
            let n = if style.opset < 13 {
                b.op("Unsqueeze", &[&n], vec![attr_ints("axes", &[0])])
            } else {
                let axes = b.constant_ints(&[0]);
                b.op("Unsqueeze", &[&n, &axes], vec![])
            };
            let minus1 = b.constant_ints(&[-1]);
            let cat = b.op("Concat", &[&n, &minus1], vec![attr_int("axis", 0)]);
            let f = b.op("Reshape", &[&p, &cat], vec![]);
            let w = b.init("fc_w", &[classes, 16], -0.5, 0.5);
            let c = b.init("fc_b", &[classes], -0.1, 0.1);
            b.op("Gemm", &[&f, &w, &c], vec![attr_int("transB", 1)])
        }
        Head::Mean => {
            let m = if style.opset < 18 {
                b.op("ReduceMean", &[&x], vec![attr_ints("axes", &[2, 3]), attr_int("keepdims", 0)])
            } else {
                let axes = b.ints("axes", &[2, 3]);
                b.op("ReduceMean", &[&x, &axes], vec![attr_int("keepdims", 0)])
            };
            let w = b.init("fc_wt", &[16, classes], -0.5, 0.5);
            let c = b.init("fc_b", &[classes], -0.1, 0.1);
            b.op("Gemm", &[&m, &w, &c], vec![])
        }
    };
    // The graph output is called `logits`, as in the fixtures.
    let last = b.nodes.last_mut().unwrap();
    last.output = vec!["logits".into()];
    let _ = logits;
    let bdim = if style.dynamic { None } else { Some(batch) };
    let graph = GraphProto {
        name: Some("mini_resnet".into()),
        node: b.nodes,
        initializer: b.inits,
        input: vec![value_info("input", &[bdim, Some(3), Some(8), Some(8)])],
        output: vec![value_info("logits", &[bdim, Some(classes)])],
        ..Default::default()
    };
    model_proto(style.opset, graph).encode_to_vec()
}

/// x[1,3,4,4] → Conv(1×1) → Relu (tests/errors.rs's base model).
pub fn conv_relu() -> Vec<u8> {
    let graph = GraphProto {
        name: Some("tiny".into()),
        node: vec![node("conv", "Conv", &["x", "w"], &["c"]), node("relu", "Relu", &["c"], &["y"])],
        initializer: vec![tensor_f32("w", &[2, 3, 1, 1], &[0.5, -0.25, 1.0, -1.0, 0.75, 0.125])],
        input: vec![value_info("x", &[Some(1), Some(3), Some(4), Some(4)])],
        output: vec![value_info("y", &[Some(1), Some(2), Some(4), Some(4)])],
        ..Default::default()
    };
    model_proto(17, graph).encode_to_vec()
}

/// x[N,2,3,3] → Conv(3×3, pad 1) → GlobalAveragePool → Flatten → Gemm(3): the smallest full
/// classifier.
pub fn tiny_classifier() -> Vec<u8> {
    let mut rng = Rng(7);
    let graph = GraphProto {
        name: Some("tiny_classifier".into()),
        node: vec![
            with_attrs(
                node("conv", "Conv", &["x", "w", "b"], &["c"]),
                vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])],
            ),
            node("relu", "Relu", &["c"], &["r"]),
            node("gap", "GlobalAveragePool", &["r"], &["p"]),
            with_attrs(node("flat", "Flatten", &["p"], &["f"]), vec![attr_int("axis", 1)]),
            with_attrs(node("fc", "Gemm", &["f", "fw", "fb"], &["y"]), vec![attr_int("transB", 1)]),
        ],
        initializer: vec![
            tensor_f32("w", &[2, 2, 3, 3], &rng.vec(36, -1.0, 1.0)),
            tensor_f32("b", &[2], &rng.vec(2, -1.0, 1.0)),
            tensor_f32("fw", &[3, 2], &rng.vec(6, -1.0, 1.0)),
            tensor_f32("fb", &[3], &rng.vec(3, -1.0, 1.0)),
        ],
        input: vec![value_info("x", &[None, Some(2), Some(3), Some(3)])],
        output: vec![value_info("y", &[None, Some(3)])],
        ..Default::default()
    };
    model_proto(17, graph).encode_to_vec()
}


/// The models `onnx_mutate` starts from, in its order (an input's first byte picks one).
pub fn mutate_models() -> Vec<Vec<u8>> {
    let style = |opset, dynamic, option_a, bn_kept, head| Style {
        opset,
        dynamic,
        option_a,
        bn_kept,
        head,
    };
    vec![
        mini_resnet(style(17, false, true, true, Head::Adaptive), 1),
        mini_resnet(style(11, true, true, false, Head::AvgPoolView), 1),
        mini_resnet(style(13, false, false, true, Head::AvgPoolView), 2),
        mini_resnet(style(18, true, false, true, Head::Mean), 1),
        tiny_classifier(),
        conv_relu(),
    ]
}

/// An `onnx_mutate` input: which model, and the changes to make to it.
#[derive(arbitrary::Arbitrary, Debug)]
pub struct MutateInput {
    pub model: u8,
    pub mutations: Vec<crate::wire::Mutation>,
}

/// The ONNX bytes an `onnx_mutate` input stands for (`models`: [`mutate_models`], parsed).
pub fn mutated(models: &[Vec<crate::wire::Field>], input: &MutateInput) -> Vec<u8> {
    let mut fields = models[input.model as usize % models.len()].clone();
    for m in input.mutations.iter().take(8) {
        crate::wire::apply(&mut fields, m);
    }
    crate::wire::encode(&fields)
}
