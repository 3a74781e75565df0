// Device and pinned host memory: accounting, copies and memsets in and out of range, use after
// free, double free, poison, and the guard pages and canaries the kernel tests rely on.
#include <cmath>

#include "kernels.h"

TEST(alloc_copy_free_and_accounting) {
  Device device;
  size_t free0, total;
  CHECK_CU(cuMemGetInfo_v2(&free0, &total), CUDA_SUCCESS);
  CHECK_EQ(total, (size_t)16 << 30);  // CUDA_EMU_TOTAL_MEM's default
  CHECK_EQ(free0, total);
  CUdeviceptr p = device_alloc(1000);
  CHECK_EQ(p % 256, 0ull);
  size_t free1;
  CHECK_CU(cuMemGetInfo_v2(&free1, &total), CUDA_SUCCESS);
  CHECK_EQ(free0 - free1, (size_t)1000);
  CHECK_EQ(cuEmulatorLiveObjects(0, "allocations"), 1);
  CHECK_EQ(cuEmulatorLiveObjects(0, "allocated_bytes"), 1000);
  std::vector<unsigned char> in(1000), out(1000);
  for (int i = 0; i < 1000; i++) in[i] = (unsigned char)(i * 7);
  CHECK_CU(cuMemcpyHtoD_v2(p, in.data(), 1000), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoH_v2(out.data(), p, 1000), CUDA_SUCCESS);
  CHECK(in == out);
  CUdeviceptr base;
  size_t size;
  CHECK_CU(cuMemGetAddressRange_v2(&base, &size, p + 10), CUDA_SUCCESS);
  CHECK_EQ(base, p);
  CHECK_EQ(size, (size_t)1000);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "allocations"), 0);
  CHECK_EQ(cuEmulatorLiveObjects(0, "allocated_bytes"), 0);
}

TEST(new_memory_is_poisoned_with_nan) {
  Device device;
  CUdeviceptr p = device_alloc(64);
  for (float f : read_back<float>(p, 16)) CHECK(std::isnan(f));
  for (uint32_t u : read_back<uint32_t>(p, 16)) CHECK_EQ(u, 0xffffffffu);
  void* host = nullptr;
  CHECK_CU(cuMemAllocHost_v2(&host, 64), CUDA_SUCCESS);
  for (int i = 0; i < 64; i++) CHECK_EQ(((unsigned char*)host)[i], 0xff);
  CHECK_CU(cuMemFreeHost(host), CUDA_SUCCESS);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
}

TEST(out_of_memory_beyond_the_emulated_total) {
  Device device;
  CUdeviceptr p;
  harness::Stderr err;
  CHECK_CU(cuMemAlloc_v2(&p, (size_t)17 << 30), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_CONTAINS(err.text(), "out of memory");
  CHECK_CU(cuMemAlloc_v2(&p, 0), CUDA_ERROR_INVALID_VALUE);
}

TEST(copies_outside_an_allocation_are_refused) {
  Device device;
  CUdeviceptr p = device_alloc(100);
  std::vector<char> host(200);
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyHtoD_v2(p, host.data(), 101), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "cuMemcpyHtoD: destination of 101 bytes: the 101 bytes from");
  }
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyDtoH_v2(host.data(), p + 50, 60), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "run 10 bytes past the end of the 100-byte device 0 allocation");
  }
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyHtoD_v2(p - 16, host.data(), 8), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "16 bytes before the start of the 100-byte device 0 allocation");
  }
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyHtoD_v2((CUdeviceptr)host.data(), host.data(), 8), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "not memory of the emulated device");
  }
  CUdeviceptr q = device_alloc(100);
  CHECK_CU(cuMemcpyDtoD_v2(q, p, 100), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoD_v2(q, p, 101), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemcpyHtoD_v2(p, host.data(), 0), CUDA_SUCCESS);  // nothing to copy
  cuMemFree_v2(p);
  cuMemFree_v2(q);
}

