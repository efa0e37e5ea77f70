//! The stored-plan verifier: everything the executor and the kernels assume of a [`CpuPlan`],
//! checked before a plan read from a file runs.
//!
//! [`CpuPlan::from_bytes`] checks everything the executor and the kernels
//! assume, before any of it runs: buffer ids in range, every step reading only graph inputs and
//! buffers earlier steps wrote, each buffer written once, slice lengths equal to what the geometry
//! needs (`weights.len() == ocb·icb·kh·kw·256`, Winograd `(m+2)²·ocb·icb·256`, bias `16·ocb`, Gemm
//! `k·m` and `m`), convolution windows inside the input and its halo, residual geometry, buffer
//! sizes equal to what each kernel reads and writes, arena offsets aligned and inside
//! `arena_floats`, and no step writing over a buffer that is still to be read. The SIMD kernels'
//! unchecked loads are bounded only by `StripArgs::check`; a plan that loads never fails it. Every
//! size is computed with checked arithmetic and bounded by 2³¹ floats per image. A failure is a
//! [`PlanError`] naming the step (and its node), buffer or port.
//!

use std::collections::BTreeMap;

use crate::program::{
    has_direct_rows, Block, BufId, Buffer, ConvKernel, GemmKernel, Kernel, Loc, Post,
    ResidualKernel, ResidualRead2, Step, WinogradKernel, ALIGN, BLOCK, MAX_PAD,
};
use crate::serial::{invalid, product, MAX_FLOATS};
use crate::{CpuPlan, PlanError, Port};

