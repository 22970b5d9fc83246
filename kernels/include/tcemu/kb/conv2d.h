// 2-D convolution, NCHW, with stride and zero padding, as an implicit GEMM on TensorE:
//
//   y[N, F, OH, OW] (f32) = act(conv(x[N, C, H, W], w[F, C, KH, KW]) + bias[F])
//   OH = (H + 2 pad_h - KH) / stride_h + 1,  OW = (W + 2 pad_w - KW) / stride_w + 1
//
// (cross-correlation, as in deep-learning frameworks; ref::conv2d is the fp64 definition). x and w may be
// f32 or bf16 in HBM: DMA rounds them to bf16 on load (the matmul operand type); the bias is f32 (a bf16
// bias is widened exactly); accumulation is fp32 in PSUM. docs/kernels.md, "conv2d", has the schedule, the
// tolerance and measured figures; the top of kernels/src/conv2d.cpp explains the layout.
#pragma once

#include <cstdint>
#include <optional>

#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/kb/builder.h"
#include "tcemu/model.h"

namespace tcemu::kb {

struct Conv2dOptions {
  int stride_h = 1, stride_w = 1;  // >= 1
  int pad_h = 0, pad_w = 0;        // >= 0 (zero padding)
  // Applied by the PSUM eviction after the bias: identity (the plain convolution) or relu (both exact, so the
  // tolerance of docs/kernels.md holds; other functions are refused).
  isa::ActFunc act = isa::ActFunc::kIdentity;
  // Stack several kernel taps on the array's rows when C is small (C <= rows / 2): one matmul then
  // contracts over (tap, channel) pairs. false: one tap per matmul (for comparison).
  bool pack_taps = true;
};

// The schedule conv2d chose (for tests, docs and the bench).
struct Conv2dPlan {
  int64_t oh = 0, ow = 0;
  int taps_per_matmul = 1;   // g: taps stacked on the partitions (1 unless packing)
  int matmuls_per_tile = 0;  // per pixel tile and F tile (c-tiles x tap groups)
  int max_k = 0;             // most partitions (array rows) one matmul contracts over
  int x_regions = 0;         // X copies per band and channel group (packing: distinct tap-offset patterns)
  int64_t band_rows = 0;     // output rows per band (a band of rows of one image) ...
  int64_t band_images = 0;   // ... or whole images per band
  int64_t tile_cols = 0;     // moving columns of the widest pixel tile (<= one PSUM bank)
  int64_t pixel_tiles = 0;   // per F tile, whole job
};

// Emits y = conv2d(x, w) (+ bias) into `k`. x: [N, C, H, W] f32/bf16, w: [F, C, KH, KW] f32/bf16, bias:
// [F] f32/bf16 or none, y: [N, F, OH, OW] f32. Tiles live in a Kernel::Scope (released on return). Throws
// Error(kInvalidArgument) for inconsistent shapes or options, Error(kCapacity) naming the tile when even the
// smallest band (one pixel tile of output rows) does not fit the SBUF next to the resident weights.
Conv2dPlan conv2d(Kernel& k, const Dram& x, const Dram& w, const std::optional<Dram>& bias, const Dram& y,
                  const Conv2dOptions& o = {});

struct Conv2dShape {
  int64_t n = 1, c = 1, h = 1, w = 1;  // input
  int64_t f = 1, kh = 1, kw = 1;       // filters
};
struct Conv2dTensors {  // build_conv2d's HBM tensors
  model::DType x_dtype = model::DType::kF32, w_dtype = model::DType::kF32;
  bool bias = true;
};

// A model with inputs "x" [N, C, H, W], "w" [F, C, KH, KW], "bias" [F] (f32, when t.bias) and output "y"
// [N, F, OH, OW] (f32). `plan`, when given, receives the schedule.
model::Model build_conv2d(const DeviceConfig& cfg, const Conv2dShape& s, const Conv2dOptions& o = {},
                          const Conv2dTensors& t = {}, Conv2dPlan* plan = nullptr);

}  // namespace tcemu::kb
