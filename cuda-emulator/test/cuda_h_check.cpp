// Compile-only check (run by scripts/build-cuda-emulator where CUDA's cuda.h is installed): the
// emulator's declarations after CUDA's. A function declared with another signature than CUDA's is
// a "conflicting declaration of C function" error; a constant with another value fails below.
#include <cuda.h>
#include <library_types.h>

#include "cublas_emulator.h"
#include "cuda_emulator.h"

#define CUDA_EMU_CHECK_VALUE(name, value, ...) static_assert((long long)(name) == (long long)(value), #name " differs from CUDA's");
CUDA_EMULATOR_RESULTS(CUDA_EMU_CHECK_VALUE)
CUDA_EMULATOR_DEVICE_ATTRIBUTES(CUDA_EMU_CHECK_VALUE)
CUDA_EMULATOR_FUNCTION_ATTRIBUTES(CUDA_EMU_CHECK_VALUE)
CUDA_EMULATOR_FLAGS(CUDA_EMU_CHECK_VALUE)
CUDA_EMULATOR_DATA_TYPES(CUDA_EMU_CHECK_VALUE)
static_assert(CUDA_VERSION >= 13000, "the emulator implements CUDA 13's driver API");
