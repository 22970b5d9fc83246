// Transpose (tcemu/kb/transpose.h). Both routes produce output tiles of y: `nc` rows of y (columns c0.. of
// x) on partitions and `w` columns of y (rows r0.. of x) along the free dimension, stored as nc runs of w
// contiguous elements. Tiles go over y's rows in blocks of the tile height, and within a block over y's
// columns in chunks of W; they rotate through up to four buffers; loads and stores use separate DMA queue
// sets, the loads before the first store and the stores after the last load every queue (as in softmax.cpp).
//
// VectorE route (any dtype, bit-exact). B = min(partition_quadrant, partitions) (32 on trn1):
//   DMA      tile[g B + j][k B + r] = x[r0 + k B + j][c0 + g B + r]   for every 32 x 32 block (g, k): runs of
//            (up to) B elements of a row of x; one copy per column block g of x for the whole blocks and one
//            for a last partial row block
//   VectorE  transpose (in place): tile[g B + r][k B + j] = old tile[g B + j][k B + r]
//                                                         = x[r0 + k B + j][c0 + g B + r] = y[c0 + g B + r][r0 + k B + j]
//   DMA      tile -> y rows
// Partial blocks are padded to B in SBUF (the pad holds stale bytes, moved but never stored). Per tile of
// W columns: VectorE 60 + W cycles, DMA 2 P W bytes(dtype) at 290 B/cycle on trn1 (1.8 W cycles for bf16,
// 3.5 W for f32): HBM-bound.
//
// TensorE route (bf16). K = array rows, M = array columns (128 x 128 on trn1):
//   DMA      tile[j][b M + c] = x[r0 + b K + j][c0 + c]   block b of K rows of x (runs of nc elements)
//   TensorE  pe_transpose of each block into PSUM [nc, K] at column b K (fp32; 4 blocks per 2 KiB bank)
//   VectorE / ScalarE (alternating per tile)  PSUM -> SBUF bf16 (exact: the values are bf16)
//   DMA      SBUF -> y rows
// A pe_transpose streams K identity columns through the array; with n = k = 128 and the array's latency
// L = 255 the matmul recurrence of docs/isa.md gives 2 blocks per n + L + k = 511 cycles, so TensorE takes
// about 2 cycles per column of y against HBM's 1.8 (bf16): TensorE-bound.
#include "tcemu/kb/transpose.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "tcemu/error.h"

