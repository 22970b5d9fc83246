// GEMM schedule (per config: R array rows = K chunk, C array cols = M tile, NB fp32 per PSUM bank):
//
//   for each n-tile (<= NB columns of B and C):
//     for each m-tile (<= C rows of A and C):
//       for each k-group (k_group k-tiles; one group when whole-K panels fit in SBUF):
//         DMA B queues: B panel of the group [kg*R x nt] -> SBUF (partition r, k-tile t: row t*R + r of
//                 B), one copy per k-tile (with one group, loaded once per n-tile and reused by every m-tile)
//         DMA q0: A[m-tile, group] -> SBUF stage, as stored (partition m, byte 2k: long contiguous runs)
//         DMA transpose queues: stage -> A^T panel (partition r, k-tile t: A[m][t*R + r]), one SBUF->SBUF
//                 copy of 2-byte runs per k-tile
//         TensorE: one matmul per k-tile into PSUM bank pb (the very first overwrites, the rest add)
//       DMA q2 (+ evict queues): PSUM bank pb -> SBUF out buffer;  DMA q3 (+ store queues): out buffer -> C
//       in HBM (split by partitions over several queues when one copy would take longer than half the
//       m-tile's matmuls)
//
// A stages, A panels, B panels, out buffers and PSUM banks are double-buffered, so loads of the next tile,
// evictions of the previous one and the matmuls of the current one overlap; Program::emit turns the
// buffer hazards (RAW and WAR) into semaphore waits.
//
// Why the A^T panel goes through an SBUF stage, and why copies rotate over queues (docs/isa.md, dma_copy
// timing): a transposing copy is a gather of 2-byte runs, and every run costs at least dma_min_run_bytes
// of bandwidth. Gathered straight from HBM those runs would fill the shared HBM bandwidth with mostly
// wasted bytes; loaded as stored, A costs HBM only its own bytes, and the transposing copies run SBUF to
// SBUF, which uses no HBM bandwidth. A transposing copy still takes a queue about one cycle per element,
// longer than its matmul streams, so the per-k-tile copies rotate over as many queues as that takes. The
// B panel comes one k-tile per copy, rotating over queues too, so that the first matmul starts after one
// k-tile of B rather than after the whole panel.
#include "tcemu/kb/gemm.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "tcemu/error.h"
#include "tcemu/kb/ops.h"
#include "tcemu/kb/program.h"

