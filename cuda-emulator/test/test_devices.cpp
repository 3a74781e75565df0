// Several emulated devices (CUDA_EMU_DEVICES=2): each has its own primary context and memory;
// memory of one device is refused by calls and kernels on the other's context.
#include <thread>

#include "kernels.h"

static const int devices_set = setenv("CUDA_EMU_DEVICES", "2", 1);

TEST(two_devices_with_their_own_contexts_and_memory) {
  CHECK_EQ(devices_set, 0);
  CHECK_CU(cuInit(0), CUDA_SUCCESS);
  int count = 0;
  CHECK_CU(cuDeviceGetCount(&count), CUDA_SUCCESS);
  CHECK_EQ(count, 2);
  CUcontext c0, c1;
  CHECK_CU(cuDevicePrimaryCtxRetain(&c0, 0), CUDA_SUCCESS);
  CHECK_CU(cuDevicePrimaryCtxRetain(&c1, 1), CUDA_SUCCESS);
  CHECK(c0 != c1);
  CHECK_CU(cuCtxSetCurrent(c1), CUDA_SUCCESS);
  CUdeviceptr on1 = device_alloc(1 << 20);
  CHECK_CU(cuCtxSetCurrent(c0), CUDA_SUCCESS);
  CUdeviceptr on0 = device_alloc(4096);
  size_t free0, total;
  CHECK_CU(cuMemGetInfo_v2(&free0, &total), CUDA_SUCCESS);
  CHECK_EQ(total - free0, (size_t)4096);
  CHECK_EQ(cuEmulatorLiveObjects(1, "allocated_bytes"), 1 << 20);
  CHECK_EQ(cuEmulatorLiveObjects(0, "allocated_bytes"), 4096);
  std::vector<char> host(64);
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyDtoH_v2(host.data(), on1, 64), CUDA_ERROR_INVALID_VALUE);
    CHECK_CONTAINS(err.text(), "is in the 1048576-byte device 1 allocation at");
    CHECK_CONTAINS(err.text(), "but the call runs on device 0's context");
    CHECK_CU(cuMemFree_v2(on1), CUDA_ERROR_INVALID_VALUE);
    CHECK_CU(cuMemcpyDtoD_v2(on0, on1, 64), CUDA_ERROR_INVALID_VALUE);
  }
  CUmodule m = load_test_kernels();
  {
    harness::Stderr err;
    CHECK_CU(launch(kernel(m, "emu_test_fill"), 1, 16, 0, nullptr, on1, 1.0f, 16), CUDA_SUCCESS);
    CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    CHECK_CONTAINS(err.text(), "pointer parameter 0");
    CHECK_CONTAINS(err.text(), "device 1");
  }
  // Device 0's context is now unusable; device 1's is not.
  CHECK_CU(cuCtxSetCurrent(c1), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoH_v2(host.data(), on1, 64), CUDA_SUCCESS);
  CUdevice dev = -1;
  CHECK_CU(cuCtxGetDevice(&dev), CUDA_SUCCESS);
  CHECK_EQ(dev, 1);
  // Each thread its own current context.
  int seen = -1;
  std::thread([&] {
    cuCtxSetCurrent(c0);
    CUdevice d;
    cuCtxGetDevice(&d);
    seen = d;
  }).join();
  CHECK_EQ(seen, 0);
  CHECK_CU(cuMemFree_v2(on1), CUDA_SUCCESS);
  CHECK_CU(cuCtxSetCurrent(nullptr), CUDA_SUCCESS);
  {
    harness::Stderr err;  // device 0 is released with its leaks (the sticky error kept them)
    CHECK_CU(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
  }
  CHECK_CU(cuDevicePrimaryCtxRelease_v2(1), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "allocations"), 0);
  CHECK_EQ(cuEmulatorLiveObjects(1, "allocations"), 0);
}
