// Row softmax (tcemu/kb/softmax.h). Per row tile of P = sbuf_partitions rows (the last tile may be shorter):
//
//   DMA      x rows -> x tile [rows, C] (as stored: one contiguous run per row), split over the load queues
//   VectorE  stats.max = max_c x                              tensor_reduce max
//   ScalarE  stats.neg = stats.max * -1                       activation identity on a column
//   ScalarE  y = exp(x + stats.neg), stats.sum = sum_c y      activation exp, bias + acc columns
//   VectorE  y = y / stats.sum                                tensor_scalar div (column)
//   DMA      y tile -> y rows, split over the store queues
//
// With an f32 x the exp writes over x (the tile is f32 already); a bf16 x is loaded as stored (half the DMA
// bytes of a converting load, which costs the f32 size: docs/isa.md) into a bf16 tile and ScalarE writes
// a separate f32 tile. Tiles rotate through up to four buffers (as many as fit), each with its own stats
// columns, so the loads of the next tiles and the stores of the previous ones overlap the compute.
//
// DMA queues: loads and stores go to separate queue sets (StreamQueues), so that a load never waits behind
// a store that waits for the compute; the loads emitted before the first store and the stores emitted after
// the last load use every queue (nothing of the other kind can be stuck behind them), which shortens the
// pipeline's fill and drain.
//
// Emission order: the divide and store of tile i are emitted after the max / exp of tile i+1, so VectorE
// runs max(i+1) while ScalarE computes exp(i) instead of waiting for it (each engine runs its instructions
// in program order).
//
// Cost per tile of C elements per partition (docs/isa.md timing): VectorE 2 (60 + C), ScalarE 2 x 60 + 64
// + C, DMA P * C * (bytes(x) + 4) bytes at 290 B/cycle on trn1: 3.5 C cycles for f32 x, 2.6 C for bf16 x,
// so the kernel is bound by HBM bandwidth (docs/kernels.md, "Softmax", has the measurements).
#include "tcemu/kb/softmax.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "tcemu/error.h"

namespace tcemu::kb {

namespace {






}  // namespace

void softmax(Kernel& k, const Dram& x, const Dram& y, const SoftmaxOptions& o) {
  const DeviceConfig& cfg = k.config();
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("softmax in kernel '{}': {}", k.name(), why));
  };
  if (x.shape.empty() || x.elems() == 0) fail(fmt::format("x '{}' is empty", x.name));
  const uint64_t C = x.cols(), R = x.elems() / C;
  if (y.elems() != x.elems() || y.cols() != C)
    fail(fmt::format("y '{}' ({} elements, rows of {}) does not have the shape of x '{}' ({} rows of {})", y.name,
                     y.elems(), y.cols(), x.name, R, C));
  if (x.dtype != isa::DType::kF32 && x.dtype != isa::DType::kBf16) fail("x must be f32 or bf16");
  if (y.dtype != isa::DType::kF32 && y.dtype != isa::DType::kBf16) fail("y must be f32 or bf16");
  if (o.bufs < 0 || o.bufs > 8) fail(fmt::format("bufs = {} (0 .. 8)", o.bufs));

  Kernel::Scope scope(k);
  const uint64_t P = uint64_t(cfg.sbuf_partitions);
  const uint32_t np = uint32_t(std::min(R, P));
  const bool in_place = x.dtype == isa::DType::kF32;
  const uint64_t per_buf = round_up(C * elem_bytes(x.dtype), 64) + (in_place ? 0 : round_up(C * 4, 64)) + 64;
  const int bufs = o.bufs ? o.bufs : k.buffers_that_fit(4, per_buf);
  Ring xs(k, "softmax.x", isa::Space::kSbuf, x.dtype, np, C, bufs);
  std::optional<Ring> ys;
  if (!in_place) ys.emplace(k, "softmax.y", isa::Space::kSbuf, isa::DType::kF32, np, C, bufs);
  Ring stats(k, "softmax.stats", isa::Space::kSbuf, isa::DType::kF32, np, 3, bufs);  // max, -max, sum

  StreamQueues q(cfg, C * elem_bytes(x.dtype), C * elem_bytes(y.dtype));
  const uint64_t tiles = ceil_div(R, P);
  // Stage B of tile i after stage A of tile i+1 (which uses another buffer); with one buffer, in order.
  const uint64_t lag = bufs > 1 ? 1 : 0;
  auto rows = [&](uint64_t i) { return uint32_t(std::min(P, R - i * P)); };
  auto x_tile = [&](uint64_t i) { return xs[i].parts(0, rows(i)); };
  auto y_tile = [&](uint64_t i) { return in_place ? x_tile(i) : (*ys)[i].parts(0, rows(i)); };
  auto st = [&](uint64_t i) { return stats[i].parts(0, rows(i)); };
  // Stage A: load, max, -max, exp with the row sums.
  auto stage_a = [&](uint64_t i) {
    const Tile xt = x_tile(i), yt = y_tile(i), s = st(i);
    k.dma(xt.ap(), x.rows(i * P, rows(i), 0, C), q.load(xt.ap().bytes()));
    k.tensor_reduce(s.col(0), xt, isa::AluOp::kMax);
    k.activation(s.col(1), s.col(0), isa::ActFunc::kIdentity, ActOpts(-1.0f));
    k.activation(yt, xt, isa::ActFunc::kExp, ActOpts(1.0f, s.col(1), s.col(2)));
  };
  // Stage B: normalise, store.
  auto stage_b = [&](uint64_t i) {
    const Tile yt = y_tile(i), s = st(i);
    k.tensor_scalar(yt, yt, isa::AluOp::kDiv, s.col(2));
    k.dma(y.rows(i * P, rows(i), 0, C), yt.ap(), q.store(yt.ap().bytes(), i + lag + 1 >= tiles));
  };
  for (uint64_t i = 0; i < tiles + lag; ++i) {
    if (i < tiles) stage_a(i);
    if (i >= lag) stage_b(i - lag);
  }
}

model::Model build_softmax(const DeviceConfig& cfg, int64_t R, int64_t C, model::DType x_dtype,
                           const SoftmaxOptions& o) {
  if (R < 1 || C < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("softmax: sizes must be positive, got R={} C={}", R, C));
  Kernel k(cfg, fmt::format("softmax_{}x{}", R, C));
  const Dram x = k.input("x", x_dtype, {R, C});
  const Dram y = k.output("y", model::DType::kF32, {R, C});
  softmax(k, x, y, o);
  return k.finish();
}

}  // namespace tcemu::kb
