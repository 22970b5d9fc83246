// Linear layer: the GEMM schedule (gemm.cpp) with W [K, N] as the stationary operand (features become PSUM
// partitions) and xT [K, M] as the moving one (tokens along the free dimension), and this epilogue per
// output tile [features x tokens], in two halves of the tokens:
//
//   ScalarE: activation PSUM -> SBUF out, f(x * 1 + b[feature])      (bias: one SBUF column per feature tile)
//   DMA:     rT[features, tokens] -> SBUF r                           (with a residual)
//   VectorE: out += r                                                 (with a residual)
//   DMA:     out -> yT[features, tokens], split over the queues
//
// The builder turns buffer reuse into semaphore waits and picks the queues; W stays resident in SBUF when
// it fits (gemm_tiles' resident aT), each xT panel is loaded once per token tile.
#include "tcemu/kb/linear.h"

#include <fmt/format.h>

#include <algorithm>

#include "tcemu/error.h"
#include "tcemu/kb/gemm.h"

namespace tcemu::kb {

void linear(Kernel& k, const Dram& xT, const Dram& w, const Dram& b, const Dram* rT, const Dram& yT,
            const LinearOptions& opts) {
  const DeviceConfig& cfg = k.config();
  if (xT.shape.size() != 2 || w.shape.size() != 2 || yT.shape.size() != 2 || xT.shape[0] != w.shape[0] ||
      b.elems() != uint64_t(w.shape[1]) || yT.shape[0] != w.shape[1] || yT.shape[1] != xT.shape[1] ||
      (opts.residual && rT && rT->shape != yT.shape))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("linear in kernel '{}': shapes xT [{}, {}], w [{}, {}], b [{}], yT [{}, {}] do not make "
                            "yT = f(w^T xT + b)",
                            k.name(), xT.shape.at(0), xT.shape.at(1), w.shape.at(0), w.shape.at(1), b.elems(),
                            yT.shape.at(0), yT.shape.at(1)));
  const bool residual = opts.residual && rT;
  Kernel::Scope scope(k);
  const uint64_t N = uint64_t(w.shape[1]), C = uint64_t(cfg.cols), NB = cfg.psum_bank_bytes / 4;
  const uint64_t ftiles = ceil_div(N, std::min(N, C)), FT = std::min(N, C);
  // Bias: b[i * FT + p] -> partition p, column i.
  const Tile bias = k.sbuf("bias", isa::DType::kF32, uint32_t(FT), ftiles);
  for (uint64_t i = 0; i < ftiles; ++i) {
    const uint64_t fw = std::min(FT, N - i * FT);
    k.dma(bias.parts(0, uint32_t(fw)).col(i).ap(), b.ap(i * FT, 1, {{fw, 1}}));
  }
  // Residual tiles [features x tokens] are loaded when their tile's matmuls are issued (a ring of 3).
  std::optional<Ring> r_ring;
  if (residual)
    r_ring.emplace(k, "r", isa::Space::kSbuf, isa::DType::kF32, uint32_t(FT),
                   std::min<uint64_t>(NB, uint64_t(xT.shape[1])), 3);
  Tile r;
  const DmaOpts store_opts{{}, cfg.dma_queues};
  GemmOptions go;
  go.a_transposed = true;
  auto before = [&](uint64_t f0, uint64_t fw, uint64_t t0, uint64_t tw) {
    if (!residual) return;
    r = r_ring->next().parts(0, uint32_t(fw)).cols(0, tw);
    k.dma(r.ap(), rT->rows(f0, fw, t0, tw), store_opts);
  };
  gemm_tiles(
      k, w, xT, go,
      [&](const Tile& acc, const Tile& out, uint64_t f0, uint64_t fw, uint64_t t0, uint64_t tw) {
        const uint64_t h = ceil_div(tw, 2);
        const Tile col = bias.parts(0, uint32_t(fw)).col(f0 / FT);
        for (uint64_t c0 = 0; c0 < tw; c0 += h) {
          const uint64_t cw = std::min(h, tw - c0);
          const Tile o = out.cols(c0, cw);
          k.activation(o, acc.cols(c0, cw), opts.act, {1.0f, col, std::nullopt});
          if (residual) k.tensor_tensor(o, o, r.cols(c0, cw), isa::AluOp::kAdd);
          k.dma(yT.rows(f0, fw, t0 + c0, cw), o.ap(), store_opts);
        }
      },
      before);
}

model::Model build_linear(const DeviceConfig& cfg, int M, int N, int K, const LinearOptions& opts) {
  if (M < 1 || N < 1 || K < 1)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("linear: sizes must be positive, got M={} N={} K={}", M, N, K));
  Kernel k(cfg, fmt::format("linear_{}_{}x{}x{}{}", isa::act_func_name(uint64_t(opts.act)), M, N, K,
                            opts.residual ? "_residual" : ""));
  const Dram xT = k.input("xT", model::DType::kBf16, {K, M});
  const Dram w = k.input("w", model::DType::kBf16, {K, N});
  const Dram b = k.input("b", model::DType::kF32, {N});
  std::optional<Dram> rT;
  if (opts.residual) rT = k.input("rT", model::DType::kF32, {N, M});
  const Dram yT = k.output("yT", model::DType::kF32, {N, M});
  linear(k, xT, w, b, rT ? &*rT : nullptr, yT, opts);
  return k.finish();
}

}  // namespace tcemu::kb
