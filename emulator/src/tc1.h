// The TC1 SystemC model (internal to the emulator library; the public face is tcemu/emu/device.h).
// Its process bodies live in tc1.cpp (command processor, CSR), tensor_engine.cpp and dma.cpp.
//
// The TC1 SystemC model. Time: one clock for the whole core, 1 ns of SystemC time per cycle.
//
// Processes (all SC_THREADs of module Tc1):
//  - command_processor: consumes the command ring, validates job descriptors, starts the engines of a
//    job, waits for them, then publishes completion (COMPLETED_SEQ, JOB_DONE interrupt).
//  - tensor_engine: the TensorE sequencer; clocks the verilated array cycle by cycle while it has work
//    (weight loads, moving columns, results draining) and sleeps on semaphores otherwise.
//  - dma_queue (one per queue): executes dma_copy instructions with a latency + bandwidth cost; queues
//    moving HBM data at the same time share its bandwidth through the DmaArbiter (dma.h, dma.cpp).
//  - vector, scalar: VectorE and ScalarE, in-order sequencers like the DMA queues (vector_engine.cpp,
//    scalar_engine.cpp; operand checks and the fp32 datapath in compute.cpp).
// Reset and faults bump job_token_; every process re-checks its token after each wait() and abandons
// stale work, so a reset in the middle of a job never leaves a process running old work.
#pragma once

#include "tcemu/config.h"
#include "tcemu/emu/device.h"

// Verilated headers (pulled in by the RTL adapter) must come before <systemc>.
#include "tcemu/rtl/fast_tensor_engine.h"
#include "tcemu/rtl/lockstep_tensor_engine.h"
#include "tcemu/rtl/tensor_engine.h"

#define SC_INCLUDE_DYNAMIC_PROCESSES  // sc_spawn for the per-queue DMA threads
#include <systemc>

#include "dma.h"

#include <fmt/format.h>

#include <sys/mman.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "tcemu/error.h"
#include "tcemu/faults.h"
#include "tcemu/isa.h"
#include "tcemu/numerics.h"
#include "tcemu/regs.h"
#include "tcemu/trace.h"

namespace tcemu::emu {

using isa::Instr;
using isa::Opcode;
using regs::FaultCode;

inline constexpr uint64_t kPageBytes = 4096;
inline constexpr int kMaxContexts = int(regs::kMaxContexts);
inline constexpr int kPsumBlock = 16;  // result columns TensorE holds before writing them (Tc1::PsumBlock)
inline constexpr uint64_t kMaxDmaRuns = uint64_t(1) << 24;  // d1_count x d2_count x d3_count limit of one dma_copy
inline const sc_core::sc_time kCycle(1, sc_core::SC_NS);

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

  // Zeroes whole pages [addr, addr + bytes) (both page-aligned) by dropping them.
  void discard(uint64_t addr, uint64_t bytes) {
    for (uint64_t p = addr / kPageBytes; p < (addr + bytes) / kPageBytes; ++p) pages_.erase(p);
  }

 private:
  uint64_t size_;
  std::unordered_map<uint64_t, std::unique_ptr<uint8_t[]>> pages_;
};

// SBUF or PSUM storage on the host: `partitions` rows of `partition_bytes` (zero after construction), each
// row `pitch()` = partition_bytes + 64 bytes from the next. The engines walk these memories one partition
// apart (a matmul's moving column and result column are one element per partition); with a pitch that is a
// multiple of 4 KiB, like the device's (trn1: 192 KiB in SBUF, 16 KiB in PSUM), those 128 elements would all
// fall into the same set of the host's caches and evict each other. The extra cache line per row spreads
// them over 64 sets. The mapping is 2 MiB-aligned and offered for transparent huge pages, so that a column
// touches one or two pages rather than 128. Device (linear) offsets, partition * partition_bytes + offset,
// map to host pointers with at(); a run never crosses a partition (the DMA and compute checks guarantee it).
class ChipMemory {
 public:
  ChipMemory(uint64_t partitions, uint64_t partition_bytes)
      : partition_bytes_(partition_bytes), pitch_(partition_bytes + 64) {
    constexpr uint64_t kHuge = uint64_t(2) << 20;
    const uint64_t bytes = std::max<uint64_t>(partitions * pitch_, 1);
    map_bytes_ = (bytes + kHuge - 1) / kHuge * kHuge + kHuge;
    void* m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    map_ = static_cast<uint8_t*>(m);
    data_ = map_ + (kHuge - reinterpret_cast<uintptr_t>(map_) % kHuge) % kHuge;
    madvise(data_, map_bytes_ - uint64_t(data_ - map_), MADV_HUGEPAGE);  // a hint: fine if refused
  }
  ~ChipMemory() { munmap(map_, map_bytes_); }
  ChipMemory(const ChipMemory&) = delete;
  ChipMemory& operator=(const ChipMemory&) = delete;

  uint64_t pitch() const { return pitch_; }  // host bytes from one partition to the next
  uint8_t* row(uint64_t partition) { return data_ + partition * pitch_; }
  const uint8_t* row(uint64_t partition) const { return data_ + partition * pitch_; }
  // The byte at device offset `linear` (partition * partition_bytes + offset in the partition).
  uint8_t* at(uint64_t linear) { return row(linear / partition_bytes_) + linear % partition_bytes_; }
  const uint8_t* at(uint64_t linear) const { return row(linear / partition_bytes_) + linear % partition_bytes_; }

