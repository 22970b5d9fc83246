// Row normalisations over the last dimension D, rows on SBUF partitions (one row per partition,
// `sbuf_partitions` rows per tile) and D along the free dimension, so every reduction is one lane's:
//
//   layernorm  y = (x - mean) / sqrt(var + eps) * gamma + beta     (mean and biased variance of the row)
//   rmsnorm    y = x / sqrt(mean(x^2) + eps) * gamma
//
// x is [.., D] (any rank; the rows are all but the last dimension), f32 or bf16; gamma and beta hold D
// elements (f32 or bf16), loaded once and broadcast to every partition by one DMA whose source repeats the
// vector with partition stride 0; y has x's shape, f32 (or bf16: the store rounds). The statistics are
// computed on ScalarE (accumulate-reduce sums, the variance two-pass from the centred values, rsqrt) and
// the gamma/beta products on VectorE. docs/kernels.md, "Layernorm and RMSNorm", has the schedule, the
// tolerance and measured cycles.
#pragma once

#include "tcemu/config.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct NormOptions {
  float eps = 1e-5f;  // added to the variance (mean square) before the rsqrt
  int bufs = 0;       // row-tile buffers; 0: as many as fit next to the live tiles, at most 4
  // y is the transpose, yT [D, R] bf16 (feature-major, ready as a matmul operand): each normalised row tile
  // is rounded to bf16 and turned by TensorE (pe_transpose, 128 x 128 blocks through PSUM; exact for
  // bf16 except that -0 and subnormals become +0), so no separate transpose pass through HBM is needed.
  bool transposed_out = false;
};

// Emit y = layernorm(x) / rmsnorm(x) into `k`. Throw Error(kInvalidArgument) when shapes or dtypes do not
// match (gamma and beta must hold D elements), Error(kCapacity) naming the tile when a row tile does not fit.
void layernorm(Kernel& k, const Dram& x, const Dram& gamma, const Dram& beta, const Dram& y, const NormOptions& o = {});
void rmsnorm(Kernel& k, const Dram& x, const Dram& gamma, const Dram& y, const NormOptions& o = {});

// Models with inputs "x" [R, D] of `x_dtype`, "gamma" [D] and "beta" [D] (layernorm) f32, output "y" [R, D]
// f32.
model::Model build_layernorm(const DeviceConfig& cfg, int64_t R, int64_t D, model::DType x_dtype = model::DType::kF32,
                             const NormOptions& o = {});
model::Model build_rmsnorm(const DeviceConfig& cfg, int64_t R, int64_t D, model::DType x_dtype = model::DType::kF32,
                           const NormOptions& o = {});

}  // namespace tcemu::kb
