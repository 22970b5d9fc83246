#include "tcemu/kb/builder.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "tcemu/error.h"
#include "tcemu/numerics.h"

namespace tcemu::kb {

using isa::Instr;
using isa::Opcode;
using isa::Space;

namespace {

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s;
  for (int64_t d : shape) {
    if (!s.empty()) s += 'x';
    s += std::to_string(d);
  }
  return "[" + s + "]";
}

const char* mnemonic(Opcode op) {
  const isa::OpcodeInfo* o = isa::find_opcode(uint8_t(op));
  return o ? o->mnemonic : "instruction";
}

std::string tile_str(const Tile& t) {
  return fmt::format("'{}' ({} {}[{}:{}] x {}x{} {})", t.name, isa::space_name(uint64_t(t.space)), "p", t.part,
                     t.part + t.np, t.n1, t.n0, isa::dtype_name(uint64_t(t.dtype)));
}

// Normalised dims: count-1 dimensions dropped.
std::vector<std::pair<uint64_t, uint64_t>> norm_dims(const Ap& a) {
  std::vector<std::pair<uint64_t, uint64_t>> d;
  for (auto [c, s] : a.dims)
    if (c != 1) d.push_back({c, s});
  return d;
}

}  // namespace

uint32_t elem_bytes(isa::DType t) { return isa::dtype_bytes(uint64_t(t)); }

isa::DType isa_dtype(model::DType t) {
  switch (t) {
    case model::DType::kBf16:
      return isa::DType::kBf16;
    case model::DType::kF32:
      return isa::DType::kF32;
  }
  bad("unknown model dtype");
}

uint64_t Ap::runs() const {
  uint64_t r = 1;
  for (auto [c, s] : dims) r *= c;
  return r;
}

// ---- Dram ----------------------------------------------------------------------------------------------

uint64_t Dram::elems() const { return model::element_count(shape); }

Ap Dram::rows(uint64_t r0, uint64_t nr, uint64_t c0, uint64_t nc) const {
  const uint64_t C = cols(), R = elems() / C;
  if (nr == 0 || nc == 0 || r0 + nr > R || c0 + nc > C)
    bad(fmt::format("tensor '{}' {}: rows [{}, {}) x columns [{}, {}) is outside its {} x {}", name, shape_str(shape),
                    r0, r0 + nr, c0, c0 + nc, R, C));
  const uint64_t e = elem_bytes(dtype);
  return Ap{addr + (r0 * C + c0) * e, dtype, nc, {{nr, C * e}}, "tensor '" + name + "'"};
}

Ap Dram::ap(uint64_t offset, uint64_t run_elems, std::initializer_list<std::pair<uint64_t, uint64_t>> dims) const {
  const uint64_t e = elem_bytes(dtype);
  Ap a{addr + offset * e, dtype, run_elems, {}, "tensor '" + name + "'"};
  uint64_t last = offset + run_elems;  // one past the furthest element
  for (auto [c, s] : dims) {
    if (c == 0) bad(fmt::format("tensor '{}': a dimension of count 0", name));
    a.dims.push_back({c, s * e});
    last += (c - 1) * s;
  }
  if (run_elems == 0 || last > elems())
    bad(fmt::format("tensor '{}' {}: the pattern reaches element {}, the tensor has {}", name, shape_str(shape), last,
                    elems()));
  if (a.dims.size() > 3) bad(fmt::format("tensor '{}': more than 3 dimensions in a DMA pattern", name));
  return a;
}

// ---- Tile ----------------------------------------------------------------------------------------------

Tile Tile::parts(uint32_t p0, uint32_t n) const {
  if (n == 0 || p0 + n > np)
    bad(fmt::format("tile {}: partitions [{}, {}) outside its {}", tile_str(*this), p0, p0 + n, np));
  Tile t = *this;
  t.part += p0, t.np = n;
  return t;
}

Tile Tile::cols(uint64_t e0, uint64_t n) const {
  if (n1 != 1) bad(fmt::format("tile {}: cols() of a 2-D view", tile_str(*this)));
  if (n == 0 || e0 + n > n0)
    bad(fmt::format("tile {}: elements [{}, {}) outside its {}", tile_str(*this), e0, e0 + n, n0));
  Tile t = *this;
  t.off += e0 * s0 * elem_bytes(dtype), t.n0 = uint32_t(n);
  return t;
}

