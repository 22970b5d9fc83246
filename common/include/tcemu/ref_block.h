// fp64 reference of a pre-LayerNorm transformer block (GPT-2 style), written from its definition with the
// ref_ops functions, independently of the kernel library:
//
//   h1 = LayerNorm(x; ln1_g, ln1_b)                          x, y: [S, D] token-major
//   q, k, v = h1 Wq + bq, h1 Wk + bk, h1 Wv + bv              W*: [D, D] ([in, out])
//   o  = MultiHeadAttention(q, k, v; H heads of D / H, causal or not, scale 1/sqrt(D/H))
//   x1 = x + o Wo + bo
//   h2 = LayerNorm(x1; ln2_g, ln2_b)
//   y  = x1 + gelu_tanh(h2 W1 + b1) W2 + b2                   W1: [D, F], W2: [F, D]
//
// The device feeds every matmul bf16 operands; the reference rounds the same values to bf16 at the same
// points (h1, q, k, v, o, h2 and the gelu output; the weights are given already bf16-valued), so what is
// left to compare is fp32 arithmetic, the attention's bf16 probabilities and ScalarE's functions against
// fp64 (docs/kernels.md, "Transformer block", has the tolerance).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tcemu/ref_ops.h"

namespace tcemu::ref {

struct BlockShape {
  int64_t seq = 512, d_model = 512, heads = 4, d_ff = 2048;
  bool causal = true;
  float eps = 1e-5f;
};

struct BlockParams {
  std::vector<float> ln1_g, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo, ln2_g, ln2_b, w1, b1, w2, b2;
};

// Deterministic parameters from `seed`: matrices ~ U(-1, 1) / sqrt(fan_in) rounded to bf16 values, biases
// ~ U(-0.1, 0.1), gains ~ 1 + U(-0.1, 0.1), LayerNorm shifts ~ U(-0.1, 0.1).
BlockParams make_block_params(const BlockShape& s, uint32_t seed);

// y [S, D] for x [S, D]. Throws Error(kInvalidArgument) on mismatched sizes or D not divisible by H.
std::vector<double> transformer_block(const BlockShape& s, std::span<const float> x, const BlockParams& p);

// Compares the device's y with the reference: element i may differ by at most
//   kBlockTolerance * (|want_i - x_i| + rms(want - x))
// i.e. a fraction of the block's update (y - x, the part the block computes) at that element plus its RMS
// over the output (docs/kernels.md, "Transformer block", explains the value).
inline constexpr double kBlockTolerance = 1.0 / 64;
Compare check_block(const BlockShape& s, std::span<const float> x, std::span<const float> got,
                    std::span<const double> want);

}  // namespace tcemu::ref
