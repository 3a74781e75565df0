// Device memory and pinned host memory, laid out so that misuse shows:
//
//   arena (one per device, one for pinned host memory): a large PROT_NONE reservation, carved
//   front to back and never reused, so a freed address stays inaccessible for the life of the
//   process (use after free faults, and names the freed allocation).
//
//   allocation:  [guard page][front slack][data: size bytes][back slack][guard page]
//     - data starts 256-byte aligned (as cuMemAlloc's) and ends at most 255 bytes before the
//       next guard page: an overrun reaches the guard page after the slack, an underrun the one
//       before; consecutive allocations share guard pages, so an overrun never lands in another
//       allocation's data;
//     - the slack bytes hold a canary pattern, checked after each block of a launch for the
//       launch's pointer arguments, so an overrun of even one byte is caught;
//     - new memory is poisoned with 0xff bytes (a NaN in f32 and bf16), so reading memory never
//       written shows; the canary pattern reads as NaN too (0x7fc0ffff per 4 bytes).
//   free: the pages are replaced by PROT_NONE ones (memory returned, addresses kept).
//
// Every allocation ever made stays in one ordered map by address, which answers "what is at this
// address" for messages, range checks of copies and launches, and the canary checks.
//
// Copies and memsets are queued ops (streams.cpp): cuMemcpyHtoD from pageable memory stages the
// data and queues the copy on the legacy stream, from pinned memory it waits for the copy;
// cuMemcpyDtoH always waits; async copies to or from pinned memory touch the host buffer only
// when they run; memsets of device memory are asynchronous, as CUDA documents. Ranges are checked
// at the call and again when the op runs (a graph may replay it after a free).
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "driver.h"

namespace cuda_emu {
namespace {

constexpr uintptr_t kPage = 4096;
constexpr uintptr_t kAlignment = 256;
constexpr unsigned char kCanary[4] = {0xff, 0xff, 0xc0, 0x7f};  // 0x7fc0ffff little-endian
constexpr size_t kCanaryWindow = 256;

struct Arena {
  uintptr_t start = 0, end = 0, next = 0;
  bool contains(uintptr_t p) const { return p >= start && p < end; }
};

std::vector<Arena> device_arenas;
Arena host_arena;
std::map<uintptr_t, Allocation> allocations;  // by region start; freed ones stay

uintptr_t round_up(uintptr_t v, uintptr_t to) { return (v + to - 1) / to * to; }

bool reserve(Arena& a) {
  if (a.start) return true;
  // Plenty of address space, as it is never reused; a smaller one where the address space is limited.
  for (uintptr_t bytes = 1ull << 40; bytes >= (16ull << 30); bytes >>= 1) {
    void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      a.start = (uintptr_t)p;
      a.end = a.start + bytes;
      a.next = a.start + kPage;  // the first allocation's leading guard page
      return true;
    }
  }
  return false;
}

Arena& arena_of(int device, bool host) {
  if (host) return host_arena;
  if (device_arenas.size() <= (size_t)device) device_arenas.resize(device + 1);
  return device_arenas[device];
}

std::string name_of(const Allocation& a) {
  if (a.host) return format("%zu-byte pinned host allocation at 0x%llx", a.size, (unsigned long long)a.base);
  return format("%zu-byte device %d allocation at 0x%llx", a.size, a.device, (unsigned long long)a.base);
}

// The allocation whose read-write region contains p, or null.
Allocation* region_of(uintptr_t p) {
  auto it = allocations.upper_bound(p);
  if (it == allocations.begin()) return nullptr;
  --it;
  Allocation& a = it->second;
  return p < a.region + a.region_bytes ? &a : nullptr;
}

}  // namespace

void fill_canary(unsigned char* p, size_t n) {
  size_t i = 0;
  for (; i < n && (((uintptr_t)p + i) & 7) != 0; i++) p[i] = kCanary[((uintptr_t)p + i) & 3];
  const uint64_t word = 0x7fc0ffff7fc0ffffull;
  for (; i + 8 <= n; i += 8) memcpy(p + i, &word, 8);
  for (; i < n; i++) p[i] = kCanary[((uintptr_t)p + i) & 3];
}

