// Runs a grid's blocks on a pool of worker threads (CUDA_EMU_WORKERS, default: the machine's
// cores, at most 64), each block on one worker, its CUDA threads as fibers.
//
// Fibers. A fiber is a stack slot of kFiberStackBytes (aligned to that size, a guard page at its
// bottom, its DeviceThread and scheduler state near its top, the stack below them) plus a
// hand-written x86-64 context switch that saves the callee-saved registers. A fiber runs CUDA threads one after the other,
// starting the block's next unstarted thread whenever its current one finishes, so a kernel
// without synchronisation runs its whole block on one stack, without a single switch. A thread
// that must wait (at __syncthreads, or at a warp shuffle / vote / __syncwarp until its warp's
// lanes arrive) keeps its fiber, and the worker switches straight to the next runnable fiber, or
// starts a new fiber on the next unstarted thread:
//   - a barrier counts arrivals; the thread that completes it releases the others and goes on;
//   - a warp exchange records each lane's value; the lane that completes it computes every
//     lane's result (PTX shfl.sync semantics: idx/up/down/bfly with width, or a ballot) and goes
//     on, the other lanes become runnable in lane order.
// Every switch is O(1): no scan over the block's threads. Exited threads count as arrived, as on a
// GPU. When no fiber can run and threads are left, the block is deadlocked (e.g. part of a warp at
// __syncthreads and the rest at a shuffle): the launch fails with CUDA_ERROR_LAUNCH_FAILED and a
// description of who waits where.
//
// Shared memory: the kernel set's thread_local storage (see cuda_emulator_device.h). Before each
// block, static __shared__ variables and the launch's dynamic shared memory are poisoned (0xff),
// and a canary follows the dynamic part; after it, the canary is checked.
//
// Faults. SIGSEGV/SIGBUS handler: a fault whose stack pointer is inside a worker's fiber stacks
// is a kernel's illegal address (guard page, freed memory, wild pointer, fiber stack overflow):
// the handler redirects the thread to an escape stack that switches back to the worker's
// scheduler, and the launch fails with CUDA_ERROR_ILLEGAL_ADDRESS naming block, thread and
// address. Any other fault goes to the handler installed before (the JVM's, which relies on
// SIGSEGV), called exactly as the kernel would have called it.
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "driver.h"

extern "C" void cuda_emu_switch(void** save_sp, void* load_sp);
extern "C" void cuda_emu_fiber_start();
// cuda_emu_switch: push the callee-saved registers, save rsp to *save_sp, load load_sp, pop them
// and return into the other fiber. A new fiber's initial frame "returns" into
// cuda_emu_fiber_start, which calls r13(r12).
asm(R"(
  .text
  .globl cuda_emu_switch
  .hidden cuda_emu_switch
  .type cuda_emu_switch,@function
cuda_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cuda_emu_switch, .-cuda_emu_switch
  .globl cuda_emu_fiber_start
  .hidden cuda_emu_fiber_start
  .type cuda_emu_fiber_start,@function
cuda_emu_fiber_start:
  movq %r12, %rdi
  call *%r13
  ud2
  .size cuda_emu_fiber_start, .-cuda_emu_fiber_start
)");

namespace cuda_emu {
namespace {

constexpr int kMaxThreads = 1024;
constexpr int kMaxWarps = kMaxThreads / 32;
constexpr uintptr_t kGuardBytes = 4096;
constexpr size_t kEscapeStackBytes = 64 * 1024;
constexpr size_t kDynamicSharedCanary = 1024;

// Warning kinds, printed once per kernel (Grid::warned bits).
constexpr unsigned kWarnedDivergent = 1, kWarnedInactiveLane = 2;

struct Worker;

struct Fiber {
  DeviceThread device;  // first: the shim finds it near the top of the stack slot
  void* sp = nullptr;   // saved stack pointer while switched out
  Worker* worker = nullptr;
  int linear = -1;      // the CUDA thread it runs (linear index in the block), -1 between threads
  unsigned lane = 0, warp = 0;
};
static_assert(offsetof(Fiber, device) == 0, "the DeviceThread must be at the slot's DeviceThread offset");
static_assert(sizeof(Fiber) <= kDeviceThreadBytes, "fiber state must fit the reserved top of the slot");

struct Warp {
  unsigned live = 0;     // lanes not exited (threads not started yet are live)
  unsigned arrived = 0;  // lanes waiting in the current exchange
  unsigned mask = 0;     // its mask
  const void* site = nullptr;
  // Whether every lane so far called with the same mode, argument and width (the usual case):
  // then the results are computed without looking at each lane's operands.
  bool uniform = true;
  // The exchange's operands and results by lane: kept together (not in the 32 fibers) so that
  // completing an exchange touches a few cache lines.
  uint64_t value[32], result[32];
  int arg[32];
  uint8_t width[32];
  uint8_t mode[32];
};

struct SharedMemory {
  unsigned char* dynamic = nullptr;  // this worker's dynamic shared memory buffer
  size_t capacity = 0;
  unsigned char* tls = nullptr;      // the kernel set's whole thread-local block (static __shared__ + dynamic)
  size_t tls_bytes = 0;
};

enum class Outcome { kRunning, kDone, kDeadlock, kFault, kFailed };

struct Worker {
  // Fiber stack slots: reserved once, made usable on first need.
  uintptr_t slots = 0;
  std::vector<Fiber*> ready_slots;  // usable slots
  std::vector<Fiber*> free_slots;   // of those, not running a thread of the current block
  void* main_sp = nullptr;          // the worker's own stack while fibers run
  void* escape_sp = nullptr;
  unsigned char* escape_stack = nullptr;
  void* signal_stack = nullptr;
  std::map<const KernelSet*, SharedMemory> shared;

