// GEMM kernel: C[M x N] (f32) = A[M x K] (bf16) x B[K x N] (bf16), tiled to the device's array.
//
// Inputs "a" [M, K] and "b" [K, N], output "c" [M, N]. The K dimension is split into chunks of the
// array's rows; each chunk is one matmul, accumulated in PSUM in chunk order (num::golden_gemm with
// k_chunk = rows computes the identical bits).
#pragma once

#include "tcemu/config.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct GemmPlan {
  int m_tile = 0, n_tile = 0, k_tile = 0;  // tile sizes (last tiles may be smaller)
  int m_tiles = 0, n_tiles = 0, k_tiles = 0;
  int k_group = 0;   // k-tiles held in SBUF at once; == k_tiles when whole-K panels fit
  int k_groups = 0;  // ceil(k_tiles / k_group)
};

// Throws Error(kInvalidArgument) for non-positive sizes or a config with fewer than 4 DMA queues,
// Error(kCapacity) naming the sizes if not even one k-tile of one column fits the config's SBUF.
GemmPlan plan_gemm(const DeviceConfig& cfg, int M, int N, int K);
model::Model build_gemm(const DeviceConfig& cfg, int M, int N, int K);

}  // namespace tcemu::kb
