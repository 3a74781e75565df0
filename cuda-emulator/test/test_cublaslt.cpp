// cuBLASLt: the heuristic's choice depends on the shape (split-K for few columns over a long k),
// split-K sums k in parts (other bits than cublasGemmEx), an unsplit algorithm gives
// cublasGemmEx's bits and, used for every column count, the same bits for a column alone and in
// a batch; bad arguments get cuBLASLt's statuses; every object created is destroyed.
#include "cublaslt_emulator.h"
#include "matrices.h"

namespace {

// The engine's linear layer, y^T = W x^T: W [out][in] row-major read transposed, x [n][in].
struct Linear {
  Device device;
  cublasLtHandle_t lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  std::vector<cublasLtMatrixLayout_t> layouts;
  int out, in;
  cudaDataType y_type;  // the output's type: f32 shows differences that rounding to bf16 can hide
  Linear(int out_, int in_, uint64_t workspace, cudaDataType y = CUDA_R_16BF) : out(out_), in(in_), y_type(y) {
    CHECK_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
    CHECK_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    int32_t t = CUBLAS_OP_T;
    CHECK_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t), CUBLAS_STATUS_SUCCESS);
    CHECK_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
    CHECK_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace),
             CUBLAS_STATUS_SUCCESS);
  }
  cublasLtMatrixLayout_t layout(uint64_t rows, uint64_t cols, cudaDataType type = CUDA_R_16BF) {
    cublasLtMatrixLayout_t l = nullptr;
    CHECK_EQ(cublasLtMatrixLayoutCreate(&l, type, rows, cols, (int64_t)rows), CUBLAS_STATUS_SUCCESS);
    layouts.push_back(l);
    return l;
  }
  // The heuristic's answers for n columns.
  std::vector<cublasLtMatmulHeuristicResult_t> heuristic(int n) {
    cublasLtMatrixLayout_t a = layout(in, out), b = layout(in, n), c = layout(out, n, y_type);
    std::vector<cublasLtMatmulHeuristicResult_t> results(8);
    int count = 0;
    CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, c, c, pref, 8, results.data(), &count), CUBLAS_STATUS_SUCCESS);
    results.resize(count);
    return results;
  }
  cublasStatus_t run(const cublasLtMatmulAlgo_t& algo, const Matrix& W, const Matrix& X, Matrix& Y, int n, CUdeviceptr workspace,
                     size_t workspace_bytes) {
    cublasLtMatrixLayout_t a = layout(in, out), b = layout(in, n), c = layout(out, n, y_type);
    float one = 1.0f, zero = 0.0f;
    return cublasLtMatmul(lt, desc, &one, (void*)W.device, a, (void*)X.device, b, &zero, (void*)Y.device, c, (void*)Y.device, c, &algo,
                          (void*)workspace, workspace_bytes, nullptr);
  }
  ~Linear() {
    for (cublasLtMatrixLayout_t l : layouts) cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
  }
};

uint32_t config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  uint32_t value = 0;
  size_t written = 0;
  CHECK_EQ(cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &value, sizeof value, &written), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(written, sizeof value);
  return value;
}

cublasLtMatmulAlgo_t unsplit(cublasLtMatmulAlgo_t algo) {
  uint32_t one = 1, none = CUBLASLT_REDUCTION_SCHEME_NONE;
  CHECK_EQ(cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof one), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none, sizeof none), CUBLAS_STATUS_SUCCESS);
  return algo;
}

// cublasGemmEx's y for the first n columns of X.
std::vector<float> gemm_ex(const Matrix& W, const Matrix& X, int out, int in, int n, cudaDataType y_type = CUDA_R_16BF) {
  cublasHandle_t handle = nullptr;
  CHECK_EQ(cublasCreate_v2(&handle), CUBLAS_STATUS_SUCCESS);
  Matrix Y(out, n, out, y_type, 1u);
  float one = 1.0f, zero = 0.0f;
  CHECK_EQ(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, (void*)W.device, CUDA_R_16BF, in, (void*)X.device, CUDA_R_16BF,
                        in, &zero, (void*)Y.device, y_type, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
           CUBLAS_STATUS_SUCCESS);
  std::vector<float> y = Y.download();
  CHECK_EQ(cublasDestroy_v2(handle), CUBLAS_STATUS_SUCCESS);
  return y;
}

}  // namespace

TEST(the_heuristic_splits_k_for_one_column_and_the_split_changes_the_bits) {
  const int out = 96, in = 1024;
  const size_t workspace_bytes = 1 << 20;
  {
    Linear linear(out, in, workspace_bytes, CUDA_R_32F);
    Matrix W(in, out, in, CUDA_R_16BF, 3u), X(in, 1, in, CUDA_R_16BF, 5u);
    // Full bf16 mantissas, so that the f32 sums round and the order of the additions shows.
    for (int l = 0; l < in; l++) X.values[l] = from_bf16(to_bf16(X.values[l] * (1.0f + l * 0.00731f)));
    X.upload();
    std::vector<cublasLtMatmulHeuristicResult_t> one_column = linear.heuristic(1);
    CHECK(one_column.size() >= 3);
    CHECK_EQ(config(one_column[0].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM), 4u);
    CHECK(one_column[0].workspaceSize > 0);
    std::vector<cublasLtMatmulHeuristicResult_t> many_columns = linear.heuristic(256);
    CHECK_EQ(config(many_columns[0].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM), 1u);

    CUdeviceptr workspace = device_alloc(workspace_bytes);
    Matrix split(out, 1, out, CUDA_R_32F, 7u), whole(out, 1, out, CUDA_R_32F, 7u);
    CHECK_EQ(linear.run(one_column[0].algo, W, X, split, 1, workspace, workspace_bytes), CUBLAS_STATUS_SUCCESS);
    CHECK_EQ(linear.run(unsplit(one_column[0].algo), W, X, whole, 1, workspace, workspace_bytes), CUBLAS_STATUS_SUCCESS);
    std::vector<float> want = gemm_ex(W, X, out, in, 1, CUDA_R_32F), got_whole = whole.download(), got_split = split.download();
    int differ = 0;
    for (int i = 0; i < out; i++) {
      CHECK(same_bits(got_whole[i], want[i]));
      differ += !same_bits(got_split[i], want[i]);
    }
    CHECK(differ > 0);
    cuMemFree_v2(workspace);
  }
  CHECK_EQ(cublasLtEmulatorLiveObjects(), 0);
}

