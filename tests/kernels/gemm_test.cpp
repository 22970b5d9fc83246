// GEMM kernel end to end (builder -> runtime -> driver -> emulated device), checked bit for bit against the
// independent golden model. The tc1-* devices run the tensor engine in lockstep: the RTL's results go to
// PSUM and the fast model is compared with it every cycle (a difference faults the job), so every kernel
// run here is also a lockstep check of the fast engine; trn1 (128 x 128) runs its default, the fast engine
// alone. One device per process: each test instance runs in its own process (gtest_discover_tests).
#include <gtest/gtest.h>

#include <random>

#include "inproc_transport.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/numerics.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace {

struct Shape {
  const char* config;
  int m, n, k;
  TensorEngineKind engine = TensorEngineKind::kLockstep;
};

std::ostream& operator<<(std::ostream& os, const Shape& s) {
  return os << s.config << "_" << s.m << "x" << s.n << "x" << s.k << "_" << tensor_engine_name(s.engine);
}

emu::DeviceOptions with_engine(TensorEngineKind kind) {
  emu::DeviceOptions o;
  o.tensor_engine = kind;
  return o;
}

struct GemmRun {
  uint64_t cycles;
  uint64_t mismatches;
  uint64_t first_bad;
};

// Runs C = A x B with the given bf16 bit patterns and compares with num::golden_gemm.
GemmRun run_and_check(rt::Runtime& runtime, const DeviceConfig& cfg, int M, int N, int K, const std::vector<uint16_t>& A,
                  const std::vector<uint16_t>& B) {
  auto lm = runtime.load(kb::build_gemm(cfg, M, N, K));
  rt::TensorMap in;
  in["a"].shape = {M, K};
  in["b"].shape = {K, N};
  for (uint16_t v : A) in["a"].data.push_back(num::bf16_to_f32(v));
  for (uint16_t v : B) in["b"].data.push_back(num::bf16_to_f32(v));
  rt::RunResult res = runtime.run(*lm, in);
  std::vector<uint32_t> C(size_t(M) * N);
  num::golden_gemm(M, N, K, cfg.rows, A.data(), B.data(), C.data());
  GemmRun r{res.cycles, 0, 0};
  const auto& out = res.outputs.at("c").data;
  for (size_t i = 0; i < C.size(); ++i) {
    if (num::f32_bits(out[i]) != C[i]) {
      if (r.mismatches++ == 0) r.first_bad = i;
    }
  }
  runtime.unload(*lm);
  return r;
}

std::vector<uint16_t> random_bf16(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<float> d(-2.0f, 2.0f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = num::f32_to_bf16(d(rng));
  return v;
}

class GemmShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmShapes, BitExactAgainstGoldenAndDeterministic) {
  const Shape s = GetParam();
  const DeviceConfig& cfg = find_config(s.config);
  drv::InProcessTransport transport(cfg, with_engine(s.engine));
  drv::Driver driver(transport);
  ASSERT_EQ(driver.info().tensor_engine, s.engine);
  rt::Runtime runtime(driver);
  std::mt19937 rng(s.m * 131 + s.n * 7 + s.k);
  auto A = random_bf16(rng, size_t(s.m) * s.k), B = random_bf16(rng, size_t(s.k) * s.n);
  GemmRun r1 = run_and_check(runtime, cfg, s.m, s.n, s.k, A, B);
  EXPECT_EQ(r1.mismatches, 0u) << "first mismatch at element " << r1.first_bad;
  // Same inputs, same device: same cycles.
  GemmRun r2 = run_and_check(runtime, cfg, s.m, s.n, s.k, A, B);
  EXPECT_EQ(r2.mismatches, 0u);
  EXPECT_EQ(r1.cycles, r2.cycles);
  // Lower bound: the array streams at most one column per cycle per matmul.
  kb::GemmPlan p = kb::plan_gemm(cfg, s.m, s.n, s.k);
  EXPECT_GE(r1.cycles, uint64_t(p.m_tiles) * p.k_tiles * s.n);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, GemmShapes,
    ::testing::Values(Shape{"tc1-8", 8, 8, 8}, Shape{"tc1-8", 1, 1, 1}, Shape{"tc1-8", 13, 7, 21},
                      Shape{"tc1-8", 64, 96, 80}, Shape{"tc1-8", 20, 600, 17}, Shape{"tc1-8", 10, 70, 2100},
                      Shape{"tc1-16", 16, 16, 16}, Shape{"tc1-16", 64, 96, 80}, Shape{"tc1-16", 33, 5, 47},
                      Shape{"tc1-16", 100, 130, 70}, Shape{"tc1-16", 17, 513, 33}, Shape{"tc1-32", 32, 32, 32},
                      Shape{"tc1-32", 64, 96, 80}, Shape{"tc1-32", 31, 33, 65}, Shape{"tc1-32", 70, 200, 100},
                      Shape{"tc1-32", 1, 700, 3}, Shape{"trn1", 256, 192, 300, TensorEngineKind::kFast}),
    [](const ::testing::TestParamInfo<Shape>& i) {
      std::string n = std::string(i.param.config) + "_" + std::to_string(i.param.m) + "x" + std::to_string(i.param.n) +
                      "x" + std::to_string(i.param.k);
      if (i.param.engine != TensorEngineKind::kLockstep) n += std::string("_") + tensor_engine_name(i.param.engine);
      for (auto& c : n)
        if (c == '-') c = '_';
      return n;
    });

