// TensorE beyond the bf16 matmul: pe_transpose through the array and the fp32 matmul's bf16 passes, on
// the emulated device with the RTL array, driven by hand-written jobs through the driver. Expected
// values come from the documented rules (docs/numerics.md), the golden model (tcemu::num) and fp64; the
// cycle counts from the documented formulas (docs/isa.md). One device per process: each TEST runs in its
// own process (gtest_discover_tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>

#include "tcemu/numerics.h"
#include "tensor_rig.h"

namespace tcemu {
namespace {

using isa::Instr;
using isa::Opcode;
using test::hex;
using test::matmul;
using test::MatmulOperands;
using test::pe_transpose;
using Rig = test::TensorRig;

// ---- pe_transpose -------------------------------------------------------------------------------------

bool bf16_is_nan(uint16_t x) { return (x & 0x7F80) == 0x7F80 && (x & 0x7F); }
bool bf16_is_inf_or_nan(uint16_t x) { return (x & 0x7F80) == 0x7F80; }

// docs/numerics.md, "pe_transpose": out[e][p] is T[p][e] except that subnormals and -0 become +0, any NaN
// is the canonical NaN, and an inf or NaN anywhere else in input column e (T[q][e], q != p) makes it NaN.
uint32_t transpose_rule(const std::vector<uint16_t>& T, int k, int m, int p, int e) {
  for (int q = 0; q < k; ++q)
    if (q != p && bf16_is_inf_or_nan(T[q * m + e])) return num::kF32CanonicalNan;
  const uint16_t x = T[p * m + e];
  if (bf16_is_nan(x)) return num::kF32CanonicalNan;
  if ((x & 0x7F80) == 0) return 0;  // +-0 and subnormals
  return uint32_t(x) << 16;
}

std::vector<uint16_t> random_bf16_tile(std::mt19937& rng, int k, int m) {
  // Finite values over a wide range, with -0, +0 and subnormals sprinkled in.
  const uint16_t finite_specials[] = {0x0000, 0x8000, 0x0001, 0x807F, 0x0040, 0x0080, 0x8080, 0x7F7F, 0xFF7F};
  std::vector<uint16_t> t(size_t(k) * m);
  for (auto& x : t) {
    if (rng() % 5 == 0)
      x = finite_specials[rng() % std::size(finite_specials)];
    else {
      do x = uint16_t(rng());
      while (bf16_is_inf_or_nan(x));
    }
  }
  return t;
}

struct TransposeCase {
  int k, m, st_part, st_off, out_part, out_off;
};

void check_transposes(const char* config, const std::vector<TransposeCase>& cases) {
  Rig rig(config);
  std::mt19937 rng(11);
  for (const TransposeCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << config << " k=" << c.k << " m=" << c.m << " st_part=" << c.st_part
                                      << " st_off=" << c.st_off << " out_part=" << c.out_part
                                      << " out_off=" << c.out_off);
    // Two tiles: the first is transposed into PSUM, the second is transposed and added to it.
    std::vector<uint16_t> a = random_bf16_tile(rng, c.k, c.m), b = random_bf16_tile(rng, c.k, c.m);
    if (c.k > 1 && c.m > 1) {  // infinities and NaN in b: each poisons its column but for its own place
      b[(rng() % c.k) * c.m + 0] = 0x7F80;
      b[(rng() % c.k) * c.m + 1] = 0xFFC1;
      b[(rng() % c.k) * c.m + c.m - 1] = 0xFF80;
    }
    rig.sbuf_write(c.st_part, c.st_off, 2 * c.m, c.k, a.data());
    rig.sbuf_write(c.st_part, c.st_off + 2 * c.m, 2 * c.m, c.k, b.data());
    rig.run_tensor({pe_transpose(c.k, c.m, c.st_part, c.st_off, c.out_part, c.out_off)});
    const std::vector<uint32_t> ya = rig.psum_read(c.out_part, c.out_off, c.k, c.m);
    rig.run_tensor({pe_transpose(c.k, c.m, c.st_part, c.st_off + 2 * c.m, c.out_part, c.out_off, true)});
    const std::vector<uint32_t> yab = rig.psum_read(c.out_part, c.out_off, c.k, c.m);
    int bad = 0;
    for (int e = 0; e < c.m; ++e) {
      for (int p = 0; p < c.k; ++p) {
        const uint32_t ra = transpose_rule(a, c.k, c.m, p, e);
        const uint32_t rab = num::golden_add(ra, transpose_rule(b, c.k, c.m, p, e));
        const size_t i = size_t(e) * c.k + p;
        if (ya[i] != ra && bad++ < 5)
          ADD_FAILURE() << "out[" << e << "][" << p << "] = " << hex(ya[i]) << ", rule gives " << hex(ra)
                        << " for input " << std::hex << a[p * c.m + e];
        if (yab[i] != rab && bad++ < 5)
          ADD_FAILURE() << "accumulated out[" << e << "][" << p << "] = " << hex(yab[i]) << ", expected " << hex(rab);
      }
    }
    EXPECT_EQ(bad, 0);
    // The rule is the array's arithmetic with identity columns: the golden matmul tile agrees.
    std::vector<uint16_t> identity(size_t(c.k) * c.k, 0);
    for (int i = 0; i < c.k; ++i) identity[size_t(i) * c.k + i] = 0x3F80;
    std::vector<uint32_t> g(size_t(c.m) * c.k);
    num::golden_matmul_tile(c.k, c.m, c.k, a.data(), identity.data(), g.data());
    EXPECT_EQ(g, ya);
  }
}

TEST(PeTranspose, ShapesAndOffsetsBitExactPerTheRuleTc1_8) {
  check_transposes("tc1-8", {{8, 8, 0, 0, 0, 0},
                             {1, 1, 0, 0, 0, 0},
                             {1, 8, 3, 6, 0, 4},
                             {8, 1, 0, 2, 5, 8},
                             {5, 3, 3, 100, 2, 2048 + 12},
                             {7, 8, 1, 2, 0, 2 * 2048 - 4 * 7}});
}

TEST(PeTranspose, ShapesAndOffsetsBitExactPerTheRuleTc1_16) {
  check_transposes("tc1-16",
                   {{16, 16, 0, 0, 0, 0}, {16, 9, 0, 10, 4, 64}, {3, 16, 13, 0, 0, 7 * 2048}, {11, 5, 2, 4, 11, 4}});
}

TEST(PeTranspose, ShapesAndOffsetsBitExactPerTheRuleTc1_32) {
  check_transposes("tc1-32", {{32, 32, 0, 0, 0, 0}, {20, 31, 12, 6, 1, 2048 - 80}, {32, 2, 0, 0, 30, 8}});
}

// docs/isa.md, pe_transpose timing: a matmul with n = k identity columns. Alone in a job: k weight-load
// cycles, k streaming cycles, then the array's latency rows + cols - 1 until the last column is in PSUM.
TEST(PeTranspose, LoneInstructionCyclesAreTheFormula) {
  Rig rig("tc1-16");
  std::vector<uint16_t> t(16 * 16, 0x3F80);
  rig.sbuf_write(0, 0, 32, 16, t.data());
  for (int k : {1, 5, 16}) {
    for (int m : {1, 16}) {
      drv::JobResult r = rig.run_tensor({pe_transpose(k, m, 0, 0, 0, 0)}, 4);
      EXPECT_EQ(r.cycles, uint64_t(2 * k + rig.latency())) << "k=" << k << " m=" << m;
      ASSERT_EQ(r.trace_count, 1u);
      TraceRecord rec = rig.driver.read_trace(rig.trace, 1)[0];
      EXPECT_EQ(rec.opcode, uint16_t(Opcode::PeTranspose));
      EXPECT_EQ(rec.start, uint64_t(k));  // streaming window
      EXPECT_EQ(rec.end, uint64_t(2 * k));
      EXPECT_EQ(rec.macs, uint64_t(k) * m * k);
    }
  }
}

// ---- fp32 matmul --------------------------------------------------------------------------------------

// The golden split is exact: hi + mid + lo == x for normal x whose remainders stay normal, each part
// within its documented bound; specials follow the documented rule.
TEST(Fp32Split, PartsSumExactlyToTheValueAndSpecialsFollowTheRule) {
  std::mt19937 rng(3);
  uint16_t p[3];
  for (int i = 0; i < 200000; ++i) {
    uint32_t x = uint32_t(rng());
    const uint32_t e = (x >> 23) & 0xFF;
    if (e < 60 || e == 0xFF) continue;  // remainders of smaller values may fall below 2^-126
    num::golden_split_fp32(x, p);
    const double v = num::f32_from_bits(x), hi = num::bf16_to_f32(p[0]), mid = num::bf16_to_f32(p[1]),
                 lo = num::bf16_to_f32(p[2]);
    ASSERT_EQ(hi + mid + lo, v) << hex(x);
    ASSERT_LE(std::fabs(mid), std::ldexp(std::fabs(hi), -8)) << hex(x);
    ASSERT_LE(std::fabs(lo), std::ldexp(std::fabs(mid), -8)) << hex(x);
  }
  num::golden_split_fp32(0x7F7FFFFFu, p);  // would round to inf: truncated
  EXPECT_EQ(p[0], 0x7F7F);
  EXPECT_EQ(double(num::bf16_to_f32(p[0])) + num::bf16_to_f32(p[1]) + num::bf16_to_f32(p[2]), double(FLT_MAX));
  num::golden_split_fp32(0x3F808000u, p);  // tie: to even (down)
  EXPECT_EQ(p[0], 0x3F80);
  EXPECT_EQ(p[1], 0x3B80);                 // 2^-8
  num::golden_split_fp32(0x3F818000u, p);  // tie: to even (up)
  EXPECT_EQ(p[0], 0x3F82);
  EXPECT_EQ(p[1], 0xBB80);                 // -2^-8
  num::golden_split_fp32(0x80000001u, p);  // subnormal: -0
  EXPECT_EQ(p[0], 0x8000);
  EXPECT_EQ(p[1] | p[2], 0);
  num::golden_split_fp32(0xFF800000u, p);
  EXPECT_EQ(p[0], 0xFF80);
  EXPECT_EQ(p[1] | p[2], 0);
  num::golden_split_fp32(0x7FA00001u, p);
  EXPECT_EQ(p[0], num::kBf16CanonicalNan);
  num::golden_split_fp32(0x03801234u, p);  // 2^-120: the remainder below 2^-126 is flushed
  EXPECT_EQ(p[0], 0x0380);
  EXPECT_EQ(p[1] | p[2], 0);
}

// docs/numerics.md, "fp32 matmul": |y - exact| <= (K + 8) * 2^-24 * (sum |w x| + |PSUM before|).
double fp32_matmul_bound(int K, double abs_sum, double psum_before) {
  return (K + 8) * std::ldexp(1.0, -24) * (abs_sum + std::fabs(psum_before));
}

uint32_t random_fp32(std::mt19937& rng, int min_exp, int max_exp) {
  const uint32_t sign = uint32_t(rng() & 1) << 31, frac = uint32_t(rng()) & 0x7FFFFF;
  const int e = min_exp + int(rng() % uint32_t(max_exp - min_exp + 1));
  uint32_t x = sign | uint32_t(e + 127) << 23 | frac;
  if (rng() % 8 == 0) x = (x & 0xFFFF0000u) | 0x8000u;  // exact tie in the hi rounding
  return x;
}

struct Fp32Case {
  int k, m, n;
  MatmulOperands o;
};

// Runs W1^T X1 (overwrite) then adds W2^T X2 (accumulate) at the same PSUM place; both results must equal
// the golden pass model bit for bit and fp64 within the documented bound. W2 follows W1 and X2 follows X1
// in their partitions: the cases keep the four apart.
void check_fp32_matmuls(const char* config, const std::vector<Fp32Case>& cases) {
  Rig rig(config);
  std::mt19937 rng(21);
  double worst = 0;  // largest error seen, in units of the bound
  double worst_rel = 0;
  for (const Fp32Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << config << " k=" << c.k << " m=" << c.m << " n=" << c.n);
    const int K = c.k, M = c.m, N = c.n;
    std::vector<uint32_t> w[2], x[2];
    for (int t = 0; t < 2; ++t) {
      w[t].resize(size_t(K) * M), x[t].resize(size_t(K) * N);
      for (auto& v : w[t]) v = random_fp32(rng, -10, 10);
      for (auto& v : x[t]) v = random_fp32(rng, -10, 10);
    }
    const MatmulOperands& o = c.o;
    const uint64_t w2_off = o.st_off + 4 * M, x2_off = o.mv_off + 4 * N;
    rig.sbuf_write(o.st_part, o.st_off, 4 * M, K, w[0].data());
    rig.sbuf_write(o.st_part, w2_off, 4 * M, K, w[1].data());
    rig.sbuf_write(o.mv_part, o.mv_off, 4 * N, K, x[0].data());
    rig.sbuf_write(o.mv_part, x2_off, 4 * N, K, x[1].data());
    MatmulOperands o2 = o;
    o2.st_off = w2_off, o2.mv_off = x2_off;
    rig.run_tensor({matmul(isa::MatmulType::kFp32, K, M, N, o)});
    std::vector<uint32_t> y1 = rig.psum_read(o.out_part, o.out_off, N, M);
    rig.run_tensor({matmul(isa::MatmulType::kFp32, K, M, N, o2, true)});
    std::vector<uint32_t> y2 = rig.psum_read(o.out_part, o.out_off, N, M);

    std::vector<uint32_t> g(size_t(M) * N);
    num::golden_matmul_fp32_tile(K, M, N, w[0].data(), x[0].data(), g.data(), false);
    EXPECT_EQ(y1, g) << "first matmul differs from the golden pass model";
    num::golden_matmul_fp32_tile(K, M, N, w[1].data(), x[1].data(), g.data(), true);
    EXPECT_EQ(y2, g) << "accumulating matmul differs from the golden pass model";

    for (int cc = 0; cc < M; ++cc) {
      for (int nn = 0; nn < N; ++nn) {
        double exact[2] = {0, 0}, abs[2] = {0, 0};
        for (int t = 0; t < 2; ++t) {
          for (int r = 0; r < K; ++r) {
            const double p =
                double(num::f32_from_bits(w[t][size_t(r) * M + cc])) * num::f32_from_bits(x[t][size_t(r) * N + nn]);
            exact[t] += p, abs[t] += std::fabs(p);  // fp64 holds the products exactly; the sum nearly so
          }
        }
        const size_t i = size_t(cc) * N + nn;
        const double v1 = num::f32_from_bits(y1[i]), v2 = num::f32_from_bits(y2[i]);
        const double b1 = fp32_matmul_bound(K, abs[0], 0), b2 = fp32_matmul_bound(K, abs[1], v1);
        EXPECT_LE(std::fabs(v1 - exact[0]), b1) << "y1[" << cc << "][" << nn << "]";
        EXPECT_LE(std::fabs(v2 - (v1 + exact[1])), b2) << "y2[" << cc << "][" << nn << "]";
        worst = std::max({worst, std::fabs(v1 - exact[0]) / b1, std::fabs(v2 - (v1 + exact[1])) / b2});
        if (exact[0] != 0 && abs[0] < 4 * std::fabs(exact[0]))  // relative error where the sum does not cancel
          worst_rel = std::max(worst_rel, std::fabs(v1 - exact[0]) / std::fabs(exact[0]));
      }
    }
  }
  std::printf(
      "%s: largest error %.3f of the documented bound; max relative error %.3g (sums without heavy cancellation)\n",
      config, worst, worst_rel);
}

