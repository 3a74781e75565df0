// The driver's entry: cuInit and its settings, devices and their attributes, primary contexts
// (one per device, current per OS thread), error names, and the emulator's live-object query.
//
// Devices: CUDA_EMU_DEVICES (default 1) identical devices named "beam-llama CUDA emulator (sm_90
// on the CPU)", compute capability 9.0, attributes of an H100 SXM, CUDA_EMU_TOTAL_MEM bytes of
// memory (default 16 GiB). Each has its own primary context, memory and accounting. These are the
// machine's physical devices: CUDA_VISIBLE_DEVICES picks which of them the process sees and in
// what order, as NVIDIA's driver does (visible_devices below), and each physical device has its
// own PCI bus id (0000:01:00.0 for the first), so a process can tell which one it was given.
//
// Contexts: cuDevicePrimaryCtxRetain/Release count references; when the count drops to 0 the
// context is reset as CUDA does, and the emulator frees everything still in it and lists it on
// stderr (leaks). A thread that still has the released context current gets
// CUDA_ERROR_CONTEXT_IS_DESTROYED. A failed asynchronous operation leaves its error in the
// context ("sticky"): every later call there returns it, until the context is reset.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "driver.h"

namespace cuda_emu {
namespace {

const char kDeviceName[] = "beam-llama CUDA emulator (sm_90 on the CPU)";

bool initialized = false;
// cuInit's failure when CUDA_VISIBLE_DEVICES leaves no device: the driver reads its environment
// once, so every later cuInit fails the same way and every other call is "not initialized".
CUresult init_error = CUDA_SUCCESS;
Settings current_settings;
std::vector<Context>* contexts = nullptr;  // one primary context per device, never freed
thread_local Context* current = nullptr;

int machine_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

// Parses a positive integer with an optional binary suffix (k, m, g, t); false when malformed.
bool parse_size(const char* text, unsigned long long* out) {
  errno = 0;
  char* end = nullptr;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text) return false;
  switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    case 't': case 'T': v <<= 40; end++; break;
    default: break;
  }
  if (*end == 'i' || *end == 'I') end++;
  if (*end == 'b' || *end == 'B') end++;
  if (*end != '\0') return false;
  *out = v;
  return true;
}

// An integer setting in [low, high]; a malformed or out-of-range value is reported and ignored.
unsigned long long setting(const char* name, unsigned long long fallback, unsigned long long low, unsigned long long high) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  unsigned long long v;
  if (!parse_size(text, &v) || v < low || v > high) {
    report("%s=%s is not a number in [%llu, %llu]: using %llu", name, text, low, high, fallback);
    return fallback;
  }
  return v;
}

// CUDA_VISIBLE_DEVICES as NVIDIA's driver reads it: a comma-separated list of physical device
// indices, which the process sees in that order as ordinals 0, 1, ...; unset, all devices. Each
// entry is read as strtoul reads it (leading blanks skipped, anything after the digits ignored:
// "1gpu" is 1). The list ends at the first entry that is not a device's index (no digits, a
// negative number, past the last device), and an index given twice hides every device, as the
// driver does (undocumented; PyTorch's device count mirrors it). GPU UUIDs are not emulated: such an
// entry has no digits and ends the list.
std::vector<int> visible_devices(int physical) {
  std::vector<int> visible;
  const char* text = getenv("CUDA_VISIBLE_DEVICES");
  if (text == nullptr) {
    for (int i = 0; i < physical; i++) visible.push_back(i);
    return visible;
  }
  const char* entry = text;
  for (int position = 0;; position++) {
    char* end = nullptr;
    errno = 0;
    unsigned long index = strtoul(entry, &end, 10);  // "-1" reads as a huge value: past the last device
    const char* comma = strchr(entry, ',');
    if (end == entry || errno || index >= (unsigned long)physical) {
      if (*text != '\0') {
        report("CUDA_VISIBLE_DEVICES=%s: entry %d (\"%.*s\") is not a device index in [0, %d) (CUDA_EMU_DEVICES=%d): "
               "the list ends there",
               text, position, comma ? (int)(comma - entry) : (int)strlen(entry), entry, physical, physical);
      }
      break;
    }
    if (std::find(visible.begin(), visible.end(), (int)index) != visible.end()) {
      report("CUDA_VISIBLE_DEVICES=%s: device %lu is listed twice: no device is visible", text, index);
      visible.clear();
      break;
    }
    visible.push_back((int)index);
    if (comma == nullptr) break;
    entry = comma + 1;
  }
  return visible;
}

