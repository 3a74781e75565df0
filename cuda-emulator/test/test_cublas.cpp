// cuBLAS: GEMMs of every transpose combination and type against a straightforward reference
// that sums in the same order (so results must be bitwise equal), rows independent of the
// batch size n, cuBLAS's status codes for bad arguments, and work deferred on the handle's
// stream (and captured in graphs) like kernels.
#include "matrices.h"

namespace {

// C = alpha op(A) op(B) + beta C, each sum in increasing l, product and sum rounded to f32.
std::vector<float> reference(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const Matrix& A,
                             const Matrix& B, float beta, const Matrix& C) {
  std::vector<float> out = C.values;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      float sum = 0.0f;
      for (int l = 0; l < k; l++) {
        float a = ta == CUBLAS_OP_N ? A.values[(size_t)l * A.ld + i] : A.values[(size_t)i * A.ld + l];
        float b = tb == CUBLAS_OP_N ? B.values[(size_t)j * B.ld + l] : B.values[(size_t)l * B.ld + j];
        sum += a * b;
      }
      float v = alpha * sum;
      if (beta != 0.0f) v = v + beta * C.values[(size_t)j * C.ld + i];
      out[(size_t)j * C.ld + i] = C.type == CUDA_R_16BF ? from_bf16(to_bf16(v)) : v;
    }
  return out;
}

struct Blas {
  Device device;
  cublasHandle_t handle = nullptr;
  Blas() { CHECK_EQ(cublasCreate_v2(&handle), CUBLAS_STATUS_SUCCESS); }
  ~Blas() { cublasDestroy_v2(handle); }
};

}  // namespace

