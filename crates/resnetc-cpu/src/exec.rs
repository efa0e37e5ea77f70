//! Running a plan: [`Session`] owns the arenas and the thread pool, so repeated runs at the same
//! batch allocate nothing.
//!
//! Two ways to use threads, both on a [`Team`] (the caller and its helpers), where work goes to
//! whichever member claims it first, so a member descheduled on a busy machine does not hold the
//! others up. With at least as many images as threads (and an even split, or at least four images
//! per thread) the batch is cut into groups of images ([`images_per_group`]), each run through the
//! whole network by one member in an arena of its own, so the group's activations stay in that
//! core's caches and each layer's weights serve the whole group. Otherwise (batch 1, say) the team goes through the
//! plan step by step ([`run_steps_together`]), each convolution cut into chunks of rows (Winograd
//! ones into rows of tiles, with all their channel blocks, or into channel blocks where the rows
//! are too few: [`kernels::splits_channels`]); the result equals one thread's to the bit.

use crate::kernels;
use crate::program::{Buffer, CpuPlan, Kernel, Loc, Step, BLOCK};
use crate::team::Team;
use crate::CpuError;
use std::ops::Range;

/// Threads to use when asked for 0: as many as this process may run at once, which
/// `available_parallelism` reads from the affinity mask and the cgroup CPU quota.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The most threads a session starts, whatever it is asked for; the front door caps requests at
/// [`default_threads`] with a note, this only keeps a direct caller from starting 100,000 threads.
pub const MAX_THREADS: usize = resnetc_ir::limits::THREADS.value as usize;

/// An aligned, growable arena.
#[derive(Default)]
struct Arena {
    data: Vec<f32>,
}

impl Arena {
    /// At least `floats` floats starting at a 64-byte boundary.
    fn get(&mut self, floats: usize) -> &mut [f32] {
        if self.data.len() < floats + BLOCK {
            self.data = vec![0f32; floats + BLOCK];
        }
        let skip = self.data.as_ptr().align_offset(64).min(BLOCK);
        &mut self.data[skip..skip + floats]
    }
}

/// The plan a session runs: borrowed, or shared ([`Session::shared`], a session that owns its
/// plan and can outlive the caller's borrow).
enum PlanRef<'p> {
    Borrowed(&'p CpuPlan),
    Shared(std::sync::Arc<CpuPlan>),
}

impl std::ops::Deref for PlanRef<'_> {
    type Target = CpuPlan;
    fn deref(&self) -> &CpuPlan {
        match self {
            PlanRef::Borrowed(p) => p,
            PlanRef::Shared(p) => p,
        }
    }
}

/// A plan ready to run repeatedly: its arenas and threads.
pub struct Session<'p> {
    plan: PlanRef<'p>,
    threads: usize,
    team: Option<Team>,
    arenas: Vec<Arena>,
    /// Each step's chunks in the current run (kept to allocate nothing per run).
    chunks: Vec<usize>,
    /// The images a thread takes through the network together ([`images_per_group`]).
    group: usize,
}