Tile Tile::view2(uint32_t a1, uint32_t a0, uint32_t t1, uint32_t t0) const {
  Tile t = *this;
  t.n1 = a1, t.n0 = a0, t.s1 = t1, t.s0 = t0;
  const uint64_t span = (uint64_t(a1) - 1) * t1 + (uint64_t(a0) - 1) * t0 + 1;
  const uint64_t have = (uint64_t(n1) - 1) * s1 + (uint64_t(n0) - 1) * s0 + 1;
  if (a1 == 0 || a0 == 0 || span > have)
    bad(fmt::format("tile {}: view {}x{} (strides {}, {}) reaches {} elements, the view has {}", tile_str(*this), a1,
                    a0, t1, t0, span, have));
  return t;
}

Tile Tile::bcast(uint32_t n) const {
  Tile t = *this;
  t.n1 = 1, t.n0 = n, t.s0 = 0, t.s1 = 0;
  return t;
}

uint64_t Tile::addr(uint64_t p, uint64_t e) const {
  return isa::make_addr(space, (part + p) * partition_bytes + off + e * s0 * elem_bytes(dtype));
}

uint64_t Tile::operand() const { return isa::pack_operand({space, dtype, part, uint32_t(off), s0, s1}); }

uint64_t Tile::column() const { return isa::pack_column(space, dtype, part, uint32_t(off)); }

Ap Tile::ap() const {
  const uint64_t e = elem_bytes(dtype);
  Ap a{addr(), dtype, 0, {}, "tile '" + name + "'"};
  if (dense()) {
    a.run_elems = free_elems();
    a.dims = {{np, partition_bytes}};
  } else if (s0 == 1) {
    a.run_elems = n0;
    a.dims = {{n1, uint64_t(s1) * e}, {np, partition_bytes}};
  } else {
    a.run_elems = 1;
    a.dims = {{n0, uint64_t(s0) * e}, {n1, uint64_t(s1) * e}, {np, partition_bytes}};
  }
  return a;
}

// ---- Kernel: tensors and allocation ------------------------------------------------------------------

Kernel::Kernel(const DeviceConfig& cfg, std::string name) : cfg_(cfg), name_(name), prog_(cfg, std::move(name)) {}