  // The block being run.
  const Grid* grid = nullptr;
  DeviceBlock block{};
  int threads = 0, next_start = 0, live = 0, at_barrier = 0;
  uint3 next_index{};  // threadIdx of thread next_start
  std::vector<Fiber*> barrier;
  // Runnable fibers: lanes released by warp exchanges, as a stack of (warp, lanes) (at most one
  // entry per warp: its lanes cannot meet again before all have run), popped first, in lane
  // order, so that a warp keeps running while its fibers are in the cache; then threads released
  // by a barrier, in a ring.
  struct Released {
    int warp;
    unsigned lanes;
  } released[kMaxWarps];
  int released_count = 0;
  Fiber* ready[kMaxThreads];
  unsigned ready_head = 0, ready_count = 0;
  Warp warps[kMaxWarps];
  Fiber* lanes[kMaxThreads];

  volatile sig_atomic_t in_block = 0;
  Outcome outcome = Outcome::kRunning;
  CUresult failure = CUDA_SUCCESS;
  std::string message;
  uintptr_t fault_address = 0;
  bool fault_write = false;
  int fault_thread = -1;
};

// ---- The CUDA thread being run, and its worker.

inline Fiber* self() { return reinterpret_cast<Fiber*>(this_thread()); }

uint3 thread_index(const Worker& w, int linear) {
  unsigned bx = w.block.block_dim.x, by = w.block.block_dim.y;
  return uint3{linear % bx, (linear / bx) % by, linear / (bx * by)};
}

std::string where(const Worker& w, int linear) {
  std::string s = format("block (%u,%u,%u)", w.block.block_idx.x, w.block.block_idx.y, w.block.block_idx.z);
  if (linear >= 0) {
    uint3 t = thread_index(w, linear);
    s += format(" thread (%u,%u,%u)", t.x, t.y, t.z);
  }
  return s;
}

// ---- Fiber slots

Fiber* slot_fiber(uintptr_t slot) { return reinterpret_cast<Fiber*>(slot + device_thread_offset(slot)); }

Fiber* take_slot(Worker& w) {
  if (!w.free_slots.empty()) {
    Fiber* f = w.free_slots.back();
    w.free_slots.pop_back();
    return f;
  }
  // A new slot: its bottom page stays PROT_NONE (the guard page against stack overflow). Each
  // guard page splits the mapping: with many workers running 1024-thread blocks that can exceed
  // vm.max_map_count, and then the slot goes without one.
  uintptr_t slot = w.slots + w.ready_slots.size() * kFiberStackBytes;
  if (mprotect((void*)(slot + kGuardBytes), kFiberStackBytes - kGuardBytes, PROT_READ | PROT_WRITE) != 0) {
    static std::once_flag warned;
    std::call_once(warned, [] {
      report("warning: fiber stacks without guard pages from now on (mprotect: %s; vm.max_map_count too low for "
             "CUDA_EMU_WORKERS?): a CUDA thread's stack overflow may go unnoticed", strerror(errno));
    });
    if (mprotect((void*)slot, kFiberStackBytes, PROT_READ | PROT_WRITE) != 0) {
      report("cannot make a fiber stack (mprotect: %s)", strerror(errno));
      abort();
    }
  }
  Fiber* f = new (slot_fiber(slot)) Fiber;
  f->worker = &w;
  w.ready_slots.push_back(f);
  return f;
}

void runner(Fiber* f);

// A fiber whose first switch-in calls runner(f).
Fiber* start_fiber(Worker& w) {
  Fiber* f = take_slot(w);
  uintptr_t top = (uintptr_t)f;  // 16-byte aligned; the stack grows down from below the Fiber
  void** sp = (void**)(top - 72);  // 7 words; top - 72 = 8 (mod 16), so the call in cuda_emu_fiber_start is aligned
  sp[0] = nullptr;                          // r15
  sp[1] = nullptr;                          // r14
  sp[2] = (void*)&runner;                   // r13: entry
  sp[3] = (void*)f;                         // r12: its argument
  sp[4] = nullptr;                          // rbx
  sp[5] = nullptr;                          // rbp
  sp[6] = (void*)&cuda_emu_fiber_start;     // return address
  f->sp = sp;
  return f;
}

void push_ready(Worker& w, Fiber* f) { w.ready[(w.ready_head + w.ready_count++) & (kMaxThreads - 1)] = f; }

void push_released(Worker& w, int warp, unsigned lanes) {
  if (lanes != 0) w.released[w.released_count++] = Worker::Released{warp, lanes};
}

bool any_ready(const Worker& w) { return w.released_count > 0 || w.ready_count > 0; }

Fiber* pop_ready(Worker& w) {
  if (w.released_count > 0) {
    Worker::Released& top = w.released[w.released_count - 1];
    int lane = __builtin_ctz(top.lanes);
    top.lanes &= top.lanes - 1;
    Fiber* f = w.lanes[top.warp * 32 + lane];
    if (top.lanes == 0) w.released_count--;
    return f;
  }
  Fiber* f = w.ready[w.ready_head];
  w.ready_head = (w.ready_head + 1) & (kMaxThreads - 1);
  w.ready_count--;
  return f;
}

[[noreturn]] void to_scheduler(Worker& w, Fiber* from) {
  cuda_emu_switch(&from->sp, w.main_sp);
  __builtin_unreachable();
}

std::string describe_deadlock(Worker& w) {
  std::string s = format("%s: deadlock: all %d unfinished threads wait:", where(w, -1).c_str(), w.live);
  if (w.at_barrier > 0) {
    s += format(" %d at __syncthreads (first: thread ", w.at_barrier);
    uint3 t = thread_index(w, w.barrier.front()->linear);
    s += format("(%u,%u,%u));", t.x, t.y, t.z);
  }
  int shown = 0;
  for (int i = 0; i < (w.threads + 31) / 32; i++) {
    Warp& wp = w.warps[i];
    if (wp.arrived == 0) continue;
    if (shown++ == 3) {
      s += " ...";
      break;
    }
    s += format(" warp %d: lanes 0x%08x at a warp shuffle/vote/__syncwarp (mask 0x%08x) wait for lanes 0x%08x;", i, wp.arrived, wp.mask,
                wp.mask & wp.live & ~wp.arrived);
  }
  return s;
}

// Switches from `from` (waiting, or finished) to the next fiber that can run: a released one, or
// a new one for the next unstarted thread. None: the block is done, or deadlocked.
void switch_away(Worker& w, Fiber* from) {
  Fiber* next = nullptr;
  if (any_ready(w)) {
    next = pop_ready(w);
  } else if (w.next_start < w.threads) {
    next = start_fiber(w);
  }
  if (next != nullptr) {
    cuda_emu_switch(&from->sp, next->sp);
    return;
  }
  if (w.live > 0) {
    w.outcome = Outcome::kDeadlock;
    w.failure = CUDA_ERROR_LAUNCH_FAILED;
    w.message = describe_deadlock(w);
  } else {
    w.outcome = Outcome::kDone;
  }
  to_scheduler(w, from);
}

[[noreturn]] void fail(Worker& w, Fiber* f, CUresult rc, const std::string& message) {
  w.outcome = Outcome::kFailed;
  w.failure = rc;
  w.message = where(w, f->linear) + ": " + message;
  to_scheduler(w, f);
}

void release_barrier(Worker& w, Fiber* except) {
  for (Fiber* f : w.barrier)
    if (f != except) push_ready(w, f);
  w.barrier.clear();
  w.at_barrier = 0;
}

// The lane a shuffle reads, by PTX shfl.sync's rules (the clamp and segment mask CUDA's
// __shfl_*_sync pass for `width`); a lane outside its segment's range reads itself.
int source_lane(int lane, int b, int width, WarpMode mode) {
  int seg = 32 - width;  // the segment bits
  int bval = b & 31;
  int min_lane = lane & seg;
  int max_lane = min_lane | (31 & ~seg);
  int j = lane;
  bool ok = false;
  switch (mode) {
    case kShuffleUp: j = lane - bval; ok = j >= min_lane; break;
    case kShuffleDown: j = lane + bval; ok = j <= max_lane; break;
    case kShuffleXor: j = lane ^ bval; ok = j <= max_lane; break;
    case kShuffleIdx: j = min_lane | (bval & ~seg); ok = j <= max_lane; break;
    default: break;
  }
  return ok ? j : lane;
}

// Whether a warning of this kind is still to be printed for the kernel (once per kernel).
bool first_warning(Worker& w, unsigned kind) { return (w.grid->warned->fetch_or(kind) & kind) == 0; }

void warn(Worker& w, const std::string& message) { report("warning: kernel %s: %s", w.grid->kernel->name, message.c_str()); }

// Results of a shuffle every arrived lane made with the same mode, argument and width; false
// when a lane reads one that is not in the exchange (the general path then warns).
template <WarpMode M> bool uniform_shuffle(Warp& wp, unsigned arrived) {
  int arg = wp.arg[__builtin_ctz(arrived)], width = wp.width[__builtin_ctz(arrived)];
  for (unsigned bits = arrived; bits; bits &= bits - 1) {
    int i = __builtin_ctz(bits), j = source_lane(i, arg, width, M);
    if (((arrived >> j) & 1) == 0) return false;
    wp.result[i] = wp.value[j];
  }
  return true;
}

// The last lane of an exchange arrived (or a lane exited): every waiting lane gets its result.
void complete_exchange(Worker& w, int warp, Fiber* current) {
  Warp& wp = w.warps[warp];
  unsigned arrived = wp.arrived;
  bool done = false;
  if (wp.uniform) {
    switch ((WarpMode)wp.mode[__builtin_ctz(arrived)]) {
      case kShuffleXor: done = uniform_shuffle<kShuffleXor>(wp, arrived); break;
      case kShuffleDown: done = uniform_shuffle<kShuffleDown>(wp, arrived); break;
      case kShuffleUp: done = uniform_shuffle<kShuffleUp>(wp, arrived); break;
      case kShuffleIdx: done = uniform_shuffle<kShuffleIdx>(wp, arrived); break;
      default: break;
    }
  }
  if (!done) {
    unsigned ballot = 0;
    for (unsigned bits = arrived; bits; bits &= bits - 1) {
      int i = __builtin_ctz(bits);
      if (wp.value[i] != 0) ballot |= 1u << i;
    }
    for (unsigned bits = arrived; bits; bits &= bits - 1) {
      int i = __builtin_ctz(bits);
      WarpMode mode = (WarpMode)wp.mode[i];
      if (mode == kBallot) {
        wp.result[i] = ballot;
      } else if (mode == kSyncWarp) {
        wp.result[i] = 0;
      } else {
        int j = source_lane(i, wp.arg[i], wp.width[i], mode);
        if (((arrived >> j) & 1) == 0) {
          if (first_warning(w, kWarnedInactiveLane)) {
            warn(w, format("%s: lane %d of warp %d shuffles from lane %d, which is not in the exchange (exited or outside the mask): "
                           "undefined on a GPU; the emulator returns the lane's own value",
                           where(w, w.lanes[warp * 32 + i]->linear).c_str(), i, warp, j));
          }
          j = i;
        }
        wp.result[i] = wp.value[j];
      }
    }
  }
  wp.arrived = 0;
  wp.uniform = true;
  push_released(w, warp, current ? arrived & ~(1u << current->lane) : arrived);
}

void thread_exited(Worker& w, Fiber* f) {
  w.lanes[f->linear] = nullptr;
  w.live--;
  Warp& wp = w.warps[f->warp];
  wp.live &= ~(1u << f->lane);
  if (wp.arrived != 0 && (wp.mask & wp.live & ~wp.arrived) == 0) complete_exchange(w, f->warp, nullptr);
  if (w.at_barrier > 0 && w.at_barrier == w.live) release_barrier(w, nullptr);
}

// A fiber's life: run unstarted threads of the block until none is left, then give the slot back.
void runner(Fiber* f) {
  Worker& w = *f->worker;
  const KernelArgs* args = w.grid->args;
  while (w.next_start < w.threads) {
    int t = w.next_start++;
    f->linear = t;
    f->lane = t & 31;
    f->warp = t >> 5;
    // threadIdx of thread t, counted up from the previous start (no divisions).
    f->device.thread_idx = w.next_index;
    if (++w.next_index.x == w.block.block_dim.x) {
      w.next_index.x = 0;
      if (++w.next_index.y == w.block.block_dim.y) {
        w.next_index.y = 0;
        w.next_index.z++;
      }
    }
    f->device.block = &w.block;
    w.lanes[t] = f;
    args->run();
    thread_exited(w, f);
  }
  f->linear = -1;
  // Safe although this fiber still runs on the slot: with no unstarted thread left, nothing in
  // this block starts a new fiber, which is what would reuse it.
  w.free_slots.push_back(f);
  switch_away(w, f);
  __builtin_unreachable();
}

// ---- Shared memory

SharedMemory& shared_memory(Worker& w, const KernelSet* set) {
  auto it = w.shared.find(set);
  if (it != w.shared.end()) return it->second;
  SharedMemory& sm = w.shared[set];
  sm.dynamic = set->dynamic_shared();  // also allocates this thread's copy of the set's TLS block
  sm.capacity = set->dynamic_shared_capacity;
  // The kernel set's TLS block holds only shared memory (static __shared__ variables and the
  // dynamic buffer): find its extent for this thread, to poison the static part per block.
  Dl_info info;
  if (dladdr((void*)set->dynamic_shared, &info) != 0) {
    struct Search {
      uintptr_t base;
      SharedMemory* sm;
    } search{(uintptr_t)info.dli_fbase, &sm};
    dl_iterate_phdr(
        [](dl_phdr_info* phdr, size_t, void* data) {
          Search* s = (Search*)data;
          if (phdr->dlpi_addr != s->base || phdr->dlpi_tls_data == nullptr) return 0;
          for (int i = 0; i < phdr->dlpi_phnum; i++) {
            if (phdr->dlpi_phdr[i].p_type == PT_TLS) {
              s->sm->tls = (unsigned char*)phdr->dlpi_tls_data;
              s->sm->tls_bytes = phdr->dlpi_phdr[i].p_memsz;
            }
          }
          return 1;
        },
        &search);
  }
  if (sm.tls && !(sm.dynamic >= sm.tls && sm.dynamic + sm.capacity <= sm.tls + sm.tls_bytes)) sm.tls = nullptr;
  return sm;
}

void poison_shared(const SharedMemory& sm, const KernelInfo& kernel, unsigned dynamic_bytes) {
  // Static __shared__ variables: all of the set's (the TLS block), unless ptxas said this kernel has none.
  if (sm.tls && kernel.static_shared_bytes != 0) {
    memset(sm.tls, 0xff, sm.dynamic - sm.tls);
    memset(sm.dynamic + sm.capacity, 0xff, sm.tls + sm.tls_bytes - (sm.dynamic + sm.capacity));
  }
  memset(sm.dynamic, 0xff, dynamic_bytes);
  fill_canary(sm.dynamic + dynamic_bytes, kDynamicSharedCanary);
}

// ---- One block

CUresult run_block(Worker& w, const Grid& grid, uint64_t index, std::string* why) {
  w.grid = &grid;
  uint64_t gx = grid.grid[0], gy = grid.grid[1];
  w.block.block_idx = uint3{(unsigned)(index % gx), (unsigned)((index / gx) % gy), (unsigned)(index / (gx * gy))};
  w.block.block_dim = dim3(grid.block[0], grid.block[1], grid.block[2]);
  w.block.grid_dim = dim3(grid.grid[0], grid.grid[1], grid.grid[2]);
  w.threads = (int)(grid.block[0] * grid.block[1] * grid.block[2]);
  w.next_start = 0;
  w.next_index = uint3{0, 0, 0};
  w.live = w.threads;
  w.at_barrier = 0;
  w.barrier.clear();
  w.ready_head = w.ready_count = 0;
  w.released_count = 0;
  for (int i = 0; i < (w.threads + 31) / 32; i++) {
    int lanes = w.threads - 32 * i;
    w.warps[i].live = lanes >= 32 ? 0xffffffffu : (1u << lanes) - 1;
    w.warps[i].arrived = 0;
    w.warps[i].uniform = true;
  }
  w.free_slots.assign(w.ready_slots.rbegin(), w.ready_slots.rend());
  SharedMemory& sm = shared_memory(w, grid.set);
  poison_shared(sm, *grid.kernel, grid.dynamic_shared);
  w.block.shared_begin = (uintptr_t)(sm.tls ? sm.tls : sm.dynamic);
  w.block.shared_end = sm.tls ? (uintptr_t)(sm.tls + sm.tls_bytes) : (uintptr_t)(sm.dynamic + sm.capacity);

  w.outcome = Outcome::kRunning;
  w.in_block = 1;
  Fiber* first = start_fiber(w);
  cuda_emu_switch(&w.main_sp, first->sp);
  w.in_block = 0;

  switch (w.outcome) {
    case Outcome::kDone:
      break;
    case Outcome::kFault: {
      uintptr_t a = w.fault_address;
      std::string what;
      if (a >= w.slots && a < w.slots + kMaxThreads * kFiberStackBytes) {
        what = format("stack overflow at 0x%llx (the emulator's CUDA thread stacks are %llu KiB)", (unsigned long long)a,
                      (unsigned long long)(kFiberStackBytes >> 10));
      } else {
        what = format("illegal %s at 0x%llx: %s", w.fault_write ? "write" : "read", (unsigned long long)a, describe_address(a).c_str());
      }
      *why = where(w, w.fault_thread) + ": " + what;
      return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
    default:
      *why = w.message;
      return w.failure;
  }
  size_t bad = first_non_canary(sm.dynamic + grid.dynamic_shared, kDynamicSharedCanary);
  if (bad < kDynamicSharedCanary) {
    *why = format("%s: wrote dynamic shared memory at byte %zu, past the launch's %u bytes (sharedMemBytes)", where(w, -1).c_str(),
                  grid.dynamic_shared + bad, grid.dynamic_shared);
    return CUDA_ERROR_ILLEGAL_ADDRESS;
  }
  if (grid.after_block) {
    std::string problem;
    if (!grid.after_block(&problem)) {
      *why = "after " + where(w, -1) + " finished: " + problem;
      return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
  }
  return CUDA_SUCCESS;
}

// ---- Faults

struct sigaction previous_segv, previous_bus;

// The threads that run fibers (helpers, and callers that take part in their jobs), for the fault
// handler: a fixed table, read without locks (async-signal-safe). Entries are never removed; a
// thread whose pthread_t matches a dead thread's entry takes over that entry's Worker.
constexpr int kMaxFiberThreads = 256;
std::atomic<int> registered_threads{0};
pthread_t fiber_threads[kMaxFiberThreads];
Worker* fiber_thread_workers[kMaxFiberThreads];
std::mutex registry_mutex;

Worker* this_worker() {
  int n = registered_threads.load(std::memory_order_acquire);
  pthread_t me = pthread_self();
  for (int i = 0; i < n; i++)
    if (pthread_equal(fiber_threads[i], me)) return fiber_thread_workers[i];
  return nullptr;
}

Worker* new_worker() {
  Worker* w = new Worker;
  w->barrier.reserve(kMaxThreads);
  // The fiber slots' address range, aligned to the slot size (what this_thread() relies on).
  size_t bytes = (kMaxThreads + 1) * kFiberStackBytes;
  void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    report("cannot reserve fiber stacks: %s", strerror(errno));
    abort();
  }
  w->slots = ((uintptr_t)p + kFiberStackBytes - 1) & ~(kFiberStackBytes - 1);
  w->escape_stack = (unsigned char*)malloc(kEscapeStackBytes);
  w->escape_sp = (void*)((((uintptr_t)w->escape_stack + kEscapeStackBytes) & ~(uintptr_t)15) - 8);
  w->signal_stack = malloc(kEscapeStackBytes);
  return w;
}

// Registers `thread` as running w's fibers, or finds the Worker of a dead thread with the same
// pthread_t and takes it over: then what that Worker cached about its thread (the addresses of its
// thread-local shared memory, freed with it) is forgotten.
Worker* register_thread(pthread_t thread, Worker* w) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  int n = registered_threads.load(std::memory_order_relaxed);
  for (int i = 0; i < n; i++) {
    if (pthread_equal(fiber_threads[i], thread)) {
      fiber_thread_workers[i]->shared.clear();
      return fiber_thread_workers[i];
    }
  }
  if (n == kMaxFiberThreads) {
    report("more than %d threads called into the emulator's kernels", kMaxFiberThreads);
    abort();
  }
  if (w == nullptr) w = new_worker();
  fiber_threads[n] = thread;
  fiber_thread_workers[n] = w;
  registered_threads.store(n + 1, std::memory_order_release);
  return w;
}

// An alternate signal stack while a thread runs fibers: a fiber stack overflow leaves no room on
// the fiber for the handler. Helpers keep theirs; a caller's is swapped in for its job only.
class AlternateSignalStack {
 public:
  explicit AlternateSignalStack(Worker& w) {
    stack_t ss;
    ss.ss_sp = w.signal_stack;
    ss.ss_size = kEscapeStackBytes;
    ss.ss_flags = 0;
    sigaltstack(&ss, &saved_);
  }
  ~AlternateSignalStack() { sigaltstack(&saved_, nullptr); }

