// Attention kernel (kb::attention) end to end on the emulated device, against the independent fp64
// reference ref::attention (row-major q[H][Sq][dh] etc.: the device's feature-major layouts are transposed
// here) within the error bound derived below; a perturbed output is caught; shapes that cannot fit fail at
// build time naming the tile; the trn1 profile of the representative shapes. One device per process
// (gtest_discover_tests runs each test in its own).
//
// Tolerance. The reference is evaluated on the bf16 values the device computes with (bf16 inputs as they
// are; f32 inputs rounded to bf16 as the DMA does), so the rounding of q, k, v is not an error of the kernel
// but part of its definition. With u = 2^-24 and, per head, query i and key j (Sv visible keys, n = Sk):
//   scores   s_ij = sum_d q_id k_jd: products exact, fp32 sums in the array's order (dh chunks of the rows
//            added in PSUM): |ŝ - s| <= (dh + 1) u A_ij,  A_ij = sum_d |q_id k_jd|
//   exponent u_ij = fl(fl(scale ŝ_ij) + negm_i), negm_i = fl(-scale m_i) the same for the whole row (the
//            softmax does not depend on the shift, only on its being the same): the error against
//            scale s_ij + negm_i is e_ij <= scale (dh + 1) u A_ij + u (scale |s_ij| + |u_ij|)
//   exp      ScalarE is within 4 ulp (8u relative) plus 2^-126 absolute: E_ij = exp(scale s_ij + negm_i)
//            (1 + rho_ij), rho_ij <= e_ij + 8u (first order)
//   l        sum of the E_ij in order (fp32, all terms >= 0): l̂ = l (1 + lambda), |lambda| <= max_j rho_ij +
//            (n + passes) u
//   P        fl(E_ij * fl(1 / l̂)) rounded to bf16: two fp32 roundings (2u) and one bf16 rounding (2^-8), and
//            a flush below 2^-126
//   so P̂_ij = P_ij (1 + delta_ij), |delta_ij| <= 2^-8 + rho_ij + max_j rho_ij + (n + passes + 2) u
//   output   o_ie = sum_j P̂_ij v_je in fp32 (products exact, n - 1 sums in order, key blocks added in PSUM):
//            error <= (n + 1) u sum_j P̂_ij |v_je|
// The transposes (VectorE block transpose, DMA moves, or pe_transpose and copies) move bf16 values exactly.
// Hence, per output element,
//   |ô_ie - o_ie| <= 1.01 sum_j P_ij |v_je| (2^-8 + rho_ij + max_j rho_ij + (2n + passes + 5) u)
//                    + 2^-122 sum_j |v_je|
// where 1.01 covers the second-order terms (P̂ <= P (1 + 2^-7); the first-order relative terms are asserted
// below 2^-7) and the absolute term the flushes of E, P and of tiny products (at most 4 per key, each
// below 2^-126 |v|). passes <= ceil(Sk / 512). The bound is a worst case (every bf16 rounding of P in the
// same direction); typical errors are a few percent of it (the worst ratio is printed).
#include "tcemu/kb/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

#include "kernel_rig.h"
#include "tcemu/error.h"
#include "tcemu/ref_ops.h"
#include "tcemu/rt/profile.h"