Dram Kernel::tensor(const std::string& name, model::DType dtype, model::TensorKind kind, std::vector<int64_t> shape) {
  const uint64_t a = prog_.add_tensor(name, dtype, kind, shape);
  return Dram{name, isa_dtype(dtype), std::move(shape), a};
}
Dram Kernel::constant(const std::string& name, model::DType dtype, std::vector<int64_t> shape,
                      const std::vector<float>& values) {
  Dram d = tensor(name, dtype, model::TensorKind::kConst, std::move(shape));
  if (values.size() != d.elems())
    bad(fmt::format("constant '{}' {}: {} values for {} elements", name, shape_str(d.shape), values.size(), d.elems()));
  std::vector<uint8_t> bytes(values.size() * elem_bytes(d.dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (d.dtype == isa::DType::kBf16) {
      const uint16_t b = num::f32_to_bf16(values[i]);
      std::memcpy(&bytes[2 * i], &b, 2);
    } else {
      std::memcpy(&bytes[4 * i], &values[i], 4);
    }
  }
  prog_.set_constant(name, std::move(bytes));
  return d;
}

Dram Kernel::input(const std::string& n, model::DType d, std::vector<int64_t> s) {
  return tensor(n, d, model::TensorKind::kInput, std::move(s));
}
Dram Kernel::output(const std::string& n, model::DType d, std::vector<int64_t> s) {
  return tensor(n, d, model::TensorKind::kOutput, std::move(s));
}
Dram Kernel::scratch(const std::string& n, model::DType d, std::vector<int64_t> s) {
  return tensor(n, d, model::TensorKind::kScratch, std::move(s));
}

uint64_t Kernel::allocate(int space, const std::string& name, uint32_t np, uint64_t bytes, uint64_t align,
                          uint64_t bank) {
  const uint64_t cap = space == 0 ? cfg_.sbuf_partition_bytes : cfg_.psum_partition_bytes();
  const char* sname = space == 0 ? "SBUF" : "PSUM";
  const uint32_t parts = uint32_t(space == 0 ? cfg_.sbuf_partitions : cfg_.psum_partitions);
  if (np == 0 || np > parts || bytes == 0)
    bad(fmt::format("kernel '{}': {} tile '{}' of {} partitions x {} B: the space has {} partitions", name_, sname,
                    name, np, bytes, parts));
  std::vector<std::pair<uint64_t, uint64_t>> used;  // [off, end) of live allocations of the space
  for (const Alloc& a : allocs_)
    if (a.live && a.space == space) used.push_back({a.off, a.off + a.bytes});
  std::sort(used.begin(), used.end());
  // First fit: the lowest aligned offset (within one bank when the tile fits in one) free of live tiles.
  auto place = [&](uint64_t at) {
    at = (at + align - 1) / align * align;
    if (bank && bytes <= bank && at / bank != (at + bytes - 1) / bank) at = (at / bank + 1) * bank;
    if (bank && bytes > bank) at = (at + bank - 1) / bank * bank;
    return at;
  };
  uint64_t at = place(0);
  for (auto [b, e] : used) {
    if (at + bytes <= b) break;
    if (e > at) at = place(e);
  }
  if (at + bytes > cap) {
    uint64_t in_use = 0, largest = 0, prev = 0;
    std::string holders;
    for (auto [b, e] : used) {
      largest = std::max(largest, b > prev ? b - prev : 0);
      prev = std::max(prev, e);
      in_use += e - b;
    }
    largest = std::max(largest, cap > prev ? cap - prev : 0);
    int shown = 0;
    for (const Alloc& a : allocs_)
      if (a.live && a.space == space && shown++ < 8)
        holders += fmt::format("{}'{}' {} B", shown > 1 ? ", " : "", a.name, a.bytes);
    throw Error(ErrorCode::kCapacity,
                fmt::format("kernel '{}': {} tile '{}' ({} partitions x {} B per partition) does not fit: {} has {} B "
                            "per partition, {} B are held by {} live tiles ({}{}), the largest free range is {} B",
                            name_, sname, name, np, bytes, sname, cap, in_use, used.size(), holders,
                            used.size() > 8 ? ", ..." : "", largest));
  }
  allocs_.push_back({name, space, at, bytes, np, true});
  uint64_t top = 0;
  for (const Alloc& a : allocs_)
    if (a.live && a.space == space) top = std::max(top, a.off + a.bytes);
  peak_[space] = std::max(peak_[space], top);
  return at;
}

Tile Kernel::sbuf(const std::string& name, isa::DType dtype, uint32_t np, uint64_t n) {
  const uint64_t bytes = n * elem_bytes(dtype);
  const uint64_t off = allocate(0, name, np, bytes, 64, 0);
  if (n > 0xFFFFFFFFu) bad("tile too long");
  return Tile{name, Space::kSbuf, dtype, 0, np, off, 1, uint32_t(n), 0, 1, cfg_.sbuf_partition_bytes};
}

Tile Kernel::psum(const std::string& name, uint32_t np, uint64_t n) {
  const uint64_t off = allocate(1, name, np, n * 4, 4, cfg_.psum_bank_bytes);
  return Tile{name, Space::kPsum, isa::DType::kF32, 0, np, off, 1, uint32_t(n), 0, 1, cfg_.psum_partition_bytes()};
}

void Kernel::release(const Tile& t) {
  const int space = t.space == Space::kSbuf ? 0 : 1;
  for (Alloc& a : allocs_)
    if (a.live && a.space == space && a.name == t.name && t.off >= a.off && t.off < a.off + a.bytes) {
      a.live = false;
      return;
    }
  bad(fmt::format("kernel '{}': release of tile '{}', which is not allocated", name_, t.name));
}

uint64_t Kernel::sbuf_available() const {
  uint64_t top = 0;
  for (const Alloc& a : allocs_)
    if (a.live && a.space == 0) top = std::max(top, a.off + a.bytes);
  return cfg_.sbuf_partition_bytes - std::min<uint64_t>(top, cfg_.sbuf_partition_bytes);
}

int Kernel::buffers_that_fit(int want, uint64_t bytes) const {
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const Alloc& a : allocs_)
    if (a.live && a.space == 0) used.push_back({a.off, a.off + a.bytes});
  std::sort(used.begin(), used.end());
  uint64_t largest = 0, at = 0;  // the largest 64-aligned free range
  for (auto [b, e] : used) {
    if (b > at) largest = std::max(largest, b - at);
    at = std::max(at, round_up(e, 64));
  }
  if (cfg_.sbuf_partition_bytes > at) largest = std::max<uint64_t>(largest, cfg_.sbuf_partition_bytes - at);
  int b = std::max(want, 1);
  while (b > 1 && uint64_t(b) * bytes > largest) --b;
  return b;
}

