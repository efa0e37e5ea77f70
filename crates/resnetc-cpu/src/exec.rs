//! Running a plan: [`Session`] owns the arenas and the thread pool, so repeated runs at the same
//! batch allocate nothing.
//!
//! Two ways to use threads. With at least as many images as threads (and an even split, or at least
//! four images per thread) the batch is divided among the threads, each running the whole network
//! over its images [`GROUP`] at a time in an arena of its own, so the group's activations stay in
//! that core's cache and each layer's weights serve the whole group. Otherwise (batch 1, say) every
//! convolution is split into contiguous ranges of output rows that the threads compute together,
//! with a barrier between steps.

use std::ops::Range;

use rayon::prelude::*;

use crate::kernels;
use crate::plan::{Buffer, CpuPlan, Kernel, Loc, Step, BLOCK};
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

/// A plan ready to run repeatedly: its arenas and threads.
pub struct Session<'p> {
    plan: &'p CpuPlan,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
    arenas: Vec<Arena>,
}

impl<'p> Session<'p> {
    /// A session on `threads` threads (0: all cores).
    pub fn new(plan: &'p CpuPlan, threads: usize) -> Session<'p> {
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

    pub fn plan(&self) -> &'p CpuPlan {
        self.plan
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
        let plan = self.plan;
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
                let par = pool.as_ref().map(|p| (p, t));
                match par {
                    Some((pool, t)) => {
                        pool.install(|| run_steps(plan, arena, inputs, 0, batch, outputs, Some(t)))
                    }
                    None => run_steps(plan, arena, inputs, 0, batch, outputs, None),
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
            None,
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
/// images, and writes the outputs (each exactly `batch` images). `par`: split convolutions among
/// this many threads of the current rayon pool.
fn run_steps(
    plan: &CpuPlan,
    arena: &mut [f32],
    inputs: &[&[f32]],
    image0: usize,
    batch: usize,
    outputs: &mut [&mut [f32]],
    par: Option<usize>,
) {
    for step in &plan.steps {
        let out_range = range(&plan.buffers[step.output], batch);
        let (before, rest) = arena.split_at_mut(out_range.start);
        let (out, after) = rest.split_at_mut(out_range.len());
        let read = |id: usize| -> &[f32] {
            let b = &plan.buffers[id];
            match b.loc {
                Loc::Input(k) => &inputs[k][image0 * b.floats..(image0 + batch) * b.floats],
                Loc::Arena(_) => {
                    let r = range(b, batch);
                    if r.end <= out_range.start {
                        &before[r]
                    } else {
                        assert!(
                            r.start >= out_range.end,
                            "memory plan: step '{}' reads a buffer that overlaps its output",
                            step.node
                        );
                        &after[r.start - out_range.end..r.end - out_range.end]
                    }
                }
            }
        };
        run_step(plan, step, &read, out, par);
    }
    for (y, (port, id)) in outputs.iter_mut().zip(&plan.outputs) {
        let b = &plan.buffers[*id];
        let src = match b.loc {
            Loc::Input(k) => &inputs[k][image0 * b.floats..(image0 + batch) * b.floats],
            Loc::Arena(_) => &arena[range(b, batch)],
        };
        debug_assert_eq!(port.floats, b.floats);
        y.copy_from_slice(src);
    }
}

fn run_step<'a>(
    plan: &CpuPlan,
    step: &Step,
    read: &dyn Fn(usize) -> &'a [f32],
    out: &mut [f32],
    par: Option<usize>,
) {
    let x = read(step.inputs[0]);
    match &step.kernel {
        Kernel::ToBlocked(b) => kernels::to_blocked(x, out, *b),
        Kernel::ToPlain(b) => kernels::to_plain(x, out, *b),
        Kernel::GlobalAvgPool(b) => kernels::global_avg_pool(x, out, *b),
        Kernel::Gemm(g) => kernels::gemm(x, out, g),
        Kernel::Conv(k) => {
            let res = step.inputs.get(1).map(|&r| read(r));
            let row_len = k.out.wp() * BLOCK;
            let rows = out.len() / row_len;
            match par {
                Some(t) if rows > 1 => {
                    // Two chunks per thread even out the rows that are only halo; more cost more in
                    // joins than they gain (resnet56, batch 1, 2 threads: best 1.06 ms with 2 per
                    // thread, 1.34 with 1, 1.52 with 4, 1.63 with 8).
                    let tasks = 2 * t;
                    split_rows(plan.isa, k, x, res, out, 0, (rows, tasks), 0..tasks);
                }
                _ => kernels::conv_rows(plan.isa, k, x, res, out, 0),
            }
        }
    }
}

/// Computes the convolution rows in `out` (starting at row `first`) as the tasks `tasks` of the
/// `whole.1` that [`kernels::row_cut`] cuts all `whole.0` rows into, halving the task range with
/// `rayon::join` (no allocation per step).
#[allow(clippy::too_many_arguments)]
fn split_rows(
    isa: crate::Isa,
    k: &crate::plan::ConvKernel,
    x: &[f32],
    res: Option<&[f32]>,
    out: &mut [f32],
    first: usize,
    whole: (usize, usize),
    tasks: Range<usize>,
) {
    let row_len = k.out.wp() * BLOCK;
    if tasks.len() <= 1 {
        kernels::conv_rows(isa, k, x, res, out, first);
        return;
    }
    let mid = tasks.start + tasks.len() / 2;
    let end = first + out.len() / row_len;
    let cut = kernels::row_cut(k, whole.0, whole.1, mid).clamp(first, end);
    let (a, b) = out.split_at_mut((cut - first) * row_len);
    rayon::join(
        || split_rows(isa, k, x, res, a, first, whole, tasks.start..mid),
        || split_rows(isa, k, x, res, b, cut, whole, mid..tasks.end),
    );
}
