#include "tcemu/reference.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tcemu/numerics.h"

namespace tcemu::ref {

using isa::ActFunc;

double activation(ActFunc f, double u) {
  const double pi = 3.14159265358979323846;
  switch (f) {
    case ActFunc::kIdentity: return u;
    case ActFunc::kRelu: return std::isnan(u) ? u : (u > 0 ? u : 0.0);
    case ActFunc::kGeluTanh:
      if (std::isinf(u)) return u > 0 ? u : 0.0;
      // u (1 + tanh(w)) / 2 = u / (1 + exp(-2w)): the same function, without fp64 cancellation for u < 0.
      return u / (1 + std::exp(-2 * std::sqrt(2 / pi) * (u + 0.044715 * u * u * u)));
    case ActFunc::kGeluErf:
      if (std::isinf(u)) return u > 0 ? u : 0.0;
      return 0.5 * u * std::erfc(-u / std::sqrt(2.0));
    case ActFunc::kSigmoid: return 1 / (1 + std::exp(-u));
    case ActFunc::kTanh: return std::tanh(u);
    case ActFunc::kExp: return std::exp(u);
    case ActFunc::kSilu:
      if (std::isinf(u)) return u > 0 ? u : 0.0;
      return u / (1 + std::exp(-u));
    case ActFunc::kSoftplus: return u > 30 ? u + std::log1p(std::exp(-u)) : std::log1p(std::exp(u));
    case ActFunc::kRsqrt: return 1 / std::sqrt(u);
    case ActFunc::kReciprocal: return 1 / u;
    case ActFunc::kSquare: return u * u;
    case ActFunc::kLog: return std::log(u);
  }
  return NAN;
}

double Tolerance::allowed(double want) const { return ulps * 0x1p-23 * std::fabs(want) + std::max(abs, 0x1p-126); }

Tolerance activation_tolerance(ActFunc f) {
  switch (f) {
    case ActFunc::kIdentity:
    case ActFunc::kRelu:
    case ActFunc::kReciprocal:
    case ActFunc::kSquare: return {0, 0};
    case ActFunc::kGeluTanh:
    case ActFunc::kGeluErf: return {8, 0x1p-24};
    case ActFunc::kRsqrt: return {2, 0};
    case ActFunc::kSigmoid:
    case ActFunc::kTanh:
    case ActFunc::kExp:
    case ActFunc::kSilu:
    case ActFunc::kSoftplus:
    case ActFunc::kLog: return {4, 0};
  }
  return {0, 0};
}

Check check_linear(int M, int N, int K, int k_chunk, ActFunc f, std::span<const float> xT, std::span<const float> w,
                   std::span<const float> b, std::span<const float> rT, std::span<const float> yT) {
  const size_t m = size_t(M), n = size_t(N), k = size_t(K);
  // golden_gemm computes C[M x N] = A[M x K] B[K x N]: A = x (xT transposed), B = w; C[i][j] = yT[j][i]'s sum.
  std::vector<uint16_t> A(m * k), B(k * n);
  for (size_t kk = 0; kk < k; ++kk)
    for (size_t i = 0; i < m; ++i) A[i * k + kk] = num::f32_to_bf16(xT[kk * m + i]);
  for (size_t i = 0; i < B.size(); ++i) B[i] = num::f32_to_bf16(w[i]);
  std::vector<uint32_t> C(m * n);
  num::golden_gemm(M, N, K, k_chunk, A.data(), B.data(), C.data());
  const Tolerance tol = activation_tolerance(f);
  Check c;
  for (size_t j = 0; j < n; ++j)
    for (size_t i = 0; i < m; ++i) {
      // u = acc * 1.0 + b[j]: the multiply is exact, the add one fp32 rounding with FTZ (docs/numerics.md).
      const float u = num::f32_from_bits(num::golden_add(C[i * n + j], num::f32_bits(b[j])));
      const double g = activation(f, double(u));
      const float r = rT.empty() ? 0.0f : rT[j * m + i];
      const float got = yT[j * m + i];
      ++c.checked;
      bool bad;
      double want, allowed = 0;
      if (tol.ulps == 0) {  // f exact: the whole chain is exact fp32
        const uint32_t gf = num::f32_bits(float(g));
        const uint32_t y = rT.empty() ? gf : num::golden_add(gf, num::f32_bits(r));
        want = num::f32_from_bits(y);
        bad = num::f32_bits(got) != y;
      } else {  // f's tolerance, then one more fp32 rounding (with FTZ) when the residual is added
        want = g + double(r);
        allowed = tol.allowed(g) + (rT.empty() ? 0.0 : 0x1p-24 * std::fabs(want) + 0x1p-126);
        const double err = std::fabs(double(got) - want);
        c.worst = std::max(c.worst, err / allowed);
        bad = !(err <= allowed);
      }
      if (bad && c.mismatches++ == 0)
        c.first_bad = fmt::format("yT[{}][{}]: got {}, want {} +- {}", j, i, got, want, allowed);
    }
  return c;
}

}  // namespace tcemu::ref
