//! Running a program on a GPU through the driver API.
//!
//! A session owns a context (the device's primary one), the loaded module, the weights on the device
//! and the activation buffers, grown to the largest batch seen. Work goes to the default stream and
//! every call that returns data waits for it, so a session is used from one thread at a time.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};

use crate::driver::{
    self, CuContext, CuDevice, CuDevicePtr, CuEvent, CuFunction, CuModule, Driver,
};
use crate::nvrtc::{parse_arch, Compiled};
use crate::plan::{Arg, CudaProgram, IoDesc};
use crate::CudaError;

/// What the driver says about a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub sm_count: u32,
    /// The driver's CUDA version, e.g. 12040 for 12.4.
    pub driver_version: i32,
    /// Where the driver library was loaded from.
    pub driver_library: String,
}

impl DeviceInfo {
    /// The device's real architecture, e.g. `sm_90`.
    pub fn arch(&self) -> String {
        format!(
            "sm_{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }

    /// Queries device `ordinal`.
    pub fn query(ordinal: usize) -> Result<DeviceInfo, CudaError> {
        let d = driver::shared()?;
        let dev = device(d, ordinal)?;
        let attr = |a: c_int, what: &'static str| -> Result<i32, CudaError> {
            let mut v = 0;
            // SAFETY: `v` is valid for one write; `dev` is a valid device handle.
            d.check(what, unsafe { (d.device_get_attribute)(&mut v, a, dev) })?;
            Ok(v)
        };
        let major = attr(
            driver::ATTR_COMPUTE_CAPABILITY_MAJOR,
            "cuDeviceGetAttribute",
        )?;
        let minor = attr(
            driver::ATTR_COMPUTE_CAPABILITY_MINOR,
            "cuDeviceGetAttribute",
        )?;
        let sms = attr(driver::ATTR_MULTIPROCESSOR_COUNT, "cuDeviceGetAttribute")?;
        let mut name = [0 as c_char; 256];
        // SAFETY: the driver writes at most `len` bytes, NUL-terminated, into `name`.
        d.check("cuDeviceGetName", unsafe {
            (d.device_get_name)(name.as_mut_ptr(), name.len() as c_int, dev)
        })?;
        // SAFETY: `name` is NUL-terminated (written by the driver, zero-initialised before).
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let mut version = 0;
        // SAFETY: `version` is valid for one write.
        d.check("cuDriverGetVersion", unsafe {
            (d.driver_get_version)(&mut version)
        })?;
        Ok(DeviceInfo {
            ordinal,
            name,
            compute_capability: (major, minor),
            sm_count: sms.max(0) as u32,
            driver_version: version,
            driver_library: d.path.clone(),
        })
    }
}

fn device(d: &Driver, ordinal: usize) -> Result<CuDevice, CudaError> {
    let mut count = 0;
    // SAFETY: `count` is valid for one write.
    d.check("cuDeviceGetCount", unsafe {
        (d.device_get_count)(&mut count)
    })?;
    if ordinal >= count.max(0) as usize {
        return Err(CudaError::NoDevice(format!(
            "device {ordinal} was asked for, the driver sees {count}"
        )));
    }
    let mut dev = 0;
    // SAFETY: `dev` is valid for one write; the ordinal is in range.
    d.check("cuDeviceGet", unsafe {
        (d.device_get)(&mut dev, ordinal as c_int)
    })?;
    Ok(dev)
}

/// Device memory, freed on drop.
struct DeviceBuffer {
    driver: &'static Driver,
    ptr: CuDevicePtr,
    floats: usize,
}

impl DeviceBuffer {
    fn new(driver: &'static Driver, floats: usize) -> Result<DeviceBuffer, CudaError> {
        let mut ptr = 0;
        // SAFETY: `ptr` is valid for one write; at least one float is allocated so the size is never 0.
        driver.check("cuMemAlloc", unsafe {
            (driver.mem_alloc)(&mut ptr, floats.max(1) * 4)
        })?;
        Ok(DeviceBuffer {
            driver,
            ptr,
            floats,
        })
    }

    fn upload(&self, data: &[f32]) -> Result<(), CudaError> {
        assert!(
            data.len() <= self.floats.max(1),
            "upload of {} floats into a buffer of {}",
            data.len(),
            self.floats
        );
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: the device buffer holds at least `data.len()` floats (checked above) and `data`
        // is valid for reads of that many.
        self.driver.check("cuMemcpyHtoD", unsafe {
            (self.driver.memcpy_htod)(self.ptr, data.as_ptr().cast(), data.len() * 4)
        })
    }

