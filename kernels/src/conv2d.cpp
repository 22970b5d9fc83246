// conv2d: an implicit GEMM on TensorE. The contraction runs over input channels on the partitions (the
// array's rows); every kernel tap (kh, kw) is one matmul accumulated in PSUM.
//
// Layout (per band of output rows or of whole images, per channel tile of <= R = array rows channels):
//
//   X  one SBUF tile, channels on partitions, holding the zero-padded input of the band as bf16, row pitch
//      Wq. With stride 1, X is the padded image itself (Wq = W + 2 pw): DMA writes the interior rows
//      (casting to bf16), VectorE zeroes the pad rows and columns. With stride (sh, sw) > 1, X holds the
//      sh * sw polyphase components of the padded image, phase (a, b) = padded[a::sh, b::sw]
//      (Wq = ceil((W + 2 pw) / sw)): DMA loads the padded rows into a staging tile and VectorE/ScalarE
//      copy each phase out with a strided view (with very few channels, where those copies would use C of
//      the 128 lanes, DMA gathers the phases from HBM directly, one element per run). Either way, tap
//      t = (kh, kw) reads phase (kh % sh, kw % sw) at row offset kh / sh and column offset kw / sw, so
//      output pixel (oh, ow) of tap t sits at X[off(t) + oh * Wq + ow]: for a run of output rows, the
//      moving operand of every tap is ONE CONTIGUOUS slice of X ("flat" implicit GEMM). The Wq - OW
//      columns at the end of each row are computed too and dropped at eviction (3.4% of the columns for a
//      56x56 3x3 layer): every matmul operand is dense, no im2col copies, whatever the stride.
//   W  the weights once, resident, as [c][tap][f] (bf16): a DMA lands w[f, c, :, :] as [c][f][tap] (runs of
//      KH*KW taps; f32 3x3: one kernel row per copy, so the first taps arrive after a third of them) and a
//      VectorE/ScalarE copy per tap makes its [c][f] block dense. 1x1 kernels (runs would be one element):
//      w rows land as [f][c] and TensorE transposes each block (pe_transpose). Stationary of tap t, F tile
//      f: W[c][t][f-tile] (m = F tile <= array columns).
//   PSUM one bank per pixel tile: [F tile partitions][pixels] = NCHW rows (F on partitions, pixels
//      contiguous), accumulating C tiles x taps matmuls; a pixel tile is whole output rows (or column
//      chunks of very wide rows), or whole small images batched (several images' X are consecutive, so
//      the flat slice spans them), up to 512 columns, so that matmuls stream at one column per cycle.
//   Eviction PSUM -> SBUF by ScalarE (activation identity/relu with the bias as a column) or VectorE
//      (tensor_scalar add bias [, max 0]), whichever the static estimate says is less loaded, dropping the
//      garbage columns with a 2-D view, in two halves; each half's store DMA has runs of whole output rows
//      (NCHW: a tile's pixels are contiguous per f).
//
// Tap packing (C <= R/2): one matmul contracts over g taps x C channels: the partitions hold g copies of
// X ("sub-blocks", 32-aligned when C > 32), copy i shifted by -(off(t_i) - off(t_0)) elements, so the
// common moving offset off(t_0) reads tap t_i's window in sub-block i; the stationary stacks the g taps'
// weights. Groups of consecutive taps with the same offset pattern share a "region" (one X tile); the
// primary copy is loaded from HBM, the others are SBUF->SBUF DMA replicas of it (no HBM traffic). g is
// chosen by a static estimate (TensorE columns vs DMA bytes); a 3x3 layer with C = 64 runs 5 matmuls per
// tile instead of 9, each with k = 128 rows instead of 64.
//
// Pipelining: the input of a band is loaded in chunks, one per pixel tile (the rows that tile adds), so the
// first matmuls wait only for the first weights and the first chunk; every DMA is spread over all queues
// (pieces >= 2 KiB), so chunks complete in order; X (and the staging tile) are double buffered across
// bands, and the next band's loads are emitted before this band's matmuls; the next F tile's weights load
// one F tile ahead; PSUM banks (4) and output tiles (3) rotate. kb::Kernel derives every semaphore from the
// tiles' byte ranges.
#include "tcemu/kb/conv2d.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "tcemu/error.h"

