// The in-order sequencer shared by the DMA queues and the vector/scalar engines; semaphore blocking and
// the deadlock watchdog; the trace unit and the performance counters every engine reports to; the
// notification FIFO that notify instructions of every engine post to.
#include "tc1.h"

namespace tcemu::emu {

using regs::EngineState;

void Tc1::run_sequencer(int engine, const Executor& exec) {
  for (;;) {
    uint64_t token = wait_for_work(engine);
    for (uint32_t pc = 0; pc < streams_[engine].count && token == job_token_; ++pc) {
      engines_[engine].pc = pc;
      std::optional<Instr> in = fetch(engine, pc);
      if (!in) break;
      const uint64_t waited = block_on_semaphore(engine, pc, *in, token);
      if (token != job_token_) break;
      if ((!job_faults_.empty() || !poison_.empty()) && !before_execute(engine, pc, *in, token)) break;
      const uint64_t start = cycle();
      InstrStats stats;
      if (in->opcode == Opcode::Notify) post_notification(engine, *in);
      else if (in->opcode != Opcode::Nop && !exec(pc, *in, token, stats)) break;
      if (token != job_token_) break;
      record(engine, pc, *in, start, cycle(), waited, stats);
      signal(*in);
    }
    engine_finished(engine, token);
  }
}

uint64_t Tc1::block_on_semaphore(int engine, uint32_t pc, const Instr& in, uint64_t token) {
  if (sem_ready(in)) return 0;
  const uint64_t from = cycle();
  EngineRegs& e = engines_[engine];
  e.state = EngineState::kWaiting;
  e.pc = pc;
  e.wait_sem = uint32_t(in.wait_sem);
  e.wait_value = uint32_t(in.wait_value);
  check_deadlock();
  while (!sem_ready(in) && token == job_token_) wait(sem_ev_ | abort_ev_);
  if (token != job_token_) return 0;
  e.state = EngineState::kRunning;
  watchdog_ev_.cancel();  // someone made progress
  const uint64_t waited = cycle() - from;
  jc().stall[size_t(engine)] += waited;
  return waited;
}

void Tc1::check_deadlock() {
  const uint32_t watchdog_cycles = jc().watchdog_cycles;
  if (!job_running_ || watchdog_cycles == 0) return;
  bool any_waiting = false;
  for (int e = 0; e < isa::kMaxEngines; ++e) {
    if (engine_done_[e]) continue;
    if (engines_[e].state != EngineState::kWaiting) return;
    any_waiting = true;
  }
  if (any_waiting) watchdog_ev_.notify(kCycle * double(watchdog_cycles));
}

void Tc1::watchdog() {
  for (;;) {
    wait(watchdog_ev_);
    if (!job_running_) continue;
    // Re-check: the event is cancelled on progress, but stay exact.
    int first = -1;
    bool deadlocked = true;
    for (int e = 0; e < isa::kMaxEngines && deadlocked; ++e) {
      if (engine_done_[e]) continue;
      if (engines_[e].state != EngineState::kWaiting) deadlocked = false;
      else if (first < 0) first = e;
    }
    if (!deadlocked || first < 0) continue;
    const EngineRegs& r = engines_[first];
    raise_fault(FaultCode::Watchdog, first, r.pc, r.wait_sem, r.wait_value);
  }
}

void Tc1::record(int engine, uint32_t pc, const Instr& in, uint64_t start, uint64_t end, uint64_t wait_cycles,
                 const InstrStats& stats) {
  Context& x = jc();
  x.busy[size_t(engine)] += end - start;
  if (engine == isa::kEngineTensor) x.te_macs += stats.macs;
  if (engine >= isa::kEngineDma0) x.dma_bytes += stats.bytes;
  const uint32_t index = x.trace_count++;
  if (index >= trace_cap_) return;  // buffer full: counted, not written (TRACE_COUNT > capacity)
  TraceRecord r;
  r.engine = uint16_t(engine);
  r.opcode = uint16_t(in.opcode);
  r.pc = pc;
  r.start = start - job_start_cycle_;
  r.end = end - job_start_cycle_;
  r.wait_cycles = wait_cycles;
  r.bytes = stats.bytes;
  r.macs = stats.macs;
  r.wait_sem = in.wait_en ? uint32_t(in.wait_sem) : kNoSemaphore;
  r.wait_value = in.wait_en ? uint32_t(in.wait_value) : 0;
  r.signal_sem = in.signal_en ? uint32_t(in.signal_sem) : kNoSemaphore;
  uint8_t buf[kTraceRecordBytes];
  r.encode(std::span<uint8_t, kTraceRecordBytes>(buf, kTraceRecordBytes));
  hbm_.write(trace_addr_ + uint64_t(index) * kTraceRecordBytes, buf, kTraceRecordBytes);
}

void Tc1::post_notification(int engine, const Instr& in) {
  Context& x = jc();
  if (x.notify_fifo.size() < regs::kNotifyFifoDepth) {
    x.notify_fifo.push_back({uint32_t(in.tag), uint32_t(engine), running_seq_, cycle() - job_start_cycle_});
  } else if (x.notify_dropped != UINT32_MAX) {
    ++x.notify_dropped;  // the host learns of the loss from the counter; the job goes on
  }
  raise_irq(job_ctx_, regs::kIrqNotify);
}

uint32_t Tc1::engine_reg_read(const Context& x, bool mine, int engine, uint32_t reg) const {
  const EngineRegs e = mine ? engines_[size_t(engine)] : EngineRegs{};
  switch (reg) {
    case regs::ENG_BUSY_LO: return uint32_t(x.busy[size_t(engine)]);
    case regs::ENG_BUSY_HI: return uint32_t(x.busy[size_t(engine)] >> 32);
    case regs::ENG_STALL_LO: return uint32_t(x.stall[size_t(engine)]);
    case regs::ENG_STALL_HI: return uint32_t(x.stall[size_t(engine)] >> 32);
    case regs::ENG_STATE: return uint32_t(e.state);
    case regs::ENG_PC: return e.pc;
    case regs::ENG_WAIT_SEM: return e.wait_sem;
    case regs::ENG_WAIT_VALUE: return e.wait_value;
  }
  return 0;
}

}  // namespace tcemu::emu
