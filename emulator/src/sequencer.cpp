// The in-order sequencer shared by the DMA queues and the vector/scalar engines, and the trace unit
// and performance counters every engine reports to.
#include "tc1.h"

namespace tcemu::emu {

void Tc1::run_sequencer(int engine, const Executor& exec) {
  for (;;) {
    uint64_t token = wait_for_work(engine);
    for (uint32_t pc = 0; pc < streams_[engine].count && token == job_token_; ++pc) {
      std::optional<Instr> in = fetch(engine, pc);
      if (!in) break;
      const uint64_t issue = cycle();
      while (!sem_ready(*in) && token == job_token_) wait(sem_ev_ | abort_ev_);
      if (token != job_token_) break;
      const uint64_t start = cycle();
      InstrStats stats;
      if (in->opcode != Opcode::Nop && !exec(pc, *in, token, stats)) break;
      if (token != job_token_) break;
      record(engine, pc, in->opcode, issue, start, cycle(), stats);
      signal(*in);
    }
    engine_finished(engine, token);
  }
}

void Tc1::record(int engine, uint32_t pc, Opcode op, uint64_t issue, uint64_t start, uint64_t end,
                 const InstrStats& stats) {
  (void)engine, (void)pc, (void)op, (void)issue, (void)start, (void)end, (void)stats;
}

}  // namespace tcemu::emu
