// Profiles: the Chrome/Perfetto trace of a real run is valid trace-event JSON, its slices agree with the
// device's trace records and counters, and the file alone reproduces the summary.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "inproc_transport.h"
#include "tcemu/isa.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/rt/profile.h"
#include "tcemu/rt/runtime.h"
#include "trace_checks.h"

namespace tcemu {
namespace {

using nlohmann::json;

rt::RunResult profiled_gemm(rt::Runtime& runtime, const DeviceConfig& cfg, int M, int N, int K) {
  auto lm = runtime.load(kb::build_gemm(cfg, M, N, K));
  rt::TensorMap in;
  in["a"] = {{M, K}, std::vector<float>(size_t(M) * K, 0.5f)};
  in["b"] = {{K, N}, std::vector<float>(size_t(K) * N, 0.25f)};
  rt::RunOptions opts;
  opts.profile = true;
  return runtime.run(*lm, in, opts);
}

TEST(Profile, ChromeTraceIsValidAndAgreesWithRecordsAndCounters) {
  const DeviceConfig& cfg = find_config("tc1-8");
  drv::InProcessTransport transport(cfg);
  drv::Driver driver(transport);
  rt::Runtime runtime(driver);
  rt::RunResult res = profiled_gemm(runtime, cfg, 40, 72, 50);
  ASSERT_TRUE(res.profile);
  const rt::Profile& p = *res.profile;
  const size_t instructions = kb::build_gemm(cfg, 40, 72, 50).instruction_count();
  ASSERT_EQ(p.records.size(), instructions) << "one record per instruction";
  EXPECT_EQ(p.info.records_dropped, 0u);
  EXPECT_EQ(p.info.cycles, res.cycles);

  const test::TraceStats st = test::check_chrome_trace(p, cfg);
  EXPECT_GT(st.counters, 0u);
  EXPECT_GT(st.waits, 0u) << "the GEMM's engines wait on each other";
  EXPECT_EQ(st.track_names.at(isa::kEngineTensor + 1), "TensorE");
  EXPECT_EQ(st.track_names.at(isa::kEngineDma0 + 1), "DMA q0");
  // TensorE's busy cycles are exactly its streamed columns: sum over matmuls of n.
  uint64_t macs = 0;
  for (const TraceRecord& r : p.records) macs += r.macs;
  EXPECT_EQ(macs, 40u * 72 * 50);

  rt::Summary a = rt::summarize(p);
  EXPECT_NEAR(a.te_utilization, double(macs) / (double(res.cycles) * 64), 1e-12);
  EXPECT_NE(rt::format_summary(a).find("bound by"), std::string::npos);
}

TEST(Profile, SameRunSameTrace) {
  const DeviceConfig& cfg = find_config("tc1-8");
  drv::InProcessTransport transport(cfg);
  drv::Driver driver(transport);
  rt::Runtime runtime(driver);
  rt::RunResult a = profiled_gemm(runtime, cfg, 16, 16, 30);
  rt::RunResult b = profiled_gemm(runtime, cfg, 16, 16, 30);
  EXPECT_EQ(a.profile->records, b.profile->records);
  EXPECT_EQ(rt::chrome_trace_json(*a.profile), rt::chrome_trace_json(*b.profile));
}

TEST(Profile, MalformedFilesAreRejectedWithTheirName) {
  try {
    rt::profile_from_chrome_json("{\"traceEvents\": []}", "t.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.json: the file has no 'otherData'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rt::profile_from_chrome_json("not json", "x.json"), Error);
}

}  // namespace
}  // namespace tcemu
