// fp64 references for the model kernels (GEMM, softmax, layernorm, RMSNorm, attention, conv2d, transpose,
// elementwise activations), written from the mathematical definitions only, independently of kernels/, for
// the tests and the CLI's result checks; and compare(), which checks a device result against one of them.
//
// Conventions for every function here:
// * Tensors are row-major in the natural math layout given with each function (the last index varies
//   fastest); callers transpose device layouts to it.
// * Inputs are the fp32 values the device was given (already rounded to bf16 by the caller where the
//   device reads bf16); every operation is then carried out in fp64. Products of two fp32 values are exact
//   in fp64, so a reference's own error is a few 2^-53 relative to the magnitude of its terms (for sums,
//   about (number of terms) * 2^-53 * the sum of their absolute values): negligible against fp32 tolerances.
// * Outputs are std::vector<double> in the layout given.
// * Sizes: dimensions must be >= 0 (some >= 1, as stated); a span whose size does not match its shape, a
//   negative or out-of-range dimension throws Error(ErrorCode::kInvalidArgument) naming the argument.
// * Special values propagate as the formula gives them (NaN in, NaN out); the definitions are meant for
//   finite data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tcemu/isa.h"
#include "tcemu/reference.h"

namespace tcemu::ref {

// C = A B: c[m][n] = sum_k a[m][k] * b[k][n].
// a: [M][K], b: [K][N], c: [M][N]. The sum over k is in fp64 (K = 0 gives zeros).
std::vector<double> gemm(int64_t M, int64_t N, int64_t K, std::span<const float> a, std::span<const float> b);

// The magnitude that GEMM error bounds scale with: c_abs[m][n] = sum_k |a[m][k] * b[k][n]|.
// Same arguments and layouts as gemm().
std::vector<double> gemm_abs(int64_t M, int64_t N, int64_t K, std::span<const float> a, std::span<const float> b);

// Row softmax: y[r][c] = exp(x[r][c] - max_c' x[r][c']) / sum_c'' exp(x[r][c''] - max_c' x[r][c'])
// (the max subtracted for stability; mathematically exp(x) / sum exp(x)). x, y: [R][C]. Each row of
// finite values sums to 1 (to fp64 rounding).
std::vector<double> softmax_rows(int64_t R, int64_t C, std::span<const float> x);

// Row layer normalisation over the last dimension, biased variance:
//   mean_r = sum_d x[r][d] / D,  var_r = sum_d (x[r][d] - mean_r)^2 / D   (two passes),
//   y[r][d] = (x[r][d] - mean_r) / sqrt(var_r + eps) * gamma[d] + beta[d].
// x, y: [R][D] with D >= 1; gamma, beta: [D]; eps >= 0.
std::vector<double> layernorm_rows(int64_t R, int64_t D, std::span<const float> x, std::span<const float> gamma,
                                   std::span<const float> beta, double eps);

// Row RMS normalisation over the last dimension:
//   y[r][d] = x[r][d] / sqrt(sum_d' x[r][d']^2 / D + eps) * gamma[d].
// x, y: [R][D] with D >= 1; gamma: [D]; eps >= 0.
std::vector<double> rmsnorm_rows(int64_t R, int64_t D, std::span<const float> x, std::span<const float> gamma,
                                 double eps);

// Scaled dot-product attention, per head h independently:
//   s[i][j] = scale * sum_d q[h][i][d] * k[h][j][d],
//   p[i][.] = softmax over the visible keys j of s[i][j] (stable, as softmax_rows),
//   o[h][i][e] = sum_j p[i][j] * v[h][j][e].
// q: [H][Sq][dh], k: [H][Sk][dh], v: [H][Sk][dv], o: [H][Sq][dv]; Sk >= 1 (dh = 0 gives uniform weights).
// causal = false: every query sees every key. causal = true: query i sees keys 0..i only (key j > i is
// masked, i.e. gets weight exactly 0, as with a -inf score); requires Sq == Sk (query i and key i are the
// same position; a causal mask with an offset between query and key positions is not offered) and throws
// kInvalidArgument otherwise. So causal row 0 is v[h][0].
std::vector<double> attention(int64_t H, int64_t Sq, int64_t Sk, int64_t dh, int64_t dv, std::span<const float> q,
                              std::span<const float> k, std::span<const float> v, double scale, bool causal);

// 2-D convolution (cross-correlation, as in deep-learning frameworks), NCHW, zero padding:
//   OH = (H + 2 pad_h - KH) / stride_h + 1, OW = (W + 2 pad_w - KW) / stride_w + 1 (integer division),
//   y[n][f][oh][ow] = bias[f] + sum_{c, kh, kw} x[n][c][oh*stride_h - pad_h + kh][ow*stride_w - pad_w + kw]
//                                              * w[f][c][kh][kw],
// with x read as 0 outside [0, H) x [0, W). x: [N][C][H][W], w: [F][C][KH][KW], bias: [F] or empty (no
// bias), y: [N][F][OH][OW]. KH, KW, stride_h, stride_w >= 1, pad_h, pad_w >= 0, and the padded input must
// hold one kernel window (H + 2 pad_h >= KH, W + 2 pad_w >= KW), so OH, OW >= 1.
std::vector<double> conv2d(int64_t N, int64_t C, int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
                           int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, std::span<const float> x,
                           std::span<const float> w, std::span<const float> bias);

// The magnitude conv2d error bounds scale with: the sum of the absolute values of the terms of conv2d's
// sum, |bias[f]| + sum_{c, kh, kw} |x[..] * w[f][c][kh][kw]| (padding terms are 0). Pass an empty bias for
// the products alone. Same arguments and layouts as conv2d().
std::vector<double> conv2d_abs(int64_t N, int64_t C, int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
                               int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                               std::span<const float> x, std::span<const float> w, std::span<const float> bias);

// Transpose: y[c][r] = x[r][c]. x: [R][C], y: [C][R]. Exact.
std::vector<double> transpose(int64_t R, int64_t C, std::span<const float> x);

// Elementwise activation: y[i] = ref::activation(f, x[i]) (reference.h: f in fp64, with its limits at the
// infinities). Any shape; y has x's layout. Compare with activation_tolerance(f).allowed(want).
std::vector<double> elementwise(isa::ActFunc f, std::span<const float> x);

// The outcome of a comparison. It has the members of ref::Check (reference.h), in the same order and with
// the same meaning, so that Check can later become an alias of it (`using Check = Compare;`).
struct Compare {
  uint64_t checked = 0, mismatches = 0;
  double worst = 0;       // the largest error as a fraction of its allowance (> 1 exactly when mismatches > 0)
  std::string first_bad;  // "name[i][j]: got .., want .., allowed .." for the first mismatch, else empty
};

// Checks got against want element by element: element i matches when |got[i] - want[i]| <= allowed(i,
// want[i]). got, want: the shape's element count (the product of shape; an empty shape is one scalar),
// row-major in that shape; the shape only formats the first mismatch's indices ("c[3][7]"). An empty
// `allowed` means 0 (got must equal want; +0 equals -0). A NaN in got is always a mismatch (so is a NaN in
// want); an infinite got matches only the same infinity in want. An element's error ratio (for worst) is
// |got - want| / allowed: 0 when equal, +inf for a mismatch with allowed = 0 or a NaN. allowed must return
// a value >= 0 (not NaN), else kInvalidArgument.
Compare compare(std::string name, std::span<const int64_t> shape, std::span<const float> got,
                std::span<const double> want, std::function<double(size_t index, double want)> allowed);

}  // namespace tcemu::ref
