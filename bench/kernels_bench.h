// `tcemu bench kernels [--quick] [--config C] [--only NAME ...] [--json]`: the kernel library on the
// emulated device, a row per kernel and shape: emulated cycles, useful MACs, TensorE utilisation (MACs /
// (cycles x rows x cols)), the bounding engine (the profile's busiest engine) and host wall time
// (docs/bench.md). One device runs every model in turn (load, run, unload); each model runs twice, once
// for the wall time and once profiled for the bounding engine, and the two cycle counts must agree.
#pragma once

#include <string>
#include <vector>

namespace tcemu::bench {

// `args`: the words after "kernels". Prints the report and returns 0; throws UsageError for a bad command
// line and other exceptions for failures (run_bench_command reports both).
int run_kernels_bench(const std::vector<std::string>& args);

}  // namespace tcemu::bench
