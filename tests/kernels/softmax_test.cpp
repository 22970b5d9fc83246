// Row softmax kernel (kb::softmax) end to end on the emulated device, against the independent fp64
// reference ref::softmax_rows within the error bound derived below; a perturbed output is caught; a row too
// long for SBUF fails at build time naming the tile; the profile on trn1 (HBM-bound). One device per
// process (gtest_discover_tests runs each test in its own).
//
// Tolerance (u = 2^-24; docs/numerics.md: every VectorE/ScalarE step is one fp32 rounding, exp is within
// 4 ulp = 8u relative plus 2^-126 absolute; results below 2^-126 flush to zero). For a row with max m (the
// max is exact) and element x:
//   t = fl(x + (-m))        |t - (x - m)| <= u |x - m|, so exp(t) = exp(x - m) (1 + d), |d| <= u |x - m|
//   e = exp(t) on ScalarE   relative error eps(x) = u |x - m| + 8u (first order), plus 2^-126 absolute
//   s = e_0 + ... + e_{C-1} in order, every term >= 0: relative error <= gamma_{C-1} = (C-1) u / (1 - (C-1) u)
//                           on top of max_x eps(x) and C * 2^-126 absolute (s >= 1 - 8u: the max's term is exp(0))
//   y = fl(e / s)           one more u
// so |y - y_exact| <= y (eps(x) + max eps + gamma_{C-1} + C 2^-126 + u) (1 + 1e-3) + 2^-125, where the factor
// covers the second-order terms (the first-order sum is asserted below 1e-3) and 2^-125 the flushes of e and
// y. The bound is the worst case of a sequential sum; measured errors are far below it (the worst ratio is
// printed).
#include "tcemu/kb/softmax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "kernel_rig.h"
#include "tcemu/error.h"
#include "tcemu/ref_ops.h"
#include "tcemu/rt/profile.h"

