//! The pretrained CIFAR-10 ResNets in `../shared`: on the first 1000 test images, resnetc's
//! reference executor predicts exactly what PyTorch predicted, with logits within tolerance, on the
//! unoptimized (level 0) graph: the exactness oracle. The optimized (level 3) graph is held to the
//! same standard on the CPU backend by `tests/cpu_models.rs` (`pretrained_*`), and the optimizer
//! on the reference executor by `tests/optimize.rs` on every fixture.

mod common;

use common::*;
use resnetc_ir::Tensor;
use resnetc_passes::PassOptions;

fn check(name: &str) {
    let model = resnetc::load_model(&pretrained_model(name), &PassOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (images, labels) =
        resnetc::cifar::read_batch(&shared().join("data/cifar10/test_first1000.bin"), 1000)
            .unwrap();
    assert_eq!(labels.len(), 1000);
    let expected = read_npy(&shared().join(format!(
        "models/pretrained/{name}_cifar10_pretrained.logits_first1000.npy"
    )));
    let y = model
        .run_reference(&[Tensor::f32(images.into_dyn())])
        .unwrap();
    let got = f32_of(&y[0]);
    let (p, e) = (argmax_rows(&got), argmax_rows(&expected));
    let mismatches: Vec<usize> = (0..1000).filter(|&i| p[i] != e[i]).collect();
    assert!(
        mismatches.is_empty(),
        "{name}: predictions differ from PyTorch's on images {mismatches:?}"
    );
    assert_logits_close(name, &got, &expected);
    let correct = p
        .iter()
        .zip(&labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    eprintln!(
        "{name}: {correct}/1000 correct, max |Δlogit| {:.2e}",
        max_abs_diff(&got, &expected)
    );
}

#[test]
fn resnet20() {
    check("resnet20");
}

#[test]
fn resnet32() {
    check("resnet32");
}

#[test]
fn resnet44() {
    check("resnet44");
}

#[test]
fn resnet56() {
    check("resnet56");
}