// Every transpose and type (with beta 0, where C is NaN and must not be read, and beta 0.25),
// at sizes that are not multiples of the vector widths; returns how many GEMMs it checked.
static int check_every_transpose_and_type(cublasHandle_t handle, const char* path) {
  struct Types {
    cudaDataType ab, c;
  } types[] = {{CUDA_R_32F, CUDA_R_32F}, {CUDA_R_16BF, CUDA_R_16BF}, {CUDA_R_16BF, CUDA_R_32F}};
  struct Size {
    int m, n, k;
  } sizes[] = {{37, 1, 19}, {64, 7, 256}, {33, 256, 65}, {300, 9, 1}, {5, 4, 0}, {1, 1, 1}, {70, 3, 300}};
  cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
  int checked = 0;
  for (const Types& t : types)
    for (const Size& s : sizes)
      for (cublasOperation_t ta : ops)
        for (cublasOperation_t tb : ops)
          for (float beta : {0.0f, 0.25f}) {
            int a_rows = ta == CUBLAS_OP_N ? s.m : s.k, a_cols = ta == CUBLAS_OP_N ? s.k : s.m;
            int b_rows = tb == CUBLAS_OP_N ? s.k : s.n, b_cols = tb == CUBLAS_OP_N ? s.n : s.k;
            Matrix A(a_rows, a_cols, a_rows + 3, t.ab, 1u + s.m), B(b_rows, b_cols, b_rows + 1, t.ab, 7u + s.n);
            Matrix C(s.m, s.n, s.m + 2, t.c, 99u, beta == 0.0f);
            float alpha = 0.5f;
            CHECK_EQ(cublasGemmEx(handle, ta, tb, s.m, s.n, s.k, &alpha, (void*)A.device, t.ab, A.ld, (void*)B.device, t.ab, B.ld, &beta,
                                  (void*)C.device, t.c, C.ld, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     CUBLAS_STATUS_SUCCESS);
            std::vector<float> got = C.download(), want = reference(ta, tb, s.m, s.n, s.k, alpha, A, B, beta, C);
            for (int j = 0; j < s.n; j++)
              for (int i = 0; i < s.m; i++) {
                size_t at = (size_t)j * C.ld + i;
                if (!same_bits(got[at], want[at])) {
                  harness::fail(__FILE__, __LINE__,
                                std::string(path) + ": " + harness::show(s.m) + "x" + harness::show(s.n) + "x" + harness::show(s.k) +
                                    " ta=" + harness::show(ta) + " tb=" + harness::show(tb) + " types " + harness::show(t.ab) +
                                    "->" + harness::show(t.c) + ": C(" + harness::show(i) + "," + harness::show(j) + ") is " +
                                    harness::show(got[at]) + ", expected " + harness::show(want[at]));
                }
              }
            checked++;
          }
  return checked;
}

// On every vector code path the CPU has (SSE2, AVX2, AVX-512): the results are the same bits.
TEST(every_transpose_and_type_matches_the_reference_bitwise) {
  Blas blas;
  const char* paths[] = {"SSE2", "AVX2", "AVX-512"};
  int best = cublasEmulatorLimitIsa(2);
  for (int level = 0; level <= best; level++) {
    CHECK_EQ(cublasEmulatorLimitIsa(level), level);
    CHECK_EQ(check_every_transpose_and_type(blas.handle, paths[level]), 3 * 7 * 9 * 2);
  }
  CHECK_EQ(cublasEmulatorLimitIsa(2), best);
}

TEST(a_column_does_not_depend_on_the_batch_size) {
  Blas blas;
  // The engine's linear layer: y^T = W x^T with W [out][in] row-major (T) and x [rows][in] (N).
  const int out = 300, in = 200;
  Matrix W(in, out, in, CUDA_R_16BF, 3u), X(in, 256, in, CUDA_R_16BF, 5u);
  std::vector<std::vector<float>> results;
  for (int n : {1, 9, 256}) {
    Matrix Y(out, n, out, CUDA_R_16BF, 11u);
    float one = 1.0f, zero = 0.0f;
    // Column 0 of each batch is X's column 0.
    CHECK_EQ(cublasGemmEx(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, (void*)W.device, CUDA_R_16BF, in, (void*)X.device,
                          CUDA_R_16BF, in, &zero, (void*)Y.device, CUDA_R_16BF, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             CUBLAS_STATUS_SUCCESS);
    std::vector<float> y = Y.download();
    results.push_back(std::vector<float>(y.begin(), y.begin() + out));
  }
  CHECK(memcmp(results[0].data(), results[1].data(), out * 4) == 0);
  CHECK(memcmp(results[0].data(), results[2].data(), out * 4) == 0);
}

TEST(strided_batched_gemm) {
  Blas blas;
  const int m = 20, n = 6, k = 11, batch = 3;
  Matrix A(m, k * batch, m, CUDA_R_32F, 21u), B(k, n * batch, k, CUDA_R_32F, 22u), C(m, n * batch, m, CUDA_R_32F, 23u);
  float alpha = 1.0f, beta = 0.5f;
  CHECK_EQ(cublasGemmStridedBatchedEx(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, (void*)A.device, CUDA_R_32F, m,
                                      (long long)m * k, (void*)B.device, CUDA_R_32F, k, (long long)k * n, &beta, (void*)C.device,
                                      CUDA_R_32F, m, (long long)m * n, batch, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT),
           CUBLAS_STATUS_SUCCESS);
  std::vector<float> got = C.download();
  for (int b = 0; b < batch; b++)
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        float sum = 0.0f;
        for (int l = 0; l < k; l++) sum += A.values[(size_t)(b * k + l) * m + i] * B.values[(size_t)(b * n + j) * k + l];
        float want = alpha * sum + beta * C.values[(size_t)(b * n + j) * m + i];
        CHECK(same_bits(got[(size_t)(b * n + j) * m + i], want));
      }
}

TEST(status_codes_for_bad_arguments) {
  Blas blas;
  Matrix A(8, 8, 8, CUDA_R_32F, 1u), B(8, 8, 8, CUDA_R_32F, 2u), C(8, 8, 8, CUDA_R_32F, 3u);
  float one = 1.0f;
  auto gemm = [&](cublasHandle_t h, int ta, int tb, int m, int n, int k, const float* alpha, int lda, int ldb, int ldc, cudaDataType type,
                  int compute, int algo) {
    harness::Stderr err;  // each refusal is explained on stderr
    return cublasGemmEx(h, (cublasOperation_t)ta, (cublasOperation_t)tb, m, n, k, alpha, (void*)A.device, type, lda, (void*)B.device,
                        type, ldb, &one, (void*)C.device, type, ldc, (cublasComputeType_t)compute, (cublasGemmAlgo_t)algo);
  };
  const int N = CUBLAS_OP_N, T = CUBLAS_OP_T, F = CUDA_R_32F, C32 = CUBLAS_COMPUTE_32F, D = CUBLAS_GEMM_DEFAULT;
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 8, 8, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(gemm(nullptr, N, N, 8, 8, 8, &one, 8, 8, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK_EQ(gemm(blas.handle, 7, N, 8, 8, 8, &one, 8, 8, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(gemm(blas.handle, N, N, -1, 8, 8, &one, 8, 8, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 7, 8, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  CHECK_EQ(gemm(blas.handle, T, N, 8, 8, 4, &one, 4, 4, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_SUCCESS);        // lda >= k suffices
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 8, 7, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_INVALID_VALUE);  // ldb < k
  CHECK_EQ(gemm(blas.handle, N, T, 8, 8, 8, &one, 8, 7, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_INVALID_VALUE);  // ldb < n
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 8, 8, 7, CUDA_R_32F, C32, D), CUBLAS_STATUS_INVALID_VALUE);  // ldc < m
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, nullptr, 8, 8, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 8, 8, 8, CUDA_R_16F, C32, D), CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 8, 8, 8, CUDA_R_32F, CUBLAS_COMPUTE_64F, D), CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 8, 8, 8, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, D), CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK_EQ(gemm(blas.handle, N, N, 8, 8, 8, &one, 8, 8, 8, CUDA_R_32F, C32, 50), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(gemm(blas.handle, N, N, 0, 8, 8, &one, 8, 8, 8, CUDA_R_32F, C32, D), CUBLAS_STATUS_SUCCESS);  // nothing to do
  (void)F;
  CHECK_CU(cuCtxSynchronize(), CUDA_SUCCESS);
  CHECK_EQ(std::string(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE)), std::string("CUBLAS_STATUS_INVALID_VALUE"));
  CHECK_EQ(std::string(cublasGetStatusString(CUBLAS_STATUS_NOT_SUPPORTED)), std::string("the functionality requested is not supported"));
  int version = 0;
  CHECK_EQ(cublasGetVersion_v2(blas.handle, &version), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(version / 10000, 13);
}

TEST(handles_settings_and_leaks) {
  CHECK_EQ(cublasEmulatorLiveHandles(), 0);
  {
    harness::Stderr err;
    cublasHandle_t h;
    cuInit(0);
    cuCtxSetCurrent(nullptr);
    CHECK_EQ(cublasCreate_v2(&h), CUBLAS_STATUS_NOT_INITIALIZED);  // no current context
  }
  Blas blas;
  cublasHandle_t second;
  CHECK_EQ(cublasCreate_v2(&second), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasEmulatorLiveHandles(), 2);
  CHECK_EQ(cublasDestroy_v2(second), CUBLAS_STATUS_SUCCESS);
  {
    harness::Stderr err;
    CHECK_EQ(cublasDestroy_v2(second), CUBLAS_STATUS_NOT_INITIALIZED);
  }
  CHECK_EQ(cublasEmulatorLiveHandles(), 1);
  CHECK_EQ(cublasSetMathMode(blas.handle, CUBLAS_PEDANTIC_MATH), CUBLAS_STATUS_SUCCESS);
  cublasMath_t mode;
  CHECK_EQ(cublasGetMathMode(blas.handle, &mode), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ((int)mode, (int)CUBLAS_PEDANTIC_MATH);
  {
    harness::Stderr err;
    CHECK_EQ(cublasSetMathMode(blas.handle, (cublasMath_t)9), CUBLAS_STATUS_INVALID_VALUE);
  }
  CUdeviceptr workspace = device_alloc(1 << 16);
  CHECK_EQ(cublasSetWorkspace_v2(blas.handle, (void*)workspace, 1 << 16), CUBLAS_STATUS_SUCCESS);
  {
    harness::Stderr err;
    CHECK_EQ(cublasSetWorkspace_v2(blas.handle, (void*)(workspace + 8), 1024), CUBLAS_STATUS_INVALID_VALUE);  // misaligned
    CHECK_EQ(cublasSetWorkspace_v2(blas.handle, (void*)workspace, (1 << 16) + 1), CUBLAS_STATUS_INVALID_VALUE);
  }
  CHECK_EQ(cublasSetWorkspace_v2(blas.handle, nullptr, 0), CUBLAS_STATUS_SUCCESS);
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CHECK_EQ(cublasSetStream_v2(blas.handle, s), CUBLAS_STATUS_SUCCESS);
  cudaStream_t got;
  CHECK_EQ(cublasGetStream_v2(blas.handle, &got), CUBLAS_STATUS_SUCCESS);
  CHECK(got == s);
  CHECK_CU(cuStreamDestroy_v2(s), CUDA_SUCCESS);
  cuMemFree_v2(workspace);
}

TEST(gemms_are_queued_on_the_stream_and_captured) {
  Blas blas;
  const int m = 64, n = 4, k = 32;
  Matrix A(m, k, m, CUDA_R_32F, 31u), B(k, n, k, CUDA_R_32F, 32u), C(m, n, m, CUDA_R_32F, 33u);
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, 0), CUDA_SUCCESS);
  CHECK_EQ(cublasSetStream_v2(blas.handle, s), CUBLAS_STATUS_SUCCESS);
  float* host;
  CHECK_CU(cuMemAllocHost_v2((void**)&host, m * n * 4), CUDA_SUCCESS);
  for (int i = 0; i < m * n; i++) host[i] = -7.0f;
  float one = 1.0f, zero = 0.0f;
  auto gemm = [&] {
    return cublasGemmEx(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, (void*)A.device, CUDA_R_32F, m, (void*)B.device, CUDA_R_32F,
                        k, &zero, (void*)C.device, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  CHECK_EQ(gemm(), CUBLAS_STATUS_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, C.device, m * n * 4, s), CUDA_SUCCESS);
  CHECK_EQ(host[0], -7.0f);  // deferred like any work on the stream
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  std::vector<float> want = reference(CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, 1.0f, A, B, 0.0f, C);
  CHECK(memcmp(host, want.data(), m * n * 4) == 0);
  // Captured and replayed.
  for (int i = 0; i < m * n; i++) host[i] = -7.0f;
  CHECK_CU(cuMemsetD32_v2(C.device, 0, m * n), CUDA_SUCCESS);
  CHECK_CU(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  CHECK_EQ(gemm(), CUBLAS_STATUS_SUCCESS);
  CHECK_CU(cuMemcpyDtoHAsync_v2(host, C.device, m * n * 4, s), CUDA_SUCCESS);
  CUgraph graph;
  CHECK_CU(cuStreamEndCapture(s, &graph), CUDA_SUCCESS);
  CUgraphExec exec;
  CHECK_CU(cuGraphInstantiateWithFlags(&exec, graph, 0), CUDA_SUCCESS);
  CHECK_CU(cuGraphLaunch(exec, s), CUDA_SUCCESS);
  CHECK_CU(cuStreamSynchronize(s), CUDA_SUCCESS);
  CHECK(memcmp(host, want.data(), m * n * 4) == 0);
  CHECK_CU(cuGraphExecDestroy(exec), CUDA_SUCCESS);
  CHECK_CU(cuGraphDestroy(graph), CUDA_SUCCESS);
  CHECK_EQ(cublasSetStream_v2(blas.handle, nullptr), CUBLAS_STATUS_SUCCESS);
  CHECK_CU(cuStreamDestroy_v2(s), CUDA_SUCCESS);
  CHECK_CU(cuMemFreeHost(host), CUDA_SUCCESS);
}

TEST(a_matrix_outside_its_allocation_fails_when_the_gemm_runs) {
  Blas blas;
  Matrix A(16, 16, 16, CUDA_R_32F, 1u), B(16, 16, 16, CUDA_R_32F, 2u), C(16, 16, 16, CUDA_R_32F, 3u);
  float one = 1.0f;
  // ldc = 17 makes C 1 element longer than its 256-element allocation.
  CHECK_EQ(cublasGemmEx(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 16, 16, 16, &one, (void*)A.device, CUDA_R_32F, 16, (void*)B.device,
                        CUDA_R_32F, 16, &one, (void*)C.device, CUDA_R_32F, 17, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
           CUBLAS_STATUS_SUCCESS);
  harness::Stderr err;
  CHECK_CU(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
  std::string text = err.text();
  CHECK_CONTAINS(text, "cublasGemmEx(transa=0 transb=0 m=16 n=16 k=16");
  CHECK_CONTAINS(text, "matrix C (1084 bytes from");
  CHECK_CONTAINS(text, "run 60 bytes past the end of the 1024-byte device 0 allocation");
}
