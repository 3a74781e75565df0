// The emulator's test kernels: correct ones whose results the tests check, and planted faults
// the emulator must catch. Built as the emulator's kernel set "test_kernels" and, where nvcc is
// installed, by nvcc into OUT/test-kernels.fatbin (so a Java test can load the same kernels
// through the engine's own driver bindings). Every kernel is extern "C"; the signatures are the
// contract with the tests (cuda-emulator/test/test_*.cpp) and are listed in README.md ("The emulated CUDA device").
#include <assert.h>
#include <cuda_bf16.h>
#include <mma.h>
#include <stdint.h>

// ---- Correct kernels

// c[m][n] += a[m][k] * b[n][k]^T with nvcuda::wmma's 16x16x16 bf16 tiles, f32 accumulators: one
// warp (block) per 16x16 tile of c (blockIdx.y, blockIdx.x); c's tile is loaded as the first
// accumulator, b read as a column-major k x n operand (a matrix of rows by k: keys, as attention has them).
extern "C" __global__ void emu_test_wmma(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b, int n, int k) {
  using namespace nvcuda;
  int row = blockIdx.y * 16, col = blockIdx.x * 16;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::load_matrix_sync(acc, c + (size_t)row * n + col, n, wmma::mem_row_major);
  for (int kk = 0; kk < k; kk += 16) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
    wmma::load_matrix_sync(fa, a + (size_t)row * k + kk, k);
    wmma::load_matrix_sync(fb, b + (size_t)col * k + kk, k);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(c + (size_t)row * n + col, acc, n, wmma::mem_row_major);
}

// out[i] = value for i < n (grid-stride).
extern "C" __global__ void emu_test_fill(float* out, float value, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = value;
}

// data[i] += 1 for i < n (grid-stride).
extern "C" __global__ void emu_test_increment(float* data, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) data[i] += 1.0f;
}

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
  return __shfl_sync(0xffffffffu, v, 0);
}

