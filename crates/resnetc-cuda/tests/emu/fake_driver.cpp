// A strict stand-in for libcuda: the driver API entry points resnetc's session uses, on the host.
//
// It lets the tests run CudaSession, `resnetc run/bench --device cuda` and their error paths on a
// machine with no GPU. Kernels run through the host emulation (cuda_host.h): a module image (a
// cubin or PTX that NVRTC produced) is identified by the FNV-1a hash of its bytes, and its kernels
// come from RESNETC_FAKE_CUDA_DIR/<hash>.so, a library the test built from the same generated
// source (fake_kernels.cpp). Everything the real driver would refuse is refused here too, with the
// real error codes: no current context, freeing or copying outside an allocation, a kernel argument
// that is not a device address, launch dimensions beyond the limits, a cubin for another
// architecture, a PTX target newer than the device. Device addresses are not host addresses, so passing a host pointer to a kernel fails.
//
// Environment:
//   RESNETC_FAKE_CUDA_DIR      where the kernel libraries are (required to load a module)
//   RESNETC_FAKE_CUDA_ARCH     compute capability as digits, default 90 (sm_90)
//   RESNETC_FAKE_CUDA_SMS      multiprocessor count, default 132
//   RESNETC_FAKE_CUDA_DEVICES  device count, default 1 (0: cuInit fails with CUDA_ERROR_NO_DEVICE)
//   RESNETC_FAKE_CUDA_FAIL     NAME[:CODE]: the entry point NAME (e.g. cuLaunchKernel) returns CODE
//                              (default 999, CUDA_ERROR_UNKNOWN) instead of doing its work
//   RESNETC_FAKE_CUDA_SKEW     X: a miscompiled head kernel, which adds X to the first image's first
//                              output (for tests of what reports a wrong backend)
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>

typedef int CUresult;
typedef uint64_t CUdeviceptr;

