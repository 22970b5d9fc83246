// Transpose kernel (kb::transpose) end to end on the emulated device, against the independent reference
// ref::transpose with no tolerance (a transpose moves values) and bit for bit: the VectorE route for every
// value (NaN payloads, -0, subnormals, infinities), the TensorE route for finite normal values, and the
// TensorE route's documented limits (-0 and subnormals become +0, an infinity turns the rest of its output
// row within the 128-row block into NaN). A perturbed output is caught; a kernel composed next to a tile
// that fills SBUF fails at build time naming the tile; the profiles on trn1. One device per process
// (gtest_discover_tests runs each test in its own).
#include "tcemu/kb/transpose.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>

#include "kernel_rig.h"
#include "tcemu/error.h"
#include "tcemu/ref_ops.h"
#include "tcemu/rt/profile.h"

namespace tcemu {
namespace {

using kb::TransposeRoute;
using model::DType;

struct Case {
  const char* config;
  int64_t R, C;
  DType dtype;
  TransposeRoute route = TransposeRoute::kAuto;
  int bufs = 0;
  TensorEngineKind engine = TensorEngineKind::kFast;
};

const char* route_name(const Case& c) {
  const bool tensor =
      c.route == TransposeRoute::kTensorE || (c.route == TransposeRoute::kAuto && c.dtype == DType::kBf16);
  return tensor ? "tensor" : "vector";
}

std::ostream& operator<<(std::ostream& os, const Case& c) {
  os << c.config << "_" << c.R << "x" << c.C << "_" << (c.dtype == DType::kBf16 ? "bf16" : "f32") << "_"
     << route_name(c);
  if (c.bufs) os << "_bufs" << c.bufs;
  if (c.engine != TensorEngineKind::kFast) os << "_" << tensor_engine_name(c.engine);
  return os;
}

struct TransposeRun {
  std::vector<float> x;  // as the device holds it
  rt::RunResult result;
};

TransposeRun run(testing_rig::Device& dev, const Case& c, std::vector<float> x, bool profile = false) {
  TransposeRun r;
  r.x = c.dtype == DType::kBf16 ? testing_rig::bf16_round(std::move(x)) : std::move(x);
  rt::TensorMap in;
  in["x"] = {{c.R, c.C}, r.x};
  r.result = dev.run(kb::build_transpose(find_config(c.config), c.R, c.C, c.dtype, {c.route, c.bufs}), in, profile);
  return r;
}

std::vector<float> random_x(const Case& c) {
  std::mt19937 rng(uint32_t(c.R * 1009 + c.C));
  return testing_rig::uniform(rng, size_t(c.R * c.C), -4, 4);
}

ref::Compare check(const Case& c, const std::vector<float>& x, const std::vector<float>& y) {
  const auto want = ref::transpose(c.R, c.C, x);
  const int64_t shape[] = {c.C, c.R};
  return ref::compare("y", shape, y, want, {});
}

// Elements of y whose bits differ from x's transposed (the first few, for the message).
std::string bit_mismatches(const Case& c, const std::vector<float>& x, const std::vector<float>& y) {
  std::string s;
  size_t n = 0;
  for (int64_t i = 0; i < c.C; ++i)
    for (int64_t j = 0; j < c.R; ++j) {
      const uint32_t got = std::bit_cast<uint32_t>(y[size_t(i * c.R + j)]);
      const uint32_t want = std::bit_cast<uint32_t>(x[size_t(j * c.C + i)]);
      if (got != want && n++ < 4)
        s += fmt::format("y[{}][{}] = {:#010x}, x[{}][{}] = {:#010x}; ", i, j, got, j, i, want);
    }
  return n ? fmt::format("{} bit mismatches: {}", n, s) : "";
}

class Transpose : public ::testing::TestWithParam<Case> {};

TEST_P(Transpose, MatchesTheReferenceBitForBit) {
  const Case& c = GetParam();
  testing_rig::Device dev(find_config(c.config), c.engine);
  const TransposeRun r = run(dev, c, random_x(c));
  const auto& y = r.result.outputs.at("y").data;
  ASSERT_EQ(y.size(), size_t(c.R * c.C));
  const ref::Compare ok = check(c, r.x, y);
  EXPECT_EQ(ok.checked, y.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  EXPECT_EQ(bit_mismatches(c, r.x, y), "");
  std::printf("%s: %llu cycles\n", ::testing::PrintToString(c).c_str(), (unsigned long long)r.result.cycles);
  // The check can fail: one element one ulp off is caught.
  std::vector<float> bad = y;
  bad[bad.size() / 3] = std::nextafter(bad[bad.size() / 3], INFINITY);
  EXPECT_EQ(check(c, r.x, bad).mismatches, 1u);
}

// Shapes: several tiles in both directions, sizes not multiples of 128 or 32 (partial blocks), a single row
// and a single column, both routes for bf16, one and two buffers; tc1-16 with the tensor engine in lockstep
// (the RTL runs the TensorE route's pe_transposes).
INSTANTIATE_TEST_SUITE_P(
    Shapes, Transpose,
    ::testing::Values(Case{"trn1", 1024, 1024, DType::kF32}, Case{"trn1", 1024, 1024, DType::kBf16},
                      Case{"trn1", 1024, 1024, DType::kBf16, TransposeRoute::kVectorE},
                      Case{"trn1", 1000, 333, DType::kBf16}, Case{"trn1", 333, 1000, DType::kF32},
                      Case{"trn1", 5, 7, DType::kF32}, Case{"trn1", 1, 300, DType::kBf16},
                      Case{"trn1", 300, 1, DType::kF32},
                      Case{"trn1", 129, 2000, DType::kBf16, TransposeRoute::kVectorE, 1},
                      Case{"trn1", 517, 130, DType::kBf16, TransposeRoute::kTensorE, 2},
                      Case{"trn1", 2100, 40, DType::kF32, TransposeRoute::kVectorE, 2},
                      Case{"tc1-16", 70, 50, DType::kBf16, TransposeRoute::kTensorE, 0, TensorEngineKind::kLockstep},
                      Case{"tc1-16", 40, 33, DType::kF32, TransposeRoute::kVectorE, 0, TensorEngineKind::kLockstep}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string s = ::testing::PrintToString(i.param);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

// Special values: x with -0, subnormals, infinities and NaNs (f32: with payloads) spread over the tensor.
std::vector<float> special_x(const Case& c) {
  auto x = random_x(c);
  const float specials[] = {-0.0f,
                            std::bit_cast<float>(0x00000001u),  // f32 subnormals
                            std::bit_cast<float>(0x80400000u),
                            0x1p-130f,  // a bf16 subnormal too
                            INFINITY,
                            -INFINITY,
                            std::bit_cast<float>(0x7FE12345u),  // quiet NaNs with payloads, both signs
                            std::bit_cast<float>(0xFFC00001u)};
  for (size_t i = 0; i < x.size(); i += 13) x[i] = specials[(i / 13) % 8];
  return x;
}

// The VectorE route moves bits: every special value comes through (bf16 inputs hold what rounding to bf16
// gives: canonical NaN, the subnormal 2^-130).
TEST(TransposeSpecialValues, VectorRouteIsBitExactForEveryValue) {
  testing_rig::Device dev(find_config("trn1"));
  for (DType t : {DType::kF32, DType::kBf16}) {
    const Case c{"trn1", 300, 170, t, TransposeRoute::kVectorE};
    const TransposeRun r = run(dev, c, special_x(c));
    EXPECT_EQ(bit_mismatches(c, r.x, r.result.outputs.at("y").data), "") << c;
  }
}

// The TensorE route multiplies by an identity (docs/numerics.md, "pe_transpose"): -0 and subnormals come out
// +0, an infinity comes through at its place and makes the rest of its output row NaN within the 128 x 128
// block (the 128 rows of x the block holds), every other value exactly.
TEST(TransposeSpecialValues, TensorRouteFollowsThePeTransposeRules) {
  testing_rig::Device dev(find_config("trn1"));
  const Case c{"trn1", 256, 128, DType::kBf16, TransposeRoute::kTensorE};
  std::vector<float> x = random_x(c);
  x[3 * 128 + 5] = -0.0f;       // x[3][5]
  x[4 * 128 + 6] = 0x1p-130f;   // x[4][6], a bf16 subnormal
  x[200 * 128 + 7] = INFINITY;  // x[200][7]: block rows 128..255
  const TransposeRun r = run(dev, c, x);
  const auto& y = r.result.outputs.at("y").data;  // [128][256]
  auto at = [&](int i, int j) { return y[size_t(i) * 256 + size_t(j)]; };
  EXPECT_EQ(std::bit_cast<uint32_t>(at(5, 3)), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(at(6, 4)), 0u);
  EXPECT_EQ(at(7, 200), INFINITY);
  for (int j = 128; j < 256; ++j)
    if (j != 200) EXPECT_TRUE(std::isnan(at(7, j))) << j;
  for (int j = 0; j < 128; ++j) EXPECT_EQ(at(7, j), r.x[size_t(j) * 128 + 7]) << j;  // the other block
  size_t exact = 0;
  for (int i = 0; i < 128; ++i)
    for (int j = 0; j < 256; ++j)
      if (!(i == 5 && j == 3) && !(i == 6 && j == 4) && i != 7)
        exact += std::bit_cast<uint32_t>(at(i, j)) == std::bit_cast<uint32_t>(r.x[size_t(j) * 128 + size_t(i)]);
  EXPECT_EQ(exact, size_t(127 * 256 - 2));
}

TEST(TransposeBuild, NoRoomNextToLiveTilesFailsNamingTheTileAndArgumentsAreChecked) {
  kb::Kernel k(find_config("trn1"), "composed");
  const auto x = k.input("x", DType::kF32, {1024, 1024});
  const auto y = k.output("y", DType::kF32, {1024, 1024});
  k.sbuf("hog", isa::DType::kF32, 128, 48500);  // 194,000 of 196,608 B per partition
  {
    // tiles of 1024 f32 per partition
    const std::string w = testing_rig::error_of([&] { kb::transpose(k, x, y); }, ErrorCode::kCapacity);
    EXPECT_NE(w.find("SBUF tile 'transpose.tile'"), std::string::npos) << w;
    EXPECT_NE(w.find("4096 B per partition"), std::string::npos) << w;
    EXPECT_NE(w.find("'hog' 194000 B"), std::string::npos) << w;
  }
  const auto yb = k.output("yb", DType::kBf16, {1024, 1024});
  const auto z = k.output("z", DType::kF32, {1024, 1000});
  EXPECT_THROW(kb::transpose(k, x, yb), Error);                             // dtypes differ
  EXPECT_THROW(kb::transpose(k, x, z), Error);                              // not [C, R]
  EXPECT_THROW(kb::transpose(k, x, y, {TransposeRoute::kTensorE}), Error);  // f32 through pe_transpose
}

// The representative shapes' profiles (docs/kernels.md, "Transpose").
void profile(const Case& c) {
  testing_rig::Device dev(find_config(c.config));
  const TransposeRun r = run(dev, c, random_x(c), true);
  EXPECT_EQ(check(c, r.x, r.result.outputs.at("y").data).mismatches, 0u);
  const rt::Summary s = rt::summarize(*r.result.profile);
  std::printf("%s", rt::format_summary(s).c_str());
  EXPECT_EQ(s.info.hbm_bytes, uint64_t(c.R * c.C) * (c.dtype == DType::kBf16 ? 4 : 8));
}
TEST(TransposeProfile, Trn1F32VectorRoute) { profile({"trn1", 1024, 1024, DType::kF32}); }
TEST(TransposeProfile, Trn1Bf16TensorRoute) { profile({"trn1", 1024, 1024, DType::kBf16}); }
TEST(TransposeProfile, Trn1Bf16VectorRoute) { profile({"trn1", 1024, 1024, DType::kBf16, TransposeRoute::kVectorE}); }

}  // namespace
}  // namespace tcemu
