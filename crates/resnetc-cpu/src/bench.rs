//! [`bench()`]: how fast a plan runs here, for `resnetc bench` and the comparison script.

use std::time::Instant;

use crate::{CpuError, CpuPlan, Session};

/// One benchmark's result; `--json` prints it as is.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchResult {
    pub batch: usize,
    pub threads: usize,
    pub iters: usize,
    /// The kernel set that ran.
    pub isa: String,
    /// Convolutions run as Winograd (F(4×4, 3×3) or F(2×2, 3×3)).
    pub winograd_convs: usize,
    /// Untimed runs before the timed ones.
    pub warmup: usize,
    /// Wall time of every timed run of the whole batch, fastest first.
    pub times_ms: Vec<f64>,
    /// Median wall time of one run of the whole batch.
    pub median_ms: f64,
    pub min_ms: f64,
    pub images_per_s: f64,
    /// Convolution and Gemm FLOPs per second at the median, counted as direct convolution does
    /// (2 per multiply-add) even where Winograd does fewer: the "effective" rate.
    pub gflops: f64,
    pub flops_per_image: u64,
    /// FLOPs the kernels really do per image (Winograd's fewer; see
    /// [`CpuPlan::flops_run_per_image`]).
    pub flops_run_per_image: u64,
    /// Arena bytes the run used (all threads' arenas together).
    pub arena_bytes: usize,
}

/// How many runs a benchmark makes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Untimed runs first (`None`: at least one, and 0.2 s of them).
    pub warmup: Option<usize>,
    /// Timed runs (at least one).
    pub iters: usize,
    /// Instead of a fixed count, timed runs until this many seconds have passed (at least one
    /// run, at most `iters`).
    pub duration_s: Option<f64>,
}

/// Runs `plan` on `batch` images of synthetic data after a warm-up, as `timing` says, and reports
/// every run's time. `threads = 0` uses all cores.
pub fn bench(
    plan: &CpuPlan,
    batch: usize,
    threads: usize,
    timing: &Timing,
) -> Result<BenchResult, CpuError> {
    let mut session = Session::new(plan, threads);
    let inputs: Vec<Vec<f32>> = plan
        .inputs()
        .iter()
        .map(|p| {
            (0..p.floats * batch)
                .map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5)
                .collect()
        })
        .collect();
    let mut outputs: Vec<Vec<f32>> = plan
        .outputs()
        .map(|p| vec![0f32; p.floats * batch])
        .collect();
    let mut once = |session: &mut Session| -> Result<f64, CpuError> {
        let ins: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let mut outs: Vec<&mut [f32]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
        let t = Instant::now();
        session.run_many(&ins, batch, &mut outs)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let warm = Instant::now();
    let mut warmup = 0;
    match timing.warmup {
        Some(n) => {
            for _ in 0..n {
                once(&mut session)?;
                warmup += 1;
            }
        }
        None => {
            while warmup == 0 || warm.elapsed().as_secs_f64() < 0.2 {
                once(&mut session)?;
                warmup += 1;
            }
        }
    }
    let iters = timing.iters.max(1);
    let mut times = Vec::with_capacity(iters.min(1 << 16));
    let start = Instant::now();
    for _ in 0..iters {
        times.push(once(&mut session)?);
        if timing
            .duration_s
            .is_some_and(|d| start.elapsed().as_secs_f64() >= d)
        {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    let iters = times.len();
    let median = times[iters / 2];
    let threads = session.threads();
    let arena_bytes = if crate::exec::splits_batch(threads, batch, plan.outputs.len()) {
        plan.arena_bytes(session.group_size(batch)) * threads
    } else {
        plan.arena_bytes(batch)
    };
    Ok(BenchResult {
        batch,
        threads,
        iters,
        warmup,
        times_ms: times.iter().map(|t| t * 1e3).collect(),
        isa: plan.isa().name().to_string(),
        winograd_convs: plan.winograd_convs(),
        median_ms: median * 1e3,
        min_ms: times[0] * 1e3,
        images_per_s: batch as f64 / median,
        gflops: plan.flops_per_image() as f64 * batch as f64 / median / 1e9,
        flops_per_image: plan.flops_per_image(),
        flops_run_per_image: plan.flops_run_per_image(),
        arena_bytes,
    })
}
