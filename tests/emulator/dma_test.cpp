// The DMA engine (dma_copy): 4-D access patterns, element casts, the timing model (start latency, run
// minimum, per-queue peak, HBM bandwidth shared between queues) and every fault, each against a reference
// written here: plain loops over host images, host conversions, and the formulas of docs/isa.md.
// Each TEST runs in its own process (gtest_discover_tests): SystemC allows one device per process.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "inproc_transport.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"

namespace tcemu {
namespace {

using isa::DType;
using isa::Instr;
using isa::Opcode;
using isa::Space;
using regs::FaultCode;

constexpr int kQ0 = isa::kEngineDma0;

// ---- Instructions -----------------------------------------------------------------------------------------
struct Dim {
  uint64_t count = 1, src_stride = 0, dst_stride = 0;
};

Instr copy(uint64_t src, uint64_t dst, uint64_t bytes, Dim d1 = {}, Dim d2 = {}, Dim d3 = {}) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes;
  in.d1_count = d1.count, in.src_d1_stride = d1.src_stride, in.dst_d1_stride = d1.dst_stride;
  in.d2_count = d2.count, in.src_d2_stride = d2.src_stride, in.dst_d2_stride = d2.dst_stride;
  in.d3_count = d3.count, in.src_d3_stride = d3.src_stride, in.dst_d3_stride = d3.dst_stride;
  return in;
}
Instr with_cast(Instr in, DType from, DType to) {
  in.cast = 1, in.src_dtype = uint64_t(from), in.dst_dtype = uint64_t(to);
  return in;
}
Instr signals(Instr in, uint64_t sem) {
  in.signal_en = 1, in.signal_sem = sem, in.signal_value = 1;
  return in;
}
Instr waits(Instr in, uint64_t sem, uint64_t value = 1) {
  in.wait_en = 1, in.wait_sem = sem, in.wait_value = value;
  return in;
}

uint64_t hbm(uint64_t off) { return isa::make_addr(Space::kHbm, off); }

uint32_t esize(DType d) { return d == DType::kBf16 ? 2 : 4; }

// ---- Encoding -------------------------------------------------------------------------------------------------
TEST(DmaEncoding, NewFieldsRoundTripDisassembleAndReservedBitsAreRejected) {
  Instr in = with_cast(copy(hbm(0x123), isa::make_addr(Space::kSbuf, 0x4560), 64, {3, 7, 9}, {5, 11, 13},
                            {65535, 0xFFFFFFFF, 0x80000001}),
                       DType::kBf16, DType::kI32);
  const isa::Words w = isa::encode(in);
  EXPECT_EQ(w[1] >> 48, 65535u);                        // d3_count
  EXPECT_EQ(w[6], 0x80000001'FFFFFFFFull);              // src_d3_stride, dst_d3_stride
  EXPECT_EQ((w[2] >> 48) & 0xFFF, 0x201u | (1u << 4));  // cast 48, src_dtype 55:52, dst_dtype 59:56
  const isa::Decoded d = isa::decode(w);
  ASSERT_TRUE(d.instr) << d.error;
  EXPECT_EQ(isa::encode(*d.instr), w);
  EXPECT_EQ(d.instr->d3_count, 65535u);
  EXPECT_EQ(d.instr->src_dtype, uint64_t(DType::kBf16));
  const std::string text = isa::disassemble(in);
  EXPECT_NE(text.find("d3_count=65535 src_d3_stride=4294967295 dst_d3_stride=2147483649"), std::string::npos) << text;
  EXPECT_NE(text.find("cast=1 src_dtype=bf16 dst_dtype=i32"), std::string::npos) << text;
  // A plain copy reads as before the fourth dimension and casts existed.
  const std::string plain = isa::disassemble(copy(hbm(0), hbm(64), 8));
  EXPECT_EQ(plain.find("d3_"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("cast"), std::string::npos) << plain;
  // Unowned bits stay reserved: word 2 bits 49..51 and 60..63.
  for (int bit : {49, 51, 60, 63}) {
    isa::Words bad = w;
    bad[2] |= uint64_t(1) << bit;
    EXPECT_FALSE(isa::decode(bad).instr) << "word 2 bit " << bit;
  }
  // d3_count is 16 bits.
  in.d3_count = 65536;
  EXPECT_THROW(isa::encode(in), Error);
}

// ---- The device ---------------------------------------------------------------------------------------------
// Window layout: data [0, kStage), a staging area for SBUF/PSUM images at kStage.
constexpr uint64_t kStage = 1 << 20;

struct Dev {
  explicit Dev(const DeviceConfig& c) : cfg(c), transport(cfg), driver(transport) {
    window_bytes = kStage + cfg.sbuf_bytes();
    window = driver.alloc(window_bytes);
  }
  DeviceConfig cfg;
  drv::InProcessTransport transport;
  drv::Driver driver;
  uint64_t window = 0, window_bytes = 0;

  uint64_t sbuf(uint64_t part, uint64_t off) const {
    return isa::make_addr(Space::kSbuf, part * cfg.sbuf_partition_bytes + off);
  }
  uint64_t psum(uint64_t part, uint64_t off) const {
    return isa::make_addr(Space::kPsum, part * cfg.psum_partition_bytes() + off);
  }

  void write(uint64_t off, const std::vector<uint8_t>& v) { driver.write(window + off, v); }
  std::vector<uint8_t> read(uint64_t off, uint64_t n) {
    std::vector<uint8_t> v(n);
    driver.read(window + off, v);
    return v;
  }

  struct Ran {
    uint64_t cycles = 0;
    std::vector<TraceRecord> trace;  // in completion order
    // The record of instruction `pc` of `engine`.
    const TraceRecord& of(int engine, uint32_t pc) const {
      for (const auto& r : trace)
        if (r.engine == engine && r.pc == pc) return r;
      throw std::runtime_error("no trace record for engine " + std::to_string(engine) + " pc " + std::to_string(pc));
    }
    uint64_t cycles_of(int engine, uint32_t pc) const { return of(engine, pc).end - of(engine, pc).start; }
  };

  // Runs one job with one stream per engine; throws drv::DeviceFault if it faults.
  Ran run(const std::vector<std::pair<int, std::vector<Instr>>>& streams) {
    drv::ScopedMemory mem(driver);
    drv::Job job{window, window_bytes, {}};
    uint32_t total = 0;
    for (const auto& [engine, instrs] : streams) {
      job.streams.push_back(mem.stream(engine, instrs));
      total += uint32_t(instrs.size());
    }
    job.trace_capacity = total;
    job.trace_addr = mem.alloc(uint64_t(total) * kTraceRecordBytes, 64);
    const drv::JobResult r = driver.run(job, 100'000'000);
    return {r.cycles, driver.read_trace(job.trace_addr, std::min(r.trace_count, total))};
  }

  // SBUF as a host image: loaded from / dumped to the staging area with plain per-partition copies.
  Instr sbuf_load() const {
    const uint64_t pb = cfg.sbuf_partition_bytes;
    return copy(hbm(kStage), sbuf(0, 0), pb, {uint64_t(cfg.sbuf_partitions), pb, pb});
  }
  Instr sbuf_dump() const {
    const uint64_t pb = cfg.sbuf_partition_bytes;
    return copy(sbuf(0, 0), hbm(kStage), pb, {uint64_t(cfg.sbuf_partitions), pb, pb});
  }
  std::vector<uint8_t> sbuf_image() { return read(kStage, cfg.sbuf_bytes()); }

  // Expects `instrs` on `engine` to fault at its last instruction with `code` and `addr`; then resets.
  void expect_fault(int engine, const std::vector<Instr>& instrs, FaultCode code, uint64_t addr, const char* what) {
    SCOPED_TRACE(what);
    try {
      run({{engine, instrs}});
      ADD_FAILURE() << "expected fault " << regs::fault_name(code);
    } catch (const drv::DeviceFault& e) {
      EXPECT_EQ(e.fault(), code) << e.what();
      EXPECT_EQ(e.engine(), engine) << e.what();
      EXPECT_EQ(e.pc(), uint32_t(instrs.size() - 1)) << e.what();
      EXPECT_EQ(e.addr(), addr) << e.what();
      EXPECT_EQ(e.info(), uint32_t(Opcode::DmaCopy)) << e.what();
    }
    driver.reset();
  }
};

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

// ---- Reference access patterns: the loops of docs/isa.md over host images -------------------------------------
struct Mem {
  std::vector<uint8_t>* bytes;
  uint64_t base;  // host index of device offset 0
};
void ref_copy(Mem src, uint64_t s0, Mem dst, uint64_t d0, uint64_t bytes, Dim d1, Dim d2, Dim d3) {
  std::vector<uint8_t> run(bytes);
  for (uint64_t i3 = 0; i3 < d3.count; ++i3)
    for (uint64_t i2 = 0; i2 < d2.count; ++i2)
      for (uint64_t i1 = 0; i1 < d1.count; ++i1) {
        const uint64_t s = s0 + i3 * d3.src_stride + i2 * d2.src_stride + i1 * d1.src_stride;
        const uint64_t d = d0 + i3 * d3.dst_stride + i2 * d2.dst_stride + i1 * d1.dst_stride;
        std::memcpy(run.data(), src.bytes->data() + src.base + s, bytes);
        std::memcpy(dst.bytes->data() + dst.base + d, run.data(), bytes);
      }
}

TEST(DmaPatterns, FourDimGatherScatterAndSbufCopiesMatchPlainLoops) {
  Dev dev(find_config("tc1-8"));
  const uint64_t pb = dev.cfg.sbuf_partition_bytes;
  std::mt19937 rng(7);
  std::vector<uint8_t> hbm_ref = random_bytes(rng, kStage), sbuf_ref = random_bytes(rng, dev.cfg.sbuf_bytes());
  dev.write(0, hbm_ref);
  dev.write(kStage, sbuf_ref);
  Mem H{&hbm_ref, 0}, S{&sbuf_ref, 0};

  // Gather HBM -> SBUF: 7-byte runs at odd offsets, 4 x 3 x 5 of them, spread over partitions.
  const Dim g1{5, 16, 9}, g2{3, 200, pb}, g3{4, 1000, pb + 60};
  Instr gather = copy(hbm(101), dev.sbuf(0, 5), 7, g1, g2, g3);
  // Scatter SBUF -> HBM, with dimension 2 writing the same place twice: the later run wins.
  const Dim x1{6, pb, 40}, x2{2, 3, 0}, x3{3, 64, 4096};
  Instr scatter = copy(dev.sbuf(1, 0), hbm(300000), 33, x1, x2, x3);
  // SBUF -> SBUF: two 8 x 8 transposes of bf16 elements (2-byte runs), between disjoint regions.
  const Dim t1{8, 2, pb}, t2{8, pb, 2}, t3{2, 16, 16};
  Instr transpose = copy(dev.sbuf(0, 8000), dev.sbuf(0, 9000), 2, t1, t2, t3);
  // HBM -> HBM whose destination runs overlap in every dimension: the loop order decides which byte wins.
  const Dim h1{4, 7, 3}, h2{2, 50, 12}, h3{3, 777, 17};
  Instr h2h = copy(hbm(400000), hbm(500000), 5, h1, h2, h3);

  dev.run({{kQ0, {dev.sbuf_load(), gather, scatter, transpose, h2h, dev.sbuf_dump()}}});
  ref_copy(H, 101, S, 5, 7, g1, g2, g3);
  ref_copy(S, pb, H, 300000, 33, x1, x2, x3);
  ref_copy(S, 8000, S, 9000, 2, t1, t2, t3);
  ref_copy(H, 400000, H, 500000, 5, h1, h2, h3);

  EXPECT_TRUE(dev.read(0, kStage) == hbm_ref) << "HBM differs from the reference loops";
  EXPECT_TRUE(dev.sbuf_image() == sbuf_ref) << "SBUF differs from the reference loops";
}

// ---- Casts ----------------------------------------------------------------------------------------------------
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Reference conversions, written from docs/isa.md independently of the emulator.
uint32_t ref_to_bf16(uint32_t f32) {  // RNE on the bit pattern; every NaN -> 0x7FC0
  if ((f32 & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  return (f32 + 0x7FFFu + ((f32 >> 16) & 1)) >> 16;
}
uint32_t ref_to_i32(double v) {  // nearest even, saturating, NaN -> 0
  if (std::isnan(v)) return 0;
  const double r = std::nearbyint(v);
  if (r >= 2147483647.0) return 0x7FFFFFFFu;
  if (r <= -2147483648.0) return 0x80000000u;
  return uint32_t(int32_t(r));
}
uint32_t ref_i32_to_bf16(int32_t v) {  // one rounding of the exact integer to 8 significant bits
  if (v == 0) return 0;
  int e;
  const double m = std::frexp(double(v), &e);
  return bits_of(float(std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8))) >> 16;
}
uint32_t ref_cast(uint32_t raw, DType from, DType to) {
  if (from == to) return raw;
  if (from == DType::kI32) return to == DType::kF32 ? bits_of(float(int32_t(raw))) : ref_i32_to_bf16(int32_t(raw));
  const uint32_t f32 = from == DType::kBf16 ? raw << 16 : raw;
  if (to == DType::kF32) return f32;
  if (to == DType::kBf16) return ref_to_bf16(f32);
  return ref_to_i32(double(float_of(f32)));
}

std::vector<uint32_t> cast_inputs(std::mt19937& rng, DType d, size_t n) {
  std::vector<uint32_t> v;
  if (d == DType::kF32)
    v = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC00001, 0x00000001, 0x807FFFFF,
         0x7F7FFFFF, 0x7F7F8000, 0x3F808000, 0x3F818000, 0x3F808001, 0x3F80FFFF, 0x4EFFFFFF, 0x4F000000, 0xCF000000,
         0xCF000001, 0x3F000000, 0x3FC00000, 0x40200000, 0xC0200000, 0xBF000000, 0x3EFFFFFF, 0x4B000001, 0xC7FFFF80};
  else if (d == DType::kBf16)
    v = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1, 0x0001, 0x807F, 0x7F7F, 0x4F00,
         0xCF00, 0x4F01, 0xCF01, 0x3F00, 0x3FC0, 0x4020, 0xC020, 0xBF00, 0x4B00, 0x4B01};
  else
    v = {0,        1,          0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 16777217,  16777219,
         16777218, 0x01010001, 0x01018000, 0x01008000, 0x01008001, 255,       256,
         257,      259,        0xFFFFFEFF, 0x7FFFFFC0, 0x7FFFFF80, 0x80000040};
  while (v.size() < n) {
    const uint32_t u = uint32_t(rng());
    v.push_back(d == DType::kBf16 ? u >> 16 : d == DType::kI32 && rng() % 2 ? int32_t(u) >> (rng() % 31) : u);
  }
  v.resize(n);
  return v;
}

void put(std::vector<uint8_t>& mem, uint64_t at, uint32_t v, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) mem[at + i] = uint8_t(v >> (8 * i));
}
uint32_t get(const std::vector<uint8_t>& mem, uint64_t at, uint32_t n) {
  uint32_t v = 0;
  for (uint32_t i = 0; i < n; ++i) v |= uint32_t(mem[at + i]) << (8 * i);
  return v;
}

// Every (source, destination) pair of f32, bf16, i32, in every direction that may cast: elements land
// bit-exactly as the reference conversions say; bytes around them stay as they were.
TEST(DmaCasts, EveryPairIsBitExactInEveryDirection) {
  Dev dev(find_config("tc1-8"));
  const uint64_t pb = dev.cfg.sbuf_partition_bytes;
  std::mt19937 rng(11);
  const DType types[] = {DType::kF32, DType::kBf16, DType::kI32};
  constexpr uint64_t kRuns = 4, kElems = 24;  // per pair: 4 runs of 24 elements
  std::vector<uint8_t> hbm_img = random_bytes(rng, kStage), sbuf_img = random_bytes(rng, dev.cfg.sbuf_bytes());
  std::vector<uint8_t> hbm_ref = hbm_img, sbuf_ref = sbuf_img;
  std::vector<Instr> prog = {dev.sbuf_load()};
  int pair = 0;
  for (DType from : types) {
    for (DType to : types) {
      const uint32_t fs = esize(from), ts = esize(to);
      const std::vector<uint32_t> vals = cast_inputs(rng, from, kRuns * kElems);
      // Source: HBM at 4096 * pair, runs 200 bytes apart. Destinations: SBUF partitions 0..3 at 512 * pair
      // (HBM -> SBUF), HBM at 100000 + 4096 * pair (SBUF -> HBM, from a copy staged in SBUF at 6000), and
      // HBM at 200000 + 4096 * pair (HBM -> HBM).
      const uint64_t src = 4096 * uint64_t(pair), s_sb = 6000 + 512 * uint64_t(pair);
      for (uint64_t r = 0; r < kRuns; ++r)
        for (uint64_t i = 0; i < kElems; ++i) {
          put(hbm_img, src + r * 200 + i * fs, vals[r * kElems + i], fs);
          put(sbuf_img, r * pb + s_sb + i * fs, vals[r * kElems + i], fs);
        }
      const uint64_t d_sb = 512 * uint64_t(pair), d_h = 100000 + 4096 * uint64_t(pair),
                     d_hh = 200000 + 4096 * uint64_t(pair);
      prog.push_back(with_cast(copy(hbm(src), dev.sbuf(0, d_sb), kElems * fs, {kRuns, 200, pb}), from, to));
      prog.push_back(with_cast(copy(dev.sbuf(0, s_sb), hbm(d_h), kElems * fs, {kRuns, pb, 300}), from, to));
      prog.push_back(
          with_cast(copy(hbm(src), hbm(d_hh), kElems * fs, {2, 200, kElems * ts}, {2, 400, 1000}), from, to));
      for (uint64_t r = 0; r < kRuns; ++r)
        for (uint64_t i = 0; i < kElems; ++i) {
          const uint32_t out = ref_cast(vals[r * kElems + i], from, to);
          put(sbuf_ref, r * pb + d_sb + i * ts, out, ts);
          put(hbm_ref, d_h + r * 300 + i * ts, out, ts);
          put(hbm_ref, d_hh + (r / 2) * 1000 + (r % 2) * kElems * ts + i * ts, out, ts);
        }
      ++pair;
    }
  }
  // The staged sources in SBUF are part of the image the job loads.
  for (size_t i = 0; i < sbuf_ref.size(); ++i)
    if (i % pb >= 6000) sbuf_ref[i] = sbuf_img[i];
  dev.write(0, hbm_img);
  dev.write(kStage, sbuf_img);
  for (size_t i = 0; i < kStage; ++i)
    if (i < 4096 * 9) hbm_ref[i] = hbm_img[i];
  prog.push_back(dev.sbuf_dump());
  dev.run({{kQ0, prog}});
  const std::vector<uint8_t> hbm_out = dev.read(0, kStage), sbuf_out = dev.sbuf_image();
  pair = 0;
  for (DType from : types)
    for (DType to : types) {
      const uint32_t ts = esize(to);
      for (uint64_t r = 0; r < kRuns; ++r)
        for (uint64_t i = 0; i < kElems; ++i) {
          const uint64_t d_sb = r * pb + 512 * uint64_t(pair) + i * ts;
          const uint64_t d_h = 100000 + 4096 * uint64_t(pair) + r * 300 + i * ts;
          ASSERT_EQ(get(sbuf_out, d_sb, ts), get(sbuf_ref, d_sb, ts))
              << isa::dtype_name(uint64_t(from)) << "->" << isa::dtype_name(uint64_t(to)) << " hbm->sbuf run " << r
              << " element " << i;
          ASSERT_EQ(get(hbm_out, d_h, ts), get(hbm_ref, d_h, ts))
              << isa::dtype_name(uint64_t(from)) << "->" << isa::dtype_name(uint64_t(to)) << " sbuf->hbm run " << r
              << " element " << i;
        }
      ++pair;
    }
  // Everything else, including the bytes between and around the converted elements.
  EXPECT_TRUE(hbm_out == hbm_ref) << "HBM differs from the reference";
  EXPECT_TRUE(sbuf_out == sbuf_ref) << "SBUF differs from the reference";
}

// PSUM -> SBUF with a cast from fp32: the matmul results (exact bf16 x bf16 products, k = 1) rounded to
// bf16 and to i32. A PSUM source must be declared f32.
TEST(DmaCasts, PsumResultsCastToBf16AndI32) {
  Dev dev(find_config("tc1-8"));
  const int m = 8, n = 64;
  std::mt19937 rng(5);
  std::vector<uint8_t> sbuf_img(dev.cfg.sbuf_bytes(), 0);
  std::vector<uint16_t> w(m), x(n);
  for (auto& v : w) v = uint16_t(0x3F80 + rng() % 0x7F) ^ (rng() % 2 ? 0x8000 : 0);      // 1 .. 2
  for (auto& v : x) v = uint16_t((0x3C00 + rng() % 0x0C00) ^ (rng() % 2 ? 0x8000 : 0));  // 2^-7 .. 2^17
  for (int c = 0; c < m; ++c) put(sbuf_img, 0 + 2 * uint64_t(c), w[size_t(c)], 2);
  for (int j = 0; j < n; ++j) put(sbuf_img, 64 + 2 * uint64_t(j), x[size_t(j)], 2);
  dev.write(kStage, sbuf_img);
  Instr mm;
  mm.opcode = Opcode::Matmul;
  mm.k = 1, mm.m = m, mm.n = n, mm.st_off = 0, mm.mv_off = 64, mm.out_off = 0;
  mm = waits(signals(mm, 1), 0);
  const uint64_t pb = dev.cfg.sbuf_partition_bytes;
  Instr to_bf16 = with_cast(copy(dev.psum(0, 0), dev.sbuf(0, 1024), 4 * n, {m, dev.cfg.psum_partition_bytes(), pb}),
                            DType::kF32, DType::kBf16);
  Instr to_i32 = with_cast(copy(dev.psum(0, 0), dev.sbuf(0, 2048), 4 * n, {m, dev.cfg.psum_partition_bytes(), pb}),
                           DType::kF32, DType::kI32);
  dev.run(
      {{kQ0, {signals(dev.sbuf_load(), 0), waits(to_bf16, 1), to_i32, dev.sbuf_dump()}}, {isa::kEngineTensor, {mm}}});
  const std::vector<uint8_t> out = dev.sbuf_image();
  for (int c = 0; c < m; ++c)
    for (int j = 0; j < n; ++j) {
      const float prod = float_of(uint32_t(w[size_t(c)]) << 16) * float_of(uint32_t(x[size_t(j)]) << 16);  // exact
      ASSERT_EQ(get(out, uint64_t(c) * pb + 1024 + 2 * uint64_t(j), 2), ref_to_bf16(bits_of(prod))) << c << "," << j;
      ASSERT_EQ(get(out, uint64_t(c) * pb + 2048 + 4 * uint64_t(j), 4), ref_to_i32(prod)) << c << "," << j;
    }
  dev.expect_fault(kQ0, {with_cast(copy(dev.psum(1, 8), dev.sbuf(0, 0), 8), DType::kBf16, DType::kF32)},
                   FaultCode::BadDtype, dev.psum(1, 8), "psum read as bf16");
}

// ---- Timing (docs/isa.md, dma_copy "Timing") ----------------------------------------------------------------
// L = dma_latency_cycles, q = dma_bytes_per_cycle, H = hbm_bytes_per_cycle, B = dma_min_run_bytes.
uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// One queue alone: L + ceil(E / min(q, H / sides)); runs shorter than B cost B.
TEST(DmaTiming, OneQueueAloneAndSmallRuns) {
  Dev dev(find_config("tc1-16"));
  const DeviceConfig& c = dev.cfg;
  ASSERT_EQ(c.dma_latency_cycles, 64u);
  ASSERT_EQ(c.dma_bytes_per_cycle, 16u);
  ASSERT_EQ(c.hbm_bytes_per_cycle, 32u);
  ASSERT_EQ(c.dma_min_run_bytes, 16u);
  const uint64_t L = c.dma_latency_cycles, q = c.dma_bytes_per_cycle, pb = c.sbuf_partition_bytes;
  auto r = dev.run({{kQ0,
                     {copy(hbm(0), dev.sbuf(0, 0), 1000, {8, 1000, pb}),  // 8000 bytes
                      copy(hbm(0), dev.sbuf(0, 0), 1001, {8, 1001, pb}),  // 8008 bytes
                      copy(hbm(0), hbm(65536), 8192),                     // both sides HBM: H / 2 = q
                      copy(hbm(0), dev.sbuf(0, 0), 4096),                 // one 4 KiB run
                      copy(hbm(0), dev.sbuf(0, 0), 2, {16, 2, pb}, {16, 64, 2}, {8, 4096, 64}),  // 2048 runs of 2 B
                      copy(hbm(0), dev.sbuf(0, 0), 16, {256, 16, 16}),                           // 256 runs of B bytes
                      copy(dev.sbuf(0, 0), dev.sbuf(1, 0), 3, {100, 3, 3})}}});  // SBUF: 100 runs of 3 B
  EXPECT_EQ(r.cycles_of(kQ0, 0), L + ceil_div(8000, q));                         // 564
  EXPECT_EQ(r.cycles_of(kQ0, 1), L + ceil_div(8008, q));                         // 565
  EXPECT_EQ(r.cycles_of(kQ0, 2), L + 8192 / q);
  EXPECT_EQ(r.cycles_of(kQ0, 3), L + 4096 / q);       // 320
  EXPECT_EQ(r.cycles_of(kQ0, 4), L + 2048 * 16 / q);  // 2112: 8x the 4 KiB run
  EXPECT_EQ(r.cycles_of(kQ0, 5), L + 256 * 16 / q);   // 320: runs of B bytes cost nothing extra
  EXPECT_EQ(r.cycles_of(kQ0, 6), L + 100 * 16 / q);   // 164
  EXPECT_EQ(r.trace[4].bytes, 4096u);                 // the counters report the bytes moved
  uint64_t sum = 0;
  for (uint32_t pc = 0; pc < 7; ++pc) sum += r.cycles_of(kQ0, pc);
  EXPECT_EQ(r.cycles, sum);
}

// Concurrent HBM transfers split H: each moves min(q, H / K) bytes per cycle, K = the sum of their HBM
// sides, recomputed whenever one joins or finishes.
TEST(DmaTiming, QueuesShareHbmBandwidth) {
  Dev dev(find_config("tc1-16"));  // q = 16, H = 32
  const uint64_t L = dev.cfg.dma_latency_cycles, pb = dev.cfg.sbuf_partition_bytes;
  auto load = [&](uint64_t bytes, int part) { return copy(hbm(0), dev.sbuf(uint64_t(part), 0), bytes); };
  // Two queues: 2q = H, no slowdown.
  auto r2 = dev.run({{kQ0, {load(16384, 0)}}, {kQ0 + 1, {load(16384, 1)}}});
  EXPECT_EQ(r2.cycles_of(kQ0, 0), L + 1024);
  EXPECT_EQ(r2.cycles_of(kQ0 + 1, 0), L + 1024);
  // Four queues: H / 4 = 8 B/cycle each, twice as long.
  std::vector<std::pair<int, std::vector<Instr>>> four;
  for (int i = 0; i < 4; ++i) four.push_back({kQ0 + 4 * i, {load(16384, i)}});
  auto r4 = dev.run(four);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r4.cycles_of(kQ0 + 4 * i, 0), L + 2048) << i;
  EXPECT_EQ(r4.cycles, L + 2048);
  // Three queues: 32/3 B/cycle each: ceil(16384 * 3 / 32) = 1536 cycles.
  auto r3 = dev.run({{kQ0, {load(16384, 0)}}, {kQ0 + 1, {load(16384, 1)}}, {kQ0 + 2, {load(16384, 2)}}});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(r3.cycles_of(kQ0 + i, 0), L + 1536) << i;
  // Unequal sizes: 4096, 16384 and 16384 bytes. All three at 32/3 until the small one finishes after
  // ceil(4096 * 3 / 32) = 384 cycles; the others have moved floor(384 * 32 / 3) = 4096 bytes, and the
  // 12288 left go at 16 B/cycle each: 768 more cycles.
  auto ru = dev.run({{kQ0, {load(4096, 0)}}, {kQ0 + 1, {load(16384, 1)}}, {kQ0 + 2, {load(16384, 2)}}});
  EXPECT_EQ(ru.cycles_of(kQ0, 0), L + 384);
  EXPECT_EQ(ru.cycles_of(kQ0 + 1, 0), L + 384 + 768);
  EXPECT_EQ(ru.cycles_of(kQ0 + 2, 0), L + 384 + 768);
  // HBM -> HBM reads and writes HBM: it counts twice. With an HBM -> SBUF copy, K = 3: 32/3 B/cycle each,
  // ceil(8192 * 3 / 32) = 768 cycles; alone it would take 512.
  auto rh = dev.run({{kQ0, {copy(hbm(0), hbm(65536), 8192)}}, {kQ0 + 1, {load(8192, 1)}}});
  EXPECT_EQ(rh.cycles_of(kQ0, 0), L + 768);
  EXPECT_EQ(rh.cycles_of(kQ0 + 1, 0), L + 768);
  // Gathers share by effective bytes: 1024 runs of 2 bytes are 16 KiB of HBM traffic.
  auto rg = dev.run({{kQ0, {copy(hbm(0), dev.sbuf(0, 0), 2, {64, 2, 2}, {16, 256, pb})}},
                     {kQ0 + 1, {load(16384, 1)}},
                     {kQ0 + 2, {load(16384, 2)}},
                     {kQ0 + 3, {load(16384, 3)}}});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rg.cycles_of(kQ0 + i, 0), L + 2048) << i;
}

