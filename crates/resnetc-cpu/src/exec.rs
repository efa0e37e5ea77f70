//! Running a plan: [`Session`] owns the arenas and the thread pool, so repeated runs at the same
//! batch allocate nothing.
//!
//! Two ways to use threads. With at least as many images as threads (and an even split, or at least
//! four images per thread) the batch is divided among the threads, each running the whole network
//! over its images [`GROUP`] at a time in an arena of its own, so the group's activations stay in
//! that core's cache and each layer's weights serve the whole group. Otherwise (batch 1, say) the
//! threads run as one team through every step ([`run_team`]), sharing each convolution (Winograd
//! ones by rows of tiles, with all their channel blocks) and meeting at a spinning barrier between
//! steps; the result equals one thread's to the bit.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::kernels;
use crate::program::{Buffer, CpuPlan, Kernel, Loc, Step, BLOCK};
use crate::CpuError;

/// Threads to use when asked for 0: all the machine's.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

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
    pool: Option<rayon::ThreadPool>,
    arenas: Vec<Arena>,
}

impl<'p> Session<'p> {
    /// A session on `threads` threads (0: all cores).
    pub fn new(plan: &'p CpuPlan, threads: usize) -> Session<'p> {
        Session::with_plan(PlanRef::Borrowed(plan), threads)
    }

    fn with_plan(plan: PlanRef<'p>, threads: usize) -> Session<'p> {
        let threads = if threads == 0 {
            default_threads()
        } else {
            threads
        };
        // A pool that cannot be built (no threads left) degrades to running on the caller's thread.
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .ok()
            })
            .flatten();
        let threads = if pool.is_some() { threads } else { 1 };
        Session {
            plan,
            threads,
            pool,
            arenas: (0..threads).map(|_| Arena::default()).collect(),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
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
        match (&self.pool, splits_batch(t, batch, outputs.len())) {
            (None, true) => run_groups(plan, &mut self.arenas[0], inputs, 0, &mut *outputs[0]),
            (Some(pool), true) => {
                let per_thread = batch.div_ceil(t);
                let out_floats = plan.outputs[0].0.floats;
                let out = &mut *outputs[0];
                pool.install(|| {
                    self.arenas
                        .par_iter_mut()
                        .zip(out.par_chunks_mut(per_thread * out_floats))
                        .enumerate()
                        .for_each(|(k, (arena, out))| {
                            run_groups(plan, arena, inputs, k * per_thread, out)
                        })
                });
            }
            (pool, _) => {
                let arena = self.arenas[0].get(plan.arena_floats * batch);
                match pool {
                    Some(pool) => run_team(pool, plan, arena, inputs, batch, outputs),
                    None => run_steps(plan, arena, inputs, 0, batch, outputs),
                }
            }
        }
        Ok(())
    }
}

/// Images a thread takes through the network together when it splits the batch: each layer then
/// runs on all of them before the next, so its weights (Winograd F(4×4)'s are 4× the size of the
/// 3×3 kernels, 7.7 MB for resnet56, more than a core's L2) are loaded once per group rather than
/// once per image, while the group's activations (≈ 1.8 MB for resnet56) still fit in L2. Measured
/// on resnet56, one thread: 1 image 664, 2 → 714, 4 → 814, 8 → 806 images/s (medians of 4).
const GROUP: usize = 4;

/// Runs the images whose outputs `out` receives, the first being `image0`, [`GROUP`] at a time
/// through the whole network.
fn run_groups(
    plan: &CpuPlan,
    arena: &mut Arena,
    inputs: &[&[f32]],
    image0: usize,
    out: &mut [f32],
) {
    let out_floats = plan.outputs[0].0.floats;
    let group = images_per_arena(out.len() / out_floats);
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

/// The images per arena when a run of `batch` images on `threads` threads divides the batch.
pub(crate) fn group_size(threads: usize, batch: usize) -> usize {
    images_per_arena(batch.div_ceil(threads.max(1)))
}

/// The images an arena holds for a thread with `images` to run: a group, or all of them if fewer.
fn images_per_arena(images: usize) -> usize {
    GROUP.min(images).max(1)
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

/// Runs every step with all the pool's threads as one team: each thread walks the whole plan,
/// computes its share of every convolution ([`kernels::conv_member`]; the small steps fall to
/// thread 0) and waits for the others at a spinning barrier before the next step. One wake-up per
/// run instead of a fork and join per convolution, and Winograd tiles shared out with all their
/// channel blocks, so each input tile is transformed once (splitting by output rows transformed
/// it once per channel block a thread took).
fn run_team(
    pool: &rayon::ThreadPool,
    plan: &CpuPlan,
    arena: &mut [f32],
    inputs: &[&[f32]],
    batch: usize,
    outputs: &mut [&mut [f32]],
) {
    let members = pool.current_num_threads();
    let barrier = SpinBarrier::new(members);
    let shared = SharedArena {
        ptr: arena.as_mut_ptr(),
        len: arena.len(),
    };
    pool.broadcast(|ctx| {
        // The whole struct, not its fields (`*mut f32` is not `Sync`; `SharedArena` is).
        let shared = &shared;
        let member = ctx.index();
        // If this member panics, the others stop waiting for it (and the broadcast re-raises).
        let _abandon = barrier.abandon_on_panic();
        for step in &plan.steps {
            let out = range(&plan.buffers[step.output], batch);
            assert!(out.end <= shared.len);
            let read = |id: usize| -> &[f32] {
                match locate(plan, step, id, inputs, 0, batch, &out) {
                    Place::Input(x) => x,
                    Place::Arena(r) => {
                        assert!(r.end <= shared.len);
                        // SAFETY: inside the arena (above), and no member writes this buffer
                        // during the step: the step's output is the only buffer written, and
                        // `locate` checked that it does not overlap.
                        unsafe { std::slice::from_raw_parts(shared.ptr.add(r.start), r.len()) }
                    }
                }
            };
            match &step.kernel {
                Kernel::Conv(k) => {
                    let res = step.inputs.get(1).map(|&r| read(r));
                    // SAFETY: the output range lies in the arena (asserted above); each member
                    // writes only its own share of it, no one reads it during the step, and the
                    // barrier orders this step's writes before the next step's reads.
                    unsafe {
                        kernels::conv_member(
                            plan.isa,
                            k,
                            read(step.inputs[0]),
                            res,
                            shared.ptr.add(out.start),
                            out.len(),
                            member,
                            members,
                        )
                    }
                }
                _ if member == 0 => {
                    // SAFETY: as for a convolution, with member 0 the only writer.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(shared.ptr.add(out.start), out.len())
                    };
                    run_step(plan, step, &read, out);
                }
                _ => {}
            }
            if !barrier.wait() {
                return;
            }
        }
    });
    copy_outputs(plan, arena, inputs, 0, batch, outputs);
}

/// The arena as the team's members see it: a pointer every member reads and writes through, each
/// to its own part of a step's output.
struct SharedArena {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: the members' accesses are disjoint within a step and ordered across steps by the
// barrier (see `run_team`).
unsafe impl Sync for SharedArena {}

/// A barrier that spins (then yields) rather than sleeping: the steps it separates take tens of
/// microseconds, less than a sleeping thread takes to wake.
struct SpinBarrier {
    members: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    abandoned: AtomicBool,
}

impl SpinBarrier {
    fn new(members: usize) -> SpinBarrier {
        SpinBarrier {
            members,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Waits until every member has arrived; false if a member panicked instead.
    fn wait(&self) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.members {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return !self.abandoned.load(Ordering::Acquire);
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.abandoned.load(Ordering::Acquire) {
                return false;
            }
            if spins < 1 << 14 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                // A member is descheduled (an oversubscribed machine): let it run.
                std::thread::yield_now();
            }
        }
        !self.abandoned.load(Ordering::Acquire)
    }

    /// A guard that releases the other members if this one unwinds.
    fn abandon_on_panic(&self) -> impl Drop + '_ {
        struct Guard<'b>(&'b SpinBarrier);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.abandoned.store(true, Ordering::Release);
                }
            }
        }
        Guard(self)
    }
}

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

    /// No member passes a barrier before all have arrived: each round's count is complete when
    /// anyone reads it after the barrier.
    #[test]
    fn the_barrier_holds_every_member_until_all_arrive() {
        let (members, rounds) = (4, 200);
        let barrier = SpinBarrier::new(members);
        let arrived: Vec<AtomicUsize> = (0..rounds).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..members {
                s.spawn(|| {
                    for count in &arrived {
                        count.fetch_add(1, Ordering::Relaxed);
                        assert!(barrier.wait());
                        assert_eq!(count.load(Ordering::Relaxed), members);
                    }
                });
            }
        });
    }

    /// A member that panics releases the others instead of leaving them spinning forever.
    #[test]
    fn a_panicking_member_releases_the_others() {
        let barrier = SpinBarrier::new(3);
        let released = std::thread::scope(|s| {
            let waiters: Vec<_> = (0..2).map(|_| s.spawn(|| barrier.wait())).collect();
            let failing = s.spawn(|| {
                let _abandon = barrier.abandon_on_panic();
                panic!("a member fails");
            });
            assert!(failing.join().is_err());
            waiters
                .into_iter()
                .map(|w| w.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(released, [false, false]);
    }
}
