// Linear layer, feature-major: yT[N x M] (f32) = f(W[K x N]^T xT[K x M] + b[N]) (+ rT[N x M]).
//
// Activations are kept feature-major (features on partitions, tokens along the free dimension), as on
// Trainium: the contraction dimension K of xT and W lands on the array's rows with plain row loads, the
// output features land on PSUM partitions, so the bias is a per-partition column of ScalarE's
// activation, and the residual and output tiles are plain row copies. Tensors: "xT" [K, M] bf16, "w"
// [K, N] bf16, "b" [N] f32, "rT" [N, M] f32 (with a residual), output "yT" [N, M] f32.
//
// It is the GEMM schedule (kb::gemm_tiles with W as the stationary aT and xT as the moving b) with its
// own epilogue per output tile: ScalarE applies bias + f from PSUM into SBUF, VectorE adds the residual
// in place, DMA stores the tile — in two halves, so the engines overlap within a tile too.
#pragma once

#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct LinearOptions {
  isa::ActFunc act = isa::ActFunc::kGeluTanh;
  bool residual = true;
};

// Emits the layer into `k`: xT [K, M], w [K, N], b [N], rT [N, M] (ignored without a residual), yT [N, M]
// (any dtypes: loads convert to bf16 operands and f32 bias/residual; the store converts to yT's dtype).
void linear(Kernel& k, const Dram& xT, const Dram& w, const Dram& b, const Dram* rT, const Dram& yT,
            const LinearOptions& opts = {});

// Throws Error(kInvalidArgument) for non-positive sizes, Error(kCapacity) naming the tile that does not
// fit the config's SBUF.
model::Model build_linear(const DeviceConfig& cfg, int M, int N, int K, const LinearOptions& opts = {});

}  // namespace tcemu::kb
