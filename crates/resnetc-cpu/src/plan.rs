//! Compiling a fused graph into a [`CpuPlan`]: steps in the validator's canonical order with their
//! kernels chosen and weights packed, and a memory plan.
//!
//! **Layouts.** Graph inputs and outputs are plain NCHW. Convolutions read and write *blocked*
//! activations, NCHW16c with a zero halo: per image `[⌈C/16⌉][H+2h][W+2h][16]`, channels past `C`
//! zero, and a border of `h` zero pixels (the largest padding any reader needs) so that kernels never
//! test for the image edge. Every kernel that writes a blocked buffer writes its halo and its padding
//! channels as zeros, so recycled arena memory never leaks into a result. Steps that convert
//! (`ToBlocked`, `ToPlain`) are inserted where a value's producer and reader disagree; Flatten and
//! Identity are aliases and cost nothing.
//!
//! **Memory.** Every value the plan computes lives in one arena. All sizes are per image and the
//! batch is a run-time parameter, so a buffer of `s` floats per image at offset `o` occupies
//! `[o·B, (o+s)·B)` for a batch of `B`, image `i` at `o·B + i·s`. Offsets come from a liveness scan
//! in step order (a buffer is allocated before its step frees the inputs it read last, so no step
//! writes over its own inputs) with first-fit reuse of freed space; the peak is
//! [`CpuPlan::arena_bytes`].

use std::cell::Cell;
use std::collections::HashMap;

use resnetc_ir::{
    Conv, DType, Dim, Epilogue, Graph, GraphInfo, NodeId, Op, ResidualRead, Tensor, ValueRef,
    Window,
};

use crate::program::*;
use crate::{CpuError, CpuOptions, Winograd};

thread_local! {
    /// Weight tensors packed on this thread; see [`weights_packed_on_this_thread`].
    static PACKED: Cell<u64> = const { Cell::new(0) };
}

/// How many weight tensors (one per convolution or Gemm) [`CpuPlan::compile`] has packed on the
/// calling thread so far. Tests read it before and after loading a stored plan to check that loading
/// packs nothing ([`CpuPlan::from_bytes`] takes packed weights as they are).
pub fn weights_packed_on_this_thread() -> u64 {
    PACKED.with(Cell::get)
}

fn count_packing() {
    PACKED.with(|c| c.set(c.get() + 1));
}

/// What the plan knows about a value: where its plain and blocked forms are, once made.
#[derive(Clone, Copy, Debug, Default)]
struct Repr {
    plain: Option<BufId>,
    blocked: Option<(BufId, Block)>,
}

struct Builder<'g> {
    graph: &'g Graph,
    info: &'g GraphInfo,
    batch: Dim,
    buffers: Vec<Buffer>,
    steps: Vec<Step>,
    reprs: HashMap<ValueRef, Repr>,
    halo: HashMap<ValueRef, usize>,
    flops: u64,
    winograd: Winograd,
    /// The kernel set `Winograd::Auto` chooses forms for.
    isa: crate::Isa,
}

fn site(graph: &Graph, id: NodeId) -> (String, &'static str) {
    let n = graph.node(id);
    (n.label().to_string(), n.op.onnx_name())
}

fn unsupported(graph: &Graph, id: NodeId, reason: impl Into<String>) -> CpuError {
    let (node, op) = site(graph, id);
    CpuError::Unsupported {
        node,
        op,
        reason: reason.into(),
    }
}

impl CpuPlan {
    /// Compiles a validated graph (normally the level-3 fused graph) for the best kernel set this
    /// machine has.
    pub fn compile(graph: &Graph, info: &GraphInfo) -> Result<CpuPlan, CpuError> {
        CpuPlan::compile_with(graph, info, &CpuOptions::default())
    }

