// Launch checks: each refused launch gets CUDA's error and a message naming the kernel.
#include "kernels.h"

namespace {
struct Fixture {
  Device device;
  CUmodule m = load_test_kernels();
  CUfunction fill = kernel(m, "emu_test_fill");
  CUdeviceptr p = device_alloc(4096);
  ~Fixture() { cuMemFree_v2(p); }
  CUresult launch3(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                   std::string* messages) {
    float value = 1.0f;
    int n = 16;
    void* params[] = {&p, &value, &n};
    harness::Stderr err;
    CUresult rc = cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, nullptr, params, nullptr);
    if (rc == CUDA_SUCCESS) rc = cuCtxSynchronize();
    *messages = err.text();
    return rc;
  }
};
}  // namespace

TEST(grid_and_block_dimensions) {
  Fixture f;
  std::string text;
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 32, 1, 1, 0, &text), CUDA_SUCCESS);
  CHECK_CU(f.launch3(f.fill, 0, 1, 1, 32, 1, 1, 0, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CONTAINS(text, "cuLaunchKernel emu_test_fill grid (0,1,1) block (32,1,1) shared 0: a grid or block dimension is 0");
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 0, 1, 1, 0, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(f.launch3(f.fill, 1, 65536, 1, 32, 1, 1, 0, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CONTAINS(text, "the grid exceeds");
  CHECK_CU(f.launch3(f.fill, 1, 1, 65536, 32, 1, 1, 0, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 1025, 1, 1, 0, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CONTAINS(text, "the block exceeds");
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 1, 1, 65, 0, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 64, 32, 1, 0, &text), CUDA_ERROR_INVALID_VALUE);  // 2048 threads
  CHECK_CU(f.launch3(f.fill, 2, 3, 4, 4, 4, 4, 0, &text), CUDA_SUCCESS);                // 3-D is fine
}

TEST(kernel_params_must_be_given) {
  Fixture f;
  harness::Stderr err;
  CHECK_CU(cuLaunchKernel(f.fill, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr), CUDA_ERROR_INVALID_VALUE);
  CHECK_CONTAINS(err.text(), "kernelParams is NULL but the kernel has 3 parameters");
  void* extra[] = {nullptr};
  CHECK_CU(cuLaunchKernel(f.fill, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, extra), CUDA_ERROR_NOT_SUPPORTED);
  CHECK_CU(cuLaunchKernel(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr), CUDA_ERROR_INVALID_HANDLE);
}

TEST(dynamic_shared_memory_limits) {
  Fixture f;
  std::string text;
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 32, 1, 1, 48 * 1024, &text), CUDA_SUCCESS);
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 32, 1, 1, 48 * 1024 + 1, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CONTAINS(text, "49153 bytes of dynamic shared memory exceed the function's limit of 49152");
  CHECK_CU(cuFuncSetAttribute(f.fill, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024), CUDA_SUCCESS);
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 32, 1, 1, 227 * 1024, &text), CUDA_SUCCESS);
  CHECK_CU(f.launch3(f.fill, 1, 1, 1, 32, 1, 1, 227 * 1024 + 1, &text), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuFuncSetAttribute(f.fill, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024 + 1), CUDA_ERROR_INVALID_VALUE);
  // With 40 KiB of static shared memory, 8 KiB of dynamic is the default limit.
  CUfunction big = kernel(f.m, "emu_test_static_shared");
  int regs = 0;
  CHECK_CU(cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, big), CUDA_SUCCESS);
  if (regs == 0) SKIP("built without nvcc: static shared memory sizes unknown");
  harness::Stderr err;
  void* params[] = {&f.p};
  CHECK_CU(cuLaunchKernel(big, 1, 1, 1, 64, 1, 1, 8 * 1024, nullptr, params, nullptr), CUDA_SUCCESS);
  CHECK_CU(cuLaunchKernel(big, 1, 1, 1, 64, 1, 1, 8 * 1024 + 1, nullptr, params, nullptr), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuCtxSynchronize(), CUDA_SUCCESS);
  CHECK_EQ(read_back<float>(f.p, 1)[0], 10239.0f);
}

TEST(registers_per_block) {
  Fixture f;
  CUfunction heavy = kernel(f.m, "emu_test_many_registers");
  int regs = 0, max_threads = 0;
  CHECK_CU(cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, heavy), CUDA_SUCCESS);
  CHECK_CU(cuFuncGetAttribute(&max_threads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, heavy), CUDA_SUCCESS);
  if (regs == 0) SKIP("built without nvcc: register counts unknown");
  CHECK(regs > 64);
  CHECK(max_threads < 1024);
  CUdeviceptr data = device_alloc(96 * 1024 * 4);
  int rounds = 1;
  void* params[] = {&data, &rounds};
  harness::Stderr err;
  CHECK_CU(cuLaunchKernel(heavy, 1, 1, 1, 1024, 1, 1, 0, nullptr, params, nullptr), CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES);
  CHECK_CONTAINS(err.text(), "registers (ptxas, sm_90)");
  CHECK_CU(cuLaunchKernel(heavy, 1, 1, 1, max_threads, 1, 1, 0, nullptr, params, nullptr), CUDA_SUCCESS);
  CHECK_CU(cuCtxSynchronize(), CUDA_SUCCESS);
  cuMemFree_v2(data);
}

TEST(pointer_arguments_must_be_live_memory_of_the_device) {
  Fixture f;
  std::vector<float> host(16);
  float value = 1.0f;
  int n = 16;
  CUdeviceptr wild = (CUdeviceptr)host.data();
  void* params[] = {&wild, &value, &n};
  harness::Stderr err;
  CHECK_CU(cuLaunchKernel(f.fill, 1, 1, 1, 16, 1, 1, 0, nullptr, params, nullptr), CUDA_SUCCESS);
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(err.text(), "pointer parameter 0: 0x");
  CHECK_CONTAINS(err.text(), "not memory of the emulated device");
}
