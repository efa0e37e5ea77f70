// Host shim: compiles resnetc's generated CUDA source as plain C++ and runs its kernels on the CPU.
//
// A launch runs the blocks one after another; within a block every CUDA thread is a ucontext fiber
// and __syncthreads() switches to the next fiber, so the block's threads advance barrier by barrier
// as on a GPU (a kernel that relied on warp-synchronous behaviour would not be caught, but the
// generated kernels use only __syncthreads). __shared__ arrays become function statics: one copy,
// which the fibers of the running block share. A fiber that finishes while others wait at a barrier
// is reported (divergent __syncthreads).
#pragma once

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include <functional>
#include <vector>

struct float4 {
  float x, y, z, w;
} __attribute__((aligned(16)));
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

struct emu_dim3 {
  unsigned x, y, z;
};

namespace emu {
inline emu_dim3 thread_idx{0, 0, 0};
inline emu_dim3 block_idx{0, 0, 0};

struct Fiber {
  ucontext_t ctx;
  bool done = false;
};
inline ucontext_t scheduler;
inline std::vector<Fiber> fibers;
inline std::vector<std::vector<char>> stacks;
inline size_t current = 0;
inline const std::function<void()>* body = nullptr;
inline long long barriers = 0;

inline void fiber_main() {
  (*body)();
  fibers[current].done = true;
  // Returning resumes uc_link, the scheduler.
}

inline void sync_threads() {
  ++barriers;
  swapcontext(&fibers[current].ctx, &scheduler);
}

// Runs one kernel launch: `kernel` is called once per thread with blockIdx/threadIdx set.
inline void launch(emu_dim3 grid, unsigned threads, const std::function<void()>& kernel) {
  constexpr size_t kStack = 256 * 1024;
  if (stacks.size() < threads) stacks.resize(threads, std::vector<char>(kStack));
  body = &kernel;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        block_idx = emu_dim3{bx, by, bz};
        fibers.assign(threads, Fiber{});
        for (unsigned t = 0; t < threads; ++t) {
          getcontext(&fibers[t].ctx);
          fibers[t].ctx.uc_stack.ss_sp = stacks[t].data();
          fibers[t].ctx.uc_stack.ss_size = kStack;
          fibers[t].ctx.uc_link = &scheduler;
          makecontext(&fibers[t].ctx, fiber_main, 0);
        }
        for (;;) {
          size_t done = 0;
          for (unsigned t = 0; t < threads; ++t) {
            if (fibers[t].done) {
              ++done;
              continue;
            }
            current = t;
            thread_idx = emu_dim3{t, 0, 0};
            swapcontext(&scheduler, &fibers[t].ctx);
            if (fibers[t].done) ++done;
          }
          if (done == threads) break;
          if (done != 0) {
            fprintf(stderr, "divergent __syncthreads: %zu of %u threads finished while the others wait\n", done, threads);
            exit(3);
          }
        }
      }
}
}  // namespace emu

#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define __syncthreads() emu::sync_threads()
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(n)

template <class T>
inline T __ldg(const T* p) {
  return *p;
}