impl<'p> Session<'p> {
    /// A session on `threads` threads (0: [`default_threads`]; at most [`MAX_THREADS`]).
    pub fn new(plan: &'p CpuPlan, threads: usize) -> Session<'p> {
        Session::with_plan(PlanRef::Borrowed(plan), threads)
    }

    fn with_plan(plan: PlanRef<'p>, threads: usize) -> Session<'p> {
        let threads = match threads {
            0 => default_threads(),
            t => t.min(MAX_THREADS),
        };
        // A team that cannot be started (no threads left) degrades to running on the caller's thread.
        let team = Team::new(threads);
        let threads = team.as_ref().map_or(1, Team::members);
        Session {
            group: images_per_group(plan.weight_bytes(), threads),
            plan,
            threads,
            team,
            arenas: (0..threads).map(|_| Arena::default()).collect(),
            chunks: Vec::new(),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The images per arena when a run of `batch` images divides the batch among the threads: a
    /// group, or all of a thread's images if fewer.
    pub(crate) fn group_size(&self, batch: usize) -> usize {
        self.group.min(batch.div_ceil(self.threads)).max(1)
    }

    pub fn plan(&self) -> &CpuPlan {
        &self.plan
    }

    /// Runs a plan with one input and one output: `input` holds `batch` images (plain NCHW),
    /// `output` receives `batch` results.
    pub fn run(&mut self, input: &[f32], batch: usize, output: &mut [f32]) -> Result<(), CpuError> {
        self.run_many(&[input], batch, &mut [output])
    }

    /// Runs a plan with any number of inputs and outputs, in the graph's order.
    pub fn run_many(
        &mut self,
        inputs: &[&[f32]],
        batch: usize,
        outputs: &mut [&mut [f32]],
    ) -> Result<(), CpuError> {
        let plan: &CpuPlan = &self.plan;
        if inputs.len() != plan.inputs.len() {
            return Err(CpuError::Count {
                what: "inputs",
                expected: plan.inputs.len(),
                got: inputs.len(),
            });
        }
        if outputs.len() != plan.outputs.len() {
            return Err(CpuError::Count {
                what: "outputs",
                expected: plan.outputs.len(),
                got: outputs.len(),
            });
        }
        for (x, p) in inputs.iter().zip(&plan.inputs) {
            if x.len() != p.floats * batch {
                return Err(CpuError::BufferSize {
                    what: format!("input '{}'", p.name),
                    got: x.len(),
                    expected: p.floats * batch,
                    batch,
                });
            }
        }
        for (y, (p, _)) in outputs.iter().zip(&plan.outputs) {
            if y.len() != p.floats * batch {
                return Err(CpuError::BufferSize {
                    what: format!("output '{}'", p.name),
                    got: y.len(),
                    expected: p.floats * batch,
                    batch,
                });
            }
        }
        if batch == 0 {
            return Ok(());
        }
        let t = self.threads;
        let group = self.group_size(batch);
        match (&mut self.team, splits_batch(t, batch, outputs.len())) {
            (None, true) => run_groups(
                plan,
                group,
                &mut self.arenas[0],
                inputs,
                0,
                &mut *outputs[0],
            ),
            (Some(team), true) => run_groups_together(
                team,
                plan,
                group,
                &mut self.arenas,
                inputs,
                batch,
                &mut *outputs[0],
            ),
            (None, false) => {
                let arena = self.arenas[0].get(plan.arena_floats * batch);
                run_steps(plan, arena, inputs, 0, batch, outputs)
            }
            (Some(team), false) => {
                let arena = self.arenas[0].get(plan.arena_floats * batch);
                run_steps_together(team, &mut self.chunks, plan, arena, inputs, batch, outputs)
            }
        }
        Ok(())
    }
}

/// Images a thread takes through the network together when it splits the batch: each layer then
/// runs on all of them before the next, so its weights (Winograd F(4×4)'s are 4× the size of the
/// 3×3 kernels: 13.3 MB for resnet56, far more than a core's L2) are streamed once per group
/// rather than once per image, while a group's activations mostly stay in the core's caches.
/// About one image per MiB of weights, in a power of two shared out among the threads, and 4 to
/// [`MAX_GROUP`] per thread. Measured on Zen 5 (AVX-512, 1 MiB L2), batch 64, one thread, medians
/// of 4-6 alternating runs, ms by group of 4 / 8 / 16: resnet20 (4.0 MB) 14.7 / 14.3 / 14.5;
/// resnet32 (7.1 MB) 23.8 / 21.4 / 22.6; resnet44 (10.2 MB) 33.0 / 30.5 / 30.7; resnet56
/// (13.3 MB) 56.8 / 45.7 / 40.8 (32: 40.6); resnet110 (zoo, 27 MB) 98 / - / 86 (32: 79). On two
/// threads resnet56 ran 25.7 ms with groups of 4 and 26.5-34.3 ms with 16: both cores then stream
/// their groups through one shared L3.
fn images_per_group(weight_bytes: usize, threads: usize) -> usize {
    let mib = weight_bytes as f64 / (1u64 << 20) as f64;
    let images = mib.max(1.0).log2().round().exp2() as usize;
    (images / threads.max(1)).clamp(MIN_GROUP, MAX_GROUP)
}

/// The smallest group [`images_per_group`] chooses (measured on a Xeon AVX-512 with 2 MiB of L2,
/// resnet56, one thread: 1 image 664, 2 → 714, 4 → 814, 8 → 806 images/s).
const MIN_GROUP: usize = 4;

/// The largest group: 32 images of resnet110's activations are a 6.8 MiB arena.
const MAX_GROUP: usize = 32;

/// Runs the images whose outputs `out` receives, the first being `image0`, `group` at a time
/// ([`Session::group_size`]: never more than there are) through the whole network.
fn run_groups(
    plan: &CpuPlan,
    group: usize,
    arena: &mut Arena,
    inputs: &[&[f32]],
    image0: usize,
    out: &mut [f32],
) {
    let out_floats = plan.outputs[0].0.floats;
    let arena = arena.get(plan.arena_floats * group);
    for (j, y) in out.chunks_mut(group * out_floats).enumerate() {
        let n = y.len() / out_floats;
        let mut y = y;
        run_steps(
            plan,
            &mut arena[..plan.arena_floats * n],
            inputs,
            image0 + j * group,
            n,
            std::slice::from_mut(&mut y),
        );
    }
}

/// Whether a run divides the batch among the threads, each taking its images one at a time
/// through the whole network (one output only, and enough images to go round evenly), rather than
/// splitting every convolution among the threads.
pub(crate) fn splits_batch(threads: usize, batch: usize, outputs: usize) -> bool {
    outputs == 1
        && batch > 1
        && batch >= threads
        && (batch.is_multiple_of(threads) || batch >= 4 * threads)
}

impl Session<'static> {
    /// A session that holds its plan by `Arc`, for callers that keep the session longer than any
    /// borrow (a library handle, a Python object).
    pub fn shared(plan: std::sync::Arc<CpuPlan>, threads: usize) -> Session<'static> {
        Session::with_plan(PlanRef::Shared(plan), threads)
    }
}

impl CpuPlan {
    /// Runs once on a fresh single-use [`Session`] with all cores; keep a session to run repeatedly
    /// without allocating.
    pub fn run(&self, input: &[f32], batch: usize, output: &mut [f32]) -> Result<(), CpuError> {
        Session::new(self, 0).run(input, batch, output)
    }

    pub fn session(&self, threads: usize) -> Session<'_> {
        Session::new(self, threads)
    }
}

/// The floats of buffer `b` for images `image0..image0+batch` (inputs) or the whole arena batch.
fn range(b: &Buffer, batch: usize) -> Range<usize> {
    match b.loc {
        Loc::Arena(o) => o * batch..(o + b.floats) * batch,
        Loc::Input(_) => unreachable!("inputs are not in the arena"),
    }
}

/// Runs every step on images `image0..image0 + batch` of the inputs, with `arena` holding that many
/// images, and writes the outputs (each exactly `batch` images), on this thread.
fn run_steps(
    plan: &CpuPlan,
    arena: &mut [f32],
    inputs: &[&[f32]],
    image0: usize,
    batch: usize,
    outputs: &mut [&mut [f32]],
) {
    for step in &plan.steps {
        let out_range = range(&plan.buffers[step.output], batch);
        let (before, rest) = arena.split_at_mut(out_range.start);
        let (out, after) = rest.split_at_mut(out_range.len());
        let read = |id: usize| -> &[f32] {
            match locate(plan, step, id, inputs, image0, batch, &out_range) {
                Place::Input(x) => x,
                Place::Arena(r) if r.end <= out_range.start => &before[r],
                Place::Arena(r) => &after[r.start - out_range.end..r.end - out_range.end],
            }
        };
        run_step(plan, step, &read, out);
    }
    copy_outputs(plan, arena, inputs, image0, batch, outputs);
}

/// Copies the plan's outputs for images `image0..image0 + batch` out of `arena` (or the inputs).
fn copy_outputs(
    plan: &CpuPlan,
    arena: &[f32],
    inputs: &[&[f32]],
    image0: usize,
    batch: usize,
    outputs: &mut [&mut [f32]],
) {
    for (y, (port, id)) in outputs.iter_mut().zip(&plan.outputs) {
        let b = &plan.buffers[*id];
        let src = match b.loc {
            Loc::Input(k) => input_images(inputs[k], b, image0, batch),
            Loc::Arena(_) => &arena[range(b, batch)],
        };
        debug_assert_eq!(port.floats, b.floats);
        y.copy_from_slice(src);
    }
}

/// Images `image0..image0 + batch` of graph input `x`, which buffer `b` stands for.
fn input_images<'a>(x: &'a [f32], b: &Buffer, image0: usize, batch: usize) -> &'a [f32] {
    &x[image0 * b.floats..(image0 + batch) * b.floats]
}