StreamQueues::StreamQueues(const DeviceConfig& cfg, uint64_t load_bytes, uint64_t store_bytes) {
  const int n = cfg.dma_queues;
  if (n < 2) {
    load_ = store_ = all_ = {0};
    return;
  }
  const double share = double(load_bytes) / double(std::max<uint64_t>(load_bytes + store_bytes, 1));
  const int nl = std::clamp(int(std::lround(double(n) * share)), 1, n - 1);
  for (int i = 0; i < n; ++i) (i < nl ? load_ : store_).push_back(i), all_.push_back(i);
}

DmaOpts StreamQueues::spread(const std::vector<int>& queues, uint64_t bytes) {
  return DmaOpts{queues, int(std::clamp<uint64_t>(bytes / 2048, 1, queues.size()))};
}
DmaOpts StreamQueues::load(uint64_t bytes) const { return spread(stored_ ? load_ : all_, bytes); }
DmaOpts StreamQueues::store(uint64_t bytes, bool last) {
  stored_ = true;
  return spread(last ? all_ : store_, bytes);
}
DmaOpts StreamQueues::any(uint64_t bytes) const { return spread(all_, bytes); }

Kernel::Scope::Scope(Kernel& k) : k_(k), mark_(k.allocs_.size()) {}
Kernel::Scope::~Scope() {
  for (size_t i = mark_; i < k_.allocs_.size(); ++i) k_.allocs_[i].live = false;
}

Ring::Ring(Kernel& k, const std::string& name, Space space, isa::DType dtype, uint32_t np, uint64_t n, int bufs) {
  for (int i = 0; i < bufs; ++i) {
    const std::string nm = bufs > 1 ? fmt::format("{}[{}]", name, i) : name;
    tiles_.push_back(space == Space::kPsum ? k.psum(nm, np, n) : k.sbuf(nm, dtype, np, n));
  }
}
void Ring::release(Kernel& k) {
  for (const Tile& t : tiles_) k.release(t);
}

// ---- Kernel: hazards -----------------------------------------------------------------------------------

std::map<uint64_t, Kernel::Rec>& Kernel::track(Space s, uint32_t partition) { return mem_[{int(s), partition}]; }

// Makes `at` a record boundary (if a record spans it).
void Kernel::split_at(std::map<uint64_t, Rec>& m, uint64_t at) {
  auto it = m.upper_bound(at);
  if (it == m.begin()) return;
  --it;
  if (it->first < at && it->second.end > at) {
    Rec tail = it->second;
    it->second.end = at;
    m.emplace(at, tail);
  }
}

std::vector<Ref> Kernel::hazards(const isa::Footprint& fp) {
  std::array<uint32_t, isa::kMaxEngines> need{};
  auto dep = [&](const Ref& r) {
    if (r.valid()) need[r.engine] = std::max(need[r.engine], r.ordinal);
  };
  auto scan = [&](const isa::Region& g, bool write) {
    auto mit = mem_.find({int(g.space), g.partition});
    if (mit == mem_.end()) return;
    auto& m = mit->second;
    auto it = m.upper_bound(g.begin);
    if (it != m.begin()) --it;
    for (; it != m.end() && it->first < g.end; ++it) {
      if (it->second.end <= g.begin) continue;
      dep(it->second.writer);
      if (write)
        for (int e = 0; e < isa::kMaxEngines; ++e)
          if (it->second.readers[e]) need[e] = std::max(need[e], it->second.readers[e]);
    }
  };
  for (const auto& g : fp.reads) scan(g, false);
  for (const auto& g : fp.writes) scan(g, true);
  std::vector<Ref> deps;
  for (int e = 0; e < isa::kMaxEngines; ++e)
    if (need[e]) deps.push_back({e, need[e]});
  return deps;
}

