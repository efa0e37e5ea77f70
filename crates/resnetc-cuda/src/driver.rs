//! The handful of CUDA driver API entry points the session needs, loaded from libcuda at run time.
//!
//! `RESNETC_CUDA_DRIVER` may name the library; otherwise `libcuda.so.1` (what the NVIDIA driver
//! installs) and then `libcuda.so`. Versioned symbols (`_v2`) are the ones `cuda.h` has mapped the
//! plain names to since CUDA 4, so any driver from the last decade provides them.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::OnceLock;

use libloading::Library;

use crate::CudaError;

pub type CuResult = c_int;
pub type CuDevice = c_int;
pub type CuContext = *mut c_void;
pub type CuModule = *mut c_void;
pub type CuFunction = *mut c_void;
pub type CuStream = *mut c_void;
pub type CuEvent = *mut c_void;
pub type CuDevicePtr = u64;

pub const ATTR_MULTIPROCESSOR_COUNT: c_int = 16;
pub const ATTR_COMPUTE_CAPABILITY_MAJOR: c_int = 75;
pub const ATTR_COMPUTE_CAPABILITY_MINOR: c_int = 76;
const ERROR_NO_DEVICE: CuResult = 100;

/// The driver entry points, as `cuda.h` declares them.
pub struct Driver {
    pub path: String,
    _lib: Library,
    pub init: unsafe extern "C" fn(c_uint) -> CuResult,
    pub driver_get_version: unsafe extern "C" fn(*mut c_int) -> CuResult,
    pub device_get_count: unsafe extern "C" fn(*mut c_int) -> CuResult,
    pub device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    pub device_get_attribute: unsafe extern "C" fn(*mut c_int, c_int, CuDevice) -> CuResult,
    pub device_get_name: unsafe extern "C" fn(*mut c_char, c_int, CuDevice) -> CuResult,
    pub primary_ctx_retain: unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult,
    pub primary_ctx_release: unsafe extern "C" fn(CuDevice) -> CuResult,
    pub ctx_set_current: unsafe extern "C" fn(CuContext) -> CuResult,
    pub ctx_synchronize: unsafe extern "C" fn() -> CuResult,
    pub module_load_data: unsafe extern "C" fn(*mut CuModule, *const c_void) -> CuResult,
    pub module_unload: unsafe extern "C" fn(CuModule) -> CuResult,
    pub module_get_function:
        unsafe extern "C" fn(*mut CuFunction, CuModule, *const c_char) -> CuResult,
    pub mem_alloc: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    pub mem_free: unsafe extern "C" fn(CuDevicePtr) -> CuResult,
    pub memcpy_htod: unsafe extern "C" fn(CuDevicePtr, *const c_void, usize) -> CuResult,
    pub memcpy_dtoh: unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize) -> CuResult,
    #[allow(clippy::type_complexity)]
    pub launch_kernel: unsafe extern "C" fn(
        CuFunction,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        CuStream,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> CuResult,
    pub event_create: unsafe extern "C" fn(*mut CuEvent, c_uint) -> CuResult,
    pub event_record: unsafe extern "C" fn(CuEvent, CuStream) -> CuResult,
    pub event_synchronize: unsafe extern "C" fn(CuEvent) -> CuResult,
    pub event_elapsed_time: unsafe extern "C" fn(*mut f32, CuEvent, CuEvent) -> CuResult,
    pub event_destroy: unsafe extern "C" fn(CuEvent) -> CuResult,
    get_error_name: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
    get_error_string: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
}

impl Driver {
    fn load() -> Result<Driver, CudaError> {
        let names: Vec<String> =
            match std::env::var_os("RESNETC_CUDA_DRIVER").filter(|p| !p.is_empty()) {
                Some(p) => vec![p.to_string_lossy().into_owned()],
                None => vec!["libcuda.so.1".into(), "libcuda.so".into()],
            };
        let mut errors = Vec::new();
        for name in &names {
            // SAFETY: loading libcuda runs its initializers, which have no preconditions.
            match unsafe { Library::new(name) } {
                Ok(lib) => return Driver::bind(lib, name.clone()),
                Err(e) => errors.push(format!("{name}: {}", crate::dl_error(&e))),
            }
        }
        Err(CudaError::NoDriver(format!(
            "could not load the CUDA driver library ({})",
            errors.join("; ")
        )))
    }

