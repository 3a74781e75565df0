// Kernel sets, modules, functions and launches.
//
// Kernel sets: each CUDA source the emulator was built from (every model/src/main/cuda/*.cu and
// the emulator's test kernels) is a shared library kernel-sets/<name>.so next to libcuda.so.1,
// loaded by cuInit, listing its kernels with their CPU code and their ptxas resource use.
//
// Modules: the emulator cannot run the image's GPU code, so cuModuleLoadData checks that the image
// is a fatbin, cubin or PTX, reads its extent (from the fatbin or ELF header, or the PTX text) and
// binds it to the kernel set all of whose kernel names occur in it as names (the largest such
// set). An image that matches no set was compiled from other sources than the emulator: the
// load fails with CUDA_ERROR_NO_BINARY_FOR_GPU and a message to rebuild the emulator. Kernels are
// found by name in the module's set only; cuModuleUnload invalidates its functions.
//
// Launches: cuLaunchKernel checks what a GPU checks, and refuses, with CUDA's error and a message,
// what a GPU would let pass or fail later: zero or oversized grid and block dimensions, dynamic
// shared memory above the function's limit (48 KiB minus static, unless raised with
// cuFuncSetAttribute, at most 227 KiB), more registers than a block may have (ptxas's count for
// sm_90 x threads, when nvcc was there at build time), a NULL kernelParams, a function of an
// unloaded module. The kernel's arguments are copied at the call. When the launch runs, every
// non-null pointer argument must lie in a live allocation of the context's device (device memory
// or pinned host memory), and after every block the canaries around those allocations must be
// intact; otherwise the launch fails with CUDA_ERROR_ILLEGAL_ADDRESS.
#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstring>

#include "driver.h"

