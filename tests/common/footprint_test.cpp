// Instruction footprints (common/include/tcemu/footprint.h): hand-computed regions for every opcode from
// docs/isa.md, and a differential check against the device: random valid instructions run on a device
// whose HBM scratch, SBUF and PSUM hold random bytes, and every byte that changed must lie inside the
// instruction's write footprint (which must also be tight: most of its bytes do change).
// Each TEST runs in its own process (gtest_discover_tests): SystemC allows one device per process.
#include "tcemu/footprint.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "inproc_transport.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"

namespace tcemu {
namespace {

using isa::DType;
using isa::Footprint;
using isa::Instr;
using isa::Opcode;
using isa::Region;
using isa::Space;
using isa::TensorOperand;

constexpr Space kHbm = Space::kHbm, kSbuf = Space::kSbuf, kPsum = Space::kPsum;

std::string show(const std::vector<Region>& v) {
  std::string s;
  for (const Region& r : v)
    s += std::string(isa::space_name(uint64_t(r.space))) + "[p" + std::to_string(r.partition) + " " +
         std::to_string(r.begin) + ".." + std::to_string(r.end) + ") ";
  return s.empty() ? "(none)" : s;
}
#define EXPECT_REGIONS(got, ...)                                               \
  do {                                                                         \
    const std::vector<Region> want_ = __VA_ARGS__;                             \
    EXPECT_EQ(got, want_) << "got  " << show(got) << "\nwant " << show(want_); \
  } while (0)

// `count` partitions from `first`, the same bytes [b, e) in each.
std::vector<Region> rows(Space s, uint32_t first, uint32_t count, uint64_t b, uint64_t e) {
  std::vector<Region> v;
  for (uint32_t p = first; p < first + count; ++p) v.push_back({s, p, b, e});
  return v;
}
std::vector<Region> cat(std::vector<Region> a, const std::vector<Region>& b) {
  a.insert(a.end(), b.begin(), b.end());
  isa::coalesce(a);
  return a;
}

Instr dma(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t d1 = 1, uint64_t s1 = 0, uint64_t t1 = 0,
          uint64_t d2 = 1, uint64_t s2 = 0, uint64_t t2 = 0, uint64_t d3 = 1, uint64_t s3 = 0, uint64_t t3 = 0) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes;
  in.d1_count = d1, in.src_d1_stride = s1, in.dst_d1_stride = t1;
  in.d2_count = d2, in.src_d2_stride = s2, in.dst_d2_stride = t2;
  in.d3_count = d3, in.src_d3_stride = s3, in.dst_d3_stride = t3;
  return in;
}
Instr compute(Opcode op, uint64_t np, uint64_t n0, uint64_t n1, const TensorOperand& out) {
  Instr in;
  in.opcode = op;
  in.np = np, in.n0 = n0, in.n1 = n1;
  in.out = isa::pack_operand(out);
  return in;
}
TensorOperand sb(DType d, uint32_t part, uint32_t off, uint32_t s0 = 1, uint32_t s1 = 0) {
  return {kSbuf, d, part, off, s0, s1};
}
TensorOperand ps(uint32_t part, uint32_t off, uint32_t s0 = 1, uint32_t s1 = 0) {
  return {kPsum, DType::kF32, part, off, s0, s1};
}

// ---- Hand-computed footprints (tc1-8: 8 partitions of 16 KiB SBUF and 16 KiB PSUM in 2 KiB banks) --------
class FootprintByHand : public ::testing::Test {
 protected:
  const DeviceConfig& cfg = find_config("tc1-8");
  const uint64_t pb = cfg.sbuf_partition_bytes, qb = cfg.psum_partition_bytes();
  uint64_t sbuf(uint64_t p, uint64_t b) const { return isa::make_addr(kSbuf, p * pb + b); }
  uint64_t psum(uint64_t p, uint64_t b) const { return isa::make_addr(kPsum, p * qb + b); }
  static uint64_t hbm(uint64_t off) { return isa::make_addr(kHbm, off); }
  Footprint fp(const Instr& in) const { return isa::footprint(cfg, in); }
};

TEST_F(FootprintByHand, NopAndUnknownOpcodesTouchNothing) {
  Instr nop;
  nop.opcode = Opcode::Nop;
  nop.wait_en = 1, nop.signal_en = 1;
  EXPECT_EQ(fp(nop), Footprint{});
  Instr unknown = dma(hbm(0), sbuf(0, 0), 64);
  unknown.opcode = Opcode(0x7E);  // fields of another opcode do not matter
  EXPECT_EQ(fp(unknown), Footprint{});
  unknown.opcode = Opcode::Invalid;
  EXPECT_EQ(fp(unknown), Footprint{});
}

TEST_F(FootprintByHand, DmaRunsOverPartitionsAndHbm) {
  // 3 runs of 128 bytes: contiguous in HBM (one region), one per SBUF partition 2..4 at byte 64.
  Footprint f = fp(dma(hbm(0x100), sbuf(2, 64), 128, 3, 128, pb));
  EXPECT_REGIONS(f.reads, {{kHbm, 0, 0x100, 0x100 + 384}});
  EXPECT_REGIONS(f.writes, rows(kSbuf, 2, 3, 64, 192));
  // SBUF -> HBM with a gap between runs and a repeated dimension (stride 0): 2 runs x 2 repeats x 2.
  f = fp(dma(sbuf(1, 10), hbm(1000), 6, 2, 8, 6, 2, 0, 0, 2, pb, 100));
  EXPECT_REGIONS(f.reads, {{kSbuf, 1, 10, 16}, {kSbuf, 1, 18, 24}, {kSbuf, 2, 10, 16}, {kSbuf, 2, 18, 24}});
  EXPECT_REGIONS(f.writes, {{kHbm, 0, 1000, 1012}, {kHbm, 0, 1100, 1112}});
  // PSUM -> SBUF eviction of 4 partitions x 256 fp32 (a 4-D pattern: d3 over two banks).
  f = fp(dma(psum(0, 0), sbuf(0, 4096), 1024, 4, qb, pb, 1, 0, 0, 2, 2048, 1024));
  EXPECT_REGIONS(f.reads, cat(rows(kPsum, 0, 4, 0, 1024), rows(kPsum, 0, 4, 2048, 3072)));
  EXPECT_REGIONS(f.writes, rows(kSbuf, 0, 4, 4096, 6144));
  // Overlapping runs coalesce; a run that crosses a partition end continues in the next partition (the
  // device faults on it; the footprint says what the address arithmetic reaches) and stops at the end of SBUF.
  f = fp(dma(sbuf(0, 100), sbuf(7, pb - 8), 20, 2, 10, 0));
  EXPECT_REGIONS(f.reads, {{kSbuf, 0, 100, 130}});
  EXPECT_REGIONS(f.writes, {{kSbuf, 7, pb - 8, pb}});
  f = fp(dma(hbm(0), sbuf(3, pb - 8), 20));
  EXPECT_REGIONS(f.writes, {{kSbuf, 3, pb - 8, pb}, {kSbuf, 4, 0, 12}});
  // Zero counts: nothing.
  EXPECT_EQ(fp(dma(hbm(0), sbuf(0, 0), 16, 0)), Footprint{});
}

TEST_F(FootprintByHand, DmaCastsChangeTheDestinationWidth) {
  // f32 -> bf16: 2 runs of 16 elements (64 source bytes, 32 destination bytes), destination stride 32.
  Instr c = dma(sbuf(0, 0), sbuf(1, 0), 64, 2, 64, 32);
  c.cast = 1, c.src_dtype = uint64_t(DType::kF32), c.dst_dtype = uint64_t(DType::kBf16);
  Footprint f = fp(c);
  EXPECT_REGIONS(f.reads, {{kSbuf, 0, 0, 128}});
  EXPECT_REGIONS(f.writes, {{kSbuf, 1, 0, 64}});
  // bf16 -> i32: 4 elements per run (8 bytes) become 16 bytes; destination runs 100 bytes apart.
  c = dma(hbm(40), sbuf(2, 0), 8, 2, 8, 100);
  c.cast = 1, c.src_dtype = uint64_t(DType::kBf16), c.dst_dtype = uint64_t(DType::kI32);
  f = fp(c);
  EXPECT_REGIONS(f.reads, {{kHbm, 0, 40, 56}});
  EXPECT_REGIONS(f.writes, {{kSbuf, 2, 0, 16}, {kSbuf, 2, 100, 116}});
  // PSUM f32 -> SBUF bf16, 3 partitions.
  c = dma(psum(5, 64), sbuf(0, 8), 40, 3, qb, pb);
  c.cast = 1, c.src_dtype = uint64_t(DType::kF32), c.dst_dtype = uint64_t(DType::kBf16);
  f = fp(c);
  EXPECT_REGIONS(f.reads, rows(kPsum, 5, 3, 64, 104));
  EXPECT_REGIONS(f.writes, rows(kSbuf, 0, 3, 8, 28));
  // An unknown dtype code: the device faults; no footprint.
  c.dst_dtype = 7;
  EXPECT_EQ(fp(c), Footprint{});
}

TEST_F(FootprintByHand, MatmulOperandsAndPsumOutput) {
  Instr mm;
  mm.opcode = Opcode::Matmul;
  mm.k = 4, mm.m = 3, mm.n = 5, mm.st_part = 1, mm.st_off = 8, mm.mv_part = 2, mm.mv_off = 100;
  mm.out_part = 2, mm.out_off = 2048 + 16;
  Footprint f = fp(mm);
  // W: partitions 1..4, 3 bf16 at byte 8; X: partitions 2..5, 5 bf16 at byte 100.
  EXPECT_REGIONS(f.reads, cat(rows(kSbuf, 1, 4, 8, 14), rows(kSbuf, 2, 4, 100, 110)));
  EXPECT_REGIONS(f.writes, rows(kPsum, 2, 3, 2064, 2084));
  // Accumulating reads its output too.
  mm.accumulate = 1;
  f = fp(mm);
  EXPECT_REGIONS(f.reads,
                 cat(cat(rows(kSbuf, 1, 4, 8, 14), rows(kSbuf, 2, 4, 100, 110)), rows(kPsum, 2, 3, 2064, 2084)));
  // fp32 operands: 4-byte elements; W right before X in the same partitions coalesces.
  mm.accumulate = 0, mm.dtype = uint64_t(isa::MatmulType::kFp32);
  mm.st_part = mm.mv_part = 0, mm.st_off = 0, mm.mv_off = 12;
  f = fp(mm);
  EXPECT_REGIONS(f.reads, rows(kSbuf, 0, 4, 0, 32));
  EXPECT_REGIONS(f.writes, rows(kPsum, 2, 3, 2064, 2084));
  mm.dtype = 2;  // reserved: the device faults
  EXPECT_EQ(fp(mm), Footprint{});
}

TEST_F(FootprintByHand, PeTransposeReadsKPartitionsWritesMPartitions) {
  Instr t;
  t.opcode = Opcode::PeTranspose;
  t.k = 3, t.m = 5, t.st_part = 4, t.st_off = 2, t.out_part = 1, t.out_off = 4096;
  Footprint f = fp(t);
  EXPECT_REGIONS(f.reads, rows(kSbuf, 4, 3, 2, 12));
  EXPECT_REGIONS(f.writes, rows(kPsum, 1, 5, 4096, 4108));
  t.accumulate = 1;
  EXPECT_REGIONS(fp(t).reads, cat(rows(kSbuf, 4, 3, 2, 12), rows(kPsum, 1, 5, 4096, 4108)));
}

TEST_F(FootprintByHand, TensorTensorStridesAndDtypes) {
  // [2][3][4]: in0 f32 contiguous rows of 4 (s1 = 4: one region of 48 bytes); in1 bf16 every other
  // element (s0 = 2: 2-byte pieces 4 bytes apart), rows 10 elements apart; out PSUM with s0 = 0 (one
  // element per row, written 4 times) and s1 = 1: 3 consecutive fp32.
  Instr in = compute(Opcode::TensorTensor, 2, 4, 3, ps(4, 8, 0, 1));
  in.op = uint64_t(isa::AluOp::kAdd);
  in.in0 = isa::pack_operand(sb(DType::kF32, 0, 0, 1, 4));
  in.in1 = isa::pack_operand(sb(DType::kBf16, 3, 2, 2, 10));
  Footprint f = fp(in);
  std::vector<Region> want = rows(kSbuf, 0, 2, 0, 48);
  for (uint32_t p = 3; p < 5; ++p)
    for (uint64_t i1 = 0; i1 < 3; ++i1)
      for (uint64_t i0 = 0; i0 < 4; ++i0) want.push_back({kSbuf, p, 2 + 20 * i1 + 4 * i0, 4 + 20 * i1 + 4 * i0});
  isa::coalesce(want);
  EXPECT_EQ(want.size(), 2u + 2 * 12);
  EXPECT_REGIONS(f.reads, want);
  EXPECT_REGIONS(f.writes, rows(kPsum, 4, 2, 8, 20));
  // Broadcast input (both strides 0) and an i32 output whose rows overlap (s1 < n0).
  in = compute(Opcode::TensorTensor, 1, 4, 3, sb(DType::kI32, 6, 400, 1, 2));
  in.in0 = isa::pack_operand(sb(DType::kBf16, 0, 30, 0, 0));
  in.in1 = isa::pack_operand(ps(7, 0, 1, 4));
  f = fp(in);
  EXPECT_REGIONS(f.reads, {{kSbuf, 0, 30, 32}, {kPsum, 7, 0, 48}});
  EXPECT_REGIONS(f.writes, {{kSbuf, 6, 400, 400 + 4 * (2 * 2 + 3 + 1)}});
}

TEST_F(FootprintByHand, TensorScalarColumnsOnlyWhenEnabled) {
  Instr in = compute(Opcode::TensorScalar, 3, 8, 1, sb(DType::kBf16, 0, 0));
  in.in0 = isa::pack_operand(sb(DType::kBf16, 0, 0));  // in place
  in.col0 = isa::pack_column(kSbuf, DType::kF32, 2, 1000);
  in.col1 = isa::pack_column(kPsum, DType::kF32, 0, 64);
  Footprint f = fp(in);
  EXPECT_REGIONS(f.reads, rows(kSbuf, 0, 3, 0, 16));
  EXPECT_REGIONS(f.writes, rows(kSbuf, 0, 3, 0, 16));
  in.col0_en = in.col1_en = 1;
  f = fp(in);
  EXPECT_REGIONS(f.reads, cat(cat(rows(kSbuf, 0, 3, 0, 16), rows(kSbuf, 2, 3, 1000, 1004)), rows(kPsum, 0, 3, 64, 68)));
}

TEST_F(FootprintByHand, TensorReduceWritesTheReducedShape) {
  // in0 [2][3][5] f32 contiguous; out strides (1, 5).
  Instr in = compute(Opcode::TensorReduce, 2, 5, 3, sb(DType::kF32, 4, 0, 1, 5));
  in.in0 = isa::pack_operand(sb(DType::kF32, 0, 0, 1, 5));
  in.op = uint64_t(isa::AluOp::kMax);
  in.axes = 1;  // out[p][i1][0]: 3 elements 20 bytes apart
  Footprint f = fp(in);
  EXPECT_REGIONS(f.reads, rows(kSbuf, 0, 2, 0, 60));
  std::vector<Region> want;
  for (uint32_t p = 4; p < 6; ++p)
    for (uint64_t i1 = 0; i1 < 3; ++i1) want.push_back({kSbuf, p, 20 * i1, 20 * i1 + 4});
  EXPECT_REGIONS(f.writes, want);
  in.axes = 2;  // out[p][0][i0]: 5 consecutive
  EXPECT_REGIONS(fp(in).writes, rows(kSbuf, 4, 2, 0, 20));
  in.axes = 3;  // out[p][0][0]
  EXPECT_REGIONS(fp(in).writes, rows(kSbuf, 4, 2, 0, 4));
}

TEST_F(FootprintByHand, CopyMemsetIotaSelectTranspose) {
  Instr in = compute(Opcode::TensorCopy, 4, 16, 2, sb(DType::kBf16, 4, 64, 1, 16));
  in.in0 = isa::pack_operand(ps(0, 0, 1, 16));
  Footprint f = fp(in);
  EXPECT_REGIONS(f.reads, rows(kPsum, 0, 4, 0, 128));
  EXPECT_REGIONS(f.writes, rows(kSbuf, 4, 4, 64, 128));

  in = compute(Opcode::Memset, 8, 10, 1, ps(0, 2040));  // PSUM operands may cross banks
  in.value = 0x3F800000;
  f = fp(in);
  EXPECT_TRUE(f.reads.empty());
  EXPECT_REGIONS(f.writes, rows(kPsum, 0, 8, 2040, 2080));
  in.opcode = Opcode::Iota;
  in.value = 0, in.base = 5;
  EXPECT_EQ(fp(in), f);

  in = compute(Opcode::Select, 1, 4, 1, sb(DType::kF32, 0, 0));
  in.in0 = isa::pack_operand(sb(DType::kI32, 1, 0));
  in.in1 = isa::pack_operand(sb(DType::kBf16, 2, 0));
  in.in2 = isa::pack_operand(ps(3, 0, 0, 0));
  f = fp(in);
  EXPECT_REGIONS(f.reads, {{kSbuf, 1, 0, 16}, {kSbuf, 2, 0, 8}, {kPsum, 3, 0, 4}});
  EXPECT_REGIONS(f.writes, {{kSbuf, 0, 0, 16}});

  // 8 x 8 blocks: out has the input's shape [8][2][8].
  in = compute(Opcode::Transpose, 8, 8, 2, sb(DType::kF32, 0, 256, 1, 8));
  in.in0 = isa::pack_operand(sb(DType::kBf16, 0, 0, 1, 8));
  f = fp(in);
  EXPECT_REGIONS(f.reads, rows(kSbuf, 0, 8, 0, 32));
  EXPECT_REGIONS(f.writes, rows(kSbuf, 0, 8, 256, 320));
}

TEST_F(FootprintByHand, ActivationColumns) {
  Instr in = compute(Opcode::Activation, 2, 6, 1, sb(DType::kF32, 0, 0));
  in.in0 = isa::pack_operand(ps(0, 0));
  in.scale_col = isa::pack_column(kSbuf, DType::kBf16, 2, 100);
  in.bias_col = isa::pack_column(kSbuf, DType::kF32, 2, 102);  // adjacent to the scale column
  in.acc_col = isa::pack_column(kPsum, DType::kF32, 6, 0);
  Footprint f = fp(in);
  EXPECT_REGIONS(f.reads, rows(kPsum, 0, 2, 0, 24));
  EXPECT_REGIONS(f.writes, rows(kSbuf, 0, 2, 0, 24));
  in.scale_col_en = in.bias_en = in.acc_en = 1;
  f = fp(in);
  EXPECT_REGIONS(f.reads, cat(rows(kSbuf, 2, 2, 100, 106), rows(kPsum, 0, 2, 0, 24)));
  EXPECT_REGIONS(f.writes, cat(rows(kSbuf, 0, 2, 0, 24), rows(kPsum, 6, 2, 0, 4)));
}

TEST_F(FootprintByHand, OperandsWithoutAMeaningAreLeftOut) {
  // An HBM tensor operand (VectorE never touches HBM) and an unknown dtype: the device faults.
  Instr in = compute(Opcode::TensorCopy, 1, 4, 1, {kHbm, DType::kF32, 0, 0, 1, 0});
  in.in0 = isa::pack_operand(sb(DType::kF32, 0, 0)) | 0xC;  // dtype code 3
  EXPECT_EQ(fp(in), Footprint{});
}

// ---- Differential check against the device ------------------------------------------------------------------
// The window: an HBM scratch area that random DMAs use, then staging areas for SBUF and PSUM images.
constexpr uint64_t kScratch = 64 << 10;

struct State {
  std::vector<uint8_t> hbm, sbuf, psum;  // scratch; SBUF and PSUM, partition after partition
};

class Bench {
 public:
  explicit Bench(const DeviceConfig& c, uint32_t seed) : cfg(c), transport(cfg), driver(transport), rng(seed) {
    pb = cfg.sbuf_partition_bytes, qb = cfg.psum_partition_bytes();
    sbuf_in = kScratch, psum_in = sbuf_in + cfg.sbuf_bytes(), sbuf_out = psum_in + cfg.sbuf_bytes();
    psum_out = sbuf_out + cfg.sbuf_bytes();
    window_bytes = psum_out + uint64_t(cfg.psum_partitions) * pb;
    window = driver.alloc(window_bytes);
  }

