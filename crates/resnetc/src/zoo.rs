//! He et al.'s CIFAR ResNets ("Deep Residual Learning for Image Recognition", 2015, §4.2), built
//! directly in the IR with seeded random weights: a model of any depth 6n+2 to test the optimizer,
//! the backends and the exporter on, without PyTorch, a download or a fixture file.
//!
//! The graph is what PyTorch's exporter gives for the usual `CifarResNet` (the canonical, level-0
//! form): an option-A shortcut is a strided `Slice` and a channel `Pad`, as `torch.onnx` writes
//! `F.pad(x[:, :, ::2, ::2], …)`, so the optimizer's `fold-shortcut` pass meets it as it meets an
//! imported model, and every BatchNorm is a node of its own with statistics far from the identity,
//! so that `fold-batchnorm` changes real numbers.
//!
//! The weights are not trained: the logits mean nothing, but they are finite and of moderate size
//! at every depth (see [`RESIDUAL_GAMMA`]), which is what a numerical comparison needs.
//!
//! ```
//! # fn main() -> resnetc::Result<()> {
//! use resnetc::zoo::{Shortcut, ZooSpec};
//!
//! let spec = ZooSpec { depth: 56, shortcut: Shortcut::B, ..ZooSpec::default() };
//! let model = resnetc::zoo::zoo_model(&spec, &resnetc::LoadOptions::level(0))?;
//! assert_eq!(model.stats().ops["Conv"], 57); // 55 in the blocks and the stem, 2 projections
//! assert_eq!(model.outputs()[0].shape_text(), "[batch,10]");
//! # Ok(()) }
//! ```

use std::ops::Range;

use ndarray::{ArrayD, IxDyn};
use rand::RngExt as _;
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
use resnetc_ir::{
    limits, validate, BinOp, Conv, DType, Dim, Gemm, Graph, Op, PadMode, Padding, Tensor,
    TensorType, ValueRef,
};

use crate::{LoadOptions, Model, Result};

/// The depths He et al. report on CIFAR-10 below 1202 (n = 3, 5, 7, 9, 18).
pub const DEPTHS: [usize; 5] = [20, 32, 44, 56, 110];

/// The deepest network accepted: He et al.'s ResNet-1202 (n = 200, about 10,000 nodes). Deeper
/// ones would still fit the node limit for a while but nobody trains them.
pub const MAX_DEPTH: usize = 1202;

/// The most classes accepted: far above CIFAR-100 (and ImageNet-21k's 21,841), far below what
/// would make the classifier's weights a problem (64 × 100,000 floats is 25.6 MB).
pub const MAX_CLASSES: usize = 100_000;

/// The opset the graph's ops are written in: `Slice` and `Pad` take their operands as inputs
/// from opset 11 on; 17 is what the exporter writes for graphs built by hand.
pub const OPSET: u64 = 17;

/// The symbol of the batch dimension when [`ZooSpec::batch`] is `None`.
pub const BATCH_SYMBOL: &str = "batch";

/// The range each residual branch's last BatchNorm draws its scale (gamma) from, where every other
/// BatchNorm draws from 0.5..1.5. Each block adds its branch to the running sum, so with gammas
/// around 1 there too the activations grow about 1.7× per block (max |logit| about 10 at depth 20,
/// 300 at 32, 2,000 at 44); small last gammas (the idea of "zero-init residual", Goyal et al.
/// 2017, without making them zero) keep every depth's logits of order one (0.4 to 2.5 from depth
/// 20 to 110) while the branch still contributes.
pub const RESIDUAL_GAMMA: Range<f32> = 0.1..0.3;

/// How a block that changes the shape (entering stages 2 and 3: stride 2, channels doubled)
/// adds its input to its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Shortcut {
    /// `x[:, :, ::2, ::2]` zero-padded with C/4 channels on each side: no parameters. He et al.'s
    /// choice for CIFAR.
    #[default]
    A,
    /// A 1×1 convolution of stride 2 (no bias) and a BatchNorm: a projection.
    B,
}

impl Shortcut {
    pub fn name(self) -> &'static str {
        match self {
            Shortcut::A => "A",
            Shortcut::B => "B",
        }
    }
}

