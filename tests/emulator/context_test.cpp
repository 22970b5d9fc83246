// Device contexts and the device side of fault injection, below the driver's recovery logic: several
// contexts of one device (each driven by its own drv::Driver over a context of the same emu::Device), page
// isolation checked by the device, and what each injected fault does to registers, memory and records.
// Each TEST runs in its own process (gtest_discover_tests): SystemC allows one device per process.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "tcemu/crc32.h"
#include "tcemu/drv/driver.h"
#include "tcemu/emu/device.h"
#include "tcemu/faults.h"
#include "tcemu/isa.h"
#include "tcemu/regs.h"

namespace tcemu {
namespace {

using isa::Instr;
using isa::Opcode;
using namespace regs;

// A Transport on one context of a device shared in this process (what a device server does per client).
class ContextTransport : public drv::Transport {
 public:
  ContextTransport(emu::Device& d, int ctx) : d_(d), ctx_(ctx) {}
  uint32_t mmio_read(uint32_t off) override { return d_.mmio_read(ctx_, off); }
  void mmio_write(uint32_t off, uint32_t v) override { d_.mmio_write(ctx_, off, v); }
  void mem_read(uint64_t a, std::span<uint8_t> dst) override { d_.hbm_read(ctx_, a, dst); }
  void mem_write(uint64_t a, std::span<const uint8_t> src) override { d_.hbm_write(ctx_, a, src); }
  uint64_t mem_alloc(uint64_t bytes, uint64_t align) override { return d_.hbm_alloc(ctx_, bytes, align); }
  void mem_free(uint64_t a) override { d_.hbm_free(ctx_, a); }
  uint64_t mem_bytes_free() override { return d_.hbm_bytes_free(); }
  void inject_faults(const fi::Plan& p) override { d_.inject_faults(ctx_, p); }
  bool wait_irq(uint64_t t) override { return d_.run(t, 1u << ctx_); }
  std::string describe() const override { return "context " + std::to_string(ctx_); }
  int ctx() const { return ctx_; }

 private:
  emu::Device& d_;
  int ctx_;
};

Instr copy(uint64_t src, uint64_t dst, uint64_t bytes) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes, in.d1_count = 1, in.d2_count = 1;
  return in;
}
uint64_t hbm(uint64_t off) { return isa::make_addr(isa::Space::kHbm, off); }
uint64_t sbuf(uint64_t off) { return isa::make_addr(isa::Space::kSbuf, off); }

emu::DeviceOptions isolated() {
  emu::DeviceOptions o;
  o.isolate_contexts = true;
  return o;
}

// One client: a context, its driver, and a job that copies 256 bytes HBM -> SBUF -> HBM in its window.
struct Client {
  Client(emu::Device& d, int ctx) : t(d, ctx), drv(t) {}
  ContextTransport t;
  drv::Driver drv;
  uint64_t win = 0;
  std::vector<uint8_t> data;

