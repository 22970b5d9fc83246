// SBUF/PSUM occupancy counters (tcemu/rt/occupancy.h, docs/profiling.md "Occupancy"): tiny programs whose
// step function is written down by hand from their trace records' cycles, a per-byte reference
// implementation of the definition on a real GEMM, the GEMM's peaks against the capacities, the Chrome
// JSON round trip and determinism. One device per process.
#include "tcemu/rt/occupancy.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "inproc_transport.h"
#include "tcemu/footprint.h"
#include "tcemu/isa.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/kb/linear.h"
#include "tcemu/rt/profile.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace {

using isa::Instr;
using isa::Opcode;
using isa::Space;
using Samples = std::vector<rt::OccupancySample>;

struct Fixture {
  explicit Fixture(const char* config) : cfg(find_config(config)), transport(cfg), driver(transport), runtime(driver) {}
  DeviceConfig cfg;
  drv::InProcessTransport transport;
  drv::Driver driver;
  rt::Runtime runtime;

  uint64_t sbuf(uint64_t p, uint64_t b) const { return isa::make_addr(Space::kSbuf, p * cfg.sbuf_partition_bytes + b); }
  uint64_t psum(uint64_t p, uint64_t b) const {
    return isa::make_addr(Space::kPsum, p * cfg.psum_partition_bytes() + b);
  }
  static uint64_t hbm(uint64_t off) { return isa::make_addr(Space::kHbm, off); }

  rt::Profile profile(const model::Model& m, const rt::TensorMap& in = {}) {
    auto lm = runtime.load(m);
    rt::RunOptions opts;
    opts.profile = true;
    rt::RunResult r = runtime.run(*lm, in, opts);
    runtime.unload(*lm);
    return *r.profile;
  }
};

model::Model program(const DeviceConfig& cfg, std::vector<model::Stream> streams) {
  model::Model m;
  m.name = "occupancy";
  m.config_name = cfg.name;
  m.array_rows = cfg.rows, m.array_cols = cfg.cols;
  m.hbm_window_bytes = 64 << 10;
  m.streams = std::move(streams);
  return m;
}

// `count` runs of `bytes`, one per partition on the SBUF/PSUM side(s).
Instr copy(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t count, uint64_t src_stride, uint64_t dst_stride) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes, in.d1_count = count, in.d2_count = 1;
  in.src_d1_stride = src_stride, in.dst_d1_stride = dst_stride;
  return in;
}
Instr waits(Instr in, uint64_t sem, uint64_t value = 1) {
  in.wait_en = 1, in.wait_sem = sem, in.wait_value = value;
  return in;
}
Instr signals(Instr in, uint64_t sem) {
  in.signal_en = 1, in.signal_sem = sem, in.signal_value = 1;
  return in;
}

uint64_t end_of(const rt::Profile& p, int engine, uint32_t pc) {
  for (const TraceRecord& r : p.records)
    if (r.engine == engine && r.pc == pc) return r.end;
  ADD_FAILURE() << "no record for " << isa::engine_name(engine) << " pc " << pc;
  return 0;
}

std::string show(const Samples& v) {
  std::string s;
  for (const auto& o : v)
    s += "(" + std::to_string(o.cycle) + ", " + std::to_string(o.sbuf_bytes) + ", " + std::to_string(o.psum_bytes) +
         ") ";
  return s;
}