 private:
  uint64_t partition_bytes_, pitch_;
  uint64_t map_bytes_ = 0;
  uint8_t* map_ = nullptr;   // the mapping
  uint8_t* data_ = nullptr;  // partition 0: the mapping's first 2 MiB boundary
};

inline uint64_t rd64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}
inline uint32_t rd32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}

struct Fault {
  FaultCode code = FaultCode::None;
  uint64_t addr = 0;
};

struct StreamDesc {
  uint32_t count = 0;
  uint64_t addr = 0;  // absolute HBM address of the first instruction
};

class Tc1 : public sc_core::sc_module {
 private:
  // Notification FIFO entry: kept across jobs (each entry names its job), cleared by reset.
  struct Notification {
    uint32_t tag = 0, engine = 0, seq = 0;
    uint64_t cycle = 0;  // since its job started
  };

  // One context's register bank (see "Contexts" above); Context{} is its reset state.
  struct Context {
    bool open = false;  // a client holds it (open_context)
    bool enabled = false;
    uint32_t irq_status = 0, irq_mask = 0;
    uint64_t ring_base = 0;
    uint32_t ring_size = 0, ring_head = 0, ring_tail = 0;
    uint32_t completed_seq = 0;
    uint64_t job_cycles = 0;
    Fault fault;
    uint32_t fault_engine = 0, fault_pc = 0, fault_info = 0, fault_seq = 0;
    uint32_t cycle_hi_latch = 0;
    uint32_t trace_count = 0;
    std::deque<Notification> notify_fifo;
    uint32_t notify_dropped = 0;
    uint32_t watchdog_cycles = regs::kDefaultWatchdogCycles;
    // LockstepMismatch details (LOCKSTEP_* registers).
    uint32_t ls_port = 0, ls_column = 0, ls_element = 0, ls_rtl = 0, ls_fast = 0;
    uint64_t ls_cycle = 0;
    // Fault injection (fault_injection.cpp): the armed plan and the jobs started since it was armed. These,
    // the doorbell faults left and the epoch survive CTRL.RESET; the epoch counts resets, so that an
    // interrupt scheduled before a reset is not raised after it.
    fi::Plan plan;
    uint32_t jobs_started = 0, doorbells_to_ignore = 0;
    uint64_t epoch = 0;
    uint32_t ecc_corrected = 0;
    uint64_t ecc_addr = 0;
    // Performance counters of this context's jobs.
    uint64_t te_macs = 0, dma_bytes = 0;
    std::array<uint64_t, isa::kMaxEngines> busy{}, stall{};
    void clear_counters() {
      te_macs = dma_bytes = 0;
      busy.fill(0), stall.fill(0);
    }
  };
 public:
  SC_HAS_PROCESS(Tc1);

  Tc1(sc_core::sc_module_name name, const DeviceConfig& cfg, const DeviceOptions& options)
      : sc_module(name), cfg_(cfg), options_(options), hbm_(cfg.hbm_bytes),
        sbuf_(uint64_t(cfg.sbuf_partitions), cfg.sbuf_partition_bytes),
        psum_(uint64_t(cfg.psum_partitions), cfg.psum_partition_bytes()),
        te_kind_(options.tensor_engine.value_or(cfg.tensor_engine)), te_(make_engine()) {
    te_->reset();
    if (options.isolate_contexts) owner_.assign((cfg.hbm_bytes + kPageBytes - 1) / kPageBytes, 0);
    psum_block_.data.resize(size_t(cfg.cols) * kPsumBlock);
    streams_.resize(isa::kMaxEngines);
    engine_done_.assign(isa::kMaxEngines, true);
    SC_THREAD(command_processor);
    SC_THREAD(tensor_engine);
    SC_THREAD(watchdog);
    SC_THREAD(injector);
    for (int q = 0; q < cfg_.dma_queues; ++q) {
      sc_core::sc_spawn_options opts;
      const int engine = isa::kEngineDma0 + q;
      sc_core::sc_spawn(
          [this, engine] {
            run_sequencer(engine, [this, engine](uint32_t pc, const Instr& in, uint64_t token, InstrStats& st) {
              return dma_copy(engine, pc, in, token, st);
            });
          },
          sc_core::sc_gen_unique_name("dma"), &opts);
    }
    sc_core::sc_spawn_options opts;
    sc_core::sc_spawn(
        [this] {
          run_sequencer(isa::kEngineVector, [this](uint32_t pc, const Instr& in, uint64_t token, InstrStats& st) {
            return vector_exec(pc, in, token, st);
          });
        },
        "vector", &opts);
    sc_core::sc_spawn(
        [this] {
          run_sequencer(isa::kEngineScalar, [this](uint32_t pc, const Instr& in, uint64_t token, InstrStats& st) {
            return scalar_exec(pc, in, token, st);
          });
        },
        "scalar", &opts);
  }

  const DeviceConfig& config() const { return cfg_; }
  SparseMemory& hbm() { return hbm_; }
  uint64_t cycle() const { return uint64_t(sc_core::sc_time_stamp() / kCycle); }

