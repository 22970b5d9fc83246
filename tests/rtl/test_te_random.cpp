// (a) Random matmuls on the verilated tensor engine, bit-exact against the golden model
// (tcemu::num::golden_matmul_tile). 10,000 matmuls over the 8x8, 16x16 and 32x32 engines: random K <= Rows,
// M <= Cols, N from 1 to several hundred, values from a mix of distributions (te_stream.h), streamed back
// to back with the next weights loaded during the current matmul, random bubbles between columns and
// unused rows/columns filled with NaN/inf garbage.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <vector>

#include "te_stream.h"

namespace tcemu::rtl::test {
namespace {

struct RandomCase {
  int rows;
  int cols;
  int matmuls;
  uint64_t seed;
};

void PrintTo(const RandomCase& rc, std::ostream* os) {
  *os << rc.rows << "x" << rc.cols << ", " << rc.matmuls << " matmuls, seed " << rc.seed;
}

class TensorEngineRandom : public ::testing::TestWithParam<RandomCase> {};

TEST_P(TensorEngineRandom, BitExactAgainstGolden) {
  const RandomCase rc = GetParam();
  auto te = make_tensor_engine(rc.rows, rc.cols);
  std::mt19937_64 rng(rc.seed);
  StreamOptions opt;
  opt.gap_probability = 0.05;
  opt.late_load_probability = 0.3;
  Streamer streamer(*te, rc.seed ^ 0x5EED, opt);

  constexpr int kBatch = 100;  // matmuls streamed back to back per run()
  int done = 0;
  int failed = 0;
  uint64_t cycles = 0;
  while (done < rc.matmuls) {
    std::vector<MatmulJob> jobs;
    for (int i = 0; i < kBatch && done + i < rc.matmuls; ++i) {
      jobs.push_back(random_job(rc.rows, rc.cols, rng));
      jobs.back().label = "matmul #" + std::to_string(done + i) + " (seed " + std::to_string(rc.seed) +
                          ", " + jobs.back().label + ")";
    }
    cycles += streamer.run(jobs);
    for (const auto& j : jobs) failed += expect_matches_golden(j) != 0;
    done += static_cast<int>(jobs.size());
    ASSERT_LT(failed, 5) << "stopping after 5 failing matmuls";
  }
  RecordProperty("matmuls", done);
  RecordProperty("cycles", static_cast<int>(cycles));
  EXPECT_EQ(failed, 0);
}

// 10,000 matmuls in total; fewer at the larger sizes, whose cycles cost more.
INSTANTIATE_TEST_SUITE_P(Sizes, TensorEngineRandom,
                         ::testing::Values(RandomCase{8, 8, 3000, 1}, RandomCase{8, 8, 3000, 2},
                                           RandomCase{16, 16, 1250, 3}, RandomCase{16, 16, 1250, 4},
                                           RandomCase{32, 32, 750, 5}, RandomCase{32, 32, 750, 6}),
                         [](const ::testing::TestParamInfo<RandomCase>& info) {
                           return std::to_string(info.param.rows) + "x" + std::to_string(info.param.cols) +
                                  "_seed" + std::to_string(info.param.seed);
                         });

// Every size built into tcemu_rtl (including any added with -DTCEMU_RTL_EXTRA_SIZES), a few matmuls each.
TEST(TensorEngineRandomAllSizes, FewMatmulsEach) {
  for (const auto& [rows, cols] : available_tensor_engine_sizes()) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    auto te = make_tensor_engine(rows, cols);
    std::mt19937_64 rng(1000 + rows * 1000 + cols);
    const int count = std::clamp(20000 / (rows * cols), 5, 50);
    std::vector<MatmulJob> jobs;
    for (int i = 0; i < count; ++i) jobs.push_back(random_job(rows, cols, rng));
    StreamOptions opt;
    opt.gap_probability = 0.05;
    opt.late_load_probability = 0.3;
    Streamer(*te, 77, opt).run(jobs);
    for (const auto& j : jobs) expect_matches_golden(j);
  }
}

}  // namespace
}  // namespace tcemu::rtl::test
