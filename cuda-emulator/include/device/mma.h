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

template <typename Use, int M, int N, int K, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  __syncwarp();
  constexpr bool row = is_row_major<Layout>::value;
  for (int r = 0; r < f.rows; r++) {
    for (int c = 0; c < f.cols; c++) f.x[r * f.cols + c] = row ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
  }
  __syncwarp();
}

template <int M, int N, int K, typename T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
  __syncwarp();
  for (int r = 0; r < M; r++) {
    for (int c = 0; c < N; c++) f.x[r * N + c] = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
  }
  __syncwarp();
}

template <int M, int N, int K, typename T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  __syncwarp();
  for (int r = 0; r < M; r++) {
    for (int c = 0; c < N; c++) {
      T& at = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
      at = f.x[r * N + c];
    }
  }
  __syncwarp();
}

// D = A * B + C: each element is C's plus its products in k order, accumulated in f32.
template <int M, int N, int K, typename T, typename LayoutA, typename LayoutB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LayoutA>& a,
                     const fragment<matrix_b, M, N, K, T, LayoutB>& b, const fragment<accumulator, M, N, K, float>& c) {
  __syncwarp();
  float result[M * N];
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      float sum = c.x[i * N + j];
      for (int k = 0; k < K; k++) sum += (float)a.x[i * K + k] * (float)b.x[k * N + j];
      result[i * N + j] = sum;
    }
  }
  for (int i = 0; i < M * N; i++) d.x[i] = result[i];
  __syncwarp();
}

}  // namespace wmma
}  // namespace nvcuda
