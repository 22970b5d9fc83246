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
  size_t instructions = 0;
  for (const auto& s : kb::build_gemm(cfg, 40, 72, 50).streams) instructions += s.instrs.size();
  ASSERT_EQ(p.records.size(), instructions) << "one record per instruction";
  EXPECT_EQ(p.info.records_dropped, 0u);
  EXPECT_EQ(p.info.cycles, res.cycles);

  json doc = json::parse(rt::chrome_trace_json(p));
  // Trace-event "JSON object format": traceEvents array; every event has ph, pid, name; complete
  // events have numeric ts/dur >= 0 and a tid; metadata events name their process/thread.
  ASSERT_TRUE(doc.is_object());
  ASSERT_TRUE(doc["traceEvents"].is_array());
  std::map<int, std::string> track_names;
  std::map<int, std::vector<std::pair<uint64_t, uint64_t>>> slices;  // tid -> [start, end) cycles
  std::map<int, uint64_t> busy;                                       // engine -> cycles
  size_t n_slices = 0, n_counters = 0, n_waits = 0;
  for (const json& e : doc["traceEvents"]) {
    ASSERT_TRUE(e.contains("ph") && e["ph"].is_string()) << e.dump();
    ASSERT_TRUE(e.contains("pid") && e.contains("name")) << e.dump();
    const std::string ph = e["ph"];
    ASSERT_TRUE(ph == "X" || ph == "M" || ph == "C") << ph;
    if (ph == "M" && e["name"] == "thread_name") track_names[e["tid"]] = e["args"]["name"];
    if (ph == "C") {
      ++n_counters;
      ASSERT_TRUE(e["ts"].is_number());
      for (auto& [k, v] : e["args"].items()) ASSERT_TRUE(v.is_number()) << k;
    }
    if (ph != "X") continue;
    ASSERT_TRUE(e["ts"].is_number() && e["dur"].is_number() && e.contains("tid")) << e.dump();
    ASSERT_GE(e["dur"].get<double>(), 0.0);
    if (e["cat"] == "semaphore") {
      ++n_waits;
      continue;
    }
    ++n_slices;
    const json& a = e["args"];
    uint64_t s = a["start_cycle"], en = a["end_cycle"];
    EXPECT_NEAR(e["ts"].get<double>(), double(s) / cfg.clock_mhz, 1e-6);
    EXPECT_NEAR(e["dur"].get<double>(), double(en - s) / cfg.clock_mhz, 1e-6);
    EXPECT_EQ(e["tid"].get<int>(), a["engine"].get<int>() + 1);
    // A zero-length slice is a sync point (a nop that only waits), which on TensorE happens while
    // matmuls stream; it nests inside the enclosing slice. Instructions that take time never overlap.
    if (en > s) slices[e["tid"]].push_back({s, en});
    busy[a["engine"]] += en - s;
  }
  EXPECT_EQ(n_slices, p.records.size());
  EXPECT_GT(n_counters, 0u);
  EXPECT_GT(n_waits, 0u) << "the GEMM's engines wait on each other";
  EXPECT_EQ(track_names[isa::kEngineTensor + 1], "TensorE");
  EXPECT_EQ(track_names[isa::kEngineDma0 + 1], "DMA q0");
  // Slices on one engine track never overlap.
  for (auto& [tid, v] : slices) {
    std::sort(v.begin(), v.end());
    for (size_t i = 1; i < v.size(); ++i) ASSERT_LE(v[i - 1].second, v[i].first) << "track " << track_names[tid];
  }
  // The slices' busy cycles are the device's own busy counters.
  ASSERT_EQ(p.counter_busy.size(), size_t(isa::kMaxEngines));
  for (int e = 0; e < isa::kMaxEngines; ++e) EXPECT_EQ(busy[e], p.counter_busy[e]) << isa::engine_name(e);
  // TensorE's busy cycles are exactly its streamed columns: sum over matmuls of n.
  uint64_t macs = 0;
  for (const TraceRecord& r : p.records) macs += r.macs;
  EXPECT_EQ(macs, 40u * 72 * 50);

  // The file alone reproduces the summary.
  rt::Profile back = rt::profile_from_chrome_json(doc.dump(), "mem");
  EXPECT_EQ(back.records, p.records);
  rt::Summary a = rt::summarize(p), b = rt::summarize(back);
  EXPECT_EQ(rt::summary_json(a), rt::summary_json(b));
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
