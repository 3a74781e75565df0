// Helpers for tests that launch the test kernels (test_kernels.cu).
#pragma once

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness.h"

// The test kernels' names, as the build found them (kernels.inc of the test_kernels set).
inline const std::vector<std::string>& test_kernel_names() {
  static const std::vector<std::string> names = {
#define CUDA_EMU_KERNEL(name) #name,
#include "kernels.inc"
#undef CUDA_EMU_KERNEL
  };
  return names;
}

// A minimal fatbin image (the header the emulator reads, then the given names as strings): what
// the emulator needs to bind a module to a kernel set, without nvcc.
inline std::vector<unsigned char> synthetic_fatbin(const std::vector<std::string>& names) {
  std::string payload = "synthetic test image";
  for (const std::string& n : names) payload += '\0' + n;
  payload += '\0';
  std::vector<unsigned char> image(16 + payload.size());
  uint32_t magic = 0xba55ed50u;
  uint16_t version = 1, header = 16;
  uint64_t size = payload.size();
  memcpy(&image[0], &magic, 4);
  memcpy(&image[4], &version, 2);
  memcpy(&image[6], &header, 2);
  memcpy(&image[8], &size, 8);
  memcpy(&image[16], payload.data(), payload.size());
  return image;
}

// OUT/test-kernels.fatbin, when nvcc built it; empty otherwise.
inline std::vector<unsigned char> nvcc_fatbin() {
  std::ifstream in(harness::out_dir() + "/test-kernels.fatbin", std::ios::binary);
  if (!in) return {};
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The test kernels' module in the current context: nvcc's fatbin if built, else a synthetic one.
inline CUmodule load_test_kernels() {
  static std::vector<unsigned char> image;
  if (image.empty()) image = nvcc_fatbin();
  if (image.empty()) image = synthetic_fatbin(test_kernel_names());
  CUmodule module = nullptr;
  CHECK_CU(cuModuleLoadData(&module, image.data()), CUDA_SUCCESS);
  return module;
}

inline CUfunction kernel(CUmodule module, const char* name) {
  CUfunction f = nullptr;
  CHECK_CU(cuModuleGetFunction(&f, module, name), CUDA_SUCCESS);
  return f;
}

// Launches f on a 1-D grid with the given arguments (their types must be the kernel's).
template <typename... A>
CUresult launch(CUfunction f, unsigned grid, unsigned block, unsigned shared, CUstream stream, A... args) {
  void* params[] = {(void*)&args..., nullptr};
  return cuLaunchKernel(f, grid, 1, 1, block, 1, 1, shared, stream, sizeof...(A) ? params : nullptr, nullptr);
}

inline CUdeviceptr device_alloc(size_t bytes) {
  CUdeviceptr p = 0;
  CHECK_CU(cuMemAlloc_v2(&p, bytes), CUDA_SUCCESS);
  return p;
}

template <typename T> std::vector<T> read_back(CUdeviceptr p, size_t count) {
  std::vector<T> v(count);
  CHECK_CU(cuMemcpyDtoH_v2(v.data(), p, count * sizeof(T)), CUDA_SUCCESS);
  return v;
}

inline float float_of(uint32_t bits) {
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
