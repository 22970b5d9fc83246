// Driver against the in-process emulator: probe, allocation, hand-written jobs, faults and recovery.
// Each TEST runs in its own process (gtest_discover_tests), as SystemC allows one device per process.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "fixture.h"
#include "inproc_transport.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"

namespace tcemu {
namespace {

using isa::Instr;
using isa::Opcode;

using Fixture = test::DriverFixture;

Instr copy(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t d1 = 1, uint64_t s1 = 0, uint64_t t1 = 0) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes, in.d1_count = d1, in.d2_count = 1;
  in.src_d1_stride = s1, in.dst_d1_stride = t1;
  return in;
}

uint64_t hbm(uint64_t off) { return isa::make_addr(isa::Space::kHbm, off); }
uint64_t sbuf(const DeviceConfig& c, uint64_t part, uint64_t off) {
  return isa::make_addr(isa::Space::kSbuf, part * c.sbuf_partition_bytes + off);
}

TEST(Driver, ProbeReadsCapabilitiesFromRegisters) {
  Fixture f("tc1-16");
  EXPECT_EQ(f.driver.info().rows, 16);
  EXPECT_EQ(f.driver.info().cols, 16);
  EXPECT_EQ(f.driver.info().sbuf_partitions, 16);
  EXPECT_EQ(f.driver.info().sbuf_partition_bytes, f.cfg.sbuf_partition_bytes);
  EXPECT_EQ(f.driver.info().hbm_bytes, f.cfg.hbm_bytes);
  EXPECT_EQ(f.driver.info().dma_queues, 16);
  EXPECT_EQ(f.driver.info().num_semaphores, 256);
  EXPECT_EQ(f.driver.info().dma_bytes_per_cycle, f.cfg.dma_bytes_per_cycle);
  EXPECT_EQ(f.driver.info().hbm_bytes_per_cycle, f.cfg.hbm_bytes_per_cycle);
  EXPECT_EQ(f.driver.info().dma_latency_cycles, f.cfg.dma_latency_cycles);
  EXPECT_EQ(f.driver.info().dma_min_run_bytes, f.cfg.dma_min_run_bytes);
}

TEST(Driver, AllocatorReusesFreedBlocksAndReportsExhaustion) {
  Fixture f;
  uint64_t before = f.driver.bytes_free();
  uint64_t a = f.driver.alloc(10000), b = f.driver.alloc(5000, 64);
  EXPECT_EQ(a % 4096, 0u);
  EXPECT_EQ(b % 64, 0u);
  EXPECT_TRUE(b >= a + 10000 || a >= b + 5000);
  f.driver.free(a);
  f.driver.free(b);
  EXPECT_EQ(f.driver.bytes_free(), before);
  try {
    f.driver.alloc(f.cfg.hbm_bytes * 2);
    FAIL() << "expected a capacity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCapacity);
    EXPECT_NE(std::string(e.what()).find("largest free block"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.driver.free(12345), Error);
}

TEST(Driver, ScopedMemoryReturnsItsBlocksAlsoWhenTheScopeThrows) {
  Fixture f;
  const uint64_t before = f.driver.bytes_free();
  try {
    drv::ScopedMemory mem(f.driver);
    const std::vector<Instr> nops(3, Instr{.opcode = Opcode::Nop});
    const drv::StreamRef s = mem.stream(isa::kEngineVector, nops);
    EXPECT_EQ(s.count, 3u);
    EXPECT_EQ(s.addr % 64, 0u);
    mem.alloc(5000);
    EXPECT_LT(f.driver.bytes_free(), before);
    throw std::runtime_error("job failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(f.driver.bytes_free(), before);
}

// HBM -> SBUF -> HBM round trip across two DMA queues ordered by a semaphore; the 2-D pattern gathers
// every other 16-byte row.
TEST(Driver, DmaRoundTripThroughSbufWithSemaphore) {
  Fixture f;
  uint64_t win = f.driver.alloc(8192);
  std::vector<uint8_t> src(4096);
  std::iota(src.begin(), src.end(), 0);
  f.driver.write(win, src);
  Instr in = copy(hbm(0), sbuf(f.cfg, 2, 0), 16, 8, 32, f.cfg.sbuf_partition_bytes);  // 8 rows -> partitions 2..9? no: 8 partitions from 2
  in.d1_count = 6;  // partitions 2..7 of the 8
  in.signal_en = 1, in.signal_sem = 5, in.signal_value = 1;
  Instr out = copy(sbuf(f.cfg, 2, 0), hbm(4096), 16, 6, f.cfg.sbuf_partition_bytes, 16);
  out.wait_en = 1, out.wait_sem = 5, out.wait_value = 1;
  drv::Job job{win, 8192, {f.stream(isa::kEngineDma0 + 0, {in}), f.stream(isa::kEngineDma0 + 1, {out})}};
  drv::JobResult r = f.driver.run(job, 1'000'000);
  EXPECT_GT(r.cycles, 2u * f.cfg.dma_latency_cycles);  // the two copies ran one after the other
  std::vector<uint8_t> back(96);
  f.driver.read(win + 4096, back);
  for (int row = 0; row < 6; ++row)
    for (int i = 0; i < 16; ++i) ASSERT_EQ(back[row * 16 + i], src[row * 32 + i]) << row << " " << i;
}

TEST(Driver, CyclesAreDeterministic) {
  // The same job twice on the same device gives the same cycle count.
  Fixture f;
  uint64_t win = f.driver.alloc(65536);
  auto s0 = f.stream(isa::kEngineDma0, {copy(hbm(0), sbuf(f.cfg, 0, 0), 1000, 8, 1000, f.cfg.sbuf_partition_bytes)});
  drv::Job job{win, 65536, {s0}};
  uint64_t c1 = f.driver.run(job, 1'000'000).cycles;
  uint64_t c2 = f.driver.run(job, 1'000'000).cycles;
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(c1, f.cfg.dma_latency_cycles + (8000 + f.cfg.dma_bytes_per_cycle - 1) / f.cfg.dma_bytes_per_cycle);
}

TEST(Driver, DmaOutsideHbmWindowFaultsWithEngineAndAddressThenRecovers) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  std::vector<uint8_t> pattern(64, 0xAB);
  f.driver.write(win, pattern);
  // Queue 3's second instruction reads 64 bytes at window offset 4090: 58 bytes past the window.
  auto bad = f.stream(isa::kEngineDma0 + 3,
                      {copy(hbm(0), sbuf(f.cfg, 0, 0), 64), copy(hbm(4090), sbuf(f.cfg, 1, 0), 64)});
  try {
    f.driver.run({win, 4096, {bad}}, 1'000'000);
    FAIL() << "expected a device fault";
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::HbmOutOfRange);
    EXPECT_EQ(e.engine(), isa::kEngineDma0 + 3);
    EXPECT_EQ(e.pc(), 1u);
    EXPECT_EQ(e.addr(), hbm(4090));
    std::string msg = e.what();
    EXPECT_NE(msg.find("dma3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("hbm:0xffa"), std::string::npos) << msg;
    EXPECT_NE(msg.find("instruction 1"), std::string::npos) << msg;
  }
  // The device stays halted until reset; after reset the next job runs correctly and HBM is intact.
  f.driver.reset();
  auto good = f.stream(isa::kEngineDma0, {copy(hbm(0), sbuf(f.cfg, 0, 0), 64), });
  auto back = f.stream(isa::kEngineDma0 + 1, {[&] {
                         Instr i = copy(sbuf(f.cfg, 0, 0), hbm(1024), 64);
                         i.wait_en = 1, i.wait_sem = isa::kEngineDma0, i.wait_value = 1;
                         return i;
                       }()});
  // The first stream must signal for the second to start.
  {
    Instr i = copy(hbm(0), sbuf(f.cfg, 0, 0), 64);
    i.signal_en = 1, i.signal_sem = isa::kEngineDma0, i.signal_value = 1;
    good = f.stream(isa::kEngineDma0, {i});
  }
  f.driver.run({win, 4096, {good, back}}, 1'000'000);
  std::vector<uint8_t> out(64);
  f.driver.read(win + 1024, out);
  EXPECT_EQ(out, pattern);
}

TEST(Driver, BadOpcodeFaultNamesEngineAndInstruction) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  std::vector<uint8_t> code(2 * isa::kInstrBytes, 0);
  Instr nop;
  nop.opcode = Opcode::Nop;
  isa::encode_to(nop, std::span<uint8_t, isa::kInstrBytes>(code.data(), isa::kInstrBytes));
  code[isa::kInstrBytes] = 0xEE;  // unknown opcode at pc 1
  uint64_t at = f.driver.alloc(code.size(), 64);
  f.driver.write(at, code);
  try {
    f.driver.run({win, 4096, {{isa::kEngineTensor, at, 2}}}, 1'000'000);
    FAIL() << "expected a device fault";
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::BadOpcode);
    EXPECT_EQ(e.engine(), isa::kEngineTensor);
    EXPECT_EQ(e.pc(), 1u);
    EXPECT_EQ(e.info(), 0xEEu);
  }
  f.driver.reset();
  f.driver.run({win, 4096, {f.stream(isa::kEngineTensor, {nop})}}, 1'000'000);
}

TEST(Driver, WrongEngineAndBadSpaceFault) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  Instr mm;
  mm.opcode = Opcode::Matmul;
  mm.k = mm.m = mm.n = 1;
  try {
    f.driver.run({win, 4096, {f.stream(isa::kEngineDma0, {mm})}}, 1'000'000);
    FAIL();
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::WrongEngine);
  }
  f.driver.reset();
  // DMA may not write PSUM.
  try {
    f.driver.run({win, 4096, {f.stream(isa::kEngineDma0, {copy(hbm(0), isa::make_addr(isa::Space::kPsum, 0), 4)})}}, 1'000'000);
    FAIL();
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::BadSpace);
  }
}

