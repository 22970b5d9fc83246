// Test rig for VectorE and ScalarE: a device (one per process), a host image of SBUF that a DMA loads
// before the instructions run, and host images of SBUF and PSUM that DMAs read back afterwards. Also the
// tests' own reference numerics, written from docs/numerics.md in fp64 without the emulator's code.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "inproc_transport.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"

namespace tcemu::test {

using isa::AluOp;
using isa::DType;
using isa::Instr;
using isa::Opcode;
using isa::Space;
using isa::TensorOperand;

// ---- Reference numerics (fp64 on the host) -----------------------------------------------------------
inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline constexpr uint32_t kNan = 0x7FC00000u;

// The value an input element contributes: f32 and bf16 subnormals read as signed zero; i32 is first
// converted to fp32 (round to nearest even).
inline double in_value(uint32_t raw, DType d) {
  float f = d == DType::kI32 ? float(int32_t(raw)) : float_of(d == DType::kBf16 ? raw << 16 : raw);
  if (std::fpclassify(f) == FP_SUBNORMAL) f = std::copysign(0.0f, f);
  return f;
}
// An fp32 result: the exact (or fp64) value rounded once to fp32, then flushed below 2^-126 and NaN made
// canonical. For + - * / of fp32 operands, rounding the fp64 result to fp32 is the correctly rounded
// fp32 result (fp64 carries more than 2 * 24 + 2 bits).
inline float ref_f32(double x) {
  if (std::isnan(x)) return float_of(kNan);
  float f = float(x);
  if (f != 0 && std::fabs(f) < std::numeric_limits<float>::min()) f = std::copysign(0.0f, f);
  return f;
}
// Bits of a value in dtype d, rounded once to nearest even: bf16 keeps 8 significant bits; i32
// saturates and takes NaN to 0.
inline uint32_t ref_bits(double x, DType d) {
  if (d == DType::kF32) return bits_of(ref_f32(x));
  if (d == DType::kI32) {
    if (std::isnan(x)) return 0;
    const double r = std::nearbyint(x);
    if (r >= 2147483648.0) return 0x7FFFFFFFu;
    if (r < -2147483648.0) return 0x80000000u;
    return uint32_t(int32_t(r));
  }
  if (std::isnan(x)) return 0x7FC0;
  if (x == 0 || std::isinf(x)) return bits_of(float(x)) >> 16;
  int e;
  const double m = std::frexp(x, &e);
  const double v = std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8);
  return bits_of(float(v)) >> 16;  // float(v) is exact, or inf beyond the range
}
inline double ref_max(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}
inline double ref_min(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}
// One ALU op on fp32 values (as doubles): the exact result, before the rounding to fp32.
inline double ref_alu(AluOp op, double a, double b) {
  switch (op) {
    case AluOp::kBypass: return a;
    case AluOp::kAdd: return a + b;
    case AluOp::kSub: return a - b;
    case AluOp::kMul: return a * b;
    case AluOp::kDiv: return a / b;
    case AluOp::kMax: return ref_max(a, b);
    case AluOp::kMin: return ref_min(a, b);
    case AluOp::kIsEqual: return a == b;
    case AluOp::kIsLt: return a < b;
    case AluOp::kIsLe: return a <= b;
    case AluOp::kIsGt: return a > b;
    case AluOp::kIsGe: return a >= b;
  }
  return NAN;
}

// Random fp32 inputs in [-lo, hi] with, one in `special_every`, a special value (zeros, infinities,
// NaN, subnormals, large values).
inline float random_value(std::mt19937& rng, float lo = -4, float hi = 4, int special_every = 12) {
  static const float specials[] = {0.0f,   -0.0f,   INFINITY, -INFINITY, NAN,  float_of(0xFFC12345u),
                                   1e-40f, -3e-39f, 1e30f,    -2.5e30f,  3.0f, 1.0f};
  if (special_every && rng() % special_every == 0) return specials[rng() % std::size(specials)];
  return std::uniform_real_distribution<float>(lo, hi)(rng);
}
inline uint32_t random_raw(std::mt19937& rng, DType d, float lo = -4, float hi = 4, int special_every = 12) {
  if (d == DType::kI32) {
    if (special_every && rng() % special_every == 0) {
      static const int32_t specials[] = {0, -1, 16777217, -16777219, 2147483647, -2147483647 - 1, 1 << 30};
      return uint32_t(specials[rng() % std::size(specials)]);
    }
    return uint32_t(int32_t(std::uniform_int_distribution<int>(int(lo) * 100, int(hi) * 100)(rng)));
  }
  const uint32_t u = bits_of(random_value(rng, lo, hi, special_every));
  return d == DType::kBf16 ? u >> 16 : u;
}

