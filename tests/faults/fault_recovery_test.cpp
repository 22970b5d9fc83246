// Every injected fault kind through the runtime: the driver's and runtime's documented reaction (error,
// counter, retry; docs/driver.md, "Recovery") and then a job that must run correctly on the same device.
// Results are checked bit for bit: GEMMs against num::golden_gemm, the probe model against its inputs.
// Each TEST runs in its own process (gtest_discover_tests): one emulated device per process.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fault_rig.h"

namespace tcemu {
namespace {

using namespace fault_test;

constexpr int kM = 16, kN = 24, kK = 20;  // tc1-8: two m-tiles, three K chunks accumulated in PSUM

// The job after a fault: a fresh GEMM on the same device, bit-exact, with nothing to recover.
void next_job_is_clean(Rig& rig) {
  Gemm g(rig.cfg, 24, 16, 12, 99);
  auto lm = rig.runtime.load(g.model);
  const rt::RunResult r = rig.runtime.run(*lm, g.inputs);
  rig.runtime.unload(*lm);
  EXPECT_EQ(g.mismatches(r), 0u);
  EXPECT_EQ(r.retries, 0u);
  EXPECT_EQ(r.recovery, drv::Recovery{});
  EXPECT_EQ(rig.reg(regs::STATUS) & regs::kStatusFault, 0u);
}

// ---- DMA errors ----------------------------------------------------------------------------------------

TEST(Faults, DmaErrorIsRetriedAndTheResultIsBitExact) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const rt::RunResult clean = rig.runtime.run(*lm, g.inputs);
  ASSERT_EQ(g.mismatches(clean), 0u);
  const int doorbells = rig.transport.doorbells;
  const rt::RunResult r = rig.runtime.run(*lm, g.inputs, with_faults("dma_error transfer=20"));
  EXPECT_EQ(g.mismatches(r), 0u);
  EXPECT_EQ(r.retries, 1u);
  EXPECT_EQ(rig.transport.doorbells - doorbells, 2);
  ASSERT_EQ(r.recovered.size(), 1u);
  EXPECT_EQ(r.recovered[0].attempt, 1u);
  EXPECT_EQ(r.recovered[0].code, ErrorCode::kDeviceFault);
  EXPECT_EQ(r.recovered[0].fault, regs::FaultCode::DmaError);
  EXPECT_TRUE(contains(r.recovered[0].message, "DmaError") && contains(r.recovered[0].message, "DMA queue"))
      << r.recovered[0].message;
  // The resubmission is a whole job from a reset device: the same cycles as the clean run. The run as a
  // whole took longer by the failed attempt's cycles (its 20th copy started some way into the job).
  EXPECT_EQ(r.cycles, clean.cycles);
  EXPECT_GT(r.device_cycles, clean.device_cycles);
  next_job_is_clean(rig);
}

TEST(Faults, DmaErrorWithoutRetriesReachesTheCallerNamingQueueInstructionAndDestination) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  rt::RunOptions profiled;
  profiled.profile = true;
  const rt::RunResult clean = rig.runtime.run(*lm, g.inputs, profiled);
  // The second dma_copy to start (queues started in the same cycle may go either way: any with the
  // second-earliest start time).
  std::vector<uint64_t> starts;
  for (const TraceRecord& t : clean.profile->records)
    if (t.engine >= isa::kEngineDma0) starts.push_back(t.start);
  std::sort(starts.begin(), starts.end());
  ASSERT_GE(starts.size(), 2u);
  const int doorbells = rig.transport.doorbells, resets = rig.transport.resets;
  auto e = thrown<drv::DeviceFault>([&] { rig.runtime.run(*lm, g.inputs, with_faults("dma_error transfer=2", 0)); });
  ASSERT_TRUE(e) << "no DeviceFault";
  EXPECT_EQ(e->fault(), regs::FaultCode::DmaError);
  ASSERT_GE(e->engine(), isa::kEngineDma0);
  const model::Stream* s = nullptr;
  for (const auto& st : g.model.streams)
    if (st.engine == e->engine()) s = &st;
  ASSERT_NE(s, nullptr);
  ASSERT_LT(e->pc(), s->instrs.size());
  const isa::Instr& in = s->instrs[e->pc()];
  EXPECT_EQ(in.opcode, isa::Opcode::DmaCopy);
  EXPECT_EQ(e->addr(), in.dst);
  EXPECT_EQ(e->info(), uint32_t(isa::Opcode::DmaCopy));
  bool second = false;
  for (const TraceRecord& t : clean.profile->records)
    if (t.engine == e->engine() && t.pc == e->pc()) second = t.start == starts[1];
  EXPECT_TRUE(second) << "the faulting copy is not one of the second to start";
  const std::string m = e->what();
  EXPECT_TRUE(contains(m, fmt::format("DMA queue {} (engine {}), instruction {}", e->engine() - isa::kEngineDma0,
                                      isa::engine_name(e->engine()), e->pc())))
      << m;
  EXPECT_TRUE(contains(m, fmt::format("dma_copy to {}:0x{:x} did not complete",
                                      isa::space_name(isa::addr_space(in.dst)), isa::addr_offset(in.dst))))
      << m;
  EXPECT_EQ(rig.transport.doorbells - doorbells, 1);  // not resubmitted
  EXPECT_GT(rig.transport.resets, resets);            // but the device was reset for the next job
  next_job_is_clean(rig);
}