// A transfer that starts while another is running: the rate changes at the cycle it joins. On tc1-8,
// H = 16 = q: one queue alone has all of HBM, two get 8 B/cycle each.
TEST(DmaTiming, StaggeredTransfersAndSbufCopiesBesideHbmTraffic) {
  Dev dev(find_config("tc1-8"));
  ASSERT_EQ(dev.cfg.hbm_bytes_per_cycle, 16u);
  const uint64_t L = dev.cfg.dma_latency_cycles, pb = dev.cfg.sbuf_partition_bytes;
  // q0: 16384 bytes from cycle L = 64. q1: an SBUF copy of 1024 bytes (L + 64 = 128 cycles), then 4096
  // bytes from HBM joining at 128 + L = 192. Until 192 q0 moves 16 B/cycle (2048 bytes); then 8 each:
  // q1 needs 512 cycles (ends at 704), by when q0 has 16384 - 2048 - 4096 = 10240 left, alone again at
  // 16 B/cycle: 640 cycles, ending at 1344.
  auto r = dev.run({{kQ0, {copy(hbm(0), dev.sbuf(0, 0), 16384)}},
                    {kQ0 + 1, {copy(dev.sbuf(1, 0), dev.sbuf(2, 0), 1024), copy(hbm(0), dev.sbuf(3, 0), 4096)}}});
  EXPECT_EQ(r.of(kQ0 + 1, 1).start, 128u);
  EXPECT_EQ(r.of(kQ0 + 1, 1).end, 704u);
  EXPECT_EQ(r.of(kQ0, 0).end, 1344u);
  // HBM -> HBM alone: H / 2 = 8 B/cycle.
  auto rh = dev.run({{kQ0, {copy(hbm(0), hbm(65536), 4096)}}});
  EXPECT_EQ(rh.cycles, L + 4096 / 8);
  // Four queues saturate HBM (4 B/cycle each); SBUF -> SBUF and PSUM -> SBUF copies beside them run at
  // the queue's full peak.
  std::vector<std::pair<int, std::vector<Instr>>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back({kQ0 + i, {copy(hbm(0), dev.sbuf(uint64_t(i), 0), 8192)}});
  streams.push_back({kQ0 + 4, {copy(dev.sbuf(4, 0), dev.sbuf(5, 0), 1024, {8, 1024, 1024})}});
  streams.push_back({kQ0 + 5, {copy(dev.psum(0, 0), dev.sbuf(6, 0), 512, {8, dev.cfg.psum_partition_bytes(), 512})}});
  streams.push_back({kQ0 + 6, {copy(dev.sbuf(7, 0), dev.sbuf(7, 8192), 2, {1024, 2, 2})}});
  auto rs = dev.run(streams);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rs.cycles_of(kQ0 + i, 0), L + 8192 / 4) << i;
  EXPECT_EQ(rs.cycles_of(kQ0 + 4, 0), L + 8192 / 16);
  EXPECT_EQ(rs.cycles_of(kQ0 + 5, 0), L + 4096 / 16);
  EXPECT_EQ(rs.cycles_of(kQ0 + 6, 0), L + 1024 * 16 / 16);  // small runs still cost their minimum
  (void)pb;
}

