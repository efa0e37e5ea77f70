//! NVRTC, loaded at run time: CUDA C++ → PTX and cubin.
//!
//! The library is found, in order: at `RESNETC_NVRTC` (a path to `libnvrtc.so*`; nothing else is
//! tried when it is set), under the usual names on the library path, in `$CUDA_HOME/lib64` and
//! `/usr/local/cuda/lib64`, and in the `nvidia-cuda-nvrtc` pip wheel (asking `python3` where it is).
//! `scripts/ci-nvrtc.sh` installs the wheel and prints the `export RESNETC_NVRTC=...`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use libloading::Library;
use serde::{Deserialize, Serialize};

use crate::CudaError;

/// What `--target cuda` builds by default: cubins for A100 (sm_80, which also runs on sm_86/sm_89)
/// and H100 (sm_90). Each compilation also yields PTX, and the sm_80 PTX is what newer GPUs JIT.
pub const DEFAULT_ARCHS: &[&str] = &["sm_80", "sm_90"];

/// One compilation's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compiled {
    /// The architecture asked for: `sm_XX` (cubin and PTX) or `compute_XX` (PTX only).
    pub arch: String,
    pub ptx: String,
    /// SASS for `sm_XX`; `None` for `compute_XX`.
    pub cubin: Option<Vec<u8>>,
    /// NVRTC's log: empty when there was nothing to say (the tests require it to be empty).
    pub log: String,
    /// Milliseconds spent in NVRTC.
    pub nvrtc_ms: f64,
}

type NvrtcResult = c_int;
type Program = *mut c_void;

/// The NVRTC entry points resnetc uses.
pub struct Nvrtc {
    path: String,
    _lib: Library,
    get_error_string: unsafe extern "C" fn(NvrtcResult) -> *const c_char,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult,
    create_program: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvrtcResult,
    destroy_program: unsafe extern "C" fn(*mut Program) -> NvrtcResult,
    compile_program: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> NvrtcResult,
    get_log_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    get_log: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    get_ptx_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    get_ptx: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    get_cubin_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    get_cubin: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
}

/// Library names tried on the loader's path, newest first.
const NAMES: &[&str] = &[
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so.11.2",
];

/// Asks python where the pip wheels put libnvrtc (their layout differs between CUDA 12 and 13).
const PIP_PROBE: &str = r#"
import importlib.metadata as md
for dist in ("nvidia-cuda-nvrtc", "nvidia-cuda-nvrtc-cu12", "nvidia-cuda-nvrtc-cu11"):
    try:
        files = md.files(dist) or []
    except md.PackageNotFoundError:
        continue
    libs = sorted(str(f.locate()) for f in files if f.name.startswith("libnvrtc.so"))
    if libs:
        print(libs[-1])
        break
"#;

fn pip_location() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", PIP_PROBE])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn candidates() -> Vec<String> {
    let mut c: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    let mut dirs: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|d| PathBuf::from(d).join("lib64"))
        .collect();
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    for d in dirs {
        for n in NAMES {
            let p = d.join(n);
            if p.exists() {
                c.push(p.to_string_lossy().into_owned());
            }
        }
    }
    c
}

fn open(path: &str) -> Result<Library, String> {
    // SAFETY: loading NVRTC runs its initializers, which have no preconditions; we only load it.
    unsafe { Library::new(path) }.map_err(|e| crate::dl_error(&e))
}

impl Nvrtc {
    /// Finds and loads NVRTC (see the module docs for where it looks).
    pub fn load() -> Result<Nvrtc, CudaError> {
        if let Some(p) = std::env::var_os("RESNETC_NVRTC").filter(|p| !p.is_empty()) {
            let p = p.to_string_lossy().into_owned();
            let lib = open(&p).map_err(|e| CudaError::NvrtcNotFound {
                tried: format!("RESNETC_NVRTC={p} ({e})"),
            })?;
            return Nvrtc::bind(lib, p);
        }
        let mut tried = Vec::new();
        for p in candidates() {
            match open(&p) {
                Ok(lib) => return Nvrtc::bind(lib, p),
                Err(_) => tried.push(p),
            }
        }
        match pip_location() {
            Some(p) => match open(&p) {
                Ok(lib) => return Nvrtc::bind(lib, p),
                Err(e) => tried.push(format!("{p} from the pip wheel ({e})")),
            },
            None => {
                tried.push("the nvidia-cuda-nvrtc pip wheel (not installed for python3)".into())
            }
        }
        Err(CudaError::NvrtcNotFound {
            tried: tried.join(", "),
        })
    }

