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


}  // namespace

int main(int argc, char** argv) {
  const tcemu::bench::SpeedArgs args = tcemu::bench::parse_speed_args(argc, argv);
  const bool json = args.json;
  const double min_seconds = args.min_seconds;
  std::vector<std::pair<int, int>> sizes = args.sizes;
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
