// tcemu::rtl — the fast tensor engine: a plain C++ implementation of TensorEngineModel that is bit-exact and
// cycle-exact with the verilated RTL (rtl/tc_tensor_engine.sv), at near-native host speed.
//
// Implemented by tcemu_rtl_fast (rtl/src/fast_tensor_engine.cpp; no Verilator); called wherever a
// TensorEngineModel is (the emulator's tensor-engine sequencer, tests/rtl, bench/). docs/rtl.md describes
// the hardware and tensor_engine.h is the contract: every port reads the same as the RTL's after every
// tick() for any input sequence that follows the documented protocol (weight rows only while
// wload_ready()). Writes made while wload_ready() is low corrupt the RTL's columns in flight in ways this
// model does not reproduce.
//
// How it works (docs/rtl.md, "The fast model"): the controller (active bank, per-stage valid and bank bits,
// wload_ready, busy) is mirrored register for register; the array is not simulated. A column's moving data is
// copied into a delay line of latency() + 1 entries when it is accepted, with the bank it was accepted with;
// its whole result is computed before it reaches the outputs (in batches: when the oldest pending column gets
// there, all pending ones at once, which gives the vector kernels several columns per weight row). Results
// come from a vectorised fp32 FMA loop (r ascending, across the cols() outputs) when a cheap test on exponent
// ranges proves every product and every partial sum normal and finite (or exactly zero), where FMA and the
// engine's DAZ/FTZ arithmetic agree; the other result elements are recomputed one by one with the golden
// arithmetic (tcemu/numerics.h).
//
// Differences from the verilated model: any rows, cols >= 2 (nothing to build per size); no waveforms
// (trace_open throws); instances are independent and not thread-safe, like the RTL's.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "tcemu/rtl/tensor_engine.h"

namespace tcemu::rtl {

// How the accepted columns were computed, counted since construction or clear_stats() (reset() does not
// clear them: they describe the host's work, not the engine's state). A column is counted when its result is
// computed: at the latest when it reaches the outputs, so all accepted columns are counted whenever the engine
// is idle (!busy()) and after reset().
struct FastTensorEngineStats {
  uint64_t columns = 0;         // columns accepted (columns_fast + columns_exact)
  uint64_t columns_fast = 0;    // every result element from the vectorised FMA path
  uint64_t columns_exact = 0;   // at least one element recomputed by the exact scalar path
  uint64_t elements_exact = 0;  // result elements recomputed by the exact scalar path (of cols() per column)
};

class FastTensorEngine : public TensorEngineModel {
 public:
  virtual FastTensorEngineStats stats() const = 0;
  virtual void clear_stats() = 0;

  // Test hook: compute every result element with the exact scalar path (the results must not change).
  virtual void set_force_exact(bool force) = 0;

  // The vector kernel for the FMA path: "avx512", "avx2" (AVX2 + FMA) or "generic" (portable C++). The
  // best one the host supports is chosen at construction; select_kernel() switches (tests run each one).
  // Throws tcemu::Error (kInvalidArgument) naming the supported kernels if `name` is unknown or the host
  // lacks its instructions.
  virtual std::string_view kernel() const = 0;
  virtual void select_kernel(std::string_view name) = 0;
};

// The kernels select_kernel() accepts on this host, fastest first.
std::vector<std::string_view> supported_fast_kernels();

// Makes a fast engine of rows x cols (any rows, cols >= 2), already reset. Throws std::invalid_argument
// naming the size otherwise (as make_tensor_engine() does for a size that was not built).
std::unique_ptr<FastTensorEngine> make_fast_tensor_engine(int rows, int cols);

}  // namespace tcemu::rtl