TEST(Driver, DeadlockedSemaphoreTimesOutInDeviceCyclesAndResetRecovers) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  Instr wait_forever;
  wait_forever.opcode = Opcode::Nop;
  wait_forever.wait_en = 1, wait_forever.wait_sem = 9, wait_forever.wait_value = 1;
  uint32_t seq = f.driver.submit({win, 4096, {f.stream(isa::kEngineTensor, {wait_forever})}});
  uint64_t before = f.driver.cycle();
  try {
    f.driver.wait(seq, 50'000);
    FAIL() << "expected a timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout);
    EXPECT_NE(std::string(e.what()).find("50000 device cycles"), std::string::npos) << e.what();
  }
  EXPECT_GE(f.driver.cycle() - before, 50'000u);
  f.driver.reset();
  Instr nop;
  nop.opcode = Opcode::Nop;
  f.driver.run({win, 4096, {f.stream(isa::kEngineTensor, {nop})}}, 1'000'000);
}

TEST(Driver, BadJobDescriptorWindowFaults) {
  Fixture f;
  Instr nop;
  nop.opcode = Opcode::Nop;
  try {
    f.driver.run({f.cfg.hbm_bytes - 100, 4096, {f.stream(isa::kEngineTensor, {nop})}}, 1'000'000);
    FAIL();
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::BadJob);
  }
}