namespace tcemu::kb {

using isa::Instr;
using isa::Opcode;

namespace {

using ops::dma;

constexpr int kQueueA = isa::kEngineDma0 + 0, kQueueB = isa::kEngineDma0 + 1;
constexpr int kQueueEvict = isa::kEngineDma0 + 2, kQueueStore = isa::kEngineDma0 + 3;

int ceil_div(int a, int b) { return (a + b - 1) / b; }
int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The DMA queues of each kind of copy, in rotation order. q0..q3 as in the schedule above; the queues from
// q4 up go first to the transposing A copies, then to B, then in pairs to evictions and stores, as many as
// the copy times call for (alone-queue cycles, docs/isa.md: L + runs * max(run bytes, dma_min_run_bytes)
// / q, against the n-tile's matmul time). Without spare queues the transposes share q0.
struct LoadQueues {
  std::vector<int> transpose, b, evict, store;
};
LoadQueues load_queues(const DeviceConfig& cfg, const GemmPlan& p) {
  const int64_t q = std::max<uint32_t>(cfg.dma_bytes_per_cycle, 1), L = cfg.dma_latency_cycles;
  const int64_t run_min = cfg.dma_min_run_bytes, nt = p.n_tile;
  const int64_t t_cycles = L + ceil_div64(int64_t(p.k_tile) * p.m_tile * std::max<int64_t>(2, run_min), q);
  const int64_t b_cycles = L + ceil_div64(int64_t(p.k_tile) * std::max<int64_t>(2 * nt, run_min), q);
  int spare = std::max(cfg.dma_queues - 4, 0);
  const int want_t = int(std::min<int64_t>(ceil_div64(t_cycles, nt), spare));
  spare -= want_t;
  const int want_b = int(std::min<int64_t>(ceil_div64(b_cycles, nt) - 1, spare));
  spare -= want_b;
  // The eviction of an m-tile must be done before its PSUM bank's next use, one m-tile later.
  const int64_t e_cycles = L + ceil_div64(int64_t(p.m_tile) * nt * 4, q), m_cycles = int64_t(p.k_tiles) * nt;
  const int want_e = int(std::min<int64_t>({ceil_div64(2 * e_cycles, m_cycles), 1 + spare / 2, p.m_tile}));
  LoadQueues lq;
  int next = isa::kEngineDma0 + 4;
  for (int i = 0; i < want_t; ++i) lq.transpose.push_back(next++);
  if (lq.transpose.empty()) lq.transpose.push_back(kQueueA);
  lq.b.push_back(kQueueB);
  for (int i = 0; i < want_b; ++i) lq.b.push_back(next++);
  lq.evict.push_back(kQueueEvict);
  lq.store.push_back(kQueueStore);
  for (int i = 1; i < want_e; ++i) lq.evict.push_back(next++), lq.store.push_back(next++);
  return lq;
}

}  // namespace

GemmPlan plan_gemm(const DeviceConfig& cfg, int M, int N, int K) {
  if (M < 1 || N < 1 || K < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("gemm: sizes must be positive, got M={} N={} K={}", M, N, K));
  if (cfg.dma_queues < 4)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("gemm: needs 4 DMA queues, config {} has {}", cfg.name, cfg.dma_queues));
  GemmPlan p;
  p.k_tile = cfg.rows;
  p.m_tile = std::min(M, cfg.cols);
  p.k_tiles = ceil_div(K, p.k_tile);
  p.m_tiles = ceil_div(M, p.m_tile);
  // Per SBUF partition: 2 A panels (kg * m_tile bf16), 2 A stages (kg * k_tile bf16), 2 B panels
  // (kg * nt bf16), 2 out rows (nt fp32).
  const int64_t part = cfg.sbuf_partition_bytes, mt = p.m_tile, a_bytes = 4 * (mt + p.k_tile);
  const int64_t bank_cols = cfg.psum_bank_bytes / 4;
  auto fits = [&](int64_t kg, int64_t nt) { return kg * a_bytes + 4 * kg * nt + 8 * nt <= part; };
  // Whole-K panels with the widest n-tile that fits, if that n-tile is not narrow...
  int64_t kg = p.k_tiles;
  int64_t nt = (part - kg * a_bytes) / (4 * kg + 8);
  nt = std::min<int64_t>({nt, bank_cols, int64_t(N)});
  if (nt < std::min<int64_t>(N, 64)) {
    // ... otherwise K in groups, with n-tiles as wide as a PSUM bank (or N).
    nt = std::min<int64_t>(bank_cols, N);
    while (nt > 1 && !fits(1, nt)) nt /= 2;
    kg = (part - 8 * nt) / (a_bytes + 4 * nt);
    kg = std::min<int64_t>(kg, p.k_tiles);
  }
  if (nt < 1 || kg < 1 || !fits(kg, nt))
    throw Error(ErrorCode::kCapacity,
                fmt::format("gemm M={} N={} K={} does not fit {}: one k-tile of the A stage, A^T and B panels "
                            "needs {} bytes per SBUF partition, the partition has {} bytes",
                            M, N, K, cfg.name, a_bytes + 4 + 8, part));
  p.n_tile = int(nt);
  p.n_tiles = ceil_div(N, p.n_tile);
  p.k_group = int(kg);
  p.k_groups = ceil_div(p.k_tiles, p.k_group);
  return p;
}