  DeviceConfig cfg;
  drv::InProcessTransport transport;
  drv::Driver driver;
  std::mt19937 rng;
  uint64_t pb = 0, qb = 0, window = 0, window_bytes = 0, sbuf_in = 0, psum_in = 0, sbuf_out = 0, psum_out = 0;

  static uint64_t hbm(uint64_t off) { return isa::make_addr(kHbm, off); }
  uint64_t sbuf(uint64_t p, uint64_t b) const { return isa::make_addr(kSbuf, p * pb + b); }
  uint64_t psum(uint64_t p, uint64_t b) const { return isa::make_addr(kPsum, p * qb + b); }

  // Runs one job; throws drv::DeviceFault.
  void run(const std::vector<std::pair<int, std::vector<Instr>>>& streams) {
    drv::ScopedMemory code(driver);
    drv::Job job{window, window_bytes, {}};
    for (const auto& [engine, instrs] : streams) job.streams.push_back(code.stream(engine, instrs));
    driver.run(job, 100'000'000);
  }

  // Random bytes everywhere: HBM scratch and SBUF directly, PSUM through a VectorE copy of an SBUF image
  // (f32 to f32 keeps the bits), after which SBUF gets an image of its own.
  void randomize() {
    auto random = [&](uint64_t n) {
      std::vector<uint8_t> v(n);
      for (auto& b : v) b = uint8_t(rng());
      return v;
    };
    driver.write(window, random(kScratch));
    driver.write(window + psum_in, random(cfg.sbuf_bytes()));
    driver.write(window + sbuf_in, random(cfg.sbuf_bytes()));
    const uint64_t np = uint64_t(cfg.sbuf_partitions);
    Instr load_psum_image = dma(hbm(psum_in), sbuf(0, 0), pb, np, pb, pb);
    load_psum_image.signal_en = 1, load_psum_image.signal_sem = 1, load_psum_image.signal_value = 1;
    Instr load_sbuf = dma(hbm(sbuf_in), sbuf(0, 0), pb, np, pb, pb);
    load_sbuf.wait_en = 1, load_sbuf.wait_sem = 2, load_sbuf.wait_value = 1;
    Instr to_psum = compute(Opcode::TensorCopy, uint64_t(cfg.psum_partitions), qb / 4, 1, ps(0, 0));
    to_psum.in0 = isa::pack_operand(sb(DType::kF32, 0, 0));
    to_psum.wait_en = 1, to_psum.wait_sem = 1, to_psum.wait_value = 1;
    to_psum.signal_en = 1, to_psum.signal_sem = 2, to_psum.signal_value = 1;
    run({{isa::kEngineDma0, {load_psum_image, load_sbuf}}, {isa::kEngineVector, {to_psum}}});
  }

