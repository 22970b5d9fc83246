// The TC1 SystemC model. Time: one clock for the whole core, 1 ns of SystemC time per cycle.
//
// Processes (all SC_THREADs of module Tc1):
//  - command_processor: consumes the command ring, validates job descriptors, starts the engines of a
//    job, waits for them, then publishes completion (COMPLETED_SEQ, JOB_DONE interrupt).
//  - tensor_engine: the TensorE sequencer; clocks the verilated array cycle by cycle while it has work
//    (weight loads, moving columns, results draining) and sleeps on semaphores otherwise.
//  - dma_queue (one per queue): executes dma_copy instructions with a latency + bandwidth cost.
// Reset and faults bump job_token_; every process re-checks its token after each wait() and abandons
// stale work, so a reset in the middle of a job never leaves a process running old work.
#include "tcemu/emu/device.h"

// Verilated headers (pulled in by the RTL adapter) must come before <systemc>.
#include "tcemu/rtl/tensor_engine.h"

#define SC_INCLUDE_DYNAMIC_PROCESSES  // sc_spawn for the per-queue DMA threads
#include <systemc>

#include <array>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "tcemu/error.h"
#include "tcemu/isa.h"
#include "tcemu/numerics.h"
#include "tcemu/regs.h"

// libsystemc's own main() calls sc_main; tcemu programs have their own main and never call it.
int sc_main(int, char*[]) { return 1; }

namespace tcemu::emu {

using isa::Instr;
using isa::Opcode;
using regs::FaultCode;

namespace {

constexpr uint64_t kPageBytes = 4096;
constexpr uint64_t kMaxDmaRuns = uint64_t(1) << 24;  // d1_count x d2_count limit of one dma_copy
const sc_core::sc_time kCycle(1, sc_core::SC_NS);

// HBM: sparse, 4 KiB pages allocated on first write; untouched memory reads as zero.
class SparseMemory {
 public:
  explicit SparseMemory(uint64_t size) : size_(size) {}
  uint64_t size() const { return size_; }
  uint64_t resident_bytes() const { return pages_.size() * kPageBytes; }

  void read(uint64_t addr, uint8_t* dst, uint64_t len) const {
    while (len) {
      uint64_t page = addr / kPageBytes, off = addr % kPageBytes;
      uint64_t n = std::min(len, kPageBytes - off);
      auto it = pages_.find(page);
      if (it == pages_.end()) std::memset(dst, 0, n);
      else std::memcpy(dst, it->second.get() + off, n);
      addr += n, dst += n, len -= n;
    }
  }
  void write(uint64_t addr, const uint8_t* src, uint64_t len) {
    while (len) {
      uint64_t page = addr / kPageBytes, off = addr % kPageBytes;
      uint64_t n = std::min(len, kPageBytes - off);
      auto& p = pages_[page];
      if (!p) {
        p = std::make_unique<uint8_t[]>(kPageBytes);
        std::memset(p.get(), 0, kPageBytes);
      }
      std::memcpy(p.get() + off, src, n);
      addr += n, src += n, len -= n;
    }
  }

 private:
  uint64_t size_;
  std::unordered_map<uint64_t, std::unique_ptr<uint8_t[]>> pages_;
};

uint64_t rd64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}
uint32_t rd32(const uint8_t* p) { return uint32_t(rd64(p) & 0xFFFFFFFFu) ; }

struct Fault {
  FaultCode code = FaultCode::None;
  uint64_t addr = 0;
};

struct StreamDesc {
  uint32_t count = 0;
  uint64_t addr = 0;  // absolute HBM address of the first instruction
};

}  // namespace