TEST(one_unsplit_algorithm_gives_a_column_the_same_bits_alone_and_in_a_batch) {
  const int out = 130, in = 700;
  Linear linear(out, in, 0);
  Matrix W(in, out, in, CUDA_R_16BF, 11u), X(in, 256, in, CUDA_R_16BF, 13u);
  cublasLtMatmulAlgo_t algo = unsplit(linear.heuristic(256)[0].algo);
  std::vector<std::vector<float>> firsts;
  for (int n : {1, 9, 256}) {
    Matrix Y(out, n, out, CUDA_R_16BF, 17u);
    CHECK_EQ(linear.run(algo, W, X, Y, n, 0, 0), CUBLAS_STATUS_SUCCESS);
    std::vector<float> y = Y.download();
    firsts.push_back(std::vector<float>(y.begin(), y.begin() + out));
  }
  std::vector<float> want = gemm_ex(W, X, out, in, 1);
  for (const std::vector<float>& first : firsts) CHECK(memcmp(first.data(), want.data(), out * 4) == 0);
}

TEST(status_codes_for_bad_arguments) {
  const int out = 16, in = 512;
  Linear linear(out, in, 1 << 20);
  Matrix W(in, out, in, CUDA_R_16BF, 1u), X(in, 1, in, CUDA_R_16BF, 2u), Y(out, 1, out, CUDA_R_16BF, 3u), Z(out, 1, out, CUDA_R_16BF, 4u);
  cublasLtMatmulAlgo_t split = linear.heuristic(1)[0].algo;
  harness::Stderr err;  // each refusal is explained on stderr
  // Too little workspace for a split-K algorithm.
  CHECK_EQ(linear.run(split, W, X, Y, 1, 0, 0), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_CONTAINS(err.text(), "workspace");
  // Split-K without a reduction scheme.
  cublasLtMatmulAlgo_t no_scheme = split;
  uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
  CHECK_EQ(cublasLtMatmulAlgoConfigSetAttribute(&no_scheme, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none, sizeof none), CUBLAS_STATUS_SUCCESS);
  cublasLtMatrixLayout_t a = linear.layout(in, out), b = linear.layout(in, 1), c = linear.layout(out, 1), wrong = linear.layout(out, 2);
  cublasLtMatmulHeuristicResult_t result;
  CHECK_EQ(cublasLtMatmulAlgoCheck(linear.lt, linear.desc, a, b, c, c, &no_scheme, &result), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(cublasLtMatmulAlgoCheck(linear.lt, linear.desc, a, b, c, c, &split, &result), CUBLAS_STATUS_SUCCESS);
  CHECK(result.workspaceSize > 0);
  // C and D apart, D of the wrong shape, the algorithm id read-only, a wrong attribute size.
  float one = 1.0f, zero = 0.0f;
  cublasLtMatmulAlgo_t whole = unsplit(split);
  CHECK_EQ(cublasLtMatmul(linear.lt, linear.desc, &one, (void*)W.device, a, (void*)X.device, b, &zero, (void*)Y.device, c, (void*)Z.device, c,
                          &whole, nullptr, 0, nullptr),
           CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(cublasLtMatmul(linear.lt, linear.desc, &one, (void*)W.device, a, (void*)X.device, b, &zero, (void*)Y.device, wrong,
                          (void*)Y.device, wrong, &whole, nullptr, 0, nullptr),
           CUBLAS_STATUS_INVALID_VALUE);
  uint32_t id = 1;
  CHECK_EQ(cublasLtMatmulAlgoConfigSetAttribute(&whole, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id), CUBLAS_STATUS_INVALID_VALUE);
  uint64_t wide = 1;
  CHECK_EQ(cublasLtMatmulAlgoConfigSetAttribute(&whole, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &wide, sizeof wide), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(cublasLtMatmulDescSetAttribute(linear.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &id, sizeof id), CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK_EQ(cublasLtMatmul(nullptr, linear.desc, &one, (void*)W.device, a, (void*)X.device, b, &zero, (void*)Y.device, c, (void*)Y.device, c,
                          &whole, nullptr, 0, nullptr),
           CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK_EQ(cublasLtMatmul(linear.lt, linear.desc, &one, (void*)W.device, a, (void*)X.device, b, &zero, (void*)Y.device, c, (void*)Y.device, c,
                          &whole, nullptr, 0, nullptr),
           CUBLAS_STATUS_SUCCESS);
}
