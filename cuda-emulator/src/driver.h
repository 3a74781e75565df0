// Internals of the emulated driver (libcuda.so.1), shared by its source files:
//
//   driver.cpp     cuInit, devices, primary contexts, error names, settings, cuEmulatorLiveObjects
//   memory.cpp     device and pinned host memory: arenas, guard pages, canaries, range checks;
//                  the allocation, copy and memset calls
//   streams.cpp    deferred streams, events, stream capture and graphs; the op executor
//   modules.cpp    kernel sets, modules, functions, cuLaunchKernel
//   scheduler.cpp  the worker pool and the fiber scheduler that runs a grid's blocks
//   report.cpp     stderr messages and the CUDA_EMU_STATS table
//
// Concurrency: one process-wide recursive mutex (driver_mutex) guards all driver state; every API
// call takes it. Queued work runs on the calling thread at synchronisation points, while it holds
// the mutex; kernel blocks and GEMM tiles then run on the worker pool (the calling thread and
// helper threads), which touches no driver state except what the op handed it and reads of the
// allocation map (no call can change it meanwhile).
#pragma once

#include <atomic>
#include <cstdarg>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emulator.h"
#include "device/cuda_emulator_device.h"

#define CUDA_EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace cuda_emu {

// ---------------------------------------------------------------------------------------------
// report.cpp

// One line to stderr, prefixed "cuda-emulator: ".
void report(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* format, ...) __attribute__((format(printf, 1, 2)));
const char* result_name(CUresult rc);
// Adds `seconds` to the CUDA_EMU_STATS row `key`.
void record_time(const std::string& key, double seconds);

// ---------------------------------------------------------------------------------------------
// driver.cpp

struct Settings {
  int devices = 1;                       // CUDA_EMU_DEVICES: the physical devices
  std::vector<int> visible;              // CUDA_VISIBLE_DEVICES: the physical device of each ordinal
  size_t total_memory = 16ull << 30;     // CUDA_EMU_TOTAL_MEM
  int workers = 1;                       // CUDA_EMU_WORKERS
  bool stats = false;                    // CUDA_EMU_STATS
  bool launch_blocking = false;          // CUDA_LAUNCH_BLOCKING
  bool skip_compute = false;             // CUDA_EMU_SKIP_COMPUTE
};
const Settings& settings();
std::recursive_mutex& driver_mutex();
#define CUDA_EMU_LOCK std::lock_guard<std::recursive_mutex> driver_lock_(::cuda_emu::driver_mutex())

struct Stream;
struct Event;
struct Module;
struct Function;
struct Graph;
struct GraphExec;
struct Capture;
struct Allocation;

struct Context {
  int device = 0;
  int refs = 0;               // primary context retain count; 0 = inactive
  CUresult sticky = CUDA_SUCCESS;  // the error of a failed asynchronous operation
  std::shared_ptr<Stream> legacy;  // the NULL / CU_STREAM_LEGACY stream
  std::map<Stream*, std::shared_ptr<Stream>> streams;  // created by cuStreamCreate, by handle
  std::set<Event*> events;
  std::set<Module*> modules;
  std::set<Graph*> graphs;
  std::set<GraphExec*> execs;
  size_t allocated_bytes = 0;      // live device allocations (what cuMemGetInfo subtracts)
  size_t allocations = 0;
  size_t host_allocations = 0;
};

// The current context of the calling thread, checked: CUDA_SUCCESS with *ctx set, or the error
// CUDA returns (not initialised, no current context, destroyed context, sticky error), reported
// on stderr as a failure of `call` (except the sticky error, reported when it happened).
CUresult current_context(Context** ctx, const char* call);
// As current_context, but a sticky error does not fail it.
CUresult current_context_ignoring_sticky(Context** ctx);
// The devices this process sees (CUDA_VISIBLE_DEVICES of CUDA_EMU_DEVICES); 0 before cuInit.
int device_count();

// ---------------------------------------------------------------------------------------------
// memory.cpp

struct Allocation {
  uintptr_t base = 0;          // what cuMemAlloc / cuMemAllocHost returned
  size_t size = 0;
  uintptr_t region = 0;        // read-write pages [region, region + region_bytes); guard pages around
  size_t region_bytes = 0;
  int device = -1;             // the owning context's device
  bool host = false;           // pinned host memory (cuMemAllocHost)
  bool live = true;
};

CUresult allocate(Context* ctx, size_t bytes, bool host, Allocation** out);
// Frees an allocation of ctx by its base pointer; reports and returns CUDA_ERROR_INVALID_VALUE for
// anything else (unknown pointer, interior pointer, double free, another device's memory).
CUresult release(Context* ctx, uintptr_t base, bool host, const char* call);
void release_all(Context* ctx);  // at primary context reset

// The live allocation containing [p, p + bytes), or null.
const Allocation* find_live(uintptr_t p, size_t bytes);
// Checks that [p, p + bytes) lies in one live allocation of the right kind and device; otherwise
// sets *why to a description of what is there instead. host: pinned host memory of `device`.
bool check_range(uintptr_t p, size_t bytes, int device, bool host, std::string* why);
// Whether host memory [p, p + bytes) is pinned (inside a live cuMemAllocHost buffer of device).
// *partial is set when it starts in one but runs past its end.
bool is_pinned(const void* p, size_t bytes, int device, bool* partial);
// Where an address lies relative to allocations: "12 bytes past the end of the 4096-byte device
// allocation at 0x...", "inside a freed ... allocation", "not emulator memory".
std::string describe_address(uintptr_t p);
// Checks the canary bytes around an allocation. window: only the bytes nearest to the data
// (fast, after each block); otherwise all of them. Returns false and describes the first
// overwritten byte in *why.
bool check_canaries(const Allocation& a, bool window, std::string* why);
// Fills bytes [p, p + n) with the canary pattern (also used after dynamic shared memory).
void fill_canary(unsigned char* p, size_t n);
// The offset of the first byte in [p, p + n) that is not the canary pattern, or n.
size_t first_non_canary(const unsigned char* p, size_t n);