/// Where a step reads buffer `id` from.
enum Place<'a> {
    /// Images of a graph input.
    Input(&'a [f32]),
    /// A range of the arena, apart from the step's output.
    Arena(Range<usize>),
}

/// Where `step` reads buffer `id` for images `image0..image0 + batch`; panics if the memory plan put
/// it over `out`, the step's output range.
fn locate<'a>(
    plan: &CpuPlan,
    step: &Step,
    id: usize,
    inputs: &[&'a [f32]],
    image0: usize,
    batch: usize,
    out: &Range<usize>,
) -> Place<'a> {
    let b = &plan.buffers[id];
    match b.loc {
        Loc::Input(k) => Place::Input(input_images(inputs[k], b, image0, batch)),
        Loc::Arena(_) => {
            let r = range(b, batch);
            assert!(
                r.end <= out.start || r.start >= out.end,
                "memory plan: step '{}' reads a buffer that overlaps its output",
                step.node
            );
            Place::Arena(r)
        }
    }
}

/// [`run_groups`] on a team: the batch cut into groups of `group` images, each group run through
/// the whole network by whichever member claims it, in that member's arena.
fn run_groups_together(
    team: &mut Team,
    plan: &CpuPlan,
    group: usize,
    arenas: &mut [Arena],
    inputs: &[&[f32]],
    batch: usize,
    out: &mut [f32],
) {
    let out_floats = plan.outputs[0].0.floats;
    assert!(arenas.len() >= team.members() && out.len() == batch * out_floats);
    let arenas = Shared::new(arenas);
    let out = Shared::new(out);
    team.run(&[batch.div_ceil(group)], &|member, _, chunk| {
        // The whole structs, not their fields (`*mut` is not `Sync`; `Shared` is).
        let (arenas, out) = (&arenas, &out);
        let images = chunk * group..((chunk + 1) * group).min(batch);
        // SAFETY: each member uses only its own arena (`member < members <= arenas.len()`), and
        // each chunk writes only its own images' outputs, inside `out` (asserted above).
        let (arena, y) = unsafe {
            (
                &mut *arenas.ptr.add(member),
                std::slice::from_raw_parts_mut(
                    out.ptr.add(images.start * out_floats),
                    images.len() * out_floats,
                ),
            )
        };
        let arena = arena.get(plan.arena_floats * images.len());
        run_steps(
            plan,
            arena,
            inputs,
            images.start,
            images.len(),
            std::slice::from_mut(&mut &mut *y),
        );
    });
}

