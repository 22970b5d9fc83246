// DMA queues: one SystemC process per queue executing dma_copy (docs/isa.md, "dma_copy"): the 4-D access
// patterns, the element casts, the checks, and the timing (start latency, per-run minimum, per-queue peak,
// HBM bandwidth shared through the DmaArbiter).
#include <algorithm>
#include <cmath>
#include <vector>

#include "tc1.h"
#include "transpose.h"

namespace tcemu::emu {

// ---- HBM arbiter (dma.h) ---------------------------------------------------------------------------------

void DmaArbiter::configure(uint64_t queue_bytes_per_cycle, uint64_t hbm_bytes_per_cycle) {
  q_ = std::max<uint64_t>(queue_bytes_per_cycle, 1);
  h_ = std::max<uint64_t>(hbm_bytes_per_cycle, 1);
}

void DmaArbiter::rate(uint64_t& num, uint64_t& den) const {
  uint64_t k = 0;
  for (const Slot& s : slots_)
    if (s.active) k += s.sides;
  if (k * q_ <= h_)
    num = q_, den = 1;
  else
    num = h_, den = k;
}

void DmaArbiter::advance(uint64_t now) {
  if (now <= last_) return;
  uint64_t num, den;
  rate(num, den);
  const unsigned __int128 moved = (unsigned __int128)(now - last_) * num / den;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.active) continue;
    if (moved >= s.remaining) {
      s = {};
    } else {
      s.remaining -= uint64_t(moved);
    }
  }
  last_ = now;
}

void DmaArbiter::reschedule(uint64_t now) {
  uint64_t num, den;
  rate(num, den);
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.active) continue;
    const unsigned __int128 cycles = ((unsigned __int128)s.remaining * den + num - 1) / num;
    s.finish = now + uint64_t(cycles);
  }
}

uint64_t DmaArbiter::next_finish() const {
  uint64_t next = UINT64_MAX;
  for (const Slot& s : slots_)
    if (s.active) next = std::min(next, s.finish);
  return next;
}

void DmaArbiter::join(int slot, uint64_t bytes, uint32_t sides, uint64_t now) {
  advance(now);
  slots_[size_t(slot)] = {true, sides, bytes, now};
  reschedule(now);
}

void DmaArbiter::sync(uint64_t now) {
  bool due = false;
  for (const Slot& s : slots_) due |= s.active && s.finish <= now;
  if (!due) return;
  advance(now);
  reschedule(now);
}

void DmaArbiter::leave(int slot, uint64_t now) {
  if (!slots_[size_t(slot)].active) return;
  advance(now);
  slots_[size_t(slot)] = {};
  reschedule(now);
}

bool Tc1::dma_hbm_transfer(int engine, uint64_t bytes, uint32_t sides, uint64_t token) {
  dma_hbm_.configure(cfg_.dma_bytes_per_cycle, cfg_.hbm_bytes_per_cycle);
  dma_hbm_.join(engine, bytes, sides, cycle());
  while (dma_hbm_.active(engine)) {
    if (!wait_cycles(dma_hbm_.next_finish() - cycle(), token)) {
      dma_hbm_.leave(engine, cycle());
      return false;
    }
    dma_hbm_.sync(cycle());
  }
  return true;
}

bool Tc1::dma_retire(int engine, uint64_t token) {
  DmaRetireOrder& r = dma_retire_;
  auto abandoned = [&] {
    r.waiting.clear();
    r.releasing = false;
    return false;
  };
  r.waiting.push_back(engine);
  if (!r.releasing) {
    // Every queue completing this cycle registers in this delta cycle (their waits were timed); release
    // them all in the next one.
    r.releasing = true;
    r.release.notify(sc_core::SC_ZERO_TIME);
    wait(r.release | abort_ev_);
    if (token != job_token_) return abandoned();
    std::sort(r.waiting.begin(), r.waiting.end());
    for (int e : r.waiting) r.go[size_t(e)].notify(sc_core::SC_ZERO_TIME);  // they run in this order
    r.waiting.clear();
    r.releasing = false;
  }
  wait(r.go[size_t(engine)] | abort_ev_);
  return token == job_token_ ? true : abandoned();
}