// Special values through the whole path, including PSUM accumulation across K chunks: infinities,
// NaN, subnormals (read as zero), values whose products overflow or underflow, and exact cancellation.
TEST(GemmSpecial, EdgeValuesBitExactThroughPsumAccumulation) {
  const DeviceConfig& cfg = find_config("tc1-8");
  drv::InProcessTransport transport(cfg, with_engine(TensorEngineKind::kLockstep));
  drv::Driver driver(transport);
  rt::Runtime runtime(driver);
  const uint16_t specials[] = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x8040, 0x7F7F, 0xFF7F,
                               0x0080, 0x8080, 0x3F80, 0xBF80, 0x1F80, 0x6000, 0xE000};
  std::mt19937 rng(5);
  const int M = 12, N = 20, K = 29;
  std::vector<uint16_t> A(M * K), B(K * N);
  std::uniform_int_distribution<int> pick(0, 15), coin(0, 3);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (auto& x : A) x = coin(rng) == 0 ? specials[pick(rng)] : num::f32_to_bf16(d(rng));
  for (auto& x : B) x = coin(rng) == 0 ? specials[pick(rng)] : num::f32_to_bf16(d(rng));
  GemmRun r = run_and_check(runtime, cfg, M, N, K, A, B);
  EXPECT_EQ(r.mismatches, 0u) << "first mismatch at element " << r.first_bad;
}

TEST(GemmPlan, RejectsBadSizesAndReportsCapacity) {
  DeviceConfig cfg = find_config("tc1-8");
  EXPECT_THROW(kb::plan_gemm(cfg, 0, 4, 4), Error);
  cfg.sbuf_partition_bytes = 32;  // cannot hold even one k-tile of one column
  try {
    kb::plan_gemm(cfg, 8, 8, 64);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCapacity);
    EXPECT_NE(std::string(e.what()).find("does not fit tc1-8"), std::string::npos) << e.what();
  }
}

TEST(GemmPlan, LongKIsSplitIntoGroupsThatFitSbuf) {
  const DeviceConfig& cfg = find_config("tc1-8");
  kb::GemmPlan whole = kb::plan_gemm(cfg, 64, 96, 80);
  EXPECT_EQ(whole.k_groups, 1);
  kb::GemmPlan p = kb::plan_gemm(cfg, 8, 8, 65536);
  EXPECT_GT(p.k_groups, 1);
  EXPECT_EQ(p.k_tiles, 65536 / 8);
  // 2 A panels + 2 B panels + 2 out rows per partition.
  EXPECT_LE(4 * p.k_group * p.m_tile + 4 * p.k_group * p.n_tile + 8 * p.n_tile, int(cfg.sbuf_partition_bytes));
}

}  // namespace
}  // namespace tcemu
