// tcemu-bench-fast-te: speed of the fast C++ tensor engine (tcemu_rtl_fast) on its own, at full throughput:
// random ordinary bf16 columns (|x| in [2^-7, 4), random signs), one accepted every cycle with all rows enabled,
// in matmuls of 512 columns back to back whose next weights load into the shadow bank while the current one
// streams (as a sequencer issues them), with each vector kernel the host supports.
//
//   tcemu-bench-fast-te [--json] [--min-time SECONDS] [--size RxC ...]
//
// Prints columns (= cycles) per wall-clock second and the MAC rate (columns/s x rows x cols) per array size and
// kernel, and how many columns needed the exact scalar path (none for this data). Compare with
// tcemu-bench-rtl at the same sizes. Figures only; nothing is asserted about time.
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tcemu/rtl/fast_tensor_engine.h"

namespace {

struct Result {
  int rows;
  int cols;
  std::string kernel;
  uint64_t columns;
  uint64_t columns_exact;
  double seconds;
  double columns_per_second() const { return static_cast<double>(columns) / seconds; }
  double macs_per_second() const { return columns_per_second() * rows * cols; }
};

// Random bf16 in roughly [-4, 4] with a random sign: normal numbers, no specials (as tcemu-bench-rtl).
uint16_t random_bf16(std::mt19937& rng) {
  const uint32_t sign = rng() & 1u;
  const uint32_t exp = 120 + rng() % 9;
  const uint32_t mant = rng() & 0x7Fu;
  return static_cast<uint16_t>((sign << 15) | (exp << 7) | mant);
}

Result measure(int rows, int cols, std::string_view kernel, double min_seconds) {
  auto te = tcemu::rtl::make_fast_tensor_engine(rows, cols);
  te->select_kernel(kernel);
  std::mt19937 rng(1234);

  // Pools cycled through, so the host spends its time in the model, not in the RNG: moving columns and two
  // weight sets (alternate matmuls use alternate sets).
  constexpr int kPool = 64;
  std::vector<uint16_t> pool(static_cast<size_t>(kPool) * rows);
  for (auto& v : pool) v = random_bf16(rng);
  std::vector<uint16_t> weights[2];
  for (auto& w : weights) {
    w.resize(static_cast<size_t>(rows) * cols);
    for (auto& v : w) v = random_bf16(rng);
  }
  for (int r = 0; r < rows; ++r) {
    te->set_wload(true, r, &weights[0][static_cast<size_t>(r) * cols]);
    te->tick();
  }
  te->set_wload(false, 0, nullptr);

  constexpr uint64_t kMatmulColumns = 512;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  uint64_t columns = 0;
  int next_row = 0;  // next weight row of the next matmul
  double elapsed = 0.0;
  const uint64_t chunk = 1024;
  while (elapsed < min_seconds) {
    for (uint64_t i = 0; i < chunk; ++i, ++columns) {
      const uint64_t n = columns % kMatmulColumns;
      const uint64_t matmul = columns / kMatmulColumns;
      if (n == 0) next_row = 0;
      // The next matmul's weights as soon as the shadow bank is free; all of them are in long before its
      // first column (512 columns > latency + rows at every size measured here).
      if (next_row < rows && te->wload_ready()) {
        te->set_wload(true, next_row, &weights[(matmul + 1) % 2][static_cast<size_t>(next_row) * cols]);
        ++next_row;
      } else {
        te->set_wload(false, 0, nullptr);
      }
      te->set_moving(true, n == 0, rows, &pool[(columns % kPool) * rows]);
      te->tick();
    }
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return {rows, cols, std::string(kernel), columns, te->stats().columns_exact, elapsed};
}

[[noreturn]] void usage(const char* prog, const std::string& error) {
  std::fprintf(stderr, "%s: %s\nusage: %s [--json] [--min-time SECONDS] [--size RxC ...]\n", prog, error.c_str(), prog);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double min_seconds = 1.0;
  std::vector<std::pair<int, int>> sizes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--min-time" && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
      if (!(min_seconds > 0.0)) usage(argv[0], "--min-time needs a positive number of seconds");
    } else if (arg == "--size" && i + 1 < argc) {
      int r = 0;
      int c = 0;
      if (std::sscanf(argv[++i], "%dx%d", &r, &c) != 2) usage(argv[0], "--size takes RxC, e.g. 16x16");
      sizes.emplace_back(r, c);
    } else if (arg == "--help" || arg == "-h") {
      usage(argv[0], "help");
    } else {
      usage(argv[0], "unknown argument '" + arg + "'");
    }
  }
  if (sizes.empty()) sizes = {{16, 16}, {32, 32}, {128, 128}};

  std::vector<Result> results;
  try {
    for (const auto& [r, c] : sizes) {
      for (std::string_view kernel : tcemu::rtl::supported_fast_kernels()) {
        results.push_back(measure(r, c, kernel, min_seconds));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }

  if (json) {
    std::string out = "{\"model\":\"fast\",\"sizes\":[";
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      out += fmt::format(
          "{}{{\"rows\":{},\"cols\":{},\"kernel\":\"{}\",\"columns\":{},\"seconds\":{:.6f},"
          "\"columns_per_second\":{:.1f},\"macs_per_second\":{:.1f},\"columns_exact\":{}}}",
          i ? "," : "", r.rows, r.cols, r.kernel, r.columns, r.seconds, r.columns_per_second(), r.macs_per_second(),
          r.columns_exact);
    }
    out += "]}";
    fmt::print("{}\n", out);
  } else {
    fmt::print("fast tensor engine, full-throughput random columns (one per cycle), 512-column matmuls\n");
    fmt::print("{:>9} {:>8} {:>12} {:>8} {:>14} {:>12} {:>8}\n", "size", "kernel", "columns", "seconds", "columns/s",
               "MAC/s", "exact");
    for (const Result& r : results) {
      fmt::print("{:>9} {:>8} {:>12} {:>8.3f} {:>14.0f} {:>12.3e} {:>8}\n", fmt::format("{}x{}", r.rows, r.cols),
                 r.kernel, r.columns, r.seconds, r.columns_per_second(), r.macs_per_second(), r.columns_exact);
    }
  }
  return 0;
}