void Kernel::record(const isa::Footprint& fp, Ref r) {
  for (const auto& g : fp.reads) {
    auto& m = track(g.space, g.partition);
    split_at(m, g.begin);
    split_at(m, g.end);
    uint64_t at = g.begin;
    auto it = m.lower_bound(g.begin);
    std::vector<std::pair<uint64_t, uint64_t>> gaps;
    for (; it != m.end() && it->first < g.end; ++it) {
      if (it->first > at) gaps.push_back({at, it->first});
      auto& rd = it->second.readers[r.engine];
      rd = std::max(rd, r.ordinal);
      at = it->second.end;
    }
    if (at < g.end) gaps.push_back({at, g.end});
    for (auto [b, e] : gaps) {
      Rec rec{e, Ref{}, {}};
      rec.readers[r.engine] = r.ordinal;
      m.emplace(b, rec);
    }
  }
  for (const auto& g : fp.writes) {
    auto& m = track(g.space, g.partition);
    split_at(m, g.begin);
    split_at(m, g.end);
    m.erase(m.lower_bound(g.begin), m.lower_bound(g.end));
    m.emplace(g.begin, Rec{g.end, r, {}});
  }
}

// ---- Kernel: schedule estimate -------------------------------------------------------------------------

uint64_t Kernel::ready_time(const std::vector<Ref>& deps) const {
  uint64_t t = 0;
  for (const Ref& d : deps) t = std::max(t, finish_[d.engine][d.ordinal - 1]);
  return t;
}

uint64_t Kernel::cost(const Instr& in) const {
  switch (in.opcode) {
    case Opcode::DmaCopy: {
      const uint64_t runs = in.d1_count * in.d2_count * in.d3_count;
      uint64_t len = in.bytes;
      if (in.cast) len = std::max(len, in.bytes / isa::dtype_bytes(in.src_dtype) * isa::dtype_bytes(in.dst_dtype));
      const uint64_t e = runs * std::max<uint64_t>(len, cfg_.dma_min_run_bytes);
      return cfg_.dma_latency_cycles + ceil_div(e, std::max<uint32_t>(cfg_.dma_bytes_per_cycle, 1));
    }
    case Opcode::Matmul:
      return in.n * (in.dtype ? 6 : 1);
    case Opcode::PeTranspose:
      return in.k;
    case Opcode::Activation:
      return cfg_.scalar_start_cycles + std::max<uint64_t>(cfg_.scalar_min_cycles, in.n0 * in.n1);
    case Opcode::Nop:
    case Opcode::Notify:
      return 0;
    default: {
      const uint64_t k = in.opcode == Opcode::TensorTensor ? 2 : in.opcode == Opcode::Select ? 3 : 1;
      return cfg_.vector_start_cycles + std::max<uint64_t>(cfg_.vector_min_cycles, in.n0 * in.n1 * k);
    }
  }
}

uint64_t Kernel::estimated_cycles() const {
  uint64_t t = 0;
  for (const auto& f : finish_)
    if (!f.empty()) t = std::max(t, f.back());
  return t;
}

Ref Kernel::emit(int engine, const Instr& in, const isa::Footprint& fp, const std::vector<Ref>& deps) {
  const uint64_t start = std::max(busy_[engine], ready_time(deps));
  const Ref r = prog_.emit(engine, in, deps);
  const uint64_t c = cost(in);
  busy_[engine] = start + c;
  // TensorE results leave the array rows + cols - 1 cycles after the last column enters.
  const uint64_t lat = engine == isa::kEngineTensor ? uint64_t(cfg_.rows + cfg_.cols - 1) : 0;
  finish_[engine].resize(r.ordinal, 0);
  finish_[engine][r.ordinal - 1] = start + c + lat;
  record(fp, r);
  return r;
}

Ref Kernel::issue(int engine, Instr in) {
  if (engine < 0 || engine >= isa::kMaxEngines) bad(fmt::format("kernel '{}': engine {} out of range", name_, engine));
  const isa::Footprint fp = isa::footprint(cfg_, in);
  return emit(engine, in, fp, hazards(fp));
}

// ---- Kernel: instructions ------------------------------------------------------------------------------

