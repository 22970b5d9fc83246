// GEMM kernel end to end (builder -> runtime -> driver -> emulated device), checked bit for bit against the
// independent golden model. The tc1-* devices run the tensor engine in lockstep: the RTL's results go to
// PSUM and the fast model is compared with it every cycle (a difference faults the job), so every kernel
// run here is also a lockstep check of the fast engine; trn1 (128 x 128) runs its default, the fast engine
// alone. One device per process: each test instance runs in its own process (gtest_discover_tests).
#include "tcemu/kb/gemm.h"

#include <gtest/gtest.h>

#include <random>

#include "inproc_transport.h"
#include "kernel_rig.h"
#include "tcemu/error.h"
#include "tcemu/numerics.h"
#include "tcemu/ref_ops.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace {

struct Shape {
  const char* config;
  int m, n, k;
  TensorEngineKind engine = TensorEngineKind::kLockstep;
  bool a_transposed = false;
};

std::ostream& operator<<(std::ostream& os, const Shape& s) {
  return os << s.config << "_" << s.m << "x" << s.n << "x" << s.k << "_" << tensor_engine_name(s.engine)
            << (s.a_transposed ? "_aT" : "");
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
  uint64_t fp64_mismatches = 0;  // against fp64 (finite inputs only)
  std::string fp64_first_bad;
};

