//! Every fixture variant imports, canonicalizes and runs on the reference executor within tolerance
//! of PyTorch's own outputs; tract-onnx, run on the same files, agrees as an independent oracle.

mod common;

use common::*;
use resnetc_ir::{Op, Tensor};

#[test]
fn reference_matches_pytorch_on_every_fixture() {
    for f in fixtures() {
        let m = resnetc::Model::load_with(f.path(), &resnetc::LoadOptions::level(0))
            .unwrap_or_else(|e| panic!("{}: {e:#}", f.name));
        let y = resnetc::reference::run(m.graph(), &[Tensor::f32(f.input())])
            .unwrap_or_else(|e| panic!("{}: {e:#}", f.name));
        assert_logits_close(&f.name, &f32_of(&y[0]), &f.expected());
    }
}

#[test]
fn canonical_graphs_have_no_shape_arithmetic() {
    for f in fixtures() {
        let m = resnetc::Model::load_with(f.path(), &resnetc::LoadOptions::level(0)).unwrap();
        for &id in &m.info().order {
            let op = m.graph().op(id);
            assert!(
                !op.is_shape_arithmetic(),
                "{}: {} survived canonicalization",
                f.name,
                op.onnx_name()
            );
            assert!(!matches!(op, Op::Identity), "{}: Identity survived", f.name);
        }
        assert!(
            m.info().unknown_values(m.graph()).is_empty(),
            "{}: some shapes are unknown after canonicalization",
            f.name
        );
    }
}

#[test]
fn dynamic_batch_fixtures_run_at_other_batch_sizes() {
    for f in fixtures().into_iter().filter(|f| f.dynamic_batch) {
        let m = resnetc::Model::load_with(f.path(), &resnetc::LoadOptions::level(0)).unwrap();
        let x = f.input();
        let expected = f.expected();
        assert_ne!(
            x.shape()[0],
            2,
            "{}: the dynamic fixtures' inputs use a batch other than the export's",
            f.name
        );
        // Batch 1: the first image alone must give the first row.
        let x1 = x
            .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..1))
            .to_owned();
        let y1 = resnetc::reference::run(m.graph(), &[Tensor::f32(x1)]).unwrap();
        let e1 = expected
            .slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..1))
            .to_owned();
        assert_logits_close(&format!("{} batch 1", f.name), &f32_of(&y1[0]), &e1);
    }
}

/// tract-onnx, given the same file and input, agrees with PyTorch: an oracle independent of resnetc.
#[test]
fn tract_agrees_on_every_fixture() {
    use tract_onnx::prelude::*;
    for f in fixtures() {
        let x = f.input();
        let shape: Vec<usize> = x.shape().to_vec();
        // Static models get the concrete input shape; dynamic ones keep their symbolic batch, which
        // tract binds at run time.
        let model = tract_onnx::onnx()
            .model_for_path(f.path())
            .and_then(|m| {
                if f.dynamic_batch {
                    Ok(m)
                } else {
                    m.with_input_fact(0, f32::fact(&shape).into())
                }
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .unwrap_or_else(|e| panic!("{}: tract cannot load it: {e:?}", f.name));
        let input: tract_onnx::prelude::Tensor =
            tract_ndarray::ArrayD::from_shape_vec(shape, x.iter().copied().collect())
                .unwrap()
                .into();
        let out = model
            .run(tvec!(input.into()))
            .unwrap_or_else(|e| panic!("{}: tract run failed: {e:?}", f.name));
        let view = out[0].to_plain_array_view::<f32>().unwrap();
        let got =
            ndarray::ArrayD::from_shape_vec(view.shape().to_vec(), view.iter().copied().collect())
                .unwrap();
        assert_logits_close(&format!("{} (tract)", f.name), &got, &f.expected());
    }
}
