// Kernels on the emulator: correct kernels give the right results (block reductions, every kind
// of warp shuffle and vote, aliased extern __shared__ arrays, atomics, parameter passing), and
// the planted faults of test_kernels.cu fail their launch with CUDA's error and a message naming
// the kernel, the block and what went wrong.
#include <cmath>

#include <thread>

#include "kernels.h"

namespace {

// Launches on the NULL stream and synchronises; returns the launch's error, captured messages in *messages.
template <typename... A>
CUresult run(CUfunction f, unsigned grid, unsigned block, unsigned shared, std::string* messages, A... args) {
  harness::Stderr err;
  CUresult rc = launch(f, grid, block, shared, nullptr, args...);
  if (rc == CUDA_SUCCESS) rc = cuCtxSynchronize();
  if (messages) *messages = err.text();
  return rc;
}

}  // namespace

TEST(block_reductions_two_per_kernel) {
  Device device;
  CUmodule m = load_test_kernels();
  const int rows = 5, width = 1000;
  std::vector<float> in(rows * width);
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < width; i++) in[r * width + i] = (float)((i * 7 + r * 13) % 101) - 50.0f;  // exact sums
  CUdeviceptr d_in = device_alloc(in.size() * 4), sums = device_alloc(rows * 4), maxima = device_alloc(rows * 4);
  CHECK_CU(cuMemcpyHtoD_v2(d_in, in.data(), in.size() * 4), CUDA_SUCCESS);
  CHECK_CU(run(kernel(m, "emu_test_reductions"), rows, 256, 0, nullptr, d_in, sums, maxima, width), CUDA_SUCCESS);
  std::vector<float> s = read_back<float>(sums, rows), mx = read_back<float>(maxima, rows);
  for (int r = 0; r < rows; r++) {
    float expected_sum = 0, expected_max = -INFINITY;
    for (int i = 0; i < width; i++) {
      expected_sum += in[r * width + i];
      expected_max = std::fmax(expected_max, in[r * width + i]);
    }
    CHECK_EQ(s[r], expected_sum);
    CHECK_EQ(mx[r], expected_max);
  }
  cuMemFree_v2(d_in);
  cuMemFree_v2(sums);
  cuMemFree_v2(maxima);
}

// PTX shfl.sync: the lane a shuffle reads (its own when out of its segment's range).
static int reference_source(int lane, int b, int width, int mode) {
  int seg = 32 - width, bval = b & 31, min_lane = lane & seg, max_lane = min_lane | (31 & ~seg), j = lane;
  bool ok = false;
  if (mode == 0) j = min_lane | (bval & ~seg), ok = j <= max_lane;
  if (mode == 1) j = lane - bval, ok = j >= min_lane;
  if (mode == 2) j = lane + bval, ok = j <= max_lane;
  if (mode == 3) j = lane ^ bval, ok = j <= max_lane;
  return ok ? j : lane;
}