// ---- The rig -----------------------------------------------------------------------------------------
struct Shape {
  uint32_t np = 1, n0 = 1, n1 = 1;
};

inline TensorOperand sb(DType d, uint32_t part, uint32_t off, uint32_t s0 = 1, uint32_t s1 = 0) {
  return {Space::kSbuf, d, part, off, s0, s1};
}
inline TensorOperand ps(uint32_t part, uint32_t off, uint32_t s0 = 1, uint32_t s1 = 0) {
  return {Space::kPsum, DType::kF32, part, off, s0, s1};
}
inline uint64_t col(const TensorOperand& t) { return isa::pack_column(t.space, t.dtype, t.part, t.off); }

// A compute instruction over `s` with its tensor operands; the caller sets the opcode's other fields.
inline Instr compute(Opcode op, Shape s, const TensorOperand& out, const TensorOperand* in0 = nullptr,
                     const TensorOperand* in1 = nullptr, const TensorOperand* in2 = nullptr) {
  Instr in;
  in.opcode = op;
  in.np = s.np, in.n0 = s.n0, in.n1 = s.n1;
  in.out = isa::pack_operand(out);
  if (in0) in.in0 = isa::pack_operand(*in0);
  if (in1) in.in1 = isa::pack_operand(*in1);
  if (in2) in.in2 = isa::pack_operand(*in2);
  return in;
}

class Rig {
 public:
  explicit Rig(const DeviceConfig& cfg, uint32_t seed = 1) : cfg(cfg), transport(cfg), driver(transport), rng(seed) {
    sbuf_pitch = cfg.sbuf_partition_bytes, psum_pitch = cfg.psum_partition_bytes();
    sbuf.resize(cfg.sbuf_bytes());
    psum.resize(cfg.psum_bytes());
    for (auto& b : sbuf) b = uint8_t(rng());
    window_bytes = 2 * sbuf.size() + uint64_t(cfg.psum_partitions) * sbuf_pitch;
    window = driver.alloc(window_bytes);
  }

  DeviceConfig cfg;
  drv::InProcessTransport transport;
  drv::Driver driver;
  std::mt19937 rng;
  uint64_t sbuf_pitch = 0, psum_pitch = 0;
  std::vector<uint8_t> sbuf;    // loaded into SBUF before run(); SBUF as it was after run()
  std::vector<uint8_t> psum;    // PSUM as it was after run()
  std::vector<uint8_t> before;  // the SBUF image run() loaded
  uint64_t window = 0, window_bytes = 0;

  uint8_t* at(const TensorOperand& t, uint32_t p, uint32_t i1, uint32_t i0, std::vector<uint8_t>& mem) {
    const uint64_t pitch = t.space == Space::kPsum ? psum_pitch : sbuf_pitch;
    return &mem[(t.part + p) * pitch + t.off +
                (uint64_t(i1) * t.s1 + uint64_t(i0) * t.s0) * isa::dtype_bytes(uint64_t(t.dtype))];
  }
  // Element bits in the current images (PSUM operands read the PSUM image).
  uint32_t get(const TensorOperand& t, uint32_t p, uint32_t i1 = 0, uint32_t i0 = 0) {
    const uint8_t* e = at(t, p, i1, i0, t.space == Space::kPsum ? psum : sbuf);
    uint32_t u = 0;
    for (uint32_t i = 0; i < isa::dtype_bytes(uint64_t(t.dtype)); ++i) u |= uint32_t(e[i]) << (8 * i);
    return u;
  }
  // Element bits as loaded by the last run() (SBUF operands only).
  uint32_t get_before(const TensorOperand& t, uint32_t p, uint32_t i1 = 0, uint32_t i0 = 0) {
    const uint8_t* e = at(t, p, i1, i0, before);
    uint32_t u = 0;
    for (uint32_t i = 0; i < isa::dtype_bytes(uint64_t(t.dtype)); ++i) u |= uint32_t(e[i]) << (8 * i);
    return u;
  }
  void set(const TensorOperand& t, uint32_t p, uint32_t i1, uint32_t i0, uint32_t bits) {
    uint8_t* e = at(t, p, i1, i0, sbuf);
    for (uint32_t i = 0; i < isa::dtype_bytes(uint64_t(t.dtype)); ++i) e[i] = uint8_t(bits >> (8 * i));
  }
  // Fills an SBUF operand's elements with random values of its dtype.
  void fill(const TensorOperand& t, Shape s, float lo = -4, float hi = 4, int special_every = 12) {
    for (uint32_t p = 0; p < s.np; ++p)
      for (uint32_t i1 = 0; i1 < s.n1; ++i1)
        for (uint32_t i0 = 0; i0 < s.n0; ++i0) set(t, p, i1, i0, random_raw(rng, t.dtype, lo, hi, special_every));
  }

