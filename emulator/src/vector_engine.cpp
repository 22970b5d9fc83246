// VectorE: the executor the in-order sequencer (run_sequencer) calls for each vector instruction
// (docs/isa.md, "VectorE"). Every operand is checked before time passes or memory changes; the
// instruction then takes its documented cycles and its results land in memory at completion. All inputs
// are read before any output is written, so operands may overlap.
#include <algorithm>
#include <vector>

#include "compute.h"
#include "tc1.h"

namespace tcemu::emu {

namespace {

using compute::Shape;
using compute::View;
using isa::AluOp;

// Element (p, i1, i0) of the iteration space, flattened: the order results are produced and written.
template <typename F>
void for_each(const Shape& s, F&& f) {
  for (uint64_t p = 0; p < s.np; ++p)
    for (uint64_t i1 = 0; i1 < s.n1; ++i1)
      for (uint64_t i0 = 0; i0 < s.n0; ++i0) f(p, i1, i0);
}

}  // namespace

bool Tc1::vector_exec(uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats) {
  const int engine = isa::kEngineVector;
  const compute::Memories mem{cfg_, sbuf_.row(0), psum_.row(0), sbuf_.pitch(), psum_.pitch()};
  compute::Checker ck(mem);
  const Shape shape{in.np, in.n0, in.n1};
  ck.shape(shape);
  // Per opcode: the checked operands, the tensor inputs read per element (timing), and the results
  // (bits in the out dtype, in for_each order over `out_shape`).
  View out, a, b, c, col0, col1;
  Shape out_shape = shape;
  uint64_t inputs = 1, bytes = 0;  // bytes: every operand element read or written, for the trace
  auto tensor = [&](uint64_t word, const Shape& s) {
    View v = ck.tensor(word, s);
    bytes += s.np * s.free() * v.bytes;
    return v;
  };
  auto column = [&](uint64_t word) {
    View v = ck.column(word, shape.np);
    bytes += shape.np * v.bytes;
    return v;
  };
  switch (in.opcode) {
    case Opcode::TensorTensor:
      ck.require(compute::alu_op_valid(in.op) && in.op != uint64_t(AluOp::kBypass), FaultCode::BadOperand);
      out = tensor(in.out, shape), a = tensor(in.in0, shape), b = tensor(in.in1, shape);
      inputs = 2;
      break;
    case Opcode::TensorScalar:
      ck.require(compute::alu_op_valid(in.op0) && compute::alu_op_valid(in.op1), FaultCode::BadOperand);
      out = tensor(in.out, shape), a = tensor(in.in0, shape);
      if (in.col0_en) col0 = column(in.col0);
      if (in.col1_en) col1 = column(in.col1);
      break;
    case Opcode::TensorReduce: {
      const bool op_ok =
          in.op == uint64_t(AluOp::kAdd) || in.op == uint64_t(AluOp::kMax) || in.op == uint64_t(AluOp::kMin);
      ck.require(op_ok && in.axes != 0, FaultCode::BadOperand);
      out_shape = {shape.np, (in.axes & 1) ? 1 : shape.n0, (in.axes & 2) ? 1 : shape.n1};
      out = tensor(in.out, out_shape), a = tensor(in.in0, shape);
      break;
    }
    case Opcode::TensorCopy: out = tensor(in.out, shape), a = tensor(in.in0, shape); break;
    case Opcode::Memset:
    case Opcode::Iota: out = tensor(in.out, shape); break;
    case Opcode::Select:
      out = tensor(in.out, shape), a = tensor(in.in0, shape), b = tensor(in.in1, shape);
      c = tensor(in.in2, shape);
      inputs = 3;
      break;
    case Opcode::Transpose: {
      // Square blocks of B = min(np, quadrant) partitions x B elements; np a multiple of B, so every
      // partition group is a whole block row.
      const uint64_t q = uint64_t(cfg_.partition_quadrant), blk = std::min(shape.np, q);
      ck.require(blk != 0 && shape.np % blk == 0 && shape.free() % blk == 0, FaultCode::BadOperand);
      out = tensor(in.out, shape), a = tensor(in.in0, shape);
      break;
    }
    default:
      ck.require(false, FaultCode::WrongEngine);  // fetch() already refuses these
      break;
  }
  if (!ck.ok()) {
    raise_fault(ck.code(), engine, pc, ck.addr(), uint32_t(in.opcode));
    return false;
  }
  const uint64_t n = shape.free();
  stats.bytes = bytes;
  const uint64_t cycles = cfg_.vector_start_cycles + std::max<uint64_t>(cfg_.vector_min_cycles, n * inputs);
  if (!wait_cycles(cycles, token)) return false;
  if (!poison_.empty() && !ecc_check(isa::kEngineVector, pc, in)) return false;  // injected bit flips (fault_injection.cpp)
  // Operands may be in PSUM: TensorE's held result columns first (tc1.h, PsumBlock). Results may go to SBUF:
  // TensorE's moving columns read ahead become stale (sbuf_gen_).
  psum_flush();
  ++sbuf_gen_;

  std::vector<uint32_t> res;
  res.reserve(out_shape.np * out_shape.free());
  const isa::DType od = out.dtype;
  switch (in.opcode) {
    case Opcode::TensorTensor:
      for_each(shape, [&](uint64_t p, uint64_t i1, uint64_t i0) {
        res.push_back(
            compute::encode(compute::alu(AluOp(in.op), compute::load(a, p, i1, i0), compute::load(b, p, i1, i0)), od));
      });
      break;
    case Opcode::TensorScalar: {
      std::vector<float> s0(shape.np, compute::finish(compute::f32(in.imm0))),
          s1(shape.np, compute::finish(compute::f32(in.imm1)));
      for (uint64_t p = 0; p < shape.np; ++p) {
        if (in.col0_en) s0[p] = compute::load(col0, p, 0, 0);
        if (in.col1_en) s1[p] = compute::load(col1, p, 0, 0);
      }
      for_each(shape, [&](uint64_t p, uint64_t i1, uint64_t i0) {
        const float x = compute::load(a, p, i1, i0);
        const float y = in.rev0 ? compute::alu(AluOp(in.op0), s0[p], x) : compute::alu(AluOp(in.op0), x, s0[p]);
        const float z = in.rev1 ? compute::alu(AluOp(in.op1), s1[p], y) : compute::alu(AluOp(in.op1), y, s1[p]);
        res.push_back(compute::encode(z, od));
      });
      break;
    }
    case Opcode::TensorReduce:
      // Each output element folds its input elements in iteration order (i1 outer, i0 inner), starting
      // from the first: acc = x_first; acc = acc OP x for the rest.
      for_each(out_shape, [&](uint64_t p, uint64_t o1, uint64_t o0) {
        const uint64_t i1_end = (in.axes & 2) ? shape.n1 : o1 + 1, i0_end = (in.axes & 1) ? shape.n0 : o0 + 1;
        bool first = true;
        float acc = 0;
        for (uint64_t i1 = (in.axes & 2) ? 0 : o1; i1 < i1_end; ++i1)
          for (uint64_t i0 = (in.axes & 1) ? 0 : o0; i0 < i0_end; ++i0) {
            const float x = compute::load(a, p, i1, i0);
            acc = first ? compute::finish(x) : compute::alu(AluOp(in.op), acc, x);
            first = false;
          }
        res.push_back(compute::encode(acc, od));
      });
      break;
    case Opcode::TensorCopy:
      for_each(shape, [&](uint64_t p, uint64_t i1, uint64_t i0) { res.push_back(compute::convert(a, p, i1, i0, od)); });
      break;
    case Opcode::Memset: {
      const uint32_t bits = od == isa::DType::kBf16 ? num::f32_to_bf16(compute::f32(in.value)) : uint32_t(in.value);
      res.assign(shape.np * n, bits);
      break;
    }
    case Opcode::Iota:
      for_each(shape, [&](uint64_t p, uint64_t i1, uint64_t i0) {
        const int64_t v = int64_t(int32_t(in.base)) + int64_t(p) * int32_t(in.pstep) +
                          int64_t(i1 * shape.n0 + i0) * int32_t(in.fstep);
        res.push_back(compute::encode_int(v, od));
      });
      break;
    case Opcode::Select:
      for_each(shape, [&](uint64_t p, uint64_t i1, uint64_t i0) {
        const bool pred = compute::load(a, p, i1, i0) != 0.0f;  // NaN counts as non-zero
        res.push_back(pred ? compute::convert(b, p, i1, i0, od) : compute::convert(c, p, i1, i0, od));
      });
      break;
    case Opcode::Transpose: {
      // out[g*B + r][k*B + j] = in[g*B + j][k*B + r], free indices flattened over (i1, i0).
      const uint64_t blk = std::min(shape.np, uint64_t(cfg_.partition_quadrant));
      for_each(shape, [&](uint64_t p, uint64_t i1, uint64_t i0) {
        const uint64_t f = i1 * shape.n0 + i0;
        const uint64_t src_p = p / blk * blk + f % blk, src_f = f / blk * blk + p % blk;
        res.push_back(compute::convert(a, src_p, src_f / shape.n0, src_f % shape.n0, od));
      });
      break;
    }
    default: break;
  }
  size_t k = 0;
  for_each(out_shape, [&](uint64_t p, uint64_t i1, uint64_t i0) { compute::put(out, p, i1, i0, res[k++]); });
  return true;
}

}  // namespace tcemu::emu
