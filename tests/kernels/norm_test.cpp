// Layernorm and RMSNorm kernels (kb::layernorm, kb::rmsnorm) end to end on the emulated device, against the
// independent fp64 references ref::layernorm_rows / ref::rmsnorm_rows within the error bounds derived
// below; a perturbed output is caught; a row too long for SBUF fails at build time naming the tile; the
// profiles on trn1. One device per process (gtest_discover_tests runs each test in its own).
//
// Error bounds, first order in u = 2^-24 (docs/numerics.md: every VectorE/ScalarE step is one fp32
// rounding; rsqrt is within 2 ulp = 4u relative), gamma_n = n u / (1 - n u) for a sequential fp32 sum of n
// terms. Per row: m, V the exact mean and biased variance, A = mean |x|, r = 1 / sqrt(V + eps), and for an
// element: xh = (x - m) r, want = xh g (+ b).
//
// RMSNorm (ss = sum of squares, ms = ss / D):
//   squares and their sum                 relative gamma_D (every term >= 0)
//   ms = ss * fl(1/D), + eps              2u, then u:  w = (ms + eps)(1 + dw), |dw| <= gamma_D + 3u
//   rstd = rsqrt(w)                       |drstd| <= |dw| / 2 + 4u
//   x * rstd, * g                         2u
//   => |y - want| <= |want| (gamma_D / 2 + 7.5u)
// Layernorm:
//   s = sum x, nm = s * fl(-1/D)          nm = -m + e, |e| <= e_m = gamma_{D+1} A
//   c = fl(x + nm) = (x - m + e)(1 + d)   sum (x - m + e)^2 = D (V + e^2) exactly, since sum (x - m) = 0
//   ss = sum fl(c^2), * fl(1/D), + eps    w = (V + eps)(1 + dw), |dw| <= gamma_{D+5} + e_m^2 / (V + eps)
//   rstd = rsqrt(w)                       rstd = r (1 + dr), |dr| <= |dw| / 2 + 4u
//   nmr = fl(nm rstd), xh' = fl(fl(x rstd) + nmr)
//                                         |xh' - xh| <= e_m r + |xh| |dr| + u r (|x| + |m| + e_m) + u |xh|
//   y = fl(fl(xh' g) + b)                 |y - want| <= |g| |xh' - xh| + u |xh g| + u |want|
// Both bounds get a factor (1 + 1e-3) for the second-order terms (the first-order relative terms are
// asserted below 1e-3) and 2^-125 for results flushed to zero. The sums' gamma_n are worst cases: measured
// errors are a small fraction of the bounds (the worst ratio is printed).
#include "tcemu/kb/norm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernel_rig.h"
#include "tcemu/error.h"
#include "tcemu/ref_ops.h"
#include "tcemu/rt/profile.h"

