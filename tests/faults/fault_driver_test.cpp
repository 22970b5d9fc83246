// The driver's side of recovery on hand-written jobs (docs/driver.md, "Job flow" and "Recovery"): polling
// that leaves the simulation alone, the completion record, doorbell retries, timeouts that name the engines
// and reset the context. Each TEST runs in its own process (one emulated device per process).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fault_rig.h"
#include "tcemu/crc32.h"

namespace tcemu {
namespace {

using namespace fault_test;
using isa::Instr;
using isa::Opcode;

Instr copy(uint64_t src, uint64_t dst, uint64_t bytes) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes, in.d1_count = 1, in.d2_count = 1;
  return in;
}

// A job of two copies on dma0 (HBM window -> SBUF -> HBM window) and one on dma1.
struct Copies {
  explicit Copies(Rig& rig) : rig(rig), code(rig.driver), window(code.alloc(65536, 4096)) {
    const uint64_t sb = isa::make_addr(isa::Space::kSbuf, 0);
    Instr back = copy(sb, isa::make_addr(isa::Space::kHbm, 8192), 4096);
    job = {
        window,
        65536,
        {code.stream(isa::kEngineDma0, std::vector<Instr>{copy(isa::make_addr(isa::Space::kHbm, 0), sb, 4096), back}),
         code.stream(isa::kEngineDma0 + 1, std::vector<Instr>{copy(isa::make_addr(isa::Space::kHbm, 0),
                                                                   isa::make_addr(isa::Space::kHbm, 16384), 256)})}};
  }
  Rig& rig;
  drv::ScopedMemory code;
  uint64_t window;
  drv::Job job;
};

TEST(DriverFaults, PollingSlicesDoNotChangeTheSimulation) {
  Rig rig;
  Gemm g(rig.cfg, 16, 24, 20);
  auto lm = rig.runtime.load(g.model);
  std::vector<uint64_t> cycles;
  for (uint64_t poll : {drv::Driver::kPollCycles, uint64_t(37), uint64_t(1) << 40}) {
    rig.driver.set_poll_cycles(poll);
    const rt::RunResult r = rig.runtime.run(*lm, g.inputs);
    EXPECT_EQ(g.mismatches(r), 0u) << "poll " << poll;
    EXPECT_EQ(r.recovery, drv::Recovery{}) << "poll " << poll;
    cycles.push_back(r.cycles);
  }
  EXPECT_EQ(cycles[0], cycles[1]);
  EXPECT_EQ(cycles[0], cycles[2]);
  EXPECT_THROW(rig.driver.set_poll_cycles(0), Error);
}

TEST(DriverFaults, ResultComesFromTheCompletionRecordWhichMatchesTheRegisters) {
  Rig rig;
  Copies c(rig);
  const drv::JobResult r = rig.driver.run(c.job, 1'000'000);
  EXPECT_EQ(r.cycles, rig.reg(regs::JOB_CYCLES_LO) | (uint64_t(rig.reg(regs::JOB_CYCLES_HI)) << 32));
  EXPECT_EQ(r.trace_count, rig.reg(regs::TRACE_COUNT));
  EXPECT_GT(r.cycles, 0u);
  EXPECT_EQ(r.recovery, drv::Recovery{});
}

TEST(DriverFaults, CorruptCompletionRecordThrowsWithoutHaltingTheDevice) {
  Rig rig;
  Copies c(rig);
  rig.transport.inject_faults(plan("completion_corrupt job=2"));
  const drv::JobResult first = rig.driver.run(c.job, 1'000'000);
  const int resets = rig.transport.resets;
  auto e = thrown<drv::CompletionError>([&] { rig.driver.run(c.job, 1'000'000); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->seq(), 2u);
  EXPECT_TRUE(
      contains(e->what(), "job 2 completed (COMPLETED_SEQ 2) but its completion record in ring slot 1 is corrupt"))
      << e->what();
  EXPECT_TRUE(contains(e->what(), "magic") || contains(e->what(), "sequence number") || contains(e->what(), "CRC"))
      << e->what();
  // The device did complete the job and is not halted: the next job runs without a reset.
  EXPECT_EQ(rig.reg(regs::STATUS) & regs::kStatusFault, 0u);
  EXPECT_EQ(rig.transport.resets, resets);
  const drv::JobResult third = rig.driver.run(c.job, 1'000'000);
  EXPECT_EQ(third.seq, 3u);
  EXPECT_EQ(third.cycles, first.cycles);
}

TEST(DriverFaults, DoorbellIsRetriedThenGivenUpWithAReset) {
  Rig rig;
  Copies c(rig);
  // kDoorbellRetries + 2 lost writes: the first submission loses all its writes, the next one its first.
  rig.transport.inject_faults(plan(fmt::format("doorbell_ignore count={}", drv::Driver::kDoorbellRetries + 2)));
  const int resets = rig.transport.resets;
  auto e = thrown<Error>([&] { rig.driver.submit(c.job); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kDevice);
  EXPECT_TRUE(contains(e->what(), fmt::format("ignored {} DOORBELL writes of tail 1 for job 1 (RING_TAIL stayed 0)",
                                              drv::Driver::kDoorbellRetries + 1)))
      << e->what();
  EXPECT_EQ(rig.transport.resets, resets + 1);
  const uint32_t seq = rig.driver.submit(c.job);
  EXPECT_EQ(seq, 1u);  // numbering starts again after the reset
  const drv::JobResult r = rig.driver.wait(seq, 1'000'000);
  drv::Recovery want;
  want.doorbell_retries = 1;
  EXPECT_EQ(r.recovery, want);
}

TEST(DriverFaults, TimeoutNamesTheHungEngineAndResetsTheContext) {
  Rig rig;
  Copies c(rig);
  rig.transport.inject_faults(plan("hang engine=dma0 instr=1"));
  const int resets = rig.transport.resets;
  const uint32_t seq = rig.driver.submit(c.job);
  auto e = thrown<drv::TimeoutError>([&] { rig.driver.wait(seq, 20'000); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->seq(), seq);
  EXPECT_TRUE(e->engine_running());
  ASSERT_EQ(e->engines().size(), 1u) << e->what();  // dma1 finished; dma0 hangs at its second copy
  EXPECT_EQ(e->engines()[0].engine, isa::kEngineDma0);
  EXPECT_EQ(e->engines()[0].pc, 1u);
  EXPECT_TRUE(
      contains(e->what(), "job 1 did not complete within 20000 device cycles: engine dma0 running at instruction 1"))
      << e->what();
  EXPECT_EQ(rig.transport.resets, resets + 1);
  // The context was reset: the next job runs without the caller doing anything.
  const drv::JobResult r = rig.driver.run(c.job, 1'000'000);
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.recovery, drv::Recovery{});
}

TEST(DriverFaults, InterruptsOfSeveralJobsInFlightAreAccountedPerWait) {
  Rig rig;
  Copies c(rig);
  // Job 1's interrupt is lost, job 2's comes: waiting for job 1 sees nothing until job 2's interrupt, which
  // accounts for job 2; job 1's completion is counted as missed.
  rig.transport.inject_faults(plan("irq_drop job=1"));
  const uint32_t s1 = rig.driver.submit(c.job), s2 = rig.driver.submit(c.job);
  const drv::JobResult r1 = rig.driver.wait(s1, 1'000'000);
  drv::Recovery want;
  want.missed_irqs = 1;
  EXPECT_EQ(r1.recovery, want);
  const drv::JobResult r2 = rig.driver.wait(s2, 1'000'000);
  EXPECT_EQ(r2.recovery, drv::Recovery{});
  EXPECT_EQ(r1.cycles, r2.cycles);
}

}  // namespace
}  // namespace tcemu
