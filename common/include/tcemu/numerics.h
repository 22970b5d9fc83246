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
#include <span>

namespace tcemu::num {

inline constexpr uint32_t kF32CanonicalNan = 0x7FC00000u;
inline constexpr uint16_t kBf16CanonicalNan = 0x7FC0u;

uint32_t f32_bits(float f);
float f32_from_bits(uint32_t u);

// bf16 -> fp32 is exact (bf16 is the top half of an fp32).
float bf16_to_f32(uint16_t b);
// fp32 -> bf16 rounding to nearest, ties to even; NaN -> canonical bf16 NaN; overflow -> inf.
// Subnormals are converted as IEEE does (they are read as zero by the tensor engine).
uint16_t f32_to_bf16(float f);

// Golden arithmetic (fp32 bit patterns in and out).
uint32_t golden_mul(uint16_t a, uint16_t b);     // bf16 x bf16 -> fp32
uint32_t golden_add(uint32_t x, uint32_t y);     // fp32 + fp32 -> fp32

// One tensor-engine matmul: Y[c][n] = sum_{k<K} W[k][c] * X[k][n], k ascending, starting from +0.
// W: K x M row-major bf16, X: K x N row-major bf16, Y: M x N row-major fp32 bits.
void golden_matmul_tile(int K, int M, int N, const uint16_t* W, const uint16_t* X, uint32_t* Y);

// A whole GEMM as TC1 computes it: C[M x N] = A^T-stationary form is avoided here; this is simply
// C[m][n] = sum_k A[m][k] * B[k][n] with K split into consecutive chunks of `k_chunk` (the array's rows).
// Each chunk is summed as golden_matmul_tile does; the chunk sums are then accumulated in chunk order
// (the first chunk overwrites, later chunks are added with golden_add), as PSUM accumulation does.
// A: M x K row-major bf16, B: K x N row-major bf16, C: M x N row-major fp32 bits.
void golden_gemm(int M, int N, int K, int k_chunk, const uint16_t* A, const uint16_t* B, uint32_t* C);

}  // namespace tcemu::num
