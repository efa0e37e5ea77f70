// One generated program's kernels as a library for fake_driver.cpp: the kernels run through the
// host emulation (cuda_host.h); dispatch.inc, written by the tests, maps kernel names to calls.
#include "cuda_host.h"

#include <string>

#include "kernels.cu"
#include "dispatch.inc"

// How many pointer arguments the kernel takes before the batch, or -1 for a name not in the program.
extern "C" int resnetc_fake_pointer_args(const char* name) { return pointer_args(name); }

// Runs a launch on host addresses (the driver has translated the device addresses already).
extern "C" int resnetc_fake_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned block,
                                   void** host_args, int batch) {
  int n = pointer_args(name);
  if (n < 0) return 1;
  std::vector<void*> args(host_args, host_args + n);
  const std::string kernel = name;
  emu::launch(emu_dim3{gx, gy, gz}, block, [&] { dispatch(kernel, args, batch); });
  return 0;
}
