// Elementwise kernels (kb::elementwise_unary / elementwise_binary) end to end on the emulated device:
// unary against the independent fp64 reference ref::elementwise within the function's documented ScalarE
// accuracy, binary against fp64 arithmetic on the inputs; every activation function and every ALU operation
// once; a perturbed output is caught; a kernel composed next to a tile that fills SBUF fails at build time
// naming the tile; the profiles on trn1. One device per process (gtest_discover_tests runs each test in its
// own; a test may run several models on its device).
//
// Tolerances (docs/numerics.md):
//  - unary: the activation computes f(x * 1) with x * 1 exact, so the device result must be within f's
//    documented tolerance of f(x) in fp64 (ref::activation_tolerance: "n ulp + a"); identity, relu,
//    reciprocal and square are bit-exact: the fp64 value rounded to fp32.
//  - binary: add, sub, mul and div are one IEEE fp32 operation rounded to nearest: |y - exact| <= 2^-24 |exact|
//    for a normal result, plus 2^-126 for a result flushed to zero; max, min and the comparisons are exact.
#include "tcemu/kb/elementwise.h"

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

using isa::ActFunc;
using isa::AluOp;
using model::DType;

const char* dname(DType t) { return t == DType::kBf16 ? "bf16" : "f32"; }

// Inputs in each function's useful domain: positive for rsqrt and log, else around zero where the functions
// bend (and far enough out to reach their tails).
std::vector<float> unary_input(std::mt19937& rng, ActFunc f, size_t n, DType t) {
  const bool positive = f == ActFunc::kRsqrt || f == ActFunc::kLog;
  auto x = positive ? testing_rig::uniform(rng, n, 0.01f, 20) : testing_rig::uniform(rng, n, -8, 8);
  return t == DType::kBf16 ? testing_rig::bf16_round(x) : x;
}

// out_u: the unit roundoff of a final rounding of y (2^-8 for a bf16 y).
ref::Compare check_unary(ActFunc f, int64_t R, int64_t C, const std::vector<float>& x, const std::vector<float>& y,
                         double out_u = 0) {
  const auto want = ref::elementwise(f, x);
  const ref::Tolerance tol = ref::activation_tolerance(f);
  const int64_t shape[] = {R, C};
  // Bit-exact functions: the fp64 value rounded once to fp32 (for reciprocal, 1/x rounded to fp64 and then to
  // fp32 is the correctly rounded 1/x: 53 >= 2 * 24 + 2), so allow exactly the distance to it.
  return ref::compare("y", shape, y, want, [&](size_t, double w) {
    const double a = tol.ulps ? tol.allowed(w) : std::fabs(double(float(w)) - w);
    return a + out_u * (std::fabs(w) + a);
  });
}

double binary_exact(AluOp op, double a, double b) {
  switch (op) {
    case AluOp::kAdd:
      return a + b;
    case AluOp::kSub:
      return a - b;
    case AluOp::kMul:
      return a * b;
    case AluOp::kDiv:
      return a / b;
    case AluOp::kMax:
      return std::max(a, b);
    case AluOp::kMin:
      return std::min(a, b);
    case AluOp::kIsEqual:
      return a == b;
    case AluOp::kIsLt:
      return a < b;
    case AluOp::kIsLe:
      return a <= b;
    case AluOp::kIsGt:
      return a > b;
    case AluOp::kIsGe:
      return a >= b;
    default:
      ADD_FAILURE() << "op " << int(op);
      return 0;
  }
}

ref::Compare check_binary(AluOp op, int64_t R, int64_t C, const std::vector<float>& a, const std::vector<float>& b,
                          const std::vector<float>& y) {
  std::vector<double> want(a.size());
  for (size_t i = 0; i < a.size(); ++i) want[i] = binary_exact(op, a[i], b[i]);
  const bool rounded = op == AluOp::kAdd || op == AluOp::kSub || op == AluOp::kMul || op == AluOp::kDiv;
  const int64_t shape[] = {R, C};
  return ref::compare("y", shape, y, want,
                      [&](size_t, double w) { return rounded ? 0x1p-24 * std::fabs(w) + 0x1p-126 : 0.0; });
}

