//! Helpers shared by the fuzz targets and the seed generator (`examples/make_seeds.rs`): running a
//! loaded model on zeros, building ONNX protos by hand, and the structured model description that
//! `model_structured` fuzzes.

pub mod seeds;
pub mod wire;

use arbitrary::Arbitrary;
use prost::Message;
use resnetc::ndarray::{ArrayD, IxDyn};
use resnetc::{Device, Model};
use resnetc_onnx::proto::attribute_proto::AttributeType;
use resnetc_onnx::proto::tensor_shape_proto::{dimension, Dimension};
use resnetc_onnx::proto::type_proto;
use resnetc_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The most input elements a byte-level target runs a model on.
pub const MAX_RUN_ELEMENTS: usize = 65536;

/// Whether `RESNETC_FUZZ_VERBOSE` is set: the targets then print what they refused and why (to
/// see which refusals a corpus meets; `cargo fuzz run T corpus -- -runs=0`).
pub fn verbose() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var_os("RESNETC_FUZZ_VERBOSE").is_some())
}

/// Prints `what: e` when verbose (one line, cut).
pub fn note(what: &str, e: &dyn std::fmt::Display) {
    if verbose() {
        let mut s = e.to_string().replace('\n', " ");
        if s.len() > 300 {
            let mut cut = 300;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        eprintln!("[fuzz] {what}: {s}");
    }
}

/// The shape of zeros to feed the model's single input: every dimension fixed, a symbolic batch
/// taken as 1, at most `MAX_RUN_ELEMENTS` elements. `None` when the model does not qualify.
pub fn zero_input_shape(model: &Model) -> Option<Vec<usize>> {
    let inputs = model.inputs();
    let [port] = inputs.as_slice() else {
        return None;
    };
    if port.dtype != resnetc_ir::DType::F32 {
        return None;
    }
    let mut dims = Vec::with_capacity(port.shape.len());
    for (i, d) in port.shape.iter().enumerate() {
        match d.fixed() {
            Some(n) => dims.push(n),
            None if i == 0 => dims.push(1),
            None => return None,
        }
    }
    let mut total: usize = 1;
    for &d in &dims {
        total = total.checked_mul(d)?;
    }
    (total <= MAX_RUN_ELEMENTS).then_some(dims)
}

/// Runs zeros through `model` on each of `devices`; errors are fine (noted when verbose).
pub fn run_zeros(model: &Model, devices: &[Device]) {
    let Some(dims) = zero_input_shape(model) else {
        return;
    };
    let x = ArrayD::<f32>::zeros(IxDyn(&dims));
    for &device in devices {
        match model.session(device) {
            Ok(mut session) => {
                if let Err(e) = session.run_dyn(x.view()) {
                    note(&format!("{device} run"), &e);
                }
            }
            Err(e) => note(&format!("{device} session"), &e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ONNX protos by hand (as tests/errors.rs builds them).

pub fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: ints.to_vec(),
        ..Default::default()
    }
}

pub fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(f),
        ..Default::default()
    }
}

pub fn with_attrs(mut n: NodeProto, attrs: Vec<AttributeProto>) -> NodeProto {
    n.attribute = attrs;
    n
}

/// A float tensor stored as raw little-endian bytes.
pub fn tensor_f32(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    assert_eq!(dims.iter().product::<usize>(), values.len());
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(1),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An int64 tensor stored in `int64_data`.
pub fn tensor_i64(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(7),
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// A float tensor value; `None` dimensions are symbolic (`N`).
pub fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(n) => dimension::Value::DimValue(*n as i64),
                                None => dimension::Value::DimParam("N".into()),
                            }),
                            denotation: None,
                        })
                        .collect(),
                }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