 private:
  stack_t saved_;
};

[[noreturn]] void escape_from_fault(Worker* w) {
  void* abandoned;
  cuda_emu_switch(&abandoned, w->main_sp);
  __builtin_unreachable();
}

// Calls the handler that was installed before ours as the kernel would have: with its flags, its
// mask added to the blocked signals, and the same siginfo and context (which it may change).
void chain(int sig, siginfo_t* info, void* context) {
  const struct sigaction& old = sig == SIGSEGV ? previous_segv : previous_bus;
  if (old.sa_flags & SA_SIGINFO) {
    sigset_t mask = old.sa_mask, saved;
    if (!(old.sa_flags & SA_NODEFER)) sigaddset(&mask, sig);
    pthread_sigmask(SIG_BLOCK, &mask, &saved);
    old.sa_sigaction(sig, info, context);
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  } else if (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN) {
    // Restore the default action: the faulting instruction runs again and faults for good (or,
    // for a signal that was sent, it is sent again).
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, nullptr);
    if (info->si_code <= 0) raise(sig);
  } else {
    old.sa_handler(sig);
  }
}

void on_fault(int sig, siginfo_t* info, void* context) {
  ucontext_t* uc = (ucontext_t*)context;
  Worker* w = this_worker();
  uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
  if (w != nullptr && w->in_block && sp >= w->slots && sp < w->slots + kMaxThreads * kFiberStackBytes) {
    w->outcome = Outcome::kFault;
    w->fault_address = (uintptr_t)info->si_addr;
    w->fault_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
    w->fault_thread = slot_fiber(sp & ~(kFiberStackBytes - 1))->linear;
    // Resume in escape_from_fault(w) on the worker's escape stack (the fiber's may be the problem).
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)w->escape_sp;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)&escape_from_fault;
    uc->uc_mcontext.gregs[REG_RDI] = (greg_t)w;
    return;
  }
  chain(sig, info, context);
}