// Block-wide sum and max through one static __shared__ array, as llama.cu's block_sum does; every
// thread gets the result. blockDim.x must be a multiple of 32.
__device__ float block_reduce(float v, bool maximum) {
  __shared__ float partial[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = maximum ? warp_max(v) : warp_sum(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = maximum ? -INFINITY : 0.f;
  for (int w = 0; w < warps; w++) total = maximum ? fmaxf(total, partial[w]) : total + partial[w];
  return total;
}

// Per row (block): sums[row] and maxima[row] of in[row][0..width), two reductions in one kernel.
extern "C" __global__ void emu_test_reductions(const float* in, float* sums, float* maxima, int width) {
  const float* row = in + (size_t)blockIdx.x * width;
  float s = 0.f, m = -INFINITY;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    s += row[i];
    m = fmaxf(m, row[i]);
  }
  float total = block_reduce(s, false);
  float largest = block_reduce(m, true);
  if (threadIdx.x == 0) {
    sums[blockIdx.x] = total;
    maxima[blockIdx.x] = largest;
  }
}

// One warp: out[c * 32 + lane] is case c of the shuffles and votes below, on in[lane].
#define EMU_TEST_SHUFFLE_CASES 21
extern "C" __global__ void emu_test_shuffles(const int* in, int* out) {
  int lane = threadIdx.x & 31;
  int v = in[lane];
  const unsigned all = 0xffffffffu;
  int c = 0;
  out[c++ * 32 + lane] = __shfl_sync(all, v, 0);
  out[c++ * 32 + lane] = __shfl_sync(all, v, 5);
  out[c++ * 32 + lane] = __shfl_sync(all, v, 33);       // 33 & 31 = lane 1
  out[c++ * 32 + lane] = __shfl_sync(all, v, -1);       // lane 31
  out[c++ * 32 + lane] = __shfl_sync(all, v, 3, 16);    // lane 3 of each half
  out[c++ * 32 + lane] = __shfl_sync(all, v, 9, 8);     // 9 % 8 = lane 1 of each group of 8
  out[c++ * 32 + lane] = __shfl_sync(all, v, lane ^ 7); // per-lane source
  out[c++ * 32 + lane] = __shfl_up_sync(all, v, 1);
  out[c++ * 32 + lane] = __shfl_up_sync(all, v, 5);
  out[c++ * 32 + lane] = __shfl_up_sync(all, v, 2, 8);
  out[c++ * 32 + lane] = __shfl_down_sync(all, v, 1);
  out[c++ * 32 + lane] = __shfl_down_sync(all, v, 5);
  out[c++ * 32 + lane] = __shfl_down_sync(all, v, 3, 16);
  out[c++ * 32 + lane] = __shfl_xor_sync(all, v, 1);
  out[c++ * 32 + lane] = __shfl_xor_sync(all, v, 16);
  out[c++ * 32 + lane] = __shfl_xor_sync(all, v, 4, 8);
  out[c++ * 32 + lane] = __shfl_xor_sync(all, v, 8, 8);  // reaches down into the previous group of 8
  double d = __shfl_xor_sync(all, (double)v + 0.5, 2);   // 8-byte values
  out[c++ * 32 + lane] = (int)(d * 2);
  out[c++ * 32 + lane] = (int)__ballot_sync(all, lane % 3 == 0);
  out[c++ * 32 + lane] = __any_sync(all, lane == 7) + 2 * __any_sync(all, lane == 99);
  out[c++ * 32 + lane] = __all_sync(all, lane < 32) + 2 * __all_sync(all, lane < 31);
}

// All `extern __shared__` names alias the launch's dynamic shared memory: floats written through
// one name are read back as bits through another. out[t] = bits of (float)t.
extern "C" __global__ void emu_test_shared_alias(unsigned* out) {
  extern __shared__ float dynamic_floats[];
  extern __shared__ unsigned dynamic_words[];
  dynamic_floats[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = dynamic_words[threadIdx.x];
}

// A static __shared__ variable read before any write: out[t] shows the emulator's poison (0xff).
extern "C" __global__ void emu_test_uninitialised_shared(unsigned* out) {
  __shared__ unsigned scratch[256];
  out[threadIdx.x] = scratch[threadIdx.x];
  __syncthreads();
  scratch[threadIdx.x] = 0;  // the next block must see poison again
}

// Atomics from every thread of every block: counter += 1, sum += 1, maximum = max(global index).
extern "C" __global__ void emu_test_atomics(int* counter, float* sum, unsigned* maximum) {
  atomicAdd(counter, 1);
  atomicAdd(sum, 1.0f);
  atomicMax(maximum, blockIdx.x * blockDim.x + threadIdx.x);
}

// A histogram of values[0..n) & 15 in shared memory (shared atomics), added into histogram[16]
// (global atomics across blocks).
extern "C" __global__ void emu_test_shared_histogram(const int* values, int n, unsigned* histogram) {
  __shared__ unsigned bins[16];
  if (threadIdx.x < 16) bins[threadIdx.x] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&bins[values[i] & 15], 1u);
  __syncthreads();
  if (threadIdx.x < 16) atomicAdd(&histogram[threadIdx.x], bins[threadIdx.x]);
}

struct EmuTestPair {
  int a;
  double b;
};

// Parameters of every kind, by value: out[0..7] = c, s, i, ll, f * 1000, d * 1000, p.a + p.b * 1000, *ptr.
extern "C" __global__ void emu_test_parameters(long long* out, char c, short s, int i, long long ll, float f, double d, EmuTestPair p,
                                               const int* ptr) {
  out[0] = c;
  out[1] = s;
  out[2] = i;
  out[3] = ll;
  out[4] = (long long)(f * 1000);
  out[5] = (long long)(d * 1000);
  out[6] = p.a + (long long)(p.b * 1000);
  out[7] = *ptr;
}

// A register-hungry kernel (ptxas gives it well over 64 registers): 1024 threads cannot launch.
extern "C" __global__ void emu_test_many_registers(float* data, int rounds) {
  float acc[96];
#pragma unroll
  for (int i = 0; i < 96; i++) acc[i] = data[i * blockDim.x + threadIdx.x];
  for (int r = 0; r < rounds; r++) {
#pragma unroll
    for (int i = 0; i < 96; i++) acc[i] = acc[i] * acc[(i + 1) % 96] + 1.0f;
  }
#pragma unroll
  for (int i = 0; i < 96; i++) data[i * blockDim.x + threadIdx.x] = acc[i];
}

// 40 KiB of static shared memory: with more than 8 KiB of dynamic shared memory it exceeds the
// default 48 KiB.
extern "C" __global__ void emu_test_static_shared(float* out) {
  __shared__ float big[10240];
  for (int i = threadIdx.x; i < 10240; i += blockDim.x) big[i] = (float)i;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = big[10239];
}

// ---- Planted faults

// Writes out[0 .. n + extra): `extra` elements past the end of an n-element buffer.
extern "C" __global__ void emu_test_write_past_end(float* out, int n, int extra) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n + extra; i += gridDim.x * blockDim.x) out[i] = 1.0f;
}

