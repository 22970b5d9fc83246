// Elementwise kernels (tcemu/kb/elementwise.h). The E elements of every tensor are taken flat, in chunks of
// P x F (P = sbuf_partitions): partition p of chunk c holds elements [(c P + p) F, (c P + p + 1) F), so every
// load and store is one contiguous run of F elements per partition. The last chunk holds `full` whole
// partitions and one partition with the remaining E mod F elements (two copies and two instructions).
//
//   DMA      inputs -> SBUF tiles (as stored: a bf16 input is not widened by the DMA, which would cost the
//            f32 size; the engines read bf16 directly)
//   ScalarE  y = f(x)              activation                  unary
//   VectorE  y = a OP b            tensor_tensor               binary
//   DMA      y -> HBM
//
// The result overwrites an f32 input tile (else it gets its own f32 tile). Chunks rotate through up to four
// buffers; loads and stores use separate DMA queue sets, the loads before the first store and the stores
// after the last load every queue (as in softmax.cpp).
//
// F: about E / (8 P), so that a tensor of a few MiB is cut into about 8 chunks (the first load and the last
// store, which nothing overlaps, are then short), but at least 256 elements per partition (the 60-cycle
// start of an instruction and the 64-cycle start of a DMA stay small) and at most 4096.
//
// Cost per chunk (docs/isa.md timing): ScalarE 60 + F, VectorE 60 + 2F; DMA P F (in + out bytes) at
// 290 B/cycle on trn1: 3.5 F cycles for f32 -> f32, 5.3 F for a binary f32 op. HBM bounds both kernels.
#include "tcemu/kb/elementwise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>

#include "tcemu/error.h"

namespace tcemu::kb {

namespace {





bool float_dtype(const Dram& t) { return t.dtype == isa::DType::kF32 || t.dtype == isa::DType::kBf16; }

// The flat stream: loads the inputs chunk by chunk, calls compute(out, ins) on each part of a chunk (whole
// partitions, then the remainder), stores out.
void stream(Kernel& k, const std::string& what, const std::vector<const Dram*>& in, const Dram& y, int want_bufs,
            const std::function<void(const Tile& out, const std::vector<Tile>& ins)>& compute) {
  const DeviceConfig& cfg = k.config();
  const uint64_t E = y.elems(), P = uint64_t(cfg.sbuf_partitions);
  const uint64_t F = std::min(ceil_div(E, P), std::clamp<uint64_t>(ceil_div(E, 8 * P), 256, 4096));
  const uint32_t np = uint32_t(std::min(P, ceil_div(E, F)));
  Kernel::Scope scope(k);
  // The output overwrites the first f32 input, else gets its own tile.
  int out_in = -1;
  for (size_t i = 0; i < in.size() && out_in < 0; ++i)
    if (in[i]->dtype == isa::DType::kF32) out_in = int(i);
  uint64_t per_buf = out_in < 0 ? round_up(F * 4, 64) : 0, load_bytes = 0;
  for (const Dram* d : in) per_buf += round_up(F * elem_bytes(d->dtype), 64), load_bytes += F * elem_bytes(d->dtype);
  const int bufs = want_bufs ? want_bufs : k.buffers_that_fit(4, per_buf);
  std::vector<Ring> rings;
  for (size_t i = 0; i < in.size(); ++i)
    rings.emplace_back(k, fmt::format("{}.{}", what, in[i]->name), isa::Space::kSbuf, in[i]->dtype, np, F, bufs);
  std::optional<Ring> outs;
  if (out_in < 0) outs.emplace(k, what + ".y", isa::Space::kSbuf, isa::DType::kF32, np, F, bufs);
  StreamQueues q(cfg, load_bytes, F * elem_bytes(y.dtype));

  const uint64_t chunks = ceil_div(E, P * F);
  const uint64_t lag = bufs > 1 ? 1 : 0;  // the store of chunk i after the loads of chunk i+1
  // The parts of chunk c: (first partition, partitions, elements per partition, first element).
  struct Part {
    uint32_t p0, n;
    uint64_t f, e0;
  };
  auto parts = [&](uint64_t c) {
    const uint64_t e0 = c * P * F, n = std::min(P * F, E - e0), full = n / F, rem = n % F;
    std::vector<Part> v;
    if (full) v.push_back({0, uint32_t(full), F, e0});
    if (rem) v.push_back({uint32_t(full), 1, rem, e0 + full * F});
    return v;
  };
  auto view = [](const Tile& t, const Part& p) { return t.parts(p.p0, p.n).cols(0, p.f); };
  auto out_tile = [&](uint64_t c) -> const Tile& { return out_in < 0 ? (*outs)[c] : rings[size_t(out_in)][c]; };
  auto stage_a = [&](uint64_t c) {
    for (const Part& p : parts(c))
      for (size_t i = 0; i < in.size(); ++i) {
        const Tile t = view(rings[i][c], p);
        k.dma(t.ap(), in[i]->ap(p.e0, p.f, {{p.n, p.f}}), q.load(t.ap().bytes()));
      }
    for (const Part& p : parts(c)) {
      std::vector<Tile> ins;
      for (size_t i = 0; i < in.size(); ++i) ins.push_back(view(rings[i][c], p));
      compute(view(out_tile(c), p), ins);
    }
  };
  auto stage_b = [&](uint64_t c) {
    for (const Part& p : parts(c)) {
      const Tile t = view(out_tile(c), p);
      k.dma(y.ap(p.e0, p.f, {{p.n, p.f}}), t.ap(), q.store(t.ap().bytes(), c + lag + 1 >= chunks));
    }
  };
  for (uint64_t c = 0; c < chunks + lag; ++c) {
    if (c < chunks) stage_a(c);
    if (c >= lag) stage_b(c - lag);
  }
}

}  // namespace

void elementwise_unary(Kernel& k, const Dram& x, const Dram& y, const UnaryOptions& o) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("elementwise_unary in kernel '{}': {}", k.name(), why));
  };
  if (x.elems() == 0) fail(fmt::format("x '{}' is empty", x.name));
  if (y.elems() != x.elems())
    fail(fmt::format("y '{}' has {} elements, x '{}' {}", y.name, y.elems(), x.name, x.elems()));
  if (!float_dtype(x) || !float_dtype(y)) fail("x and y must be f32 or bf16");
  if (!isa::act_func_name(uint64_t(o.func))) fail(fmt::format("unknown activation function {}", int(o.func)));
  if (o.bufs < 0 || o.bufs > 8) fail(fmt::format("bufs = {} (0 .. 8)", o.bufs));
  stream(k, "unary", {&x}, y, o.bufs,
         [&](const Tile& out, const std::vector<Tile>& ins) { k.activation(out, ins[0], o.func); });
}

