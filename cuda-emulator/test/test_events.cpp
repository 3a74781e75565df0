// Events: recording, elapsed time, timing-disabled events, not-yet-recorded and not-yet-complete
// events, and one stream waiting for another's event.
#include "kernels.h"

TEST(record_synchronize_and_elapsed_time) {
  Device device;
  CUmodule m = load_test_kernels();
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CUevent start, end;
  CHECK_CU(cuEventCreate(&start, CU_EVENT_DEFAULT), CUDA_SUCCESS);
  CHECK_CU(cuEventCreate(&end, CU_EVENT_BLOCKING_SYNC), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "events"), 2);
  float ms = -1;
  {
    harness::Stderr err;
    CHECK_CU(cuEventElapsedTime_v2(&ms, start, end), CUDA_ERROR_INVALID_HANDLE);  // never recorded
  }
  CHECK_CU(cuEventQuery(start), CUDA_SUCCESS);  // never recorded: nothing to wait for
  CUdeviceptr p = device_alloc(1 << 20);
  CHECK_CU(cuEventRecord(start, s), CUDA_SUCCESS);
  CHECK_CU(launch(kernel(m, "emu_test_fill"), 64, 256, 0, s, p, 1.0f, 1 << 18), CUDA_SUCCESS);
  CHECK_CU(cuEventRecord(end, s), CUDA_SUCCESS);
  CHECK_CU(cuEventElapsedTime_v2(&ms, start, end), CUDA_ERROR_NOT_READY);
  CHECK_CU(cuEventQuery(end), CUDA_ERROR_NOT_READY);
  CHECK_CU(cuEventSynchronize(end), CUDA_SUCCESS);
  CHECK_CU(cuEventQuery(end), CUDA_SUCCESS);
  CHECK_CU(cuEventElapsedTime_v2(&ms, start, end), CUDA_SUCCESS);
  CHECK(ms >= 0.0f && ms < 10000.0f);
  CHECK_CU(cuEventDestroy_v2(start), CUDA_SUCCESS);
  CHECK_CU(cuEventDestroy_v2(end), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "events"), 0);
  harness::Stderr err;
  CHECK_CU(cuEventQuery(end), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CU(cuStreamDestroy_v2(s), CUDA_SUCCESS);
  cuMemFree_v2(p);
}

TEST(a_query_answers_not_ready_once_then_the_work_runs) {
  Device device;
  CUmodule m = load_test_kernels();
  CUevent e;
  CHECK_CU(cuEventCreate(&e, 0), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(4);
  CHECK_CU(launch(kernel(m, "emu_test_fill"), 1, 1, 0, nullptr, p, 4.0f, 1), CUDA_SUCCESS);
  CHECK_CU(cuEventRecord(e, nullptr), CUDA_SUCCESS);
  int polls = 0;
  while (cuEventQuery(e) == CUDA_ERROR_NOT_READY) polls++;
  CHECK_EQ(polls, 1);
  CHECK_CU(cuEventDestroy_v2(e), CUDA_SUCCESS);
  cuMemFree_v2(p);
}

TEST(timing_disabled_events_have_no_elapsed_time) {
  Device device;
  CUevent a, b;
  CHECK_CU(cuEventCreate(&a, CU_EVENT_DISABLE_TIMING), CUDA_SUCCESS);
  CHECK_CU(cuEventCreate(&b, 0), CUDA_SUCCESS);
  CHECK_CU(cuEventRecord(a, nullptr), CUDA_SUCCESS);
  CHECK_CU(cuEventRecord(b, nullptr), CUDA_SUCCESS);
  CHECK_CU(cuEventSynchronize(b), CUDA_SUCCESS);
  float ms;
  harness::Stderr err;
  CHECK_CU(cuEventElapsedTime_v2(&ms, a, b), CUDA_ERROR_INVALID_HANDLE);
  CHECK_CONTAINS(err.text(), "CU_EVENT_DISABLE_TIMING");
  CHECK_CU(cuEventCreate(&a, CU_EVENT_INTERPROCESS), CUDA_ERROR_INVALID_VALUE);  // needs DISABLE_TIMING
  CHECK_CU(cuEventDestroy_v2(b), CUDA_SUCCESS);
}

TEST(a_stream_waits_for_another_streams_event) {
  Device device;
  CUmodule m = load_test_kernels();
  CUstream producer, consumer;
  CHECK_CU(cuStreamCreate(&producer, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  CHECK_CU(cuStreamCreate(&consumer, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  CUevent ready;
  CHECK_CU(cuEventCreate(&ready, CU_EVENT_DISABLE_TIMING), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(256 * 4);
  float* host;
  CHECK_CU(cuMemAllocHost_v2((void**)&host, 256 * 4), CUDA_SUCCESS);
  CHECK_CU(launch(kernel(m, "emu_test_fill"), 1, 256, 0, producer, p, 2.0f, 256), CUDA_SUCCESS);
  CHECK_CU(cuEventRecord(ready, producer), CUDA_SUCCESS);
  CHECK_CU(cuStreamWaitEvent(consumer, ready, 0), CUDA_SUCCESS);
  CHECK_CU(launch(kernel(m, "emu_test_increment"), 1, 256, 0, consumer, p, 256), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, p, 256 * 4, consumer), CUDA_SUCCESS);
  // Only the consumer is synchronised: the producer's fill runs first because of the event.
  CHECK_CU(cuStreamSynchronize(consumer), CUDA_SUCCESS);
  for (int i = 0; i < 256; i++) CHECK_EQ(host[i], 3.0f);
  CHECK_CU(cuStreamWaitEvent(consumer, ready, 5), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cuEventDestroy_v2(ready), CUDA_SUCCESS);
  CHECK_CU(cuStreamDestroy_v2(producer), CUDA_SUCCESS);
  CHECK_CU(cuStreamDestroy_v2(consumer), CUDA_SUCCESS);
  CHECK_CU(cuMemFreeHost(host), CUDA_SUCCESS);
  cuMemFree_v2(p);
}
