// TC1 numerics: bf16 storage type, fp32<->bf16 conversion and the golden model of the tensor engine's
// arithmetic. The golden model is written in plain host C++ from the documented policy (docs/numerics.md),
// independently of the RTL; tests compare the RTL and the emulator against it bit for bit.
//
// Policy (summary; docs/numerics.md is the specification):
//  - bf16 and fp32 subnormal inputs are read as zero of the same sign (DAZ).
//  - A nonzero result with magnitude below 2^-126 is flushed to zero with the sign of the exact result (FTZ).
//  - Any NaN result is the canonical quiet NaN 0x7FC00000 (fp32) / 0x7FC0 (bf16).
//  - bf16 x bf16 products are exact in fp32 except for overflow (-> inf) and underflow (-> flushed zero).
//  - fp32 addition is IEEE-754 round-to-nearest-even.
//  - A matmul column sums k = 0..K-1 in ascending order starting from +0.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace tcemu::num {

inline constexpr uint32_t kF32CanonicalNan = 0x7FC00000u;
inline constexpr uint16_t kBf16CanonicalNan = 0x7FC0u;

// Inline: the runtime converts every element of every tensor it binds or reads back with these.
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// bf16 -> fp32 is exact (bf16 is the top half of an fp32).
inline float bf16_to_f32(uint16_t b) { return f32_from_bits(static_cast<uint32_t>(b) << 16); }

// fp32 -> bf16 rounding to nearest, ties to even; NaN -> canonical bf16 NaN; overflow -> inf.
// Subnormals are converted as IEEE does (they are read as zero by the tensor engine).
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  // Add half an ulp of bf16 (0x7FFF) plus the lowest kept bit (ties to even); carries into the exponent
  // give the correct next binade or infinity. One expression, no early return, so that loops vectorise.
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? kBf16CanonicalNan : rounded);  // NaN
}

// Golden arithmetic (fp32 bit patterns in and out).
uint32_t golden_mul(uint16_t a, uint16_t b);     // bf16 x bf16 -> fp32
uint32_t golden_add(uint32_t x, uint32_t y);     // fp32 + fp32 -> fp32

// The device's fp32 adder (PSUM's near-memory accumulate) written with bit masks around one host addition,
// for the emulator's hot path: DAZ on both operands (an exponent field of 0 keeps only the sign), the host's
// IEEE RNE sum, then FTZ (a subnormal sum keeps only its sign: the host sum of two normal or zero values
// below 2^-126 is exact, so its sign is the exact result's) and the canonical NaN. It is golden_add step for
// step without the library calls; tests/common/numerics_test.cpp checks that the two agree on every pair of
// edge values and on random pairs.
inline uint32_t fast_add(uint32_t x, uint32_t y) {
  constexpr uint32_t kExp = 0x7F800000u, kSign = 0x80000000u;
  if ((x & kExp) == 0) x &= kSign;
  if ((y & kExp) == 0) y &= kSign;
  float a, b;
  __builtin_memcpy(&a, &x, 4);
  __builtin_memcpy(&b, &y, 4);
  const float s = a + b;
  uint32_t r;
  __builtin_memcpy(&r, &s, 4);
  if ((r & kExp) == 0) return r & kSign;
  if ((r & 0x7FFFFFFFu) > kExp) return kF32CanonicalNan;
  return r;
}

// One tensor-engine matmul: Y[c][n] = sum_{k<K} W[k][c] * X[k][n], k ascending, starting from +0.
// W: K x M row-major bf16, X: K x N row-major bf16, Y: M x N row-major fp32 bits.
void golden_matmul_tile(int K, int M, int N, const uint16_t* W, const uint16_t* X, uint32_t* Y);

// A whole GEMM as TC1 computes it: C[M x N] = A^T-stationary form is avoided here; this is simply
// C[m][n] = sum_k A[m][k] * B[k][n] with K split into consecutive chunks of `k_chunk` (the array's rows).
// Each chunk is summed as golden_matmul_tile does; the chunk sums are then accumulated in chunk order
// (the first chunk overwrites, later chunks are added with golden_add), as PSUM accumulation does.
// A: M x K row-major bf16, B: K x N row-major bf16, C: M x N row-major fp32 bits.
void golden_gemm(int M, int N, int K, int k_chunk, const uint16_t* A, const uint16_t* B, uint32_t* C);

// ---- fp32 matmul at reduced rate (docs/numerics.md, "fp32 matmul") ---------------------------------
// The three bf16 parts of an fp32 value, most significant first: hi = x rounded to bf16 (nearest, ties to
// even; truncated instead where that would round to inf), mid = (x - hi) rounded to bf16, lo = x - hi - mid
// (exact: at most 8 significant bits remain), so x = hi + mid + lo exactly unless a part is flushed.
// A subnormal x is read as zero (DAZ); a remainder below 2^-126 is +0 (FTZ) and so is the part after it;
// a zero, an infinity or a NaN (hi = the canonical bf16 NaN) has hi only, mid = lo = +0.
void golden_split_fp32(uint32_t x, uint16_t parts[3]);

// The bf16 passes of an fp32 matmul, in issue order (lowest order first): pass p multiplies part
// kFp32PassParts[p][0] of W by part kFp32PassParts[p][1] of X (0 = hi, 1 = mid, 2 = lo).
inline constexpr int kFp32MatmulPasses = 6;
inline constexpr int kFp32PassParts[kFp32MatmulPasses][2] = {{2, 0}, {1, 1}, {0, 2}, {1, 0}, {0, 1}, {0, 0}};

// One fp32 matmul as TC1 computes it: each pass is golden_matmul_tile on the parts, and the pass results
// are accumulated in pass order with golden_add (PSUM). W: K x M row-major fp32 bits, X: K x N, Y: M x N
// fp32 bits, in and out: with `accumulate` the first pass adds to the values Y holds (the PSUM contents),
// otherwise it overwrites them.
void golden_matmul_fp32_tile(int K, int M, int N, const uint32_t* W, const uint32_t* X, uint32_t* Y, bool accumulate);

}  // namespace tcemu::num
