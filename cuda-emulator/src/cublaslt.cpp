// libcublasLt.so.13 stand-in: the cuBLASLt subset an engine needs to run every GEMM of a shape with
// one algorithm it chose at load: handles, matmul descriptors (transposes), column-major matrix
// layouts, preferences (workspace limit), the algorithm heuristic, algorithm configuration
// attributes, the algorithm check, and cublasLtMatmul with C == D. The arithmetic is libcublas's
// (cublasEmulatorEnqueueGemm): the same sums, queued on the given stream.
//
// The heuristic imitates the one property of cuBLASLt's that matters to a batch-invariant engine:
// its choice depends on the shape. For few columns (n <= 16, the rows of a decode batch) over a
// long k (>= 256) it offers split-K algorithms first (4, then 2 parts, when the workspace allows),
// and split-K really sums k in parts (different bits); otherwise, or after them, unsplit ones.
// So an engine that takes the heuristic's first answer per batch size gets results that depend on
// the batch on this device too, and one that pins CUBLASLT_ALGO_CONFIG_SPLITK_NUM to 1 does not.
//
// An algorithm the emulator made carries its mark in data[0]'s high half: the algorithm id (low
// half), then data[1 .. 6] the configuration attributes CUBLASLT_ALGO_CONFIG_TILE_ID .. STAGES_ID.
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "cublas_bridge.h"
#include "cublas_emulator.h"
#include "cublaslt_emulator.h"

#define CUBLASLT_EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr uint64_t kMark = 0x454d554cull;  // "EMUL"
constexpr int kAlgorithms = 3;             // ids 0, 1, 2 (tiles 64x64, 128x64, 128x128)
const uint32_t kTiles[kAlgorithms] = {CUBLASLT_MATMUL_TILE_64x64, CUBLASLT_MATMUL_TILE_128x64, CUBLASLT_MATMUL_TILE_128x128};

struct LtHandle {
  int device;
};
struct Desc {
  cublasComputeType_t compute;
  cudaDataType scale;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  int32_t pointer_mode = 0;  // CUBLASLT_POINTER_MODE_HOST
};
struct Layout {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
};
struct Preference {
  uint64_t max_workspace = 0;
};

std::mutex objects_mutex;
std::unordered_set<void*> objects;  // every live handle, descriptor, layout and preference

// With objects_mutex held.
template <typename T> T* live_locked(void* p) { return objects.count(p) ? (T*)p : nullptr; }