TEST(use_after_free_and_double_free) {
  Device device;
  CUdeviceptr p = device_alloc(4096);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
  std::vector<char> host(16);
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyDtoH_v2(host.data(), p, 16), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "inside the freed 4096-byte device 0 allocation");
  }
  {
    harness::Stderr err;
    CHECK_CU(cuMemFree_v2(p), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "already freed (double free");
  }
  // Freed addresses are never handed out again.
  CUdeviceptr q = device_alloc(4096);
  CHECK(q != p);
  {
    harness::Stderr err;
    CHECK_CU(cuMemFree_v2(q + 8), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "not the start of an allocation");
  }
  void* host_buffer = nullptr;
  CHECK_CU(cuMemAllocHost_v2(&host_buffer, 64), CUDA_SUCCESS);
  CHECK_CU(cuMemFree_v2((CUdeviceptr)host_buffer), CUDA_ERROR_INVALID_VALUE);  // pinned memory: cuMemFreeHost
  CHECK_CU(cuMemFreeHost((void*)q), CUDA_ERROR_INVALID_VALUE);                 // device memory: cuMemFree
  CHECK_CU(cuMemFreeHost(host_buffer), CUDA_SUCCESS);
  CHECK_CU(cuMemFreeHost(host_buffer), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemFree_v2(q), CUDA_SUCCESS);
}

TEST(the_slack_around_an_allocation_holds_canaries) {
  Device device;
  CUdeviceptr p = device_alloc(3000);
  // The allocation ends at most 255 bytes before its guard page (3000 rounds up to 3072); the
  // bytes between hold the canary pattern (0x7fc0ffff, a NaN), as do the bytes before its start.
  CHECK_EQ((p + 3072) % 4096, 0ull);
  uint32_t word;
  memcpy(&word, (const void*)(p + 3000), 4);
  CHECK_EQ(word, 0x7fc0ffffu);
  memcpy(&word, (const void*)(p - 4), 4);
  CHECK_EQ(word, 0x7fc0ffffu);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
}

TEST(memsets_check_range_and_alignment) {
  Device device;
  CUdeviceptr p = device_alloc(64);
  CHECK_CU(cuMemsetD8_v2(p, 0xab, 64), CUDA_SUCCESS);
  for (unsigned char c : read_back<unsigned char>(p, 64)) CHECK_EQ(c, 0xab);
  CHECK_CU(cuMemsetD32_v2(p, 0x12345678u, 16), CUDA_SUCCESS);
  for (uint32_t u : read_back<uint32_t>(p, 16)) CHECK_EQ(u, 0x12345678u);
  CHECK_CU(cuMemsetD16_v2(p + 2, 0xbeef, 31), CUDA_SUCCESS);
  CHECK_EQ(read_back<uint16_t>(p, 32)[31], (uint16_t)0xbeef);
  CHECK_CU(cuMemsetD32_v2(p, 0, 17), CUDA_ERROR_INVALID_VALUE);   // 68 bytes
  CHECK_CU(cuMemsetD32_v2(p + 2, 0, 1), CUDA_ERROR_INVALID_VALUE); // misaligned
  CHECK_CU(cuMemsetD8_v2(p + 64, 0, 1), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
}

TEST(pinned_host_ranges_are_checked) {
  Device device;
  CUdeviceptr p = device_alloc(256);
  void* host = nullptr;
  CHECK_CU(cuMemAllocHost_v2(&host, 100), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "host_allocations"), 1);
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  {
    harness::Stderr err;
    // Starts in the pinned buffer, runs past its end: the copy would read unowned memory.
    CHECK_CU(cuMemcpyHtoDAsync_v2(p, (char*)host + 50, 100, s), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "run past the end of the pinned buffer");
  }
  CHECK_CU(cuMemcpyHtoDAsync_v2(p, host, 100, s), CUDA_SUCCESS);
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyHtoDAsync_v2(p, nullptr, 8, s), CUDA_ERROR_INVALID_VALUE);
  }
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  CHECK_CU(cuStreamDestroy_v2(s), CUDA_SUCCESS);
  CHECK_CU(cuMemFreeHost(host), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "host_allocations"), 0);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
}
