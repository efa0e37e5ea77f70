//! The pretrained CIFAR-10 ResNets in `../shared`: on the first 1000 test images, resnetc's
//! reference executor predicts exactly what PyTorch predicted, with logits within tolerance, on the
//! unoptimized (level 0) graph: the exactness oracle. The optimized (level 3) graph is held to the
//! same standard on the CPU backend by `tests/cpu_models.rs` (`pretrained_*`), and the optimizer
//! on the reference executor by `tests/optimize.rs` on every fixture.

mod common;

use common::*;
use resnetc_ir::Tensor;

fn check(name: &str) {
    let model = resnetc::Model::load_with(pretrained_model(name), &resnetc::LoadOptions::level(0))
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (images, labels) = cifar_test_images(1000);
    assert_eq!(labels.len(), 1000);
    let y = resnetc::reference::run(model.graph(), &[Tensor::f32(images.into_dyn())]).unwrap();
    assert_pytorch_predictions(name, &f32_of(&y[0]), &pretrained_logits(name), &labels);
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
