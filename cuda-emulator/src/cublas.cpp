// libcublas.so.13 stand-in: handles, streams, math mode and workspace settings, and
// cublasGemmEx / cublasGemmStridedBatchedEx for f32 and bf16 matrices with f32 accumulation.
//
//   C = alpha * op(A) * op(B) + beta * C, column-major; op(A) is m x k, op(B) k x n, C m x n.
//   A is stored lda x (transa == N ? k : m) with lda >= max(1, transa == N ? m : k); B likewise
//   with k, n and ldb; ldc >= max(1, m). CUBLAS_OP_C is CUBLAS_OP_T for real types.
//   Types: A, B, C all CUDA_R_32F, all CUDA_R_16BF, or A, B CUDA_R_16BF with C CUDA_R_32F; compute
//   type CUBLAS_COMPUTE_32F or _32F_PEDANTIC (anything else: CUBLAS_STATUS_NOT_SUPPORTED); alpha
//   and beta are floats on the host (CUBLAS_POINTER_MODE_HOST), read at the call; beta == 0 does
//   not read C. Invalid arguments get cuBLAS's status and a message on stderr.
//
// Numerics, the engine's contract: every element of C is the f32 sum over l = 0, 1, ..., k-1 of
// op(A)(i, l) * op(B)(l, j), each product and each addition rounded to f32 (no fused multiply-add,
// no reordering), then alpha * sum, then + beta * C, then rounding to C's type (bf16: round to
// nearest even). So a result never depends on n, on the number of workers or on how the work is
// split: a row computed alone and inside a batch is bitwise the same. A GPU's cuBLAS sums in
// another order (and may use tensor cores), so results differ from a GPU's in the last bits.
//
// Speed: the work (queued on the handle's stream through libcuda, so it is deferred, captured in
// graphs and ordered with kernels) is split into tiles of 256 rows x 64 columns of C over libcuda's
// worker pool. Within a tile, 32 rows of op(A) at a time are converted into a k x 32 f32 panel
// (transposed in AVX-512 registers, or gathered with AVX2, where the CPU has them), then each
// group of up to 4 columns of C is computed as 32-wide vectors: one vector lane per row of C, so
// each element's sum keeps its order while the compiler vectorises across rows, and the two
// 16-row halves give two independent chains of additions per column.
#include <immintrin.h>

// GCC 12 warns about the intentionally undefined lanes inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

#include "cublas_bridge.h"
#include "cublas_emulator.h"

#define CUBLAS_EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

