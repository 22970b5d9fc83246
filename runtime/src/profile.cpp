#include "tcemu/rt/profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "tcemu/error.h"
#include "tcemu/isa.h"

namespace tcemu::rt {

using nlohmann::json;

namespace {

constexpr int kProfileFormat = 1;
constexpr int kWaitTrackBase = 100;  // tid of engine e's semaphore-wait track: kWaitTrackBase + e
constexpr int kCounterBuckets = 200;
// Occupancy counter tracks: one event per OccupancySample on each, the value in KiB (bytes / 1024, exact in
// a double); profile_from_chrome_json recovers bytes and cycles exactly from value and ts.
constexpr const char* kSbufLiveCounter = "SBUF live KiB";
constexpr const char* kPsumLiveCounter = "PSUM live KiB";

std::string mnemonic(uint16_t opcode) {
  const isa::OpcodeInfo* o = isa::find_opcode(uint8_t(opcode));
  return o ? o->mnemonic : fmt::format("op_0x{:02x}", opcode);
}

int track_of(int engine) { return engine + 1; }  // tid 0 is avoided: some viewers treat it specially

}  // namespace

std::string engine_display_name(int engine) {
  if (engine == isa::kEngineTensor) return "TensorE";
  if (engine == isa::kEngineVector) return "VectorE";
  if (engine == isa::kEngineScalar) return "ScalarE";
  if (engine >= isa::kEngineDma0 && engine < isa::kMaxEngines) return fmt::format("DMA q{}", engine - isa::kEngineDma0);
  return isa::engine_name(engine);
}

Summary summarize(const Profile& p, size_t slowest) {
  Summary s;
  s.info = p.info;
  std::map<int, EngineSummary> per;
  for (const TraceRecord& r : p.records) {
    EngineSummary& e = per[r.engine];
    e.engine = r.engine;
    e.instructions++;
    e.busy += r.end - r.start;
    e.stall += r.wait_cycles;
    s.macs += r.macs;
    if (r.engine >= isa::kEngineDma0) s.dma_bytes += r.bytes;
  }
  const double cycles = double(std::max<uint64_t>(p.info.cycles, 1));
  for (auto& [id, e] : per) {
    e.name = engine_display_name(id);
    e.busy_fraction = double(e.busy) / cycles;
    s.engines.push_back(e);
  }
  s.te_utilization = double(s.macs) / (cycles * std::max(1, p.info.rows) * std::max(1, p.info.cols));
  s.dma_bytes_per_cycle = double(s.dma_bytes) / cycles;
  s.dma_peak_bytes_per_cycle = double(p.info.dma_queues) * p.info.dma_bytes_per_cycle;
  s.hbm_bytes_per_cycle = double(p.info.hbm_bytes) / cycles;
  std::vector<size_t> order(p.records.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return p.records[a].end - p.records[a].start > p.records[b].end - p.records[b].start;
  });
  for (size_t i = 0; i < order.size() && i < slowest; ++i) {
    const TraceRecord& r = p.records[order[i]];
    s.slowest.push_back({r.engine, r.pc, mnemonic(r.opcode), order[i] < p.operands.size() ? p.operands[order[i]] : "",
                         r.end - r.start, r.wait_cycles});
  }
  const EngineSummary* top = nullptr;
  for (const auto& e : s.engines)
    if (!top || e.busy > top->busy) top = &e;
  s.bound_by = top ? fmt::format("{} ({:.1f}% busy)", top->name, 100.0 * top->busy_fraction) : "nothing ran";
  // HBM is shared by the queues: a queue waiting for its share of HBM counts as busy, so when the busiest
  // engine is a DMA queue and HBM carries at least 80% of its peak (or when HBM is busier than every
  // engine), HBM is what bounds the run.
  const double hbm = p.info.hbm_bytes_per_cycle ? s.hbm_bytes_per_cycle / p.info.hbm_bytes_per_cycle : 0;
  if (top && (hbm > top->busy_fraction || (top->engine >= isa::kEngineDma0 && hbm >= 0.8)))
    s.bound_by = fmt::format("HBM ({:.1f}% of peak)", 100.0 * hbm);
  for (const OccupancySample& o : p.occupancy) {
    if (o.sbuf_bytes > s.sbuf_peak_live_bytes) s.sbuf_peak_live_bytes = o.sbuf_bytes, s.sbuf_peak_cycle = o.cycle;
    if (o.psum_bytes > s.psum_peak_live_bytes) s.psum_peak_live_bytes = o.psum_bytes, s.psum_peak_cycle = o.cycle;
  }
  return s;
}

