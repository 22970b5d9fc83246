// ScalarE: activation out = f(in * scale + bias) for every function against the tests' own fp64
// reference, exact where the spec is exact (identity, relu, reciprocal, square; the multiply and the add)
// and within the documented tolerance (docs/numerics.md) where f follows the host's libm in fp32; the
// accumulate-reduce; faults; the cycle formula. One device per process (each TEST runs in its own process).
#include <gtest/gtest.h>

#include <cstdio>

#include "compute_rig.h"
#include "tcemu/reference.h"

namespace tcemu::test {
namespace {

using isa::ActFunc;
constexpr int kAct = isa::kEngineScalar;

// The documented tolerance (docs/numerics.md): |out - ref| <= ulps * 2^-23 * |ref| + max(abs, 2^-126)
// (2^-126: results below it flush to zero); ulps = 0: bit-exact. NaN must be the canonical NaN, and
// a result beyond the fp32 range the infinity. The gelus' absolute term covers their far negative tail, where the fp32
// rounding of the argument is amplified (e.g. gelu_tanh(-8) ~ -1e-20 is only good to ~60 ulp).
struct Tolerance {
  ActFunc f;
  double ulps, abs;
  float lo, hi;  // input range before scale and bias
};
// clang-format off
const Tolerance kTolerances[] = {
    {ActFunc::kIdentity, 0, 0, -8, 8},       {ActFunc::kRelu, 0, 0, -8, 8},        {ActFunc::kGeluTanh, 8, 0x1p-24, -8, 8},
    {ActFunc::kGeluErf, 8, 0x1p-24, -8, 8},  {ActFunc::kSigmoid, 4, 0, -20, 20},   {ActFunc::kTanh, 4, 0, -6, 6},
    {ActFunc::kExp, 4, 0, -60, 60},          {ActFunc::kSilu, 4, 0, -20, 20},      {ActFunc::kSoftplus, 4, 0, -20, 40},
    {ActFunc::kRsqrt, 2, 0, 0, 1000},        {ActFunc::kReciprocal, 0, 0, -50, 50}, {ActFunc::kSquare, 0, 0, -1e4, 1e4},
    {ActFunc::kLog, 4, 0, 0, 100},
};
// clang-format on

// Checks one output element; returns its error as a fraction of the tolerance (0 if exact).
double check_element(const Tolerance& t, double ref, uint32_t got_bits, DType od, const std::string& where) {
  if (t.ulps == 0 || std::isnan(ref) || std::isinf(float(ref))) {  // exact, NaN, beyond the fp32 range
    const uint32_t want = ref_out(ref, od);
    EXPECT_EQ(got_bits, want) << where << ": ref " << ref << std::hex << " expected 0x" << want << " got 0x"
                              << got_bits;
    return 0;
  }
  const double got = in_value(got_bits, od), err = std::fabs(got - ref);
  const double allowed = t.ulps * 0x1p-23 * std::fabs(ref) + std::max(t.abs, 0x1p-126);
  EXPECT_LE(err, allowed) << where << ": ref " << ref << " got " << got;
  return err / allowed;
}

TEST(ScalarActivation, EveryFunctionAgainstFp64WithPerPartitionScaleAndBias) {
  Rig rig(find_config("tc1-16"), 21);
  const Shape s{12, 40, 2};
  const TensorOperand scale = sb(DType::kF32, 3, 30000), bias = sb(DType::kBf16, 4, 30100);
  rig.fill(scale, {s.np, 1, 1}, 0.5f, 1.5f, 0), rig.fill(bias, {s.np, 1, 1}, 0, 0.25f, 0);
  std::vector<Instr> prog;
  std::vector<std::pair<TensorOperand, TensorOperand>> ops;  // in, out
  for (uint32_t k = 0; k < std::size(kTolerances); ++k) {
    const Tolerance& t = kTolerances[k];
    // The shared reference (tcemu/reference.h, used by kernel checks) states the same tolerances.
    EXPECT_EQ(ref::activation_tolerance(t.f).ulps, t.ulps) << isa::act_func_name(uint64_t(t.f));
    EXPECT_EQ(ref::activation_tolerance(t.f).abs, t.abs) << isa::act_func_name(uint64_t(t.f));
    const TensorOperand in = sb(DType::kF32, 2, 2048 * k, 1, 40), out = sb(DType::kF32, 0, 1024 + 2048 * k, 2, 80);
    rig.fill(in, s, t.lo, t.hi, 16);
    Instr a = compute(Opcode::Activation, s, out, &in);
    a.func = uint64_t(t.f), a.scale_col_en = 1, a.scale_col = col(scale), a.bias_en = 1, a.bias_col = col(bias);
    prog.push_back(a), ops.push_back({in, out});
  }
  rig.run(kAct, prog);
  for (uint32_t k = 0; k < std::size(kTolerances); ++k) {
    const Tolerance& t = kTolerances[k];
    const auto& [in, out] = ops[k];
    double worst = 0;
    for (uint32_t p = 0; p < s.np; ++p)
      for (uint32_t i1 = 0; i1 < s.n1; ++i1)
        for (uint32_t i0 = 0; i0 < s.n0; ++i0) {
          const double x = in_value(rig.get_before(in, p, i1, i0), DType::kF32);
          const double sc = in_value(rig.get_before(scale, p), scale.dtype),
                       b = in_value(rig.get_before(bias, p), bias.dtype);
          const double u = ref_f32(ref_f32(x * sc) + b);  // two fp32 roundings: no fused multiply-add
          worst = std::max(worst,
                           check_element(t, ref::activation(t.f, u), rig.get(out, p, i1, i0), DType::kF32,
                                         std::string(isa::act_func_name(uint64_t(t.f))) + " u=" + std::to_string(u)));
        }
    std::printf("%-10s worst error %.3f of the tolerance (%g ulp + %g)\n", isa::act_func_name(uint64_t(t.f)), worst,
                t.ulps, t.abs);
  }
}

// Immediate scale, no bias; a bf16 input, outputs in PSUM and in bf16 (rounded once more: half a bf16 ulp).
TEST(ScalarActivation, ImmediateScaleWithoutBiasIntoPsumAndBf16) {
  Rig rig(find_config("tc1-8"), 4);
  const Shape s{6, 30, 3};
  const TensorOperand in = sb(DType::kBf16, 2, 100, 3, 100), to_psum = ps(1, 4096, 1, 30),
                      to_bf16 = sb(DType::kBf16, 0, 8192, 1, 30);
  rig.fill(in, s, -6, 6, 10);
  Instr e = compute(Opcode::Activation, s, to_psum, &in);
  e.func = uint64_t(ActFunc::kExp), e.scale_imm = bits_of(-0.75f);
  Instr g = compute(Opcode::Activation, s, to_bf16, &in);
  g.func = uint64_t(ActFunc::kSigmoid), g.scale_imm = bits_of(1.5f);
  rig.run(kAct, {e, g});
  for (uint32_t p = 0; p < s.np; ++p)
    for (uint32_t i1 = 0; i1 < s.n1; ++i1)
      for (uint32_t i0 = 0; i0 < s.n0; ++i0) {
        const double x = in_value(rig.get_before(in, p, i1, i0), DType::kBf16);
        check_element({ActFunc::kExp, 4, 0, 0, 0}, ref::activation(ActFunc::kExp, ref_f32(x * -0.75)),
                      rig.get(to_psum, p, i1, i0), DType::kF32, "exp");
        // bf16 output: the fp32 result within 4 ulp, then rounded to 8 bits: 2^-8 relative.
        check_element({ActFunc::kSigmoid, 4 + 0x1p15, 0, 0, 0}, ref::activation(ActFunc::kSigmoid, ref_f32(x * 1.5)),
                      rig.get(to_bf16, p, i1, i0), DType::kBf16, "sigmoid bf16");
      }
}

// The accumulate-reduce sums a partition's fp32 outputs in iteration order, each addition rounded: exact
// for identity; for exp within (n + 4) ulp of the fp64 sum of the fp64 references (all terms positive).
TEST(ScalarActivation, AccumulateReduceSumsEachPartitionsOutputs) {
  Rig rig(find_config("tc1-16"), 8);
  const Shape s{10, 25, 4};
  const TensorOperand in = sb(DType::kF32, 6, 0, 2, 50), out = sb(DType::kBf16, 1, 4096, 1, 25);
  const TensorOperand bias = sb(DType::kF32, 0, 8000), acc_id = sb(DType::kF32, 5, 8100), acc_exp = ps(3, 512);
  rig.fill(in, s, -3, 3, 0), rig.fill(bias, {s.np, 1, 1}, -1, 1, 0);
  Instr id = compute(Opcode::Activation, s, out, &in);
  id.func = uint64_t(ActFunc::kIdentity), id.scale_imm = bits_of(0.3f), id.bias_en = 1, id.bias_col = col(bias);
  id.acc_en = 1, id.acc_col = col(acc_id);
  Instr ex = compute(Opcode::Activation, s, sb(DType::kF32, 1, 12000, 1, 25), &in);
  ex.func = uint64_t(ActFunc::kExp), ex.scale_imm = bits_of(1.0f), ex.acc_en = 1, ex.acc_col = col(acc_exp);
  rig.run(kAct, {id, ex});
  for (uint32_t p = 0; p < s.np; ++p) {
    double sum = 0, exp_sum = 0;
    bool first = true;
    for (uint32_t i1 = 0; i1 < s.n1; ++i1)
      for (uint32_t i0 = 0; i0 < s.n0; ++i0) {
        const double x = in_value(rig.get_before(in, p, i1, i0), DType::kF32);
        const double y = ref_f32(ref_f32(x * double(0.3f)) + in_value(rig.get_before(bias, p), DType::kF32));
        sum = first ? y : ref_f32(sum + y);
        first = false;
        exp_sum += std::exp(x);
      }
    EXPECT_EQ(rig.get(acc_id, p), bits_of(float(sum))) << "identity, partition " << p;
    const double got = in_value(rig.get(acc_exp, p), DType::kF32);
    EXPECT_LE(std::fabs(got - exp_sum), (s.n0 * s.n1 + 4) * 0x1p-23 * exp_sum)
        << "exp, partition " << p << " got " << got << " want " << exp_sum;
  }
}

TEST(ScalarFaults, BadOperandsFaultPreciselyAndTheDeviceRecovers) {
  Rig rig(find_config("tc1-16"));
  const Shape s{4, 8, 1};
  const TensorOperand in = sb(DType::kF32, 0, 0), out = sb(DType::kF32, 0, 4096);
  Instr a = compute(Opcode::Activation, s, out, &in);
  a.func = 13;  // undefined function
  rig.run_fault(kAct, {a}, regs::FaultCode::BadOperand, 0);
  a = compute(Opcode::Activation, s, ps(0, 0), &in);
  a.out |= uint64_t(DType::kBf16) << 2;  // PSUM holds f32 only
  rig.run_fault(kAct, {a}, regs::FaultCode::BadDtype, 0);
  a = compute(Opcode::Activation, s, out, &in);
  a.acc_en = 1, a.acc_col = col(sb(DType::kF32, 14, 0));  // partitions 14..17 of 16
  EXPECT_EQ(rig.run_fault(kAct, {a}, regs::FaultCode::BadPartition, 0).addr(),
            isa::make_addr(Space::kSbuf, 14 * rig.sbuf_pitch));
  a = compute(Opcode::Activation, s, out, &in);
  a.bias_en = 1, a.bias_col = col(sb(DType::kF32, 0, uint32_t(rig.sbuf_pitch)));  // one past the partition
  rig.run_fault(kAct, {a}, regs::FaultCode::SbufOutOfRange, 0);
  a = compute(Opcode::Activation, s, out, &in);
  a.scale_col_en = 1, a.scale_col = col(sb(DType::kF32, 0, 0)) | 3;  // space 3
  rig.run_fault(kAct, {a}, regs::FaultCode::BadSpace, 0);
  rig.run_fault(kAct, {compute(Opcode::TensorCopy, s, out, &in)}, regs::FaultCode::WrongEngine, 0);
  // The device runs the next job.
  rig.fill(in, s);
  a = compute(Opcode::Activation, s, out, &in);
  a.func = uint64_t(ActFunc::kSquare), a.scale_imm = bits_of(2.0f);
  rig.run(kAct, {a});
  expect_bits(
      rig, out, s,
      [&](uint32_t p, uint32_t, uint32_t i0) {
        const double u = ref_f32(in_value(rig.get_before(in, p, 0, i0), DType::kF32) * 2);
        return ref_out(u * u, DType::kF32);
      },
      "square after the faults");
}

// start + max(min, N) cycles: 60 + max(64, N) on the tc1 configs.
TEST(ScalarTiming, CyclesFollowTheDocumentedFormula) {
  Rig rig(find_config("tc1-8"));
  ASSERT_EQ(rig.cfg.scalar_start_cycles, 60u);
  ASSERT_EQ(rig.cfg.scalar_min_cycles, 64u);
  const TensorOperand in = sb(DType::kF32, 0, 0, 1, 100), out = sb(DType::kBf16, 0, 8192, 1, 100);
  Instr big = compute(Opcode::Activation, {8, 100, 3}, out, &in),
        small = compute(Opcode::Activation, {8, 20, 1}, out, &in);
  big.func = uint64_t(ActFunc::kGeluTanh), big.acc_en = 1, big.acc_col = col(sb(DType::kF32, 0, 4000));
  small.func = uint64_t(ActFunc::kExp);
  const auto r = rig.run(kAct, {big, small});
  ASSERT_EQ(r.trace.size(), 2u);
  EXPECT_EQ(r.trace[0].end - r.trace[0].start, 60u + 300);
  EXPECT_EQ(r.trace[1].end - r.trace[1].start, 60u + 64);
  EXPECT_EQ(r.trace[0].bytes, 8u * (300 * (4 + 2) + 4));  // input, output and the accumulator column
}

}  // namespace
}  // namespace tcemu::test
