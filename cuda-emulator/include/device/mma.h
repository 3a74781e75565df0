// Stand-in for CUDA's <mma.h> on the emulated device: nvcuda::wmma's warp matrix operations
// (fragment, fill_fragment, load_matrix_sync, store_matrix_sync, mma_sync) for any M, N, K and
// element type, so a kernel written with wmma runs on the CPU unchanged.
//
// How a GPU spreads a fragment over a warp's lanes is not specified (CUDA documents x[] only as
// num_elements values per lane, in an unknown order). Here every lane holds the whole tile, row by
// row: num_elements is the tile's size, and element-wise code over x[] works as on a GPU. Each
// call is warp-collective as on a GPU (__syncwarp before and after). mma_sync adds each product
// to C in k order, in f32; a GPU's tensor cores add a k-step's products in their own order, so
// results are close to a GPU's, not bit-identical (the emulator proves logic, not bits).
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct fragment_shape;
template <int M, int N, int K>
struct fragment_shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct fragment_shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct fragment_shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
 public:
  typedef T element_type;
  typedef T storage_element_type;
  static constexpr int rows = fragment_shape<Use, M, N, K>::rows;
  static constexpr int cols = fragment_shape<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  T x[num_elements];  // the whole tile, row by row, in every lane
};

template <typename Use, int M, int N, int K, typename T, typename Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const T& value) {
  __syncwarp();
  for (int i = 0; i < f.num_elements; i++) f.x[i] = value;
  __syncwarp();
}

// A tile of an operand from memory with leading dimension ldm (elements), in the fragment's layout.
template <typename Layout>
struct is_row_major {
  static constexpr bool value = false;
};
template <>
struct is_row_major<row_major> {
  static constexpr bool value = true;
};

// CUDA requires a 256-bit aligned pointer and a leading dimension of a multiple of 16 bytes; a GPU
// gives undefined results without them, so here the launch fails, naming the call.
template <typename T>
inline void check_operand(const T* p, unsigned ldm, const char* call) {
  if ((uintptr_t)p % 32 != 0) ::cuda_emu::trap(call);
  if (ldm * sizeof(T) % 16 != 0) ::cuda_emu::trap(call);
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  check_operand(p, ldm, "wmma::load_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 16 bytes");
  __syncwarp();
  constexpr bool row = is_row_major<Layout>::value;
  for (int r = 0; r < f.rows; r++) {
    for (int c = 0; c < f.cols; c++) f.x[r * f.cols + c] = row ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
  }
  __syncwarp();
}

template <int M, int N, int K, typename T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
  check_operand(p, ldm, "wmma::load_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 16 bytes");
  __syncwarp();
  for (int r = 0; r < M; r++) {
    for (int c = 0; c < N; c++) f.x[r * N + c] = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
  }
  __syncwarp();
}

template <int M, int N, int K, typename T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  check_operand(p, ldm, "wmma::store_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 16 bytes");
  __syncwarp();
  for (int r = 0; r < M; r++) {
    for (int c = 0; c < N; c++) {
      T& at = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
      at = f.x[r * N + c];
    }
  }
  __syncwarp();
}

// D = A * B + C: each element is C's plus its products in k order, accumulated in f32. Lane 0
// computes it for the warp (every lane holds the same tiles) and the other lanes copy its result,
// so a warp does one product, not 32.
template <int M, int N, int K, typename T, typename LayoutA, typename LayoutB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LayoutA>& a,
                     const fragment<matrix_b, M, N, K, T, LayoutB>& b, const fragment<accumulator, M, N, K, float>& c) {
  static thread_local float warp_result[32][M * N];  // a block's warps run on one OS thread
  int linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  float* result = warp_result[linear / 32];
  __syncwarp();
  if (linear % 32 == 0) {
    for (int i = 0; i < M; i++) {
      for (int j = 0; j < N; j++) {
        float sum = c.x[i * N + j];
        for (int k = 0; k < K; k++) sum += (float)a.x[i * K + k] * (float)b.x[k * N + j];
        result[i * N + j] = sum;
      }
    }
  }
  __syncwarp();
  for (int i = 0; i < M * N; i++) d.x[i] = result[i];
  __syncwarp();
}

}  // namespace wmma
}  // namespace nvcuda
