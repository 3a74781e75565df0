// Forced include (g++ -include cuda_device_shim.h) that lets g++ compile a CUDA kernel source
// unchanged for the emulator: the CUDA keywords, built-in variables and device intrinsics a
// kernel uses, mapped onto the emulator's runtime (cuda_emulator_device.h).
//
// Semantics worth knowing when reading a kernel under the emulator:
// - Each CUDA thread is a fiber; a block's fibers run cooperatively on one OS thread, so between
//   two synchronisation points a thread runs alone: data races inside a block never show, while
//   races between blocks (which run on different workers) can.
// - Atomics on global memory are real (relaxed) atomics, as blocks run in parallel; on shared
//   memory they are plain read-modify-writes, as nothing else runs in the block meanwhile.
// - Floating point: g++ with -ffp-contract=off -fno-fast-math: no fused multiply-add unless the
//   source calls fmaf/__fmaf_rn; math functions (expf, __expf, ...) are the host libm's, which round
//   differently from CUDA's in the last bits.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_emulator_device.h"

#define __CUDACC__ 1
#define __CUDA_ARCH__ 900

// Kernels are marked by their section: the build lists the functions in it (with nm) and
// registers them by name, so every __global__ function must be extern "C" (checked at build time).
#define __global__ __attribute__((section(".text.cuda_emulator_global"), used))
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __shared__ thread_local
#define __constant__
#define __managed__
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __grid_constant__

#define threadIdx (::cuda_emu::this_thread()->thread_idx)
#define blockIdx (::cuda_emu::this_thread()->block->block_idx)
#define blockDim (::cuda_emu::this_thread()->block->block_dim)
#define gridDim (::cuda_emu::this_thread()->block->grid_dim)
#define warpSize 32

// ---- Vector types
#define CUDA_EMU_VECTOR2(T, NAME, ALIGN)                                              \
  struct __attribute__((aligned(ALIGN))) NAME { T x, y; };                          \
  static inline NAME make_##NAME(T x, T y) { return NAME{x, y}; }
#define CUDA_EMU_VECTOR3(T, NAME)                                                     \
  struct NAME { T x, y, z; };                                                         \
  static inline NAME make_##NAME(T x, T y, T z) { return NAME{x, y, z}; }
#define CUDA_EMU_VECTOR4(T, NAME, ALIGN)                                              \
  struct __attribute__((aligned(ALIGN))) NAME { T x, y, z, w; };                    \
  static inline NAME make_##NAME(T x, T y, T z, T w) { return NAME{x, y, z, w}; }
CUDA_EMU_VECTOR2(int, int2, 8)
CUDA_EMU_VECTOR3(int, int3)
CUDA_EMU_VECTOR4(int, int4, 16)
CUDA_EMU_VECTOR2(unsigned int, uint2, 8)
CUDA_EMU_VECTOR4(unsigned int, uint4, 16)
CUDA_EMU_VECTOR2(float, float2, 8)
CUDA_EMU_VECTOR3(float, float3)
CUDA_EMU_VECTOR4(float, float4, 16)
CUDA_EMU_VECTOR2(double, double2, 16)
CUDA_EMU_VECTOR2(long long, longlong2, 16)
#undef CUDA_EMU_VECTOR2
#undef CUDA_EMU_VECTOR3
#undef CUDA_EMU_VECTOR4
static inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return uint3{x, y, z}; }

// ---- Synchronisation
static inline void __syncthreads() { ::cuda_emu::syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { ::cuda_emu::warp_exchange(mask, 0, 0, 32, ::cuda_emu::kSyncWarp); }
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] static inline void __trap() { ::cuda_emu::trap("__trap()"); }

// ---- Warp shuffles and votes. Values up to 8 bytes travel in one exchange.
template <typename T>
static inline T cuda_emu_shuffle_(unsigned mask, T value, int arg, int width, ::cuda_emu::WarpMode mode) {
  static_assert(sizeof(T) <= 8, "the emulator shuffles values of at most 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &value, sizeof(T));
  bits = ::cuda_emu::warp_exchange(mask, bits, arg, width, mode);
  T result;
  memcpy(&result, &bits, sizeof(T));
  return result;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  return cuda_emu_shuffle_(mask, var, src_lane, width, ::cuda_emu::kShuffleIdx);
}
template <typename T> static inline T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = 32) {
  return cuda_emu_shuffle_(mask, var, (int)delta, width, ::cuda_emu::kShuffleUp);
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = 32) {
  return cuda_emu_shuffle_(mask, var, (int)delta, width, ::cuda_emu::kShuffleDown);
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  return cuda_emu_shuffle_(mask, var, lane_mask, width, ::cuda_emu::kShuffleXor);
}
static inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return (unsigned)::cuda_emu::warp_exchange(mask, predicate != 0, 0, 32, ::cuda_emu::kBallot);
}
static inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
// Lanes of the mask that exited do not vote, as on a GPU.
static inline int __all_sync(unsigned mask, int predicate) { return __ballot_sync(mask, !predicate) == 0; }
// The warp's lanes that have not exited (the emulator has no other notion of an inactive lane).
static inline unsigned __activemask() { return ::cuda_emu::warp_live_mask(); }