pub fn model_proto(opset: i64, graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("resnetc-fuzz".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// splitmix64: weights and inputs from a seed, so the fuzzer's bytes go into structure.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The structured model description of `model_structured`.

/// A small model (Conv, Relu, Add, BatchNormalization, GlobalAveragePool, Flatten, Gemm, and the
/// option-A shortcut's Slice + Pad): an input `[batch, channels, height, width]` and a chain of ops, each reading
/// earlier values (an op's `src` counts back from the newest value). The last value is the output.
#[derive(Arbitrary, Debug, Clone)]
pub struct Desc {
    pub channels: u8,
    pub height: u8,
    pub width: u8,
    /// batch 1 mostly; 2 or 3 now and then (the CPU backend's batch loop).
    pub batch: u8,
    /// The batch dimension declared symbolic (`N`) instead of fixed.
    pub dynamic_batch: bool,
    /// The optimization level of the model under test (the oracle is the reference at level 0).
    pub opt_level: u8,
    /// Also compile a `.rnc`, load it back and run it on the CPU.
    pub compile: bool,
    /// A second CPU plan: its kernel set (among this machine's, the portable one included), its
    /// Winograd choice (off, F2, F4, auto) and its threads (1 or 2), run straight on resnetc-cpu.
    pub isa: u8,
    pub winograd: u8,
    pub threads: u8,
    pub seed: u64,
    /// The input's range: [-s, s] with s from a few choices.
    pub input_scale: u8,
    pub ops: Vec<OpDesc>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum OpDesc {
    Conv {
        src: u8,
        out_channels: u8,
        kernel: [u8; 2],
        stride: [u8; 2],
        /// top, left, bottom, right
        pads: [u8; 4],
        dilation: u8,
        bias: bool,
        /// Depthwise (group = channels) when the channel counts allow.
        depthwise: bool,
    },
    Relu {
        src: u8,
    },
    Add {
        a: u8,
        b: u8,
    },
    BatchNorm {
        src: u8,
        epsilon: u8,
    },
    GlobalAveragePool {
        src: u8,
    },
    Flatten {
        src: u8,
    },
    Gemm {
        src: u8,
        out: u8,
        trans_b: bool,
        bias: bool,
        alpha_beta: u8,
    },
    /// CifarResNet's option-A shortcut as PyTorch exports it: `x[:, :, ::2, ::2]` (Slice with
    /// steps 2) and a zero channel padding of `pad % 5` on each side (Pad), which resnetc folds
    /// into its Shortcut op and into a convolution's residual read.
    ShortcutA {
        src: u8,
        pad: u8,
    },
}

pub const MAX_OPS: usize = 12;

/// A model built from a [`Desc`]: the encoded ONNX, its input shape and an input to run.
pub struct Built {
    pub onnx: Vec<u8>,
    pub input_shape: Vec<usize>,
    pub input: Vec<f32>,
    pub opt_level: u8,
    pub compile: bool,
    pub isa: resnetc::cpu::Isa,
    pub winograd: resnetc::Winograd,
    pub threads: usize,
}

/// Builds the ONNX model a description means. Every op the description asks for is made valid
/// (a source of the wrong rank is replaced by the newest value of the right one, a Gemm on an
/// image gets a Flatten first); a convolution whose output would be empty is left out.
pub fn build(d: &Desc) -> Built {
    let c = 1 + (d.channels % 8) as usize;
    let h = 1 + (d.height % 12) as usize;
    let w = 1 + (d.width % 12) as usize;
    let batch = match d.batch % 8 {
        6 => 2,
        7 => 3,
        _ => 1,
    };
    let mut rng = Rng(d.seed);
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    // (name, shape without the batch)
    let mut values: Vec<(String, Vec<usize>)> = vec![("x".into(), vec![c, h, w])];
    let pick = |values: &Vec<(String, Vec<usize>)>, src: u8, rank: Option<usize>| -> usize {
        let n = values.len();
        let i = n - 1 - (src as usize % n);
        match rank {
            Some(r) if values[i].1.len() != r => {
                // The newest value of that rank at or before i, else the newest overall.
                (0..=i)
                    .rev()
                    .find(|&j| values[j].1.len() == r)
                    .or_else(|| (0..n).rev().find(|&j| values[j].1.len() == r))
                    .unwrap_or(0)
            }
            _ => i,
        }
    };
    for (k, op) in d.ops.iter().take(MAX_OPS).enumerate() {
        let out = format!("v{k}");
        let name = format!("n{k}");
        match *op {
            OpDesc::Conv {
                src,
                out_channels,
                kernel,
                stride,
                pads,
                dilation,
                bias,
                depthwise,
            } => {
                let i = pick(&values, src, Some(3));
                let (x, shape) = values[i].clone();
                let (cin, ih, iw) = (shape[0], shape[1], shape[2]);
                let mut cout = 1 + (out_channels % 8) as usize;
                let group = if depthwise {
                    cout = cin;
                    cin
                } else {
                    1
                };
                let kh = 1 + (kernel[0] % 3) as usize;
                let kw = 1 + (kernel[1] % 3) as usize;
                let sh = 1 + (stride[0] % 2) as usize;
                let sw = 1 + (stride[1] % 2) as usize;
                let p: Vec<usize> = pads.iter().map(|&p| (p % 3) as usize).collect();
                let dil = if dilation % 4 == 3 { 2 } else { 1 };
                let eh = dil * (kh - 1) + 1;
                let ew = dil * (kw - 1) + 1;
                if ih + p[0] + p[2] < eh || iw + p[1] + p[3] < ew {
                    continue;
                }
                let oh = (ih + p[0] + p[2] - eh) / sh + 1;
                let ow = (iw + p[1] + p[3] - ew) / sw + 1;
                let wname = format!("{name}.w");
                let wdims = [cout, cin / group, kh, kw];
                let n = wdims.iter().product();
                inits.push(tensor_f32(&wname, &wdims, &rng.vec(n, -1.0, 1.0)));
                let mut ins = vec![x.clone(), wname];
                if bias {
                    let bname = format!("{name}.b");
                    inits.push(tensor_f32(&bname, &[cout], &rng.vec(cout, -1.0, 1.0)));
                    ins.push(bname);
                }
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                let mut attrs = vec![
                    attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                    attr_ints("strides", &[sh as i64, sw as i64]),
                    attr_ints("pads", &[p[0] as i64, p[1] as i64, p[2] as i64, p[3] as i64]),
                    attr_ints("dilations", &[dil as i64, dil as i64]),
                ];
                if group != 1 {
                    attrs.push(attr_int("group", group as i64));
                }
                nodes.push(with_attrs(node(&name, "Conv", &ins, &[&out]), attrs));
                values.push((out, vec![cout, oh, ow]));
            }
            OpDesc::Relu { src } => {
                let i = pick(&values, src, None);
                let (x, shape) = values[i].clone();
                nodes.push(node(&name, "Relu", &[&x], &[&out]));
                values.push((out, shape));
            }
            OpDesc::Add { a, b } => {
                let i = pick(&values, a, None);
                let (x, shape) = values[i].clone();
                let same: Vec<usize> = (0..values.len())
                    .filter(|&j| values[j].1 == shape)
                    .collect();
                let j = same[same.len() - 1 - (b as usize % same.len())];
                let y = values[j].0.clone();
                nodes.push(node(&name, "Add", &[&x, &y], &[&out]));
                values.push((out, shape));
            }
            OpDesc::BatchNorm { src, epsilon } => {
                let i = pick(&values, src, Some(3));
                let (x, shape) = values[i].clone();
                let ch = shape[0];
                let names: Vec<String> = ["scale", "bias", "mean", "var"]
                    .iter()
                    .map(|s| format!("{name}.{s}"))
                    .collect();
                inits.push(tensor_f32(&names[0], &[ch], &rng.vec(ch, 0.5, 1.5)));
                inits.push(tensor_f32(&names[1], &[ch], &rng.vec(ch, -1.0, 1.0)));
                inits.push(tensor_f32(&names[2], &[ch], &rng.vec(ch, -1.0, 1.0)));
                inits.push(tensor_f32(&names[3], &[ch], &rng.vec(ch, 0.1, 2.0)));
                let eps = [1e-5f32, 1e-3, 0.1][(epsilon % 3) as usize];
                let ins: Vec<&str> = std::iter::once(x.as_str())
                    .chain(names.iter().map(String::as_str))
                    .collect();
                nodes.push(with_attrs(
                    node(&name, "BatchNormalization", &ins, &[&out]),
                    vec![attr_float("epsilon", eps)],
                ));
                values.push((out, shape));
            }
            OpDesc::GlobalAveragePool { src } => {
                let i = pick(&values, src, Some(3));
                let (x, shape) = values[i].clone();
                nodes.push(node(&name, "GlobalAveragePool", &[&x], &[&out]));
                values.push((out, vec![shape[0], 1, 1]));
            }
            OpDesc::Flatten { src } => {
                let i = pick(&values, src, None);
                let (x, shape) = values[i].clone();
                nodes.push(with_attrs(
                    node(&name, "Flatten", &[&x], &[&out]),
                    vec![attr_int("axis", 1)],
                ));
                values.push((out, vec![shape.iter().product()]));
            }
            OpDesc::Gemm {
                src,
                out: features,
                trans_b,
                bias,
                alpha_beta,
            } => {
                let i = pick(&values, src, None);
                let (mut x, shape) = values[i].clone();
                let fin: usize = shape.iter().product();
                if shape.len() != 1 {
                    let flat = format!("{name}.flat");
                    nodes.push(with_attrs(
                        node(&format!("{name}.flatten"), "Flatten", &[&x], &[&flat]),
                        vec![attr_int("axis", 1)],
                    ));
                    x = flat;
                }
                let fout = 1 + (features % 16) as usize;
                let bname = format!("{name}.B");
                let bdims = if trans_b { [fout, fin] } else { [fin, fout] };
                inits.push(tensor_f32(&bname, &bdims, &rng.vec(fin * fout, -1.0, 1.0)));
                let mut ins = vec![x, bname];
                if bias {
                    let cname = format!("{name}.C");
                    inits.push(tensor_f32(&cname, &[fout], &rng.vec(fout, -1.0, 1.0)));
                    ins.push(cname);
                }
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                let (alpha, beta) = [(1.0, 1.0), (0.5, 1.0), (1.0, 2.0), (2.0, 0.5)]
                    [(alpha_beta % 4) as usize];
                let mut attrs = vec![attr_int("transB", trans_b as i64)];
                if alpha != 1.0 {
                    attrs.push(attr_float("alpha", alpha));
                }
                if beta != 1.0 {
                    attrs.push(attr_float("beta", beta));
                }
                nodes.push(with_attrs(node(&name, "Gemm", &ins, &[&out]), attrs));
                values.push((out, vec![fout]));
            }
            OpDesc::ShortcutA { src, pad } => {
                let i = pick(&values, src, Some(3));
                let (x, shape) = values[i].clone();
                let q = (pad % 5) as usize;
                let names = ["starts", "ends", "axes", "steps", "pads"].map(|s| format!("{name}.{s}"));
                inits.push(tensor_i64(&names[0], &[2], &[0, 0]));
                inits.push(tensor_i64(&names[1], &[2], &[i64::MAX, i64::MAX]));
                inits.push(tensor_i64(&names[2], &[2], &[2, 3]));
                inits.push(tensor_i64(&names[3], &[2], &[2, 2]));
                inits.push(tensor_i64(&names[4], &[8], &[0, q as i64, 0, 0, 0, q as i64, 0, 0]));
                let sliced = format!("{name}.sliced");
                nodes.push(node(
                    &format!("{name}.slice"),
                    "Slice",
                    &[&x, &names[0], &names[1], &names[2], &names[3]],
                    &[&sliced],
                ));
                nodes.push(node(&name, "Pad", &[&sliced, &names[4]], &[&out]));
                values.push((out, vec![shape[0] + 2 * q, shape[1].div_ceil(2), shape[2].div_ceil(2)]));
            }
        }
    }
    let (y, yshape) = values.last().unwrap().clone();
    let bdim = if d.dynamic_batch { None } else { Some(batch) };
    let in_dims: Vec<Option<usize>> = std::iter::once(bdim)
        .chain([c, h, w].into_iter().map(Some))
        .collect();
    let out_dims: Vec<Option<usize>> = std::iter::once(bdim)
        .chain(yshape.iter().copied().map(Some))
        .collect();
    let graph = GraphProto {
        name: Some("structured".into()),
        node: nodes,
        initializer: inits,
        input: vec![value_info("x", &in_dims)],
        output: vec![value_info(&y, &out_dims)],
        ..Default::default()
    };
    let scale = [1.0f32, 0.25, 4.0, 1.0][(d.input_scale % 4) as usize];
    let input_shape = vec![batch, c, h, w];
    let input = rng.vec(batch * c * h * w, -scale, scale);
    Built {
        onnx: model_proto(17, graph).encode_to_vec(),
        input_shape,
        input,
        opt_level: d.opt_level % 4,
        compile: d.compile,
        isa: {
            let isas = resnetc::cpu::Isa::all_available();
            isas[d.isa as usize % isas.len()]
        },
        winograd: [
            resnetc::Winograd::Off,
            resnetc::Winograd::F2,
            resnetc::Winograd::F4,
            resnetc::Winograd::Auto,
        ][(d.winograd % 4) as usize],
        threads: 1 + (d.threads % 2) as usize,
    }
}