std::string format_summary(const Summary& s) {
  const ProfileInfo& i = s.info;
  std::string o = fmt::format("profile: {} on {}: {} cycles ({:.2f} us at {} MHz)\n", i.model, i.config, i.cycles,
                              i.clock_mhz ? double(i.cycles) / i.clock_mhz : 0.0, i.clock_mhz);
  o += fmt::format("  {:<10} {:>8} {:>12} {:>7} {:>12}\n", "engine", "instrs", "busy cycles", "busy", "stall cycles");
  for (const auto& e : s.engines)
    o += fmt::format("  {:<10} {:>8} {:>12} {:>6.1f}% {:>12}\n", e.name, e.instructions, e.busy, 100.0 * e.busy_fraction,
                     e.stall);
  o += fmt::format("  TensorE utilisation  {:.1f}%  ({} MACs on a {}x{} array)\n", 100.0 * s.te_utilization, s.macs,
                   i.rows, i.cols);
  o += fmt::format("  DMA bandwidth        {:.2f} B/cycle of {:.0f} peak ({:.1f}%), {} bytes\n", s.dma_bytes_per_cycle,
                   s.dma_peak_bytes_per_cycle,
                   s.dma_peak_bytes_per_cycle > 0 ? 100.0 * s.dma_bytes_per_cycle / s.dma_peak_bytes_per_cycle : 0.0,
                   s.dma_bytes);
  if (i.hbm_bytes_per_cycle)
    o += fmt::format("  HBM traffic          {:.2f} B/cycle of {} peak shared by the queues ({:.1f}%), {} bytes\n",
                     s.hbm_bytes_per_cycle, i.hbm_bytes_per_cycle,
                     100.0 * s.hbm_bytes_per_cycle / i.hbm_bytes_per_cycle, i.hbm_bytes);
  auto live = [&](const char* what, uint64_t peak, uint64_t capacity, uint64_t cycle) {
    o += fmt::format("  {} live peak       {:.1f} KiB", what, double(peak) / 1024);
    if (capacity)
      o += fmt::format(" of {:.0f} KiB ({:.1f}%)", double(capacity) / 1024, 100.0 * double(peak) / double(capacity));
    if (peak) o += fmt::format(" at cycle {}", cycle);
    o += "\n";
  };
  if (i.sbuf_bytes || s.sbuf_peak_live_bytes) live("SBUF", s.sbuf_peak_live_bytes, i.sbuf_bytes, s.sbuf_peak_cycle);
  if (i.psum_bytes || s.psum_peak_live_bytes) live("PSUM", s.psum_peak_live_bytes, i.psum_bytes, s.psum_peak_cycle);
  o += fmt::format("  bound by             {}\n", s.bound_by);
  if (i.records_dropped) o += fmt::format("  note: {} trace records did not fit the trace buffer\n", i.records_dropped);
  if (!s.slowest.empty()) o += "  slowest instructions:\n";
  for (const auto& x : s.slowest)
    o += fmt::format("    {:>8} cycles  {:<8} pc {:<5} {}{}\n", x.cycles, engine_display_name(x.engine), x.pc,
                     x.operands.empty() ? x.mnemonic : x.operands,
                     x.wait_cycles ? fmt::format("  (waited {} cycles)", x.wait_cycles) : "");
  return o;
}

