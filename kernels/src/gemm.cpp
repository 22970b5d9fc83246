// GEMM schedule (per config: R array rows = K chunk, C array cols = M tile, NB fp32 per PSUM bank):
//
//   for each n-tile (<= NB columns of B and C):
//     for each m-tile (<= C rows of A and C):
//       for each k-group (k_group k-tiles; one group when whole-K panels fit in SBUF):
//         DMA q1: B panel of the group [kg*R x nt] -> SBUF (partition r, k-tile t: row t*R + r of B)
//                 (with one group, loaded once per n-tile and reused by every m-tile)
//         DMA q0: A^T panel of the group: A[m-tile, group] transposed into SBUF (partition r, k-tile t:
//                 A[m][t*R + r]), one 2-D copy per k-tile
//         TensorE: one matmul per k-tile into PSUM bank pb (the very first overwrites, the rest add)
//       DMA q2: PSUM bank pb -> SBUF out buffer;  DMA q3: out buffer -> C in HBM
//
// A panels, B panels, out buffers and PSUM banks are double-buffered, so loads of the next tile,
// evictions of the previous one and the matmuls of the current one overlap; Program::emit turns the
// buffer hazards (RAW and WAR) into semaphore waits.
#include "tcemu/kb/gemm.h"

#include <fmt/format.h>

#include <algorithm>

#include "tcemu/error.h"
#include "tcemu/kb/program.h"

namespace tcemu::kb {

using isa::Instr;
using isa::Opcode;

namespace {

constexpr int kQueueA = isa::kEngineDma0 + 0, kQueueB = isa::kEngineDma0 + 1;
constexpr int kQueueEvict = isa::kEngineDma0 + 2, kQueueStore = isa::kEngineDma0 + 3;

int ceil_div(int a, int b) { return (a + b - 1) / b; }

Instr dma(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t d1, uint64_t s1, uint64_t t1, uint64_t d2 = 1,
          uint64_t s2 = 0, uint64_t t2 = 0) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes;
  in.d1_count = d1, in.src_d1_stride = s1, in.dst_d1_stride = t1;
  in.d2_count = d2, in.src_d2_stride = s2, in.dst_d2_stride = t2;
  return in;
}

}  // namespace

GemmPlan plan_gemm(const DeviceConfig& cfg, int M, int N, int K) {
  if (M < 1 || N < 1 || K < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("gemm: sizes must be positive, got M={} N={} K={}", M, N, K));
  if (cfg.dma_queues < 4)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("gemm: needs 4 DMA queues, config {} has {}", cfg.name, cfg.dma_queues));
  GemmPlan p;
  p.k_tile = cfg.rows;
  p.m_tile = std::min(M, cfg.cols);
  p.k_tiles = ceil_div(K, p.k_tile);
  p.m_tiles = ceil_div(M, p.m_tile);
  // Per SBUF partition: 2 A panels (kg * m_tile bf16), 2 B panels (kg * nt bf16), 2 out rows (nt fp32).
  const int64_t part = cfg.sbuf_partition_bytes, mt = p.m_tile;
  const int64_t bank_cols = cfg.psum_bank_bytes / 4;
  auto fits = [&](int64_t kg, int64_t nt) { return 4 * kg * mt + 4 * kg * nt + 8 * nt <= part; };
  // Whole-K panels with the widest n-tile that fits, if that n-tile is not narrow...
  int64_t kg = p.k_tiles;
  int64_t nt = (part - 4 * kg * mt) / (4 * kg + 8);
  nt = std::min<int64_t>({nt, bank_cols, int64_t(N)});
  if (nt < std::min<int64_t>(N, 64)) {
    // ... otherwise K in groups, with n-tiles as wide as a PSUM bank (or N).
    nt = std::min<int64_t>(bank_cols, N);
    while (nt > 1 && !fits(1, nt)) nt /= 2;
    kg = (part - 8 * nt) / (4 * mt + 4 * nt);
    kg = std::min<int64_t>(kg, p.k_tiles);
  }
  if (nt < 1 || kg < 1 || !fits(kg, nt))
    throw Error(ErrorCode::kCapacity,
                fmt::format("gemm M={} N={} K={} does not fit {}: one k-tile of the A^T and B panels needs {} "
                            "bytes per SBUF partition, the partition has {} bytes",
                            M, N, K, cfg.name, 4 * mt + 4 + 8, part));
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

  Ref a_reader[2], b_reader[2], bank_reader[2], out_reader[2];
  int a_loads = 0, b_loads = 0, group = 0;
  int bb = 0;
  Ref b_ready;
  // Loads rows [k0, k0 + kw) x columns [n0, n0 + nw) of B into B buffer `buf`: whole k-tiles in one
  // 3-D copy, a partial last k-tile in a second one.
  auto load_b = [&](int buf, uint64_t k0, uint64_t kw, uint64_t n0, uint64_t nw) {
    const uint64_t full = kw / R, rem = kw % R;
    Ref done;
    if (full)
      done = prog.emit(kQueueB,
                       dma(b + (k0 * uN + n0) * 2, sbuf_addr(cfg, 0, b_off(buf)), nw * 2, R, uN * 2, P, full,
                           R * uN * 2, nt * 2),
                       {b_reader[buf]});
    if (rem)
      done = prog.emit(kQueueB,
                       dma(b + ((k0 + full * R) * uN + n0) * 2, sbuf_addr(cfg, 0, b_off(buf) + full * nt * 2), nw * 2,
                           rem, uN * 2, P),
                       {b_reader[buf]});
    return done;
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
          b_ready = load_b(bb, k0, kw, n0, nw);
        }
        const int ab = a_loads++ % 2;
        for (uint64_t t = t0; t < t1; ++t) {
          const uint64_t kt0 = t * R, ktw = std::min<uint64_t>(R, uK - kt0), slot = t - t0;
          // A^T tile: element A[m0+c][kt0+r] -> partition r, byte 2c of the tile.
          Ref a_ready = prog.emit(kQueueA,
                                  dma(a + (m0 * uK + kt0) * 2, sbuf_addr(cfg, 0, a_off(ab) + slot * mt * 2), 2, mw,
                                      uK * 2, 2, ktw, 2, P),
                                  {a_reader[ab]});
          Instr mm;
          mm.opcode = Opcode::Matmul;
          mm.k = ktw, mm.m = mw, mm.n = nw, mm.accumulate = t > 0;
          mm.st_part = 0, mm.mv_part = 0, mm.out_part = 0;
          mm.st_off = a_off(ab) + slot * mt * 2;
          mm.mv_off = b_off(bb) + slot * nt * 2;
          mm.out_off = uint64_t(pb) * cfg.psum_bank_bytes;
          std::vector<Ref> deps = {a_ready, b_ready};
          if (t == 0) deps.push_back(bank_reader[pb]);
          last_mm = prog.emit(isa::kEngineTensor, mm, deps);
        }
        a_reader[ab] = last_mm;
        b_reader[bb] = last_mm;
      }
      Ref evict = prog.emit(kQueueEvict,
                            dma(psum_addr(cfg, 0, uint64_t(pb) * cfg.psum_bank_bytes), sbuf_addr(cfg, 0, o_off(ob)),
                                nw * 4, mw, PP, P),
                            {last_mm, out_reader[ob]});
      bank_reader[pb] = evict;
      out_reader[ob] = prog.emit(kQueueStore,
                                 dma(sbuf_addr(cfg, 0, o_off(ob)), c + (m0 * uN + n0) * 4, nw * 4, mw, P, uN * 4),
                                 {evict});
    }
  }
  return prog.finish();
}

}  // namespace tcemu::kb