  // Reads HBM scratch, SBUF and PSUM (staged through SBUF, which is then restored).
  State snapshot() {
    const uint64_t np = uint64_t(cfg.sbuf_partitions), pp = uint64_t(cfg.psum_partitions);
    run({{isa::kEngineDma0,
          {dma(sbuf(0, 0), hbm(sbuf_out), pb, np, pb, pb), dma(psum(0, 0), sbuf(0, 0), qb, pp, qb, pb),
           dma(sbuf(0, 0), hbm(psum_out), qb, pp, pb, qb), dma(hbm(sbuf_out), sbuf(0, 0), pb, np, pb, pb)}}});
    State s;
    s.hbm.resize(kScratch), s.sbuf.resize(cfg.sbuf_bytes()), s.psum.resize(cfg.psum_bytes());
    driver.read(window, s.hbm);
    driver.read(window + sbuf_out, s.sbuf);
    driver.read(window + psum_out, s.psum);
    return s;
  }

  // ---- Random valid instructions (docs/isa.md rules) ----
  uint64_t uni(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); }
  bool coin(int one_in = 2) { return uni(0, uint64_t(one_in) - 1) == 0; }

  Instr random_dma() {
    static const std::pair<Space, Space> dirs[] = {
        {kHbm, kSbuf}, {kHbm, kHbm}, {kSbuf, kHbm}, {kSbuf, kSbuf}, {kPsum, kSbuf}};
    for (;;) {
      const auto [ss, ds] = dirs[uni(0, std::size(dirs) - 1)];
      Instr in = dma(0, 0, 0);
      uint64_t dst_len;
      if (coin(3)) {
        in.cast = 1;
        in.src_dtype = ss == kPsum ? 0 : uni(0, 2), in.dst_dtype = uni(0, 2);
        const uint64_t n = uni(1, 24);
        in.bytes = n * isa::dtype_bytes(in.src_dtype), dst_len = n * isa::dtype_bytes(in.dst_dtype);
      } else {
        in.bytes = dst_len = uni(1, 96);
      }
      in.d1_count = uni(1, 4), in.d2_count = uni(1, 3), in.d3_count = uni(1, 2);
      auto stride = [&](Space s) -> uint64_t {
        const uint64_t pitch = s == kSbuf ? pb : qb;
        switch (uni(0, 3)) {
          case 0:
            return 0;
          case 1:
            return uni(1, 200);
          default:
            return s == kHbm ? uni(1, 3000) : pitch * uni(1, 2) + uni(0, 64);
        }
      };
      in.src_d1_stride = stride(ss), in.src_d2_stride = stride(ss), in.src_d3_stride = stride(ss);
      in.dst_d1_stride = stride(ds), in.dst_d2_stride = stride(ds), in.dst_d3_stride = stride(ds);
      auto start = [&](Space s, uint64_t len) {
        if (s == kHbm) return hbm(uni(0, kScratch / 2));
        const bool sb = s == kSbuf;
        const uint64_t pitch = sb ? pb : qb;
        const uint64_t p = uni(0, uint64_t(sb ? cfg.sbuf_partitions : cfg.psum_partitions) - 1);
        return isa::make_addr(s, p * pitch + uni(0, pitch - std::min(pitch, len)));
      };
      in.src = start(ss, in.bytes), in.dst = start(ds, dst_len);
      if (valid_side(
              in.src, in.bytes,
              {{in.d1_count, in.src_d1_stride}, {in.d2_count, in.src_d2_stride}, {in.d3_count, in.src_d3_stride}}) &&
          valid_side(
              in.dst, dst_len,
              {{in.d1_count, in.dst_d1_stride}, {in.d2_count, in.dst_d2_stride}, {in.d3_count, in.dst_d3_stride}}))
        return in;
    }
  }
  // Every run inside the scratch (HBM) or inside one partition (SBUF, PSUM).
  bool valid_side(uint64_t addr, uint64_t len, std::vector<std::pair<uint64_t, uint64_t>> dims) {
    const Space s = Space(isa::addr_space(addr));
    const uint64_t pitch = s == kSbuf ? pb : qb;
    const uint64_t size = s == kHbm ? kScratch : s == kSbuf ? cfg.sbuf_bytes() : cfg.psum_bytes();
    for (uint64_t i3 = 0; i3 < dims[2].first; ++i3)
      for (uint64_t i2 = 0; i2 < dims[1].first; ++i2)
        for (uint64_t i1 = 0; i1 < dims[0].first; ++i1) {
          const uint64_t a = isa::addr_offset(addr) + i3 * dims[2].second + i2 * dims[1].second + i1 * dims[0].second;
          if (a + len > size) return false;
          if (s != kHbm && a / pitch != (a + len - 1) / pitch) return false;
        }
    return true;
  }

