// The transformer block (kb::transformer_block: library kernels composed into one model) against the fp64
// reference (ref::transformer_block) within its documented tolerance (ref::check_block), on several shapes
// (sequence and widths not multiples of the array, one head or several, causal or not, tc1-16 with the
// RTL in lockstep); the check can fail; the model embeds its parameters as constants and runs twice with
// the same cycles.
#include "tcemu/kb/transformer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "kernel_rig.h"
#include "tcemu/ref_block.h"

namespace tcemu {
namespace {

struct Case {
  const char* config;
  ref::BlockShape shape;
};

std::string name_of(const Case& c) {
  std::string n = fmt::format("{}_s{}_d{}_h{}_f{}{}", c.config, c.shape.seq, c.shape.d_model, c.shape.heads,
                              c.shape.d_ff, c.shape.causal ? "_causal" : "");
  for (auto& ch : n)
    if (ch == '-') ch = '_';
  return n;
}

class Block : public ::testing::TestWithParam<Case> {};

TEST_P(Block, MatchesTheFp64ReferenceWithinItsTolerance) {
  const Case& c = GetParam();
  const DeviceConfig& cfg = find_config(c.config);
  const ref::BlockParams p = ref::make_block_params(c.shape, 3);
  const model::Model m = kb::build_transformer_block(cfg, c.shape, p);
  size_t consts = 0;
  for (const auto& t : m.tensors) consts += t.kind == model::TensorKind::kConst;
  EXPECT_EQ(consts, 12u);  // every parameter is embedded (Wq, Wk, Wv and their biases as one wqkv, bqkv)
  testing_rig::Device dev(cfg, cfg.name == "trn1" ? TensorEngineKind::kFast : TensorEngineKind::kLockstep);
  std::mt19937 rng(11);
  rt::TensorMap in;
  in["x"] = {{c.shape.seq, c.shape.d_model},
             testing_rig::uniform(rng, size_t(c.shape.seq * c.shape.d_model), -1.0f, 1.0f)};
  const rt::RunResult r1 = dev.run(m, in);
  const auto& y = r1.outputs.at("y").data;
  const std::vector<double> want = ref::transformer_block(c.shape, in["x"].data, p);
  const ref::Compare cmp = ref::check_block(c.shape, in["x"].data, y, want);
  EXPECT_EQ(cmp.checked, y.size());
  EXPECT_EQ(cmp.mismatches, 0u) << cmp.first_bad;
  std::printf("worst error: %.3f of the tolerance\n", cmp.worst);
  // The check can fail: one element moved by twice its allowance.
  std::vector<float> bad = y;
  const size_t at = bad.size() / 2;
  bad[at] += float(3 * (want[at] - bad[at]) + 2 * ref::kBlockTolerance * (std::abs(want[at] - in["x"].data[at]) + 1.0));
  EXPECT_GE(ref::check_block(c.shape, in["x"].data, bad, want).mismatches, 1u);
  // Deterministic: the same cycles again.
  EXPECT_EQ(dev.run(m, in).cycles, r1.cycles);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Block,
    ::testing::Values(Case{"trn1", {512, 512, 4, 2048, true}}, Case{"trn1", {128, 128, 1, 256, true}},
                      Case{"trn1", {200, 256, 2, 512, false}}, Case{"trn1", {70, 192, 3, 300, true}},
                      Case{"trn1", {640, 384, 3, 1000, true}}, Case{"tc1-16", {40, 32, 2, 48, true}}),
    [](const ::testing::TestParamInfo<Case>& i) { return name_of(i.param); });

}  // namespace
}  // namespace tcemu