TEST(warp_shuffles_and_votes) {
  Device device;
  CUmodule m = load_test_kernels();
  std::vector<int> in(32);
  for (int i = 0; i < 32; i++) in[i] = 100 + i * 3;
  const int cases = 21;
  CUdeviceptr d_in = device_alloc(32 * 4), d_out = device_alloc(cases * 32 * 4);
  CHECK_CU(cuMemcpyHtoD_v2(d_in, in.data(), 32 * 4), CUDA_SUCCESS);
  CHECK_CU(run(kernel(m, "emu_test_shuffles"), 1, 32, 0, nullptr, d_in, d_out), CUDA_SUCCESS);
  std::vector<int> out = read_back<int>(d_out, cases * 32);
  struct Shuffle {
    int mode, arg, width;  // arg -1000: per lane, lane ^ 7
  } shuffles[] = {{0, 0, 32}, {0, 5, 32},  {0, 33, 32}, {0, -1, 32}, {0, 3, 16}, {0, 9, 8},  {0, -1000, 32}, {1, 1, 32}, {1, 5, 32},
                  {1, 2, 8},  {2, 1, 32}, {2, 5, 32},  {2, 3, 16},  {3, 1, 32}, {3, 16, 32}, {3, 4, 8},     {3, 8, 8}};
  int c = 0;
  for (const Shuffle& s : shuffles) {
    for (int lane = 0; lane < 32; lane++) {
      int arg = s.arg == -1000 ? lane ^ 7 : s.arg;
      CHECK_EQ(out[c * 32 + lane], in[reference_source(lane, arg, s.width, s.mode)]);
    }
    c++;
  }
  // Spot checks of the rules themselves (not only of the shared reference).
  CHECK_EQ(out[2 * 32 + 0], in[1]);          // srcLane 33 reads lane 1
  CHECK_EQ(out[7 * 32 + 0], in[0]);          // up by 1: lane 0 keeps its value
  CHECK_EQ(out[9 * 32 + 9], in[9]);          // up by 2, width 8: lane 9 (second in its group) keeps its own
  CHECK_EQ(out[16 * 32 + 9], in[1]);         // xor 8, width 8: lane 9 reads lane 1, a group below
  CHECK_EQ(out[16 * 32 + 1], in[1]);         // ... lane 1 would read lane 9, above its group: its own
  for (int lane = 0; lane < 32; lane++) CHECK_EQ(out[17 * 32 + lane], (int)((in[lane ^ 2] + 0.5) * 2));  // double
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; lane += 3) ballot |= 1u << lane;
  for (int lane = 0; lane < 32; lane++) {
    CHECK_EQ((unsigned)out[18 * 32 + lane], ballot);
    CHECK_EQ(out[19 * 32 + lane], 1);  // any: true, false
    CHECK_EQ(out[20 * 32 + lane], 1);  // all: true, false
  }
  cuMemFree_v2(d_in);
  cuMemFree_v2(d_out);
}

TEST(extern_shared_names_alias_dynamic_shared_memory) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(128 * 4);
  CHECK_CU(run(kernel(m, "emu_test_shared_alias"), 2, 128, 128 * 4, nullptr, out), CUDA_SUCCESS);
  std::vector<uint32_t> v = read_back<uint32_t>(out, 128);
  for (int t = 0; t < 128; t++) CHECK_EQ(float_of(v[t]), (float)t);
  cuMemFree_v2(out);
}

TEST(static_shared_memory_starts_poisoned_in_every_block) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(256 * 4);
  for (int round = 0; round < 2; round++) {
    CHECK_CU(run(kernel(m, "emu_test_uninitialised_shared"), 1, 256, 0, nullptr, out), CUDA_SUCCESS);
    for (uint32_t v : read_back<uint32_t>(out, 256)) CHECK_EQ(v, 0xffffffffu);
  }
  cuMemFree_v2(out);
}

// wmma on the emulator: every tile of a 48 x 32 product over k = 64 (4 k-steps), added to c's
// values, equals an in-order f32 reference bit for bit (products of bf16 values are exact in f32).
TEST(wmma_tiles_multiply_and_accumulate_in_k_order) {
  Device device;
  CUmodule m = load_test_kernels();
  const int rows = 48, cols = 32, k = 64;
  std::vector<unsigned short> a(rows * k), b(cols * k);
  std::vector<float> c(rows * cols), want(rows * cols);
  auto bf16 = [](float v) {
    unsigned bits;
    memcpy(&bits, &v, 4);
    return (unsigned short)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  };
  auto value = [](unsigned short h) {
    unsigned bits = (unsigned)h << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
  };
  for (int i = 0; i < rows * k; i++) a[i] = bf16(std::sin(0.37f * i) * 3.0f);
  for (int i = 0; i < cols * k; i++) b[i] = bf16(std::cos(0.11f * i) * 2.0f);
  for (int i = 0; i < rows * cols; i++) c[i] = 0.25f * (i % 7) - 0.5f;
  for (int r = 0; r < rows; r++) {
    for (int j = 0; j < cols; j++) {
      float sum = c[r * cols + j];
      for (int kk = 0; kk < k; kk++) sum += value(a[r * k + kk]) * value(b[j * k + kk]);
      want[r * cols + j] = sum;
    }
  }
  CUdeviceptr d_a = device_alloc(a.size() * 2), d_b = device_alloc(b.size() * 2), d_c = device_alloc(c.size() * 4);
  CHECK_CU(cuMemcpyHtoD_v2(d_a, a.data(), a.size() * 2), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyHtoD_v2(d_b, b.data(), b.size() * 2), CUDA_SUCCESS);
  CHECK_CU(cuMemcpyHtoD_v2(d_c, c.data(), c.size() * 4), CUDA_SUCCESS);
  CUfunction f = kernel(m, "emu_test_wmma");
  void* params[] = {&d_c, &d_a, &d_b, (void*)&cols, (void*)&k};
  CHECK_CU(cuLaunchKernel(f, cols / 16, rows / 16, 1, 32, 1, 1, 0, nullptr, params, nullptr), CUDA_SUCCESS);
  CHECK_CU(cuCtxSynchronize(), CUDA_SUCCESS);
  CHECK(read_back<float>(d_c, rows * cols) == want);
  cuMemFree_v2(d_a);
  cuMemFree_v2(d_b);
  cuMemFree_v2(d_c);
}