size_t first_non_canary(const unsigned char* p, size_t n) {
  size_t i = 0;
  // Byte by byte to an 8-byte boundary, then 8 bytes at a time.
  for (; i < n && (((uintptr_t)p + i) & 7) != 0; i++)
    if (p[i] != kCanary[((uintptr_t)p + i) & 3]) return i;
  const uint64_t word = 0x7fc0ffff7fc0ffffull;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    if (v != word) break;
  }
  for (; i < n; i++)
    if (p[i] != kCanary[((uintptr_t)p + i) & 3]) return i;
  return n;
}

CUresult allocate(Context* ctx, size_t bytes, bool host, Allocation** out) {
  const char* call = host ? "cuMemAllocHost" : "cuMemAlloc";
  if (bytes == 0) {
    report("%s: 0 bytes requested", call);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (!host && bytes > settings().total_memory - ctx->allocated_bytes) {
    report("%s of %zu bytes on device %d: out of memory (%zu of %zu bytes allocated; CUDA_EMU_TOTAL_MEM sets the size)", call, bytes,
           ctx->device, ctx->allocated_bytes, settings().total_memory);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  Arena& arena = arena_of(ctx->device, host);
  uintptr_t rounded = round_up(bytes, kAlignment), region_bytes = round_up(rounded, kPage);
  if (!reserve(arena) || region_bytes + kPage > arena.end - arena.next) {
    report("%s of %zu bytes: the emulator's address space for this memory is exhausted", call, bytes);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  uintptr_t region = arena.next;
  if (mprotect((void*)region, region_bytes, PROT_READ | PROT_WRITE) != 0) {
    report("%s of %zu bytes: mprotect failed (%s): too many mappings? (vm.max_map_count)", call, bytes, strerror(errno));
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  arena.next = region + region_bytes + kPage;  // this allocation's trailing guard page is the next one's leading one
  Allocation a;
  a.region = region;
  a.region_bytes = region_bytes;
  a.base = region + region_bytes - rounded;
  a.size = bytes;
  a.device = ctx->device;
  a.host = host;
  fill_canary((unsigned char*)region, a.base - region);
  memset((void*)a.base, 0xff, bytes);
  fill_canary((unsigned char*)(a.base + bytes), region + region_bytes - (a.base + bytes));
  Allocation& stored = allocations[region] = a;
  if (host) {
    ctx->host_allocations++;
  } else {
    ctx->allocations++;
    ctx->allocated_bytes += bytes;
  }
  *out = &stored;
  return CUDA_SUCCESS;
}

static void free_allocation(Context* ctx, Allocation& a) {
  // New PROT_NONE pages over the old ones: the memory goes back to the system, the addresses stay reserved.
  mmap((void*)a.region, a.region_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  a.live = false;
  if (a.host) {
    ctx->host_allocations--;
  } else {
    ctx->allocations--;
    ctx->allocated_bytes -= a.size;
  }
}

CUresult release(Context* ctx, uintptr_t base, bool host, const char* call) {
  Allocation* a = region_of(base);
  std::string problem;
  if (base == 0) {
    problem = "a null pointer";
  } else if (a == nullptr || base < a->base || base >= a->base + a->size) {
    problem = "not an allocation: " + describe_address(base);
  } else if (!a->live) {
    problem = "already freed (double free of the " + name_of(*a) + ")";
  } else if (base != a->base) {
    problem = format("not the start of an allocation but byte %llu of the %s", (unsigned long long)(base - a->base), name_of(*a).c_str());
  } else if (a->host != host) {
    problem = std::string("the ") + name_of(*a) + (host ? ": use cuMemFree" : ": use cuMemFreeHost");
  } else if (a->device != ctx->device) {
    problem = format("the %s, but the current context is device %d's", name_of(*a).c_str(), ctx->device);
  }
  if (!problem.empty()) {
    report("%s(0x%llx): %s", call, (unsigned long long)base, problem.c_str());
    return CUDA_ERROR_INVALID_VALUE;
  }
  free_allocation(ctx, *a);
  return CUDA_SUCCESS;
}

void release_all(Context* ctx) {
  for (auto& [region, a] : allocations)
    if (a.live && a.device == ctx->device) free_allocation(ctx, a);
}

const Allocation* find_live(uintptr_t p, size_t bytes) {
  Allocation* a = region_of(p);
  if (a == nullptr || !a->live || p < a->base || p >= a->base + a->size) return nullptr;
  if (bytes > a->base + a->size - p) return nullptr;
  return a;
}

bool check_range(uintptr_t p, size_t bytes, int device, bool host, std::string* why) {
  Allocation* a = region_of(p);
  if (a != nullptr && a->live && p >= a->base && p < a->base + a->size) {
    if (a->host != host) {
      *why = format("0x%llx is in the %s, not in %s memory", (unsigned long long)p, name_of(*a).c_str(), host ? "pinned host" : "device");
      return false;
    }
    if (a->device != device) {
      *why = format("0x%llx is in the %s, but the call runs on device %d's context", (unsigned long long)p, name_of(*a).c_str(), device);
      return false;
    }
    if (bytes > a->base + a->size - p) {
      *why = format("the %zu bytes from 0x%llx run %llu bytes past the end of the %s", bytes, (unsigned long long)p,
                    (unsigned long long)(p + bytes - (a->base + a->size)), name_of(*a).c_str());
      return false;
    }
    return true;
  }
  *why = format("0x%llx is %s", (unsigned long long)p, describe_address(p).c_str());
  return false;
}

bool is_pinned(const void* pointer, size_t bytes, int device, bool* partial) {
  uintptr_t p = (uintptr_t)pointer;
  *partial = false;
  Allocation* a = region_of(p);
  if (a == nullptr || !a->live || !a->host || a->device != device || p < a->base || p >= a->base + a->size) return false;
  if (bytes > a->base + a->size - p) {
    *partial = true;
    return false;
  }
  return true;
}

std::string describe_address(uintptr_t p) {
  if (p == 0) return "a null pointer";
  const Arena* arena = host_arena.contains(p) ? &host_arena : nullptr;
  for (const Arena& a : device_arenas)
    if (a.contains(p)) arena = &a;
  if (arena == nullptr) return "not memory of the emulated device (a host address or a wild pointer)";
  // The allocations on either side of p, in p's arena.
  auto next_it = allocations.upper_bound(p);
  const Allocation* before = next_it != allocations.begin() ? &std::prev(next_it)->second : nullptr;
  const Allocation* after = next_it != allocations.end() ? &next_it->second : nullptr;
  if (before && !arena->contains(before->region)) before = nullptr;
  if (after && !arena->contains(after->region)) after = nullptr;
  auto freed = [](const Allocation& a) { return a.live ? "" : "freed "; };
  if (before && p < before->region + before->region_bytes) {
    const Allocation& a = *before;
    if (!a.live) return "inside the freed " + name_of(a) + " (use after free)";
    if (p < a.base) return format("%llu bytes before the start of the %s", (unsigned long long)(a.base - p), name_of(a).c_str());
    if (p >= a.base + a.size)
      return format("%llu bytes past the end of the %s", (unsigned long long)(p - (a.base + a.size)), name_of(a).c_str());
    return format("byte %llu of the %s", (unsigned long long)(p - a.base), name_of(a).c_str());
  }
  // In a guard page: name the nearer neighbour.
  bool after_before = before && p < before->region + before->region_bytes + kPage;
  bool before_after = after && p >= after->region - kPage;
  if (after_before && (!before_after || p - (before->base + before->size) <= after->base - p)) {
    return format("%llu bytes past the end of the %s%s (in the guard page after it)",
                  (unsigned long long)(p - (before->base + before->size)), freed(*before), name_of(*before).c_str());
  }
  if (before_after) {
    return format("%llu bytes before the start of the %s%s (in the guard page before it)", (unsigned long long)(after->base - p),
                  freed(*after), name_of(*after).c_str());
  }
  return "in the emulator's memory but never allocated";
}

bool check_canaries(const Allocation& a, bool window, std::string* why) {
  const unsigned char* front = (const unsigned char*)a.region;
  size_t front_bytes = a.base - a.region;
  const unsigned char* back = (const unsigned char*)(a.base + a.size);
  size_t back_bytes = a.region + a.region_bytes - (a.base + a.size);
  if (window && front_bytes > kCanaryWindow) {
    front += front_bytes - kCanaryWindow;
    front_bytes = kCanaryWindow;
  }
  if (window && back_bytes > kCanaryWindow) back_bytes = kCanaryWindow;
  size_t bad = first_non_canary(back, back_bytes);
  if (bad < back_bytes) {
    size_t last = bad;
    for (size_t i = bad; i < back_bytes; i++)
      if (back[i] != kCanary[((uintptr_t)back + i) & 3]) last = i;
    *why = format("bytes %zu to %zu past the end of the %s (0x%llx..) were written (write out of bounds, found by the canary "
                  "after it)",
                  bad, last, name_of(a).c_str(), (unsigned long long)((uintptr_t)back + bad));
    return false;
  }
  bad = first_non_canary(front, front_bytes);
  if (bad < front_bytes) {
    uintptr_t address = (uintptr_t)front + bad;
    *why = format("byte 0x%llx, %llu bytes before the start of the %s, was written (write out of bounds, found by the canary before it)",
                  (unsigned long long)address, (unsigned long long)(a.base - address), name_of(a).c_str());
    return false;
  }
  return true;
}

}  // namespace cuda_emu

using namespace cuda_emu;

static_assert(sizeof(CUdeviceptr) == sizeof(uintptr_t), "device pointers are host addresses");

#define CUDA_EMU_UNSAFE_IN_CAPTURE(call)                  \
  do {                                                    \
    CUresult rc_ = check_unsafe_during_capture(call); \
    if (rc_ != CUDA_SUCCESS) return rc_;                  \
  } while (0)

namespace {

// A device range argument, checked at the call.
CUresult device_argument(Context* ctx, CUdeviceptr p, size_t bytes, const char* call, const char* which) {
  std::string why;
  if (check_range(p, bytes, ctx->device, false, &why)) return CUDA_SUCCESS;
  report("%s: %s of %zu bytes: %s", call, which, bytes, why.c_str());
  return CUDA_ERROR_INVALID_VALUE;
}

// The same check when the op runs (a graph may replay it after the memory was freed).
bool device_still_valid(int device, CUdeviceptr p, size_t bytes, const char* which, std::string* detail) {
  std::string why;
  if (check_range(p, bytes, device, false, &why)) return true;
  *detail = std::string(which) + ": " + why;
  return false;
}

bool host_still_valid(int device, const void* p, size_t bytes, std::string* detail) {
  std::string why;
  if (check_range((uintptr_t)p, bytes, device, true, &why)) return true;
  *detail = "the pinned host buffer: " + why;
  return false;
}

enum class HostKind { kPinned, kPageable, kInvalid };

HostKind host_argument(Context* ctx, const void* p, size_t bytes, const char* call) {
  if (p == nullptr) {
    report("%s: the host pointer is null", call);
    return HostKind::kInvalid;
  }
  bool partial = false;
  if (is_pinned(p, bytes, ctx->device, &partial)) return HostKind::kPinned;
  if (partial) {
    report("%s: the %zu host bytes at %p run past the end of the pinned buffer they start in: %s", call, bytes, p,
           describe_address((uintptr_t)p + bytes - 1).c_str());
    return HostKind::kInvalid;
  }
  std::string why;
  if (find_live((uintptr_t)p, 1) != nullptr && !check_range((uintptr_t)p, 1, ctx->device, true, &why)) {
    report("%s: host pointer %p: %s", call, p, why.c_str());
    return HostKind::kInvalid;
  }
  return HostKind::kPageable;
}

CUresult pageable_in_capture(const std::shared_ptr<Stream>& s, const char* call) {
  if (!s->capture) return CUDA_SUCCESS;
  report("%s: a copy from or to pageable host memory cannot be captured (use pinned memory from cuMemAllocHost); the capture is "
         "invalidated",
         call);
  invalidate_capture(*s);
  return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

CUresult copy_to_device(Context* ctx, const std::shared_ptr<Stream>& s, CUdeviceptr dst, const void* src, size_t n, const char* call,
                        bool synchronous) {
  CUresult rc = device_argument(ctx, dst, n, call, "destination");
  if (rc) return rc;
  HostKind kind = host_argument(ctx, src, n, call);
  if (kind == HostKind::kInvalid) return CUDA_ERROR_INVALID_VALUE;
  int device = ctx->device;
  uint64_t seq = 0;
  if (kind == HostKind::kPinned) {
    // Reads the host buffer when it runs, as the GPU's copy engine would.
    rc = enqueue(s,
                 Op{format("%s of %zu bytes to 0x%llx", call, n, (unsigned long long)dst), "cuMemcpyHtoD",
                    [=](std::string* detail) {
                      if (!device_still_valid(device, dst, n, "the destination", detail) || !host_still_valid(device, src, n, detail))
                        return CUDA_ERROR_ILLEGAL_ADDRESS;
                      memcpy((void*)dst, src, n);
                      return CUDA_SUCCESS;
                    }},
                 &seq);
    // From pinned memory, CUDA's synchronous copy returns when it is done.
    return rc == CUDA_SUCCESS && synchronous ? run_until(s, seq) : rc;
  }
  rc = pageable_in_capture(s, call);
  if (rc) return rc;
  // Pageable memory is staged at the call, as the driver does; the copy itself stays queued.
  auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char*)src, (const unsigned char*)src + n);
  return enqueue(s, Op{format("%s of %zu bytes to 0x%llx", call, n, (unsigned long long)dst), "cuMemcpyHtoD",
                       [=](std::string* detail) {
                         if (!device_still_valid(device, dst, n, "the destination", detail)) return CUDA_ERROR_ILLEGAL_ADDRESS;
                         memcpy((void*)dst, staged->data(), n);
                         return CUDA_SUCCESS;
                       }});
}

CUresult copy_to_host(Context* ctx, const std::shared_ptr<Stream>& s, void* dst, CUdeviceptr src, size_t n, const char* call,
                      bool synchronous) {
  CUresult rc = device_argument(ctx, src, n, call, "source");
  if (rc) return rc;
  HostKind kind = host_argument(ctx, dst, n, call);
  if (kind == HostKind::kInvalid) return CUDA_ERROR_INVALID_VALUE;
  if (kind == HostKind::kPageable) {
    rc = pageable_in_capture(s, call);
    if (rc) return rc;
  }
  int device = ctx->device;
  bool pinned = kind == HostKind::kPinned;
  uint64_t seq = 0;
  rc = enqueue(s,
               Op{format("%s of %zu bytes from 0x%llx", call, n, (unsigned long long)src), "cuMemcpyDtoH",
                  [=](std::string* detail) {
                    if (!device_still_valid(device, src, n, "the source", detail) || (pinned && !host_still_valid(device, dst, n, detail)))
                      return CUDA_ERROR_ILLEGAL_ADDRESS;
                    memcpy(dst, (const void*)src, n);
                    return CUDA_SUCCESS;
                  }},
               &seq);
  // To pageable memory (and for the synchronous call) CUDA returns once the copy is done.
  if (rc == CUDA_SUCCESS && (synchronous || !pinned)) return run_until(s, seq);
  return rc;
}

CUresult copy_on_device(Context* ctx, const std::shared_ptr<Stream>& s, CUdeviceptr dst, CUdeviceptr src, size_t n, const char* call) {
  CUresult rc = device_argument(ctx, dst, n, call, "destination");
  if (rc == CUDA_SUCCESS) rc = device_argument(ctx, src, n, call, "source");
  if (rc) return rc;
  int device = ctx->device;
  return enqueue(s, Op{format("%s of %zu bytes from 0x%llx to 0x%llx", call, n, (unsigned long long)src, (unsigned long long)dst),
                       "cuMemcpyDtoD", [=](std::string* detail) {
                         if (!device_still_valid(device, dst, n, "the destination", detail) ||
                             !device_still_valid(device, src, n, "the source", detail))
                           return CUDA_ERROR_ILLEGAL_ADDRESS;
                         memmove((void*)dst, (const void*)src, n);
                         return CUDA_SUCCESS;
                       }});
}

template <typename T>
CUresult memset_device(Context* ctx, const std::shared_ptr<Stream>& s, CUdeviceptr dst, T value, size_t count, const char* call) {
  if (count == 0) return CUDA_SUCCESS;
  if (dst % sizeof(T) != 0) {
    report("%s: 0x%llx is not aligned to %zu bytes", call, (unsigned long long)dst, sizeof(T));
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (count > SIZE_MAX / sizeof(T)) return CUDA_ERROR_INVALID_VALUE;
  size_t bytes = count * sizeof(T);
  CUresult rc = device_argument(ctx, dst, bytes, call, "destination");
  if (rc) return rc;
  int device = ctx->device;
  return enqueue(s, Op{format("%s of %zu bytes at 0x%llx", call, bytes, (unsigned long long)dst), "cuMemset", [=](std::string* detail) {
                         if (!device_still_valid(device, dst, bytes, "the destination", detail)) return CUDA_ERROR_ILLEGAL_ADDRESS;
                         if (sizeof(T) == 1) {
                           memset((void*)dst, (int)value, count);
                         } else {
                           T* p = (T*)dst;
                           for (size_t i = 0; i < count; i++) p[i] = value;
                         }
                         return CUDA_SUCCESS;
                       }});
}

}  // namespace

CUDA_EMU_EXPORT CUresult cuMemGetInfo_v2(size_t* free, size_t* total) {
  CUDA_EMU_CONTEXT("cuMemGetInfo");
  if (free == nullptr || total == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *total = settings().total_memory;
  *free = settings().total_memory - ctx->allocated_bytes;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytesize) {
  CUDA_EMU_CONTEXT("cuMemAlloc");
  if (dptr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemAlloc");
  Allocation* a = nullptr;
  CUresult rc = allocate(ctx, bytesize, false, &a);
  if (rc == CUDA_SUCCESS) *dptr = a->base;
  return rc;
}

CUDA_EMU_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) {
  CUDA_EMU_CONTEXT("cuMemFree");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemFree");
  // cuMemFree synchronises with the device; queued work may still use the memory.
  CUresult rc = run_all(ctx);
  if (rc) return rc;
  return release(ctx, dptr, false, "cuMemFree_v2");
}

CUDA_EMU_EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr* pbase, size_t* psize, CUdeviceptr dptr) {
  CUDA_EMU_CONTEXT("cuMemGetAddressRange");
  const Allocation* a = find_live(dptr, 1);
  if (a == nullptr || a->host || a->device != ctx->device) {
    report("cuMemGetAddressRange: 0x%llx is %s", (unsigned long long)dptr, describe_address(dptr).c_str());
    return CUDA_ERROR_NOT_FOUND;
  }
  if (pbase) *pbase = a->base;
  if (psize) *psize = a->size;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuMemAllocHost_v2(void** pp, size_t bytesize) {
  CUDA_EMU_CONTEXT("cuMemAllocHost");
  if (pp == nullptr) return CUDA_ERROR_INVALID_VALUE;
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemAllocHost");
  Allocation* a = nullptr;
  CUresult rc = allocate(ctx, bytesize, true, &a);
  if (rc == CUDA_SUCCESS) *pp = (void*)a->base;
  return rc;
}

CUDA_EMU_EXPORT CUresult cuMemFreeHost(void* p) {
  CUDA_EMU_CONTEXT("cuMemFreeHost");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemFreeHost");
  CUresult rc = run_all(ctx);
  if (rc) return rc;
  return release(ctx, (uintptr_t)p, true, "cuMemFreeHost");
}

CUDA_EMU_EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount) {
  CUDA_EMU_CONTEXT("cuMemcpyHtoD");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemcpyHtoD");
  if (ByteCount == 0) return CUDA_SUCCESS;
  return copy_to_device(ctx, ctx->legacy, dstDevice, srcHost, ByteCount, "cuMemcpyHtoD", true);
}

CUDA_EMU_EXPORT CUresult cuMemcpyDtoH_v2(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount) {
  CUDA_EMU_CONTEXT("cuMemcpyDtoH");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemcpyDtoH");
  if (ByteCount == 0) return CUDA_SUCCESS;
  return copy_to_host(ctx, ctx->legacy, dstHost, srcDevice, ByteCount, "cuMemcpyDtoH", true);
}

CUDA_EMU_EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount) {
  CUDA_EMU_CONTEXT("cuMemcpyDtoD");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemcpyDtoD");
  if (ByteCount == 0) return CUDA_SUCCESS;
  return copy_on_device(ctx, ctx->legacy, dstDevice, srcDevice, ByteCount, "cuMemcpyDtoD");
}

CUDA_EMU_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount, CUstream hStream) {
  CUDA_EMU_CONTEXT("cuMemcpyHtoDAsync");
  CUDA_EMU_STREAM(hStream, s, "cuMemcpyHtoDAsync");
  if (ByteCount == 0) return CUDA_SUCCESS;
  return copy_to_device(ctx, s, dstDevice, srcHost, ByteCount, "cuMemcpyHtoDAsync", false);
}

CUDA_EMU_EXPORT CUresult cuMemcpyDtoHAsync_v2(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream) {
  CUDA_EMU_CONTEXT("cuMemcpyDtoHAsync");
  CUDA_EMU_STREAM(hStream, s, "cuMemcpyDtoHAsync");
  if (ByteCount == 0) return CUDA_SUCCESS;
  return copy_to_host(ctx, s, dstHost, srcDevice, ByteCount, "cuMemcpyDtoHAsync", false);
}

CUDA_EMU_EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream) {
  CUDA_EMU_CONTEXT("cuMemcpyDtoDAsync");
  CUDA_EMU_STREAM(hStream, s, "cuMemcpyDtoDAsync");
  if (ByteCount == 0) return CUDA_SUCCESS;
  return copy_on_device(ctx, s, dstDevice, srcDevice, ByteCount, "cuMemcpyDtoDAsync");
}

// Memsets of device memory are asynchronous with respect to the host, on the legacy stream.
CUDA_EMU_EXPORT CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N) {
  CUDA_EMU_CONTEXT("cuMemsetD8");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemsetD8");
  return memset_device(ctx, ctx->legacy, dstDevice, uc, N, "cuMemsetD8");
}