// ---- Element casts -----------------------------------------------------------------------------------------
namespace {

using isa::DType;

uint32_t load_le(const uint8_t* p, uint32_t n) {
  uint32_t v = 0;
  for (uint32_t i = 0; i < n; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
void store_le(uint8_t* p, uint32_t v, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) p[i] = uint8_t(v >> (8 * i));
}

// |v| rounded to `bits` significant bits, nearest even; the result is exactly representable as a float.
float round_int(int32_t v, int bits) {
  uint64_t mag = v < 0 ? uint64_t(-int64_t(v)) : uint64_t(v);
  const int width = mag ? 64 - __builtin_clzll(mag) : 0;
  if (width > bits) {
    const int drop = width - bits;
    const uint64_t rest = mag & ((uint64_t(1) << drop) - 1), half = uint64_t(1) << (drop - 1);
    uint64_t keep = mag >> drop;
    if (rest > half || (rest == half && (keep & 1))) ++keep;
    mag = keep << drop;
  }
  const float f = float(mag);  // exact: at most `bits` (<= 24) significant bits, at most 2^31
  return v < 0 ? -f : f;
}

// f32 (or an exact bf16 value) -> i32: nearest, ties to even; saturating; NaN -> 0.
uint32_t float_to_i32(float f) {
  if (std::isnan(f)) return 0;
  const double d = f, lo = std::floor(d), frac = d - lo;  // exact in double
  double r = lo;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(lo, 2.0) != 0)) r = lo + 1;
  if (r >= 2147483648.0) return 0x7FFFFFFFu;
  if (r < -2147483648.0) return 0x80000000u;
  return uint32_t(int32_t(r));
}

// One element: `raw` in `from` to bits in `to` (docs/isa.md, "dma_copy", casts).
uint32_t convert(uint32_t raw, DType from, DType to) {
  if (from == to) return raw;
  if (from == DType::kI32) {
    const int32_t v = int32_t(raw);
    if (to == DType::kF32) return num::f32_bits(round_int(v, 24));
    return num::f32_bits(round_int(v, 8)) >> 16;  // one rounding straight to bf16's 8 bits, exact in fp32
  }
  const float f = from == DType::kBf16 ? num::bf16_to_f32(uint16_t(raw)) : num::f32_from_bits(raw);
  if (to == DType::kF32) return num::f32_bits(f);  // bf16 -> f32 is exact
  if (to == DType::kBf16) return num::f32_to_bf16(f);
  return float_to_i32(f);
}

}  // namespace

// ---- dma_copy --------------------------------------------------------------------------------------------

bool Tc1::dma_affine_side(uint64_t addr, uint64_t space, uint64_t bytes, const uint64_t count[3],
                          const uint64_t stride[3], AffineSide& side) {
  // Addresses grow with every index (strides are unsigned, < 2^32; counts < 2^16): the first and the last
  // run bound all of them, and no sum wraps.
  uint64_t last = addr;
  for (int d = 0; d < 3; ++d) last += (count[d] - 1) * stride[d];
  if (isa::addr_space(addr) != space || isa::addr_space(last) != space) return false;
  const uint64_t off = isa::addr_offset(addr), off_last = isa::addr_offset(last);
  side.space = space;
  if (space == uint64_t(isa::Space::kHbm)) {
    if (off_last > window_size_ || bytes > window_size_ - off_last) return false;
    side.hbm = window_base_ + off;
    if (!owns(job_ctx_, side.hbm, off_last - off + bytes)) return false;  // the per-run check names the run
    for (int d = 0; d < 3; ++d) side.step[d] = stride[d];
    return true;
  }
  const bool sbuf = space == uint64_t(isa::Space::kSbuf);
  if (!sbuf && space != uint64_t(isa::Space::kPsum)) return false;
  const uint64_t pb = sbuf ? cfg_.sbuf_partition_bytes : cfg_.psum_partition_bytes();
  const uint64_t total = sbuf ? cfg_.sbuf_bytes() : cfg_.psum_bytes();
  if (off_last >= total) return false;
  // Each stride is q partitions and r bytes. If the offsets within the partition never carry into the next
  // one (o0 + sum (count - 1) * r + bytes <= pb), run (i1, i2, i3) is in partition p0 + sum i * q at offset
  // o0 + sum i * r, all of it inside that partition.
  uint64_t within = off % pb + bytes;
  for (int d = 0; d < 3; ++d) within += (count[d] - 1) * (stride[d] % pb);
  if (within > pb) return false;
  side.part_lo = off / pb, side.part_hi = off_last / pb;
  side.off_lo = off % pb, side.off_hi = within;
  ChipMemory& mem = sbuf ? sbuf_ : psum_;
  side.host = mem.at(off);
  for (int d = 0; d < 3; ++d) side.step[d] = stride[d] / pb * mem.pitch() + stride[d] % pb;
  return true;
}