// Runs C = A x B with the given bf16 bit patterns and compares with num::golden_gemm.
// With `a_transposed` the kernel takes aT [K, M]; the golden model still gets A row-major.
GemmRun run_and_check(rt::Runtime& runtime, const DeviceConfig& cfg, int M, int N, int K,
                      const std::vector<uint16_t>& A, const std::vector<uint16_t>& B, bool a_transposed = false,
                      bool fp64 = true) {
  kb::GemmOptions o;
  o.a_transposed = a_transposed;
  auto lm = runtime.load(kb::build_gemm(cfg, M, N, K, o));
  rt::TensorMap in;
  in["b"].shape = {K, N};
  if (a_transposed) {
    auto& t = in["aT"];
    t.shape = {K, M};
    t.data.resize(size_t(M) * K);
    for (int i = 0; i < M; ++i)
      for (int k = 0; k < K; ++k) t.data[size_t(k) * M + i] = num::bf16_to_f32(A[size_t(i) * K + k]);
  } else {
    in["a"].shape = {M, K};
    for (uint16_t v : A) in["a"].data.push_back(num::bf16_to_f32(v));
  }
  for (uint16_t v : B) in["b"].data.push_back(num::bf16_to_f32(v));
  rt::RunResult res = runtime.run(*lm, in);
  std::vector<uint32_t> C(size_t(M) * N);
  num::golden_gemm(M, N, K, cfg.rows, A.data(), B.data(), C.data());
  GemmRun r{res.cycles, 0, 0};
  const std::vector<float> out = res.outputs.at("c").data;
  for (size_t i = 0; i < C.size(); ++i) {
    if (num::f32_bits(out[i]) != C[i]) {
      if (r.mismatches++ == 0) r.first_bad = i;
    }
  }
  runtime.unload(*lm);
  if (fp64) {
    // And against fp64 (ref::gemm): the bf16 products are exact in fp32, so the error is the fp32 sums',
    // at most (K + chunks) 2^-24 sum |a b| (K - 1 additions in the array's columns, one PSUM add per chunk).
    std::vector<float> a(A.size()), b(B.size());
    for (size_t i = 0; i < A.size(); ++i) a[i] = num::bf16_to_f32(A[i]);
    for (size_t i = 0; i < B.size(); ++i) b[i] = num::bf16_to_f32(B[i]);
    const auto want = ref::gemm(M, N, K, a, b), mag = ref::gemm_abs(M, N, K, a, b);
    const double per = (K + std::ceil(double(K) / cfg.rows)) * std::ldexp(1.0, -24);
    const std::vector<int64_t> shape = {M, N};
    const ref::Compare c = ref::compare("c", shape, out, want, [&](size_t i, double) { return per * mag[i]; });
    r.fp64_mismatches = c.mismatches, r.fp64_first_bad = c.first_bad;
  }
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
  GemmRun r1 = run_and_check(runtime, cfg, s.m, s.n, s.k, A, B, s.a_transposed);
  EXPECT_EQ(r1.mismatches, 0u) << "first mismatch at element " << r1.first_bad;
  EXPECT_EQ(r1.fp64_mismatches, 0u) << r1.fp64_first_bad;
  // Same inputs, same device: same cycles.
  GemmRun r2 = run_and_check(runtime, cfg, s.m, s.n, s.k, A, B, s.a_transposed);
  EXPECT_EQ(r2.mismatches, 0u);
  EXPECT_EQ(r1.cycles, r2.cycles);
  // Lower bound: the array streams at most one column per cycle per matmul.
  const uint64_t m_tiles = (s.m + cfg.cols - 1) / cfg.cols, k_tiles = (s.k + cfg.rows - 1) / cfg.rows;
  EXPECT_GE(r1.cycles, m_tiles * k_tiles * s.n);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, GemmShapes,
    ::testing::Values(Shape{"tc1-8", 8, 8, 8}, Shape{"tc1-8", 1, 1, 1}, Shape{"tc1-8", 13, 7, 21},
                      Shape{"tc1-8", 64, 96, 80}, Shape{"tc1-8", 20, 600, 17}, Shape{"tc1-8", 10, 70, 2100},
                      Shape{"tc1-8", 24, 40, 1000, TensorEngineKind::kLockstep, true}, Shape{"tc1-16", 16, 16, 16},
                      Shape{"tc1-16", 64, 96, 80}, Shape{"tc1-16", 33, 5, 47}, Shape{"tc1-16", 100, 130, 70},
                      Shape{"tc1-16", 17, 513, 33}, Shape{"tc1-16", 33, 70, 47, TensorEngineKind::kLockstep, true},
                      Shape{"tc1-32", 32, 32, 32}, Shape{"tc1-32", 64, 96, 80}, Shape{"tc1-32", 31, 33, 65},
                      Shape{"tc1-32", 70, 200, 100}, Shape{"tc1-32", 1, 700, 3},
                      Shape{"trn1", 256, 192, 300, TensorEngineKind::kFast},
                      Shape{"trn1", 300, 700, 260, TensorEngineKind::kFast, true},
                      Shape{"trn1", 129, 1100, 385, TensorEngineKind::kFast},
                      Shape{"trn1", 1, 513, 129, TensorEngineKind::kFast, true}),
    [](const ::testing::TestParamInfo<Shape>& i) {
      std::string n = std::string(i.param.config) + "_" + std::to_string(i.param.m) + "x" + std::to_string(i.param.n) +
                      "x" + std::to_string(i.param.k);
      if (i.param.engine != TensorEngineKind::kLockstep) n += std::string("_") + tensor_engine_name(i.param.engine);
      if (i.param.a_transposed) n += "_aT";
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
  const uint16_t specials[] = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x8040, 0x7F7F,
                               0xFF7F, 0x0080, 0x8080, 0x3F80, 0xBF80, 0x1F80, 0x6000, 0xE000};
  std::mt19937 rng(5);
  const int M = 12, N = 20, K = 29;
  std::vector<uint16_t> A(M * K), B(K * N);
  std::uniform_int_distribution<int> pick(0, 15), coin(0, 3);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (auto& x : A) x = coin(rng) == 0 ? specials[pick(rng)] : num::f32_to_bf16(d(rng));
  for (auto& x : B) x = coin(rng) == 0 ? specials[pick(rng)] : num::f32_to_bf16(d(rng));
  GemmRun r = run_and_check(runtime, cfg, M, N, K, A, B, false, false);  // inf/NaN: golden only
  EXPECT_EQ(r.mismatches, 0u) << "first mismatch at element " << r.first_bad;
}

// fp32 operands (six bf16 passes per matmul, docs/isa.md): compared with fp64 within the documented bound
// of docs/numerics.md, "fp32 matmul": per matmul (k + 8) 2^-24 (sum |w x| + |PSUM before|); over the
// ceil(K / rows) chunks accumulated in PSUM that adds up to at most (K + 8 chunks + chunks) 2^-24 sum|a b|.
struct F32Case {
  const char* config;
  int m, n, k;
  bool a_transposed;
};
class GemmF32 : public ::testing::TestWithParam<F32Case> {};