void elementwise_binary(Kernel& k, const Dram& a, const Dram& b, const Dram& y, const BinaryOptions& o) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("elementwise_binary in kernel '{}': {}", k.name(), why));
  };
  if (a.elems() == 0) fail(fmt::format("a '{}' is empty", a.name));
  if (b.elems() != a.elems() || y.elems() != a.elems())
    fail(fmt::format("a '{}', b '{}' and y '{}' have {}, {} and {} elements", a.name, b.name, y.name, a.elems(),
                     b.elems(), y.elems()));
  if (!float_dtype(a) || !float_dtype(b) || !float_dtype(y)) fail("a, b and y must be f32 or bf16");
  if (o.op == isa::AluOp::kBypass || !isa::alu_op_name(uint64_t(o.op)))
    fail(fmt::format("op {} is not a tensor_tensor operation", int(o.op)));
  if (o.bufs < 0 || o.bufs > 8) fail(fmt::format("bufs = {} (0 .. 8)", o.bufs));
  stream(k, "binary", {&a, &b}, y, o.bufs,
         [&](const Tile& out, const std::vector<Tile>& ins) { k.tensor_tensor(out, ins[0], ins[1], o.op); });
}

model::Model build_elementwise_unary(const DeviceConfig& cfg, int64_t R, int64_t C, model::DType x_dtype,
                                     const UnaryOptions& o) {
  if (R < 1 || C < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("elementwise_unary: sizes must be positive, got R={} C={}", R, C));
  const char* f = isa::act_func_name(uint64_t(o.func));
  Kernel k(cfg, fmt::format("{}_{}x{}", f ? f : "unary", R, C));
  const Dram x = k.input("x", x_dtype, {R, C});
  const Dram y = k.output("y", model::DType::kF32, {R, C});
  elementwise_unary(k, x, y, o);
  return k.finish();
}

model::Model build_elementwise_binary(const DeviceConfig& cfg, int64_t R, int64_t C, model::DType a_dtype,
                                      model::DType b_dtype, const BinaryOptions& o) {
  if (R < 1 || C < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("elementwise_binary: sizes must be positive, got R={} C={}", R, C));
  const char* op = isa::alu_op_name(uint64_t(o.op));
  Kernel k(cfg, fmt::format("{}_{}x{}", op ? op : "binary", R, C));
  const Dram a = k.input("a", a_dtype, {R, C});
  const Dram b = k.input("b", b_dtype, {R, C});
  const Dram y = k.output("y", model::DType::kF32, {R, C});
  elementwise_binary(k, a, b, y, o);
  return k.finish();
}

}  // namespace tcemu::kb