    /// Compiles with the given options (e.g. [`crate::Isa::Portable`] forces the fallback kernels).
    pub fn compile_with(
        graph: &Graph,
        info: &GraphInfo,
        opts: &CpuOptions,
    ) -> Result<CpuPlan, CpuError> {
        let isa = opts.isa.resolve()?;
        let mut b = Builder::new(
            graph,
            info,
            opts.winograd.unwrap_or(isa.default_winograd()),
            isa,
        )?;
        b.compute_halos()?;
        for &id in &info.order {
            b.node(id)?;
        }
        let mut outputs = Vec::new();
        for o in &graph.outputs {
            let dims = b.per_image(o.value, o.value.node)?;
            let buf = b.plain(o.value, o.value.node)?;
            let floats = dims.iter().product();
            outputs.push((
                Port {
                    name: o.name.clone(),
                    dims,
                    floats,
                },
                buf,
            ));
        }
        let mut inputs = Vec::new();
        for &i in &graph.inputs {
            let dims = b.per_image(i.into(), i)?;
            let floats = dims.iter().product();
            inputs.push(Port {
                name: graph.node(i).outputs[0].clone(),
                dims,
                floats,
            });
        }
        let arena_floats = b.allocate(&outputs);
        Ok(CpuPlan {
            isa,
            buffers: b.buffers,
            steps: b.steps,
            inputs,
            outputs,
            arena_floats,
            flops: b.flops,
        })
    }

    /// The kernel set the plan runs.
    pub fn isa(&self) -> crate::Isa {
        self.isa
    }

    /// Peak arena bytes for a batch of `batch` images run as one (the intra-op mode); a session
    /// running images on separate threads holds one arena per thread for its images.
    pub fn arena_bytes(&self, batch: usize) -> usize {
        (self.arena_floats * batch + ALIGN) * 4
    }

    /// Bytes of packed weights and biases the steps read per run: the convolutions' (Winograd's
    /// transformed ones where they have them) and the Gemms'. Every image a run takes through the
    /// network on its own streams all of them once.
    pub fn weight_bytes(&self) -> usize {
        let floats: usize = self
            .steps
            .iter()
            .map(|s| match &s.kernel {
                Kernel::Conv(k) => {
                    k.weights.len() + k.bias.len() + k.winograd.as_ref().map_or(0, |w| w.u.len())
                }
                Kernel::Gemm(g) => g.b.len() + g.c.len(),
                _ => 0,
            })
            .sum();
        floats * 4
    }

    /// Floating-point operations per image (2 per multiply-add of the convolutions and Gemms).
    pub fn flops_per_image(&self) -> u64 {
        self.flops
    }

    /// FLOPs one image's run really does in convolutions and Gemm: as [`Self::flops_per_image`]
    /// for direct convolutions; for a Winograd F(m×m, 3×3) convolution, the multiply-adds of its
    /// `(m+2)²` transformed products per tile (the input and output transforms, a few percent,
    /// are not counted).
    pub fn flops_run_per_image(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match &s.kernel {
                Kernel::Conv(k) => {
                    let (cin, cout, oh, ow) = (
                        k.input.c as u64,
                        k.out.c as u64,
                        k.out.h as u64,
                        k.out.w as u64,
                    );
                    match k.winograd.as_ref().map(|w| w.form) {
                        Some(form) => {
                            let m = match form {
                                Form::F2 => 2,
                                Form::F4 => 4,
                            };
                            let tiles = oh.div_ceil(m) * ow.div_ceil(m);
                            2 * cin * cout * tiles * (m + 2) * (m + 2)
                        }
                        None => 2 * cout * oh * ow * cin * (k.kh * k.kw) as u64,
                    }
                }
                Kernel::Gemm(g) => 2 * (g.k * g.m) as u64,
                _ => 0,
            })
            .sum()
    }

    /// How many convolutions run as Winograd (either form).
    pub fn winograd_convs(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(&s.kernel, Kernel::Conv(k) if k.winograd.is_some()))
            .count()
    }

    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    pub fn outputs(&self) -> impl Iterator<Item = &Port> {
        self.outputs.iter().map(|(p, _)| p)
    }

    /// The steps, one line each (`conv3x3/s1 16→16 32x32 [bias,add,relu]  'name'`), for `--verbose`
    /// style reports.
    pub fn describe(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| {
                let what = match &s.kernel {
                    Kernel::ToBlocked(b) => {
                        format!("to-blocked {}x{}x{} halo {}", b.c, b.h, b.w, b.halo)
                    }
                    Kernel::ToPlain(b) => format!("to-plain {}x{}x{}", b.c, b.h, b.w),
                    Kernel::Conv(k) => {
                        let mut epi = vec!["bias".to_string()];
                        epi.extend(k.post.iter().map(|p| match p {
                            Post::Residual => "add".to_string(),
                            Post::Relu => "relu".to_string(),
                        }));
                        format!(
                            "conv{}x{}/s{}{} {}->{} {}x{} [{}]",
                            k.kh,
                            k.kw,
                            k.sh,
                            match k.winograd.as_ref().map(|w| w.form) {
                                Some(Form::F2) => " winograd-f2",
                                Some(Form::F4) => " winograd-f4",
                                None => "",
                            },
                            k.input.c,
                            k.out.c,
                            k.out.h,
                            k.out.w,
                            epi.join(",")
                        )
                    }
                    Kernel::GlobalAvgPool(b) => format!("global-avg-pool {}x{}x{}", b.c, b.h, b.w),
                    Kernel::Gemm(g) => format!("gemm {}x{}", g.k, g.m),
                };
                format!("{what}  '{}'", s.node)
            })
            .collect()
    }
}

