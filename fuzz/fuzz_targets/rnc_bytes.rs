//! Raw bytes as a model file of either kind (`Model::from_bytes`: a `.rnc` artifact, told apart
//! by its magic bytes, or ONNX); when it loads and its input is small and fixed, run zeros on the
//! CPU backend (an artifact's stored plan is decoded and checked there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnetc::{Device, LoadOptions, Model};

fuzz_target!(|data: &[u8]| {
    match Model::from_bytes(data, None, &LoadOptions::default()) {
        Ok(model) => resnetc_fuzz::run_zeros(&model, &[Device::Cpu]),
        Err(e) => resnetc_fuzz::note("load", &e),
    }
});