TEST(Faults, RetriesRunOutWhenEveryAttemptFails) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  rt::RunOptions o = with_faults("dma_error job=1\ndma_error job=2 transfer=3\ndma_error job=3 transfer=2", 2);
  const int doorbells = rig.transport.doorbells;
  auto e = thrown<drv::DeviceFault>([&] { rig.runtime.run(*lm, g.inputs, o); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->fault(), regs::FaultCode::DmaError);
  EXPECT_EQ(rig.transport.doorbells - doorbells, 3);
  o.faults = plan("dma_error job=1\ndma_error job=2 transfer=3");  // the third attempt succeeds
  const rt::RunResult r = rig.runtime.run(*lm, g.inputs, o);
  EXPECT_EQ(r.retries, 2u);
  EXPECT_EQ(r.recovered.size(), 2u);
  EXPECT_EQ(g.mismatches(r), 0u);
  next_job_is_clean(rig);
}

// ---- memory errors (ECC) -------------------------------------------------------------------------------

struct EccCase {
  isa::Space space;
  const char* name;
};
void PrintTo(const EccCase& c, std::ostream* os) { *os << c.name; }

// The probe's word for each space: t (SBUF) and p (PSUM) element 4 of partition 3, a2 (HBM) element 6 of
// row 5.
uint64_t probe_word(const Rig& rig, const Probe& probe, isa::Space space) {
  switch (space) {
    case isa::Space::kSbuf:
      return Probe::linear(rig.cfg, probe.t, 3, 4) / 8 * 8;
    case isa::Space::kPsum:
      return Probe::linear(rig.cfg, probe.p, 3, 4) / 8 * 8;
    default:
      return (probe.hbm_offset("a2") + (5 * Probe::kN + 6) * 4) / 8 * 8;
  }
}

class Ecc : public ::testing::TestWithParam<EccCase> {};

TEST_P(Ecc, OneBitFlipIsCorrectedAndCounted) {
  const isa::Space space = GetParam().space;
  Rig rig;
  Probe probe(rig.cfg);
  auto lm = rig.runtime.load(probe.model);
  rt::RunOptions profiled;
  profiled.profile = true;
  const rt::RunResult clean = rig.runtime.run(*lm, probe.inputs, profiled);
  ASSERT_EQ(probe.mismatches(clean), 0u);
  const uint64_t word = probe_word(rig, probe, space);
  const FlipTarget t = flip_target(rig.cfg, probe.model, clean.profile->records, space, word);
  ASSERT_GE(t.engine, 0);
  const std::string spec = fmt::format("bit_flip space={} bits=1 cycle={} addr=0x{:x}", GetParam().name, t.cycle, word);
  const rt::RunResult r = rig.runtime.run(*lm, probe.inputs, with_faults(spec));
  EXPECT_EQ(probe.mismatches(r), 0u) << spec;
  EXPECT_EQ(r.retries, 0u);
  EXPECT_EQ(r.recovery.ecc_corrected, 1u) << spec;
  const uint64_t device_word = space == isa::Space::kHbm ? lm->window_addr() + word : word;
  EXPECT_EQ(r.recovery.ecc_addr, ecc_word_addr(space, device_word)) << spec;
  EXPECT_EQ(r.cycles, clean.cycles);
  next_job_is_clean(rig);
}

