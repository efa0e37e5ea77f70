//! Raw bytes as an ONNX file: import, optimize (default level), and, when the model's single
//! input is small and fixed (a symbolic batch taken as 1), run zeros on the reference executor
//! and the CPU backend. Errors are fine; a panic, abort, OOM or timeout is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resnetc::{Device, LoadOptions, Model};

fuzz_target!(|data: &[u8]| {
    match Model::from_onnx_bytes(data, None, &LoadOptions::default()) {
        Ok(model) => resnetc_fuzz::run_zeros(&model, &[Device::Reference, Device::Cpu]),
        Err(e) => resnetc_fuzz::note("load", &e),
    }
});