/// The chunks a team of `members` cuts a convolution into: one per member (at most one per row,
/// of tiles for Winograd, or per channel block where [`kernels::splits_channels`]), claimed by
/// whoever comes first, so a member that falls behind leaves its chunk to the others. Not more:
/// Winograd multiplies a chunk's tiles as one batch, and smaller batches cost more than they
/// balance (Xeon AVX-512, 2 threads, batch 1, idle: four chunks per member ran resnet56 in
/// 1.68–1.89 ms against 1.47–1.61 ms for one; with another process busy on one core, 2.9 ms
/// against 1.7 ms).
fn conv_chunks(isa: crate::Isa, k: &crate::program::ConvKernel, members: usize) -> usize {
    if kernels::splits_channels(isa, k, members) {
        return members;
    }
    let rows = match &k.winograd {
        Some(w) => k.out.h / w.form.m(),
        None => k.out.h,
    };
    rows.clamp(1, members)
}

/// Runs every step with the team: each convolution in [`conv_chunks`] chunks
/// ([`kernels::conv_member`]), every other step as one chunk. One wake-up per run instead of a
/// fork and join per convolution, and Winograd tiles shared out with all their channel blocks, so
/// each input tile is transformed once.
fn run_steps_together(
    team: &mut Team,
    chunks: &mut Vec<usize>,
    plan: &CpuPlan,
    arena: &mut [f32],
    inputs: &[&[f32]],
    batch: usize,
    outputs: &mut [&mut [f32]],
) {
    chunks.clear();
    chunks.extend(plan.steps.iter().map(|step| match &step.kernel {
        Kernel::Conv(k) => conv_chunks(plan.isa, k, team.members()),
        _ => 1,
    }));
    let shared = Shared::new(arena);
    let counts: &[usize] = chunks;
    team.run(counts, &|_, i, chunk| {
        // The whole struct, not its fields (`*mut f32` is not `Sync`; `Shared` is).
        let shared = &shared;
        let step = &plan.steps[i];
        let out = range(&plan.buffers[step.output], batch);
        assert!(out.end <= shared.len);
        let read = |id: usize| -> &[f32] {
            match locate(plan, step, id, inputs, 0, batch, &out) {
                Place::Input(x) => x,
                Place::Arena(r) => {
                    assert!(r.end <= shared.len);
                    // SAFETY: inside the arena (above), and no member writes this buffer during
                    // the step: the step's output is the only buffer written, and `locate`
                    // checked that it does not overlap.
                    unsafe { std::slice::from_raw_parts(shared.ptr.add(r.start), r.len()) }
                }
            }
        };
        match &step.kernel {
            Kernel::Conv(k) => {
                let res = step.inputs.get(1).map(|&r| read(r));
                // SAFETY: the output range lies in the arena (asserted above); each chunk writes
                // only its own part of it, no one reads it during the step, and the team finishes
                // every chunk of a step before the next step's chunks start.
                unsafe {
                    kernels::conv_member(
                        plan.isa,
                        k,
                        read(step.inputs[0]),
                        res,
                        shared.ptr.add(out.start),
                        out.len(),
                        chunk,
                        counts[i],
                    )
                }
            }
            _ => {
                // SAFETY: as for a convolution, this step's one chunk the only writer.
                let out =
                    unsafe { std::slice::from_raw_parts_mut(shared.ptr.add(out.start), out.len()) };
                run_step(plan, step, &read, out);
            }
        }
    });
    copy_outputs(plan, arena, inputs, 0, batch, outputs);
}

