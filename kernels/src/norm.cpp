// Layernorm and RMSNorm (tcemu/kb/norm.h). Once per kernel: gamma (and beta) -> SBUF [P, D] f32, every
// partition a copy (one DMA, source partition stride 0); eps -> a column (memset). Per row tile of
// P = sbuf_partitions rows, D elements per partition (the last tile may have fewer rows):
//
//   layernorm                                                   rmsnorm
//   ScalarE  junk = identity(x), acc s = sum x                  ScalarE  junk = square(x), acc ss = sum x^2
//   ScalarE  nm   = s * (-1/D)                    (column)      ScalarE  rstd = rsqrt(ss * (1/D) + eps)
//   ScalarE  junk = square(x + nm), acc ss                      ScalarE  y = identity(x * rstd)
//   ScalarE  rstd = rsqrt(ss * (1/D) + eps)        (column)      VectorE  y = y * gamma
//   ScalarE  nmr  = identity(nm * rstd)            (column)
//   ScalarE  y    = identity(x * rstd + nmr)      = (x - mean) * rstd
//   VectorE  y    = y * gamma;  y = y + beta
//
// The variance is two-pass (the squares of the centred values, as the reference defines it), not
// E[x^2] - mean^2, which cancels when |mean| >> std. The sum passes write nothing useful: their output is
// a one-element column with stride 0 (every element lands on it), so they need no tile. Columns are
// per-partition scalars: ScalarE's scale and bias operands, so one activation normalises a whole row tile.
//
// Engines per tile (docs/isa.md timing, N = D): layernorm ScalarE 3 (60 + N) + 3 x 124, VectorE 2 (60 + 2N);
// rmsnorm ScalarE 2 (60 + N) + 124, VectorE 60 + 2N; DMA P N (bytes(x) + 4) bytes at 290 B/cycle on trn1
// (3.5 N cycles for f32 x). So RMSNorm is HBM-bound and layernorm about balanced between VectorE (4 N) and
// HBM (3.5 N for f32 x, 2.6 N for bf16): each tensor_tensor with gamma or beta reads two tensors at one
// element per cycle each, and no other engine can multiply by a vector along the free dimension.
//
// Streaming as in softmax.cpp: row tiles rotate through up to four buffers (an f32 x is normalised in
// place; a bf16 x is loaded as stored and ScalarE writes a separate f32 tile), loads and stores use
// separate DMA queue sets (so a load never waits behind a store that waits for the compute), and the loads
// before the first store and the stores after the last load use every queue.
#include "tcemu/kb/norm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "tcemu/error.h"

namespace tcemu::kb {

namespace {

void norm_rows(Kernel& k, const char* what, const Dram& x, const Dram& gamma, const Dram* beta, const Dram& y,
               const NormOptions& o) {
  const DeviceConfig& cfg = k.config();
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("{} in kernel '{}': {}", what, k.name(), why));
  };
  if (x.shape.empty() || x.elems() == 0) fail(fmt::format("x '{}' is empty", x.name));
  const uint64_t D = x.cols(), R = x.elems() / D;
  if (!o.transposed_out && (y.elems() != x.elems() || y.cols() != D))
    fail(fmt::format("y '{}' ({} elements, rows of {}) does not have the shape of x '{}' ({} rows of {})", y.name,
                     y.elems(), y.cols(), x.name, R, D));
  if (o.transposed_out && (y.elems() != x.elems() || y.cols() != R || y.dtype != isa::DType::kBf16))
    fail(fmt::format("transposed y '{}' must be bf16 [{}, {}] (x '{}' is {} rows of {})", y.name, D, R, x.name, R, D));
  if (gamma.elems() != D) fail(fmt::format("gamma '{}' has {} elements, D = {}", gamma.name, gamma.elems(), D));
  if (beta && beta->elems() != D) fail(fmt::format("beta '{}' has {} elements, D = {}", beta->name, beta->elems(), D));
  auto float_dtype = [](const Dram& t) { return t.dtype == isa::DType::kF32 || t.dtype == isa::DType::kBf16; };
  if (!float_dtype(x) || !float_dtype(y) || !float_dtype(gamma) || (beta && !float_dtype(*beta)))
    fail("x, gamma, beta and y must be f32 or bf16");
  if (!(o.eps >= 0) || !std::isfinite(o.eps)) fail(fmt::format("eps = {} must be finite and >= 0", o.eps));
  if (o.bufs < 0 || o.bufs > 8) fail(fmt::format("bufs = {} (0 .. 8)", o.bufs));

