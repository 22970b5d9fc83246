#include "tcemu/drv/driver.h"

#include <fmt/format.h>

#include <algorithm>

#include "tcemu/crc32.h"
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

// An ECC word as ECC_ADDR and FAULT_ADDR of EccUncorrectable name it: a device address whose HBM offset is
// absolute (not window-relative), SBUF/PSUM offsets linear (partition * partition bytes + byte).
std::string format_ecc_word(uint64_t a) {
  const uint64_t space = isa::addr_space(a);
  return fmt::format("{}:0x{:x}{}", isa::space_name(space), isa::addr_offset(a),
                     space == uint64_t(isa::Space::kHbm) ? " (absolute)" : "");
}

std::string opcode_name(uint32_t code) {
  const isa::OpcodeInfo* op = code <= 0xFF ? isa::find_opcode(uint8_t(code)) : nullptr;
  return op ? op->mnemonic : fmt::format("opcode 0x{:02x}", code);
}

std::string fault_message(FaultCode code, int engine, uint32_t pc, uint64_t addr, uint32_t info, uint32_t seq,
                          const std::string& detail) {
  const std::string head = fmt::format("device fault {} ({})", fault_name(code), fault_doc(code));
  switch (code) {
    case FaultCode::Watchdog: return fmt::format("{} in job {}: {}", head, seq, detail);
    case FaultCode::DmaError:
      return fmt::format("{}: DMA queue {} (engine {}), instruction {} of job {}: {} to {} did not complete{}", head,
                         engine - isa::kEngineDma0, isa::engine_name(engine), pc, seq, opcode_name(info),
                         format_addr(addr), detail);
    case FaultCode::EccUncorrectable:
      return fmt::format("{} on engine {}, instruction {} of job {} ({}): uncorrectable word {}{}", head,
                         isa::engine_name(engine), pc, seq, opcode_name(info), format_ecc_word(addr), detail);
    default:
      return fmt::format("{} on engine {}, instruction {} of job {}, address {}, opcode 0x{:02x}{}", head,
                         isa::engine_name(engine), pc, seq, format_addr(addr), info, detail);
  }
}

const char* state_name(EngineState s) {
  switch (s) {
    case EngineState::kIdle: return "idle";
    case EngineState::kRunning: return "running";
    case EngineState::kWaiting: return "waiting";
    case EngineState::kDone: return "done";
  }
  return "?";
}

uint32_t get32(std::span<const uint8_t> b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(b[at + i]) << (8 * i);
  return v;
}
uint64_t get64(std::span<const uint8_t> b, size_t at) { return get32(b, at) | (uint64_t(get32(b, at + 4)) << 32); }

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
void put64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

}  // namespace

DeviceFault::DeviceFault(FaultCode code, int engine, uint32_t pc, uint64_t addr, uint32_t info, uint32_t seq,
                         const std::string& detail)
    : Error(ErrorCode::kDeviceFault, fault_message(code, engine, pc, addr, info, seq, detail)),
      fault_(code), engine_(engine), pc_(pc), addr_(addr), info_(info), seq_(seq) {}

bool TimeoutError::engine_running() const {
  return std::any_of(engines_.begin(), engines_.end(),
                     [](const EngineStatus& e) { return e.state == EngineState::kRunning; });
}

Recovery Recovery::since(const Recovery& earlier, const Recovery& later) {
  Recovery d;
  d.missed_irqs = later.missed_irqs - earlier.missed_irqs;
  d.late_irqs = later.late_irqs - earlier.late_irqs;
  d.spurious_irqs = later.spurious_irqs - earlier.spurious_irqs;
  d.doorbell_retries = later.doorbell_retries - earlier.doorbell_retries;
  d.ecc_corrected = later.ecc_corrected - earlier.ecc_corrected;
  d.ecc_addr = d.ecc_corrected ? later.ecc_addr : 0;
  return d;
}

Recovery& Recovery::operator+=(const Recovery& o) {
  missed_irqs += o.missed_irqs;
  late_irqs += o.late_irqs;
  spurious_irqs += o.spurious_irqs;
  doorbell_retries += o.doorbell_retries;
  ecc_corrected += o.ecc_corrected;
  if (o.ecc_corrected) ecc_addr = o.ecc_addr;
  return *this;
}

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
  next_seq_ = 1;
  seen_completed_ = transport_.mmio_read(COMPLETED_SEQ);
  irqs_owed_ = 0;
  doorbell_retries_.clear();
}

void Driver::reset() {
  if (const uint32_t n = transport_.mmio_read(ECC_CORRECTED)) {  // the reset clears it
    ecc_carry_ += n;
    ecc_addr_carry_ = transport_.mmio_read(ECC_ADDR_LO) | (uint64_t(transport_.mmio_read(ECC_ADDR_HI)) << 32);
  }
  transport_.mmio_write(CTRL, kCtrlReset);  // also empties the notification FIFO and NOTIFY_DROPPED
  transport_.mmio_write(IRQ_STATUS, kIrqAll);
  notifications_.clear();
  init_ring();
}

