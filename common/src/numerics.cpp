// Golden model: host IEEE float arithmetic plus the DAZ/FTZ/NaN rules of docs/numerics.md.
// Host fp32 addition is already IEEE RNE; only the flush and NaN rules are added here. Contraction into
// FMA is disabled for this file (CMake sets -ffp-contract=off) so every operation rounds as written.
#include "tcemu/numerics.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace tcemu::num {

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

void golden_split_fp32(uint32_t x, uint16_t parts[3]) {
  parts[0] = parts[1] = parts[2] = 0;
  const float f = daz(f32_from_bits(x));
  if (std::isnan(f)) {
    parts[0] = kBf16CanonicalNan;
    return;
  }
  if (std::isinf(f) || f == 0.0f) {
    parts[0] = uint16_t(f32_bits(f) >> 16);
    return;
  }
  parts[0] = f32_to_bf16(f);
  if ((parts[0] & 0x7FFFu) == 0x7F80u) parts[0] = uint16_t(f32_bits(f) >> 16);  // rounded to inf: truncate
  // hi is within a factor of two of x, and mid of r1 (Sterbenz): both subtractions are exact on the host.
  // A remainder below 2^-126 (an exact host subnormal or zero) is flushed, and with it what would follow.
  const float r1 = f - bf16_to_f32(parts[0]);
  if (std::fpclassify(r1) != FP_NORMAL) return;
  parts[1] = f32_to_bf16(r1);
  const float r2 = r1 - bf16_to_f32(parts[1]);
  if (std::fpclassify(r2) != FP_NORMAL) return;
  parts[2] = uint16_t(f32_bits(r2) >> 16);  // at most 8 significant bits remain: the low 16 bits are zero
}

void golden_matmul_fp32_tile(int K, int M, int N, const uint32_t* W, const uint32_t* X, uint32_t* Y, bool accumulate) {
  std::vector<uint16_t> wp[3], xp[3];
  for (int i = 0; i < 3; ++i) wp[i].resize(size_t(K) * M), xp[i].resize(size_t(K) * N);
  uint16_t parts[3];
  for (size_t e = 0; e < size_t(K) * M; ++e) {
    golden_split_fp32(W[e], parts);
    for (int i = 0; i < 3; ++i) wp[i][e] = parts[i];
  }
  for (size_t e = 0; e < size_t(K) * N; ++e) {
    golden_split_fp32(X[e], parts);
    for (int i = 0; i < 3; ++i) xp[i][e] = parts[i];
  }
  std::vector<uint32_t> pass(size_t(M) * N);
  for (int p = 0; p < kFp32MatmulPasses; ++p) {
    golden_matmul_tile(K, M, N, wp[kFp32PassParts[p][0]].data(), xp[kFp32PassParts[p][1]].data(), pass.data());
    for (size_t e = 0; e < pass.size(); ++e) Y[e] = (p == 0 && !accumulate) ? pass[e] : golden_add(Y[e], pass[e]);
  }
}

}  // namespace tcemu::num
