// conv2d kernel (kb::conv2d / kb::build_conv2d) end to end on the emulated device against the independent
// fp64 reference (ref::conv2d on the bf16-rounded inputs), within the bound derived in docs/kernels.md,
// "conv2d": |y - ref| <= gamma(d) * ref::conv2d_abs + n_add * 2^-126, d = max_k + matmuls per tile
// (roundings one product can meet: the array's column sum, the PSUM accumulations, the bias add).
// Shapes: 1x1 and 3x3 (and 7x7, 5x5, 3x5, 2x5) kernels, stride 2 and asymmetric strides, padding, C and F
// not multiples of 128 and larger than 128, N > 1, odd sizes, tap packing for small C (with gap partitions),
// batched small images, row bands (images too large for SBUF, stride 1 and 2), column tiles (rows wider
// than a PSUM bank), polyphase X by copies and by DMA; mostly trn1 with the fast tensor engine, two small shapes on
// tc1-16 in lockstep (RTL checked against the fast model every cycle). Also: a perturbed output is caught, capacity and
// shape errors at build time, and the trn1 profile of a ResNet layer (cycles, TensorE utilisation, bounding engine).
#include "tcemu/kb/conv2d.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "kernel_rig.h"
#include "tcemu/error.h"
#include "tcemu/ref_ops.h"
#include "tcemu/rt/profile.h"

