// Streams: work is deferred to synchronisation points and runs in stream order; the legacy
// default stream orders with blocking streams and not with non-blocking ones; a host read of a
// pinned buffer before synchronising sees the old data.
#include <cmath>

#include "kernels.h"

namespace {
struct Fixture {
  Device device;
  CUmodule m = load_test_kernels();
  CUfunction fill = kernel(m, "emu_test_fill"), increment = kernel(m, "emu_test_increment");
};
}  // namespace

TEST(work_runs_in_stream_order_at_the_synchronisation) {
  Fixture f;
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(1000 * 4);
  float* host;
  CHECK_CU(cuMemAllocHost_v2((void**)&host, 1000 * 4), CUDA_SUCCESS);
  for (int i = 0; i < 1000; i++) host[i] = -1.0f;
  CHECK_CU(launch(f.fill, 4, 256, 0, s, p, 5.0f, 1000), CUDA_SUCCESS);
  CHECK_CU(launch(f.increment, 4, 256, 0, s, p, 1000), CUDA_SUCCESS);
  CHECK_CU(launch(f.increment, 4, 256, 0, s, p, 1000), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, p, 1000 * 4, s), CUDA_SUCCESS);
  // Nothing ran yet: the pinned buffer still holds what the host wrote.
  CHECK_EQ(host[0], -1.0f);
  CHECK_EQ(host[999], -1.0f);
  CUstreamCaptureStatus status;
  CHECK_CU(cuStreamIsCapturing(s, &status), CUDA_SUCCESS);
  CHECK_EQ((int)status, (int)CU_STREAM_CAPTURE_STATUS_NONE);
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  for (int i = 0; i < 1000; i++) CHECK_EQ(host[i], 7.0f);
  // A copy from pinned memory reads the buffer when it runs, not when it is queued.
  host[0] = 42.0f;
  CHECK_CU(cuMemcpyHtoDAsync_v2(p, host, 4, s), CUDA_SUCCESS);
  host[0] = 43.0f;
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  CHECK_EQ(read_back<float>(p, 1)[0], 43.0f);
  // From pageable memory, CUDA stages the data at the call.
  std::vector<float> pageable(1, 11.0f);
  CHECK_CU(cuMemcpyHtoDAsync_v2(p, pageable.data(), 4, s), CUDA_SUCCESS);
  pageable[0] = 12.0f;
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  CHECK_EQ(read_back<float>(p, 1)[0], 11.0f);
  // To pageable memory, the call returns once the copy is done.
  CHECK_CU(launch(f.fill, 1, 32, 0, s, p, 9.0f, 1), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(pageable.data(), p, 4, s), CUDA_SUCCESS);
  CHECK_EQ(pageable[0], 9.0f);
  CHECK_CU(cuStreamDestroy_v2(s), CUDA_SUCCESS);
  CHECK_CU(cuMemFreeHost(host), CUDA_SUCCESS);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
}

TEST(the_legacy_stream_orders_with_blocking_streams_only) {
  Fixture f;
  CUstream blocking, non_blocking;
  CHECK_CU(cuStreamCreate(&blocking, CU_STREAM_DEFAULT), CUDA_SUCCESS);
  CHECK_CU(cuStreamCreate(&non_blocking, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  unsigned flags = 99;
  CHECK_CU(cuStreamGetFlags(non_blocking, &flags), CUDA_SUCCESS);
  CHECK_EQ(flags, 1u);
  CUdeviceptr p = device_alloc(256 * 4), q = device_alloc(256 * 4);
  // The memsets go to the legacy stream; the blocking stream's kernel runs after them.
  CHECK_CU(cuMemsetD32_v2(p, 0, 256), CUDA_SUCCESS);
  CHECK_CU(launch(f.increment, 1, 256, 0, blocking, p, 256), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(blocking), CUDA_SUCCESS);
  for (float v : read_back<float>(p, 256)) CHECK_EQ(v, 1.0f);
  // A non-blocking stream does not wait for the legacy stream: its kernel sees the memory as it
  // was (poison, NaN) when the legacy stream's memset has not run yet.
  float* host;
  CHECK_CU(cuMemAllocHost_v2((void**)&host, 4), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32_v2(q, 0, 256), CUDA_SUCCESS);
  CHECK_CU(launch(f.increment, 1, 256, 0, non_blocking, q, 256), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, q, 4, non_blocking), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(non_blocking), CUDA_SUCCESS);
  CHECK(std::isnan(host[0]));
  CHECK_EQ(read_back<float>(q, 1)[0], 0.0f);  // a synchronous copy: the legacy stream's memset runs now
  // And a legacy-stream op waits for blocking streams' earlier work.
  CHECK_CU(launch(f.fill, 1, 32, 0, blocking, p, 3.0f, 1), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, p, 4, nullptr), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(CU_STREAM_LEGACY), CUDA_SUCCESS);
  CHECK_EQ(host[0], 3.0f);
  CHECK_CU(cuMemFreeHost(host), CUDA_SUCCESS);
  CHECK_CU(cuStreamDestroy_v2(blocking), CUDA_SUCCESS);
  CHECK_CU(cuStreamDestroy_v2(non_blocking), CUDA_SUCCESS);
  cuMemFree_v2(p);
  cuMemFree_v2(q);
}

TEST(stream_query_answers_not_ready_once_then_runs_the_work) {
  Fixture f;
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CHECK_CU(cuStreamQuery(s), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(4);
  CHECK_CU(launch(f.fill, 1, 1, 0, s, p, 1.0f, 1), CUDA_SUCCESS);
  CHECK_CU(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
  CHECK_CU(cuStreamQuery(s), CUDA_SUCCESS);
  CHECK_EQ(read_back<float>(p, 1)[0], 1.0f);
  CHECK_CU(cuStreamDestroy_v2(s), CUDA_SUCCESS);
  cuMemFree_v2(p);
}

TEST(destroying_a_stream_finishes_its_work) {
  Fixture f;
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(4);
  CHECK_CU(launch(f.fill, 1, 1, 0, s, p, 6.0f, 1), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "streams"), 1);
  CHECK_CU(cuStreamDestroy_v2(s), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "streams"), 0);
  CHECK_EQ(read_back<float>(p, 1)[0], 6.0f);
  harness::Stderr err;
  CHECK_CU(cuStreamSynchronize(s), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuStreamDestroy_v2(nullptr), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuStreamCreate(&s, 7), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(launch(f.fill, 1, 1, 0, CU_STREAM_PER_THREAD, p, 6.0f, 1), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CONTAINS(err.text(), "is not a stream of the current context");
  cuMemFree_v2(p);
}

TEST(an_error_in_queued_work_surfaces_at_the_synchronisation) {
  Fixture f;
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(64);
  harness::Stderr err;
  CHECK_CU(launch(kernel(f.m, "emu_test_write_past_end"), 1, 32, 0, s, p, 16, 1), CUDA_SUCCESS);
  CHECK_CU(launch(f.fill, 1, 32, 0, s, p, 1.0f, 16), CUDA_SUCCESS);  // dropped with the failure
  CHECK_CU(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(err.text(), "kernel emu_test_write_past_end grid (1,1,1) block (32,1,1)");
}