TEST(Fp32Matmul, BitExactToGoldenAndWithinBoundOfFp64Tc1_8) {
  check_fp32_matmuls("tc1-8", {{8, 8, 8, {0, 0, 0, 256, 0, 0}},
                               {3, 8, 40, {5, 8, 1, 64, 0, 0}},
                               {1, 1, 1, {0, 0, 0, 64, 0, 0}},
                               {8, 5, 100, {0, 0, 0, 512, 3, 2048}},
                               {6, 8, 512, {2, 4, 0, 4096, 0, 0}}});
}

TEST(Fp32Matmul, BitExactToGoldenAndWithinBoundOfFp64Tc1_32) {
  check_fp32_matmuls("tc1-32", {{32, 32, 64, {0, 0, 0, 512, 0, 0}}, {17, 20, 33, {10, 12, 3, 400, 12, 2048 * 3 + 16}}});
}

// Special operands through the passes (no fp64 check): infinities, NaN, -0, subnormals, values whose hi
// part would round to inf, tiny values whose remainders are flushed, products that overflow.
TEST(Fp32Matmul, SpecialOperandsBitExactToGolden) {
  Rig rig("tc1-8");
  const uint32_t specials[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFA00001,
                               0x00000001, 0x807FFFFF, 0x00800000, 0x03801234, 0x7F7FFFFF, 0xFF7F8000,
                               0x3F808000, 0x3F818000, 0x5F000000, 0x1F000000, 0x3F800001, 0xBF7FFFFF};
  std::mt19937 rng(8);
  const int K = 8, M = 8, N = 24;
  for (int round = 0; round < 3; ++round) {
    std::vector<uint32_t> w(K * M), x(K * N);
    for (auto& v : w) v = rng() % 3 == 0 ? specials[rng() % std::size(specials)] : random_fp32(rng, -4, 4);
    for (auto& v : x) v = rng() % 3 == 0 ? specials[rng() % std::size(specials)] : random_fp32(rng, -4, 4);
    if (round == 2)  // finite specials only, so that the columns are not all NaN
      for (auto* t : {&w, &x})
        for (auto& v : *t)
          if (((v >> 23) & 0xFF) == 0xFF) v = 0x3F800000;
    rig.sbuf_write(0, 0, 4 * M, K, w.data());
    rig.sbuf_write(0, 1024, 4 * N, K, x.data());
    rig.run_tensor({matmul(isa::MatmulType::kFp32, K, M, N, {0, 0, 0, 1024, 0, 0})});
    std::vector<uint32_t> g(M * N);
    num::golden_matmul_fp32_tile(K, M, N, w.data(), x.data(), g.data(), false);
    EXPECT_EQ(rig.psum_read(0, 0, N, M), g) << "round " << round;
  }
}

