// GEMM schedule (R array rows = k-tile, C array columns = m-tile, NB = fp32 per PSUM bank = n-tile):
//
//   for each n-tile j (<= NB columns of b and c):
//     for each m-tile i (<= C rows of c):
//       for each k-tile t: matmul PSUM bank += stationary aT[t, i] (R x C) . moving b[t, j] (R x NB)
//       VectorE: PSUM bank -> SBUF out tile;  DMA: out tile -> c[i, j] (split over queues)
//
// Operand blocks are loaded on first use, in the order the matmuls need them, and kept when they fit:
//  - aT blocks: all of aT stays resident when it fits a third of a partition (then every block is loaded
//    once, during the first n-tile), else a ring of blocks is reloaded per use;
//  - b: a panel of all k-tiles of the n-tile, double-buffered (loaded during the n-tile's first m-tile,
//    reused by the others), else a ring of k-tiles reloaded per use.
// With row-major a, each aT block is made on chip: a[i, t] is loaded as stored (partition = row of a, long
// runs), VectorE transposes its 32 x 32 blocks in place (`transpose`), and one SBUF->SBUF DMA moves block
// (g, h) to (h, g) in runs of 32 elements. That costs VectorE ~R cycles and a queue ~R*R*e/q cycles per
// block, both off the tensor engine, where a pe_transpose would cost the array R columns plus a pipeline
// refill (docs/isa.md, matmul timing) per block.
//
// Every loop above is plain program order: the builder (kb::Kernel) turns the buffer reuse into semaphore
// waits and picks DMA queues, so loads of later blocks run ahead while the array works, limited only by the
// rings' sizes.
#include "tcemu/kb/gemm.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "tcemu/error.h"