struct Handle {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

std::mutex handles_mutex;
std::set<Handle*> handles;

Handle* handle_of(cublasHandle_t h) {
  std::lock_guard<std::mutex> lock(handles_mutex);
  return handles.count((Handle*)h) ? (Handle*)h : nullptr;
}


const char* type_name(int t) {
  switch (t) {
    case CUDA_R_32F: return "f32";
    case CUDA_R_16BF: return "bf16";
    case CUDA_R_16F: return "f16";
    case CUDA_R_64F: return "f64";
    default: return "?";
  }
}

inline float bf16_to_float(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

struct Gemm {
  bool ta, tb;
  int m, n, k, lda, ldb, ldc, batch;
  long long stride_a, stride_b, stride_c;  // elements
  int a_type, b_type, c_type;
  float alpha, beta;
  uintptr_t A, B, C;
  int device;
  int splits;  // cuBLASLt's CUBLASLT_ALGO_CONFIG_SPLITK_NUM: 1, or k summed in that many parts (run_split)
};

size_t element_bytes(int type) { return type == CUDA_R_16BF ? 2 : 4; }

// Bytes from a matrix's start to the end of its last element (all batches).
uint64_t extent(int rows, int cols, int ld, long long stride, int batch, int type) {
  if (rows == 0 || cols == 0) return 0;
  uint64_t one = ((uint64_t)(cols - 1) * ld + rows);
  return ((uint64_t)(batch - 1) * (uint64_t)stride + one) * element_bytes(type);
}

// ---- The compute kernels

constexpr int kRows = 32;       // rows of C per panel: two 16-wide vectors, two independent sums per column
constexpr int kHalf = 16;
constexpr int kTileRows = 256;  // a task: 256 rows x 64 columns of C
constexpr int kTileCols = 64;

// Columns j..j+J-1 of C for the panel's 32 rows: out[j][r] = sum over l of panel[l][r] * b[j][l],
// in l order, one multiply and one add per term (compiled with -ffp-contract=off: no FMA). The
// 32 rows are 32 / W vectors of W floats, each an independent chain of additions; every
// accumulator is one register of the target (wider GCC vectors would live in memory).
template <int W, int J>
__attribute__((always_inline)) inline void multiply_body(const float* panel, int k, const float* const* b, float* out) {
  typedef float vec __attribute__((vector_size(W * sizeof(float))));
  constexpr int kParts = kRows / W;
  vec acc[J][kParts];
  for (int j = 0; j < J; j++)
    for (int p = 0; p < kParts; p++) acc[j][p] = vec{};
  for (int l = 0; l < k; l++) {
    for (int p = 0; p < kParts; p++) {
      vec a;
      memcpy(&a, panel + (size_t)l * kRows + p * W, sizeof a);
      for (int j = 0; j < J; j++) acc[j][p] = acc[j][p] + a * b[j][l];
    }
  }
  for (int j = 0; j < J; j++)
    for (int p = 0; p < kParts; p++) memcpy(out + j * kRows + p * W, &acc[j][p], sizeof(vec));
}

// Up to 4 columns per call with AVX-512 (8 zmm accumulators), 2 with AVX2 (8 ymm), 1 otherwise (8 xmm).
template <int J> __attribute__((target("avx512f"))) void multiply_avx512(const float* p, int k, const float* const* b, float* out) {
  multiply_body<16, J>(p, k, b, out);
}
template <int J> __attribute__((target("avx2"))) void multiply_avx2(const float* p, int k, const float* const* b, float* out) {
  multiply_body<8, J>(p, k, b, out);
}
void multiply_sse(const float* p, int k, const float* const* b, float* out) { multiply_body<4, 1>(p, k, b, out); }

float element(const Gemm& g, uintptr_t A, int i, int l) {
  size_t at = g.ta ? (size_t)i * g.lda + l : (size_t)l * g.lda + i;
  return g.a_type == CUDA_R_16BF ? bf16_to_float(((const uint16_t*)A)[at]) : ((const float*)A)[at];
}

// The panel: op(A)(i0 + r, l) as f32 at panel[l * 32 + r]; rows past m repeat the last row.
// Generic, for any layout.
void pack_generic(const Gemm& g, uintptr_t A, int i0, int l0, float* half) {
  for (int r = 0; r < kHalf; r++) {
    int i = i0 + r < g.m ? i0 + r : g.m - 1;
    for (int l = l0; l < g.k; l++) half[(size_t)l * kRows + r] = element(g, A, i, l);
  }
}

// Transposed A (op(A)'s rows contiguous): 16 rows at a time are read row by row and transposed in
// registers, 8 dwords (16 bf16 or 8 f32) of each row per step: an 8 x 8 dword transpose in each
// 256-bit half, rows r and r + 8 sharing a register.
// The lines of the next 16 rows are prefetched as these are read (the rows are far apart in
// memory when k is large, and a task's rows are consecutive).
__attribute__((target("avx512f"))) void pack_rows_avx512(const Gemm& g, uintptr_t A, int i0, float* half) {
  const bool bf16 = g.a_type == CUDA_R_16BF;
  const size_t es = bf16 ? 2 : 4, row_bytes = (size_t)g.lda * es;
  const int step = bf16 ? 16 : 8;  // elements of a row per step (8 dwords)
  const unsigned char* base = (const unsigned char*)A + (size_t)i0 * row_bytes;
  const __m512i low_lanes = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i high_lanes = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  const __m512i high_half = _mm512_set1_epi32((int)0xffff0000u);
  const unsigned char* next = base + kHalf * row_bytes;
  const bool prefetch = i0 + 2 * kHalf <= g.m;
  int l = 0;
  for (; l + step <= g.k; l += step) {
    if (prefetch && ((l * es) & 63) == 0) {
      for (int r = 0; r < kHalf; r++) _mm_prefetch((const char*)(next + r * row_bytes + l * es), _MM_HINT_T0);
    }
    __m512i z[8], t[8], u[8], o[8];
    for (int r = 0; r < 8; r++) {
      __m256i lo = _mm256_loadu_si256((const __m256i*)(base + r * row_bytes + l * es));
      __m256i hi = _mm256_loadu_si256((const __m256i*)(base + (r + 8) * row_bytes + l * es));
      z[r] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    for (int r = 0; r < 8; r += 2) {
      t[r] = _mm512_unpacklo_epi32(z[r], z[r + 1]);
      t[r + 1] = _mm512_unpackhi_epi32(z[r], z[r + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
      u[q] = _mm512_unpacklo_epi64(t[q], t[q + 2]);
      u[q + 1] = _mm512_unpackhi_epi64(t[q], t[q + 2]);
      u[q + 2] = _mm512_unpacklo_epi64(t[q + 1], t[q + 3]);
      u[q + 3] = _mm512_unpackhi_epi64(t[q + 1], t[q + 3]);
    }
    for (int j = 0; j < 4; j++) {
      o[j] = _mm512_permutex2var_epi64(u[j], low_lanes, u[j + 4]);
      o[j + 4] = _mm512_permutex2var_epi64(u[j], high_lanes, u[j + 4]);
    }
    // o[j]: dword j of the step for rows 0..15.
    for (int j = 0; j < 8; j++) {
      if (bf16) {
        _mm512_storeu_ps(half + (size_t)(l + 2 * j) * kRows, _mm512_castsi512_ps(_mm512_slli_epi32(o[j], 16)));
        _mm512_storeu_ps(half + (size_t)(l + 2 * j + 1) * kRows, _mm512_castsi512_ps(_mm512_and_si512(o[j], high_half)));
      } else {
        _mm512_storeu_ps(half + (size_t)(l + j) * kRows, _mm512_castsi512_ps(o[j]));
      }
    }
  }
  if (l < g.k) pack_generic(g, A, i0, l, half);
}

// The same with AVX2 gathers (bf16 elements in pairs (l, l + 1), as dwords).
__attribute__((target("avx2"))) void pack_rows_avx2(const Gemm& g, uintptr_t A, int i0, float* half) {
  for (int part = 0; part < 2; part++) {
    int offsets[8];
    for (int r = 0; r < 8; r++) offsets[r] = (part * 8 + r) * g.lda;
    __m256i rows = _mm256_loadu_si256((const __m256i*)offsets);
    float* out = half + part * 8;
    if (g.a_type == CUDA_R_16BF) {
      const int* row0 = (const int*)((const uint16_t*)A + (size_t)i0 * g.lda);
      const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
      int l = 0;
      for (; l + 1 < g.k; l += 2) {
        __m256i pair = _mm256_i32gather_epi32(row0, _mm256_add_epi32(rows, _mm256_set1_epi32(l)), 2);
        _mm256_storeu_ps(out + (size_t)l * kRows, _mm256_castsi256_ps(_mm256_slli_epi32(pair, 16)));
        _mm256_storeu_ps(out + (size_t)(l + 1) * kRows, _mm256_castsi256_ps(_mm256_and_si256(pair, high)));
      }
      if (l < g.k) {  // odd k: the last element is the high half of the pair (l - 1, l)
        __m256i pair = _mm256_i32gather_epi32(row0, _mm256_add_epi32(rows, _mm256_set1_epi32(l - 1)), 2);
        _mm256_storeu_ps(out + (size_t)l * kRows, _mm256_castsi256_ps(_mm256_and_si256(pair, high)));
      }
    } else {
      const float* row0 = (const float*)A + (size_t)i0 * g.lda;
      for (int l = 0; l < g.k; l++)
        _mm256_storeu_ps(out + (size_t)l * kRows, _mm256_i32gather_ps(row0, _mm256_add_epi32(rows, _mm256_set1_epi32(l)), 4));
    }
  }
}

// Non-transposed A: op(A)'s 16 rows of a column l are contiguous.
void pack_columns(const Gemm& g, uintptr_t A, int i0, float* half) {
  for (int l = 0; l < g.k; l++) {
    size_t at = (size_t)l * g.lda + i0;
    float* out = half + (size_t)l * kRows;
    if (g.a_type == CUDA_R_16BF) {
      const uint16_t* p = (const uint16_t*)A + at;
      for (int r = 0; r < kHalf; r++) out[r] = bf16_to_float(p[r]);
    } else {
      memcpy(out, (const float*)A + at, kHalf * sizeof(float));
    }
  }
}

enum class Isa { kGeneric, kAvx2, kAvx512 };

Isa best_isa() {
  return __builtin_cpu_supports("avx512f") ? Isa::kAvx512 : __builtin_cpu_supports("avx2") ? Isa::kAvx2 : Isa::kGeneric;
}

// The code path in use: the best the CPU has, unless a test limits it (cublasEmulatorLimitIsa),
// so that every path is tested on a machine that has them all. Results are bitwise the same.
std::atomic<Isa> isa_in_use{best_isa()};

Isa isa() { return isa_in_use.load(std::memory_order_relaxed); }

// Rows i0..i0+15 into one half of the panel.
void pack_half(const Gemm& g, uintptr_t A, int i0, float* half) {
  if (i0 + kHalf > g.m) return pack_generic(g, A, i0, 0, half);
  if (g.ta) {
    if (isa() == Isa::kAvx512) return pack_rows_avx512(g, A, i0, half);
    // Gathers need 32-bit offsets and, for bf16 pairs, at least 2 elements per row.
    if (isa() == Isa::kAvx2 && (uint64_t)kHalf * g.lda + g.k < (1ull << 31) && (g.a_type != CUDA_R_16BF || g.k >= 2))
      return pack_rows_avx2(g, A, i0, half);
    return pack_generic(g, A, i0, 0, half);
  }
  pack_columns(g, A, i0, half);
}

struct Batch {
  const Gemm* g;
  uintptr_t A, C;
  const float* const* b_columns;  // op(B)(., j) as f32, k values each
  int tiles_m, tiles_n;
};

void store(const Gemm& g, uintptr_t C, int i0, int j, const float* acc) {
  int rows = g.m - i0 < kRows ? g.m - i0 : kRows;
  for (int r = 0; r < rows; r++) {
    size_t at = (size_t)j * g.ldc + i0 + r;
    float v = g.alpha * acc[r];
    if (g.beta != 0.0f) {
      float old = g.c_type == CUDA_R_16BF ? bf16_to_float(((const uint16_t*)C)[at]) : ((const float*)C)[at];
      v = v + g.beta * old;
    }
    if (g.c_type == CUDA_R_16BF) {
      ((uint16_t*)C)[at] = float_to_bf16(v);
    } else {
      ((float*)C)[at] = v;
    }
  }
}

void tile(void* data, size_t task) {
  const Batch& b = *(const Batch*)data;
  const Gemm& g = *b.g;
  int ti = (int)(task % b.tiles_m), tj = (int)(task / b.tiles_m);
  int i_end = (ti + 1) * kTileRows < g.m ? (ti + 1) * kTileRows : g.m;
  int j_begin = tj * kTileCols, j_end = j_begin + kTileCols < g.n ? j_begin + kTileCols : g.n;
  thread_local std::vector<float> panel;
  if (panel.size() < (size_t)g.k * kRows) panel.resize((size_t)g.k * kRows);
  for (int i0 = ti * kTileRows; i0 < i_end; i0 += kRows) {
    pack_half(g, b.A, i0, panel.data());
    if (i0 + kHalf < g.m) pack_half(g, b.A, i0 + kHalf, panel.data() + kHalf);
    for (int j = j_begin; j < j_end;) {
      float out[4 * kRows];
      const float* const* cols = b.b_columns + j;
      int left = j_end - j, count;
      if (isa() == Isa::kAvx512) {
        count = left < 4 ? left : 4;
        switch (count) {
          case 1: multiply_avx512<1>(panel.data(), g.k, cols, out); break;
          case 2: multiply_avx512<2>(panel.data(), g.k, cols, out); break;
          case 3: multiply_avx512<3>(panel.data(), g.k, cols, out); break;
          default: multiply_avx512<4>(panel.data(), g.k, cols, out); break;
        }
      } else if (isa() == Isa::kAvx2) {
        count = left < 2 ? left : 2;
        if (count == 1) multiply_avx2<1>(panel.data(), g.k, cols, out);
        else multiply_avx2<2>(panel.data(), g.k, cols, out);
      } else {
        count = 1;
        multiply_sse(panel.data(), g.k, cols, out);
      }
      for (int c = 0; c < count; c++) store(g, b.C, i0, j + c, out + c * kRows);
      j += count;
    }
  }
}

// A split-K GEMM, as a cuBLASLt algorithm with CUBLASLT_ALGO_CONFIG_SPLITK_NUM > 1 computes it: k
// cut into `splits` consecutive parts of ceil(k / splits), each summed in l order, then the parts
// added in order. The rounding differs from the one-part sum: this is what makes a GEMM whose
// algorithm (and split) depends on n give a row different bits in different batches. Scalar: for
// tests, not for speed.
void run_split(const Gemm& g, uintptr_t A, uintptr_t B, uintptr_t C) {
  int part = (g.k + g.splits - 1) / g.splits;
  for (int j = 0; j < g.n; j++) {
    float acc[kRows];
    for (int i0 = 0; i0 < g.m; i0 += kRows) {
      int rows = g.m - i0 < kRows ? g.m - i0 : kRows;
      for (int r = 0; r < rows; r++) {
        float total = 0.0f;
        for (int l0 = 0; l0 < g.k; l0 += part) {
          float sum = 0.0f;
          for (int l = l0; l < l0 + part && l < g.k; l++) {
            size_t at = g.tb ? (size_t)l * g.ldb + j : (size_t)j * g.ldb + l;
            float b = g.b_type == CUDA_R_16BF ? bf16_to_float(((const uint16_t*)B)[at]) : ((const float*)B)[at];
            sum += element(g, A, i0 + r, l) * b;
          }
          total = l0 == 0 ? sum : total + sum;
        }
        acc[r] = total;
      }
      store(g, C, i0, j, acc);
    }
  }
}

CUresult run_gemm(void* data, char* detail, size_t detail_bytes) {
  const Gemm& g = *(const Gemm*)data;
  struct Matrix {
    const char* name;
    uintptr_t p;
    uint64_t bytes;
  } matrices[3] = {
      {"A", g.A, extent(g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda, g.stride_a, g.batch, g.a_type)},
      {"B", g.B, extent(g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb, g.stride_b, g.batch, g.b_type)},
      {"C", g.C, extent(g.m, g.n, g.ldc, g.stride_c, g.batch, g.c_type)},
  };
  for (const Matrix& x : matrices) {
    if (x.bytes == 0 || (x.name[0] != 'C' && g.k == 0)) continue;
    char why[512];
    if (!cuda_emulator_check_range(x.p, x.bytes, g.device, why, sizeof why)) {
      snprintf(detail, detail_bytes, "matrix %s (%llu bytes from 0x%llx): %s", x.name, (unsigned long long)x.bytes, (unsigned long long)x.p,
               why);
      return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
  }
  std::vector<float> converted;
  std::vector<const float*> columns(g.n);
  for (int batch = 0; batch < g.batch; batch++) {
    uintptr_t A = g.A + (uintptr_t)(batch * g.stride_a * (long long)element_bytes(g.a_type));
    uintptr_t B = g.B + (uintptr_t)(batch * g.stride_b * (long long)element_bytes(g.b_type));
    uintptr_t C = g.C + (uintptr_t)(batch * g.stride_c * (long long)element_bytes(g.c_type));
    if (g.splits > 1) {
      run_split(g, A, B, C);
      continue;
    }
    // op(B) by column, as f32: used in place when it already is.
    if (g.b_type == CUDA_R_32F && !g.tb) {
      for (int j = 0; j < g.n; j++) columns[j] = (const float*)B + (size_t)j * g.ldb;
    } else {
      converted.resize((size_t)g.n * g.k);
      for (int j = 0; j < g.n; j++) {
        float* out = converted.data() + (size_t)j * g.k;
        for (int l = 0; l < g.k; l++) {
          size_t at = g.tb ? (size_t)l * g.ldb + j : (size_t)j * g.ldb + l;
          out[l] = g.b_type == CUDA_R_16BF ? bf16_to_float(((const uint16_t*)B)[at]) : ((const float*)B)[at];
        }
        columns[j] = out;
      }
    }
    Batch b{&g, A, C, columns.data(), (g.m + kTileRows - 1) / kTileRows, (g.n + kTileCols - 1) / kTileCols};
    cuda_emulator_parallel_for((size_t)b.tiles_m * b.tiles_n, tile, &b);
  }
  return CUDA_SUCCESS;
}

const char* op_name(int op) { return op == CUBLAS_OP_N ? "N" : op == CUBLAS_OP_T ? "T" : op == CUBLAS_OP_C ? "C" : "?"; }

// Checks a GEMM's arguments as cuBLAS does and queues it on `stream` of `device`'s context.
cublasStatus_t enqueue_gemm(const char* call, int device, cudaStream_t stream, cublasOperation_t transa, cublasOperation_t transb, int m,
                            int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda, long long strideA, const void* B,
                            cudaDataType Btype, int ldb, long long strideB, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            long long strideC, int batch, cublasComputeType_t computeType, int splits) {
  char args[256];
  snprintf(args, sizeof args, "%s(transa=%d transb=%d m=%d n=%d k=%d lda=%d ldb=%d ldc=%d batch=%d)", call, (int)transa, (int)transb, m, n,
           k, lda, ldb, ldc, batch);
  auto invalid = [&](const char* why) {
    cuda_emulator_report("%s: %s", args, why);
    return CUBLAS_STATUS_INVALID_VALUE;
  };
  auto valid_op = [](int op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; };
  if (!valid_op(transa) || !valid_op(transb)) return invalid("transa and transb must be CUBLAS_OP_N, _T or _C");
  if (m < 0 || n < 0 || k < 0 || batch < 0) return invalid("negative size");
  bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  auto at_least = [](int v) { return v > 1 ? v : 1; };
  if (lda < at_least(ta ? k : m)) return invalid(ta ? "lda < max(1, k) with transa != N" : "lda < max(1, m) with transa == N");
  if (ldb < at_least(tb ? n : k)) return invalid(tb ? "ldb < max(1, n) with transb != N" : "ldb < max(1, k) with transb == N");
  if (ldc < at_least(m)) return invalid("ldc < max(1, m)");
  if (alpha == nullptr || beta == nullptr) return invalid("alpha or beta is null");
  if (splits < 1) return invalid("a split-K count below 1");
  bool types_ok = (Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F) ||
                  (Atype == CUDA_R_16BF && Btype == CUDA_R_16BF && (Ctype == CUDA_R_16BF || Ctype == CUDA_R_32F));
  if (!types_ok) {
    cuda_emulator_report("%s: types A=%s B=%s C=%s (%d, %d, %d): the emulator does f32 x f32 -> f32, bf16 x bf16 -> bf16 and bf16 x bf16 -> f32", args,
           type_name(Atype), type_name(Btype), type_name(Ctype), (int)Atype, (int)Btype, (int)Ctype);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_PEDANTIC) {
    cuda_emulator_report("%s: compute type %d: the emulator does CUBLAS_COMPUTE_32F and CUBLAS_COMPUTE_32F_PEDANTIC", args, (int)computeType);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  Gemm* g = new Gemm;
  g->ta = ta;
  g->tb = tb;
  g->m = m;
  g->n = n;
  g->k = k;
  g->lda = lda;
  g->ldb = ldb;
  g->ldc = ldc;
  g->batch = batch;
  g->stride_a = strideA;
  g->stride_b = strideB;
  g->stride_c = strideC;
  g->a_type = Atype;
  g->b_type = Btype;
  g->c_type = Ctype;
  memcpy(&g->alpha, alpha, sizeof(float));
  memcpy(&g->beta, beta, sizeof(float));
  g->A = (uintptr_t)A;
  g->B = (uintptr_t)B;
  g->C = (uintptr_t)C;
  g->device = device;
  g->splits = splits;
  char stat[160];
  snprintf(stat, sizeof stat, "%s %s%s%s %s,%s m=%d k=%d", call, type_name(Atype), Ctype != Atype ? "->" : "",
           Ctype != Atype ? type_name(Ctype) : "", op_name(transa), op_name(transb), m, k);
  CUresult rc = cuda_emulator_enqueue(stream, args, stat, run_gemm, g, [](void* p) { delete (Gemm*)p; });
  return rc == CUDA_SUCCESS ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

cublasStatus_t gemm(const char* call, cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                    const void* alpha, const void* A, cudaDataType Atype, int lda, long long strideA, const void* B, cudaDataType Btype,
                    int ldb, long long strideB, const void* beta, void* C, cudaDataType Ctype, int ldc, long long strideC, int batch,
                    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  Handle* h = handle_of(handle);
  if (h == nullptr) {
    cuda_emulator_report("%s: %p is not a cuBLAS handle (cublasCreate)", call, (void*)handle);
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  if (!(algo == CUBLAS_GEMM_DEFAULT || (algo >= CUBLAS_GEMM_ALGO0 && algo <= CUBLAS_GEMM_ALGO23) ||
        (algo >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP))) {
    cuda_emulator_report("%s: %d is not a cublasGemmAlgo_t", call, (int)algo);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return enqueue_gemm(call, h->device, h->stream, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C,
                      Ctype, ldc, strideC, batch, computeType, 1);
}

}  // namespace

CUBLAS_EMU_EXPORT cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  int device = cuda_emulator_current_device("cublasCreate_v2");
  if (device < 0) return CUBLAS_STATUS_NOT_INITIALIZED;
  Handle* h = new Handle;
  h->device = device;
  std::lock_guard<std::mutex> lock(handles_mutex);
  handles.insert(h);
  *handle = (cublasHandle_t)h;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  Handle* h = handle_of(handle);
  if (h == nullptr) {
    cuda_emulator_report("cublasDestroy_v2: %p is not a cuBLAS handle", (void*)handle);
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  cuCtxSynchronize();  // as cuBLAS does
  std::lock_guard<std::mutex> lock(handles_mutex);
  handles.erase(h);
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasGetVersion_v2(cublasHandle_t, int* version) {
  if (version == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *version = 130000;  // cuBLAS 13.0.0: major * 10000 + minor * 100 + patch
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  Handle* h = handle_of(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = streamId;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* streamId) {
  Handle* h = handle_of(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (streamId == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *streamId = h->stream;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  Handle* h = handle_of(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (base < CUBLAS_DEFAULT_MATH || base > CUBLAS_TF32_TENSOR_OP_MATH) {
    cuda_emulator_report("cublasSetMathMode: %d is not a cublasMath_t", (int)mode);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  h->math = mode;  // accepted; the emulator always computes in full f32
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  Handle* h = handle_of(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = h->math;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes) {
  Handle* h = handle_of(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (workspaceSizeInBytes > 0) {
    char why[512];
    if ((uintptr_t)workspace % 256 != 0) {
      cuda_emulator_report("cublasSetWorkspace_v2: the workspace %p is not 256-byte aligned", workspace);
      return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!cuda_emulator_check_range((CUdeviceptr)workspace, workspaceSizeInBytes, h->device, why, sizeof why)) {
      cuda_emulator_report("cublasSetWorkspace_v2: the workspace of %zu bytes: %s", workspaceSizeInBytes, why);
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  h->workspace = workspace;  // unused: the emulator needs no workspace
  h->workspace_bytes = workspaceSizeInBytes;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLAS_EMU_EXPORT const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
#define CUBLAS_EMU_NAME(name, value, text) \
  case name: return #name;
    CUDA_EMULATOR_CUBLAS_STATUSES(CUBLAS_EMU_NAME)
#undef CUBLAS_EMU_NAME
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

CUBLAS_EMU_EXPORT const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
#define CUBLAS_EMU_TEXT(name, value, text) \
  case name: return text;
    CUDA_EMULATOR_CUBLAS_STATUSES(CUBLAS_EMU_TEXT)
#undef CUBLAS_EMU_TEXT
    default: return "unknown cuBLAS status";
  }
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                              int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                                              cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                                              cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  return gemm("cublasGemmEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1,
              computeType, algo);
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                                            int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype,
                                                            int lda, long long int strideA, const void* B, cudaDataType Btype, int ldb,
                                                            long long int strideB, const void* beta, void* C, cudaDataType Ctype, int ldc,
                                                            long long int strideC, int batchCount, cublasComputeType_t computeType,
                                                            cublasGemmAlgo_t algo) {
  return gemm("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C,
              Ctype, ldc, strideC, batchCount, computeType, algo);
}

CUBLAS_EMU_EXPORT cublasStatus_t cublasEmulatorEnqueueGemm(const char* call, int device, cudaStream_t stream, cublasOperation_t transa,
                                                           cublasOperation_t transb, int m, int n, int k, const void* alpha, const void* A,
                                                           cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb,
                                                           const void* beta, void* C, cudaDataType Ctype, int ldc,
                                                           cublasComputeType_t computeType, int splits) {
  return enqueue_gemm(call, device, stream, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1,
                      computeType, splits);
}

CUBLAS_EMU_EXPORT int cublasEmulatorLimitIsa(int level) {
  Isa wanted = level >= 2 ? Isa::kAvx512 : level == 1 ? Isa::kAvx2 : Isa::kGeneric;
  Isa best = best_isa();
  isa_in_use.store((int)wanted < (int)best ? wanted : best);
  return (int)isa();
}

CUBLAS_EMU_EXPORT int cublasEmulatorLiveHandles(void) {
  std::lock_guard<std::mutex> lock(handles_mutex);
  return (int)handles.size();
}