  struct Result {
    std::vector<TraceRecord> trace;  // one per instruction of `engine`, in order
  };

  // Loads the SBUF image, runs `instrs` on `engine`, reads SBUF and PSUM back into the images (PSUM is
  // staged through SBUF, which is then restored: afterwards the device's SBUF equals `sbuf`). Throws
  // drv::DeviceFault if the device faults (the images then keep the loaded SBUF).
  // With `load` false, SBUF keeps what the device holds and `instrs` must be empty: a read-back only.
  Result run(int engine, std::vector<Instr> instrs, bool load_sbuf = true) {
    before = sbuf;
    if (load_sbuf) driver.write(window, sbuf);
    const uint64_t sbuf_out = sbuf.size(), psum_out = 2 * sbuf.size();
    const int kLoaded = 100, kDone = 101;
    for (size_t i = 0; i < instrs.size(); ++i) {
      Instr& in = instrs[i];
      in.wait_en = i == 0, in.wait_sem = kLoaded, in.wait_value = 1;
      in.signal_en = 1, in.signal_sem = kDone, in.signal_value = 1, in.signal_set = 0;
    }
    auto copy = [&](uint64_t src, uint64_t dst, uint64_t bytes, uint64_t count, uint64_t src_stride,
                    uint64_t dst_stride) {
      Instr c;
      c.opcode = Opcode::DmaCopy;
      c.src = src, c.dst = dst, c.bytes = bytes, c.d1_count = count, c.d2_count = 1;
      c.src_d1_stride = src_stride, c.dst_d1_stride = dst_stride;
      return c;
    };
    auto hbm = [](uint64_t off) { return isa::make_addr(Space::kHbm, off); };
    const uint64_t sbuf0 = isa::make_addr(Space::kSbuf, 0), psum0 = isa::make_addr(Space::kPsum, 0);
    const uint64_t np = uint64_t(cfg.sbuf_partitions), pp = uint64_t(cfg.psum_partitions);
    Instr load = copy(hbm(0), sbuf0, sbuf_pitch, np, sbuf_pitch, sbuf_pitch);
    load.signal_en = 1, load.signal_sem = kLoaded, load.signal_value = 1;
    Instr store = copy(sbuf0, hbm(sbuf_out), sbuf_pitch, np, sbuf_pitch, sbuf_pitch);
    store.wait_en = load_sbuf, store.wait_sem = kDone, store.wait_value = uint32_t(instrs.size());
    Instr psum_in = copy(psum0, sbuf0, psum_pitch, pp, psum_pitch, sbuf_pitch);
    Instr psum_store = copy(sbuf0, hbm(psum_out), psum_pitch, pp, sbuf_pitch, psum_pitch);
    Instr restore = copy(hbm(sbuf_out), sbuf0, sbuf_pitch, np, sbuf_pitch, sbuf_pitch);  // undo the PSUM staging
    drv::ScopedMemory mem(driver);
    auto stream = [&](int e, const std::vector<Instr>& v) { return mem.stream(e, v); };
    drv::Job job{window, window_bytes, {}};
    if (load_sbuf)
      job.streams = {stream(isa::kEngineDma0, {load, store, psum_in, psum_store, restore}), stream(engine, instrs)};
    else
      job.streams = {stream(isa::kEngineDma0, {store, psum_in, psum_store, restore})};
    const uint32_t capacity = uint32_t(instrs.size()) + 4;
    job.trace_addr = mem.alloc(uint64_t(capacity) * kTraceRecordBytes, 64);
    job.trace_capacity = capacity;
    const drv::JobResult r = driver.run(job, 100'000'000);
    Result result;
    for (const TraceRecord& t : driver.read_trace(job.trace_addr, std::min(r.trace_count, capacity)))
      if (t.engine == engine) result.trace.push_back(t);
    driver.read(window + sbuf_out, sbuf);
    driver.read(window + psum_out, psum);  // psum_store packed it at the PSUM pitch
    return result;
  }