// fp32 X over every exponent (subnormals, infinities and NaN included) times an identity W: the device's
// operand splitter (integers) and the golden one (host floats) agree bit for bit, and the result is x
// itself wherever the documented rule says it is exact (normal |x| >= 2^-103, where no part is flushed).
// The same with the tile stationary and the identity moving transposes fp32 data exactly.
TEST(Fp32Matmul, IdentityTimesEveryExponentBitExactToGoldenAndExactWhereDocumented) {
  Rig rig("tc1-8");
  const int K = 8, M = 8, N = 512;
  std::vector<uint32_t> w(K * M, 0);
  for (int i = 0; i < K; ++i) w[i * M + i] = num::f32_bits(1.0f);
  rig.sbuf_write(0, 0, 4 * M, K, w.data());
  std::mt19937 rng(99);
  uint64_t exact = 0;
  for (int round = 0; round < 3; ++round) {
    std::vector<uint32_t> x(K * N);
    for (auto& v : x) v = uint32_t(rng());
    if (round == 2)  // no inf/NaN: they poison their whole output column (inf x 0 in the other passes)
      for (auto& v : x)
        if (((v >> 23) & 0xFF) == 0xFF) v &= 0xBFFFFFFFu;
    rig.sbuf_write(0, 64, 4 * N, K, x.data());
    rig.run_tensor({matmul(isa::MatmulType::kFp32, K, M, N, {0, 0, 0, 64, 0, 0})});
    const std::vector<uint32_t> y = rig.psum_read(0, 0, N, M);
    std::vector<uint32_t> g(M * N);
    num::golden_matmul_fp32_tile(K, M, N, w.data(), x.data(), g.data(), false);
    ASSERT_EQ(y, g) << "round " << round;
    if (round != 2) continue;
    for (int r = 0; r < K; ++r) {
      for (int n = 0; n < N; ++n) {
        const uint32_t v = x[r * N + n];
        if (int((v >> 23) & 0xFF) - 127 < -103) continue;
        ASSERT_EQ(y[r * N + n], v) << hex(v);
        ++exact;
      }
    }
  }
  EXPECT_GT(exact, 2000u);
  // Transpose: the tile T [K x M] stationary, the identity [K x K] moving: out[c][n] = T[n][c].
  std::vector<uint32_t> t(K * M);
  for (auto& v : t) {
    do v = uint32_t(rng());
    while (((v >> 23) & 0xFF) == 0xFF || int((v >> 23) & 0xFF) - 127 < -103);
  }
  rig.sbuf_write(0, 4096, 4 * M, K, t.data());
  rig.sbuf_write(0, 8192, 4 * K, K, w.data());  // K = M: w is the K x K identity
  rig.run_tensor({matmul(isa::MatmulType::kFp32, K, M, K, {0, 4096, 0, 8192, 0, 0})});
  const std::vector<uint32_t> y = rig.psum_read(0, 0, K, M);
  for (int c = 0; c < M; ++c)
    for (int n = 0; n < K; ++n) ASSERT_EQ(y[c * K + n], t[n * M + c]) << "out[" << c << "][" << n << "]";
}