void install_fault_handler() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &previous_segv);
  sigaction(SIGBUS, &sa, &previous_bus);
}

// ---- The pool: CUDA_EMU_WORKERS threads work on a job, the calling thread and
// CUDA_EMU_WORKERS - 1 helpers. Helpers spin briefly (yielding) for the next job before they
// sleep, as jobs come in bursts at synchronisation points; a job of one block or one tile runs
// on the caller without waking anyone.

struct Job;
using Task = std::function<void(Worker&, size_t, Job&)>;

struct Job {
  const Task* task = nullptr;
  size_t tasks = 0;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::atomic<int> helpers{0};  // helpers working on it
};

struct Pool {
  std::vector<Worker*> helpers;
  std::mutex mu;
  std::condition_variable wake, done;
  Job* job = nullptr;                 // under mu
  std::atomic<uint64_t> generation{0};
  int sleeping = 0;                   // helpers waiting on `wake`, under mu
};

Pool* pool = nullptr;
thread_local Worker* caller = nullptr;

void run_tasks(Worker& w, Job& job) {
  for (;;) {
    if (job.stop.load(std::memory_order_relaxed)) break;
    size_t i = job.next.fetch_add(1);
    if (i >= job.tasks) break;
    (*job.task)(w, i, job);
  }
}