// One DMA queue, in order: load 2 partitions x 1 KiB, store partition 0, load partition 0 again, store both,
// load 512 bytes into partition 2 that nothing reads.
TEST(Occupancy, DmaProgramByHand) {
  Fixture f("tc1-8");
  const uint64_t pb = f.cfg.sbuf_partition_bytes;
  const int q = isa::kEngineDma0;
  rt::Profile p = f.profile(program(
      f.cfg, {{q,
               {copy(f.hbm(0), f.sbuf(0, 0), 1024, 2, 1024, pb), copy(f.sbuf(0, 0), f.hbm(8192), 1024, 1, 0, 0),
                copy(f.hbm(4096), f.sbuf(0, 0), 1024, 1, 0, 0), copy(f.sbuf(0, 0), f.hbm(16384), 1024, 2, pb, 1024),
                copy(f.hbm(0), f.sbuf(2, 0), 512, 1, 0, 0)}}}));
  ASSERT_EQ(p.records.size(), 5u);
  const uint64_t t1 = end_of(p, q, 0), t2 = end_of(p, q, 1), t3 = end_of(p, q, 2), t4 = end_of(p, q, 3);
  ASSERT_TRUE(0 < t1 && t1 < t2 && t2 < t3 && t3 < t4) << t1 << " " << t2 << " " << t3 << " " << t4;
  // Partition 0: live [t1, t2) (read by the first store), then [t3, t4); partition 1: [t1, t4); partition 2:
  // never read, never live.
  const Samples want = {{0, 0, 0}, {t1, 2048, 0}, {t2, 1024, 0}, {t3, 2048, 0}, {t4, 0, 0}};
  EXPECT_EQ(p.occupancy, want) << "got  " << show(p.occupancy) << "\nwant " << show(want);
  EXPECT_EQ(p.info.sbuf_bytes, f.cfg.sbuf_bytes());
  EXPECT_EQ(p.info.psum_bytes, f.cfg.psum_bytes());
  const rt::Summary s = rt::summarize(p);
  EXPECT_EQ(s.sbuf_peak_live_bytes, 2048u);
  EXPECT_EQ(s.sbuf_peak_cycle, t1);
  EXPECT_EQ(s.psum_peak_live_bytes, 0u);
  EXPECT_NE(rt::format_summary(s).find("SBUF live peak       2.0 KiB of 128 KiB (1.6%) at cycle " + std::to_string(t1)),
            std::string::npos)
      << rt::format_summary(s);
}

// Load W and X, two matmuls (the second accumulates: PSUM stays live through it), evict PSUM to SBUF, store.
TEST(Occupancy, MatmulProgramByHandKeepsAccumulatorsLive) {
  Fixture f("tc1-8");
  const uint64_t pb = f.cfg.sbuf_partition_bytes, qb = f.cfg.psum_partition_bytes();
  const int q = isa::kEngineDma0, te = isa::kEngineTensor;
  Instr mm;
  mm.opcode = Opcode::Matmul;
  mm.k = 4, mm.m = 4, mm.n = 8, mm.st_off = 0, mm.mv_off = 64, mm.out_off = 0;  // W [0, 8), X [64, 80)
  Instr acc = mm;
  acc.accumulate = 1;
  rt::Profile p =
      f.profile(program(f.cfg, {{q,
                                 {signals(copy(f.hbm(0), f.sbuf(0, 0), 80, 4, 80, pb), 1),    // 4 x 80 bytes
                                  waits(copy(f.psum(0, 0), f.sbuf(4, 0), 32, 4, qb, pb), 2),  // evict 4 x 8 fp32
                                  copy(f.sbuf(4, 0), f.hbm(4096), 32, 4, pb, 32)}},           // store
                                {te, {waits(mm, 1), signals(acc, 2)}}}));
  const uint64_t t_load = end_of(p, q, 0), t_mm = end_of(p, te, 0), t_acc = end_of(p, te, 1);
  const uint64_t t_evict = end_of(p, q, 1), t_store = end_of(p, q, 2);
  ASSERT_TRUE(t_load < t_mm && t_mm < t_acc && t_acc < t_evict && t_evict < t_store);
  // SBUF: the 8 + 16 bytes per partition the matmuls read (bytes 8..63 are loaded but never read) until the
  // second matmul; PSUM: 4 x 32 bytes from the first matmul to the eviction; the evicted copy until the store.
  const Samples want = {{0, 0, 0},       {t_load, 96, 0},   {t_mm, 96, 128},
                        {t_acc, 0, 128}, {t_evict, 128, 0}, {t_store, 0, 0}};
  EXPECT_EQ(p.occupancy, want) << "got  " << show(p.occupancy) << "\nwant " << show(want);
}

