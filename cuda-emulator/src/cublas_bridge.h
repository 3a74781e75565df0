// What libcuda.so.1 exports for libcublas.so.13 and libcublasLt.so.13 (not CUDA API): cuBLAS's work is queued on the
// same streams as kernels (so it is deferred, captured into graphs and ordered with kernels),
// checks its matrices against the same allocations and runs on the same worker pool.
#pragma once

#include <stddef.h>

#include "cuda_emulator.h"

extern "C" {
// Queues run(data, ...) on hStream of the current context. run returns CUDA_SUCCESS or an error
// with the reason written to detail; free_data(data) is called once the op is gone (also when
// this call fails). what names the op in messages, stat is its CUDA_EMU_STATS row.
CUresult cuda_emulator_enqueue(CUstream hStream, const char* what, const char* stat,
                               CUresult (*run)(void* data, char* detail, size_t detail_bytes), void* data, void (*free_data)(void*));
// 1 when [p, p + bytes) lies in one live device allocation of `device`; else 0 and why not.
int cuda_emulator_check_range(CUdeviceptr p, size_t bytes, int device, char* why, size_t why_bytes);
// The current context's device, or -1 (reported on stderr as a failure of `call`).
int cuda_emulator_current_device(const char* call);
// Writes "cuda-emulator: <message>" as one line on stderr, as libcuda's own messages.
void cuda_emulator_report(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Runs fn(data, i) for every i in [0, tasks) on the worker pool.
void cuda_emulator_parallel_for(size_t tasks, void (*fn)(void* data, size_t task), void* data);
}
