#include "tcemu/footprint.h"

#include <algorithm>
#include <tuple>
#include <utility>

namespace tcemu::isa {

namespace {

using Span = std::pair<uint64_t, uint64_t>;  // [first, second) bytes

struct Dim {
  uint64_t count = 1, stride = 0;
};

// The bytes of a strided pattern: runs of `len` bytes at base + sum(i_d * stride_d), i_d < count_d (dims
// innermost first), sorted and merged. Dims that only repeat addresses (stride 0) are dropped and an
// innermost dim that continues the run (stride == run length) joins it, so that contiguous patterns cost
// one span rather than one per element or run.
std::vector<Span> pattern(uint64_t base, uint64_t len, std::initializer_list<Dim> dims) {
  std::vector<Dim> d;
  for (const Dim& x : dims) {
    if (x.count == 0) return {};
    if (x.count > 1 && x.stride != 0) d.push_back(x);
  }
  if (len == 0) return {};
  while (!d.empty() && d.front().stride == len) {
    len *= d.front().count;
    d.erase(d.begin());
  }
  std::vector<Span> spans;
  const Dim d0 = d.size() > 0 ? d[0] : Dim{}, d1 = d.size() > 1 ? d[1] : Dim{}, d2 = d.size() > 2 ? d[2] : Dim{};
  spans.reserve(d0.count * d1.count * d2.count);
  for (uint64_t i2 = 0; i2 < d2.count; ++i2)
    for (uint64_t i1 = 0; i1 < d1.count; ++i1)
      for (uint64_t i0 = 0; i0 < d0.count; ++i0) {
        const uint64_t a = base + i2 * d2.stride + i1 * d1.stride + i0 * d0.stride;
        spans.push_back({a, a + len});
      }
  std::sort(spans.begin(), spans.end());
  size_t n = 0;
  for (const Span& s : spans) {
    if (n && s.first <= spans[n - 1].second)
      spans[n - 1].second = std::max(spans[n - 1].second, s.second);
    else
      spans[n++] = s;
  }
  spans.resize(n);
  return spans;
}

// Appends regions to one side of a footprint, clipped to the device's SBUF and PSUM.
class Side {
 public:
  Side(const DeviceConfig& cfg, std::vector<Region>& out) : cfg_(cfg), out_(out) {}

  // Bytes [begin, end) of one partition.
  void partition_bytes(Space s, uint64_t partition, uint64_t begin, uint64_t end) {
    if (s == Space::kHbm) {
      if (end > begin) out_.push_back({s, 0, begin, end});
      return;
    }
    if (partition >= partitions(s)) return;
    end = std::min(end, pitch(s));
    if (end > begin) out_.push_back({s, uint32_t(partition), begin, end});
  }

  // A DMA run at a flat space offset (SBUF/PSUM: partition * pitch + byte), split at partition ends.
  void flat(Space s, uint64_t begin, uint64_t end) {
    if (s == Space::kHbm) return partition_bytes(s, 0, begin, end);
    const uint64_t p = pitch(s);
    while (begin < end) {
      const uint64_t part = begin / p, byte = begin % p, stop = std::min(end, begin - byte + p);
      if (part >= partitions(s)) return;
      partition_bytes(s, part, byte, byte + (stop - begin));
      begin = stop;
    }
  }

  // One side of a dma_copy: runs of `len` bytes from device address `addr` with three (count, stride) dims.
  void dma(uint64_t addr, uint64_t len, std::initializer_list<Dim> dims) {
    const uint64_t space = addr_space(addr);
    if (space > uint64_t(Space::kPsum)) return;
    for (const Span& s : pattern(addr_offset(addr), len, dims)) flat(Space(space), s.first, s.second);
  }

  // A tensor operand word over np partitions x n1 x n0 elements (docs/isa.md, "Tensor operands"); a column
  // operand is the same with n0 = n1 = 1.
  void tensor(uint64_t word, uint64_t np, uint64_t n0, uint64_t n1) {
    const TensorOperand t = unpack_operand(word);
    if (t.space != Space::kSbuf && t.space != Space::kPsum) return;
    const uint64_t b = dtype_bytes(uint64_t(t.dtype));
    if (b == 0) return;
    const std::vector<Span> spans = pattern(t.off, b, {{n0, t.s0 * b}, {n1, t.s1 * b}});
    for (uint64_t p = 0; p < np; ++p)
      for (const Span& s : spans) partition_bytes(t.space, t.part + p, s.first, s.second);
  }
  void column(uint64_t word, uint64_t np) { tensor(word & 0xFFFFFFFFu, np, 1, 1); }

  // A rectangle: `count` partitions from `first`, bytes [begin, end) of each.
  void block(Space s, uint64_t first, uint64_t count, uint64_t begin, uint64_t end) {
    for (uint64_t p = 0; p < count; ++p) partition_bytes(s, first + p, begin, end);
  }

 private:
  uint64_t pitch(Space s) const { return s == Space::kSbuf ? cfg_.sbuf_partition_bytes : cfg_.psum_partition_bytes(); }
  uint64_t partitions(Space s) const {
    return uint64_t(s == Space::kSbuf ? cfg_.sbuf_partitions : cfg_.psum_partitions);
  }

