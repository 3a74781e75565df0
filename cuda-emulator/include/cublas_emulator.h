// The cuBLAS API of the emulated device (libcublas.so.13 built by scripts/build-cuda-emulator):
// the subset of cuBLAS 13 the emulator implements, plus its own test functions
// (cublasEmulatorLiveHandles, cublasEmulatorLimitIsa).
//
// Names, values and signatures follow NVIDIA's cuBLAS documentation (cuBLAS API reference,
// sections "cuBLAS Datatypes Reference" and "cuBLAS Helper Function Reference", cublasGemmEx and
// cublasGemmStridedBatchedEx). Unlike cuda_emulator.h they are NOT compile-checked against a real
// header: no cublas_api.h is installed where the emulator is built. cudaDataType values come from
// CUDA's library_types.h, which the check in test/cuda_h_check.cpp does compare when installed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cuda_emulator.h"

#define CUDA_EMULATOR_CUBLAS_STATUSES(X)                                                  \
  X(CUBLAS_STATUS_SUCCESS, 0, "the operation completed successfully")                     \
  X(CUBLAS_STATUS_NOT_INITIALIZED, 1, "the library was not initialized")                  \
  X(CUBLAS_STATUS_ALLOC_FAILED, 3, "the resource allocation failed")                      \
  X(CUBLAS_STATUS_INVALID_VALUE, 7, "an invalid numeric value was used as an argument")   \
  X(CUBLAS_STATUS_ARCH_MISMATCH, 8, "an absent device architectural feature is required") \
  X(CUBLAS_STATUS_MAPPING_ERROR, 11, "an access to GPU memory space failed")              \
  X(CUBLAS_STATUS_EXECUTION_FAILED, 13, "the GPU program failed to execute")              \
  X(CUBLAS_STATUS_INTERNAL_ERROR, 14, "an internal operation failed")                     \
  X(CUBLAS_STATUS_NOT_SUPPORTED, 15, "the functionality requested is not supported")      \
  X(CUBLAS_STATUS_LICENSE_ERROR, 16, "the functionality requested requires some license")

#ifndef CUBLAS_API_H_
typedef enum {
#define CUDA_EMULATOR_ENUMERATOR_(name, value, text) name = value,
  CUDA_EMULATOR_CUBLAS_STATUSES(CUDA_EMULATOR_ENUMERATOR_)
#undef CUDA_EMULATOR_ENUMERATOR_
} cublasStatus_t;

typedef struct cublasContext* cublasHandle_t;
typedef struct CUstream_st* cudaStream_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2, CUBLAS_OP_HERMITAN = 2, CUBLAS_OP_CONJG = 3 } cublasOperation_t;

typedef enum {
  CUBLAS_DEFAULT_MATH = 0,
  CUBLAS_TENSOR_OP_MATH = 1,
  CUBLAS_PEDANTIC_MATH = 2,
  CUBLAS_TF32_TENSOR_OP_MATH = 3,
  CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
} cublasMath_t;

typedef enum {
  CUBLAS_COMPUTE_16F = 64,
  CUBLAS_COMPUTE_16F_PEDANTIC = 65,
  CUBLAS_COMPUTE_32F = 68,
  CUBLAS_COMPUTE_32F_PEDANTIC = 69,
  CUBLAS_COMPUTE_32F_FAST_16F = 74,
  CUBLAS_COMPUTE_32F_FAST_16BF = 75,
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
  CUBLAS_COMPUTE_64F = 70,
  CUBLAS_COMPUTE_64F_PEDANTIC = 71,
  CUBLAS_COMPUTE_32I = 72,
  CUBLAS_COMPUTE_32I_PEDANTIC = 73
} cublasComputeType_t;

// CUBLAS_GEMM_DEFAULT .. CUBLAS_GEMM_ALGO23 and CUBLAS_GEMM_DEFAULT_TENSOR_OP .. ALGO15_TENSOR_OP.
typedef enum {
  CUBLAS_GEMM_DFALT = -1,
  CUBLAS_GEMM_DEFAULT = -1,
  CUBLAS_GEMM_ALGO0 = 0,
  CUBLAS_GEMM_ALGO23 = 23,
  CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99,
  CUBLAS_GEMM_ALGO0_TENSOR_OP = 100,
  CUBLAS_GEMM_ALGO15_TENSOR_OP = 115
} cublasGemmAlgo_t;
#endif  // !CUBLAS_API_H_

#ifndef __LIBRARY_TYPES_H__
// CUDA's library_types.h (the values the emulator accepts or names in its messages).
typedef enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
  CUDA_R_16F = 2,
  CUDA_R_8I = 3,
  CUDA_R_32I = 10,
  CUDA_R_16BF = 14
} cudaDataType;
#endif

#define CUDA_EMULATOR_DATA_TYPES(X) X(CUDA_R_32F, 0) X(CUDA_R_64F, 1) X(CUDA_R_16F, 2) X(CUDA_R_8I, 3) X(CUDA_R_32I, 10) X(CUDA_R_16BF, 14)

#ifdef __cplusplus
extern "C" {
#endif

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle);
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle);
cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version);
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId);
cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* streamId);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode);
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes);
const char* cublasGetStatusName(cublasStatus_t status);
const char* cublasGetStatusString(cublasStatus_t status);

// C = alpha * op(A) * op(B) + beta * C, column-major; alpha and beta are host pointers (to float,
// as the compute type is CUBLAS_COMPUTE_32F).
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype,
                            int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
                                          long long int strideA, const void* B, cudaDataType Btype, int ldb, long long int strideB,
                                          const void* beta, void* C, cudaDataType Ctype, int ldc, long long int strideC,
                                          int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo);

// The emulator's own functions, for tests (not part of cuBLAS):
// handles created and not destroyed;
int cublasEmulatorLiveHandles(void);
// limits the GEMM's vector code to level 0 (SSE2), 1 (AVX2) or 2 (AVX-512) and returns the level
// in effect (at most what the CPU has), so that each path is tested where the CPU has them all.
int cublasEmulatorLimitIsa(int level);
// libcublasLt.so.13's way to the GEMM: the checks and the queued work of cublasGemmEx on `stream` of
// `device`'s context, with k summed in `splits` parts (cuBLASLt's split-K; 1: one sum).
cublasStatus_t cublasEmulatorEnqueueGemm(const char* call, int device, cudaStream_t stream, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype,
                                         int lda, const void* B, cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype,
                                         int ldc, cublasComputeType_t computeType, int splits);

#ifdef __cplusplus
}
#endif
