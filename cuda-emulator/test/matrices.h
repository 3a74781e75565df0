// Matrices in device memory for the cuBLAS and cuBLASLt tests: random values exactly
// representable in their type, with the host copy the references compute from.
#pragma once

#include <cmath>

#include "cublas_emulator.h"
#include "kernels.h"

inline uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
inline float from_bf16(uint16_t h) { return float_of((uint32_t)h << 16); }

// A matrix in device memory of either type, with its host copy as f32 (values exactly
// representable in the type).
struct Matrix {
  int rows, cols, ld;
  cudaDataType type;
  std::vector<float> values;  // column-major, ld x cols
  CUdeviceptr device = 0;
  size_t element() const { return type == CUDA_R_16BF ? 2 : 4; }
  // Random values (multiples of 1/256 in [-4, 4]), or all NaN.
  Matrix(int r, int c, int leading, cudaDataType t, uint32_t seed, bool nan = false) : rows(r), cols(c), ld(leading), type(t) {
    values.assign((size_t)ld * (cols ? cols : 1), NAN);
    for (int j = 0; j < cols && !nan; j++)
      for (int i = 0; i < rows; i++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)((int)(seed >> 9) % 2001 - 1000) / 256.0f;
        if (type == CUDA_R_16BF) v = from_bf16(to_bf16(v));
        values[(size_t)j * ld + i] = v;
      }
    device = device_alloc(values.size() * element());
    upload();
  }
  void upload() {
    if (type == CUDA_R_16BF) {
      std::vector<uint16_t> bits(values.size());
      for (size_t i = 0; i < values.size(); i++) bits[i] = to_bf16(values[i]);
      CHECK_CU(cuMemcpyHtoD_v2(device, bits.data(), bits.size() * 2), CUDA_SUCCESS);
    } else {
      CHECK_CU(cuMemcpyHtoD_v2(device, values.data(), values.size() * 4), CUDA_SUCCESS);
    }
  }
  std::vector<float> download() const {
    std::vector<float> out(values.size());
    if (type == CUDA_R_16BF) {
      std::vector<uint16_t> bits = read_back<uint16_t>(device, values.size());
      for (size_t i = 0; i < bits.size(); i++) out[i] = from_bf16(bits[i]);
    } else {
      out = read_back<float>(device, values.size());
    }
    return out;
  }
  ~Matrix() { cuMemFree_v2(device); }
};

inline bool same_bits(float a, float b) { return memcmp(&a, &b, 4) == 0; }
