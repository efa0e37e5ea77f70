//! Helpers of the CUDA backend's tests: the shared ones (`resnetc-testkit`: where the models are,
//! loading them fused, the host emulation's dispatch and fake driver), and the emulator runner.
#![allow(dead_code)]

pub use resnetc_testkit::cuda_host;

use std::path::PathBuf;
use std::process::Command;

use cuda_host::{cxx, dispatch_source, emu_dir};
use resnetc_cuda::{Arg, CudaProgram};

#[allow(unused_imports)]
pub use resnetc_testkit::*;

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.is_nan() || y.is_nan() {
                f32::INFINITY
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// Runs `program` on the reference executor's twin: the generated kernels compiled as host C++.
pub struct Emulator {
    dir: PathBuf,
    exe: PathBuf,
}

impl Emulator {
    /// Writes the program's source with a dispatch table and compiles it with the host compiler;
    /// with `asan` (or `RESNETC_EMU_ASAN` set), under AddressSanitizer, which reports any read or
    /// write outside a buffer or weight operand.
    pub fn build(program: &CudaProgram, tag: &str, asan: bool) -> Emulator {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("emu-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kernels.cu"), &program.source).unwrap();
        std::fs::write(dir.join("dispatch.inc"), dispatch_source(&program.kernels)).unwrap();
        let emu = emu_dir();
        let exe = dir.join("emu");
        let mut cmd = Command::new(cxx());
        cmd.args(["-std=c++17", "-O2", "-w", "-o"])
            .arg(&exe)
            .arg("-I")
            .arg(&emu)
            .arg("-I")
            .arg(&dir)
            .arg(emu.join("driver.cpp"));
        if asan || std::env::var_os("RESNETC_EMU_ASAN").is_some() {
            cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
        }
        let out = cmd.output().expect("running the C++ compiler");
        assert!(
            out.status.success(),
            "host compilation of the generated source failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Emulator { dir, exe }
    }

    /// Runs the plan for `batch` images of `input` and returns the output.
    pub fn run(&self, program: &CudaProgram, input: &[f32], batch: usize) -> Vec<f32> {
        let plan = program.plan(batch).expect("plan");
        let lens = program.buffer_lens(batch);
        let mut text = format!("batch {batch}\nbuffers {}", lens.len());
        for n in &lens {
            text.push_str(&format!(" {n}"));
        }
        text.push_str(&format!(
            "\ninput {}\noutput {} {}\nlaunches {}\n",
            program.input.buffer,
            program.output.buffer,
            program.output.elems_per_image() * batch,
            plan.len()
        ));
        for l in &plan {
            assert_eq!(l.block[1..], [1, 1]);
            text.push_str(&format!(
                "{} {} {} {} {} {}",
                l.kernel,
                l.grid[0],
                l.grid[1],
                l.grid[2],
                l.block[0],
                l.args.len()
            ));
            for a in &l.args {
                match a {
                    Arg::Buffer(b) => text.push_str(&format!(" B{b}")),
                    Arg::Weights { offset, len } => text.push_str(&format!(" W{offset}:{len}")),
                    Arg::Null => text.push_str(" N"),
                    Arg::Batch => text.push_str(" b"),
                }
            }
            text.push('\n');
        }
        let tag = format!("b{batch}");
        let plan_path = self.dir.join(format!("plan-{tag}.txt"));
        std::fs::write(&plan_path, text).unwrap();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (w, i, o) = (
            self.dir.join("weights.bin"),
            self.dir.join(format!("input-{tag}.bin")),
            self.dir.join(format!("output-{tag}.bin")),
        );
        std::fs::write(&w, bytes(&program.weights)).unwrap();
        std::fs::write(&i, bytes(input)).unwrap();
        let out = Command::new(&self.exe)
            .arg(&plan_path)
            .arg(&w)
            .arg(&i)
            .arg(&o)
            .output()
            .expect("running the emulator");
        assert!(
            out.status.success(),
            "the emulated program failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&o)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}
