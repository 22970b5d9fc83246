// The processing element (rtl/tc_pe.sv, i.e. tc_fp_pkg::pe_mac behind registers), verilated on its own:
// psum_o = en ? fp32_add(psum_i, bf16_mul(weight_i, mv_data_i)) : psum_i, one cycle later, against the
// golden model. Unlike inside the array, the partial-sum input here can be any fp32 value (subnormals,
// NaN payloads, sums that round to overflow), so this is where fp32_add is tested on its whole domain.
#include <gtest/gtest.h>

#include <Vtc_pe.h>
#include <verilated.h>

#include <cstdint>
#include <memory>
#include <algorithm>
#include <random>
#include <string>

#include "tcemu/numerics.h"

namespace {

using tcemu::num::golden_add;
using tcemu::num::golden_mul;

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

class PeHarness {
 public:
  PeHarness() : ctx_(std::make_unique<VerilatedContext>()), pe_(std::make_unique<Vtc_pe>(ctx_.get(), "TOP")) {
    pe_->clk_i = 0;
    pe_->rst_ni = 1;
    pe_->eval();
    pe_->rst_ni = 0;
    pe_->eval();
    pe_->rst_ni = 1;
    pe_->eval();
  }
  ~PeHarness() { pe_->final(); }

  // One clock edge with the given inputs; returns psum_o after it.
  uint32_t mac(uint32_t psum, uint16_t w, uint16_t x, bool en) {
    pe_->psum_i = psum;
    pe_->weight_i = w;
    pe_->mv_data_i = x;
    pe_->mv_en_i = en;
    pe_->clk_i = 1;
    pe_->eval();
    pe_->clk_i = 0;
    pe_->eval();
    return pe_->psum_o;
  }
  Vtc_pe& pe() { return *pe_; }