std::string summary_json(const Summary& s) {
  json j;
  j["model"] = s.info.model;
  j["config"] = s.info.config;
  j["cycles"] = s.info.cycles;
  j["clock_mhz"] = s.info.clock_mhz;
  j["te_utilization"] = s.te_utilization;
  j["macs"] = s.macs;
  j["dma_bytes"] = s.dma_bytes;
  j["dma_bytes_per_cycle"] = s.dma_bytes_per_cycle;
  j["dma_peak_bytes_per_cycle"] = s.dma_peak_bytes_per_cycle;
  j["hbm_bytes"] = s.info.hbm_bytes;
  j["hbm_bytes_per_cycle"] = s.hbm_bytes_per_cycle;
  j["hbm_peak_bytes_per_cycle"] = s.info.hbm_bytes_per_cycle;
  j["sbuf_bytes"] = s.info.sbuf_bytes;
  j["psum_bytes"] = s.info.psum_bytes;
  j["sbuf_peak_live_bytes"] = s.sbuf_peak_live_bytes;
  j["psum_peak_live_bytes"] = s.psum_peak_live_bytes;
  j["sbuf_peak_cycle"] = s.sbuf_peak_cycle;
  j["psum_peak_cycle"] = s.psum_peak_cycle;
  j["bound_by"] = s.bound_by;
  j["records_dropped"] = s.info.records_dropped;
  j["engines"] = json::array();
  for (const auto& e : s.engines)
    j["engines"].push_back({{"engine", e.engine}, {"name", e.name}, {"instructions", e.instructions},
                            {"busy_cycles", e.busy}, {"stall_cycles", e.stall}, {"busy_fraction", e.busy_fraction}});
  j["slowest"] = json::array();
  for (const auto& x : s.slowest)
    j["slowest"].push_back({{"engine", engine_display_name(x.engine)}, {"pc", x.pc}, {"mnemonic", x.mnemonic},
                            {"operands", x.operands}, {"cycles", x.cycles}, {"wait_cycles", x.wait_cycles}});
  return j.dump();
}