template <typename T> T* live(void* p) {
  std::lock_guard<std::mutex> lock(objects_mutex);
  return live_locked<T>(p);
}
template <typename T> cublasStatus_t create(T* object, void** out) {
  std::lock_guard<std::mutex> lock(objects_mutex);
  objects.insert(object);
  *out = object;
  return CUBLAS_STATUS_SUCCESS;
}
template <typename T> cublasStatus_t destroy(void* p, const char* call) {
  T* object = live<T>(p);
  if (object == nullptr) {
    cuda_emulator_report("%s: %p is not a live object of this library", call, p);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  std::lock_guard<std::mutex> lock(objects_mutex);
  objects.erase(p);
  delete object;
  return CUBLAS_STATUS_SUCCESS;
}


// The problem a descriptor and four layouts describe, or why they do not describe one.
struct Problem {
  LtHandle* handle;
  int m, n, k;
  const Desc* desc;
  const Layout *a, *b, *c, *d;
};

// One lock for the five lookups: cublasLtMatmul runs per GEMM, so its host cost is what the engine's
// host-time benchmark reads.
const char* problem(void* handlep, void* descp, void* ap, void* bp, void* cp, void* dp, Problem* out) {
  static thread_local char why[512];
  LtHandle* handle;
  const Desc* desc;
  const Layout *a, *b, *c, *d;
  {
    std::lock_guard<std::mutex> lock(objects_mutex);
    handle = live_locked<LtHandle>(handlep);
    desc = live_locked<Desc>(descp);
    a = live_locked<Layout>(ap), b = live_locked<Layout>(bp), c = live_locked<Layout>(cp), d = live_locked<Layout>(dp);
  }
  out->handle = handle;
  if (handle == nullptr) return "the handle is not a live one (cublasLtCreate)";
  if (desc == nullptr) return "the matmul descriptor is not a live one (cublasLtMatmulDescCreate)";
  if (a == nullptr || b == nullptr || c == nullptr || d == nullptr) return "a matrix layout is not a live one (cublasLtMatrixLayoutCreate)";
  bool ta = desc->transa != CUBLAS_OP_N, tb = desc->transb != CUBLAS_OP_N;
  uint64_t m = ta ? a->cols : a->rows, k = ta ? a->rows : a->cols;
  uint64_t kb = tb ? b->cols : b->rows, n = tb ? b->rows : b->cols;
  if (kb != k) {
    snprintf(why, sizeof why, "op(A) is %llu x %llu but op(B) is %llu x %llu", (unsigned long long)m, (unsigned long long)k,
             (unsigned long long)kb, (unsigned long long)n);
    return why;
  }
  if (c->rows != m || c->cols != n || d->rows != m || d->cols != n || c->type != d->type || c->ld != d->ld) {
    snprintf(why, sizeof why, "C and D must both be %llu x %llu of one type and ld (C %llu x %llu, D %llu x %llu)", (unsigned long long)m,
             (unsigned long long)n, (unsigned long long)c->rows, (unsigned long long)c->cols, (unsigned long long)d->rows,
             (unsigned long long)d->cols);
    return why;
  }
  if (m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff) return "a dimension over 2^31 - 1";
  if (desc->pointer_mode != 0) return "the emulator takes alpha and beta on the host only (CUBLASLT_POINTER_MODE_HOST)";
  *out = Problem{handle, (int)m, (int)n, (int)k, desc, a, b, c, d};
  return nullptr;
}

bool emulator_algo(const cublasLtMatmulAlgo_t* algo) { return algo != nullptr && (algo->data[0] >> 32) == kMark; }
uint32_t config(const cublasLtMatmulAlgo_t& algo, int attr) { return (uint32_t)algo.data[attr]; }

cublasLtMatmulAlgo_t make_algo(int id, uint32_t splits) {
  cublasLtMatmulAlgo_t algo;
  memset(&algo, 0, sizeof algo);
  algo.data[CUBLASLT_ALGO_CONFIG_ID] = kMark << 32 | (uint32_t)id;
  algo.data[CUBLASLT_ALGO_CONFIG_TILE_ID] = kTiles[id];
  algo.data[CUBLASLT_ALGO_CONFIG_SPLITK_NUM] = splits;
  algo.data[CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME] = splits > 1 ? CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE : CUBLASLT_REDUCTION_SCHEME_NONE;
  return algo;
}

// Bytes of workspace an algorithm needs for a problem: a split-K one keeps its parts' f32 sums.
size_t workspace_of(const cublasLtMatmulAlgo_t& algo, const Problem& p) {
  uint32_t splits = config(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM);
  return splits > 1 ? (size_t)p.m * p.n * splits * sizeof(float) : 0;
}

// Why an algorithm cannot run a problem, or null.
const char* unusable(const cublasLtMatmulAlgo_t* algo, const Problem& p) {
  if (!emulator_algo(algo)) return "not an algorithm of this emulator (cublasLtMatmulAlgoGetHeuristic)";
  uint32_t splits = config(*algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM);
  uint32_t scheme = config(*algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME);
  if (splits < 1) return "CUBLASLT_ALGO_CONFIG_SPLITK_NUM below 1";
  if (splits > 1 && scheme == CUBLASLT_REDUCTION_SCHEME_NONE) return "split-K without a reduction scheme";
  if (splits == 1 && scheme != CUBLASLT_REDUCTION_SCHEME_NONE) return "a reduction scheme without split-K";
  if ((int)splits > (p.k > 0 ? p.k : 1)) return "more split-K parts than k";
  return nullptr;
}

}  // namespace

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  int device = cuda_emulator_current_device("cublasLtCreate");
  if (device < 0) return CUBLAS_STATUS_NOT_INITIALIZED;
  return create(new LtHandle{device}, (void**)handle);
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) { return destroy<LtHandle>(handle, "cublasLtDestroy"); }

