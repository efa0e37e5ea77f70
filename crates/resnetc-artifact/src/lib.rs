//! The `.rnc` artifact that `resnetc compile` writes: the optimized graph and target-specific
//! sections, in a versioned protobuf (`schemas/rnc.proto`) behind an 8-byte magic.
//!
//! Loading never trusts the file: the magic, the format version, the resnetc version, the target and
//! SHA-256s of the graph payload and of the CPU plan are checked, and each mismatch gets its own
//! message saying what to do (almost always: recompile with `resnetc compile`).
//!
//! The sections are opaque bytes to this crate: the CPU section holds resnetc-cpu's packed plan
//! (`schemas/rnc_cpu.proto`, decoded and validated by `resnetc_cpu::CpuPlan::from_bytes`), the CUDA
//! section resnetc-cuda's launch plan, so the container depends on no backend.

use prost::Message;
use resnetc_ir::Graph;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub mod proto {
    //! Types generated from `schemas/rnc.proto`.
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/resnetc.rnc.rs"));
}

pub use proto::{Artifact, CpuSection, CudaBinary, CudaSection};

/// The first bytes of every `.rnc` file.
pub const MAGIC: &[u8; 8] = b"RESNETC\0";
/// The format this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// This build's version, recorded in and checked against artifacts.
pub const RESNETC_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("not a resnetc artifact (it does not start with the .rnc magic); compile one with `resnetc compile MODEL.onnx`")]
    NotAnArtifact,
    #[error("the artifact is corrupt: {0}")]
    Corrupt(String),
    #[error("the artifact has format version {found}, this resnetc reads version {FORMAT_VERSION}; recompile it with `resnetc compile`")]
    FormatVersion { found: u32 },
    #[error("the artifact was compiled by resnetc {found}, this is resnetc {RESNETC_VERSION}; recompile it with this version's `resnetc compile`")]
    ResnetcVersion { found: String },
    #[error("the artifact was compiled for target '{found}', but '{wanted}' was requested; compile it with `resnetc compile --target {wanted}`")]
    Target { found: String, wanted: String },
    #[error("the artifact's graph does not match its recorded SHA-256 (the file was modified or damaged); recompile it")]
    GraphHash,
    #[error("the artifact's CPU plan does not match its recorded SHA-256 (the file was modified or damaged); recompile it")]
    PlanHash,
    #[error("the artifact's CUDA section does not match its recorded SHA-256 (the file was modified or damaged); recompile it")]
    CudaHash,
    #[error("the artifact's {section} section was compiled from another graph than the one the artifact holds (a section copied from another artifact?); recompile it")]
    SectionGraph { section: &'static str },
    #[error("the artifact's source model hash differs from {path}: it was compiled from another model (or another version of it); recompile it")]
    SourceHash { path: String },
    #[error("the artifact's graph cannot be read: {0}")]
    Graph(#[from] resnetc_onnx::ImportError),
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Whether `bytes` look like an artifact (start with [`MAGIC`]).
pub fn is_artifact(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Encodes an artifact with its magic.
pub fn encode(a: &Artifact) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(a.encode_to_vec());
    out
}

/// A new artifact for `graph` (already optimized and validated), compiled from `source` bytes.
pub fn new_artifact(
    graph_onnx: Vec<u8>,
    source: &[u8],
    source_name: &str,
    target: &str,
    opt_level: u32,
    batch: u64,
) -> Artifact {
    Artifact {
        format_version: FORMAT_VERSION,
        resnetc_version: RESNETC_VERSION.to_string(),
        target: target.to_string(),
        source_sha256: sha256(source),
        source_name: source_name.to_string(),
        opt_level,
        batch,
        graph_sha256: sha256(&graph_onnx),
        graph: graph_onnx,
        cpu: None,
        cuda: None,
    }
}

/// Decodes and checks an artifact. `wanted_target` is checked when given (the family before `:`
/// must match: an artifact for `cuda:sm_80` serves `cuda`).
pub fn decode(bytes: &[u8], wanted_target: Option<&str>) -> Result<Artifact, ArtifactError> {
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ArtifactError::NotAnArtifact)?;
    let a = Artifact::decode(body).map_err(|e| ArtifactError::Corrupt(e.to_string()))?;
    if a.format_version != FORMAT_VERSION {
        return Err(ArtifactError::FormatVersion {
            found: a.format_version,
        });
    }
    if a.resnetc_version != RESNETC_VERSION {
        return Err(ArtifactError::ResnetcVersion {
            found: a.resnetc_version.clone(),
        });
    }
    if let Some(wanted) = wanted_target {
        let family = |t: &str| t.split(':').next().unwrap_or("").to_string();
        if family(&a.target) != family(wanted) {
            return Err(ArtifactError::Target {
                found: a.target.clone(),
                wanted: wanted.to_string(),
            });
        }
    }
    if sha256(&a.graph) != a.graph_sha256 {
        return Err(ArtifactError::GraphHash);
    }
    if let Some(cpu) = &a.cpu {
        if !cpu.packed_plan.is_empty() && sha256(&cpu.packed_plan) != cpu.packed_plan_sha256 {
            return Err(ArtifactError::PlanHash);
        }
        if !cpu.packed_plan.is_empty() && cpu.graph_sha256 != a.graph_sha256 {
            return Err(ArtifactError::SectionGraph { section: "CPU" });
        }
    }
    if let Some(cuda) = &a.cuda {
        if cuda_digest(cuda) != cuda.sha256 {
            return Err(ArtifactError::CudaHash);
        }
        if cuda.graph_sha256 != a.graph_sha256 {
            return Err(ArtifactError::SectionGraph { section: "CUDA" });
        }
    }
    Ok(a)
}

/// A CPU section holding `packed_plan` (an encoded `resnetc.rnc.cpu.CpuPlan`), its SHA-256, and
/// the hash of the graph it was compiled from.
pub fn cpu_section(packed_plan: Vec<u8>, graph_sha256: &[u8]) -> CpuSection {
    CpuSection {
        packed_plan_sha256: sha256(&packed_plan),
        packed_plan,
        graph_sha256: graph_sha256.to_vec(),
    }
}

/// The CUDA section with its digest and the hash of the graph it was lowered from filled in.
pub fn seal_cuda(mut section: CudaSection, graph_sha256: &[u8]) -> CudaSection {
    section.graph_sha256 = graph_sha256.to_vec();
    section.sha256 = cuda_digest(&section);
    section
}

/// SHA-256 over a CUDA section's contents: each field length-prefixed, in field order, so that no
/// two different sections hash alike.
pub fn cuda_digest(c: &CudaSection) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(c.source.as_bytes());
    field(&(c.binaries.len() as u64).to_le_bytes());
    for b in &c.binaries {
        field(b.arch.as_bytes());
        field(&b.cubin);
        field(b.ptx.as_bytes());
    }
    field(&c.launch_plan);
    field(&c.weights);
    field(&c.graph_sha256);
    h.finalize().to_vec()
}

/// The stored CPU plan, if the artifact has one (artifacts written before plans were stored, and
/// those whose graph the CPU backend cannot run, have none).
pub fn packed_plan(a: &Artifact) -> Option<&[u8]> {
    a.cpu
        .as_ref()
        .map(|c| c.packed_plan.as_slice())
        .filter(|p| !p.is_empty())
}

/// Checks that the artifact was compiled from the model at `path` with contents `source`.
pub fn check_source(a: &Artifact, source: &[u8], path: &str) -> Result<(), ArtifactError> {
    if sha256(source) != a.source_sha256 {
        return Err(ArtifactError::SourceHash {
            path: path.to_string(),
        });
    }
    Ok(())
}

/// The artifact's graph.
pub fn graph(a: &Artifact) -> Result<Graph, ArtifactError> {
    Ok(resnetc_onnx::import_bytes(&a.graph, None)?)
}

/// Lower-case hex, for messages and `inspect`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