void Tc1::dma_move_affine(const AffineSide& src, const AffineSide& dst, uint64_t n, const uint64_t count[3],
                          uint8_t* bounce) {
  const bool src_hbm = src.space == uint64_t(isa::Space::kHbm), dst_hbm = dst.space == uint64_t(isa::Space::kHbm);
  // A transposing gather (one bf16 per run; dimension 1 steps the destination by one element, dimension 2
  // the source) between regions that share no byte, and whose destination runs are all distinct, gives the
  // same memory in any order: transpose it 8 x 8 at a time.
  const bool disjoint = src.space != dst.space || src.part_hi < dst.part_lo || dst.part_hi < src.part_lo ||
                        src.off_hi <= dst.off_lo || dst.off_hi <= src.off_lo;
  if (!src_hbm && !dst_hbm && n == 2 && count[2] == 1 && src.step[1] == 2 && dst.step[0] == 2 &&
      dst.step[1] >= 2 * count[0] && disjoint) {
    transpose_u16(src.host, src.step[0], dst.host, dst.step[1], count[0], count[1]);
    return;
  }
  for (uint64_t i3 = 0; i3 < count[2]; ++i3) {
    for (uint64_t i2 = 0; i2 < count[1]; ++i2) {
      const uint64_t s0 = i3 * src.step[2] + i2 * src.step[1], d0 = i3 * dst.step[2] + i2 * dst.step[1];
      if (!src_hbm && !dst_hbm) {
        // SBUF/PSUM to SBUF: one memmove per run, in run order (a run reads its source after the runs before
        // it wrote theirs, as through the bounce buffer).
        const uint8_t* sp = src.host + s0;
        uint8_t* dp = dst.host + d0;
        if (n == 2) {  // a transposing gather: one bf16 per run
          for (uint64_t i1 = 0; i1 < count[0]; ++i1, sp += src.step[0], dp += dst.step[0]) {
            uint16_t v;
            std::memcpy(&v, sp, 2);
            std::memcpy(dp, &v, 2);
          }
        } else {
          for (uint64_t i1 = 0; i1 < count[0]; ++i1, sp += src.step[0], dp += dst.step[0]) std::memmove(dp, sp, n);
        }
        continue;
      }
      for (uint64_t i1 = 0; i1 < count[0]; ++i1) {
        const uint64_t so = s0 + i1 * src.step[0], dof = d0 + i1 * dst.step[0];
        if (src_hbm && dst_hbm) {  // HBM to HBM may overlap: through the bounce buffer
          hbm_.read(src.hbm + so, bounce, n);
          hbm_.write(dst.hbm + dof, bounce, n);
        } else if (src_hbm) {
          hbm_.read(src.hbm + so, dst.host + dof, n);
        } else {
          hbm_.write(dst.hbm + dof, src.host + so, n);
        }
      }
    }
  }
}