// A GPU's wmma needs 256-bit aligned operands: a 16-byte aligned one fails the launch, naming the call.
TEST(a_wmma_operand_off_its_alignment_fails_the_launch) {
  Device device;
  CUmodule m = load_test_kernels();
  const int cols = 16, k = 16;
  CUdeviceptr d_a = device_alloc(16 * k * 2 + 16), d_b = device_alloc(cols * k * 2), d_c = device_alloc(16 * cols * 4);
  CHECK_CU(cuMemsetD32_v2(d_a, 0, (16 * k * 2 + 16) / 4), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32_v2(d_b, 0, cols * k / 2), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32_v2(d_c, 0, 16 * cols), CUDA_SUCCESS);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_wmma"), 1, 32, 0, &messages, d_c, d_a + 16, d_b, cols, k), CUDA_ERROR_LAUNCH_FAILED);
  CHECK_CONTAINS(messages, "wmma::load_matrix_sync: pointer not 32-byte aligned");
  cuMemFree_v2(d_a);
  cuMemFree_v2(d_b);
  cuMemFree_v2(d_c);
}

TEST(atomics_across_blocks) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr counter = device_alloc(4), sum = device_alloc(4), maximum = device_alloc(4);
  CHECK_CU(cuMemsetD32_v2(counter, 0, 1), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32_v2(sum, 0, 1), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32_v2(maximum, 0, 1), CUDA_SUCCESS);
  CHECK_CU(run(kernel(m, "emu_test_atomics"), 64, 128, 0, nullptr, counter, sum, maximum), CUDA_SUCCESS);
  CHECK_EQ(read_back<int>(counter, 1)[0], 64 * 128);
  CHECK_EQ(read_back<float>(sum, 1)[0], 64.0f * 128);
  CHECK_EQ(read_back<unsigned>(maximum, 1)[0], 64u * 128 - 1);
  cuMemFree_v2(counter);
  cuMemFree_v2(sum);
  cuMemFree_v2(maximum);
}

TEST(shared_and_global_atomics_in_one_kernel) {
  Device device;
  CUmodule m = load_test_kernels();
  const int n = 100000;
  std::vector<int> values(n);
  std::vector<unsigned> expected(16, 0);
  for (int i = 0; i < n; i++) {
    values[i] = (i * 2654435761u) >> 7;
    expected[values[i] & 15]++;
  }
  CUdeviceptr d_values = device_alloc(n * 4), histogram = device_alloc(16 * 4);
  CHECK_CU(cuMemcpyHtoD_v2(d_values, values.data(), n * 4), CUDA_SUCCESS);
  CHECK_CU(cuMemsetD32_v2(histogram, 0, 16), CUDA_SUCCESS);
  CHECK_CU(run(kernel(m, "emu_test_shared_histogram"), 13, 256, 0, nullptr, d_values, n, histogram), CUDA_SUCCESS);
  CHECK(read_back<unsigned>(histogram, 16) == expected);
  cuMemFree_v2(d_values);
  cuMemFree_v2(histogram);
}

struct EmuTestPair {
  int a;
  double b;
};

