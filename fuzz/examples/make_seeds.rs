//! Writes the seed corpora under `fuzz/corpus/`: tiny CifarResNet-shaped ONNX models built by hand
//! (`resnetc_fuzz::seeds`: the ops and idioms of PyTorch's exports, at 4/8/16 channels on 8×8
//! images, a few kB each), one
//! exported back by resnetc (its own FusedConv/Shortcut ops), `.rnc` artifacts compiled from them,
//! and `.npy` files. Deterministic.
//!
//! ```sh
//! cd fuzz && cargo +nightly run --release --example make_seeds
//! ```

use std::path::{Path, PathBuf};

use resnetc::ndarray::{ArrayD, IxDyn};
use resnetc_fuzz::seeds::*;
use resnetc_fuzz::{zero_input_shape, Rng};

fn npy_header(version: u8, dict: &str) -> Vec<u8> {
    // Padded with spaces to a multiple of 64 bytes, ending in '\n', as numpy writes it.
    let prefix = if version == 1 { 10 } else { 12 };
    let mut dict = dict.to_string();
    while (prefix + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend((dict.len() as u16).to_le_bytes());
    } else {
        out.extend((dict.len() as u32).to_le_bytes());
    }
    out.extend(dict.as_bytes());
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{:>8}  {}", bytes.len(), dir.join(name).display());
}

fn check_runs(name: &str, bytes: &[u8]) -> resnetc::Model {
    let model = resnetc::Model::from_bytes(bytes, None, &resnetc::LoadOptions::default())
        .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
    let dims = zero_input_shape(&model).unwrap_or_else(|| panic!("{name}: input not fixed"));
    let x = ArrayD::<f32>::from_elem(IxDyn(&dims), 0.5);
    for device in [resnetc::Device::Reference, resnetc::Device::Cpu] {
        let mut s = model.session(device).unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
        s.run_dyn(x.view()).unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
    }
    model
}