inline void cpu_relax() { __builtin_ia32_pause(); }

void helper_main(Worker* w) {
  stack_t ss;
  ss.ss_sp = w->signal_stack;
  ss.ss_size = kEscapeStackBytes;
  ss.ss_flags = 0;
  sigaltstack(&ss, nullptr);
  uint64_t seen = 0;
  for (;;) {
    // Spin ~50 us, yielding, then sleep.
    for (int i = 0; i < 2000 && pool->generation.load(std::memory_order_acquire) == seen; i++) {
      cpu_relax();
      if (i % 16 == 15) sched_yield();
    }
    Job* job;
    {
      std::unique_lock<std::mutex> lock(pool->mu);
      if (pool->generation.load(std::memory_order_relaxed) == seen) {
        pool->sleeping++;
        pool->wake.wait(lock, [&] { return pool->generation.load(std::memory_order_relaxed) != seen; });
        pool->sleeping--;
      }
      seen = pool->generation.load(std::memory_order_relaxed);
      job = pool->job;
      if (job == nullptr) continue;  // already finished by the others
      job->helpers++;
    }
    run_tasks(*w, *job);
    std::lock_guard<std::mutex> lock(pool->mu);
    if (--job->helpers == 0) pool->done.notify_all();
  }
}

void run_job(size_t tasks, const Task& task) {
  static std::once_flag once;
  std::call_once(once, [] {
    install_fault_handler();
    pool = new Pool;
    for (int i = 1; i < settings().workers; i++) {
      Worker* w = new_worker();
      std::thread thread(helper_main, w);
      register_thread(thread.native_handle(), w);  // for the fault handler, before it runs a job
      pool->helpers.push_back(w);
      thread.detach();
    }
  });
  if (caller == nullptr) caller = register_thread(pthread_self(), nullptr);
  Job job;
  job.task = &task;
  job.tasks = tasks;
  if (tasks > 1 && !pool->helpers.empty()) {
    std::lock_guard<std::mutex> lock(pool->mu);
    pool->job = &job;
    pool->generation.fetch_add(1, std::memory_order_release);
    if (pool->sleeping > 0) pool->wake.notify_all();
  }
  {
    AlternateSignalStack altstack(*caller);
    run_tasks(*caller, job);
  }
  // Helpers that joined finish their last task; the job leaves scope only when none is left.
  std::unique_lock<std::mutex> lock(pool->mu);
  if (pool->job == &job) pool->job = nullptr;
  if (job.helpers > 0) {
    lock.unlock();
    for (int i = 0; i < 4000 && job.helpers.load() > 0; i++) cpu_relax();
    lock.lock();
    pool->done.wait(lock, [&] { return job.helpers == 0; });
  }
}

}  // namespace

