// The notify instruction end to end: encoding and disassembly, the device's notification FIFO and its
// registers (order, engines, cycles, overflow, reset), the driver draining it while it waits, and the
// runtime's RunResult. Expected cycles come from the timing rules of docs/isa.md, computed here from the
// config. Each TEST runs in its own process (gtest_discover_tests), as SystemC allows one device per process.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <vector>

#include "fixture.h"
#include "inproc_transport.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"
#include "tcemu/regs.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace drv {
// Readable gtest failures.
void PrintTo(const Notification& x, std::ostream* os) {
  *os << "{tag " << x.tag << ", " << isa::engine_name(x.engine) << ", cycle " << x.cycle << ", job " << x.seq << "}";
}
}  // namespace drv

namespace {

using drv::Notification;
using isa::Instr;
using isa::Opcode;

using Fixture = test::DriverFixture;

Instr notify(uint32_t tag) {
  Instr in;
  in.opcode = Opcode::Notify;
  in.tag = tag;
  return in;
}
Instr waits(Instr in, uint64_t sem, uint64_t value) {
  in.wait_en = 1, in.wait_sem = sem, in.wait_value = value;
  return in;
}
Instr signals(Instr in, uint64_t sem) {
  in.signal_en = 1, in.signal_sem = sem, in.signal_value = 1;
  return in;
}
Instr copy_to_sbuf(uint64_t bytes) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = isa::make_addr(isa::Space::kHbm, 0), in.dst = isa::make_addr(isa::Space::kSbuf, 0);
  in.bytes = bytes, in.d1_count = 1, in.d2_count = 1;
  return in;
}
Instr memset1() {  // one f32 element in SBUF partition 0
  Instr in;
  in.opcode = Opcode::Memset;
  in.np = 1, in.n0 = 1, in.n1 = 1;
  in.out = isa::pack_operand({isa::Space::kSbuf, isa::DType::kF32, 0, 0, 1, 0});
  return in;
}
Instr matmul(uint64_t k, uint64_t m, uint64_t n) {
  Instr in;
  in.opcode = Opcode::Matmul;
  in.k = k, in.m = m, in.n = n;
  return in;
}
std::vector<Instr> notifies(uint32_t first_tag, int count) {
  std::vector<Instr> v;
  for (int i = 0; i < count; ++i) v.push_back(notify(first_tag + uint32_t(i)));
  return v;
}

// docs/isa.md timing, alone on the device: dma_copy of one run HBM->SBUF, a one-element memset, a matmul.
uint64_t dma_cycles(const DeviceConfig& c, uint64_t bytes) {
  const uint64_t e = std::max<uint64_t>(bytes, c.dma_min_run_bytes);
  const uint64_t r = std::min<uint64_t>(c.dma_bytes_per_cycle, c.hbm_bytes_per_cycle);
  return c.dma_latency_cycles + (e + r - 1) / r;
}
uint64_t memset1_cycles(const DeviceConfig& c) {
  return c.vector_start_cycles + std::max<uint64_t>(c.vector_min_cycles, 1);
}
uint64_t matmul_cycles(const DeviceConfig& c, uint64_t k, uint64_t n) { return k + n + uint64_t(c.rows + c.cols - 1); }

TEST(NotifyIsa, EncodesDecodesAndDisassemblesFromTheTable) {
  const isa::OpcodeInfo* info = isa::find_mnemonic("notify");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->code, 0x02);
  EXPECT_EQ(info->opcode, Opcode::Notify);
  for (int e : {isa::kEngineTensor, isa::kEngineVector, isa::kEngineScalar, isa::kEngineDma0, isa::kEngineDma0 + 15})
    EXPECT_TRUE(isa::engine_accepts(e, Opcode::Notify)) << isa::engine_name(e);

  Instr in = signals(waits(notify(0xDEADBEEF), 3, 2), 4);
  const isa::Words w = isa::encode(in);
  EXPECT_EQ(w[0] & 0xFF, 0x02u);
  EXPECT_EQ(w[1], 0xDEADBEEFull);  // tag: word 1, bits 31:0
  for (int i = 2; i < 7; ++i) EXPECT_EQ(w[i], 0u) << "word " << i;
  isa::Decoded d = isa::decode(w);
  ASSERT_TRUE(d.instr) << d.error;
  EXPECT_EQ(d.instr->opcode, Opcode::Notify);
  EXPECT_EQ(d.instr->tag, 0xDEADBEEFu);
  EXPECT_EQ(d.instr->wait_sem, 3u);
  EXPECT_EQ(d.instr->wait_value, 2u);
  EXPECT_EQ(d.instr->signal_sem, 4u);
  EXPECT_EQ(isa::encode(*d.instr), w);
  EXPECT_EQ(isa::disassemble(*d.instr), "notify tag=3735928559 wait=s3>=2 signal=s4+=1");
  EXPECT_EQ(isa::disassemble(notify(7)), "notify tag=7");

  isa::Words bad = w;
  bad[1] |= uint64_t(1) << 32;  // above the tag: reserved
  isa::Decoded r = isa::decode(bad);
  EXPECT_FALSE(r.instr);
  EXPECT_EQ(r.error, "notify: reserved bits set in word 1");
  Instr wide = notify(0);
  wide.tag = uint64_t(1) << 32;
  try {
    isa::encode(wide);
    FAIL() << "expected an encoding error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kEncoding);
    EXPECT_NE(std::string(e.what()).find("field 'tag'"), std::string::npos) << e.what();
  }
}