impl std::fmt::Display for Shortcut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Shortcut {
    type Err = ZooError;

    /// `A` or `B`, either case.
    fn from_str(s: &str) -> Result<Shortcut, ZooError> {
        match s {
            "A" | "a" => Ok(Shortcut::A),
            "B" | "b" => Ok(Shortcut::B),
            _ => Err(ZooError::Shortcut {
                given: crate::escape::name(s),
            }),
        }
    }
}

/// Which network to build. `ZooSpec::default()` is ResNet-20 with option-A shortcuts for CIFAR-10,
/// seed 0, a symbolic batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZooSpec {
    /// 6n+2 with 1 ≤ n ≤ 200: n BasicBlocks per stage, two convolutions each, plus the stem
    /// convolution and the classifier. He et al.'s are [`DEPTHS`].
    pub depth: usize,
    /// Outputs of the classifier, 1 to [`MAX_CLASSES`] (10 for CIFAR-10, 100 for CIFAR-100).
    pub classes: usize,
    pub shortcut: Shortcut,
    /// Seeds the one ChaCha8 stream every weight is drawn from, in construction order.
    pub seed: u64,
    /// A fixed batch (1 to resnetc's limit 'batch'), or `None` for the symbol [`BATCH_SYMBOL`].
    pub batch: Option<usize>,
}

impl Default for ZooSpec {
    fn default() -> ZooSpec {
        ZooSpec {
            depth: 20,
            classes: 10,
            shortcut: Shortcut::A,
            seed: 0,
            batch: None,
        }
    }
}

impl ZooSpec {
    /// Checks the spec; returns n, the blocks per stage.
    pub fn check(&self) -> Result<usize, ZooError> {
        let depth = self.depth;
        if !(8..=MAX_DEPTH).contains(&depth) || !(depth - 2).is_multiple_of(6) {
            return Err(ZooError::Depth { depth });
        }
        if !(1..=MAX_CLASSES).contains(&self.classes) {
            return Err(ZooError::Classes {
                classes: self.classes,
            });
        }
        if let Some(batch) = self.batch {
            if batch == 0 || batch > limits::BATCH.get() {
                return Err(ZooError::Batch { batch });
            }
        }
        Ok((depth - 2) / 6)
    }

    /// The convolutions of the network: depth − 1 (the classifier is the last weighted layer),
    /// plus the two projections of option B.
    pub fn convs(&self) -> usize {
        let projections = match self.shortcut {
            Shortcut::A => 0,
            Shortcut::B => 2,
        };
        self.depth.saturating_sub(1) + projections
    }

    /// A file-name-safe name: `resnet20_a_c10_s0`.
    pub fn name(&self) -> String {
        format!(
            "resnet{}_{}_c{}_s{}",
            self.depth,
            self.shortcut.name().to_ascii_lowercase(),
            self.classes,
            self.seed
        )
    }
}

/// A spec [`zoo`] refuses. Converts to a [`crate::Error`] of kind
/// [`InvalidInput`](crate::ErrorKind::InvalidInput).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZooError {
    #[error("depth {depth} is not a CIFAR ResNet's: the depth is 6n+2 with n from 1 to 200 (8, 14, 20, …, {MAX_DEPTH}); He et al.'s are 20, 32, 44, 56, 110 and 1202")]
    Depth { depth: usize },
    #[error("{classes} classes: a zoo model has 1 to {MAX_CLASSES} (10 for CIFAR-10, 100 for CIFAR-100)")]
    Classes { classes: usize },
    #[error("batch {batch}: a fixed batch is 1 to {} (resnetc's limit '{}': {}); leave it unset for a symbolic batch", limits::BATCH.value, limits::BATCH.name, limits::BATCH.why)]
    Batch { batch: usize },
    #[error(
        "shortcut '{given}': the options are A (subsample and zero-pad) and B (1×1 projection)"
    )]
    Shortcut { given: String },
}

