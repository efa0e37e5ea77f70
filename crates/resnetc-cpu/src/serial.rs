//! A [`CpuPlan`] as bytes: the `resnetc.rnc.cpu.CpuPlan` message of `schemas/rnc_cpu.proto`, which
//! a `.rnc` artifact stores so that running it packs nothing.
//!
//! **Portability.** The stored plan runs on whatever kernel set the loading machine has, not the
//! compiling machine's: every packed layout is the same for every kernel set. `Builder::conv` and
//! `Builder::gemm` (`plan.rs`) pack `[ocb][icb][kh][kw][16 in][16 out]` and `[k][m]`, and
//! `kernels::transform_weights` packs Winograd's `[ocb][(m+2)²][icb][16 in][16 out]` (stored as
//! `[(m+2)²][ocb][icb][16 in][16 out]`, the schema's order, and reordered on load), without
//! looking at the ISA; the portable, AVX2, AVX-512 and NEON strip functions all read the same
//! `StripArgs`, and `winograd::tiles` drives any of them. The ISA only decides, at run time, how
//! wide a strip is, and, at compile time, which 3×3 convolutions get Winograd weights and in which
//! form ([`Isa::default_winograd`], unless [`crate::CpuOptions::winograd`] says). Those weights are
//! stored with their form and kept on load: the loaded plan runs the convolutions the way the
//! compiling machine chose, on the loading machine's kernels. The stored `compiled_isa` is
//! provenance only.
//!
//! **Untrusted input.** [`CpuPlan::from_bytes`] converts field by field here and then runs
//! [`crate::verify::check`] before anything of the plan runs.
//!
//! Every conversion destructures its struct without `..`, so a field added to the plan does not
//! compile until it is stored, loaded and checked here.

use prost::Message;

use crate::program::{
    Block, Buffer, ConvKernel, Form, GemmKernel, Kernel, Loc, Post, ResidualKernel, ResidualRead2,
    Step, WinogradKernel,
};
use crate::{CpuPlan, Isa, PlanError, Port};

pub mod proto {
    //! Types generated from `schemas/rnc_cpu.proto`.
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/resnetc.rnc.cpu.rs"));
}

/// The plan format this build reads and writes; bumped whenever the meaning of a field changes.
pub const PLAN_VERSION: u32 = 1;

/// The most floats per image any buffer, block, port or the arena may hold (the executor's limit
/// of 2³¹ elements per value).
pub(crate) const MAX_FLOATS: usize = 1 << 31;

impl CpuPlan {
    /// The plan as a `resnetc.rnc.cpu.CpuPlan` message (weights copied).
    pub fn to_proto(&self) -> proto::CpuPlan {
        let CpuPlan {
            isa,
            buffers,
            steps,
            inputs,
            outputs,
            arena_floats,
            flops,
        } = self;
        proto::CpuPlan {
            version: PLAN_VERSION,
            compiled_isa: isa.name().to_string(),
            buffers: buffers.iter().map(buffer_to_proto).collect(),
            steps: steps.iter().map(step_to_proto).collect(),
            inputs: inputs.iter().map(port_to_proto).collect(),
            outputs: outputs
                .iter()
                .map(|(port, buffer)| proto::Output {
                    port: Some(port_to_proto(port)),
                    buffer: *buffer as u64,
                })
                .collect(),
            arena_floats: *arena_floats as u64,
            flops: *flops,
        }
    }

    /// The encoded plan, as a `.rnc` artifact's CPU section stores it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes and checks a stored plan (see the module documentation), to run on `isa`
    /// ([`Isa::Auto`]: the best kernel set of this machine, whichever machine compiled the plan).
    /// Nothing is packed: the weights are used as stored, the Winograd ones reordered.
    pub fn from_bytes(bytes: &[u8], isa: Isa) -> Result<CpuPlan, PlanError> {
        let p = proto::CpuPlan::decode(bytes).map_err(|e| PlanError::Decode(e.to_string()))?;
        CpuPlan::from_proto(p, isa)
    }