// docs/isa.md, fp32 matmul timing: the six passes pipeline exactly as six bf16 matmuls with the same k, m,
// n issued back to back. Alone in a job it takes k + 3 D + 2 X + n + L cycles, D = max(n, k + 1),
// X = max(D, n + k + L - D), L = rows + cols - 1.
TEST(Fp32Matmul, LoneInstructionCyclesAreSixPassesAndTheFormula) {
  Rig rig("tc1-8");
  const int L = rig.latency();
  for (auto [k, n] : std::vector<std::pair<int, int>>{{8, 1}, {8, 8}, {3, 9}, {8, 20}, {8, 23}, {2, 100}, {8, 512}}) {
    const int D = std::max(n, k + 1), X = std::max(D, n + k + L - D);
    const uint64_t formula = uint64_t(k + 3 * D + 2 * X + n + L);
    drv::JobResult fp32 = rig.run_tensor({matmul(isa::MatmulType::kFp32, k, 8, n, {0, 0, 0, 2048, 0, 0})}, 4);
    EXPECT_EQ(fp32.cycles, formula) << "k=" << k << " n=" << n;
    ASSERT_EQ(fp32.trace_count, 1u);
    TraceRecord rec = rig.driver.read_trace(rig.trace, 1)[0];
    EXPECT_EQ(rec.start, uint64_t(k));
    EXPECT_EQ(rec.end, formula - L);
    EXPECT_EQ(rec.macs, 6u * k * 8 * n);
    std::vector<Instr> six(6, matmul(isa::MatmulType::kBf16, k, 8, n, {0, 0, 0, 2048, 0, 0}));
    EXPECT_EQ(rig.run_tensor(six).cycles, formula) << "k=" << k << " n=" << n;
    // A lone bf16 matmul: k + n + L.
    EXPECT_EQ(rig.run_tensor({six[0]}).cycles, uint64_t(k + n + L));
  }
}

