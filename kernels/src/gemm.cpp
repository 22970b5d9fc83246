// GEMM schedule (per config: R array rows = K chunk, C array cols = M tile, NB fp32 per PSUM bank):
//
//   for each n-tile (<= NB columns of B and C):
//     DMA q1: B panel [K x nt] -> SBUF buffer bb (partition r holds row k = t*R + r of k-tile t)
//     for each m-tile (<= C rows of A and C):
//       DMA q0: A^T panel: A[m-tile, :] transposed into SBUF buffer ab (partition r, k-tile t: A[m][t*R+r])
//       TensorE: one matmul per k-tile into PSUM bank pb (the first overwrites, the rest accumulate)
//       DMA q2: PSUM bank pb -> SBUF out buffer ob;  DMA q3: out buffer ob -> C in HBM
//
// A, B and out buffers and PSUM banks are double-buffered, so loads of the next tile, evictions of the
// previous one and the matmuls of the current one overlap; Program::emit turns the buffer hazards
// (RAW and WAR) into semaphore waits.
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
  // Per SBUF partition: 2 A panels (k_tiles * m_tile bf16), 2 B panels (k_tiles * nt bf16), 2 out rows
  // (nt fp32). Take the widest n-tile that fits, up to one PSUM bank.
  const int64_t part = cfg.sbuf_partition_bytes;
  const int64_t a_bytes = 2LL * p.k_tiles * p.m_tile * 2;
  const int64_t per_n = 2LL * p.k_tiles * 2 + 2 * 4;
  const int64_t bank_cols = cfg.psum_bank_bytes / 4;
  int64_t nt = (part - a_bytes) / per_n;
  nt = std::min<int64_t>({nt, bank_cols, int64_t(N)});
  if (nt < 1)
    throw Error(ErrorCode::kCapacity,
                fmt::format("gemm M={} N={} K={} does not fit {}: the A^T panels need {} bytes per SBUF partition "
                            "plus {} per output column, the partition has {} bytes",
                            M, N, K, cfg.name, a_bytes, per_n, part));
  p.n_tile = int(nt);
  p.n_tiles = ceil_div(N, p.n_tile);
  return p;
}

model::Model build_gemm(const DeviceConfig& cfg, int M, int N, int K) {
  const GemmPlan p = plan_gemm(cfg, M, N, K);
  Program prog(cfg, fmt::format("gemm_{}x{}x{}", M, N, K));
  const uint64_t a = prog.add_tensor("a", model::DType::kBf16, model::TensorKind::kInput, {M, K});
  const uint64_t b = prog.add_tensor("b", model::DType::kBf16, model::TensorKind::kInput, {K, N});
  const uint64_t c = prog.add_tensor("c", model::DType::kF32, model::TensorKind::kOutput, {M, N});

  const uint64_t R = uint64_t(p.k_tile), P = cfg.sbuf_partition_bytes, PP = cfg.psum_partition_bytes();
  const uint64_t kt = uint64_t(p.k_tiles), mt = uint64_t(p.m_tile), nt = uint64_t(p.n_tile);
  auto a_off = [&](int buf) { return uint64_t(buf) * kt * mt * 2; };
  const uint64_t b_base = 2 * kt * mt * 2;
  auto b_off = [&](int buf) { return b_base + uint64_t(buf) * kt * nt * 2; };
  const uint64_t o_base = b_base + 2 * kt * nt * 2;
  auto o_off = [&](int buf) { return o_base + uint64_t(buf) * nt * 4; };

  Ref a_reader[2], b_reader[2], bank_reader[2], out_reader[2];
  int group = 0;
  for (int nj = 0; nj < p.n_tiles; ++nj) {
    const uint64_t n0 = uint64_t(nj) * nt, nw = std::min<uint64_t>(nt, uint64_t(N) - n0);
    const int bb = nj % 2;
    // B panel: whole k-tiles in one 3-D copy, the partial last k-tile in a second one.
    Ref b_ready;
    const uint64_t kfull = uint64_t(K) / R, krem = uint64_t(K) % R;
    if (kfull)
      b_ready = prog.emit(kQueueB,
                          dma(b + n0 * 2, sbuf_addr(cfg, 0, b_off(bb)), nw * 2, R, uint64_t(N) * 2, P, kfull,
                              R * uint64_t(N) * 2, nt * 2),
                          {b_reader[bb]});
    if (krem)
      b_ready = prog.emit(kQueueB,
                          dma(b + (kfull * R * uint64_t(N) + n0) * 2, sbuf_addr(cfg, 0, b_off(bb) + kfull * nt * 2),
                              nw * 2, krem, uint64_t(N) * 2, P),
                          {b_reader[bb]});
    for (int mi = 0; mi < p.m_tiles; ++mi, ++group) {
      const uint64_t m0 = uint64_t(mi) * mt, mw = std::min<uint64_t>(mt, uint64_t(M) - m0);
      const int ab = group % 2, pb = group % 2, ob = group % 2;
      Ref last_mm;
      for (uint64_t t = 0; t < kt; ++t) {
        const uint64_t k0 = t * R, kw = std::min<uint64_t>(R, uint64_t(K) - k0);
        // A^T tile: element A[m0+c][k0+r] -> partition r, byte 2c of the tile.
        Ref a_ready = prog.emit(kQueueA,
                                dma(a + (m0 * uint64_t(K) + k0) * 2, sbuf_addr(cfg, 0, a_off(ab) + t * mt * 2), 2, mw,
                                    uint64_t(K) * 2, 2, kw, 2, P),
                                {a_reader[ab]});
        Instr mm;
        mm.opcode = Opcode::Matmul;
        mm.k = kw, mm.m = mw, mm.n = nw, mm.accumulate = t > 0;
        mm.st_part = 0, mm.mv_part = 0, mm.out_part = 0;
        mm.st_off = a_off(ab) + t * mt * 2;
        mm.mv_off = b_off(bb) + t * nt * 2;
        mm.out_off = uint64_t(pb) * cfg.psum_bank_bytes;
        std::vector<Ref> deps = {a_ready, b_ready};
        if (t == 0) deps.push_back(bank_reader[pb]);
        last_mm = prog.emit(isa::kEngineTensor, mm, deps);
      }
      a_reader[ab] = last_mm;
      b_reader[bb] = last_mm;
      Ref evict = prog.emit(kQueueEvict,
                            dma(psum_addr(cfg, 0, uint64_t(pb) * cfg.psum_bank_bytes), sbuf_addr(cfg, 0, o_off(ob)),
                                nw * 4, mw, PP, P),
                            {last_mm, out_reader[ob]});
      bank_reader[pb] = evict;
      out_reader[ob] = prog.emit(kQueueStore,
                                 dma(sbuf_addr(cfg, 0, o_off(ob)), c + (m0 * uint64_t(N) + n0) * 4, nw * 4, mw, P,
                                     uint64_t(N) * 4),
                                 {evict});
    }
  }
  return prog.finish();
}

}  // namespace tcemu::kb
