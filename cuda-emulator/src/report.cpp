// Messages and statistics. Every problem the emulator finds is one line on stderr, prefixed
// "cuda-emulator: ", naming the call and the reason; the CUresult the call returns is CUDA's.
// With CUDA_EMU_STATS=1 the time spent per kernel, GEMM shape and copy kind is printed when the
// process exits.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "driver.h"

namespace cuda_emu {

std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char buffer[1024];
  int n = vsnprintf(buffer, sizeof buffer, fmt, args);
  va_end(args);
  if (n < (int)sizeof buffer) return std::string(buffer, n < 0 ? 0 : n);
  std::string big(n + 1, '\0');
  va_start(args, fmt);
  vsnprintf(&big[0], big.size(), fmt, args);
  va_end(args);
  big.resize(n);
  return big;
}

void report(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char buffer[2048];
  vsnprintf(buffer, sizeof buffer, fmt, args);
  va_end(args);
  // One write, so lines of concurrent threads do not interleave.
  std::string line = std::string("cuda-emulator: ") + buffer + "\n";
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

// For libcublas and libcublasLt (cublas_bridge.h): their refusals explained in the same lines.
CUDA_EMU_EXPORT void cuda_emulator_report(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char buffer[2048];
  vsnprintf(buffer, sizeof buffer, fmt, args);
  va_end(args);
  report("%s", buffer);
}

const char* result_name(CUresult rc) {
  const char* name = nullptr;
  if (cuGetErrorName(rc, &name) == CUDA_SUCCESS && name) return name;
  return "CUDA_ERROR_UNKNOWN";
}

namespace {

struct Stat {
  uint64_t count = 0;
  double seconds = 0;
};

struct Stats {
  std::mutex mu;
  std::map<std::string, Stat> rows;

  ~Stats() {
    if (rows.empty()) return;
    std::vector<std::pair<std::string, Stat>> sorted(rows.begin(), rows.end());
    std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
    double total = 0;
    for (auto& row : sorted) total += row.second.seconds;
    std::string text = "cuda-emulator: CUDA_EMU_STATS: time per kernel / operation (workers: " +
                       std::to_string(worker_count()) + ")\n";
    text += format("  %-52s %8s %10s %10s %6s\n", "operation", "count", "total ms", "ms each", "share");
    for (auto& [name, s] : sorted) {
      text += format("  %-52s %8llu %10.1f %10.3f %5.1f%%\n", name.c_str(), (unsigned long long)s.count, s.seconds * 1e3,
                     s.seconds * 1e3 / (double)(s.count ? s.count : 1), total > 0 ? 100.0 * s.seconds / total : 0.0);
    }
    text += format("  %-52s %8s %10.1f\n", "all", "", total * 1e3);
    fwrite(text.data(), 1, text.size(), stderr);
    fflush(stderr);
  }
};

// Destroyed (and printed) at exit, after the engine is done.
Stats stats_table;

}  // namespace

void record_time(const std::string& key, double seconds) {
  if (!settings().stats) return;
  std::lock_guard<std::mutex> lock(stats_table.mu);
  Stat& s = stats_table.rows[key];
  s.count++;
  s.seconds += seconds;
}

}  // namespace cuda_emu