struct Unary {
  const char* config;
  ActFunc f;
  int64_t R, C;
  DType dtype = DType::kF32;
  int bufs = 0;
  TensorEngineKind engine = TensorEngineKind::kFast;
};
std::ostream& operator<<(std::ostream& os, const Unary& c) {
  os << c.config << "_" << isa::act_func_name(uint64_t(c.f)) << "_" << c.R << "x" << c.C << "_" << dname(c.dtype);
  if (c.bufs) os << "_bufs" << c.bufs;
  if (c.engine != TensorEngineKind::kFast) os << "_" << tensor_engine_name(c.engine);
  return os;
}

struct UnaryRun {
  std::vector<float> x;
  rt::RunResult result;
};
UnaryRun run_unary(testing_rig::Device& dev, const Unary& c, bool profile = false) {
  std::mt19937 rng(uint32_t(c.R * 131 + c.C + int(c.f)));
  UnaryRun r;
  r.x = unary_input(rng, c.f, size_t(c.R * c.C), c.dtype);
  rt::TensorMap in;
  in["x"] = {{c.R, c.C}, r.x};
  r.result = dev.run(kb::build_elementwise_unary(find_config(c.config), c.R, c.C, c.dtype, {c.f, c.bufs}), in, profile);
  return r;
}

class ElementwiseUnary : public ::testing::TestWithParam<Unary> {};

