// Linear layer, feature-major: yT[N x M] (f32) = f(W[K x N]^T xT[K x M] + b[N]) (+ rT[N x M]).
//
// Activations are kept feature-major (features on partitions, tokens along the free dimension), as on
// Trainium: the contraction dimension K of xT and W lands on the array's rows with plain row loads, the
// output features land on PSUM partitions, so the bias is a per-partition column of ScalarE's
// activation, and the residual and output tiles are plain row copies. Tensors: "xT" [K, M] bf16, "w"
// [K, N] bf16, "b" [N] f32, "rT" [N, M] f32 (with a residual), output "yT" [N, M] f32.
//
// Engines per (m-tile, n-tile): DMA loads xT k-tiles and the residual tile; TensorE accumulates the
// k-tiles in a PSUM bank; ScalarE applies bias + f from PSUM into SBUF; VectorE adds the residual in
// place; a DMA queue stores the tile. Every buffer is double-buffered, so the four engines overlap.
#pragma once

#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct LinearOptions {
  isa::ActFunc act = isa::ActFunc::kGeluTanh;
  bool residual = true;
};

struct LinearPlan {
  int m_tile = 0, n_tile = 0, k_tile = 0;  // tokens per PSUM bank, features per array column set, array rows
  int m_tiles = 0, n_tiles = 0, k_tiles = 0;
  bool w_resident = false;  // all of W held in SBUF (loaded once) vs a double-buffered panel per n-tile
};

// Throws Error(kInvalidArgument) for non-positive sizes or fewer than 4 DMA queues, Error(kCapacity)
// naming the sizes when not even a one-token tile fits the config's SBUF.
LinearPlan plan_linear(const DeviceConfig& cfg, int M, int N, int K);
model::Model build_linear(const DeviceConfig& cfg, int M, int N, int K, const LinearOptions& opts = {});

}  // namespace tcemu::kb