TEST_P(GemmF32, WithinTheFp32BoundOfFp64) {
  const F32Case c = GetParam();
  const DeviceConfig& cfg = find_config(c.config);
  drv::InProcessTransport transport(cfg);
  drv::Driver driver(transport);
  rt::Runtime runtime(driver);
  kb::GemmOptions o;
  o.a_transposed = c.a_transposed;
  o.compute = isa::DType::kF32;
  o.in_dtype = model::DType::kF32;
  auto lm = runtime.load(kb::build_gemm(cfg, c.m, c.n, c.k, o));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> a(size_t(c.m) * c.k), b(size_t(c.k) * c.n);
  for (auto& x : a) x = d(rng);
  for (auto& x : b) x = d(rng);
  rt::TensorMap in;
  in["b"] = {{c.k, c.n}, b};
  if (c.a_transposed) {
    std::vector<float> aT(a.size());
    for (int i = 0; i < c.m; ++i)
      for (int k = 0; k < c.k; ++k) aT[size_t(k) * c.m + i] = a[size_t(i) * c.k + k];
    in["aT"] = {{c.k, c.m}, aT};
  } else {
    in["a"] = {{c.m, c.k}, a};
  }
  auto r = runtime.run(*lm, in);
  const auto want = ref::gemm(c.m, c.n, c.k, a, b), mag = ref::gemm_abs(c.m, c.n, c.k, a, b);
  const double chunks = std::ceil(double(c.k) / cfg.rows);
  const double per = (c.k + 9 * chunks) * std::ldexp(1.0, -24);
  const std::vector<int64_t> shape = {c.m, c.n};
  auto allowed = [&](size_t i, double) { return per * mag[i]; };
  const auto& got = r.outputs.at("c").data;
  ref::Compare cmp = ref::compare("c", shape, got, want, allowed);
  EXPECT_EQ(cmp.checked, got.size());
  EXPECT_EQ(cmp.mismatches, 0u) << cmp.first_bad;
  // The check can fail: one element moved by twice its allowance is caught.
  std::vector<float> bad = got;
  const size_t at = bad.size() / 3;
  bad[at] = float(want[at] + 2 * allowed(at, want[at]) + 1e-30);
  EXPECT_EQ(ref::compare("c", shape, bad, want, allowed).mismatches, 1u);
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmF32,
                         ::testing::Values(F32Case{"tc1-16", 40, 50, 70, false}, F32Case{"tc1-16", 17, 33, 16, true},
                                           F32Case{"trn1", 200, 300, 400, true}, F32Case{"trn1", 130, 520, 129, false},
                                           F32Case{"trn1", 64, 64, 1000, true}),
                         [](const ::testing::TestParamInfo<F32Case>& i) {
                           std::string n = std::string(i.param.config) + "_" + std::to_string(i.param.m) + "x" +
                                           std::to_string(i.param.n) + "x" + std::to_string(i.param.k) +
                                           (i.param.a_transposed ? "_aT" : "");
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(GemmBuild, RejectsBadShapesAndNamesTheTileThatDoesNotFit) {
  const DeviceConfig& cfg = find_config("tc1-8");
  EXPECT_THROW(kb::build_gemm(cfg, 0, 4, 4), Error);
  kb::Kernel k(cfg, "crowded");
  auto a = k.input("a", model::DType::kBf16, {8, 16});
  auto b = k.input("b", model::DType::kBf16, {16, 8});
  auto c = k.output("c", model::DType::kF32, {8, 8});
  auto c_bad = k.output("c_bad", model::DType::kF32, {8, 9});
  try {
    kb::gemm(k, a, b, c_bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c [8, 9] does not match a x b"), std::string::npos) << e.what();
  }
  // Another tile holds all but 16 bytes of every partition: the GEMM's first tile cannot fit.
  k.sbuf("hog", isa::DType::kF32, 8, (cfg.sbuf_partition_bytes - 16) / 4);
  {
    const std::string w = testing_rig::error_of([&] { kb::gemm(k, a, b, c); }, ErrorCode::kCapacity);
    EXPECT_NE(w.find("SBUF tile 'aT_block[0]' (8 partitions x 16 B per partition) does not fit"), std::string::npos)
        << w;
    EXPECT_NE(w.find("'hog' 16368 B"), std::string::npos) << w;
  }
}

}  // namespace
}  // namespace tcemu
