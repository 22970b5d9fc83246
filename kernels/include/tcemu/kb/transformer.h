// A pre-LayerNorm transformer block (attention + MLP with residuals and norms; ref::transformer_block in
// tcemu/ref_block.h defines it) composed from the kernel library into one model:
//
//   layernorm(x) -> h1T (transposed_out) ; transpose(x) -> xT
//   linear(h1T; [Wq|Wk|Wv], [bq,bk,bv]) -> qkvT = [qT; kT; vT] ; transpose(vT) -> v
//   attention(qT, kT, v; H heads, causal) -> oT
//   linear(oT; Wo, bo; + xT) -> x1T ; transpose(x1T) -> x1
//   layernorm(x1) -> h2T (transposed_out)
//   linear(h2T; W1, b1; gelu_tanh) -> uT ; linear(uT; W2, b2; + x1T) -> yT ; transpose(yT) -> y
//
// The norms work token-major (a token's features along one partition), the linear layers and attention
// feature-major (features on partitions, docs/kernels.md), so the block transposes between them; the
// intermediates live in HBM as scratch tensors, and the builder synchronises each kernel with the ones
// that produce its inputs. Input "x" [S, D] f32, output "y" [S, D] f32; the parameters are constants in the
// model file (matrices bf16, vectors f32).
#pragma once

#include <cstdint>

#include "tcemu/config.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"
#include "tcemu/ref_block.h"

namespace tcemu::kb {

// Emits the block into `k`: reads x [S, D], writes y [S, D]; `params` become constant tensors of the model.
void transformer_block(Kernel& k, const Dram& x, const Dram& y, const ref::BlockShape& s, const ref::BlockParams& p);

// A model of the block with its parameters embedded: input "x", output "y".
model::Model build_transformer_block(const DeviceConfig& cfg, const ref::BlockShape& s, const ref::BlockParams& p);

// Multiply-accumulates of the block's matmuls (projections, attention scores and values counting the
// causal mask's skipped half as done, MLP), for utilisation figures.
uint64_t transformer_block_macs(const ref::BlockShape& s);

}  // namespace tcemu::kb