std::vector<Ref> Kernel::dma(const Ap& dst, const Ap& src, const DmaOpts& opts) {
  auto sd = norm_dims(src), dd = norm_dims(dst);
  if (sd.size() != dd.size() || src.run_elems != dst.run_elems ||
      !std::equal(sd.begin(), sd.end(), dd.begin(), [](auto a, auto b) { return a.first == b.first; })) {
    auto str = [](const Ap& a) {
      std::string s = std::to_string(a.run_elems);
      for (auto [c, st] : a.dims)
        if (c != 1) s = std::to_string(c) + "x" + s;
      return s;
    };
    bad(fmt::format("kernel '{}': dma from {} to {}: the shapes differ ({} vs {} elements)", name_, src.what, dst.what,
                    str(src), str(dst)));
  }
  if (sd.size() > 3) bad(fmt::format("kernel '{}': dma from {}: more than 3 dimensions", name_, src.what));
  const bool cast = src.dtype != dst.dtype;
  std::vector<int> queues = opts.queues;
  if (queues.empty())
    for (int q = 0; q < cfg_.dma_queues; ++q) queues.push_back(q);
  for (int q : queues)
    if (q < 0 || q >= cfg_.dma_queues)
      bad(fmt::format("kernel '{}': DMA queue {} does not exist ({} queues)", name_, q, cfg_.dma_queues));
  // Split along the outermost dimension.
  const uint64_t bytes = std::max(src.bytes(), dst.bytes());
  const uint64_t outer = sd.empty() ? 1 : sd.back().first;
  uint64_t ways = opts.split > 0 ? uint64_t(opts.split) : std::max<uint64_t>(1, bytes / (32 * 1024));
  ways = std::clamp<uint64_t>(ways, 1, outer);
  const uint64_t per = ceil_div(outer, ways);
  std::vector<Ref> refs;
  for (uint64_t o0 = 0; o0 < outer; o0 += per) {
    const uint64_t oc = std::min(per, outer - o0);
    auto dims_of = [&](std::vector<std::pair<uint64_t, uint64_t>> d) {
      if (!d.empty()) d.back().first = oc;
      while (d.size() < 3) d.push_back({1, 0});
      return d;
    };
    const auto s3 = dims_of(sd), d3 = dims_of(dd);
    Instr in;
    in.opcode = Opcode::DmaCopy;
    in.src = src.addr + (sd.empty() ? 0 : o0 * sd.back().second);
    in.dst = dst.addr + (dd.empty() ? 0 : o0 * dd.back().second);
    in.bytes = src.run_elems * elem_bytes(src.dtype);
    in.d1_count = s3[0].first, in.src_d1_stride = s3[0].second, in.dst_d1_stride = d3[0].second;
    in.d2_count = s3[1].first, in.src_d2_stride = s3[1].second, in.dst_d2_stride = d3[1].second;
    in.d3_count = s3[2].first, in.src_d3_stride = s3[2].second, in.dst_d3_stride = d3[2].second;
    if (cast) in.cast = 1, in.src_dtype = uint64_t(src.dtype), in.dst_dtype = uint64_t(dst.dtype);
    const isa::Footprint fp = isa::footprint(cfg_, in);
    const std::vector<Ref> deps = hazards(fp);
    const uint64_t ready = ready_time(deps);
    // The queue that can start it first; ties go to the one that has been idle longest.
    int best = queues[0];
    uint64_t best_start = std::numeric_limits<uint64_t>::max(), best_busy = 0;
    for (int q : queues) {
      const int e = isa::kEngineDma0 + q;
      const uint64_t s = std::max(busy_[e], ready);
      if (s < best_start || (s == best_start && busy_[e] < best_busy)) best = q, best_start = s, best_busy = busy_[e];
    }
    refs.push_back(emit(isa::kEngineDma0 + best, in, fp, deps));
  }
  return refs;
}

Ref Kernel::compute(int engine, Instr in, const Tile& out, std::initializer_list<const Tile*> ins) {
  auto check = [&](const Tile& t, const char* role) {
    if (t.np != out.np || t.free_elems() != out.free_elems())
      bad(fmt::format("kernel '{}': {}: operand {} {} has shape {}x{}, the output {} has {}x{}", name_,
                      mnemonic(in.opcode), role, tile_str(t), t.np, t.free_elems(), tile_str(out), out.np,
                      out.free_elems()));
  };
  const char* roles[] = {"in0", "in1", "in2"};
  int i = 0;
  for (const Tile* t : ins) check(*t, roles[i++]);
  in.np = out.np, in.n0 = out.n0, in.n1 = out.n1;
  in.out = out.operand();
  i = 0;
  for (const Tile* t : ins) {
    // Inputs take the output's free shape; a dense input of another 2-D shape is re-viewed.
    Tile v = *t;
    if (v.n0 != out.n0) {
      if (!v.dense())
        bad(fmt::format("kernel '{}': {}: operand {} {} is {}x{}, the output is {}x{}", name_, mnemonic(in.opcode),
                        roles[i], tile_str(v), v.n1, v.n0, out.n1, out.n0));
      v.n1 = out.n1, v.n0 = out.n0, v.s1 = out.n0, v.s0 = 1;
    }
    const uint64_t w = v.operand();
    (i == 0 ? in.in0 : i == 1 ? in.in1 : in.in2) = w;
    ++i;
  }
  return issue(engine, in);
}