TEST(Driver, DeadlockIsCaughtByTheWatchdogNamingEnginesSemaphoresAndPcs) {
  Fixture f;
  uint64_t win = f.driver.alloc(4096);
  f.transport.mmio_write(regs::WATCHDOG_CYCLES, 5000);
  // dma0 runs one copy, then waits for s17 >= 1; dma1 waits for s16 >= 2: neither ever comes.
  Instr c = copy(hbm(0), sbuf(f.cfg, 0, 0), 64);
  c.signal_en = 1, c.signal_sem = 16, c.signal_value = 1;
  Instr w0 = copy(hbm(0), sbuf(f.cfg, 1, 0), 64);
  w0.wait_en = 1, w0.wait_sem = 17, w0.wait_value = 1;
  Instr w1 = copy(hbm(0), sbuf(f.cfg, 2, 0), 64);
  w1.wait_en = 1, w1.wait_sem = 16, w1.wait_value = 2;
  uint64_t t0 = f.driver.cycle();
  try {
    f.driver.run({win, 4096, {f.stream(isa::kEngineDma0, {c, w0}), f.stream(isa::kEngineDma0 + 1, {w1})}}, 10'000'000);
    FAIL() << "expected the watchdog";
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::Watchdog);
    std::string m = e.what();
    EXPECT_NE(m.find("engine dma0 at instruction 1 waits for semaphore 17 >= 1 (it is 0)"), std::string::npos) << m;
    EXPECT_NE(m.find("engine dma1 at instruction 0 waits for semaphore 16 >= 2 (it is 1)"), std::string::npos) << m;
  }
  // Deadlocked once dma0's copy finished (latency + 4 cycles), then exactly the watchdog period.
  EXPECT_EQ(f.driver.cycle() - t0, f.cfg.dma_latency_cycles + 64 / f.cfg.dma_bytes_per_cycle + 5000);
  f.driver.reset();
  EXPECT_EQ(f.transport.mmio_read(regs::WATCHDOG_CYCLES), regs::kDefaultWatchdogCycles);
  f.driver.run({win, 4096, {f.stream(isa::kEngineDma0, {copy(hbm(0), sbuf(f.cfg, 0, 0), 64)})}}, 1'000'000);
}