  drv::StreamRef stream(int engine, const std::vector<Instr>& instrs) {
    const std::vector<uint8_t> code = isa::encode_stream(instrs);
    const uint64_t at = drv.alloc(code.size(), 64);
    drv.write(at, code);
    return {engine, at, uint32_t(instrs.size())};
  }
  // Fills the window's first 256 bytes with a pattern seeded by `seed`; returns the copy job.
  drv::Job round_trip(uint8_t seed, uint64_t sbuf_off = 0) {
    if (!win) win = drv.alloc(8192);
    data.resize(256);
    std::iota(data.begin(), data.end(), seed);
    drv.write(win, data);
    return {win, 8192, {stream(isa::kEngineDma0, {copy(hbm(0), sbuf(sbuf_off), 256), copy(sbuf(sbuf_off), hbm(4096), 256)})}};
  }
  std::vector<uint8_t> result() {
    std::vector<uint8_t> back(256);
    drv.read(win + 4096, back);
    return back;
  }
};

TEST(Contexts, TwoClientsRunJobsAndEachSeesOnlyItsOwnRegisters) {
  emu::Device d(find_config("tc1-8"), isolated());
  Client a(d, 0), b(d, d.open_context());
  EXPECT_EQ(a.t.mmio_read(CONTEXT_ID), 0u);
  EXPECT_EQ(b.t.mmio_read(CONTEXT_ID), 1u);
  // Both submit before either waits: the device takes them round-robin; each completes in its context.
  const uint32_t sa = a.drv.submit(a.round_trip(1)), sb = b.drv.submit(b.round_trip(100, 1024));
  EXPECT_EQ(sa, 1u);
  EXPECT_EQ(sb, 1u);  // sequence numbers are per context
  const drv::JobResult rb = b.drv.wait(sb, 1'000'000), ra = a.drv.wait(sa, 1'000'000);
  EXPECT_EQ(a.result(), a.data);
  EXPECT_EQ(b.result(), b.data);
  EXPECT_EQ(ra.cycles, rb.cycles);  // the same work takes the same cycles, whichever context ran first
  EXPECT_EQ(a.t.mmio_read(COMPLETED_SEQ), 1u);
  EXPECT_EQ(b.t.mmio_read(COMPLETED_SEQ), 1u);
}

TEST(Contexts, AJobThatDmasIntoAnotherContextsMemoryFaultsAndLeavesItIntact) {
  emu::Device d(find_config("tc1-8"), isolated());
  Client a(d, 0), b(d, d.open_context());
  b.round_trip(7);
  b.drv.run(b.round_trip(7), 1'000'000);
  const std::vector<uint8_t> before = b.result();
  // a's job: window at b's allocation (the descriptor's window is a's to choose; the pages are not).
  const drv::Job evil{b.win, 8192, {a.stream(isa::kEngineDma0 + 2, {copy(sbuf(0), hbm(4096), 256)})}};
  try {
    a.drv.run(evil, 1'000'000);
    FAIL() << "expected HbmProtection";
  } catch (const drv::DeviceFault& f) {
    EXPECT_EQ(f.fault(), FaultCode::HbmProtection) << f.what();
    EXPECT_EQ(f.engine(), isa::kEngineDma0 + 2);
    EXPECT_EQ(f.addr(), hbm(4096));
  }
  EXPECT_EQ(b.result(), before);
  // The host side is refused too, and names the range.
  std::vector<uint8_t> peek(16);
  try {
    a.drv.read(b.win, peek);
    FAIL() << "expected the read to be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not allocate"), std::string::npos) << e.what();
  }
  EXPECT_THROW(a.drv.write(b.win, peek), Error);
  EXPECT_THROW(a.drv.free(b.win), Error);
  // A request so large that rounding it to pages would wrap is refused, not granted a few pages.
  try {
    a.drv.alloc(UINT64_MAX - 100);
    FAIL() << "expected a capacity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCapacity) << e.what();
  }
  // a's fault halted only a: b runs on, and a runs again after its reset.
  EXPECT_EQ(b.t.mmio_read(STATUS) & kStatusFault, 0u);
  b.drv.run(b.round_trip(9), 1'000'000);
  EXPECT_EQ(b.result(), b.data);
  a.drv.reset();
  a.drv.run(a.round_trip(3), 1'000'000);
  EXPECT_EQ(a.result(), a.data);
}