// The definition, byte by byte: per byte the last write and the last read since, in the order of docs.
Samples reference(const DeviceConfig& cfg, const model::Model& m, const std::vector<TraceRecord>& records) {
  struct Byte {
    int64_t written = -1, read = -1;
  };
  std::vector<Byte> sbuf(cfg.sbuf_bytes()), psum(cfg.psum_bytes());
  std::map<uint64_t, std::pair<int64_t, int64_t>> delta;
  auto close = [&](Byte& b, bool is_psum) {
    if (b.written >= 0 && b.read > b.written) {
      (is_psum ? delta[uint64_t(b.written)].second : delta[uint64_t(b.written)].first) += 1;
      (is_psum ? delta[uint64_t(b.read)].second : delta[uint64_t(b.read)].first) -= 1;
    }
  };
  // Effective time: end cycle, not before the engine's previous record; ties in record order.
  std::vector<std::pair<uint64_t, size_t>> order;
  std::map<int, uint64_t> last;
  for (size_t i = 0; i < records.size(); ++i) {
    last[records[i].engine] = std::max(last[records[i].engine], records[i].end);
    order.push_back({last[records[i].engine], i});
  }
  std::sort(order.begin(), order.end());
  for (const auto& [t, i] : order) {
    const TraceRecord& r = records[i];
    const isa::Instr* in = nullptr;
    for (const auto& s : m.streams)
      if (s.engine == r.engine && r.pc < s.instrs.size()) in = &s.instrs[r.pc];
    if (!in) continue;
    const isa::Footprint f = isa::footprint(cfg, *in);
    auto bytes = [&](const isa::Region& g) -> Byte* {
      if (g.space == Space::kSbuf) return &sbuf[g.partition * cfg.sbuf_partition_bytes];
      if (g.space == Space::kPsum) return &psum[g.partition * cfg.psum_partition_bytes()];
      return nullptr;
    };
    for (const auto& g : f.reads)
      if (Byte* base = bytes(g))
        for (uint64_t x = g.begin; x < g.end; ++x)
          if (base[x].written >= 0) base[x].read = int64_t(t);
    for (const auto& g : f.writes)
      if (Byte* base = bytes(g))
        for (uint64_t x = g.begin; x < g.end; ++x) {
          close(base[x], g.space == Space::kPsum);
          base[x] = {int64_t(t), -1};
        }
  }
  for (auto& b : sbuf) close(b, false);
  for (auto& b : psum) close(b, true);
  Samples out = {{0, 0, 0}};
  int64_t s = 0, q = 0;
  for (const auto& [cycle, d] : delta) {
    s += d.first, q += d.second;
    if (uint64_t(s) == out.back().sbuf_bytes && uint64_t(q) == out.back().psum_bytes) continue;
    if (cycle == 0)
      out.back() = {0, uint64_t(s), uint64_t(q)};
    else
      out.push_back({cycle, uint64_t(s), uint64_t(q)});
  }
  return out;
}

rt::Profile profiled_gemm(Fixture& f, int M, int N, int K) {
  rt::TensorMap in;
  in["a"] = {{M, K}, std::vector<float>(size_t(M) * K, 0.5f)};
  in["b"] = {{K, N}, std::vector<float>(size_t(K) * N, 0.25f)};
  return f.profile(kb::build_gemm(f.cfg, M, N, K), in);
}

TEST(Occupancy, GemmMatchesThePerByteReference) {
  Fixture f("tc1-8");
  const model::Model m = kb::build_gemm(f.cfg, 40, 72, 50);
  rt::Profile p = profiled_gemm(f, 40, 72, 50);
  const Samples want = reference(f.cfg, m, p.records);
  EXPECT_GT(want.size(), 10u);
  EXPECT_EQ(p.occupancy, want) << "got  " << show(p.occupancy) << "\nwant " << show(want);
}

// The linear layer also runs ScalarE (activation with a bias column, from PSUM) and VectorE (in-place add).
TEST(Occupancy, LinearLayerMatchesThePerByteReference) {
  Fixture f("tc1-8");
  const int M = 24, N = 20, K = 36;
  const model::Model m = kb::build_linear(f.cfg, M, N, K);
  rt::TensorMap in;
  in["xT"] = {{K, M}, std::vector<float>(size_t(K) * M, 0.5f)};
  in["w"] = {{K, N}, std::vector<float>(size_t(K) * N, 0.25f)};
  in["b"] = {{N}, std::vector<float>(size_t(N), 1.0f)};
  in["rT"] = {{N, M}, std::vector<float>(size_t(N) * M, 2.0f)};
  rt::Profile p = f.profile(m, in);
  bool vector = false, scalar = false;
  for (const TraceRecord& r : p.records)
    vector |= r.engine == isa::kEngineVector, scalar |= r.engine == isa::kEngineScalar;
  ASSERT_TRUE(vector && scalar);
  const Samples want = reference(f.cfg, m, p.records);
  EXPECT_GT(want.size(), 10u);
  EXPECT_EQ(p.occupancy, want) << "got  " << show(p.occupancy) << "\nwant " << show(want);
}