void Driver::set_poll_cycles(uint64_t cycles) {
  if (cycles == 0) throw Error(ErrorCode::kInvalidArgument, "set_poll_cycles: the poll interval must be > 0 cycles");
  poll_cycles_ = cycles;
}

uint64_t Driver::ecc_corrected_total() { return ecc_carry_ + transport_.mmio_read(ECC_CORRECTED); }

Recovery Driver::recovery_totals() {
  Recovery r = totals_;
  r.ecc_corrected = uint32_t(ecc_corrected_total());
  r.ecc_addr = transport_.mmio_read(ECC_CORRECTED)
                   ? transport_.mmio_read(ECC_ADDR_LO) | (uint64_t(transport_.mmio_read(ECC_ADDR_HI)) << 32)
                   : ecc_addr_carry_;
  return r;
}

std::vector<EngineStatus> Driver::engine_states(bool active_only) {
  std::vector<int> engines = {isa::kEngineTensor, isa::kEngineVector, isa::kEngineScalar};
  for (int q = 0; q < info_.dma_queues; ++q) engines.push_back(isa::kEngineDma0 + q);
  std::vector<EngineStatus> out;
  for (int e : engines) {
    EngineStatus st;
    st.engine = e;
    st.state = EngineState(transport_.mmio_read(engine_reg(e, ENG_STATE)));
    if (active_only && st.state != EngineState::kRunning && st.state != EngineState::kWaiting) continue;
    st.pc = transport_.mmio_read(engine_reg(e, ENG_PC));
    if (st.state == EngineState::kWaiting) {
      st.wait_sem = transport_.mmio_read(engine_reg(e, ENG_WAIT_SEM));
      st.wait_value = transport_.mmio_read(engine_reg(e, ENG_WAIT_VALUE));
      st.sem_value = transport_.mmio_read(sem_reg(int(st.wait_sem) & 0xFF));
    }
    out.push_back(st);
  }
  return out;
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
  ring_doorbell(seq);
  return seq;
}

