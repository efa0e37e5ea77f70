//! [`bench`]: how fast a model runs on a backend here (what `resnetc bench` prints).

use serde::Serialize;

use crate::{Device, Error, ErrorKind, Model, Result, SessionOptions};

/// The largest batch `bench` allocates for (3 × 32 × 32 floats each: 805 MB of input at the limit).
pub const MAX_BENCH_BATCH: usize = resnetc_ir::limits::BATCH.value as usize;
/// The most timed runs `bench` makes.
pub const MAX_BENCH_ITERS: usize = resnetc_ir::limits::ITERATIONS.value as usize;

/// What to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchOptions {
    pub batch: usize,
    /// Timed runs after the warm-up.
    pub iters: usize,
    pub session: SessionOptions,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            batch: 1,
            iters: 20,
            session: SessionOptions::default(),
        }
    }
}

/// One measurement. Times are of one run of the whole batch; `gflops` counts convolution and Gemm
/// FLOPs as direct convolution does (2 per multiply-add), also where Winograd does fewer.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub schema_version: u32,
    pub device: &'static str,
    pub batch: usize,
    pub iters: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub images_per_s: f64,
    pub gflops: f64,
    /// What the run did differently from what was asked (a thread count capped).
    pub notes: Vec<String>,
    #[serde(flatten)]
    pub cpu: Option<CpuBench>,
    #[serde(flatten)]
    pub cuda: Option<CudaBench>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CpuBench {
    pub threads: usize,
    /// The kernel set that ran.
    pub isa: String,
    /// Convolutions run as Winograd.
    pub winograd_convs: usize,
    pub flops_per_image: u64,
    /// Arena bytes the run used (all threads' arenas together).
    pub arena_bytes: usize,
    pub peak_gflops_estimate: f64,
    pub percent_of_peak: f64,
}

#[derive(Clone, Debug, Serialize)]
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
    match device {
        Device::Cpu => {
            let plan = model.cpu_plan(opts.session.winograd)?;
            let (threads, note) = crate::session::cpu_threads(opts.session.threads);
            let r = resnetc_cpu::bench(&plan, opts.batch, threads, opts.iters)?;
            let peak = resnetc_cpu::fp32_peak_gflops(r.threads);
            Ok(BenchReport {
                schema_version: 1,
                device: "cpu",
                batch: r.batch,
                iters: r.iters,
                median_ms: r.median_ms,
                min_ms: r.min_ms,
                images_per_s: r.images_per_s,
                gflops: r.gflops,
                notes: note.into_iter().collect(),
                cpu: Some(CpuBench {
                    threads: r.threads,
                    isa: r.isa,
                    winograd_convs: r.winograd_convs,
                    flops_per_image: r.flops_per_image,
                    arena_bytes: r.arena_bytes,
                    peak_gflops_estimate: peak,
                    percent_of_peak: 100.0 * r.gflops / peak,
                }),
                cuda: None,
            })
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
            cuda.time(opts.batch, 3, 1)?;
            let mut runs = (0..opts.iters)
                .map(|_| cuda.time(opts.batch, 0, 1))
                .collect::<Result<Vec<f64>, _>>()?;
            runs.sort_by(f64::total_cmp);
            let ms = runs[runs.len() / 2];
            let gpu = cuda.device();
            Ok(BenchReport {
                schema_version: 1,
                device: "cuda",
                batch: opts.batch,
                iters: runs.len(),
                median_ms: ms,
                min_ms: runs[0],
                images_per_s: opts.batch as f64 / (ms / 1e3),
                gflops: 2.0 * macs as f64 * opts.batch as f64 / (ms * 1e6),
                notes: Vec::new(),
                cpu: None,
                cuda: Some(CudaBench {
                    gpu: gpu.name.clone(),
                    arch: gpu.arch(),
                    image: cuda.image().to_string(),
                }),
            })
        }
        Device::Reference => Err(Error::new(
            ErrorKind::InvalidInput,
            "bench measures a backend: use device cpu or cuda",
        )),
    }
}