    fn download(&self, out: &mut [f32]) -> Result<(), CudaError> {
        assert!(
            out.len() <= self.floats.max(1),
            "download of {} floats from a buffer of {}",
            out.len(),
            self.floats
        );
        if out.is_empty() {
            return Ok(());
        }
        // SAFETY: as in `upload`, with the copy going the other way into `out`.
        self.driver.check("cuMemcpyDtoH", unsafe {
            (self.driver.memcpy_dtoh)(out.as_mut_ptr().cast(), self.ptr, out.len() * 4)
        })
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from cuMemAlloc and is freed exactly once, here.
        unsafe { (self.driver.mem_free)(self.ptr) };
    }
}

/// One launch with its arguments resolved to device addresses.
struct Prepared {
    function: CuFunction,
    grid: [u32; 3],
    block: [u32; 3],
    /// One 8-byte slot per argument (pointers, or the batch as an `int` in the low 4 bytes).
    params: Vec<u64>,
}

// The batch is passed as the low half of a u64 slot.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "the CUDA session assumes a little-endian host"
);

/// A program loaded on one GPU, ready to run.
pub struct CudaSession {
    driver: &'static Driver,
    device: CuDevice,
    context: CuContext,
    module: CuModule,
    functions: HashMap<String, CuFunction>,
    info: DeviceInfo,
    image: String,
    /// The program without its source and weights (which live on the device).
    program: CudaProgram,
    weights: Option<DeviceBuffer>,
    buffers: Vec<DeviceBuffer>,
    capacity: usize,
    prepared: Option<(usize, Vec<Prepared>)>,
}

impl CudaSession {
    /// Loads `program` on device `ordinal`, using the best of `images` for it: a cubin for the same
    /// major architecture and a minor one no newer than the device's, else PTX the driver can JIT.
    pub fn new(
        program: &CudaProgram,
        images: &[Compiled],
        ordinal: usize,
    ) -> Result<CudaSession, CudaError> {
        program.check()?;
        let d = driver::shared()?;
        let info = DeviceInfo::query(ordinal)?;
        let dev = device(d, ordinal)?;
        let mut context: CuContext = std::ptr::null_mut();
        // SAFETY: `context` is valid for one write; the primary context is released in Drop.
        d.check("cuDevicePrimaryCtxRetain", unsafe {
            (d.primary_ctx_retain)(&mut context, dev)
        })?;
        // From here on, Drop releases the context and whatever else was set up.
        let mut s = CudaSession {
            driver: d,
            device: dev,
            context,
            module: std::ptr::null_mut(),
            functions: HashMap::new(),
            info,
            image: String::new(),
            program: CudaProgram {
                weights: Vec::new(),
                source: String::new(),
                ..program.clone()
            },
            weights: None,
            buffers: Vec::new(),
            capacity: 0,
            prepared: None,
        };
        s.make_current()?;
        s.load_module(images)?;
        for name in &program.kernels {
            let c = CString::new(name.as_str())
                .map_err(|_| CudaError::Interface(format!("bad kernel name {name:?}")))?;
            let mut f: CuFunction = std::ptr::null_mut();
            // SAFETY: `f` is valid for one write, the module is loaded and `c` is NUL-terminated.
            d.check("cuModuleGetFunction", unsafe {
                (d.module_get_function)(&mut f, s.module, c.as_ptr())
            })?;
            s.functions.insert(name.clone(), f);
        }
        let w = DeviceBuffer::new(d, program.weights.len())?;
        w.upload(&program.weights)?;
        s.weights = Some(w);
        Ok(s)
    }

    fn make_current(&self) -> Result<(), CudaError> {
        // SAFETY: the context is retained for the session's lifetime.
        self.driver.check("cuCtxSetCurrent", unsafe {
            (self.driver.ctx_set_current)(self.context)
        })
    }