model::Model build_gemm(const DeviceConfig& cfg, int M, int N, int K) {
  const GemmPlan p = plan_gemm(cfg, M, N, K);
  Program prog(cfg, fmt::format("gemm_{}x{}x{}", M, N, K));
  const uint64_t a = prog.add_tensor("a", model::DType::kBf16, model::TensorKind::kInput, {M, K});
  const uint64_t b = prog.add_tensor("b", model::DType::kBf16, model::TensorKind::kInput, {K, N});
  const uint64_t c = prog.add_tensor("c", model::DType::kF32, model::TensorKind::kOutput, {M, N});

  const uint64_t R = uint64_t(p.k_tile), P = cfg.sbuf_partition_bytes, PP = cfg.psum_partition_bytes();
  const uint64_t kg = uint64_t(p.k_group), mt = uint64_t(p.m_tile), nt = uint64_t(p.n_tile);
  const uint64_t uK = uint64_t(K), uN = uint64_t(N), uM = uint64_t(M);
  auto a_off = [&](int buf) { return uint64_t(buf) * kg * mt * 2; };
  const uint64_t b_base = 2 * kg * mt * 2;
  auto b_off = [&](int buf) { return b_base + uint64_t(buf) * kg * nt * 2; };
  const uint64_t o_base = b_base + 2 * kg * nt * 2;
  auto o_off = [&](int buf) { return o_base + uint64_t(buf) * nt * 4; };
  const uint64_t s_base = o_base + 2 * nt * 4;
  auto s_off = [&](int buf) { return s_base + uint64_t(buf) * kg * R * 2; };

  // a_reader[buf]: the last matmul reading A panel `buf` (and, through its transposes, A stage `buf`).
  Ref a_reader[2], b_reader[2];
  std::vector<Ref> bank_reader[2], out_reader[2];  // every part of the last eviction / store
  int a_loads = 0, b_loads = 0, group = 0;
  int bb = 0;
  const LoadQueues lq = load_queues(cfg, p);
  size_t t_copies = 0, b_copies = 0;
  std::vector<Ref> b_ready(kg);  // per k-tile slot of the current B buffer
  // Loads rows [k0, k0 + kw) x columns [n0, n0 + nw) of B into B buffer `buf`, one copy per k-tile.
  auto load_b = [&](int buf, uint64_t k0, uint64_t kw, uint64_t n0, uint64_t nw) {
    for (uint64_t slot = 0; slot * R < kw; ++slot) {
      const uint64_t rows = std::min<uint64_t>(R, kw - slot * R);
      b_ready[slot] = prog.emit(lq.b[b_copies++ % lq.b.size()],
                                dma(b + ((k0 + slot * R) * uN + n0) * 2, sbuf_addr(cfg, 0, b_off(buf) + slot * nt * 2),
                                    nw * 2, rows, uN * 2, P),
                                {b_reader[buf]});
    }
  };
  for (int nj = 0; nj < p.n_tiles; ++nj) {
    const uint64_t n0 = uint64_t(nj) * nt, nw = std::min<uint64_t>(nt, uN - n0);
    for (int mi = 0; mi < p.m_tiles; ++mi, ++group) {
      const uint64_t m0 = uint64_t(mi) * mt, mw = std::min<uint64_t>(mt, uM - m0);
      const int pb = group % 2, ob = group % 2;
      Ref last_mm;
      for (int g = 0; g < p.k_groups; ++g) {
        const uint64_t t0 = uint64_t(g) * kg, t1 = std::min<uint64_t>(t0 + kg, uint64_t(p.k_tiles));
        const uint64_t k0 = t0 * R, kw = std::min<uint64_t>(t1 * R, uK) - k0;
        if (p.k_groups > 1 || mi == 0) {
          bb = b_loads++ % 2;
          load_b(bb, k0, kw, n0, nw);
        }
        const int ab = a_loads++ % 2;
        // A stage: rows m0 .. m0+mw of A, columns k0 .. k0+kw -> partition c, byte 2 (k - k0).
        const Ref staged = prog.emit(
            kQueueA, dma(a + (m0 * uK + k0) * 2, sbuf_addr(cfg, 0, s_off(ab)), kw * 2, mw, uK * 2, P), {a_reader[ab]});
        for (uint64_t t = t0; t < t1; ++t) {
          const uint64_t ktw = std::min<uint64_t>(R, uK - t * R), slot = t - t0;
          // A^T tile: element A[m0+c][t*R+r] (stage partition c, byte 2 (slot*R + r)) -> partition r, byte
          // 2c of the tile.
          Ref a_ready = prog.emit(lq.transpose[t_copies++ % lq.transpose.size()],
                                  dma(sbuf_addr(cfg, 0, s_off(ab) + slot * R * 2),
                                      sbuf_addr(cfg, 0, a_off(ab) + slot * mt * 2), 2, mw, P, 2, ktw, 2, P),
                                  {staged, a_reader[ab]});
          Instr mm;
          mm.opcode = Opcode::Matmul;
          mm.k = ktw, mm.m = mw, mm.n = nw, mm.accumulate = t > 0;
          mm.st_part = 0, mm.mv_part = 0, mm.out_part = 0;
          mm.st_off = a_off(ab) + slot * mt * 2;
          mm.mv_off = b_off(bb) + slot * nt * 2;
          mm.out_off = uint64_t(pb) * cfg.psum_bank_bytes;
          std::vector<Ref> deps = {a_ready, b_ready[slot]};
          if (t == 0) deps.insert(deps.end(), bank_reader[pb].begin(), bank_reader[pb].end());
          last_mm = prog.emit(isa::kEngineTensor, mm, deps);
        }
        a_reader[ab] = last_mm;
        b_reader[bb] = last_mm;
      }
      const uint64_t parts = std::min<uint64_t>(lq.evict.size(), mw), rows = (mw + parts - 1) / parts;
      std::vector<Ref> evicts, stores;
      for (uint64_t i = 0; i * rows < mw; ++i) {
        const uint64_t r0 = i * rows, rw = std::min(rows, mw - r0);
        std::vector<Ref> deps = out_reader[ob];
        deps.push_back(last_mm);
        const Ref evict = prog.emit(lq.evict[i],
                                    dma(psum_addr(cfg, r0, uint64_t(pb) * cfg.psum_bank_bytes),
                                        sbuf_addr(cfg, r0, o_off(ob)), nw * 4, rw, PP, P),
                                    deps);
        evicts.push_back(evict);
        stores.push_back(prog.emit(
            lq.store[i], dma(sbuf_addr(cfg, r0, o_off(ob)), c + ((m0 + r0) * uN + n0) * 4, nw * 4, rw, P, uN * 4),
            {evict}));
      }
      bank_reader[pb] = evicts;
      out_reader[ob] = stores;
    }
  }
  return prog.finish();
}

}  // namespace tcemu::kb
