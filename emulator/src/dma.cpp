// DMA queues: one SystemC process per queue executing dma_copy (docs/isa.md).
#include <vector>

#include "tc1.h"

namespace tcemu::emu {

bool Tc1::dma_copy(int engine, uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats) {
  auto fault = [&](FaultCode c, uint64_t addr) {
    raise_fault(c, engine, pc, addr, uint32_t(in.opcode));
    return false;
  };
  if (in.bytes == 0 || in.d1_count == 0 || in.d2_count == 0) return fault(FaultCode::BadOperand, 0);
  uint64_t ss = isa::addr_space(in.src), ds = isa::addr_space(in.dst);
  using S = isa::Space;
  bool legal = (ss == uint64_t(S::kHbm) && (ds == uint64_t(S::kSbuf) || ds == uint64_t(S::kHbm))) ||
               (ss == uint64_t(S::kSbuf) && (ds == uint64_t(S::kHbm) || ds == uint64_t(S::kSbuf))) ||
               (ss == uint64_t(S::kPsum) && ds == uint64_t(S::kSbuf));
  if (!legal) return fault(FaultCode::BadSpace, ss > 2 ? in.src : in.dst);
  if (in.d1_count * in.d2_count > kMaxDmaRuns) return fault(FaultCode::BadOperand, 0);
  // Check every run before moving anything, so a faulting copy changes no memory.
  std::vector<std::pair<Run, Run>> runs;
  runs.reserve(in.d1_count * in.d2_count);
  for (uint64_t i2 = 0; i2 < in.d2_count; ++i2) {
    for (uint64_t i1 = 0; i1 < in.d1_count; ++i1) {
      uint64_t s = in.src + i2 * in.src_d2_stride + i1 * in.src_d1_stride;
      uint64_t d = in.dst + i2 * in.dst_d2_stride + i1 * in.dst_d1_stride;
      Run rs, rd;
      Fault f;
      if (isa::addr_space(s) != ss || !resolve(s, in.bytes, rs, f)) return fault(f.code == FaultCode::None ? FaultCode::BadSpace : f.code, s);
      if (isa::addr_space(d) != ds || !resolve(d, in.bytes, rd, f)) return fault(f.code == FaultCode::None ? FaultCode::BadSpace : f.code, d);
      runs.emplace_back(rs, rd);
    }
  }
  uint64_t total = in.bytes * in.d1_count * in.d2_count;
  stats.bytes = total;
  uint64_t cycles = cfg_.dma_latency_cycles + (total + cfg_.dma_bytes_per_cycle - 1) / cfg_.dma_bytes_per_cycle;
  if (!wait_cycles(cycles, token)) return false;
  // Data moves at completion: a run-by-run copy through a bounce buffer (sources may overlap sinks).
  std::vector<uint8_t> buf(in.bytes);
  for (auto& [rs, rd] : runs) {
    read_run(rs, buf.data(), in.bytes);
    write_run(rd, buf.data(), in.bytes);
  }
  return true;
}

}  // namespace tcemu::emu
