// A tiny test harness for the emulator's own tests (one executable per test file, run by
// scripts/build-cuda-emulator --test with OUT as argument):
//
//   TEST(name) { ... }                      a test case
//   CHECK(condition)                        fails the case (throws) with the condition's text
//   CHECK_EQ(actual, expected)              ... and both values
//   CHECK_CU(call, expected)                a CUresult, printed by name
//   CHECK_CONTAINS(text, part)              a string contains another (e.g. a captured message)
//   SKIP(why)                               ends the case as skipped
//   Stderr stderr_text; ...; stderr_text.text()   what the emulator printed meanwhile
//   Device device;                          device 0's primary context, current; released after
//
// The last line of output is the summary: "<file>: N passed, N failed, N skipped (S s)".
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_emulator.h"

namespace harness {

// Each test chooses its devices itself (CUDA_EMU_DEVICES, CUDA_VISIBLE_DEVICES): a
// CUDA_VISIBLE_DEVICES meant for the machine's real GPUs must not hide the emulated ones. Here, so
// that it runs before a test file's own setenv (a file's statics initialise in their order).
[[maybe_unused]] static const int visible_devices_cleared = unsetenv("CUDA_VISIBLE_DEVICES");

struct Case {
  const char* name;
  void (*body)();
};
inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}
struct Register {
  Register(const char* name, void (*body)()) { cases().push_back({name, body}); }
};
struct Failure {
  std::string message;
};
struct Skipped {
  std::string why;
};

// The build output directory (argv[1]): where test-kernels.fatbin is.
inline std::string& out_dir() {
  static std::string dir;
  return dir;
}

[[noreturn]] inline void fail(const char* file, int line, const std::string& message) {
  std::ostringstream s;
  s << file << ":" << line << ": " << message;
  throw Failure{s.str()};
}

inline std::string result_name(CUresult rc) {
  const char* name = nullptr;
  if (cuGetErrorName(rc, &name) == CUDA_SUCCESS && name) return name;
  return "CUresult " + std::to_string((int)rc);
}

template <typename T> std::string show(const T& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Captures what is written to stderr (fd 2) while it lives.
class Stderr {
 public:
  Stderr() {
    fflush(stderr);
    file_ = tmpfile();
    saved_ = dup(2);
    dup2(fileno(file_), 2);
  }
  ~Stderr() { restore(); }
  std::string text() {
    restore();
    std::string s;
    fseek(file_, 0, SEEK_SET);
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, file_)) > 0) s.append(buffer, n);
    return s;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
    // Echo it, so the test log still shows everything the emulator said.
    fseek(file_, 0, SEEK_SET);
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, file_)) > 0) fwrite(buffer, 1, n, stderr);
  }
  FILE* file_ = nullptr;
  int saved_ = -1;
};

}  // namespace harness

#define TEST(name)                                                     \
  static void name();                                                  \
  static harness::Register harness_register_##name(#name, name);       \
  static void name()

#define CHECK(condition) \
  do {                   \
    if (!(condition)) harness::fail(__FILE__, __LINE__, "CHECK(" #condition ") failed"); \
  } while (0)

#define CHECK_EQ(actual, expected)                                                                                   \
  do {                                                                                                               \
    auto harness_a_ = (actual);                                                                                      \
    auto harness_e_ = (expected);                                                                                    \
    if (!(harness_a_ == harness_e_))                                                                                 \
      harness::fail(__FILE__, __LINE__,                                                                              \
                    std::string(#actual " is ") + harness::show(harness_a_) + ", expected " + harness::show(harness_e_)); \
  } while (0)

#define CHECK_CU(call, expected)                                                                                     \
  do {                                                                                                               \
    CUresult harness_rc_ = (call);                                                                                   \
    if (harness_rc_ != (expected))                                                                                   \
      harness::fail(__FILE__, __LINE__,                                                                              \
                    std::string(#call " returned ") + harness::result_name(harness_rc_) + ", expected " +            \
                        harness::result_name(expected));                                                             \
  } while (0)

#define CHECK_CONTAINS(text, part)                                                                                   \
  do {                                                                                                               \
    std::string harness_t_ = (text), harness_p_ = (part);                                                           \
    if (harness_t_.find(harness_p_) == std::string::npos)                                                            \
      harness::fail(__FILE__, __LINE__, "\"" + harness_p_ + "\" not in: " + harness_t_);                             \
  } while (0)

#define SKIP(why) throw harness::Skipped{why}

// Device 0's primary context, current on this thread; released (reset) at the end of the scope.
struct Device {
  explicit Device(int ordinal = 0) : ordinal(ordinal) {
    CHECK_CU(cuInit(0), CUDA_SUCCESS);
    CHECK_CU(cuDevicePrimaryCtxRetain(&ctx, ordinal), CUDA_SUCCESS);
    CHECK_CU(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
  }
  ~Device() {
    cuCtxSetCurrent(nullptr);
    cuDevicePrimaryCtxRelease_v2(ordinal);
  }
  int ordinal;
  CUcontext ctx = nullptr;
};

int main(int argc, char** argv) {
  harness::out_dir() = argc > 1 ? argv[1] : ".";
  std::string file = argv[0];
  file = file.substr(file.rfind('/') + 1);
  int passed = 0, failed = 0, skipped = 0;
  auto start = std::chrono::steady_clock::now();
  for (const harness::Case& c : harness::cases()) {
    auto t0 = std::chrono::steady_clock::now();
    fprintf(stdout, "RUN  %s\n", c.name);
    fflush(stdout);
    try {
      c.body();
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      fprintf(stdout, "ok   %s (%.0f ms)\n", c.name, ms);
      passed++;
    } catch (const harness::Failure& f) {
      fprintf(stdout, "FAIL %s\n  %s\n", c.name, f.message.c_str());
      failed++;
    } catch (const harness::Skipped& s) {
      fprintf(stdout, "skip %s: %s\n", c.name, s.why.c_str());
      skipped++;
    }
    fflush(stdout);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fprintf(stdout, "%s: %d passed, %d failed, %d skipped (%.2f s)\n", file.c_str(), passed, failed, skipped, seconds);
  return failed == 0 ? 0 : 1;
}