    fn load_module(&mut self, images: &[Compiled]) -> Result<(), CudaError> {
        let (major, minor) = self.info.compute_capability;
        let number = |arch: &str| -> Option<(i32, i32)> {
            let digits: String = arch
                .trim_start_matches("sm_")
                .trim_start_matches("compute_")
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let n: i32 = digits.parse().ok()?;
            Some((n / 10, n % 10))
        };
        // Cubins: same major, minor <= the device's, arch-specific ones ('a'/'f') only for an exact match.
        let mut cubins: Vec<(&Compiled, (i32, i32))> = images
            .iter()
            .filter(|c| c.cubin.is_some() && parse_arch(&c.arch) == Ok(true))
            .filter_map(|c| number(&c.arch).map(|n| (c, n)))
            .filter(|(c, (ma, mi))| {
                *ma == major
                    && *mi <= minor
                    && (c.arch.trim_end_matches(['a', 'f']) == c.arch || *mi == minor)
            })
            .collect();
        cubins.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let mut ptx: Vec<(&Compiled, (i32, i32))> = images
            .iter()
            .filter(|c| !c.ptx.is_empty() && c.arch.trim_end_matches(['a', 'f']) == c.arch)
            .filter_map(|c| number(&c.arch).map(|n| (c, n)))
            .filter(|(_, n)| *n <= (major, minor))
            .collect();
        ptx.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let mut errors = Vec::new();
        for (c, _) in &cubins {
            let bytes = c.cubin.as_ref().expect("filtered on cubin");
            match self.load_image(bytes.as_ptr().cast()) {
                Ok(()) => {
                    self.image = format!("cubin {}", c.arch);
                    return Ok(());
                }
                Err(e) => errors.push(format!("cubin {}: {e}", c.arch)),
            }
        }
        for (c, _) in &ptx {
            let text = CString::new(c.ptx.as_str())
                .map_err(|_| CudaError::Interface("the PTX contains a NUL byte".into()))?;
            match self.load_image(text.as_ptr().cast()) {
                Ok(()) => {
                    self.image = format!("PTX {}", c.arch);
                    return Ok(());
                }
                Err(e) => errors.push(format!("PTX {}: {e}", c.arch)),
            }
        }
        let available: Vec<&str> = images.iter().map(|c| c.arch.as_str()).collect();
        let mut available = available.join(", ");
        if !errors.is_empty() {
            available = format!("{available} (load errors: {})", errors.join("; "));
        }
        Err(CudaError::NoImage {
            device: self.info.name.clone(),
            arch: self.info.arch(),
            available,
        })
    }

    fn load_image(&mut self, image: *const c_void) -> Result<(), CudaError> {
        let mut m: CuModule = std::ptr::null_mut();
        // SAFETY: `image` points at a complete cubin or NUL-terminated PTX that outlives the call;
        // `m` is valid for one write. The module is unloaded in Drop.
        self.driver.check("cuModuleLoadData", unsafe {
            (self.driver.module_load_data)(&mut m, image)
        })?;
        self.module = m;
        Ok(())
    }

    /// The device the session runs on.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Which image was loaded, e.g. `cubin sm_90` or `PTX compute_80`.
    pub fn image(&self) -> &str {
        &self.image
    }

    fn ensure_capacity(&mut self, batch: usize) -> Result<(), CudaError> {
        if batch <= self.capacity {
            return Ok(());
        }
        self.prepared = None;
        self.buffers.clear();
        for len in self.program.buffer_lens(batch) {
            self.buffers.push(DeviceBuffer::new(self.driver, len)?);
        }
        self.capacity = batch;
        Ok(())
    }

    fn prepare(&mut self, batch: usize) -> Result<(), CudaError> {
        if self.prepared.as_ref().is_some_and(|(b, _)| *b == batch) {
            return Ok(());
        }
        let plan = self.program.plan(batch)?;
        let weights = self.weights.as_ref().map_or(0, |w| w.ptr);
        let mut prepared = Vec::new();
        for l in plan {
            let function = *self.functions.get(&l.kernel).ok_or_else(|| {
                CudaError::Interface(format!("kernel {} is not in the module", l.kernel))
            })?;
            let mut params = Vec::new();
            for a in &l.args {
                params.push(match a {
                    Arg::Buffer(b) => {
                        self.buffers
                            .get(*b)
                            .ok_or_else(|| {
                                CudaError::Interface(format!("buffer {b} does not exist"))
                            })?
                            .ptr
                    }
                    Arg::Weights { offset, .. } => weights + (*offset as u64) * 4,
                    Arg::Null => 0,
                    Arg::Batch => batch as u64,
                });
            }
            prepared.push(Prepared {
                function,
                grid: l.grid,
                block: l.block,
                params,
            });
        }
        self.prepared = Some((batch, prepared));
        Ok(())
    }

    /// Copies `batch` images (NCHW float32) into the input buffer.
    pub fn upload_input(&mut self, input: &[f32], batch: usize) -> Result<(), CudaError> {
        self.program.check_batch(batch)?;
        let IoDesc { buffer, .. } = self.program.input;
        let expected = self.program.input.elems_per_image() * batch;
        if input.len() != expected {
            return Err(CudaError::Input(format!(
                "the input has {} floats; batch {batch} of {:?} needs {expected}",
                input.len(),
                self.program.input.shape
            )));
        }
        self.make_current()?;
        self.ensure_capacity(batch)?;
        self.buffers[buffer].upload(input)
    }

