#include "tcemu/rtl/lockstep_tensor_engine.h"

#include <stdexcept>

namespace tcemu::rtl {

LockstepTensorEngine::LockstepTensorEngine(std::unique_ptr<TensorEngineModel> reference,
                                           std::unique_ptr<TensorEngineModel> candidate)
    : ref_(std::move(reference)), cand_(std::move(candidate)) {
  if (!ref_ || !cand_) throw std::invalid_argument("lockstep: both tensor-engine models are required");
  if (ref_->rows() != cand_->rows() || ref_->cols() != cand_->cols())
    throw std::invalid_argument("lockstep: the models differ in size: " + std::to_string(ref_->rows()) + "x" +
                                std::to_string(ref_->cols()) + " vs " + std::to_string(cand_->rows()) + "x" +
                                std::to_string(cand_->cols()));
  a_.resize(size_t(ref_->cols()));
  b_.resize(size_t(ref_->cols()));
}

void LockstepTensorEngine::reset() {
  ref_->reset();
  cand_->reset();
}

void LockstepTensorEngine::set_wload(bool valid, int row, const uint16_t* data) {
  ref_->set_wload(valid, row, data);
  cand_->set_wload(valid, row, data);
}

void LockstepTensorEngine::set_moving(bool valid, bool first, int k, const uint16_t* data) {
  ref_->set_moving(valid, first, k, data);
  cand_->set_moving(valid, first, k, data);
}

void LockstepTensorEngine::tick() {
  ref_->tick();
  cand_->tick();
  ++ticks_;
  compare();
}

void LockstepTensorEngine::compare() {
  if (divergence_) return;  // the first difference is the one worth reporting
  auto differ = [&](LockstepPort port, int element, uint32_t r, uint32_t c) {
    divergence_ = LockstepDivergence{ref_->cycle(), port, element, r, c};
  };
  if (ref_->out_valid() != cand_->out_valid())
    return differ(LockstepPort::kOutValid, -1, ref_->out_valid(), cand_->out_valid());
  if (ref_->wload_ready() != cand_->wload_ready())
    return differ(LockstepPort::kWloadReady, -1, ref_->wload_ready(), cand_->wload_ready());
  if (ref_->busy() != cand_->busy()) return differ(LockstepPort::kBusy, -1, ref_->busy(), cand_->busy());
  if (!ref_->out_valid()) return;
  ref_->out_data(a_.data());
  cand_->out_data(b_.data());
  if (presented_++ == inject_column_) b_[0] ^= uint32_t(1) << inject_bit_;
  for (size_t c = 0; c < a_.size(); ++c)
    if (a_[c] != b_[c]) return differ(LockstepPort::kOutData, int(c), a_[c], b_[c]);
}

}  // namespace tcemu::rtl