namespace tcemu {
namespace {

constexpr double kU = 0x1p-24;

struct Case {
  const char* config;
  int64_t R, C;
  model::DType dtype = model::DType::kF32;
  float range = 4;  // x uniform in [-range, range]
  int bufs = 0;
  TensorEngineKind engine = TensorEngineKind::kFast;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  os << c.config << "_" << c.R << "x" << c.C << "_" << (c.dtype == model::DType::kBf16 ? "bf16" : "f32");
  if (c.bufs) os << "_bufs" << c.bufs;
  if (c.engine != TensorEngineKind::kFast) os << "_" << tensor_engine_name(c.engine);
  return os;
}

struct SoftmaxRun {
  std::vector<float> x;  // as the device holds it (bf16-rounded for a bf16 x)
  rt::RunResult result;
};

SoftmaxRun run(const Case& c, bool profile = false) {
  const DeviceConfig& cfg = find_config(c.config);
  testing_rig::Device dev(cfg, c.engine);
  std::mt19937 rng(uint32_t(c.R * 7919 + c.C));
  SoftmaxRun r;
  r.x = testing_rig::uniform(rng, size_t(c.R * c.C), -c.range, c.range);
  if (c.dtype == model::DType::kBf16) r.x = testing_rig::bf16_round(r.x);
  rt::TensorMap in;
  in["x"] = {{c.R, c.C}, r.x};
  r.result = dev.run(kb::build_softmax(cfg, c.R, c.C, c.dtype, {c.bufs}), in, profile);
  return r;
}

// The bound above, per element; out_u: the unit roundoff of a final rounding of y (2^-8 for a bf16 y).
ref::Compare check(const Case& c, const std::vector<float>& x, const std::vector<float>& y, double out_u = 0) {
  const auto want = ref::softmax_rows(c.R, c.C, x);
  const size_t C = size_t(c.C);
  std::vector<double> allowed(want.size());
  const double gamma = double(C - 1) * kU / (1 - double(C - 1) * kU);
  for (size_t r = 0; r < size_t(c.R); ++r) {
    const float* row = x.data() + r * C;
    const double m = *std::max_element(row, row + C);
    double eps_max = 0;
    for (size_t i = 0; i < C; ++i) eps_max = std::max(eps_max, kU * (m - row[i]) + 8 * kU);
    for (size_t i = 0; i < C; ++i) {
      const double first = kU * (m - row[i]) + 8 * kU + eps_max + gamma + double(C) * 0x1p-126 + kU;
      EXPECT_LT(first, 1e-3) << "the second-order factor does not cover this row";
      allowed[r * C + i] = want[r * C + i] * first * (1 + 1e-3) + 0x1p-125;
      allowed[r * C + i] += out_u * (want[r * C + i] + allowed[r * C + i]);
    }
  }
  const int64_t shape[] = {c.R, c.C};
  return ref::compare("y", shape, y, want, [&](size_t i, double) { return allowed[i]; });
}

class Softmax : public ::testing::TestWithParam<Case> {};

TEST_P(Softmax, MatchesTheReference) {
  const Case& c = GetParam();
  const SoftmaxRun r = run(c);
  const auto& y = r.result.outputs.at("y").data;
  ASSERT_EQ(y.size(), size_t(c.R * c.C));
  const ref::Compare ok = check(c, r.x, y);
  EXPECT_EQ(ok.checked, y.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  std::printf("%s: %llu cycles, worst error %.3g of the bound\n", ::testing::PrintToString(c).c_str(),
              (unsigned long long)r.result.cycles, ok.worst);
  // The check can fail: one element 0.1% off is caught (the bound is below 1e-3 relative).
  std::vector<float> bad = y;
  bad[bad.size() / 2] *= 1.001f;
  EXPECT_EQ(check(c, r.x, bad).mismatches, 1u);
}

// Shapes: several row tiles, rows not a multiple of 128, one short tile, long rows, bf16 inputs, one and two
// buffers, a wide input range; tc1-16 (16 partitions: 5 row tiles) with the tensor engine in lockstep.
INSTANTIATE_TEST_SUITE_P(
    Shapes, Softmax,
    ::testing::Values(Case{"trn1", 1024, 1024}, Case{"trn1", 1000, 333, model::DType::kBf16},
                      Case{"trn1", 300, 2048, model::DType::kF32, 30}, Case{"trn1", 5, 7},
                      Case{"trn1", 129, 4096, model::DType::kBf16}, Case{"trn1", 257, 100, model::DType::kF32, 4, 1},
                      Case{"trn1", 200, 64, model::DType::kF32, 4, 2},
                      Case{"tc1-16", 70, 50, model::DType::kF32, 4, 0, TensorEngineKind::kLockstep},
                      Case{"tc1-16", 33, 17, model::DType::kBf16, 4, 0, TensorEngineKind::kLockstep}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string s = ::testing::PrintToString(i.param);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

// Composed into a kernel with a bf16 y (attention probabilities feeding a matmul): the store rounds the f32
// result once more, to 8 significant bits, so the bound grows by 2^-8 (|want| + bound).
TEST(SoftmaxComposed, Bf16OutputRoundsOnce) {
  const Case c{"trn1", 300, 200};
  const DeviceConfig& cfg = find_config(c.config);
  kb::Kernel k(cfg, "softmax_bf16_out");
  const auto x = k.input("x", model::DType::kF32, {c.R, c.C});
  const auto y = k.output("y", model::DType::kBf16, {c.R, c.C});
  kb::softmax(k, x, y);
  testing_rig::Device dev(cfg);
  std::mt19937 rng(5);
  const auto xv = testing_rig::uniform(rng, size_t(c.R * c.C), -4, 4);
  rt::TensorMap in;
  in["x"] = {{c.R, c.C}, xv};
  const auto out = dev.run(k.finish(), in).outputs.at("y").data;
  const ref::Compare ok = check(c, xv, out, 0x1p-8);
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  EXPECT_GT(ok.worst, 0.1);  // the bf16 rounding is there (f32 results use a few % of the f32 bound)
}

TEST(SoftmaxBuild, ARowTooLongForSbufFailsNamingTheTile) {
  {
    // 200,000 B per partition > 192 KiB
    const std::string w =
        testing_rig::error_of([&] { kb::build_softmax(find_config("trn1"), 128, 50000); }, ErrorCode::kCapacity);
    EXPECT_NE(w.find("'softmax.x'"), std::string::npos) << w;
    EXPECT_NE(w.find("200000 B per partition"), std::string::npos) << w;
  }
  kb::Kernel k(find_config("trn1"), "bad");
  const auto x = k.input("x", model::DType::kF32, {4, 8});
  const auto y = k.output("y", model::DType::kF32, {8, 4});
  EXPECT_THROW(kb::softmax(k, x, y), Error);
}

// The representative shape's profile: HBM is the bound (docs/kernels.md, "Softmax").
TEST(SoftmaxProfile, Trn1IsBoundByHbm) {
  const Case c{"trn1", 1024, 1024};
  const SoftmaxRun r = run(c, true);
  EXPECT_EQ(check(c, r.x, r.result.outputs.at("y").data).mismatches, 0u);
  ASSERT_TRUE(r.result.profile);
  const rt::Summary s = rt::summarize(*r.result.profile);
  std::printf("%s", rt::format_summary(s).c_str());
  EXPECT_EQ(s.info.hbm_bytes, uint64_t(c.R * c.C) * 8);
  EXPECT_GT(s.hbm_bytes_per_cycle, 0.8 * s.info.hbm_bytes_per_cycle);
}

}  // namespace
}  // namespace tcemu
