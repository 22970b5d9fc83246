// The transformer block: library kernels in sequence (transformer.h lists them), sharing one kb::Kernel so
// that they become one model; each library call allocates its tiles in a scope and releases them, and
// the builder's hazard tracking orders each kernel's loads after the stores of the kernel that produced
// them (through the HBM scratch tensors), while letting independent work overlap.
#include "tcemu/kb/transformer.h"

#include <fmt/format.h>

#include "tcemu/error.h"
#include "tcemu/kb/attention.h"
#include "tcemu/kb/linear.h"
#include "tcemu/kb/norm.h"
#include "tcemu/kb/transpose.h"

namespace tcemu::kb {

void transformer_block(Kernel& k, const Dram& x, const Dram& y, const ref::BlockShape& s, const ref::BlockParams& p) {
  const int64_t S = s.seq, D = s.d_model, F = s.d_ff;
  if (S < 1 || D < 1 || F < 1 || s.heads < 1 || D % s.heads != 0)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("transformer block: S={} D={} H={} F={}: sizes must be positive, D divisible by H", S, D,
                            s.heads, F));
  using model::DType;
  auto vec = [&](const char* name, const std::vector<float>& v) {
    return k.constant(name, DType::kF32, {int64_t(v.size())}, v);
  };
  auto mat = [&](const char* name, int64_t in, int64_t out, const std::vector<float>& v) {
    return k.constant(name, DType::kBf16, {in, out}, v);
  };
  const Dram ln1_g = vec("ln1_g", p.ln1_g), ln1_b = vec("ln1_b", p.ln1_b);
  // The three projections as one linear layer: wqkv [D, 3D] = [Wq | Wk | Wv], bqkv = [bq, bk, bv].
  std::vector<float> wqkv(size_t(3 * D * D)), bqkv;
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = 0; j < D; ++j) {
      const size_t at = size_t(i * D + j), row = size_t(i * 3 * D + j);
      wqkv[row] = p.wq[at], wqkv[row + size_t(D)] = p.wk[at], wqkv[row + 2 * size_t(D)] = p.wv[at];
    }
  for (const auto* b : {&p.bq, &p.bk, &p.bv}) bqkv.insert(bqkv.end(), b->begin(), b->end());
  const Dram w_qkv = mat("wqkv", D, 3 * D, wqkv), b_qkv = vec("bqkv", bqkv);
  const Dram wo = mat("wo", D, D, p.wo), bo = vec("bo", p.bo);
  const Dram ln2_g = vec("ln2_g", p.ln2_g), ln2_b = vec("ln2_b", p.ln2_b);
  const Dram w1 = mat("w1", D, F, p.w1), b1 = vec("b1", p.b1), w2 = mat("w2", F, D, p.w2), b2 = vec("b2", p.b2);
  auto tmp = [&](const char* name, DType t, int64_t r, int64_t c) { return k.scratch(name, t, {r, c}); };
  // Matmul operands are bf16 on the device; intermediates that only feed matmuls are stored as bf16 (a
  // transpose keeps the dtype); the residual stream (x, xT, x1T, x1, yT) stays f32.
  const Dram h1T = tmp("h1T", DType::kBf16, D, S), xT = tmp("xT", DType::kF32, D, S);
  // qkvT [3D, S]: qT, kT and vT are its three row blocks.
  const Dram qkvT = tmp("qkvT", DType::kBf16, 3 * D, S);
  auto rows_of = [&](const char* name, int64_t block) {
    return Dram{name, qkvT.dtype, {D, S}, qkvT.addr + uint64_t(block * D * S) * elem_bytes(qkvT.dtype)};
  };
  const Dram qT = rows_of("qT", 0), kT = rows_of("kT", 1), vT = rows_of("vT", 2);
  const Dram v = tmp("v", DType::kBf16, S, D), oT = tmp("oT", DType::kBf16, D, S), x1T = tmp("x1T", DType::kF32, D, S);
  const Dram x1 = tmp("x1", DType::kF32, S, D), h2T = tmp("h2T", DType::kBf16, D, S);
  const Dram uT = tmp("uT", DType::kBf16, F, S), yT = tmp("yT", DType::kF32, D, S);
  NormOptions no;
  no.eps = s.eps;
  const LinearOptions proj{isa::ActFunc::kIdentity, false};
  NormOptions nt = no;
  nt.transposed_out = true;  // h1T, h2T straight from the norms (rounded to bf16, turned by TensorE)
  layernorm(k, x, ln1_g, ln1_b, h1T, nt);
  transpose(k, x, xT);
  linear(k, h1T, w_qkv, b_qkv, nullptr, qkvT, proj);
  transpose(k, vT, v);
  AttentionOptions ao;
  ao.heads = int(s.heads);
  ao.causal = s.causal;
  attention(k, qT, kT, v, oT, ao);
  linear(k, oT, wo, bo, &xT, x1T, {isa::ActFunc::kIdentity, true});
  transpose(k, x1T, x1);
  layernorm(k, x1, ln2_g, ln2_b, h2T, nt);
  linear(k, h2T, w1, b1, nullptr, uT, {isa::ActFunc::kGeluTanh, false});
  linear(k, uT, w2, b2, &x1T, yT, {isa::ActFunc::kIdentity, true});
  transpose(k, yT, y);
}

model::Model build_transformer_block(const DeviceConfig& cfg, const ref::BlockShape& s, const ref::BlockParams& p) {
  Kernel k(cfg, fmt::format("transformer_block_s{}_d{}_h{}_f{}{}", s.seq, s.d_model, s.heads, s.d_ff,
                            s.causal ? "_causal" : ""));
  const Dram x = k.input("x", model::DType::kF32, {s.seq, s.d_model});
  const Dram y = k.output("y", model::DType::kF32, {s.seq, s.d_model});
  transformer_block(k, x, y, s, p);
  return k.finish();
}

uint64_t transformer_block_macs(const ref::BlockShape& s) {
  const uint64_t S = uint64_t(s.seq), D = uint64_t(s.d_model), F = uint64_t(s.d_ff);
  return 4 * S * D * D + 2 * S * S * D + 2 * S * D * F;
}

}  // namespace tcemu::kb