namespace tcemu::kb {

using isa::ActFunc;
using isa::AluOp;
using isa::DType;
using isa::Space;

namespace {

[[noreturn]] void invalid(const std::string& m) { throw Error(ErrorCode::kInvalidArgument, "conv2d: " + m); }

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r;
  for (int64_t d : s) {
    if (!r.empty()) r += 'x';
    r += std::to_string(d);
  }
  return "[" + r + "]";
}

// Sizes and the flat layout of X.
struct Geo {
  int64_t N, C, H, W, F, KH, KW, sh, sw, ph, pw, OH, OW, Hp, Wp, Wq, T, phases;
  int64_t R, FT, bank;  // contraction partitions per matmul, F per tile, fp32 columns per PSUM bank
  int64_t quad;         // VectorE/ScalarE accesses to more partitions start at a multiple of this
  int64_t kh(int64_t t) const { return t / KW; }
  int64_t kw(int64_t t) const { return t % KW; }
  int64_t phase(int64_t t) const { return (kh(t) % sh) * sw + kw(t) % sw; }
  int64_t inoff(int64_t t) const { return (kh(t) / sh) * Wq + kw(t) / sw; }  // offset within its phase
};

// A band: nb whole images, or B output rows (from r0) of one image.
struct BandGeo {
  int64_t Hb, Hqb, IS, PS, len;  // padded rows, rows per phase, image stride, phase stride, X elements
};
BandGeo band_geo(const Geo& g, int64_t nb, int64_t B) {
  BandGeo b;
  b.Hb = (B - 1) * g.sh + g.KH;
  b.Hqb = cdiv(b.Hb, g.sh);
  b.IS = b.Hqb * g.Wq;
  b.PS = nb * b.IS;
  b.len = g.phases * b.PS;
  return b;
}

// Tap packing: g taps per matmul, sub-blocks cstride partitions apart.
struct Pack {
  int g = 1;
  int64_t cstride = 0, groups = 0;
  using Delta = std::pair<int64_t, int64_t>;  // (phase difference, in-phase offset difference)
  std::vector<std::vector<Delta>> regions;    // per region: the deltas of sub-blocks 1.. (sub-block 0: 0)
  std::vector<int> region_of;                 // per group
  int64_t taps_in(int64_t j, int64_t T) const { return std::min<int64_t>(g, T - j * g); }
  int64_t copies() const {
    int64_t n = 0;
    for (const auto& r : regions) n += int64_t(r.size()) + 1;
    return n;
  }
};

Pack make_pack(const Geo& geo, int g) {
  Pack p;
  p.g = g;
  const int64_t q = geo.quad;  // sub-blocks are zeroed and rearranged by VectorE/ScalarE: quadrant-aligned
  p.cstride = geo.C <= q ? geo.C : cdiv(geo.C, q) * q;
  p.groups = cdiv(geo.T, g);
  for (int64_t j = 0; j < p.groups; ++j) {
    std::vector<Pack::Delta> d;
    const int64_t t0 = j * g;
    for (int64_t i = 1; i < p.taps_in(j, geo.T); ++i)
      d.push_back({geo.phase(t0 + i) - geo.phase(t0), geo.inoff(t0 + i) - geo.inoff(t0)});
    int found = -1;
    for (size_t r = 0; r < p.regions.size() && found < 0; ++r) {
      auto& rd = p.regions[r];
      const size_t common = std::min(rd.size(), d.size());
      if (!std::equal(d.begin(), d.begin() + int64_t(common), rd.begin())) continue;
      if (d.size() > rd.size()) rd = d;  // extend: earlier groups use a prefix
      found = int(r);
    }
    if (found < 0) {
      p.regions.push_back(d);
      found = int(p.regions.size()) - 1;
    }
    p.region_of.push_back(found);
  }
  return p;
}

// Where a copy of a channel group's X lives: X tile `tile` of the slot, partitions [part, part + nc), the
// image origin at element `base`.
struct XCopy {
  int tile;
  uint32_t part;
  int64_t base;
};
struct CGroup {
  int64_t c0, nc;
  std::vector<XCopy> copies;  // [0]: the primary (loaded from HBM), others: SBUF replicas
};
// One matmul of a pixel tile: moving = X tile `xtile` partitions [0, k) from element mv + pixel offset;
// stationary = weight tile `wtile` partitions [0, k), columns wcol + f0 ...
struct Step {
  int xtile;
  uint32_t k;
  int64_t mv;
  int wtile;
  int64_t wcol;
};
struct Layout {
  std::vector<CGroup> groups;
  std::vector<Step> steps;
  std::vector<int64_t> xlen;    // elements each X tile needs for this band geometry
  std::vector<uint32_t> xparts;  // partitions of each X tile
};

Layout make_layout(const Geo& g, const Pack& p, const BandGeo& bg) {
  Layout L;
  auto off = [&](int64_t t) { return g.phase(t) * bg.PS + g.inoff(t); };
  if (p.g == 1) {
    int t = 0;
    for (int64_t c0 = 0; c0 < g.C; c0 += g.R, ++t) {
      const int64_t nc = std::min(g.R, g.C - c0);
      L.groups.push_back({c0, nc, {{t, 0, 0}}});
      L.xlen.push_back(bg.len);
      L.xparts.push_back(uint32_t(nc));
      for (int64_t tap = 0; tap < g.T; ++tap) L.steps.push_back({t, uint32_t(nc), off(tap), t, tap * g.F});
    }
    return L;
  }
  CGroup cg{0, g.C, {}};
  std::vector<int64_t> base0;
  for (size_t r = 0; r < p.regions.size(); ++r) {
    std::vector<int64_t> delta = {0};
    for (auto [dp, doff] : p.regions[r]) delta.push_back(dp * bg.PS + doff);
    const int64_t mx = *std::max_element(delta.begin(), delta.end());
    const int64_t mn = *std::min_element(delta.begin(), delta.end());
    for (size_t i = 0; i < delta.size(); ++i)
      cg.copies.push_back({int(r), uint32_t(int64_t(i) * p.cstride), mx - delta[i]});
    base0.push_back(mx);
    L.xlen.push_back(bg.len + mx - mn);
    L.xparts.push_back(uint32_t(int64_t(delta.size() - 1) * p.cstride + g.C));
  }
  L.groups.push_back(cg);
  for (int64_t j = 0; j < p.groups; ++j) {
    const int r = p.region_of[size_t(j)];
    const uint32_t k = uint32_t((p.taps_in(j, g.T) - 1) * p.cstride + g.C);
    L.steps.push_back({r, k, base0[size_t(r)] + off(j * p.g), 0, j * g.F});
  }
  return L;
}

struct PixTile {
  int64_t i0, ni, rr0, nr, c0, cw, n;  // images and output rows (band-relative), columns; moving columns
};
struct Chunk {
  int64_t i0, ni, p0, p1;  // images and padded rows (band-relative) a tile adds to X
};
struct Band {
  int64_t n0, nb, r0, B;
  BandGeo geo;
  std::vector<PixTile> tiles;
  std::vector<Chunk> chunks;  // chunks[t]: loaded before tile t (p0 == p1: nothing)
};

// Tiling parameters: rows per tile r, images per tile it, columns per tile cw.
struct Tiling {
  int64_t r, it, cw;
};

std::vector<Band> make_bands(const Geo& g, const Tiling& tl, int64_t nb, int64_t B) {
  std::vector<Band> bands;
  auto add = [&](int64_t n0, int64_t nbb, int64_t r0, int64_t nr) {
    Band b{n0, nbb, r0, nr, band_geo(g, nbb, nr), {}, {}};
    const int64_t it = std::min(tl.it, nbb), itiles = cdiv(nbb, it), ni = cdiv(nbb, itiles);
    const int64_t rt = std::min(tl.r, nr), rtiles = cdiv(nr, rt), rows = cdiv(nr, rtiles);
    const int64_t ctiles = cdiv(g.OW, tl.cw), cw = cdiv(g.OW, ctiles);
    std::vector<int64_t> loaded(size_t(nbb), 0);
    for (int64_t i0 = 0; i0 < nbb; i0 += ni)
      for (int64_t rr0 = 0; rr0 < nr; rr0 += rows)
        for (int64_t c0 = 0; c0 < g.OW; c0 += cw) {
          PixTile t{i0, std::min(ni, nbb - i0), rr0, std::min(rows, nr - rr0), c0, std::min(cw, g.OW - c0), 0};
          t.n = (t.ni - 1) * b.geo.IS + (t.nr - 1) * g.Wq + t.cw;
          const int64_t need = (t.rr0 + t.nr - 1) * g.sh + g.KH;
          Chunk c{t.i0, t.ni, loaded[size_t(t.i0)], std::max(need, loaded[size_t(t.i0)])};
          for (int64_t i = t.i0; i < t.i0 + t.ni; ++i) loaded[size_t(i)] = c.p1;
          b.tiles.push_back(t);
          b.chunks.push_back(c);
        }
    bands.push_back(std::move(b));
  };
  if (B == g.OH) {
    for (int64_t n0 = 0; n0 < g.N; n0 += nb) add(n0, std::min(nb, g.N - n0), 0, g.OH);
  } else {
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t r0 = 0; r0 < g.OH; r0 += B) add(n, 1, r0, std::min(B, g.OH - r0));
  }
  return bands;
}