// Writes one byte at p[offset] (e.g. one byte past the end).
extern "C" __global__ void emu_test_write_byte(unsigned char* p, long long offset) {
  if (threadIdx.x == 0 && blockIdx.x == 0) p[offset] = 1;
}

// Reads in[index] (anywhere, e.g. in the guard page past the end) into out[0].
extern "C" __global__ void emu_test_read_at(const float* in, float* out, long long index) {
  if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = in[index];
}

// Reads through a pointer stored in device memory (the emulator cannot check it at launch).
extern "C" __global__ void emu_test_read_indirect(float* const* table, float* out) {
  if (threadIdx.x == 0) out[0] = table[0][0];
}

// Deadlock: lane 0 of each warp waits at __syncthreads, lanes 1..31 in a shuffle that needs it.
extern "C" __global__ void emu_test_deadlock(int* out) {
  int v = threadIdx.x;
  if ((threadIdx.x & 31) == 0) {
    __syncthreads();
  } else {
    v = __shfl_down_sync(0xffffffffu, v, 1);
    __syncthreads();
  }
  out[threadIdx.x] = v;
}

// Thread `thread` of block `block` traps.
extern "C" __global__ void emu_test_trap(int* out, int block, int thread) {
  if ((int)blockIdx.x == block && (int)threadIdx.x == thread) __trap();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

// A device-side assert() that fails for thread `thread`.
extern "C" __global__ void emu_test_assert(int* out, int thread) {
  assert((int)threadIdx.x != thread);
  out[threadIdx.x] = 1;
}

// Writes `count` floats of dynamic shared memory, whatever the launch gave.
extern "C" __global__ void emu_test_shared_overrun(float* out, int count) {
  extern __shared__ float dynamic_floats[];
  for (int i = threadIdx.x; i < count; i += blockDim.x) dynamic_floats[i] = (float)i;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = dynamic_floats[0];
}

// Recurses `depth` times with 1 KiB of locals per call: deep enough to overflow a stack.
__device__ __noinline__ int emu_test_recurse(int depth, volatile int* sink) {
  volatile int locals[256];
  locals[depth & 255] = depth;
  if (depth == 0) return locals[0];
  int below = emu_test_recurse(depth - 1, sink);
  *sink = locals[depth & 255];
  return below + 1;
}
extern "C" __global__ void emu_test_deep_recursion(int* out, int depth) { out[threadIdx.x] = emu_test_recurse(depth, out); }

// Lanes shuffle at two different places in the code (divergent warp): a warning, not a failure.
// Odd lanes get their partner's value + 1000, even lanes their partner's value.
// (Separate functions, so that no compiler merges the two shuffles into one.)
__device__ __noinline__ int emu_test_shuffle_odd(int v) { return __shfl_xor_sync(0xffffffffu, v, 1); }
__device__ __noinline__ int emu_test_shuffle_even(int v) { return __shfl_xor_sync(0xffffffffu, v + 1000, 1); }
extern "C" __global__ void emu_test_divergent_shuffle(int* out) {
  int v = threadIdx.x;
  v = (threadIdx.x & 1) ? emu_test_shuffle_odd(v) : emu_test_shuffle_even(v);
  out[threadIdx.x] = v;
}