TEST_P(ElementwiseUnary, MatchesTheReference) {
  const Unary& c = GetParam();
  testing_rig::Device dev(find_config(c.config), c.engine);
  const UnaryRun r = run_unary(dev, c);
  const auto& y = r.result.outputs.at("y").data;
  ASSERT_EQ(y.size(), size_t(c.R * c.C));
  const ref::Compare ok = check_unary(c.f, c.R, c.C, r.x, y);
  EXPECT_EQ(ok.checked, y.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  std::printf("%s: %llu cycles, worst error %.3g of the tolerance\n", ::testing::PrintToString(c).c_str(),
              (unsigned long long)r.result.cycles, ok.worst);
  // The check can fail: the last element off by 1e-4 (1 + |y|) is caught (tolerances are at most 8 ulp ~ 1e-6
  // relative plus 2^-24).
  std::vector<float> bad = y;
  bad.back() += 1e-4f * (1 + std::fabs(bad.back()));
  EXPECT_EQ(check_unary(c.f, c.R, c.C, r.x, bad).mismatches, 1u);
}

// Shapes: several chunks, element counts not a multiple of 128 (a last partition with a remainder), a
// tensor of three columns and one of one row (both spread over every partition), one element, bf16 inputs,
// one and two buffers; tc1-16 with the tensor engine in lockstep.
INSTANTIATE_TEST_SUITE_P(
    Shapes, ElementwiseUnary,
    ::testing::Values(Unary{"trn1", ActFunc::kGeluTanh, 1024, 1024},
                      Unary{"trn1", ActFunc::kExp, 1000, 333, DType::kBf16}, Unary{"trn1", ActFunc::kSilu, 4099, 3},
                      Unary{"trn1", ActFunc::kTanh, 1, 300001}, Unary{"trn1", ActFunc::kRsqrt, 1, 1},
                      Unary{"trn1", ActFunc::kRelu, 777, 129, DType::kF32, 1},
                      Unary{"trn1", ActFunc::kSigmoid, 513, 1000, DType::kBf16, 2},
                      Unary{"tc1-16", ActFunc::kGeluErf, 70, 33, DType::kF32, 0, TensorEngineKind::kLockstep}),
    [](const ::testing::TestParamInfo<Unary>& i) {
      std::string s = ::testing::PrintToString(i.param);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

// Every ScalarE function, on one device.
TEST(ElementwiseUnaryFunctions, EveryFunctionMatchesTheReference) {
  testing_rig::Device dev(find_config("trn1"));
  for (uint64_t code = 0; isa::act_func_name(code); ++code) {
    const Unary c{"trn1", ActFunc(code), 130, 77, code % 2 ? DType::kBf16 : DType::kF32};
    const UnaryRun r = run_unary(dev, c);
    const ref::Compare ok = check_unary(c.f, c.R, c.C, r.x, r.result.outputs.at("y").data);
    EXPECT_EQ(ok.mismatches, 0u) << c << ": " << ok.first_bad;
  }
}

struct Binary {
  const char* config;
  AluOp op;
  int64_t R, C;
  DType a = DType::kF32, b = DType::kF32;
  TensorEngineKind engine = TensorEngineKind::kFast;
};
std::ostream& operator<<(std::ostream& os, const Binary& c) {
  os << c.config << "_" << isa::alu_op_name(uint64_t(c.op)) << "_" << c.R << "x" << c.C << "_" << dname(c.a) << "_"
     << dname(c.b);
  if (c.engine != TensorEngineKind::kFast) os << "_" << tensor_engine_name(c.engine);
  return os;
}

struct BinaryRun {
  std::vector<float> a, b;
  rt::RunResult result;
};
BinaryRun run_binary(testing_rig::Device& dev, const Binary& c, bool profile = false) {
  std::mt19937 rng(uint32_t(c.R * 17 + c.C + int(c.op)));
  BinaryRun r;
  const size_t n = size_t(c.R * c.C);
  r.a = testing_rig::uniform(rng, n, -10, 10);
  r.b = testing_rig::uniform(rng, n, -10, 10);
  // Some equal pairs (comparisons, max/min of equal values, x - x = +0).
  for (size_t i = 0; i < n; i += 7) r.b[i] = r.a[i];
  if (c.a == DType::kBf16) r.a = testing_rig::bf16_round(r.a);
  if (c.b == DType::kBf16) r.b = testing_rig::bf16_round(r.b);
  rt::TensorMap in;
  in["a"] = {{c.R, c.C}, r.a};
  in["b"] = {{c.R, c.C}, r.b};
  r.result = dev.run(kb::build_elementwise_binary(find_config(c.config), c.R, c.C, c.a, c.b, {c.op}), in, profile);
  return r;
}

class ElementwiseBinary : public ::testing::TestWithParam<Binary> {};

TEST_P(ElementwiseBinary, MatchesTheReference) {
  const Binary& c = GetParam();
  testing_rig::Device dev(find_config(c.config), c.engine);
  const BinaryRun r = run_binary(dev, c);
  const auto& y = r.result.outputs.at("y").data;
  ASSERT_EQ(y.size(), size_t(c.R * c.C));
  const ref::Compare ok = check_binary(c.op, c.R, c.C, r.a, r.b, y);
  EXPECT_EQ(ok.checked, y.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  std::printf("%s: %llu cycles, worst error %.3g of the tolerance\n", ::testing::PrintToString(c).c_str(),
              (unsigned long long)r.result.cycles, ok.worst);
  // The check can fail: the first element off by 1e-6 relative (twice the rounding bound) is caught.
  std::vector<float> bad = y;
  bad[0] = bad[0] == 0 ? 1e-30f : bad[0] * (1 + 1e-6f);
  EXPECT_EQ(check_binary(c.op, c.R, c.C, r.a, r.b, bad).mismatches, 1u);
}

// Shapes: the four required operations on several chunks, remainders, mixed and bf16 dtypes, a single row
// and a single element; tc1-16 with the tensor engine in lockstep.
INSTANTIATE_TEST_SUITE_P(
    Shapes, ElementwiseBinary,
    ::testing::Values(Binary{"trn1", AluOp::kAdd, 1024, 1024}, Binary{"trn1", AluOp::kSub, 1000, 333, DType::kBf16},
                      Binary{"trn1", AluOp::kMul, 3, 70001, DType::kBf16, DType::kBf16},
                      Binary{"trn1", AluOp::kMax, 129, 77, DType::kF32, DType::kBf16},
                      Binary{"trn1", AluOp::kDiv, 1, 1}, Binary{"trn1", AluOp::kMin, 2048, 515},
                      Binary{"tc1-16", AluOp::kMul, 41, 23, DType::kF32, DType::kF32, TensorEngineKind::kLockstep}),
    [](const ::testing::TestParamInfo<Binary>& i) {
      std::string s = ::testing::PrintToString(i.param);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

// Every tensor_tensor operation, on one device.
TEST(ElementwiseBinaryOps, EveryOperationMatchesTheReference) {
  testing_rig::Device dev(find_config("trn1"));
  for (uint64_t code = 1; isa::alu_op_name(code); ++code) {
    const Binary c{"trn1", AluOp(code), 100, 41, code % 2 ? DType::kBf16 : DType::kF32};
    const BinaryRun r = run_binary(dev, c);
    const ref::Compare ok = check_binary(c.op, c.R, c.C, r.a, r.b, r.result.outputs.at("y").data);
    EXPECT_EQ(ok.mismatches, 0u) << c << ": " << ok.first_bad;
  }
}

// Composed into a kernel with a bf16 y: the store rounds the f32 result once more, to 8 significant bits.
TEST(ElementwiseComposed, Bf16OutputRoundsOnce) {
  const DeviceConfig& cfg = find_config("trn1");
  kb::Kernel k(cfg, "silu_bf16_out");
  const auto x = k.input("x", DType::kF32, {300, 200});
  const auto y = k.output("y", DType::kBf16, {300, 200});
  kb::elementwise_unary(k, x, y, {ActFunc::kSilu});
  testing_rig::Device dev(cfg);
  std::mt19937 rng(5);
  const auto xv = unary_input(rng, ActFunc::kSilu, 300 * 200, DType::kF32);
  rt::TensorMap in;
  in["x"] = {{300, 200}, xv};
  const auto out = dev.run(k.finish(), in).outputs.at("y").data;
  const ref::Compare ok = check_unary(ActFunc::kSilu, 300, 200, xv, out, 0x1p-8);
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  EXPECT_GT(ok.worst, 0.1);  // the bf16 rounding is there
}

TEST(ElementwiseBuild, NoRoomNextToLiveTilesFailsNamingTheTileAndArgumentsAreChecked) {
  kb::Kernel k(find_config("trn1"), "composed");
  const auto x = k.input("x", DType::kF32, {1024, 1024});
  const auto y = k.output("y", DType::kF32, {1024, 1024});
  k.sbuf("hog", isa::DType::kF32, 128, 48500);  // 194,000 of 196,608 B per partition
  {
    // a chunk of 1024 f32 per partition
    const std::string w =
        testing_rig::error_of([&] { kb::elementwise_unary(k, x, y, {ActFunc::kExp}); }, ErrorCode::kCapacity);
    EXPECT_NE(w.find("SBUF tile 'unary.x'"), std::string::npos) << w;
    EXPECT_NE(w.find("4096 B per partition"), std::string::npos) << w;
    EXPECT_NE(w.find("'hog' 194000 B"), std::string::npos) << w;
  }
  const auto z = k.output("z", DType::kF32, {1024, 1023});
  EXPECT_THROW(kb::elementwise_unary(k, x, z), Error);
  EXPECT_THROW(kb::elementwise_binary(k, x, y, y, {AluOp::kBypass}), Error);
}

// The representative shapes' profiles: HBM is the bound (docs/kernels.md, "Elementwise").
TEST(ElementwiseProfile, Trn1UnaryIsBoundByHbm) {
  testing_rig::Device dev(find_config("trn1"));
  const Unary c{"trn1", ActFunc::kGeluTanh, 1024, 1024};
  const UnaryRun r = run_unary(dev, c, true);
  EXPECT_EQ(check_unary(c.f, c.R, c.C, r.x, r.result.outputs.at("y").data).mismatches, 0u);
  const rt::Summary s = rt::summarize(*r.result.profile);
  std::printf("%s", rt::format_summary(s).c_str());
  EXPECT_EQ(s.info.hbm_bytes, uint64_t(c.R * c.C) * 8);
  EXPECT_GT(s.hbm_bytes_per_cycle, 0.85 * s.info.hbm_bytes_per_cycle);
}

TEST(ElementwiseProfile, Trn1BinaryIsBoundByHbm) {
  testing_rig::Device dev(find_config("trn1"));
  const Binary c{"trn1", AluOp::kAdd, 1024, 1024};
  const BinaryRun r = run_binary(dev, c, true);
  EXPECT_EQ(check_binary(c.op, c.R, c.C, r.a, r.b, r.result.outputs.at("y").data).mismatches, 0u);
  const rt::Summary s = rt::summarize(*r.result.profile);
  std::printf("%s", rt::format_summary(s).c_str());
  EXPECT_EQ(s.info.hbm_bytes, uint64_t(c.R * c.C) * 12);
  EXPECT_GT(s.hbm_bytes_per_cycle, 0.85 * s.info.hbm_bytes_per_cycle);
}

}  // namespace
}  // namespace tcemu
