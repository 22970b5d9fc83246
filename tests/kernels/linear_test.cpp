// Linear layer kernel (matmul -> bias + activation on ScalarE -> residual add on VectorE -> store) end to
// end on the emulated device, checked against the independent reference (tcemu/reference.h: the golden
// matmul bit for bit, the activation in fp64 within its documented tolerance), and its profile: DMA,
// TensorE, ScalarE and VectorE overlap in time, and the Perfetto trace agrees with the device's records
// and counters. The tc1-* devices run the tensor engine in lockstep (the RTL's results go to PSUM, the fast
// model is compared with it every cycle and a difference faults the job); trn1 runs the fast engine alone.
// One device per process: each test runs in its own process (gtest_discover_tests).
#include "tcemu/kb/linear.h"

#include <gtest/gtest.h>

#include <random>

#include "inproc_transport.h"
#include "kernel_rig.h"
#include "tcemu/error.h"
#include "tcemu/reference.h"
#include "tcemu/rt/profile.h"
#include "tcemu/rt/runtime.h"
#include "trace_checks.h"

namespace tcemu {
namespace {

using isa::ActFunc;

struct Case {
  const char* config;
  int m, n, k;
  ActFunc act = ActFunc::kGeluTanh;
  bool residual = true;
  TensorEngineKind engine = TensorEngineKind::kLockstep;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  os << c.config << "_" << c.m << "x" << c.n << "x" << c.k << "_" << isa::act_func_name(uint64_t(c.act))
     << (c.residual ? "_residual" : "");
  if (c.engine != TensorEngineKind::kLockstep) os << "_" << tensor_engine_name(c.engine);
  return os;
}

std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct LinearRun {
  rt::RunResult result;
  rt::TensorMap inputs;
};

// One emulated device (one per process) with its driver and runtime.
struct Device {
  explicit Device(const DeviceConfig& cfg, TensorEngineKind engine = TensorEngineKind::kLockstep)
      : transport(cfg, options(engine)), driver(transport), runtime(driver) {}
  static emu::DeviceOptions options(TensorEngineKind engine) {
    emu::DeviceOptions o;
    o.tensor_engine = engine;
    return o;
  }
  drv::InProcessTransport transport;
  drv::Driver driver;
  rt::Runtime runtime;
};

LinearRun run_linear(rt::Runtime& runtime, const DeviceConfig& cfg, const Case& c, bool profile = false,
                     uint32_t seed = 1) {
  auto lm = runtime.load(kb::build_linear(cfg, c.m, c.n, c.k, {c.act, c.residual}));
  std::mt19937 rng(seed);
  LinearRun r;
  const float ws = 2.0f / std::sqrt(float(c.k));  // pre-activations of order 1, where gelu bends
  r.inputs["xT"] = {{c.k, c.m}, uniform(rng, size_t(c.k) * c.m, -1, 1)};
  r.inputs["w"] = {{c.k, c.n}, uniform(rng, size_t(c.k) * c.n, -ws, ws)};
  r.inputs["b"] = {{c.n}, uniform(rng, size_t(c.n), -0.5f, 0.5f)};
  if (c.residual) r.inputs["rT"] = {{c.n, c.m}, uniform(rng, size_t(c.n) * c.m, -1, 1)};
  rt::RunOptions opts;
  opts.profile = profile;
  r.result = runtime.run(*lm, r.inputs, opts);
  runtime.unload(*lm);
  return r;
}

ref::Check check(const DeviceConfig& cfg, const Case& c, const LinearRun& r, std::vector<float> yT) {
  const auto empty = std::span<const float>();
  return ref::check_linear(c.m, c.n, c.k, cfg.rows, c.act, r.inputs.at("xT").data, r.inputs.at("w").data,
                           r.inputs.at("b").data, c.residual ? std::span<const float>(r.inputs.at("rT").data) : empty,
                           yT);
}

class Linear : public ::testing::TestWithParam<Case> {};

TEST_P(Linear, MatchesTheReference) {
  const Case& c = GetParam();
  const DeviceConfig& cfg = find_config(c.config);
  Device dev(cfg, c.engine);
  ASSERT_EQ(dev.driver.info().tensor_engine, c.engine);
  const LinearRun r = run_linear(dev.runtime, cfg, c);
  const std::vector<float>& yT = r.result.outputs.at("yT").data;
  ASSERT_EQ(yT.size(), size_t(c.m) * c.n);
  const ref::Check ok = check(cfg, c, r, yT);
  EXPECT_EQ(ok.checked, yT.size());
  EXPECT_EQ(ok.mismatches, 0u) << ok.first_bad;
  // The check can fail: one element off by 1 ulp (exact functions) or by 1e-4 (libm ones, whose
  // tolerance is about 1e-6 relative) is caught.
  std::vector<float> bad = yT;
  const size_t at = bad.size() / 2;
  bad[at] = ref::activation_tolerance(c.act).ulps > 0 ? bad[at] + 1e-4f : std::nextafter(bad[at], INFINITY);
  EXPECT_EQ(check(cfg, c, r, bad).mismatches, 1u);
}

// Shapes: not multiples of the array, more than one m-tile (PSUM bank) and n-tile, K longer than the
// array (PSUM accumulation), W resident in SBUF or streamed per n-tile (tc1-8 with 256 x 256 weights), and
// one shape on trn1 with the fast engine.
INSTANTIATE_TEST_SUITE_P(
    Shapes, Linear,
    ::testing::Values(Case{"tc1-16", 64, 48, 40}, Case{"tc1-16", 13, 7, 21}, Case{"tc1-16", 600, 20, 70},
                      Case{"tc1-16", 100, 33, 50, ActFunc::kRelu, false},
                      Case{"tc1-16", 70, 40, 33, ActFunc::kIdentity, true},
                      Case{"tc1-16", 90, 17, 48, ActFunc::kGeluErf, false}, Case{"tc1-8", 64, 256, 256},
                      Case{"tc1-8", 130, 12, 9, ActFunc::kSilu, true}, Case{"tc1-32", 200, 70, 100},
                      Case{"trn1", 256, 192, 300, ActFunc::kGeluTanh, true, TensorEngineKind::kFast}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::ostringstream os;
      os << i.param;
      std::string s = os.str();
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

TEST(LinearBuild, NamesTheTileThatDoesNotFitWhenTheKernelIsBuilt) {
  const DeviceConfig& cfg = find_config("tc1-8");  // 16 KiB per SBUF partition
  {
    // 12500 bias columns of 4 bytes
    const std::string w = testing_rig::error_of([&] { kb::build_linear(cfg, 10, 100000, 8); }, ErrorCode::kCapacity);
    EXPECT_NE(w.find("SBUF tile 'bias' (8 partitions x 50000 B per partition) does not fit"), std::string::npos) << w;
    EXPECT_NE(w.find("16384 B per partition"), std::string::npos) << w;
  }
  EXPECT_THROW(kb::build_linear(cfg, 0, 10, 10), Error);
}

// The acceptance kernel's profile: the four kinds of engine overlap, and its trace passes every check.
TEST(LinearProfile, EnginesOverlapAndTheTraceAgreesWithRecordsAndCounters) {
  const DeviceConfig& cfg = find_config("tc1-16");
  const Case c{"tc1-16", 256, 64, 128};
  Device dev(cfg);
  const LinearRun r = run_linear(dev.runtime, cfg, c, true);
  EXPECT_EQ(check(cfg, c, r, r.result.outputs.at("yT").data).mismatches, 0u);
  ASSERT_TRUE(r.result.profile);
  const rt::Profile& p = *r.result.profile;
  EXPECT_EQ(p.info.records_dropped, 0u);
  const test::TraceStats st = test::check_chrome_trace(p, cfg);
  EXPECT_GT(st.waits, 0u);
  const int te = isa::kEngineTensor + 1, se = isa::kEngineScalar + 1, ve = isa::kEngineVector + 1;
  EXPECT_EQ(st.track_names.at(se), "ScalarE");
  EXPECT_EQ(st.track_names.at(ve), "VectorE");
  // 4 feature tiles of 16, one token tile of 256: per tile an activation and a residual add for each half
  // of the tokens (the other slices there are nops that wait).
  size_t activations = 0, adds = 0;
  for (const TraceRecord& rec : p.records) {
    activations += rec.opcode == uint16_t(isa::Opcode::Activation);
    adds += rec.opcode == uint16_t(isa::Opcode::TensorTensor);
  }
  EXPECT_EQ(activations, 8u);
  EXPECT_EQ(adds, 8u);
  // Overlap: ScalarE and VectorE work while TensorE runs the next tile's matmuls, and DMA moves data
  // while TensorE computes.
  std::vector<std::pair<uint64_t, uint64_t>> dma;
  for (auto& [tid, v] : st.intervals)
    if (tid > isa::kEngineDma0) dma.insert(dma.end(), v.begin(), v.end());
  std::sort(dma.begin(), dma.end());
  EXPECT_GT(test::overlap_cycles(st.intervals.at(se), st.intervals.at(te)), 0u);
  EXPECT_GT(test::overlap_cycles(st.intervals.at(ve), st.intervals.at(te)), 0u);
  EXPECT_GT(test::overlap_cycles(st.intervals.at(te), dma), 0u);
  uint64_t macs = 0;
  for (const TraceRecord& rec : p.records) macs += rec.macs;
  EXPECT_EQ(macs, uint64_t(c.m) * c.n * c.k);
  // HBM traffic: every tensor crosses once (W fits SBUF, one m-tile): xT and W bf16, b, rT and yT f32.
  EXPECT_EQ(p.info.hbm_bytes,
            uint64_t(c.k) * c.m * 2 + uint64_t(c.k) * c.n * 2 + uint64_t(c.n) * 4 + 2 * uint64_t(c.n) * c.m * 4);
  EXPECT_EQ(p.info.hbm_bytes_per_cycle, cfg.hbm_bytes_per_cycle);
  // The same inputs give the same cycles and the same trace.
  const LinearRun again = run_linear(dev.runtime, cfg, c, true);
  EXPECT_EQ(again.result.cycles, r.result.cycles);
  EXPECT_EQ(again.result.profile->records, p.records);
}

}  // namespace
}  // namespace tcemu