    /// [`CpuPlan::from_bytes`] on a decoded message (the weights are moved, not copied, except
    /// the Winograd ones, copied once into the kernels' order).
    pub fn from_proto(p: proto::CpuPlan, isa: Isa) -> Result<CpuPlan, PlanError> {
        let proto::CpuPlan {
            version,
            compiled_isa: _,
            buffers,
            steps,
            inputs,
            outputs,
            arena_floats,
            flops,
        } = p;
        if version != PLAN_VERSION {
            return Err(PlanError::Version { found: version });
        }
        let isa = isa.resolve().map_err(PlanError::Isa)?;
        let inputs = inputs
            .into_iter()
            .enumerate()
            .map(|(i, p)| port_from_proto(p, &format!("input {i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = outputs
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let at = format!("output {i}");
                let proto::Output { port, buffer } = o;
                let port = port.ok_or_else(|| invalid(&at, "its port is missing"))?;
                Ok((
                    port_from_proto(port, &at)?,
                    size(buffer, &at, "its buffer")?,
                ))
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        let buffers = buffers
            .into_iter()
            .enumerate()
            .map(|(i, b)| buffer_from_proto(b, &format!("buffer {i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let steps = steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| step_from_proto(i, s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut plan = CpuPlan {
            isa,
            buffers,
            steps,
            inputs,
            outputs,
            arena_floats: size(arena_floats, "the plan", "arena_floats")?,
            flops,
        };
        crate::verify::check(&plan)?;
        // Into the kernels' order now that the lengths are checked (the file's order is the
        // schema's, which every resnetc reads).
        for step in &mut plan.steps {
            if let Kernel::Conv(k) = &mut step.kernel {
                let ocb = k.ocb;
                if let Some(w) = &mut k.winograd {
                    w.u = crate::kernels::from_stored_order(&w.u, w.form, ocb);
                }
            }
        }
        Ok(plan)
    }
}

pub(crate) fn invalid(at: &str, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        at: at.to_string(),
        reason: reason.into(),
    }
}

/// A stored count or index as a `usize`.
fn size(v: u64, at: &str, what: &str) -> Result<usize, PlanError> {
    usize::try_from(v).map_err(|_| invalid(at, format!("{what} = {v} is out of range")))
}

fn sizes(vs: &[u64], at: &str, what: &str) -> Result<Vec<usize>, PlanError> {
    vs.iter().map(|&v| size(v, at, what)).collect()
}

pub(crate) fn product(xs: &[usize]) -> Option<usize> {
    xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x))
}

// ---- Plan → message -------------------------------------------------------------------------

fn port_to_proto(p: &Port) -> proto::Port {
    let Port { name, dims, floats } = p;
    proto::Port {
        name: name.clone(),
        dims: dims.iter().map(|&d| d as u64).collect(),
        floats: *floats as u64,
    }
}

fn buffer_to_proto(b: &Buffer) -> proto::Buffer {
    let Buffer { loc, floats } = b;
    proto::Buffer {
        loc: Some(match *loc {
            Loc::Input(k) => proto::buffer::Loc::Input(k as u64),
            Loc::Arena(o) => proto::buffer::Loc::Arena(o as u64),
        }),
        floats: *floats as u64,
    }
}

fn block_to_proto(b: &Block) -> proto::Block {
    let Block { c, h, w, halo } = *b;
    proto::Block {
        c: c as u64,
        h: h as u64,
        w: w as u64,
        halo: halo as u64,
    }
}

fn step_to_proto(s: &Step) -> proto::Step {
    let Step {
        kernel,
        inputs,
        output,
        node,
    } = s;
    use proto::step::Kernel as K;
    let kernel = match kernel {
        Kernel::ToBlocked(b) => K::ToBlocked(block_to_proto(b)),
        Kernel::ToPlain(b) => K::ToPlain(block_to_proto(b)),
        Kernel::Conv(k) => K::Conv(conv_to_proto(k)),
        Kernel::GlobalAvgPool(b) => K::GlobalAvgPool(block_to_proto(b)),
        Kernel::Gemm(g) => {
            let GemmKernel { k, m, alpha, b, c } = &**g;
            K::Gemm(proto::Gemm {
                k: *k as u64,
                m: *m as u64,
                alpha: *alpha,
                b: b.clone(),
                c: c.clone(),
            })
        }
    };
    proto::Step {
        kernel: Some(kernel),
        inputs: inputs.iter().map(|&b| b as u64).collect(),
        output: *output as u64,
        node: node.clone(),
    }
}

fn conv_to_proto(k: &ConvKernel) -> proto::Conv {
    let ConvKernel {
        input,
        out,
        icb,
        lanes_last,
        ocb,
        kh,
        kw,
        sh,
        sw,
        pt,
        pl,
        weights,
        bias,
        post,
        residual,
        winograd,
    } = k;
    proto::Conv {
        input: Some(block_to_proto(input)),
        out: Some(block_to_proto(out)),
        icb: *icb as u64,
        lanes_last: *lanes_last as u64,
        ocb: *ocb as u64,
        kh: *kh as u64,
        kw: *kw as u64,
        sh: *sh as u64,
        sw: *sw as u64,
        pt: *pt as u64,
        pl: *pl as u64,
        weights: weights.clone(),
        bias: bias.clone(),
        post: post
            .iter()
            .map(|p| {
                let p = match p {
                    Post::Residual => proto::Post::Residual,
                    Post::Relu => proto::Post::Relu,
                };
                p as i32
            })
            .collect(),
        residual: residual.as_ref().map(|r| {
            let ResidualKernel { read, block } = r;
            proto::Residual {
                read: Some(match *read {
                    ResidualRead2::Direct => proto::residual::Read::Direct(proto::Direct {}),
                    ResidualRead2::Subsampled { stride, pad_before } => {
                        proto::residual::Read::Subsampled(proto::Subsampled {
                            stride: stride as u64,
                            pad_before: pad_before as u64,
                        })
                    }
                }),
                block: Some(block_to_proto(block)),
            }
        }),
        winograd: winograd.as_ref().map(|w| {
            let WinogradKernel { form, u } = w;
            proto::Winograd {
                weights: crate::kernels::to_stored_order(u, *form, *ocb),
                tile: form.m() as u32,
            }
        }),
    }
}

// ---- Message → plan (field by field; the semantic checks are in `check`) --------------------

fn port_from_proto(p: proto::Port, at: &str) -> Result<Port, PlanError> {
    let proto::Port { name, dims, floats } = p;
    Ok(Port {
        name,
        dims: sizes(&dims, at, "a dimension")?,
        floats: size(floats, at, "floats")?,
    })
}

fn buffer_from_proto(b: proto::Buffer, at: &str) -> Result<Buffer, PlanError> {
    let proto::Buffer { loc, floats } = b;
    let loc = match loc.ok_or_else(|| invalid(at, "it has no location (input or arena)"))? {
        proto::buffer::Loc::Input(k) => Loc::Input(size(k, at, "its input index")?),
        proto::buffer::Loc::Arena(o) => Loc::Arena(size(o, at, "its arena offset")?),
    };
    Ok(Buffer {
        loc,
        floats: size(floats, at, "floats")?,
    })
}

fn block_from_proto(b: Option<proto::Block>, at: &str, what: &str) -> Result<Block, PlanError> {
    let proto::Block { c, h, w, halo } =
        b.ok_or_else(|| invalid(at, format!("the {what} block is missing")))?;
    Ok(Block {
        c: size(c, at, "a block's channels")?,
        h: size(h, at, "a block's height")?,
        w: size(w, at, "a block's width")?,
        halo: size(halo, at, "a block's halo")?,
    })
}

fn step_from_proto(i: usize, s: proto::Step) -> Result<Step, PlanError> {
    let proto::Step {
        kernel,
        inputs,
        output,
        node,
    } = s;
    let at = format!("step {i} ('{node}')");
    use proto::step::Kernel as K;
    let kernel = match kernel.ok_or_else(|| invalid(&at, "it has no kernel"))? {
        K::ToBlocked(b) => Kernel::ToBlocked(block_from_proto(Some(b), &at, "to-blocked")?),
        K::ToPlain(b) => Kernel::ToPlain(block_from_proto(Some(b), &at, "to-plain")?),
        K::GlobalAvgPool(b) => Kernel::GlobalAvgPool(block_from_proto(Some(b), &at, "pooled")?),
        K::Conv(c) => Kernel::Conv(Box::new(conv_from_proto(c, &at)?)),
        K::Gemm(g) => {
            let proto::Gemm { k, m, alpha, b, c } = g;
            Kernel::Gemm(Box::new(GemmKernel {
                k: size(k, &at, "k")?,
                m: size(m, &at, "m")?,
                alpha,
                b,
                c,
            }))
        }
    };
    Ok(Step {
        kernel,
        inputs: sizes(&inputs, &at, "an input buffer")?,
        output: size(output, &at, "the output buffer")?,
        node,
    })
}

fn conv_from_proto(c: proto::Conv, at: &str) -> Result<ConvKernel, PlanError> {
    let proto::Conv {
        input,
        out,
        icb,
        lanes_last,
        ocb,
        kh,
        kw,
        sh,
        sw,
        pt,
        pl,
        weights,
        bias,
        post,
        residual,
        winograd,
    } = c;
    let post = post
        .into_iter()
        .map(|p| match proto::Post::try_from(p) {
            Ok(proto::Post::Residual) => Ok(Post::Residual),
            Ok(proto::Post::Relu) => Ok(Post::Relu),
            Ok(proto::Post::Unspecified) | Err(_) => Err(invalid(
                at,
                format!("epilogue step {p} is not residual (1) or relu (2)"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let residual = match residual {
        None => None,
        Some(r) => {
            let proto::Residual { read, block } = r;
            let read = match read.ok_or_else(|| invalid(at, "the residual has no read mode"))? {
                proto::residual::Read::Direct(proto::Direct {}) => ResidualRead2::Direct,
                proto::residual::Read::Subsampled(proto::Subsampled { stride, pad_before }) => {
                    ResidualRead2::Subsampled {
                        stride: size(stride, at, "the residual stride")?,
                        pad_before: size(pad_before, at, "the residual's pad_before")?,
                    }
                }
            };
            Some(ResidualKernel {
                read,
                block: block_from_proto(block, at, "residual")?,
            })
        }
    };
    let winograd = match winograd {
        None => None,
        Some(proto::Winograd { weights, tile }) => {
            let form = match tile {
                2 => Form::F2,
                4 => Form::F4,
                m => {
                    let reason = format!("Winograd F({m}×{m}, 3×3) is not a form resnetc has");
                    return Err(invalid(at, reason));
                }
            };
            Some(WinogradKernel { form, u: weights })
        }
    };
    Ok(ConvKernel {
        input: block_from_proto(input, at, "input")?,
        out: block_from_proto(out, at, "output")?,
        icb: size(icb, at, "icb")?,
        lanes_last: size(lanes_last, at, "lanes_last")?,
        ocb: size(ocb, at, "ocb")?,
        kh: size(kh, at, "kh")?,
        kw: size(kw, at, "kw")?,
        sh: size(sh, at, "sh")?,
        sw: size(sw, at, "sw")?,
        pt: size(pt, at, "pt")?,
        pl: size(pl, at, "pl")?,
        weights,
        bias,
        post,
        residual,
        winograd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::BLOCK;
    use crate::{CpuOptions, Session, Winograd};
    use ndarray::{ArrayD, IxDyn};
    use resnetc_ir::{
        validate, Conv, DType, Epilogue, Gemm, Graph, Op, Padding, ResidualRead, Tensor,
        TensorType, ValueRef,
    };

    /// Deterministic values in [-1, 1).
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005) | 1;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn constant(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> Option<ValueRef> {
        let n = shape.iter().product();
        let a = ArrayD::from_shape_vec(IxDyn(shape), values(seed, n)).unwrap();
        Some(g.add_const(name, Tensor::f32(a)).into())
    }

    fn conv(
        g: &mut Graph,
        name: &str,
        x: ValueRef,
        [cin, cout, k, stride, pad]: [usize; 5],
        residual: Option<(ValueRef, ResidualRead)>,
    ) -> ValueRef {
        let mut epilogue = vec![Epilogue::Bias];
        epilogue.extend(residual.map(|(_, r)| Epilogue::AddResidual(r)));
        epilogue.push(Epilogue::Relu);
        let op = Op::FusedConv {
            conv: Conv {
                kernel: [k, k],
                strides: [stride, stride],
                dilations: [1, 1],
                padding: Padding::Explicit([pad; 4]),
                group: 1,
            },
            epilogue,
        };
        let w = constant(g, &format!("{name}.w"), &[cout, cin, k, k], cout as u64);
        let b = constant(g, &format!("{name}.b"), &[cout], 7);
        let slots = [Some(x), w, b, residual.map(|(r, _)| r)];
        g.add_node(name, op, vec![name.into()], &slots).into()
    }

    /// Every kernel kind: conversions, direct and option-A residuals, pooling, Gemm.
    fn small_plan(opts: &CpuOptions) -> CpuPlan {
        let mut g = Graph::new();
        let x: ValueRef = g
            .add_input("x", TensorType::fixed(DType::F32, &[2, 3, 8, 8]))
            .into();
        let c1 = conv(&mut g, "c1", x, [3, 5, 3, 1, 1], None);
        let c2 = conv(
            &mut g,
            "c2",
            c1,
            [5, 5, 3, 1, 1],
            Some((c1, ResidualRead::Direct)),
        );
        let shortcut = ResidualRead::Subsampled {
            stride: 2,
            pad_before: 2,
        };
        let c3 = conv(&mut g, "c3", c2, [5, 10, 1, 2, 0], Some((c2, shortcut)));
        let pool: ValueRef = g
            .add_node(
                "pool",
                Op::GlobalAveragePool,
                vec!["pool".into()],
                &[Some(c3)],
            )
            .into();
        let flat: ValueRef = g
            .add_node(
                "flat",
                Op::Flatten { axis: 1 },
                vec!["flat".into()],
                &[Some(pool)],
            )
            .into();
        let b = constant(&mut g, "fc.b", &[4, 10], 3);
        let c = constant(&mut g, "fc.c", &[4], 4);
        let gemm = Op::Gemm(Gemm {
            alpha: 0.5,
            beta: 2.0,
            trans_a: false,
            trans_b: true,
        });
        let y = g.add_node("fc", gemm, vec!["y".into()], &[Some(flat), b, c]);
        g.add_output("y", y.into());
        let info = validate(&g).unwrap();
        CpuPlan::compile_with(&g, &info, opts).unwrap()
    }

    fn run(plan: &CpuPlan, threads: usize) -> Vec<f32> {
        let batch = 2;
        let x = values(99, batch * plan.inputs()[0].floats);
        let mut y = vec![0f32; batch * plan.outputs().next().unwrap().floats];
        Session::new(plan, threads).run(&x, batch, &mut y).unwrap();
        y
    }

    fn options() -> Vec<CpuOptions> {
        Isa::all_available()
            .into_iter()
            .flat_map(|isa| {
                [Winograd::Off, Winograd::F2, Winograd::F4].map(|w| CpuOptions {
                    isa,
                    winograd: Some(w),
                })
            })
            .collect()
    }

    /// Files keep the schema's order of Winograd weights, `[ξ][ocb][icb][16][16]`, whatever order
    /// the kernels read (so files written before and after a reordering load alike), and a loaded
    /// plan computes what the compiled one does. Checked on a convolution of several input and
    /// output blocks at position ξ = 0, where F(2×2)'s `U` is the kernel's top-left tap.
    #[test]
    fn winograd_weights_are_stored_position_first() {
        let (cin, cout): (usize, usize) = (20, 40);
        let (icb, ocb) = (cin.div_ceil(BLOCK), cout.div_ceil(BLOCK));
        let mut g = Graph::new();
        let x: ValueRef = g
            .add_input("x", TensorType::fixed(DType::F32, &[1, cin, 8, 8]))
            .into();
        let y = conv(&mut g, "c", x, [cin, cout, 3, 1, 1], None);
        g.add_output("y", y);
        let info = validate(&g).unwrap();
        for isa in Isa::all_available() {
            let opts = CpuOptions {
                isa,
                winograd: Some(Winograd::F2),
            };
            let plan = CpuPlan::compile_with(&g, &info, &opts).unwrap();
            let stored = plan.to_proto();
            let conv = stored
                .steps
                .iter()
                .find_map(|s| match &s.kernel {
                    Some(proto::step::Kernel::Conv(c)) => Some(c),
                    _ => None,
                })
                .unwrap();
            let u = &conv.winograd.as_ref().unwrap().weights;
            let w = values(cout as u64, cout * cin * 9);
            for o in 0..cout {
                for i in 0..cin {
                    let at = ((o / BLOCK) * icb + i / BLOCK) * BLOCK * BLOCK
                        + (i % BLOCK) * BLOCK
                        + o % BLOCK;
                    assert_eq!(u[at], w[(o * cin + i) * 9], "{isa:?}: out {o}, in {i}");
                }
            }
            assert_eq!(u.len(), 16 * ocb * icb * BLOCK * BLOCK);
            let loaded = CpuPlan::from_bytes(&plan.to_bytes(), isa).unwrap();
            assert_eq!(loaded.to_bytes(), plan.to_bytes());
            let input = values(5, cin * 64);
            let (mut a, mut b) = (vec![0f32; cout * 64], vec![0f32; cout * 64]);
            Session::new(&plan, 1).run(&input, 1, &mut a).unwrap();
            Session::new(&loaded, 1).run(&input, 1, &mut b).unwrap();
            assert!(
                a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{isa:?}"
            );
        }
    }

    #[test]
    fn plans_round_trip_bit_for_bit() {
        for opts in options() {
            let plan = small_plan(&opts);
            crate::verify::check(&plan).unwrap();
            let bytes = plan.to_bytes();
            let loaded = CpuPlan::from_bytes(&bytes, opts.isa).unwrap();
            assert_eq!(loaded.to_bytes(), bytes, "{opts:?}");
            assert_eq!(loaded.describe(), plan.describe());
            assert_eq!(loaded.winograd_convs(), plan.winograd_convs());
            let want = if opts.winograd == Some(Winograd::Off) {
                0
            } else {
                2
            };
            assert_eq!(loaded.winograd_convs(), want);
            assert_eq!(loaded.flops_per_image(), plan.flops_per_image());
            assert_eq!(loaded.arena_bytes(3), plan.arena_bytes(3));
            for threads in [1, 2] {
                let (a, b) = (run(&plan, threads), run(&loaded, threads));
                assert!(
                    a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{opts:?}"
                );
            }
        }
    }

    /// The weights are the same for every kernel set: a plan compiled for one runs on another
    /// exactly as one compiled for that other.
    #[test]
    fn a_stored_plan_runs_on_any_kernel_set() {
        for from in options() {
            let bytes = small_plan(&from).to_bytes();
            for isa in Isa::all_available() {
                let loaded = CpuPlan::from_bytes(&bytes, isa).unwrap();
                assert_eq!(loaded.isa(), isa);
                let native = small_plan(&CpuOptions {
                    isa,
                    winograd: from.winograd,
                });
                let (a, b) = (run(&native, 1), run(&loaded, 1));
                assert!(
                    a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "compiled for {from:?}, run on {isa}"
                );
            }
        }
        let auto = CpuPlan::from_bytes(&small_plan(&CpuOptions::default()).to_bytes(), Isa::Auto);
        assert_eq!(auto.unwrap().isa(), Isa::Auto.resolve().unwrap());
    }

    fn error(p: &proto::CpuPlan) -> String {
        match CpuPlan::from_bytes(&p.encode_to_vec(), Isa::Portable) {
            Ok(_) => panic!("the damaged plan loaded"),
            Err(e) => e.to_string(),
        }
    }

    fn conv_of(p: &mut proto::CpuPlan, step: usize) -> &mut proto::Conv {
        match p.steps[step].kernel.as_mut() {
            Some(proto::step::Kernel::Conv(c)) => c,
            other => panic!("step {step} is {other:?}"),
        }
    }

    #[test]
    fn damage_is_named_precisely() {
        let good = small_plan(&CpuOptions {
            isa: Isa::Portable,
            winograd: Some(Winograd::F2),
        })
        .to_proto();
        // Steps: 0 to-blocked x, 1 c1, 2 c2, 3 c3, 4 pool, 5 fc.
        type Damage = Box<dyn Fn(&mut proto::CpuPlan)>;
        let mut cases: Vec<(&str, Damage)> = vec![
            ("version", Box::new(|p| p.version = 9)),
            ("buffer id", Box::new(|p| p.steps[2].inputs[0] = 99)),
            (
                "read before written",
                Box::new(|p| p.steps[1].inputs[0] = 3),
            ),
            (
                "written twice",
                Box::new(|p| p.steps[2].output = p.steps[1].output),
            ),
            (
                "weights",
                Box::new(|p| {
                    conv_of(p, 3).weights.pop();
                }),
            ),
            // c1 and c2 are all Winograd tiles, so they keep no direct weights.
            (
                "direct weights",
                Box::new(|p| conv_of(p, 2).weights.push(0.0)),
            ),
            (
                "winograd dropped",
                Box::new(|p| conv_of(p, 2).winograd = None),
            ),
            (
                "winograd",
                Box::new(|p| {
                    conv_of(p, 1).winograd.as_mut().unwrap().weights.push(0.0);
                }),
            ),
            (
                "winograd on 1x1",
                Box::new(|p| {
                    let u = conv_of(p, 1).winograd.clone();
                    conv_of(p, 3).winograd = u;
                }),
            ),
            (
                "winograd form",
                Box::new(|p| {
                    conv_of(p, 2).winograd.as_mut().unwrap().tile = 3;
                }),
            ),
            ("bias", Box::new(|p| conv_of(p, 1).bias.clear())),
            ("halo", Box::new(|p| conv_of(p, 1).pt = 2)),
            ("window", Box::new(|p| conv_of(p, 3).kh = 3)),
            ("lanes", Box::new(|p| conv_of(p, 2).lanes_last = 16)),
            ("residual", Box::new(|p| conv_of(p, 2).residual = None)),
            ("post", Box::new(|p| conv_of(p, 1).post.push(7))),
            ("arena", Box::new(|p| p.arena_floats = 16)),
            (
                "overlap",
                Box::new(|p| {
                    // c2 written over c1, which it still reads.
                    let o = p.steps[1].output as usize;
                    let loc = p.buffers[o].loc;
                    let o2 = p.steps[2].output as usize;
                    p.buffers[o2].loc = loc;
                }),
            ),
            ("no kernel", Box::new(|p| p.steps[4].kernel = None)),
            (
                "port",
                Box::new(|p| p.outputs[0].port.as_mut().unwrap().floats = 5),
            ),
        ];
        cases.push((
            "gemm",
            Box::new(|p| {
                if let Some(proto::step::Kernel::Gemm(g)) = p.steps[5].kernel.as_mut() {
                    g.b.truncate(3);
                }
            }),
        ));
        let mut report = Vec::new();
        for (name, damage) in &cases {
            let mut p = good.clone();
            damage(&mut p);
            report.push(format!("{name}: {}", error(&p)));
        }
        let report = report.join("\n");
        for want in [
            "version: the stored CPU plan has format version 9, this resnetc reads version 1",
            "buffer id: the stored CPU plan is invalid: step 2 ('c2'): buffer 99 does not exist",
            "read before written: the stored CPU plan is invalid: step 1 ('c1'): it reads buffer 3, which no earlier step writes",
            "written twice: the stored CPU plan is invalid: step 2 ('c2'): it writes buffer 2, which step 1 already wrote",
            "weights: the stored CPU plan is invalid: step 3 ('c3'): the weights hold 255, but ocb·icb·kh·kw·256 = 1·1·1·1·256 = 256",
            "direct weights: the stored CPU plan is invalid: step 2 ('c2'): the direct weights hold 1, but Winograd F(2×2) computes all 8 output rows, so there are none",
            "winograd dropped: the stored CPU plan is invalid: step 2 ('c2'): the weights hold 0, but ocb·icb·kh·kw·256 = 1·1·3·3·256 = 2304",
            "winograd: the stored CPU plan is invalid: step 1 ('c1'): the Winograd weights hold 4097, but (m+2)²·ocb·icb·256 = 16·1·1·256 = 4096",
            "winograd on 1x1: the stored CPU plan is invalid: step 3 ('c3'): it has Winograd F(2×2) weights, but a 1×1 stride-2×2",
            "winograd form: the stored CPU plan is invalid: step 2 ('c2'): Winograd F(3×3, 3×3) is not a form",
            "bias: the stored CPU plan is invalid: step 1 ('c1'): the bias holds 0, but 16·ocb = 16·1 = 16",
            "halo: the stored CPU plan is invalid: step 1 ('c1'): padding top 2, left 1 exceeds the input's halo of 1",
            "window: the stored CPU plan is invalid: step 3 ('c3'): 4 output rows at stride 2 with a kernel of 3 read past the 8 input rows, padding 0 and halo 0",
            "lanes: the stored CPU plan is invalid: step 2 ('c2'): lanes_last is 16, but the channels of the last input block = 5",
            "residual: the stored CPU plan is invalid: step 2 ('c2'): the epilogue has 1 residual add(s), the kernel 0 residual input(s)",
            "post: the stored CPU plan is invalid: step 1 ('c1'): epilogue step 7 is not residual (1) or relu (2)",
            "arena: the stored CPU plan is invalid: buffer 1:",
            "overlap: the stored CPU plan is invalid: step 2 ('c2'): it writes arena floats",
            "no kernel: the stored CPU plan is invalid: step 4 ('pool'): it has no kernel",
            "port: the stored CPU plan is invalid: output 0 ('y'): dimensions [4] and 5 floats per image disagree",
            "gemm: the stored CPU plan is invalid: step 5 ('fc'): B holds 3, but k·m = 10·4 = 40",
        ] {
            assert!(report.contains(want), "missing {want:?} in:\n{report}");
        }
        let mut truncated = good.encode_to_vec();
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(
            CpuPlan::from_bytes(&truncated, Isa::Auto),
            Err(PlanError::Decode(_))
        ));
    }

    /// Fields set to awkward values, one or two at a time: loading never panics, and a plan that
    /// loads runs without panicking (on every kernel set, one thread and two). This is what the
    /// checks are for: the SIMD kernels' unchecked loads trust them.
    #[test]
    fn damaged_plans_are_refused_or_run() {
        let good = small_plan(&CpuOptions {
            isa: Isa::Portable,
            winograd: Some(Winograd::F4),
        })
        .to_proto();
        const AWKWARD: [u64; 10] = [0, 1, 2, 3, 5, 6, 15, 16, 17, u64::MAX];
        let mut s = 0x5eedu64;
        let mut next = |n: usize| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as usize % n
        };
        let mut loaded = 0;
        for _ in 0..4000 {
            let mut p = good.clone();
            for _ in 0..1 + next(2) {
                let v = AWKWARD[next(AWKWARD.len())];
                let field = next(24);
                let step = next(p.steps.len());
                let buffer = next(p.buffers.len());
                let block = |b: &mut proto::Block, f: usize| match f % 4 {
                    0 => b.c = v,
                    1 => b.h = v,
                    2 => b.w = v,
                    _ => b.halo = v,
                };
                match field {
                    0 => p.arena_floats = v,
                    1 => p.buffers[buffer].floats = v,
                    2 => p.buffers[buffer].loc = Some(proto::buffer::Loc::Arena(v)),
                    3 => p.buffers[buffer].loc = Some(proto::buffer::Loc::Input(v)),
                    4 => p.steps[step].output = v,
                    5 => p.steps[step].inputs.push(v),
                    6 => {
                        if let Some(r) = p.steps[step].inputs.first_mut() {
                            *r = v
                        }
                    }
                    7 => p.outputs[0].buffer = v,
                    8 => p.inputs[0].dims[next(3)] = v,
                    23 => {
                        let other = next(p.steps.len());
                        p.steps.swap(step, other)
                    }
                    _ => match p.steps[step].kernel.as_mut() {
                        Some(proto::step::Kernel::ToBlocked(b))
                        | Some(proto::step::Kernel::ToPlain(b))
                        | Some(proto::step::Kernel::GlobalAvgPool(b)) => block(b, field),
                        Some(proto::step::Kernel::Conv(c)) => match field {
                            9 => block(c.input.as_mut().unwrap(), next(4)),
                            10 => block(c.out.as_mut().unwrap(), next(4)),
                            11 => c.icb = v,
                            12 => c.lanes_last = v,
                            13 => c.ocb = v,
                            14 => c.kh = v,
                            15 => c.kw = v,
                            16 => c.sh = v,
                            17 => c.sw = v,
                            18 => c.pt = v,
                            19 => c.pl = v,
                            20 => match c.residual.as_mut() {
                                Some(r) => match r.read.as_mut() {
                                    Some(proto::residual::Read::Subsampled(s))
                                        if v.is_multiple_of(2) =>
                                    {
                                        s.stride = v
                                    }
                                    Some(proto::residual::Read::Subsampled(s)) => s.pad_before = v,
                                    _ => block(r.block.as_mut().unwrap(), next(4)),
                                },
                                None => c.post.push(1),
                            },
                            21 => c.winograd = None,
                            _ => c.weights.truncate(v.min(1 << 20) as usize),
                        },
                        Some(proto::step::Kernel::Gemm(g)) => match field % 3 {
                            0 => g.k = v,
                            1 => g.m = v,
                            _ => g.c.truncate(v.min(1 << 20) as usize),
                        },
                        None => {}
                    },
                }
            }
            if let Ok(plan) = CpuPlan::from_bytes(&p.encode_to_vec(), Isa::Portable) {
                loaded += 1;
                for isa in Isa::all_available() {
                    let mut plan = plan.clone();
                    plan.isa = isa;
                    run(&plan, 1);
                    run(&plan, 2);
                }
            }
        }
        // Some damage is harmless (an unused buffer's offset, a swap of independent steps).
        assert!(loaded > 0);
    }
}