Settings read_settings() {
  Settings s;
  s.devices = (int)setting("CUDA_EMU_DEVICES", 1, 1, 16);
  s.visible = visible_devices(s.devices);
  s.total_memory = setting("CUDA_EMU_TOTAL_MEM", 16ull << 30, 1ull << 20, 1ull << 40);
  int cores = machine_cores();
  s.workers = (int)setting("CUDA_EMU_WORKERS", cores < 64 ? cores : 64, 1, 64);
  s.stats = setting("CUDA_EMU_STATS", 0, 0, 1) == 1;
  s.launch_blocking = setting("CUDA_LAUNCH_BLOCKING", 0, 0, 1) == 1;
  s.skip_compute = setting("CUDA_EMU_SKIP_COMPUTE", 0, 0, 1) == 1;
  return s;
}

struct AttributeValue {
  CUdevice_attribute attribute;
  int value;
};

// An H100 SXM's values (sm_90), for the attributes callers commonly ask; the rest read as 0.
const AttributeValue kAttributes[] = {
    {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y, 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z, 64},
    {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, 2147483647},
    {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, 65535},
    {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z, 65535},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, 48 * 1024},
    {CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY, 64 * 1024},
    {CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32},
    {CU_DEVICE_ATTRIBUTE_MAX_PITCH, 2147483647},
    {CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, 65536},
    {CU_DEVICE_ATTRIBUTE_CLOCK_RATE, 1980000},
    {CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT, 512},
    {CU_DEVICE_ATTRIBUTE_GPU_OVERLAP, 1},
    {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 132},
    {CU_DEVICE_ATTRIBUTE_INTEGRATED, 0},
    {CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, 1},
    {CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS, 1},
    {CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, 2619000},
    {CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, 5120},
    {CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, 50 * 1024 * 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 2048},
    {CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, 3},
    {CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 1},
    {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 9},
    {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0},
    {CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, 228 * 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, 65536},
    {CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, 1},
    {CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, 1},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 227 * 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, 32},
    {CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, 1024},
    {CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH, 1},
};

struct ErrorText {
  CUresult code;
  const char* name;
  const char* text;
};
const ErrorText kErrors[] = {
#define CUDA_EMU_ERROR_TEXT(name, value, text) {name, #name, text},
    CUDA_EMULATOR_RESULTS(CUDA_EMU_ERROR_TEXT)
#undef CUDA_EMU_ERROR_TEXT
};

CUresult check_device(CUdevice dev, const char* call) {
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (dev < 0 || dev >= device_count()) {
    report("%s: device %d does not exist (%d visible of CUDA_EMU_DEVICES=%d)", call, dev, device_count(),
           current_settings.devices);
    return CUDA_ERROR_INVALID_DEVICE;
  }
  return CUDA_SUCCESS;
}

// The PCI bus of an ordinal's physical device: 1 for the first, as a GPU behind a root port is.
int pci_bus(CUdevice dev) { return current_settings.visible[dev] + 1; }

Context* context_of_handle(CUcontext handle) {
  if (contexts == nullptr) return nullptr;
  for (Context& c : *contexts)
    if ((CUcontext)&c == handle) return &c;
  return nullptr;
}

// Primary context reset: what CUDA frees when the last reference goes, listed when anything was
// still there (the caller leaked it).
void reset_context(Context& ctx) {
  run_all(&ctx);  // finish queued work first, as destroying a context does; its errors no longer matter
  size_t bytes = ctx.allocated_bytes, allocations = ctx.allocations, host = ctx.host_allocations;
  size_t counts[4] = {0, 0, 0, 0}, modules = 0;
  destroy_streams_events_graphs(&ctx, counts);
  destroy_modules(&ctx, &modules);
  release_all(&ctx);
  if (allocations || host || counts[0] || counts[1] || counts[2] || counts[3] || modules) {
    report("cuDevicePrimaryCtxRelease_v2(%d): the context is destroyed with %zu device allocation(s) (%zu bytes), %zu pinned "
           "host buffer(s), %zu stream(s), %zu event(s), %zu module(s), %zu graph(s) and %zu graph exec(s) still live: freeing "
           "them (leaked by the caller)",
           ctx.device, allocations, bytes, host, counts[0], counts[1], modules, counts[2], counts[3]);
  }
  ctx.legacy.reset();
  ctx.sticky = CUDA_SUCCESS;
}

}  // namespace

