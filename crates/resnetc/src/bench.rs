//! [`bench`]: how fast a model runs on a backend here (what `resnetc bench` prints).

use serde::Serialize;

use crate::{Device, Error, ErrorKind, Model, Result, SessionOptions};

/// The largest batch `bench` allocates for (3 × 32 × 32 floats each: 805 MB of input at the limit).
pub const MAX_BENCH_BATCH: usize = resnetc_ir::limits::BATCH.value as usize;
/// The most timed runs `bench` makes.
pub const MAX_BENCH_ITERS: usize = resnetc_ir::limits::ITERATIONS.value as usize;

/// What to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    pub batch: usize,
    /// Untimed runs first (`None`: at least one, and 0.2 s of them).
    pub warmup: Option<usize>,
    /// Timed runs after the warm-up (with `duration_s`: the most).
    pub iters: usize,
    /// Timed runs until this many seconds have passed instead (at least one run).
    pub duration_s: Option<f64>,
    pub session: SessionOptions,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            batch: 1,
            warmup: None,
            iters: 20,
            duration_s: None,
            session: SessionOptions::default(),
        }
    }
}

/// When the 90th percentile is this many times the median, the machine was too busy for the
/// median to mean much, and the report says so.
pub const NOISY_P90_OVER_MEDIAN: f64 = 1.5;