  Instr random_tensor_engine() {
    Instr in;
    const int rows = cfg.rows, cols = cfg.cols, parts = cfg.sbuf_partitions;
    in.opcode = coin() ? Opcode::Matmul : Opcode::PeTranspose;
    in.k = uni(1, uint64_t(rows)), in.m = uni(1, uint64_t(cols)), in.accumulate = uni(0, 1);
    const bool mm = in.opcode == Opcode::Matmul;
    const uint64_t e = mm && coin() ? 4 : 2, n = mm ? uni(1, 96) : in.k;
    if (mm) in.n = n, in.dtype = e == 4 ? 1 : 0;
    auto off = [&](uint64_t bytes) { return e * uni(0, (pb - bytes) / e); };
    in.st_part = uni(0, uint64_t(parts) - in.k), in.st_off = off(in.m * e);
    if (mm) in.mv_part = uni(0, uint64_t(parts) - in.k), in.mv_off = off(n * e);
    in.out_part = uni(0, uint64_t(cfg.psum_partitions) - in.m);
    in.out_off = uni(0, uint64_t(cfg.psum_banks) - 1) * cfg.psum_bank_bytes + 4 * uni(0, cfg.psum_bank_bytes / 4 - n);
    return in;
  }

  // A tensor operand over np x n1 x n0 that fits (SBUF or PSUM).
  TensorOperand operand(uint64_t np, uint64_t n0, uint64_t n1, bool psum_ok = true) {
    TensorOperand t;
    t.space = psum_ok && coin(3) ? kPsum : kSbuf;
    t.dtype = t.space == kPsum ? DType::kF32 : DType(uni(0, 2));
    const uint64_t b = isa::dtype_bytes(uint64_t(t.dtype));
    const uint64_t parts = uint64_t(t.space == kPsum ? cfg.psum_partitions : cfg.sbuf_partitions);
    t.part = uint32_t(uni(0, parts - np));
    t.s0 = uint32_t(uni(0, 3)), t.s1 = uint32_t(uni(0, n0 * std::max<uint32_t>(t.s0, 1) + 3));
    const uint64_t last = (n1 - 1) * t.s1 + (n0 - 1) * t.s0;
    const uint64_t pitch = t.space == kPsum ? qb : pb;
    t.off = uint32_t(b * uni(0, std::min<uint64_t>(pitch / b - last - 1, 2000)));
    return t;
  }
  uint64_t column(uint64_t np) {
    const TensorOperand t = operand(np, 1, 1);
    return isa::pack_column(t.space, t.dtype, t.part, t.off);
  }