// A config whose runs cost at least 64 bytes and whose HBM is wide: small runs are 4x dearer than on tc1.
TEST(DmaTiming, RunMinimumIsAConfigParameter) {
  DeviceConfig c = find_config("tc1-8");
  c.name = "tc1-8-burst64";
  c.dma_min_run_bytes = 64;
  c.hbm_bytes_per_cycle = 1024;
  c.dma_latency_cycles = 100;
  Dev dev(c);
  auto r = dev.run({{kQ0,
                     {copy(hbm(0), dev.sbuf(0, 0), 16, {256, 16, 16}), copy(hbm(0), dev.sbuf(0, 0), 64, {64, 64, 64}),
                      copy(hbm(0), dev.sbuf(0, 0), 100, {8, 100, 100})}},
                    {kQ0 + 1, {copy(hbm(0), dev.sbuf(1, 0), 4096)}}});
  EXPECT_EQ(r.cycles_of(kQ0, 0), 100 + 256 * 64 / 16);
  EXPECT_EQ(r.cycles_of(kQ0, 1), 100 + 4096 / 16);
  EXPECT_EQ(r.cycles_of(kQ0, 2), 100 + 800 / 16);
  EXPECT_EQ(r.cycles_of(kQ0 + 1, 0), 100 + 4096 / 16);
}

