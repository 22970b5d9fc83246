// Checks shared by the profile tests: a profile's Chrome/Perfetto trace is valid trace-event JSON ("JSON
// object format"), its instruction slices agree with the device's trace records, slices on one engine
// track never overlap, the slices' busy cycles are the device's busy counters, and the file alone gives
// back the same records and summary.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/rt/profile.h"

namespace tcemu::test {

struct TraceStats {
  std::map<int, std::string> track_names;          // tid -> name
  std::map<std::string, size_t> slices_per_track;  // instruction slices per track name
  size_t slices = 0, counters = 0, waits = 0;
  // Per engine track: [start, end) cycles of the instructions that take time, sorted.
  std::map<int, std::vector<std::pair<uint64_t, uint64_t>>> intervals;
};

inline TraceStats check_chrome_trace(const rt::Profile& p, const DeviceConfig& cfg) {
  using nlohmann::json;
  TraceStats st;
  json doc = json::parse(rt::chrome_trace_json(p));
  EXPECT_TRUE(doc.is_object());
  EXPECT_TRUE(doc["traceEvents"].is_array());
  if (!doc["traceEvents"].is_array()) return st;
  std::map<int, uint64_t> busy;  // engine -> cycles
  for (const json& e : doc["traceEvents"]) {
    // Every event has ph, pid, name; complete events numeric ts/dur >= 0 and a tid; metadata events name
    // their process/thread; counter events carry numeric args.
    if (!(e.contains("ph") && e["ph"].is_string() && e.contains("pid") && e.contains("name"))) {
      ADD_FAILURE() << "malformed event " << e.dump();
      continue;
    }
    const std::string ph = e["ph"];
    EXPECT_TRUE(ph == "X" || ph == "M" || ph == "C") << ph;
    if (ph == "M" && e["name"] == "thread_name") st.track_names[e["tid"]] = e["args"]["name"];
    if (ph == "C") {
      ++st.counters;
      EXPECT_TRUE(e["ts"].is_number());
      for (auto& [k, v] : e["args"].items()) EXPECT_TRUE(v.is_number()) << k;
    }
    if (ph != "X") continue;
    if (!(e["ts"].is_number() && e["dur"].is_number() && e.contains("tid"))) {
      ADD_FAILURE() << "malformed slice " << e.dump();
      continue;
    }
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    if (e["cat"] == "semaphore") {
      ++st.waits;
      continue;
    }
    ++st.slices;
    const json& a = e["args"];
    const uint64_t s = a["start_cycle"], en = a["end_cycle"];
    const int tid = e["tid"].get<int>();
    EXPECT_NEAR(e["ts"].get<double>(), double(s) / cfg.clock_mhz, 1e-6);
    EXPECT_NEAR(e["dur"].get<double>(), double(en - s) / cfg.clock_mhz, 1e-6);
    EXPECT_EQ(tid, a["engine"].get<int>() + 1);
    // A zero-length slice is a sync point (a nop that only waits); it nests inside the enclosing slice.
    // Instructions that take time never overlap on their engine.
    if (en > s) st.intervals[tid].push_back({s, en});
    busy[a["engine"]] += en - s;
  }
  EXPECT_EQ(st.slices, p.records.size()) << "one slice per trace record";
  for (auto& [tid, v] : st.intervals) {
    std::sort(v.begin(), v.end());
    for (size_t i = 1; i < v.size(); ++i)
      EXPECT_LE(v[i - 1].second, v[i].first) << "overlapping slices on track " << st.track_names[tid];
  }
  for (const TraceRecord& r : p.records) ++st.slices_per_track[st.track_names[r.engine + 1]];
  // The slices' busy cycles are the device's own busy counters.
  EXPECT_EQ(p.counter_busy.size(), size_t(isa::kMaxEngines));
  for (int e = 0; e < isa::kMaxEngines && e < int(p.counter_busy.size()); ++e)
    EXPECT_EQ(busy[e], p.counter_busy[e]) << isa::engine_name(e);
  // The file alone reproduces the records and the summary.
  rt::Profile back = rt::profile_from_chrome_json(doc.dump(), "mem");
  EXPECT_EQ(back.records, p.records);
  EXPECT_EQ(rt::summary_json(rt::summarize(p)), rt::summary_json(rt::summarize(back)));
  return st;
}

// Cycles during which both tracks have an instruction running (their intervals overlap).
inline uint64_t overlap_cycles(const std::vector<std::pair<uint64_t, uint64_t>>& a,
                               const std::vector<std::pair<uint64_t, uint64_t>>& b) {
  uint64_t total = 0;
  size_t j = 0;
  for (const auto& [s, e] : a) {
    while (j < b.size() && b[j].second <= s) ++j;
    for (size_t k = j; k < b.size() && b[k].first < e; ++k) total += std::min(e, b[k].second) - std::max(s, b[k].first);
  }
  return total;
}

}  // namespace tcemu::test
