// The CUDA driver API of the emulated device (libcuda.so.1 built by scripts/build-cuda-emulator):
// the subset of CUDA 13's <cuda.h> the emulator implements, with CUDA's names, values and exact
// signatures, plus the emulator's own test query (cuEmulatorLiveObjects).
//
// Include either alone (the emulator's sources and tests do: no CUDA toolkit needed) or after the
// real <cuda.h>. In the second case this header defines no types of its own and only redeclares
// the functions: a declaration whose signature differs from CUDA's is then a compile error
// ("conflicting declaration of C function"), and test/cuda_h_check.cpp asserts that every constant
// below has CUDA's value. The build runs that check whenever a CUDA toolkit's cuda.h is installed.
//
// Symbol names are the ones <cuda.h>'s macros map to (cuMemAlloc -> cuMemAlloc_v2, ...): the
// emulator exports only those, as the engine binds them by name through FFM.
#pragma once

#include <stddef.h>
#include <stdint.h>

// ---- Constants, as X-macro lists: X(name, value) or X(name, value, description). The lists are
// defined in both modes so that the compile check can compare every value with CUDA's.

// CUresult: name, value, the text cuGetErrorString returns.
#define CUDA_EMULATOR_RESULTS(X)                                                                              \
  X(CUDA_SUCCESS, 0, "no error")                                                                            \
  X(CUDA_ERROR_INVALID_VALUE, 1, "invalid argument")                                                        \
  X(CUDA_ERROR_OUT_OF_MEMORY, 2, "out of memory")                                                           \
  X(CUDA_ERROR_NOT_INITIALIZED, 3, "initialization error")                                                  \
  X(CUDA_ERROR_DEINITIALIZED, 4, "driver shutting down")                                                    \
  X(CUDA_ERROR_NO_DEVICE, 100, "no CUDA-capable device is detected")                                        \
  X(CUDA_ERROR_INVALID_DEVICE, 101, "invalid device ordinal")                                               \
  X(CUDA_ERROR_INVALID_IMAGE, 200, "device kernel image is invalid")                                        \
  X(CUDA_ERROR_INVALID_CONTEXT, 201, "invalid device context")                                              \
  X(CUDA_ERROR_NO_BINARY_FOR_GPU, 209, "no kernel image is available for execution on the device")          \
  X(CUDA_ERROR_INVALID_PTX, 218, "a PTX JIT compilation failed")                                            \
  X(CUDA_ERROR_INVALID_HANDLE, 400, "invalid resource handle")                                              \
  X(CUDA_ERROR_ILLEGAL_STATE, 401, "the operation cannot be performed in the present state")                \
  X(CUDA_ERROR_NOT_FOUND, 500, "named symbol not found")                                                    \
  X(CUDA_ERROR_NOT_READY, 600, "device not ready")                                                          \
  X(CUDA_ERROR_ILLEGAL_ADDRESS, 700, "an illegal memory access was encountered")                            \
  X(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, 701, "too many resources requested for launch")                     \
  X(CUDA_ERROR_LAUNCH_TIMEOUT, 702, "the launch timed out and was terminated")                              \
  X(CUDA_ERROR_CONTEXT_IS_DESTROYED, 709, "context is destroyed")                                           \
  X(CUDA_ERROR_ASSERT, 710, "device-side assert triggered")                                                 \
  X(CUDA_ERROR_ILLEGAL_INSTRUCTION, 715, "an illegal instruction was encountered")                          \
  X(CUDA_ERROR_MISALIGNED_ADDRESS, 716, "misaligned address")                                               \
  X(CUDA_ERROR_LAUNCH_FAILED, 719, "unspecified launch failure")                                            \
  X(CUDA_ERROR_NOT_PERMITTED, 800, "operation not permitted")                                               \
  X(CUDA_ERROR_NOT_SUPPORTED, 801, "operation not supported")                                               \
  X(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, 900, "operation not permitted when stream is capturing")          \
  X(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, 901, "operation failed due to a previous error during capture")   \
  X(CUDA_ERROR_STREAM_CAPTURE_MERGE, 902, "operation would result in a merge of separate capture sequences") \
  X(CUDA_ERROR_STREAM_CAPTURE_UNMATCHED, 903, "capture was not ended in the same stream as it began")        \
  X(CUDA_ERROR_STREAM_CAPTURE_UNJOINED, 904, "capturing stream has unjoined work")                          \
  X(CUDA_ERROR_STREAM_CAPTURE_ISOLATION, 905, "dependency created on uncaptured work in another stream")     \
  X(CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, 906, "operation would make the legacy stream depend on a capturing blocking stream") \
  X(CUDA_ERROR_CAPTURED_EVENT, 907, "operation not permitted on an event last recorded in a capturing stream") \
  X(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD, 908, "attempt to terminate a thread-local capture sequence from another thread") \
  X(CUDA_ERROR_UNKNOWN, 999, "unknown error")