/// He et al.'s CIFAR ResNet for `spec`, validated: input `input` f32 `[batch,3,32,32]`, output
/// `logits` f32 `[batch,classes]`.
///
/// The stem is a 3×3 convolution to 16 channels, BatchNorm and ReLU; then three stages of n
/// BasicBlocks (conv3×3–BN–ReLU–conv3×3–BN, plus the shortcut, Add, ReLU) at 16, 32 and 64 channels,
/// the first block of stages 2 and 3 with stride 2; then GlobalAveragePool, Flatten and a Gemm with
/// bias (`transB = 1`, as PyTorch's `Linear`). Node and weight names follow PyTorch's
/// (`layer2.0.conv1`, `layer2.0.bn1.running_var`, `fc.weight`).
///
/// Weights, drawn in construction order from ChaCha8 seeded by `spec.seed` (normal variates are
/// drawn in f64 and rounded, so a last-bit difference in a platform's `ln` or `exp` practically
/// never shows):
/// - convolutions: Kaiming normal in fan-out mode for ReLU, as torchvision initializes its ResNets:
///   N(0, 2 / (out channels × kh × kw));
/// - BatchNorm: gamma U(0.5, 1.5) ([`RESIDUAL_GAMMA`] for each block's second), beta N(0, 0.1²),
///   running mean N(0, 0.1²), running variance U(0.5, 1.5), epsilon 1e-5;
/// - the classifier: PyTorch's `Linear` default, weight and bias U(−1/8, 1/8) (1/√64).
pub fn zoo(spec: &ZooSpec) -> Result<Graph> {
    let n = spec.check()?;
    let mut b = Builder {
        graph: Graph::new(),
        rng: ChaCha8Rng::seed_from_u64(spec.seed),
    };
    b.graph.name = spec.name();
    b.graph.opset = OPSET;
    let batch = match spec.batch {
        Some(n) => Dim::Fixed(n),
        None => Dim::Sym(BATCH_SYMBOL.into()),
    };
    let input = b.graph.add_input(
        "input",
        TensorType::new(
            DType::F32,
            vec![batch, Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)],
        ),
    );
    let stem = b.conv("conv1", input.into(), 3, 16, 3, 1);
    let stem = b.bn("bn1", stem, 16, 0.5..1.5);
    let mut x = b.node("relu", Op::Relu, &[stem]);
    let mut cin = 16;
    for (stage, cout) in [16, 32, 64].into_iter().enumerate() {
        for block in 0..n {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            x = b.basic_block(
                &format!("layer{}.{block}", stage + 1),
                x,
                cin,
                cout,
                stride,
                spec.shortcut,
            );
            cin = cout;
        }
    }
    let pooled = b.node("avgpool", Op::GlobalAveragePool, &[x]);
    let flat = b.node("flatten", Op::Flatten { axis: 1 }, &[pooled]);
    let bound = 1.0 / (cin as f32).sqrt();
    let fc_w = b.weight("fc.weight", &[spec.classes, cin], |r| {
        r.random_range(-bound..bound)
    });
    let fc_b = b.weight("fc.bias", &[spec.classes], |r| {
        r.random_range(-bound..bound)
    });
    let gemm = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    });
    let logits = b.named("fc", "logits", gemm, &[flat, fc_w, fc_b]);
    b.graph.add_output("logits", logits);
    validate(&b.graph)?;
    Ok(b.graph)
}

/// [`zoo`]'s graph as a [`Model`], prepared as `opts` says (level 0 keeps it as built).
pub fn zoo_model(spec: &ZooSpec, opts: &LoadOptions) -> Result<Model> {
    Model::from_graph(zoo(spec)?, opts)
}

struct Builder {
    graph: Graph,
    rng: ChaCha8Rng,
}

impl Builder {
    /// A node whose value is named as the node.
    fn node(&mut self, name: &str, op: Op, inputs: &[ValueRef]) -> ValueRef {
        self.named(name, name, op, inputs)
    }

    fn named(&mut self, name: &str, value: &str, op: Op, inputs: &[ValueRef]) -> ValueRef {
        let inputs: Vec<Option<ValueRef>> = inputs.iter().copied().map(Some).collect();
        self.graph
            .add_node(name, op, vec![value.to_string()], &inputs)
            .into()
    }

