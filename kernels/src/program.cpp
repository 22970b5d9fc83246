#include "tcemu/kb/program.h"

#include <algorithm>
#include <map>

#include "tcemu/error.h"

namespace tcemu::kb {

Program::Program(const DeviceConfig& cfg, std::string name) : cfg_(cfg) {
  model_.name = std::move(name);
  model_.config_name = cfg.name;
  model_.array_rows = cfg.rows;
  model_.array_cols = cfg.cols;
}

uint64_t Program::add_tensor(const std::string& name, model::DType dtype, model::TensorKind kind,
                             std::vector<int64_t> shape) {
  model::Tensor t;
  t.name = name;
  t.dtype = dtype;
  t.kind = kind;
  t.shape = std::move(shape);
  t.bytes = model::element_count(t.shape) * model::dtype_size(dtype);
  t.hbm_offset = window_;
  window_ = (window_ + t.bytes + 63) & ~uint64_t(63);
  model_.tensors.push_back(std::move(t));
  return isa::make_addr(isa::Space::kHbm, model_.tensors.back().hbm_offset);
}

void Program::set_constant(const std::string& name, std::vector<uint8_t> bytes) {
  for (auto& t : model_.tensors)
    if (t.name == name) {
      if (bytes.size() != t.bytes)
        throw Error(ErrorCode::kInvalidArgument, "constant '" + name + "': " + std::to_string(bytes.size()) +
                                                     " bytes of data for a tensor of " + std::to_string(t.bytes));
      t.kind = model::TensorKind::kConst;
      t.data = std::move(bytes);
      return;
    }
  throw Error(ErrorCode::kInvalidArgument, "constant '" + name + "': no such tensor");
}

Ref Program::emit(int engine, isa::Instr in, const std::vector<Ref>& deps) {
  if (engine < 0 || engine >= isa::kMaxEngines)
    throw Error(ErrorCode::kInvalidArgument, "emit: engine " + std::to_string(engine) + " out of range");
  // Strongest requirement per producer engine, minus what this engine already waited for.
  std::map<int, uint32_t> need;
  for (const Ref& d : deps) {
    if (!d.valid() || d.engine == engine) continue;
    if (waited_[engine][d.engine] >= d.ordinal) continue;
    need[d.engine] = std::max(need[d.engine], d.ordinal);
  }
  auto& stream = streams_[engine];
  size_t left = need.size();
  for (auto [producer, ordinal] : need) {
    isa::Instr* target;
    isa::Instr nop;
    if (--left == 0) {
      target = &in;
    } else {
      nop.opcode = isa::Opcode::Nop;
      target = &nop;
    }
    target->wait_en = 1;
    target->wait_sem = uint64_t(producer);
    target->wait_value = ordinal;
    waited_[engine][producer] = ordinal;
    if (target == &nop) stream.push_back(nop);
  }
  in.signal_en = 1;
  in.signal_set = 0;
  in.signal_sem = uint64_t(engine);
  in.signal_value = 1;
  stream.push_back(in);
  return Ref{engine, ++completed_[engine]};
}

size_t Program::instruction_count() const {
  size_t n = 0;
  for (const auto& s : streams_) n += s.size();
  return n;
}

model::Model Program::finish() const {
  model::Model m = model_;
  m.hbm_window_bytes = std::max<uint64_t>(window_, 64);
  for (int e = 0; e < isa::kMaxEngines; ++e)
    if (!streams_[e].empty()) m.streams.push_back({e, streams_[e]});
  return m;
}

}  // namespace tcemu::kb