// CUdevice_attribute values the emulator reports (others in range read as 0).
#define CUDA_EMULATOR_DEVICE_ATTRIBUTES(X)             \
  X(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1)      \
  X(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, 2)            \
  X(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y, 3)            \
  X(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z, 4)            \
  X(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, 5)             \
  X(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, 6)             \
  X(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z, 7)             \
  X(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, 8) \
  X(CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY, 9)      \
  X(CU_DEVICE_ATTRIBUTE_WARP_SIZE, 10)                 \
  X(CU_DEVICE_ATTRIBUTE_MAX_PITCH, 11)                 \
  X(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, 12)   \
  X(CU_DEVICE_ATTRIBUTE_CLOCK_RATE, 13)                \
  X(CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT, 14)         \
  X(CU_DEVICE_ATTRIBUTE_GPU_OVERLAP, 15)               \
  X(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 16)      \
  X(CU_DEVICE_ATTRIBUTE_INTEGRATED, 18)                \
  X(CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, 19)       \
  X(CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS, 31)        \
  X(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 33)                \
  X(CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, 36)         \
  X(CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, 37)   \
  X(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, 38)             \
  X(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 39) \
  X(CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, 40)        \
  X(CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 41)        \
  X(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 75)  \
  X(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 76)  \
  X(CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED, 78) \
  X(CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED, 79) \
  X(CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED, 80)  \
  X(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, 81) \
  X(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, 82) \
  X(CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, 83)            \
  X(CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, 95)        \
  X(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 97) \
  X(CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, 106) \
  X(CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, 111) \
  X(CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, 115)   \
  X(CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH, 120)           \
  X(CU_DEVICE_ATTRIBUTE_MAX, 148)

#define CUDA_EMULATOR_FUNCTION_ATTRIBUTES(X)                  \
  X(CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 0)               \
  X(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, 1)                   \
  X(CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES, 2)                    \
  X(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, 3)                    \
  X(CU_FUNC_ATTRIBUTE_NUM_REGS, 4)                            \
  X(CU_FUNC_ATTRIBUTE_PTX_VERSION, 5)                         \
  X(CU_FUNC_ATTRIBUTE_BINARY_VERSION, 6)                      \
  X(CU_FUNC_ATTRIBUTE_CACHE_MODE_CA, 7)                       \
  X(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 8)       \
  X(CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 9)

// Flags and small enums.
#define CUDA_EMULATOR_FLAGS(X)                   \
  X(CU_STREAM_DEFAULT, 0)                        \
  X(CU_STREAM_NON_BLOCKING, 1)                   \
  X(CU_EVENT_DEFAULT, 0)                         \
  X(CU_EVENT_BLOCKING_SYNC, 1)                   \
  X(CU_EVENT_DISABLE_TIMING, 2)                  \
  X(CU_EVENT_INTERPROCESS, 4)                    \
  X(CU_EVENT_RECORD_DEFAULT, 0)                  \
  X(CU_EVENT_RECORD_EXTERNAL, 1)                 \
  X(CU_EVENT_WAIT_DEFAULT, 0)                    \
  X(CU_EVENT_WAIT_EXTERNAL, 1)                   \
  X(CU_STREAM_CAPTURE_STATUS_NONE, 0)            \
  X(CU_STREAM_CAPTURE_STATUS_ACTIVE, 1)          \
  X(CU_STREAM_CAPTURE_STATUS_INVALIDATED, 2)     \
  X(CU_STREAM_CAPTURE_MODE_GLOBAL, 0)            \
  X(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, 1)      \
  X(CU_STREAM_CAPTURE_MODE_RELAXED, 2)           \
  X(CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH, 1) \
  X(CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD, 2)       \
  X(CUDA_GRAPH_INSTANTIATE_FLAG_DEVICE_LAUNCH, 4) \
  X(CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY, 8)

