// Devices and contexts: the device's identity, the current context per OS thread, primary
// context reference counting (release to 0 frees everything and reports it), sticky errors.
#include <thread>

#include "kernels.h"

TEST(the_device_says_it_is_an_emulator) {
  CHECK_CU(cuInit(0), CUDA_SUCCESS);
  int count = 0, version = 0;
  CHECK_CU(cuDeviceGetCount(&count), CUDA_SUCCESS);
  CHECK_EQ(count, 1);
  CHECK_CU(cuDriverGetVersion(&version), CUDA_SUCCESS);
  CHECK_EQ(version, 13000);
  char name[128];
  CHECK_CU(cuDeviceGetName(name, sizeof name, 0), CUDA_SUCCESS);
  CHECK_EQ(std::string(name), std::string("beam-llama CUDA emulator (sm_90 on the CPU)"));
  int major = 0, minor = -1, sms = 0, optin = 0;
  CHECK_CU(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0), CUDA_SUCCESS);
  CHECK_CU(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0), CUDA_SUCCESS);
  CHECK_CU(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0), CUDA_SUCCESS);
  CHECK_CU(cuDeviceGetAttribute(&optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 0), CUDA_SUCCESS);
  CHECK_EQ(major * 10 + minor, 90);
  CHECK_EQ(sms, 132);
  CHECK_EQ(optin, 227 * 1024);
  CHECK_CU(cuDeviceGetAttribute(&major, (CUdevice_attribute)100000, 0), CUDA_ERROR_INVALID_VALUE);
  size_t total = 0;
  CHECK_CU(cuDeviceTotalMem_v2(&total, 0), CUDA_SUCCESS);
  CHECK_EQ(total, (size_t)16 << 30);
  CUdevice dev;
  CHECK_CU(cuDeviceGet(&dev, 1), CUDA_ERROR_INVALID_DEVICE);
  const char* text = nullptr;
  CHECK_CU(cuGetErrorName(CUDA_ERROR_ILLEGAL_ADDRESS, &text), CUDA_SUCCESS);
  CHECK_EQ(std::string(text), std::string("CUDA_ERROR_ILLEGAL_ADDRESS"));
  CHECK_CU(cuGetErrorString(CUDA_ERROR_ILLEGAL_ADDRESS, &text), CUDA_SUCCESS);
  CHECK_EQ(std::string(text), std::string("an illegal memory access was encountered"));
  CHECK_CU(cuGetErrorName((CUresult)12345, &text), CUDA_ERROR_INVALID_VALUE);
}