void Driver::ring_doorbell(uint32_t seq) {
  // A posted MMIO write can be lost on its way; RING_TAIL shows what the device took. Writing the same
  // tail again is harmless: the device consumes entries [head, tail) whatever the number of writes.
  for (uint32_t retry = 0;; ++retry) {
    transport_.mmio_write(DOORBELL, tail_);
    const uint32_t took = transport_.mmio_read(RING_TAIL);
    if (took == tail_) {
      if (retry) doorbell_retries_[seq] = retry;
      totals_.doorbell_retries += retry;
      return;
    }
    if (retry == kDoorbellRetries) {
      totals_.doorbell_retries += retry;
      const std::string message =
          fmt::format("{}: the device ignored {} DOORBELL writes of tail {} for job {} (RING_TAIL stayed {}); the "
                      "context was reset and the job was not run",
                      transport_.describe(), kDoorbellRetries + 1, tail_, seq, took);
      reset();
      throw Error(ErrorCode::kDevice, message);
    }
  }
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

void Driver::account_completions(bool job_done, Recovery& rec) {
  const uint32_t done = transport_.mmio_read(COMPLETED_SEQ);
  const uint32_t fresh = done - seen_completed_;
  seen_completed_ = done;
  if (!job_done) {  // completions without an interrupt: lost, or coming late
    rec.missed_irqs += fresh;
    irqs_owed_ += fresh;
  } else if (fresh == 0) {  // an interrupt without a new completion
    if (irqs_owed_) {
      --irqs_owed_;
      ++rec.late_irqs;
    } else {
      ++rec.spurious_irqs;
    }
  } else if (fresh > 1) {  // JOB_DONE is one sticky bit, but wait_irq returns at the first: the others were lost
    rec.missed_irqs += fresh - 1;
    irqs_owed_ += fresh - 1;
  }
}

void Driver::check_completion(uint32_t seq, JobResult& r) {
  // Sequence numbers start at 1 with slot 0 after every reset (init_ring), one slot per job.
  const uint32_t slot = (seq - 1) % ring_entries_;
  std::array<uint8_t, kCompletionBytes> rec;
  transport_.mem_read(ring_addr_ + uint64_t(slot) * kRingEntryBytes + kCompletionOffset, rec);
  const uint32_t magic = get32(rec, 0), rec_seq = get32(rec, 4), stored_crc = get32(rec, 20);
  const uint32_t crc = crc32(std::span<const uint8_t>(rec.data(), 20));
  std::string problem;
  if (magic != kCompletionMagic)
    problem = fmt::format("magic 0x{:08x} (expected 0x{:08x})", magic, kCompletionMagic);
  else if (rec_seq != seq)
    problem = fmt::format("sequence number {} (expected {})", rec_seq, seq);
  else if (crc != stored_crc)
    problem = fmt::format("CRC 0x{:08x} (computed over its bytes: 0x{:08x})", stored_crc, crc);
  if (!problem.empty())
    throw CompletionError(seq, fmt::format("job {} completed (COMPLETED_SEQ {}) but its completion record in ring slot {} "
                                           "is corrupt: {}; the job's cycles and outcome are unknown",
                                           seq, seen_completed_, slot, problem));
  r.cycles = get64(rec, 8);
  r.trace_count = get32(rec, 16);
}

TimeoutError Driver::timeout(uint32_t seq, uint64_t timeout_cycles) {
  std::vector<EngineStatus> engines = engine_states(true);
  // The running engines first: a hung engine is one of them, the blocked ones wait for it.
  std::stable_partition(engines.begin(), engines.end(),
                        [](const EngineStatus& e) { return e.state == EngineState::kRunning; });
  std::string states;
  for (const EngineStatus& e : engines) {
    states += fmt::format("{}engine {} {} at instruction {}", states.empty() ? "" : "; ", isa::engine_name(e.engine),
                          state_name(e.state), e.pc);
    if (e.state == EngineState::kWaiting)
      states += fmt::format(" for semaphore {} >= {} (it is {})", e.wait_sem, e.wait_value, e.sem_value);
  }
  const uint32_t status = transport_.mmio_read(STATUS), head = transport_.mmio_read(RING_HEAD),
                 ring_tail = transport_.mmio_read(RING_TAIL);
  std::string message = fmt::format(
      "job {} did not complete within {} device cycles: {} (device status 0x{:x}, ring head {} tail {}); the "
      "context was reset, aborting the job",
      seq, timeout_cycles, states.empty() ? "no engine is running or blocked" : states, status, head, ring_tail);
  reset();
  return TimeoutError(seq, std::move(engines), message);
}

JobResult Driver::wait(uint32_t seq, uint64_t timeout_cycles, const Progress& progress) {
  const uint64_t start = cycle();
  // Simulated time passes only inside wait_irq: every drop or correction the counters gain from here on
  // happened while this wait ran.
  const uint32_t dropped_before = transport_.mmio_read(NOTIFY_DROPPED);
  const uint64_t ecc_before = ecc_corrected_total();
  uint64_t next_progress = kProgressSlice;
  uint64_t interval = poll_cycles_;
  Recovery rec;
  if (auto it = doorbell_retries_.find(seq); it != doorbell_retries_.end()) {
    rec.doorbell_retries = it->second;
    doorbell_retries_.erase(it);
  }
  for (;;) {
    // Acknowledge first, then look: an interrupt raised after this point stays pending for wait_irq.
    // Notifications are drained before the fault check so that the handler sees those that came first.
    const uint32_t pending = transport_.mmio_read(IRQ_STATUS) & (kIrqJobDone | kIrqNotify);
    if (pending) transport_.mmio_write(IRQ_STATUS, pending);
    drain_notifications();
    if (transport_.mmio_read(STATUS) & kStatusFault) throw read_fault();
    const Recovery before = rec;
    account_completions(pending & kIrqJobDone, rec);
    totals_ += Recovery::since(before, rec);
    if (int32_t(seen_completed_ - seq) >= 0) {
      JobResult r;
      r.seq = seq;
      if (auto it = notifications_.find(seq); it != notifications_.end()) {
        r.notifications = std::move(it->second);
        notifications_.erase(it);
      }
      check_completion(seq, r);
      r.notifications_dropped = transport_.mmio_read(NOTIFY_DROPPED) - dropped_before;
      rec.ecc_corrected = uint32_t(ecc_corrected_total() - ecc_before);
      if (rec.ecc_corrected)
        rec.ecc_addr = transport_.mmio_read(ECC_ADDR_LO) | (uint64_t(transport_.mmio_read(ECC_ADDR_HI)) << 32);
      r.recovery = rec;
      return r;
    }
    const uint64_t elapsed = cycle() - start;
    if (elapsed >= timeout_cycles) throw timeout(seq, timeout_cycles);
    if (progress && elapsed >= next_progress) {
      progress(elapsed);
      next_progress = (elapsed / kProgressSlice + 1) * kProgressSlice;
    }
    uint64_t slice = std::min(timeout_cycles - elapsed, interval);
    if (progress) slice = std::min(slice, next_progress - elapsed);
    // A quiet slice doubles the interval (up to kMaxPollCycles): a hung job costs a few hundred looks
    // (round trips, over a socket), not one per poll interval; an interrupt brings it back.
    const uint64_t cap = std::max(poll_cycles_, kMaxPollCycles);
    interval = transport_.wait_irq(slice) ? poll_cycles_ : interval > cap / 2 ? cap : 2 * interval;
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