/// Checks a plan as the module documentation lists. Compiled plans pass by construction (tested);
/// loaded ones must before they run.
pub(crate) fn check(plan: &CpuPlan) -> Result<(), PlanError> {
    let CpuPlan {
        isa: _,
        buffers,
        steps,
        inputs,
        outputs,
        arena_floats,
        flops: _,
    } = plan;
    let arena_floats = *arena_floats;
    if inputs.is_empty() {
        return Err(invalid("the plan", "it has no inputs"));
    }
    if outputs.is_empty() {
        return Err(invalid("the plan", "it has no outputs"));
    }
    if arena_floats > MAX_FLOATS {
        return Err(invalid(
            "the plan",
            format!(
                "an arena of {arena_floats} floats per image exceeds the limit of {MAX_FLOATS}"
            ),
        ));
    }
    for (i, p) in inputs.iter().enumerate() {
        check_port(p, &format!("input {i} ('{}')", p.name))?;
    }

    // Where each arena buffer lives, in floats per image.
    let mut spans = Vec::with_capacity(buffers.len());
    for (id, b) in buffers.iter().enumerate() {
        let at = format!("buffer {id}");
        let Buffer { loc, floats } = *b;
        if floats > MAX_FLOATS {
            return Err(invalid(
                &at,
                format!("{floats} floats per image exceed the limit of {MAX_FLOATS}"),
            ));
        }
        spans.push(match loc {
            Loc::Input(k) => {
                let port = inputs.get(k).ok_or_else(|| {
                    invalid(
                        &at,
                        format!("it is graph input {k}, but the plan has {} inputs", inputs.len()),
                    )
                })?;
                if port.floats != floats {
                    return Err(invalid(
                        &at,
                        format!(
                            "it is graph input {k} ('{}') of {} floats per image, but holds {floats}",
                            port.name, port.floats
                        ),
                    ));
                }
                None
            }
            Loc::Arena(o) => {
                if !o.is_multiple_of(ALIGN) {
                    return Err(invalid(
                        &at,
                        format!("arena offset {o} is not a multiple of {ALIGN}"),
                    ));
                }
                // The allocator rounds every buffer up to ALIGN floats, and so does the arena size.
                let end = o
                    .checked_add(floats.div_ceil(ALIGN) * ALIGN)
                    .filter(|&e| e <= arena_floats)
                    .ok_or_else(|| {
                        invalid(
                            &at,
                            format!(
                                "{floats} floats at arena offset {o} do not fit in the arena of {arena_floats} floats per image"
                            ),
                        )
                    })?;
                debug_assert!(end >= o + floats);
                Some(o..o + floats)
            }
        });
    }
    let get = |id: BufId, at: &str| {
        buffers.get(id).ok_or_else(|| {
            invalid(
                at,
                format!(
                    "buffer {id} does not exist (the plan has {})",
                    buffers.len()
                ),
            )
        })
    };

    // Data flow: each arena buffer is written by exactly one step, before any step reads it.
    let mut written: Vec<Option<usize>> = vec![None; buffers.len()];
    for (i, s) in steps.iter().enumerate() {
        let Step {
            kernel,
            inputs: reads,
            output,
            node,
        } = s;
        let at = format!("step {i} ('{node}')");
        let mut read_floats = Vec::with_capacity(reads.len());
        for &r in reads {
            let b = get(r, &at)?;
            if matches!(b.loc, Loc::Arena(_)) && written[r].is_none() {
                return Err(invalid(
                    &at,
                    format!("it reads buffer {r}, which no earlier step writes"),
                ));
            }
            read_floats.push(b.floats);
        }
        let o = get(*output, &at)?;
        if let Loc::Input(k) = o.loc {
            return Err(invalid(
                &at,
                format!("it writes buffer {output}, which is graph input {k}"),
            ));
        }
        if let Some(j) = written[*output] {
            return Err(invalid(
                &at,
                format!("it writes buffer {output}, which step {j} already wrote"),
            ));
        }
        written[*output] = Some(i);
        check_kernel(kernel, &at, &read_floats, o.floats)?;
    }
    for (i, (port, id)) in outputs.iter().enumerate() {
        let at = format!("output {i} ('{}')", port.name);
        check_port(port, &at)?;
        let b = get(*id, &at)?;
        if matches!(b.loc, Loc::Arena(_)) && written[*id].is_none() {
            return Err(invalid(&at, format!("its buffer {id} is never written")));
        }
        if b.floats != port.floats {
            return Err(invalid(
                &at,
                format!(
                    "it has {} floats per image, its buffer {id} {}",
                    port.floats, b.floats
                ),
            ));
        }
    }

    // Memory: no step writes over a buffer that a later step (or the caller, for an output) still
    // reads, its own inputs included. A buffer is live from after the step that writes it until
    // after the last step that reads it; live buffers never overlap, so among them, kept by
    // offset, only the one starting last before a new output's end can overlap it.
    let mut last_use: Vec<Option<usize>> = vec![None; buffers.len()];
    for (i, s) in steps.iter().enumerate() {
        for &r in &s.inputs {
            last_use[r] = Some(i);
        }
    }
    for (_, id) in outputs {
        last_use[*id] = Some(steps.len());
    }
    let mut frees: Vec<Vec<BufId>> = vec![Vec::new(); steps.len()];
    let mut live: BTreeMap<usize, BufId> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        let out = spans[s.output]
            .clone()
            .expect("checked: steps write arena buffers");
        if !out.is_empty() {
            if let Some((_, &b)) = live.range(..out.end).next_back() {
                let span = spans[b].clone().expect("only arena buffers are live");
                if span.end > out.start {
                    let reader = match last_use[b] {
                        Some(l) if l < steps.len() => format!("step {l} ('{}')", steps[l].node),
                        _ => "the caller (it is a graph output)".to_string(),
                    };
                    return Err(invalid(
                        &format!("step {i} ('{}')", s.node),
                        format!(
                            "it writes arena floats {}..{} per image, over buffer {b} (floats {}..{}), which {reader} still reads",
                            out.start, out.end, span.start, span.end
                        ),
                    ));
                }
            }
        }
        for b in frees[i].drain(..) {
            if let Some(span) = spans[b].as_ref().filter(|s| !s.is_empty()) {
                live.remove(&span.start);
            }
        }
        match last_use[s.output] {
            Some(l) if l > i && !out.is_empty() => {
                live.insert(out.start, s.output);
                if l < steps.len() {
                    frees[l].push(s.output);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_port(p: &Port, at: &str) -> Result<(), PlanError> {
    let Port {
        name: _,
        dims,
        floats,
    } = p;
    if product(dims) != Some(*floats) || *floats == 0 || *floats > MAX_FLOATS {
        return Err(invalid(
            at,
            format!("dimensions {dims:?} and {floats} floats per image disagree (or are empty)"),
        ));
    }
    Ok(())
}

/// Checks a block's dimensions and returns its floats per image.
fn check_block(b: &Block, at: &str, what: &str) -> Result<usize, PlanError> {
    let Block { c, h, w, halo } = *b;
    if c == 0 || h == 0 || w == 0 {
        return Err(invalid(
            at,
            format!("the {what} block is {c}×{h}×{w}; every dimension must be at least 1"),
        ));
    }
    if halo > MAX_PAD {
        return Err(invalid(
            at,
            format!("the {what} block's halo is {halo}, more than {MAX_PAD}"),
        ));
    }
    let floats = h
        .checked_add(2 * halo)
        .zip(w.checked_add(2 * halo))
        .and_then(|(hp, wp)| product(&[c.div_ceil(BLOCK), hp, wp, BLOCK]))
        .filter(|&f| f <= MAX_FLOATS)
        .ok_or_else(|| {
            invalid(
                at,
                format!("the {what} block {c}×{h}×{w} (halo {halo}) exceeds {MAX_FLOATS} floats"),
            )
        })?;
    Ok(floats)
}

/// `got == want`, or an error naming `what` and how `want` is computed.
fn expect(
    at: &str,
    what: &str,
    got: usize,
    want: Option<usize>,
    how: &str,
) -> Result<(), PlanError> {
    match want {
        Some(w) if w == got => Ok(()),
        Some(w) => Err(invalid(at, format!("{what} {got}, but {how} = {w}"))),
        None => Err(invalid(at, format!("{what} {got}, but {how} overflows"))),
    }
}

/// The buffers a step reads and writes must be exactly as large as its kernel reads and writes.
fn check_kernel(kernel: &Kernel, at: &str, reads: &[usize], out: usize) -> Result<(), PlanError> {
    let (want_reads, want_out) = match kernel {
        Kernel::ToBlocked(b) => {
            let floats = check_block(b, at, "to-blocked")?;
            (vec![b.c * b.h * b.w], floats)
        }
        Kernel::ToPlain(b) => {
            let floats = check_block(b, at, "to-plain")?;
            (vec![floats], b.c * b.h * b.w)
        }
        Kernel::GlobalAvgPool(b) => (vec![check_block(b, at, "pooled")?], b.c),
        Kernel::Gemm(g) => {
            let GemmKernel {
                k,
                m,
                alpha: _,
                b,
                c,
            } = &**g;
            if *k == 0 || *m == 0 || *k > MAX_FLOATS || *m > MAX_FLOATS {
                return Err(invalid(at, format!("Gemm of {k}×{m}")));
            }
            expect(
                at,
                "B holds",
                b.len(),
                k.checked_mul(*m),
                &format!("k·m = {k}·{m}"),
            )?;
            expect(at, "C holds", c.len(), Some(*m), "m")?;
            (vec![*k], *m)
        }
        Kernel::Conv(k) => check_conv(k, at)?,
    };
    if reads.len() != want_reads.len() {
        return Err(invalid(
            at,
            format!(
                "it reads {} buffers, its kernel takes {}",
                reads.len(),
                want_reads.len()
            ),
        ));
    }
    for (slot, (&got, &want)) in reads.iter().zip(&want_reads).enumerate() {
        if got != want {
            return Err(invalid(
                at,
                format!("its input {slot} holds {got} floats per image, its kernel reads {want}"),
            ));
        }
    }
    if out != want_out {
        return Err(invalid(
            at,
            format!("its output holds {out} floats per image, its kernel writes {want_out}"),
        ));
    }
    Ok(())
}

/// A convolution's geometry and slices; returns the floats per image it reads (operand, then
/// residual) and writes.
fn check_conv(k: &ConvKernel, at: &str) -> Result<(Vec<usize>, usize), PlanError> {
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
    let (icb, ocb, kh, kw, sh, sw, pt, pl) = (*icb, *ocb, *kh, *kw, *sh, *sw, *pt, *pl);
    let in_floats = check_block(input, at, "input")?;
    let out_floats = check_block(out, at, "output")?;
    expect(
        at,
        "icb is",
        icb,
        Some(input.c.div_ceil(BLOCK)),
        "⌈input channels/16⌉",
    )?;
    expect(
        at,
        "ocb is",
        ocb,
        Some(out.c.div_ceil(BLOCK)),
        "⌈output channels/16⌉",
    )?;
    expect(
        at,
        "lanes_last is",
        *lanes_last,
        Some(input.c - (icb - 1) * BLOCK),
        "the channels of the last input block",
    )?;
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
        return Err(invalid(
            at,
            format!("kernel {kh}×{kw} with strides {sh}×{sw}; each must be at least 1"),
        ));
    }
    if pt > input.halo || pl > input.halo {
        return Err(invalid(
            at,
            format!(
                "padding top {pt}, left {pl} exceeds the input's halo of {}",
                input.halo
            ),
        ));
    }
    // The window of the last output row (column) must end inside the input and its halo.
    for (what, o, s, k, i, p) in [
        ("rows", out.h, sh, kh, input.h, pt),
        ("columns", out.w, sw, kw, input.w, pl),
    ] {
        let reach = (o - 1).checked_mul(s).and_then(|r| r.checked_add(k));
        if reach.is_none_or(|r| r > i + p + input.halo) {
            return Err(invalid(
                at,
                format!(
                    "{o} output {what} at stride {s} with a kernel of {k} read past the {i} input {what}, padding {p} and halo {}",
                    input.halo
                ),
            ));
        }
    }
    let per_block = BLOCK * BLOCK;
    if let Some(w) = winograd {
        let WinogradKernel { form, u } = w;
        // The tiles cover the output's width exactly and at least one row of them fits; the input
        // they read is what the direct kernel reads for the same rows (checked above).
        let m = form.m();
        if (kh, kw, sh, sw) != (3, 3, 1, 1) || !out.w.is_multiple_of(m) || out.h < m {
            return Err(invalid(
                at,
                format!(
                    "it has Winograd F({m}×{m}) weights, but a {kh}×{kw} stride-{sh}×{sw} convolution to {}×{} has no such form (3×3, stride 1, width a multiple of {m}, height ≥ {m})",
                    out.h, out.w
                ),
            ));
        }
        let xi = form.positions();
        expect(
            at,
            "the Winograd weights hold",
            u.len(),
            product(&[xi, ocb, icb, per_block]),
            &format!("(m+2)²·ocb·icb·256 = {xi}·{ocb}·{icb}·256"),
        )?;
    }
    let form = winograd.as_ref().map(|w| w.form);
    if has_direct_rows(form, out.h) {
        expect(
            at,
            "the weights hold",
            weights.len(),
            product(&[ocb, icb, kh, kw, per_block]),
            &format!("ocb·icb·kh·kw·256 = {ocb}·{icb}·{kh}·{kw}·256"),
        )?;
    } else if !weights.is_empty() {
        let m = form.map_or(1, |f| f.m());
        return Err(invalid(
            at,
            format!(
                "the direct weights hold {}, but Winograd F({m}×{m}) computes all {} output rows, so there are none",
                weights.len(),
                out.h
            ),
        ));
    }
    expect(
        at,
        "the bias holds",
        bias.len(),
        Some(ocb * BLOCK),
        &format!("16·ocb = 16·{ocb}"),
    )?;
    let adds = post.iter().filter(|p| **p == Post::Residual).count();
    if adds != residual.is_some() as usize {
        return Err(invalid(
            at,
            format!(
                "the epilogue has {adds} residual add(s), the kernel {} residual input(s)",
                residual.is_some() as usize
            ),
        ));
    }
    let mut reads = vec![in_floats];
    if let Some(r) = residual {
        let ResidualKernel { read, block } = r;
        reads.push(check_block(block, at, "residual")?);
        match *read {
            ResidualRead2::Direct => {
                if (block.c, block.h, block.w) != (out.c, out.h, out.w) {
                    return Err(invalid(
                        at,
                        format!(
                            "the residual is {}×{}×{}, the output {}×{}×{}",
                            block.c, block.h, block.w, out.c, out.h, out.w
                        ),
                    ));
                }
            }
            ResidualRead2::Subsampled { stride, pad_before } => {
                if stride == 0
                    || block.c.checked_add(pad_before).is_none_or(|c| c > out.c)
                    || block.h.div_ceil(stride) != out.h
                    || block.w.div_ceil(stride) != out.w
                {
                    return Err(invalid(
                        at,
                        format!(
                            "a residual of {}×{}×{} read at stride {stride} after {pad_before} zero channels does not fit the {}×{}×{} output",
                            block.c, block.h, block.w, out.c, out.h, out.w
                        ),
                    ));
                }
            }
        }
    }
    Ok((reads, out_floats))
}