namespace cuda_emu {

struct Module;

struct Function {
  Context* ctx = nullptr;
  Module* module = nullptr;  // null once unloaded
  const KernelSet* set = nullptr;
  const KernelInfo* kernel = nullptr;
  int max_dynamic_shared = 48 * 1024;
  int carveout = -1;
  std::atomic<unsigned> warned{0};
};

struct Module {
  Context* ctx = nullptr;
  const KernelSet* set = nullptr;
  std::map<std::string, Function*> functions;
};

namespace {

constexpr int kMaxSharedOptIn = 227 * 1024;
constexpr int kDefaultSharedLimit = 48 * 1024;
constexpr int kRegistersPerBlock = 65536;

std::vector<const KernelSet*> kernel_sets;
std::string kernel_set_dir;
std::set<Function*> functions;  // every function ever made; unloaded ones stay, marked

bool is_name_char(unsigned char c) { return c == '_' || c == '$' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

// Whether `name` occurs in the image as a whole name (not inside a longer identifier).
bool contains_name(const unsigned char* image, size_t length, const char* name) {
  size_t n = strlen(name);
  const unsigned char* p = image;
  const unsigned char* end = image + length;
  while (p + n <= end) {
    const unsigned char* hit = (const unsigned char*)memmem(p, end - p, name, n);
    if (hit == nullptr) return false;
    bool starts = hit == image || !is_name_char(hit[-1]);
    bool ends = hit + n == end || !is_name_char(hit[n]);
    if (starts && ends) return true;
    p = hit + 1;
  }
  return false;
}

// The image's kind and extent; false when it is not a fatbin, cubin or PTX.
bool image_extent(const unsigned char* b, const char** kind, size_t* length) {
  static const unsigned char kFatbin[4] = {0x50, 0xed, 0x55, 0xba};  // 0xba55ed50
  if (memcmp(b, kFatbin, 4) == 0) {
    uint16_t header;
    uint64_t payload;
    memcpy(&header, b + 6, 2);
    memcpy(&payload, b + 8, 8);
    *kind = "fatbin";
    *length = header + payload;
    return header >= 16 && payload < (1ull << 34);
  }
  if (b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F' && b[4] == 2) {
    uint64_t section_headers;
    uint16_t entry, count;
    memcpy(&section_headers, b + 0x28, 8);
    memcpy(&entry, b + 0x3a, 2);
    memcpy(&count, b + 0x3c, 2);
    *kind = "cubin";
    *length = section_headers + (uint64_t)entry * count;
    return *length < (1ull << 34);
  }
  const char* text = (const char*)b;
  while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') text++;
  if (strncmp(text, "//", 2) == 0 || strncmp(text, ".version", 8) == 0) {
    *kind = "PTX";
    *length = strlen((const char*)b);
    return true;
  }
  return false;
}

Function* function_of(Context* ctx, CUfunction handle, const char* call) {
  Function* f = (Function*)handle;
  if (functions.count(f) == 0) {
    report("%s: %p is not a function (from cuModuleGetFunction)", call, (void*)handle);
    return nullptr;
  }
  if (f->module == nullptr) {
    report("%s: function %s belongs to a module that was unloaded", call, f->kernel->name);
    return nullptr;
  }
  if (f->ctx != ctx) {
    report("%s: function %s belongs to device %d's context, the current context is device %d's", call, f->kernel->name, f->ctx->device,
           ctx->device);
    return nullptr;
  }
  return f;
}

int static_shared(const Function* f) { return f->kernel->static_shared_bytes > 0 ? f->kernel->static_shared_bytes : 0; }

// Registers a block of `threads` needs: per warp, registers per thread x 32 in units of 256.
uint64_t block_registers(int registers, unsigned threads) {
  uint64_t per_warp = ((uint64_t)registers * 32 + 255) / 256 * 256;
  return per_warp * ((threads + 31) / 32);
}

void unload(Module* m) {
  for (auto& [name, f] : m->functions) f->module = nullptr;
  m->ctx->modules.erase(m);
  delete m;
}

}  // namespace

void load_kernel_sets() {
  if (!kernel_set_dir.empty()) return;
  Dl_info info;
  std::string dir = ".";
  if (dladdr((void*)&load_kernel_sets, &info) != 0 && info.dli_fname != nullptr) {
    dir = info.dli_fname;
    size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  }
  kernel_set_dir = dir + "/kernel-sets";
  std::vector<std::string> files;
  if (DIR* d = opendir(kernel_set_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.size() > 3 && name.compare(name.size() - 3, 3, ".so") == 0) files.push_back(name);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    std::string path = kernel_set_dir + "/" + file;
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      report("cannot load kernel set %s: %s", path.c_str(), dlerror());
      continue;
    }
    auto entry = (const KernelSet* (*)())dlsym(lib, "cuda_emulator_kernel_set");
    const KernelSet* set = entry ? entry() : nullptr;
    if (set == nullptr || set->abi != kKernelSetAbi) {
      report("%s is not a kernel set of this emulator build: rerun scripts/build-cuda-emulator", path.c_str());
      continue;
    }
    kernel_sets.push_back(set);
  }
  if (kernel_sets.empty()) {
    report("no kernel sets in %s: no kernel can be loaded; rerun scripts/build-cuda-emulator", kernel_set_dir.c_str());
  }
}

void destroy_modules(Context* ctx, size_t* count) {
  *count = ctx->modules.size();
  std::vector<Module*> modules(ctx->modules.begin(), ctx->modules.end());
  for (Module* m : modules) unload(m);
}

}  // namespace cuda_emu

using namespace cuda_emu;

