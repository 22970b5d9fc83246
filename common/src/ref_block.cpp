#include "tcemu/ref_block.h"

#include <cmath>
#include <random>
#include <string>

#include "tcemu/error.h"
#include "tcemu/isa.h"
#include "tcemu/numerics.h"
#include "tcemu/ref_ops.h"

namespace tcemu::ref {

namespace {

float bf16(double v) { return num::bf16_to_f32(num::f32_to_bf16(float(v))); }

std::vector<float> to_bf16(const std::vector<double>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16(v[i]);
  return r;
}

// a [R, C] (+ bias[C] per row) in fp64.
std::vector<double> add_bias(std::vector<double> a, int64_t C, std::span<const float> bias) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += bias[i % size_t(C)];
  return a;
}

// [S, H * d] -> [H, S, d]
std::vector<float> heads_first(const std::vector<float>& a, int64_t S, int64_t H, int64_t d) {
  std::vector<float> r(a.size());
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < d; ++j) r[size_t((h * S + s) * d + j)] = a[size_t(s * H * d + h * d + j)];
  return r;
}

void need(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::kInvalidArgument, "ref::transformer_block: " + what);
}

}  // namespace

BlockParams make_block_params(const BlockShape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto matrix = [&](int64_t in, int64_t out) {
    std::vector<float> m(size_t(in * out));
    const float scale = 1.0f / std::sqrt(float(in));
    for (auto& x : m) x = bf16(u(rng) * scale);
    return m;
  };
  auto vec = [&](int64_t n, float base, float spread) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = base + spread * u(rng);
    return v;
  };
  const int64_t D = s.d_model, F = s.d_ff;
  BlockParams p;
  p.ln1_g = vec(D, 1, 0.1f), p.ln1_b = vec(D, 0, 0.1f);
  p.wq = matrix(D, D), p.bq = vec(D, 0, 0.1f);
  p.wk = matrix(D, D), p.bk = vec(D, 0, 0.1f);
  p.wv = matrix(D, D), p.bv = vec(D, 0, 0.1f);
  p.wo = matrix(D, D), p.bo = vec(D, 0, 0.1f);
  p.ln2_g = vec(D, 1, 0.1f), p.ln2_b = vec(D, 0, 0.1f);
  p.w1 = matrix(D, F), p.b1 = vec(F, 0, 0.1f);
  p.w2 = matrix(F, D), p.b2 = vec(D, 0, 0.1f);
  return p;
}

std::vector<double> transformer_block(const BlockShape& s, std::span<const float> x, const BlockParams& p) {
  const int64_t S = s.seq, D = s.d_model, H = s.heads, F = s.d_ff;
  need(S >= 1 && D >= 1 && H >= 1 && F >= 1 && D % H == 0, "sizes must be positive with D divisible by H");
  need(x.size() == size_t(S * D), "x must have S * D elements");
  const size_t dd = size_t(D * D);
  need(p.wq.size() == dd && p.wk.size() == dd && p.wv.size() == dd && p.wo.size() == dd &&
           p.w1.size() == size_t(D * F) && p.w2.size() == size_t(F * D) && p.b1.size() == size_t(F),
       "parameter sizes do not match the shape");
  const int64_t dh = D / H;
  const auto h1 = to_bf16(layernorm_rows(S, D, x, p.ln1_g, p.ln1_b, s.eps));
  const auto q = to_bf16(add_bias(gemm(S, D, D, h1, p.wq), D, p.bq));
  const auto k = to_bf16(add_bias(gemm(S, D, D, h1, p.wk), D, p.bk));
  const auto v = to_bf16(add_bias(gemm(S, D, D, h1, p.wv), D, p.bv));
  const double scale = double(float(1.0 / std::sqrt(double(dh))));
  const auto oh = attention(H, S, S, dh, dh, heads_first(q, S, H, dh), heads_first(k, S, H, dh),
                            heads_first(v, S, H, dh), scale, s.causal);
  std::vector<float> o(size_t(S * D));  // [H, S, dh] -> [S, H * dh], rounded to bf16
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t j = 0; j < dh; ++j) o[size_t(t * D + h * dh + j)] = bf16(oh[size_t((h * S + t) * dh + j)]);
  const auto proj = add_bias(gemm(S, D, D, o, p.wo), D, p.bo);
  std::vector<double> x1(proj.size());
  std::vector<float> x1f(proj.size());
  for (size_t i = 0; i < x1.size(); ++i) x1[i] = double(x[i]) + proj[i], x1f[i] = float(x1[i]);
  const auto h2 = to_bf16(layernorm_rows(S, D, x1f, p.ln2_g, p.ln2_b, s.eps));
  auto pre = add_bias(gemm(S, F, D, h2, p.w1), F, p.b1);
  std::vector<float> u(pre.size());
  for (size_t i = 0; i < pre.size(); ++i) u[i] = bf16(activation(isa::ActFunc::kGeluTanh, pre[i]));
  const auto down = add_bias(gemm(S, D, F, u, p.w2), D, p.b2);
  std::vector<double> y(down.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = x1[i] + down[i];
  return y;
}

Compare check_block(const BlockShape& s, std::span<const float> x, std::span<const float> got,
                    std::span<const double> want) {
  need(x.size() == want.size(), "x and the reference differ in size");
  double sq = 0;
  for (size_t i = 0; i < want.size(); ++i) sq += (want[i] - x[i]) * (want[i] - x[i]);
  const double rms = want.empty() ? 0 : std::sqrt(sq / double(want.size()));
  const std::vector<int64_t> shape = {s.seq, s.d_model};
  return compare("y", shape, got, want,
                 [&](size_t i, double w) { return kBlockTolerance * (std::abs(w - x[i]) + rms); });
}

}  // namespace tcemu::ref
