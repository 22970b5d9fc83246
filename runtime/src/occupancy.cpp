#include "tcemu/rt/occupancy.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>
#include <numeric>

#include "tcemu/footprint.h"

namespace tcemu::rt {

namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// A change of the live totals: +bytes when a liveness interval opens, -bytes when it closes.
struct Delta {
  uint64_t cycle;
  int64_t sbuf, psum;
};

// One partition of SBUF or PSUM as runs of bytes with the same history: the cycle of the last write and
// of the last read since then (kNever: none). The runs cover [0, bytes) exactly, keyed by their first byte.
class Partition {
 public:
  Partition(uint64_t bytes, bool psum, std::vector<Delta>& out) : psum_(psum), out_(out) {
    runs_[0] = {bytes, kNever, kNever};
  }

  // Bytes [b, e) are read at `t`: written bytes stay live until at least t.
  void read(uint64_t b, uint64_t e, uint64_t t) {
    auto [first, last] = split(b, e);
    for (auto it = first; it != last; ++it)
      if (it->second.written != kNever) it->second.read = t;
    merge(first, last);
  }

  // Bytes [b, e) are written at `t`: their previous contents were live from their write to their last
  // read (if any); the new contents start unread.
  void write(uint64_t b, uint64_t e, uint64_t t) {
    auto [first, last] = split(b, e);
    for (auto it = first; it != last; ++it) close(it->first, it->second);
    runs_.erase(first, last);
    auto it = runs_.emplace(b, Run{e, t, kNever}).first;
    merge(it, std::next(it));
  }

  // End of the run: every written-then-read run closes.
  void finish() {
    for (auto& [begin, run] : runs_) close(begin, run);
  }

 private:
  struct Run {
    uint64_t end, written, read;
  };
  using It = std::map<uint64_t, Run>::iterator;

  void close(uint64_t begin, const Run& r) {
    if (r.written == kNever || r.read == kNever || r.read <= r.written) return;
    const int64_t n = int64_t(r.end - begin);
    out_.push_back({r.written, psum_ ? 0 : n, psum_ ? n : 0});
    out_.push_back({r.read, psum_ ? 0 : -n, psum_ ? -n : 0});
  }

  // Makes runs start at b and at e; returns the runs covering [b, e).
  std::pair<It, It> split(uint64_t b, uint64_t e) { return {split_at(b), split_at(e)}; }
  It split_at(uint64_t x) {
    auto it = std::prev(runs_.upper_bound(x));
    if (it->first == x) return it;
    if (x >= it->second.end) return runs_.end();  // x is the partition's end
    Run tail = it->second;
    it->second.end = x;
    return runs_.emplace_hint(std::next(it), x, tail);
  }

  // Joins equal neighbouring runs from the one before `first` up to the one at `last`, so that the map
  // stays as small as the partition's history allows.
  void merge(It first, It last) {
    It it = first == runs_.begin() ? first : std::prev(first);
    It stop = last == runs_.end() ? last : std::next(last);
    while (it != stop) {
      It next = std::next(it);
      if (next == stop) break;
      if (next->first == it->second.end && next->second.written == it->second.written &&
          next->second.read == it->second.read) {
        it->second.end = next->second.end;
        runs_.erase(next);
      } else {
        it = next;
      }
    }
  }

  bool psum_;
  std::vector<Delta>& out_;
  std::map<uint64_t, Run> runs_;
};

}  // namespace

DeviceConfig memory_geometry(const drv::DeviceInfo& dev) {
  DeviceConfig c;
  c.rows = dev.rows, c.cols = dev.cols;
  c.sbuf_partitions = dev.sbuf_partitions, c.sbuf_partition_bytes = dev.sbuf_partition_bytes;
  c.psum_partitions = dev.psum_partitions, c.psum_bank_bytes = dev.psum_bank_bytes, c.psum_banks = dev.psum_banks;
  return c;
}

std::vector<OccupancySample> occupancy(const DeviceConfig& cfg, std::span<const model::Stream> streams,
                                       std::span<const TraceRecord> records) {
  std::map<int, const model::Stream*> by_engine;
  for (const model::Stream& s : streams) by_engine[s.engine] = &s;

  // When each record takes effect: its end cycle, but never before the previous record of its engine
  // (a TensorE nop's zero-length slice may sit inside the previous matmul's window).
  std::vector<uint64_t> at(records.size());
  std::map<int, uint64_t> engine_time;
  for (size_t i = 0; i < records.size(); ++i) {
    uint64_t& last = engine_time[records[i].engine];
    at[i] = last = std::max(last, records[i].end);
  }
  std::vector<size_t> order(records.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return at[a] < at[b]; });

  std::vector<Delta> deltas;
  std::vector<Partition> sbuf, psum;
  sbuf.reserve(size_t(cfg.sbuf_partitions)), psum.reserve(size_t(cfg.psum_partitions));
  for (int p = 0; p < cfg.sbuf_partitions; ++p) sbuf.emplace_back(cfg.sbuf_partition_bytes, false, deltas);
  for (int p = 0; p < cfg.psum_partitions; ++p) psum.emplace_back(cfg.psum_partition_bytes(), true, deltas);
  auto partition = [&](const isa::Region& r) -> Partition* {
    std::vector<Partition>& v = r.space == isa::Space::kSbuf ? sbuf : psum;
    return r.space != isa::Space::kHbm && r.partition < v.size() ? &v[r.partition] : nullptr;
  };
  for (size_t i : order) {
    const TraceRecord& rec = records[i];
    auto s = by_engine.find(rec.engine);
    if (s == by_engine.end() || rec.pc >= s->second->instrs.size()) continue;
    const isa::Footprint f = isa::footprint(cfg, s->second->instrs[rec.pc]);
    for (const isa::Region& r : f.reads)
      if (Partition* p = partition(r)) p->read(r.begin, r.end, at[i]);
    for (const isa::Region& r : f.writes)
      if (Partition* p = partition(r)) p->write(r.begin, r.end, at[i]);
  }
  for (Partition& p : sbuf) p.finish();
  for (Partition& p : psum) p.finish();

  std::sort(deltas.begin(), deltas.end(), [](const Delta& a, const Delta& b) { return a.cycle < b.cycle; });
  std::vector<OccupancySample> samples = {{0, 0, 0}};
  int64_t sbuf_live = 0, psum_live = 0;
  for (size_t i = 0; i < deltas.size();) {
    const uint64_t cycle = deltas[i].cycle;
    for (; i < deltas.size() && deltas[i].cycle == cycle; ++i) sbuf_live += deltas[i].sbuf, psum_live += deltas[i].psum;
    const OccupancySample s{cycle, uint64_t(sbuf_live), uint64_t(psum_live)};
    OccupancySample& last = samples.back();
    if (s.sbuf_bytes == last.sbuf_bytes && s.psum_bytes == last.psum_bytes) continue;
    if (last.cycle == cycle)
      last = s;  // cycle 0
    else
      samples.push_back(s);
  }
  return samples;
}

}  // namespace tcemu::rt
