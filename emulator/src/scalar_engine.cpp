// ScalarE: the executor the in-order sequencer (run_sequencer) calls for each activation instruction
// (docs/isa.md, "ScalarE"). Operands are checked before time passes or memory changes; results land in
// memory at completion, after every input was read.
#include <algorithm>
#include <vector>

#include "compute.h"
#include "tc1.h"

namespace tcemu::emu {

bool Tc1::scalar_exec(uint32_t pc, const Instr& in, uint64_t token, InstrStats& stats) {
  using compute::View;
  const int engine = isa::kEngineScalar;
  const compute::Memories mem{cfg_, sbuf_.row(0), psum_.row(0), sbuf_.pitch(), psum_.pitch()};
  compute::Checker ck(mem);
  const compute::Shape shape{in.np, in.n0, in.n1};
  ck.shape(shape);
  ck.require(in.opcode == Opcode::Activation, FaultCode::WrongEngine);  // fetch() already refuses others
  ck.require(compute::act_func_valid(in.func), FaultCode::BadOperand);
  const View out = ck.tensor(in.out, shape), x = ck.tensor(in.in0, shape);
  View scale, bias, acc;
  if (in.scale_col_en) scale = ck.column(in.scale_col, shape.np);
  if (in.bias_en) bias = ck.column(in.bias_col, shape.np);
  if (in.acc_en) acc = ck.column(in.acc_col, shape.np);
  if (!ck.ok()) {
    raise_fault(ck.code(), engine, pc, ck.addr(), uint32_t(in.opcode));
    return false;
  }
  const uint64_t n = shape.free();
  stats.bytes = shape.np * (n * (out.bytes + x.bytes) + (in.scale_col_en ? scale.bytes : 0) +
                            (in.bias_en ? bias.bytes : 0) + (in.acc_en ? acc.bytes : 0));
  const uint64_t cycles = cfg_.scalar_start_cycles + std::max<uint64_t>(cfg_.scalar_min_cycles, n);
  if (!wait_cycles(cycles, token)) return false;
  if (!poison_.empty() && !ecc_check(isa::kEngineScalar, pc, in)) return false;  // injected bit flips (fault_injection.cpp)
  // Operands may be in PSUM: TensorE's held result columns first (tc1.h, PsumBlock). Results may go to SBUF:
  // TensorE's moving columns read ahead become stale (sbuf_gen_).
  psum_flush();
  ++sbuf_gen_;

  // y = f(x * scale + bias): the multiply and the add are separate fp32 roundings (no fused multiply-add).
  std::vector<uint32_t> res;
  res.reserve(shape.np * n);
  std::vector<uint32_t> sums(shape.np);
  const auto func = isa::ActFunc(in.func);
  for (uint64_t p = 0; p < shape.np; ++p) {
    const float s = in.scale_col_en ? compute::load(scale, p, 0, 0) : compute::finish(compute::f32(in.scale_imm));
    const float b = in.bias_en ? compute::load(bias, p, 0, 0) : 0.0f;
    float sum = 0;
    for (uint64_t i1 = 0; i1 < shape.n1; ++i1)
      for (uint64_t i0 = 0; i0 < shape.n0; ++i0) {
        float u = compute::alu(isa::AluOp::kMul, compute::load(x, p, i1, i0), s);
        if (in.bias_en) u = compute::alu(isa::AluOp::kAdd, u, b);
        const float y = compute::activate(func, u);
        // The accumulate-reduce folds the fp32 results in iteration order, starting from the first.
        sum = (i1 == 0 && i0 == 0) ? y : compute::alu(isa::AluOp::kAdd, sum, y);
        res.push_back(compute::encode(y, out.dtype));
      }
    if (in.acc_en) sums[p] = compute::encode(sum, acc.dtype);
  }
  size_t k = 0;
  for (uint64_t p = 0; p < shape.np; ++p)
    for (uint64_t i1 = 0; i1 < shape.n1; ++i1)
      for (uint64_t i0 = 0; i0 < shape.n0; ++i0) compute::put(out, p, i1, i0, res[k++]);
  if (in.acc_en)
    for (uint64_t p = 0; p < shape.np; ++p) compute::put(acc, p, 0, 0, sums[p]);
  return true;
}

}  // namespace tcemu::emu