Ap sbuf_ap(const Tile& t, uint32_t p0, uint32_t np, int64_t e0, int64_t run,
           std::array<std::pair<int64_t, int64_t>, 2> dims) {  // (count, stride in elements), innermost first
  const uint64_t e = elem_bytes(t.dtype);
  Ap a{t.addr(p0, uint64_t(e0)), t.dtype, uint64_t(run), {}, "tile '" + t.name + "'"};
  for (auto [c, s] : dims) a.dims.push_back({uint64_t(c), uint64_t(s) * e});
  a.dims.push_back({np, t.partition_bytes});
  return a;
}

Ap dram_ap(const Dram& d, int64_t off, int64_t run, std::array<std::pair<int64_t, int64_t>, 3> dims) {
  auto u = [](std::pair<int64_t, int64_t> p) { return std::pair<uint64_t, uint64_t>(uint64_t(p.first), uint64_t(p.second)); };
  return d.ap(uint64_t(off), uint64_t(run), {u(dims[0]), u(dims[1]), u(dims[2])});
}

}  // namespace

Conv2dPlan conv2d(Kernel& k, const Dram& x, const Dram& w, const std::optional<Dram>& bias, const Dram& y,
                  const Conv2dOptions& o) {
  const DeviceConfig& cfg = k.config();
  // ---- shapes ----
  if (x.shape.size() != 4) invalid(fmt::format("x '{}' must be [N, C, H, W], got {}", x.name, shape_str(x.shape)));
  if (w.shape.size() != 4) invalid(fmt::format("w '{}' must be [F, C, KH, KW], got {}", w.name, shape_str(w.shape)));
  for (const Dram* d : {&x, &w})
    for (int64_t s : d->shape)
      if (s < 1) invalid(fmt::format("tensor '{}' {} has an empty dimension", d->name, shape_str(d->shape)));
  if (w.shape[1] != x.shape[1])
    invalid(fmt::format("w {} has {} input channels, x {} has {}", shape_str(w.shape), w.shape[1], shape_str(x.shape),
                        x.shape[1]));
  if (o.stride_h < 1 || o.stride_w < 1 || o.pad_h < 0 || o.pad_w < 0)
    invalid(fmt::format("stride ({}, {}) must be >= 1 and padding ({}, {}) >= 0", o.stride_h, o.stride_w, o.pad_h, o.pad_w));
  for (const Dram* d : {&x, &w})
    if (d->dtype != DType::kF32 && d->dtype != DType::kBf16)
      invalid(fmt::format("tensor '{}' must be f32 or bf16", d->name));
  Geo g{};
  g.N = x.shape[0], g.C = x.shape[1], g.H = x.shape[2], g.W = x.shape[3];
  g.F = w.shape[0], g.KH = w.shape[2], g.KW = w.shape[3];
  g.sh = o.stride_h, g.sw = o.stride_w, g.ph = o.pad_h, g.pw = o.pad_w;
  g.Hp = g.H + 2 * g.ph, g.Wp = g.W + 2 * g.pw;
  if (g.Hp < g.KH || g.Wp < g.KW)
    invalid(fmt::format("the padded input {}x{} is smaller than the kernel {}x{}", g.Hp, g.Wp, g.KH, g.KW));
  g.OH = (g.Hp - g.KH) / g.sh + 1, g.OW = (g.Wp - g.KW) / g.sw + 1;
  g.Wq = cdiv(g.Wp, g.sw);
  g.T = g.KH * g.KW, g.phases = g.sh * g.sw;
  g.R = std::min(cfg.rows, cfg.sbuf_partitions);
  g.FT = std::min(cfg.cols, cfg.psum_partitions);
  g.bank = cfg.psum_bank_bytes / 4;
  g.quad = std::max(cfg.partition_quadrant, 1);
  const std::vector<int64_t> yshape = {g.N, g.F, g.OH, g.OW};
  if (y.shape != yshape || y.dtype != DType::kF32)
    invalid(fmt::format("y '{}' must be f32 {}, got {} {}", y.name, shape_str(yshape), isa::dtype_name(uint64_t(y.dtype)),
                        shape_str(y.shape)));
  if (bias && (bias->shape != std::vector<int64_t>{g.F} || (bias->dtype != DType::kF32 && bias->dtype != DType::kBf16)))
    invalid(fmt::format("bias '{}' must be f32/bf16 [{}], got {}", bias->name, g.F, shape_str(bias->shape)));
  if (o.act != ActFunc::kIdentity && o.act != ActFunc::kRelu)
    invalid(fmt::format("act must be identity or relu, got {}", isa::act_func_name(uint64_t(o.act))));
  if (g.Wq > 65535) invalid(fmt::format("padded width {} exceeds the 65535 elements of a vector operand", g.Wp));

  // ---- pixel tiling: whole output rows (or column chunks), or whole images, per PSUM bank ----
  Tiling tl{};
  if (g.OW > g.bank) {
    tl.cw = cdiv(g.OW, cdiv(g.OW, g.bank)), tl.r = 1, tl.it = 1;
  } else {
    tl.cw = g.OW;
    const int64_t rmax = std::min(g.OH, (g.bank - g.OW) / g.Wq + 1);
    tl.r = cdiv(g.OH, cdiv(g.OH, rmax));
    tl.it = 1;
    if (tl.r == g.OH) {
      const BandGeo one = band_geo(g, 1, g.OH);
      tl.it = std::min(g.N, (g.bank - ((g.OH - 1) * g.Wq + g.OW)) / one.IS + 1);
    }
  }

  // ---- tap packing: the g that minimises the larger of the TensorE and DMA estimates ----
  const uint32_t kq = uint32_t(cfg.dma_queues) * cfg.dma_bytes_per_cycle;
  const double hbm_rate = cfg.hbm_bytes_per_cycle ? double(cfg.hbm_bytes_per_cycle) : double(kq);
  const double cols = double(g.N) * double(g.OH) * double(g.Wq) * double(cdiv(g.F, g.FT));
  const double hbm_bytes = double(g.N * g.C * g.H * g.W) * elem_bytes(x.dtype) +
                           double(g.F * g.C * g.T) * elem_bytes(w.dtype) + double(g.N * g.F * g.OH * g.OW) * 4.0;
  const double xcopy_bytes = double(g.N * g.C) * double(g.Hp * g.Wp) * 2.0;
  Pack pack = make_pack(g, 1);
  if (o.pack_taps && g.T > 1) {
    const int64_t cs = make_pack(g, 1).cstride;
    const int gmax = int(std::min<int64_t>(g.T, g.C <= g.R ? (g.R - g.C) / cs + 1 : 1));
    auto est = [&](const Pack& p) {
      const double te = double(p.g == 1 ? cdiv(g.C, g.R) * g.T : p.groups) * cols;
      const double dma = std::max(hbm_bytes / hbm_rate, (hbm_bytes + double(p.copies() - 1) * xcopy_bytes) / kq);
      return std::max(te, dma);
    };
    double best = est(pack);
    for (int gg = 2; gg <= gmax; ++gg) {
      Pack p = make_pack(g, gg);
      if (est(p) < best) best = est(p), pack = p;
    }
  }

  Kernel::Scope scope(k);
  const uint32_t FT = uint32_t(g.FT);
  const int64_t ftiles = cdiv(g.F, g.FT);

  // ---- resident tiles: weights, bias, weight staging, PSUM and output rings ----
  struct WTile {
    Tile t;
    int64_t c0, nc;
    std::vector<uint32_t> parts;  // sub-block partitions
  };
  std::vector<WTile> wt;
  if (pack.g == 1) {
    for (int64_t c0 = 0, i = 0; c0 < g.C; c0 += g.R, ++i) {
      const int64_t nc = std::min(g.R, g.C - c0);
      wt.push_back({k.sbuf(fmt::format("conv_w[{}]", i), DType::kBf16, uint32_t(nc), uint64_t(g.T * g.F)), c0, nc, {0}});
    }
  } else {
    std::vector<uint32_t> parts;
    for (int i = 0; i < pack.g; ++i) parts.push_back(uint32_t(i * pack.cstride));
    const uint32_t np = uint32_t((pack.g - 1) * pack.cstride + g.C);
    wt.push_back({k.sbuf("conv_w", DType::kBf16, np, uint64_t(pack.groups * g.F)), 0, g.C, parts});
  }
  std::optional<Tile> bias_t;
  if (bias) bias_t = k.sbuf("conv_bias", DType::kF32, FT, uint64_t(ftiles));
  Ring psum(k, "conv_psum", Space::kPsum, DType::kF32, FT, uint64_t(g.bank), std::min(4, cfg.psum_banks));
  Ring outr(k, "conv_out", Space::kSbuf, DType::kF32, FT, uint64_t(g.bank), 3);
  // 1x1 weights: loaded as w[F, C] rows ([f][c], F on partitions: runs of C elements) and transposed per
  // (F tile, C tile) block by TensorE (pe_transpose, exact for finite values), rather than landed as
  // [c][f] with one element per run (2 or 4 B against the 16 B minimum). Falls back when it does not fit.
  std::optional<Tile> wnat;
  if (g.T == 1 && g.R <= cfg.cols && g.FT <= cfg.rows) {
    try {
      wnat = k.sbuf("conv_wnat", DType::kBf16, FT, uint64_t(ftiles * g.C));
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kCapacity) throw;
    }
  }
  std::optional<Ring> wstage;
  if (!wnat) {
    uint32_t wst_np = 0;
    for (const auto& t : wt) wst_np = std::max(wst_np, t.t.np);
    wstage.emplace(k, "conv_wstage", Space::kSbuf, DType::kBf16, wst_np, uint64_t(g.FT * g.T), 2);
  }

  // Stride > 1 with few channels: the polyphase components come straight from HBM (one element per run,
  // 16 B each) when that costs the queues less than the VectorE/ScalarE copies, which use only C of the
  // lanes (C = 3: 3 of 128).
  bool phase_dma = false;
  if (g.phases > 1) {
    const double ve = double(g.N) * double(g.Hp * g.Wp) / 2;  // copies split over VectorE and ScalarE
    const double dq = double(g.N * g.C * g.H * g.W) * double(std::max<uint64_t>(cfg.dma_min_run_bytes, elem_bytes(x.dtype))) /
                      std::min(double(kq), hbm_rate);
    phase_dma = dq < ve;
  }

  // ---- bands: the largest that fits (X double-buffered when there are several bands) ----
  struct Cand {
    int64_t nb, B, r;  // images per band, output rows per band, output rows per pixel tile
  };
  std::vector<Cand> cands;
  if (tl.r == g.OH && tl.cw == g.OW)
    for (int64_t nb : {g.N, tl.it * 8, tl.it * 4, tl.it * 2, tl.it, int64_t(1)})
      if (nb >= 1 && nb <= g.N && (cands.empty() || nb < cands.back().nb)) cands.push_back({nb, g.OH, tl.r});
  for (int64_t bt = cdiv(g.OH, tl.r);; bt = cdiv(bt, 2)) {  // row bands of bt pixel tiles
    const int64_t B = std::min(g.OH, bt * tl.r);
    if (cands.empty() || B < cands.back().B) cands.push_back({1, B, tl.r});
    if (bt == 1) break;
  }
  for (int64_t r = tl.r / 2; r >= 1; r /= 2) cands.push_back({1, r, r});  // then thinner pixel tiles

  std::vector<Band> bands;
  std::vector<std::vector<Tile>> xs;  // [slot][X tile]
  std::vector<Tile> stage;            // stride > 1: staging ring
  for (size_t ci = 0;; ++ci) {
    const Cand cd = cands[ci];
    Tiling tiling = tl;
    tiling.r = cd.r;
    bands = make_bands(g, tiling, cd.nb, cd.B);
    std::vector<int64_t> need;
    std::vector<uint32_t> parts;
    int64_t stage_len = 0;
    size_t ngroups = 0;
    for (const Band& b : bands) {
      const Layout L = make_layout(g, pack, b.geo);
      if (need.empty()) need = L.xlen, parts = L.xparts, ngroups = L.groups.size();
      for (size_t i = 0; i < need.size(); ++i) need[i] = std::max(need[i], L.xlen[i]);
      stage_len = std::max(stage_len, b.nb * b.geo.Hb * g.Wp);
    }
    const int slots = bands.size() > 1 ? 2 : 1;
    std::vector<Tile> got;
    try {
      xs.assign(size_t(slots), {});
      for (int s = 0; s < slots; ++s)
        for (size_t i = 0; i < need.size(); ++i) {
          xs[size_t(s)].push_back(k.sbuf(fmt::format("conv_x[{}][{}]", s, i), DType::kBf16, parts[i], uint64_t(need[i])));
          got.push_back(xs[size_t(s)].back());
        }
      stage.clear();
      if (g.phases > 1 && !phase_dma) {
        const uint32_t snp = uint32_t(std::min(g.R, g.C));
        const size_t nst = bands.size() * ngroups > 1 ? 2 : 1;
        for (size_t s = 0; s < nst; ++s) {
          stage.push_back(k.sbuf(fmt::format("conv_stage[{}]", s), DType::kBf16, snp, uint64_t(stage_len)));
          got.push_back(stage.back());
        }
      }
      break;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kCapacity || ci + 1 >= cands.size()) throw;
      for (auto it = got.rbegin(); it != got.rend(); ++it) k.release(*it);
    }
  }

  // ---- emission helpers ----
  // Every copy is spread over all queues (pieces of >= 2 KiB): a queue moves 19 B/cycle, HBM 290, so a
  // copy on fewer queues is slower, and copies issued in order then complete in order (the first chunk
  // of a band does not share HBM with the next one).
  auto dma = [&](const Ap& dst, const Ap& src) {
    const uint64_t bytes = std::max(dst.bytes(), src.bytes());
    DmaOpts d;
    d.split = int(std::clamp<uint64_t>(bytes / 2048, 1, uint64_t(cfg.dma_queues)));
    k.dma(dst, src, d);
  };
  uint64_t busy_v = 0, busy_s = 0;  // static estimates, to balance VectorE and ScalarE
  auto vcost = [&](uint64_t n) { return uint64_t(cfg.vector_start_cycles) + std::max<uint64_t>(cfg.vector_min_cycles, n); };
  auto scost = [&](uint64_t n) { return uint64_t(cfg.scalar_start_cycles) + std::max<uint64_t>(cfg.scalar_min_cycles, n); };
  auto copy = [&](const Tile& out, const Tile& in) {
    const uint64_t n = out.free_elems();
    if (busy_v + vcost(n) <= busy_s + scost(n)) {
      busy_v += vcost(n);
      k.tensor_copy(out, in);
    } else {
      busy_s += scost(n);
      k.copy_scalar(out, in);
    }
  };
  // Zeroes `rows` rows of `cols` elements, `pitch` apart, from element e0 (split to fit an operand).
  auto zero = [&](const Tile& t, uint32_t p0, uint32_t np, int64_t e0, int64_t rows, int64_t cols, int64_t pitch) {
    if (rows <= 0 || cols <= 0) return;
    if (cols == pitch) cols *= rows, rows = 1;
    const Tile v = t.parts(p0, np);
    for (int64_t c0 = 0; c0 < cols; c0 += 32768) {
      const int64_t cn = std::min<int64_t>(32768, cols - c0);
      const int64_t per = std::max<int64_t>(1, 65536 / cn);
      for (int64_t r0 = 0; r0 < rows; r0 += per) {
        const int64_t rn = std::min(per, rows - r0);
        const int64_t start = e0 + r0 * pitch + c0;
        const Tile z = v.cols(uint64_t(start), uint64_t((rn - 1) * pitch + cn)).view2(uint32_t(rn), uint32_t(cn), uint32_t(pitch), 1);
        busy_v += vcost(uint64_t(rn * cn));
        k.memset(z, 0.0f);
      }
    }
  };

  // Packed: the gap partitions between sub-blocks (C not a multiple of 32) meet zero weights; they must hold
  // finite values (0 x NaN = NaN), so they are zeroed once, like the weights' gap rows.
  if (pack.g > 1 && pack.cstride > g.C) {
    for (const auto& slot : xs)
      for (const Tile& t : slot)
        for (uint32_t p = uint32_t(g.C); p < t.np; p += uint32_t(pack.cstride))
          zero(t, p, uint32_t(std::min<int64_t>(pack.cstride - g.C, t.np - p)), 0, 1, t.n0, t.n0);
    for (uint32_t p = uint32_t(g.C); p < wt[0].t.np; p += uint32_t(pack.cstride))
      zero(wt[0].t, p, uint32_t(std::min<int64_t>(pack.cstride - g.C, wt[0].t.np - p)), 0, 1, wt[0].t.n0, wt[0].t.n0);
  }

  // ---- weights: w[f, c, :, :] -> staging [c][f][tap] -> W[c][tap group][f] ----
  // Unpacked f32 weights arrive one kernel row (KW taps) per copy when the shorter runs cost little (runs of
  // >= 12 B against the 16 B minimum), so the first taps' matmuls start after a third of the weights.
  const uint64_t wel = elem_bytes(w.dtype), minrun = std::max<uint64_t>(cfg.dma_min_run_bytes, 1);
  const bool w_by_rows = pack.g == 1 && g.KH > 1 &&
                         2 * uint64_t(g.KH) * std::max(minrun, uint64_t(g.KW) * wel) <=
                             3 * std::max(minrun, uint64_t(g.T) * wel);
  // Emits the loads of F tile j's weights (and their rearrangement, unless 1x1: finish_weights); after() runs
  // once, behind the first weight tile's first load (the first kernel row; packed: all of it).
  auto stage_weights = [&](int64_t j, const std::function<void()>& after) {
    const int64_t f0 = j * g.FT, fn = std::min(g.FT, g.F - f0);
    if (wnat) {
      dma(sbuf_ap(*wnat, 0, uint32_t(fn), j * g.C, g.C, {{{1, 1}, {1, 1}}}),
          dram_ap(w, f0 * g.C, g.C, {{{fn, g.C}, {1, 1}, {1, 1}}}));
      if (after) after();
      return;
    }
    for (const WTile& t : wt) {
      const bool first = &t == &wt[0];
      const Tile& st = wstage->next();
      const uint32_t nc = uint32_t(t.nc);
      // Taps i + q*g (q in [q0, q1)) of sub-block i -> column block q of W, one per instruction (the first
      // matmuls wait for one only).
      auto rearrange = [&](size_t i, int64_t q0, int64_t q1) {
        const uint32_t p = t.parts[i];
        for (; q0 < q1; ++q0) {
          const Tile in = st.parts(p, nc).cols(uint64_t(int64_t(i) + q0 * pack.g), uint64_t((fn - 1) * g.T + 1));
          const Tile out = t.t.parts(p, nc).cols(uint64_t(q0 * g.F + f0), uint64_t(fn));
          copy(out, in.view2(1, uint32_t(fn), 0, uint32_t(g.T)));
        }
      };
      const int64_t pieces = w_by_rows ? g.KH : 1, per_piece = g.T / pieces;
      for (int64_t pc = 0; pc < pieces; ++pc) {
        const int64_t ta = pc * per_piece;
        dma(sbuf_ap(st, 0, nc, ta, per_piece, {{{fn, g.T}, {1, 1}}}),
            dram_ap(w, (f0 * g.C + t.c0) * g.T + ta, per_piece, {{{fn, g.C * g.T}, {t.nc, g.T}, {1, 1}}}));
        if (pack.g == 1) {
          rearrange(0, ta, ta + per_piece);
          if (first && pc == 0 && after) after();  // the first chunk right behind the first kernel row
        }
      }
      if (pack.g > 1) {
        // Packed: sub-block i's partitions receive a copy of the staged weights (SBUF -> SBUF, no HBM), then
        // its taps i, i + g, ... are rearranged.
        rearrange(0, 0, cdiv(g.T, pack.g));
        for (size_t i = 1; i < t.parts.size(); ++i) {
          dma(sbuf_ap(st, t.parts[i], nc, 0, fn * g.T, {{{1, 1}, {1, 1}}}), sbuf_ap(st, 0, nc, 0, fn * g.T, {{{1, 1}, {1, 1}}}));
          rearrange(i, 0, cdiv(g.T - int64_t(i), pack.g));
        }
        if (first && after) after();
      }
    }
  };

  // 1x1: W[c-tile][f-tile] = transpose of the staged [f][c] block, through PSUM.
  auto finish_weights = [&](int64_t j) {
    if (!wnat) return;
    const int64_t f0 = j * g.FT, fn = std::min(g.FT, g.F - f0);
    for (const WTile& t : wt) {
      const Tile ps = psum.next().parts(0, uint32_t(t.nc)).cols(0, uint64_t(fn));
      k.pe_transpose(ps, wnat->parts(0, uint32_t(fn)).cols(uint64_t(j * g.C + t.c0), uint64_t(t.nc)));
      copy(t.t.parts(0, uint32_t(t.nc)).cols(uint64_t(f0), uint64_t(fn)), ps);
    }
  };

  auto load_bias = [&] {
    if (!bias) return;
    for (int64_t j = 0; j < ftiles; ++j) {
      const int64_t f0 = j * g.FT, fn = std::min(g.FT, g.F - f0);
      dma(sbuf_ap(*bias_t, 0, uint32_t(fn), j, 1, {{{1, 1}, {1, 1}}}), dram_ap(*bias, f0, 1, {{{fn, 1}, {1, 1}, {1, 1}}}));
    }
  };

  // ---- input bands ----
  // Per band and channel group: where DMA lands the padded rows (stride 1: the primary X copy; else a
  // staging tile), and whether its pad rows and columns must be zeroed (DMA never writes them, so a target
  // that held a band of the same geometry still has them).
  struct Target {
    const Tile* t;
    uint32_t part;
    int64_t base, is;  // image origin and image stride (elements)
    bool zero;
  };
  std::vector<std::vector<Target>> targets(bands.size());
  {
    std::map<std::pair<int, size_t>, std::tuple<int64_t, int64_t, int64_t>> held;
    size_t seq = 0;
    for (size_t bi = 0; bi < bands.size(); ++bi) {
      const Band& b = bands[bi];
      const Layout L = make_layout(g, pack, b.geo);
      for (const CGroup& cg : L.groups) {
        const XCopy& pc = cg.copies[0];
        std::pair<int, size_t> key;
        Target tg{};
        if (g.phases == 1 || phase_dma) {
          tg = {&xs[bi % xs.size()][size_t(pc.tile)], pc.part, pc.base, b.geo.IS, false};
          key = {int(bi % xs.size()), size_t(pc.tile)};
        } else {
          const size_t s = seq++ % stage.size();
          tg = {&stage[s], 0, 0, b.geo.Hb * g.Wp, false};
          key = {-1, s};
        }
        const auto geo = std::make_tuple(b.r0, b.B, b.nb);
        auto it = held.find(key);
        tg.zero = it == held.end() || it->second != geo;
        held[key] = geo;
        targets[bi].push_back(tg);
      }
    }
  }
  // Valid (not padding) rows [v0, v1) of chunk c of band b.
  auto valid_rows = [&](const Band& b, const Chunk& c) {
    const int64_t prow0 = b.r0 * g.sh;
    const int64_t v0 = std::clamp(g.ph - prow0, c.p0, c.p1), v1 = std::clamp(g.ph - prow0 + g.H, v0, c.p1);
    return std::pair<int64_t, int64_t>(v0, v1);
  };
  // Four strided memsets per target: the pad rows above and below each image, the left and right pad
  // columns of every row (rows of consecutive images are Wp apart too: an image is Hb rows).
  auto zero_band = [&](size_t bi) {
    const Band& b = bands[bi];
    const auto [v0, v1] = valid_rows(b, Chunk{0, b.nb, 0, b.geo.Hb});
    const Layout L = make_layout(g, pack, b.geo);
    for (size_t gi = 0; gi < L.groups.size(); ++gi) {
      const Target& tg = targets[bi][gi];
      if (!tg.zero) continue;
      const uint32_t nc = uint32_t(L.groups[gi].nc);
      if (phase_dma) {  // the same four per phase, in phase coordinates
        for (int64_t a = 0; a < g.sh; ++a)
          for (int64_t bb = 0; bb < g.sw; ++bb) {
            const int64_t e = tg.base + (a * g.sw + bb) * b.geo.PS;
            const int64_t q0 = cdiv(std::max<int64_t>(v0 - a, 0), g.sh), q1 = std::max(q0, cdiv(v1 - a, g.sh));
            const int64_t qn = cdiv(b.geo.Hb - a, g.sh);  // rows of this phase
            const int64_t j0 = cdiv(std::max<int64_t>(g.pw - bb, 0), g.sw);
            const int64_t j1 = std::max(j0, cdiv(g.pw + g.W - bb, g.sw)), jn = cdiv(g.Wp - bb, g.sw);
            zero(*tg.t, tg.part, nc, e, b.nb, q0 * g.Wq, b.geo.IS);
            zero(*tg.t, tg.part, nc, e + q1 * g.Wq, b.nb, (qn - q1) * g.Wq, b.geo.IS);
            zero(*tg.t, tg.part, nc, e, b.nb * b.geo.Hqb, j0, g.Wq);
            zero(*tg.t, tg.part, nc, e + j1, b.nb * b.geo.Hqb, jn - j1, g.Wq);
          }
        continue;
      }
      zero(*tg.t, tg.part, nc, tg.base, b.nb, v0 * g.Wp, tg.is);                            // pad rows above ...
      zero(*tg.t, tg.part, nc, tg.base + v1 * g.Wp, b.nb, (b.geo.Hb - v1) * g.Wp, tg.is);  // ... and below
      zero(*tg.t, tg.part, nc, tg.base, b.nb * b.geo.Hb, g.pw, g.Wp);                      // left pad columns
      zero(*tg.t, tg.part, nc, tg.base + g.pw + g.W, b.nb * b.geo.Hb, g.pw, g.Wp);         // right
    }
  };
  auto load_chunk = [&](size_t bi, size_t ci) {
    const Band& b = bands[bi];
    const BandGeo& bg = b.geo;
    const Layout L = make_layout(g, pack, bg);
    const auto& slot = xs[bi % xs.size()];
    {
      const Chunk& c = b.chunks[ci];
      if (c.p1 <= c.p0) return;
      const auto [v0, v1] = valid_rows(b, c);
      for (size_t gi = 0; gi < L.groups.size(); ++gi) {
        const CGroup& cg = L.groups[gi];
        const Target& tg = targets[bi][gi];
        const Tile& t = *tg.t;
        const uint32_t nc = uint32_t(cg.nc);
        if (phase_dma) {
          // Phase (a, bb) element (q, jj) = x[ih = r0*sh + q*sh + a - ph][iw = jj*sw + bb - pw], for the valid
          // rows of the chunk: one element per run.
          for (int64_t a = 0; a < g.sh; ++a) {
            const int64_t q0 = cdiv(std::max<int64_t>(v0 - a, 0), g.sh), q1 = cdiv(v1 - a, g.sh);
            if (q1 <= q0) continue;
            for (int64_t bb = 0; bb < g.sw; ++bb) {
              const int64_t j0 = cdiv(std::max<int64_t>(g.pw - bb, 0), g.sw), j1 = cdiv(g.pw + g.W - bb, g.sw);
              if (j1 <= j0) continue;
              const int64_t ih0 = b.r0 * g.sh + q0 * g.sh + a - g.ph, iw0 = j0 * g.sw + bb - g.pw;
              for (int64_t i = c.i0; i < c.i0 + c.ni; ++i)
                dma(sbuf_ap(t, tg.part, nc, tg.base + (a * g.sw + bb) * bg.PS + i * bg.IS + q0 * g.Wq + j0, 1,
                            {{{j1 - j0, 1}, {q1 - q0, g.Wq}}}),
                    dram_ap(x, ((b.n0 + i) * g.C + cg.c0) * g.H * g.W + ih0 * g.W + iw0, 1,
                            {{{j1 - j0, g.sw}, {q1 - q0, g.sh * g.W}, {nc, g.H * g.W}}}));
            }
          }
        } else if (v1 > v0) {
          const int64_t ih0 = b.r0 * g.sh + v0 - g.ph;
          dma(sbuf_ap(t, tg.part, nc, tg.base + c.i0 * tg.is + v0 * g.Wp + g.pw, g.W, {{{v1 - v0, g.Wp}, {c.ni, tg.is}}}),
              dram_ap(x, ((b.n0 + c.i0) * g.C + cg.c0) * g.H * g.W + ih0 * g.W, g.W,
                      {{{v1 - v0, g.W}, {c.ni, g.C * g.H * g.W}, {nc, g.H * g.W}}}));
        }
        const XCopy& pc = cg.copies[0];
        const Tile& xp = slot[size_t(pc.tile)];
        if (g.phases > 1 && !phase_dma) {
          // Phase (a, bb): padded rows p = q*sh + a in [p0, p1), columns j*sw + bb.
          for (int64_t i = c.i0; i < c.i0 + c.ni; ++i)
            for (int64_t a = 0; a < g.sh; ++a) {
              const int64_t q0 = cdiv(std::max<int64_t>(c.p0 - a, 0), g.sh), q1 = cdiv(c.p1 - a, g.sh);
              if (q1 <= q0) continue;
              for (int64_t bb = 0; bb < g.sw; ++bb) {
                const int64_t ncol = cdiv(g.Wp - bb, g.sw), nr = q1 - q0;
                const int64_t per = std::max<int64_t>(1, 65536 / ncol);
                for (int64_t r0 = 0; r0 < nr; r0 += per) {
                  const int64_t rn = std::min(per, nr - r0);
                  const int64_t src = i * tg.is + ((q0 + r0) * g.sh + a) * g.Wp + bb;
                  const Tile in = t.parts(0, nc)
                                      .cols(uint64_t(src), uint64_t((rn - 1) * g.sh * g.Wp + (ncol - 1) * g.sw + 1))
                                      .view2(uint32_t(rn), uint32_t(ncol), uint32_t(g.sh * g.Wp), uint32_t(g.sw));
                  const int64_t dst = pc.base + (a * g.sw + bb) * bg.PS + i * bg.IS + (q0 + r0) * g.Wq;
                  const Tile out = xp.parts(pc.part, nc)
                                       .cols(uint64_t(dst), uint64_t((rn - 1) * g.Wq + ncol))
                                       .view2(uint32_t(rn), uint32_t(ncol), uint32_t(g.Wq), 1);
                  copy(out, in);
                }
              }
            }
        }
        // Replicas (tap packing): SBUF -> SBUF copies of the primary's rows of this chunk.
        for (size_t ri = 1; ri < cg.copies.size(); ++ri) {
          const XCopy& rc = cg.copies[ri];
          const Tile& xr = slot[size_t(rc.tile)];
          if (g.phases == 1) {
            const int64_t e = c.i0 * bg.IS + c.p0 * g.Wp, run = (c.p1 - c.p0) * g.Wp;
            dma(sbuf_ap(xr, rc.part, nc, rc.base + e, run, {{{c.ni, bg.IS}, {1, 1}}}),
                sbuf_ap(xp, pc.part, nc, pc.base + e, run, {{{c.ni, bg.IS}, {1, 1}}}));
          } else {
            for (int64_t a = 0; a < g.sh; ++a) {
              const int64_t q0 = cdiv(std::max<int64_t>(c.p0 - a, 0), g.sh), q1 = cdiv(c.p1 - a, g.sh);
              if (q1 <= q0) continue;
              for (int64_t i = c.i0; i < c.i0 + c.ni; ++i) {
                const int64_t e = a * g.sw * bg.PS + i * bg.IS + q0 * g.Wq, run = (q1 - q0) * g.Wq;
                dma(sbuf_ap(xr, rc.part, nc, rc.base + e, run, {{{g.sw, bg.PS}, {1, 1}}}),
                    sbuf_ap(xp, pc.part, nc, pc.base + e, run, {{{g.sw, bg.PS}, {1, 1}}}));
              }
            }
          }
        }
      }
    }
  };

  // ---- compute a band: per F tile and pixel tile, the matmuls, the eviction, the store ----
  int64_t pixel_tiles = 0, max_n = 0;
  auto compute_band = [&](size_t bi) {
    const Band& b = bands[bi];
    const BandGeo& bg = b.geo;
    const Layout L = make_layout(g, pack, bg);
    const auto& slot = xs[bi % xs.size()];
    for (int64_t j = 0; j < ftiles; ++j) {
      const int64_t f0 = j * g.FT, fn = std::min(g.FT, g.F - f0);
      // The next F tile's weights load while this one computes (band 0 only: W stays resident). 1x1: the
      // loads were issued up front; the transposes go after this F tile's first pixel tile.
      if (bi == 0 && !wnat && j + 1 < ftiles) stage_weights(j + 1, {});
      const std::optional<Tile> bcol =
          bias_t ? std::optional<Tile>(bias_t->parts(0, uint32_t(fn)).col(uint64_t(j))) : std::nullopt;
      for (const PixTile& pt : b.tiles) {
        if (bi == 0 && j + 1 < ftiles && b.tiles.size() > 1 && &pt == &b.tiles[1]) finish_weights(j + 1);
        ++pixel_tiles, max_n = std::max(max_n, pt.n);
        const Tile ps = psum.next().parts(0, uint32_t(fn)).cols(0, uint64_t(pt.n));
        const int64_t pix = pt.i0 * bg.IS + pt.rr0 * g.Wq + pt.c0;
        for (size_t s = 0; s < L.steps.size(); ++s) {
          const Step& st = L.steps[s];
          const Tile stat = wt[size_t(st.wtile)].t.parts(0, st.k).cols(uint64_t(st.wcol + f0), uint64_t(fn));
          const Tile mov = slot[size_t(st.xtile)].parts(0, st.k).cols(uint64_t(st.mv + pix), uint64_t(pt.n));
          k.matmul(ps, stat, mov, s > 0);
        }
        // Eviction and store in two halves (by images, else by rows): the first half's store overlaps the
        // second half's eviction (the last tile's is the job's tail).
        const Tile ot = outr.next().parts(0, uint32_t(fn));
        const int64_t per = pt.nr * pt.cw;
        std::vector<std::array<int64_t, 4>> halves;  // (first image, images, first row, rows)
        if (pt.ni > 1) halves = {{0, pt.ni / 2, 0, pt.nr}, {pt.ni / 2, pt.ni - pt.ni / 2, 0, pt.nr}};
        else if (pt.nr > 1) halves = {{0, 1, 0, pt.nr / 2}, {0, 1, pt.nr / 2, pt.nr - pt.nr / 2}};
        else halves = {{0, 1, 0, 1}};
        for (const auto& [hi0, hni, hr0, hnr] : halves) {
          for (int64_t i = hi0; i < hi0 + hni; ++i) {
            const Tile in = ps.cols(uint64_t(i * bg.IS + hr0 * g.Wq), uint64_t((hnr - 1) * g.Wq + pt.cw))
                                .view2(uint32_t(hnr), uint32_t(pt.cw), uint32_t(g.Wq), 1);
            const Tile out = ot.cols(uint64_t(i * per + hr0 * pt.cw), uint64_t(hnr * pt.cw))
                                 .view2(uint32_t(hnr), uint32_t(pt.cw), uint32_t(pt.cw), 1);
            const uint64_t n = uint64_t(hnr * pt.cw);
            if (busy_v + vcost(n) < busy_s + scost(n)) {
              busy_v += vcost(n);
              const AluOp op1 = o.act == ActFunc::kRelu ? AluOp::kMax : AluOp::kBypass;
              if (bcol) k.tensor_scalar(out, in, AluOp::kAdd, *bcol, op1, 0.0f);
              else if (op1 == AluOp::kMax) k.tensor_scalar(out, in, AluOp::kMax, 0.0f);
              else k.tensor_copy(out, in);
            } else {
              busy_s += scost(n);
              ActOpts ao;
              ao.bias = bcol;
              k.activation(out, in, o.act, ao);
            }
          }
          // Per image and f, whole rows are contiguous in y.
          const int64_t yoff = ((b.n0 + pt.i0 + hi0) * g.F + f0) * g.OH * g.OW + (b.r0 + pt.rr0 + hr0) * g.OW + pt.c0;
          const int64_t so = hi0 * per + hr0 * pt.cw;
          if (pt.cw == g.OW) {
            dma(dram_ap(y, yoff, hnr * pt.cw, {{{hni, g.F * g.OH * g.OW}, {fn, g.OH * g.OW}, {1, 1}}}),
                sbuf_ap(ot, 0, uint32_t(fn), so, hnr * pt.cw, {{{hni, per}, {1, 1}}}));
          } else {
            dma(dram_ap(y, yoff, pt.cw, {{{hnr, g.OW}, {fn, g.OH * g.OW}, {1, 1}}}),
                sbuf_ap(ot, 0, uint32_t(fn), so, pt.cw, {{{hnr, pt.cw}, {1, 1}}}));
          }
        }
      }
      if (bi == 0 && j + 1 < ftiles && b.tiles.size() == 1) finish_weights(j + 1);
    }
  };

  // ---- schedule: band 0's zeroing, the first F tile's weights, band 0's loads, then band by band with
  // the next band's loads emitted ahead of this band's matmuls ----
  auto load_band = [&](size_t bi, size_t from) {
    for (size_t ci = from; ci < bands[bi].chunks.size(); ++ci) load_chunk(bi, ci);
  };
  zero_band(0);
  stage_weights(0, [&] { load_chunk(0, 0); });
  finish_weights(0);
  load_band(0, 1);
  load_bias();  // needed by the first eviction only
  if (wnat)
    for (int64_t j = 1; j < ftiles; ++j) stage_weights(j, {});  // small: all of them now
  for (size_t bi = 0; bi < bands.size(); ++bi) {
    if (bi + 1 < bands.size()) zero_band(bi + 1), load_band(bi + 1, 0);
    compute_band(bi);
  }

  Conv2dPlan plan;
  plan.oh = g.OH, plan.ow = g.OW;
  plan.taps_per_matmul = pack.g;
  const Layout L = make_layout(g, pack, bands[0].geo);
  plan.matmuls_per_tile = int(L.steps.size());
  for (const Step& st : L.steps) plan.max_k = std::max(plan.max_k, int(st.k));
  plan.x_regions = int(pack.g == 1 ? 1 : pack.regions.size());
  plan.band_images = bands[0].nb;
  plan.band_rows = bands[0].B;
  plan.tile_cols = max_n;
  plan.pixel_tiles = pixel_tiles / ftiles;
  return plan;
}

