//! The packed CPU plan in `.rnc` artifacts: `run` uses it as stored — bit for bit what a fresh
//! compile of the model gives, with nothing packed on load — artifacts without one still run, and a
//! damaged plan is refused with a precise error, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use prost::Message;
use resnetc::Model;
use resnetc_artifact::{decode, encode, Artifact};
use resnetc_cpu::{proto, weights_packed_on_this_thread, CpuPlan, Isa, PlanError, Session};

/// `resnetc compile --target cpu` of a fixture into `dir`.
fn compile(f: &Fixture, dir: &Path) -> PathBuf {
    let rnc = dir.join(format!("{}.rnc", f.name));
    ok(&compile_args(&f.path(), &rnc, &["--target", "cpu"]));
    rnc
}

fn load(path: &Path) -> resnetc::Result<Model> {
    resnetc::Model::load_with(path, &resnetc::LoadOptions::level(0))
}

/// The plan's output for the fixture's input, on `threads` threads.
fn run(plan: &CpuPlan, f: &Fixture, threads: usize) -> Vec<f32> {
    let x = f.input();
    let batch = x.shape()[0];
    let mut y = vec![0f32; batch * plan.outputs().next().unwrap().floats];
    Session::new(plan, threads)
        .run(x.as_slice().unwrap(), batch, &mut y)
        .unwrap();
    y
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

#[test]
fn stored_plans_run_bit_for_bit_like_fresh_ones_and_pack_nothing() {
    let scratch = tmp("bits");
    let dir = scratch.path();
    for name in [
        "r20_a_ts17_static",
        "r56_b_ts17_static",
        "r20_b_ts17_dynamic",
    ] {
        let f = fixture(name);
        let rnc = compile(&f, dir);
        let packed = weights_packed_on_this_thread();
        let stored = load(&rnc).unwrap().cpu_plan(None).unwrap();
        assert_eq!(
            weights_packed_on_this_thread(),
            packed,
            "{name}: loading the artifact's plan packed weights"
        );
        assert_eq!(stored.isa(), Isa::Auto.resolve().unwrap());
        let fresh = load_fused(&f.path()).cpu_plan(None).unwrap();
        assert!(
            weights_packed_on_this_thread() > packed,
            "the counter counts"
        );
        assert_eq!(stored.describe(), fresh.describe(), "{name}");
        for threads in [1, 2] {
            assert!(
                same_bits(&run(&stored, &f, threads), &run(&fresh, &f, threads)),
                "{name}: the stored plan's outputs differ from a fresh compile's on {threads} threads"
            );
        }
        // And through the command line.
        let y = dir.join(format!("{name}.npy"));
        ok(&run_args(&rnc, &f.input_path(), &y, &["--threads", "1"]));
        let got = read_npy(&y);
        assert!(same_bits(got.as_slice().unwrap(), &run(&fresh, &f, 1)));
    }
}

#[test]
fn every_fixture_plan_round_trips() {
    for f in fixtures() {
        let plan = load_fused(&f.path()).cpu_plan(None).unwrap();
        let bytes = plan.to_bytes();
        let loaded = CpuPlan::from_bytes(&bytes, Isa::Auto).unwrap();
        assert_eq!(loaded.to_bytes(), bytes, "{}", f.name);
        assert_eq!(loaded.describe(), plan.describe(), "{}", f.name);
    }
}

fn artifact(f: &Fixture, dir: &Path) -> Artifact {
    decode(&std::fs::read(compile(f, dir)).unwrap(), Some("cpu")).unwrap()
}

/// `a` with its plan message edited (and its SHA-256 recomputed, as a careless tool would).
fn with_plan(a: &Artifact, edit: impl FnOnce(&mut proto::CpuPlan)) -> Artifact {
    let bytes = resnetc_artifact::packed_plan(a).unwrap();
    let mut p = proto::CpuPlan::decode(bytes).unwrap();
    edit(&mut p);
    with_plan_bytes(a, p.encode_to_vec())
}

fn with_plan_bytes(a: &Artifact, bytes: Vec<u8>) -> Artifact {
    let mut a = a.clone();
    a.cpu = Some(resnetc_artifact::cpu_section(bytes, &a.graph_sha256));
    a
}

/// Writes `a` and loads it as `run` does; the error of its plan.
fn plan_error(a: &Artifact, dir: &Path, tag: &str) -> resnetc::Error {
    let path = dir.join(format!("{tag}.rnc"));
    std::fs::write(&path, encode(a)).unwrap();
    load(&path).unwrap().cpu_plan(None).map(|_| ()).unwrap_err()
}

/// Asserts `e` is the plan's [`PlanError::Invalid`] with a message containing `what`.
fn assert_invalid(e: &resnetc::Error, what: &str) {
    assert!(
        matches!(
            e.downcast_ref::<PlanError>(),
            Some(PlanError::Invalid { .. })
        ),
        "{e:#}"
    );
    assert!(e.to_string().contains(what), "{e:#}");
}

/// The first convolution that keeps direct weights (`direct`), or the first of all (`!direct`: the
/// stem, whose rows Winograd F(4×4) covers, so it keeps none).
fn first_conv(p: &mut proto::CpuPlan, direct: bool) -> &mut proto::Conv {
    p.steps
        .iter_mut()
        .find_map(|s| match s.kernel.as_mut() {
            Some(proto::step::Kernel::Conv(c)) if !direct || !c.weights.is_empty() => Some(c),
            _ => None,
        })
        .unwrap()
}

#[test]
fn damaged_plans_are_refused_with_a_typed_error() {
    let scratch = tmp("damage");
    let dir = scratch.path();
    let f = fixture("r20_a_ts17_static");
    let a = artifact(&f, dir);
    let plan = resnetc_artifact::packed_plan(&a).unwrap().to_vec();

    let truncated = with_plan_bytes(&a, plan[..plan.len() / 2].to_vec());
    let e = plan_error(&truncated, dir, "truncated");
    assert!(
        matches!(e.downcast_ref::<PlanError>(), Some(PlanError::Decode(_))),
        "{e:#}"
    );

    let bad_buffer = with_plan(&a, |p| p.steps[3].inputs[0] = 10_000);
    assert_invalid(
        &plan_error(&bad_buffer, dir, "buffer"),
        "buffer 10000 does not exist",
    );

    // The first stride-2 convolution, 16 to 32 channels.
    let short_weights = with_plan(&a, |p| {
        first_conv(p, true).weights.pop();
    });
    assert_invalid(
        &plan_error(&short_weights, dir, "weights"),
        "the weights hold 4607, but ocb·icb·kh·kw·256 = 2·1·3·3·256 = 4608",
    );
    let stray_weights = with_plan(&a, |p| first_conv(p, false).weights.push(0.0));
    assert_invalid(
        &plan_error(&stray_weights, dir, "stray"),
        "the direct weights hold 1, but Winograd F(4×4) computes all 32 output rows, so there are none",
    );

    // Bytes changed without updating the hash: the artifact itself is refused.
    let mut flipped = a.clone();
    let cpu = flipped.cpu.as_mut().unwrap();
    let k = cpu.packed_plan.len() / 2;
    cpu.packed_plan[k] ^= 0x40;
    assert!(matches!(
        decode(&encode(&flipped), None),
        Err(resnetc_artifact::ArtifactError::PlanHash)
    ));

    // `run` says so and exits; it neither panics nor falls back to the reference executor.
    let path = dir.join("cli.rnc");
    std::fs::write(&path, encode(&short_weights)).unwrap();
    let err = fails(&["run", utf8(&path), "--input", utf8(&f.input_path())]);
    assert!(
        err.contains("the stored CPU plan is invalid: step ")
            && err.contains("the weights hold 4607")
            && err.contains("recompile the model with `resnetc compile`")
            && !err.contains("panicked")
            && !err.contains("reference executor"),
        "{err}"
    );
}

/// An artifact written before plans were stored runs by compiling its graph.
#[test]
fn artifacts_without_a_plan_compile_their_graph() {
    let scratch = tmp("old");
    let dir = scratch.path();
    let f = fixture("r20_a_ts17_static");
    let mut a = artifact(&f, dir);
    let stored =
        CpuPlan::from_bytes(resnetc_artifact::packed_plan(&a).unwrap(), Isa::Auto).unwrap();
    a.cpu = None;
    let path = dir.join("old.rnc");
    std::fs::write(&path, encode(&a)).unwrap();
    let packed = weights_packed_on_this_thread();
    let compiled = load(&path).unwrap().cpu_plan(None).unwrap();
    assert!(weights_packed_on_this_thread() > packed);
    assert!(same_bits(&run(&compiled, &f, 1), &run(&stored, &f, 1)));
}
