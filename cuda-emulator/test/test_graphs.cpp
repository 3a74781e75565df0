// Stream capture and graphs: captured work is recorded (kernel arguments by value), not run;
// launching the instantiated graph replays it and gives what running it directly gives; calls
// CUDA forbids during capture fail with CUDA's error and invalidate the capture.
#include <thread>

#include "kernels.h"

namespace {
struct Fixture {
  Device device;
  CUmodule m = load_test_kernels();
  CUfunction fill = kernel(m, "emu_test_fill"), increment = kernel(m, "emu_test_increment");
  CUstream s = nullptr;
  Fixture() { CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS); }
  ~Fixture() { cuStreamDestroy_v2(s); }
};
}  // namespace

TEST(a_replayed_graph_does_what_the_captured_work_does) {
  Fixture f;
  const int n = 1000;
  CUdeviceptr p = device_alloc(n * 4);
  float *in, *out;
  CHECK_CU(cuMemAllocHost_v2((void**)&in, n * 4), CUDA_SUCCESS);
  CHECK_CU(cuMemAllocHost_v2((void**)&out, n * 4), CUDA_SUCCESS);
  for (int i = 0; i < n; i++) in[i] = (float)i;
  // Directly.
  CHECK_CU(cuMemcpyHtoDAsync_v2(p, in, n * 4, f.s), CUDA_SUCCESS);
  CHECK_CU(launch(f.increment, 4, 256, 0, f.s, p, n), CUDA_SUCCESS);
  CHECK_CU(launch(f.increment, 4, 256, 0, f.s, p, n), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32Async(p, 0, 10, f.s), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(out, p, n * 4, f.s), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(f.s), CUDA_SUCCESS);
  std::vector<float> direct(out, out + n);
  // Captured: nothing runs until the graph is launched.
  for (int i = 0; i < n; i++) out[i] = -1;
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  CUstreamCaptureStatus status;
  CHECK_CU(cuStreamIsCapturing(f.s, &status), CUDA_SUCCESS);
  CHECK_EQ((int)status, (int)CU_STREAM_CAPTURE_STATUS_ACTIVE);
  int count = n;
  CHECK_CU(cuMemcpyHtoDAsync_v2(p, in, n * 4, f.s), CUDA_SUCCESS);
  CHECK_CU(launch(f.increment, 4, 256, 0, f.s, p, count), CUDA_SUCCESS);
  count = 0;  // arguments were copied at the launch: the graph keeps n
  CHECK_CU(launch(f.increment, 4, 256, 0, f.s, p, n), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32Async(p, 0, 10, f.s), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(out, p, n * 4, f.s), CUDA_SUCCESS);
  CUgraph graph;
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_SUCCESS);
  CHECK_EQ(out[0], -1.0f);
  CUgraphExec exec;
  CHECK_CU(cuGraphInstantiateWithFlags(&exec, graph, 0), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "graphs"), 1);
  CHECK_EQ(cuEmulatorLiveObjects(0, "graph_execs"), 1);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < n; i++) out[i] = -1;
    CHECK_CU(cuGraphLaunch(exec, f.s), CUDA_SUCCESS);
    CHECK_EQ(out[5], -1.0f);  // queued, like any work
    CHECK_CU(cuStreamSynchronize(f.s), CUDA_SUCCESS);
    CHECK(std::vector<float>(out, out + n) == direct);
  }
  // The graph reads the pinned input when it runs.
  in[500] = 1000.0f;
  CHECK_CU(cuGraphLaunch(exec, f.s), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(f.s), CUDA_SUCCESS);
  CHECK_EQ(out[500], 1002.0f);
  CHECK_CU(cuGraphExecDestroy(exec), CUDA_SUCCESS);
  CHECK_CU(cuGraphDestroy(graph), CUDA_SUCCESS);
  CHECK_EQ(cuEmulatorLiveObjects(0, "graphs"), 0);
  CHECK_EQ(cuEmulatorLiveObjects(0, "graph_execs"), 0);
  cuMemFreeHost(in);
  cuMemFreeHost(out);
  cuMemFree_v2(p);
}