TEST(parameters_of_every_kind_by_value) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(8 * 8), value = device_alloc(4);
  int seven = 7;
  CHECK_CU(cuMemcpyHtoD_v2(value, &seven, 4), CUDA_SUCCESS);
  EmuTestPair pair{3, 2.5};
  CHECK_CU(run(kernel(m, "emu_test_parameters"), 1, 1, 0, nullptr, out, (char)-5, (short)300, 70000, 1LL << 40, 1.25f, -2.5, pair,
               value),
           CUDA_SUCCESS);
  std::vector<long long> v = read_back<long long>(out, 8);
  CHECK_EQ(v[0], -5LL);
  CHECK_EQ(v[1], 300LL);
  CHECK_EQ(v[2], 70000LL);
  CHECK_EQ(v[3], 1LL << 40);
  CHECK_EQ(v[4], 1250LL);
  CHECK_EQ(v[5], -2500LL);
  CHECK_EQ(v[6], 2503LL);
  CHECK_EQ(v[7], 7LL);
  cuMemFree_v2(out);
  cuMemFree_v2(value);
}

TEST(a_write_one_element_past_the_end_is_caught_by_the_canary) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(1000 * 4);  // 4000 bytes: 96 bytes of slack before the guard page
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_write_past_end"), 4, 256, 0, &messages, out, 1000, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(messages, "emu_test_write_past_end");
  CHECK_CONTAINS(messages, "bytes 0 to 3 past the end of the 4000-byte device 0 allocation");
  CHECK_CONTAINS(messages, "block (");
  CHECK_CONTAINS(messages, "CUDA_ERROR_ILLEGAL_ADDRESS");
  // Sticky: the context is unusable until it is reset.
  CUdeviceptr p;
  CHECK_CU(cuMemAlloc_v2(&p, 16), CUDA_ERROR_ILLEGAL_ADDRESS);
}

TEST(a_one_byte_overrun_or_underrun_is_caught) {
  for (long long offset : {100LL, -1LL}) {
    Device device;
    CUmodule m = load_test_kernels();
    CUdeviceptr p = device_alloc(100);
    std::string messages;
    CHECK_CU(run(kernel(m, "emu_test_write_byte"), 1, 1, 0, &messages, p, 99LL), CUDA_SUCCESS);
    CHECK_CU(run(kernel(m, "emu_test_write_byte"), 1, 1, 0, &messages, p, offset), CUDA_ERROR_ILLEGAL_ADDRESS);
    CHECK_CONTAINS(messages, offset > 0 ? "bytes 0 to 0 past the end of the 100-byte device 0 allocation"
                                        : "1 bytes before the start of the 100-byte device 0 allocation");
  }
}

TEST(a_write_into_the_guard_page_names_block_thread_and_allocation) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(1024 * 4);  // ends at a page boundary: the next byte is the guard page
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_write_past_end"), 1, 32, 0, &messages, out, 1024, 32), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(messages, "kernel emu_test_write_past_end");
  CHECK_CONTAINS(messages, "block (0,0,0) thread (0,0,0): illegal write at");
  CHECK_CONTAINS(messages, "0 bytes past the end of the 4096-byte device 0 allocation");
}

TEST(a_read_in_the_guard_page_is_an_illegal_address) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr in = device_alloc(256 * 4), out = device_alloc(4);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_read_at"), 1, 32, 0, &messages, in, out, 256LL + 600), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(messages, "illegal read at");
  CHECK_CONTAINS(messages, "past the end of the 1024-byte device 0 allocation");
}

TEST(a_read_of_freed_memory_through_a_stored_pointer_is_a_use_after_free) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr freed = device_alloc(64), table = device_alloc(8), out = device_alloc(4);
  CHECK_CU(cuMemcpyHtoD_v2(table, &freed, 8), CUDA_SUCCESS);
  CHECK_CU(cuMemFree_v2(freed), CUDA_SUCCESS);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_read_indirect"), 1, 1, 0, &messages, table, out), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(messages, "inside the freed 64-byte device 0 allocation");
  CHECK_CONTAINS(messages, "use after free");
}

