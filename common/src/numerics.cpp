// Golden model: host IEEE float arithmetic plus the DAZ/FTZ/NaN rules of docs/numerics.md.
// Host fp32 addition is already IEEE RNE; only the flush and NaN rules are added here. Contraction into
// FMA is disabled for this file (CMake sets -ffp-contract=off) so every operation rounds as written.
#include "tcemu/numerics.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace tcemu::num {

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float bf16_to_f32(uint16_t b) { return f32_from_bits(static_cast<uint32_t>(b) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if (std::isnan(f)) return kBf16CanonicalNan;
  // Add half an ulp of bf16 (0x7FFF) plus the lowest kept bit (ties to even); carries into the exponent
  // give the correct next binade or infinity.
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7FFFu + lsb;
  return static_cast<uint16_t>(u >> 16);
}

namespace {

// Reads a value as the tensor engine does: subnormals become zero of the same sign.
float daz(float f) {
  if (std::fpclassify(f) == FP_SUBNORMAL) return std::signbit(f) ? -0.0f : 0.0f;
  return f;
}

// Canonicalises NaN and flushes tiny results to zero keeping their sign.
uint32_t finish(float r) {
  if (std::isnan(r)) return kF32CanonicalNan;
  if (std::fpclassify(r) == FP_SUBNORMAL) return std::signbit(r) ? 0x80000000u : 0u;
  return f32_bits(r);
}

}  // namespace

uint32_t golden_mul(uint16_t a, uint16_t b) {
  // A product of two bf16 values (8-bit significands) has at most 16 significant bits, so the host fp32
  // multiply is exact unless it overflows (inf, as required) or lands below 2^-126. In the latter case the
  // host rounds to a subnormal (or zero) that is still below 2^-126 and keeps the sign, and finish()
  // flushes it: the same result as flushing the exact product.
  float x = daz(bf16_to_f32(a));
  float y = daz(bf16_to_f32(b));
  return finish(x * y);
}

uint32_t golden_add(uint32_t x, uint32_t y) {
  // Sums of normal fp32 values that fall below 2^-126 are exact multiples of 2^-149, so the host's
  // subnormal result is exact and flushing it is the FTZ rule applied to the exact sum.
  float a = daz(f32_from_bits(x));
  float b = daz(f32_from_bits(y));
  return finish(a + b);
}

void golden_matmul_tile(int K, int M, int N, const uint16_t* W, const uint16_t* X, uint32_t* Y) {
  for (int c = 0; c < M; ++c) {
    for (int n = 0; n < N; ++n) {
      uint32_t acc = 0;  // +0
      for (int k = 0; k < K; ++k) acc = golden_add(acc, golden_mul(W[k * M + c], X[k * N + n]));
      Y[c * N + n] = acc;
    }
  }
}

void golden_gemm(int M, int N, int K, int k_chunk, const uint16_t* A, const uint16_t* B, uint32_t* C) {
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      uint32_t total = 0;
      for (int k0 = 0; k0 < K; k0 += k_chunk) {
        uint32_t part = 0;  // each chunk starts from +0
        for (int k = k0; k < K && k < k0 + k_chunk; ++k)
          part = golden_add(part, golden_mul(A[m * K + k], B[k * N + n]));
        total = (k0 == 0) ? part : golden_add(total, part);
      }
      C[m * N + n] = total;
    }
  }
}

}  // namespace tcemu::num
