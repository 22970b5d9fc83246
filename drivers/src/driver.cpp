#include "tcemu/drv/driver.h"

#include <fmt/format.h>

#include "tcemu/isa.h"

namespace tcemu::drv {

using namespace regs;

namespace {

constexpr uint32_t kRingEntries = 64;
constexpr uint32_t kDescSlotBytes = 1024;  // >= kJobHeaderBytes + kMaxEngines * kJobStreamBytes
static_assert(kJobHeaderBytes + isa::kMaxEngines * kJobStreamBytes <= kDescSlotBytes);

const char* fault_doc(FaultCode c) {
  switch (c) {
#define TCEMU_X(name, code, doc) \
  case FaultCode::name: return doc;
    TCEMU_FAULTS(TCEMU_X)
#undef TCEMU_X
  }
  return "unknown fault code";
}

std::string format_addr(uint64_t a) {
  return fmt::format("{}:0x{:x}", isa::space_name(isa::addr_space(a)), isa::addr_offset(a));
}

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
void put64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

}  // namespace

DeviceFault::DeviceFault(FaultCode code, int engine, uint32_t pc, uint64_t addr, uint32_t info, uint32_t seq,
                         const std::string& detail)
    : Error(ErrorCode::kDeviceFault,
            code == FaultCode::Watchdog
                ? fmt::format("device fault Watchdog ({}) in job {}: {}", fault_doc(code), seq, detail)
                : fmt::format("device fault {} ({}) on engine {}, instruction {} of job {}, address {}, opcode 0x{:02x}{}",
                              fault_name(code), fault_doc(code), isa::engine_name(engine), pc, seq,
                              format_addr(addr), info, detail)),
      fault_(code), engine_(engine), pc_(pc), addr_(addr), info_(info), seq_(seq) {}

Driver::Driver(Transport& transport) : transport_(transport) {
  uint32_t id = transport_.mmio_read(ID);
  if (id != kDeviceId)
    throw Error(ErrorCode::kDevice, fmt::format("{}: device ID 0x{:08x} is not a TC1 (expected 0x{:08x})",
                                                transport_.describe(), id, kDeviceId));
  uint32_t version = transport_.mmio_read(VERSION);
  if ((version >> 16) != kVersionMajor)
    throw Error(ErrorCode::kDevice, fmt::format("{}: register map version {}.{} not supported (driver speaks {}.x)",
                                                transport_.describe(), version >> 16, version & 0xFFFF,
                                                kVersionMajor));
  info_.id = id;
  info_.version = version;
  info_.rows = int(transport_.mmio_read(ARRAY_ROWS));
  info_.cols = int(transport_.mmio_read(ARRAY_COLS));
  info_.sbuf_partitions = int(transport_.mmio_read(SBUF_PARTITIONS));
  info_.sbuf_partition_bytes = transport_.mmio_read(SBUF_PARTITION_BYTES);
  info_.psum_partitions = int(transport_.mmio_read(PSUM_PARTITIONS));
  info_.psum_bank_bytes = transport_.mmio_read(PSUM_BANK_BYTES);
  info_.psum_banks = int(transport_.mmio_read(PSUM_BANKS));
  info_.hbm_bytes = transport_.mmio_read(HBM_SIZE_LO) | (uint64_t(transport_.mmio_read(HBM_SIZE_HI)) << 32);
  info_.dma_queues = int(transport_.mmio_read(DMA_QUEUES));
  info_.num_semaphores = int(transport_.mmio_read(NUM_SEMAPHORES));
  info_.clock_mhz = transport_.mmio_read(CLOCK_MHZ);
  info_.dma_bytes_per_cycle = transport_.mmio_read(DMA_BYTES_PER_CYCLE);
  info_.hbm_bytes_per_cycle = transport_.mmio_read(HBM_BYTES_PER_CYCLE);
  info_.dma_latency_cycles = transport_.mmio_read(DMA_LATENCY_CYCLES);
  info_.dma_min_run_bytes = transport_.mmio_read(DMA_MIN_RUN_BYTES);
  info_.tensor_engine = TensorEngineKind(std::min<uint32_t>(transport_.mmio_read(TE_MODEL), 2));
  ring_entries_ = kRingEntries;
  ring_addr_ = alloc(uint64_t(kRingEntries) * kRingEntryBytes);
  desc_addr_ = alloc(uint64_t(kRingEntries) * kDescSlotBytes);
  reset();
}

Driver::~Driver() = default;

void Driver::init_ring() {
  transport_.mmio_write(RING_BASE_LO, uint32_t(ring_addr_));
  transport_.mmio_write(RING_BASE_HI, uint32_t(ring_addr_ >> 32));
  transport_.mmio_write(RING_SIZE, ring_entries_);
  transport_.mmio_write(IRQ_MASK, kIrqAll);
  transport_.mmio_write(CTRL, kCtrlEnable);
  tail_ = 0;
  completed_ = 0;
  next_seq_ = 1;
}

void Driver::reset() {
  transport_.mmio_write(CTRL, kCtrlReset);  // also empties the notification FIFO and NOTIFY_DROPPED
  transport_.mmio_write(IRQ_STATUS, kIrqAll);
  notifications_.clear();
  init_ring();
}

uint64_t Driver::alloc(uint64_t bytes, uint64_t align) { return transport_.mem_alloc(bytes, align); }
void Driver::free(uint64_t addr) { transport_.mem_free(addr); }
uint64_t Driver::bytes_free() const { return transport_.mem_bytes_free(); }

uint32_t Driver::submit(const Job& job) {
  if (job.streams.size() > size_t(isa::kMaxEngines))
    throw Error(ErrorCode::kInvalidArgument, fmt::format("submit: {} streams (at most {})", job.streams.size(), isa::kMaxEngines));
  uint32_t head = transport_.mmio_read(RING_HEAD);
  if ((tail_ + 1) % ring_entries_ == head)
    throw Error(ErrorCode::kCapacity, fmt::format("submit: command ring full ({} entries in flight)", ring_entries_ - 1));
  uint32_t seq = next_seq_++;
  uint32_t slot = tail_;
  std::vector<uint8_t> desc(kJobHeaderBytes + job.streams.size() * kJobStreamBytes, 0);
  put32(desc, 0, kJobMagic);
  put32(desc, 4, uint32_t(job.streams.size()));
  put64(desc, 8, job.window_base);
  put64(desc, 16, job.window_size);
  put64(desc, 24, job.trace_addr);
  put32(desc, 32, job.trace_capacity);
  for (size_t i = 0; i < job.streams.size(); ++i) {
    size_t at = kJobHeaderBytes + i * kJobStreamBytes;
    put32(desc, at, uint32_t(job.streams[i].engine));
    put32(desc, at + 4, job.streams[i].count);
    put64(desc, at + 8, job.streams[i].addr);
  }
  uint64_t desc_at = desc_addr_ + uint64_t(slot) * kDescSlotBytes;
  transport_.mem_write(desc_at, desc);
  std::vector<uint8_t> entry(kRingEntryBytes, 0);
  put64(entry, 0, desc_at);
  put32(entry, 8, seq);
  transport_.mem_write(ring_addr_ + uint64_t(slot) * kRingEntryBytes, entry);
  tail_ = (tail_ + 1) % ring_entries_;
  transport_.mmio_write(DOORBELL, tail_);
  return seq;
}

DeviceFault Driver::read_fault() {
  auto code = FaultCode(transport_.mmio_read(FAULT_CODE));
  int engine = int(transport_.mmio_read(FAULT_ENGINE));
  uint32_t pc = transport_.mmio_read(FAULT_PC);
  uint64_t addr = transport_.mmio_read(FAULT_ADDR_LO) | (uint64_t(transport_.mmio_read(FAULT_ADDR_HI)) << 32);
  uint32_t info = transport_.mmio_read(FAULT_INFO);
  uint32_t seq = transport_.mmio_read(FAULT_SEQ);
  std::string detail;
  if (code == FaultCode::Watchdog) {
    // Name every engine that is blocked, what it waits for, and the semaphore's value.
    for (int e = 0; e < isa::kMaxEngines; ++e) {
      if (EngineState(transport_.mmio_read(engine_reg(e, ENG_STATE))) != EngineState::kWaiting) continue;
      uint32_t sem = transport_.mmio_read(engine_reg(e, ENG_WAIT_SEM));
      detail += fmt::format("{}engine {} at instruction {} waits for semaphore {} >= {} (it is {})",
                            detail.empty() ? "" : "; ", isa::engine_name(e), transport_.mmio_read(engine_reg(e, ENG_PC)),
                            sem, transport_.mmio_read(engine_reg(e, ENG_WAIT_VALUE)),
                            transport_.mmio_read(sem_reg(int(sem) & 0xFF)));
    }
  }
  if (code == FaultCode::LockstepMismatch) {
    static const char* const kPorts[] = {"?", "out_valid", "out_data", "wload_ready", "busy"};
    const uint32_t port = transport_.mmio_read(LOCKSTEP_PORT);
    const uint64_t at = transport_.mmio_read(LOCKSTEP_CYCLE_LO) | (uint64_t(transport_.mmio_read(LOCKSTEP_CYCLE_HI)) << 32);
    const uint32_t rtl = transport_.mmio_read(LOCKSTEP_RTL), fast = transport_.mmio_read(LOCKSTEP_FAST);
    const char* name = kPorts[port < 5 ? port : 0];
    if (port == 2)
      detail = fmt::format(": result column {} element {} at job cycle {}: rtl 0x{:08x}, fast 0x{:08x}",
                           transport_.mmio_read(LOCKSTEP_COLUMN), transport_.mmio_read(LOCKSTEP_ELEMENT), at, rtl, fast);
    else if (port == 1)
      detail = fmt::format(": result column {}: the {} model presents it at job cycle {}, the {} does not "
                           "(cycle counts differ)",
                           transport_.mmio_read(LOCKSTEP_COLUMN), rtl ? "rtl" : "fast", at, rtl ? "fast" : "rtl");
    else
      detail = fmt::format(": {} after job cycle {}: rtl {}, fast {} (cycle counts differ)", name, at, rtl, fast);
  }
  return DeviceFault(code, engine, pc, addr, info, seq, detail);
}

uint64_t Driver::cycle() {
  uint64_t lo = transport_.mmio_read(CYCLE_LO);
  return lo | (uint64_t(transport_.mmio_read(CYCLE_HI)) << 32);
}

void Driver::drain_notifications() {
  for (uint32_t n = transport_.mmio_read(NOTIFY_COUNT); n > 0; --n) {
    Notification x;
    x.tag = transport_.mmio_read(NOTIFY_TAG);
    x.engine = int(transport_.mmio_read(NOTIFY_ENGINE));
    x.cycle = transport_.mmio_read(NOTIFY_CYCLE_LO) | (uint64_t(transport_.mmio_read(NOTIFY_CYCLE_HI)) << 32);
    x.seq = transport_.mmio_read(NOTIFY_SEQ);
    transport_.mmio_write(NOTIFY_POP, 1);
    notifications_[x.seq].push_back(x);
    if (notify_handler_) notify_handler_(x);
  }
}

JobResult Driver::wait(uint32_t seq, uint64_t timeout_cycles, const Progress& progress) {
  const uint64_t start = cycle();
  // Simulated time passes only inside wait_irq: every drop the counter gains from here on happened while
  // this wait ran.
  const uint32_t dropped_before = transport_.mmio_read(NOTIFY_DROPPED);
  for (;;) {
    // Acknowledge first, then look: an interrupt raised after this point stays pending for wait_irq.
    // Notifications are drained before the fault check so that the handler sees those that came first.
    transport_.mmio_write(IRQ_STATUS, kIrqJobDone | kIrqNotify);
    drain_notifications();
    if (transport_.mmio_read(STATUS) & kStatusFault) throw read_fault();
    uint32_t done = transport_.mmio_read(COMPLETED_SEQ);
    if (int32_t(done - seq) >= 0) {
      JobResult r;
      r.seq = seq;
      r.cycles = transport_.mmio_read(JOB_CYCLES_LO) | (uint64_t(transport_.mmio_read(JOB_CYCLES_HI)) << 32);
      r.trace_count = transport_.mmio_read(TRACE_COUNT);
      if (auto it = notifications_.find(seq); it != notifications_.end()) {
        r.notifications = std::move(it->second);
        notifications_.erase(it);
      }
      r.notifications_dropped = transport_.mmio_read(NOTIFY_DROPPED) - dropped_before;
      return r;
    }
    uint64_t elapsed = cycle() - start;
    if (elapsed >= timeout_cycles)
      throw Error(ErrorCode::kTimeout,
                  fmt::format("job {} did not complete within {} device cycles (device status 0x{:x}, ring head {} tail {})",
                              seq, timeout_cycles, transport_.mmio_read(STATUS), transport_.mmio_read(RING_HEAD),
                              transport_.mmio_read(RING_TAIL)));
    uint64_t slice = timeout_cycles - elapsed;
    if (progress) {
      slice = std::min(slice, kProgressSlice);
      if (elapsed) progress(elapsed);
    }
    transport_.wait_irq(slice);
  }
}

Counters Driver::read_counters() {
  auto rd64 = [&](uint32_t lo) { return transport_.mmio_read(lo) | (uint64_t(transport_.mmio_read(lo + 4)) << 32); };
  Counters c;
  for (int e = 0; e < isa::kMaxEngines; ++e) {
    c.busy[e] = rd64(engine_reg(e, ENG_BUSY_LO));
    c.stall[e] = rd64(engine_reg(e, ENG_STALL_LO));
  }
  c.te_macs = rd64(TE_MACS_LO);
  c.dma_bytes = rd64(DMA_BYTES_LO);
  return c;
}

void Driver::clear_counters() { transport_.mmio_write(PERF_CTRL, 1); }

std::vector<TraceRecord> Driver::read_trace(uint64_t addr, uint32_t count) {
  std::vector<uint8_t> raw(size_t(count) * kTraceRecordBytes);
  if (!raw.empty()) transport_.mem_read(addr, raw);
  std::vector<TraceRecord> out(count);
  for (uint32_t i = 0; i < count; ++i)
    out[i] = TraceRecord::decode(std::span<const uint8_t, kTraceRecordBytes>(raw.data() + size_t(i) * kTraceRecordBytes, kTraceRecordBytes));
  return out;
}

JobResult Driver::run(const Job& job, uint64_t timeout_cycles, const Progress& progress) {
  return wait(submit(job), timeout_cycles, progress);
}

ScopedMemory::~ScopedMemory() {
  for (uint64_t a : blocks_) {
    try {
      driver_.free(a);
    } catch (const Error&) {  // a reset() in between already returned it; nothing else to do
    }
  }
}

uint64_t ScopedMemory::alloc(uint64_t bytes, uint64_t align) {
  blocks_.push_back(driver_.alloc(bytes, align));
  return blocks_.back();
}

StreamRef ScopedMemory::stream(int engine, std::span<const isa::Instr> instrs) {
  const std::vector<uint8_t> code = isa::encode_stream(instrs);
  const uint64_t at = alloc(code.size(), 64);
  driver_.write(at, code);
  return {engine, at, uint32_t(instrs.size())};
}

}  // namespace tcemu::drv