  Instr random_compute() {
    static const Opcode ops[] = {Opcode::TensorTensor, Opcode::TensorScalar, Opcode::TensorReduce,
                                 Opcode::TensorCopy,   Opcode::Memset,       Opcode::Iota,
                                 Opcode::Select,       Opcode::Transpose,    Opcode::Activation};
    Instr in;
    in.opcode = ops[uni(0, std::size(ops) - 1)];
    in.np = uni(1, uint64_t(std::min(cfg.sbuf_partitions, cfg.psum_partitions)));
    in.n0 = uni(1, 12), in.n1 = uni(1, 4);
    if (in.opcode == Opcode::Transpose) {  // n0 * n1 a multiple of the block min(np, 32) = np here
      if (coin())
        in.n0 = in.np * uni(1, 3), in.n1 = uni(1, 2);
      else
        in.n0 = uni(1, 4), in.n1 = in.np * uni(1, 3);
    }
    uint64_t on0 = in.n0, on1 = in.n1;
    if (in.opcode == Opcode::TensorReduce) {
      in.op = std::array<uint64_t, 3>{1, 5, 6}[uni(0, 2)], in.axes = uni(1, 3);
      on0 = (in.axes & 1) ? 1 : in.n0, on1 = (in.axes & 2) ? 1 : in.n1;
    }
    in.out = isa::pack_operand(operand(in.np, on0, on1));
    auto tensor = [&] { return isa::pack_operand(operand(in.np, in.n0, in.n1)); };
    switch (in.opcode) {
      case Opcode::TensorTensor:
        in.op = uni(1, 11), in.in0 = tensor(), in.in1 = tensor();
        break;
      case Opcode::TensorScalar:
        in.op0 = uni(0, 11), in.op1 = uni(0, 11), in.rev0 = uni(0, 1), in.rev1 = uni(0, 1);
        in.in0 = tensor(), in.imm0 = uint32_t(rng()), in.imm1 = uint32_t(rng());
        if ((in.col0_en = uni(0, 1))) in.col0 = column(in.np);
        if ((in.col1_en = uni(0, 1))) in.col1 = column(in.np);
        break;
      case Opcode::TensorReduce:
      case Opcode::TensorCopy:
      case Opcode::Transpose:
        in.in0 = tensor();
        break;
      case Opcode::Memset:
        in.value = uint32_t(rng());
        break;
      case Opcode::Iota:
        in.base = uint32_t(rng()), in.pstep = uint32_t(rng()), in.fstep = uint32_t(rng());
        break;
      case Opcode::Select:
        in.in0 = tensor(), in.in1 = tensor(), in.in2 = tensor();
        break;
      case Opcode::Activation:
        in.func = uni(0, 12), in.in0 = tensor(), in.scale_imm = 0x3F800000;
        if ((in.scale_col_en = uni(0, 1))) in.scale_col = column(in.np);
        if ((in.bias_en = uni(0, 1))) in.bias_col = column(in.np);
        if ((in.acc_en = uni(0, 1))) in.acc_col = column(in.np);
        break;
      default:
        break;
    }
    return in;
  }
};