    fn constant(&mut self, name: &str, t: Tensor) -> ValueRef {
        self.graph.add_const(name, t).into()
    }

    /// An f32 constant of `shape`, each element from `draw`, in row-major order.
    fn weight(
        &mut self,
        name: &str,
        shape: &[usize],
        mut draw: impl FnMut(&mut ChaCha8Rng) -> f32,
    ) -> ValueRef {
        let len = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|_| draw(&mut self.rng)).collect();
        let a = ArrayD::from_shape_vec(IxDyn(shape), data).expect("the length is the shape's");
        self.constant(name, Tensor::f32(a))
    }

    /// A `k`×`k` convolution without bias, padded to keep the size ("same" at stride 1).
    fn conv(
        &mut self,
        name: &str,
        x: ValueRef,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> ValueRef {
        let std = (2.0 / (cout * k * k) as f64).sqrt();
        let w = self.weight(&format!("{name}.weight"), &[cout, cin, k, k], normal(std));
        let p = (k - 1) / 2;
        let op = Op::Conv(Conv {
            kernel: [k, k],
            strides: [stride, stride],
            dilations: [1, 1],
            padding: Padding::Explicit([p; 4]),
            group: 1,
        });
        self.node(name, op, &[x, w])
    }

    fn bn(&mut self, name: &str, x: ValueRef, c: usize, gamma: Range<f32>) -> ValueRef {
        let scale = self.weight(&format!("{name}.weight"), &[c], |r| {
            r.random_range(gamma.clone())
        });
        let bias = self.weight(&format!("{name}.bias"), &[c], normal(0.1));
        let mean = self.weight(&format!("{name}.running_mean"), &[c], normal(0.1));
        let var = self.weight(&format!("{name}.running_var"), &[c], |r| {
            r.random_range(0.5..1.5)
        });
        let op = Op::BatchNorm { epsilon: 1e-5 };
        self.node(name, op, &[x, scale, bias, mean, var])
    }

    fn basic_block(
        &mut self,
        name: &str,
        x: ValueRef,
        cin: usize,
        cout: usize,
        stride: usize,
        shortcut: Shortcut,
    ) -> ValueRef {
        let h = self.conv(&format!("{name}.conv1"), x, cin, cout, 3, stride);
        let h = self.bn(&format!("{name}.bn1"), h, cout, 0.5..1.5);
        let h = self.node(&format!("{name}.relu1"), Op::Relu, &[h]);
        let h = self.conv(&format!("{name}.conv2"), h, cout, cout, 3, 1);
        let h = self.bn(&format!("{name}.bn2"), h, cout, RESIDUAL_GAMMA);
        let identity = if stride == 1 && cin == cout {
            x
        } else {
            let name = format!("{name}.shortcut");
            match shortcut {
                Shortcut::A => self.subsample_pad(&name, x, stride, (cout - cin) / 2),
                Shortcut::B => {
                    let s = self.conv(&format!("{name}.0"), x, cin, cout, 1, stride);
                    self.bn(&format!("{name}.1"), s, cout, 0.5..1.5)
                }
            }
        };
        let sum = self.node(
            &format!("{name}.add"),
            Op::Binary(BinOp::Add),
            &[h, identity],
        );
        self.node(&format!("{name}.relu2"), Op::Relu, &[sum])
    }

    /// Option A: `x[:, :, ::stride, ::stride]` with `pad` zero channels before and after, as
    /// `torch.onnx` exports it (one Slice over both spatial axes, a constant Pad).
    fn subsample_pad(&mut self, name: &str, x: ValueRef, stride: usize, pad: usize) -> ValueRef {
        let s = stride as i64;
        let p = pad as i64;
        let starts = self.constant(&format!("{name}.starts"), Tensor::i64_vec(vec![0, 0]));
        let ends = self.constant(
            &format!("{name}.ends"),
            Tensor::i64_vec(vec![i64::MAX, i64::MAX]),
        );
        let axes = self.constant(&format!("{name}.axes"), Tensor::i64_vec(vec![2, 3]));
        let steps = self.constant(&format!("{name}.steps"), Tensor::i64_vec(vec![s, s]));
        let sliced = self.node(
            &format!("{name}.slice"),
            Op::Slice,
            &[x, starts, ends, axes, steps],
        );
        let pads = self.constant(
            &format!("{name}.pads"),
            Tensor::i64_vec(vec![0, p, 0, 0, 0, p, 0, 0]),
        );
        let op = Op::Pad {
            mode: PadMode::Constant,
        };
        self.node(&format!("{name}.pad"), op, &[sliced, pads])
    }
}

