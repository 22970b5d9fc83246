// `tcemu bench tensor-engine [--json] [--quick]`: how fast the tensor engine's models run on this host, in one
// report (docs/bench.md):
//   (a) the whole emulated bf16 GEMM on trn1 with the fast engine, in MAC per host second, next to OpenBLAS
//       sgemm on the same shape (one thread, the core type that matches the CPU) and their ratio;
//   (b) RTL cycles per host second at 16x16 and 32x32: the bare verilated model vs the same model clocked by
//       the device's TensorE inside the SystemC platform;
//   (c) emulated device cycles per host second on a mixed kernel (the linear layer).
//
// Implemented in bench/tensor_engine_bench.cpp (library tcemu_bench); called by tools/tcemu.cpp for
// `tcemu bench ...`. SystemC allows one device per process and OpenBLAS reads OPENBLAS_CORETYPE once, when
// it is loaded, so every measurement runs in a child process: the same executable (/proc/self/exe) with a
// hidden `--part` option, which prints one JSON object on stdout. Figures only; nothing asserts about time.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace tcemu::bench {

// A bad command line: reported with a hint to `tcemu --help` and exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `args`: the words after "bench" (the first names the benchmark). Prints the report on stdout (progress
// lines on stderr when it is a terminal) and returns the exit status: 0, 1 for a failed measurement (the
// error is printed as "tcemu: error: ..."), 2 for a usage error.
int run_bench_command(const std::vector<std::string>& args);

}  // namespace tcemu::bench