TEST(synchronising_a_capturing_stream_invalidates_the_capture) {
  Fixture f;
  CUdeviceptr p = device_alloc(64);
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  CHECK_CU(launch(f.fill, 1, 16, 0, f.s, p, 1.0f, 16), CUDA_SUCCESS);
  {
    harness::Stderr err;
    CHECK_CU(cuStreamSynchronize(f.s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    CHECK_CONTAINS(err.text(), "capture is invalidated");
  }
  CUstreamCaptureStatus status;
  CHECK_CU(cuStreamIsCapturing(f.s, &status), CUDA_SUCCESS);
  CHECK_EQ((int)status, (int)CU_STREAM_CAPTURE_STATUS_INVALIDATED);
  {
    harness::Stderr err;
    CHECK_CU(launch(f.fill, 1, 16, 0, f.s, p, 1.0f, 16), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
  }
  CUgraph graph = (CUgraph)1;
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
  CHECK(graph == nullptr);
  CHECK_CU(cuStreamIsCapturing(f.s, &status), CUDA_SUCCESS);
  CHECK_EQ((int)status, (int)CU_STREAM_CAPTURE_STATUS_NONE);
  CHECK_CU(cuStreamSynchronize(f.s), CUDA_SUCCESS);  // usable again
  cuMemFree_v2(p);
}

TEST(unsafe_calls_during_a_global_capture_are_refused) {
  Fixture f;
  CUdeviceptr p = device_alloc(64);
  std::vector<char> host(64);
  struct Case {
    const char* name;
    std::function<CUresult()> call;
  } cases[] = {
      {"cuMemAlloc", [&] { CUdeviceptr q; return cuMemAlloc_v2(&q, 16); }},
      {"cuMemFree", [&] { return cuMemFree_v2(p); }},
      {"cuMemcpyHtoD", [&] { return cuMemcpyHtoD_v2(p, host.data(), 8); }},
      {"cuMemcpyDtoH", [&] { return cuMemcpyDtoH_v2(host.data(), p, 8); }},
      {"cuMemsetD8", [&] { return cuMemsetD8_v2(p, 0, 8); }},
      {"cuCtxSynchronize", [&] { return cuCtxSynchronize(); }},
  };
  for (const Case& c : cases) {
    CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
    {
      harness::Stderr err;
      CHECK_CU(c.call(), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
      CHECK_CONTAINS(err.text(), std::string(c.name) + " while stream");
    }
    CUgraph graph;
    CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
  }
  // In relaxed mode they are allowed.
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_RELAXED), CUDA_SUCCESS);
  CUdeviceptr q = device_alloc(16);
  CHECK_CU(cuMemFree_v2(q), CUDA_SUCCESS);
  CUgraph graph;
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_SUCCESS);
  CHECK_CU(cuGraphDestroy(graph), CUDA_SUCCESS);
  // A thread-local capture does not restrict other threads; a global one does.
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), CUDA_SUCCESS);
  CUresult other = CUDA_ERROR_UNKNOWN;
  std::thread([&] {
    cuCtxSetCurrent(f.device.ctx);
    CUdeviceptr r;
    other = cuMemAlloc_v2(&r, 16);
    if (other == CUDA_SUCCESS) cuMemFree_v2(r);
  }).join();
  CHECK_CU(other, CUDA_SUCCESS);
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_SUCCESS);
  CHECK_CU(cuGraphDestroy(graph), CUDA_SUCCESS);
  // A global capture must be ended by its own thread.
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  CUresult ended = CUDA_ERROR_UNKNOWN;
  std::thread([&] {
    cuCtxSetCurrent(f.device.ctx);
    harness::Stderr err;
    CUgraph g;
    ended = cuStreamEndCapture(f.s, &g);
  }).join();
  CHECK_CU(ended, CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD);
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_SUCCESS);
  CHECK_CU(cuGraphDestroy(graph), CUDA_SUCCESS);
  cuMemFree_v2(p);
}