TEST_P(Ecc, TwoBitFlipFaultsTheReaderAndIsRetried) {
  const isa::Space space = GetParam().space;
  Rig rig;
  Probe probe(rig.cfg);
  auto lm = rig.runtime.load(probe.model);
  rt::RunOptions profiled;
  profiled.profile = true;
  const rt::RunResult clean = rig.runtime.run(*lm, probe.inputs, profiled);
  const uint64_t word = probe_word(rig, probe, space);
  const FlipTarget t = flip_target(rig.cfg, probe.model, clean.profile->records, space, word);
  ASSERT_GE(t.engine, 0);
  const std::string spec = fmt::format("bit_flip space={} bits=2 cycle={} addr=0x{:x}", GetParam().name, t.cycle, word);
  const uint64_t device_word = space == isa::Space::kHbm ? lm->window_addr() + word : word;

  // Without retries the fault reaches the caller: the reader, and the word.
  auto e = thrown<drv::DeviceFault>([&] { rig.runtime.run(*lm, probe.inputs, with_faults(spec, 0)); });
  ASSERT_TRUE(e) << spec;
  EXPECT_EQ(e->fault(), regs::FaultCode::EccUncorrectable);
  EXPECT_EQ(e->engine(), t.engine);
  EXPECT_EQ(e->pc(), t.pc);
  EXPECT_EQ(e->addr(), ecc_word_addr(space, device_word));
  EXPECT_TRUE(contains(e->what(), fmt::format("uncorrectable word {}:0x{:x}", GetParam().name, device_word)))
      << e->what();

  // With the default one retry: the rerun rewrites what the job reads and the result is exact.
  const rt::RunResult r = rig.runtime.run(*lm, probe.inputs, with_faults(spec));
  EXPECT_EQ(probe.mismatches(r), 0u);
  EXPECT_EQ(r.retries, 1u);
  ASSERT_EQ(r.recovered.size(), 1u);
  EXPECT_EQ(r.recovered[0].fault, regs::FaultCode::EccUncorrectable);
  EXPECT_EQ(r.cycles, clean.cycles);
  next_job_is_clean(rig);
}