namespace tcemu {
namespace {

constexpr double kU = 0x1p-24;
double gamma_n(double n) { return n * kU / (1 - n * kU); }

struct Case {
  const char* config;
  bool layer;  // layernorm (else rmsnorm)
  int64_t R, D;
  model::DType dtype = model::DType::kF32;
  float offset = 0;  // added to x (uniform in [-2, 2]): a mean far from 0
  int bufs = 0;
  TensorEngineKind engine = TensorEngineKind::kFast;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  os << c.config << "_" << (c.layer ? "layernorm" : "rmsnorm") << "_" << c.R << "x" << c.D << "_"
     << (c.dtype == model::DType::kBf16 ? "bf16" : "f32");
  if (c.offset != 0) os << "_offset" << int(c.offset);
  if (c.bufs) os << "_bufs" << c.bufs;
  if (c.engine != TensorEngineKind::kFast) os << "_" << tensor_engine_name(c.engine);
  return os;
}

constexpr float kEps = 1e-5f;

struct NormRun {
  std::vector<float> x, gamma, beta;  // as the device holds them
  rt::RunResult result;
};

NormRun run(const Case& c, bool profile = false) {
  const DeviceConfig& cfg = find_config(c.config);
  testing_rig::Device dev(cfg, c.engine);
  std::mt19937 rng(uint32_t(c.R * 31 + c.D + c.layer));
  NormRun r;
  r.x = testing_rig::uniform(rng, size_t(c.R * c.D), -2, 2);
  for (auto& v : r.x) v += c.offset;
  if (c.dtype == model::DType::kBf16) r.x = testing_rig::bf16_round(r.x);
  r.gamma = testing_rig::uniform(rng, size_t(c.D), 0.5f, 1.5f);
  r.beta = testing_rig::uniform(rng, size_t(c.D), -0.5f, 0.5f);
  rt::TensorMap in;
  in["x"] = {{c.R, c.D}, r.x};
  in["gamma"] = {{c.D}, r.gamma};
  if (c.layer) in["beta"] = {{c.D}, r.beta};
  const kb::NormOptions o{kEps, c.bufs};
  r.result =
      dev.run(c.layer ? kb::build_layernorm(cfg, c.R, c.D, c.dtype, o) : kb::build_rmsnorm(cfg, c.R, c.D, c.dtype, o),
              in, profile);
  return r;
}

// The bounds above, per element; out_u: the unit roundoff of a final rounding of y (2^-8 for a bf16 y).
ref::Compare check(const Case& c, const NormRun& r, const std::vector<float>& y, double out_u = 0) {
  const size_t R = size_t(c.R), D = size_t(c.D);
  const double eps = kEps;  // the float the device adds
  const auto want = c.layer ? ref::layernorm_rows(c.R, c.D, r.x, r.gamma, r.beta, eps)
                            : ref::rmsnorm_rows(c.R, c.D, r.x, r.gamma, eps);
  std::vector<double> allowed(want.size());
  for (size_t i = 0; i < R; ++i) {
    const float* x = r.x.data() + i * D;
    double m = 0, A = 0, V = 0, ms = 0;
    for (size_t d = 0; d < D; ++d) m += x[d], A += std::fabs(x[d]), ms += double(x[d]) * x[d];
    m /= double(D), A /= double(D), ms /= double(D);
    for (size_t d = 0; d < D; ++d) V += (x[d] - m) * (x[d] - m);
    V /= double(D);
    for (size_t d = 0; d < D; ++d) {
      const size_t at = i * D + d;
      const double w = std::fabs(want[at]);
      double a;
      if (!c.layer) {
        const double rel = gamma_n(double(D)) / 2 + 7.5 * kU;
        EXPECT_LT(rel, 1e-3);
        a = w * rel;
      } else {
        const double r_ = 1 / std::sqrt(V + eps), g = std::fabs(r.gamma[d]);
        const double e_m = gamma_n(double(D + 1)) * A;
        const double dw = gamma_n(double(D + 5)) + e_m * e_m / (V + eps), dr = dw / 2 + 4 * kU;
        EXPECT_LT(dw, 1e-3);
        const double xh = std::fabs((x[d] - m) * r_);
        const double err_xh = e_m * r_ + xh * dr + kU * r_ * (std::fabs(x[d]) + std::fabs(m) + e_m) + kU * xh;
        a = g * err_xh + kU * xh * g + kU * w;
      }
      allowed[at] = a * (1 + 1e-3) + 0x1p-125;
      allowed[at] += out_u * (w + allowed[at]);
    }
  }
  const int64_t shape[] = {c.R, c.D};
  return ref::compare("y", shape, y, want, [&](size_t i, double) { return allowed[i]; });
}

class Norm : public ::testing::TestWithParam<Case> {};

TEST_P(Norm, MatchesTheReference) {
  const Case& c = GetParam();
  const NormRun r = run(c);
  const auto& y = r.result.outputs.at("y").data;
  ASSERT_EQ(y.size(), size_t(c.R * c.D));
  const ref::Compare ok = check(c, r, y);
  EXPECT_EQ(ok.checked, y.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  std::printf("%s: %llu cycles, worst error %.3g of the bound\n", ::testing::PrintToString(c).c_str(),
              (unsigned long long)r.result.cycles, ok.worst);
  // The check can fail: one element off by 1e-3 (relative and absolute; the bounds are below that) is caught.
  std::vector<float> bad = y;
  const size_t at = bad.size() / 2;
  bad[at] += 1e-3f * (1 + std::fabs(bad[at]));
  EXPECT_EQ(check(c, r, bad).mismatches, 1u);
}

// Shapes: several row tiles, rows not a multiple of 128, a short tile, long rows, bf16 inputs, a mean far
// from zero, one and two buffers; tc1-16 (16 partitions) with the tensor engine in lockstep.
INSTANTIATE_TEST_SUITE_P(
    Shapes, Norm,
    ::testing::Values(Case{"trn1", true, 1024, 1024}, Case{"trn1", false, 1024, 1024},
                      Case{"trn1", true, 1000, 333, model::DType::kBf16},
                      Case{"trn1", false, 300, 777, model::DType::kBf16},
                      Case{"trn1", true, 257, 2048, model::DType::kF32, 8}, Case{"trn1", false, 129, 4096},
                      Case{"trn1", true, 5, 7}, Case{"trn1", false, 3, 1},
                      Case{"trn1", true, 200, 96, model::DType::kF32, 0, 1},
                      Case{"trn1", false, 300, 64, model::DType::kF32, 0, 2},
                      Case{"tc1-16", true, 70, 50, model::DType::kF32, 3, 0, TensorEngineKind::kLockstep},
                      Case{"tc1-16", false, 33, 40, model::DType::kBf16, 0, 0, TensorEngineKind::kLockstep}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string s = ::testing::PrintToString(i.param);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

// A bf16 y (as a transformer block stores activations that feed matmuls): the store rounds the f32 result
// once more, to 8 significant bits, so the bound grows by 2^-8 (|want| + bound).
TEST(NormComposed, Bf16OutputRoundsOnce) {
  const Case c{"trn1", true, 70, 192, model::DType::kF32, 1};
  const DeviceConfig& cfg = find_config(c.config);
  kb::Kernel k(cfg, "layernorm_bf16_out");
  const auto x = k.input("x", model::DType::kF32, {c.R, c.D});
  const auto g = k.input("gamma", model::DType::kF32, {c.D});
  const auto b = k.input("beta", model::DType::kF32, {c.D});
  const auto y = k.output("y", model::DType::kBf16, {c.R, c.D});
  kb::layernorm(k, x, g, b, y, {kEps});
  testing_rig::Device dev(cfg);
  std::mt19937 rng(5);
  NormRun r;
  r.x = testing_rig::uniform(rng, size_t(c.R * c.D), -1, 3);
  r.gamma = testing_rig::uniform(rng, size_t(c.D), 0.5f, 1.5f);
  r.beta = testing_rig::uniform(rng, size_t(c.D), -0.5f, 0.5f);
  rt::TensorMap in;
  in["x"] = {{c.R, c.D}, r.x};
  in["gamma"] = {{c.D}, r.gamma};
  in["beta"] = {{c.D}, r.beta};
  const auto out = dev.run(k.finish(), in).outputs.at("y").data;
  const ref::Compare ok = check(c, r, out, 0x1p-8);
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  EXPECT_GT(ok.worst, 0.1);  // the bf16 rounding is there (f32 results use a few % of the f32 bound)
}

// transposed_out: yT [D, R] bf16 straight from the kernel. VectorE rounds the fp32 result to bf16 once and
// TensorE's transpose moves bf16 values exactly (-0 and subnormals become +0), so yT must equal the
// kernel's own f32 output (checked against fp64 above) rounded to bf16 and transposed, bit for bit; the
// same model computes both from the same x. Several row tiles, D over two array widths, both norms,
// trn1 (fast engine) and tc1-16 (RTL in lockstep).
struct TransposedCase {
  const char* config;
  bool layernorm;
  int64_t R, D;
};
class NormTransposed : public ::testing::TestWithParam<TransposedCase> {};

TEST_P(NormTransposed, EqualsTheRowOutputRoundedToBf16AndTransposed) {
  {
    const TransposedCase t = GetParam();
    const DeviceConfig& cfg = find_config(t.config);
    kb::Kernel k(cfg, "norm_transposed");
    const auto x = k.input("x", model::DType::kF32, {t.R, t.D});
    const auto g = k.input("gamma", model::DType::kF32, {t.D});
    const auto b = k.input("beta", model::DType::kF32, {t.D});
    const auto y = k.output("y", model::DType::kF32, {t.R, t.D});
    const auto yT = k.output("yT", model::DType::kBf16, {t.D, t.R});
    kb::NormOptions o{kEps};
    kb::NormOptions ot = o;
    ot.transposed_out = true;
    if (t.layernorm) {
      kb::layernorm(k, x, g, b, y, o);
      kb::layernorm(k, x, g, b, yT, ot);
    } else {
      kb::rmsnorm(k, x, g, y, o);
      kb::rmsnorm(k, x, g, yT, ot);
    }
    testing_rig::Device dev(cfg,
                            t.config == std::string("trn1") ? TensorEngineKind::kFast : TensorEngineKind::kLockstep);
    std::mt19937 rng(9);
    rt::TensorMap in;
    in["x"] = {{t.R, t.D}, testing_rig::uniform(rng, size_t(t.R * t.D), -1, 3)};
    in["gamma"] = {{t.D}, testing_rig::uniform(rng, size_t(t.D), 0.5f, 1.5f)};
    in["beta"] = {{t.D}, testing_rig::uniform(rng, size_t(t.D), -0.5f, 0.5f)};
    const auto r = dev.run(k.finish(), in);
    const auto& rows = r.outputs.at("y").data;
    const auto& cols = r.outputs.at("yT").data;
    ASSERT_EQ(cols.size(), rows.size());
    size_t bad = 0;
    for (int64_t i = 0; i < t.R; ++i)
      for (int64_t d = 0; d < t.D; ++d) {
        float want = testing_rig::bf16_round(rows[size_t(i * t.D + d)]);
        if (want == 0.0f || std::fpclassify(want) == FP_SUBNORMAL) want = 0.0f;
        const float got = cols[size_t(d * t.R + i)];
        if (num::f32_bits(got) != num::f32_bits(want) && bad++ < 3)
          ADD_FAILURE() << "yT[" << d << "][" << i << "] = " << got << ", want " << want;
      }
    EXPECT_EQ(bad, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, NormTransposed,
                         ::testing::Values(TransposedCase{"trn1", true, 300, 200},
                                           TransposedCase{"trn1", false, 130, 300},
                                           TransposedCase{"tc1-16", true, 40, 24}),
                         [](const ::testing::TestParamInfo<TransposedCase>& i) {
                           std::string n = std::string(i.param.config) +
                                           (i.param.layernorm ? "_layernorm_" : "_rmsnorm_") +
                                           std::to_string(i.param.R) + "x" + std::to_string(i.param.D);
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(NormBuild, ARowTooLongForSbufFailsNamingTheTile) {
  // D = 20000 f32: gamma and beta take 160,000 B of a 192 KiB partition, x needs 80,000 more.
  {
    const std::string w =
        testing_rig::error_of([&] { kb::build_layernorm(find_config("trn1"), 256, 20000); }, ErrorCode::kCapacity);
    EXPECT_NE(w.find("'layernorm.x'"), std::string::npos) << w;
    EXPECT_NE(w.find("80000 B per partition"), std::string::npos) << w;
    EXPECT_NE(w.find("'layernorm.gamma' 80000 B"), std::string::npos) << w;
  }
  kb::Kernel k(find_config("trn1"), "bad");
  const auto x = k.input("x", model::DType::kF32, {4, 8});
  const auto g = k.input("g", model::DType::kF32, {7});
  const auto y = k.output("y", model::DType::kF32, {4, 8});
  EXPECT_THROW(kb::rmsnorm(k, x, g, y), Error);
}

// The representative shapes' profiles (docs/kernels.md, "Layernorm and RMSNorm").
TEST(NormProfile, Trn1Layernorm) {
  const Case c{"trn1", true, 1024, 1024};
  const NormRun r = run(c, true);
  EXPECT_EQ(check(c, r, r.result.outputs.at("y").data).mismatches, 0u);
  ASSERT_TRUE(r.result.profile);
  const rt::Summary s = rt::summarize(*r.result.profile);
  std::printf("%s", rt::format_summary(s).c_str());
}

TEST(NormProfile, Trn1RmsnormIsBoundByHbm) {
  const Case c{"trn1", false, 1024, 1024};
  const NormRun r = run(c, true);
  EXPECT_EQ(check(c, r, r.result.outputs.at("y").data).mismatches, 0u);
  ASSERT_TRUE(r.result.profile);
  const rt::Summary s = rt::summarize(*r.result.profile);
  std::printf("%s", rt::format_summary(s).c_str());
  EXPECT_GT(s.hbm_bytes_per_cycle, 0.8 * s.info.hbm_bytes_per_cycle);
}

}  // namespace
}  // namespace tcemu