Ref Kernel::matmul(const Tile& out, const Tile& st, const Tile& mv, bool accumulate) {
  const bool fp32 = st.dtype == isa::DType::kF32;
  auto fail = [&](const std::string& why) {
    bad(fmt::format("kernel '{}': matmul out {} = stationary {}^T x moving {}: {}", name_, tile_str(out), tile_str(st),
                    tile_str(mv), why));
  };
  if (st.space != Space::kSbuf || mv.space != Space::kSbuf) fail("operands must be in SBUF");
  if (out.space != Space::kPsum) fail("the output must be in PSUM");
  if (st.dtype != mv.dtype || (st.dtype != isa::DType::kBf16 && !fp32)) fail("operands must both be bf16 or both f32");
  if (!st.dense() || !mv.dense() || !out.dense() || st.n1 != 1 || mv.n1 != 1 || out.n1 != 1)
    fail("operands must be dense 1-D views");
  if (st.np != mv.np) fail(fmt::format("contraction partitions differ ({} vs {})", st.np, mv.np));
  if (st.np > uint32_t(cfg_.rows)) fail(fmt::format("k = {} exceeds the array's {} rows", st.np, cfg_.rows));
  if (st.n0 > uint32_t(cfg_.cols)) fail(fmt::format("m = {} exceeds the array's {} columns", st.n0, cfg_.cols));
  if (out.np != st.n0 || out.n0 != mv.n0) fail(fmt::format("output must be {} x {}", st.n0, mv.n0));
  if (mv.n0 > cfg_.psum_bank_bytes / 4)
    fail(fmt::format("n = {} exceeds one PSUM bank ({})", mv.n0, cfg_.psum_bank_bytes / 4));
  if (out.off / cfg_.psum_bank_bytes != (out.off + uint64_t(out.n0) * 4 - 1) / cfg_.psum_bank_bytes)
    fail("the output crosses a PSUM bank");
  Instr in;
  in.opcode = Opcode::Matmul;
  in.k = st.np, in.m = st.n0, in.n = mv.n0;
  in.accumulate = accumulate, in.dtype = fp32 ? 1 : 0;
  in.st_part = st.part, in.mv_part = mv.part, in.out_part = out.part;
  in.st_off = st.off, in.mv_off = mv.off, in.out_off = out.off;
  return issue(isa::kEngineTensor, in);
}

Ref Kernel::pe_transpose(const Tile& out, const Tile& t) {
  auto fail = [&](const std::string& why) {
    bad(fmt::format("kernel '{}': pe_transpose out {} = {}^T: {}", name_, tile_str(out), tile_str(t), why));
  };
  if (t.space != Space::kSbuf || t.dtype != isa::DType::kBf16 || !t.dense() || t.n1 != 1)
    fail("input must be a dense bf16 SBUF view");
  if (out.space != Space::kPsum || !out.dense() || out.n1 != 1) fail("output must be a dense PSUM view");
  if (t.np > uint32_t(cfg_.rows) || t.n0 > uint32_t(cfg_.cols)) fail("larger than the array");
  if (out.np != t.n0 || out.n0 != t.np) fail(fmt::format("output must be {} x {}", t.n0, t.np));
  Instr in;
  in.opcode = Opcode::PeTranspose;
  in.k = t.np, in.m = t.n0;
  in.st_part = t.part, in.st_off = t.off;
  in.out_part = out.part, in.out_off = out.off;
  return issue(isa::kEngineTensor, in);
}