  Kernel::Scope scope(k);
  const std::string nm = what;
  const uint64_t P = uint64_t(cfg.sbuf_partitions);
  const uint32_t np = uint32_t(std::min(R, P));
  StreamQueues q(cfg, D * elem_bytes(x.dtype), D * elem_bytes(y.dtype));

  // Once: gamma, beta on every partition (loaded after the first x tiles: see below); the eps column; the
  // junk column of the sum passes.
  const Tile g = k.sbuf(nm + ".gamma", isa::DType::kF32, np, D);
  std::optional<Tile> b;
  if (beta) b = k.sbuf(nm + ".beta", isa::DType::kF32, np, D);
  const Tile consts = k.sbuf(nm + ".consts", isa::DType::kF32, np, 2);  // eps, junk
  const Tile eps = consts.col(0), junk = consts.col(1).bcast(uint32_t(D));
  k.memset(eps, o.eps);

  const bool in_place = x.dtype == isa::DType::kF32;
  const uint64_t per_buf = round_up(D * elem_bytes(x.dtype), 64) + (in_place ? 0 : round_up(D * 4, 64)) + 64;
  const int bufs = o.bufs ? o.bufs : k.buffers_that_fit(4, per_buf);
  Ring xs(k, nm + ".x", isa::Space::kSbuf, x.dtype, np, D, bufs);
  std::optional<Ring> ys;
  if (!in_place) ys.emplace(k, nm + ".y", isa::Space::kSbuf, isa::DType::kF32, np, D, bufs);
  Ring stats(k, nm + ".stats", isa::Space::kSbuf, isa::DType::kF32, np, 5, bufs);
  // Transposed output: the bf16 row tile, PSUM blocks [128 features x np rows] and their bf16 copies.
  const uint64_t C = uint64_t(cfg.cols);
  std::optional<Ring> ybf, tps, tsb;
  if (o.transposed_out) {
    ybf.emplace(k, nm + ".ybf", isa::Space::kSbuf, isa::DType::kBf16, np, D, 2);
    tps.emplace(k, nm + ".yT_psum", isa::Space::kPsum, isa::DType::kF32, uint32_t(std::min(D, C)), np, 2);
    tsb.emplace(k, nm + ".yT", isa::Space::kSbuf, isa::DType::kBf16, uint32_t(std::min(D, C)), np, 3);
  }