namespace tcemu {
namespace {

constexpr double kU = 0x1p-24;
using kb::AttentionTranspose;

struct Case {
  const char* config;
  int64_t H, S, dh;
  bool causal = false;
  model::DType dtype = model::DType::kBf16;
  AttentionTranspose transpose = AttentionTranspose::kVectorDma;
  float range = 1.5f;  // q, k, v uniform in [-range, range]
  TensorEngineKind engine = TensorEngineKind::kFast;
  int64_t Sk = 0;  // cross-attention: keys (0: S)
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  os << c.config << "_h" << c.H << "_s" << c.S;
  if (c.Sk) os << "_sk" << c.Sk;
  os << "_d" << c.dh << (c.causal ? "_causal" : "") << (c.dtype == model::DType::kF32 ? "_f32" : "");
  if (c.transpose == AttentionTranspose::kTensor) os << "_pe";
  if (c.engine != TensorEngineKind::kFast) os << "_" << tensor_engine_name(c.engine);
  return os;
}

// Row-major math layout and the device's layouts.
struct Inputs {
  int64_t H, Sq, Sk, dh;
  std::vector<float> q, k, v;     // [H][Sq][dh], [H][Sk][dh], [H][Sk][dh]: the values the device computes with
  std::vector<float> qT, kT, vd;  // device: qT [H*dh][Sq], kT [H*dh][Sk], v [Sk][H*dh] (as bound)
};

Inputs make_inputs(const Case& c) {
  Inputs in{c.H, c.S, c.Sk ? c.Sk : c.S, c.dh, {}, {}, {}, {}, {}, {}};
  std::mt19937 rng(uint32_t(c.H * 7919 + c.S * 31 + c.dh + (c.causal ? 5 : 0)));
  const int64_t HD = c.H * c.dh;
  in.qT = testing_rig::uniform(rng, size_t(HD * in.Sq), -c.range, c.range);
  in.kT = testing_rig::uniform(rng, size_t(HD * in.Sk), -c.range, c.range);
  in.vd = testing_rig::uniform(rng, size_t(in.Sk * HD), -c.range, c.range);
  if (c.dtype == model::DType::kBf16) {
    in.qT = testing_rig::bf16_round(in.qT), in.kT = testing_rig::bf16_round(in.kT),
    in.vd = testing_rig::bf16_round(in.vd);
  }
  in.q.resize(in.qT.size()), in.k.resize(in.kT.size()), in.v.resize(in.vd.size());
  for (int64_t h = 0; h < c.H; ++h)
    for (int64_t d = 0; d < c.dh; ++d) {
      for (int64_t i = 0; i < in.Sq; ++i)
        in.q[size_t((h * in.Sq + i) * c.dh + d)] = testing_rig::bf16_round(in.qT[size_t((h * c.dh + d) * in.Sq + i)]);
      for (int64_t j = 0; j < in.Sk; ++j) {
        in.k[size_t((h * in.Sk + j) * c.dh + d)] = testing_rig::bf16_round(in.kT[size_t((h * c.dh + d) * in.Sk + j)]);
        in.v[size_t((h * in.Sk + j) * c.dh + d)] = testing_rig::bf16_round(in.vd[size_t(j * HD + h * c.dh + d)]);
      }
    }
  return in;
}

float default_scale(int64_t dh) { return float(1.0 / std::sqrt(double(dh))); }

// The device output oT [H*dh][Sq] in the reference's layout o[H][Sq][dh].
std::vector<float> from_device(const Inputs& in, const std::vector<float>& oT) {
  std::vector<float> o(oT.size());
  for (int64_t h = 0; h < in.H; ++h)
    for (int64_t e = 0; e < in.dh; ++e)
      for (int64_t i = 0; i < in.Sq; ++i)
        o[size_t((h * in.Sq + i) * in.dh + e)] = oT[size_t((h * in.dh + e) * in.Sq + i)];
  return o;
}

// The allowance of the header comment for every output element, [H][Sq][dh].
std::vector<double> allowance(const Inputs& in, float scale, bool causal) {
  const int64_t H = in.H, Sq = in.Sq, Sk = in.Sk, dh = in.dh;
  const double sc = scale, n = double(Sk), passes = double((Sk + 511) / 512);
  std::vector<double> allowed(size_t(H * Sq * dh));
  const size_t nk = size_t(Sk);
  std::vector<double> s(nk), a(nk), p(nk), w(nk);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < Sq; ++i) {
      const int64_t sv = causal ? i + 1 : Sk;
      const float* q = in.q.data() + (h * Sq + i) * dh;
      double m = -INFINITY;
      for (int64_t j = 0; j < sv; ++j) {
        const float* k = in.k.data() + (h * Sk + j) * dh;
        double acc = 0, abs = 0;
        for (int64_t d = 0; d < dh; ++d) acc += double(q[d]) * k[d], abs += std::fabs(double(q[d]) * k[d]);
        s[size_t(j)] = acc, a[size_t(j)] = abs, m = std::max(m, acc);
      }
      double l = 0, rho_max = 0;
      for (int64_t j = 0; j < sv; ++j) {
        p[size_t(j)] = std::exp(sc * (s[size_t(j)] - m)), l += p[size_t(j)];
        const double e =
            sc * (double(dh) + 1) * kU * a[size_t(j)] + kU * (sc * std::fabs(s[size_t(j)]) + sc * (m - s[size_t(j)]));
        w[size_t(j)] = e + 8 * kU;  // rho_ij
        rho_max = std::max(rho_max, w[size_t(j)]);
      }
      for (int64_t j = 0; j < sv; ++j) {
        const double first = 0x1p-8 + w[size_t(j)] + rho_max + (2 * n + passes + 5) * kU;
        EXPECT_LT(first, 0x1p-7) << "the second-order factor does not cover this row";
        w[size_t(j)] = p[size_t(j)] / l * first;
      }
      for (int64_t e = 0; e < dh; ++e) {
        double rel = 0, abs = 0;
        for (int64_t j = 0; j < sv; ++j) {
          const double vj = std::fabs(double(in.v[size_t((h * Sk + j) * dh + e)]));
          rel += w[size_t(j)] * vj, abs += vj;
        }
        allowed[size_t((h * Sq + i) * dh + e)] = 1.01 * rel + 0x1p-122 * abs;
      }
    }
  return allowed;
}

ref::Compare check(const Inputs& in, float scale, bool causal, const std::vector<float>& o,
                   const std::vector<double>& allowed) {
  const auto want = ref::attention(in.H, in.Sq, in.Sk, in.dh, in.dh, in.q, in.k, in.v, scale, causal);
  const int64_t shape[] = {in.H, in.Sq, in.dh};
  return ref::compare("o", shape, o, want, [&](size_t i, double) { return allowed[i]; });
}

struct AttnRun {
  Inputs in;
  std::vector<float> o;  // [H][Sq][dh]
  rt::RunResult result;
};

kb::AttentionOptions options(const Case& c) {
  kb::AttentionOptions o;
  o.heads = int(c.H), o.causal = c.causal, o.transpose = c.transpose, o.in_dtype = c.dtype;
  return o;
}

rt::TensorMap bind(const Inputs& in) {
  rt::TensorMap m;
  m["qT"] = {{in.H * in.dh, in.Sq}, in.qT};
  m["kT"] = {{in.H * in.dh, in.Sk}, in.kT};
  m["v"] = {{in.Sk, in.H * in.dh}, in.vd};
  return m;
}

AttnRun run(const Case& c, bool profile = false) {
  const DeviceConfig& cfg = find_config(c.config);
  AttnRun r{make_inputs(c), {}, {}};
  model::Model m;
  if (c.Sk == 0) {
    m = kb::build_attention(cfg, int(c.S), int(c.dh), options(c));
  } else {  // cross-attention through the emitting function
    kb::Kernel k(cfg, "cross_attention");
    const auto qT = k.input("qT", c.dtype, {c.H * c.dh, c.S});
    const auto kT = k.input("kT", c.dtype, {c.H * c.dh, c.Sk});
    const auto v = k.input("v", c.dtype, {c.Sk, c.H * c.dh});
    const auto oT = k.output("oT", model::DType::kF32, {c.H * c.dh, c.S});
    kb::attention(k, qT, kT, v, oT, options(c));
    m = k.finish();
  }
  testing_rig::Device dev(cfg, c.engine);
  r.result = dev.run(m, bind(r.in), profile);
  r.o = from_device(r.in, r.result.outputs.at("oT").data);
  return r;
}

class Attention : public ::testing::TestWithParam<Case> {};

TEST_P(Attention, MatchesTheReference) {
  const Case& c = GetParam();
  const AttnRun r = run(c);
  const float scale = default_scale(c.dh);
  const auto allowed = allowance(r.in, scale, c.causal);
  const ref::Compare ok = check(r.in, scale, c.causal, r.o, allowed);
  EXPECT_EQ(ok.checked, r.o.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  std::printf("%s: %llu cycles, worst error %.3g of the bound\n", ::testing::PrintToString(c).c_str(),
              (unsigned long long)r.result.cycles, ok.worst);
}

// Shapes: one and several heads, causal and not, sequences that are not multiples of 128 and longer than a
// PSUM bank (scores over 2 and 3 banks), dh not a multiple of 32 and dh > 128 (two contraction chunks),
// f32 inputs, the pe_transpose variant, cross-attention (Sq != Sk), a wide input range (peaked softmax),
// three heads of one query tile each (three PV groups over two accumulators), and tc1-16 (16 x 16 array:
// 16-query tiles, 16-key blocks, 16 x 16 VectorE transposes) with the tensor engine in lockstep.
INSTANTIATE_TEST_SUITE_P(
    Shapes, Attention,
    ::testing::Values(Case{"trn1", 1, 512, 128}, Case{"trn1", 4, 512, 128, true}, Case{"trn1", 2, 200, 64, true},
                      Case{"trn1", 3, 700, 48}, Case{"trn1", 1, 1100, 160, true},
                      Case{"trn1", 2, 130, 32, false, model::DType::kF32},
                      Case{"trn1", 2, 300, 80, true, model::DType::kBf16, AttentionTranspose::kTensor},
                      Case{"trn1", 1, 640, 128, false, model::DType::kBf16, AttentionTranspose::kTensor},
                      Case{"trn1", 2, 150, 40, false, model::DType::kBf16, AttentionTranspose::kVectorDma, 1.5f,
                           TensorEngineKind::kFast, 333},
                      Case{"trn1", 1, 256, 64, false, model::DType::kBf16, AttentionTranspose::kVectorDma, 6.0f},
                      Case{"trn1", 3, 70, 64, true},
                      Case{"tc1-16", 2, 40, 24, true, model::DType::kBf16, AttentionTranspose::kVectorDma, 1.5f,
                           TensorEngineKind::kLockstep},
                      Case{"tc1-16", 1, 35, 20, false, model::DType::kF32, AttentionTranspose::kTensor, 1.5f,
                           TensorEngineKind::kLockstep}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string s = ::testing::PrintToString(i.param);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

// The check can fail: one output element moved by twice its allowance is caught, and the causal output
// does not pass as the non-causal one.
TEST(AttentionCheck, APerturbedOutputIsCaught) {
  const Case c{"trn1", 1, 160, 64, true};
  const AttnRun r = run(c);
  const float scale = default_scale(c.dh);
  const auto allowed = allowance(r.in, scale, c.causal);
  ASSERT_EQ(check(r.in, scale, c.causal, r.o, allowed).mismatches, 0u);
  std::vector<float> bad = r.o;
  const size_t at = bad.size() / 3;
  bad[at] += float(2 * allowed[at]) + std::fabs(bad[at]) * 0x1p-23f;
  const ref::Compare caught = check(r.in, scale, c.causal, bad, allowed);
  EXPECT_EQ(caught.mismatches, 1u);
  EXPECT_GT(caught.worst, 1.0);
  EXPECT_EQ(check(r.in, scale, false, r.o, allowance(r.in, scale, false)).mismatches > 0, true);
}

// Composed into a kernel whose PSUM is mostly taken: the score rows no longer fit, so the kernel falls
// back to recomputing the scores chunk by chunk (two passes), and still matches the reference.
size_t matmuls(const model::Model& m) {
  size_t n = 0;
  for (const auto& s : m.streams)
    for (const auto& in : s.instrs) n += in.opcode == isa::Opcode::Matmul;
  return n;
}

TEST(AttentionCompose, RecomputesScoresWhenPsumIsShort) {
  const Case c{"trn1", 2, 1100, 64, true};
  const DeviceConfig& cfg = find_config(c.config);
  auto build = [&](bool psum_taken) {
    kb::Kernel k(cfg, "composed");
    const auto qT = k.input("qT", c.dtype, {c.H * c.dh, c.S});
    const auto kT = k.input("kT", c.dtype, {c.H * c.dh, c.S});
    const auto v = k.input("v", c.dtype, {c.S, c.H * c.dh});
    const auto oT = k.output("oT", model::DType::kF32, {c.H * c.dh, c.S});
    if (psum_taken) k.psum("someone_else", 128, 512 * 5);  // 5 of the 8 banks
    kb::attention(k, qT, kT, v, oT, options(c));
    return k.finish();
  };
  const model::Model m = build(true);
  // The scores' matmuls (9 query tiles x 3 banks of keys at most, plus the masks) are issued twice.
  EXPECT_GT(matmuls(m), matmuls(build(false)) + 20);
  testing_rig::Device dev(cfg, c.engine);
  const Inputs in = make_inputs(c);
  const auto res = dev.run(m, bind(in));
  const auto o = from_device(in, res.outputs.at("oT").data);
  const float scale = default_scale(c.dh);
  const ref::Compare ok = check(in, scale, c.causal, o, allowance(in, scale, c.causal));
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  std::printf("recompute: %llu cycles, worst error %.3g of the bound\n", (unsigned long long)res.cycles, ok.worst);
}

TEST(AttentionBuild, ShapesThatCannotFitFailNamingTheTile) {
  {
    // one f32 score row alone is 160,000 B
    const std::string w =
        testing_rig::error_of([&] { kb::build_attention(find_config("trn1"), 40000, 64); }, ErrorCode::kCapacity);
    EXPECT_NE(w.find("SBUF tile 'attn_"), std::string::npos) << w;
    EXPECT_NE(w.find("does not fit"), std::string::npos) << w;
  }
  kb::Kernel k(find_config("trn1"), "bad");
  const auto qT = k.input("qT", model::DType::kBf16, {64, 100});
  const auto kT = k.input("kT", model::DType::kBf16, {64, 90});
  const auto v = k.input("v", model::DType::kBf16, {90, 64});
  const auto oT = k.output("oT", model::DType::kF32, {64, 100});
  kb::AttentionOptions o;
  o.causal = true;  // Sq != Sk
  EXPECT_THROW(kb::attention(k, qT, kT, v, oT, o), Error);
  o.causal = false, o.heads = 3;  // 64 rows are not 3 heads
  EXPECT_THROW(kb::attention(k, qT, kT, v, oT, o), Error);
}

// The representative shapes on trn1: cycles, TensorE utilisation counting only the QK^T and PV MACs the
// kernel issues (the causal ones cover the visible keys of each query tile, rounded up to a 128-key block),
// and the bounding engine (docs/kernels.md, "Attention").
class AttentionProfile : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionProfile, Trn1) {
  const Case& c = GetParam();
  const AttnRun r = run(c, true);
  const float scale = default_scale(c.dh);
  EXPECT_EQ(check(r.in, scale, c.causal, r.o, allowance(r.in, scale, c.causal)).mismatches, 0u);
  ASSERT_TRUE(r.result.profile);
  const rt::Summary s = rt::summarize(*r.result.profile);
  if (std::getenv("ATTN_TRACE")) {  // debugging aid: every instruction's timing
    const auto& p = *r.result.profile;
    for (size_t i = 0; i < p.records.size(); ++i)
      std::printf("%-8s %6llu %6llu wait %6llu  %s\n", rt::engine_display_name(p.records[i].engine).c_str(),
                  (unsigned long long)p.records[i].start, (unsigned long long)p.records[i].end,
                  (unsigned long long)p.records[i].wait_cycles, i < p.operands.size() ? p.operands[i].c_str() : "");
  }
  uint64_t useful = 0;
  for (int64_t q0 = 0; q0 < c.S; q0 += 128) {
    const int64_t nq = std::min<int64_t>(128, c.S - q0);
    const int64_t sv = c.causal ? std::min<int64_t>(c.S, (q0 + nq + 127) / 128 * 128) : c.S;
    useful += uint64_t(2 * nq * sv * c.dh * c.H);
  }
  const double util = double(useful) / (double(s.info.cycles) * 128 * 128);
  std::printf("%s: %llu cycles, useful TensorE utilisation %.1f%% (all TensorE MACs %.1f%%)\n%s\n",
              ::testing::PrintToString(c).c_str(), (unsigned long long)s.info.cycles, 100 * util,
              100 * s.te_utilization, rt::format_summary(s).c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionProfile,
    ::testing::Values(Case{"trn1", 1, 512, 128}, Case{"trn1", 1, 512, 128, true}, Case{"trn1", 4, 512, 128},
                      Case{"trn1", 4, 512, 128, true},
                      Case{"trn1", 4, 512, 128, false, model::DType::kBf16, AttentionTranspose::kTensor},
                      Case{"trn1", 4, 512, 128, true, model::DType::kBf16, AttentionTranspose::kTensor}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string s = ::testing::PrintToString(i.param);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

}  // namespace
}  // namespace tcemu