impl<'g> Builder<'g> {
    fn new(
        graph: &'g Graph,
        info: &'g GraphInfo,
        winograd: Winograd,
        isa: crate::Isa,
    ) -> Result<Builder<'g>, CpuError> {
        if graph.inputs.is_empty() {
            return Err(CpuError::Interface {
                what: "inputs".into(),
                reason: "the graph has none".into(),
            });
        }
        let first = graph.inputs[0];
        let batch = info
            .ty(first.into())
            .and_then(|t| t.shape.first().cloned())
            .ok_or_else(|| CpuError::Interface {
                what: "first input".into(),
                reason: "its shape is unknown or it is a scalar".into(),
            })?;
        Ok(Builder {
            graph,
            info,
            batch,
            buffers: Vec::new(),
            steps: Vec::new(),
            reprs: HashMap::new(),
            halo: HashMap::new(),
            flops: 0,
            winograd,
            isa,
        })
    }

    /// The dimensions after the batch of a float32 value whose first dimension is the batch.
    fn per_image(&self, v: ValueRef, at: NodeId) -> Result<Vec<usize>, CpuError> {
        let (node, op) = site(self.graph, at);
        let err = |reason: String| CpuError::Shape {
            node: node.clone(),
            op,
            reason,
        };
        let ty = self
            .info
            .ty(v)
            .ok_or_else(|| err("the validator could not infer this value's type".into()))?;
        if ty.dtype != DType::F32 {
            return Err(CpuError::Unsupported {
                node: node.clone(),
                op,
                reason: format!("element type {} (only f32)", ty.dtype),
            });
        }
        if ty.shape.first() != Some(&self.batch) {
            return Err(err(format!(
                "its first dimension is not the batch ({}) of the first input",
                self.batch
            )));
        }
        ty.concrete_tail()
            .ok_or_else(|| err("a dimension after the batch is symbolic".into()))
    }

    /// A convolution's geometry over an `h × w` input (the validator's, so it fails only on a
    /// graph that was not validated).
    fn window(&self, id: NodeId, c: &Conv, hw: [usize; 2]) -> Result<Window, CpuError> {
        c.window(hw).map_err(|m| unsupported(self.graph, id, m))
    }

    /// Each value's halo: the largest padding of any convolution that reads it.
    fn compute_halos(&mut self) -> Result<(), CpuError> {
        for &id in &self.info.order {
            let c = match self.graph.op(id) {
                Op::FusedConv { conv, .. } | Op::Conv(conv) => conv,
                _ => continue,
            };
            let Some(x) = self.graph.input(id, 0) else {
                continue;
            };
            let dims = self.per_image(x, id)?;
            if dims.len() != 3 {
                return Err(unsupported(
                    self.graph,
                    id,
                    format!(
                        "input of rank {} (only 2-D convolution on NCHW)",
                        dims.len() + 1
                    ),
                ));
            }
            let p = self.window(id, c, [dims[1], dims[2]])?.pads;
            let need = p.iter().copied().max().unwrap_or(0);
            if need > MAX_PAD {
                return Err(unsupported(
                    self.graph,
                    id,
                    format!("padding {need} (at most {MAX_PAD})"),
                ));
            }
            let h = self.halo.entry(x).or_insert(0);
            *h = (*h).max(need);
        }
        Ok(())
    }

    fn new_buffer(&mut self, floats: usize) -> BufId {
        // Offsets are assigned by `allocate`; until then every arena buffer sits at 0.
        self.buffers.push(Buffer {
            loc: Loc::Arena(0),
            floats,
        });
        self.buffers.len() - 1
    }

    fn push(&mut self, kernel: Kernel, inputs: Vec<BufId>, output: BufId, node: NodeId) {
        let name = self.graph.node(node).label().to_string();
        self.steps.push(Step {
            kernel,
            inputs,
            output,
            node: name,
        });
    }

    fn repr(&self, v: ValueRef, at: NodeId) -> Result<Repr, CpuError> {
        match self.reprs.get(&v) {
            Some(r) => Ok(*r),
            None => {
                let producer = self.graph.node(v.node);
                Err(unsupported(
                    self.graph,
                    at,
                    format!(
                        "reads '{}' ({}) as an activation, which the CPU backend does not compute",
                        producer.label(),
                        producer.op.onnx_name()
                    ),
                ))
            }
        }
    }

    /// `v` in the plain layout, converting it if it only exists blocked.
    fn plain(&mut self, v: ValueRef, at: NodeId) -> Result<BufId, CpuError> {
        let r = self.repr(v, at)?;
        if let Some(p) = r.plain {
            return Ok(p);
        }
        let (src, block) = r.blocked.expect("a value has at least one form");
        let dst = self.new_buffer(block.c * block.h * block.w);
        self.push(Kernel::ToPlain(block), vec![src], dst, at);
        self.reprs.get_mut(&v).expect("present").plain = Some(dst);
        Ok(dst)
    }

    /// `v` in the blocked layout, converting it if it only exists plain.
    fn blocked(&mut self, v: ValueRef, at: NodeId) -> Result<(BufId, Block), CpuError> {
        let r = self.repr(v, at)?;
        if let Some(b) = r.blocked {
            return Ok(b);
        }
        let dims = self.per_image(v, at)?;
        let &[c, h, w] = dims.as_slice() else {
            return Err(unsupported(
                self.graph,
                at,
                format!(
                    "reads a value of rank {} where NCHW is needed",
                    dims.len() + 1
                ),
            ));
        };
        let block = Block {
            c,
            h,
            w,
            halo: self.halo.get(&v).copied().unwrap_or(0),
        };
        let src = r.plain.expect("a value has at least one form");
        let dst = self.new_buffer(block.floats());
        self.push(Kernel::ToBlocked(block), vec![src], dst, at);
        self.reprs.get_mut(&v).expect("present").blocked = Some((dst, block));
        Ok((dst, block))
    }

    fn node(&mut self, id: NodeId) -> Result<(), CpuError> {
        let graph = self.graph;
        let out = ValueRef::new(id, 0);
        match graph.op(id) {
            Op::Input { index, .. } => {
                self.per_image(out, id)?;
                self.buffers.push(Buffer {
                    loc: Loc::Input(*index),
                    floats: self.per_image(out, id)?.iter().product(),
                });
                let b = self.buffers.len() - 1;
                self.reprs.insert(
                    out,
                    Repr {
                        plain: Some(b),
                        blocked: None,
                    },
                );
            }
            // Weights are read by the kernels that use them; a constant activation is refused where read.
            Op::Constant(_) => {}
            Op::FusedConv { conv, epilogue } => self.conv(id, conv, epilogue)?,
            Op::Conv(conv) => {
                let epilogue = if graph.input(id, 2).is_some() {
                    vec![Epilogue::Bias]
                } else {
                    vec![]
                };
                self.conv(id, conv, &epilogue)?
            }
            Op::GlobalAveragePool => {
                let x = graph
                    .input(id, 0)
                    .ok_or_else(|| unsupported(graph, id, "no input"))?;
                let (src, block) = self.blocked(x, id)?;
                let dims = self.per_image(out, id)?;
                if dims != [block.c, 1, 1] {
                    return Err(unsupported(graph, id, "only a 2-D pool of an NCHW value"));
                }
                let dst = self.new_buffer(block.c);
                self.push(Kernel::GlobalAvgPool(block), vec![src], dst, id);
                self.reprs.insert(
                    out,
                    Repr {
                        plain: Some(dst),
                        blocked: None,
                    },
                );
            }
            Op::Flatten { .. } | Op::Identity => {
                // Both keep the batch first (checked by per_image) and the row-major order: an alias.
                let x = graph
                    .input(id, 0)
                    .ok_or_else(|| unsupported(graph, id, "no input"))?;
                self.per_image(out, id)?;
                if matches!(graph.op(id), Op::Identity) {
                    let r = self.repr(x, id)?;
                    self.reprs.insert(out, r);
                } else {
                    let p = self.plain(x, id)?;
                    self.reprs.insert(
                        out,
                        Repr {
                            plain: Some(p),
                            blocked: None,
                        },
                    );
                }
            }
            Op::Gemm(g) => self.gemm(id, g)?,
            other => {
                return Err(unsupported(
                    graph,
                    id,
                    format!("no CPU kernel for {}", other.onnx_name()),
                ))
            }
        }
        Ok(())
    }

    fn const_f32(
        &self,
        v: Option<ValueRef>,
        at: NodeId,
        what: &str,
    ) -> Result<ndarray_view::F32Const, CpuError> {
        let v = v.ok_or_else(|| unsupported(self.graph, at, format!("the {what} is missing")))?;
        match self.graph.op(v.node) {
            Op::Constant(Tensor::F32(a)) => Ok(ndarray_view::F32Const {
                shape: a.shape().to_vec(),
                data: a.iter().copied().collect(),
            }),
            Op::Constant(t) => Err(unsupported(
                self.graph,
                at,
                format!("the {what} is {}, not f32", t.dtype()),
            )),
            _ => Err(unsupported(
                self.graph,
                at,
                format!("the {what} is computed at run time (only constant {what}s are packed)"),
            )),
        }
    }

    fn conv(&mut self, id: NodeId, c: &Conv, epilogue: &[Epilogue]) -> Result<(), CpuError> {
        let graph = self.graph;
        if c.group != 1 {
            return Err(unsupported(
                graph,
                id,
                format!("group {} (only 1)", c.group),
            ));
        }
        if c.dilations != [1, 1] {
            return Err(unsupported(
                graph,
                id,
                format!("dilations {:?} (only 1)", c.dilations),
            ));
        }
        let x = graph
            .input(id, 0)
            .ok_or_else(|| unsupported(graph, id, "no input"))?;
        let w = self.const_f32(graph.input(id, 1), id, "weight")?;
        let &[cout, cin, kh, kw] = w.shape.as_slice() else {
            return Err(unsupported(graph, id, "weights of rank other than 4"));
        };
        let (xbuf, input) = self.blocked(x, id)?;
        if input.c != cin || c.kernel != [kh, kw] || kh == 0 || kw == 0 || c.strides.contains(&0) {
            return Err(unsupported(
                graph,
                id,
                "weights, kernel or strides disagree with the input",
            ));
        }
        let win = self.window(id, c, [input.h, input.w])?;
        let pads = win.pads;
        if pads.iter().any(|&p| p > input.halo) {
            return Err(unsupported(
                graph,
                id,
                "padding larger than the planned halo",
            ));
        }
        let dims = self.per_image(ValueRef::new(id, 0), id)?;
        let (oh, ow) = (dims[1], dims[2]);
        if dims[0] != cout || win.out != [oh, ow] {
            return Err(unsupported(
                graph,
                id,
                "the output shape disagrees with the convolution's geometry",
            ));
        }

        let epilogue = Epilogue::split(epilogue).map_err(|m| unsupported(graph, id, m))?;
        let with_bias = epilogue.bias;
        let read = epilogue.residual;
        let post: Vec<Post> = epilogue
            .steps
            .iter()
            .filter_map(|e| match e {
                Epilogue::Relu => Some(Post::Relu),
                Epilogue::AddResidual(_) => Some(Post::Residual),
                Epilogue::Bias => None,
            })
            .collect();
        let ocb = cout.div_ceil(BLOCK);
        let mut bias = vec![0f32; ocb * BLOCK];
        if with_bias {
            let b = self.const_f32(graph.input(id, 2), id, "bias")?;
            if b.data.len() != cout {
                return Err(unsupported(
                    graph,
                    id,
                    format!("a bias of {} values for {cout} channels", b.data.len()),
                ));
            }
            bias[..cout].copy_from_slice(&b.data);
        }
        let out_block = Block {
            c: cout,
            h: oh,
            w: ow,
            halo: self.halo.get(&ValueRef::new(id, 0)).copied().unwrap_or(0),
        };

        let mut inputs = vec![xbuf];
        let residual = match read {
            None => None,
            Some(r) => {
                let rv = graph.input(id, 3).ok_or_else(|| {
                    unsupported(
                        graph,
                        id,
                        "the epilogue adds a residual but input 3 is absent",
                    )
                })?;
                let (rbuf, block) = self.blocked(rv, id)?;
                if !r.fits([block.c, block.h, block.w], [cout, oh, ow]) {
                    return Err(unsupported(
                        graph,
                        id,
                        format!("a residual that does not fit the output read as {r:?}"),
                    ));
                }
                let read = match r {
                    ResidualRead::Direct => ResidualRead2::Direct,
                    ResidualRead::Subsampled { stride, pad_before } => {
                        ResidualRead2::Subsampled { stride, pad_before }
                    }
                };
                inputs.push(rbuf);
                Some(ResidualKernel { read, block })
            }
        };

        self.flops += 2 * (cout * oh * ow * cin * kh * kw) as u64;
        // Auto leaves Winograd out where one output channel's weights span too many magnitudes
        // for it to keep the small ones (see `MAX_WEIGHT_SPREAD`); an explicit form is obeyed.
        let spread_ok =
            || crate::kernels::weight_spread(&w.data, cout) <= crate::kernels::MAX_WEIGHT_SPREAD;
        let form = match self.winograd {
            _ if [kh, kw] != [3, 3] || c.strides != [1, 1] => None,
            Winograd::Auto if !spread_ok() => None,
            Winograd::F4 if ow % 4 == 0 && oh >= 4 => Some(Form::F4),
            Winograd::Auto
                if ow % 4 == 0
                    && oh >= 4
                    && crate::kernels::f4_fills_strip(self.isa, (oh / 4) * (ow / 4), ocb) =>
            {
                Some(Form::F4)
            }
            Winograd::F2 | Winograd::F4 | Winograd::Auto if ow % 2 == 0 && oh >= 2 => {
                Some(Form::F2)
            }
            _ => None,
        };
        let icb = cin.div_ceil(BLOCK);
        count_packing();
        let mut packed = Vec::new();
        if has_direct_rows(form, oh) {
            packed = vec![0f32; ocb * icb * kh * kw * BLOCK * BLOCK];
            for o in 0..cout {
                for i in 0..cin {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let at = ((((o / BLOCK * icb + i / BLOCK) * kh + ky) * kw + kx)
                                * BLOCK
                                + i % BLOCK)
                                * BLOCK
                                + o % BLOCK;
                            packed[at] = w.data[((o * cin + i) * kh + ky) * kw + kx];
                        }
                    }
                }
            }
        }
        let winograd = form.map(|form| WinogradKernel {
            form,
            u: crate::kernels::transform_weights(&w.data, cout, cin, form),
        });
        let kernel = ConvKernel {
            input,
            out: out_block,
            icb,
            lanes_last: cin - (icb - 1) * BLOCK,
            ocb,
            kh,
            kw,
            sh: c.strides[0],
            sw: c.strides[1],
            pt: pads[0],
            pl: pads[1],
            weights: packed,
            bias,
            post,
            residual,
            winograd,
        };
        let dst = self.new_buffer(out_block.floats());
        self.push(Kernel::Conv(Box::new(kernel)), inputs, dst, id);
        self.reprs.insert(
            ValueRef::new(id, 0),
            Repr {
                plain: None,
                blocked: Some((dst, out_block)),
            },
        );
        Ok(())
    }

    fn gemm(&mut self, id: NodeId, g: &resnetc_ir::Gemm) -> Result<(), CpuError> {
        let graph = self.graph;
        if g.trans_a {
            return Err(unsupported(
                graph,
                id,
                "transA = 1 (the batch must be A's first dimension)",
            ));
        }
        let a = graph
            .input(id, 0)
            .ok_or_else(|| unsupported(graph, id, "no input"))?;
        let adims = self.per_image(a, id)?;
        let &[k] = adims.as_slice() else {
            return Err(unsupported(graph, id, "A is not a matrix"));
        };
        let b = self.const_f32(graph.input(id, 1), id, "B matrix")?;
        let &[b0, b1] = b.shape.as_slice() else {
            return Err(unsupported(graph, id, "B is not a matrix"));
        };
        let (bk, m) = if g.trans_b { (b1, b0) } else { (b0, b1) };
        if bk != k {
            return Err(unsupported(
                graph,
                id,
                format!("inner dimensions differ: A has {k} columns, B {bk} rows"),
            ));
        }
        count_packing();
        let mut packed = vec![0f32; k * m];
        for kk in 0..k {
            for mm in 0..m {
                packed[kk * m + mm] = if g.trans_b {
                    b.data[mm * k + kk]
                } else {
                    b.data[kk * m + mm]
                };
            }
        }
        let mut c = vec![0f32; m];
        if let Some(cv) = graph.input(id, 2) {
            let ct = self.const_f32(Some(cv), id, "C matrix")?;
            let per_column = match ct.shape.as_slice() {
                [] | [1] | [1, 1] => false,
                [n] | [1, n] if *n == m => true,
                _ => {
                    return Err(unsupported(
                        graph,
                        id,
                        format!("C of shape {:?} (only a row of {m}, or a scalar)", ct.shape),
                    ))
                }
            };
            for (j, cj) in c.iter_mut().enumerate() {
                *cj = g.beta * ct.data[if per_column { j } else { 0 }];
            }
        }
        let adst = self.plain(a, id)?;
        self.flops += 2 * (k * m) as u64;
        let dst = self.new_buffer(m);
        self.push(
            Kernel::Gemm(Box::new(GemmKernel {
                k,
                m,
                alpha: g.alpha,
                b: packed,
                c,
            })),
            vec![adst],
            dst,
            id,
        );
        self.reprs.insert(
            ValueRef::new(id, 0),
            Repr {
                plain: Some(dst),
                blocked: None,
            },
        );
        Ok(())
    }

    /// Assigns arena offsets by a liveness scan with first-fit reuse; returns the peak (floats per
    /// image).
    fn allocate(&mut self, outputs: &[(Port, BufId)]) -> usize {
        let n = self.buffers.len();
        let end = self.steps.len();
        let mut last_use = vec![None::<usize>; n];
        for (i, s) in self.steps.iter().enumerate() {
            for &b in &s.inputs {
                last_use[b] = Some(i);
            }
            last_use[s.output] = last_use[s.output].max(Some(i));
        }
        for (_, b) in outputs {
            last_use[*b] = Some(end);
        }
        // Live allocations: (offset, size, buffer), kept sorted by offset.
        let mut live: Vec<(usize, usize, BufId)> = Vec::new();
        let mut peak = 0;
        for i in 0..end {
            let out = self.steps[i].output;
            let size = self.buffers[out].floats.div_ceil(ALIGN) * ALIGN;
            let mut offset = 0;
            let mut at = live.len();
            for (k, &(o, s, _)) in live.iter().enumerate() {
                if o >= offset + size {
                    at = k;
                    break;
                }
                offset = offset.max(o + s);
            }
            live.insert(at, (offset, size, out));
            self.buffers[out].loc = Loc::Arena(offset);
            peak = peak.max(offset + size);
            live.retain(|&(_, _, b)| last_use[b].is_some_and(|l| l > i));
        }
        peak
    }
}

/// A constant's shape and values, copied out of the graph for packing.
mod ndarray_view {
    pub(crate) struct F32Const {
        pub shape: Vec<usize>,
        pub data: Vec<f32>,
    }
}