TEST(calls_without_a_current_context_fail) {
  CHECK_CU(cuInit(0), CUDA_SUCCESS);
  CHECK_CU(cuCtxSetCurrent(nullptr), CUDA_SUCCESS);
  CUdeviceptr p;
  harness::Stderr err;
  CHECK_CU(cuMemAlloc_v2(&p, 16), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CONTAINS(err.text(), "cuMemAlloc: no current context on this thread");
}

TEST(the_current_context_is_per_thread) {
  Device device;
  CUdeviceptr p = device_alloc(16);
  CUresult other_thread = CUDA_SUCCESS, after_set = CUDA_ERROR_UNKNOWN;
  CUcontext seen = (CUcontext)1;
  std::thread([&] {
    harness::Stderr err;
    CUdeviceptr q;
    other_thread = cuMemAlloc_v2(&q, 16);
    cuCtxGetCurrent(&seen);
    cuCtxSetCurrent(device.ctx);
    after_set = cuMemFree_v2(p);  // the same context, now current here too
  }).join();
  CHECK_CU(other_thread, CUDA_ERROR_INVALID_CONTEXT);
  CHECK(seen == nullptr);
  CHECK_CU(after_set, CUDA_SUCCESS);
  CUcontext current;
  CHECK_CU(cuCtxGetCurrent(&current), CUDA_SUCCESS);
  CHECK(current == device.ctx);
  CUdevice dev = -1;
  CHECK_CU(cuCtxGetDevice(&dev), CUDA_SUCCESS);
  CHECK_EQ(dev, 0);
}

TEST(release_to_zero_frees_everything_and_lists_the_leaks) {
  CHECK_CU(cuInit(0), CUDA_SUCCESS);
  CUcontext ctx, again;
  CHECK_CU(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_SUCCESS);
  CHECK_CU(cuDevicePrimaryCtxRetain(&again, 0), CUDA_SUCCESS);
  CHECK(ctx == again);
  CHECK_CU(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
  device_alloc(1 << 20);  // leaked on purpose, as the rest
  void* host;
  CHECK_CU(cuMemAllocHost_v2(&host, 64), CUDA_SUCCESS);
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CUevent e;
  CHECK_CU(cuEventCreate(&e, 0), CUDA_SUCCESS);
  load_test_kernels();
  CHECK_CU(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);  // one reference left: nothing happens
  CHECK_EQ(cuEmulatorLiveObjects(0, "allocations"), 1);
  unsigned flags;
  int active = 0;
  CHECK_CU(cuDevicePrimaryCtxGetState(0, &flags, &active), CUDA_SUCCESS);
  CHECK_EQ(active, 1);
  {
    harness::Stderr err;
    CHECK_CU(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
    std::string text = err.text();
    CHECK_CONTAINS(text, "the context is destroyed with 1 device allocation(s) (1048576 bytes), 1 pinned host buffer(s), 1 stream(s), "
                         "1 event(s), 1 module(s), 0 graph(s) and 0 graph exec(s) still live");
    CHECK_CONTAINS(text, "leaked");
  }
  for (const char* kind : {"allocations", "allocated_bytes", "host_allocations", "streams", "events", "modules", "graphs", "graph_execs"})
    CHECK_EQ(cuEmulatorLiveObjects(0, kind), 0);
  CHECK_EQ(cuEmulatorLiveObjects(0, "nonsense"), -1);
  CHECK_EQ(cuEmulatorLiveObjects(3, "allocations"), -1);
  CHECK_CU(cuDevicePrimaryCtxGetState(0, &flags, &active), CUDA_SUCCESS);
  CHECK_EQ(active, 0);
  // Still current on this thread, but destroyed.
  CUdeviceptr q;
  {
    harness::Stderr err;
    CHECK_CU(cuMemAlloc_v2(&q, 16), CUDA_ERROR_CONTEXT_IS_DESTROYED);
    CHECK_CU(cuCtxSetCurrent(ctx), CUDA_ERROR_CONTEXT_IS_DESTROYED);
    CHECK_CU(cuDevicePrimaryCtxRelease_v2(0), CUDA_ERROR_INVALID_CONTEXT);  // not retained
  }
  CHECK_CU(cuCtxSetCurrent((CUcontext)&q), CUDA_ERROR_INVALID_CONTEXT);
  // Retained again: the same handle, a fresh context.
  CHECK_CU(cuDevicePrimaryCtxRetain(&again, 0), CUDA_SUCCESS);
  CHECK(again == ctx);
  CHECK_CU(cuMemAlloc_v2(&q, 16), CUDA_SUCCESS);
  CHECK_CU(cuMemFree_v2(q), CUDA_SUCCESS);
  CHECK_CU(cuCtxSetCurrent(nullptr), CUDA_SUCCESS);
  CHECK_CU(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
}

TEST(a_failed_launch_is_sticky_until_the_context_is_reset) {
  CUdeviceptr p;
  {
    Device device;
    CUmodule m = load_test_kernels();
    p = device_alloc(64);
    harness::Stderr err;
    CHECK_CU(launch(kernel(m, "emu_test_trap"), 1, 32, 0, nullptr, p, 0, 0), CUDA_SUCCESS);  // queued: no error yet
    CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_LAUNCH_FAILED);
    CHECK_CONTAINS(err.text(), "sticky");
    CUdeviceptr q;
    CHECK_CU(cuMemAlloc_v2(&q, 16), CUDA_ERROR_LAUNCH_FAILED);
    CHECK_CU(cuMemFree_v2(p), CUDA_ERROR_LAUNCH_FAILED);
    CHECK_CU(cuStreamSynchronize(nullptr), CUDA_ERROR_LAUNCH_FAILED);
    size_t free, total;
    CHECK_CU(cuMemGetInfo_v2(&free, &total), CUDA_ERROR_LAUNCH_FAILED);
  }  // released: reset (the allocation is freed and listed)
  Device device;
  CUdeviceptr q;
  CHECK_CU(cuMemAlloc_v2(&q, 16), CUDA_SUCCESS);
  CHECK_CU(cuMemFree_v2(q), CUDA_SUCCESS);
}