namespace {

enum : CUresult {
  kSuccess = 0,
  kInvalidValue = 1,
  kOutOfMemory = 2,
  kNotInitialized = 3,
  kNoDevice = 100,
  kInvalidDevice = 101,
  kInvalidImage = 200,
  kInvalidContext = 201,
  kNoBinaryForGpu = 209,
  kUnsupportedPtxVersion = 222,
  kInvalidHandle = 400,
  kNotFound = 500,
  kNotReady = 600,
  kIllegalAddress = 700,
  kLaunchOutOfResources = 701,
  kLaunchFailed = 719,
  kUnknown = 999,
};

struct ErrorText {
  CUresult code;
  const char* name;
  const char* text;
};
const ErrorText kErrors[] = {
    {kSuccess, "CUDA_SUCCESS", "no error"},
    {kInvalidValue, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {kOutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {kNotInitialized, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {kNoDevice, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {kInvalidDevice, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {kInvalidImage, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {kInvalidContext, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {kNoBinaryForGpu, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"},
    {kUnsupportedPtxVersion, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain."},
    {kInvalidHandle, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {kNotFound, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {kNotReady, "CUDA_ERROR_NOT_READY", "device not ready"},
    {kIllegalAddress, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {kLaunchOutOfResources, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {kLaunchFailed, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {kUnknown, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

// What a kernel library built by the tests exports (see fake_kernels.cpp).
typedef int (*PointerArgsFn)(const char* name);
typedef int (*LaunchFn)(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned block,
                        void** host_args, int batch);

struct Module {
  void* lib;
  PointerArgsFn pointer_args;
  LaunchFn launch;
};
struct Function {
  Module* module;
  std::string name;
};
struct Event {
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
};

struct State {
  std::mutex mu;
  bool initialised = false;
  int context_refs = 0;
  bool context_current = false;
  // Device address → (host memory, bytes). Addresses start far from any host mapping and leave a
  // gap after each allocation, so an address one past the end belongs to nobody.
  std::map<CUdeviceptr, std::pair<char*, size_t>> allocations;
  CUdeviceptr next_address = 0x7e0000000000ull;
  std::map<Module*, bool> modules;
  std::map<Function*, bool> functions;
  std::map<Event*, bool> events;
  // A kernel fault is sticky, as on a GPU: every later call returns it.
  CUresult sticky = kSuccess;
  long long launches = 0;
};
State& state() {
  static State s;
  return s;
}

int env_int(const char* name, int fallback) {
  const char* v = getenv(name);
  return v && *v ? atoi(v) : fallback;
}
int arch() { return env_int("RESNETC_FAKE_CUDA_ARCH", 90); }

// RESNETC_FAKE_CUDA_FAIL=NAME[:CODE]: the code NAME returns instead of working, or 0.
CUresult injected(const char* name) {
  const char* v = getenv("RESNETC_FAKE_CUDA_FAIL");
  if (!v) return kSuccess;
  size_t n = strlen(name);
  if (strncmp(v, name, n) != 0 || (v[n] != 0 && v[n] != ':')) return kSuccess;
  return v[n] == ':' ? atoi(v + n + 1) : kUnknown;
}

// The common preamble of every call after cuInit: injected failure, initialisation, sticky fault,
// and (when `needs_context`) a current context.
#define ENTER(name, needs_context)                                       \
  State& s = state();                                                    \
  std::lock_guard<std::mutex> guard(s.mu);                               \
  if (CUresult r = injected(name)) return r;                             \
  if (!s.initialised) return kNotInitialized;                            \
  if (s.sticky) return s.sticky;                                         \
  if ((needs_context) && !s.context_current) return kInvalidContext;

// The allocation holding [address, address + bytes), or null.
char* host_address(State& s, CUdeviceptr address, size_t bytes) {
  auto it = s.allocations.upper_bound(address);
  if (it == s.allocations.begin()) return nullptr;
  --it;
  CUdeviceptr base = it->first;
  size_t size = it->second.second;
  if (address < base || address - base > size || bytes > size - (address - base)) return nullptr;
  return it->second.first + (address - base);
}

uint64_t fnv1a(const unsigned char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

template <class T>
T read_le(const unsigned char* p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}

// The length of an ELF64 image: the furthest byte any header or section occupies.
size_t elf_length(const unsigned char* p) {
  uint64_t phoff = read_le<uint64_t>(p + 0x20), shoff = read_le<uint64_t>(p + 0x28);
  uint16_t phentsize = read_le<uint16_t>(p + 0x36), phnum = read_le<uint16_t>(p + 0x38);
  uint16_t shentsize = read_le<uint16_t>(p + 0x3a), shnum = read_le<uint16_t>(p + 0x3c);
  uint64_t end = 64;
  if (phoff + uint64_t(phnum) * phentsize > end) end = phoff + uint64_t(phnum) * phentsize;
  if (shoff + uint64_t(shnum) * shentsize > end) end = shoff + uint64_t(shnum) * shentsize;
  for (uint16_t i = 0; i < shnum; ++i) {
    const unsigned char* sh = p + shoff + uint64_t(i) * shentsize;
    const uint32_t kNoBits = 8;
    if (read_le<uint32_t>(sh + 4) == kNoBits) continue;
    uint64_t e = read_le<uint64_t>(sh + 0x18) + read_le<uint64_t>(sh + 0x20);
    if (e > end) end = e;
  }
  return end;
}

}  // namespace

extern "C" {

CUresult cuGetErrorName(CUresult code, const char** out) {
  *out = nullptr;
  for (const ErrorText& e : kErrors) {
    if (e.code == code) {
      *out = e.name;
      return kSuccess;
    }
  }
  return kInvalidValue;
}

CUresult cuGetErrorString(CUresult code, const char** out) {
  *out = nullptr;
  for (const ErrorText& e : kErrors) {
    if (e.code == code) {
      *out = e.text;
      return kSuccess;
    }
  }
  return kInvalidValue;
}

CUresult cuInit(unsigned flags) {
  State& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  if (CUresult r = injected("cuInit")) return r;
  if (flags != 0) return kInvalidValue;
  if (env_int("RESNETC_FAKE_CUDA_DEVICES", 1) == 0) return kNoDevice;
  s.initialised = true;
  return kSuccess;
}

CUresult cuDriverGetVersion(int* version) {
  if (CUresult r = injected("cuDriverGetVersion")) return r;
  *version = 12080;
  return kSuccess;
}

CUresult cuDeviceGetCount(int* count) {
  ENTER("cuDeviceGetCount", false);
  *count = env_int("RESNETC_FAKE_CUDA_DEVICES", 1);
  return kSuccess;
}

CUresult cuDeviceGet(int* device, int ordinal) {
  ENTER("cuDeviceGet", false);
  if (ordinal < 0 || ordinal >= env_int("RESNETC_FAKE_CUDA_DEVICES", 1)) return kInvalidDevice;
  *device = ordinal;
  return kSuccess;
}

CUresult cuDeviceGetAttribute(int* value, int attribute, int device) {
  ENTER("cuDeviceGetAttribute", false);
  if (device < 0 || device >= env_int("RESNETC_FAKE_CUDA_DEVICES", 1)) return kInvalidDevice;
  switch (attribute) {
    case 16: *value = env_int("RESNETC_FAKE_CUDA_SMS", 132); return kSuccess;
    case 75: *value = arch() / 10; return kSuccess;
    case 76: *value = arch() % 10; return kSuccess;
    default: return kInvalidValue;
  }
}

CUresult cuDeviceGetName(char* name, int len, int device) {
  ENTER("cuDeviceGetName", false);
  if (device < 0 || device >= env_int("RESNETC_FAKE_CUDA_DEVICES", 1) || len <= 0) return kInvalidValue;
  snprintf(name, size_t(len), "resnetc fake CUDA device (host emulation)");
  return kSuccess;
}

CUresult cuDevicePrimaryCtxRetain(void** context, int device) {
  ENTER("cuDevicePrimaryCtxRetain", false);
  if (device != 0) return kInvalidDevice;
  ++s.context_refs;
  *context = &s;
  return kSuccess;
}

CUresult cuDevicePrimaryCtxRelease_v2(int device) {
  ENTER("cuDevicePrimaryCtxRelease_v2", false);
  if (device != 0) return kInvalidDevice;
  if (s.context_refs == 0) return kInvalidContext;
  if (--s.context_refs == 0) s.context_current = false;
  return kSuccess;
}

CUresult cuCtxSetCurrent(void* context) {
  ENTER("cuCtxSetCurrent", false);
  if (context != &s || s.context_refs == 0) return kInvalidContext;
  s.context_current = true;
  return kSuccess;
}

CUresult cuCtxSynchronize() {
  ENTER("cuCtxSynchronize", true);
  return kSuccess;
}

CUresult cuModuleLoadData(void** module, const void* image) {
  ENTER("cuModuleLoadData", true);
  const unsigned char* p = static_cast<const unsigned char*>(image);
  size_t len;
  if (memcmp(p, "\x7f" "ELF", 4) == 0) {
    // A cubin runs on its own major architecture, at the same or a higher minor one. Its SM is in
    // e_flags: bits 8-15 since the ELF ABI version 8 (CUDA 12.8+), bits 0-7 before.
    uint32_t flags = read_le<uint32_t>(p + 0x30);
    int sm = p[8] >= 8 ? (flags >> 8) & 0xff : flags & 0xff;
    if (sm / 10 != arch() / 10 || sm % 10 > arch() % 10) return kNoBinaryForGpu;
    len = elf_length(p);
  } else {
    // PTX: its target must not be newer than the device.
    const char* text = static_cast<const char*>(image);
    len = strlen(text);
    const char* target = strstr(text, "\n.target sm_");
    if (!target) return kInvalidImage;
    if (atoi(target + strlen("\n.target sm_")) > arch()) return kUnsupportedPtxVersion;
  }
  const char* dir = getenv("RESNETC_FAKE_CUDA_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/%016llx.so", dir ? dir : ".", (unsigned long long)fnv1a(p, len));
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "fake CUDA driver: no kernel library for this image (%s)\n", dlerror());
    return kNoBinaryForGpu;
  }
  auto* m = new Module{lib, reinterpret_cast<PointerArgsFn>(dlsym(lib, "resnetc_fake_pointer_args")),
                       reinterpret_cast<LaunchFn>(dlsym(lib, "resnetc_fake_launch"))};
  if (!m->pointer_args || !m->launch) {
    dlclose(lib);
    delete m;
    return kInvalidImage;
  }
  s.modules[m] = true;
  *module = m;
  return kSuccess;
}

CUresult cuModuleUnload(void* module) {
  ENTER("cuModuleUnload", true);
  auto* m = static_cast<Module*>(module);
  if (!s.modules.erase(m)) return kInvalidHandle;
  for (auto it = s.functions.begin(); it != s.functions.end();) {
    if (it->first->module == m) {
      delete it->first;
      it = s.functions.erase(it);
    } else {
      ++it;
    }
  }
  dlclose(m->lib);
  delete m;
  return kSuccess;
}

CUresult cuModuleGetFunction(void** function, void* module, const char* name) {
  ENTER("cuModuleGetFunction", true);
  auto* m = static_cast<Module*>(module);
  if (!s.modules.count(m)) return kInvalidHandle;
  if (m->pointer_args(name) < 0) return kNotFound;
  auto* f = new Function{m, name};
  s.functions[f] = true;
  *function = f;
  return kSuccess;
}

CUresult cuMemAlloc_v2(CUdeviceptr* address, size_t bytes) {
  ENTER("cuMemAlloc_v2", true);
  if (bytes == 0) return kInvalidValue;
  char* host = static_cast<char*>(malloc(bytes));
  if (!host) return kOutOfMemory;
  // Never-written device memory reads as NaN, so a kernel that reads it spoils the output.
  memset(host, 0xff, bytes);
  *address = s.next_address;
  s.allocations[s.next_address] = {host, bytes};
  s.next_address += (bytes + 4096 + 255) & ~uint64_t(255);
  return kSuccess;
}

CUresult cuMemFree_v2(CUdeviceptr address) {
  ENTER("cuMemFree_v2", true);
  auto it = s.allocations.find(address);
  if (it == s.allocations.end()) return kInvalidValue;
  free(it->second.first);
  s.allocations.erase(it);
  return kSuccess;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
  ENTER("cuMemcpyHtoD_v2", true);
  char* host = host_address(s, dst, bytes);
  if (!host) return kInvalidValue;
  memcpy(host, src, bytes);
  return kSuccess;
}

CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
  ENTER("cuMemcpyDtoH_v2", true);
  char* host = host_address(s, src, bytes);
  if (!host) return kInvalidValue;
  memcpy(dst, host, bytes);
  return kSuccess;
}

CUresult cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned shared_bytes, void* stream, void** params, void** extra) {
  ENTER("cuLaunchKernel", true);
  auto* f = static_cast<Function*>(function);
  if (!s.functions.count(f)) return kInvalidHandle;
  if (stream != nullptr || extra != nullptr || params == nullptr) return kInvalidValue;
  if (gx == 0 || gy == 0 || gz == 0 || gx > 0x7fffffffu || gy > 65535 || gz > 65535) return kInvalidValue;
  if (bx == 0 || by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64) return kInvalidValue;
  if (uint64_t(bx) * by * bz > 1024 || shared_bytes > 48 * 1024) return kLaunchOutOfResources;
  // The host emulation runs one-dimensional blocks, which is all resnetc generates.
  if (by != 1 || bz != 1) return kInvalidValue;
  int pointers = f->module->pointer_args(f->name.c_str());
  void* host_args[16];
  if (pointers < 0 || pointers > 16) return kNotFound;
  for (int i = 0; i < pointers; ++i) {
    CUdeviceptr a = *static_cast<CUdeviceptr*>(params[i]);
    // A null pointer is a legal argument (an absent operand); anything else must be device memory.
    host_args[i] = a == 0 ? nullptr : host_address(s, a, 4);
    if (a != 0 && !host_args[i]) {
      fprintf(stderr, "fake CUDA driver: %s argument %d (0x%llx) is not device memory\n", f->name.c_str(), i,
              (unsigned long long)a);
      return s.sticky = kIllegalAddress;
    }
  }
  int batch = *static_cast<int*>(params[pointers]);
  ++s.launches;
  if (f->module->launch(f->name.c_str(), gx, gy, gz, bx, host_args, batch) != 0) return s.sticky = kLaunchFailed;
  const char* skew = getenv("RESNETC_FAKE_CUDA_SKEW");
  const std::string& name = f->name;
  if (skew && name.size() > 5 && name.compare(name.size() - 5, 5, "_head") == 0) {
    // The head's last pointer argument is its output, [batch][outputs].
    static_cast<float*>(host_args[pointers - 1])[0] += float(atof(skew));
  }
  return kSuccess;
}

CUresult cuEventCreate(void** event, unsigned flags) {
  ENTER("cuEventCreate", true);
  if (flags != 0) return kInvalidValue;
  auto* e = new Event;
  s.events[e] = true;
  *event = e;
  return kSuccess;
}

CUresult cuEventRecord(void* event, void* stream) {
  ENTER("cuEventRecord", true);
  auto* e = static_cast<Event*>(event);
  if (!s.events.count(e) || stream != nullptr) return kInvalidHandle;
  e->recorded = true;
  e->at = std::chrono::steady_clock::now();
  return kSuccess;
}

CUresult cuEventSynchronize(void* event) {
  ENTER("cuEventSynchronize", true);
  return s.events.count(static_cast<Event*>(event)) ? kSuccess : kInvalidHandle;
}

CUresult cuEventElapsedTime(float* ms, void* start, void* end) {
  ENTER("cuEventElapsedTime", true);
  auto *a = static_cast<Event*>(start), *b = static_cast<Event*>(end);
  if (!s.events.count(a) || !s.events.count(b)) return kInvalidHandle;
  if (!a->recorded || !b->recorded) return kNotReady;
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return kSuccess;
}

CUresult cuEventDestroy_v2(void* event) {
  ENTER("cuEventDestroy_v2", true);
  auto* e = static_cast<Event*>(event);
  if (!s.events.erase(e)) return kInvalidHandle;
  delete e;
  return kSuccess;
}

// Not a driver entry point: what is still alive, for the tests' leak checks.
void resnetc_fake_cuda_live(int* allocations, int* modules, int* events, int* context_refs, long long* launches) {
  State& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  *allocations = int(s.allocations.size());
  *modules = int(s.modules.size());
  *events = int(s.events.size());
  *context_refs = s.context_refs;
  *launches = s.launches;
}

}  // extern "C"
