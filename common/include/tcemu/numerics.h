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
