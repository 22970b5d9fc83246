// tcemu::rtl — C++ adapter around the verilated SystemVerilog tensor engine (rtl/tc_tensor_engine.sv).
//
// Implemented by tcemu_rtl (rtl/src); called by the emulator's RTL tensor-engine model, the tests in
// tests/rtl and bench/rtl_speed.cpp. docs/rtl.md describes the hardware; this header is the contract of
// the adapter. The adapter is thin: every method maps to port reads/writes or clock edges.
//
// Clocking model. The inputs behave like wires driven by the caller: set_wload() and set_moving() set
// them and they keep their values until set again. tick() is one full clock cycle: the rising edge, at
// which the engine samples the inputs as they are at that moment, then the falling edge. After tick()
// returns, out_valid(), out_data(), wload_ready() and busy() reflect the registered state produced by
// that rising edge (none of them depends combinationally on the inputs).
//
// Timing. A column is accepted by the tick() at whose rising edge set_moving(valid=true) is in effect;
// call that tick number a (cycle() == a right after it). Its result is presented after tick number
// a + latency(): right after that tick, out_valid() is true and out_data() holds the column. Columns
// come out in the order they went in, one per tick at most, with no gaps other than the input's gaps.
// A column may be accepted every tick, across matmuls too (see set_moving()).
//
// Numerics: tc_fp_pkg.sv (bf16 x bf16 products exact in fp32, fp32 accumulation with round to nearest
// even, DAZ/FTZ, canonical NaN 0x7FC00000); docs/rtl.md and common's golden model (tcemu/numerics.h)
// define the same policy.
//
// Instances are independent (each has its own VerilatedContext); any number of any available sizes can
// coexist in one process. An instance is not thread-safe; different instances may run on different
// threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tcemu::rtl {

// The fixed latency of tc_tensor_engine: rising edges from the edge that accepts a column to the edge
// after which its result is on the outputs (out_valid_o high). One source for the emulator's models.
constexpr int tensor_engine_latency(int rows, int cols) { return rows + cols - 1; }

class TensorEngineModel {  // one verilated tc_tensor_engine instance
 public:
  virtual ~TensorEngineModel() = default;

  virtual int rows() const = 0;     // Rows: length of a moving column, maximum K
  virtual int cols() const = 0;     // Cols: number of weight columns, length of a result column
  virtual int latency() const = 0;  // == tensor_engine_latency(rows(), cols())

  // Holds rst_ni low for a few clock cycles and releases it; clears every input to 0 (not valid) and
  // the cycle count. After reset both weight banks hold +0.0 and no column is in flight. A freshly
  // constructed model has already been reset.
  virtual void reset() = 0;

  // Weight load into the shadow bank: row `row` (0..rows()-1) of W, `data` = cols() bf16 bit patterns
  // (W[row][c] for c = 0..cols()-1). Write only while wload_ready() is true; the engine does not check.
  // data may be null when valid is false. Throws std::out_of_range if valid and row is outside
  // 0..rows()-1 or data is null.
  virtual void set_wload(bool valid, int row, const uint16_t* data) = 0;

  // Moving column: `data` = rows() bf16 bit patterns (X[r][n] for r = 0..rows()-1), `k` = number of
  // enabled rows (1..rows()); rows r >= k pass partial sums through. `first` marks the first column of
  // a matmul: at its edge the banks swap (the shadow bank becomes the active one and that column and all
  // later ones use it; columns already in flight keep their bank). A weight row written at the same
  // edge as a `first` column goes into the bank that becomes active at that edge. data may be null
  // when valid is false. Throws std::out_of_range if valid and k is outside 1..rows() or data is null.
  virtual void set_moving(bool valid, bool first, int k, const uint16_t* data) = 0;

  // One full clock cycle (see "Clocking model" above).
  virtual void tick() = 0;

  virtual bool out_valid() const = 0;
  // cols() fp32 bit patterns: Y[c] for c = 0..cols()-1. Meaningful only while out_valid().
  virtual void out_data(uint32_t* dst) const = 0;
  // True when writing the shadow bank is safe: no column in flight multiplies with it.
  virtual bool wload_ready() const = 0;
  // True while any accepted column's result has not yet been presented (including the one being
  // presented now, i.e. busy() is also true while out_valid() is).
  virtual bool busy() const = 0;
  virtual uint64_t cycle() const = 0;  // rising edges since reset()

  // FST waveform dump of every later clock cycle. Dump time is 10 units per cycle: the rising edge of
  // the n-th clock cycle since construction (reset()'s cycles included) is at 10*n, inputs set before a
  // tick() show 2 units before its edge. Tracing slows simulation by an order of magnitude: trace a
  // window. Opening while a dump is open closes the previous one. Up to 32x32 every register array is in
  // the dump; larger sizes dump the ports and the controller only (docs/rtl.md, "Waveforms").
  virtual void trace_open(const std::string& fst_path) = 0;
  virtual void trace_close() = 0;
  // Sets the dump's time base so that the next tick() is shown at time 10 * `cycle` (a caller that
  // gates the clock keeps the waveform on its own cycle count). Never moves time backwards.
  virtual void set_trace_cycle(uint64_t cycle) = 0;
};

// Makes a verilated engine of the given size. Throws std::invalid_argument naming the requested size and
// listing the available ones if that size was not built (rtl/CMakeLists.txt lists them).
std::unique_ptr<TensorEngineModel> make_tensor_engine(int rows, int cols);

// The sizes make_tensor_engine() accepts, as (rows, cols), ascending.
std::vector<std::pair<int, int>> available_tensor_engine_sizes();

}  // namespace tcemu::rtl
