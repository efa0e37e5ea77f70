//! The session's driver code end to end without a GPU: `CudaSession` on the fake libcuda
//! (`tests/emu/fake_driver.cpp`), which checks every call as the real driver would and runs the
//! kernels of the NVRTC-compiled images through the host emulation. This covers what the emulator
//! tests cannot: image choice, device memory, argument packing, launches, events, and cleanup.
//!
//! One test function: the driver is loaded once per process from the environment set here.

mod common;

use common::cuda_host::FakeCuda;
use common::*;
use resnetc_cuda::{CudaError, CudaSession, DeviceInfo, GenOptions};
use resnetc_ir::Tensor;

/// What the fake driver still holds: allocations, modules, events, context references, and
/// launches so far.
fn live(fake: &FakeCuda) -> (i32, i32, i32, i32, i64) {
    type LiveFn = unsafe extern "C" fn(*mut i32, *mut i32, *mut i32, *mut i32, *mut i64);
    // SAFETY: the fake driver exports this function with this signature; the library is the one
    // the session loaded (dlopen returns the same handle).
    unsafe {
        let lib = libloading::Library::new(fake.driver()).unwrap();
        let f: libloading::Symbol<LiveFn> = lib.get(b"resnetc_fake_cuda_live\0").unwrap();
        let mut v = (0, 0, 0, 0, 0);
        f(&mut v.0, &mut v.1, &mut v.2, &mut v.3, &mut v.4);
        v
    }
}

#[test]
fn sessions_on_the_fake_driver() {
    let f = fixture("r20_b_ts17_dynamic");
    let m = load_fused(&f.path());
    // Tiles planned for the fake device's 132 SMs, as a session on it would plan them.
    let opts = GenOptions {
        batch: None,
        sm_count: 132,
    };
    let program = resnetc_cuda::generate_with(m.graph(), m.info(), &opts).unwrap();
    let images = resnetc_cuda::compile_archs(&program.source, resnetc_cuda::DEFAULT_ARCHS).unwrap();
    let fake = FakeCuda::new(env!("CARGO_TARGET_TMPDIR"));
    fake.add(&program.source, &program.kernels, &images);
    // SAFETY (of set_var): this is the binary's only test, and nothing else runs yet.
    for (k, v) in fake.env() {
        std::env::set_var(k, v);
    }

    let dev = DeviceInfo::query(0).unwrap();
    assert!(dev.name.contains("fake"), "{}", dev.name);
    assert_eq!((dev.arch(), dev.sm_count), ("sm_90".to_string(), 132));

    let input = f.input();
    let reference = |batch: usize| -> (Vec<f32>, Vec<f32>) {
        let x = input
            .slice(ndarray::s![..batch, .., .., ..])
            .to_owned()
            .into_dyn();
        let want = resnetc_reference::run(m.graph(), &[Tensor::f32(x.clone())]).unwrap();
        (
            x.iter().copied().collect(),
            want[0].as_f32().unwrap().iter().copied().collect(),
        )
    };
    let (launches_before, tol) = (live(&fake).4, 1e-4f32);
    {
        let mut s = CudaSession::new(&program, &images, 0).unwrap();
        assert_eq!(s.image(), "cubin sm_90");
        // Growing, shrinking and growing again: buffers are reallocated, launch arguments re-resolved.
        for batch in [2, 1, 2, 3] {
            let (x, want) = reference(batch);
            let got = s.run(&x, batch).unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d <= tol, "batch {batch}: {d} from the reference executor");
        }
        let torch: Vec<f32> = f.expected().iter().copied().collect();
        let got = s.run(&input.iter().copied().collect::<Vec<_>>(), input.shape()[0]);
        assert!(max_abs_diff(&got.unwrap(), &torch) <= 1e-3);
        let ms = s.time(2, 1, 2).unwrap();
        assert!(ms.is_finite() && ms > 0.0, "{ms}");
        match s.run(&[0.0; 5], 1) {
            Err(CudaError::Input(text)) => assert!(text.contains("needs 3072"), "{text}"),
            other => panic!("expected an input error, got {other:?}"),
        }
        assert!(matches!(s.run(&[], 0), Err(CudaError::Batch(_))));
    }
    let (allocations, modules, events, contexts, launches) = live(&fake);
    assert_eq!(
        (allocations, modules, events, contexts),
        (0, 0, 0, 0),
        "the session left driver objects behind"
    );
    // 5 runs and 1 + 2 timed ones, each launching every step of the plan.
    assert_eq!(
        launches - launches_before,
        8 * program.plan(1).unwrap().len() as i64
    );

    // An sm_86 GPU runs the sm_80 cubin (same major architecture); one newer than every cubin
    // JITs the newest PTX that is not newer than it.
    for (arch, image, batch) in [("86", "cubin sm_80", 1), ("100", "PTX sm_90", 2)] {
        std::env::set_var("RESNETC_FAKE_CUDA_ARCH", arch);
        let mut s = CudaSession::new(&program, &images, 0).unwrap();
        assert_eq!(s.image(), image);
        let (x, want) = reference(batch);
        assert!(
            max_abs_diff(&s.run(&x, batch).unwrap(), &want) <= tol,
            "sm_{arch}"
        );
    }

    // Cubins of another major architecture and no PTX: refused, naming what there is.
    std::env::set_var("RESNETC_FAKE_CUDA_ARCH", "90");
    let sm80_cubin_only = vec![resnetc_cuda::Compiled {
        ptx: String::new(),
        ..images[0].clone()
    }];
    assert_eq!(sm80_cubin_only[0].arch, "sm_80");
    match CudaSession::new(&program, &sm80_cubin_only, 0) {
        Err(e @ CudaError::NoImage { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("sm_90") && text.contains("compiled: sm_80"),
                "{text}"
            );
        }
        Err(e) => panic!("expected NoImage, got {e}"),
        Ok(_) => panic!("an sm_80 cubin loaded on sm_90"),
    }
    // A device ordinal that does not exist.
    assert!(CudaSession::new(&program, &images, 1).is_err());
    assert_eq!(live(&fake).0, 0, "a failed session leaked device memory");
    assert_eq!(live(&fake).3, 0, "a failed session kept its context");
}
