//! resnetc's fast CPU backend.
//!
//! [`CpuPlan::compile`] turns a validated graph — in practice the level-3 fused graph, which for a
//! CifarResNet holds only `FusedConv`, `GlobalAveragePool`, `Flatten` and `Gemm` — into a list of
//! steps with their kernels chosen, weights packed once into the kernels' layout, and a memory plan
//! that reuses one arena by liveness (`src/plan.rs` documents the layouts and the arena). A
//! [`Session`] runs it at any batch on any number of threads without allocating in the steady state.
//!
//! Kernels (`src/kernels/`): direct convolution of any kernel size, stride and padding, with the fused
//! epilogue (bias, residual add — including the option-A shortcut read in place — and ReLU) applied
//! while the sums are in registers; global average pooling; Gemm. Four kernel sets share one driver:
//! AVX2 + FMA and AVX-512F on x86-64 (chosen at run time with `is_x86_feature_detected!`), NEON on aarch64, and a
//! portable fallback that every platform has and that tests can force with [`Isa::Portable`].
//! Stride-1 3×3 convolutions can run as Winograd F(4×4, 3×3) or F(2×2, 3×3) (`kernels/winograd.rs`),
//! by default where it measured faster ([`Isa::default_winograd`]; [`CpuOptions::winograd`] overrides).
//!
//! Threads ([`Session`]): a large batch is split among threads, each taking its images through the
//! network four at a time in its own arena; with a small one (batch 1) the threads run as a team,
//! sharing every convolution.
//!
//! Numerics: sums run in a different order than the reference executor's and the SIMD kernels fuse
//! multiply and add, so results match the reference within a relative tolerance, not bit for bit
//! (the kernel tests allow `1e-5 · (1 + Σ|w·x|)`, see `tests/kernels.rs`).
//!
//! Anything the backend cannot run is a [`CpuError`] at compile time naming the node and op; callers
//! then fall back to the reference executor.
//!
//! Stored plans (`src/serial.rs`): [`CpuPlan::to_bytes`] encodes a plan as `schemas/rnc_cpu.proto`
//! for a `.rnc` artifact, and [`CpuPlan::from_bytes`] loads one without packing anything, checking
//! all of it first ([`PlanError`]) and running it on the loading machine's kernel set.

mod bench;
mod error;
mod eval;
mod exec;
mod kernels;
mod peak;
mod plan;
mod program;
mod serial;
mod team;
mod verify;

pub use bench::{bench, BenchResult, Timing};
pub use error::{CpuError, PlanError};
pub use eval::eval_op;
pub use exec::{default_threads, Session, MAX_THREADS};
pub use peak::{fp32_peak_gflops, fp32_peak_gflops_with};
pub use plan::weights_packed_on_this_thread;
pub use program::{CpuPlan, Port};
pub use serial::{proto, PLAN_VERSION};

/// How to compile a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    /// The kernel set ([`Isa::Auto`]: the best this machine has).
    pub isa: Isa,
    /// Which Winograd forms the stride-1 3×3 convolutions may use; `None`: the kernel set's
    /// default ([`Isa::default_winograd`]).
    pub winograd: Option<Winograd>,
}

/// Which stride-1 3×3 convolutions run as Winograd (`kernels/winograd.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winograd {
    /// Direct convolution everywhere.
    Off,
    /// F(2×2, 3×3) wherever the output width is even.
    F2,
    /// F(4×4, 3×3) wherever the output width is a multiple of 4, F(2×2) where it is only even.
    F4,
    /// F(4×4) where the output is a multiple of 4 wide and its tiles keep the micro-kernel's
    /// registers busy (16 of them, or fewer several channel blocks deep: the 8×8 stage's four tiles
    /// × four blocks on AVX-512), F(2×2) on the other even widths; direct
    /// convolution where an output channel's weight magnitudes span more than 10⁴ (max over the
    /// median), which Winograd's mixing of a tile would not keep within tolerance.
    Auto,
}

impl Default for CpuOptions {
    fn default() -> CpuOptions {
        CpuOptions {
            isa: Isa::Auto,
            winograd: None,
        }
    }
}

/// A kernel set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Isa {
    /// The best this machine has: AVX-512, AVX2 + FMA or NEON when detected, else portable.
    Auto,
    /// Plain Rust, every platform.
    Portable,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512F (one 16-channel block per register).
    Avx512,
    /// aarch64 NEON.
    Neon,
}

impl Isa {
    /// The kernel set `self` stands for on this machine, or why it cannot run here.
    pub fn resolve(self) -> Result<Isa, CpuError> {
        match self {
            Isa::Auto => Ok([Isa::Avx512, Isa::Avx2, Isa::Neon]
                .into_iter()
                .find(|i| i.available())
                .unwrap_or(Isa::Portable)),
            Isa::Portable => Ok(Isa::Portable),
            Isa::Avx2 if Isa::Avx2.available() => Ok(Isa::Avx2),
            Isa::Avx2 => Err(CpuError::IsaUnavailable {
                isa: "AVX2+FMA",
                reason: "not an x86-64 CPU with avx2 and fma",
            }),
            Isa::Avx512 if Isa::Avx512.available() => Ok(Isa::Avx512),
            Isa::Avx512 => Err(CpuError::IsaUnavailable {
                isa: "AVX-512",
                reason: "not an x86-64 CPU with avx512f",
            }),
            Isa::Neon if Isa::Neon.available() => Ok(Isa::Neon),
            Isa::Neon => Err(CpuError::IsaUnavailable {
                isa: "NEON",
                reason: "not an aarch64 CPU with neon",
            }),
        }
    }

    /// Whether this machine can run the kernel set.
    pub fn available(self) -> bool {
        match self {
            Isa::Auto | Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The SIMD kernel set of this machine, if it has one.
    pub fn native() -> Option<Isa> {
        match Isa::Auto.resolve() {
            Ok(Isa::Portable) | Err(_) => None,
            Ok(isa) => Some(isa),
        }
    }

    /// The Winograd forms this kernel set uses by default (see the crate docs for the numbers).
    pub fn default_winograd(self) -> Winograd {
        Winograd::Auto
    }

    /// Every kernel set this machine can run, the portable one first.
    pub fn all_available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Neon]
            .into_iter()
            .filter(|i| i.available())
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Auto => "auto",
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2+fma",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The aarch64 test run (under qemu in CI) must exercise the NEON kernels, not only the portable ones.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_is_detected() {
        assert_eq!(Isa::Auto.resolve(), Ok(Isa::Neon));
    }

    #[test]
    fn the_portable_kernels_are_always_there() {
        assert_eq!(Isa::Portable.resolve(), Ok(Isa::Portable));
        assert!(Isa::all_available().contains(&Isa::Portable));
    }
}