 private:
  std::unique_ptr<VerilatedContext> ctx_;
  std::unique_ptr<Vtc_pe> pe_;
};

uint32_t expected(uint32_t psum, uint16_t w, uint16_t x, bool en) {
  return en ? golden_add(psum, golden_mul(w, x)) : psum;
}

struct Vec {
  uint32_t psum;
  uint16_t w;
  uint16_t x;
  const char* what;
};

TEST(TcPe, EdgeCases) {
  constexpr uint16_t kOne = 0x3F80;
  const Vec vecs[] = {
      {0x00000000, 0x8000, kOne, "(+0) + (-0) = +0"},
      {0x80000000, 0x8000, kOne, "(-0) + (-0) = -0"},
      {0x80000000, 0x0000, kOne, "(-0) + (+0) = +0"},
      {0x00000001, 0x8000, kOne, "fp32 subnormal psum reads as +0: (+0) + (-0) = +0"},
      {0x807FFFFF, 0x8000, kOne, "fp32 subnormal psum reads as -0: (-0) + (-0) = -0"},
      {0x807FFFFF, 0x3F80, kOne, "fp32 subnormal psum + 1 = 1"},
      {0x00000000, 0x0001, kOne, "bf16 subnormal weight reads as +0"},
      {0x80000000, 0x807F, kOne, "bf16 subnormal weight reads as -0: -0 + -0"},
      {0x3F800000, 0x7F80, 0x0000, "inf * 0 = NaN"},
      {0x3F800000, 0x7F80, 0x0001, "inf * subnormal (zero) = NaN"},
      {0x3F800000, 0xFF80, kOne, "1 + (-inf) = -inf"},
      {0x7F800000, 0xFF80, kOne, "inf + (-inf) = NaN"},
      {0xFF800000, 0xFF80, kOne, "-inf + (-inf) = -inf"},
      {0x7F800000, 0x3F80, kOne, "inf + 1 = inf"},
      {0x7F800001, 0x3F80, kOne, "NaN psum (payload) -> canonical"},
      {0xFFC00000, 0x3F80, kOne, "negative NaN psum -> canonical positive"},
      {0x3F800000, 0xFFC1, kOne, "NaN weight -> canonical"},
      {0x3F800000, 0x7F81, 0x0000, "sNaN * 0 -> canonical"},
      {0x7F7FFFFF, 0x7F7F, kOne, "max + big = inf"},
      {0x7F7FFFFF, 0x7300, kOne, "FLT_MAX + 2^103 (half ulp, tie, odd) rounds up to inf"},
      {0x7F7FFFFE, 0x7300, kOne, "(FLT_MAX - ulp) + half ulp: tie to even stays"},
      {0xFF7FFFFF, 0xF300, kOne, "-FLT_MAX - 2^103 = -inf"},
      {0x7F000000, 0x7F00, 0x3F80, "2^127 + 2^127 = inf"},
      {0x00000000, 0x7F00, 0x4000, "product 2^128 overflows to inf"},
      {0x00000000, 0x2000, 0x2000, "product 2^-126 * 2^-... (2^-126 is normal)"},
      {0x00000000, 0x1F80, 0x1F80, "product 2^-128 flushes to +0"},
      {0x80000000, 0x9F80, 0x1F80, "product -2^-128 flushes to -0; (-0) + (-0) = -0"},
      {0x00C00000, 0x8080, kOne, "1.5*2^-126 - 2^-126 = 2^-127 flushes to +0"},
      {0x80C00000, 0x0080, kOne, "-1.5*2^-126 + 2^-126 flushes to -0"},
      {0x40400000, 0xC040, kOne, "3 + (-3) = +0"},
      {0xC0400000, 0x4040, kOne, "-3 + 3 = +0"},
      {0x3F800000, 0x3380, kOne, "1 + 2^-24: tie, even -> 1"},
      {0x3F800001, 0x3380, kOne, "(1 + 2^-23) + 2^-24: tie, odd -> up"},
      {0x3F800000, 0xB380, kOne, "1 - 2^-24 is exact"},
      {0x3F800000, 0xB300, kOne, "1 - 2^-25: tie between 1 - 2^-24 and 1, to even -> 1"},
      {0x3F800000, 0xA180, kOne, "1 - 2^-60: far below, rounds to 1"},
      {0x3F800000, 0x2180, kOne, "1 + 2^-60 -> 1"},
      {0x4B800000, 0xBF80, kOne, "2^24 - 1 exact"},
      {0x4B800001, 0xBF80, kOne, "(2^24 + 2) - 1: tie, to even"},
      {0x00800000, 0x8080, kOne, "min normal - min normal = +0"},
      {0x00800001, 0x8080, kOne, "tiny difference flushes to +0"},
      {0x01000000, 0x8080, kOne, "2^-125 - 2^-126 = 2^-126 stays normal"},
  };
  PeHarness h;
  for (const Vec& v : vecs) {
    for (bool en : {true, false}) {
      const uint32_t got = h.mac(v.psum, v.w, v.x, en);
      const uint32_t want = expected(v.psum, v.w, v.x, en);
      EXPECT_EQ(got, want) << v.what << (en ? "" : " (disabled: pass-through)") << ": psum=" << hex(v.psum)
                           << " w=" << hex(v.w) << " x=" << hex(v.x) << " rtl=" << hex(got)
                           << " golden=" << hex(want);
    }
  }
}

// Random psum (fp32, several classes) + random product.
TEST(TcPe, RandomAgainstGolden) {
  PeHarness h;
  std::mt19937_64 rng(42);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  constexpr int kPerClass = 500'000;
  int failures = 0;
  for (int cls = 0; cls < 6; ++cls) {
    for (int i = 0; i < kPerClass; ++i) {
      const uint16_t w = static_cast<uint16_t>(rng());
      const uint16_t x = static_cast<uint16_t>(rng());
      uint32_t psum = static_cast<uint32_t>(rng());
      const uint32_t prod = golden_mul(w, x);
      switch (cls) {
        case 0: break;  // any bit pattern
        case 1:         // close to the product's magnitude: cancellation and alignment shifts 0..40
          psum = (static_cast<uint32_t>(rng() & 1) << 31) |
                 (static_cast<uint32_t>(std::clamp<int>(int((prod >> 23) & 0xFF) + uni(-40, 40), 0, 255)) << 23) |
                 (psum & 0x7FFFFF);
          break;
        case 2:  // the exact negation of the product, possibly nudged by an ulp or two
          psum = (prod ^ 0x80000000u) + static_cast<uint32_t>(uni(-2, 2));
          break;
        case 3:  // subnormal or tiny normal psums
          psum = (psum & 0x80000000u) | (static_cast<uint32_t>(uni(0, 3)) << 23) | (psum & 0x7FFFFF);
          break;
        case 4:  // near the top of the range
          psum = (psum & 0x80000000u) | (static_cast<uint32_t>(uni(250, 254)) << 23) | (psum & 0x7FFFFF);
          break;
        case 5:  // psum with only the product's precision plus a few bits: exercises ties
          psum = (prod & 0xFFFF0000u) ^ (static_cast<uint32_t>(uni(0, 1)) << 31);
          psum = (psum & 0xFF800000u) | ((psum + (static_cast<uint32_t>(uni(0, 255)) << 16)) & 0x7FFFFF);
          break;
      }
      const bool en = (rng() & 15) != 0;
      const uint32_t got = h.mac(psum, w, x, en);
      const uint32_t want = expected(psum, w, x, en);
      if (got != want && ++failures <= 10) {
        ADD_FAILURE() << "class " << cls << ": psum=" << hex(psum) << " w=" << hex(w) << " x=" << hex(x)
                      << " en=" << en << " rtl=" << hex(got) << " golden=" << hex(want);
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

// The moving element and its enable are passed on one cycle later; reset clears the registers.
TEST(TcPe, RegistersAndReset) {
  PeHarness h;
  h.mac(0x3F800000, 0x3F80, 0x4000, true);
  EXPECT_EQ(h.pe().mv_data_o, 0x4000);
  EXPECT_EQ(h.pe().mv_en_o, 1);
  EXPECT_EQ(h.pe().psum_o, golden_add(0x3F800000, golden_mul(0x3F80, 0x4000)));
  h.mac(0, 0, 0x1234, false);
  EXPECT_EQ(h.pe().mv_data_o, 0x1234);
  EXPECT_EQ(h.pe().mv_en_o, 0);
  h.pe().rst_ni = 0;
  h.pe().eval();
  EXPECT_EQ(h.pe().mv_data_o, 0);
  EXPECT_EQ(h.pe().mv_en_o, 0);
  EXPECT_EQ(h.pe().psum_o, 0u);
}

}  // namespace
