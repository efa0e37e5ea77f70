//! The runtime: without a CUDA driver a session fails with a typed error; with a GPU (this test also
//! runs on one) it runs ResNet-20 and matches the reference executor and PyTorch.

mod common;

use common::*;
use resnetc_cuda::{CudaError, CudaSession, DeviceInfo};
use resnetc_ir::Tensor;

#[test]
fn session_runs_or_reports_no_driver() {
    let f = fixture("r20_b_ts17_dynamic");
    let m = load_fused(&f.path());
    let program = resnetc_cuda::generate(m.graph(), m.info(), None).unwrap();
    match DeviceInfo::query(0) {
        Err(CudaError::NoDriver(_) | CudaError::NoDevice(_)) => {
            // No GPU here: the session must say so without compiling anything or panicking.
            let image = resnetc_cuda::Compiled {
                arch: "sm_80".into(),
                ptx: String::new(),
                cubin: None,
                log: String::new(),
                nvrtc_ms: 0.0,
            };
            match CudaSession::new(&program, &[image], 0) {
                Err(e @ (CudaError::NoDriver(_) | CudaError::NoDevice(_))) => {
                    let text = e.to_string();
                    assert!(
                        text.starts_with("no CUDA driver") || text.starts_with("no CUDA device"),
                        "{text}"
                    );
                }
                Err(e) => panic!("expected a no-driver error, got {e:?}"),
                Ok(_) => panic!("a session started without a driver"),
            }
        }
        Err(e) => panic!("querying the device failed unexpectedly: {e}"),
        Ok(dev) => {
            let images = vec![resnetc_cuda::compile(&program.source, &dev.arch())
                .or_else(|_| resnetc_cuda::compile(&program.source, "compute_80"))
                .unwrap()];
            let mut s = CudaSession::new(&program, &images, 0).unwrap();
            let input = f.input();
            let batch = input.shape()[0];
            let got = s
                .run(&input.iter().copied().collect::<Vec<_>>(), batch)
                .unwrap();
            let want = resnetc_reference::run(m.graph(), &[Tensor::f32(input.clone())]).unwrap();
            let want: Vec<f32> = want[0].as_f32().unwrap().iter().copied().collect();
            assert!(
                max_abs_diff(&got, &want) <= 1e-3,
                "GPU vs reference: {}",
                max_abs_diff(&got, &want)
            );
            let torch: Vec<f32> = f.expected().iter().copied().collect();
            assert!(
                max_abs_diff(&got, &torch) <= 1e-3,
                "GPU vs PyTorch: {}",
                max_abs_diff(&got, &torch)
            );
            assert!(matches!(s.run(&[0.0; 5], 1), Err(CudaError::Input(_))));
        }
    }
}
