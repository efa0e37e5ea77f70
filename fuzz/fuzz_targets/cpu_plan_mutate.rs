//! Stored CPU plans, each changed in a few places by a structure-aware protobuf mutator
//! (`resnetc_fuzz::wire`: numbers set, moved or pushed to a boundary, fields removed or repeated,
//! packed float arrays resized) so that the message stays well-formed and the change reaches the
//! plan verifier (`resnetc-cpu` verify.rs) rather than the decoder. The plans are compiled once,
//! from the seed models (`resnetc_fuzz::seeds`), at several Winograd choices. A plan the verifier
//! accepts is trusted to run, so it runs on zeros (batch 1 or 2, one thread) on the kernel set the
//! input picks: an out-of-bounds access is an AddressSanitizer finding, a panic a finding too.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use resnetc::cpu::{CpuOptions, CpuPlan, Isa, Session, Winograd};
use resnetc_fuzz::seeds::{mini_resnet, tiny_classifier, Head, Style};
use resnetc_fuzz::wire::{self, Field, Mutation};

#[derive(Arbitrary, Debug)]
struct Input {
    plan: u8,
    isa: u8,
    batch2: bool,
    mutations: Vec<Mutation>,
}

fn plans() -> &'static [Vec<Field>] {
    static PLANS: OnceLock<Vec<Vec<Field>>> = OnceLock::new();
    PLANS.get_or_init(|| {
        let a = Style { opset: 17, dynamic: false, option_a: true, bn_kept: true, head: Head::Adaptive };
        let b = Style { opset: 13, dynamic: true, option_a: false, bn_kept: false, head: Head::AvgPoolView };
        let models = [
            (tiny_classifier(), Winograd::Auto),
            (mini_resnet(a, 1), Winograd::Off),
            (mini_resnet(a, 1), Winograd::F2),
            (mini_resnet(b, 1), Winograd::F4),
        ];
        models
            .iter()
            .map(|(onnx, winograd)| {
                let m = resnetc::Model::from_onnx_bytes(onnx, None, &Default::default())
                    .expect("a seed model loads");
                let opts = CpuOptions { isa: Isa::Portable, winograd: Some(*winograd) };
                let plan = CpuPlan::compile_with(m.graph(), m.info(), &opts)
                    .expect("a seed model compiles")
                    .to_bytes();
                let fields = wire::parse(&plan).expect("a plan parses");
                assert_eq!(wire::encode(&fields), plan, "the mutator round-trips a plan");
                fields
            })
            .collect()
    })
}

fuzz_target!(|input: Input| {
    let plans = plans();
    let mut fields = plans[input.plan as usize % plans.len()].clone();
    for m in input.mutations.iter().take(8) {
        wire::apply(&mut fields, m);
    }
    let bytes = wire::encode(&fields);
    let isas = Isa::all_available();
    let isa = isas[input.isa as usize % isas.len()];
    let plan = match CpuPlan::from_bytes(&bytes, isa) {
        Ok(p) => p,
        Err(e) => {
            resnetc_fuzz::note("plan", &e);
            return;
        }
    };
    let batch = if input.batch2 { 2 } else { 1 };
    let small = |floats: usize| floats <= 1 << 20;
    if !plan.inputs().iter().all(|p| small(p.floats))
        || !plan.outputs().all(|p| small(p.floats))
        || plan.arena_bytes(batch) > 256 << 20
    {
        return;
    }
    let inputs: Vec<Vec<f32>> = plan.inputs().iter().map(|p| vec![0f32; p.floats * batch]).collect();
    let mut outputs: Vec<Vec<f32>> = plan.outputs().map(|p| vec![0f32; p.floats * batch]).collect();
    let ins: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let mut outs: Vec<&mut [f32]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
    let mut session = Session::new(&plan, 1);
    if let Err(e) = session.run_many(&ins, batch, &mut outs) {
        resnetc_fuzz::note("run", &e);
    }
});