/// Draws from N(0, std²) in f64, rounded to f32.
fn normal(std: f64) -> impl FnMut(&mut ChaCha8Rng) -> f32 {
    let d = Normal::new(0.0, std).expect("a finite, positive standard deviation");
    move |r| d.sample(r) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn ops(graph: &Graph, name: &str) -> usize {
        graph
            .node_ids()
            .filter(|&id| graph.op(id).onnx_name() == name)
            .count()
    }

    /// Every weight's bytes, in the canonical order.
    fn weights(graph: &Graph) -> Vec<u8> {
        let mut out = Vec::new();
        for id in graph.topo_order().unwrap() {
            if let Op::Constant(t @ Tensor::F32(_)) = graph.op(id) {
                out.extend(t.to_le_bytes());
            }
        }
        out
    }

    #[test]
    fn each_depth_has_its_layers() {
        use Shortcut::{A, B};
        // depth, shortcut: Conv, BatchNormalization, Slice, Pad, Add, Relu
        let table = [
            (20, A, [19, 19, 2, 2, 9, 19]),
            (20, B, [21, 21, 0, 0, 9, 19]),
            (32, A, [31, 31, 2, 2, 15, 31]),
            (32, B, [33, 33, 0, 0, 15, 31]),
            (44, A, [43, 43, 2, 2, 21, 43]),
            (44, B, [45, 45, 0, 0, 21, 43]),
            (56, A, [55, 55, 2, 2, 27, 55]),
            (56, B, [57, 57, 0, 0, 27, 55]),
            (110, A, [109, 109, 2, 2, 54, 109]),
            (110, B, [111, 111, 0, 0, 54, 109]),
            (8, B, [9, 9, 0, 0, 3, 7]),
        ];
        let names = ["Conv", "BatchNormalization", "Slice", "Pad", "Add", "Relu"];
        for (depth, shortcut, want) in table {
            let spec = ZooSpec {
                depth,
                shortcut,
                ..ZooSpec::default()
            };
            let g = zoo(&spec).unwrap();
            let got = names.map(|op| ops(&g, op));
            assert_eq!(got, want, "ResNet-{depth}{shortcut}: counts of {names:?}");
            assert_eq!(spec.convs(), want[0], "ResNet-{depth}{shortcut}: convs()");
            assert_eq!(
                [
                    ops(&g, "GlobalAveragePool"),
                    ops(&g, "Flatten"),
                    ops(&g, "Gemm")
                ],
                [1, 1, 1]
            );
        }
    }

    #[test]
    fn the_output_is_batch_by_classes() {
        // batch, classes → the output's shape as the validator infers it
        let table = [
            (None, 10, "f32[batch,10]"),
            (Some(2), 100, "f32[2,100]"),
            (Some(1), 1, "f32[1,1]"),
        ];
        for (batch, classes, want) in table {
            let spec = ZooSpec {
                batch,
                classes,
                ..ZooSpec::default()
            };
            let g = zoo(&spec).unwrap();
            let info = validate(&g).unwrap();
            let input = info.ty(g.inputs[0].into()).unwrap().to_string();
            let output = info.ty(g.outputs[0].value).unwrap().to_string();
            let batch = batch.map_or(BATCH_SYMBOL.to_string(), |b| b.to_string());
            assert_eq!(input, format!("f32[{batch},3,32,32]"));
            assert_eq!(
                (g.outputs[0].name.as_str(), output.as_str()),
                ("logits", want)
            );
        }
    }

    #[test]
    fn the_seed_alone_decides_the_weights() {
        let spec = |seed, shortcut| ZooSpec {
            seed,
            shortcut,
            ..ZooSpec::default()
        };
        let w = |s: ZooSpec| weights(&zoo(&s).unwrap());
        let base = w(spec(7, Shortcut::B));
        assert_eq!(base, w(spec(7, Shortcut::B)), "same seed, same weights");
        assert_ne!(base, w(spec(8, Shortcut::B)), "another seed, other weights");
        // The batch is not drawn from the stream: a fixed batch keeps the weights.
        let fixed = ZooSpec {
            batch: Some(3),
            ..spec(7, Shortcut::B)
        };
        assert_eq!(base, w(fixed));
        // ResNet-20 (A) at seed 0 is pinned: a new rand, rand_chacha or rand_distr that changed
        // the stream would change every zoo model, which must be a decision, not an accident.
        let digest = |bytes: &[u8]| {
            let mut h = resnetc_ir::tensor::Fnv64::new();
            h.write(bytes);
            h.finish()
        };
        let got = digest(&w(ZooSpec::default()));
        assert_eq!(
            got, 0x4402_799f_6aac_2bdd,
            "ResNet-20 A seed 0 weights digest {got:#018x}"
        );
    }

    #[test]
    fn batchnorm_statistics_are_not_the_identity() {
        let g = zoo(&ZooSpec::default()).unwrap();
        for id in g.node_ids() {
            if !matches!(g.op(id), Op::BatchNorm { .. }) {
                continue;
            }
            let label = g.node(id).label().to_string();
            for (slot, identity) in [(1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0)] {
                let v = g.input(id, slot).unwrap();
                let Op::Constant(t) = g.op(v.node) else {
                    panic!("{label}: slot {slot} is not a constant");
                };
                // The smallest spread drawn is beta's and the mean's, N(0, 0.1²): E|x| = 0.08.
                let a = t.as_f32().unwrap();
                let spread = a.iter().map(|&x| (x - identity).abs()).sum::<f32>() / a.len() as f32;
                assert!(
                    spread > 0.02,
                    "{label}: slot {slot} is {spread} from {identity} on average"
                );
            }
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        let depth = |depth| ZooSpec {
            depth,
            ..ZooSpec::default()
        };
        let classes = |classes| ZooSpec {
            classes,
            ..ZooSpec::default()
        };
        let batch = |batch| ZooSpec {
            batch: Some(batch),
            ..ZooSpec::default()
        };
        let over = limits::BATCH.get() + 1;
        // spec, the error, a fragment of its message
        let table = [
            (depth(0), ZooError::Depth { depth: 0 }, "6n+2"),
            (depth(2), ZooError::Depth { depth: 2 }, "6n+2"),
            (
                depth(18),
                ZooError::Depth { depth: 18 },
                "20, 32, 44, 56, 110",
            ),
            (depth(1208), ZooError::Depth { depth: 1208 }, "…, 1202)"),
            (
                depth(usize::MAX),
                ZooError::Depth { depth: usize::MAX },
                "6n+2",
            ),
            (classes(0), ZooError::Classes { classes: 0 }, "1 to 100000"),
            (
                classes(100_001),
                ZooError::Classes { classes: 100_001 },
                "1 to 100000",
            ),
            (batch(0), ZooError::Batch { batch: 0 }, "limit 'batch'"),
            (batch(over), ZooError::Batch { batch: over }, "1 to 65536"),
        ];
        for (spec, want, fragment) in table {
            let e = zoo(&spec).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{spec:?}");
            assert_eq!(e.downcast_ref::<ZooError>(), Some(&want), "{spec:?}");
            assert!(e.to_string().contains(fragment), "{spec:?}: {e}");
        }
        // The edges of the accepted ranges build.
        for spec in [depth(8), classes(1), batch(limits::BATCH.get())] {
            zoo(&spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        }
        assert_eq!("b".parse::<Shortcut>(), Ok(Shortcut::B));
        assert_eq!(
            "C\u{1b}".parse::<Shortcut>(),
            Err(ZooError::Shortcut {
                given: "C\\u{1b}".into()
            })
        );
    }
}
