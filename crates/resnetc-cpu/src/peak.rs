//! An estimate of the machine's FP32 peak, for `bench`'s "% of peak": a register-only loop of
//! independent fused multiply-adds at the widest vector width the machine has (AVX-512, else AVX2),
//! timed for a few milliseconds per thread (as the figures were measured), since clock
//! speeds and FMA units per core cannot be read reliably.

use std::time::Instant;

/// FLOPs per second of `threads` threads each running independent FMA chains, in GFLOP/s.
pub fn fp32_peak_gflops(threads: usize) -> f64 {
    fp32_peak_gflops_with(None, threads)
}

/// [`fp32_peak_gflops`] with the vector width of a kernel set (`None`: the widest there is), so
/// that a plan's share of peak is measured against the instructions it runs.
pub fn fp32_peak_gflops_with(isa: Option<crate::Isa>, threads: usize) -> f64 {
    let threads = threads.max(1);
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || single_thread_gflops(isa)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0.0))
            .collect()
    });
    per_thread.iter().sum()
}

fn single_thread_gflops(isa: Option<crate::Isa>) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::Isa;
        let wide = matches!(isa, None | Some(Isa::Avx512));
        let avx2 = wide || isa == Some(Isa::Avx2);
        if wide && is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature the function needs was detected just above.
            return unsafe { fma_loop_avx512() };
        }
        if avx2 && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features the function needs were detected just above.
            return unsafe { fma_loop_avx2() };
        }
    }
    let _ = isa;
    scalar_loop()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2() -> f64 {
    use std::arch::x86_64::*;
    const ITERS: u64 = 2_000_000;
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); 10];
    let start = Instant::now();
    for _ in 0..ITERS {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut sink = 0f32;
    for v in acc {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        sink += lanes.iter().sum::<f32>();
    }
    std::hint::black_box(sink);
    // 10 chains × 8 lanes × 2 FLOPs per FMA.
    (ITERS * 10 * 8 * 2) as f64 / secs / 1e9
}

/// The AVX-512 twin of [`fma_loop_avx2`]: 16 lanes per FMA, so the AVX-512 kernels are measured
/// against what this machine can do with them, not half of it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512() -> f64 {
    use std::arch::x86_64::*;
    const ITERS: u64 = 1_000_000;
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    // 12 independent chains cover the FMA latency (4 cycles) on two ports.
    let mut acc = [_mm512_set1_ps(1.0); 12];
    let start = Instant::now();
    for _ in 0..ITERS {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let sink: f32 = acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum();
    std::hint::black_box(sink);
    // 12 chains × 16 lanes × 2 FLOPs per FMA.
    (ITERS * 12 * 16 * 2) as f64 / secs / 1e9
}

fn scalar_loop() -> f64 {
    const ITERS: u64 = 20_000_000;
    let mut acc = [1.0f32; 8];
    let start = Instant::now();
    for _ in 0..ITERS {
        for v in acc.iter_mut() {
            *v = v.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (ITERS * 8 * 2) as f64 / start.elapsed().as_secs_f64() / 1e9
}