// Runs `count` random instructions of each kind; every changed byte must be in the write footprint, and
// per opcode most of the footprint's bytes must change (random data: a byte keeps its value by chance
// only, or when a result happens to equal what was there).
void differential(const std::string& config, uint32_t seed, int count) {
  Bench b(find_config(config), seed);
  std::map<std::string, std::pair<uint64_t, uint64_t>> changed_of_written;  // mnemonic -> (changed, written)
  State before;
  for (int i = 0; i < 3 * count; ++i) {
    if (i % 8 == 0) {
      b.randomize();
      before = b.snapshot();
    }
    int engine;
    Instr in;
    switch (i % 3) {
      case 0:
        engine = isa::kEngineDma0 + int(b.uni(0, 3)), in = b.random_dma();
        break;
      case 1:
        engine = isa::kEngineTensor, in = b.random_tensor_engine();
        break;
      default:
        in = b.random_compute();
        engine = in.opcode == Opcode::Activation ? isa::kEngineScalar : isa::kEngineVector;
        break;
    }
    const std::string text = isa::disassemble(in);
    SCOPED_TRACE(config + " instruction " + std::to_string(i) + ": " + text);
    try {
      b.run({{engine, {in}}});
    } catch (const drv::DeviceFault& e) {
      ADD_FAILURE() << "the generator made an invalid instruction: " << e.what();
      b.driver.reset();
      i = (i / 8 + 1) * 8 - 1;  // start over from random memory
      continue;
    }
    const State after = b.snapshot();
    const Footprint f = isa::footprint(b.cfg, in);
    std::vector<uint8_t> hbm_mask(kScratch), sbuf_mask(after.sbuf.size()), psum_mask(after.psum.size());
    for (const Region& r : f.writes) {
      std::vector<uint8_t>& mask = r.space == kHbm ? hbm_mask : r.space == kSbuf ? sbuf_mask : psum_mask;
      const uint64_t base = r.space == kHbm ? 0 : r.partition * (r.space == kSbuf ? b.pb : b.qb);
      ASSERT_LE(base + r.end, mask.size()) << show({r});
      for (uint64_t x = base + r.begin; x < base + r.end; ++x) mask[x] = 1;
    }
    auto& tally = changed_of_written[isa::find_opcode(uint8_t(in.opcode))->mnemonic];
    uint64_t &changed = tally.first, &written = tally.second;
    written += isa::region_bytes(f.writes);
    auto compare = [&](const char* what, const std::vector<uint8_t>& x, const std::vector<uint8_t>& y,
                       const std::vector<uint8_t>& mask) {
      int outside = 0;
      for (size_t k = 0; k < x.size(); ++k) {
        if (x[k] == y[k]) continue;
        if (mask[k])
          ++changed;
        else if (++outside <= 3)
          ADD_FAILURE() << what << " byte " << k << " changed outside the write footprint " << show(f.writes);
      }
      EXPECT_EQ(outside, 0) << what;
    };
    compare("HBM scratch", before.hbm, after.hbm, hbm_mask);
    compare("SBUF", before.sbuf, after.sbuf, sbuf_mask);
    compare("PSUM", before.psum, after.psum, psum_mask);
    before = after;
  }
  for (const auto& [name, cw] : changed_of_written) {
    EXPECT_GT(cw.second, 0u) << name;
    EXPECT_GT(double(cw.first), 0.7 * double(cw.second))
        << name << ": only " << cw.first << " of " << cw.second << " footprint bytes changed (footprint too wide?)";
  }
}

TEST(FootprintDevice, ChangedBytesLieInTheWriteFootprintTc1_8) { differential("tc1-8", 1, 150); }
TEST(FootprintDevice, ChangedBytesLieInTheWriteFootprintTc1_16) { differential("tc1-16", 2, 60); }

}  // namespace
}  // namespace tcemu
