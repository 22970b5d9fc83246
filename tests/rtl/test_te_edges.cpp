// (b) Edge values through the whole engine: +-0, bf16 subnormals, +-inf, NaN, overflow to inf, underflow
// flush, exact cancellation to +0, (-0) + (-0). Each case is a short sum of products (summation order =
// row order); it is placed in every result column and several moving columns. Expected values come from
// the golden model; each case also states the class of result it was built to produce, checked against
// the golden model first (a check of the test's construction, not of the RTL).
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "te_stream.h"

namespace tcemu::rtl::test {
namespace {

constexpr uint16_t kOne = 0x3F80;

struct EdgeCase {
  const char* what;
  std::vector<std::pair<uint16_t, uint16_t>> terms;  // (weight, moving) per row, summed in this order
  uint32_t intended;                                 // the result it is built to produce
};

const std::vector<EdgeCase>& edge_cases() {
  static const std::vector<EdgeCase> cases = {
      {"+0 product", {{0x0000, kOne}}, 0x00000000},
      {"-0 product: (+0) + (-0) = +0", {{0x8000, kOne}}, 0x00000000},
      {"subnormal weight reads as zero", {{0x0001, 0x4000}, {kOne, kOne}}, 0x3F800000},
      {"subnormal moving value reads as -0", {{kOne, 0x807F}}, 0x00000000},
      {"+inf * 2 = +inf", {{0x7F80, 0x4000}}, 0x7F800000},
      {"-inf * 2 + 1 = -inf", {{0xFF80, 0x4000}, {kOne, kOne}}, 0xFF800000},
      {"inf * 0 = NaN", {{0x7F80, 0x0000}}, 0x7FC00000},
      {"inf * subnormal = NaN", {{0x7F80, 0x8001}}, 0x7FC00000},
      {"inf + (-inf) = NaN", {{0x7F80, kOne}, {0xFF80, kOne}}, 0x7FC00000},
      {"NaN payload -> canonical", {{0x7F81, kOne}}, 0x7FC00000},
      {"negative NaN -> canonical positive", {{0xFFC0, kOne}, {kOne, kOne}}, 0x7FC00000},
      {"NaN + inf = NaN", {{0x7FC0, kOne}, {0x7F80, kOne}}, 0x7FC00000},
      {"inf + finite = inf", {{0x7F80, kOne}, {0x4000, 0x4000}}, 0x7F800000},
      {"product overflow -> +inf", {{0x7F00, 0x4000}}, 0x7F800000},
      {"product overflow -> -inf", {{0xFF00, 0x4000}}, 0xFF800000},
      {"sum overflow -> inf", {{0x7F7F, kOne}, {0x7F7F, kOne}}, 0x7F800000},
      {"FLT_MAX + half ulp (tie, odd) rounds to inf",
       {{0x7F7F, kOne}, {0x7B7F, kOne}, {0x777F, kOne}, {0x7300, kOne}},
       0x7F800000},
      {"FLT_MAX built exactly from three products", {{0x7F7F, kOne}, {0x7B7F, kOne}, {0x777F, kOne}}, 0x7F7FFFFF},
      {"product 2^-128 flushes to +0", {{0x1F80, 0x1F80}}, 0x00000000},
      {"product -2^-128 flushes to -0, (+0) + (-0) = +0", {{0x9F80, 0x1F80}}, 0x00000000},
      {"product 2^-126 is kept", {{0x2000, 0x2000}}, 0x00800000},
      {"1.5*2^-126 - 2^-126 flushes to +0", {{0x00C0, kOne}, {0x8080, kOne}}, 0x00000000},
      {"2^-126 - 1.5*2^-126 flushes to -0, then (-0) + (-0) = -0",
       {{0x0080, kOne}, {0x80C0, kOne}, {0x8000, kOne}},
       0x80000000},
      {"flush to -0, then (-0) + (+0) = +0", {{0x0080, kOne}, {0x80C0, kOne}, {0x0000, kOne}}, 0x00000000},
      {"3*5 - 3*5 = +0", {{0x4040, 0x40A0}, {0xC040, 0x40A0}}, 0x00000000},
      {"-3*5 + 3*5 = +0", {{0xC040, 0x40A0}, {0x4040, 0x40A0}}, 0x00000000},
      {"1 + 2^-24: tie to even -> 1", {{kOne, kOne}, {0x3380, kOne}}, 0x3F800000},
      {"(1 + 2^-23) + 2^-24: tie, odd -> up", {{kOne, kOne}, {0x3400, kOne}, {0x3380, kOne}}, 0x3F800002},
      {"2^66 + 2^-64 = 2^66", {{0x6080, kOne}, {0x1F80, kOne}}, 0x60800000},
      {"1 - 2^-60 = 1", {{kOne, kOne}, {0xA180, kOne}}, 0x3F800000},
  };
  return cases;
}

// One job per case: W[k][c] = terms[k].weight for every c, X[k][n] = terms[k].moving for every n.
std::vector<MatmulJob> edge_jobs(int rows, int cols) {
  std::vector<MatmulJob> jobs;
  for (const EdgeCase& ec : edge_cases()) {
    MatmulJob j;
    j.K = static_cast<int>(ec.terms.size());
    j.M = cols;
    j.N = 3;
    EXPECT_LE(j.K, rows);
    for (int k = 0; k < j.K; ++k) {
      for (int c = 0; c < j.M; ++c) j.W.push_back(ec.terms[k].first);
      for (int n = 0; n < j.N; ++n) j.X.push_back(ec.terms[k].second);
    }
    j.label = ec.what;
    jobs.push_back(std::move(j));
  }
  return jobs;
}

class TensorEngineEdges : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST(TensorEngineEdgeCases, GoldenProducesTheIntendedClass) {
  for (const EdgeCase& ec : edge_cases()) {
    MatmulJob j = edge_jobs(8, 1)[&ec - edge_cases().data()];
    EXPECT_EQ(golden(j)[0], ec.intended) << "test construction: " << ec.what;
  }
}

TEST_P(TensorEngineEdges, MatchGolden) {
  const auto [rows, cols] = GetParam();
  auto te = make_tensor_engine(rows, cols);
  std::vector<MatmulJob> jobs = edge_jobs(rows, cols);
  Streamer(*te, 7).run(jobs);
  for (const auto& j : jobs) expect_matches_golden(j);

  // The same cases with the rows placed at the bottom of a full-K column: the rows above multiply zero
  // weights (+0 products), so the sum reaching the case's first row is +0 as at the top.
  std::vector<MatmulJob> shifted = edge_jobs(rows, cols);
  for (auto& j : shifted) {
    const int pad = rows - j.K;
    std::vector<uint16_t> w(static_cast<size_t>(pad) * j.M, 0x0000);
    std::vector<uint16_t> x(static_cast<size_t>(pad) * j.N, 0x4000);
    w.insert(w.end(), j.W.begin(), j.W.end());
    x.insert(x.end(), j.X.begin(), j.X.end());
    j.W = std::move(w);
    j.X = std::move(x);
    j.K = rows;
    j.label += " (at the bottom rows)";
  }
  Streamer(*te, 8).run(shifted);
  for (const auto& j : shifted) expect_matches_golden(j);
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorEngineEdges,
                         ::testing::Values(std::pair{8, 8}, std::pair{16, 16}, std::pair{32, 32}),
                         [](const ::testing::TestParamInfo<std::pair<int, int>>& info) {
                           return std::to_string(info.param.first) + "x" + std::to_string(info.param.second);
                         });

}  // namespace
}  // namespace tcemu::rtl::test
