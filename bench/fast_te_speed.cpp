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

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "te_speed.h"
#include "tcemu/rtl/fast_tensor_engine.h"

namespace {

struct Result {
  std::string kernel;
  tcemu::bench::TeSpeed speed;
};

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
        results.push_back({std::string(kernel), tcemu::bench::measure_fast_model(r, c, kernel, min_seconds)});
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }

  if (json) {
    std::string out = "{\"model\":\"fast\",\"sizes\":[";
    for (size_t i = 0; i < results.size(); ++i) {
      const std::string& kernel = results[i].kernel;
      const tcemu::bench::TeSpeed& r = results[i].speed;
      out += fmt::format(
          "{}{{\"rows\":{},\"cols\":{},\"kernel\":\"{}\",\"columns\":{},\"seconds\":{:.6f},"
          "\"columns_per_second\":{:.1f},\"macs_per_second\":{:.1f},\"columns_exact\":{}}}",
          i ? "," : "", r.rows, r.cols, kernel, r.cycles, r.seconds, r.cycles_per_second(), r.macs_per_second(),
          r.columns_exact);
    }
    out += "]}";
    fmt::print("{}\n", out);
  } else {
    fmt::print("fast tensor engine, full-throughput random columns (one per cycle), 512-column matmuls\n");
    fmt::print("{:>9} {:>8} {:>12} {:>8} {:>14} {:>12} {:>8}\n", "size", "kernel", "columns", "seconds", "columns/s",
               "MAC/s", "exact");
    for (const auto& [kernel, r] : results) {
      fmt::print("{:>9} {:>8} {:>12} {:>8.3f} {:>14.0f} {:>12.3e} {:>8}\n", fmt::format("{}x{}", r.rows, r.cols),
                 kernel, r.cycles, r.seconds, r.cycles_per_second(), r.macs_per_second(), r.columns_exact);
    }
  }
  return 0;
}
