//! [`about`]: what this build of resnetc is and what it can use on this machine (`--version`).

use serde::Serialize;

/// The commit resnetc was built from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("RESNETC_COMMIT");

/// This build and this machine.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct About {
    pub schema_version: u32,
    pub version: String,
    pub commit: String,
    /// CPU kernel sets this machine can run, the portable one first.
    pub cpu_kernels: Vec<String>,
    /// NVRTC (compiles the generated CUDA): where it was found, or why not.
    pub nvrtc: Probe,
    /// The CUDA driver (runs it): where it was found, or why not.
    pub cuda_driver: Probe,
}

/// Whether a run-time dependency was found.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Probe {
    pub found: bool,
    /// Its path and version, or why it was not found.
    pub detail: String,
}

/// Probes the CPU kernel sets, NVRTC and the CUDA driver (loading, not using, the libraries).
pub fn about() -> About {
    let nvrtc = match resnetc_cuda::nvrtc::Nvrtc::load() {
        Ok(n) => Probe {
            found: true,
            detail: match n.version() {
                Ok((major, minor)) => format!("{} (NVRTC {major}.{minor})", n.path()),
                Err(_) => n.path().to_string(),
            },
        },
        Err(e) => Probe {
            found: false,
            detail: e.to_string(),
        },
    };
    let cuda_driver = match resnetc_cuda::driver_path() {
        Ok(path) => Probe {
            found: true,
            detail: path,
        },
        Err(e) => Probe {
            found: false,
            detail: e.to_string(),
        },
    };
    About {
        schema_version: crate::SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: COMMIT.to_string(),
        cpu_kernels: resnetc_cpu::Isa::all_available()
            .into_iter()
            .map(|i| i.name().to_string())
            .collect(),
        nvrtc,
        cuda_driver,
    }
}

impl std::fmt::Display for About {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let probe = |p: &Probe| {
            if p.found {
                format!("found, {}", crate::escape::text(&p.detail))
            } else {
                format!("not found ({})", crate::escape::text(&p.detail))
            }
        };
        writeln!(f, "resnetc {} (commit {})", self.version, self.commit)?;
        writeln!(f, "cpu kernels: {}", self.cpu_kernels.join(", "))?;
        writeln!(f, "nvrtc: {}", probe(&self.nvrtc))?;
        write!(f, "cuda driver: {}", probe(&self.cuda_driver))
    }
}
