// One kernel set: a CUDA source (CUDA_EMU_SOURCE) compiled unchanged by g++ for the emulator,
// with the table libcuda.so.1 finds its kernels by. scripts/build-cuda-emulator compiles this file
// once per .cu, in two passes, with include/device/cuda_device_shim.h forced in:
//
//   pass 1 (CUDA_EMU_PASS1, -O0): the source alone. The build reads the object's symbols:
//     - the functions in section .text.cuda_emulator_global are the __global__ kernels;
//     - the undefined thread-local symbols are the names of `extern __shared__` arrays.
//   pass 2: the source again, plus what pass 1 found, generated into CUDA_EMU_GENERATED/:
//     kernels.inc    CUDA_EMU_KERNEL(name) per kernel;
//     resources.inc  CUDA_EMU_RESOURCES(name, registers, static shared, local bytes) per kernel,
//                    from ptxas -v for sm_90 (empty without nvcc);
//     shared.inc     CUDA_EMU_EXTERN_SHARED("symbol") per extern __shared__ name.
//
// The result is linked into kernel-sets/<name>.so, which libcuda dlopen()s; its only export is
// cuda_emulator_kernel_set(). Everything else is hidden (-fvisibility=hidden), so kernel sets
// never see each other's symbols, even identical kernel names.
#include <cstddef>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_emulator_device.h"

// Dynamic shared memory: one buffer per OS thread (per running block), which every
// `extern __shared__` name aliases. Sized for the largest opt-in launch (227 KiB) plus the
// canary the scheduler checks after each block.
constexpr size_t kDynamicSharedCapacity = 227 * 1024 + 1024;
extern "C" {
alignas(128) thread_local unsigned char cuda_emulator_dynamic_shared[kDynamicSharedCapacity];
}

#include CUDA_EMU_SOURCE

#ifndef CUDA_EMU_PASS1

// A device-side assert() fails the launch with CUDA_ERROR_ASSERT instead of aborting the process.
// glibc's assert() calls this; the definition is hidden, so it only replaces it inside this set.
extern "C" void __assert_fail(const char* expression, const char* file, unsigned int line, const char* function) noexcept {
  cuda_emu::assert_failed(expression, file, line, function);
}

namespace {

template <typename T> T read_parameter(void* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

// Copies a kernel's parameters by value from cuLaunchKernel's kernelParams (an array of pointers
// to each argument) and later calls the kernel with them.
template <auto F> struct Launcher;
template <typename... A, void (*F)(A...)> struct Launcher<F> {
  using Values = std::tuple<std::decay_t<A>...>;
  struct Args final : cuda_emu::KernelArgs {
    Values values;
    void run() const override { std::apply(F, values); }
  };
  template <size_t... I> static void fill(Args* args, void* const* params, std::index_sequence<I...>) {
    args->values = Values(read_parameter<std::tuple_element_t<I, Values>>(params[I])...);
    (note_pointer<I>(args), ...);
  }
  template <size_t I> static void note_pointer(Args* args) {
    if constexpr (std::is_pointer_v<std::tuple_element_t<I, Values>>) {
      args->pointers.emplace_back((int)I, (uintptr_t)std::get<I>(args->values));
    }
  }
  static cuda_emu::KernelArgs* capture(void* const* params) {
    Args* args = new Args;
    fill(args, params, std::index_sequence_for<A...>{});
    return args;
  }
  static constexpr int param_count = sizeof...(A);
};

struct Resources {
  const char* name;
  int registers, static_shared_bytes, local_bytes;
};
constexpr Resources kResources[] = {
#define CUDA_EMU_RESOURCES(name, registers, shared, local) {#name, registers, shared, local},
#include "resources.inc"
#undef CUDA_EMU_RESOURCES
    {nullptr, -1, -1, -1}};

constexpr Resources resources_of(const char* name) {
  for (const Resources& r : kResources) {
    if (r.name == nullptr) return r;
    const char *a = r.name, *b = name;
    while (*a && *a == *b) a++, b++;
    if (*a == *b) return r;
  }
  return kResources[0];
}

const cuda_emu::KernelInfo kKernels[] = {
#define CUDA_EMU_KERNEL(name)                                                                                       \
  {#name, Launcher<&name>::param_count, &Launcher<&name>::capture, resources_of(#name).registers,                 \
   resources_of(#name).static_shared_bytes, resources_of(#name).local_bytes},
#include "kernels.inc"
#undef CUDA_EMU_KERNEL
};

unsigned char* dynamic_shared() { return cuda_emulator_dynamic_shared; }

const cuda_emu::KernelSet kSet = {
    cuda_emu::kKernelSetAbi,
    CUDA_EMU_SET_NAME,
    CUDA_EMU_SOURCE,
    CUDA_EMU_SOURCE_SHA256,
    kKernels,
    (int)(sizeof kKernels / sizeof kKernels[0]),
    &dynamic_shared,
    kDynamicSharedCapacity,
};

}  // namespace

// Every `extern __shared__` name becomes an alias of the one dynamic buffer, at the symbol level,
// so the alias needs no C++ type (the source's declarations give it one).
#define CUDA_EMU_EXTERN_SHARED(symbol)                                                       \
  asm(".globl " symbol "\n.hidden " symbol "\n.type " symbol ", @tls_object\n.set " symbol \
      ", cuda_emulator_dynamic_shared\n");
#include "shared.inc"
#undef CUDA_EMU_EXTERN_SHARED

extern "C" __attribute__((visibility("default"))) const cuda_emu::KernelSet* cuda_emulator_kernel_set() { return &kSet; }

#endif  // !CUDA_EMU_PASS1
