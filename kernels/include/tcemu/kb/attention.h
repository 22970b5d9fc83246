// Scaled dot-product attention, multi-head, optional causal mask, written with the kernel builder.
//
// Layouts (feature-major, so it composes with kb::build_linear, whose output is yT[features, tokens]):
//   qT [H*dh, Sq], kT [H*dh, Sk]   feature-major: head h is rows h*dh .. h*dh+dh-1
//   v  [Sk, H*dh]                  token-major:   head h is columns h*dh .. h*dh+dh-1
//   oT [H*dh, Sq] (f32)            feature-major, oT[h*dh + e][i] = sum_j softmax_j(scale q_i.k_j) v[j][h*dh + e]
// The inputs may be f32 or bf16 (DMA rounds f32 to bf16 on load); scale defaults to 1/sqrt(dh); causal:
// query i attends keys 0..i (needs Sq == Sk). docs/kernels.md, "Attention", has the schedule, the
// tolerance and measured figures; kernels/src/attention.cpp the reasons for the schedule.
#pragma once

#include <optional>

#include "tcemu/config.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

// How the normalised probabilities P [queries x keys] become P^T [keys x queries] for the PV matmul.
enum class AttentionTranspose {
  kVectorDma,  // VectorE transposes 32 x 32 blocks in place, SBUF->SBUF DMAs move the blocks (default)
  kTensor,     // TensorE pe_transpose per 128 x 128 block through PSUM, VectorE copies PSUM -> SBUF
};

struct AttentionOptions {
  int heads = 1;
  bool causal = false;
  std::optional<float> scale;  // default 1/sqrt(dh), rounded to fp32
  AttentionTranspose transpose = AttentionTranspose::kVectorDma;
  model::DType in_dtype = model::DType::kBf16;  // dtype of qT, kT, v in HBM (build_attention)
};

// Emits attention into `k` (tiles are released at the end). Sq, Sk, dh come from the tensors' shapes.
// Throws Error(kInvalidArgument) for inconsistent shapes (or causal with Sq != Sk), Error(kCapacity) naming
// the tile when even the smallest schedule does not fit SBUF/PSUM.
void attention(Kernel& k, const Dram& qT, const Dram& kT, const Dram& v, const Dram& oT,
               const AttentionOptions& o = {});

// Self-attention model over `seq` tokens: inputs "qT", "kT" [heads*head_dim, seq] and "v" [seq,
// heads*head_dim] of o.in_dtype, output "oT" [heads*head_dim, seq] f32.
model::Model build_attention(const DeviceConfig& cfg, int seq, int head_dim, const AttentionOptions& o = {});

}  // namespace tcemu::kb