    fn bind(lib: Library, path: String) -> Result<Driver, CudaError> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: each symbol is declared with its signature from cuda.h, and the pointer
                // is used only while `lib` (moved into the same struct) stays loaded.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| {
                    CudaError::NoDriver(format!(
                        "{path} lacks {}: {} (driver too old?)",
                        $name,
                        crate::dl_error(&e)
                    ))
                })?
            };
        }
        Ok(Driver {
            init: sym!("cuInit"),
            driver_get_version: sym!("cuDriverGetVersion"),
            device_get_count: sym!("cuDeviceGetCount"),
            device_get: sym!("cuDeviceGet"),
            device_get_attribute: sym!("cuDeviceGetAttribute"),
            device_get_name: sym!("cuDeviceGetName"),
            primary_ctx_retain: sym!("cuDevicePrimaryCtxRetain"),
            primary_ctx_release: sym!("cuDevicePrimaryCtxRelease_v2"),
            ctx_set_current: sym!("cuCtxSetCurrent"),
            ctx_synchronize: sym!("cuCtxSynchronize"),
            module_load_data: sym!("cuModuleLoadData"),
            module_unload: sym!("cuModuleUnload"),
            module_get_function: sym!("cuModuleGetFunction"),
            mem_alloc: sym!("cuMemAlloc_v2"),
            mem_free: sym!("cuMemFree_v2"),
            memcpy_htod: sym!("cuMemcpyHtoD_v2"),
            memcpy_dtoh: sym!("cuMemcpyDtoH_v2"),
            launch_kernel: sym!("cuLaunchKernel"),
            event_create: sym!("cuEventCreate"),
            event_record: sym!("cuEventRecord"),
            event_synchronize: sym!("cuEventSynchronize"),
            event_elapsed_time: sym!("cuEventElapsedTime"),
            event_destroy: sym!("cuEventDestroy_v2"),
            get_error_name: sym!("cuGetErrorName"),
            get_error_string: sym!("cuGetErrorString"),
            path,
            _lib: lib,
        })
    }

    /// Turns a driver result into a typed error naming the call.
    pub fn check(&self, call: &'static str, r: CuResult) -> Result<(), CudaError> {
        if r == 0 {
            return Ok(());
        }
        let text = |f: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult| {
            let mut p: *const c_char = std::ptr::null();
            // SAFETY: the driver writes a pointer to a static NUL-terminated string, or leaves
            // `p` null for an unknown code.
            let ok = unsafe { f(r, &mut p) } == 0 && !p.is_null();
            // SAFETY: non-null `p` points at a static C string owned by the driver.
            if ok {
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            } else {
                "unknown error".to_string()
            }
        };
        let (name, message) = (text(self.get_error_name), text(self.get_error_string));
        if r == ERROR_NO_DEVICE {
            return Err(CudaError::NoDevice(format!("{call}: {name} ({message})")));
        }
        Err(CudaError::Driver {
            call,
            code: r,
            name,
            message,
        })
    }
}

static SHARED: OnceLock<Result<Driver, CudaError>> = OnceLock::new();

/// The process-wide driver, loaded and initialised (`cuInit`) on first use.
pub fn shared() -> Result<&'static Driver, CudaError> {
    SHARED
        .get_or_init(|| {
            let d = Driver::load()?;
            // SAFETY: cuInit takes flags (must be 0) and may be called more than once.
            d.check("cuInit", unsafe { (d.init)(0) })?;
            Ok(d)
        })
        .as_ref()
        .map_err(Clone::clone)
}
