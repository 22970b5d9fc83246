// Linear layer schedule (R array rows = k-tile, C array columns = n-tile of features, B fp32 per PSUM
// bank = m-tile of tokens):
//
//   DMA q1: bias b -> one SBUF column per n-tile; W -> SBUF once when it fits (else a panel per n-tile)
//   for each m-tile (<= B tokens):
//     DMA q0 (+ spare queues, rotating): xT[k-tile, m-tile] -> SBUF, one copy per k-tile
//     for each n-tile (<= C features):
//       DMA q2: rT[n-tile, m-tile] -> SBUF r buffer (with a residual)
//       TensorE: one matmul per k-tile into PSUM bank pb: stationary W[k-tile, n-tile] (m = features),
//                moving xT[k-tile, m-tile] (n = tokens), so PSUM holds [features][tokens]
//       ScalarE: activation PSUM bank pb -> SBUF h buffer, f(x * 1 + b[feature])
//       VectorE: tensor_tensor add h += r (in place)
//       DMA q3: h -> yT[n-tile, m-tile]
//
// xT buffers, W panels, PSUM banks, r and h buffers are double-buffered; Program::emit turns the buffer
// hazards (RAW and WAR) into semaphore waits, so the next tile's matmuls run while ScalarE, VectorE and
// the store finish the previous one.
#include "tcemu/kb/linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "tcemu/error.h"
#include "tcemu/kb/ops.h"
#include "tcemu/kb/program.h"

namespace tcemu::kb {

using isa::DType;
using isa::Space;

namespace {

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// SBUF bytes per partition of a plan (the layout of build_linear).
struct LinearLayout {
  uint64_t x_off[2], w_off[2], r_off[2], h_off[2], bias_off, total;
};
LinearLayout layout(const LinearPlan& p, int N, bool residual) {
  const uint64_t kt = uint64_t(p.k_tiles), mt = uint64_t(p.m_tile), nt = uint64_t(p.n_tile);
  LinearLayout l{};
  uint64_t at = 0;
  // Each region starts 64-byte aligned (fp32 columns and tiles need 4-byte alignment).
  auto next = [&](uint64_t bytes) {
    const uint64_t o = at;
    at = (at + bytes + 63) & ~uint64_t(63);
    return o;
  };
  for (auto& o : l.x_off) o = next(kt * mt * 2);
  if (p.w_resident) {
    l.w_off[0] = l.w_off[1] = next(kt * uint64_t(N) * 2);
  } else {
    for (auto& o : l.w_off) o = next(kt * nt * 2);
  }
  for (auto& o : l.r_off) o = next(residual ? mt * 4 : 0);
  for (auto& o : l.h_off) o = next(mt * 4);
  l.bias_off = next(uint64_t(p.n_tiles) * 4);
  l.total = at;
  return l;
}

}  // namespace

LinearPlan plan_linear(const DeviceConfig& cfg, int M, int N, int K) {
  if (M < 1 || N < 1 || K < 1)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("linear: sizes must be positive, got M={} N={} K={}", M, N, K));
  if (cfg.dma_queues < 4)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("linear: needs 4 DMA queues, config {} has {}", cfg.name, cfg.dma_queues));
  LinearPlan p;
  p.k_tile = cfg.rows;
  p.k_tiles = ceil_div(K, p.k_tile);
  p.n_tile = std::min(N, cfg.cols);
  p.n_tiles = ceil_div(N, p.n_tile);
  // The widest token tile (up to one PSUM bank) that fits, with W resident if possible.
  for (int mt = std::min<int>(M, int(cfg.psum_bank_bytes / 4)); mt >= 1; mt = mt / 2) {
    p.m_tile = mt;
    p.m_tiles = ceil_div(M, mt);
    for (bool resident : {true, false}) {
      p.w_resident = resident;
      if (layout(p, N, true).total <= cfg.sbuf_partition_bytes) return p;
    }
    if (mt == 1) break;
  }
  p.m_tile = 1, p.w_resident = false;
  throw Error(ErrorCode::kCapacity,
              fmt::format("linear M={} N={} K={} does not fit {}: a one-token tile needs {} bytes per SBUF "
                          "partition, the partition has {} bytes",
                          M, N, K, cfg.name, layout(p, N, true).total, cfg.sbuf_partition_bytes));
}

