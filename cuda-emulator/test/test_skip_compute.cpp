// CUDA_EMU_SKIP_COMPUTE=1: kernels and GEMMs are accepted, queued, captured and replayed, but their
// arithmetic is left out, so a benchmark sees only the host's cost of issuing work; copies and
// memsets still run.
#include "cublas_emulator.h"
#include "kernels.h"

static const int skip_set = setenv("CUDA_EMU_SKIP_COMPUTE", "1", 1);

TEST(kernels_and_gemms_do_not_run_but_copies_do) {
  CHECK_EQ(skip_set, 0);
  Device device;
  CUmodule m = load_test_kernels();
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  const int n = 16;
  CUdeviceptr p = device_alloc(n * 4);
  float* host;
  CHECK_CU(cuMemAllocHost_v2((void**)&host, n * 4), CUDA_SUCCESS);
  std::vector<float> twos(n, 2.0f);
  CHECK_CU(cuMemcpyHtoD_v2(p, twos.data(), n * 4), CUDA_SUCCESS);
  CHECK_CU(launch(kernel(m, "emu_test_fill"), 1, 16, 0, s, p, 5.0f, n), CUDA_SUCCESS);
  cublasHandle_t blas;
  CHECK_EQ(cublasCreate_v2(&blas), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasSetStream_v2(blas, s), CUBLAS_STATUS_SUCCESS);
  float one = 1, zero = 0;
  // p[0..4) = p[0..4) x p[4..8) as 2 x 2 matrices: would give 8s.
  CHECK_EQ(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, (void*)p, CUDA_R_32F, 2, (void*)(p + 16), CUDA_R_32F, 2, &zero,
                        (void*)p, CUDA_R_32F, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
           CUBLAS_STATUS_SUCCESS);
  for (int i = 0; i < n; i++) host[i] = -1.0f;
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, p, n * 4, s), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  for (int i = 0; i < n; i++) CHECK_EQ(host[i], 2.0f);  // the copy's values: neither the fill nor the GEMM ran
  CHECK_EQ(cublasDestroy_v2(blas), CUBLAS_STATUS_SUCCESS);
  cuMemFreeHost(host);
  cuMemFree_v2(p);
  cuStreamDestroy_v2(s);
}

TEST(a_replayed_graph_skips_its_kernels_too) {
  Device device;
  CUmodule m = load_test_kernels();
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CUdeviceptr p = device_alloc(64);
  CHECK_CU(cuMemsetD32_v2(p, 0, 16), CUDA_SUCCESS);
  CHECK_CU(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  CHECK_CU(launch(kernel(m, "emu_test_increment"), 1, 16, 0, s, p, 16), CUDA_SUCCESS);
  CUgraph graph;
  CHECK_CU(cuStreamEndCapture(s, &graph), CUDA_SUCCESS);
  CUgraphExec exec;
  CHECK_CU(cuGraphInstantiateWithFlags(&exec, graph, 0), CUDA_SUCCESS);
  CHECK_CU(cuGraphLaunch(exec, s), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  float out[16];
  CHECK_CU(cuMemcpyDtoH_v2(out, p, sizeof out), CUDA_SUCCESS);
  CHECK_EQ(out[3], 0.0f);
  cuGraphExecDestroy(exec);
  cuGraphDestroy(graph);
  cuMemFree_v2(p);
  cuStreamDestroy_v2(s);
}