// ---- Atomics (relaxed, like CUDA's). Global memory is shared with blocks running on other
// workers: real atomics there. Shared memory belongs to one block, whose threads run one at a
// time on one OS thread: there a plain read-modify-write is atomic, and much cheaper than a locked
// instruction (which drains the store buffer: a histogram in shared memory would crawl).
template <typename T> static inline bool cuda_emu_in_shared_(const T* p) {
  const ::cuda_emu::DeviceBlock* b = ::cuda_emu::this_thread()->block;
  return (uintptr_t)p - b->shared_begin < b->shared_end - b->shared_begin;
}
template <typename T, typename F> static inline T cuda_emu_atomic_(T* p, F update) {
  T old = *p;
  if (cuda_emu_in_shared_(p)) {
    *p = update(old);
    return old;
  }
  T next;
  do {
    next = update(old);
  } while (!__atomic_compare_exchange(p, &old, &next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}
#define CUDA_EMU_ATOMIC_FETCH(NAME, BUILTIN, OP)                                               \
  template <typename T> static inline T NAME(T* p, T v) {                                      \
    if (!cuda_emu_in_shared_(p)) return BUILTIN(p, v, __ATOMIC_RELAXED);                       \
    T old = *p;                                                                                \
    *p = old OP v;                                                                             \
    return old;                                                                                \
  }
CUDA_EMU_ATOMIC_FETCH(atomicAdd, __atomic_fetch_add, +)
CUDA_EMU_ATOMIC_FETCH(atomicSub, __atomic_fetch_sub, -)
CUDA_EMU_ATOMIC_FETCH(atomicAnd, __atomic_fetch_and, &)
CUDA_EMU_ATOMIC_FETCH(atomicOr, __atomic_fetch_or, |)
CUDA_EMU_ATOMIC_FETCH(atomicXor, __atomic_fetch_xor, ^)
#undef CUDA_EMU_ATOMIC_FETCH
static inline float atomicAdd(float* p, float v) { return cuda_emu_atomic_(p, [v](float old) { return old + v; }); }
static inline double atomicAdd(double* p, double v) { return cuda_emu_atomic_(p, [v](double old) { return old + v; }); }
template <typename T> static inline T atomicMax(T* p, T v) { return cuda_emu_atomic_(p, [v](T old) { return old < v ? v : old; }); }
template <typename T> static inline T atomicMin(T* p, T v) { return cuda_emu_atomic_(p, [v](T old) { return v < old ? v : old; }); }
template <typename T> static inline T atomicExch(T* p, T v) { return cuda_emu_atomic_(p, [v](T) { return v; }); }
template <typename T> static inline T atomicCAS(T* p, T compare, T v) {
  if (cuda_emu_in_shared_(p)) {
    T old = *p;
    if (old == compare) *p = v;
    return old;
  }
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
static inline unsigned atomicInc(unsigned* p, unsigned limit) {
  return cuda_emu_atomic_(p, [limit](unsigned old) { return old >= limit ? 0u : old + 1; });
}
static inline unsigned atomicDec(unsigned* p, unsigned limit) {
  return cuda_emu_atomic_(p, [limit](unsigned old) { return (old == 0 || old > limit) ? limit : old - 1; });
}

// ---- Bit casts and integer intrinsics
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline unsigned int __float_as_uint(float f) { unsigned int i; memcpy(&i, &f, 4); return i; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned int i) { float f; memcpy(&f, &i, 4); return f; }
static inline long long __double_as_longlong(double d) { long long i; memcpy(&i, &d, 8); return i; }
static inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, 8); return d; }
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((unsigned long long)a * b) >> 32); }
template <typename T> static inline T __ldg(const T* p) { return *p; }

// ---- Floating point intrinsics. glibc declares __expf & co. itself, so the fast-math
// intrinsics map onto libm by macro.
#define __expf(x) expf(x)
#define __exp10f(x) exp10f(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __powf(x, y) powf(x, y)
static inline float __fdividef(float x, float y) { return x / y; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline float __int2float_rn(int x) { return (float)x; }

// ---- CUDA's device min/max overloads (the host has none in the global namespace).
#define CUDA_EMU_MIN_MAX(T)                                       \
  static inline T min(T a, T b) { return b < a ? b : a; }       \
  static inline T max(T a, T b) { return a < b ? b : a; }
CUDA_EMU_MIN_MAX(int)
CUDA_EMU_MIN_MAX(unsigned int)
CUDA_EMU_MIN_MAX(long)
CUDA_EMU_MIN_MAX(unsigned long)
CUDA_EMU_MIN_MAX(long long)
CUDA_EMU_MIN_MAX(unsigned long long)
#undef CUDA_EMU_MIN_MAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