    fn bind(lib: Library, path: String) -> Result<Nvrtc, CudaError> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol is declared with the signature nvrtc.h gives it, and the pointer
                // is kept only while `lib` (moved into the same struct) stays loaded.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| CudaError::Nvrtc { call: $name, message: format!("{path} lacks it: {}", crate::dl_error(&e)) })?
            };
        }
        Ok(Nvrtc {
            get_error_string: sym!("nvrtcGetErrorString"),
            version: sym!("nvrtcVersion"),
            create_program: sym!("nvrtcCreateProgram"),
            destroy_program: sym!("nvrtcDestroyProgram"),
            compile_program: sym!("nvrtcCompileProgram"),
            get_log_size: sym!("nvrtcGetProgramLogSize"),
            get_log: sym!("nvrtcGetProgramLog"),
            get_ptx_size: sym!("nvrtcGetPTXSize"),
            get_ptx: sym!("nvrtcGetPTX"),
            get_cubin_size: sym!("nvrtcGetCUBINSize"),
            get_cubin: sym!("nvrtcGetCUBIN"),
            path,
            _lib: lib,
        })
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// NVRTC's (major, minor) version.
    pub fn version(&self) -> Result<(i32, i32), CudaError> {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: both pointers are valid for writes of one c_int.
        self.check("nvrtcVersion", unsafe {
            (self.version)(&mut major, &mut minor)
        })?;
        Ok((major, minor))
    }

    fn check(&self, call: &'static str, r: NvrtcResult) -> Result<(), CudaError> {
        if r == 0 {
            return Ok(());
        }
        // SAFETY: nvrtcGetErrorString returns a static NUL-terminated string for any code.
        let msg = unsafe { CStr::from_ptr((self.get_error_string)(r)) }
            .to_string_lossy()
            .into_owned();
        Err(CudaError::Nvrtc {
            call,
            message: format!("{msg} (code {r})"),
        })
    }

    /// Compiles `source` for `arch` (`sm_XX`: cubin and PTX; `compute_XX`: PTX).
    pub fn compile(&self, source: &str, arch: &str) -> Result<Compiled, CudaError> {
        self.compile_with(source, arch, &[])
    }

    /// Like [`Nvrtc::compile`], with extra NVRTC options (e.g. `--ptxas-options=-v`, `-lineinfo`).
    pub fn compile_with(
        &self,
        source: &str,
        arch: &str,
        extra: &[&str],
    ) -> Result<Compiled, CudaError> {
        let real = parse_arch(arch)?;
        let src = CString::new(source).map_err(|_| CudaError::Nvrtc {
            call: "nvrtcCreateProgram",
            message: "the source contains a NUL byte".into(),
        })?;
        let options: Vec<CString> = [
            format!("--gpu-architecture={arch}"),
            "--std=c++17".to_string(),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| s.to_string()))
        .map(|o| {
            CString::new(o).map_err(|e| CudaError::Nvrtc {
                call: "nvrtcCompileProgram",
                message: format!("option {:?} contains a NUL byte", e.into_vec()),
            })
        })
        .collect::<Result<_, _>>()?;
        let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        let start = Instant::now();
        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: `prog` is written by the call; `src` and the name are NUL-terminated and outlive
        // it; no headers are passed (count 0, null arrays).
        self.check("nvrtcCreateProgram", unsafe {
            (self.create_program)(
                &mut prog,
                src.as_ptr(),
                c"resnetc.cu".as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        let guard = ProgramGuard { nvrtc: self, prog };
        // SAFETY: `prog` is a live program; the option array holds `len` valid C strings.
        let compiled = unsafe {
            (self.compile_program)(guard.prog, option_ptrs.len() as c_int, option_ptrs.as_ptr())
        };
        let log = self.read(
            guard.prog,
            "nvrtcGetProgramLog",
            self.get_log_size,
            self.get_log,
        )?;
        let log = String::from_utf8_lossy(&log)
            .trim_end_matches('\0')
            .trim()
            .to_string();
        if compiled != 0 {
            return Err(CudaError::Compile {
                arch: arch.to_string(),
                log,
            });
        }
        let ptx = self.read(guard.prog, "nvrtcGetPTX", self.get_ptx_size, self.get_ptx)?;
        let ptx = String::from_utf8_lossy(&ptx)
            .trim_end_matches('\0')
            .to_string();
        let cubin = if real {
            Some(self.read(
                guard.prog,
                "nvrtcGetCUBIN",
                self.get_cubin_size,
                self.get_cubin,
            )?)
        } else {
            None
        };
        drop(guard);
        Ok(Compiled {
            arch: arch.to_string(),
            ptx,
            cubin,
            log,
            nvrtc_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn read(
        &self,
        prog: Program,
        call: &'static str,
        size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
        get: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    ) -> Result<Vec<u8>, CudaError> {
        let mut n = 0usize;
        // SAFETY: `prog` is live and `n` is valid for one write.
        self.check(call, unsafe { size(prog, &mut n) })?;
        let mut buf = vec![0u8; n];
        if n > 0 {
            // SAFETY: `buf` holds exactly the `n` bytes NVRTC said it will write.
            self.check(call, unsafe { get(prog, buf.as_mut_ptr().cast()) })?;
        }
        Ok(buf)
    }
}

/// Destroys an NVRTC program on every path out of `compile`.
struct ProgramGuard<'a> {
    nvrtc: &'a Nvrtc,
    prog: Program,
}

impl Drop for ProgramGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `prog` came from nvrtcCreateProgram and is destroyed exactly once, here.
        unsafe { (self.nvrtc.destroy_program)(&mut self.prog) };
    }
}

/// Checks an architecture name; returns whether it is a real one (`sm_`, which gets a cubin).
pub fn parse_arch(arch: &str) -> Result<bool, CudaError> {
    let (real, rest) = if let Some(r) = arch.strip_prefix("sm_") {
        (true, r)
    } else if let Some(r) = arch.strip_prefix("compute_") {
        (false, r)
    } else {
        return Err(CudaError::BadArch(arch.to_string()));
    };
    let digits = rest.trim_end_matches(['a', 'f']);
    if digits.len() < 2
        || digits.len() > 3
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || rest.len() > digits.len() + 1
    {
        return Err(CudaError::BadArch(arch.to_string()));
    }
    Ok(real)
}

static SHARED: OnceLock<Result<Nvrtc, CudaError>> = OnceLock::new();

/// The process-wide NVRTC, loaded on first use.
pub fn shared() -> Result<&'static Nvrtc, CudaError> {
    SHARED
        .get_or_init(Nvrtc::load)
        .as_ref()
        .map_err(Clone::clone)
}

/// Compiles `source` for `arch` with the process-wide NVRTC.
pub fn compile(source: &str, arch: &str) -> Result<Compiled, CudaError> {
    shared()?.compile(source, arch)
}

/// Compiles `source` for each of `archs` in parallel (one thread each), in `archs` order.
pub fn compile_archs(source: &str, archs: &[&str]) -> Result<Vec<Compiled>, CudaError> {
    let nv = shared()?;
    std::thread::scope(|s| {
        let jobs: Vec<_> = archs
            .iter()
            .map(|a| s.spawn(move || nv.compile(source, a)))
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures() {
        assert_eq!(parse_arch("sm_80"), Ok(true));
        assert_eq!(parse_arch("sm_90a"), Ok(true));
        assert_eq!(parse_arch("compute_80"), Ok(false));
        assert_eq!(parse_arch("sm_100"), Ok(true));
        for bad in [
            "sm80",
            "sm_",
            "sm_8",
            "sm_80;rm",
            "compute_80ab",
            "--gpu-architecture=sm_80",
            "sm_1000",
        ] {
            assert_eq!(
                parse_arch(bad),
                Err(CudaError::BadArch(bad.to_string())),
                "{bad}"
            );
        }
    }
}