  const uint64_t tiles = ceil_div(R, P);
  auto rows = [&](uint64_t i) { return uint32_t(std::min(P, R - i * P)); };
  auto x_tile = [&](uint64_t i) { return xs[i].parts(0, rows(i)); };
  auto y_tile = [&](uint64_t i) { return in_place ? x_tile(i) : (*ys)[i].parts(0, rows(i)); };
  const float inv_d = float(1.0 / double(D));
  const uint64_t lag = bufs > 1 ? 1 : 0;  // stage B of tile i after stage A of tile i+1 (another buffer)
  // Stage A: load and the ScalarE chain.
  auto stage_a = [&](uint64_t i) {
    const uint32_t n = rows(i);
    const Tile xt = x_tile(i), yt = y_tile(i), s = stats[i].parts(0, n), j = junk.parts(0, n);
    k.dma(xt.ap(), x.rows(i * P, n, 0, D), q.load(xt.ap().bytes()));
    const Tile rstd = s.col(3);
    if (beta) {
      const Tile sum = s.col(0), nmean = s.col(1), ss = s.col(2), nmr = s.col(4);
      k.activation(j, xt, isa::ActFunc::kIdentity, ActOpts(1.0f, std::nullopt, sum));
      k.activation(nmean, sum, isa::ActFunc::kIdentity, ActOpts(-inv_d));
      k.activation(j, xt, isa::ActFunc::kSquare, ActOpts(1.0f, nmean, ss));
      k.activation(rstd, ss, isa::ActFunc::kRsqrt, ActOpts(inv_d, eps.parts(0, n)));
      k.activation(nmr, nmean, isa::ActFunc::kIdentity, ActOpts(rstd));
      k.activation(yt, xt, isa::ActFunc::kIdentity, ActOpts(rstd, nmr));
    } else {
      const Tile ss = s.col(2);
      k.activation(j, xt, isa::ActFunc::kSquare, ActOpts(1.0f, std::nullopt, ss));
      k.activation(rstd, ss, isa::ActFunc::kRsqrt, ActOpts(inv_d, eps.parts(0, n)));
      k.activation(yt, xt, isa::ActFunc::kIdentity, ActOpts(rstd));
    }
  };
  // Stage B: gamma (and beta) on VectorE, store.
  auto stage_b = [&](uint64_t i) {
    const uint32_t n = rows(i);
    const Tile yt = y_tile(i);
    if (o.transposed_out) {
      // The last VectorE op writes bf16; each block of up to C features is transposed through PSUM, copied
      // to SBUF by ScalarE (bf16 values: exact) and stored as rows of yT.
      const Tile yb = ybf->next().parts(0, n);
      k.tensor_tensor(beta ? yt : yb, yt, g.parts(0, n), isa::AluOp::kMul);
      if (beta) k.tensor_tensor(yb, yt, b->parts(0, n), isa::AluOp::kAdd);
      for (uint64_t d0 = 0; d0 < D; d0 += C) {
        const uint32_t dw = uint32_t(std::min(C, D - d0));
        const Tile ps = tps->next().parts(0, dw).cols(0, n), sb = tsb->next().parts(0, dw).cols(0, n);
        k.pe_transpose(ps, yb.cols(d0, dw));
        k.copy_scalar(sb, ps);
        k.dma(y.rows(d0, dw, i * P, n), sb.ap(), q.store(sb.ap().bytes(), i + lag + 1 >= tiles));
      }
      return;
    }
    k.tensor_tensor(yt, yt, g.parts(0, n), isa::AluOp::kMul);
    if (beta) k.tensor_tensor(yt, yt, b->parts(0, n), isa::AluOp::kAdd);
    k.dma(y.rows(i * P, n, 0, D), yt.ap(), q.store(yt.ap().bytes(), i + lag + 1 >= tiles));
  };
  // gamma and beta each read P * D elements of HBM, as much as a row tile; VectorE needs gamma only after
  // the first tile's ScalarE chain and beta after that, so they go after the first and second x loads.
  for (uint64_t i = 0; i < tiles + lag; ++i) {
    if (i < tiles) {
      stage_a(i);
      if (i == 0) k.dma(g.ap(), gamma.ap(0, D, {{np, 0}}), q.any(g.ap().bytes()));
      if (b && i == std::min(lag, tiles - 1)) k.dma(b->ap(), beta->ap(0, D, {{np, 0}}), q.any(b->ap().bytes()));
    }
    if (i >= lag) stage_b(i - lag);
  }
}

model::Model build_norm(const DeviceConfig& cfg, const char* what, int64_t R, int64_t D, model::DType x_dtype,
                        bool layer, const NormOptions& o) {
  if (R < 1 || D < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("{}: sizes must be positive, got R={} D={}", what, R, D));
  Kernel k(cfg, fmt::format("{}_{}x{}", what, R, D));
  const Dram x = k.input("x", x_dtype, {R, D});
  const Dram gamma = k.input("gamma", model::DType::kF32, {D});
  std::optional<Dram> beta;
  if (layer) beta = k.input("beta", model::DType::kF32, {D});
  const Dram y = k.output("y", model::DType::kF32, {R, D});
  norm_rows(k, what, x, gamma, beta ? &*beta : nullptr, y, o);
  return k.finish();
}

}  // namespace

void layernorm(Kernel& k, const Dram& x, const Dram& gamma, const Dram& beta, const Dram& y, const NormOptions& o) {
  norm_rows(k, "layernorm", x, gamma, &beta, y, o);
}

void rmsnorm(Kernel& k, const Dram& x, const Dram& gamma, const Dram& y, const NormOptions& o) {
  norm_rows(k, "rmsnorm", x, gamma, nullptr, y, o);
}

model::Model build_layernorm(const DeviceConfig& cfg, int64_t R, int64_t D, model::DType x_dtype,
                             const NormOptions& o) {
  return build_norm(cfg, "layernorm", R, D, x_dtype, true, o);
}

model::Model build_rmsnorm(const DeviceConfig& cfg, int64_t R, int64_t D, model::DType x_dtype, const NormOptions& o) {
  return build_norm(cfg, "rmsnorm", R, D, x_dtype, false, o);
}

}  // namespace tcemu::kb