CUBLASLT_EMU_EXPORT size_t cublasLtGetVersion(void) { return 130000; }

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType scale) {
  if (desc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if ((compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC) || scale != CUDA_R_32F) {
    cuda_emulator_report("cublasLtMatmulDescCreate: compute type %d, scale type %d: the emulator does CUBLAS_COMPUTE_32F(_PEDANTIC) with CUDA_R_32F scale",
           (int)compute, (int)scale);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  Desc* d = new Desc;
  d->compute = compute;
  d->scale = scale;
  return create(d, (void**)desc);
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  return destroy<Desc>(desc, "cublasLtMatmulDescDestroy");
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t descp, cublasLtMatmulDescAttributes_t attr,
                                                                  const void* buf, size_t size) {
  Desc* desc = live<Desc>(descp);
  if (desc == nullptr || buf == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  int32_t* field = attr == CUBLASLT_MATMUL_DESC_TRANSA ? &desc->transa
                   : attr == CUBLASLT_MATMUL_DESC_TRANSB ? &desc->transb
                   : attr == CUBLASLT_MATMUL_DESC_POINTER_MODE ? &desc->pointer_mode
                                                               : nullptr;
  if (field == nullptr) {
    cuda_emulator_report("cublasLtMatmulDescSetAttribute: attribute %d: the emulator sets TRANSA, TRANSB and POINTER_MODE only", (int)attr);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (size != sizeof(int32_t)) {
    cuda_emulator_report("cublasLtMatmulDescSetAttribute: attribute %d takes 4 bytes, not %zu", (int)attr, size);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  int32_t value;
  memcpy(&value, buf, sizeof value);
  bool op = attr != CUBLASLT_MATMUL_DESC_POINTER_MODE;
  if (op ? (value != CUBLAS_OP_N && value != CUBLAS_OP_T && value != CUBLAS_OP_C) : value < 0) {
    cuda_emulator_report("cublasLtMatmulDescSetAttribute: %d is not a value of attribute %d", (int)value, (int)attr);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  *field = op && value == CUBLAS_OP_C ? CUBLAS_OP_T : value;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows, uint64_t cols,
                                                              int64_t ld) {
  if (layout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (type != CUDA_R_32F && type != CUDA_R_16BF) {
    cuda_emulator_report("cublasLtMatrixLayoutCreate: type %d: the emulator does CUDA_R_32F and CUDA_R_16BF", (int)type);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (ld < (int64_t)(rows > 1 ? rows : 1)) {
    cuda_emulator_report("cublasLtMatrixLayoutCreate: ld %lld < max(1, rows %llu) (column-major)", (long long)ld, (unsigned long long)rows);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return create(new Layout{type, rows, cols, ld}, (void**)layout);
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  return destroy<Layout>(layout, "cublasLtMatrixLayoutDestroy");
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (pref == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  return create(new Preference, (void**)pref);
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  return destroy<Preference>(pref, "cublasLtMatmulPreferenceDestroy");
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t prefp,
                                                                        cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                                        size_t size) {
  Preference* pref = live<Preference>(prefp);
  if (pref == nullptr || buf == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
    cuda_emulator_report("cublasLtMatmulPreferenceSetAttribute: attribute %d: the emulator sets MAX_WORKSPACE_BYTES only", (int)attr);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (size != sizeof(uint64_t)) {
    cuda_emulator_report("cublasLtMatmulPreferenceSetAttribute: MAX_WORKSPACE_BYTES takes 8 bytes, not %zu", size);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  memcpy(&pref->max_workspace, buf, sizeof(uint64_t));
  return CUBLAS_STATUS_SUCCESS;
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                                                  cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                                                  cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t prefp, int requested,
                                                                  cublasLtMatmulHeuristicResult_t* results, int* returned) {
  if (live<LtHandle>(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  Preference* pref = live<Preference>(prefp);
  if (pref == nullptr || results == nullptr || returned == nullptr || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  Problem p;
  if (const char* why = problem(handle, desc, a, b, c, d, &p)) {
    cuda_emulator_report("cublasLtMatmulAlgoGetHeuristic: %s", why);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  cublasLtMatmulAlgo_t offered[2 + kAlgorithms];
  int count = 0;
  if (p.n <= 16 && p.k >= 256) {
    offered[count++] = make_algo(0, 4);
    offered[count++] = make_algo(0, 2);
  }
  for (int id = 0; id < kAlgorithms; id++) offered[count++] = make_algo(id, 1);
  int n = 0;
  for (int i = 0; i < count && n < requested; i++) {
    size_t workspace = workspace_of(offered[i], p);
    if (workspace > pref->max_workspace) continue;
    memset(&results[n], 0, sizeof results[n]);
    results[n].algo = offered[i];
    results[n].workspaceSize = workspace;
    results[n].state = CUBLAS_STATUS_SUCCESS;
    results[n].wavesCount = 1.0f;
    n++;
  }
  *returned = n;
  return n > 0 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulAlgoConfigSetAttribute(cublasLtMatmulAlgo_t* algo, cublasLtMatmulAlgoConfigAttributes_t attr,
                                                                        const void* buf, size_t size) {
  if (!emulator_algo(algo) || buf == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (attr <= CUBLASLT_ALGO_CONFIG_ID || attr > CUBLASLT_ALGO_CONFIG_STAGES_ID) {
    cuda_emulator_report("cublasLtMatmulAlgoConfigSetAttribute: attribute %d is read-only or unknown here (TILE_ID .. STAGES_ID are settable)", (int)attr);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (size != sizeof(uint32_t)) {
    cuda_emulator_report("cublasLtMatmulAlgoConfigSetAttribute: attribute %d takes 4 bytes, not %zu", (int)attr, size);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  uint32_t value;
  memcpy(&value, buf, sizeof value);
  algo->data[attr] = value;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulAlgoConfigGetAttribute(const cublasLtMatmulAlgo_t* algo,
                                                                        cublasLtMatmulAlgoConfigAttributes_t attr, void* buf, size_t size,
                                                                        size_t* written) {
  if (!emulator_algo(algo) || attr < CUBLASLT_ALGO_CONFIG_ID || attr > CUBLASLT_ALGO_CONFIG_STAGES_ID) return CUBLAS_STATUS_INVALID_VALUE;
  if (size == 0) {
    if (written == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    *written = sizeof(uint32_t);
    return CUBLAS_STATUS_SUCCESS;
  }
  if (buf == nullptr || size != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
  uint32_t value = config(*algo, attr);
  memcpy(buf, &value, sizeof value);
  if (written != nullptr) *written = sizeof value;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmulAlgoCheck(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                                           cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                           const cublasLtMatmulAlgo_t* algo, cublasLtMatmulHeuristicResult_t* result) {
  if (live<LtHandle>(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (result == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  Problem p;
  const char* why = problem(handle, desc, a, b, c, d, &p);
  if (why == nullptr) why = unusable(algo, p);
  if (why != nullptr) {
    cuda_emulator_report("cublasLtMatmulAlgoCheck: %s", why);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  memset(result, 0, sizeof *result);
  result->algo = *algo;
  result->workspaceSize = workspace_of(*algo, p);
  result->state = CUBLAS_STATUS_SUCCESS;
  result->wavesCount = 1.0f;
  return CUBLAS_STATUS_SUCCESS;
}

CUBLASLT_EMU_EXPORT cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                                                  cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                                                  const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t d,
                                                  const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                                                  cudaStream_t stream) {
  Problem p{};
  const char* why = problem(handle, desc, a, b, c, d, &p);
  if (p.handle == nullptr) {
    cuda_emulator_report("cublasLtMatmul: %s", why);
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  cublasLtMatmulAlgo_t chosen = algo != nullptr ? *algo : make_algo(0, 1);
  if (why == nullptr) why = unusable(&chosen, p);
  if (why == nullptr && C != D) why = "the emulator computes in place only: C and D must be the same matrix";
  if (why == nullptr && workspace_of(chosen, p) > workspace_bytes) why = "the algorithm needs more workspace than given";
  if (why == nullptr && workspace_bytes > 0 && workspace == nullptr) why = "a workspace size without a workspace";
  if (why != nullptr) {
    cuda_emulator_report("cublasLtMatmul(m=%d n=%d k=%d): %s", p.m, p.n, p.k, why);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (p.a->type != p.b->type) {
    cuda_emulator_report("cublasLtMatmul: A and B of different types (%d, %d)", (int)p.a->type, (int)p.b->type);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  return cublasEmulatorEnqueueGemm("cublasLtMatmul", p.handle->device, stream, (cublasOperation_t)p.desc->transa,
                                   (cublasOperation_t)p.desc->transb, p.m, p.n, p.k, alpha, A, p.a->type, (int)p.a->ld, B, p.b->type,
                                   (int)p.b->ld, beta, D, p.d->type, (int)p.d->ld, p.desc->compute,
                                   (int)config(chosen, CUBLASLT_ALGO_CONFIG_SPLITK_NUM));
}

CUBLASLT_EMU_EXPORT int cublasLtEmulatorLiveObjects(void) {
  std::lock_guard<std::mutex> lock(objects_mutex);
  return (int)objects.size();
}
