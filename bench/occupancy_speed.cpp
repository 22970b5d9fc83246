// tcemu-bench-occupancy: host time of the profiler's SBUF/PSUM occupancy computation (rt::occupancy,
// docs/profiling.md "Occupancy") on the trace of a profiled GEMM.
//
//   tcemu-bench-occupancy [--json] [--m M --n N --k K] [--config C] [--repeat R]
//
// Runs the GEMM once with profiling on the in-process emulator, then computes the occupancy from its
// records R times (default 20) and prints the instructions, the samples, the peaks and the mean time per
// computation. Figures only; nothing is asserted about time.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "inproc_transport.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/rt/occupancy.h"
#include "tcemu/rt/runtime.h"

int main(int argc, char** argv) {
  using namespace tcemu;
  int M = 256, N = 256, K = 256, repeat = 20;
  std::string config = "tc1-16";
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--json")
      json = true;
    else if (a == "--m")
      M = std::stoi(next());
    else if (a == "--n")
      N = std::stoi(next());
    else if (a == "--k")
      K = std::stoi(next());
    else if (a == "--config")
      config = next();
    else if (a == "--repeat")
      repeat = std::max(1, std::stoi(next()));
    else {
      fmt::print(stderr, "usage: tcemu-bench-occupancy [--json] [--m M --n N --k K] [--config C] [--repeat R]\n");
      return 2;
    }
  }
  const DeviceConfig& cfg = find_config(config);
  drv::InProcessTransport transport(cfg);
  drv::Driver driver(transport);
  rt::Runtime runtime(driver);
  const model::Model m = kb::build_gemm(cfg, M, N, K);
  auto lm = runtime.load(m);
  rt::TensorMap in;
  in["a"] = {{M, K}, std::vector<float>(size_t(M) * K, 0.5f)};
  in["b"] = {{K, N}, std::vector<float>(size_t(K) * N, 0.25f)};
  rt::RunOptions opts;
  opts.profile = true;
  const rt::Profile p = *runtime.run(*lm, in, opts).profile;

  using Clock = std::chrono::steady_clock;
  std::vector<rt::OccupancySample> samples;
  const auto start = Clock::now();
  for (int r = 0; r < repeat; ++r) samples = rt::occupancy(cfg, m.streams, p.records);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count() / repeat;
  uint64_t sbuf_peak = 0, psum_peak = 0;
  for (const auto& s : samples)
    sbuf_peak = std::max(sbuf_peak, s.sbuf_bytes), psum_peak = std::max(psum_peak, s.psum_bytes);
  if (json)
    fmt::print(
        "{{\"model\": \"{}\", \"config\": \"{}\", \"instructions\": {}, \"samples\": {}, \"sbuf_peak_live_bytes\": {}, "
        "\"psum_peak_live_bytes\": {}, \"ms_per_computation\": {:.3f}}}\n",
        m.name, cfg.name, p.records.size(), samples.size(), sbuf_peak, psum_peak, ms);
  else
    fmt::print(
        "{} on {}: {} instructions, {} occupancy samples, peaks SBUF {} of {} bytes, PSUM {} of {} bytes\n"
        "occupancy computation: {:.3f} ms (mean of {})\n",
        m.name, cfg.name, p.records.size(), samples.size(), sbuf_peak, cfg.sbuf_bytes(), psum_peak, cfg.psum_bytes(),
        ms, repeat);
  return 0;
}