CUDA_EMU_EXPORT CUresult cuModuleLoadData(CUmodule* module, const void* image) {
  CUDA_EMU_CONTEXT("cuModuleLoadData");
  if (module == nullptr || image == nullptr) return CUDA_ERROR_INVALID_VALUE;
  const unsigned char* bytes = (const unsigned char*)image;
  const char* kind = nullptr;
  size_t length = 0;
  if (!image_extent(bytes, &kind, &length)) {
    report("cuModuleLoadData: the image is not a fatbin, cubin or PTX (it starts with %02x %02x %02x %02x)", bytes[0], bytes[1], bytes[2],
           bytes[3]);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  const KernelSet* best = nullptr;
  std::string mismatches;
  for (const KernelSet* set : kernel_sets) {
    const char* missing = nullptr;
    for (int i = 0; i < set->kernel_count && missing == nullptr; i++)
      if (!contains_name(bytes, length, set->kernels[i].name)) missing = set->kernels[i].name;
    if (missing == nullptr) {
      if (best == nullptr || set->kernel_count > best->kernel_count) best = set;
    } else {
      mismatches += format("%s%s (from %s) lacks %s", mismatches.empty() ? "" : "; ", set->name, set->source_path, missing);
    }
  }
  if (best == nullptr) {
    report("cuModuleLoadData: the %zu-byte %s holds the kernels of none of the emulator's kernel sets (%s): it was compiled from other "
           "sources than the emulator, which runs the CPU build of its own sources: rerun scripts/build-cuda-emulator",
           length, kind, mismatches.empty() ? std::string("there are none").c_str() : mismatches.c_str());
    return CUDA_ERROR_NO_BINARY_FOR_GPU;
  }
  Module* m = new Module;
  m->ctx = ctx;
  m->set = best;
  ctx->modules.insert(m);
  *module = (CUmodule)m;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuModuleUnload(CUmodule hmod) {
  CUDA_EMU_CONTEXT("cuModuleUnload");
  Module* m = (Module*)hmod;
  if (ctx->modules.count(m) == 0) {
    report("cuModuleUnload: %p is not a module of the current context", (void*)hmod);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  CUresult rc = run_all(ctx);  // queued launches of its kernels run first
  unload(m);
  return rc;
}

CUDA_EMU_EXPORT CUresult cuModuleGetFunction(CUfunction* hfunc, CUmodule hmod, const char* name) {
  CUDA_EMU_CONTEXT("cuModuleGetFunction");
  if (hfunc == nullptr || name == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Module* m = (Module*)hmod;
  if (ctx->modules.count(m) == 0) {
    report("cuModuleGetFunction(%s): %p is not a module of the current context", name, (void*)hmod);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  auto found = m->functions.find(name);
  if (found != m->functions.end()) {
    *hfunc = (CUfunction)found->second;
    return CUDA_SUCCESS;
  }
  for (int i = 0; i < m->set->kernel_count; i++) {
    const KernelInfo& k = m->set->kernels[i];
    if (strcmp(k.name, name) != 0) continue;
    Function* f = new Function;
    f->ctx = ctx;
    f->module = m;
    f->set = m->set;
    f->kernel = &k;
    f->max_dynamic_shared = kDefaultSharedLimit - static_shared(f);
    functions.insert(f);
    m->functions[name] = f;
    *hfunc = (CUfunction)f;
    return CUDA_SUCCESS;
  }
  report("cuModuleGetFunction: no kernel %s in the module (kernel set %s, from %s)", name, m->set->name, m->set->source_path);
  return CUDA_ERROR_NOT_FOUND;
}

CUDA_EMU_EXPORT CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value) {
  CUDA_EMU_CONTEXT("cuFuncSetAttribute");
  Function* f = function_of(ctx, hfunc, "cuFuncSetAttribute");
  if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
      if (value < 0 || value > kMaxSharedOptIn - static_shared(f)) {
        report("cuFuncSetAttribute(%s, MAX_DYNAMIC_SHARED_SIZE_BYTES, %d): at most %d bytes (227 KiB minus %d bytes of static shared "
               "memory)",
               f->kernel->name, value, kMaxSharedOptIn - static_shared(f), static_shared(f));
        return CUDA_ERROR_INVALID_VALUE;
      }
      f->max_dynamic_shared = value;
      return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
      if (value < -1 || value > 100) return CUDA_ERROR_INVALID_VALUE;
      f->carveout = value;
      return CUDA_SUCCESS;
    default:
      report("cuFuncSetAttribute(%s): attribute %d is not settable in the emulator", f->kernel->name, (int)attrib);
      return CUDA_ERROR_INVALID_VALUE;
  }
}

CUDA_EMU_EXPORT CUresult cuFuncGetAttribute(int* pi, CUfunction_attribute attrib, CUfunction hfunc) {
  CUDA_EMU_CONTEXT("cuFuncGetAttribute");
  Function* f = function_of(ctx, hfunc, "cuFuncGetAttribute");
  if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  if (pi == nullptr) return CUDA_ERROR_INVALID_VALUE;
  int registers = f->kernel->registers > 0 ? f->kernel->registers : 0;
  switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: {
      int threads = 1024;
      while (registers > 0 && threads > 32 && block_registers(registers, threads) > kRegistersPerBlock) threads -= 32;
      *pi = threads;
      return CUDA_SUCCESS;
    }
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *pi = static_shared(f); return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: *pi = 0; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: *pi = f->kernel->local_bytes > 0 ? f->kernel->local_bytes : 0; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *pi = registers; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION:
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *pi = 90; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA: *pi = 0; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *pi = f->max_dynamic_shared; return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: *pi = f->carveout; return CUDA_SUCCESS;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
}

CUDA_EMU_EXPORT CUresult cuLaunchKernel(CUfunction hfunc, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                                        unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                                        unsigned int sharedMemBytes, CUstream hStream, void** kernelParams, void** extra) {
  CUDA_EMU_CONTEXT("cuLaunchKernel");
  Function* f = function_of(ctx, hfunc, "cuLaunchKernel");
  if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  std::shared_ptr<Stream> s;
  CUresult rc = stream_of(ctx, hStream, &s, "cuLaunchKernel");
  if (rc) return rc;
  const KernelInfo* k = f->kernel;
  std::string launch = format("%s grid (%u,%u,%u) block (%u,%u,%u) shared %u", k->name, gridDimX, gridDimY, gridDimZ, blockDimX,
                              blockDimY, blockDimZ, sharedMemBytes);
  auto refuse = [&](CUresult error, const std::string& why) {
    report("cuLaunchKernel %s: %s", launch.c_str(), why.c_str());
    return error;
  };
  if (gridDimX == 0 || gridDimY == 0 || gridDimZ == 0 || blockDimX == 0 || blockDimY == 0 || blockDimZ == 0)
    return refuse(CUDA_ERROR_INVALID_VALUE, "a grid or block dimension is 0");
  if (gridDimX > 2147483647u || gridDimY > 65535 || gridDimZ > 65535)
    return refuse(CUDA_ERROR_INVALID_VALUE, "the grid exceeds sm_90's (2^31-1, 65535, 65535)");
  uint64_t threads = (uint64_t)blockDimX * blockDimY * blockDimZ;
  if (blockDimX > 1024 || blockDimY > 1024 || blockDimZ > 64 || threads > 1024)
    return refuse(CUDA_ERROR_INVALID_VALUE, "the block exceeds sm_90's (1024, 1024, 64; 1024 threads)");
  if (extra != nullptr) {
    if (kernelParams != nullptr) return refuse(CUDA_ERROR_INVALID_VALUE, "both kernelParams and extra are given");
    return refuse(CUDA_ERROR_NOT_SUPPORTED, "parameters passed through `extra` are not emulated: pass kernelParams");
  }
  if (k->param_count > 0 && kernelParams == nullptr)
    return refuse(CUDA_ERROR_INVALID_VALUE, format("kernelParams is NULL but the kernel has %d parameters", k->param_count));
  if ((int)sharedMemBytes > f->max_dynamic_shared) {
    return refuse(CUDA_ERROR_INVALID_VALUE,
                  format("%u bytes of dynamic shared memory exceed the function's limit of %d (48 KiB minus %d static, unless raised "
                         "with cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), at most 227 KiB)",
                         sharedMemBytes, f->max_dynamic_shared, static_shared(f)));
  }
  if (k->registers > 0 && block_registers(k->registers, (unsigned)threads) > kRegistersPerBlock) {
    return refuse(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
                  format("%llu threads x %d registers (ptxas, sm_90) need %llu registers, above the %d a block may use",
                         (unsigned long long)threads, k->registers, (unsigned long long)block_registers(k->registers, (unsigned)threads),
                         kRegistersPerBlock));
  }
  std::shared_ptr<const KernelArgs> args(k->capture(kernelParams));
  const KernelSet* set = f->set;
  int device = ctx->device;
  unsigned dims[6] = {gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ};
  Op op{"kernel " + launch, k->name, [=](std::string* detail) {
          // Pointer arguments: in live memory of this device, and their allocations' canaries checked.
          std::vector<const Allocation*> checked;
          for (auto& [index, p] : args->pointers) {
            if (p == 0) continue;
            const Allocation* a = find_live(p, 1);
            if (a == nullptr || a->device != device) {
              std::string why;
              check_range(p, 1, device, a != nullptr && a->host, &why);
              *detail = format("pointer parameter %d: %s", index, why.c_str());
              return CUDA_ERROR_ILLEGAL_ADDRESS;
            }
            if (std::find(checked.begin(), checked.end(), a) == checked.end()) checked.push_back(a);
          }
          Grid grid{set, k, args.get(), {dims[0], dims[1], dims[2]}, {dims[3], dims[4], dims[5]}, sharedMemBytes,
                    [&checked](std::string* why) {
                      for (const Allocation* a : checked)
                        if (!check_canaries(*a, true, why)) return false;
                      return true;
                    },
                    &f->warned};
          CUresult result = run_grid(grid, detail);
          if (result != CUDA_SUCCESS) return result;
          for (const Allocation* a : checked) {
            if (!check_canaries(*a, false, detail)) return CUDA_ERROR_ILLEGAL_ADDRESS;
          }
          return CUDA_SUCCESS;
        }, true};
  return enqueue(s, std::move(op));
}