model::Model build_conv2d(const DeviceConfig& cfg, const Conv2dShape& s, const Conv2dOptions& o,
                          const Conv2dTensors& t, Conv2dPlan* plan) {
  if (s.n < 1 || s.c < 1 || s.h < 1 || s.w < 1 || s.f < 1 || s.kh < 1 || s.kw < 1)
    invalid(fmt::format("sizes must be positive: N={} C={} H={} W={} F={} KH={} KW={}", s.n, s.c, s.h, s.w, s.f, s.kh, s.kw));
  if (o.stride_h < 1 || o.stride_w < 1 || o.pad_h < 0 || o.pad_w < 0)
    invalid(fmt::format("stride ({}, {}) must be >= 1 and padding ({}, {}) >= 0", o.stride_h, o.stride_w, o.pad_h, o.pad_w));
  const int64_t hp = s.h + 2 * o.pad_h, wp = s.w + 2 * o.pad_w;
  if (hp < s.kh || wp < s.kw) invalid(fmt::format("the padded input {}x{} is smaller than the kernel {}x{}", hp, wp, s.kh, s.kw));
  const int64_t oh = (hp - s.kh) / o.stride_h + 1, ow = (wp - s.kw) / o.stride_w + 1;
  Kernel k(cfg, fmt::format("conv2d_n{}_c{}_{}x{}_f{}_k{}x{}_s{}x{}_p{}x{}", s.n, s.c, s.h, s.w, s.f, s.kh, s.kw, o.stride_h,
                            o.stride_w, o.pad_h, o.pad_w));
  const Dram x = k.input("x", t.x_dtype, {s.n, s.c, s.h, s.w});
  const Dram w = k.input("w", t.w_dtype, {s.f, s.c, s.kh, s.kw});
  std::optional<Dram> b;
  if (t.bias) b = k.input("bias", model::DType::kF32, {s.f});
  const Dram y = k.output("y", model::DType::kF32, {s.n, s.f, oh, ow});
  const Conv2dPlan p = conv2d(k, x, w, b, y, o);
  if (plan) *plan = p;
  return k.finish();
}

}  // namespace tcemu::kb