TEST(the_legacy_stream_and_pageable_copies_cannot_join_a_capture) {
  Fixture f;
  CUdeviceptr p = device_alloc(64);
  CHECK_CU(cuStreamBeginCapture_v2(nullptr, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_RELAXED), CUDA_SUCCESS);
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_RELAXED), CUDA_ERROR_ILLEGAL_STATE);
  CUstreamCaptureStatus status;
  CHECK_CU(cuStreamIsCapturing(nullptr, &status), CUDA_ERROR_STREAM_CAPTURE_IMPLICIT);
  {
    harness::Stderr err;
    CHECK_CU(launch(f.fill, 1, 16, 0, nullptr, p, 1.0f, 16), CUDA_ERROR_STREAM_CAPTURE_IMPLICIT);
    CHECK_CONTAINS(err.text(), "on the legacy (NULL) stream while blocking stream");
  }
  CUgraph graph;
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
  std::vector<float> pageable(16);
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_RELAXED), CUDA_SUCCESS);
  {
    harness::Stderr err;
    CHECK_CU(cuMemcpyHtoDAsync_v2(p, pageable.data(), 64, f.s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    CHECK_CONTAINS(err.text(), "pageable host memory cannot be captured");
  }
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_ERROR_ILLEGAL_STATE);  // not capturing any more
  cuMemFree_v2(p);
}

TEST(events_in_a_capture) {
  Fixture f;
  CUevent inside, outside, external;
  CHECK_CU(cuEventCreate(&inside, 0), CUDA_SUCCESS);
  CHECK_CU(cuEventCreate(&outside, 0), CUDA_SUCCESS);
  CHECK_CU(cuEventCreate(&external, 0), CUDA_SUCCESS);
  CHECK_CU(cuEventRecord(outside, f.s), CUDA_SUCCESS);
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  CHECK_CU(cuEventRecord(inside, f.s), CUDA_SUCCESS);
  CHECK_CU(cuStreamWaitEvent(f.s, inside, 0), CUDA_SUCCESS);  // the same capture: in order anyway
  CHECK_CU(cuEventRecordWithFlags(external, f.s, CU_EVENT_RECORD_EXTERNAL), CUDA_SUCCESS);
  {
    harness::Stderr err;
    CHECK_CU(cuEventQuery(inside), CUDA_ERROR_CAPTURED_EVENT);
    CHECK_CU(cuEventSynchronize(inside), CUDA_ERROR_CAPTURED_EVENT);
  }
  CUgraph graph;
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_SUCCESS);
  CUgraphExec exec;
  CHECK_CU(cuGraphInstantiateWithFlags(&exec, graph, CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH), CUDA_SUCCESS);
  CHECK_CU(cuGraphLaunch(exec, f.s), CUDA_SUCCESS);
  CHECK_CU(cuEventQuery(external), CUDA_ERROR_NOT_READY);  // an event record node: pending on the launch
  CHECK_CU(cuEventSynchronize(external), CUDA_SUCCESS);
  float ms;
  CHECK_CU(cuEventElapsedTime_v2(&ms, outside, external), CUDA_SUCCESS);
  // Waiting on an event recorded outside the capture crosses its boundary.
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  {
    harness::Stderr err;
    CHECK_CU(cuStreamWaitEvent(f.s, outside, 0), CUDA_ERROR_STREAM_CAPTURE_ISOLATION);
  }
  CUgraph invalid;
  CHECK_CU(cuStreamEndCapture(f.s, &invalid), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
  CHECK_CU(cuGraphExecDestroy(exec), CUDA_SUCCESS);
  CHECK_CU(cuGraphDestroy(graph), CUDA_SUCCESS);
  for (CUevent e : {inside, outside, external}) CHECK_CU(cuEventDestroy_v2(e), CUDA_SUCCESS);
}

TEST(a_graph_replaying_on_freed_memory_fails_at_the_launch) {
  Fixture f;
  CUdeviceptr p = device_alloc(64);
  CHECK_CU(cuStreamBeginCapture_v2(f.s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  CHECK_CU(launch(f.fill, 1, 16, 0, f.s, p, 1.0f, 16), CUDA_SUCCESS);
  CUgraph graph;
  CHECK_CU(cuStreamEndCapture(f.s, &graph), CUDA_SUCCESS);
  CUgraphExec exec;
  CHECK_CU(cuGraphInstantiateWithFlags(&exec, graph, 0), CUDA_SUCCESS);
  CHECK_CU(cuGraphLaunch(exec, f.s), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(f.s), CUDA_SUCCESS);
  CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
  CHECK_CU(cuGraphLaunch(exec, f.s), CUDA_SUCCESS);
  harness::Stderr err;
  CHECK_CU(cuStreamSynchronize(f.s), CUDA_ERROR_ILLEGAL_ADDRESS);
  std::string text = err.text();
  CHECK_CONTAINS(text, "graph launch (1 nodes): node 0 (kernel emu_test_fill");
  CHECK_CONTAINS(text, "freed");
}