INSTANTIATE_TEST_SUITE_P(Spaces, Ecc,
                         ::testing::Values(EccCase{isa::Space::kSbuf, "sbuf"}, EccCase{isa::Space::kPsum, "psum"},
                                           EccCase{isa::Space::kHbm, "hbm"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Faults, HostReadOfAFlippedWordIsCorrectedOrRetried) {
  Rig rig;
  Probe probe(rig.cfg);
  auto lm = rig.runtime.load(probe.model);
  const uint64_t word = probe.hbm_offset("spare") / 8 * 8;  // the job never touches it; the host reads it
  const rt::RunResult one = rig.runtime.run(
      *lm, probe.inputs, with_faults(fmt::format("bit_flip space=hbm bits=1 cycle=10 addr=0x{:x}", word)));
  EXPECT_EQ(probe.mismatches(one), 0u);
  EXPECT_EQ(one.recovery.ecc_corrected, 1u);
  EXPECT_EQ(one.retries, 0u);

  const std::string two = fmt::format("bit_flip space=hbm bits=2 cycle=10 addr=0x{:x}", word);
  auto e = thrown<Error>([&] { rig.runtime.run(*lm, probe.inputs, with_faults(two, 0)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kDeviceFault);
  EXPECT_TRUE(contains(e->what(), fmt::format("0x{:x}", lm->window_addr() + word))) << e->what();
  // The word is still poisoned (another seed flips other bits: the same two would undo the flip); the
  // retry clears the outputs (whole words) before it resubmits.
  rt::RunOptions o = with_faults(two);
  o.faults.seed = 2;
  const rt::RunResult r = rig.runtime.run(*lm, probe.inputs, o);
  EXPECT_EQ(probe.mismatches(r), 0u);
  EXPECT_EQ(r.retries, 1u);
  ASSERT_EQ(r.recovered.size(), 1u);
  EXPECT_EQ(r.recovered[0].code, ErrorCode::kDeviceFault);
  EXPECT_FALSE(r.recovered[0].fault.has_value());
  next_job_is_clean(rig);
}

// ---- hung engine ---------------------------------------------------------------------------------------

TEST(Faults, HungEngineTimesOutNamingItAndTheNextJobRuns) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const rt::RunResult clean = rig.runtime.run(*lm, g.inputs);
  // The watchdog only catches engines blocked on semaphores: a hung engine is "running".
  rig.transport.mmio_write(regs::WATCHDOG_CYCLES, 2000);
  // TensorE stops at its first matmul (hangs act where an instruction starts executing; for TensorE that
  // is a matmul or pe_transpose loading its weights).
  uint32_t pc = 0;
  while (g.model.streams.front().instrs.at(pc).opcode != isa::Opcode::Matmul) ++pc;
  ASSERT_EQ(g.model.streams.front().engine, isa::kEngineTensor);
  rt::RunOptions o = with_faults(fmt::format("hang engine=tensor instr={}", pc), 0);
  o.timeout_cycles = 100'000;
  auto e = thrown<drv::TimeoutError>([&] { rig.runtime.run(*lm, g.inputs, o); });
  ASSERT_TRUE(e) << "no timeout";
  EXPECT_EQ(e->code(), ErrorCode::kTimeout);
  EXPECT_TRUE(e->engine_running());
  bool named = false;
  for (const drv::EngineStatus& s : e->engines())
    named |= s.engine == isa::kEngineTensor && s.state == regs::EngineState::kRunning && s.pc == pc;
  EXPECT_TRUE(named) << e->what();
  EXPECT_TRUE(contains(e->what(), "within 100000 device cycles") &&
              contains(e->what(), fmt::format("engine tensor running at instruction {}", pc)) &&
              contains(e->what(), "reset"))
      << e->what();
  next_job_is_clean(rig);

  // With a retry the rerun completes and is exact.
  o.max_retries = 1;
  const rt::RunResult r = rig.runtime.run(*lm, g.inputs, o);
  EXPECT_EQ(g.mismatches(r), 0u);
  EXPECT_EQ(r.retries, 1u);
  ASSERT_EQ(r.recovered.size(), 1u);
  EXPECT_EQ(r.recovered[0].code, ErrorCode::kTimeout);
  EXPECT_EQ(r.cycles, clean.cycles);
  EXPECT_GE(r.device_cycles, o.timeout_cycles + clean.cycles);
}

// ---- interrupts ----------------------------------------------------------------------------------------

TEST(Faults, DroppedInterruptIsFoundByPollingAndCounted) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const rt::RunResult clean = rig.runtime.run(*lm, g.inputs);
  const rt::RunResult r = rig.runtime.run(*lm, g.inputs, with_faults("irq_drop"));
  EXPECT_EQ(g.mismatches(r), 0u);
  EXPECT_EQ(r.cycles, clean.cycles);
  EXPECT_EQ(r.retries, 0u);
  drv::Recovery want;
  want.missed_irqs = 1;
  EXPECT_EQ(r.recovery, want);
  // Found at the first poll after completion.
  EXPECT_LE(r.device_cycles, clean.device_cycles + rig.driver.poll_cycles());
  next_job_is_clean(rig);
}

TEST(Faults, DelayedInterruptIsWaitedForOrFoundByPollingAndCountedLate) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const rt::RunResult clean = rig.runtime.run(*lm, g.inputs);
  // Shorter than the time to the next poll: the driver simply gets it late.
  const rt::RunResult shortly = rig.runtime.run(*lm, g.inputs, with_faults("irq_delay cycles=100"));
  EXPECT_EQ(g.mismatches(shortly), 0u);
  EXPECT_EQ(shortly.recovery, drv::Recovery{});
  EXPECT_EQ(shortly.cycles, clean.cycles);
  EXPECT_EQ(shortly.device_cycles, clean.device_cycles + 100);

  // Longer than the time from completion to the next poll, shorter than the next job's wait: the poll
  // finds the completion first (missed), the interrupt comes while the next job runs (late, not spurious).
  // With a first poll interval of twice the job, the job completes (at X) in the first slice, whose end
  // (2X) comes before the interrupt (X + 1.5X); the next job runs from 2X to 3X.
  const uint64_t poll = 2 * clean.cycles;
  rig.driver.set_poll_cycles(poll);
  const uint64_t delay = 3 * clean.cycles / 2;
  const rt::RunResult r = rig.runtime.run(*lm, g.inputs, with_faults(fmt::format("irq_delay cycles={}", delay)));
  EXPECT_EQ(g.mismatches(r), 0u);
  drv::Recovery missed;
  missed.missed_irqs = 1;
  EXPECT_EQ(r.recovery, missed);
  const rt::RunResult next = rig.runtime.run(*lm, g.inputs);
  EXPECT_EQ(g.mismatches(next), 0u);
  drv::Recovery late;
  late.late_irqs = 1;
  EXPECT_EQ(next.recovery, late);
  EXPECT_EQ(next.cycles, clean.cycles);
  next_job_is_clean(rig);
}

TEST(Faults, SpuriousInterruptIsCountedAndIgnored) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const rt::RunResult clean = rig.runtime.run(*lm, g.inputs);
  const rt::RunResult r =
      rig.runtime.run(*lm, g.inputs, with_faults(fmt::format("irq_spurious cycle={}", clean.cycles / 2)));
  EXPECT_EQ(g.mismatches(r), 0u);
  EXPECT_EQ(r.cycles, clean.cycles);
  EXPECT_EQ(r.device_cycles, clean.device_cycles);  // the wait went on to the real completion
  drv::Recovery want;
  want.spurious_irqs = 1;
  EXPECT_EQ(r.recovery, want);
  next_job_is_clean(rig);
}