TEST(Occupancy, Gemm256PeaksFitTheDeviceAndSurviveTheJsonRoundTrip) {
  Fixture f("tc1-16");
  rt::Profile p = profiled_gemm(f, 256, 256, 256);
  ASSERT_GT(p.occupancy.size(), 1u);
  const rt::Summary s = rt::summarize(p);
  EXPECT_GT(s.sbuf_peak_live_bytes, 0u);
  EXPECT_LE(s.sbuf_peak_live_bytes, f.cfg.sbuf_bytes());
  EXPECT_GT(s.psum_peak_live_bytes, 0u);
  EXPECT_LE(s.psum_peak_live_bytes, f.cfg.psum_bytes());
  // Samples: strictly increasing cycles, each a change; everything is dead once the last store has read it.
  for (size_t i = 1; i < p.occupancy.size(); ++i) {
    ASSERT_LT(p.occupancy[i - 1].cycle, p.occupancy[i].cycle);
    ASSERT_TRUE(p.occupancy[i - 1].sbuf_bytes != p.occupancy[i].sbuf_bytes ||
                p.occupancy[i - 1].psum_bytes != p.occupancy[i].psum_bytes);
  }
  EXPECT_EQ(p.occupancy.back().sbuf_bytes, 0u);
  EXPECT_EQ(p.occupancy.back().psum_bytes, 0u);
  EXPECT_LE(p.occupancy.back().cycle, p.info.cycles);

  // The trace file: two counter tracks with one event per sample, values in KiB.
  const std::string text = rt::chrome_trace_json(p);
  const nlohmann::json doc = nlohmann::json::parse(text);
  size_t sbuf_events = 0, psum_events = 0;
  double max_sbuf_kib = 0;
  for (const auto& e : doc["traceEvents"]) {
    if (e["ph"] != "C") continue;
    if (e["name"] == "SBUF live KiB")
      ++sbuf_events, max_sbuf_kib = std::max(max_sbuf_kib, e["args"]["value"].get<double>());
    if (e["name"] == "PSUM live KiB") ++psum_events;
  }
  EXPECT_EQ(sbuf_events, p.occupancy.size());
  EXPECT_EQ(psum_events, p.occupancy.size());
  EXPECT_EQ(max_sbuf_kib * 1024, double(s.sbuf_peak_live_bytes));
  EXPECT_EQ(doc["otherData"]["sbuf_bytes"], f.cfg.sbuf_bytes());

  // The file alone gives back the samples, the capacities and the summary.
  const rt::Profile back = rt::profile_from_chrome_json(text, "mem");
  EXPECT_EQ(back.occupancy, p.occupancy);
  EXPECT_EQ(back.info.sbuf_bytes, f.cfg.sbuf_bytes());
  EXPECT_EQ(back.info.psum_bytes, f.cfg.psum_bytes());
  EXPECT_EQ(rt::summary_json(rt::summarize(back)), rt::summary_json(s));
  const nlohmann::json sj = nlohmann::json::parse(rt::summary_json(s));
  EXPECT_EQ(sj["sbuf_peak_live_bytes"], s.sbuf_peak_live_bytes);
  EXPECT_EQ(sj["psum_bytes"], f.cfg.psum_bytes());
  const std::string text_summary = rt::format_summary(rt::summarize(back));
  EXPECT_NE(text_summary.find("SBUF live peak"), std::string::npos) << text_summary;
  EXPECT_NE(text_summary.find("PSUM live peak"), std::string::npos) << text_summary;

  // Same records, same samples (computed again from the records alone).
  EXPECT_EQ(rt::occupancy(f.cfg, kb::build_gemm(f.cfg, 256, 256, 256).streams, p.records), p.occupancy);
}

TEST(Occupancy, SameRunSameSamples) {
  Fixture f("tc1-8");
  const rt::Profile a = profiled_gemm(f, 24, 40, 36), b = profiled_gemm(f, 24, 40, 36);
  EXPECT_EQ(a.records, b.records);
  EXPECT_EQ(a.occupancy, b.occupancy);
  EXPECT_GT(a.occupancy.size(), 1u);
}

TEST(Occupancy, ProfilesWithoutCountersStillLoad) {
  // A file written before the occupancy counters: no capacities, no samples, no summary lines.
  rt::Profile p;
  p.info = {"m", "tc1-8", 8, 8, 16, 1400, 16, 1000, 0};
  const rt::Profile back = rt::profile_from_chrome_json(rt::chrome_trace_json(p), "old.json");
  EXPECT_TRUE(back.occupancy.empty());
  nlohmann::json doc = nlohmann::json::parse(rt::chrome_trace_json(p));
  doc["otherData"].erase("sbuf_bytes");
  doc["otherData"].erase("psum_bytes");
  const rt::Profile old = rt::profile_from_chrome_json(doc.dump(), "old.json");
  EXPECT_EQ(old.info.sbuf_bytes, 0u);
  EXPECT_EQ(rt::format_summary(rt::summarize(old)).find("live peak"), std::string::npos);
}

}  // namespace
}  // namespace tcemu