bool Tc1::dma_copy(int engine, uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats) {
  auto fault = [&](FaultCode c, uint64_t addr) {
    raise_fault(c, engine, pc, addr, uint32_t(in.opcode));
    return false;
  };
  using S = isa::Space;
  // Operand ranges, element types and directions, in the order docs/isa.md lists them.
  if (in.bytes == 0 || in.d1_count == 0 || in.d2_count == 0 || in.d3_count == 0) return fault(FaultCode::BadOperand, 0);
  const uint64_t runs = in.d1_count * in.d2_count * in.d3_count;  // < 2^48
  if (runs > kMaxDmaRuns) return fault(FaultCode::BadOperand, 0);
  uint32_t src_size = 1, dst_size = 1;
  if (in.cast) {
    src_size = isa::dtype_bytes(in.src_dtype);
    dst_size = isa::dtype_bytes(in.dst_dtype);
    if (src_size == 0) return fault(FaultCode::BadDtype, in.src);
    if (dst_size == 0) return fault(FaultCode::BadDtype, in.dst);
    if (in.bytes % src_size != 0) return fault(FaultCode::BadOperand, 0);
  } else if (in.src_dtype != 0 || in.dst_dtype != 0) {
    return fault(FaultCode::BadDtype, in.src_dtype != 0 ? in.src : in.dst);
  }
  const uint64_t ss = isa::addr_space(in.src), ds = isa::addr_space(in.dst);
  const bool legal = (ss == uint64_t(S::kHbm) && (ds == uint64_t(S::kSbuf) || ds == uint64_t(S::kHbm))) ||
                     (ss == uint64_t(S::kSbuf) && (ds == uint64_t(S::kHbm) || ds == uint64_t(S::kSbuf))) ||
                     (ss == uint64_t(S::kPsum) && ds == uint64_t(S::kSbuf));
  if (!legal) return fault(FaultCode::BadSpace, ss > 2 ? in.src : in.dst);
  // PSUM holds fp32: a converting read from it must say so.
  if (in.cast && ss == uint64_t(S::kPsum) && in.src_dtype != uint64_t(isa::DType::kF32))
    return fault(FaultCode::BadDtype, in.src);

  const uint64_t src_run = in.bytes, dst_run = in.bytes / src_size * dst_size;
  // Visits the runs in order (dimension 1 innermost); stops when `f` returns false.
  auto for_each_run = [&](auto&& f) {
    for (uint64_t i3 = 0; i3 < in.d3_count; ++i3)
      for (uint64_t i2 = 0; i2 < in.d2_count; ++i2)
        for (uint64_t i1 = 0; i1 < in.d1_count; ++i1)
          if (!f(in.src + i3 * in.src_d3_stride + i2 * in.src_d2_stride + i1 * in.src_d1_stride,
                 in.dst + i3 * in.dst_d3_stride + i2 * in.dst_d2_stride + i1 * in.dst_d1_stride))
            return false;
    return true;
  };
  // Check every run before moving anything, so a faulting copy changes no memory. A run whose address
  // carries out of its space's offset bits has left the space: BadSpace.
  Fault bad;
  auto check = [&](uint64_t a, uint64_t space, uint64_t n) {
    Run r;
    Fault f;
    if (isa::addr_space(a) != space)
      bad = {FaultCode::BadSpace, a};
    else if (!resolve(a, n, r, f))
      bad = {f.code, a};
    else
      return true;
    return false;
  };
  const uint64_t count[3] = {in.d1_count, in.d2_count, in.d3_count};
  const uint64_t src_stride[3] = {in.src_d1_stride, in.src_d2_stride, in.src_d3_stride};
  const uint64_t dst_stride[3] = {in.dst_d1_stride, in.dst_d2_stride, in.dst_d3_stride};
  AffineSide src_side, dst_side;
  const bool affine = dma_affine_side(in.src, ss, src_run, count, src_stride, src_side) &&
                      dma_affine_side(in.dst, ds, dst_run, count, dst_stride, dst_side);
  if (!affine && !for_each_run([&](uint64_t s, uint64_t d) { return check(s, ss, src_run) && check(d, ds, dst_run); }))
    return fault(bad.code, bad.addr);

  // Timing (docs/isa.md): start latency, then the effective bytes (every run at least dma_min_run_bytes,
  // of the larger of its two sides) at the queue's peak, or at its share of HBM when a side is HBM.
  const uint64_t effective = runs * std::max({src_run, dst_run, uint64_t(cfg_.dma_min_run_bytes)});
  stats.bytes = runs * std::max(src_run, dst_run);
  if (!wait_cycles(cfg_.dma_latency_cycles, token)) return false;
  const uint32_t sides = uint32_t(ss == uint64_t(S::kHbm)) + uint32_t(ds == uint64_t(S::kHbm));
  if (sides == 0) {
    const uint64_t q = std::max<uint64_t>(cfg_.dma_bytes_per_cycle, 1);
    if (!wait_cycles((effective + q - 1) / q, token)) return false;
  } else if (!dma_hbm_transfer(engine, effective, sides, token)) {
    return false;
  }
  if (!dma_retire(engine, token)) return false;
  if (!poison_.empty() && !ecc_check(engine, pc, in)) return false;  // injected bit flips (fault_injection.cpp)

  // Data moves at completion, run by run through a bounce buffer (sources may overlap sinks).
  if (ss == uint64_t(S::kPsum)) psum_flush();  // TensorE's held result columns (tc1.h, PsumBlock)
  if (ds == uint64_t(S::kSbuf)) ++sbuf_gen_;   // TensorE's moving columns read ahead are stale
  std::vector<uint8_t> buf(std::max(src_run, dst_run));
  const auto from = isa::DType(in.src_dtype), to = isa::DType(in.dst_dtype);
  const bool same = !in.cast || from == to;
  if (affine && same) {
    dma_move_affine(src_side, dst_side, src_run, count, buf.data());
    return true;
  }
  for_each_run([&](uint64_t s, uint64_t d) {
    Run rs{}, rd{};
    Fault f;
    resolve(s, src_run, rs, f);
    resolve(d, dst_run, rd, f);
    read_run(rs, buf.data(), src_run);
    if (!same) {
      // In place: forwards when the elements shrink, backwards when they grow.
      const uint64_t n = src_run / src_size;
      auto one = [&](uint64_t i) {
        store_le(&buf[i * dst_size], convert(load_le(&buf[i * src_size], src_size), from, to), dst_size);
      };
      if (dst_size <= src_size)
        for (uint64_t i = 0; i < n; ++i) one(i);
      else
        for (uint64_t i = n; i-- > 0;) one(i);
    }
    write_run(rd, buf.data(), dst_run);
    return true;
  });
  return true;
}

}  // namespace tcemu::emu