const Settings& settings() { return current_settings; }

std::recursive_mutex& driver_mutex() {
  static std::recursive_mutex* mu = new std::recursive_mutex;  // never destroyed: used until exit
  return *mu;
}

int device_count() { return initialized ? (int)current_settings.visible.size() : 0; }

CUresult current_context_ignoring_sticky(Context** out) {
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  Context* ctx = current;
  if (ctx == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  if (ctx->refs == 0) return CUDA_ERROR_CONTEXT_IS_DESTROYED;
  *out = ctx;
  return CUDA_SUCCESS;
}

CUresult current_context(Context** out, const char* call) {
  CUresult rc = current_context_ignoring_sticky(out);
  if (rc == CUDA_ERROR_INVALID_CONTEXT) {
    report("%s: no current context on this thread: call cuCtxSetCurrent (the current context is per OS thread)", call);
  } else if (rc == CUDA_ERROR_CONTEXT_IS_DESTROYED) {
    report("%s: the current context of this thread was released (cuDevicePrimaryCtxRelease dropped it to 0 references)", call);
  }
  if (rc != CUDA_SUCCESS) return rc;
  return (*out)->sticky;
}

}  // namespace cuda_emu

using namespace cuda_emu;

CUDA_EMU_EXPORT CUresult cuGetErrorName(CUresult error, const char** pStr) {
  if (pStr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  for (const ErrorText& e : kErrors) {
    if (e.code == error) {
      *pStr = e.name;
      return CUDA_SUCCESS;
    }
  }
  *pStr = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}

CUDA_EMU_EXPORT CUresult cuGetErrorString(CUresult error, const char** pStr) {
  if (pStr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  for (const ErrorText& e : kErrors) {
    if (e.code == error) {
      *pStr = e.text;
      return CUDA_SUCCESS;
    }
  }
  *pStr = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}

CUDA_EMU_EXPORT CUresult cuInit(unsigned int Flags) {
  CUDA_EMU_LOCK;
  if (Flags != 0) {
    report("cuInit: flags must be 0, not %u", Flags);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (!initialized && init_error == CUDA_SUCCESS) {
    Settings s = read_settings();
    if (s.visible.empty()) {
      report("cuInit: CUDA_VISIBLE_DEVICES=%s leaves none of the %d device(s) visible: CUDA_ERROR_NO_DEVICE",
             getenv("CUDA_VISIBLE_DEVICES"), s.devices);
      init_error = CUDA_ERROR_NO_DEVICE;
    } else {
      current_settings = s;
      contexts = new std::vector<Context>(current_settings.visible.size());
      for (size_t i = 0; i < contexts->size(); i++) (*contexts)[i].device = (int)i;
      load_kernel_sets();
      initialized = true;
    }
  }
  return init_error;
}

CUDA_EMU_EXPORT CUresult cuDriverGetVersion(int* driverVersion) {
  if (driverVersion == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *driverVersion = CUDA_VERSION;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDeviceGetCount(int* count) {
  CUDA_EMU_LOCK;
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *count = device_count();
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  CUDA_EMU_LOCK;
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  CUresult rc = check_device(ordinal, "cuDeviceGet");
  if (rc) return rc;
  *device = ordinal;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
  CUDA_EMU_LOCK;
  CUresult rc = check_device(dev, "cuDeviceGetName");
  if (rc) return rc;
  if (name == nullptr || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  snprintf(name, (size_t)len, "%s", kDeviceName);
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
  CUDA_EMU_LOCK;
  CUresult rc = check_device(dev, "cuDeviceTotalMem");
  if (rc) return rc;
  if (bytes == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *bytes = current_settings.total_memory;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDeviceGetAttribute(int* pi, CUdevice_attribute attrib, CUdevice dev) {
  CUDA_EMU_LOCK;
  CUresult rc = check_device(dev, "cuDeviceGetAttribute");
  if (rc) return rc;
  if (pi == nullptr || (int)attrib < 1 || (int)attrib >= (int)CU_DEVICE_ATTRIBUTE_MAX) return CUDA_ERROR_INVALID_VALUE;
  *pi = 0;
  for (const AttributeValue& a : kAttributes)
    if (a.attribute == attrib) *pi = a.value;
  if (attrib == CU_DEVICE_ATTRIBUTE_PCI_BUS_ID) *pi = pci_bus(dev);
  return CUDA_SUCCESS;
}

// "[domain]:[bus]:[device].[function]" in upper-case hex, as NVIDIA's driver writes it; the domain,
// device and function are 0 (CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID and _DEVICE_ID read 0 too).
CUDA_EMU_EXPORT CUresult cuDeviceGetPCIBusId(char* pciBusId, int len, CUdevice dev) {
  CUDA_EMU_LOCK;
  CUresult rc = check_device(dev, "cuDeviceGetPCIBusId");
  if (rc) return rc;
  if (pciBusId == nullptr || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  snprintf(pciBusId, (size_t)len, "%04X:%02X:%02X.%X", 0, pci_bus(dev), 0, 0);
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice dev) {
  CUDA_EMU_LOCK;
  CUresult rc = check_device(dev, "cuDevicePrimaryCtxRetain");
  if (rc) return rc;
  if (pctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Context& ctx = (*contexts)[dev];
  if (ctx.refs++ == 0) {
    ctx.legacy = std::make_shared<Stream>();
    ctx.legacy->ctx = &ctx;
    ctx.legacy->legacy = true;
  }
  *pctx = (CUcontext)&ctx;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  CUDA_EMU_LOCK;
  CUresult rc = check_device(dev, "cuDevicePrimaryCtxRelease");
  if (rc) return rc;
  Context& ctx = (*contexts)[dev];
  if (ctx.refs == 0) {
    report("cuDevicePrimaryCtxRelease_v2(%d): the primary context is not retained", dev);
    return CUDA_ERROR_INVALID_CONTEXT;
  }
  if (--ctx.refs == 0) reset_context(ctx);
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int* flags, int* active) {
  CUDA_EMU_LOCK;
  CUresult rc = check_device(dev, "cuDevicePrimaryCtxGetState");
  if (rc) return rc;
  if (flags == nullptr || active == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *flags = 0;
  *active = (*contexts)[dev].refs > 0;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) {
  CUDA_EMU_LOCK;
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (ctx == nullptr) {
    current = nullptr;
    return CUDA_SUCCESS;
  }
  Context* c = context_of_handle(ctx);
  if (c == nullptr) {
    report("cuCtxSetCurrent: %p is not a context", (void*)ctx);
    return CUDA_ERROR_INVALID_CONTEXT;
  }
  if (c->refs == 0) {
    report("cuCtxSetCurrent: device %d's primary context is not retained (released to 0 references)", c->device);
    return CUDA_ERROR_CONTEXT_IS_DESTROYED;
  }
  current = c;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuCtxGetCurrent(CUcontext* pctx) {
  CUDA_EMU_LOCK;
  if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (pctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *pctx = (CUcontext)current;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuCtxGetDevice(CUdevice* device) {
  CUDA_EMU_LOCK;
  Context* ctx;
  CUresult rc = current_context(&ctx, "cuCtxGetDevice");
  if (rc) return rc;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *device = ctx->device;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuCtxSynchronize(void) {
  CUDA_EMU_LOCK;
  Context* ctx;
  CUresult rc = current_context(&ctx, "cuCtxSynchronize");
  if (rc) return rc;
  rc = check_unsafe_during_capture("cuCtxSynchronize");
  if (rc) return rc;
  return run_all(ctx);
}

CUDA_EMU_EXPORT int cuEmulatorLiveObjects(int device, const char* kind) {
  CUDA_EMU_LOCK;
  if (!initialized || device < 0 || device >= device_count() || kind == nullptr) return -1;
  const Context& ctx = (*contexts)[device];
  std::string k = kind;
  if (k == "allocations") return (int)ctx.allocations;
  if (k == "allocated_bytes") return ctx.allocated_bytes > 0x7fffffff ? 0x7fffffff : (int)ctx.allocated_bytes;
  if (k == "host_allocations") return (int)ctx.host_allocations;
  if (k == "streams") return (int)ctx.streams.size();
  if (k == "events") return (int)ctx.events.size();
  if (k == "modules") return (int)ctx.modules.size();
  if (k == "graphs") return (int)ctx.graphs.size();
  if (k == "graph_execs") return (int)ctx.execs.size();
  return -1;
}