fn main() {
    // `--fixture-rnc DIR`: only compile fixtures/models/r20_a_ts17_static.onnx into DIR (a 3.5 MB
    // artifact, too big to commit; scripts/fuzz.sh makes it for FUZZ_FIXTURES=1).
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, dir] = args.as_slice() {
        assert_eq!(flag, "--fixture-rnc", "usage: make_seeds [--fixture-rnc DIR]");
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models/r20_a_ts17_static.onnx");
        let model = resnetc::Model::load(&src).unwrap();
        let art = resnetc::compile(&model, resnetc::Target::Cpu).unwrap().to_bytes();
        write(Path::new(dir), "r20_a_ts17_static.rnc", &art);
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let onnx = root.join("onnx_bytes");
    let rnc = root.join("rnc_bytes");
    let npy = root.join("npy_bytes");
    let styles = [
        ("mini_a_ts17_static_adaptive", Style { opset: 17, dynamic: false, option_a: true, bn_kept: true, head: Head::Adaptive }),
        ("mini_a_ts11_dynamic_view_folded", Style { opset: 11, dynamic: true, option_a: true, bn_kept: false, head: Head::AvgPoolView }),
        ("mini_b_ts13_static_view", Style { opset: 13, dynamic: false, option_a: false, bn_kept: true, head: Head::AvgPoolView }),
        ("mini_b_op18_dynamic_mean", Style { opset: 18, dynamic: true, option_a: false, bn_kept: true, head: Head::Mean }),
    ];
    for (i, (name, style)) in styles.iter().enumerate() {
        let bytes = mini_resnet(*style, 2);
        let model = check_runs(name, &bytes);
        write(&onnx, &format!("{name}.onnx"), &bytes);
        if i % 2 == 0 {
            // An artifact of it, and (for the first) resnetc's own export with fused ops.
            let art = resnetc::compile(&model, resnetc::Target::Cpu).unwrap().to_bytes();
            check_runs(&format!("{name}.rnc"), &art);
            write(&rnc, &format!("{name}.rnc"), &art);
        }
        if i == 0 {
            let exported = resnetc::export_onnx_bytes(&model, &resnetc::ExportOptions::default()).unwrap();
            check_runs(&format!("{name}.resnetc.onnx"), &exported);
            write(&onnx, &format!("{name}.resnetc.onnx"), &exported);
        }
    }
    let tiny = tiny_classifier();
    let model = check_runs("tiny_classifier", &tiny);
    write(&onnx, "tiny_classifier.onnx", &tiny);
    write(&rnc, "tiny_classifier.onnx", &tiny);
    let art = resnetc::compile(&model, resnetc::Target::Cpu).unwrap().to_bytes();
    check_runs("tiny_classifier.rnc", &art);
    write(&rnc, "tiny_classifier.rnc", &art);
    let fixed = model.with_batch(2).unwrap();
    let art = resnetc::compile(&fixed, resnetc::Target::Cpu).unwrap().to_bytes();
    write(&rnc, "tiny_classifier_batch2.rnc", &art);
    write(&onnx, "conv_relu.onnx", &conv_relu());

    // Stored CPU plans, behind the kernel-set byte of cpu_plan_bytes (0: portable; 1, 2: the next
    // kernel sets this machine has, wrapping around).
    let plans = root.join("cpu_plan_bytes");
    let plan = model.cpu_plan(None).unwrap().to_bytes();
    write(&plans, "tiny_classifier.plan", &[&[0u8][..], &plan].concat());
    write(&plans, "tiny_classifier_isa2.plan", &[&[2u8][..], &plan].concat());
    let mini = resnetc::Model::from_onnx_bytes(&mini_resnet(styles[0].1, 2), None, &Default::default()).unwrap();
    for (name, winograd) in [("off", resnetc::Winograd::Off), ("f2", resnetc::Winograd::F2), ("f4", resnetc::Winograd::F4)] {
        let opts = resnetc::cpu::CpuOptions { isa: resnetc::cpu::Isa::Portable, winograd: Some(winograd) };
        let p = resnetc::cpu::CpuPlan::compile_with(mini.graph(), mini.info(), &opts).unwrap().to_bytes();
        // F4's transformed weights make a 180 kB plan: left out.
        if name != "f4" {
            write(&plans, &format!("mini_a_winograd_{name}.plan"), &[&[1u8][..], &p].concat());
        } else {
            println!("(not written: mini_a winograd {name}, {} bytes)", p.len());
        }
    }

    // .npy: what numpy writes (v1, little-endian f4), and the variants a reader must handle or refuse.
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    for (name, shape) in [("f4_2x3", vec![2, 3]), ("f4_1x3x4x4", vec![1, 3, 4, 4]), ("f4_scalar", vec![]), ("f4_empty", vec![0])] {
        let n = shape.iter().product();
        let a = ArrayD::from_shape_vec(IxDyn(&shape), rng.vec(n, -2.0, 2.0)).unwrap();
        let p = tmp.path().join("a.npy");
        resnetc::npy::write_f32(&p, &a).unwrap();
        write(&npy, &format!("{name}.npy"), &std::fs::read(&p).unwrap());
    }
    let data: Vec<u8> = [1.0f32, -2.0, 3.5, 0.25, -0.0, 7.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let be: Vec<u8> = [1.0f32, -2.0, 3.5, 0.25, -0.0, 7.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    let with = |h: Vec<u8>, d: &[u8]| [h, d.to_vec()].concat();
    write(&npy, "f4_fortran_3x2.npy", &with(npy_header(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }"), &data));
    write(&npy, "f4_big_endian.npy", &with(npy_header(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }"), &be));
    write(&npy, "f4_v2.npy", &with(npy_header(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), &data));
    write(&npy, "f8_3.npy", &with(npy_header(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"), &data));
    write(&npy, "f4_truncated.npy", &with(npy_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }"), &data));
}