TEST(Driver, TraceRecordsAndCountersDescribeTheJob) {
  Fixture f;
  uint64_t win = f.driver.alloc(65536);
  uint64_t trace = f.driver.alloc(16 * kTraceRecordBytes, 64);
  Instr a = copy(hbm(0), sbuf(f.cfg, 0, 0), 512, 4, 512, f.cfg.sbuf_partition_bytes);
  a.signal_en = 1, a.signal_sem = 16, a.signal_value = 1;
  Instr b = copy(sbuf(f.cfg, 0, 0), hbm(8192), 512, 4, f.cfg.sbuf_partition_bytes, 512);
  b.wait_en = 1, b.wait_sem = 16, b.wait_value = 1;
  drv::Job job{win, 65536, {f.stream(isa::kEngineDma0, {a}), f.stream(isa::kEngineDma0 + 5, {b})}};
  job.trace_addr = trace, job.trace_capacity = 16;
  f.driver.clear_counters();
  drv::JobResult r = f.driver.run(job, 1'000'000);
  ASSERT_EQ(r.trace_count, 2u);
  auto recs = f.driver.read_trace(trace, r.trace_count);
  const uint64_t one = f.cfg.dma_latency_cycles + 2048 / f.cfg.dma_bytes_per_cycle;
  EXPECT_EQ(recs[0].engine, isa::kEngineDma0);
  EXPECT_EQ(recs[0].opcode, uint16_t(Opcode::DmaCopy));
  EXPECT_EQ(recs[0].start, 0u);
  EXPECT_EQ(recs[0].end, one);
  EXPECT_EQ(recs[0].bytes, 2048u);
  EXPECT_EQ(recs[0].signal_sem, 16u);
  EXPECT_EQ(recs[1].engine, isa::kEngineDma0 + 5);
  EXPECT_EQ(recs[1].start, one);
  EXPECT_EQ(recs[1].end, 2 * one);
  EXPECT_EQ(recs[1].wait_cycles, one);
  EXPECT_EQ(recs[1].wait_sem, 16u);
  EXPECT_EQ(recs[1].wait_value, 1u);
  EXPECT_EQ(r.cycles, 2 * one);
  drv::Counters c = f.driver.read_counters();
  EXPECT_EQ(c.busy[isa::kEngineDma0], one);
  EXPECT_EQ(c.busy[isa::kEngineDma0 + 5], one);
  EXPECT_EQ(c.stall[isa::kEngineDma0 + 5], one);
  EXPECT_EQ(c.dma_bytes, 4096u);
  // A buffer too small: records are counted, not written past the capacity.
  job.trace_capacity = 1;
  EXPECT_EQ(f.driver.run(job, 1'000'000).trace_count, 2u);
}

}  // namespace
}  // namespace tcemu