int worker_count() { return settings().workers; }

CUresult run_grid(const Grid& grid, std::string* why) {
  uint64_t blocks = (uint64_t)grid.grid[0] * grid.grid[1] * grid.grid[2];
  std::mutex mu;
  CUresult first = CUDA_SUCCESS;
  uint64_t first_block = UINT64_MAX;
  Task task = [&](Worker& w, size_t b, Job& job) {
    std::string problem;
    CUresult rc = run_block(w, grid, b, &problem);
    if (rc != CUDA_SUCCESS) {
      std::lock_guard<std::mutex> lock(mu);
      if (b < first_block) {  // of several failing blocks, report the first in grid order
        first = rc;
        first_block = b;
        *why = problem;
      }
      job.stop.store(true);  // the launch failed: no more blocks
    }
  };
  run_job(blocks, task);
  return first;
}

void parallel_for(size_t tasks, void (*fn)(void* data, size_t task), void* data) {
  Task task = [&](Worker&, size_t i, Job&) { fn(data, i); };
  run_job(tasks, task);
}

// ---- Runtime entry points for kernel code (exported: kernel sets link against them)

__attribute__((visibility("default"))) void syncthreads() {
  Fiber* f = self();
  Worker& w = *f->worker;
  w.at_barrier++;
  w.barrier.push_back(f);
  if (w.at_barrier == w.live) {
    release_barrier(w, f);
    return;
  }
  switch_away(w, f);
}