// ---- doorbell ------------------------------------------------------------------------------------------

TEST(Faults, IgnoredDoorbellIsRungAgain) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const int doorbells = rig.transport.doorbells;
  const rt::RunResult r = rig.runtime.run(*lm, g.inputs, with_faults("doorbell_ignore count=2"));
  EXPECT_EQ(g.mismatches(r), 0u);
  EXPECT_EQ(rig.transport.doorbells - doorbells, 3);
  drv::Recovery want;
  want.doorbell_retries = 2;
  EXPECT_EQ(r.recovery, want);
  EXPECT_EQ(r.retries, 0u);
  next_job_is_clean(rig);
}

TEST(Faults, DoorbellThatNeverTakesIsADeviceErrorNotRetried) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const int doorbells = rig.transport.doorbells;
  const auto count = drv::Driver::kDoorbellRetries + 1;
  auto e = thrown<Error>(
      [&] { rig.runtime.run(*lm, g.inputs, with_faults(fmt::format("doorbell_ignore count={}", count))); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kDevice);
  EXPECT_TRUE(contains(e->what(), fmt::format("ignored {} DOORBELL writes", count))) << e->what();
  EXPECT_EQ(rig.transport.doorbells - doorbells, int(count));
  next_job_is_clean(rig);
}

// ---- completion records --------------------------------------------------------------------------------