std::string chrome_trace_json(const Profile& p) {
  const double mhz = p.info.clock_mhz ? double(p.info.clock_mhz) : 1.0;
  auto us = [&](uint64_t cycles) { return double(cycles) / mhz; };
  json events = json::array();
  events.push_back({{"ph", "M"}, {"pid", 1}, {"name", "process_name"},
                    {"args", {{"name", fmt::format("TC1 {} - {}", p.info.config, p.info.model)}}}});
  std::map<int, bool> engines;
  for (const TraceRecord& r : p.records) engines[r.engine] = true;
  for (auto& [e, _] : engines) {
    events.push_back({{"ph", "M"}, {"pid", 1}, {"tid", track_of(e)}, {"name", "thread_name"},
                      {"args", {{"name", engine_display_name(e)}}}});
    events.push_back({{"ph", "M"}, {"pid", 1}, {"tid", track_of(e)}, {"name", "thread_sort_index"},
                      {"args", {{"sort_index", 2 * e}}}});
    events.push_back({{"ph", "M"}, {"pid", 1}, {"tid", kWaitTrackBase + e}, {"name", "thread_name"},
                      {"args", {{"name", engine_display_name(e) + " semaphore waits"}}}});
    events.push_back({{"ph", "M"}, {"pid", 1}, {"tid", kWaitTrackBase + e}, {"name", "thread_sort_index"},
                      {"args", {{"sort_index", 2 * e + 1}}}});
  }
  for (size_t i = 0; i < p.records.size(); ++i) {
    const TraceRecord& r = p.records[i];
    json args = {{"engine", r.engine},       {"opcode", r.opcode}, {"pc", r.pc},       {"start_cycle", r.start},
                 {"end_cycle", r.end},       {"cycles", r.end - r.start},            {"wait_cycles", r.wait_cycles},
                 {"bytes", r.bytes},         {"macs", r.macs},     {"wait_sem", r.wait_sem}, {"wait_value", r.wait_value},
                 {"signal_sem", r.signal_sem}};
    if (i < p.operands.size() && !p.operands[i].empty()) args["operands"] = p.operands[i];
    events.push_back({{"ph", "X"}, {"pid", 1}, {"tid", track_of(r.engine)}, {"name", mnemonic(r.opcode)},
                      {"cat", "instruction"}, {"ts", us(r.start)}, {"dur", us(r.end - r.start)}, {"args", args}});
    if (r.wait_cycles)
      events.push_back({{"ph", "X"}, {"pid", 1}, {"tid", kWaitTrackBase + r.engine},
                        {"name", fmt::format("wait s{} >= {}", r.wait_sem, r.wait_value)}, {"cat", "semaphore"},
                        {"ts", us(r.start - r.wait_cycles)}, {"dur", us(r.wait_cycles)},
                        {"args", {{"pc", r.pc}, {"for", mnemonic(r.opcode)}, {"wait_cycles", r.wait_cycles}}}});
  }
  // Counter tracks over fixed buckets: TensorE utilisation and DMA bandwidth (records spread evenly
  // over their [start, end) windows).
  const uint64_t cycles = std::max<uint64_t>(p.info.cycles, 1);
  const uint64_t bucket = std::max<uint64_t>(1, (cycles + kCounterBuckets - 1) / kCounterBuckets);
  const size_t nb = size_t((cycles + bucket - 1) / bucket);
  std::vector<double> macs(nb, 0), bytes(nb, 0);
  for (const TraceRecord& r : p.records) {
    if (r.end <= r.start || (r.macs == 0 && (r.engine < isa::kEngineDma0 || r.bytes == 0))) continue;
    const double len = double(r.end - r.start);
    for (uint64_t b = r.start / bucket; b < nb && b * bucket < r.end; ++b) {
      double lo = double(std::max(r.start, b * bucket)), hi = double(std::min(r.end, (b + 1) * bucket));
      double share = (hi - lo) / len;
      macs[b] += share * double(r.macs);
      if (r.engine >= isa::kEngineDma0) bytes[b] += share * double(r.bytes);
    }
  }
  const double peak_macs = double(bucket) * std::max(1, p.info.rows) * std::max(1, p.info.cols);
  for (size_t b = 0; b < nb; ++b) {
    events.push_back({{"ph", "C"}, {"pid", 1}, {"name", "TensorE utilisation %"}, {"ts", us(b * bucket)},
                      {"args", {{"value", 100.0 * macs[b] / peak_macs}}}});
    events.push_back({{"ph", "C"}, {"pid", 1}, {"name", "DMA bandwidth B/cycle"}, {"ts", us(b * bucket)},
                      {"args", {{"value", bytes[b] / double(bucket)}}}});
  }
  for (const OccupancySample& o : p.occupancy) {
    events.push_back({{"ph", "C"}, {"pid", 1}, {"name", kSbufLiveCounter}, {"ts", us(o.cycle)},
                      {"args", {{"value", double(o.sbuf_bytes) / 1024}}}});
    events.push_back({{"ph", "C"}, {"pid", 1}, {"name", kPsumLiveCounter}, {"ts", us(o.cycle)},
                      {"args", {{"value", double(o.psum_bytes) / 1024}}}});
  }
  json other = {{"tcemu_profile_format", kProfileFormat}, {"model", p.info.model},     {"config", p.info.config},
                {"rows", p.info.rows},                    {"cols", p.info.cols},       {"dma_queues", p.info.dma_queues},
                {"clock_mhz", p.info.clock_mhz},          {"dma_bytes_per_cycle", p.info.dma_bytes_per_cycle},
                {"cycles", p.info.cycles},                {"records_dropped", p.info.records_dropped},
                {"sbuf_bytes", p.info.sbuf_bytes},        {"psum_bytes", p.info.psum_bytes},
                {"hbm_bytes_per_cycle", p.info.hbm_bytes_per_cycle}, {"hbm_bytes", p.info.hbm_bytes}};
  if (!p.counter_busy.empty()) other["counter_busy_cycles"] = p.counter_busy;
  json doc = {{"traceEvents", events}, {"displayTimeUnit", "ns"}, {"otherData", other}};
  return doc.dump(1);
}