#ifndef __cuda_cuda_h__
// ---- Types, exactly as <cuda.h> defines them (only when the real header is not included).

#define CUDA_VERSION 13000
#define CUDAAPI

typedef unsigned long long CUdeviceptr_v2;
typedef CUdeviceptr_v2 CUdeviceptr;
typedef int CUdevice_v1;
typedef CUdevice_v1 CUdevice;
typedef struct CUctx_st* CUcontext;
typedef struct CUmod_st* CUmodule;
typedef struct CUfunc_st* CUfunction;
typedef struct CUevent_st* CUevent;
typedef struct CUstream_st* CUstream;
typedef struct CUgraph_st* CUgraph;
typedef struct CUgraphExec_st* CUgraphExec;

#define CUDA_EMULATOR_ENUMERATOR_(name, value, ...) name = value,
typedef enum cudaError_enum { CUDA_EMULATOR_RESULTS(CUDA_EMULATOR_ENUMERATOR_) } CUresult;
typedef enum CUdevice_attribute_enum { CUDA_EMULATOR_DEVICE_ATTRIBUTES(CUDA_EMULATOR_ENUMERATOR_) } CUdevice_attribute;
typedef enum CUfunction_attribute_enum { CUDA_EMULATOR_FUNCTION_ATTRIBUTES(CUDA_EMULATOR_ENUMERATOR_) } CUfunction_attribute;
typedef enum CUstream_flags_enum { CU_STREAM_DEFAULT = 0, CU_STREAM_NON_BLOCKING = 1 } CUstream_flags;
typedef enum CUevent_flags_enum {
  CU_EVENT_DEFAULT = 0, CU_EVENT_BLOCKING_SYNC = 1, CU_EVENT_DISABLE_TIMING = 2, CU_EVENT_INTERPROCESS = 4
} CUevent_flags;
typedef enum CUevent_record_flags_enum { CU_EVENT_RECORD_DEFAULT = 0, CU_EVENT_RECORD_EXTERNAL = 1 } CUevent_record_flags;
typedef enum CUevent_wait_flags_enum { CU_EVENT_WAIT_DEFAULT = 0, CU_EVENT_WAIT_EXTERNAL = 1 } CUevent_wait_flags;
typedef enum CUstreamCaptureStatus_enum {
  CU_STREAM_CAPTURE_STATUS_NONE = 0, CU_STREAM_CAPTURE_STATUS_ACTIVE = 1, CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2
} CUstreamCaptureStatus;
typedef enum CUstreamCaptureMode_enum {
  CU_STREAM_CAPTURE_MODE_GLOBAL = 0, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1, CU_STREAM_CAPTURE_MODE_RELAXED = 2
} CUstreamCaptureMode;
typedef enum CUgraphInstantiate_flags_enum {
  CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH = 1, CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD = 2,
  CUDA_GRAPH_INSTANTIATE_FLAG_DEVICE_LAUNCH = 4, CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY = 8
} CUgraphInstantiate_flags;
#undef CUDA_EMULATOR_ENUMERATOR_

#define CU_STREAM_LEGACY ((CUstream)0x1)
#define CU_STREAM_PER_THREAD ((CUstream)0x2)
#endif  // !__cuda_cuda_h__

