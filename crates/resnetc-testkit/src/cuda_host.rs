//! Generated CUDA on the host, for tests on machines without a GPU: the kernel dispatch table that
//! the emulator (`crates/resnetc-cuda/tests/emu/driver.cpp`) and the fake driver's kernel libraries
//! share, and [`FakeCuda`], which builds the fake libcuda (`tests/emu/fake_driver.cpp`) and the
//! kernel library for each compiled image, so that the real session code runs end to end.
//!
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use resnetc::cuda::Compiled;

/// The host C++ compiler: `$CXX`, else the first of g++, c++, clang++ that runs.
pub fn cxx() -> String {
    for c in [
        std::env::var("CXX").unwrap_or_default(),
        "g++".into(),
        "c++".into(),
        "clang++".into(),
    ] {
        if !c.is_empty()
            && Command::new(&c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("no C++ compiler found (tried $CXX, g++, c++, clang++): the host emulation tests compile the generated CUDA as C++; install g++ (apt-get install g++)");
}

/// The emulation's folder, `crates/resnetc-cuda/tests/emu`.
pub fn emu_dir() -> PathBuf {
    crate::repo().join("crates/resnetc-cuda/tests/emu")
}

/// `dispatch.inc` for a program's kernels: `dispatch(name, pointers, batch)` calls the kernel, and
/// `pointer_args(name)` says how many pointer arguments precede the batch (-1: no such kernel).
pub fn dispatch_source(kernels: &[String]) -> String {
    let mut calls = String::from(
        "static void dispatch(const std::string& name, const std::vector<void*>& a, int batch) {\n",
    );
    let mut arity = String::from("static int pointer_args(const std::string& name) {\n");
    for k in kernels {
        let (call, n) = if k.ends_with("_conv") {
            (format!("{k}((const float*)a[0], (const float*)a[1], (const float*)a[2], (const float*)a[3], (float*)a[4], batch)"), 5)
        } else if k.ends_with("_head") {
            (
                format!("{k}((const float*)a[0], (const float*)a[1], (const float*)a[2], (float*)a[3], batch)"),
                4,
            )
        } else {
            panic!("kernel {k} of an unknown kind")
        };
        calls.push_str(&format!("  if (name == \"{k}\") {{ {call}; return; }}\n"));
        arity.push_str(&format!("  if (name == \"{k}\") return {n};\n"));
    }
    calls.push_str("  fprintf(stderr, \"unknown kernel %s\\n\", name.c_str());\n  exit(2);\n}\n");
    arity.push_str("  return -1;\n}\n");
    calls + &arity
}

/// The FNV-1a hash by which the fake driver finds an image's kernel library.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Compiles `sources` into `out` unless it exists; writes to a temporary name first, so tests
/// running in parallel never load a half-written library.
fn build_once(out: &Path, sources: &[PathBuf], includes: &[&Path]) {
    if out.exists() {
        return;
    }
    // Unique per process and per call: tests of one process run in parallel threads and may
    // build the same library at once (they used to share a name and race on the rename).
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("tmp{}-{n}", std::process::id()));
    let mut cmd = Command::new(cxx());
    cmd.args(["-std=c++17", "-O2", "-w", "-shared", "-fPIC", "-o"])
        .arg(&tmp);
    for i in includes {
        cmd.arg("-I").arg(i);
    }
    cmd.args(sources).arg("-ldl");
    let o = cmd.output().expect("running the C++ compiler");
    assert!(
        o.status.success(),
        "building {} failed:\n{}",
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, out).unwrap();
}

/// The fake CUDA driver and its kernel libraries, in one folder under the target directory.
pub struct FakeCuda {
    dir: PathBuf,
    driver: PathBuf,
}

impl FakeCuda {
    /// Builds the fake driver library (once per checkout of its source).
    /// `tmp` is the test's `env!("CARGO_TARGET_TMPDIR")`.
    pub fn new(tmp: impl AsRef<Path>) -> FakeCuda {
        let dir = tmp.as_ref().join("fake-cuda");
        std::fs::create_dir_all(&dir).unwrap();
        let src = emu_dir().join("fake_driver.cpp");
        let code = std::fs::read(&src).unwrap();
        let driver = dir.join(format!("libcuda-fake-{:016x}.so", fnv1a(&code)));
        build_once(&driver, &[src], &[]);
        FakeCuda { dir, driver }
    }

    /// Builds the kernels of `source` (whose kernels are `kernels`) as the library the fake driver
    /// loads for each of `images` (their cubins and PTX).
    pub fn add(&self, source: &str, kernels: &[String], images: &[Compiled]) {
        let emu = emu_dir();
        let shim: Vec<u8> = ["fake_kernels.cpp", "cuda_host.h"]
            .iter()
            .flat_map(|f| std::fs::read(emu.join(f)).unwrap())
            .collect();
        let key = fnv1a(
            [source.as_bytes(), kernels.join(",").as_bytes(), &shim]
                .join(&0u8)
                .as_slice(),
        );
        let work = self.dir.join(format!("src-{key:016x}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("kernels.cu"), source).unwrap();
        std::fs::write(work.join("dispatch.inc"), dispatch_source(kernels)).unwrap();
        let lib = self.dir.join(format!("kernels-{key:016x}.so"));
        build_once(&lib, &[emu.join("fake_kernels.cpp")], &[&emu, &work]);
        for c in images {
            let mut blobs = vec![c.ptx.as_bytes()];
            blobs.extend(c.cubin.as_deref());
            for blob in blobs {
                let link = self.dir.join(format!("{:016x}.so", fnv1a(blob)));
                if !link.exists() {
                    let tmp = link.with_extension(format!("tmp{}", std::process::id()));
                    std::os::unix::fs::symlink(&lib, &tmp).unwrap();
                    std::fs::rename(&tmp, &link).unwrap();
                }
            }
        }
    }

    /// The environment that points resnetc at the fake driver and its kernel libraries.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("RESNETC_CUDA_DRIVER", self.driver.clone().into_os_string()),
            ("RESNETC_FAKE_CUDA_DIR", self.dir.clone().into_os_string()),
        ]
    }

    pub fn driver(&self) -> &Path {
        &self.driver
    }
}
