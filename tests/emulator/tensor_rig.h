// Test rig for TensorE on the emulated device (one device per process): stages data in SBUF and reads
// PSUM back with DMA jobs (HBM <-> SBUF, PSUM -> SBUF scratch -> HBM), runs tensor-only jobs or jobs of
// several streams, and builds matmul and pe_transpose instructions. Used by tensor_test and lockstep_test.
#pragma once

#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "inproc_transport.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"
#include "tcemu/rtl/tensor_engine.h"

namespace tcemu::test {

using isa::Instr;
using isa::Opcode;

// The device (its tensor engine chosen by `options`), a 1 MiB HBM window and a trace buffer.
class TensorRig {
 public:
  explicit TensorRig(const char* config, const emu::DeviceOptions& options = {})
      : cfg(find_config(config)), transport(cfg, options), driver(transport) {
    win = driver.alloc(kWindow);
    trace = driver.alloc(kTraceCapacity * kTraceRecordBytes, 64);
  }

  static constexpr uint64_t kWindow = 1 << 20;
  static constexpr uint64_t kStage = 0, kBack = kWindow / 2;  // window offsets of the staging areas
  static constexpr uint32_t kTraceCapacity = 256;             // records at `trace`

  DeviceConfig cfg;
  drv::InProcessTransport transport;
  drv::Driver driver;
  uint64_t win = 0, trace = 0;

  // SBUF scratch the PSUM read-back goes through: the last 2 KiB (one PSUM bank) of every partition.
  uint64_t scratch_off() const { return cfg.sbuf_partition_bytes - cfg.psum_bank_bytes; }

  // Runs one job of the given (engine, instructions) streams; with `trace_cap` (<= kTraceCapacity) its
  // first trace records are written to `trace`. Throws drv::DeviceFault if the device faults.
  drv::JobResult run(const std::vector<std::pair<int, std::vector<Instr>>>& streams, uint32_t trace_cap = 0) {
    drv::Job job{win, kWindow, {}};
    drv::ScopedMemory code(driver);  // the code blocks go back to the allocator even when the job faults
    for (const auto& [engine, instrs] : streams) job.streams.push_back(code.stream(engine, instrs));
    job.trace_addr = trace_cap ? trace : 0, job.trace_capacity = trace_cap;
    return driver.run(job, 50'000'000);
  }
  drv::JobResult run_tensor(const std::vector<Instr>& instrs, uint32_t trace_cap = 0) {
    return run({{isa::kEngineTensor, instrs}}, trace_cap);
  }

  // Writes `nparts` rows of `row_bytes` bytes into SBUF partitions part.. at byte `off`.
  void sbuf_write(uint64_t part, uint64_t off, uint64_t row_bytes, uint64_t nparts, const void* data) {
    driver.write(win + kStage, std::span(static_cast<const uint8_t*>(data), row_bytes * nparts));
    run({{isa::kEngineDma0,
          {copy(hbm(kStage), sbuf(part, off), row_bytes, nparts, row_bytes, cfg.sbuf_partition_bytes)}}});
  }
  // Reads `nparts` x `count` fp32 bit patterns from PSUM partitions part.. at byte `off` (count <= one
  // PSUM bank of fp32: the scratch holds one bank).
  std::vector<uint32_t> psum_read(uint64_t part, uint64_t off, uint64_t count, uint64_t nparts) {
    const uint64_t row = 4 * count;
    run({{isa::kEngineDma0,
          {copy(psum(part, off), sbuf(part, scratch_off()), row, nparts, cfg.psum_partition_bytes(),
                cfg.sbuf_partition_bytes),
           copy(sbuf(part, scratch_off()), hbm(kBack), row, nparts, cfg.sbuf_partition_bytes, row)}}});
    std::vector<uint32_t> v(count * nparts);
    driver.read(win + kBack, std::span(reinterpret_cast<uint8_t*>(v.data()), v.size() * 4));
    return v;
  }

  // Reads all of PSUM in one job, bank by bank through the scratch: element i of partition p at
  // [p * psum_partition_bytes / 4 + i]. PSUM must fit the window's read-back half.
  std::vector<uint32_t> psum_read_all() {
    const uint64_t bank = cfg.psum_bank_bytes, banks = cfg.psum_partition_bytes() / bank, np = cfg.psum_partitions;
    std::vector<Instr> dma;
    for (uint64_t b = 0; b < banks; ++b) {  // one queue: each copy completes before the next starts
      dma.push_back(copy(psum(0, b * bank), sbuf(0, scratch_off()), bank, np, cfg.psum_partition_bytes(),
                         cfg.sbuf_partition_bytes));
      dma.push_back(copy(sbuf(0, scratch_off()), hbm(kBack + b * bank), bank, np, cfg.sbuf_partition_bytes,
                         cfg.psum_partition_bytes()));
    }
    run({{isa::kEngineDma0, dma}});
    std::vector<uint32_t> v(cfg.psum_bytes() / 4);
    driver.read(win + kBack, std::span(reinterpret_cast<uint8_t*>(v.data()), v.size() * 4));
    return v;
  }

  static Instr copy(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t d1, uint64_t s1, uint64_t t1) {
    Instr in;
    in.opcode = Opcode::DmaCopy;
    in.src = src, in.dst = dst, in.bytes = bytes, in.d1_count = d1, in.d2_count = 1;
    in.src_d1_stride = s1, in.dst_d1_stride = t1;
    return in;
  }
  static uint64_t hbm(uint64_t off) { return isa::make_addr(isa::Space::kHbm, off); }
  uint64_t sbuf(uint64_t part, uint64_t off) const {
    return isa::make_addr(isa::Space::kSbuf, part * cfg.sbuf_partition_bytes + off);
  }
  uint64_t psum(uint64_t part, uint64_t off) const {
    return isa::make_addr(isa::Space::kPsum, part * cfg.psum_partition_bytes() + off);
  }
  int latency() const { return rtl::tensor_engine_latency(cfg.rows, cfg.cols); }
};

inline Instr pe_transpose(uint64_t k, uint64_t m, uint64_t st_part, uint64_t st_off, uint64_t out_part,
                          uint64_t out_off, bool accumulate = false) {
  Instr in;
  in.opcode = Opcode::PeTranspose;
  in.k = k, in.m = m, in.accumulate = accumulate;
  in.st_part = st_part, in.st_off = st_off, in.out_part = out_part, in.out_off = out_off;
  return in;
}

struct MatmulOperands {
  uint64_t st_part = 0, st_off = 0, mv_part = 0, mv_off = 0, out_part = 0, out_off = 0;
};
inline Instr matmul(isa::MatmulType type, uint64_t k, uint64_t m, uint64_t n, const MatmulOperands& o,
                    bool accumulate = false) {
  Instr in;
  in.opcode = Opcode::Matmul;
  in.dtype = uint64_t(type);
  in.k = k, in.m = m, in.n = n, in.accumulate = accumulate;
  in.st_part = o.st_part, in.st_off = o.st_off, in.mv_part = o.mv_part, in.mv_off = o.mv_off;
  in.out_part = o.out_part, in.out_off = o.out_off;
  return in;
}

inline std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

}  // namespace tcemu::test
