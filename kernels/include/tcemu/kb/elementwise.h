// Elementwise kernels: y = f(x) for any ScalarE function f (isa::ActFunc, on ScalarE) and y = a OP b for the
// VectorE ALU operations (add, sub, mul, div, max, min and the comparisons; on VectorE), for tensors of any
// shape. Inputs f32 or bf16 (a and b may differ), output f32 (or bf16: the store rounds).
//
// The operation does not care where an element sits, so the tensors are handled as flat arrays (they are
// contiguous in HBM): each chunk puts F consecutive elements on each of the 128 partitions, one contiguous
// DMA run per partition, whatever the logical shape (a [4096, 3] tensor uses all partitions, not 3 lanes).
// docs/kernels.md, "Elementwise", has the schedule, the tolerance and measured cycles.
#pragma once

#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct UnaryOptions {
  isa::ActFunc func = isa::ActFunc::kIdentity;
  int bufs = 0;  // chunk buffers; 0: as many as fit next to the live tiles, at most 4
};

struct BinaryOptions {
  isa::AluOp op = isa::AluOp::kAdd;  // any tensor_tensor operation (not bypass)
  int bufs = 0;
};

// Emit y = f(x) / y = a OP b into `k`. x, a, b and y must have the same number of elements (their shapes
// may differ: the data is flat). Throw Error(kInvalidArgument) otherwise or for a bad function / op,
// Error(kCapacity) naming the tile when not even a small chunk fits next to the live tiles.
void elementwise_unary(Kernel& k, const Dram& x, const Dram& y, const UnaryOptions& o = {});
void elementwise_binary(Kernel& k, const Dram& a, const Dram& b, const Dram& y, const BinaryOptions& o = {});

// Models with inputs "x" (unary) or "a" and "b" (binary) [R, C] of the given dtypes, output "y" [R, C] f32.
model::Model build_elementwise_unary(const DeviceConfig& cfg, int64_t R, int64_t C,
                                     model::DType x_dtype = model::DType::kF32, const UnaryOptions& o = {});
model::Model build_elementwise_binary(const DeviceConfig& cfg, int64_t R, int64_t C,
                                      model::DType a_dtype = model::DType::kF32,
                                      model::DType b_dtype = model::DType::kF32, const BinaryOptions& o = {});

}  // namespace tcemu::kb