// ---- faults -------------------------------------------------------------------------------------------

TEST(TensorFaults, BadOperandsFaultWithCodeEngineAndPcThenResetAndTheNextJobRuns) {
  Rig rig("tc1-8");
  const auto& cfg = rig.cfg;
  const uint64_t sp = cfg.sbuf_partition_bytes, pp = cfg.psum_partition_bytes();
  Instr ok = pe_transpose(2, 2, 0, 0, 0, 0);
  struct Bad {
    const char* what;
    Instr in;
    regs::FaultCode code;
    uint64_t addr;
  };
  auto fp32 = [](uint64_t k, uint64_t m, uint64_t n, MatmulOperands o) {
    return matmul(isa::MatmulType::kFp32, k, m, n, o);
  };
  auto with_dtype = [](uint64_t d) {
    Instr in = matmul(isa::MatmulType::kBf16, 2, 2, 2, {});
    in.dtype = d;
    return in;
  };
  const std::vector<Bad> cases = {
      {"transpose k = 0", pe_transpose(0, 4, 0, 0, 0, 0), regs::FaultCode::BadOperand, 0},
      {"transpose k > rows", pe_transpose(9, 4, 0, 0, 0, 0), regs::FaultCode::BadOperand, 0},
      {"transpose m = 0", pe_transpose(4, 0, 0, 0, 0, 0), regs::FaultCode::BadOperand, 0},
      {"transpose m > cols", pe_transpose(4, 9, 0, 0, 0, 0), regs::FaultCode::BadOperand, 0},
      {"transpose odd st_off", pe_transpose(4, 4, 0, 3, 0, 0), regs::FaultCode::BadOperand, 0},
      {"transpose out_off not 4-aligned", pe_transpose(4, 4, 0, 0, 0, 2), regs::FaultCode::BadOperand, 0},
      {"transpose input past the last partition", pe_transpose(4, 4, 5, 0, 0, 0), regs::FaultCode::SbufOutOfRange,
       rig.sbuf(5, 0)},
      {"transpose input past the partition end", pe_transpose(4, 4, 0, sp - 6, 0, 0), regs::FaultCode::SbufOutOfRange,
       rig.sbuf(0, sp - 6)},
      {"transpose output past the last partition", pe_transpose(4, 4, 0, 0, 6, 0), regs::FaultCode::PsumOutOfRange,
       rig.psum(6, 0)},
      {"transpose output across a bank", pe_transpose(4, 4, 0, 0, 0, 2048 - 12), regs::FaultCode::PsumOutOfRange,
       rig.psum(0, 2048 - 12)},
      {"transpose output past PSUM", pe_transpose(4, 4, 0, 0, 0, pp - 8), regs::FaultCode::PsumOutOfRange,
       rig.psum(0, pp - 8)},
      {"matmul dtype 2", with_dtype(2), regs::FaultCode::BadOperand, 0},
      {"matmul dtype 3", with_dtype(3), regs::FaultCode::BadOperand, 0},
      {"fp32 st_off not 4-aligned", fp32(2, 2, 2, {0, 2, 0, 0, 0, 0}), regs::FaultCode::BadOperand, 0},
      {"fp32 mv_off not 4-aligned", fp32(2, 2, 2, {0, 0, 0, 6, 0, 0}), regs::FaultCode::BadOperand, 0},
      {"fp32 W past the partition end (bf16 would fit)", fp32(2, 4, 2, {0, sp - 12, 0, 0, 0, 0}),
       regs::FaultCode::SbufOutOfRange, rig.sbuf(0, sp - 12)},
      {"fp32 X past the partition end (bf16 would fit)", fp32(2, 2, 8, {0, 0, 1, sp - 24, 0, 0}),
       regs::FaultCode::SbufOutOfRange, rig.sbuf(1, sp - 24)},
      {"fp32 n > 512", fp32(2, 2, 513, {}), regs::FaultCode::BadOperand, 0},
  };
  for (const Bad& b : cases) {
    try {
      rig.run_tensor({ok, b.in});
      ADD_FAILURE() << b.what << ": no fault";
    } catch (const drv::DeviceFault& e) {
      EXPECT_EQ(e.fault(), b.code) << b.what << ": " << e.what();
      EXPECT_EQ(e.engine(), isa::kEngineTensor) << b.what;
      EXPECT_EQ(e.pc(), 1u) << b.what;
      EXPECT_EQ(e.addr(), b.addr) << b.what;
      EXPECT_EQ(e.info(), uint32_t(b.in.opcode)) << b.what;
    }
    rig.driver.reset();
  }
  // Only TensorE runs pe_transpose.
  try {
    rig.run({{isa::kEngineDma0 + 2, {ok}}});
    ADD_FAILURE() << "pe_transpose ran on a DMA queue";
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::WrongEngine);
    EXPECT_EQ(e.engine(), isa::kEngineDma0 + 2);
  }
  rig.driver.reset();
  // After the resets the engine computes: a transpose and an fp32 matmul, checked as above.
  std::vector<uint16_t> t = {0x3F80, 0x4000, 0xC040, 0x8000, 0x0001, 0x7F7F};  // 2 x 3
  rig.sbuf_write(0, 0, 6, 2, t.data());
  rig.run_tensor({pe_transpose(2, 3, 0, 0, 0, 0)});
  const std::vector<uint32_t> expect = {0x3F800000, 0, 0x40000000, 0, 0xC0400000, 0x7F7F0000};  // -0, subnormal: +0
  EXPECT_EQ(rig.psum_read(0, 0, 2, 3), expect);
  std::vector<uint32_t> w = {num::f32_bits(1.0f + 1.0f / 1024), num::f32_bits(3.0f)},
                        x = {num::f32_bits(1.0f / 3), num::f32_bits(-7.25f)};
  rig.sbuf_write(0, 64, 4, 2, w.data());
  rig.sbuf_write(0, 128, 4, 2, x.data());
  rig.run_tensor({fp32(2, 1, 1, {0, 64, 0, 128, 0, 0})});
  std::vector<uint32_t> g(1);
  num::golden_matmul_fp32_tile(2, 1, 1, w.data(), x.data(), g.data(), false);
  EXPECT_EQ(rig.psum_read(0, 0, 1, 1), g);
}

}  // namespace
}  // namespace tcemu