// Six notifies on four engines, chained by semaphores through a DMA copy, a memset and a matmul:
//   dma0:   copy 64 B; notify 100 -> s1           (completes at D = dma_cycles(64))
//   vector: notify 200 waits s1; memset; notify 201 -> s2     (200 at D, 201 at D + V)
//   tensor: notify 300 waits s2; matmul; notify 301 -> s3     (300 at D + V, 301 at D + V + k + n + L)
//   dma1:   notify 400 waits s3                               (at the same cycle as 301)
TEST(Notify, EnginesDeliverTagsInSemaphoreOrderWithTheirEnginesAndCycles) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  uint64_t trace = f.driver.alloc(16 * kTraceRecordBytes, 64);
  const int dma0 = isa::kEngineDma0, dma1 = isa::kEngineDma0 + 1, vec = isa::kEngineVector, te = isa::kEngineTensor;
  const uint64_t k = 8, m = 8, n = 16;
  drv::Job job{win,
               4096,
               {f.stream(dma0, {copy_to_sbuf(64), signals(notify(100), 1)}),
                f.stream(vec, {waits(notify(200), 1, 1), memset1(), signals(notify(201), 2)}),
                f.stream(te, {waits(notify(300), 2, 1), matmul(k, m, n), signals(notify(301), 3)}),
                f.stream(dma1, {waits(notify(400), 3, 1)})}};
  job.trace_addr = trace, job.trace_capacity = 16;

  const uint64_t d = dma_cycles(f.cfg, 64), v = d + memset1_cycles(f.cfg), t = v + matmul_cycles(f.cfg, k, n);
  const std::vector<Notification> expected = {
      {100, dma0, d, 1}, {200, vec, d, 1}, {201, vec, v, 1}, {300, te, v, 1}, {301, te, t, 1}, {400, dma1, t, 1},
  };

  std::vector<Notification> seen;
  bool busy_at_first = false;
  f.driver.set_notify_handler([&](const Notification& x) {
    if (seen.empty()) busy_at_first = (f.reg(regs::STATUS) & regs::kStatusBusy) != 0;
    seen.push_back(x);
  });
  drv::JobResult r = f.driver.run(job, 1'000'000);
  EXPECT_EQ(r.notifications, expected);
  EXPECT_EQ(seen, expected);
  EXPECT_TRUE(busy_at_first) << "the first notification reaches the host while the job runs";
  EXPECT_EQ(r.notifications_dropped, 0u);
  EXPECT_EQ(r.cycles, t);  // the job still completes, with the notifies costing no cycles
  EXPECT_EQ(f.reg(regs::IRQ_STATUS) & regs::kIrqNotify, 0u);
  EXPECT_EQ(f.reg(regs::NOTIFY_COUNT), 0u);

  // One trace record per instruction; a notify's is a zero-length slice at its cycle.
  ASSERT_EQ(r.trace_count, 9u);
  int notify_records = 0;
  for (const TraceRecord& rec : f.driver.read_trace(trace, r.trace_count)) {
    if (rec.opcode != uint16_t(Opcode::Notify)) continue;
    ++notify_records;
    EXPECT_EQ(rec.start, rec.end);
    EXPECT_EQ(rec.bytes, 0u);
    const bool found = std::any_of(expected.begin(), expected.end(), [&](const Notification& x) {
      return x.engine == rec.engine && x.cycle == rec.start;
    });
    EXPECT_TRUE(found) << "notify record of " << isa::engine_name(rec.engine) << " pc " << rec.pc << " at "
                       << rec.start;
  }
  EXPECT_EQ(notify_records, 6);

  // The same job again: the same notifications, now of job 2.
  seen.clear();
  r = f.driver.run(job, 1'000'000);
  ASSERT_EQ(r.notifications.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    Notification x = expected[i];
    x.seq = 2;
    EXPECT_EQ(r.notifications[i], x) << i;
  }
}

