// Internal to tcemu_rtl: the adapter template over one verilated tc_tensor_engine class (V = the class
// Verilator generated for one size, e.g. Vtc_te_16x16). Each size's translation unit (generated from
// tensor_engine_size.cpp.in) instantiates it once.
#pragma once

#include <verilated.h>
#include <verilated_fst_c.h>

#include <algorithm>
#include <array>
#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "tcemu/rtl/tensor_engine.h"

namespace tcemu::rtl::detail {

// Port access for any width Verilator may choose (CData/SData/IData/QData up to 64 bits, VlWide above).
// Values are passed as little-endian 32-bit words.
template <class T>
  requires std::is_integral_v<T>
void write_port(T& port, const uint32_t* words) {
  uint64_t v = words[0];
  if constexpr (sizeof(T) > 4) v |= static_cast<uint64_t>(words[1]) << 32;
  port = static_cast<T>(v);
}
template <std::size_t N>
void write_port(VlWide<N>& port, const uint32_t* words) {
  for (std::size_t i = 0; i < N; ++i) port[i] = words[i];
}
template <class T>
  requires std::is_integral_v<T>
void read_port(const T& port, uint32_t* words) {
  uint64_t v = port;
  words[0] = static_cast<uint32_t>(v);
  if constexpr (sizeof(T) > 4) words[1] = static_cast<uint32_t>(v >> 32);
}
template <std::size_t N>
void read_port(const VlWide<N>& port, uint32_t* words) {
  for (std::size_t i = 0; i < N; ++i) words[i] = port[i];
}

template <class V, int Rows, int Cols>
class VerilatedTensorEngine final : public TensorEngineModel {
 public:
  VerilatedTensorEngine() : ctx_(std::make_unique<VerilatedContext>()) {
    // Tracing is compiled in; it must be allowed before the model is built, and costs nothing until a
    // dump is opened.
    ctx_->traceEverOn(true);
    top_ = std::make_unique<V>(ctx_.get(), "TOP");
    clear_inputs();
    top_->clk_i = 0;
    top_->rst_ni = 1;
    // Settle with the clock low first: an initial evaluation with clk_i = 1 would miss the first edge.
    top_->eval();
    reset();
  }

  ~VerilatedTensorEngine() override {
    trace_close();
    top_->final();
  }

  int rows() const override { return Rows; }
  int cols() const override { return Cols; }
  int latency() const override { return tensor_engine_latency(Rows, Cols); }

  void reset() override {
    clear_inputs();
    top_->rst_ni = 0;  // asynchronous: takes effect at once
    top_->eval();
    for (int i = 0; i < kResetCycles; ++i) clock();
    top_->rst_ni = 1;
    top_->eval();
    cycle_ = 0;
  }

  void set_wload(bool valid, int row, const uint16_t* data) override {
    if (valid && (row < 0 || row >= Rows || data == nullptr)) {
      throw std::out_of_range(fmt::format("tensor engine {}x{}: set_wload(valid, row={}, data={}): row must be "
                                          "in 0..{} and data non-null",
                                          Rows, Cols, row, data ? "set" : "null", Rows - 1));
    }
    top_->wload_valid_i = valid;
    top_->wload_row_i = static_cast<uint32_t>(valid ? row : 0);
    if (data != nullptr) {
      std::array<uint32_t, kWloadWords> w{};
      pack16(data, Cols, w.data());
      write_port(top_->wload_data_i, w.data());
    }
  }

  void set_moving(bool valid, bool first, int k, const uint16_t* data) override {
    if (valid && (k < 1 || k > Rows || data == nullptr)) {
      throw std::out_of_range(fmt::format("tensor engine {}x{}: set_moving(valid, k={}, data={}): k must be in "
                                          "1..{} and data non-null",
                                          Rows, Cols, k, data ? "set" : "null", Rows));
    }
    top_->mv_valid_i = valid;
    top_->mv_first_i = first;
    top_->mv_k_i = static_cast<uint32_t>(valid ? k : 0);
    if (data != nullptr) {
      std::array<uint32_t, kMovingWords> w{};
      pack16(data, Rows, w.data());
      write_port(top_->mv_data_i, w.data());
    }
  }

  void tick() override {
    clock();
    ++cycle_;
  }

  bool out_valid() const override { return top_->out_valid_o; }
  void out_data(uint32_t* dst) const override {
    std::array<uint32_t, kOutWords> w{};
    read_port(top_->out_data_o, w.data());
    for (int c = 0; c < Cols; ++c) dst[c] = w[c];
  }
  bool wload_ready() const override { return top_->wload_ready_o; }
  bool busy() const override { return top_->busy_o; }
  uint64_t cycle() const override { return cycle_; }

  void trace_open(const std::string& fst_path) override {
    trace_close();
    fst_ = std::make_unique<VerilatedFstC>();
    top_->trace(fst_.get(), 99);
    fst_->open(fst_path.c_str());
    top_->eval();
    fst_->dump(time_);
  }

  void set_trace_cycle(uint64_t cycle) override { time_ = std::max(time_, cycle * kPeriod); }

  void trace_close() override {
    if (fst_) {
      fst_->close();
      fst_.reset();
    }
  }

 private:
  static constexpr int kResetCycles = 3;
  static constexpr uint64_t kPeriod = 10;  // trace time units per clock cycle
  // +2: room for write_port()'s 64-bit access on narrow ports.
  static constexpr std::size_t kWloadWords = (Cols * 16 + 31) / 32 + 2;
  static constexpr std::size_t kMovingWords = (Rows * 16 + 31) / 32 + 2;
  static constexpr std::size_t kOutWords = Cols + 2;

  static void pack16(const uint16_t* src, int n, uint32_t* words) {
    for (int i = 0; i < n; ++i) words[i / 2] |= static_cast<uint32_t>(src[i]) << (16 * (i % 2));
  }

  void clear_inputs() {
    top_->wload_valid_i = 0;
    top_->wload_row_i = 0;
    top_->mv_valid_i = 0;
    top_->mv_first_i = 0;
    top_->mv_k_i = 0;
    const std::array<uint32_t, kWloadWords> zw{};
    write_port(top_->wload_data_i, zw.data());
    const std::array<uint32_t, kMovingWords> zm{};
    write_port(top_->mv_data_i, zm.data());
  }

  // One clock period. In a dump, the inputs set since the last tick show up 2 units before the edge.
  void clock() {
    if (fst_) {
      top_->eval();
      fst_->dump(time_ + kPeriod - 2);
    }
    time_ += kPeriod;
    top_->clk_i = 1;
    top_->eval();
    if (fst_) fst_->dump(time_);
    top_->clk_i = 0;
    top_->eval();
    if (fst_) fst_->dump(time_ + kPeriod / 2);
  }

  std::unique_ptr<VerilatedContext> ctx_;
  std::unique_ptr<V> top_;
  std::unique_ptr<VerilatedFstC> fst_;
  uint64_t cycle_ = 0;
  uint64_t time_ = 0;
};

}  // namespace tcemu::rtl::detail