TEST(Faults, CorruptCompletionRecordIsDetectedAndTheJobRerun) {
  Rig rig;
  Gemm g(rig.cfg, kM, kN, kK);
  auto lm = rig.runtime.load(g.model);
  const rt::RunResult clean = rig.runtime.run(*lm, g.inputs);
  auto e = thrown<drv::CompletionError>([&] { rig.runtime.run(*lm, g.inputs, with_faults("completion_corrupt", 0)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), ErrorCode::kDevice);
  EXPECT_TRUE(contains(e->what(), fmt::format("job {} completed", e->seq())) &&
              contains(e->what(), fmt::format("completion record in ring slot {} is corrupt", (e->seq() - 1) % 64)))
      << e->what();
  // Whichever bit flips (the seed picks it), the record is not trusted, and the rerun is exact.
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    rt::RunOptions o = with_faults("completion_corrupt");
    o.faults.seed = seed;
    const rt::RunResult r = rig.runtime.run(*lm, g.inputs, o);
    EXPECT_EQ(g.mismatches(r), 0u) << "seed " << seed;
    EXPECT_EQ(r.retries, 1u) << "seed " << seed;
    ASSERT_EQ(r.recovered.size(), 1u);
    EXPECT_TRUE(contains(r.recovered[0].message, "completion record")) << r.recovered[0].message;
    EXPECT_EQ(r.cycles, clean.cycles);
  }
  next_job_is_clean(rig);
}

// ---- what is not retried -------------------------------------------------------------------------------

// A program error fails the same way every time: straight to the caller, one submission, device reset.
TEST(Faults, ProgramErrorsAreNotRetried) {
  Rig rig;
  Probe probe(rig.cfg);
  model::Model bad = probe.model;
  auto load_of_a = [&]() -> isa::Instr& {  // the copy t <- a (the first HBM read)
    for (auto& st : bad.streams)
      for (auto& in : st.instrs)
        if (in.opcode == isa::Opcode::DmaCopy && in.src == isa::make_addr(isa::Space::kHbm, probe.hbm_offset("a")))
          return in;
    throw std::runtime_error("the probe has no load of a");
  };
  load_of_a().src = isa::make_addr(isa::Space::kHbm, bad.hbm_window_bytes);  // just past the window
  auto lm = rig.runtime.load(bad);
  const int doorbells = rig.transport.doorbells;
  auto e = thrown<drv::DeviceFault>([&] { rig.runtime.run(*lm, probe.inputs); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->fault(), regs::FaultCode::HbmOutOfRange);
  EXPECT_EQ(rig.transport.doorbells - doorbells, 1);
  EXPECT_FALSE(rt::Runtime::retryable(*e));
  next_job_is_clean(rig);
}

TEST(Faults, SemaphoreDeadlockIsNotRetried) {
  Rig rig;
  Probe probe(rig.cfg);
  model::Model bad = probe.model;
  bad.streams.back().instrs.front().wait_en = 1;  // waits for a semaphore nothing signals
  bad.streams.back().instrs.front().wait_sem = 200;
  bad.streams.back().instrs.front().wait_value = 1;
  auto lm = rig.runtime.load(bad);
  rig.transport.mmio_write(regs::WATCHDOG_CYCLES, 5000);
  const int doorbells = rig.transport.doorbells;
  auto e = thrown<drv::DeviceFault>([&] { rig.runtime.run(*lm, probe.inputs); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->fault(), regs::FaultCode::Watchdog);
  EXPECT_EQ(rig.transport.doorbells - doorbells, 1);
  // The same deadlock without a watchdog ends in a timeout with every engine blocked: not retried either.
  rig.transport.mmio_write(regs::WATCHDOG_CYCLES, 0);
  rt::RunOptions o;
  o.timeout_cycles = 50'000;
  auto t = thrown<drv::TimeoutError>([&] { rig.runtime.run(*lm, probe.inputs, o); });
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->engine_running()) << t->what();
  EXPECT_TRUE(contains(t->what(), "for semaphore 200 >= 1 (it is 0)")) << t->what();
  EXPECT_EQ(rig.transport.doorbells - doorbells, 2);
  next_job_is_clean(rig);
}

}  // namespace
}  // namespace tcemu