class Tc1 : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(Tc1);

  Tc1(sc_core::sc_module_name name, const DeviceConfig& cfg)
      : sc_module(name), cfg_(cfg), hbm_(cfg.hbm_bytes),
        sbuf_(cfg.sbuf_bytes(), 0), psum_(cfg.psum_bytes(), 0),
        te_(rtl::make_tensor_engine(cfg.rows, cfg.cols)) {
    te_->reset();
    streams_.resize(isa::kMaxEngines);
    engine_done_.assign(isa::kMaxEngines, true);
    SC_THREAD(command_processor);
    SC_THREAD(tensor_engine);
    for (int q = 0; q < cfg_.dma_queues; ++q) {
      sc_core::sc_spawn_options opts;
      sc_core::sc_spawn([this, q] { dma_queue(isa::kEngineDma0 + q); }, sc_core::sc_gen_unique_name("dma"), &opts);
    }
  }

  const DeviceConfig& config() const { return cfg_; }
  SparseMemory& hbm() { return hbm_; }
  bool irq_line() const { return (irq_status_ & irq_mask_) != 0; }
  uint64_t cycle() const { return uint64_t(sc_core::sc_time_stamp() / kCycle); }

  // ---- MMIO ---------------------------------------------------------------------------------------
  uint32_t mmio_read(uint32_t off) {
    using namespace regs;
    switch (off) {
      case ID: return kDeviceId;
      case VERSION: return kVersion;
      case ARRAY_ROWS: return uint32_t(cfg_.rows);
      case ARRAY_COLS: return uint32_t(cfg_.cols);
      case SBUF_PARTITIONS: return uint32_t(cfg_.sbuf_partitions);
      case SBUF_PARTITION_BYTES: return cfg_.sbuf_partition_bytes;
      case PSUM_PARTITIONS: return uint32_t(cfg_.psum_partitions);
      case PSUM_BANK_BYTES: return cfg_.psum_bank_bytes;
      case PSUM_BANKS: return uint32_t(cfg_.psum_banks);
      case HBM_SIZE_LO: return uint32_t(cfg_.hbm_bytes);
      case HBM_SIZE_HI: return uint32_t(cfg_.hbm_bytes >> 32);
      case DMA_QUEUES: return uint32_t(cfg_.dma_queues);
      case NUM_SEMAPHORES: return kNumSemaphores;
      case CLOCK_MHZ: return cfg_.clock_mhz;
      case CTRL: return enabled_ ? kCtrlEnable : 0;
      case STATUS: return kStatusReady | (job_running_ ? kStatusBusy : 0) | (fault_.code != FaultCode::None ? kStatusFault : 0);
      case IRQ_STATUS: return irq_status_;
      case IRQ_MASK: return irq_mask_;
      case RING_BASE_LO: return uint32_t(ring_base_);
      case RING_BASE_HI: return uint32_t(ring_base_ >> 32);
      case RING_SIZE: return ring_size_;
      case RING_HEAD: return ring_head_;
      case RING_TAIL: return ring_tail_;
      case COMPLETED_SEQ: return completed_seq_;
      case FAULT_CODE: return uint32_t(fault_.code);
      case FAULT_ENGINE: return fault_engine_;
      case FAULT_PC: return fault_pc_;
      case FAULT_ADDR_LO: return uint32_t(fault_.addr);
      case FAULT_ADDR_HI: return uint32_t(fault_.addr >> 32);
      case FAULT_INFO: return fault_info_;
      case FAULT_SEQ: return fault_seq_;
      case CYCLE_LO: {
        uint64_t c = cycle();
        cycle_hi_latch_ = uint32_t(c >> 32);
        return uint32_t(c);
      }
      case CYCLE_HI: return cycle_hi_latch_;
      case JOB_CYCLES_LO: return uint32_t(job_cycles_);
      case JOB_CYCLES_HI: return uint32_t(job_cycles_ >> 32);
      default: return 0;  // unmapped offsets read as zero, like a real BAR
    }
  }

  void mmio_write(uint32_t off, uint32_t v) {
    using namespace regs;
    switch (off) {
      case CTRL:
        if (v & kCtrlReset) reset();
        enabled_ = (v & kCtrlEnable) != 0;
        kick();
        break;
      case IRQ_STATUS: irq_status_ &= ~v; break;
      case IRQ_MASK: irq_mask_ = v & (kIrqJobDone | kIrqFault); break;
      case RING_BASE_LO: ring_base_ = (ring_base_ & ~uint64_t(0xFFFFFFFF)) | v; break;
      case RING_BASE_HI: ring_base_ = (ring_base_ & 0xFFFFFFFFull) | (uint64_t(v) << 32); break;
      case RING_SIZE: ring_size_ = v; break;
      case DOORBELL:
        ring_tail_ = v;
        kick();
        break;
      default: break;  // writes to read-only or unmapped offsets are ignored, like a real BAR
    }
  }

 private:
  // Wakes the command processor. Safe to call between sc_start() calls: the delta notification is
  // processed when the host next runs the simulation.
  void kick() { cp_ev_.notify(sc_core::SC_ZERO_TIME); }

  void reset() {
    ++job_token_;  // every process abandons what it was doing at its next check
    ring_base_ = 0, ring_size_ = 0, ring_head_ = 0, ring_tail_ = 0;
    completed_seq_ = 0, job_cycles_ = 0;
    irq_status_ = 0;
    fault_ = {}, fault_engine_ = 0, fault_pc_ = 0, fault_info_ = 0, fault_seq_ = 0;
    job_running_ = false;
    sems_.fill(0);
    std::fill(engine_done_.begin(), engine_done_.end(), true);
    te_->reset();
    wake_ev_.notify(sc_core::SC_ZERO_TIME);
    abort_ev_.notify(sc_core::SC_ZERO_TIME);
    kick();
  }

  void raise_irq(uint32_t bits) {
    irq_status_ |= bits;
    if (irq_line()) sc_core::sc_pause();  // return control to the host waiting in run()
  }

  // First fault wins; the device halts until reset.
  void raise_fault(FaultCode code, int engine, uint32_t pc, uint64_t addr, uint32_t info) {
    if (fault_.code != FaultCode::None) return;
    fault_ = {code, addr};
    fault_engine_ = uint32_t(engine), fault_pc_ = pc, fault_info_ = info, fault_seq_ = running_seq_;
    job_running_ = false;
    ++job_token_;
    abort_ev_.notify(sc_core::SC_ZERO_TIME);
    raise_irq(regs::kIrqFault);
  }

  bool halted() const { return fault_.code != FaultCode::None; }

  // ---- Command processor ------------------------------------------------------------------------
  void command_processor() {
    for (;;) {
      while (!(enabled_ && !halted() && ring_size_ != 0 && ring_head_ != ring_tail_)) wait(cp_ev_);
      uint64_t token = ++job_token_;
      if (!start_job()) continue;
      while (!all_engines_done() && token == job_token_) wait(cp_ev_);
      if (token != job_token_) continue;  // reset or fault
      job_running_ = false;
      completed_seq_ = running_seq_;
      job_cycles_ = cycle() - job_start_cycle_;
      ring_head_ = (ring_head_ + 1) % ring_size_;
      raise_irq(regs::kIrqJobDone);
    }
  }

  bool start_job() {
    const uint32_t size = ring_size_;
    if ((size & (size - 1)) != 0 || size > 4096 || ring_tail_ >= size || ring_base_ % 64 != 0 ||
        ring_base_ + uint64_t(size) * regs::kRingEntryBytes > hbm_.size()) {
      raise_fault(FaultCode::BadRing, 0, 0, ring_base_, size);
      return false;
    }
    uint8_t entry[regs::kRingEntryBytes];
    hbm_.read(ring_base_ + uint64_t(ring_head_) * regs::kRingEntryBytes, entry, sizeof entry);
    uint64_t desc = rd64(entry);
    running_seq_ = rd32(entry + 8);
    auto bad_job = [&](uint64_t where, uint32_t info) {
      raise_fault(FaultCode::BadJob, 0, 0, where, info);
      return false;
    };
    if (desc + regs::kJobHeaderBytes > hbm_.size() || desc + regs::kJobHeaderBytes < desc) return bad_job(desc, 0);
    uint8_t hdr[regs::kJobHeaderBytes];
    hbm_.read(desc, hdr, sizeof hdr);
    if (rd32(hdr) != regs::kJobMagic) return bad_job(desc, rd32(hdr));
    uint32_t nstreams = rd32(hdr + 4);
    window_base_ = rd64(hdr + 8);
    window_size_ = rd64(hdr + 16);
    if (nstreams > uint32_t(isa::kMaxEngines)) return bad_job(desc + 4, nstreams);
    if (window_base_ > hbm_.size() || window_size_ > hbm_.size() - window_base_) return bad_job(desc + 8, 0);
    for (auto& s : streams_) s = {};
    for (uint32_t i = 0; i < nstreams; ++i) {
      uint64_t at = desc + regs::kJobHeaderBytes + uint64_t(i) * regs::kJobStreamBytes;
      if (at + regs::kJobStreamBytes > hbm_.size()) return bad_job(at, i);
      uint8_t s[regs::kJobStreamBytes];
      hbm_.read(at, s, sizeof s);
      uint32_t engine = rd32(s), count = rd32(s + 4);
      uint64_t addr = rd64(s + 8);
      bool present = engine == uint32_t(isa::kEngineTensor) ||
                     (engine >= uint32_t(isa::kEngineDma0) && engine < uint32_t(isa::kEngineDma0 + cfg_.dma_queues));
      if (!present || streams_[engine].count != 0) return bad_job(at, engine);
      if (addr > hbm_.size() || uint64_t(count) * isa::kInstrBytes > hbm_.size() - addr) return bad_job(at + 8, engine);
      streams_[engine] = {count, addr};
    }
    sems_.fill(0);
    for (int e = 0; e < isa::kMaxEngines; ++e) engine_done_[e] = streams_[e].count == 0;
    job_running_ = true;
    job_start_cycle_ = cycle();
    wake_ev_.notify(sc_core::SC_ZERO_TIME);
    return true;
  }

  bool all_engines_done() const {
    for (bool d : engine_done_)
      if (!d) return false;
    return true;
  }

  void engine_finished(int engine, uint64_t token) {
    if (token != job_token_) return;
    engine_done_[engine] = true;
    cp_ev_.notify(sc_core::SC_ZERO_TIME);
  }

  // Blocks the calling engine until it has a stream of the current job to run; returns the job token.
  uint64_t wait_for_work(int engine) {
    while (!(job_running_ && !engine_done_[engine])) wait(wake_ev_);
    return job_token_;
  }

  // ---- Instruction fetch, semaphores ------------------------------------------------------------
  // Fetches, decodes and checks that `engine` may run instruction pc. Raises the fault on failure.
  std::optional<Instr> fetch(int engine, uint32_t pc) {
    uint8_t raw[isa::kInstrBytes];
    hbm_.read(streams_[engine].addr + uint64_t(pc) * isa::kInstrBytes, raw, sizeof raw);
    isa::Decoded d = isa::decode_bytes(raw);
    if (!d.instr) {
      raise_fault(FaultCode::BadOpcode, engine, pc, streams_[engine].addr + uint64_t(pc) * isa::kInstrBytes, raw[0]);
      return std::nullopt;
    }
    if (!isa::engine_accepts(engine, d.instr->opcode)) {
      raise_fault(FaultCode::WrongEngine, engine, pc, 0, raw[0]);
      return std::nullopt;
    }
    return d.instr;
  }

  // Waits `cycles` cycles unless the job is abandoned (reset or fault); returns false if it was.
  bool wait_cycles(uint64_t cycles, uint64_t token) {
    const sc_core::sc_time end = sc_core::sc_time_stamp() + kCycle * double(cycles);
    while (token == job_token_ && sc_core::sc_time_stamp() < end) wait(end - sc_core::sc_time_stamp(), abort_ev_);
    return token == job_token_;
  }

  bool sem_ready(const Instr& in) const { return !in.wait_en || sems_[in.wait_sem] >= in.wait_value; }

  void signal(const Instr& in) {
    if (!in.signal_en) return;
    uint32_t& s = sems_[in.signal_sem];
    s = in.signal_set ? uint32_t(in.signal_value) : s + uint32_t(in.signal_value);
    sem_ev_.notify(sc_core::SC_ZERO_TIME);
  }

  // ---- Memory spaces -----------------------------------------------------------------------------
  // Resolves one contiguous run of a DMA access to host memory. Returns nullptr and fills `f` if the
  // run leaves its space (or, in SBUF/PSUM, its partition).
  struct Run {
    uint64_t space;
    uint64_t offset;  // HBM: absolute; SBUF/PSUM: linear index into the array
  };
  bool resolve(uint64_t addr, uint64_t bytes, Run& r, Fault& f) const {
    uint64_t space = isa::addr_space(addr), off = isa::addr_offset(addr);
    r.space = space;
    switch (space) {
      case uint64_t(isa::Space::kHbm):
        if (off > window_size_ || bytes > window_size_ - off) {
          f = {FaultCode::HbmOutOfRange, addr};
          return false;
        }
        r.offset = window_base_ + off;
        return true;
      case uint64_t(isa::Space::kSbuf): {
        uint64_t pb = cfg_.sbuf_partition_bytes;
        if (off >= cfg_.sbuf_bytes() || (off % pb) + bytes > pb) {
          f = {FaultCode::SbufOutOfRange, addr};
          return false;
        }
        r.offset = off;
        return true;
      }
      case uint64_t(isa::Space::kPsum): {
        uint64_t pb = cfg_.psum_partition_bytes();
        if (off >= cfg_.psum_bytes() || (off % pb) + bytes > pb) {
          f = {FaultCode::PsumOutOfRange, addr};
          return false;
        }
        r.offset = off;
        return true;
      }
    }
    f = {FaultCode::BadSpace, addr};
    return false;
  }

  void read_run(const Run& r, uint8_t* dst, uint64_t n) {
    if (r.space == uint64_t(isa::Space::kHbm)) hbm_.read(r.offset, dst, n);
    else if (r.space == uint64_t(isa::Space::kSbuf)) std::memcpy(dst, &sbuf_[r.offset], n);
    else std::memcpy(dst, &psum_[r.offset], n);
  }
  void write_run(const Run& r, const uint8_t* src, uint64_t n) {
    if (r.space == uint64_t(isa::Space::kHbm)) hbm_.write(r.offset, src, n);
    else std::memcpy(&sbuf_[r.offset], src, n);  // DMA never writes PSUM (checked before)
  }

  // ---- DMA queues --------------------------------------------------------------------------------
  void dma_queue(int engine) {
    for (;;) {
      uint64_t token = wait_for_work(engine);
      for (uint32_t pc = 0; pc < streams_[engine].count && token == job_token_; ++pc) {
        std::optional<Instr> in = fetch(engine, pc);
        if (!in) break;
        while (!sem_ready(*in) && token == job_token_) wait(sem_ev_ | abort_ev_);
        if (token != job_token_) break;
        if (in->opcode == Opcode::DmaCopy && !dma_copy(engine, pc, *in, token)) break;
        if (token != job_token_) break;
        signal(*in);
      }
      engine_finished(engine, token);
    }
  }

  // Returns false if the instruction faulted (or the job was abandoned while it ran).
  bool dma_copy(int engine, uint32_t pc, const Instr& in, uint64_t token) {
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

  // ---- Tensor engine sequencer ------------------------------------------------------------------
  struct Matmul {
    Instr in;
    uint32_t pc = 0;
    int rows_loaded = 0;
    int next_col = 0;  // next moving column to stream
    int next_out = 0;  // next output column expected back
  };

  // Checks a matmul's operands against the config; raises the fault and returns false if one is bad.
  bool check_matmul(uint32_t pc, const Instr& in) {
    auto fault = [&](FaultCode c, uint64_t addr) {
      raise_fault(c, isa::kEngineTensor, pc, addr, uint32_t(in.opcode));
      return false;
    };
    const uint64_t max_n = cfg_.psum_bank_bytes / 4;
    if (in.k < 1 || in.k > uint64_t(cfg_.rows) || in.m < 1 || in.m > uint64_t(cfg_.cols) || in.n < 1 || in.n > max_n)
      return fault(FaultCode::BadOperand, 0);
    if (in.st_off % 2 || in.mv_off % 2 || in.out_off % 4) return fault(FaultCode::BadOperand, 0);
    const uint64_t sp = cfg_.sbuf_partition_bytes, pp = cfg_.psum_partition_bytes();
    if (in.st_part + in.k > uint64_t(cfg_.sbuf_partitions) || in.st_off + 2 * in.m > sp)
      return fault(FaultCode::SbufOutOfRange, isa::make_addr(isa::Space::kSbuf, in.st_part * sp + in.st_off));
    if (in.mv_part + in.k > uint64_t(cfg_.sbuf_partitions) || in.mv_off + 2 * in.n > sp)
      return fault(FaultCode::SbufOutOfRange, isa::make_addr(isa::Space::kSbuf, in.mv_part * sp + in.mv_off));
    if (in.out_part + in.m > uint64_t(cfg_.psum_partitions) || in.out_off + 4 * in.n > pp ||
        (in.out_off % cfg_.psum_bank_bytes) + 4 * in.n > cfg_.psum_bank_bytes)
      return fault(FaultCode::PsumOutOfRange, isa::make_addr(isa::Space::kPsum, in.out_part * pp + in.out_off));
    return true;
  }

  uint16_t sbuf_bf16(uint64_t part, uint64_t byte_off) const {
    const uint8_t* p = &sbuf_[part * cfg_.sbuf_partition_bytes + byte_off];
    return uint16_t(p[0] | (p[1] << 8));
  }

  void write_psum(const Matmul& mm, const uint32_t* col) {
    const uint64_t pp = cfg_.psum_partition_bytes();
    for (uint64_t c = 0; c < mm.in.m; ++c) {
      uint8_t* p = &psum_[(mm.in.out_part + c) * pp + mm.in.out_off + 4 * uint64_t(mm.next_out)];
      uint32_t v = col[c];
      if (mm.in.accumulate) {
        uint32_t old;
        std::memcpy(&old, p, 4);
        // PSUM's near-memory adder: fp32 RNE with the numerics policy (docs/numerics.md).
        v = num::golden_add(old, v);
      }
      std::memcpy(p, &v, 4);
    }
  }

  // One loop iteration = one clock cycle while the array has work. Pipeline: one matmul loads its
  // weights into the shadow bank while the previous one streams; results drain in order behind them.
  void tensor_engine() {
    const int engine = isa::kEngineTensor;
    const int rows = cfg_.rows, cols = cfg_.cols;
    std::vector<uint16_t> wrow(cols), xcol(rows);
    std::vector<uint32_t> out(cols);
    for (;;) {
      uint64_t token = wait_for_work(engine);
      te_->reset();
      uint32_t next_pc = 0;
      std::optional<Matmul> loading;
      // Matmuls whose columns entered the array, oldest first; only the newest may still be streaming.
      // Result columns leave the array in the same order and are routed to the front.
      std::deque<Matmul> inflight;
      auto streaming = [&]() -> Matmul* {
        return !inflight.empty() && inflight.back().next_col < int(inflight.back().in.n) ? &inflight.back() : nullptr;
      };
      while (token == job_token_) {
        // Fetch the next instruction into the load slot. A NOP completes here once its wait is met; a
        // NOP that signals also waits for every earlier matmul to finish, so its signal means "all
        // work before me is done".
        if (!loading && next_pc < streams_[engine].count) {
          std::optional<Instr> in = fetch(engine, next_pc);
          if (!in || (in->opcode == Opcode::Matmul && !check_matmul(next_pc, *in))) break;  // faulted
          loading = Matmul{*in, next_pc};
          ++next_pc;
        }
        if (loading && loading->in.opcode == Opcode::Nop) {
          if (sem_ready(loading->in) && (!loading->in.signal_en || inflight.empty())) {
            signal(loading->in);
            loading.reset();
            continue;
          }
        }
        if (!loading && inflight.empty() && next_pc >= streams_[engine].count) break;  // stream done

        bool can_start = !streaming() && loading && loading->in.opcode == Opcode::Matmul &&
                         loading->rows_loaded == int(loading->in.k);
        if (can_start) {
          inflight.push_back(std::move(*loading));
          loading.reset();  // the next instruction is fetched next cycle
        }
        bool can_load = loading && loading->in.opcode == Opcode::Matmul && sem_ready(loading->in) &&
                        loading->rows_loaded < int(loading->in.k) && te_->wload_ready();
        Matmul* st = streaming();
        if (!can_load && !st && inflight.empty()) {
          // Nothing can move until a semaphore changes: sleep without clocking the array.
          wait(sem_ev_ | abort_ev_);
          continue;
        }
        // Drive this cycle's inputs.
        if (can_load) {
          const Instr& in = loading->in;
          int r = loading->rows_loaded;
          for (int c = 0; c < cols; ++c)
            wrow[c] = uint64_t(c) < in.m ? sbuf_bf16(in.st_part + r, in.st_off + 2 * uint64_t(c)) : 0;
          te_->set_wload(true, r, wrow.data());
          ++loading->rows_loaded;
        } else {
          te_->set_wload(false, 0, nullptr);
        }
        if (st) {
          const Instr& in = st->in;
          for (int r = 0; r < rows; ++r)
            xcol[r] = uint64_t(r) < in.k ? sbuf_bf16(in.mv_part + r, in.mv_off + 2 * uint64_t(st->next_col)) : 0;
          te_->set_moving(true, st->next_col == 0, int(in.k), xcol.data());
          ++st->next_col;
        } else {
          te_->set_moving(false, false, 1, nullptr);
        }
        te_->tick();
        if (!wait_cycles(1, token)) break;
        if (te_->out_valid()) {
          te_->out_data(out.data());
          if (inflight.empty()) {  // a result nobody asked for: an RTL protocol bug, reported, not fatal
            raise_fault(FaultCode::BadOperand, engine, next_pc, 0, 0xFF);
            break;
          }
          Matmul& mm = inflight.front();
          write_psum(mm, out.data());
          if (++mm.next_out == int(mm.in.n)) {
            signal(mm.in);
            inflight.pop_front();
          }
        }
      }
      engine_finished(engine, token);
    }
  }

  DeviceConfig cfg_;
  SparseMemory hbm_;
  std::vector<uint8_t> sbuf_, psum_;
  std::unique_ptr<rtl::TensorEngineModel> te_;

  // CSR state
  bool enabled_ = false;
  uint32_t irq_status_ = 0, irq_mask_ = 0;
  uint64_t ring_base_ = 0;
  uint32_t ring_size_ = 0, ring_head_ = 0, ring_tail_ = 0;
  uint32_t completed_seq_ = 0, running_seq_ = 0;
  uint64_t job_cycles_ = 0, job_start_cycle_ = 0;
  Fault fault_;
  uint32_t fault_engine_ = 0, fault_pc_ = 0, fault_info_ = 0, fault_seq_ = 0;
  uint32_t cycle_hi_latch_ = 0;

  // Job state
  bool job_running_ = false;
  uint64_t job_token_ = 0;
  uint64_t window_base_ = 0, window_size_ = 0;
  std::vector<StreamDesc> streams_;
  std::vector<bool> engine_done_;
  std::array<uint32_t, regs::kNumSemaphores> sems_{};

  sc_core::sc_event cp_ev_, wake_ev_, sem_ev_, abort_ev_;  // abort_ev_: reset or fault
};

