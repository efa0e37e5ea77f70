//! Times the reference executor on a CIFAR ResNet-56 (generated weights) at batch 2:
//! `cargo run --release -p resnetc-reference --example resnet56`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

fn main() {
    let graph = common::cifar_resnet(9, 10, 2, 56);
    let x = common::Gen::new(1).tensor(&[2, 3, 32, 32]);
    for _ in 0..3 {
        let start = Instant::now();
        let y = resnetc_reference::run(&graph, std::slice::from_ref(&x)).expect("runs");
        println!(
            "ResNet-56, batch 2: {:.1} ms, logits[0..3] = {:?}",
            start.elapsed().as_secs_f64() * 1e3,
            &common::f32s(&y[0])[..3]
        );
    }
}
