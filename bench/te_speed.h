// The tensor-engine speed workloads shared by the benchmarks (tcemu-bench-rtl, tcemu-bench-fast-te and
// `tcemu bench tensor-engine`): one model, nothing around it, at full throughput.
//
//   measure_rtl_bare:   the verilated engine (tcemu_rtl), weights loaded once, then one random moving column
//                       accepted every cycle with all rows enabled.
//   measure_stream:     any engine, 512-column matmuls back to back whose next weights load into the shadow
//                       bank while the current one streams (as the device's sequencer issues them), one random
//                       column every cycle: measure_fast_model (the fast C++ engine, tcemu_rtl_fast) and
//                       measure_rtl_stream (the verilated engine on the device stream job's data sizes).
//
// Data: random ordinary bf16 (|x| in [2^-7, 4), random signs), drawn from pools so that the host spends its
// time in the model, not in the RNG. All run for at least `min_seconds` of wall time. Figures only.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <cstdint>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include "tcemu/rtl/fast_tensor_engine.h"
#include "tcemu/rtl/tensor_engine.h"

namespace tcemu::bench {

struct TeSpeed {
  int rows = 0, cols = 0;
  uint64_t cycles = 0;         // clock cycles (= columns accepted: one per cycle)
  uint64_t columns_exact = 0;  // fast model: columns that needed the exact scalar path (0 for this data)
  double seconds = 0;
  double cycles_per_second() const { return double(cycles) / seconds; }
  double macs_per_second() const { return cycles_per_second() * rows * cols; }
};

// The command line of tcemu-bench-rtl and tcemu-bench-fast-te: [--json] [--min-time SECONDS] [--size RxC ...].
// Exits with status 2 and the usage line on a bad argument.
struct SpeedArgs {
  bool json = false;
  double min_seconds = 1.0;
  std::vector<std::pair<int, int>> sizes;  // empty: the bench's default sizes
};
inline SpeedArgs parse_speed_args(int argc, char** argv) {
  auto usage = [&](const std::string& error) {
    std::fprintf(stderr, "%s: %s\nusage: %s [--json] [--min-time SECONDS] [--size RxC ...]\n", argv[0],
                 error.c_str(), argv[0]);
    std::exit(2);
  };
  SpeedArgs a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      a.json = true;
    } else if (arg == "--min-time" && i + 1 < argc) {
      a.min_seconds = std::atof(argv[++i]);
      if (!(a.min_seconds > 0.0)) usage("--min-time needs a positive number of seconds");
    } else if (arg == "--size" && i + 1 < argc) {
      int r = 0, c = 0;
      if (std::sscanf(argv[++i], "%dx%d", &r, &c) != 2) usage("--size takes RxC, e.g. 16x16");
      a.sizes.emplace_back(r, c);
    } else if (arg == "--help" || arg == "-h") {
      usage("help");
    } else {
      usage("unknown argument '" + arg + "'");
    }
  }
  return a;
}

// Random bf16 in roughly [-4, 4] with a random sign: normal numbers, no specials.
inline uint16_t random_bf16(std::mt19937& rng) {
  const uint32_t sign = rng() & 1u;
  const uint32_t exp = 120 + rng() % 9;
  const uint32_t mant = rng() & 0x7Fu;
  return static_cast<uint16_t>((sign << 15) | (exp << 7) | mant);
}

inline TeSpeed measure_rtl_bare(int rows, int cols, double min_seconds) {
  auto te = rtl::make_tensor_engine(rows, cols);
  std::mt19937 rng(1234);
  std::vector<uint16_t> w(cols);
  for (int r = 0; r < rows; ++r) {
    for (auto& v : w) v = random_bf16(rng);
    te->set_wload(true, r, w.data());
    te->tick();
  }
  te->set_wload(false, 0, nullptr);

  constexpr int kPool = 64;
  std::vector<uint16_t> pool(static_cast<size_t>(kPool) * rows);
  for (auto& v : pool) v = random_bf16(rng);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  uint64_t cycles = 0;
  double elapsed = 0.0;
  const uint64_t chunk = 2048;
  while (elapsed < min_seconds) {
    for (uint64_t i = 0; i < chunk; ++i, ++cycles) {
      te->set_moving(true, cycles == 0, rows, &pool[(cycles % kPool) * rows]);
      te->tick();
    }
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return {rows, cols, cycles, 0, elapsed};
}

// Matmuls of 512 columns back to back on `te`, the next one's weights loaded into the shadow bank while the
// current one streams (as the device's sequencer issues them), one column accepted every cycle with all rows
// enabled. Moving columns come from a pool of `pool_columns`, weights from `weight_sets` sets, both cycled
// through: a small pool repeats the same data every few dozen cycles, which lets the host's branch
// predictors learn the verilated model's data-dependent branches; a pool as large as a real workload's
// operands does not (the bare-vs-SystemC comparison uses the device stream job's sizes for that reason).
inline TeSpeed measure_stream(rtl::TensorEngineModel& te, double min_seconds, int pool_columns, int weight_sets) {
  const int rows = te.rows(), cols = te.cols();
  std::mt19937 rng(1234);
  std::vector<uint16_t> pool(static_cast<size_t>(pool_columns) * rows);
  for (auto& v : pool) v = random_bf16(rng);
  std::vector<std::vector<uint16_t>> weights(static_cast<size_t>(weight_sets));
  for (auto& w : weights) {
    w.resize(static_cast<size_t>(rows) * cols);
    for (auto& v : w) v = random_bf16(rng);
  }
  for (int r = 0; r < rows; ++r) {
    te.set_wload(true, r, &weights[0][static_cast<size_t>(r) * cols]);
    te.tick();
  }
  te.set_wload(false, 0, nullptr);

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
      if (next_row < rows && te.wload_ready()) {
        const auto& w = weights[(matmul + 1) % weights.size()];
        te.set_wload(true, next_row, &w[static_cast<size_t>(next_row) * cols]);
        ++next_row;
      } else {
        te.set_wload(false, 0, nullptr);
      }
      te.set_moving(true, n == 0, rows, &pool[(columns % static_cast<uint64_t>(pool_columns)) * rows]);
      te.tick();
    }
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return {rows, cols, columns, 0, elapsed};
}

// The fast model (tcemu-bench-fast-te): a pool of 64 columns and two weight sets, with `kernel`.
inline TeSpeed measure_fast_model(int rows, int cols, std::string_view kernel, double min_seconds) {
  auto te = rtl::make_fast_tensor_engine(rows, cols);
  te->select_kernel(kernel);
  TeSpeed r = measure_stream(*te, min_seconds, 64, 2);
  r.columns_exact = te->stats().columns_exact;
  return r;
}

// The verilated model on the same stream as the device's TensorE in `tcemu bench tensor-engine` (its stream
// job: 4 weight sets, 6 x 512 moving columns).
inline TeSpeed measure_rtl_stream(int rows, int cols, double min_seconds) {
  auto te = rtl::make_tensor_engine(rows, cols);
  return measure_stream(*te, min_seconds, 6 * 512, 4);
}

}  // namespace tcemu::bench