  // ---- Contexts -----------------------------------------------------------------------------------
  // The device offers kMaxContexts register banks, one per client (like the virtual functions of an
  // SR-IOV device): each has its own command ring, completion, interrupt, fault, notification FIFO,
  // watchdog and performance-counter registers. Jobs of all contexts share the engines, one job at a time,
  // taken from the rings round-robin. A fault halts only the context whose job faulted; CTRL.RESET of a
  // context aborts only that context's job. With DeviceOptions::isolate_contexts, every HBM access of a
  // context (host reads and writes, its job descriptors, streams, trace buffers and DMA) must fall in pages
  // the context owns (hbm_alloc), or it is refused (host) or faults HbmProtection (device).
  bool context_open(int c) const { return c >= 0 && c < kMaxContexts && ctx_[size_t(c)].open; }
  int open_context() {
    for (int c = 0; c < kMaxContexts; ++c)
      if (!ctx_[size_t(c)].open) {
        ctx_[size_t(c)] = Context{};
        ctx_[size_t(c)].open = true;
        return c;
      }
    throw Error(ErrorCode::kCapacity, fmt::format("all {} device contexts are in use", kMaxContexts));
  }
  void close_context(int c) {
    reset_context(c);
    ctx_[size_t(c)].open = false;
  }
  bool irq_line(int c) const { return (ctx_[size_t(c)].irq_status & ctx_[size_t(c)].irq_mask) != 0; }
  bool isolated() const { return options_.isolate_contexts; }

  // HBM page ownership (isolate_contexts): owner_[page] is 1 + the owning context, or 0 when free.
  void set_owner(uint64_t addr, uint64_t bytes, int c) {
    for (uint64_t p = addr / kPageBytes; p < (addr + bytes + kPageBytes - 1) / kPageBytes; ++p)
      owner_[p] = uint8_t(c + 1);
  }
  // True if context c may touch HBM bytes [addr, addr + bytes): always without isolation.
  bool owns(int c, uint64_t addr, uint64_t bytes) const {
    if (!isolated() || bytes == 0) return true;
    if (addr > hbm_.size() || bytes > hbm_.size() - addr) return false;
    for (uint64_t p = addr / kPageBytes; p <= (addr + bytes - 1) / kPageBytes; ++p)
      if (owner_[p] != uint8_t(c + 1)) return false;
    return true;
  }