// On the tensor engine a notify waits for the matmul before it to reach PSUM: alone in its job, the matmul
// completes at k + n + L, and so does the notify.
TEST(Notify, OnTheTensorEngineFollowsTheMatmulsBeforeIt) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  const uint64_t k = 5, m = 3, n = 40;
  drv::JobResult r = f.driver.run({win, 4096, {f.stream(isa::kEngineTensor, {matmul(k, m, n), notify(9)})}}, 1'000'000);
  const uint64_t t = matmul_cycles(f.cfg, k, n);
  EXPECT_EQ(r.notifications, (std::vector<Notification>{{9, isa::kEngineTensor, t, 1}}));
  EXPECT_EQ(r.cycles, t);
}

// 100 notifies in one cycle on one engine: the host cannot drain in between, so the FIFO keeps the first
// 64 (regs::kNotifyFifoDepth, docs/registers.md) and NOTIFY_DROPPED counts the other 36.
TEST(Notify, FullFifoDropsTheRestAndCountsThemStickily) {
  Fixture f;
  ASSERT_EQ(regs::kNotifyFifoDepth, 64u);
  uint64_t win = f.driver.alloc(4096);
  drv::Job job{win, 4096, {f.stream(isa::kEngineVector, notifies(1000, 100))}};

  // Below the driver: submit, then let the device run to completion acknowledging only the interrupts.
  uint32_t seq = f.driver.submit(job);
  for (int i = 0; i < 100 && f.reg(regs::COMPLETED_SEQ) != seq; ++i) {
    f.transport.mmio_write(regs::IRQ_STATUS, regs::kIrqNotify | regs::kIrqJobDone);
    f.transport.wait_irq(100'000);
  }
  ASSERT_EQ(f.reg(regs::COMPLETED_SEQ), seq);
  EXPECT_EQ(f.reg(regs::NOTIFY_COUNT), 64u);
  EXPECT_EQ(f.reg(regs::NOTIFY_DROPPED), 36u);
  for (uint32_t i = 0; i < 64; ++i) {
    ASSERT_EQ(f.reg(regs::NOTIFY_TAG), 1000 + i);
    EXPECT_EQ(f.reg(regs::NOTIFY_ENGINE), uint32_t(isa::kEngineVector));
    EXPECT_EQ(f.reg(regs::NOTIFY_CYCLE_LO), 0u);  // no waits, no cost: all at the job's first cycle
    EXPECT_EQ(f.reg(regs::NOTIFY_CYCLE_HI), 0u);
    EXPECT_EQ(f.reg(regs::NOTIFY_SEQ), seq);
    f.transport.mmio_write(regs::NOTIFY_POP, 1);
  }
  EXPECT_EQ(f.reg(regs::NOTIFY_COUNT), 0u);
  EXPECT_EQ(f.reg(regs::NOTIFY_TAG), 0u);       // empty FIFO reads 0
  f.transport.mmio_write(regs::NOTIFY_POP, 1);  // popping an empty FIFO does nothing
  EXPECT_EQ(f.reg(regs::NOTIFY_COUNT), 0u);
  EXPECT_EQ(f.reg(regs::NOTIFY_DROPPED), 36u);  // sticky

  // Through the driver: the same job reports the 64 it kept and the 36 it lost (the counter's increase).
  drv::JobResult r = f.driver.run(job, 1'000'000);
  ASSERT_EQ(r.notifications.size(), 64u);
  for (uint32_t i = 0; i < 64; ++i) EXPECT_EQ(r.notifications[i].tag, 1000 + i);
  EXPECT_EQ(r.notifications_dropped, 36u);
  EXPECT_EQ(f.reg(regs::NOTIFY_DROPPED), 72u);

  f.driver.reset();
  EXPECT_EQ(f.reg(regs::NOTIFY_DROPPED), 0u);
}

// Reset empties the FIFO (device) and the notifications drained but not returned (driver); the next job,
// whose sequence number restarts at 1, gets only its own.
TEST(Notify, ResetClearsTheFifoAndTheNextJobRunsCorrectly) {
  Fixture f;
  f.transport.mmio_write(regs::WATCHDOG_CYCLES, 0);  // let the stuck jobs below hang, not fault
  uint64_t win = f.driver.alloc(4096);
  std::vector<Instr> stuck = notifies(1, 5);
  stuck.push_back(waits(notify(99), 9, 1));  // nothing signals s9
  const drv::Job hang{win, 4096, {f.stream(isa::kEngineVector, stuck)}};

  f.driver.submit(hang);
  EXPECT_TRUE(f.transport.wait_irq(10'000));  // the NOTIFY interrupt, not drained
  EXPECT_EQ(f.reg(regs::IRQ_STATUS) & regs::kIrqNotify, regs::kIrqNotify);
  EXPECT_EQ(f.reg(regs::NOTIFY_COUNT), 5u);
  f.driver.reset();
  EXPECT_EQ(f.reg(regs::NOTIFY_COUNT), 0u);
  EXPECT_EQ(f.reg(regs::NOTIFY_TAG), 0u);
  EXPECT_EQ(f.reg(regs::IRQ_STATUS), 0u);

  // The driver drains them while it waits, then times out; reset forgets them.
  f.transport.mmio_write(regs::WATCHDOG_CYCLES, 0);
  std::vector<Notification> seen;
  f.driver.set_notify_handler([&](const Notification& x) { seen.push_back(x); });
  uint32_t seq = f.driver.submit(hang);
  EXPECT_THROW(f.driver.wait(seq, 10'000), Error);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[4], (Notification{5, isa::kEngineVector, 0, seq}));
  f.driver.reset();

  seen.clear();
  Instr c = signals(copy_to_sbuf(64), 1);
  drv::JobResult r = f.driver.run(
      {win,
       4096,
       {f.stream(isa::kEngineDma0, {c, notify(42)}), f.stream(isa::kEngineScalar, {waits(notify(43), 1, 1)})}},
      1'000'000);
  const uint64_t d = dma_cycles(f.cfg, 64);
  const std::vector<Notification> expected = {{42, isa::kEngineDma0, d, 1}, {43, isa::kEngineScalar, d, 1}};
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.notifications, expected);
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(r.notifications_dropped, 0u);
  EXPECT_EQ(r.cycles, d);
}

// A fault after a notify: the handler hears of the notify before wait() throws the fault.
TEST(Notify, NotificationsBeforeAFaultReachTheHandler) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  Instr bad = copy_to_sbuf(64);
  bad.src = isa::make_addr(isa::Space::kHbm, 8192);  // outside the 4096-byte window
  std::vector<Notification> seen;
  f.driver.set_notify_handler([&](const Notification& x) { seen.push_back(x); });
  EXPECT_THROW(f.driver.run({win, 4096, {f.stream(isa::kEngineDma0 + 2, {notify(5), bad})}}, 1'000'000),
               drv::DeviceFault);
  EXPECT_EQ(seen, (std::vector<Notification>{{5, isa::kEngineDma0 + 2, 0, 1}}));
}

// The runtime hands the job's notifications to its caller.
TEST(NotifyRuntime, RunResultCarriesTheJobsNotifications) {
  Fixture f;
  model::Model m;
  m.name = "notify";
  m.config_name = f.cfg.name;
  m.array_rows = f.cfg.rows, m.array_cols = f.cfg.cols;
  m.hbm_window_bytes = 4096;
  m.streams = {{isa::kEngineScalar, {notify(1), signals(notify(2), 7)}},
               {isa::kEngineDma0 + 3, {waits(notify(3), 7, 1)}}};
  rt::Runtime runtime(f.driver);
  auto lm = runtime.load(m);
  rt::RunResult r = runtime.run(*lm, {});
  EXPECT_EQ(r.notifications,
            (std::vector<Notification>{
                {1, isa::kEngineScalar, 0, 1}, {2, isa::kEngineScalar, 0, 1}, {3, isa::kEngineDma0 + 3, 0, 1}}));
  EXPECT_EQ(r.notifications_dropped, 0u);
}

}  // namespace
}  // namespace tcemu