Ref Kernel::activation(const Tile& out, const Tile& x, isa::ActFunc f, const ActOpts& o) {
  Instr in;
  in.opcode = Opcode::Activation;
  in.func = uint64_t(f);
  if (o.scale.column) {
    in.scale_col_en = 1, in.scale_col = o.scale.column->column();
  } else {
    in.scale_imm = std::bit_cast<uint32_t>(o.scale.imm);
  }
  if (o.bias) in.bias_en = 1, in.bias_col = o.bias->column();
  if (o.acc) in.acc_en = 1, in.acc_col = o.acc->column();
  return compute(isa::kEngineScalar, in, out, {&x});
}

Ref Kernel::tensor_tensor(const Tile& out, const Tile& a, const Tile& b, isa::AluOp op) {
  Instr in;
  in.opcode = Opcode::TensorTensor;
  in.op = uint64_t(op);
  return compute(isa::kEngineVector, in, out, {&a, &b});
}

Ref Kernel::tensor_scalar(const Tile& out, const Tile& x, isa::AluOp op0, const Scalar& s0, isa::AluOp op1,
                          const Scalar& s1, bool rev0, bool rev1) {
  Instr in;
  in.opcode = Opcode::TensorScalar;
  in.op0 = uint64_t(op0), in.op1 = uint64_t(op1), in.rev0 = rev0, in.rev1 = rev1;
  if (s0.column)
    in.col0_en = 1, in.col0 = s0.column->column();
  else
    in.imm0 = std::bit_cast<uint32_t>(s0.imm);
  if (s1.column)
    in.col1_en = 1, in.col1 = s1.column->column();
  else
    in.imm1 = std::bit_cast<uint32_t>(s1.imm);
  return compute(isa::kEngineVector, in, out, {&x});
}

Ref Kernel::tensor_reduce(const Tile& out, const Tile& x, isa::AluOp op, int axes) {
  Instr in;
  in.opcode = Opcode::TensorReduce;
  in.op = uint64_t(op), in.axes = uint64_t(axes);
  in.np = x.np, in.n0 = x.n0, in.n1 = x.n1;
  in.in0 = x.operand();
  // The output keeps the input's pattern with the reduced dims of count 1 (index 0 only is written).
  Tile o = out;
  const uint64_t want = (axes & 1 ? 1 : x.n0) * (axes & 2 ? 1 : x.n1);
  if (out.np != x.np || out.free_elems() != want)
    bad(fmt::format("kernel '{}': tensor_reduce of {} over axes {} writes {}x{} elements, the output {} has {}x{}",
                    name_, tile_str(x), axes, x.np, want, tile_str(out), out.np, out.free_elems()));
  if (axes == 2) o.s0 = out.s0, o.s1 = 0;
  if (axes == 1) o.s0 = 0, o.s1 = out.n1 > 1 ? out.s1 : out.s0;
  if (axes == 3) o.s0 = 0, o.s1 = 0;
  in.out = o.operand();
  return issue(isa::kEngineVector, in);
}

Ref Kernel::tensor_copy(const Tile& out, const Tile& x) {
  Instr in;
  in.opcode = Opcode::TensorCopy;
  return compute(isa::kEngineVector, in, out, {&x});
}

Ref Kernel::copy_scalar(const Tile& out, const Tile& x) { return activation(out, x, isa::ActFunc::kIdentity); }

Ref Kernel::memset(const Tile& out, float value) {
  Instr in;
  in.opcode = Opcode::Memset;
  in.value = out.dtype == isa::DType::kI32 ? uint32_t(int32_t(value)) : std::bit_cast<uint32_t>(value);
  return compute(isa::kEngineVector, in, out, {});
}

Ref Kernel::iota(const Tile& out, int32_t base, int32_t pstep, int32_t fstep) {
  Instr in;
  in.opcode = Opcode::Iota;
  in.base = uint32_t(base), in.pstep = uint32_t(pstep), in.fstep = uint32_t(fstep);
  return compute(isa::kEngineVector, in, out, {});
}

Ref Kernel::select(const Tile& out, const Tile& pred, const Tile& a, const Tile& b) {
  Instr in;
  in.opcode = Opcode::Select;
  return compute(isa::kEngineVector, in, out, {&pred, &a, &b});
}

Ref Kernel::transpose32(const Tile& out, const Tile& x) {
  Instr in;
  in.opcode = Opcode::Transpose;
  return compute(isa::kEngineVector, in, out, {&x});
}

Ref Kernel::notify(int engine, uint32_t tag) {
  Instr in;
  in.opcode = Opcode::Notify;
  in.tag = tag;
  return issue(engine, in);
}

}  // namespace tcemu::kb