namespace tcemu::kb {

void gemm(Kernel& k, const Dram& a, const Dram& b, const Dram& c, const GemmOptions& o) {
  if (a.shape.size() != 2 || b.shape.size() != 2 || c.shape.size() != 2 ||
      c.shape[0] != (o.a_transposed ? a.shape[1] : a.shape[0]) || c.shape[1] != b.shape[1])
    throw Error(ErrorCode::kInvalidArgument, fmt::format("gemm in kernel '{}': c {} does not match a x b", k.name(),
                                                         fmt::format("[{}]", fmt::join(c.shape, ", "))));
  // Evicted and stored in halves, so the first half's store overlaps the second half's copy.
  const DmaOpts store_opts{{}, k.config().dma_queues};
  gemm_tiles(k, a, b, o, [&](const Tile& acc, const Tile& out, uint64_t m0, uint64_t mw, uint64_t n0, uint64_t nw) {
    const uint64_t h = nw >= 256 ? ceil_div(nw, 2) : nw;
    for (uint64_t c0 = 0; c0 < nw; c0 += h) {
      const uint64_t cw = std::min(h, nw - c0);
      k.tensor_copy(out.cols(c0, cw), acc.cols(c0, cw));
      k.dma(c.rows(m0, mw, n0 + c0, cw), out.cols(c0, cw).ap(), store_opts);
    }
  });
}

void gemm_tiles(Kernel& k, const Dram& a, const Dram& b, const GemmOptions& o, const Epilogue& epilogue,
                const TileHook& before) {
  const DeviceConfig& cfg = k.config();
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("gemm in kernel '{}': {}", k.name(), why));
  };
  if (a.shape.size() != 2 || b.shape.size() != 2) fail("a and b must be matrices");
  const uint64_t M = uint64_t(o.a_transposed ? a.shape[1] : a.shape[0]);
  const uint64_t K = uint64_t(o.a_transposed ? a.shape[0] : a.shape[1]);
  const uint64_t N = uint64_t(b.shape[1]);
  if (uint64_t(b.shape[0]) != K)
    fail(fmt::format("shapes {} {} and b [{}, {}] do not make a x b", o.a_transposed ? "aT" : "a",
                     o.a_transposed ? fmt::format("[{}, {}]", K, M) : fmt::format("[{}, {}]", M, K), b.shape[0],
                     b.shape[1]));
  if (o.compute != isa::DType::kBf16 && o.compute != isa::DType::kF32) fail("compute dtype must be bf16 or f32");
  Kernel::Scope scope(k);
  const isa::DType cd = o.compute;
  const uint64_t e = elem_bytes(cd), R = uint64_t(cfg.rows), C = uint64_t(cfg.cols);
  const uint64_t NB = cfg.psum_bank_bytes / 4, part = k.sbuf_available();
  const uint64_t MT = std::min(M, C);
  const uint64_t kt = ceil_div(K, R), mts = ceil_div(M, MT);
  // Row-major a: blocks of B x B elements are transposed by VectorE; tiles are padded to B.
  const uint64_t B = std::min<uint64_t>(32, uint64_t(cfg.sbuf_partitions));
  const uint64_t Mp = o.a_transposed ? M : round_up(M, B);

  // The plan: the n-tile width NT, whether all of aT stays resident (else a ring of 4 blocks reloaded per
  // use, i.e. once per n-tile), whether b comes as a double-buffered panel of all k-tiles per n-tile
  // (reused by every m-tile; else a ring of 4 k-tiles reloaded per m-tile), and 6 or 2 out tiles. Of the
  // plans whose tiles fit what is left of a partition (64-byte aligned allocations; row-major a adds two
  // rings of 8 blocks), the one with the least HBM traffic wins, then the widest NT. When nothing fits,
  // the narrowest plan is tried anyway and the allocator's error names the first tile that does not.
  auto al = [](uint64_t b) { return round_up(b, 64); };
  const uint64_t s_bytes = o.a_transposed ? 0 : 16 * al(round_up(std::min(K, R), B) * e);
  struct Plan {
    uint64_t nt = 1, outs = 2;
    bool a_res = false, b_panel = false;
    uint64_t traffic = ~uint64_t(0);
  } plan;
  for (uint64_t nt = std::min(N, NB);; nt = ceil_div(nt, 2)) {
    const uint64_t nts = ceil_div(N, nt);
    for (bool ar : {true, false})
      for (bool bp : {true, false})
        for (uint64_t od : {6, 2}) {
          const uint64_t bytes = (ar ? al(kt * Mp * e) : 4 * al(round_up(MT, B) * e)) +
                                 (bp ? 2 * al(kt * nt * e) : 4 * al(nt * e)) + od * al(nt * 4) + s_bytes;
          if (bytes > part) continue;
          const uint64_t traffic = M * K * e * (ar ? 1 : nts) + K * N * e * (bp ? 1 : mts);
          if (traffic < plan.traffic || (traffic == plan.traffic && od > plan.outs && nt == plan.nt))
            plan = {nt, od, ar, bp, traffic};
        }
    if (nt == 1) break;
  }
  const bool a_res = plan.a_res, b_panel = plan.b_panel;
  const uint64_t NT = plan.nt, outs_n = plan.outs, nts = ceil_div(N, NT);
  std::optional<Tile> a_all;
  std::optional<Ring> a_ring;
  if (a_res)
    a_all = k.sbuf("aT", cd, uint32_t(R), kt * Mp);
  else
    a_ring.emplace(k, "aT_block", isa::Space::kSbuf, cd, uint32_t(R), round_up(MT, B), 4);
  std::optional<Ring> b_ring;
  if (b_panel)
    b_ring.emplace(k, "b_panel", isa::Space::kSbuf, cd, uint32_t(R), kt * NT, 2);
  else
    b_ring.emplace(k, "b_block", isa::Space::kSbuf, cd, uint32_t(R), NT, 4);
  std::optional<Ring> stage, trans;
  if (!o.a_transposed) {
    stage.emplace(k, "a_stage", isa::Space::kSbuf, cd, uint32_t(round_up(MT, B)), round_up(std::min(K, R), B), 8);
    trans.emplace(k, "a_trans", isa::Space::kSbuf, cd, uint32_t(round_up(MT, B)), round_up(std::min(K, R), B), 8);
  }
  Ring banks(k, "acc", isa::Space::kPsum, isa::DType::kF32, uint32_t(MT), NT, 4);
  Ring outs(k, "out", isa::Space::kSbuf, isa::DType::kF32, uint32_t(MT), NT, int(outs_n));

  const uint64_t P = cfg.sbuf_partition_bytes;
  // Loads aT block (i, t) into `dst` (kw partitions x mw elements at its start).
  auto load_a = [&](const Tile& dst, uint64_t m0, uint64_t mw, uint64_t k0, uint64_t kw, int split) {
    if (o.a_transposed) {
      k.dma(dst.parts(0, uint32_t(kw)).cols(0, mw).ap(), a.rows(k0, kw, m0, mw), {{}, split});
      return;
    }
    const uint64_t mp = round_up(mw, B), kp = round_up(kw, B);
    const Tile& s = stage->next();
    const Tile& tr = trans->next();
    k.dma(s.parts(0, uint32_t(mw)).cols(0, kw).ap(), a.rows(m0, mw, k0, kw), {{}, split ? split : 4});
    k.transpose32(tr.parts(0, uint32_t(mp)).cols(0, kp), s.parts(0, uint32_t(mp)).cols(0, kp));
    // tr[g*B + r][h*B + j] = a[m0 + g*B + j][k0 + h*B + r] -> aT block [h*B + r][g*B + j].
    Ap src{tr.addr(), cd, B, {{B, P}, {kp / B, B * e}, {mp / B, B * P}}, "tile '" + tr.name + "'"};
    Ap dstp{dst.addr(), cd, B, {{B, P}, {kp / B, B * P}, {mp / B, B * e}}, "tile '" + dst.name + "'"};
    k.dma(dstp, src, {{}, int(mp / B)});
  };
  // The aT block (i, t) for a matmul, loading it if needed.
  std::vector<bool> a_loaded(a_res ? mts * kt : 0);
  auto a_block = [&](uint64_t i, uint64_t t, int split = 0) {
    const uint64_t m0 = i * MT, mw = std::min(MT, M - m0), k0 = t * R, kw = std::min(R, K - k0);
    if (a_res) {
      const Tile blk = a_all->cols(t * Mp + m0, std::min(Mp - m0, round_up(mw, B)));
      if (!a_loaded[i * kt + t]) load_a(blk, m0, mw, k0, kw, split), a_loaded[i * kt + t] = true;
      return blk.parts(0, uint32_t(kw)).cols(0, mw);
    }
    const Tile& blk = a_ring->next();
    load_a(blk, m0, mw, k0, kw, split);
    return blk.parts(0, uint32_t(kw)).cols(0, mw);
  };

  // b panels: panel j is ring entry j (panels are loaded in n-tile order), k-tile t at column t * NT.
  auto panel_ktile = [&](uint64_t j, uint64_t t) {
    const uint64_t nw = std::min(NT, N - j * NT), kw = std::min(R, K - t * R);
    return (*b_ring)[j].cols(t * NT, nw).parts(0, uint32_t(kw));
  };
  auto load_panel_ktile = [&](uint64_t j, uint64_t t, int split) {
    const Tile dst = panel_ktile(j, t);
    k.dma(dst.ap(), b.rows(t * R, dst.np, j * NT, dst.n0), {{}, split});
  };
  // Prologue, in the order the first matmuls need the data: the first k-tile of aT and b split over every
  // queue (so the first matmul starts early), then b panel 0, then the resident aT blocks. Loads emitted
  // here run ahead of every store (queues are in order: a load emitted after a store waits behind it).
  if (b_panel)
    for (uint64_t t = 0; t < kt; ++t) {
      if (a_res) a_block(0, t, t == 0 ? cfg.dma_queues : 0);
      load_panel_ktile(0, t, t == 0 ? cfg.dma_queues : 0);
    }
  // Resident aT given transposed: every block is one plain load, all in the prologue. Row-major blocks go
  // through VectorE and two rings, so they are made at first use instead (made all at once, their
  // chained copies would hold the queues ahead of the next b panel).
  if (a_res && o.a_transposed)
    for (uint64_t i = 0; i < mts; ++i)
      for (uint64_t t = 0; t < kt; ++t) a_block(i, t);
  for (uint64_t j = 0; j < nts; ++j) {
    const uint64_t n0 = j * NT, nw = std::min(NT, N - n0);
    // The next panel loads while this one is used (its buffer's last readers are n-tile j-1's matmuls).
    if (b_panel && j + 1 < nts)
      for (uint64_t t = 0; t < kt; ++t) load_panel_ktile(j + 1, t, 0);
    for (uint64_t i = 0; i < mts; ++i) {
      const uint64_t m0 = i * MT, mw = std::min(MT, M - m0);
      const Tile acc = banks.next().parts(0, uint32_t(mw)).cols(0, nw);
      if (before) before(m0, mw, n0, nw);
      // Row-major a: this m-tile's and the next one's blocks are made now, ahead of this tile's eviction in
      // VectorE's stream (VectorE runs in order: behind the eviction they would wait for this tile's last
      // matmul).
      if (!o.a_transposed && a_res && j == 0)
        for (uint64_t ii = i; ii < std::min(i + 2, mts); ++ii)
          for (uint64_t t = 0; t < kt; ++t) a_block(ii, t);
      for (uint64_t t = 0; t < kt; ++t) {
        const uint64_t k0 = t * R, kw = std::min(R, K - k0);
        Tile bt;
        if (b_panel) {
          bt = panel_ktile(j, t);
        } else {
          bt = b_ring->next().cols(0, nw).parts(0, uint32_t(kw));
          k.dma(bt.ap(), b.rows(k0, kw, n0, nw));
        }
        k.matmul(acc, a_block(i, t), bt, t > 0);
      }
      epilogue(acc, outs.next().parts(0, uint32_t(mw)).cols(0, nw), m0, mw, n0, nw);
    }
  }
}

model::Model build_gemm(const DeviceConfig& cfg, int M, int N, int K, const GemmOptions& o) {
  if (M < 1 || N < 1 || K < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("gemm: sizes must be positive, got M={} N={} K={}", M, N, K));
  Kernel k(cfg, fmt::format("gemm_{}x{}x{}{}{}", M, N, K, o.a_transposed ? "_aT" : "",
                            o.compute == isa::DType::kF32 ? "_f32" : ""));
  const Dram a = o.a_transposed ? k.input("aT", o.in_dtype, {K, M}) : k.input("a", o.in_dtype, {M, K});
  const Dram b = k.input("b", o.in_dtype, {K, N});
  const Dram c = k.output("c", model::DType::kF32, {M, N});
  gemm(k, a, b, c, o);
  return k.finish();
}

}  // namespace tcemu::kb