namespace tcemu::kb {

namespace {





// An SBUF side of a DMA: runs of `run` elements from element e of partition p of t; dims (count, byte
// stride), innermost first.
Ap sbuf_ap(const Tile& t, uint32_t p, uint64_t e, uint64_t run, std::vector<std::pair<uint64_t, uint64_t>> dims) {
  return Ap{t.addr(p, e), t.dtype, run, std::move(dims), "tile '" + t.name + "'"};
}

// The tiles of y: rows [c0, c0 + nc) x columns [r0, r0 + w).
struct YTile {
  uint64_t c0, nc, r0, w;
};

// Emits the tiles: stage_a(i, tile) loads and transposes, stage_b(i, tile, last) stores. With more than one
// buffer, stage B of tile i comes after stage A of tile i+1 (another buffer); `last`: no load follows.
template <typename A, typename B>
void run_tiles(const std::vector<YTile>& tiles, int bufs, A stage_a, B stage_b) {
  const uint64_t n = tiles.size(), lag = bufs > 1 ? 1 : 0;
  for (uint64_t i = 0; i < n + lag; ++i) {
    if (i < n) stage_a(i, tiles[i]);
    if (i >= lag) stage_b(i - lag, tiles[i - lag], i + 1 >= n);
  }
}

std::vector<YTile> y_tiles(uint64_t R, uint64_t C, uint64_t height, uint64_t W) {
  std::vector<YTile> v;
  for (uint64_t c0 = 0; c0 < C; c0 += height)
    for (uint64_t r0 = 0; r0 < R; r0 += W) v.push_back({c0, std::min(height, C - c0), r0, std::min(W, R - r0)});
  return v;
}

// W, the columns of y per tile: about 1/8 of the work per tile when that is large (so the first load and
// the last store, which nothing overlaps, are short), at least `lo`, at most `hi`, a multiple of `unit`.
uint64_t tile_width(uint64_t R, uint64_t C, uint64_t height, uint64_t unit, uint64_t lo, uint64_t hi) {
  const uint64_t want = round_up(ceil_div(R * ceil_div(C, height), 8), unit);
  const uint64_t top = std::max(unit, hi / unit * unit);
  return std::min(round_up(R, unit), std::clamp(want, std::min(round_up(lo, unit), top), top));
}

void vector_route(Kernel& k, const Dram& x, const Dram& y, int want_bufs) {
  const DeviceConfig& cfg = k.config();
  const uint64_t R = uint64_t(x.shape[0]), C = uint64_t(x.shape[1]), e = elem_bytes(x.dtype);
  const uint64_t P = uint64_t(cfg.sbuf_partitions), B = std::min<uint64_t>(uint64_t(cfg.partition_quadrant), P);
  const uint64_t W = tile_width(R, C, P, B, 256, 8192 / e);
  const uint32_t np = uint32_t(round_up(std::min(C, P), B));
  const int bufs = want_bufs ? want_bufs : k.buffers_that_fit(4, W * e);
  Ring ring(k, "transpose.tile", isa::Space::kSbuf, x.dtype, np, W, bufs);
  const uint64_t pb = ring[0].partition_bytes;
  StreamQueues q(cfg, 1, 1);
  run_tiles(
      y_tiles(R, C, P, W), bufs,
      [&](uint64_t i, const YTile& t) {
        const Tile& a = ring[i];
        const uint64_t K = t.w / B, rr = t.w % B;
        for (uint64_t g = 0; g * B < t.nc; ++g) {
          const uint64_t cw = std::min(B, t.nc - g * B), col = t.c0 + g * B;
          if (K) {
            const Ap dst = sbuf_ap(a, uint32_t(g * B), 0, cw, {{B, pb}, {K, B * e}});
            k.dma(dst, x.ap(t.r0 * C + col, cw, {{B, C}, {K, B * C}}), q.load(dst.bytes()));
          }
          if (rr) {
            const Ap dst = sbuf_ap(a, uint32_t(g * B), K * B, cw, {{rr, pb}});
            k.dma(dst, x.ap((t.r0 + K * B) * C + col, cw, {{rr, C}}), q.load(dst.bytes()));
          }
        }
        const Tile v = a.parts(0, uint32_t(round_up(t.nc, B))).cols(0, round_up(t.w, B));
        k.transpose32(v, v);
      },
      [&](uint64_t i, const YTile& t, bool last) {
        const Tile s = ring[i].parts(0, uint32_t(t.nc)).cols(0, t.w);
        k.dma(y.rows(t.c0, t.nc, t.r0, t.w), s.ap(), q.store(s.ap().bytes(), last));
      });
}

void tensor_route(Kernel& k, const Dram& x, const Dram& y, int want_bufs) {
  const DeviceConfig& cfg = k.config();
  const uint64_t R = uint64_t(x.shape[0]), C = uint64_t(x.shape[1]);
  const uint64_t K = uint64_t(std::min(cfg.rows, cfg.sbuf_partitions));
  const uint64_t M = uint64_t(std::min({cfg.cols, cfg.psum_partitions, cfg.sbuf_partitions}));
  const uint64_t bank = cfg.psum_bank_bytes / 4;
  // Two PSUM banks per tile (half of trn1's PSUM for the two buffers), whole blocks of K.
  const uint64_t W = tile_width(R, C, M, K, K, std::max<uint64_t>(2 * bank / K, 1) * K);
  const uint64_t blocks = W / K;
  const int bufs = want_bufs ? want_bufs : k.buffers_that_fit(4, blocks * M * 2 + W * 2 + 128);
  Ring in(k, "transpose.in", isa::Space::kSbuf, isa::DType::kBf16, uint32_t(K), blocks * M, bufs);
  Ring out(k, "transpose.out", isa::Space::kSbuf, isa::DType::kBf16, uint32_t(M), W, bufs);
  Ring acc(k, "transpose.psum", isa::Space::kPsum, isa::DType::kF32, uint32_t(M), W, 2);
  const uint64_t pb = in[0].partition_bytes;
  StreamQueues q(cfg, 1, 1);
  run_tiles(
      y_tiles(R, C, M, W), bufs,
      [&](uint64_t i, const YTile& t) {
        const Tile& a = in[i];
        const Tile& ps = acc[i];
        const uint64_t full = t.w / K, rb = t.w % K;
        if (full) {
          const Ap dst = sbuf_ap(a, 0, 0, t.nc, {{K, pb}, {full, M * 2}});
          k.dma(dst, x.ap(t.r0 * C + t.c0, t.nc, {{K, C}, {full, K * C}}), q.load(dst.bytes()));
        }
        if (rb) {
          const Ap dst = sbuf_ap(a, 0, full * M, t.nc, {{rb, pb}});
          k.dma(dst, x.ap((t.r0 + full * K) * C + t.c0, t.nc, {{rb, C}}), q.load(dst.bytes()));
        }
        for (uint64_t b = 0; b * K < t.w; ++b) {
          const uint32_t kb = uint32_t(std::min(K, t.w - b * K));
          k.pe_transpose(ps.parts(0, uint32_t(t.nc)).cols(b * K, kb), a.parts(0, kb).cols(b * M, t.nc));
        }
      },
      [&](uint64_t i, const YTile& t, bool last) {
        const Tile o = out[i].parts(0, uint32_t(t.nc)).cols(0, t.w);
        const Tile p = acc[i].parts(0, uint32_t(t.nc)).cols(0, t.w);
        if (i % 2) k.copy_scalar(o, p);
        else k.tensor_copy(o, p);
        k.dma(y.rows(t.c0, t.nc, t.r0, t.w), o.ap(), q.store(o.ap().bytes(), last));
      });
}

}  // namespace

void transpose(Kernel& k, const Dram& x, const Dram& y, const TransposeOptions& o) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("transpose in kernel '{}': {}", k.name(), why));
  };
  if (x.shape.size() != 2 || y.shape.size() != 2 || x.elems() == 0)
    fail(fmt::format("x '{}' and y '{}' must be non-empty matrices", x.name, y.name));
  if (y.shape[0] != x.shape[1] || y.shape[1] != x.shape[0])
    fail(fmt::format("y '{}' is [{}, {}], x '{}' is [{}, {}]: y must be [{}, {}]", y.name, y.shape[0], y.shape[1], x.name,
                     x.shape[0], x.shape[1], x.shape[1], x.shape[0]));
  if (x.dtype != y.dtype) fail("x and y must have the same dtype (a transpose moves elements unchanged)");
  if (x.dtype != isa::DType::kF32 && x.dtype != isa::DType::kBf16) fail("x must be f32 or bf16");
  if (o.bufs < 0 || o.bufs > 8) fail(fmt::format("bufs = {} (0 .. 8)", o.bufs));
  TransposeRoute route = o.route;
  if (route == TransposeRoute::kAuto)
    route = x.dtype == isa::DType::kBf16 ? TransposeRoute::kTensorE : TransposeRoute::kVectorE;
  if (route == TransposeRoute::kTensorE && x.dtype != isa::DType::kBf16)
    fail("the TensorE route (pe_transpose) takes bf16 only; f32 goes by the VectorE route");
  Kernel::Scope scope(k);
  if (route == TransposeRoute::kTensorE) tensor_route(k, x, y, o.bufs);
  else vector_route(k, x, y, o.bufs);
}

model::Model build_transpose(const DeviceConfig& cfg, int64_t R, int64_t C, model::DType dtype,
                             const TransposeOptions& o) {
  if (R < 1 || C < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("transpose: sizes must be positive, got R={} C={}", R, C));
  Kernel k(cfg, fmt::format("transpose_{}x{}", R, C));
  const Dram x = k.input("x", dtype, {R, C});
  const Dram y = k.output("y", dtype, {C, R});
  transpose(k, x, y, o);
  return k.finish();
}

}  // namespace tcemu::kb
