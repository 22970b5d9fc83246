// num::fast_add (the device's PSUM adder in bit operations, used by the emulator) against num::golden_add
// (the golden model of the same rule, docs/numerics.md), and the inline fp32 -> bf16 conversion against the
// rule written out with the C library.
#include "tcemu/numerics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace tcemu {
namespace {

// Values at every boundary of the policy, both signs: zeros, subnormals (DAZ), the smallest normals and
// what sums to just below them (FTZ), ordinary values, the largest finite (overflow), infinities, NaNs.
std::vector<uint32_t> edge_values() {
  const uint32_t magnitudes[] = {0x00000000, 0x00000001, 0x00000002, 0x003FFFFF, 0x00400000, 0x007FFFFF,
                                 0x00800000, 0x00800001, 0x00800002, 0x00FFFFFF, 0x01000000, 0x01000001,
                                 0x017FFFFF, 0x0C000000, 0x33800000, 0x3F800000, 0x3F800001, 0x3FFFFFFF,
                                 0x4B000000, 0x4B800001, 0x7E800000, 0x7F000000, 0x7F7FFFFE, 0x7F7FFFFF,
                                 0x7F800000, 0x7F800001, 0x7FBFFFFF, 0x7FC00000, 0x7FFFFFFF};
  std::vector<uint32_t> v;
  for (uint32_t m : magnitudes) v.push_back(m), v.push_back(m | 0x80000000u);
  return v;
}

TEST(Numerics, FastAddEqualsGoldenAddOnEdgePairs) {
  const std::vector<uint32_t> v = edge_values();
  for (uint32_t x : v)
    for (uint32_t y : v)
      ASSERT_EQ(num::fast_add(x, y), num::golden_add(x, y)) << std::hex << "x=0x" << x << " y=0x" << y;
}

TEST(Numerics, FastAddEqualsGoldenAddOnRandomPairs) {
  std::mt19937_64 rng(42);
  auto check = [](uint32_t x, uint32_t y) {
    ASSERT_EQ(num::fast_add(x, y), num::golden_add(x, y)) << std::hex << "x=0x" << x << " y=0x" << y;
  };
  for (int i = 0; i < 2'000'000; ++i) {
    const uint64_t r = rng();
    const uint32_t x = uint32_t(r), y = uint32_t(r >> 32);
    check(x, y);  // any bits
    // Nearly cancelling pairs: y = -x with a few low bits changed, which lands sums near and below 2^-126.
    check(x, (x ^ 0x80000000u) ^ (y & 0xFFu));
    // Small exponents (fields 0..31), where DAZ and FTZ decide.
    check((x & 0x80FFFFFFu) | ((y & 0x1Fu) << 23), (y & 0x80FFFFFFu) | (((x >> 8) & 0x1Fu) << 23));
  }
}

// The conversion rule as docs/numerics.md states it, with the C library: NaN -> 0x7FC0, else round to
// nearest even on the top 16 bits.
uint16_t reference_f32_to_bf16(float f) {
  if (std::isnan(f)) return num::kBf16CanonicalNan;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t rest = u & 0xFFFFu, kept = u >> 16;
  const bool up = rest > 0x8000u || (rest == 0x8000u && (kept & 1u));
  return uint16_t(kept + (up ? 1u : 0u));
}

TEST(Numerics, F32ToBf16RoundsToNearestEvenWithCanonicalNan) {
  for (uint32_t u : edge_values()) {
    const float f = num::f32_from_bits(u);
    ASSERT_EQ(num::f32_to_bf16(f), reference_f32_to_bf16(f)) << std::hex << "0x" << u;
    ASSERT_EQ(num::f32_to_bf16(num::f32_from_bits(u | 0x8000u)),
              reference_f32_to_bf16(num::f32_from_bits(u | 0x8000u)));
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 2'000'000; ++i) {
    const float f = num::f32_from_bits(rng());
    ASSERT_EQ(num::f32_to_bf16(f), reference_f32_to_bf16(f)) << std::hex << "0x" << num::f32_bits(f);
  }
  EXPECT_EQ(num::f32_to_bf16(num::f32_from_bits(0x3F808000u)), 0x3F80u);  // tie to even: down
  EXPECT_EQ(num::f32_to_bf16(num::f32_from_bits(0x3F818000u)), 0x3F82u);  // tie to even: up
  EXPECT_EQ(num::f32_to_bf16(num::f32_from_bits(0x7F7FFFFFu)), 0x7F80u);  // rounds up to inf
  EXPECT_EQ(num::f32_to_bf16(num::f32_from_bits(0xFFC12345u)), 0x7FC0u);  // any NaN: canonical
}

}  // namespace
}  // namespace tcemu