  // Runs a job that must fault with `code` on `engine` at instruction `pc`; returns the fault. Then
  // resets the device and reads SBUF back: a faulting instruction (the job's only one) writes nothing.
  drv::DeviceFault run_fault(int engine, const std::vector<Instr>& instrs, regs::FaultCode code, uint32_t pc) {
    SCOPED_TRACE(std::string("expecting ") + regs::fault_name(code) + " from " + isa::disassemble(instrs.back()));
    try {
      run(engine, instrs);
    } catch (const drv::DeviceFault& e) {
      EXPECT_EQ(e.fault(), code) << e.what();
      EXPECT_EQ(e.engine(), engine) << e.what();
      EXPECT_EQ(e.pc(), pc) << e.what();
      driver.reset();
      const std::vector<uint8_t> loaded = sbuf;
      run(engine, {}, false);
      if (instrs.size() == 1) EXPECT_TRUE(sbuf == loaded) << "the faulting instruction changed SBUF";
      return e;
    }
    ADD_FAILURE() << "expected fault " << regs::fault_name(code);
    return drv::DeviceFault(regs::FaultCode::None, 0, 0, 0, 0, 0);
  }
};

// An element moved to dtype `dst` as tensor_copy defines it: the same bits for the same dtype, else its
// exact value (f32/bf16 subnormals read as zero) rounded once.
inline uint32_t ref_convert(uint32_t raw, DType src, DType dst) {
  if (src == dst) return raw;
  const double v = src == DType::kI32 ? double(int32_t(raw)) : in_value(raw, src);
  return ref_bits(v, dst);
}
// An fp32 result (exact value rounded to fp32) converted to the out dtype.
inline uint32_t ref_out(double exact, DType d) { return ref_bits(ref_f32(exact), d); }

// Every element of `out` over `s` must equal ref(p, i1, i0) bit for bit.
template <typename F>
void expect_bits(Rig& rig, const TensorOperand& out, Shape s, F&& ref, const std::string& what) {
  int bad = 0;
  for (uint32_t p = 0; p < s.np; ++p)
    for (uint32_t i1 = 0; i1 < s.n1; ++i1)
      for (uint32_t i0 = 0; i0 < s.n0; ++i0) {
        const uint32_t want = ref(p, i1, i0), got = rig.get(out, p, i1, i0);
        if (want != got && ++bad <= 5)
          ADD_FAILURE() << what << ": element (p " << p << ", i1 " << i1 << ", i0 " << i0 << "): expected 0x"
                        << std::hex << want << ", got 0x" << got << std::dec;
      }
  EXPECT_EQ(bad, 0) << what;
}

// SBUF bytes outside the given operands' elements must be as loaded.
inline void expect_only_written(Rig& rig, const std::vector<std::pair<TensorOperand, Shape>>& outs) {
  std::vector<bool> mask(rig.sbuf.size());
  for (const auto& [t, s] : outs) {
    if (t.space != Space::kSbuf) continue;
    for (uint32_t p = 0; p < s.np; ++p)
      for (uint32_t i1 = 0; i1 < s.n1; ++i1)
        for (uint32_t i0 = 0; i0 < s.n0; ++i0) {
          const size_t at = size_t(rig.at(t, p, i1, i0, rig.sbuf) - rig.sbuf.data());
          for (uint32_t b = 0; b < isa::dtype_bytes(uint64_t(t.dtype)); ++b) mask[at + b] = true;
        }
  }
  size_t changed = 0;
  for (size_t i = 0; i < mask.size(); ++i) changed += !mask[i] && rig.sbuf[i] != rig.before[i];
  EXPECT_EQ(changed, 0u) << "bytes outside the outputs changed";
}

// A config with 128 partitions (Trainium's), a small SBUF, and the small array, for the quadrant rules.
inline DeviceConfig wide_config() {
  DeviceConfig c = find_config("tc1-8");
  c.name = "tc1-8-wide";
  c.sbuf_partitions = c.psum_partitions = 128;
  c.sbuf_partition_bytes = 4096;
  c.psum_bank_bytes = 512;
  return c;
}

}  // namespace tcemu::test
