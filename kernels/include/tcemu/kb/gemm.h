// GEMM kernel: c[M, N] (f32) = a[M, K] x b[K, N], any positive sizes, written with the kernel builder.
//
// Inputs: "b" [K, N] and either "a" [M, K] (row-major; transposed on chip) or, with `a_transposed`, "aT"
// [K, M] — the layout Trainium's matmul takes its stationary operand in (NKI's lhsT), which costs no
// on-chip transposes. Output "c" [M, N]. The compute dtype is bf16 (the tensors may be f32: DMA rounds them
// to bf16 on load) or f32 (6-pass fp32 matmuls). K is split into chunks of the array's rows, accumulated
// in PSUM in chunk order: num::golden_gemm with k_chunk = rows computes the identical bits (bf16).
#pragma once

#include "tcemu/config.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct GemmOptions {
  bool a_transposed = false;                    // "aT" [K, M] instead of "a" [M, K]
  isa::DType compute = isa::DType::kBf16;       // matmul operand type: bf16 or f32
  model::DType in_dtype = model::DType::kBf16;  // dtype of the HBM inputs (build_gemm)
};

// The GEMM schedule with the caller's epilogue: after the matmuls of each output tile (rows m0 .. m0+mw,
// columns n0 .. n0+nw of c), `epilogue(acc, out, m0, mw, n0, nw)` emits what evicts and stores it: `acc`
// is the PSUM view [mw, nw] holding a x b for the tile, `out` an SBUF f32 tile [mw, nw] (a ring entry the
// epilogue may write; its reuse is synchronised by the builder). Tiles come n-tile by n-tile (n-tiles
// of up to a PSUM bank, m-tiles of up to the array's columns).
using Epilogue =
    std::function<void(const Tile& acc, const Tile& out, uint64_t m0, uint64_t mw, uint64_t n0, uint64_t nw)>;
// `before(m0, mw, n0, nw)`, if given, is called before each tile's matmuls (to load what the epilogue
// needs early: DMA queues run in order, so a load emitted in the epilogue waits behind earlier stores).
using TileHook = std::function<void(uint64_t m0, uint64_t mw, uint64_t n0, uint64_t nw)>;
void gemm_tiles(Kernel& k, const Dram& a, const Dram& b, const GemmOptions& o, const Epilogue& epilogue,
                const TileHook& before = {});

// Emits c = a x b into `k` (a is aT [K, M] when o.a_transposed). Throws Error(kInvalidArgument) for
// mismatched shapes, Error(kCapacity) naming the tile when even the smallest schedule does not fit.
void gemm(Kernel& k, const Dram& a, const Dram& b, const Dram& c, const GemmOptions& o = {});

// A model with inputs "a" (or "aT") and "b", output "c".
model::Model build_gemm(const DeviceConfig& cfg, int M, int N, int K, const GemmOptions& o = {});

}  // namespace tcemu::kb