  // ---- MMIO ---------------------------------------------------------------------------------------
  uint32_t mmio_read(int c, uint32_t off) {
    using namespace regs;
    Context& x = ctx_[size_t(c)];
    const bool mine = job_ctx_ == c;  // engine state and semaphores are shown to the job's context only
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
      case DMA_BYTES_PER_CYCLE: return cfg_.dma_bytes_per_cycle;
      case HBM_BYTES_PER_CYCLE: return cfg_.hbm_bytes_per_cycle;
      case DMA_LATENCY_CYCLES: return cfg_.dma_latency_cycles;
      case DMA_MIN_RUN_BYTES: return cfg_.dma_min_run_bytes;
      case CTRL: return x.enabled ? kCtrlEnable : 0;
      case STATUS:
        return kStatusReady | (job_running_ && mine ? kStatusBusy : 0) | (x.fault.code != FaultCode::None ? kStatusFault : 0);
      case IRQ_STATUS: return x.irq_status;
      case IRQ_MASK: return x.irq_mask;
      case RING_BASE_LO: return uint32_t(x.ring_base);
      case RING_BASE_HI: return uint32_t(x.ring_base >> 32);
      case RING_SIZE: return x.ring_size;
      case RING_HEAD: return x.ring_head;
      case RING_TAIL: return x.ring_tail;
      case COMPLETED_SEQ: return x.completed_seq;
      case FAULT_CODE: return uint32_t(x.fault.code);
      case FAULT_ENGINE: return x.fault_engine;
      case FAULT_PC: return x.fault_pc;
      case FAULT_ADDR_LO: return uint32_t(x.fault.addr);
      case FAULT_ADDR_HI: return uint32_t(x.fault.addr >> 32);
      case FAULT_INFO: return x.fault_info;
      case FAULT_SEQ: return x.fault_seq;
      case CYCLE_LO: {
        uint64_t now = cycle();
        x.cycle_hi_latch = uint32_t(now >> 32);
        return uint32_t(now);
      }
      case CYCLE_HI: return x.cycle_hi_latch;
      case JOB_CYCLES_LO: return uint32_t(x.job_cycles);
      case JOB_CYCLES_HI: return uint32_t(x.job_cycles >> 32);
      case TRACE_COUNT: return x.trace_count;
      case TE_MODEL: return uint32_t(te_kind_);
      case LOCKSTEP_PORT: return x.ls_port;
      case LOCKSTEP_COLUMN: return x.ls_column;
      case LOCKSTEP_ELEMENT: return x.ls_element;
      case LOCKSTEP_RTL: return x.ls_rtl;
      case LOCKSTEP_FAST: return x.ls_fast;
      case LOCKSTEP_CYCLE_LO: return uint32_t(x.ls_cycle);
      case LOCKSTEP_CYCLE_HI: return uint32_t(x.ls_cycle >> 32);
      case NOTIFY_COUNT: return uint32_t(x.notify_fifo.size());
      case NOTIFY_TAG: return x.notify_fifo.empty() ? 0 : x.notify_fifo.front().tag;
      case NOTIFY_ENGINE: return x.notify_fifo.empty() ? 0 : x.notify_fifo.front().engine;
      case NOTIFY_CYCLE_LO: return x.notify_fifo.empty() ? 0 : uint32_t(x.notify_fifo.front().cycle);
      case NOTIFY_CYCLE_HI: return x.notify_fifo.empty() ? 0 : uint32_t(x.notify_fifo.front().cycle >> 32);
      case NOTIFY_SEQ: return x.notify_fifo.empty() ? 0 : x.notify_fifo.front().seq;
      case NOTIFY_DROPPED: return x.notify_dropped;
      case TE_MACS_LO: return uint32_t(x.te_macs);
      case TE_MACS_HI: return uint32_t(x.te_macs >> 32);
      case DMA_BYTES_LO: return uint32_t(x.dma_bytes);
      case DMA_BYTES_HI: return uint32_t(x.dma_bytes >> 32);
      case WATCHDOG_CYCLES: return x.watchdog_cycles;
      case CONTEXT_ID: return uint32_t(c);
      case ECC_CORRECTED: return x.ecc_corrected;
      case ECC_ADDR_LO: return uint32_t(x.ecc_addr);
      case ECC_ADDR_HI: return uint32_t(x.ecc_addr >> 32);
      default:
        if (off >= ENGINE_BLOCK && off < ENGINE_BLOCK + kEngineBlockStride * isa::kMaxEngines)
          return engine_reg_read(x, mine, int((off - ENGINE_BLOCK) / kEngineBlockStride), (off - ENGINE_BLOCK) % kEngineBlockStride);
        if (off >= SEM_BLOCK && off < SEM_BLOCK + 4 * kNumSemaphores && off % 4 == 0) return mine ? sems_[(off - SEM_BLOCK) / 4] : 0;
        return 0;  // unmapped offsets read as zero, like a real BAR
    }
  }

  void mmio_write(int c, uint32_t off, uint32_t v) {
    using namespace regs;
    Context& x = ctx_[size_t(c)];
    switch (off) {
      case CTRL:
        if (v & kCtrlReset) reset_context(c);
        x.enabled = (v & kCtrlEnable) != 0;
        kick();
        break;
      case IRQ_STATUS: x.irq_status &= ~v; break;
      case IRQ_MASK: x.irq_mask = v & kIrqAll; break;
      case RING_BASE_LO: x.ring_base = (x.ring_base & ~uint64_t(0xFFFFFFFF)) | v; break;
      case RING_BASE_HI: x.ring_base = (x.ring_base & 0xFFFFFFFFull) | (uint64_t(v) << 32); break;
      case RING_SIZE: x.ring_size = v; break;
      case PERF_CTRL:
        if (v & 1u) x.clear_counters();
        break;
      case WATCHDOG_CYCLES: x.watchdog_cycles = v; break;
      case NOTIFY_POP:
        if ((v & 1u) && !x.notify_fifo.empty()) x.notify_fifo.pop_front();
        break;
      case DOORBELL:
        if (x.doorbells_to_ignore > 0) {  // injected fault: the write is lost on its way
          --x.doorbells_to_ignore;
          break;
        }
        x.ring_tail = v;
        kick();
        break;
      default: break;  // writes to read-only or unmapped offsets are ignored, like a real BAR
    }
  }

 private:
  // Wakes the command processor. Safe to call between sc_start() calls: the delta notification is
  // processed when the host next runs the simulation.
  void kick() { cp_ev_.notify(sc_core::SC_ZERO_TIME); }

  // CTRL.RESET of context c: aborts c's job if it is the one running (the engines drop it at their next
  // check), and returns c's registers to their reset values. Other contexts and HBM are untouched.
  void reset_context(int c) {
    if (job_ctx_ == c && job_running_) abort_job();
    Context& x = ctx_[size_t(c)];
    Context fresh;
    fresh.open = x.open;
    fresh.plan = std::move(x.plan);
    fresh.jobs_started = x.jobs_started, fresh.doorbells_to_ignore = x.doorbells_to_ignore;
    fresh.epoch = x.epoch + 1;
    x = std::move(fresh);
    kick();
  }

  // Stops the running job: every process abandons what it was doing at its next check.
  void abort_job() {
    ++job_token_;
    job_running_ = false;
    sems_.fill(0);
    std::fill(engine_done_.begin(), engine_done_.end(), true);
    for (auto& e : engines_) e = {};
    watchdog_ev_.cancel();
    te_->reset();
    if (lockstep_) lockstep_->clear_divergence();
    wake_ev_.notify(sc_core::SC_ZERO_TIME);
    abort_ev_.notify(sc_core::SC_ZERO_TIME);
  }

  void raise_irq(int c, uint32_t bits) {
    ctx_[size_t(c)].irq_status |= bits;
    if (irq_line(c)) sc_core::sc_pause();  // return control to the host waiting in run()
  }

  // First fault wins; the job's context halts until its reset. The engines move on to other contexts.
  void raise_fault(FaultCode code, int engine, uint32_t pc, uint64_t addr, uint32_t info) {
    Context& x = jc();
    if (x.fault.code != FaultCode::None) return;
    x.fault = {code, addr};
    x.fault_engine = uint32_t(engine), x.fault_pc = pc, x.fault_info = info, x.fault_seq = running_seq_;
    job_running_ = false;
    engines_dirty_ = true;  // the next job starts with the tensor engine reset (start_job)
    ++job_token_;
    abort_ev_.notify(sc_core::SC_ZERO_TIME);
    kick();
    raise_irq(job_ctx_, regs::kIrqFault);
  }

  bool halted(int c) const { return ctx_[size_t(c)].fault.code != FaultCode::None; }
  bool has_work(int c) const {
    const Context& x = ctx_[size_t(c)];
    return x.open && x.enabled && !halted(c) && x.ring_size != 0 && x.ring_head != x.ring_tail;
  }

  // ---- Command processor ------------------------------------------------------------------------
  void command_processor() {
    for (;;) {
      int c = -1;
      for (;;) {  // round-robin over the contexts with submitted jobs
        for (int i = 0; i < kMaxContexts && c < 0; ++i)
          if (has_work((rr_next_ + i) % kMaxContexts)) c = (rr_next_ + i) % kMaxContexts;
        if (c >= 0) break;
        wait(cp_ev_);
      }
      rr_next_ = (c + 1) % kMaxContexts;
      job_ctx_ = c;
      uint64_t token = ++job_token_;
      if (!start_job()) continue;
      while (!all_engines_done() && token == job_token_) wait(cp_ev_);
      if (token != job_token_) continue;  // reset or fault
      job_running_ = false;
      Context& x = ctx_[size_t(c)];
      x.completed_seq = running_seq_;
      x.job_cycles = cycle() - job_start_cycle_;
      write_completion_record(c);
      x.ring_head = (x.ring_head + 1) % job_ring_size_;
      job_done_irq(c);
    }
  }

  bool start_job() {
    Context& x = jc();
    const uint32_t size = x.ring_size;
    if ((size & (size - 1)) != 0 || size > 4096 || x.ring_tail >= size || x.ring_head >= size || x.ring_base % 64 != 0 ||
        x.ring_base > hbm_.size() || uint64_t(size) * regs::kRingEntryBytes > hbm_.size() - x.ring_base) {
      raise_fault(FaultCode::BadRing, 0, 0, x.ring_base, size);
      return false;
    }
    job_ring_size_ = size;  // RING_SIZE may be rewritten while the job runs; the head advances modulo this
    job_ring_base_ = x.ring_base;
    job_ring_slot_ = x.ring_head;
    select_job_faults();
    const uint64_t entry_at = x.ring_base + uint64_t(x.ring_head) * regs::kRingEntryBytes;
    if (!owns(job_ctx_, entry_at, regs::kRingEntryBytes)) {
      raise_fault(FaultCode::HbmProtection, 0, 0, entry_at, 0);
      return false;
    }
    uint8_t entry[regs::kRingEntryBytes];
    hbm_.read(entry_at, entry, sizeof entry);
    uint64_t desc = rd64(entry);
    running_seq_ = rd32(entry + 8);
    auto bad_job = [&](uint64_t where, uint32_t info) {
      raise_fault(FaultCode::BadJob, 0, 0, where, info);
      return false;
    };
    auto foreign = [&](uint64_t where) {
      raise_fault(FaultCode::HbmProtection, 0, 0, where, 0);
      return false;
    };
    if (desc + regs::kJobHeaderBytes > hbm_.size() || desc + regs::kJobHeaderBytes < desc) return bad_job(desc, 0);
    if (!owns(job_ctx_, desc, regs::kJobHeaderBytes)) return foreign(desc);
    uint8_t hdr[regs::kJobHeaderBytes];
    hbm_.read(desc, hdr, sizeof hdr);
    if (rd32(hdr) != regs::kJobMagic) return bad_job(desc, rd32(hdr));
    uint32_t nstreams = rd32(hdr + 4);
    window_base_ = rd64(hdr + 8);
    window_size_ = rd64(hdr + 16);
    trace_addr_ = rd64(hdr + 24);
    trace_cap_ = rd32(hdr + 32);
    x.trace_count = 0;
    if (trace_cap_ && (trace_addr_ > hbm_.size() || uint64_t(trace_cap_) * kTraceRecordBytes > hbm_.size() - trace_addr_))
      return bad_job(desc + 24, trace_cap_);
    if (trace_cap_ && !owns(job_ctx_, trace_addr_, uint64_t(trace_cap_) * kTraceRecordBytes)) return foreign(trace_addr_);
    if (nstreams > uint32_t(isa::kMaxEngines)) return bad_job(desc + 4, nstreams);
    if (window_base_ > hbm_.size() || window_size_ > hbm_.size() - window_base_) return bad_job(desc + 8, 0);
    for (auto& s : streams_) s = {};
    for (uint32_t i = 0; i < nstreams; ++i) {
      uint64_t at = desc + regs::kJobHeaderBytes + uint64_t(i) * regs::kJobStreamBytes;
      if (at + regs::kJobStreamBytes > hbm_.size()) return bad_job(at, i);
      if (!owns(job_ctx_, at, regs::kJobStreamBytes)) return foreign(at);
      uint8_t s[regs::kJobStreamBytes];
      hbm_.read(at, s, sizeof s);
      uint32_t engine = rd32(s), count = rd32(s + 4);
      uint64_t addr = rd64(s + 8);
      bool present = engine == uint32_t(isa::kEngineTensor) || engine == uint32_t(isa::kEngineVector) ||
                     engine == uint32_t(isa::kEngineScalar) ||
                     (engine >= uint32_t(isa::kEngineDma0) && engine < uint32_t(isa::kEngineDma0 + cfg_.dma_queues));
      if (!present || streams_[engine].count != 0) return bad_job(at, engine);
      if (addr > hbm_.size() || uint64_t(count) * isa::kInstrBytes > hbm_.size() - addr) return bad_job(at + 8, engine);
      if (!owns(job_ctx_, addr, uint64_t(count) * isa::kInstrBytes)) return foreign(addr);
      streams_[engine] = {count, addr};
    }
    if (engines_dirty_) {  // the last job faulted with its work in flight
      te_->reset();
      if (lockstep_) lockstep_->clear_divergence();
      engines_dirty_ = false;
    }
    sems_.fill(0);
    engines_ = {};
    for (int e = 0; e < isa::kMaxEngines; ++e) {
      engine_done_[e] = streams_[e].count == 0;
      engines_[e].state = engine_done_[e] ? regs::EngineState::kIdle : regs::EngineState::kRunning;
    }
    job_running_ = true;
    job_start_cycle_ = cycle();
    schedule_job_faults();
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
    engines_[engine].state = regs::EngineState::kDone;
    check_deadlock();
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
        if (!owns(job_ctx_, r.offset, bytes)) {
          f = {FaultCode::HbmProtection, addr};
          return false;
        }
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
    else if (r.space == uint64_t(isa::Space::kSbuf)) std::memcpy(dst, sbuf_.at(r.offset), n);
    else std::memcpy(dst, psum_.at(r.offset), n);
  }
  void write_run(const Run& r, const uint8_t* src, uint64_t n) {
    if (r.space == uint64_t(isa::Space::kHbm)) hbm_.write(r.offset, src, n);
    else std::memcpy(sbuf_.at(r.offset), src, n);  // DMA never writes PSUM (checked before)
  }

  // ---- Sequential engines (sequencer.cpp) ------------------------------------------------------------
  // What one instruction did, for the trace unit and the performance counters.
  struct InstrStats {
    uint64_t bytes = 0;  // bytes moved (DMA) or read + written (compute engines)
    uint64_t macs = 0;   // multiply-accumulates (TensorE)
  };
  // Executes one instruction of a sequential engine. It consumes the instruction's simulated time
  // (wait_cycles), moves its data, fills `stats`, and returns false if the instruction faulted (after
  // raise_fault) or the job was abandoned (token changed).
  using Executor = std::function<bool(uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats)>;
  // The in-order engine loop shared by the DMA queues and the vector and scalar engines: fetch, wait for
  // the semaphore, execute, signal; one trace record and counter update per instruction. `exec` is
  // called for every opcode except nop and notify (which complete as soon as their wait is met).
  void run_sequencer(int engine, const Executor& exec);

  // ---- Notifications (sequencer.cpp) ------------------------------------------------------------------
  // Executes `in`, a notify of `engine`, at the current cycle: appends {tag, engine, job cycle, job seq}
  // to the notification FIFO, or counts it in NOTIFY_DROPPED when the FIFO holds kNotifyFifoDepth entries,
  // and raises IRQ_STATUS.NOTIFY either way. Takes no time; the caller records and signals as for any
  // instruction.
  void post_notification(int engine, const Instr& in);

  // ---- Trace unit and performance counters (sequencer.cpp) ------------------------------------------
  // Called once per completed instruction. Cycles are absolute device cycles: issue = fetched and
  // waiting for its semaphore, start = began executing, end = completed.
  void record(int engine, uint32_t pc, const Instr& in, uint64_t start, uint64_t end, uint64_t wait_cycles,
              const InstrStats& stats);
  // An engine's register block as context x sees it: its counters, and the engine's state when x's job
  // is the one running (`mine`).
  uint32_t engine_reg_read(const Context& x, bool mine, int engine, uint32_t reg) const;

  // ---- Semaphore blocking and the deadlock watchdog (sequencer.cpp) --------------------------------
  // Blocks `engine` at `pc` until `in`'s semaphore condition holds or the job is abandoned; returns the
  // cycles it was blocked. While blocked the engine is in state kWaiting, visible in its registers.
  uint64_t block_on_semaphore(int engine, uint32_t pc, const Instr& in, uint64_t token);
  // Arms the watchdog when every unfinished engine of the running job is blocked on a semaphore:
  // nothing can then ever signal one (only instructions signal), so the job is deadlocked.
  void check_deadlock();
  void watchdog();

  // ---- Fault injection (fault_injection.cpp; tcemu/faults.h, docs/driver.md) ------------------------
 public:
  // Arms `plan` on context c (Device::inject_faults). Error(kInvalidArgument) if a fault names something the
  // device does not have (an engine, an SBUF/PSUM address).
  void arm_faults(int c, const fi::Plan& plan);
  // ECC on host access of HBM [addr, addr + n) by context c: a read (or a write that covers part of a word)
  // of a word with one flipped bit corrects it and counts it; of a word with two, throws
  // Error(kDeviceFault) naming the word. A write that covers a whole word clears its mark.
  void host_ecc(int c, uint64_t addr, uint64_t n, bool write);

 private:
  // Words with injected bit flips, by (isa::Space, byte offset of the 8-byte word: HBM absolute, SBUF/PSUM
  // linear), holding the flipped bits. The stored data really is flipped.
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> poison_;
  // The running job's faults (from its context's plan), each with its index in the plan (for its seed).
  std::vector<std::pair<fi::Fault, size_t>> job_faults_;
  uint32_t dma_started_ = 0;  // dma_copy instructions the running job started
  uint64_t job_ring_base_ = 0;
  uint32_t job_ring_slot_ = 0;
  // Faults that act at a time rather than at an instruction (bit flips, spurious and delayed interrupts).
  struct Timed {
    uint64_t due;    // device cycle
    int ctx;
    uint64_t epoch;  // the context's epoch when scheduled: a reset in between cancels it
    uint64_t token;  // job token it belongs to, 0: none (a delayed interrupt outlives its job)
    fi::Fault fault;
    size_t index;    // in the plan
  };
  std::vector<Timed> timed_;
  sc_core::sc_event timed_ev_;
  void select_job_faults();    // start_job: this job's faults from the plan
  void schedule_job_faults();  // start_job: its timed faults
  void schedule(Timed t);
  void injector();             // SC_THREAD: carries out the timed faults when they are due
  void flip_bits(const fi::Fault& f, size_t index);
  // Called by every engine before an instruction executes (after its semaphore wait). Carries out a hang
  // or DMA error aimed at it (and, for TensorE, the ECC check of its footprint); false if the instruction
  // must not run (it faulted, or the engine hung until the job was abandoned).
  bool before_execute(int engine, uint32_t pc, const Instr& in, uint64_t token);
  // If the plan hangs `engine` at `pc`: stops there until the job is abandoned, then returns true.
  bool hang_if_aimed(int engine, uint32_t pc, uint64_t token);
  // The ECC check of an instruction's footprint as it touches memory; false after raising the fault.
  bool ecc_check(int engine, uint32_t pc, const Instr& in);
  // The word's flipped bits are corrected (one) or reported (two: false after raising the fault, or
  // throwing for the host when engine < 0).
  bool ecc_word(int c, uint64_t space, uint64_t word, int engine, uint32_t pc, const Instr* in);
  uint8_t* word_ptr(uint64_t space, uint64_t word);  // host pointer of an SBUF/PSUM word (nullptr for HBM)
  void xor_word(uint64_t space, uint64_t word, uint64_t mask);  // flips `mask`'s bits of the stored word
  void write_completion_record(int c);
  void job_done_irq(int c);

  // ---- DMA queues (dma.cpp) ------------------------------------------------------------------------
  bool dma_copy(int engine, uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats);
  // One side (source or destination) of a dma_copy whose every run is proven in range by bounds alone
  // (dma_affine_side): run (i1, i2, i3) starts at host pointer `host` (SBUF, PSUM) or HBM byte `hbm` (absolute)
  // plus i1 * step[0] + i2 * step[1] + i3 * step[2].
  struct AffineSide {
    uint64_t space = 0;
    uint8_t* host = nullptr;
    uint64_t hbm = 0;
    uint64_t step[3] = {0, 0, 0};
    // SBUF/PSUM: every byte is in partitions part_lo..part_hi at offsets off_lo..off_hi-1 of its partition.
    uint64_t part_lo = 0, part_hi = 0, off_lo = 0, off_hi = 0;
  };
  // True if every run of `bytes` bytes at addr + i1 * stride[0] + i2 * stride[1] + i3 * stride[2]
  // (i_d < count[d]) is in `space`, and in range there (inside the HBM window, or inside one SBUF/PSUM
  // partition), which is what the per-run check of dma_copy would find; fills `side`. False when the bounds
  // cannot tell (the per-run check then decides).
  bool dma_affine_side(uint64_t addr, uint64_t space, uint64_t bytes, const uint64_t count[3], const uint64_t stride[3],
                       AffineSide& side);
  // Moves the runs of a dma_copy without element casts whose sides are both affine, in run order.
  void dma_move_affine(const AffineSide& src, const AffineSide& dst, uint64_t n, const uint64_t count[3],
                       uint8_t* bounce);
  // Waits until `engine`'s transfer of `bytes` effective bytes with `sides` HBM sides has had its share of
  // HBM bandwidth; false if the job was abandoned.
  bool dma_hbm_transfer(int engine, uint64_t bytes, uint32_t sides, uint64_t token);
  // Called when `engine`'s instruction has had its time: returns, two delta cycles later, in engine order
  // among the queues completing in the same cycle; false if the job was abandoned.
  bool dma_retire(int engine, uint64_t token);
  DmaArbiter dma_hbm_;
  DmaRetireOrder dma_retire_;

  // ---- VectorE and ScalarE (vector_engine.cpp, scalar_engine.cpp) -----------------------------------
  bool vector_exec(uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats);
  bool scalar_exec(uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats);

  // ---- Tensor engine sequencer ------------------------------------------------------------------
  // One pass of the array: a bf16 matmul, a pe_transpose, or one of the bf16 passes of an fp32 matmul.
  struct Matmul {
    Instr in;
    uint32_t pc = 0;
    int pass = 0;      // fp32 matmul: index into num::kFp32PassParts; 0 otherwise
    int rows_loaded = 0;
    int next_col = 0;  // next moving column to stream
    int next_out = 0;  // next output column expected back
    uint64_t waited = 0;          // cycles the engine sat blocked on this instruction's semaphore
    uint64_t start = 0, end = 0;  // first and one past the last moving column (device cycles)
  };

  // Checks a matmul's or pe_transpose's operands against the config; raises the fault and returns false
  // if one is bad.
  bool check_matmul(uint32_t pc, const Instr& in);
  uint16_t sbuf_bf16(uint64_t part, uint64_t byte_off) const;
  // Result column next_out of `mm` goes to PSUM through psum_block_: psum_column() returns where the
  // caller puts its cols() fp32 (starting a new block if needed), psum_commit() counts it as written.
  uint32_t* psum_column(const Matmul& mm);
  void psum_commit();
  // PSUM write combining. A result column is one fp32 in each of m partitions, a partition apart; the next
  // column of the matmul sits next to it in each partition. Up to kPsumBlock consecutive columns are held in
  // psum_block_ and then written row by row, so each partition's cache line is touched once per block rather
  // than once per column. The held columns have been written as far as the device is concerned: every other
  // access to PSUM (dma_copy from PSUM, VectorE, ScalarE) calls psum_flush() first, so it finds PSUM exactly
  // as if each column had been stored in the cycle TensorE produced it.
  struct PsumBlock {
    uint8_t* first = nullptr;     // host address of column 0 in the first partition
    uint64_t m = 0;               // partitions
    bool accumulate = false;      // add to PSUM (else overwrite)
    int n = 0;                    // columns held
    std::vector<uint32_t> data;   // [column][cols()]: result columns as the array presents them
  };
  PsumBlock psum_block_;
  void psum_flush();
  // Counts the writes to SBUF (dma_copy into SBUF, VectorE, ScalarE): TensorE reads moving columns ahead of
  // their cycle and keeps them only while this has not changed.
  uint64_t sbuf_gen_ = 0;
  // The TensorE sequencer process (tensor_engine.cpp).
  void tensor_engine();
  // Its row, column and gathered-block buffers. Members, not locals of tensor_engine(): SystemC frees an
  // SC_THREAD's stack at the end without unwinding it, so the heap buffers of its locals would leak.
  std::vector<uint16_t> te_wrow_, te_xcol_, te_block_;
  void report_lockstep(const rtl::LockstepDivergence& d, const std::deque<Matmul>& inflight,
                       const std::optional<Matmul>& loading, uint32_t next_pc);

  DeviceConfig cfg_;
  DeviceOptions options_;
  bool wave_open_ = false, wave_done_ = false;
  // Opens/closes the RTL waveform around the window of DeviceOptions (tensor_engine.cpp).
  void wave_step();
  SparseMemory hbm_;
  ChipMemory sbuf_, psum_;
  TensorEngineKind te_kind_;
  rtl::LockstepTensorEngine* lockstep_ = nullptr;  // te_ itself when te_kind_ is kLockstep
  std::unique_ptr<rtl::TensorEngineModel> te_;

  std::unique_ptr<rtl::TensorEngineModel> make_engine() {
    if (!options_.wave_path.empty() && te_kind_ == TensorEngineKind::kFast)
      throw Error(ErrorCode::kInvalidArgument,
                  "a waveform needs the RTL tensor engine: use --tensor-engine rtl or lockstep with --wave");
    switch (te_kind_) {
      case TensorEngineKind::kRtl: return make_rtl();
      case TensorEngineKind::kFast: return rtl::make_fast_tensor_engine(cfg_.rows, cfg_.cols);
      case TensorEngineKind::kLockstep: {
        auto ls = std::make_unique<rtl::LockstepTensorEngine>(make_rtl(),
                                                              rtl::make_fast_tensor_engine(cfg_.rows, cfg_.cols));
        ls->inject_candidate_error(options_.lockstep_inject_column, 7);
        lockstep_ = ls.get();
        return ls;
      }
    }
    throw Error(ErrorCode::kInvalidArgument, "unknown tensor engine kind");
  }
  std::unique_ptr<rtl::TensorEngineModel> make_rtl() {
    try {
      return rtl::make_tensor_engine(cfg_.rows, cfg_.cols);
    } catch (const std::invalid_argument& e) {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("config {}: {} (the fast model runs any size: "
                                                           "--tensor-engine fast)", cfg_.name, e.what()));
    }
  }

  std::array<Context, kMaxContexts> ctx_{};
  int job_ctx_ = 0;   // context of the running (or last started) job
  int rr_next_ = 0;   // the command processor looks at this context first
  uint32_t job_ring_size_ = 1;
  std::vector<uint8_t> owner_;  // isolate_contexts: per HBM page, 1 + owning context, 0 when free
  Context& jc() { return ctx_[size_t(job_ctx_)]; }

  // Job state
  uint32_t running_seq_ = 0;
  uint64_t job_start_cycle_ = 0;
  bool job_running_ = false;
  bool engines_dirty_ = false;
  uint64_t job_token_ = 0;
  uint64_t window_base_ = 0, window_size_ = 0;
  std::vector<StreamDesc> streams_;
  std::vector<bool> engine_done_;
  std::array<uint32_t, regs::kNumSemaphores> sems_{};

  // Trace unit, engine state
  uint64_t trace_addr_ = 0;
  uint32_t trace_cap_ = 0;
  struct EngineRegs {
    regs::EngineState state = regs::EngineState::kIdle;
    uint32_t pc = 0, wait_sem = 0, wait_value = 0;
  };
  std::array<EngineRegs, isa::kMaxEngines> engines_{};
  sc_core::sc_event watchdog_ev_;

  sc_core::sc_event cp_ev_, wake_ev_, sem_ev_, abort_ev_;  // abort_ev_: reset or fault
};

}  // namespace tcemu::emu