__attribute__((visibility("default"))) uint64_t warp_exchange(unsigned mask, uint64_t value, int arg, int width, WarpMode mode) {
  const void* site = __builtin_return_address(0);
  Fiber* f = self();
  Worker& w = *f->worker;
  Warp& wp = w.warps[f->warp];
  unsigned bit = 1u << f->lane;
  static const char* const kNames[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync", "a warp vote",
                                       "__syncwarp"};
  if ((mask & bit) == 0) {
    fail(w, f, CUDA_ERROR_LAUNCH_FAILED,
         format("%s with mask 0x%08x, which does not include the calling lane %u (undefined on a GPU)", kNames[mode], mask, f->lane));
  }
  if (mode <= kShuffleXor && (width < 1 || width > 32 || (width & (width - 1)) != 0)) {
    fail(w, f, CUDA_ERROR_LAUNCH_FAILED, format("%s with width %d: not a power of two in [1, 32]", kNames[mode], width));
  }
  if (wp.arrived == 0) {
    wp.mask = mask;
    wp.site = site;
  } else if (mask != wp.mask) {
    fail(w, f, CUDA_ERROR_LAUNCH_FAILED,
         format("%s with mask 0x%08x while lanes 0x%08x of its warp wait in one with mask 0x%08x (concurrent exchanges with "
                "different masks are not emulated)",
                kNames[mode], mask, wp.arrived, wp.mask));
  } else if (site != wp.site && first_warning(w, kWarnedDivergent)) {
    warn(w, format("%s: lanes of warp %u meet in warp exchanges at different places in the code (divergent lanes): undefined on a "
                   "GPU, the emulator pairs them up",
                   where(w, f->linear).c_str(), f->warp));
  }
  unsigned lane = f->lane;
  if (wp.arrived != 0) {
    int first = __builtin_ctz(wp.arrived);
    if (wp.mode[first] != mode || wp.arg[first] != arg || wp.width[first] != width) wp.uniform = false;
  }
  wp.value[lane] = value;
  wp.arg[lane] = arg;
  wp.width[lane] = (uint8_t)width;
  wp.mode[lane] = (uint8_t)mode;
  wp.arrived |= bit;
  if ((wp.mask & wp.live & ~wp.arrived) == 0) {
    complete_exchange(w, f->warp, f);
  } else if (any_ready(w)) {
    cuda_emu_switch(&f->sp, pop_ready(w)->sp);  // the common case of switch_away, inline
  } else {
    switch_away(w, f);
  }
  return wp.result[lane];
}

__attribute__((visibility("default"))) unsigned warp_live_mask() {
  Fiber* f = self();
  return f->worker->warps[f->warp].live;
}

__attribute__((visibility("default"))) void trap(const char* what) {
  Fiber* f = self();
  fail(*f->worker, f, CUDA_ERROR_LAUNCH_FAILED, std::string(what) + " (trap)");
}

__attribute__((visibility("default"))) void assert_failed(const char* expression, const char* file, unsigned line,
                                                          const char* function) {
  Fiber* f = self();
  fail(*f->worker, f, CUDA_ERROR_ASSERT, format("%s:%u: %s: assertion `%s' failed", file, line, function, expression));
}

}  // namespace cuda_emu

// For libcublas.so.13 (not CUDA API; declared in cublas_bridge.h): GEMM tiles on the same pool.
CUDA_EMU_EXPORT void cuda_emulator_parallel_for(size_t tasks, void (*fn)(void* data, size_t task), void* data) {
  cuda_emu::parallel_for(tasks, fn, data);
}