/// A slice the team's members read and write through, each chunk its own part of it.
struct Shared<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Shared<T> {
    fn new(s: &mut [T]) -> Shared<T> {
        Shared {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }
}

// SAFETY: the chunks' accesses are disjoint within a step and ordered across steps by the team
// (see `run_steps_together` and `run_groups_together`).
unsafe impl<T: Send> Sync for Shared<T> {}

fn run_step<'a>(plan: &CpuPlan, step: &Step, read: &dyn Fn(usize) -> &'a [f32], out: &mut [f32]) {
    let x = read(step.inputs[0]);
    match &step.kernel {
        Kernel::ToBlocked(b) => kernels::to_blocked(x, out, *b),
        Kernel::ToPlain(b) => kernels::to_plain(x, out, *b),
        Kernel::GlobalAvgPool(b) => kernels::global_avg_pool(x, out, *b),
        Kernel::Gemm(g) => kernels::gemm(x, out, g),
        Kernel::Conv(k) => {
            let res = step.inputs.get(1).map(|&r| read(r));
            kernels::conv_rows(plan.isa, k, x, res, out, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_holds_about_one_image_per_mib_of_weights_shared_among_the_threads() {
        const MIB: usize = 1 << 20;
        // (weights, threads, images per group): the pretrained CifarResNets' weights with
        // Winograd F(4×4) are 3.9 (resnet20), 6.8, 9.8 and 12.7 MiB (resnet56).
        for (weights, threads, group) in [
            (0, 1, MIN_GROUP),
            (4_041_960, 1, 4),
            (7_140_328, 1, 8),
            (10_238_696, 1, 8),
            (13_337_064, 1, 16),
            (13_337_064, 2, 8),
            (13_337_064, 16, MIN_GROUP),
            (27 * MIB, 1, 32),
            (400 * MIB, 1, MAX_GROUP),
        ] {
            assert_eq!(
                images_per_group(weights, threads),
                group,
                "{weights} bytes of weights on {threads} threads"
            );
        }
    }
}