TEST(Contexts, ClosingAContextAbortsItsJobAndFreesAndZeroesItsMemory) {
  emu::Device d(find_config("tc1-8"), isolated());
  const uint64_t free0 = d.hbm_bytes_free();
  const int c = d.open_context();
  uint64_t addr = 0;
  {
    Client b(d, c);
    // A job that never ends (a semaphore nobody signals; the watchdog is off).
    b.t.mmio_write(WATCHDOG_CYCLES, 0);
    Instr stuck = copy(hbm(0), sbuf(0), 64);
    stuck.wait_en = 1, stuck.wait_sem = 3, stuck.wait_value = 1;
    b.win = b.drv.alloc(8192);
    addr = b.win;
    b.drv.write(b.win, std::vector<uint8_t>(64, 0xEE));
    b.drv.submit({b.win, 8192, {b.stream(isa::kEngineDma0, {stuck})}});
    EXPECT_FALSE(b.t.wait_irq(10'000));
    EXPECT_LT(d.hbm_bytes_free(), free0);
  }
  d.close_context(c);
  EXPECT_EQ(d.hbm_bytes_free(), free0);
  // The next owner of those pages finds zeros, and context 0 runs normally.
  Client a(d, 0);
  const uint64_t again = a.drv.alloc(8192);
  EXPECT_LE(again, addr + 8192);
  std::vector<uint8_t> z(8192, 1);
  a.drv.read(again, z);
  EXPECT_EQ(z, std::vector<uint8_t>(8192, 0));
  a.drv.run(a.round_trip(5), 1'000'000);
  EXPECT_EQ(a.result(), a.data);
}

TEST(FaultInjection, CompletionRecordCarriesSeqCyclesAndCrc) {
  emu::Device d(find_config("tc1-8"));
  Client a(d, 0);
  const drv::JobResult r = a.drv.run(a.round_trip(1), 1'000'000);
  // The driver's ring is its first allocation; entry 0 holds job 1's record.
  const uint64_t ring = a.t.mmio_read(RING_BASE_LO) | uint64_t(a.t.mmio_read(RING_BASE_HI)) << 32;
  std::vector<uint8_t> rec(kCompletionBytes);
  a.drv.read(ring + kCompletionOffset, rec);
  auto u32 = [&](int at) { return uint32_t(rec[at]) | rec[at + 1] << 8 | rec[at + 2] << 16 | uint32_t(rec[at + 3]) << 24; };
  EXPECT_EQ(u32(0), kCompletionMagic);
  EXPECT_EQ(u32(4), r.seq);
  EXPECT_EQ(u32(8) | uint64_t(u32(12)) << 32, r.cycles);
  EXPECT_EQ(u32(20), crc32(std::span<const uint8_t>(rec.data(), 20)));
}

TEST(FaultInjection, DmaErrorFaultsTheNthTransferOfTheJob) {
  emu::Device d(find_config("tc1-8"));
  Client a(d, 0);
  a.drv.run(a.round_trip(1), 1'000'000);  // before arming: not counted
  a.t.inject_faults(fi::parse("dma_error job=2 transfer=2"));
  a.drv.run(a.round_trip(2), 1'000'000);  // job 1 of the plan
  try {
    a.drv.run(a.round_trip(3), 1'000'000);
    FAIL() << "expected DmaError";
  } catch (const drv::DeviceFault& f) {
    EXPECT_EQ(f.fault(), FaultCode::DmaError) << f.what();
    EXPECT_EQ(f.pc(), 1u);
    EXPECT_EQ(f.addr(), hbm(4096));
  }
  a.drv.reset();
  a.drv.run(a.round_trip(4), 1'000'000);
  EXPECT_EQ(a.result(), a.data);
}

TEST(FaultInjection, OneFlippedBitIsCorrectedAndCountedTwoFaultTheReader) {
  emu::Device d(find_config("tc1-8"));
  Client a(d, 0);
  a.win = a.drv.alloc(8192);
  // Job 1: one bit of the HBM word at window offset 64 flips at cycle 0, before the DMA reads it.
  a.t.inject_faults(fi::parse("bit_flip job=1 space=hbm bits=1 addr=hbm:0x40\n"
                              "bit_flip job=2 space=hbm bits=2 addr=hbm:0x48\n"));
  a.drv.run(a.round_trip(1), 1'000'000);
  EXPECT_EQ(a.result(), a.data);  // corrected on the way out
  EXPECT_EQ(a.t.mmio_read(ECC_CORRECTED), 1u);
  EXPECT_EQ(a.t.mmio_read(ECC_ADDR_LO), uint32_t(a.win + 64));
  try {
    a.drv.run(a.round_trip(2), 1'000'000);
    FAIL() << "expected EccUncorrectable";
  } catch (const drv::DeviceFault& f) {
    EXPECT_EQ(f.fault(), FaultCode::EccUncorrectable) << f.what();
    EXPECT_EQ(f.addr(), isa::make_addr(isa::Space::kHbm, a.win + 0x48));
    EXPECT_EQ(f.engine(), isa::kEngineDma0);
  }
  // The word is still bad for the host, until the host rewrites it whole.
  std::vector<uint8_t> w(8);
  EXPECT_THROW(a.drv.read(a.win + 0x48, w), Error);
  a.drv.reset();
  a.drv.run(a.round_trip(3), 1'000'000);  // round_trip rewrites the window's first 256 bytes
  EXPECT_EQ(a.result(), a.data);
}

TEST(FaultInjection, HungEngineKeepsTheJobFromCompletingUntilReset) {
  emu::Device d(find_config("tc1-8"));
  Client a(d, 0);
  a.t.inject_faults(fi::parse("hang job=1 engine=dma0 instr=1"));
  const uint32_t seq = a.drv.submit(a.round_trip(1));
  EXPECT_FALSE(a.t.wait_irq(5'000'000));  // no completion, no watchdog fault
  EXPECT_EQ(a.t.mmio_read(COMPLETED_SEQ), 0u);
  EXPECT_EQ(a.t.mmio_read(STATUS) & kStatusFault, 0u);
  EXPECT_EQ(EngineState(a.t.mmio_read(engine_reg(isa::kEngineDma0, ENG_STATE))), EngineState::kRunning);
  EXPECT_EQ(a.t.mmio_read(engine_reg(isa::kEngineDma0, ENG_PC)), 1u);
  (void)seq;
  a.drv.reset();
  a.drv.run(a.round_trip(2), 1'000'000);
  EXPECT_EQ(a.result(), a.data);
}

TEST(FaultInjection, DroppedDelayedAndSpuriousInterruptsAndALostDoorbell) {
  emu::Device d(find_config("tc1-8"));
  Client a(d, 0);
  a.t.inject_faults(fi::parse("irq_drop job=1\nirq_delay job=2 cycles=1000\nirq_spurious job=3 cycle=10\n"
                              "doorbell_ignore count=1\n"));
  a.t.mmio_write(IRQ_STATUS, kIrqAll);
  // The first doorbell write is lost: RING_TAIL does not move; the next one takes.
  a.t.mmio_write(DOORBELL, 3);
  EXPECT_EQ(a.t.mmio_read(RING_TAIL), 0u);  // lost
  a.t.mmio_write(DOORBELL, 2);
  EXPECT_EQ(a.t.mmio_read(RING_TAIL), 2u);
  a.t.mmio_write(DOORBELL, 0);  // back to an empty ring (head 0)
  // Job 1 completes without its interrupt.
  a.drv.submit(a.round_trip(1));
  EXPECT_FALSE(a.t.wait_irq(100'000));
  EXPECT_EQ(a.t.mmio_read(COMPLETED_SEQ), 1u);
  // Job 2's interrupt comes 1000 cycles after it completed.
  const uint64_t before = d.cycle();
  a.drv.submit(a.round_trip(2));
  EXPECT_TRUE(a.t.wait_irq(1'000'000));
  const uint64_t job_cycles = a.t.mmio_read(JOB_CYCLES_LO);
  EXPECT_EQ(a.t.mmio_read(COMPLETED_SEQ), 2u);
  EXPECT_GE(d.cycle() - before, job_cycles + 1000);
  a.t.mmio_write(IRQ_STATUS, kIrqAll);
  // Job 3: JOB_DONE at its cycle 10, long before it is done.
  a.drv.submit(a.round_trip(3));
  EXPECT_TRUE(a.t.wait_irq(1'000'000));
  EXPECT_EQ(a.t.mmio_read(COMPLETED_SEQ), 2u);
  EXPECT_EQ(a.t.mmio_read(STATUS) & kStatusBusy, kStatusBusy);
}

TEST(FaultInjection, CorruptCompletionRecordFailsItsCrc) {
  emu::Device d(find_config("tc1-8"));
  Client a(d, 0);
  a.t.inject_faults(fi::parse("seed 5\ncompletion_corrupt job=1"));
  a.drv.submit(a.round_trip(1));
  EXPECT_TRUE(a.t.wait_irq(1'000'000));
  const uint64_t ring = a.t.mmio_read(RING_BASE_LO) | uint64_t(a.t.mmio_read(RING_BASE_HI)) << 32;
  std::vector<uint8_t> rec(kCompletionBytes);
  a.drv.read(ring + kCompletionOffset, rec);
  uint32_t crc = 0;
  std::memcpy(&crc, rec.data() + 20, 4);
  EXPECT_NE(crc, crc32(std::span<const uint8_t>(rec.data(), 20)));
}

TEST(FaultInjection, PlansNamingMissingEnginesOrAddressesAreRefused) {
  emu::Device d(find_config("tc1-8"));
  d.inject_faults(0, fi::parse("hang engine=dma15"));  // tc1-8 has 16 queues
  EXPECT_THROW(d.inject_faults(0, fi::parse("hang engine=engine3")), Error);
  EXPECT_THROW(d.inject_faults(0, fi::parse("bit_flip space=psum bits=1 addr=0x10000000")), Error);
}

}  // namespace
}  // namespace tcemu