// ---- Device (host-facing facade) -----------------------------------------------------------------

namespace {
bool g_device_exists = false;
}

Device::Device(const DeviceConfig& config) {
  if (g_device_exists)
    throw Error(ErrorCode::kDevice, "a TC1 device already exists in this process (SystemC allows one simulation per process)");
  ::setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  tc1_ = std::make_unique<Tc1>("tc1", config);
  g_device_exists = true;
  sc_core::sc_start(sc_core::SC_ZERO_TIME);  // elaborate and let every process reach its first wait
}

Device::~Device() = default;

const DeviceConfig& Device::config() const { return tc1_->config(); }
uint32_t Device::mmio_read(uint32_t offset) { return tc1_->mmio_read(offset); }
void Device::mmio_write(uint32_t offset, uint32_t value) { tc1_->mmio_write(offset, value); }

static void check_hbm_range(const SparseMemory& m, uint64_t addr, uint64_t n, const char* what) {
  if (addr > m.size() || n > m.size() - addr)
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " of " + std::to_string(n) + " bytes at HBM 0x" +
                                                 [&] {
                                                   char b[24];
                                                   std::snprintf(b, sizeof b, "%llx", (unsigned long long)addr);
                                                   return std::string(b);
                                                 }() +
                                                 " is outside HBM (" + std::to_string(m.size()) + " bytes)");
}

void Device::hbm_read(uint64_t addr, std::span<uint8_t> dst) {
  check_hbm_range(tc1_->hbm(), addr, dst.size(), "read");
  tc1_->hbm().read(addr, dst.data(), dst.size());
}

void Device::hbm_write(uint64_t addr, std::span<const uint8_t> src) {
  check_hbm_range(tc1_->hbm(), addr, src.size(), "write");
  tc1_->hbm().write(addr, src.data(), src.size());
}

bool Device::run(uint64_t max_cycles) {
  if (tc1_->irq_line()) return true;
  if (max_cycles == 0) {
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
  } else {
    sc_core::sc_start(kCycle * double(max_cycles));
  }
  return tc1_->irq_line();
}

bool Device::irq_asserted() const { return tc1_->irq_line(); }
uint64_t Device::cycle() const { return tc1_->cycle(); }
uint64_t Device::hbm_resident_bytes() const { return tc1_->hbm().resident_bytes(); }

}  // namespace tcemu::emu