CUDA_EMU_EXPORT CUresult cuMemsetD16_v2(CUdeviceptr dstDevice, unsigned short us, size_t N) {
  CUDA_EMU_CONTEXT("cuMemsetD16");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemsetD16");
  return memset_device(ctx, ctx->legacy, dstDevice, us, N, "cuMemsetD16");
}

CUDA_EMU_EXPORT CUresult cuMemsetD32_v2(CUdeviceptr dstDevice, unsigned int ui, size_t N) {
  CUDA_EMU_CONTEXT("cuMemsetD32");
  CUDA_EMU_UNSAFE_IN_CAPTURE("cuMemsetD32");
  return memset_device(ctx, ctx->legacy, dstDevice, ui, N, "cuMemsetD32");
}

CUDA_EMU_EXPORT CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream) {
  CUDA_EMU_CONTEXT("cuMemsetD8Async");
  CUDA_EMU_STREAM(hStream, s, "cuMemsetD8Async");
  return memset_device(ctx, s, dstDevice, uc, N, "cuMemsetD8Async");
}

CUDA_EMU_EXPORT CUresult cuMemsetD16Async(CUdeviceptr dstDevice, unsigned short us, size_t N, CUstream hStream) {
  CUDA_EMU_CONTEXT("cuMemsetD16Async");
  CUDA_EMU_STREAM(hStream, s, "cuMemsetD16Async");
  return memset_device(ctx, s, dstDevice, us, N, "cuMemsetD16Async");
}

CUDA_EMU_EXPORT CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream) {
  CUDA_EMU_CONTEXT("cuMemsetD32Async");
  CUDA_EMU_STREAM(hStream, s, "cuMemsetD32Async");
  return memset_device(ctx, s, dstDevice, ui, N, "cuMemsetD32Async");
}

// ---- For libcublas.so.13 (not CUDA API; declared in cublas_bridge.h)

// Whether [p, p + bytes) is inside one live device allocation of `device`; else why not.
CUDA_EMU_EXPORT int cuda_emulator_check_range(CUdeviceptr p, size_t bytes, int device, char* why, size_t why_bytes) {
  CUDA_EMU_LOCK;
  std::string reason;
  if (check_range(p, bytes, device, false, &reason)) return 1;
  snprintf(why, why_bytes, "%s", reason.c_str());
  return 0;
}

// The current context's device, or -1 (with the reason reported) when there is no usable one.
CUDA_EMU_EXPORT int cuda_emulator_current_device(const char* call) {
  CUDA_EMU_LOCK;
  Context* ctx = nullptr;
  return current_context(&ctx, call) == CUDA_SUCCESS ? ctx->device : -1;
}
