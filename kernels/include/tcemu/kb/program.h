// Kernel builder: collects per-engine instruction streams and the tensor table of a model, and turns
// declared dependencies between instructions into semaphore waits.
//
// Synchronisation scheme: semaphore e counts the completed instructions of engine e (every instruction
// except a NOP signals sem[e] += 1 on completion; engines complete in order). A dependency on "the i-th
// instruction of engine f" becomes "wait until sem[f] >= i". An instruction can wait on one semaphore;
// extra dependencies become NOPs in front of it. Waits already implied by earlier waits of the same
// engine, and dependencies on the same engine (program order), are dropped.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/model.h"

namespace tcemu::kb {

// Completion of one instruction: `ordinal`-th completed instruction of `engine` (1-based).
struct Ref {
  int engine = -1;
  uint32_t ordinal = 0;
  bool valid() const { return engine >= 0; }
};

class Program {
 public:
  Program(const DeviceConfig& cfg, std::string name);

  const DeviceConfig& config() const { return cfg_; }

  // Adds a tensor to the model's HBM window (64-byte aligned); returns its "hbm:" device address.
  uint64_t add_tensor(const std::string& name, model::DType dtype, model::TensorKind kind, std::vector<int64_t> shape);

  // Sets the data of tensor `name` (made a constant: written when the model is loaded). `bytes` must be
  // the tensor's size, in device layout.
  void set_constant(const std::string& name, std::vector<uint8_t> bytes);

  // Appends `in` to `engine`'s stream after the given dependencies; returns its completion.
  Ref emit(int engine, isa::Instr in, const std::vector<Ref>& deps = {});

  size_t instruction_count() const;
  model::Model finish() const;

 private:
  DeviceConfig cfg_;
  model::Model model_;
  uint64_t window_ = 0;
  std::array<std::vector<isa::Instr>, isa::kMaxEngines> streams_;
  std::array<uint32_t, isa::kMaxEngines> completed_{};
  std::array<std::array<uint32_t, isa::kMaxEngines>, isa::kMaxEngines> waited_{};  // [waiter][producer]
};

// Address helpers for operands.
inline uint64_t sbuf_addr(const DeviceConfig& c, uint64_t partition, uint64_t offset) {
  return isa::make_addr(isa::Space::kSbuf, partition * c.sbuf_partition_bytes + offset);
}
inline uint64_t psum_addr(const DeviceConfig& c, uint64_t partition, uint64_t offset) {
  return isa::make_addr(isa::Space::kPsum, partition * c.psum_partition_bytes() + offset);
}

}  // namespace tcemu::kb