Profile profile_from_chrome_json(const std::string& text, const std::string& source) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) throw Error(ErrorCode::kFormat, source + ": not valid JSON");
  auto need = [&](const json& j, const char* key, const char* where) -> const json& {
    if (!j.is_object() || !j.contains(key))
      throw Error(ErrorCode::kFormat, fmt::format("{}: {} has no '{}' (not a tcemu profile?)", source, where, key));
    return j.at(key);
  };
  try {
    const json& other = need(doc, "otherData", "the file");
    if (need(other, "tcemu_profile_format", "otherData").get<int>() != kProfileFormat)
      throw Error(ErrorCode::kFormat, fmt::format("{}: profile format {} not supported (this build reads {})", source,
                                                  other.at("tcemu_profile_format").dump(), kProfileFormat));
    Profile p;
    p.info.model = need(other, "model", "otherData").get<std::string>();
    p.info.config = need(other, "config", "otherData").get<std::string>();
    p.info.rows = need(other, "rows", "otherData").get<int>();
    p.info.cols = need(other, "cols", "otherData").get<int>();
    p.info.dma_queues = need(other, "dma_queues", "otherData").get<int>();
    p.info.clock_mhz = need(other, "clock_mhz", "otherData").get<uint32_t>();
    p.info.dma_bytes_per_cycle = need(other, "dma_bytes_per_cycle", "otherData").get<uint32_t>();
    p.info.cycles = need(other, "cycles", "otherData").get<uint64_t>();
    p.info.records_dropped = need(other, "records_dropped", "otherData").get<uint64_t>();
    if (other.contains("counter_busy_cycles")) p.counter_busy = other.at("counter_busy_cycles").get<std::vector<uint64_t>>();
    // Optional (files written before occupancy counters existed lack them).
    p.info.sbuf_bytes = other.value("sbuf_bytes", uint64_t(0));
    p.info.psum_bytes = other.value("psum_bytes", uint64_t(0));
    p.info.hbm_bytes_per_cycle = other.value("hbm_bytes_per_cycle", uint32_t(0));
    p.info.hbm_bytes = other.value("hbm_bytes", uint64_t(0));
    const double mhz = p.info.clock_mhz ? double(p.info.clock_mhz) : 1.0;
    std::map<uint64_t, std::pair<std::optional<uint64_t>, std::optional<uint64_t>>> live;  // cycle -> sbuf, psum
    for (const json& e : need(doc, "traceEvents", "the file")) {
      const std::string name = e.value("name", "");
      if (e.value("ph", "") == "C" && (name == kSbufLiveCounter || name == kPsumLiveCounter)) {
        const double ts = need(e, "ts", "a counter event").get<double>();
        const double kib = need(need(e, "args", "a counter event"), "value", "a counter's args").get<double>();
        auto& slot = live[uint64_t(std::llround(ts * mhz))];
        (name == kSbufLiveCounter ? slot.first : slot.second) = uint64_t(std::llround(kib * 1024));
        continue;
      }
      if (e.value("ph", "") != "X" || e.value("cat", "") != "instruction") continue;
      const json& a = need(e, "args", "an instruction slice");
      TraceRecord r;
      r.engine = a.at("engine").get<uint16_t>();
      r.opcode = a.at("opcode").get<uint16_t>();
      r.pc = a.at("pc").get<uint32_t>();
      r.start = a.at("start_cycle").get<uint64_t>();
      r.end = a.at("end_cycle").get<uint64_t>();
      r.wait_cycles = a.at("wait_cycles").get<uint64_t>();
      r.bytes = a.at("bytes").get<uint64_t>();
      r.macs = a.at("macs").get<uint64_t>();
      r.wait_sem = a.at("wait_sem").get<uint32_t>();
      r.wait_value = a.at("wait_value").get<uint32_t>();
      r.signal_sem = a.at("signal_sem").get<uint32_t>();
      p.records.push_back(r);
      p.operands.push_back(a.value("operands", ""));
    }
    // Each track holds its value until its next event.
    OccupancySample now;
    for (const auto& [cycle, v] : live) {
      now.cycle = cycle;
      if (v.first) now.sbuf_bytes = *v.first;
      if (v.second) now.psum_bytes = *v.second;
      p.occupancy.push_back(now);
    }
    return p;
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kFormat, fmt::format("{}: malformed profile: {}", source, e.what()));
  }
}

}  // namespace tcemu::rt
