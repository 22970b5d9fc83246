// tcemu-bench-rtl: simulation speed of the verilated tensor engine (tcemu_rtl) on its own, at full
// throughput: one random moving column accepted every cycle, all rows enabled, weights loaded once.
//
//   tcemu-bench-rtl [--json] [--min-time SECONDS] [--size RxC ...]
//
// Prints simulated cycles per wall-clock second and the MAC rate (cycles/s x rows x cols) per array size.
// Figures only; nothing is asserted about time.
#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "te_speed.h"
#include "tcemu/rtl/tensor_engine.h"

namespace {

using Result = tcemu::bench::TeSpeed;


}  // namespace

int main(int argc, char** argv) {
  const tcemu::bench::SpeedArgs args = tcemu::bench::parse_speed_args(argc, argv);
  const bool json = args.json;
  const double min_seconds = args.min_seconds;
  std::vector<std::pair<int, int>> sizes = args.sizes;
  if (sizes.empty()) {
    for (const auto& s : tcemu::rtl::available_tensor_engine_sizes()) {
      if (s.first <= 32 && s.second <= 32) sizes.push_back(s);
    }
  }

  std::vector<Result> results;
  try {
    for (const auto& [r, c] : sizes) results.push_back(tcemu::bench::measure_rtl_bare(r, c, min_seconds));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }

  if (json) {
    std::string out = "{\"sizes\":[";
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      out += fmt::format(
          "{}{{\"rows\":{},\"cols\":{},\"cycles\":{},\"seconds\":{:.6f},\"cycles_per_second\":{:.1f},"
          "\"macs_per_second\":{:.1f}}}",
          i ? "," : "", r.rows, r.cols, r.cycles, r.seconds, r.cycles_per_second(), r.macs_per_second());
    }
    out += "]}";
    fmt::print("{}\n", out);
  } else {
    fmt::print("verilated tc_tensor_engine, full-throughput random columns (one per cycle)\n");
    fmt::print("{:>9} {:>12} {:>10} {:>14} {:>12}\n", "size", "cycles", "seconds", "cycles/s", "MAC/s");
    for (const Result& r : results) {
      fmt::print("{:>9} {:>12} {:>10.3f} {:>14.0f} {:>12.3e}\n", fmt::format("{}x{}", r.rows, r.cols),
                 r.cycles, r.seconds, r.cycles_per_second(), r.macs_per_second());
    }
  }
  return 0;
}