/// One measurement. Times are of one run of the whole batch. `effective_gflops` counts
/// convolution and Gemm FLOPs as direct convolution does (2 per multiply-add), also where
/// Winograd does fewer; `executed_gflops` counts what the kernels really do.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BenchReport {
    pub schema_version: u32,
    pub device: String,
    pub batch: usize,
    pub warmup: usize,
    pub iters: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// p90 above [`NOISY_P90_OVER_MEDIAN`] × the median.
    pub noisy: bool,
    /// At the median.
    pub images_per_s: f64,
    /// Direct-convolution-equivalent FLOP/s at the median.
    pub effective_gflops: f64,
    /// FLOP/s the kernels really did at the median.
    pub executed_gflops: f64,
    /// What the run did differently from what was asked (a thread count capped).
    pub notes: Vec<String>,
    #[serde(flatten)]
    pub cpu: Option<CpuBench>,
    #[serde(flatten)]
    pub cuda: Option<CudaBench>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CpuBench {
    pub threads: usize,
    /// The kernel set that ran.
    pub isa: String,
    /// Convolutions run as Winograd.
    pub winograd_convs: usize,
    /// Direct-convolution-equivalent FLOPs of one image.
    pub flops_per_image: u64,
    /// FLOPs the kernels do for one image.
    pub executed_flops_per_image: u64,
    /// Arena bytes the run used (all threads' arenas together).
    pub arena_bytes: usize,
    /// FMA throughput of these threads measured now with the vector width of `isa`.
    pub peak_gflops_estimate: f64,
    /// `executed_gflops` as a share of that peak.
    pub percent_of_peak: f64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CudaBench {
    pub gpu: String,
    pub arch: String,
    /// The image that runs (`cubin sm_90`, `ptx sm_90`).
    pub image: String,
}

/// Measures `model` on `device` (the CPU backend, or CUDA's): a warm-up, then `iters` timed runs
/// of the whole batch; the median and the fastest.
pub fn bench(model: &Model, device: Device, opts: &BenchOptions) -> Result<BenchReport> {
    if !(1..=MAX_BENCH_BATCH).contains(&opts.batch) {
        return Err(Error::invalid_input(format!(
            "the batch must be between 1 and {MAX_BENCH_BATCH}, not {}",
            opts.batch
        )));
    }
    if !(1..=MAX_BENCH_ITERS).contains(&opts.iters) {
        return Err(Error::invalid_input(format!(
            "the iterations must be between 1 and {MAX_BENCH_ITERS}, not {}",
            opts.iters
        )));
    }
    if let Some(w) = opts.warmup {
        resnetc_ir::limits::ITERATIONS
            .check(w as u64, "the warm-up runs")
            .map_err(Error::invalid_input)?;
    }
    if let Some(d) = opts.duration_s {
        if !(d.is_finite() && d > 0.0 && d <= 3600.0) {
            return Err(Error::invalid_input(format!(
                "the duration must be above 0 and at most 3600 seconds, not {d}"
            )));
        }
    }
    let report = |device: String, times: &[f64], warmup: usize, flops: u64, run_flops: u64| {
        let n = times.len();
        let at = |q: f64| times[((q * (n - 1) as f64).round() as usize).min(n - 1)];
        let median = times[n / 2];
        let p90 = at(0.90);
        let noisy = p90 > NOISY_P90_OVER_MEDIAN * median;
        let per_s = opts.batch as f64 / (median / 1e3);
        BenchReport {
            schema_version: crate::SCHEMA_VERSION,
            device,
            batch: opts.batch,
            warmup,
            iters: n,
            min_ms: times[0],
            median_ms: median,
            mean_ms: times.iter().sum::<f64>() / n as f64,
            p90_ms: p90,
            p99_ms: at(0.99),
            max_ms: times[n - 1],
            noisy,
            images_per_s: per_s,
            effective_gflops: flops as f64 * per_s / 1e9,
            executed_gflops: run_flops as f64 * per_s / 1e9,
            notes: if noisy {
                vec![format!(
                    "noisy machine: p90 {p90:.3} ms is over {NOISY_P90_OVER_MEDIAN}× the median \
                     {median:.3} ms; figures from a quiet machine (see `uptime`) mean more"
                )]
            } else {
                Vec::new()
            },
            cpu: None,
            cuda: None,
        }
    };
    match device {
        Device::Cpu => {
            let plan = model.cpu_plan(opts.session.winograd)?;
            let (threads, note) = crate::session::cpu_threads(opts.session.threads);
            let timing = resnetc_cpu::Timing {
                warmup: opts.warmup,
                iters: opts.iters,
                duration_s: opts.duration_s,
            };
            let r = resnetc_cpu::bench(&plan, opts.batch, threads, &timing)?;
            let peak = resnetc_cpu::fp32_peak_gflops_with(Some(plan.isa()), r.threads);
            let mut out = report(
                "cpu".into(),
                &r.times_ms,
                r.warmup,
                r.flops_per_image,
                r.flops_run_per_image,
            );
            out.notes.extend(note);
            out.cpu = Some(CpuBench {
                threads: r.threads,
                isa: r.isa,
                winograd_convs: r.winograd_convs,
                flops_per_image: r.flops_per_image,
                executed_flops_per_image: r.flops_run_per_image,
                arena_bytes: r.arena_bytes,
                peak_gflops_estimate: peak,
                percent_of_peak: 100.0 * out.executed_gflops / peak,
            });
            Ok(out)
        }
        Device::Cuda => {
            let mut session = model.session_with(Device::Cuda, &opts.session)?;
            let per_image: usize = session
                .input()
                .dims()
                .iter()
                .skip(1)
                .map(|d| d.unwrap_or(1))
                .product();
            let x = vec![0.5f32; opts.batch * per_image];
            let macs = model.stats().macs;
            let cuda = session.cuda().expect("a CUDA session");
            cuda.upload_input(&x, opts.batch)?;
            let warmup = opts.warmup.unwrap_or(3);
            if warmup > 0 {
                cuda.time(opts.batch, warmup, 1)?;
            }
            let start = std::time::Instant::now();
            let mut runs = Vec::new();
            for _ in 0..opts.iters.max(1) {
                runs.push(cuda.time(opts.batch, 0, 1)?);
                if opts
                    .duration_s
                    .is_some_and(|d| start.elapsed().as_secs_f64() >= d)
                {
                    break;
                }
            }
            runs.sort_by(f64::total_cmp);
            let gpu = cuda.device();
            // The generated kernels are direct convolutions: what runs is what is counted.
            let mut out = report("cuda".into(), &runs, warmup, 2 * macs, 2 * macs);
            out.cuda = Some(CudaBench {
                gpu: gpu.name.clone(),
                arch: gpu.arch(),
                image: cuda.image().to_string(),
            });
            Ok(out)
        }
        Device::Reference => Err(Error::new(
            ErrorKind::InvalidInput,
            "bench measures a backend: use device cpu or cuda",
        )),
    }
}
