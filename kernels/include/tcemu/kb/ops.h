// Instruction helpers for kernel builders: one function per instruction kind, filling the operand fields
// from named arguments (docs/isa.md). They only build isa::Instr values; Program::emit adds the
// synchronisation.
#pragma once

#include <bit>
#include <cstdint>

#include "tcemu/isa.h"

namespace tcemu::kb::ops {

// A dma_copy of `d1` runs of `bytes` bytes (strides s1 / t1 on the source / destination side), repeated
// `d2` times (strides s2 / t2).
inline isa::Instr dma(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t d1, uint64_t s1, uint64_t t1,
                      uint64_t d2 = 1, uint64_t s2 = 0, uint64_t t2 = 0) {
  isa::Instr in;
  in.opcode = isa::Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes;
  in.d1_count = d1, in.src_d1_stride = s1, in.dst_d1_stride = t1;
  in.d2_count = d2, in.src_d2_stride = s2, in.dst_d2_stride = t2;
  return in;
}

// A dense 2-D tensor operand: partitions from `part`, `off` bytes into each, contiguous elements.
inline uint64_t tile(isa::Space space, isa::DType dtype, uint32_t part, uint32_t off) {
  return isa::pack_operand({space, dtype, part, off, 1, 0});
}

// out = in0 OP in1 over np partitions x n elements.
inline isa::Instr tensor_tensor(isa::AluOp op, uint64_t np, uint64_t n, uint64_t out, uint64_t in0, uint64_t in1) {
  isa::Instr in;
  in.opcode = isa::Opcode::TensorTensor;
  in.op = uint64_t(op);
  in.np = np, in.n0 = n, in.n1 = 1;
  in.out = out, in.in0 = in0, in.in1 = in1;
  return in;
}

// out = f(in0 * scale + bias[p]) over np partitions x n elements; `bias_col` 0 for no bias.
inline isa::Instr activation(isa::ActFunc f, uint64_t np, uint64_t n, uint64_t out, uint64_t in0, float scale,
                             uint64_t bias_col = 0, bool bias = false) {
  isa::Instr in;
  in.opcode = isa::Opcode::Activation;
  in.func = uint64_t(f);
  in.np = np, in.n0 = n, in.n1 = 1;
  in.out = out, in.in0 = in0;
  in.scale_imm = std::bit_cast<uint32_t>(scale);
  in.bias_en = bias ? 1 : 0;
  in.bias_col = bias_col;
  return in;
}

}  // namespace tcemu::kb::ops
