// CUDA_LAUNCH_BLOCKING=1: every operation runs when it is issued, so an error surfaces at the
// call that caused it (as with the real driver), and async copies are done when they return.
#include "kernels.h"

static const int blocking_set = setenv("CUDA_LAUNCH_BLOCKING", "1", 1);

TEST(errors_surface_at_the_call_that_caused_them) {
  CHECK_EQ(blocking_set, 0);
  Device device;
  CUmodule m = load_test_kernels();
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(64);
  float* host;
  CHECK_CU(cuMemAllocHost_v2((void**)&host, 64), CUDA_SUCCESS);
  CHECK_CU(launch(kernel(m, "emu_test_fill"), 1, 16, 0, s, p, 5.0f, 16), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, p, 64, s), CUDA_SUCCESS);
  CHECK_EQ(host[15], 5.0f);  // already done, no synchronisation needed
  harness::Stderr err;
  CHECK_CU(launch(kernel(m, "emu_test_write_past_end"), 1, 32, 0, s, p, 16, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(err.text(), "emu_test_write_past_end");
}