model::Model build_linear(const DeviceConfig& cfg, int M, int N, int K, const LinearOptions& opts) {
  const LinearPlan p = plan_linear(cfg, M, N, K);
  const LinearLayout l = layout(p, N, opts.residual);
  Program prog(cfg, fmt::format("linear_{}_{}x{}x{}{}", isa::act_func_name(uint64_t(opts.act)), M, N, K,
                                opts.residual ? "_residual" : ""));
  const uint64_t xT = prog.add_tensor("xT", model::DType::kBf16, model::TensorKind::kInput, {K, M});
  const uint64_t w = prog.add_tensor("w", model::DType::kBf16, model::TensorKind::kInput, {K, N});
  const uint64_t b = prog.add_tensor("b", model::DType::kF32, model::TensorKind::kInput, {N});
  const uint64_t rT =
      opts.residual ? prog.add_tensor("rT", model::DType::kF32, model::TensorKind::kInput, {N, M}) : 0;
  const uint64_t yT = prog.add_tensor("yT", model::DType::kF32, model::TensorKind::kOutput, {N, M});

  const uint64_t R = uint64_t(p.k_tile), P = cfg.sbuf_partition_bytes, bank = cfg.psum_bank_bytes;
  const uint64_t mt = uint64_t(p.m_tile), nt = uint64_t(p.n_tile);
  const uint64_t uK = uint64_t(K), uN = uint64_t(N), uM = uint64_t(M);
  constexpr int kQueueX = isa::kEngineDma0, kQueueW = isa::kEngineDma0 + 1;
  constexpr int kQueueR = isa::kEngineDma0 + 2, kQueueStore = isa::kEngineDma0 + 3;
  // xT k-tiles rotate over q0 and up to three spare queues, so the first matmul waits for one k-tile.
  std::vector<int> x_queues = {kQueueX};
  for (int q = 4; q < std::min(cfg.dma_queues, 7); ++q) x_queues.push_back(isa::kEngineDma0 + q);
  size_t x_copies = 0;

  // Bias: b[j*nt + p] -> partition p, column slot j.
  Ref bias_ready;
  for (int j = 0; j < p.n_tiles; ++j) {
    const uint64_t n0 = uint64_t(j) * nt, nw = std::min(nt, uN - n0);
    bias_ready = prog.emit(kQueueW, ops::dma(b + n0 * 4, sbuf_addr(cfg, 0, l.bias_off + uint64_t(j) * 4), 4, nw, 4, P));
  }
  // W [K, N]: k-tile t -> partition r, bytes 2 * (t * width + n) of the W region.
  std::vector<Ref> w_ready(size_t(p.k_tiles));
  auto load_w = [&](int wb, uint64_t n0, uint64_t nw, uint64_t width, const Ref& war) {
    for (int t = 0; t < p.k_tiles; ++t) {
      const uint64_t rows = std::min<uint64_t>(R, uK - uint64_t(t) * R);
      w_ready[size_t(t)] =
          prog.emit(kQueueW,
                    ops::dma(w + (uint64_t(t) * R * uN + n0) * 2,
                             sbuf_addr(cfg, 0, l.w_off[wb] + uint64_t(t) * width * 2), nw * 2, rows, uN * 2, P),
                    {war});
    }
  };
  if (p.w_resident) load_w(0, 0, uN, uN, {});

  Ref x_reader[2], w_reader[2], bank_reader[2], r_reader[2], h_reader[2];
  std::vector<Ref> x_ready(size_t(p.k_tiles));
  int group = 0, w_loads = 0;
  for (int i = 0; i < p.m_tiles; ++i) {
    const uint64_t m0 = uint64_t(i) * mt, mw = std::min(mt, uM - m0);
    const int xb = i % 2;
    for (int t = 0; t < p.k_tiles; ++t) {
      const uint64_t rows = std::min<uint64_t>(R, uK - uint64_t(t) * R);
      x_ready[size_t(t)] =
          prog.emit(x_queues[x_copies++ % x_queues.size()],
                    ops::dma(xT + (uint64_t(t) * R * uM + m0) * 2,
                             sbuf_addr(cfg, 0, l.x_off[xb] + uint64_t(t) * mt * 2), mw * 2, rows, uM * 2, P),
                    {x_reader[xb]});
    }
    for (int j = 0; j < p.n_tiles; ++j, ++group) {
      const uint64_t n0 = uint64_t(j) * nt, nw = std::min(nt, uN - n0);
      const int g = group % 2;
      uint64_t w_base = l.w_off[0] + n0 * 2, w_width = uN;
      int wb = 0;
      if (!p.w_resident) {
        wb = w_loads++ % 2;
        load_w(wb, n0, nw, nt, w_reader[wb]);
        w_base = l.w_off[wb], w_width = nt;
      }
      Ref r_ready;
      if (opts.residual)
        r_ready = prog.emit(kQueueR,
                            ops::dma(rT + (n0 * uM + m0) * 4, sbuf_addr(cfg, 0, l.r_off[g]), mw * 4, nw, uM * 4, P),
                            {r_reader[g]});
      Ref last_mm;
      for (int t = 0; t < p.k_tiles; ++t) {
        isa::Instr mm;
        mm.opcode = isa::Opcode::Matmul;
        mm.k = std::min<uint64_t>(R, uK - uint64_t(t) * R), mm.m = nw, mm.n = mw, mm.accumulate = t > 0;
        mm.st_off = w_base + uint64_t(t) * w_width * 2;
        mm.mv_off = l.x_off[xb] + uint64_t(t) * mt * 2;
        mm.out_off = uint64_t(g) * bank;
        std::vector<Ref> deps = {x_ready[size_t(t)], w_ready[size_t(t)]};
        if (t == 0) deps.push_back(bank_reader[g]);
        last_mm = prog.emit(isa::kEngineTensor, mm, deps);
      }
      x_reader[xb] = last_mm;
      w_reader[wb] = last_mm;
      const uint64_t psum = ops::tile(Space::kPsum, DType::kF32, 0, uint32_t(g * bank));
      const uint64_t h = ops::tile(Space::kSbuf, DType::kF32, 0, uint32_t(l.h_off[g]));
      const uint64_t bias = isa::pack_column(Space::kSbuf, DType::kF32, 0, uint32_t(l.bias_off + uint64_t(j) * 4));
      Ref act = prog.emit(isa::kEngineScalar, ops::activation(opts.act, nw, mw, h, psum, 1.0f, bias, true),
                          {last_mm, bias_ready, h_reader[g]});
      bank_reader[g] = act;
      Ref done = act;
      if (opts.residual) {
        const uint64_t r = ops::tile(Space::kSbuf, DType::kF32, 0, uint32_t(l.r_off[g]));
        done = prog.emit(isa::kEngineVector, ops::tensor_tensor(isa::AluOp::kAdd, nw, mw, h, h, r), {act, r_ready});
        r_reader[g] = done;
      }
      h_reader[g] = prog.emit(
          kQueueStore, ops::dma(sbuf_addr(cfg, 0, l.h_off[g]), yT + (n0 * uM + m0) * 4, mw * 4, nw, P, uM * 4), {done});
    }
  }
  return prog.finish();
}

}  // namespace tcemu::kb
