// tcemu::rtl — two tensor-engine models in lockstep: the same inputs go to both, every port is compared
// after every tick, and the first difference is kept. The emulator's `--tensor-engine lockstep` runs the
// verilated RTL (the reference, whose outputs drive the device) against the fast model (the candidate).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tcemu/rtl/tensor_engine.h"

namespace tcemu::rtl {

// The ports compared; the codes are those of the LOCKSTEP_PORT register (docs/registers.md).
enum class LockstepPort : uint32_t { kOutValid = 1, kOutData = 2, kWloadReady = 3, kBusy = 4 };

// The first tick after which the two models' ports differed.
struct LockstepDivergence {
  uint64_t tick = 0;      // the reference's cycle() after that tick
  LockstepPort port = LockstepPort::kOutValid;
  int element = -1;       // out_data: the element (result row c) that differs first; -1 otherwise
  uint32_t reference = 0, candidate = 0;  // its values: fp32 bits for out_data, 0/1 for the flags
};

class LockstepTensorEngine final : public TensorEngineModel {
 public:
  // Both models must have the same rows and cols; throws std::invalid_argument naming both sizes.
  LockstepTensorEngine(std::unique_ptr<TensorEngineModel> reference, std::unique_ptr<TensorEngineModel> candidate);

  int rows() const override { return ref_->rows(); }
  int cols() const override { return ref_->cols(); }
  int latency() const override { return ref_->latency(); }
  void reset() override;  // resets both; keeps a recorded divergence (clear_divergence() forgets it)
  void set_wload(bool valid, int row, const uint16_t* data) override;
  void set_moving(bool valid, bool first, int k, const uint16_t* data) override;
  void tick() override;
  bool out_valid() const override { return ref_->out_valid(); }
  void out_data(uint32_t* dst) const override { ref_->out_data(dst); }
  bool wload_ready() const override { return ref_->wload_ready(); }
  bool busy() const override { return ref_->busy(); }
  uint64_t cycle() const override { return ref_->cycle(); }
  void trace_open(const std::string& path) override { ref_->trace_open(path); }
  void trace_close() override { ref_->trace_close(); }
  void set_trace_cycle(uint64_t cycle) override { ref_->set_trace_cycle(cycle); }

  const std::optional<LockstepDivergence>& divergence() const { return divergence_; }
  void clear_divergence() { divergence_.reset(); }
  uint64_t ticks_compared() const { return ticks_; }

  // Test hook (proves the comparison can fail): flips `bit` of element 0 of the candidate's `column`-th
  // presented result column (0-based, counted since construction).
  void inject_candidate_error(uint64_t column, int bit) { inject_column_ = column, inject_bit_ = bit; }

 private:
  void compare();
  std::unique_ptr<TensorEngineModel> ref_, cand_;
  std::optional<LockstepDivergence> divergence_;
  std::vector<uint32_t> a_, b_;
  uint64_t ticks_ = 0, presented_ = 0, inject_column_ = UINT64_MAX;
  int inject_bit_ = 0;
};

}  // namespace tcemu::rtl
