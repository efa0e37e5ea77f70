//! Writes the ONNX model an `onnx_mutate` input stands for, to look at a finding with the CLI or
//! any ONNX tool, and prints what each backend makes of it.
//!
//! ```sh
//! cd fuzz && cargo +nightly run --release --example dump_mutated -- INPUT OUT.onnx
//! cd fuzz && cargo +nightly run --release --example dump_mutated -- MODEL.onnx -   # run a model
//! ```

use arbitrary::{Arbitrary, Unstructured};
use resnetc::ndarray::{ArrayD, IxDyn};
use resnetc::{Device, LoadOptions, Model};
use resnetc_fuzz::seeds::{mutate_models, mutated, MutateInput};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, out] = args.as_slice() else {
        panic!("usage: dump_mutated INPUT OUT.onnx | dump_mutated MODEL.onnx -");
    };
    let data = std::fs::read(input).unwrap();
    let bytes = if out == "-" {
        // The input is an ONNX file already: just run it.
        data
    } else {
        let input = MutateInput::arbitrary_take_rest(Unstructured::new(&data)).unwrap();
        println!("{input:?}");
        let models: Vec<_> = mutate_models().iter().map(|m| resnetc_fuzz::wire::parse(m).unwrap()).collect();
        let bytes = mutated(&models, &input);
        std::fs::write(out, &bytes).unwrap();
        println!("wrote {out} ({} bytes)", bytes.len());
        bytes
    };
    for level in [0u8, 1, 2, 3] {
        let model = match Model::from_onnx_bytes(&bytes, None, &LoadOptions::level(level)) {
            Ok(m) => m,
            Err(e) => {
                println!("level {level}: {e}");
                continue;
            }
        };
        let dims = resnetc_fuzz::zero_input_shape(&model).unwrap();
        let n: usize = dims.iter().product();
        let x = ArrayD::from_shape_vec(IxDyn(&dims), (0..n).map(|i| ((i * 7919 % 2001) as f32 / 1000.0) - 1.0).collect()).unwrap();
        for device in [Device::Reference, Device::Cpu] {
            match model.session(device).and_then(|mut s| s.run_dyn(x.view())) {
                Ok(y) => println!("level {level} {device}: {:?}", y.iter().take(10).collect::<Vec<_>>()),
                Err(e) => println!("level {level} {device}: {e}"),
            }
        }
        if level == 3 {
            for isa in resnetc::cpu::Isa::all_available() {
                for w in [resnetc::Winograd::Off, resnetc::Winograd::F2, resnetc::Winograd::F4] {
                    let opts = resnetc::cpu::CpuOptions { isa, winograd: Some(w) };
                    let r = resnetc::cpu::CpuPlan::compile_with(model.graph(), model.info(), &opts).map_err(|e| e.to_string()).and_then(|plan| {
                        let floats = plan.outputs().next().unwrap().floats;
                        let mut y = vec![0f32; floats * dims[0]];
                        resnetc::cpu::Session::new(&plan, 1).run(x.as_slice().unwrap(), dims[0], &mut y).map_err(|e| e.to_string())?;
                        Ok(y)
                    });
                    match r {
                        Ok(y) => println!("  plan {} {w:?}: {:?}", isa.name(), &y[..y.len().min(10)]),
                        Err(e) => println!("  plan {} {w:?}: {e}", isa.name()),
                    }
                }
            }
        }
    }
    // The graph at level 3, as text.
    if let Ok(m) = Model::from_onnx_bytes(&bytes, None, &LoadOptions::default()) {
        println!("{}", resnetc::ir::dump::dump(m.graph(), Some(m.info())));
    }
}
