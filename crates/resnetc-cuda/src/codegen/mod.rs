//! Lowering a fused graph to a [`CudaProgram`].
//!
//! Walks the validator's canonical order. Each `FusedConv` becomes a step running a convolution
//! kernel; `GlobalAveragePool → Flatten → Gemm` (or `Flatten → Gemm`) becomes one head kernel.
//! Kernels are specialised per layer shape, epilogue and tile, and deduplicated by their text, so a
//! ResNet-56 needs about ten. Values get activation buffers by liveness: a buffer is reused once the
//! last reader of its value has run, and never by a step that reads it.

mod emit;
mod tile;

use std::collections::{HashMap, HashSet};

use resnetc_ir::{
    DType, Dim, Epilogue, Graph, GraphInfo, NodeId, Op, ResidualRead, Tensor, ValueRef,
};

use crate::plan::{Arg, BufferDesc, CudaProgram, IoDesc, Step, Variant};
use crate::CudaError;
use emit::{c_float, tap_table, ConvKernel, EpiStep, HeadKernel};
use tile::{Tile, K_ALIGN, N_ALIGN};

/// Code generation settings.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Specialise the kernels for this batch; `None` keeps the graph's own batch when it is fixed and
    /// otherwise makes the batch a kernel argument.
    pub batch: Option<usize>,
    /// Streaming multiprocessors to plan for: a layer uses the largest tile that still gives this
    /// many blocks (132 is an H100 SXM; the choice only affects speed).
    pub sm_count: u32,
}

impl Default for GenOptions {
    fn default() -> GenOptions {
        GenOptions {
            batch: None,
            sm_count: 132,
        }
    }
}

/// Lowers `graph` (validated: `info` is `validate(graph)`'s result) to CUDA, with default options
/// apart from the batch.
pub fn generate(
    graph: &Graph,
    info: &GraphInfo,
    batch: Option<usize>,
) -> Result<CudaProgram, CudaError> {
    generate_with(
        graph,
        info,
        &GenOptions {
            batch,
            ..GenOptions::default()
        },
    )
}

/// Lowers `graph` to CUDA.
pub fn generate_with(
    graph: &Graph,
    info: &GraphInfo,
    opts: &GenOptions,
) -> Result<CudaProgram, CudaError> {
    Lower::new(graph, info, opts)?.run()
}

/// What a step reads and writes, before buffers are assigned.
struct PendingStep {
    what: String,
    variants: Vec<Variant>,
    /// Operands in kernel order; `Value` entries become buffers.
    args: Vec<PendingArg>,
    output: ValueRef,
}

enum PendingArg {
    Value(ValueRef),
    Weights { offset: usize, len: usize },
    Null,
    Batch,
}

struct Lower<'a> {
    graph: &'a Graph,
    info: &'a GraphInfo,
    opts: &'a GenOptions,
    batch: Option<usize>,
    weights: Vec<f32>,
    /// Kernel text (without its name) → name, and the texts in order.
    kernel_names: HashMap<String, String>,
    kernels: Vec<(String, String)>,
    /// Tap tables by (cin, h, w, kh, kw): name and text.
    tap_tables: HashMap<[usize; 5], (String, String)>,
    /// Bytes of `__constant__` memory the tables take.
    constant_bytes: usize,
    steps: Vec<PendingStep>,
    /// Flatten nodes read only by a head, and pools read only by those: no step of their own.
    absorbed: HashSet<NodeId>,
}

fn site(graph: &Graph, id: NodeId) -> (String, &'static str) {
    let n = graph.node(id);
    (n.label().to_string(), n.op.onnx_name())
}

