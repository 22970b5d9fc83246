// Transpose: y[C, R] = x[R, C]^T, moving every element unchanged, by one of two routes:
//
//  - TensorE (bf16): x is loaded in 128 x 128 blocks as stored, each block goes through the array with
//    pe_transpose into PSUM (fp32), VectorE / ScalarE copy a PSUM tile back to SBUF as bf16 and it is stored
//    as rows of y. Exact for finite bf16 values except that -0 and subnormals become +0, and an infinity or
//    NaN in x[r][c] makes y[c][r'] NaN for the other rows r' of its 128 x 128 block (docs/numerics.md,
//    "pe_transpose"): the array multiplies by an identity.
//  - VectorE (f32 or bf16): bit-exact for every value (NaN payloads, -0, subnormals, infinities), as
//    VectorE's `transpose` moves bits. The load DMA places each 32 x 32 block of x in the partition quadrant
//    and free position of its transposed place (runs of 32 elements), VectorE transposes every 32 x 32 block
//    in place, and the tile is stored as rows of y.
//
// kAuto takes TensorE for bf16 and VectorE for f32. docs/kernels.md, "Transpose", has the schedules and
// measured cycles (the VectorE route is also the faster one for bf16 on trn1: pe_transpose streams only 128
// columns per block, so the array refills its pipeline every block).
#pragma once

#include "tcemu/config.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

enum class TransposeRoute { kAuto, kTensorE, kVectorE };

struct TransposeOptions {
  TransposeRoute route = TransposeRoute::kAuto;
  int bufs = 0;  // tile buffers; 0: as many as fit next to the live tiles, at most 4
};

// Emits y = x^T into `k`. x [R, C] and y [C, R] must have the same dtype (f32 or bf16; TensorE: bf16).
// Throws Error(kInvalidArgument) otherwise, Error(kCapacity) naming the tile when not even the smallest
// tile fits next to the live tiles.
void transpose(Kernel& k, const Dram& x, const Dram& y, const TransposeOptions& o = {});

// A model with input "x" [R, C] and output "y" [C, R], both of `dtype`.
model::Model build_transpose(const DeviceConfig& cfg, int64_t R, int64_t C, model::DType dtype = model::DType::kBf16,
                             const TransposeOptions& o = {});

}  // namespace tcemu::kb