    /// Launches the whole plan for `batch` images on what the input buffer holds (asynchronously).
    pub fn launch(&mut self, batch: usize) -> Result<(), CudaError> {
        self.make_current()?;
        self.ensure_capacity(batch)?;
        self.prepare(batch)?;
        let d = self.driver;
        let (_, prepared) = self.prepared.as_mut().expect("prepared above");
        for p in prepared.iter_mut() {
            // The driver reads each argument through a pointer to its value: 8 bytes for pointers,
            // 4 (an `int`) for the batch, which sits in the low half of its little-endian slot.
            let mut ptrs: Vec<*mut c_void> = p
                .params
                .iter_mut()
                .map(|v| (v as *mut u64).cast::<c_void>())
                .collect();
            // SAFETY: `function` belongs to the loaded module; `ptrs` has one pointer per kernel
            // parameter, each to a live value of the parameter's size (see above); grid and block
            // sizes come from the plan, which checked them.
            d.check("cuLaunchKernel", unsafe {
                (d.launch_kernel)(
                    p.function,
                    p.grid[0],
                    p.grid[1],
                    p.grid[2],
                    p.block[0],
                    p.block[1],
                    p.block[2],
                    0,
                    std::ptr::null_mut(),
                    ptrs.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            })?;
        }
        Ok(())
    }

    /// Waits for everything launched so far; reports errors from the kernels.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.make_current()?;
        // SAFETY: no arguments; the session's context is current.
        self.driver.check("cuCtxSynchronize", unsafe {
            (self.driver.ctx_synchronize)()
        })
    }

    /// Copies the output of the last run (`batch` images) back.
    pub fn download_output(&mut self, batch: usize) -> Result<Vec<f32>, CudaError> {
        self.synchronize()?;
        if batch > self.capacity {
            return Err(CudaError::Batch(format!(
                "batch {batch} has not been run (buffers hold {})",
                self.capacity
            )));
        }
        let mut out = vec![0.0f32; self.program.output.elems_per_image() * batch];
        self.buffers[self.program.output.buffer].download(&mut out)?;
        Ok(out)
    }

    /// Runs `batch` images (NCHW float32, `batch × C × H × W` values) and returns the output
    /// (`batch × outputs per image`).
    pub fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>, CudaError> {
        self.upload_input(input, batch)?;
        self.launch(batch)?;
        self.download_output(batch)
    }

    /// Device time of one run of `batch` images in milliseconds, averaged over `iters` runs after
    /// `warmup` (on whatever the input buffer holds; transfers excluded).
    pub fn time(&mut self, batch: usize, warmup: usize, iters: usize) -> Result<f64, CudaError> {
        self.program.check_batch(batch)?;
        for _ in 0..warmup {
            self.launch(batch)?;
        }
        self.synchronize()?;
        let d = self.driver;
        let mut ev: [CuEvent; 2] = [std::ptr::null_mut(); 2];
        for e in &mut ev {
            // SAFETY: `e` is valid for one write; flags 0 is CU_EVENT_DEFAULT. Destroyed below.
            d.check("cuEventCreate", unsafe { (d.event_create)(e, 0) })?;
        }
        let result = (|| {
            // SAFETY: the event is live; the null stream is the default stream.
            d.check("cuEventRecord", unsafe {
                (d.event_record)(ev[0], std::ptr::null_mut())
            })?;
            for _ in 0..iters.max(1) {
                self.launch(batch)?;
            }
            // SAFETY: as above.
            d.check("cuEventRecord", unsafe {
                (d.event_record)(ev[1], std::ptr::null_mut())
            })?;
            // SAFETY: the event is live and recorded.
            d.check("cuEventSynchronize", unsafe {
                (d.event_synchronize)(ev[1])
            })?;
            let mut ms = 0f32;
            // SAFETY: both events are recorded and complete; `ms` is valid for one write.
            d.check("cuEventElapsedTime", unsafe {
                (d.event_elapsed_time)(&mut ms, ev[0], ev[1])
            })?;
            Ok(f64::from(ms) / iters.max(1) as f64)
        })();
        for e in ev {
            // SAFETY: each event was created above and is destroyed once.
            unsafe { (d.event_destroy)(e) };
        }
        result
    }
}

impl Drop for CudaSession {
    fn drop(&mut self) {
        let _ = self.make_current();
        let _ = self.synchronize();
        self.prepared = None;
        self.buffers.clear();
        self.weights = None;
        if !self.module.is_null() {
            // SAFETY: the module was loaded by this session and is unloaded once.
            unsafe { (self.driver.module_unload)(self.module) };
        }
        // SAFETY: the primary context was retained once in `new`; this is the matching release.
        unsafe { (self.driver.primary_ctx_release)(self.device) };
    }
}