impl<'a> Lower<'a> {
    fn new(
        graph: &'a Graph,
        info: &'a GraphInfo,
        opts: &'a GenOptions,
    ) -> Result<Lower<'a>, CudaError> {
        if graph.inputs.len() != 1 || graph.outputs.len() != 1 {
            return Err(CudaError::Interface(format!(
                "the CUDA backend runs graphs with one input and one output; this one has {} and {}",
                graph.inputs.len(),
                graph.outputs.len()
            )));
        }
        let input = graph.inputs[0];
        let ty = info
            .ty(input.into())
            .ok_or_else(|| CudaError::UnknownType {
                node: site(graph, input).0,
                what: "output".into(),
            })?;
        if ty.dtype != DType::F32 || ty.rank() != 4 || ty.concrete_tail().is_none() {
            return Err(CudaError::Interface(format!(
                "the input must be float32 NCHW with fixed C, H and W, got {ty}"
            )));
        }
        let batch = match (opts.batch, &ty.shape[0]) {
            (Some(0), _) => return Err(CudaError::Batch("the batch must be at least 1".into())),
            (Some(b), Dim::Fixed(n)) if b != *n => {
                return Err(CudaError::Batch(format!(
                    "the model's batch is fixed at {n}; it cannot be compiled for batch {b}"
                )))
            }
            (Some(b), _) => Some(b),
            (None, Dim::Fixed(n)) => Some(*n),
            (None, Dim::Sym(_)) => None,
        };
        Ok(Lower {
            graph,
            info,
            opts,
            batch,
            weights: Vec::new(),
            kernel_names: HashMap::new(),
            kernels: Vec::new(),
            tap_tables: HashMap::new(),
            constant_bytes: 0,
            steps: Vec::new(),
            absorbed: HashSet::new(),
        })
    }

    fn unsupported(&self, id: NodeId, reason: impl Into<String>) -> CudaError {
        let (node, op) = site(self.graph, id);
        CudaError::Unsupported {
            node,
            op,
            reason: reason.into(),
        }
    }

    /// The per-image shape of a value (all but the batch dimension), which must be float32.
    fn shape(&self, id: NodeId, v: ValueRef, what: &str) -> Result<Vec<usize>, CudaError> {
        let ty = self.info.ty(v).ok_or_else(|| CudaError::UnknownType {
            node: site(self.graph, id).0,
            what: what.into(),
        })?;
        if ty.dtype != DType::F32 {
            return Err(self.unsupported(
                id,
                format!("its {what} is {}, only float32 is supported", ty.dtype),
            ));
        }
        if ty.rank() == 0 {
            return Err(self.unsupported(
                id,
                format!("its {what} is a scalar, expected a batch of tensors"),
            ));
        }
        ty.concrete_tail().ok_or_else(|| {
            self.unsupported(
                id,
                format!("its {what} has a symbolic dimension besides the batch"),
            )
        })
    }

    fn constant(
        &self,
        id: NodeId,
        slot: usize,
        what: &str,
    ) -> Result<Option<&'a Tensor>, CudaError> {
        let Some(v) = self.graph.input(id, slot) else {
            return Ok(None);
        };
        match self.graph.op(v.node) {
            Op::Constant(t) if t.dtype() == DType::F32 => Ok(Some(t)),
            _ => Err(self.unsupported(
                id,
                format!("its {what} (input {slot}) must be a float32 constant"),
            )),
        }
    }

    /// Appends `data` to the weight blob at a 16-byte boundary; returns the offset.
    fn push_weights(&mut self, data: &[f32]) -> usize {
        let offset = self.weights.len();
        self.weights.extend_from_slice(data);
        self.weights
            .resize(self.weights.len().next_multiple_of(4), 0.0);
        offset
    }

    fn kernel(&mut self, kind: &str, text_for: impl Fn(&str) -> String) -> String {
        // Kernels are compared by their text under a placeholder name.
        let key = text_for("KERNEL");
        if let Some(name) = self.kernel_names.get(&key) {
            return name.clone();
        }
        let name = format!("k{}_{kind}", self.kernels.len());
        self.kernels.push((name.clone(), text_for(&name)));
        self.kernel_names.insert(key, name.clone());
        name
    }

    /// The name of the tap table for a window over an input, emitting it on first use.
    fn taps(
        &mut self,
        id: NodeId,
        cin: usize,
        h: usize,
        w: usize,
        kernel: [usize; 2],
        kp: usize,
    ) -> Result<String, CudaError> {
        let key = [cin, h, w, kernel[0], kernel[1]];
        if let Some((name, _)) = self.tap_tables.get(&key) {
            return Ok(name.clone());
        }
        // CUDA gives a module 64 KiB of constant memory; leave room for kernel parameters.
        self.constant_bytes += 4 * kp;
        if self.constant_bytes > 48 * 1024 {
            return Err(self.unsupported(
                id,
                "the model's convolutions need more than 48 KiB of tap tables in constant memory",
            ));
        }
        let name = format!("t{}_taps", self.tap_tables.len());
        let text = tap_table(&name, cin, h, w, kernel, kp);
        self.tap_tables.insert(key, (name.clone(), text));
        Ok(name)
    }

    fn target_blocks(&self) -> u64 {
        u64::from(self.opts.sm_count.max(1))
    }

    fn run(mut self) -> Result<CudaProgram, CudaError> {
        let graph = self.graph;
        let dead: HashSet<NodeId> = graph.dead_nodes().into_iter().collect();
        self.find_heads(&dead)?;
        for &id in &self.info.order {
            if dead.contains(&id) || self.absorbed.contains(&id) {
                continue;
            }
            match graph.op(id) {
                Op::Input { .. } | Op::Constant(_) => {}
                Op::FusedConv { conv, epilogue } => self.lower_conv(id, conv, epilogue)?,
                Op::Gemm(_) => self.lower_head(id)?,
                Op::GlobalAveragePool | Op::Flatten { .. } => return Err(self.unsupported(
                    id,
                    "supported only as part of a classifier head: GlobalAveragePool → Flatten(axis=1) → Gemm, each read only by the next",
                )),
                op => return Err(self.unsupported(id, format!("{} has no CUDA lowering", op.onnx_name()))),
            }
        }
        self.finish()
    }

    /// Marks the Flatten (and pool) nodes in front of each Gemm as part of its head.
    fn find_heads(&mut self, dead: &HashSet<NodeId>) -> Result<(), CudaError> {
        let graph = self.graph;
        for &id in &self.info.order {
            if dead.contains(&id) || !matches!(graph.op(id), Op::Gemm(_)) {
                continue;
            }
            let Some(a) = graph.input(id, 0) else {
                continue;
            };
            if let Op::Flatten { axis: 1 } = graph.op(a.node) {
                if self.only_reader(a, id) {
                    self.absorbed.insert(a.node);
                    if let Some(x) = graph.input(a.node, 0) {
                        if matches!(graph.op(x.node), Op::GlobalAveragePool)
                            && self.only_reader(x, a.node)
                        {
                            self.absorbed.insert(x.node);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn only_reader(&self, v: ValueRef, reader: NodeId) -> bool {
        !self.graph.is_graph_output(v) && self.graph.users(v).iter().all(|&(u, _)| u == reader)
    }

    fn lower_conv(
        &mut self,
        id: NodeId,
        conv: &resnetc_ir::Conv,
        epilogue: &[Epilogue],
    ) -> Result<(), CudaError> {
        let graph = self.graph;
        let out = ValueRef::new(id, 0);
        let x = graph
            .input(id, 0)
            .ok_or_else(|| self.unsupported(id, "input 0 is missing"))?;
        let xs = self.shape(id, x, "input")?;
        let ys = self.shape(id, out, "output")?;
        if xs.len() != 3 || ys.len() != 3 {
            return Err(self.unsupported(id, "only 2-D convolutions (NCHW) are supported"));
        }
        if conv.group != 1 || conv.dilations != [1, 1] {
            return Err(self.unsupported(id, "grouped and dilated convolutions are not supported"));
        }
        let (cin, h, w) = (xs[0], xs[1], xs[2]);
        let (cout, oh, ow) = (ys[0], ys[1], ys[2]);
        let [kh, kw] = conv.kernel;
        let [sh, sw] = conv.strides;
        let win = conv.window([h, w]).map_err(|m| self.unsupported(id, m))?;
        let pads = win.pads;
        if win.out != [oh, ow] {
            return Err(self.unsupported(
                id,
                "its output size does not follow from the input, kernel, strides and padding",
            ));
        }
        let wt = self
            .constant(id, 1, "weights")?
            .ok_or_else(|| self.unsupported(id, "the weights are missing"))?;
        if wt.shape() != [cout, cin, kh, kw] {
            return Err(self.unsupported(
                id,
                format!(
                    "weights of shape {:?}, expected [{cout}, {cin}, {kh}, {kw}]",
                    wt.shape()
                ),
            ));
        }
        // 32-bit indexing within an image; 2^24 keeps every per-image product far from overflow.
        if [cin * h * w, cout * oh * ow, cin * kh * kw * cout]
            .iter()
            .any(|&n| n >= 1 << 24)
        {
            return Err(self.unsupported(
                id,
                "the layer is larger than the CUDA kernels index (2^24 elements per image)",
            ));
        }
        // Tap masks are 64-bit with tap 63 marking padding; table entries are (offset << 6 | tap),
        // which fits an int since offsets are below 2^24.
        if kh * kw >= 64 {
            return Err(self.unsupported(
                id,
                format!("a {kh}x{kw} kernel has more than the 63 taps the CUDA kernels track"),
            ));
        }

        let parts = Epilogue::split(epilogue).map_err(|m| self.unsupported(id, m))?;
        let bias = parts.bias;
        let mut steps = Vec::new();
        let mut residual = None;
        for e in parts.steps {
            match e {
                Epilogue::Bias => unreachable!("Epilogue::split allows the bias first only"),
                Epilogue::Relu => steps.push(EpiStep::Relu),
                Epilogue::AddResidual(read) => {
                    let r = graph.input(id, 3).ok_or_else(|| {
                        self.unsupported(id, "the epilogue adds a residual but input 3 is absent")
                    })?;
                    let rs = self.shape(id, r, "residual")?;
                    residual = Some(r);
                    let fits = match rs[..] {
                        [c, h, w] => read.fits([c, h, w], [cout, oh, ow]),
                        _ => false,
                    };
                    if !fits {
                        return Err(self.unsupported(
                            id,
                            format!(
                                "residual {rs:?} does not fit the output {ys:?} read as {read:?}"
                            ),
                        ));
                    }
                    steps.push(match *read {
                        ResidualRead::Direct => EpiStep::AddDirect,
                        ResidualRead::Subsampled { stride, pad_before } => EpiStep::AddSubsampled {
                            channels: rs[0],
                            h: rs[1],
                            w: rs[2],
                            stride,
                            pad: pad_before,
                        },
                    });
                }
            }
        }

        // Weights as [KP][COUTP], k = (ci·KH + kh)·KW + kw: row k holds every output channel's weight.
        let k = cin * kh * kw;
        let kp = k.next_multiple_of(K_ALIGN);
        let coutp = cout.next_multiple_of(N_ALIGN);
        let src: Vec<f32> = wt.as_f32().expect("checked f32").iter().copied().collect();
        let mut blob = vec![0.0f32; kp * coutp];
        for o in 0..cout {
            for kk in 0..k {
                blob[kk * coutp + o] = src[o * k + kk];
            }
        }
        let w_off = self.push_weights(&blob);
        let taps = self.taps(id, cin, h, w, [kh, kw], kp)?;
        let bias_arg = if bias {
            let b = self.constant(id, 2, "bias")?.ok_or_else(|| {
                self.unsupported(id, "the epilogue adds a bias but input 2 is absent")
            })?;
            if b.len() != cout {
                return Err(self.unsupported(
                    id,
                    format!("a bias of {} values for {cout} channels", b.len()),
                ));
            }
            let data: Vec<f32> = b.as_f32().expect("checked f32").iter().copied().collect();
            PendingArg::Weights {
                offset: self.push_weights(&data),
                len: cout,
            }
        } else {
            PendingArg::Null
        };

        let batch = self.batch;
        let spec = |tile: Tile| ConvKernel {
            cin,
            h,
            w,
            cout,
            coutp,
            oh,
            ow,
            kernel: [kh, kw],
            stride: [sh, sw],
            pad: [pads[0], pads[1]],
            bias,
            epilogue: steps.clone(),
            tile,
            batch,
            taps: taps.clone(),
        };
        let pixels = (oh * ow) as u64;
        let ladder = tile::ladder(coutp);
        let target = self.target_blocks();
        let tiles: Vec<(Tile, usize)> = match self.batch {
            Some(b) => vec![(tile::choose(&ladder, b as u64 * pixels, coutp, target), 1)],
            None => {
                let mut v: Vec<(Tile, usize)> = ladder
                    .iter()
                    .map(|t| (*t, tile::min_batch(t, pixels, coutp, target)))
                    .collect();
                // Keep only tiles that some batch would choose, and let the last take every batch.
                v.dedup_by_key(|(_, b)| *b);
                if let Some(last) = v.last_mut() {
                    last.1 = 1;
                }
                v
            }
        };
        let what = spec(tiles[0].0).describe();
        let mut variants = Vec::new();
        for (t, min_batch) in tiles {
            let k = spec(t);
            let kernel = self.kernel("conv", |n| k.emit(n));
            variants.push(Variant {
                kernel,
                min_batch,
                block: t.threads() as u32,
                rows_per_image: pixels,
                rows_per_block: t.bm as u64,
                grid_y: (coutp / t.bn) as u32,
            });
        }
        let res_arg = residual.map_or(PendingArg::Null, PendingArg::Value);
        self.steps.push(PendingStep {
            what,
            variants,
            args: vec![
                PendingArg::Value(x),
                PendingArg::Weights {
                    offset: w_off,
                    len: kp * coutp,
                },
                bias_arg,
                res_arg,
                PendingArg::Value(out),
                PendingArg::Batch,
            ],
            output: out,
        });
        Ok(())
    }

    fn lower_head(&mut self, id: NodeId) -> Result<(), CudaError> {
        let graph = self.graph;
        let Op::Gemm(g) = graph.op(id) else {
            unreachable!("called on Gemm nodes")
        };
        let out = ValueRef::new(id, 0);
        let a = graph
            .input(id, 0)
            .ok_or_else(|| self.unsupported(id, "input A is missing"))?;
        // A is Flatten(x) or Flatten(GlobalAveragePool(x)), absorbed by find_heads.
        if !self.absorbed.contains(&a.node) {
            return Err(self.unsupported(
                id,
                "A must come from a Flatten(axis=1) read only by this Gemm (the classifier head)",
            ));
        }
        let mut x = graph
            .input(a.node, 0)
            .ok_or_else(|| self.unsupported(a.node, "its input is missing"))?;
        let pool = self.absorbed.contains(&x.node);
        if pool {
            x = graph
                .input(x.node, 0)
                .ok_or_else(|| self.unsupported(x.node, "its input is missing"))?;
        }
        let xs = self.shape(id, x, "features")?;
        let (channels, pixels) = match (pool, xs.as_slice()) {
            (true, [c, rest @ ..]) if !rest.is_empty() => (*c, rest.iter().product::<usize>()),
            (false, [c, rest @ ..]) => (*c, rest.iter().product::<usize>()),
            _ => return Err(self.unsupported(id, format!("cannot pool features of shape {xs:?}"))),
        };
        let features = if pool { channels } else { channels * pixels };
        if g.trans_a {
            return Err(self.unsupported(id, "transA = 1 is not supported"));
        }
        if !g.alpha.is_finite() || !g.beta.is_finite() {
            return Err(self.unsupported(id, "alpha and beta must be finite"));
        }
        let b = self
            .constant(id, 1, "B")?
            .ok_or_else(|| self.unsupported(id, "B is missing"))?;
        let (rows, cols) = match b.shape() {
            [r, c] => (*r, *c),
            s => return Err(self.unsupported(id, format!("B of shape {s:?}, expected a matrix"))),
        };
        let (kdim, nout) = if g.trans_b {
            (cols, rows)
        } else {
            (rows, cols)
        };
        if kdim != features {
            return Err(self.unsupported(id, format!("B has {kdim} rows for {features} features")));
        }
        if features * 4 > 32 * 1024 || nout >= 1 << 24 || features * nout >= 1 << 28 {
            return Err(self
                .unsupported(id, format!("a head of {features} features and {nout} outputs is larger than the CUDA head kernel handles")));
        }
        let bsrc: Vec<f32> = b.as_f32().expect("checked f32").iter().copied().collect();
        // As [NOUT][F]: each output's weights contiguous.
        let mut wblob = vec![0.0f32; nout * features];
        for j in 0..nout {
            for f in 0..features {
                wblob[j * features + f] = if g.trans_b {
                    bsrc[j * cols + f]
                } else {
                    bsrc[f * cols + j]
                };
            }
        }
        let w_off = self.push_weights(&wblob);
        let bias_arg = match self.constant(id, 2, "C")? {
            None => PendingArg::Null,
            Some(c) => {
                // C must be the same for every row (the batch is dynamic): [], [1], [N], [1, 1] or [1, N].
                let per_row = match c.shape() {
                    [] => 1,
                    [n] => *n,
                    [1, n] => *n,
                    s => {
                        return Err(self.unsupported(
                            id,
                            format!("C of shape {s:?} must be one row (shape [N] or [1, N])"),
                        ))
                    }
                };
                let vals: Vec<f32> = c.as_f32().expect("checked f32").iter().copied().collect();
                let row: Vec<f32> = match per_row {
                    1 => vec![vals[0]; nout],
                    n if n == nout => vals,
                    n => {
                        return Err(
                            self.unsupported(id, format!("C has {n} values for {nout} outputs"))
                        )
                    }
                };
                PendingArg::Weights {
                    offset: self.push_weights(&row),
                    len: nout,
                }
            }
        };
        let ys = self.shape(id, out, "output")?;
        if ys != [nout] {
            return Err(self.unsupported(id, format!("output {ys:?}, expected [{nout}]")));
        }
        let threads = if pool { channels.max(nout) } else { nout }
            .next_multiple_of(32)
            .clamp(32, 256);
        let spec = HeadKernel {
            channels,
            pixels,
            pool,
            nout,
            threads,
            bias: !matches!(bias_arg, PendingArg::Null),
            alpha: c_float(g.alpha),
            beta: c_float(g.beta),
        };
        let name = self.kernel("head", |n| spec.emit(n));
        self.steps.push(PendingStep {
            what: spec.describe(),
            variants: vec![Variant {
                kernel: name,
                min_batch: 1,
                block: threads as u32,
                rows_per_image: 1,
                rows_per_block: 1,
                grid_y: 1,
            }],
            args: vec![
                PendingArg::Value(x),
                PendingArg::Weights {
                    offset: w_off,
                    len: nout * features,
                },
                bias_arg,
                PendingArg::Value(out),
                PendingArg::Batch,
            ],
            output: out,
        });
        Ok(())
    }

    /// Assigns buffers by liveness and assembles the program.
    fn finish(self) -> Result<CudaProgram, CudaError> {
        let graph = self.graph;
        let input: ValueRef = graph.inputs[0].into();
        let output = graph.outputs[0].value;
        if !self.steps.iter().any(|s| s.output == output) {
            return Err(CudaError::Interface(
                "the graph output is not computed by any kernel (is the graph empty?)".into(),
            ));
        }
        let per_image = |v: ValueRef| -> usize {
            self.info
                .ty(v)
                .and_then(|t| t.concrete_tail())
                .map_or(0, |s| s.iter().product())
        };

        let mut last_read: HashMap<ValueRef, usize> = HashMap::new();
        for (k, s) in self.steps.iter().enumerate() {
            for a in &s.args {
                if let PendingArg::Value(v) = a {
                    last_read.insert(*v, k);
                }
            }
        }
        let mut buffers: Vec<BufferDesc> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut of_value: HashMap<ValueRef, usize> = HashMap::new();
        of_value.insert(input, take(per_image(input), &mut free, &mut buffers));
        let mut steps = Vec::new();
        for (k, s) in self.steps.iter().enumerate() {
            let b = take(per_image(s.output), &mut free, &mut buffers);
            of_value.insert(s.output, b);
            let mut args = Vec::new();
            for a in &s.args {
                args.push(match a {
                    PendingArg::Value(v) => Arg::Buffer(*of_value.get(v).ok_or_else(|| {
                        CudaError::Interface(format!(
                            "internal error: step '{}' reads a value no earlier step computes",
                            s.what
                        ))
                    })?),
                    PendingArg::Weights { offset, len } => Arg::Weights {
                        offset: *offset,
                        len: *len,
                    },
                    PendingArg::Null => Arg::Null,
                    PendingArg::Batch => Arg::Batch,
                });
            }
            // Values whose last reader is this step free their buffers for later steps.
            for a in &s.args {
                if let PendingArg::Value(v) = a {
                    if last_read.get(v) == Some(&k) && *v != output {
                        if let Some(b) = of_value.get(v) {
                            if !free.contains(b) {
                                free.push(*b);
                            }
                        }
                    }
                }
            }
            steps.push(Step {
                what: s.what.clone(),
                variants: s.variants.clone(),
                args,
            });
        }

        let mut source = String::new();
        source.push_str("// Generated by resnetc: CUDA kernels for one model. Do not edit.\n");
        source.push_str(&format!(
            "// {} steps, {} kernels, batch {}.\n\n",
            steps.len(),
            self.kernels.len(),
            self.batch
                .map_or_else(|| "dynamic".to_string(), |b| b.to_string())
        ));
        source.push_str(emit::PRELUDE);
        let mut tables: Vec<&(String, String)> = self.tap_tables.values().collect();
        tables.sort_by_key(|(name, _)| name[1..name.len() - 5].parse::<usize>().unwrap_or(0));
        for (_, text) in tables {
            source.push('\n');
            source.push_str(text);
        }
        for (_, text) in &self.kernels {
            source.push('\n');
            source.push_str(text);
        }
        let shape_of = |v: ValueRef| {
            self.info
                .ty(v)
                .and_then(|t| t.concrete_tail())
                .unwrap_or_default()
        };
        Ok(CudaProgram {
            source,
            kernels: self.kernels.iter().map(|(n, _)| n.clone()).collect(),
            steps,
            buffers,
            input: IoDesc {
                buffer: of_value[&input],
                shape: shape_of(input),
            },
            output: IoDesc {
                buffer: of_value[&output],
                shape: shape_of(graph.outputs[0].value),
            },
            weights: self.weights,
            batch: self.batch,
        })
    }
}

/// A buffer for a value of `size` floats per image: the smallest free buffer that fits, else the
/// largest free one grown, else a new one.
fn take(size: usize, free: &mut Vec<usize>, buffers: &mut Vec<BufferDesc>) -> usize {
    let fit = free
        .iter()
        .enumerate()
        .filter(|(_, &b)| buffers[b].elems_per_image >= size)
        .min_by_key(|(_, &b)| buffers[b].elems_per_image);
    let pick = fit
        .or_else(|| {
            free.iter()
                .enumerate()
                .max_by_key(|(_, &b)| buffers[b].elems_per_image)
        })
        .map(|(i, _)| i);
    match pick {
        Some(i) => {
            let b = free.swap_remove(i);
            buffers[b].elems_per_image = buffers[b].elems_per_image.max(size);
            b
        }
        None => {
            buffers.push(BufferDesc {
                elems_per_image: size,
            });
            buffers.len() - 1
        }
    }
}