TEST(a_freed_pointer_argument_fails_the_launch) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(64);
  CHECK_CU(cuMemFree_v2(out), CUDA_SUCCESS);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_fill"), 1, 32, 0, &messages, out, 1.0f, 16), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(messages, "pointer parameter 0");
  CHECK_CONTAINS(messages, "freed");
}

TEST(a_deadlock_fails_the_launch_and_says_who_waits_where) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(64 * 4);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_deadlock"), 1, 64, 0, &messages, out), CUDA_ERROR_LAUNCH_FAILED);
  CHECK_CONTAINS(messages, "emu_test_deadlock");
  CHECK_CONTAINS(messages, "deadlock");
  CHECK_CONTAINS(messages, "2 at __syncthreads");
  CHECK_CONTAINS(messages, "warp 0: lanes 0xfffffffe at a warp shuffle");
}

TEST(trap_fails_the_launch_naming_the_thread) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(4 * 64 * 4);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_trap"), 4, 64, 0, &messages, out, 2, 17), CUDA_ERROR_LAUNCH_FAILED);
  CHECK_CONTAINS(messages, "block (2,0,0) thread (17,0,0): __trap()");
}

TEST(a_failed_device_assert_is_cuda_error_assert) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(64 * 4);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_assert"), 1, 64, 0, &messages, out, 5), CUDA_ERROR_ASSERT);
  CHECK_CONTAINS(messages, "thread (5,0,0)");
  CHECK_CONTAINS(messages, "assertion");
}

TEST(a_write_past_dynamic_shared_memory_is_caught) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(4);
  CHECK_CU(run(kernel(m, "emu_test_shared_overrun"), 1, 64, 256, nullptr, out, 64), CUDA_SUCCESS);  // within: fine
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_shared_overrun"), 1, 64, 256, &messages, out, 65), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(messages, "wrote dynamic shared memory at byte 256, past the launch's 256 bytes");
}

TEST(a_stack_overflow_is_an_illegal_address) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(32 * 4);
  CHECK_CU(run(kernel(m, "emu_test_deep_recursion"), 1, 32, 0, nullptr, out, 20), CUDA_SUCCESS);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_deep_recursion"), 1, 32, 0, &messages, out, 1000), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CONTAINS(messages, "stack overflow");
}

TEST(lanes_shuffling_at_different_places_get_a_warning) {
  Device device;
  CUmodule m = load_test_kernels();
  CUdeviceptr out = device_alloc(32 * 4);
  std::string messages;
  CHECK_CU(run(kernel(m, "emu_test_divergent_shuffle"), 1, 32, 0, &messages, out), CUDA_SUCCESS);
  CHECK_CONTAINS(messages, "warning: kernel emu_test_divergent_shuffle");
  CHECK_CONTAINS(messages, "divergent");
  std::vector<int> v = read_back<int>(out, 32);
  for (int lane = 0; lane < 32; lane++) CHECK_EQ(v[lane], (lane & 1) ? (lane ^ 1) + 1000 : lane ^ 1);
  cuMemFree_v2(out);
}

TEST(kernels_launched_from_one_thread_after_another) {
  // Each thread runs its launches itself, with its own thread-local shared memory; a new thread
  // may get a finished thread's id and with it its emulator state, but not its freed memory.
  Device device;
  CUmodule m = load_test_kernels();
  CUfunction f = kernel(m, "emu_test_uninitialised_shared");
  CUdeviceptr out = device_alloc(256 * 4);
  for (int round = 0; round < 20; round++) {
    bool poisoned = false;
    std::thread([&] {
      cuCtxSetCurrent(device.ctx);
      std::vector<std::vector<char>> churn;  // heap traffic where freed thread-local blocks were
      for (int i = 0; i < 64; i++) churn.emplace_back(1024 + i * 97, (char)i);
      if (launch(f, 1, 256, 0, nullptr, out) == CUDA_SUCCESS && cuCtxSynchronize() == CUDA_SUCCESS) {
        std::vector<uint32_t> v(256);
        cuMemcpyDtoH_v2(v.data(), out, 256 * 4);
        poisoned = v[0] == 0xffffffffu && v[255] == 0xffffffffu;
      }
    }).join();
    CHECK(poisoned);
  }
  cuMemFree_v2(out);
}