  const DeviceConfig& cfg_;
  std::vector<Region>& out_;
};

}  // namespace

void coalesce(std::vector<Region>& regions) {
  auto key = [](const Region& r) { return std::make_tuple(r.space, r.partition, r.begin, r.end); };
  std::sort(regions.begin(), regions.end(), [&](const Region& a, const Region& b) { return key(a) < key(b); });
  size_t n = 0;
  for (const Region& r : regions) {
    if (r.end <= r.begin) continue;
    Region* last = n ? &regions[n - 1] : nullptr;
    if (last && last->space == r.space && last->partition == r.partition && r.begin <= last->end)
      last->end = std::max(last->end, r.end);
    else
      regions[n++] = r;
  }
  regions.resize(n);
}

uint64_t region_bytes(const std::vector<Region>& regions) {
  uint64_t n = 0;
  for (const Region& r : regions) n += r.end - r.begin;
  return n;
}

Footprint footprint(const DeviceConfig& cfg, const Instr& in) {
  Footprint f;
  Side reads(cfg, f.reads), writes(cfg, f.writes);
  switch (in.opcode) {
    case Opcode::DmaCopy: {
      // A cast converts n = bytes / size(src_dtype) elements per run: the destination run is
      // n * size(dst_dtype) bytes, and the destination strides are in destination bytes.
      uint64_t dst_len = in.bytes;
      if (in.cast) {
        const uint64_t sb = dtype_bytes(in.src_dtype), db = dtype_bytes(in.dst_dtype);
        if (sb == 0 || db == 0) break;
        dst_len = in.bytes / sb * db;
      }
      reads.dma(in.src, in.bytes,
                {{in.d1_count, in.src_d1_stride}, {in.d2_count, in.src_d2_stride}, {in.d3_count, in.src_d3_stride}});
      writes.dma(in.dst, dst_len,
                 {{in.d1_count, in.dst_d1_stride}, {in.d2_count, in.dst_d2_stride}, {in.d3_count, in.dst_d3_stride}});
      break;
    }
    case Opcode::Matmul: {
      // W: k partitions from st_part, m elements; X: k partitions from mv_part, n elements; out: m PSUM
      // partitions from out_part, n fp32.
      if (in.dtype > uint64_t(MatmulType::kFp32)) break;
      const uint64_t e = in.dtype == uint64_t(MatmulType::kFp32) ? 4 : 2;
      reads.block(Space::kSbuf, in.st_part, in.k, in.st_off, in.st_off + in.m * e);
      reads.block(Space::kSbuf, in.mv_part, in.k, in.mv_off, in.mv_off + in.n * e);
      writes.block(Space::kPsum, in.out_part, in.m, in.out_off, in.out_off + in.n * 4);
      if (in.accumulate) reads.block(Space::kPsum, in.out_part, in.m, in.out_off, in.out_off + in.n * 4);
      break;
    }
    case Opcode::PeTranspose:
      // T: k partitions from st_part, m bf16; out: m PSUM partitions from out_part, k fp32.
      reads.block(Space::kSbuf, in.st_part, in.k, in.st_off, in.st_off + in.m * 2);
      writes.block(Space::kPsum, in.out_part, in.m, in.out_off, in.out_off + in.k * 4);
      if (in.accumulate) reads.block(Space::kPsum, in.out_part, in.m, in.out_off, in.out_off + in.k * 4);
      break;
    case Opcode::TensorTensor:
    case Opcode::TensorCopy:
    case Opcode::Select:
    case Opcode::Transpose:  // the output has the input's shape [np][n1][n0] (blocks move within it)
      writes.tensor(in.out, in.np, in.n0, in.n1);
      reads.tensor(in.in0, in.np, in.n0, in.n1);
      if (in.opcode == Opcode::TensorTensor || in.opcode == Opcode::Select) reads.tensor(in.in1, in.np, in.n0, in.n1);
      if (in.opcode == Opcode::Select) reads.tensor(in.in2, in.np, in.n0, in.n1);
      break;
    case Opcode::TensorScalar:
      writes.tensor(in.out, in.np, in.n0, in.n1);
      reads.tensor(in.in0, in.np, in.n0, in.n1);
      if (in.col0_en) reads.column(in.col0, in.np);
      if (in.col1_en) reads.column(in.col1, in.np);
      break;
    case Opcode::TensorReduce:
      // The output keeps the input's shape with the reduced dims of count 1 (index 0).
      writes.tensor(in.out, in.np, (in.axes & 1) ? 1 : in.n0, (in.axes & 2) ? 1 : in.n1);
      reads.tensor(in.in0, in.np, in.n0, in.n1);
      break;
    case Opcode::Memset:
    case Opcode::Iota:
      writes.tensor(in.out, in.np, in.n0, in.n1);
      break;
    case Opcode::Activation:
      writes.tensor(in.out, in.np, in.n0, in.n1);
      reads.tensor(in.in0, in.np, in.n0, in.n1);
      if (in.scale_col_en) reads.column(in.scale_col, in.np);
      if (in.bias_en) reads.column(in.bias_col, in.np);
      if (in.acc_en) writes.column(in.acc_col, in.np);
      break;
    default:  // nop, and opcodes added after this function: no memory
      break;
  }
  coalesce(f.reads);
  coalesce(f.writes);
  return f;
}

}  // namespace tcemu::isa