#ifdef __cplusplus
extern "C" {
#endif

// ---- Errors, initialisation, devices
CUresult cuGetErrorName(CUresult error, const char** pStr);
CUresult cuGetErrorString(CUresult error, const char** pStr);
CUresult cuInit(unsigned int Flags);
CUresult cuDriverGetVersion(int* driverVersion);
CUresult cuDeviceGetCount(int* count);
CUresult cuDeviceGet(CUdevice* device, int ordinal);
CUresult cuDeviceGetName(char* name, int len, CUdevice dev);
CUresult cuDeviceGetAttribute(int* pi, CUdevice_attribute attrib, CUdevice dev);
CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev);
CUresult cuDeviceGetPCIBusId(char* pciBusId, int len, CUdevice dev);

// ---- Contexts: each device has one primary context; the current context is per OS thread.
CUresult cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice dev);
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev);
CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int* flags, int* active);
CUresult cuCtxSetCurrent(CUcontext ctx);
CUresult cuCtxGetCurrent(CUcontext* pctx);
CUresult cuCtxGetDevice(CUdevice* device);
CUresult cuCtxSynchronize(void);

// ---- Memory
CUresult cuMemGetInfo_v2(size_t* free, size_t* total);
CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytesize);
CUresult cuMemFree_v2(CUdeviceptr dptr);
CUresult cuMemGetAddressRange_v2(CUdeviceptr* pbase, size_t* psize, CUdeviceptr dptr);
CUresult cuMemAllocHost_v2(void** pp, size_t bytesize);
CUresult cuMemFreeHost(void* p);
CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount);
CUresult cuMemcpyDtoH_v2(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount);
CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount);
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount, CUstream hStream);
CUresult cuMemcpyDtoHAsync_v2(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N);
CUresult cuMemsetD16_v2(CUdeviceptr dstDevice, unsigned short us, size_t N);
CUresult cuMemsetD32_v2(CUdeviceptr dstDevice, unsigned int ui, size_t N);
CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream);
CUresult cuMemsetD16Async(CUdeviceptr dstDevice, unsigned short us, size_t N, CUstream hStream);
CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream);

// ---- Modules, functions, launches
CUresult cuModuleLoadData(CUmodule* module, const void* image);
CUresult cuModuleUnload(CUmodule hmod);
CUresult cuModuleGetFunction(CUfunction* hfunc, CUmodule hmod, const char* name);
CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value);
CUresult cuFuncGetAttribute(int* pi, CUfunction_attribute attrib, CUfunction hfunc);
CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                        unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                        unsigned int sharedMemBytes, CUstream hStream, void** kernelParams, void** extra);

// ---- Streams and events
CUresult cuStreamCreate(CUstream* phStream, unsigned int Flags);
CUresult cuStreamGetFlags(CUstream hStream, unsigned int* flags);
CUresult cuStreamQuery(CUstream hStream);
CUresult cuStreamSynchronize(CUstream hStream);
CUresult cuStreamDestroy_v2(CUstream hStream);
CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags);
CUresult cuEventCreate(CUevent* phEvent, unsigned int Flags);
CUresult cuEventRecord(CUevent hEvent, CUstream hStream);
CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream, unsigned int flags);
CUresult cuEventQuery(CUevent hEvent);
CUresult cuEventSynchronize(CUevent hEvent);
CUresult cuEventElapsedTime_v2(float* pMilliseconds, CUevent hStart, CUevent hEnd);
CUresult cuEventDestroy_v2(CUevent hEvent);

// ---- Stream capture and graphs
CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode);
CUresult cuStreamEndCapture(CUstream hStream, CUgraph* phGraph);
CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus* captureStatus);
CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode* mode);
CUresult cuGraphInstantiateWithFlags(CUgraphExec* phGraphExec, CUgraph hGraph, unsigned long long flags);
CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream);
CUresult cuGraphExecDestroy(CUgraphExec hGraphExec);
CUresult cuGraphDestroy(CUgraph hGraph);

// ---- The emulator's own query, for tests (not part of CUDA): how many objects of a kind the
// device's primary context holds now. kind: "allocations", "allocated_bytes", "host_allocations",
// "streams", "events", "modules", "graphs", "graph_execs". Returns -1 for an unknown device or kind.
int cuEmulatorLiveObjects(int device, const char* kind);

#ifdef __cplusplus
}
#endif
