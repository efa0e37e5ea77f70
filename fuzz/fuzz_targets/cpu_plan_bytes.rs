//! Raw bytes as a stored CPU plan (what a `.rnc` artifact's CPU section holds, behind a SHA-256
//! that a byte-level fuzzer of whole artifacts cannot get past): the first byte picks the kernel
//! set among this machine's (portable first), the rest goes to `CpuPlan::from_bytes`, which decodes
//! and verifies it (`resnetc-cpu` serial.rs, verify.rs). A plan that passes is trusted to run, so
//! it runs, on zeros at batch 1 on one thread, when its ports and arena are small: any
//! out-of-bounds access is an AddressSanitizer finding, a panic a finding too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnetc::cpu::{CpuPlan, Isa, Session};

/// The most floats per port, and bytes of arena, a plan is run with.
const MAX_PORT_FLOATS: usize = 1 << 20;
const MAX_ARENA_BYTES: usize = 256 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let isas = Isa::all_available();
    let isa = isas[which as usize % isas.len()];
    let plan = match CpuPlan::from_bytes(bytes, isa) {
        Ok(p) => p,
        Err(e) => {
            resnetc_fuzz::note("plan", &e);
            return;
        }
    };
    let small = |floats: usize| floats <= MAX_PORT_FLOATS;
    if !plan.inputs().iter().all(|p| small(p.floats))
        || !plan.outputs().all(|p| small(p.floats))
        || plan.arena_bytes(1) > MAX_ARENA_BYTES
    {
        return;
    }
    let inputs: Vec<Vec<f32>> = plan.inputs().iter().map(|p| vec![0f32; p.floats]).collect();
    let mut outputs: Vec<Vec<f32>> = plan.outputs().map(|p| vec![0f32; p.floats]).collect();
    let ins: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let mut outs: Vec<&mut [f32]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
    let mut session = Session::new(&plan, 1);
    if let Err(e) = session.run_many(&ins, 1, &mut outs) {
        resnetc_fuzz::note("run", &e);
    }
});
