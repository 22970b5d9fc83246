// Row softmax, numerically stable: y[r, c] = exp(x[r, c] - max_c' x[r, c']) / sum_c'' exp(x[r, c''] - max).
//
// x is [.., C] (any rank; the rows are all but the last dimension), f32 or bf16; y has x's shape, f32 (or
// bf16: the store rounds). Rows go on SBUF partitions (one row per partition, `sbuf_partitions` rows per
// tile) and C along the free dimension, so every reduction is along the free dimension of one lane:
//
//   VectorE  m   = max_c x                        tensor_reduce max                 (column)
//   ScalarE  -m  = identity(m * -1)               activation on the column
//   ScalarE  e   = exp(x + (-m)), s = sum_c e     activation exp, bias column -m, acc column s
//   VectorE  y   = e / s                          tensor_scalar div by the column s
//
// The division is one correctly rounded operation per element, where a reciprocal and a multiply would be
// two instructions (one on a column) and two roundings. Row tiles rotate through up to four buffers and
// loads run ahead of the compute, split over the DMA queues; docs/kernels.md, "Softmax", has the schedule,
// the tolerance and measured cycles.
#pragma once

#include "tcemu/config.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct SoftmaxOptions {
  int bufs = 0;  // row-tile buffers; 0: as many as fit next to the live tiles, at most 4
};

// Emits y = softmax(x) over the last dimension into `k`. Throws Error(kInvalidArgument) when the shapes or
// dtypes do not match, Error(kCapacity) naming the tile when one row tile does not fit SBUF (C too long).
void softmax(Kernel& k, const Dram& x, const Dram& y, const SoftmaxOptions& o = {});

// A model with input "x" [R, C] of `x_dtype` and output "y" [R, C] f32.
model::Model build_softmax(const DeviceConfig& cfg, int64_t R, int64_t C, model::DType x_dtype = model::DType::kF32,
                           const SoftmaxOptions& o = {});

}  // namespace tcemu::kb
