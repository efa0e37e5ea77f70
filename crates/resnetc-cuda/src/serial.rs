//! The launch plan to and from `schemas/rnc_cuda.proto`, what a `.rnc` artifact's CUDA section
//! stores. Decoding checks only what the types need (numbers that fit, arguments of a known kind);
//! the caller adds source and weights and then runs [`CudaProgram::check`] on the whole.

use prost::Message;

use crate::plan::{Arg, BufferDesc, CudaProgram, IoDesc, Step, Variant};
use crate::CudaError;

pub mod proto {
    //! Types generated from `schemas/rnc_cuda.proto`.
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/resnetc.rnc.cuda.rs"));
}

/// The launch-plan format this build reads and writes.
pub const LAUNCH_PLAN_VERSION: u32 = 1;

/// The program without its source and weights, encoded.
pub fn encode_program(p: &CudaProgram) -> Vec<u8> {
    let io = |d: &IoDesc| proto::Io {
        buffer: d.buffer as u64,
        shape: d.shape.iter().map(|&n| n as u64).collect(),
    };
    let arg = |a: &Arg| proto::Arg {
        kind: Some(match a {
            Arg::Buffer(b) => proto::arg::Kind::Buffer(*b as u64),
            Arg::Weights { offset, len } => proto::arg::Kind::Weights(proto::Weights {
                offset: *offset as u64,
                len: *len as u64,
            }),
            Arg::Null => proto::arg::Kind::Null(true),
            Arg::Batch => proto::arg::Kind::Batch(true),
        }),
    };
    proto::LaunchPlan {
        version: LAUNCH_PLAN_VERSION,
        kernels: p.kernels.clone(),
        steps: (p.steps.iter())
            .map(|s| proto::Step {
                what: s.what.clone(),
                variants: (s.variants.iter())
                    .map(|v| proto::Variant {
                        kernel: v.kernel.clone(),
                        min_batch: v.min_batch as u64,
                        block: v.block,
                        rows_per_image: v.rows_per_image,
                        rows_per_block: v.rows_per_block,
                        grid_y: v.grid_y,
                    })
                    .collect(),
                args: s.args.iter().map(arg).collect(),
            })
            .collect(),
        buffer_elems_per_image: p.buffers.iter().map(|b| b.elems_per_image as u64).collect(),
        input: Some(io(&p.input)),
        output: Some(io(&p.output)),
        batch: p.batch.unwrap_or(0) as u64,
    }
    .encode_to_vec()
}

/// Reads a launch plan [`encode_program`] wrote: a program with empty source and weights.
pub fn decode_program(bytes: &[u8]) -> Result<CudaProgram, CudaError> {
    let bad = |what: String| CudaError::Program(format!("the launch plan {what}"));
    let p =
        proto::LaunchPlan::decode(bytes).map_err(|e| bad(format!("cannot be decoded ({e})")))?;
    if p.version != LAUNCH_PLAN_VERSION {
        return Err(bad(format!(
            "has format version {}, this resnetc reads version {LAUNCH_PLAN_VERSION}",
            p.version
        )));
    }
    let size = |what: &str, n: u64| {
        usize::try_from(n).map_err(|_| bad(format!("has {what} {n}, too large")))
    };
    let io = |what: &str, d: Option<proto::Io>| -> Result<IoDesc, CudaError> {
        let d = d.ok_or_else(|| bad(format!("has no {what}")))?;
        Ok(IoDesc {
            buffer: size("a buffer index", d.buffer)?,
            shape: d
                .shape
                .iter()
                .map(|&n| size("a dimension", n))
                .collect::<Result<_, _>>()?,
        })
    };
    let arg = |a: &proto::Arg| -> Result<Arg, CudaError> {
        Ok(match &a.kind {
            Some(proto::arg::Kind::Buffer(b)) => Arg::Buffer(size("a buffer index", *b)?),
            Some(proto::arg::Kind::Weights(w)) => Arg::Weights {
                offset: size("a weight offset", w.offset)?,
                len: size("a weight length", w.len)?,
            },
            Some(proto::arg::Kind::Null(_)) => Arg::Null,
            Some(proto::arg::Kind::Batch(_)) => Arg::Batch,
            None => return Err(bad("has an argument of no kind".into())),
        })
    };
    let mut steps = Vec::with_capacity(p.steps.len().min(1 << 16));
    for s in &p.steps {
        let mut variants = Vec::with_capacity(s.variants.len().min(64));
        for v in &s.variants {
            variants.push(Variant {
                kernel: v.kernel.clone(),
                min_batch: size("a minimum batch", v.min_batch)?,
                block: v.block,
                rows_per_image: v.rows_per_image,
                rows_per_block: v.rows_per_block,
                grid_y: v.grid_y,
            });
        }
        steps.push(Step {
            what: s.what.clone(),
            variants,
            args: s.args.iter().map(arg).collect::<Result<_, _>>()?,
        });
    }
    Ok(CudaProgram {
        source: String::new(),
        kernels: p.kernels,
        steps,
        buffers: (p.buffer_elems_per_image.iter())
            .map(|&n| {
                Ok(BufferDesc {
                    elems_per_image: size("a buffer size", n)?,
                })
            })
            .collect::<Result<_, CudaError>>()?,
        input: io("input", p.input)?,
        output: io("output", p.output)?,
        weights: Vec::new(),
        batch: match p.batch {
            0 => None,
            b => Some(size("a batch", b)?),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_round_trips_and_damage_is_an_error() {
        let p = CudaProgram {
            source: String::new(),
            kernels: vec!["k0_conv".into(), "k1_head".into()],
            steps: vec![Step {
                what: "conv 3->16 32x32 k3 s1".into(),
                variants: vec![Variant {
                    kernel: "k0_conv".into(),
                    min_batch: 1,
                    block: 128,
                    rows_per_image: 32,
                    rows_per_block: 4,
                    grid_y: 1,
                }],
                args: vec![
                    Arg::Buffer(0),
                    Arg::Weights {
                        offset: 4,
                        len: 432,
                    },
                    Arg::Null,
                    Arg::Batch,
                ],
            }],
            buffers: vec![
                BufferDesc {
                    elems_per_image: 3072,
                },
                BufferDesc {
                    elems_per_image: 10,
                },
            ],
            input: IoDesc {
                buffer: 0,
                shape: vec![3, 32, 32],
            },
            output: IoDesc {
                buffer: 1,
                shape: vec![10],
            },
            weights: Vec::new(),
            batch: Some(8),
        };
        assert_eq!(decode_program(&encode_program(&p)).unwrap(), p);
        let bytes = encode_program(&p);
        assert!(matches!(
            decode_program(&bytes[..bytes.len() / 2]),
            Err(CudaError::Program(_))
        ));
        let mut other = proto::LaunchPlan::decode(bytes.as_slice()).unwrap();
        other.version = 7;
        let e = decode_program(&other.encode_to_vec()).unwrap_err();
        assert!(e.to_string().contains("format version 7"), "{e}");
    }
}
