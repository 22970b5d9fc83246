// The fp64 kernel references (tcemu/ref_ops.h): small cases computed by hand, invariants (softmax rows sum
// to 1 and do not change when the row is shifted, a 1x1 convolution is a GEMM, a delta kernel shifts the
// input, causal row 0 is v[0]), the size checks, and compare() catching a 1-ulp change and NaN.
#include "tcemu/ref_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tcemu/error.h"
#include "tcemu/reference.h"

namespace {

using tcemu::Error;
using tcemu::ErrorCode;
using tcemu::isa::ActFunc;
namespace ref = tcemu::ref;

using F = std::vector<float>;
using D = std::vector<double>;

void expect_near(const D& got, const D& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

// Runs f, which must throw kInvalidArgument with `needle` in its message.
template <typename Fn>
void expect_invalid(Fn f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning \"" << needle << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Values on a 1/256 grid in [-4, 4): exact in bf16-ish widths, and x + 8 is exact in fp32.
F grid_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-1024, 1023);
  F v(n);
  for (float& x : v) x = float(d(rng)) / 256.0f;
  return v;
}

TEST(RefOps, GemmOfSmallIntegers) {
  const F a = {1, 2, 3,       //
               4, 5, 6};      // [2][3]
  const F b = {1, 0,  2, -1,  //
               0, 1,  1, 2,   //
               3, -1, 0, 1};  // [3][4]
  EXPECT_EQ(ref::gemm(2, 4, 3, a, b), (D{10, -1, 4, 6, 22, -1, 13, 12}));
  EXPECT_EQ(ref::gemm_abs(2, 4, 3, a, b), (D{10, 5, 4, 8, 22, 11, 13, 20}));
  const F c = {1, -2, 3, 4}, e = {-5, 6, 7, -8};
  EXPECT_EQ(ref::gemm(2, 2, 2, c, e), (D{-19, 22, 13, -14}));
  EXPECT_EQ(ref::gemm_abs(2, 2, 2, c, e), (D{19, 22, 43, 50}));
  EXPECT_EQ(ref::gemm(2, 3, 0, F{}, F{}), D(6, 0.0));  // an empty sum
}

TEST(RefOps, SoftmaxByHand) {
  // softmax(1, 2, 3) = e^i / (e + e^2 + e^3); a constant row is uniform; a large row does not overflow.
  const F x = {1, 2, 3, 5, 5, 5, 1000, 1001, 1002};
  const D y = ref::softmax_rows(3, 3, x);
  const D want = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219, 1.0 / 3, 1.0 / 3, 1.0 / 3,
                  0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
  expect_near(y, want, 1e-15);
  EXPECT_EQ(ref::softmax_rows(2, 1, F{-7, 42}), (D{1, 1}));
}

TEST(RefOps, SoftmaxRowsSumToOneAndIgnoreShifts) {
  const int R = 17, C = 53;
  const F x = grid_values(R * C, 1);
  F shifted = x;
  for (float& v : shifted) v += 8.0f;  // exact on the grid
  const D y = ref::softmax_rows(R, C, x), ys = ref::softmax_rows(R, C, shifted);
  for (int r = 0; r < R; ++r) {
    double sum = 0;
    for (int c = 0; c < C; ++c) {
      EXPECT_GT(y[r * C + c], 0.0);
      sum += y[r * C + c];
    }
    EXPECT_NEAR(sum, 1.0, 1e-14) << "row " << r;
  }
  // x - max is the same exact fp64 value for both, so the results are the same bits.
  EXPECT_EQ(y, ys);
}

TEST(RefOps, LayernormByHand) {
  // A constant row normalises to 0, leaving beta; [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
  const F x = {3, 3, 3, 3, 1, 2, 3, 4};
  const F gamma = {2, 2, 2, 2}, beta = {0.5f, -1, 0, 7};
  const D y = ref::layernorm_rows(2, 4, x, gamma, beta, 1e-5);
  for (int d = 0; d < 4; ++d) EXPECT_EQ(y[d], beta[d]);
  const D plain = ref::layernorm_rows(2, 4, x, F{1, 1, 1, 1}, F{0, 0, 0, 0}, 0.0);
  const double s = std::sqrt(1.25);
  expect_near(D(plain.begin() + 4, plain.end()), D{-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, 1e-15);
  expect_near(D(y.begin() + 4, y.end()), D{2 * -1.5 / s + 0.5, 2 * -0.5 / s - 1, 2 * 0.5 / s, 2 * 1.5 / s + 7},
              1e-4);  // eps = 1e-5 moves the values by about 4e-6 relative
  // eps enters under the square root: var 1.25 + eps 2.75 = 4.
  const D e = ref::layernorm_rows(1, 4, F{1, 2, 3, 4}, F{1, 1, 1, 1}, F{0, 0, 0, 0}, 2.75);
  EXPECT_EQ(e, (D{-0.75, -0.25, 0.25, 0.75}));
}

TEST(RefOps, RmsnormByHand) {
  // [3, 4]: mean square 12.5, rms 5 / sqrt(2); [2, 2]: rms 2; [1, 1] with eps 3: sqrt(1 + 3) = 2.
  const D y = ref::rmsnorm_rows(3, 2, F{3, 4, 2, 2, 1, 1}, F{1, -2}, 0.0);
  expect_near(D(y.begin(), y.begin() + 2), D{3 * std::sqrt(2.0) / 5, -2 * 4 * std::sqrt(2.0) / 5}, 1e-15);
  EXPECT_EQ(y[2], 1.0);
  EXPECT_EQ(y[3], -2.0);
  const D e = ref::rmsnorm_rows(1, 2, F{1, 1}, F{1, 1}, 3.0);
  EXPECT_EQ(e, (D{0.5, 0.5}));
}

TEST(RefOps, AttentionWithOneKeyReturnsV) {
  const int H = 2, Sq = 3, dh = 4, dv = 2;
  const F q = grid_values(H * Sq * dh, 2), k = grid_values(H * 1 * dh, 3);
  const F v = {1.5f, -2, 7, 0.25f};  // [H][1][dv]
  const D o = ref::attention(H, Sq, 1, dh, dv, q, k, v, 0.5, false);
  ASSERT_EQ(o.size(), size_t(H * Sq * dv));
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < Sq; ++i)
      for (int e = 0; e < dv; ++e) EXPECT_EQ(o[(h * Sq + i) * dv + e], v[h * dv + e]) << h << " " << i << " " << e;
}

TEST(RefOps, AttentionByHand) {
  // One head, q = [[1], [1]], k = [[0], [1]], v = [[2], [4]], scale 1: scores [0, 1], weights
  // [1 - sigmoid(1), sigmoid(1)], o = 2 + 2 sigmoid(1). Causal: query 0 sees key 0 only.
  const F q = {1, 1}, k = {0, 1}, v = {2, 4};
  const double full = 2 + 2 / (1 + std::exp(-1.0));  // 3.46211715726001
  expect_near(ref::attention(1, 2, 2, 1, 1, q, k, v, 1.0, false), D{full, full}, 1e-15);
  expect_near(ref::attention(1, 2, 2, 1, 1, q, k, v, 1.0, true), D{2, full}, 1e-15);
  // The scale multiplies the scores: scale 0 averages v.
  expect_near(ref::attention(1, 2, 2, 1, 1, q, k, v, 0.0, false), D{3, 3}, 1e-15);
  // Scale 2: scores [0, 2].
  const double two = 2 + 2 / (1 + std::exp(-2.0));
  expect_near(ref::attention(1, 1, 2, 1, 1, F{1}, k, v, 2.0, false), D{two}, 1e-15);
}

TEST(RefOps, CausalAttentionFirstRowIsV0AndRowsAreConvexCombinations) {
  const int H = 3, S = 5, dh = 8, dv = 3;
  const F q = grid_values(H * S * dh, 4), k = grid_values(H * S * dh, 5), v = grid_values(H * S * dv, 6);
  const D o = ref::attention(H, S, S, dh, dv, q, k, v, 1 / std::sqrt(double(dh)), true);
  const D full = ref::attention(H, S, S, dh, dv, q, k, v, 1 / std::sqrt(double(dh)), false);
  for (int h = 0; h < H; ++h) {
    for (int e = 0; e < dv; ++e) EXPECT_EQ(o[(h * S + 0) * dv + e], v[(h * S + 0) * dv + e]);
    // Row i lies within the range of v[0..i] (a convex combination); the last row sees every key.
    for (int i = 0; i < S; ++i)
      for (int e = 0; e < dv; ++e) {
        double lo = INFINITY, hi = -INFINITY;
        for (int j = 0; j <= i; ++j) {
          lo = std::min(lo, double(v[(h * S + j) * dv + e]));
          hi = std::max(hi, double(v[(h * S + j) * dv + e]));
        }
        EXPECT_GE(o[(h * S + i) * dv + e], lo - 1e-15);
        EXPECT_LE(o[(h * S + i) * dv + e], hi + 1e-15);
      }
    for (int e = 0; e < dv; ++e) EXPECT_EQ(o[(h * S + S - 1) * dv + e], full[(h * S + S - 1) * dv + e]);
  }
}

TEST(RefOps, Conv3x3Pad1Stride2ByHand) {
  // x = 1..9 in a 3x3 image, padded to 5x5; windows start at rows/columns -1 and 1.
  const F x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const F w = {1, 0, -1,  //
               2, 1, 0,   //
               0, 1, 1};
  // [0][0]: 1*1 + 4*1 + 5*1 = 10; [0][1]: 2*2 + 3*1 + 6*1 = 13; [1][0]: 5*-1 + 7*1 = 2;
  // [1][1]: 5*1 + 8*2 + 9*1 = 30.
  EXPECT_EQ(ref::conv2d(1, 1, 3, 3, 1, 3, 3, 2, 2, 1, 1, x, w, F{}), (D{10, 13, 2, 30}));
  EXPECT_EQ(ref::conv2d(1, 1, 3, 3, 1, 3, 3, 2, 2, 1, 1, x, w, F{0.5f}), (D{10.5, 13.5, 2.5, 30.5}));
  EXPECT_EQ(ref::conv2d_abs(1, 1, 3, 3, 1, 3, 3, 2, 2, 1, 1, x, w, F{}), (D{10, 13, 12, 30}));
  EXPECT_EQ(ref::conv2d_abs(1, 1, 3, 3, 1, 3, 3, 2, 2, 1, 1, x, w, F{-0.5f}), (D{10.5, 13.5, 12.5, 30.5}));
  // No padding, stride 1: one window, the whole image.
  EXPECT_EQ(ref::conv2d(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, 0, x, w, F{}), (D{1 - 3 + 8 + 5 + 8 + 9}));
  // OH rounds down: a 4x4 image padded to 6x6 holds windows at -1 and 1 only ((6 - 3) / 2 + 1 = 2). With
  // all-ones data each output counts the window's in-image pixels: 2x2, 2x3, 3x2, 3x3.
  EXPECT_EQ(ref::conv2d(1, 1, 4, 4, 1, 3, 3, 2, 2, 1, 1, F(16, 1.0f), F(9, 1.0f), F{}), (D{4, 6, 6, 9}));
}

TEST(RefOps, ConvWithADeltaKernelShiftsTheInput) {
  // H = 5, W = 4, KH = 3, KW = 2, stride (2, 1), pad (1, 0): OH = (5 + 2 - 3) / 2 + 1 = 3, OW = 3. A kernel
  // with a single 1 at (kh0, kw0) gives y[oh][ow] = x[2 oh - 1 + kh0][ow + kw0], or 0 in the padding.
  const int H = 5, W = 4, KH = 3, KW = 2;
  const F x = grid_values(H * W, 7);
  for (int kh0 = 0; kh0 < KH; ++kh0)
    for (int kw0 = 0; kw0 < KW; ++kw0) {
      F w(KH * KW, 0.0f);
      w[kh0 * KW + kw0] = 1;
      const D y = ref::conv2d(1, 1, H, W, 1, KH, KW, 2, 1, 1, 0, x, w, F{});
      ASSERT_EQ(y.size(), 9u);
      for (int oh = 0; oh < 3; ++oh)
        for (int ow = 0; ow < 3; ++ow) {
          const int ih = 2 * oh - 1 + kh0, iw = ow + kw0;
          const double want = ih >= 0 && ih < H ? x[ih * W + iw] : 0.0;
          EXPECT_EQ(y[oh * 3 + ow], want) << kh0 << kw0 << " at " << oh << ow;
        }
    }
}

TEST(RefOps, OneByOneConvIsAGemmPerImage) {
  // y[n][f][p] = bias[f] + sum_c w[f][c] x[n][c][p]: gemm(F, H*W, C, w, x[n]) plus the bias.
  const int N = 2, C = 3, H = 2, W = 5, Fo = 4;
  const F x = grid_values(N * C * H * W, 8), w = grid_values(Fo * C, 9), bias = {1, -2, 0.5f, 3};
  const D y = ref::conv2d(N, C, H, W, Fo, 1, 1, 1, 1, 0, 0, x, w, bias);
  const D ya = ref::conv2d_abs(N, C, H, W, Fo, 1, 1, 1, 1, 0, 0, x, w, F{});
  ASSERT_EQ(y.size(), size_t(N * Fo * H * W));
  for (int n = 0; n < N; ++n) {
    const std::span<const float> xn(x.data() + n * C * H * W, C * H * W);
    const D g = ref::gemm(Fo, H * W, C, w, xn), ga = ref::gemm_abs(Fo, H * W, C, w, xn);
    for (int f = 0; f < Fo; ++f)
      for (int p = 0; p < H * W; ++p) {
        EXPECT_DOUBLE_EQ(y[(n * Fo + f) * H * W + p], g[f * H * W + p] + bias[f]);
        EXPECT_EQ(ya[(n * Fo + f) * H * W + p], ga[f * H * W + p]);
      }
  }
}

TEST(RefOps, TransposeAndElementwise) {
  EXPECT_EQ(ref::transpose(2, 3, F{1, 2, 3, 4, 5, 6}), (D{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(ref::transpose(0, 3, F{}), D{});
  EXPECT_EQ(ref::elementwise(ActFunc::kRelu, F{-1, 2, 0}), (D{0, 2, 0}));
  EXPECT_EQ(ref::elementwise(ActFunc::kSquare, F{3, -0.5f}), (D{9, 0.25}));
  EXPECT_EQ(ref::elementwise(ActFunc::kSigmoid, F{0}), (D{0.5}));
  EXPECT_EQ(ref::elementwise(ActFunc::kExp, F{0, 1}), (D{1, std::exp(1.0)}));
  const F x = grid_values(64, 10);
  const D y = ref::elementwise(ActFunc::kGeluTanh, x);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], ref::activation(ActFunc::kGeluTanh, x[i]));
}

TEST(RefOps, SizeMismatchesAndBadShapesAreRejected) {
  const F six(6, 1.0f), four(4, 1.0f), two(2, 1.0f), nine(9, 1.0f);
  expect_invalid([&] { ref::gemm(2, 2, 3, four, six); }, "gemm: a has 4 elements");
  expect_invalid([&] { ref::gemm(2, 2, 3, six, four); }, "gemm: b has 4 elements");
  expect_invalid([&] { ref::gemm_abs(2, 2, 3, six, four); }, "gemm_abs: b has");
  expect_invalid([&] { ref::gemm(-1, 2, 3, six, six); }, "M = -1");
  expect_invalid([&] { ref::softmax_rows(2, 2, six); }, "softmax_rows: x has 6 elements");
  expect_invalid([&] { ref::layernorm_rows(2, 3, four, two, two, 0); }, "layernorm_rows: x has");
  expect_invalid([&] { ref::layernorm_rows(2, 2, four, six, two, 0); }, "layernorm_rows: gamma has");
  expect_invalid([&] { ref::layernorm_rows(2, 2, four, two, six, 0); }, "layernorm_rows: beta has");
  expect_invalid([&] { ref::layernorm_rows(2, 2, four, two, two, -1); }, "eps");
  expect_invalid([&] { ref::layernorm_rows(0, 0, F{}, F{}, F{}, 0); }, "D = 0");
  expect_invalid([&] { ref::rmsnorm_rows(2, 2, four, six, 0); }, "rmsnorm_rows: gamma has");
  expect_invalid([&] { ref::rmsnorm_rows(3, 2, four, two, 0); }, "rmsnorm_rows: x has");
  // attention(H=1, Sq=2, Sk=3, dh=2, dv=1): q 4, k 6, v 3.
  const F three(3, 1.0f);
  EXPECT_EQ(ref::attention(1, 2, 3, 2, 1, four, six, three, 1, false).size(), 2u);
  expect_invalid([&] { ref::attention(1, 2, 3, 2, 1, six, six, three, 1, false); }, "attention: q has");
  expect_invalid([&] { ref::attention(1, 2, 3, 2, 1, four, four, three, 1, false); }, "attention: k has");
  expect_invalid([&] { ref::attention(1, 2, 3, 2, 1, four, six, four, 1, false); }, "attention: v has");
  expect_invalid([&] { ref::attention(1, 2, 3, 2, 1, four, six, three, 1, true); }, "causal needs Sq == Sk");
  expect_invalid([&] { ref::attention(1, 2, 0, 2, 1, four, F{}, F{}, 1, false); }, "Sk = 0");
  // conv2d(N=1, C=1, 3x3, F=1, 3x3 kernel).
  expect_invalid([&] { ref::conv2d(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, 0, six, nine, F{}); }, "conv2d: x has");
  expect_invalid([&] { ref::conv2d(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, 0, nine, six, F{}); }, "conv2d: w has");
  expect_invalid([&] { ref::conv2d(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, 0, nine, nine, two); }, "conv2d: bias has");
  expect_invalid([&] { ref::conv2d_abs(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, 0, nine, six, F{}); }, "conv2d_abs: w has");
  expect_invalid([&] { ref::conv2d(1, 1, 3, 3, 1, 3, 3, 0, 1, 0, 0, nine, nine, F{}); }, "stride_h = 0");
  expect_invalid([&] { ref::conv2d(1, 1, 3, 3, 1, 3, 3, 1, 1, 0, -1, nine, nine, F{}); }, "pad_w = -1");
  expect_invalid([&] { ref::conv2d(1, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0, four, nine, F{}); }, "smaller than KH");
  expect_invalid([&] { ref::transpose(2, 2, six); }, "transpose: x has");
}

TEST(RefOps, CompareCatchesOneUlpWithZeroTolerance) {
  const int64_t shape[] = {2, 3};
  const D want = {1, 2, 3, 4, 5, 6};
  F got = {1, 2, 3, 4, 5, 6};
  const auto zero = [](size_t, double) { return 0.0; };
  ref::Compare c = ref::compare("c", shape, got, want, zero);
  EXPECT_EQ(c.checked, 6u);
  EXPECT_EQ(c.mismatches, 0u);
  EXPECT_EQ(c.worst, 0.0);
  EXPECT_EQ(c.first_bad, "");
  got[5] = std::nextafter(6.0f, 7.0f);  // one fp32 ulp
  got[4] = std::nextafter(5.0f, 4.0f);
  c = ref::compare("c", shape, got, want, zero);
  EXPECT_EQ(c.mismatches, 2u);
  EXPECT_EQ(c.worst, INFINITY);
  EXPECT_EQ(c.first_bad.rfind("c[1][1]: got 4.9999995, want 5, allowed 0", 0), 0u) << c.first_bad;
  // An empty allowance function means exact too; one ulp of 6 (2^-21) is within a tolerance of 2^-20.
  EXPECT_EQ(ref::compare("c", shape, got, want, nullptr).mismatches, 2u);
  c = ref::compare("c", shape, got, want, [](size_t, double) { return 0x1p-20; });
  EXPECT_EQ(c.mismatches, 0u);
  EXPECT_EQ(c.worst, 0.5);
  // Just over: the ratio stays above 1.
  c = ref::compare("c", shape, got, want, [](size_t i, double) { return i == 5 ? 0x1p-22 : 1.0; });
  EXPECT_EQ(c.mismatches, 1u);
  EXPECT_EQ(c.worst, 2.0);
  EXPECT_EQ(c.first_bad.rfind("c[1][2]: ", 0), 0u) << c.first_bad;
  // The index passed to allowed is the flat index, with its want.
  ref::compare("c", shape, got, want, [&](size_t i, double w) {
    EXPECT_EQ(w, want[i]);
    return 0.0;
  });
}

TEST(RefOps, CompareTreatsNanAsAMismatchAndInfinitiesAsValues) {
  const int64_t shape[] = {4};
  const auto huge = [](size_t, double) { return 1e300; };
  const F got = {NAN, INFINITY, -0.0f, 1};
  const D want = {1, INFINITY, 0.0, 1};
  ref::Compare c = ref::compare("y", shape, got, want, huge);
  EXPECT_EQ(c.mismatches, 1u);
  EXPECT_EQ(c.worst, INFINITY);
  EXPECT_EQ(c.first_bad.rfind("y[0]: got nan", 0), 0u) << c.first_bad;
  // A NaN want, an infinity where a finite value is wanted, and the wrong infinity are mismatches.
  c = ref::compare("y", shape, F{1, INFINITY, -INFINITY, 1}, D{NAN, 1, INFINITY, 1}, huge);
  EXPECT_EQ(c.mismatches, 3u);
  // A scalar (empty shape) and an empty tensor.
  c = ref::compare("s", std::span<const int64_t>{}, F{2}, D{3}, nullptr);
  EXPECT_EQ(c.first_bad, "s: got 2, want 3, allowed 0");
  const int64_t empty[] = {3, 0};
  EXPECT_EQ(ref::compare("e", empty, F{}, D{}, nullptr).checked, 0u);
}

TEST(RefOps, CompareRejectsBadArguments) {
  const int64_t shape[] = {2, 2}, negative[] = {-1, 2};
  const F four(4, 0.0f);
  const D dfour(4, 0.0);
  expect_invalid([&] { ref::compare("c", shape, F(3, 0.0f), dfour, nullptr); }, "got has 3 elements");
  expect_invalid([&] { ref::compare("c", shape, four, D(5, 0.0), nullptr); }, "want has 5 elements");
  expect_invalid([&] { ref::compare("c", negative, four, dfour, nullptr); }, "shape[0] = -1");
  expect_invalid([&] { ref::compare("c", shape, four, dfour, [](size_t, double) { return -1.0; }); }, "returned -1");
  expect_invalid([&] { ref::compare("c", shape, four, dfour, [](size_t, double) { return NAN; }); }, "returned nan");
}

}  // namespace
