//! Runs the shared pretrained ResNet-56 on the 1000 shared CIFAR-10 test images through resnetc's
//! public API, checks every prediction against PyTorch's, compiles it to an `.rnc`, and loads and
//! runs that too. Exits non-zero on any difference.
//!
//! Usage: resnetc-consumer SHARED_DIR OUT_DIR

use std::path::PathBuf;

use resnetc::{Device, Model, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shared = PathBuf::from(args.next().ok_or("usage: resnetc-consumer SHARED_DIR OUT_DIR")?);
    let out = PathBuf::from(args.next().ok_or("usage: resnetc-consumer SHARED_DIR OUT_DIR")?);
    let pretrained = shared.join("models/pretrained");

    let model = Model::load(pretrained.join("resnet56_cifar10_pretrained.onnx"))?;
    let (images, labels) = resnetc::cifar::read_batch(&shared.join("data/cifar10/test_first1000.bin"), 1000)?;
    let torch = resnetc::npy::read_f32(&pretrained.join("resnet56_cifar10_pretrained.logits_first1000.npy"))?;
    let want = resnetc::top1(&torch.view());

    let mut session = model.session(Device::Cpu)?;
    let logits = session.run(images.view())?;
    let got = resnetc::top1(&logits.view().into_dyn());
    let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    let correct = got.iter().zip(&labels).filter(|(p, l)| **p == Some(**l as usize)).count();
    println!("onnx: {correct}/1000 correct, {differ} predictions differ from PyTorch's");
    if differ != 0 {
        return Err("predictions differ from PyTorch's".into());
    }

    let rnc = out.join("resnet56.rnc");
    resnetc::compile(&model, Target::Cpu)?.save(&rnc)?;
    let compiled = Model::load(&rnc)?;
    let again = compiled.session(Device::Cpu)?.run(images.view())?;
    println!("rnc: {} bytes, logits {} the ONNX model's", std::fs::metadata(&rnc)?.len(), if again == logits { "equal to" } else { "DIFFERENT from" });
    if again != logits {
        return Err("the compiled artifact gives other logits".into());
    }
    Ok(())
}