namespace tcemu {
namespace {

using isa::ActFunc;

struct Case {
  const char* config;
  kb::Conv2dShape s;
  kb::Conv2dOptions o;
  kb::Conv2dTensors t;
  TensorEngineKind engine = TensorEngineKind::kFast;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  os << c.config << "_n" << c.s.n << "c" << c.s.c << "_" << c.s.h << "x" << c.s.w << "_f" << c.s.f << "_k" << c.s.kh
     << "x" << c.s.kw << "_s" << c.o.stride_h << "x" << c.o.stride_w << "_p" << c.o.pad_h << "x" << c.o.pad_w
     << (c.t.x_dtype == model::DType::kBf16 ? "_xbf16" : "") << (c.t.w_dtype == model::DType::kBf16 ? "_wbf16" : "")
     << (c.t.bias ? "" : "_nobias") << (c.o.act == ActFunc::kRelu ? "_relu" : "") << (c.o.pack_taps ? "" : "_nopack")
     << "_" << tensor_engine_name(c.engine);
  return os;
}

struct ConvRun {
  kb::Conv2dPlan plan;
  rt::TensorMap inputs;
  rt::RunResult result;
  int64_t oh = 0, ow = 0;
};

ConvRun run(const Case& c, bool profile = false, uint32_t seed = 1) {
  const DeviceConfig& cfg = find_config(c.config);
  ConvRun r;
  const model::Model m = kb::build_conv2d(cfg, c.s, c.o, c.t, &r.plan);
  r.oh = r.plan.oh, r.ow = r.plan.ow;
  std::mt19937 rng(seed);
  const auto& s = c.s;
  r.inputs["x"] = {{s.n, s.c, s.h, s.w}, testing_rig::uniform(rng, size_t(s.n * s.c * s.h * s.w), -1, 1)};
  const float ws = 1.0f / std::sqrt(float(s.c * s.kh * s.kw));  // outputs of order 1
  r.inputs["w"] = {{s.f, s.c, s.kh, s.kw}, testing_rig::uniform(rng, size_t(s.f * s.c * s.kh * s.kw), -ws, ws)};
  if (c.t.bias) r.inputs["bias"] = {{s.f}, testing_rig::uniform(rng, size_t(s.f), -0.5f, 0.5f)};
  testing_rig::Device dev(cfg, c.engine);
  r.result = dev.run(m, r.inputs, profile);
  return r;
}

// The check of docs/kernels.md, "conv2d".
ref::Compare check(const Case& c, const ConvRun& r, std::span<const float> y) {
  const auto& s = c.s;
  // The device reads x and w as bf16 (the runtime rounds bf16 tensors, the DMA rounds f32 ones: both RNE).
  const std::vector<float> x = testing_rig::bf16_round(r.inputs.at("x").data);
  const std::vector<float> w = testing_rig::bf16_round(r.inputs.at("w").data);
  const std::vector<float> none;
  const std::span<const float> b =
      c.t.bias ? std::span<const float>(r.inputs.at("bias").data) : std::span<const float>(none);
  const auto& o = c.o;
  std::vector<double> want =
      ref::conv2d(s.n, s.c, s.h, s.w, s.f, s.kh, s.kw, o.stride_h, o.stride_w, o.pad_h, o.pad_w, x, w, b);
  const std::vector<double> mag =
      ref::conv2d_abs(s.n, s.c, s.h, s.w, s.f, s.kh, s.kw, o.stride_h, o.stride_w, o.pad_h, o.pad_w, x, w, b);
  if (o.act == ActFunc::kRelu)
    for (double& v : want) v = v > 0 ? v : 0.0;  // relu is 1-Lipschitz: the bound carries over
  const double u = std::ldexp(1.0, -24);
  const double d = double(r.plan.max_k + r.plan.matmuls_per_tile);
  const double gamma = d * u / (1 - d * u);
  const double adds = double(r.plan.max_k) * r.plan.matmuls_per_tile + r.plan.matmuls_per_tile + 1;
  const std::vector<int64_t> shape = {s.n, s.f, r.oh, r.ow};
  return ref::compare("y", shape, y, want,
                      [&](size_t i, double) { return gamma * mag[i] + adds * std::ldexp(1.0, -126); });
}

class Conv2d : public ::testing::TestWithParam<Case> {};

TEST_P(Conv2d, MatchesTheReference) {
  const Case& c = GetParam();
  const ConvRun r = run(c);
  const std::vector<float>& y = r.result.outputs.at("y").data;
  ASSERT_EQ(y.size(), size_t(c.s.n * c.s.f * r.oh * r.ow));
  const ref::Compare ok = check(c, r, y);
  EXPECT_EQ(ok.checked, y.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  std::printf(
      "plan: g=%d matmuls/tile=%d max_k=%d regions=%d band=%lldimg x %lldrows tiles=%lld n<=%lld; %llu cycles; "
      "worst error / bound %.3f\n",
      r.plan.taps_per_matmul, r.plan.matmuls_per_tile, r.plan.max_k, r.plan.x_regions, (long long)r.plan.band_images,
      (long long)r.plan.band_rows, (long long)r.plan.pixel_tiles, (long long)r.plan.tile_cols,
      (unsigned long long)r.result.cycles, ok.worst);
}

kb::Conv2dShape shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t f, int64_t kh, int64_t kw) {
  return {n, c, h, w, f, kh, kw};
}
kb::Conv2dOptions opts(int sh, int sw, int ph, int pw, ActFunc act = ActFunc::kIdentity, bool pack = true) {
  kb::Conv2dOptions o;
  o.stride_h = sh, o.stride_w = sw, o.pad_h = ph, o.pad_w = pw, o.act = act, o.pack_taps = pack;
  return o;
}
constexpr kb::Conv2dTensors kF32{};
constexpr kb::Conv2dTensors kBf16{model::DType::kBf16, model::DType::kBf16, true};
constexpr kb::Conv2dTensors kNoBias{model::DType::kF32, model::DType::kF32, false};

INSTANTIATE_TEST_SUITE_P(
    Shapes, Conv2d,
    ::testing::Values(
        // 3x3, pad 1, C and F > 128 and not multiples of it (2 c-tiles, 2 F tiles), stride 2, odd sizes, N > 1.
        Case{"trn1", shape(2, 200, 17, 15, 160, 3, 3), opts(2, 2, 1, 1), kBf16},
        // 1x1, C and F not multiples of 128 (3 F tiles), no bias, N = 3 small images batched per tile.
        Case{"trn1", shape(3, 130, 9, 11, 300, 1, 1), opts(1, 1, 0, 0), kNoBias},
        // 1x1 stride 2 (a ResNet shortcut), 5 pixel tiles x 2 F tiles, bf16 inputs.
        Case{"trn1", shape(1, 96, 99, 99, 200, 1, 1), opts(2, 2, 0, 0), kBf16},
        // C = 64: two taps per matmul (tap packing), relu, stride 1, pad 1.
        Case{"trn1", shape(2, 64, 21, 19, 96, 3, 3), opts(1, 1, 1, 1, ActFunc::kRelu)},
        // The same without packing (one tap per matmul, k = 64).
        Case{"trn1", shape(1, 64, 21, 19, 96, 3, 3), opts(1, 1, 1, 1, ActFunc::kIdentity, false)},
        // conv1-like: C = 3, 7x7, stride 2, pad 3: many taps per matmul, polyphase X and its replicas.
        Case{"trn1", shape(2, 3, 37, 35, 20, 7, 7), opts(2, 2, 3, 3)},
        // C = 33 packs with 32-aligned sub-blocks (zeroed gap partitions); asymmetric stride, pad and kernel.
        Case{"trn1", shape(1, 33, 11, 13, 7, 2, 5), opts(2, 1, 0, 2), kF32},
        // Many small images batched into one PSUM bank (7x7: six images per tile), C = 96, F = 130.
        Case{"trn1", shape(13, 96, 7, 7, 130, 3, 3), opts(1, 1, 1, 1), kBf16},
        // An image too large for SBUF: row bands, double-buffered; C = 4 packs 9 taps.
        Case{"trn1", shape(1, 4, 400, 403, 8, 3, 3), opts(1, 1, 1, 1)},
        // Rows wider than a PSUM bank: column tiles; stride 1 x 2, no packing.
        Case{"trn1", shape(1, 5, 6, 1100, 9, 3, 3), opts(1, 2, 1, 0, ActFunc::kIdentity, false)},
        // Stride 2 over row bands: through the staging tile (C = 16 packs 3 taps), and with the phases gathered
        // by DMA (C = 2); stride 2 over column tiles; 5x5 with stride (3, 2), N = 3, relu.
        Case{"trn1", shape(1, 16, 300, 301, 8, 3, 3), opts(2, 2, 1, 1)},
        Case{"trn1", shape(2, 2, 600, 500, 5, 3, 3), opts(2, 2, 1, 1)},
        Case{"trn1", shape(1, 6, 5, 2100, 4, 3, 5), opts(2, 2, 1, 2)},
        Case{"trn1", shape(3, 40, 30, 30, 20, 5, 5), opts(3, 2, 2, 1, ActFunc::kRelu)},
        // tc1-16 (16x16 array) in lockstep: 2 c-tiles, 2 F tiles, pad 1; and packing with stride 2.
        Case{"tc1-16", shape(2, 20, 7, 6, 18, 3, 3), opts(1, 1, 1, 1), kF32, TensorEngineKind::kLockstep},
        Case{"tc1-16", shape(1, 5, 9, 8, 6, 3, 3), opts(2, 2, 1, 1, ActFunc::kRelu), kF32,
             TensorEngineKind::kLockstep}));

TEST(Conv2dCheck, APerturbedOutputIsCaught) {
  const Case c{"trn1", shape(1, 70, 9, 9, 40, 3, 3), opts(1, 1, 1, 1)};
  const ConvRun r = run(c);
  std::vector<float> y = r.result.outputs.at("y").data;
  ASSERT_EQ(check(c, r, y).mismatches, 0u);
  // The allowance is about 1e-5 relative to sum |terms| (~ a few units): 1e-3 is far outside it, 1e-7 inside.
  y[y.size() / 3] += 1e-3f;
  const ref::Compare bad = check(c, r, y);
  EXPECT_EQ(bad.mismatches, 1u);
  EXPECT_NE(bad.first_bad.find("y["), std::string::npos) << bad.first_bad;
  y[y.size() / 3] -= 1e-3f;
  y[y.size() / 2] += 1e-7f;
  EXPECT_EQ(check(c, r, y).mismatches, 0u);
}

TEST(Conv2dBuild, CapacityErrorNamesTheTile) {
  // 16 c-tiles of 3x3 x 2048 filters: 16 x 36 KiB of resident weights per partition (192 KiB on trn1).
  {
    const std::string w = testing_rig::error_of(
        [&] { kb::build_conv2d(find_config("trn1"), shape(1, 2048, 8, 8, 2048, 3, 3), opts(1, 1, 1, 1)); },
        ErrorCode::kCapacity);
    EXPECT_NE(w.find("SBUF tile 'conv_w["), std::string::npos) << w;
    EXPECT_NE(w.find("36864 B per partition"), std::string::npos) << w;
  }
}

TEST(Conv2dBuild, ShapeErrorsAreInvalidArguments) {
  const DeviceConfig& cfg = find_config("trn1");
  kb::Kernel k(cfg, "bad");
  auto x = k.input("x", model::DType::kF32, {1, 3, 8, 8});
  auto w = k.input("w", model::DType::kF32, {4, 5, 3, 3});  // 5 input channels, x has 3
  auto y = k.output("y", model::DType::kF32, {1, 4, 6, 6});
  try {
    kb::conv2d(k, x, w, std::nullopt, y);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("input channels"), std::string::npos) << e.what();
  }
  auto w2 = k.input("w2", model::DType::kF32, {4, 3, 3, 3});
  EXPECT_THROW(kb::conv2d(k, x, w2, std::nullopt, y, opts(2, 2, 0, 0)), Error);  // y should be 3x3
  EXPECT_THROW(kb::conv2d(k, x, w2, std::nullopt, y, opts(1, 1, 0, 0, ActFunc::kExp)), Error);
  EXPECT_THROW(kb::build_conv2d(cfg, shape(1, 3, 2, 2, 4, 5, 5), opts(1, 1, 1, 1)), Error);  // 4x4 < 5x5
}

// The ResNet layers of docs/kernels.md on trn1: cycles, TensorE utilisation, the bounding engine.
void profile_layer(const Case& c, double min_util) {
  const ConvRun r = run(c, true);
  ASSERT_TRUE(r.result.profile.has_value());
  const rt::Summary s = rt::summarize(*r.result.profile);
  std::printf("%s\n", rt::format_summary(s).c_str());
  const double macs = double(c.s.n * c.s.f * r.oh * r.ow) * double(c.s.c * c.s.kh * c.s.kw);
  std::printf(
      "conv2d N=%lld C=%lld %lldx%lld F=%lld %lldx%lld: %llu cycles, %.1f%% TensorE utilisation (useful MACs "
      "%.3g / (cycles x 128 x 128): %.1f%%), bound by %s; plan g=%d matmuls/tile=%d tiles=%lld n<=%lld\n",
      (long long)c.s.n, (long long)c.s.c, (long long)c.s.h, (long long)c.s.w, (long long)c.s.f, (long long)c.s.kh,
      (long long)c.s.kw, (unsigned long long)r.result.cycles, 100 * s.te_utilization, macs,
      100 * macs / (double(r.result.cycles) * 128 * 128), s.bound_by.c_str(), r.plan.taps_per_matmul,
      r.plan.matmuls_per_tile, (long long)r.plan.pixel_tiles, (long long)r.plan.tile_cols);
  EXPECT_GE(macs / (double(r.result.cycles) * 128 * 128), min_util);
  const ref::Compare ok = check(c, r, r.result.outputs.at("y").data);
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
}

TEST(Conv2dProfile, ResNetLayerC128) {
  profile_layer({"trn1", shape(1, 128, 56, 56, 128, 3, 3), opts(1, 1, 1, 1)}, 0.5);
}

TEST(Conv2dProfile, ResNetLayerC64) { profile_layer({"trn1", shape(1, 64, 56, 56, 128, 3, 3), opts(1, 1, 1, 1)}, 0.4); }

}  // namespace
}  // namespace tcemu
