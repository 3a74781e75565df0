// The interface between CUDA kernels compiled for the emulator (a "kernel set": one .cu source
// built by g++ into a shared library) and the emulator's runtime in libcuda.so.1.
//
// How a CUDA thread finds itself: each runs as a fiber on a stack slot of kFiberStackBytes,
// aligned to that size, near whose top is its DeviceThread. threadIdx and friends therefore read
// the stack pointer, mask it and load from there: no thread-local lookup and nothing passed
// through the kernel's own parameters. (Kernel code only ever runs on fiber stacks.)
//
// Shared memory: `__shared__` is `thread_local`. A worker OS thread runs one block at a time,
// all of that block's fibers on itself, so a thread_local is exactly per-block storage. All
// `extern __shared__` arrays of a kernel set alias one thread_local buffer (the build adds an
// assembler alias per name it finds), as every extern __shared__ array aliases the launch's
// dynamic shared memory on a GPU.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <vector>

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
#ifdef __cplusplus
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
#endif
};

namespace cuda_emu {

// Bumped whenever anything below changes: libcuda refuses kernel sets of another version.
constexpr int kKernelSetAbi = 2;

constexpr uintptr_t kFiberStackBytes = 256 * 1024;       // a power of two
constexpr uintptr_t kDeviceThreadBytes = 256;            // reserved at the top of each slot

struct DeviceBlock {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  uintptr_t shared_begin, shared_end;  // this block's shared memory (the kernel set's TLS block)
};

struct DeviceThread {
  uint3 thread_idx;
  const DeviceBlock* block;
};

// Where the DeviceThread of the slot at `slot` is: at the top, lowered by a per-slot "colour" of
// up to 64 KiB. Without it, every slot's DeviceThread and top stack frames would sit at the same
// address modulo kFiberStackBytes, in the same few cache sets, and switching among a warp's 32
// fibers would miss the cache at every switch.
inline uintptr_t device_thread_offset(uintptr_t slot) {
  return kFiberStackBytes - kDeviceThreadBytes - (((slot / kFiberStackBytes) * 33 * 64) & 0xffc0);
}

inline DeviceThread* this_thread() {
  uintptr_t sp;
  // Not volatile: within one function the slot never changes, so the compiler may reuse it.
  asm("mov %%rsp, %0" : "=r"(sp));
  uintptr_t slot = sp & ~(kFiberStackBytes - 1);
  return reinterpret_cast<DeviceThread*>(slot + device_thread_offset(slot));
}

// ---- Runtime entry points in libcuda.so.1, called from kernel code (on a fiber).

void syncthreads();

// A warp-wide exchange (PTX shfl.sync / vote.sync / bar.warp.sync): waits until every live lane
// in `mask` arrives, then returns, per lane, what `mode` computes from the lanes' values.
enum WarpMode : int { kShuffleIdx = 0, kShuffleUp = 1, kShuffleDown = 2, kShuffleXor = 3, kBallot = 4, kSyncWarp = 5 };
uint64_t warp_exchange(unsigned mask, uint64_t value, int lane_arg, int width, WarpMode mode);
unsigned warp_live_mask();

[[noreturn]] void trap(const char* what);
[[noreturn]] void assert_failed(const char* expression, const char* file, unsigned line, const char* function);

// ---- What a kernel set exports.

// One launch's arguments, copied by value from kernelParams at cuLaunchKernel (as CUDA does);
// run() executes the kernel once, as the calling CUDA thread. Immutable after capture, so a graph
// can replay it and several workers can run blocks of it at once.
struct KernelArgs {
  virtual ~KernelArgs() = default;
  virtual void run() const = 0;
  // Values of the pointer parameters, by parameter index, for the launch's pointer checks.
  std::vector<std::pair<int, uintptr_t>> pointers;
};

struct KernelInfo {
  const char* name;
  int param_count;
  KernelArgs* (*capture)(void* const* params);
  // From ptxas -v for sm_90 when nvcc was available at build time; -1 when unknown.
  int registers;
  int static_shared_bytes;
  int local_bytes;
};

struct KernelSet {
  int abi;
  const char* name;           // the source's file name without .cu
  const char* source_path;    // as built
  const char* source_sha256;  // of the source as built
  const KernelInfo* kernels;
  int kernel_count;
  // This OS thread's dynamic shared memory buffer (the aliased extern __shared__ storage).
  unsigned char* (*dynamic_shared)();
  size_t dynamic_shared_capacity;
};

}  // namespace cuda_emu

// Each kernel set library exports this one symbol.
extern "C" const cuda_emu::KernelSet* cuda_emulator_kernel_set();