// ---- Faults ---------------------------------------------------------------------------------------------------
// Every fault kind: code, engine, instruction and exact first offending address; no byte moves; after a
// reset the next job is correct (and timed exactly: the abandoned transfers left the HBM arbiter).
TEST(DmaFaults, EveryKindIsExactAndTheDeviceRecovers) {
  Dev dev(find_config("tc1-8"));
  const uint64_t pb = dev.cfg.sbuf_partition_bytes, ppb = dev.cfg.psum_partition_bytes(),
                 L = dev.cfg.dma_latency_cycles;
  const uint64_t win = dev.window_bytes;
  std::mt19937 rng(3);
  const std::vector<uint8_t> hbm_img = random_bytes(rng, kStage);
  dev.write(0, hbm_img);
  const Instr ok = copy(hbm(0), dev.sbuf(0, 0), 64);  // a valid first instruction, so the fault is at pc 1
  auto bad = [&](Instr in) { return std::vector<Instr>{ok, in}; };
  const int q = kQ0 + 5;

  // BadOperand (address 0): zero counts, too many runs, a cast whose bytes are not whole source elements.
  Instr z = copy(hbm(0), dev.sbuf(0, 0), 4);
  for (int field = 0; field < 4; ++field) {
    Instr in = z;
    (field == 0 ? in.bytes : field == 1 ? in.d1_count : field == 2 ? in.d2_count : in.d3_count) = 0;
    dev.expect_fault(q, bad(in), FaultCode::BadOperand, 0, "zero count");
  }
  dev.expect_fault(q, bad(copy(hbm(0), dev.sbuf(0, 0), 1, {256}, {256}, {257})), FaultCode::BadOperand, 0,
                   "more than 2^24 runs");
  dev.expect_fault(q, bad(with_cast(copy(hbm(0), dev.sbuf(0, 0), 6), DType::kF32, DType::kBf16)), FaultCode::BadOperand,
                   0, "6 bytes of f32");
  // BadDtype: unknown codes (address of that side), dtypes without cast, PSUM read as anything but f32.
  Instr unknown_src = copy(hbm(8), dev.sbuf(0, 0), 8);
  unknown_src.cast = 1, unknown_src.src_dtype = 3;
  dev.expect_fault(q, bad(unknown_src), FaultCode::BadDtype, hbm(8), "unknown src dtype");
  Instr unknown_dst = copy(hbm(8), dev.sbuf(2, 4), 8);
  unknown_dst.cast = 1, unknown_dst.dst_dtype = 15;
  dev.expect_fault(q, bad(unknown_dst), FaultCode::BadDtype, dev.sbuf(2, 4), "unknown dst dtype");
  Instr no_cast = copy(hbm(8), dev.sbuf(2, 4), 8);
  no_cast.dst_dtype = uint64_t(DType::kBf16);
  dev.expect_fault(q, bad(no_cast), FaultCode::BadDtype, dev.sbuf(2, 4), "dtype without cast");
  // BadSpace: DMA never writes PSUM, PSUM goes only to SBUF, unknown spaces, runs leaving their space.
  dev.expect_fault(q, bad(copy(hbm(0), dev.psum(1, 0), 4)), FaultCode::BadSpace, dev.psum(1, 0), "write psum");
  dev.expect_fault(q, bad(copy(dev.sbuf(0, 0), dev.psum(0, 0), 4)), FaultCode::BadSpace, dev.psum(0, 0), "sbuf->psum");
  dev.expect_fault(q, bad(copy(dev.psum(0, 0), hbm(0), 4)), FaultCode::BadSpace, hbm(0), "psum->hbm");
  const uint64_t space5 = isa::make_addr(Space(5), 0);
  dev.expect_fault(q, bad(copy(space5, dev.sbuf(0, 0), 4)), FaultCode::BadSpace, space5, "unknown src space");
  // Out of range: the first offending run in loop order (dimension 1 innermost), source before
  // destination; earlier runs were valid and nothing moved.
  dev.expect_fault(q, bad(copy(hbm(win - 4096), dev.sbuf(0, 0), 64, {4, 64, 64}, {3, 512, pb}, {4, 1024, 256})),
                   FaultCode::HbmOutOfRange, hbm(win - 4096 + 3 * 1024 + 2 * 512 + 0), "hbm source");
  dev.expect_fault(q, bad(copy(dev.sbuf(0, 0), hbm(win - 200), 64, {4, 64, 64})), FaultCode::HbmOutOfRange,
                   hbm(win - 200 + 192), "hbm destination, the 4th run");
  dev.expect_fault(q, bad(copy(hbm(0), dev.sbuf(0, pb - 100), 10, {3, 10, 46}, {2, 0, pb})), FaultCode::SbufOutOfRange,
                   dev.sbuf(0, pb - 100 + 2 * 46), "sbuf run crossing its partition");
  dev.expect_fault(q, bad(copy(hbm(0), dev.sbuf(0, 0), 8, {2, 8, pb}, {1}, {5, 0, 2 * pb})), FaultCode::SbufOutOfRange,
                   dev.sbuf(8, 0), "sbuf past the last partition");
  dev.expect_fault(q, bad(copy(dev.psum(7, ppb - 8), dev.sbuf(0, 0), 16)), FaultCode::PsumOutOfRange,
                   dev.psum(7, ppb - 8), "psum run crossing the end");
  dev.expect_fault(q, bad(with_cast(copy(hbm(0), dev.sbuf(0, pb - 32), 32), DType::kBf16, DType::kF32)),
                   FaultCode::SbufOutOfRange, dev.sbuf(0, pb - 32), "cast destination run twice the source");
  // Nothing moved: the SBUF -> HBM scatter whose last run is out of range left HBM as it was.
  dev.expect_fault(q, {copy(dev.sbuf(0, 0), hbm(0), 64, {2, pb, 4096}, {2, 0, win - 4096})}, FaultCode::HbmOutOfRange,
                   hbm(win), "last run out of range");
  EXPECT_TRUE(dev.read(0, kStage) == hbm_img) << "a faulting copy wrote HBM";

  // A fault on one queue while others are in the middle of HBM transfers, then a reset: the next job's
  // transfers are timed exactly as if the abandoned ones never existed.
  try {
    dev.run({{kQ0, {copy(hbm(0), dev.sbuf(0, 0), 16384)}},
             {kQ0 + 1, {copy(hbm(0), dev.sbuf(1, 0), 16384)}},
             {kQ0 + 2, {copy(dev.sbuf(2, 0), dev.sbuf(3, 0), 1024), copy(hbm(0), dev.psum(0, 0), 4)}}});
    ADD_FAILURE() << "expected BadSpace";
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), FaultCode::BadSpace);
    EXPECT_EQ(e.engine(), kQ0 + 2);
    EXPECT_EQ(e.pc(), 1u);
  }
  dev.driver.reset();
  auto r = dev.run({{kQ0, {copy(hbm(0), dev.sbuf(0, 0), 4096)}}, {kQ0 + 1, {copy(hbm(0), dev.sbuf(1, 0), 4096)}}});
  EXPECT_EQ(r.cycles_of(kQ0, 0), L + 4096 / 8);
  EXPECT_EQ(r.cycles_of(kQ0 + 1, 0), L + 4096 / 8);
  // And the data of a correct job arrives.
  r = dev.run({{kQ0, {copy(hbm(0), dev.sbuf(0, 0), 4096), copy(dev.sbuf(0, 0), hbm(8192), 4096)}}});
  EXPECT_EQ(r.cycles, 2 * (L + 4096 / 16));
  const std::vector<uint8_t> back = dev.read(8192, 4096);
  EXPECT_TRUE(std::equal(back.begin(), back.end(), hbm_img.begin())) << "round trip after reset";
}

}  // namespace
}  // namespace tcemu