// ---------------------------------------------------------------------------------------------
// streams.cpp

// One queued operation. run() does the work when the op executes; it returns CUDA_SUCCESS or an
// error with the reason in *detail, which becomes the context's sticky error.
struct Op {
  std::string what;        // for messages: "kernel rmsnorm_bf16 grid (4,1,1) block (256,1,1)"
  std::string stat;        // the CUDA_EMU_STATS row
  std::function<CUresult(std::string* detail)> run;
  bool compute = false;    // a kernel or a GEMM: skipped under CUDA_EMU_SKIP_COMPUTE
};
// Runs op's work, unless it is compute and CUDA_EMU_SKIP_COMPUTE is set; adds its time to its stat row.
CUresult run_op(const Op& op, std::string* detail);

struct Stream {
  Context* ctx = nullptr;
  unsigned flags = 0;
  bool legacy = false;
  struct Pending {
    Op op;
    uint64_t seq;
    std::vector<std::pair<std::shared_ptr<Stream>, uint64_t>> waits;  // must have run first
  };
  std::deque<Pending> pending;
  uint64_t enqueued = 0;   // sequence number of the last op enqueued
  uint64_t completed = 0;  // ... and of the last one run
  std::shared_ptr<Capture> capture;  // while capturing
  uint64_t told_not_ready = 0;       // cuStreamQuery answered CUDA_ERROR_NOT_READY up to this op
  bool blocking() const { return !legacy && (flags & CU_STREAM_NON_BLOCKING) == 0; }
  bool idle() const { return completed == enqueued; }
};

// The stream a handle names in ctx (NULL and CU_STREAM_LEGACY: the legacy stream).
CUresult stream_of(Context* ctx, CUstream handle, std::shared_ptr<Stream>* out, const char* call);

// The start of an API call that needs the current context: takes the driver lock and binds `ctx`,
// or returns the error (no context, a destroyed one, a sticky fault).
#define CUDA_EMU_CONTEXT(call)                  \
  CUDA_EMU_LOCK;                                \
  Context* ctx = nullptr;                       \
  do {                                          \
    CUresult rc_ = current_context(&ctx, call); \
    if (rc_ != CUDA_SUCCESS) return rc_;        \
  } while (0)

// Binds `var` to the stream `handle` names in `ctx` (the legacy stream for 0), or returns the error.
#define CUDA_EMU_STREAM(handle, var, call)             \
  std::shared_ptr<Stream> var;                         \
  do {                                                 \
    CUresult rc_ = stream_of(ctx, handle, &var, call); \
    if (rc_ != CUDA_SUCCESS) return rc_;               \
  } while (0)
// Queues op on stream (or records it into the stream's capture). *seq, when given, receives the
// op's sequence number. With CUDA_LAUNCH_BLOCKING=1 the op runs before this returns.
CUresult enqueue(const std::shared_ptr<Stream>& stream, Op op, uint64_t* seq = nullptr);
// As enqueue, and the op also waits for op after_seq of stream `after`.
CUresult enqueue_after(const std::shared_ptr<Stream>& stream, Op op, const std::shared_ptr<Stream>& after, uint64_t after_seq,
                       uint64_t* seq);
// Runs stream's ops up to and including seq (and whatever they wait for).
CUresult run_until(const std::shared_ptr<Stream>& stream, uint64_t seq);
// Runs every queued op of ctx.
CUresult run_all(Context* ctx);
// Marks the stream's capture invalidated (the stream must capture).
void invalidate_capture(Stream& s);
// For calls CUDA forbids while a stream captures (cuMemAlloc, synchronous copies, ...): returns
// CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and invalidates the conflicting captures, or SUCCESS.
CUresult check_unsafe_during_capture(const char* call);
// Destroys the context's streams, events, graphs and execs (at primary context reset), and
// returns how many of each there were.
void destroy_streams_events_graphs(Context* ctx, size_t counts[4]);

// ---------------------------------------------------------------------------------------------
// modules.cpp

void destroy_modules(Context* ctx, size_t* count);
// Loads the kernel sets next to libcuda.so.1 (once); called by cuInit.
void load_kernel_sets();

// ---------------------------------------------------------------------------------------------
// scheduler.cpp

// A grid to run: the kernel, its captured arguments and the launch geometry.
struct Grid {
  const KernelSet* set;
  const KernelInfo* kernel;
  const KernelArgs* args;
  unsigned grid[3];
  unsigned block[3];
  unsigned dynamic_shared;
  // Checked after every block (the canaries of the launch's pointer arguments); a failure there
  // fails the launch with CUDA_ERROR_ILLEGAL_ADDRESS.
  std::function<bool(std::string* why)> after_block;
  std::atomic<unsigned>* warned;  // per kernel: bits of the warnings printed (each once)
};
// Runs every block of the grid on the worker pool. Returns CUDA_SUCCESS or the launch's error
// with a one-line reason in *why (naming the block, thread and address where known).
CUresult run_grid(const Grid& grid, std::string* why);
// Runs fn(data, i) for i in [0, tasks) on the worker pool; returns when all are done.
void parallel_for(size_t tasks, void (*fn)(void* data, size_t task), void* data);
int worker_count();

}  // namespace cuda_emu
