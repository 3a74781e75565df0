// The emulator's SIGSEGV/SIGBUS handler catches faults of kernels only; any other fault goes to
// the handler installed before it (the JVM's, in the engine) exactly as the kernel would have
// delivered it. One test per process: the emulator installs its handler once, at its first launch.
#include <signal.h>
#include <sys/mman.h>

#include "kernels.h"

// A fault outside kernels goes to the handler installed before the emulator's, with its siginfo.
static volatile void* chained_address = nullptr;
static void* volatile guarded_page = nullptr;  // volatile: stored before the fault
static void previous_handler(int, siginfo_t* info, void*) {
  chained_address = info->si_addr;
  mprotect(guarded_page, 4096, PROT_READ | PROT_WRITE);  // let the faulting write go on
}

TEST(faults_outside_kernels_reach_the_previous_handler) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = previous_handler;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, &old);
  {
    // The emulator installs its handler with its worker pool, at the first launch.
    Device device;
    CUmodule m = load_test_kernels();
    CUdeviceptr out = device_alloc(4);
    CHECK_CU(launch(kernel(m, "emu_test_fill"), 1, 1, 0, nullptr, out, 2.0f, 1), CUDA_SUCCESS);
    CHECK_CU(cuCtxSynchronize(), CUDA_SUCCESS);
    cuMemFree_v2(out);
  }
  struct sigaction current;
  sigaction(SIGSEGV, nullptr, &current);
  CHECK(current.sa_sigaction != previous_handler);  // the emulator's is installed now, over ours
  guarded_page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *(volatile int*)guarded_page = 42;
  CHECK(chained_address == guarded_page);
  CHECK_EQ(*(volatile int*)guarded_page, 42);
  munmap(guarded_page, 4096);
}
