// VectorE: every instruction and op against the tests' own fp64 reference (compute_rig.h), bit for bit
// (the vector engine's arithmetic is exactly specified), on shapes with partition offsets and strided
// access patterns; faults with their code, engine and address; the cycle formula; encoding and
// disassembly. One device per process (each TEST runs in its own process).
#include <gtest/gtest.h>

#include <tuple>

#include "compute_rig.h"

namespace tcemu::test {
namespace {

constexpr int kVec = isa::kEngineVector;
const DType kDtypes[] = {DType::kF32, DType::kBf16, DType::kI32};

TEST(VectorTensorTensor, EveryOpMatchesTheFp64ReferenceBitForBit) {
  Rig rig(find_config("tc1-16"));
  const Shape s{12, 20, 3};
  const TensorOperand a = sb(DType::kF32, 2, 64, 1, 40), b = sb(DType::kBf16, 4, 4096, 3, 70);
  rig.fill(a, s), rig.fill(b, s);
  // Pairs for the edges of the policy: results below 2^-126 flush to signed zero, signed zeros in max/min
  // and compares, inf - inf and 0 / 0 give the canonical NaN, NaN compares false.
  const std::pair<float, float> edges[] = {
      {1e-20f, 1e-20f}, {1e-20f, -3e-19f}, {1.5e-38f, -1.4e-38f}, {-1.5e-38f, 1.4e-38f}, {INFINITY, INFINITY},
      {0.0f, -0.0f},    {-0.0f, 0.0f},     {-0.0f, -0.0f},        {NAN, 1.0f},           {1.0f, NAN},
      {3.0f, 3.0f},     {1e30f, 1e-30f},   {-0.0f, 5.0f}};
  for (uint32_t k = 0; k < std::size(edges); ++k) {
    rig.set(a, k % s.np, k / s.np, k % s.n0, bits_of(edges[k].first));
    rig.set(b, k % s.np, k / s.np, k % s.n0, bits_of(edges[k].second) >> 16);
  }
  std::vector<Instr> prog;
  std::vector<TensorOperand> outs;
  // Every op into f32, and again into bf16 or i32.
  for (int k = 0; k < 22; ++k) {
    const TensorOperand o = sb(k < 11 ? DType::kF32 : kDtypes[1 + k % 2], 0, 4608 + 1024 * k, 2, 50);
    Instr in = compute(Opcode::TensorTensor, s, o, &a, &b);
    in.op = uint64_t(1 + k % 11);
    prog.push_back(in), outs.push_back(o);
  }
  rig.run(kVec, prog);
  std::vector<std::pair<TensorOperand, Shape>> written;
  for (int k = 0; k < 22; ++k) {
    const int op = 1 + k % 11;
    const TensorOperand& o = outs[k];
    expect_bits(
        rig, o, s,
        [&](uint32_t p, uint32_t i1, uint32_t i0) {
          const double x = in_value(rig.get_before(a, p, i1, i0), a.dtype),
                       y = in_value(rig.get_before(b, p, i1, i0), b.dtype);
          return ref_out(ref_alu(AluOp(op), x, y), o.dtype);
        },
        std::string(isa::alu_op_name(op)) + " -> " + isa::dtype_name(uint64_t(o.dtype)));
    written.push_back({o, s});
  }
  expect_only_written(rig, written);
}

// i32 inputs convert to fp32; PSUM operands (f32) are read and written like SBUF ones.
TEST(VectorTensorTensor, PsumAndI32Operands) {
  Rig rig(find_config("tc1-8"));
  const Shape s{5, 33, 2};
  const TensorOperand src = sb(DType::kF32, 1, 512, 1, 33), ia = sb(DType::kI32, 3, 2000, 2, 80);
  const TensorOperand pin = ps(2, 2048 + 64, 1, 40), pout = ps(3, 4096, 3, 100);
  rig.fill(src, s), rig.fill(ia, s);
  Instr copy = compute(Opcode::TensorCopy, s, pin, &src);
  Instr sub = compute(Opcode::TensorTensor, s, pout, &pin, &ia);
  sub.op = uint64_t(AluOp::kSub);
  rig.run(kVec, {copy, sub});
  expect_bits(
      rig, pin, s, [&](uint32_t p, uint32_t i1, uint32_t i0) { return rig.get_before(src, p, i1, i0); },
      "copy to psum");
  expect_bits(
      rig, pout, s,
      [&](uint32_t p, uint32_t i1, uint32_t i0) {
        const double x = in_value(rig.get_before(src, p, i1, i0), DType::kF32),
                     y = in_value(rig.get_before(ia, p, i1, i0), DType::kI32);
        return ref_out(x - y, DType::kF32);
      },
      "psum - i32");
}

TEST(VectorTensorScalar, ChainedOpsWithImmediateAndPerPartitionScalars) {
  Rig rig(find_config("tc1-16"), 7);
  const Shape s{13, 24, 2};
  const TensorOperand x = sb(DType::kBf16, 3, 0, 2, 64), c0 = sb(DType::kF32, 1, 20000),
                      c1 = sb(DType::kBf16, 2, 24000);
  rig.fill(x, s), rig.fill(c0, {s.np, 1, 1}, -3, 3, 0), rig.fill(c1, {s.np, 1, 1}, -3, 3, 0);
  struct Case {
    int op0, op1;
    bool rev0, rev1, col0, col1;
    float imm0, imm1;
  };
  std::vector<Case> cases = {
      {int(AluOp::kMul), int(AluOp::kAdd), false, false, false, true, 0.5f, 0},
      {int(AluOp::kSub), int(AluOp::kDiv), true, false, true, false, 0, 3.0f},
      {int(AluOp::kMax), int(AluOp::kMin), false, false, false, false, -1.0f, 1.0f},
      {int(AluOp::kIsGe), int(AluOp::kBypass), false, false, true, false, 0, 123.0f},
      {int(AluOp::kBypass), int(AluOp::kMul), true, true, true, true, 0, 0},
  };
  std::mt19937 rng(3);
  while (cases.size() < 16)  // and random pairs of every op, flags and scalar sources
    cases.push_back({int(rng() % 12), int(rng() % 12), bool(rng() % 2), bool(rng() % 2), bool(rng() % 2),
                     bool(rng() % 2), random_value(rng, -3, 3, 6), random_value(rng, -3, 3, 6)});
  std::vector<Instr> prog;
  std::vector<TensorOperand> outs;
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    const TensorOperand o = sb(kDtypes[k % 3], 0, 2048 + 1024 * uint32_t(k), 1, 24);
    Instr in = compute(Opcode::TensorScalar, s, o, &x);
    in.op0 = uint64_t(c.op0), in.op1 = uint64_t(c.op1), in.rev0 = c.rev0, in.rev1 = c.rev1;
    in.col0_en = c.col0, in.col1_en = c.col1, in.imm0 = bits_of(c.imm0), in.imm1 = bits_of(c.imm1);
    in.col0 = col(c0), in.col1 = col(c1);
    prog.push_back(in), outs.push_back(o);
  }
  rig.run(kVec, prog);
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    expect_bits(
        rig, outs[k], s,
        [&](uint32_t p, uint32_t i1, uint32_t i0) {
          const double v = in_value(rig.get_before(x, p, i1, i0), x.dtype);
          const double s0 = c.col0 ? in_value(rig.get_before(c0, p), c0.dtype) : in_value(bits_of(c.imm0), DType::kF32);
          const double s1 = c.col1 ? in_value(rig.get_before(c1, p), c1.dtype) : in_value(bits_of(c.imm1), DType::kF32);
          const double y = ref_f32(c.rev0 ? ref_alu(AluOp(c.op0), s0, v) : ref_alu(AluOp(c.op0), v, s0));
          const double z = c.rev1 ? ref_alu(AluOp(c.op1), s1, y) : ref_alu(AluOp(c.op1), y, s1);
          return ref_out(z, outs[k].dtype);
        },
        "case " + std::to_string(k) + " " + isa::alu_op_name(c.op0) + "/" + isa::alu_op_name(c.op1));
  }
}

// add folds in iteration order from the first element, each step rounded to fp32.
TEST(VectorTensorReduce, AddMaxMinAlongEachFreeAxis) {
  Rig rig(find_config("tc1-16"), 11);
  const Shape s{10, 16, 5};
  const TensorOperand x = sb(DType::kF32, 5, 128, 1, 17);
  rig.fill(x, s, -100, 100, 25);
  std::vector<Instr> prog;
  struct Out {
    TensorOperand t;
    int op, axes;
  };
  std::vector<Out> outs;
  for (int op : {int(AluOp::kAdd), int(AluOp::kMax), int(AluOp::kMin)})
    for (int axes = 1; axes <= 3; ++axes) {
      const TensorOperand o =
          sb(outs.size() % 2 ? DType::kBf16 : DType::kF32, 1, 8192 + 256 * uint32_t(outs.size()), 1, 1);
      Instr in = compute(Opcode::TensorReduce, s, o, &x);
      in.op = uint64_t(op), in.axes = uint64_t(axes);
      prog.push_back(in), outs.push_back({o, op, axes});
    }
  rig.run(kVec, prog);
  for (const Out& o : outs) {
    const Shape os{s.np, (o.axes & 1) ? 1 : s.n0, (o.axes & 2) ? 1 : s.n1};
    expect_bits(
        rig, o.t, os,
        [&](uint32_t p, uint32_t o1, uint32_t o0) {
          double acc = 0;
          bool first = true;
          for (uint32_t i1 = (o.axes & 2) ? 0 : o1; i1 < ((o.axes & 2) ? s.n1 : o1 + 1); ++i1)
            for (uint32_t i0 = (o.axes & 1) ? 0 : o0; i0 < ((o.axes & 1) ? s.n0 : o0 + 1); ++i0) {
              const double v = in_value(rig.get_before(x, p, i1, i0), x.dtype);
              acc = first ? ref_f32(v) : ref_f32(ref_alu(AluOp(o.op), acc, v));
              first = false;
            }
          return ref_out(acc, o.t.dtype);
        },
        std::string(isa::alu_op_name(o.op)) + " axes " + std::to_string(o.axes));
  }
}

TEST(VectorTensorCopy, CastsBetweenEveryDtypePairRoundingOnce) {
  Rig rig(find_config("tc1-8"), 5);
  const Shape s{6, 16, 2};
  // Values that exercise rounding: bf16 ties (1 + 2^-8 -> 1, 1 + 3 * 2^-8 -> 1 + 2^-6), i32 ties (2.5 ->
  // 2, -3.5 -> -4), saturation, fp32 rounding of large i32, a NaN with payload, a subnormal.
  const float fspecial[] = {1.00390625f, 1.01171875f,           2.5f,   -3.5f, 3e9f,   -3e9f,
                            16777217.0f, float_of(0x7FC12345u), 1e-40f, -0.0f, 255.5f, 65535.996f};
  // 2^24 + 2^16 + 1 rounds to bf16 2^24 + 2^17 directly, but to 2^24 through fp32 (double rounding).
  const int32_t ispecial[] = {16777217, -16777219, 2147483647, -2147483647 - 1, 33554435, 257, -129, 16842753};
  std::vector<Instr> prog;
  struct Pair {
    TensorOperand in, out;
  };
  std::vector<Pair> pairs;
  for (DType src : kDtypes)
    for (DType dst : kDtypes) {
      const uint32_t k = uint32_t(pairs.size());
      const TensorOperand in = sb(src, 1, 512 * k, 3, 50), out = sb(dst, 2, 8192 + 256 * k, 1, 16);
      rig.fill(in, s);
      for (uint32_t i = 0; i < 12; ++i)
        rig.set(in, i % s.np, i % 2, i,
                src == DType::kI32    ? uint32_t(ispecial[i % std::size(ispecial)])
                : src == DType::kBf16 ? bits_of(fspecial[i]) >> 16
                                      : bits_of(fspecial[i]));
      prog.push_back(compute(Opcode::TensorCopy, s, out, &in));
      pairs.push_back({in, out});
    }
  rig.run(kVec, prog);
  for (const Pair& pr : pairs)
    expect_bits(
        rig, pr.out, s,
        [&](uint32_t p, uint32_t i1, uint32_t i0) {
          return ref_convert(rig.get_before(pr.in, p, i1, i0), pr.in.dtype, pr.out.dtype);
        },
        std::string(isa::dtype_name(uint64_t(pr.in.dtype))) + " -> " + isa::dtype_name(uint64_t(pr.out.dtype)));
}

TEST(VectorMemset, WritesTheValueInEveryDtypeAndNothingBetweenStrides) {
  Rig rig(find_config("tc1-16"));
  const Shape s{7, 10, 4};
  const TensorOperand f = sb(DType::kF32, 9, 100 * 4, 3, 100), b = sb(DType::kBf16, 0, 8000, 2, 31),
                      i = sb(DType::kI32, 4, 12000, 1, 10);
  Instr mf = compute(Opcode::Memset, s, f), mb = compute(Opcode::Memset, s, b), mi = compute(Opcode::Memset, s, i);
  mf.value = 0x7F812345;            // f32 bits are written as given, NaN payload and all
  mb.value = bits_of(1.00390625f);  // a bf16 tie: rounds to even, 1.0
  mi.value = uint32_t(-123456789);
  rig.run(kVec, {mf, mb, mi});
  expect_bits(
      rig, f, s, [](uint32_t, uint32_t, uint32_t) { return 0x7F812345u; }, "f32");
  expect_bits(
      rig, b, s, [](uint32_t, uint32_t, uint32_t) { return 0x3F80u; }, "bf16");
  expect_bits(
      rig, i, s, [](uint32_t, uint32_t, uint32_t) { return uint32_t(-123456789); }, "i32");
  expect_only_written(rig, {{f, s}, {b, s}, {i, s}});
}

TEST(VectorIota, BasePlusPartitionAndFreeIndexSteps) {
  Rig rig(find_config("tc1-16"));
  const Shape s{11, 9, 3};
  struct Case {
    TensorOperand out;
    int32_t base, pstep, fstep;
  };
  const Case cases[] = {
      {sb(DType::kF32, 5, 0, 1, 9), -100, 1000, 3},
      {sb(DType::kF32, 2, 1024, 2, 20), 16777200, 1, 1},         // crosses 2^24: f32 rounds to even
      {sb(DType::kBf16, 0, 4096, 1, 9), 1000, -7, 1},            // bf16 keeps 8 significant bits
      {sb(DType::kBf16, 0, 6144, 1, 9), 16842753, 65536, 1},     // rounded once, not through fp32
      {sb(DType::kI32, 3, 8192, 1, 27), 2147483000, 100, 1000},  // saturates at INT32_MAX
      {sb(DType::kI32, 1, 12288, 3, 0), -2147483647, -1, -1},    // s1 = 0: the last i1 wins; saturates low
  };
  std::vector<Instr> prog;
  for (const Case& c : cases) {
    Instr in = compute(Opcode::Iota, s, c.out);
    in.base = uint32_t(c.base), in.pstep = uint32_t(c.pstep), in.fstep = uint32_t(c.fstep);
    prog.push_back(in);
  }
  rig.run(kVec, prog);
  for (const Case& c : cases) {
    const bool overlap = c.out.s1 == 0;
    expect_bits(
        rig, c.out, {s.np, s.n0, overlap ? 1 : s.n1},
        [&](uint32_t p, uint32_t i1, uint32_t i0) {
          const int64_t f = int64_t(overlap ? s.n1 - 1 : i1) * s.n0 + i0;
          return ref_bits(double(int64_t(c.base) + int64_t(p) * c.pstep + f * c.fstep), c.out.dtype);
        },
        "iota base " + std::to_string(c.base));
  }
}

TEST(VectorSelect, PicksOnTrueOrOnFalsePerElement) {
  Rig rig(find_config("tc1-16"), 9);
  const Shape s{9, 12, 3};
  const TensorOperand pred = sb(DType::kF32, 7, 0, 1, 12), a = sb(DType::kBf16, 1, 4096, 2, 30),
                      b = sb(DType::kI32, 0, 8192, 1, 12);
  rig.fill(pred, s, -1, 1, 3), rig.fill(a, s), rig.fill(b, s);
  for (uint32_t i = 0; i < 6; ++i) rig.set(pred, i, 0, i, bits_of(i % 2 ? 0.0f : -0.0f));  // zeros select in2
  rig.set(pred, 0, 1, 0, bits_of(NAN));                                                    // NaN != 0: in1
  rig.set(pred, 0, 1, 1, bits_of(1e-40f));                                                 // subnormal reads 0: in2
  const TensorOperand o1 = sb(DType::kF32, 2, 16384, 1, 12), o2 = sb(DType::kBf16, 3, 20000, 3, 40);
  rig.run(kVec, {compute(Opcode::Select, s, o1, &pred, &a, &b), compute(Opcode::Select, s, o2, &pred, &b, &a)});
  for (const auto& [o, t, f] : {std::tuple{o1, a, b}, std::tuple{o2, b, a}})
    expect_bits(
        rig, o, s,
        [&](uint32_t p, uint32_t i1, uint32_t i0) {
          const bool take = in_value(rig.get_before(pred, p, i1, i0), DType::kF32) != 0;
          const TensorOperand& src = take ? t : f;
          return ref_convert(rig.get_before(src, p, i1, i0), src.dtype, o.dtype);
        },
        "select");
}

// out[g*B + r][k*B + j] = in[g*B + j][k*B + r] with B = min(np, 32), free indices flattened (i1, i0).
void expect_transposed(Rig& rig, const TensorOperand& in, const TensorOperand& out, Shape s) {
  const uint32_t blk = std::min<uint32_t>(s.np, 32);
  expect_bits(
      rig, out, s,
      [&](uint32_t p, uint32_t i1, uint32_t i0) {
        const uint32_t f = i1 * s.n0 + i0, sp = p / blk * blk + f % blk, sf = f / blk * blk + p % blk;
        return ref_convert(rig.get_before(in, sp, sf / s.n0, sf % s.n0), in.dtype, out.dtype);
      },
      "transpose np " + std::to_string(s.np));
}

TEST(VectorTranspose, SquareBlocksOfThePartitionCount) {
  Rig rig(find_config("tc1-16"));
  const Shape s16{16, 32, 2}, s8{8, 8, 3};
  const TensorOperand in16 = sb(DType::kF32, 0, 0, 1, 32), out16 = sb(DType::kF32, 0, 4096, 1, 32);
  const TensorOperand in8 = sb(DType::kBf16, 8, 8192, 3, 30), out8 = sb(DType::kF32, 2, 12288, 2, 20);
  rig.fill(in16, s16), rig.fill(in8, s8);
  rig.run(kVec, {compute(Opcode::Transpose, s16, out16, &in16), compute(Opcode::Transpose, s8, out8, &in8)});
  expect_transposed(rig, in16, out16, s16);
  expect_transposed(rig, in8, out8, s8);
}

TEST(VectorTranspose, ThirtyTwoByThirtyTwoBlocksOn128Partitions) {
  Rig rig(wide_config());
  const Shape s{64, 32, 2};
  const TensorOperand in = sb(DType::kF32, 64, 0, 1, 32), out = sb(DType::kF32, 0, 1024, 1, 32);
  rig.fill(in, s);
  rig.run(kVec, {compute(Opcode::Transpose, s, out, &in)});
  expect_transposed(rig, in, out, s);
}

// ---- Faults: code, engine, pc, address; a faulting instruction writes nothing; the device recovers ----

uint64_t sbuf_addr(const Rig& rig, uint64_t part, uint64_t off) {
  return isa::make_addr(Space::kSbuf, part * rig.sbuf_pitch + off);
}

TEST(VectorFaults, PartitionRangeAndQuadrantAlignment) {
  Rig rig(wide_config());
  const TensorOperand a = sb(DType::kF32, 0, 0), o = sb(DType::kF32, 0, 512);
  Instr in = compute(Opcode::TensorCopy, {8, 4, 1}, o, &a);
  in.in0 = isa::pack_operand(sb(DType::kF32, 124, 16));  // 124 + 8 > 128 partitions
  EXPECT_EQ(rig.run_fault(kVec, {in}, regs::FaultCode::BadPartition, 0).addr(), sbuf_addr(rig, 124, 16));
  in = compute(Opcode::TensorCopy, {64, 4, 1}, sb(DType::kF32, 16, 0), &a);  // 64 > 32 partitions from 16
  EXPECT_EQ(rig.run_fault(kVec, {in}, regs::FaultCode::BadPartition, 0).addr(), sbuf_addr(rig, 16, 0));
  in = compute(Opcode::TensorCopy, {0, 4, 1}, o, &a);  // no partitions
  rig.run_fault(kVec, {in}, regs::FaultCode::BadPartition, 0);
  // Allowed: 64 partitions from 32, and up to 32 partitions from anywhere, after a good instruction.
  const TensorOperand x = sb(DType::kF32, 32, 0), y = sb(DType::kF32, 96, 64);
  rig.fill(x, {64, 4, 1});
  rig.run(kVec, {compute(Opcode::TensorCopy, {64, 4, 1}, o, &x),
                 compute(Opcode::TensorCopy, {32, 4, 1}, sb(DType::kF32, 7, 256), &y)});
  expect_bits(
      rig, o, {64, 4, 1}, [&](uint32_t p, uint32_t, uint32_t i0) { return rig.get_before(x, p, 0, i0); }, "copy");
}

TEST(VectorFaults, AccessPatternOutOfBoundsNamesTheFirstOffendingElement) {
  Rig rig(find_config("tc1-16"));
  const uint32_t pitch = uint32_t(rig.sbuf_pitch);
  const TensorOperand a = sb(DType::kF32, 0, 0, 1, 4), o = sb(DType::kF32, 0, 4096, 1, 4);
  // in1: elements at off + (10 i1 + i0) * 4 from pitch - 64: (2, 0) is the first past the partition.
  const TensorOperand far = sb(DType::kF32, 3, pitch - 64, 1, 10);
  Instr in = compute(Opcode::TensorTensor, {4, 4, 3}, o, &a, &far);
  in.op = uint64_t(AluOp::kAdd);
  EXPECT_EQ(rig.run_fault(kVec, {in}, regs::FaultCode::SbufOutOfRange, 0).addr(), sbuf_addr(rig, 3, pitch + 16));
  // PSUM: the output's last element crosses the partition's 16 KiB.
  const uint64_t pp = rig.psum_pitch;
  Instr p = compute(Opcode::TensorCopy, {2, 8, 2}, ps(1, uint32_t(pp) - 40, 1, 4), &a);
  EXPECT_EQ(rig.run_fault(kVec, {p}, regs::FaultCode::PsumOutOfRange, 0).addr(),
            isa::make_addr(Space::kPsum, 1 * pp + pp - 40 + 40));
  // More than 65536 elements per partition; a misaligned f32 offset.
  rig.run_fault(kVec, {compute(Opcode::Memset, {1, 1024, 65}, o)}, regs::FaultCode::BadOperand, 0);
  rig.run_fault(kVec, {compute(Opcode::Memset, {1, 4, 1}, sb(DType::kF32, 0, 6))}, regs::FaultCode::BadOperand, 0);
}

TEST(VectorFaults, DtypeSpaceAndOpCodes) {
  Rig rig(find_config("tc1-8"));
  const TensorOperand a = sb(DType::kF32, 0, 0), o = sb(DType::kF32, 0, 4096);
  const Shape s{4, 8, 1};
  // PSUM holds f32 only; dtype code 3 is undefined.
  TensorOperand pb = ps(0, 0);
  pb.dtype = DType::kBf16;
  EXPECT_EQ(rig.run_fault(kVec, {compute(Opcode::TensorCopy, s, pb, &a)}, regs::FaultCode::BadDtype, 0).addr(),
            isa::make_addr(Space::kPsum, 0));
  rig.run_fault(kVec,
                {compute(Opcode::TensorCopy, s, o, &a),
                 [&] {
                   Instr in = compute(Opcode::TensorCopy, s, o, &a);
                   in.in0 |= 3u << 2;
                   return in;
                 }()},
                regs::FaultCode::BadDtype, 1);
  // VectorE reads and writes SBUF and PSUM only.
  TensorOperand h = a;
  h.space = Space::kHbm;
  rig.run_fault(kVec, {compute(Opcode::TensorCopy, s, o, &h)}, regs::FaultCode::BadSpace, 0);
  // Op codes: 12..15 undefined; bypass is no tensor_tensor op; reduce takes add/max/min over some axis.
  for (uint64_t op : {0, 12, 15}) {
    Instr in = compute(Opcode::TensorTensor, s, o, &a, &a);
    in.op = op;
    rig.run_fault(kVec, {in}, regs::FaultCode::BadOperand, 0);
  }
  Instr ts = compute(Opcode::TensorScalar, s, o, &a);
  ts.op1 = 13;
  rig.run_fault(kVec, {ts}, regs::FaultCode::BadOperand, 0);
  Instr red = compute(Opcode::TensorReduce, s, o, &a);
  red.op = uint64_t(AluOp::kSub), red.axes = 1;
  rig.run_fault(kVec, {red}, regs::FaultCode::BadOperand, 0);
  red.op = uint64_t(AluOp::kAdd), red.axes = 0;
  rig.run_fault(kVec, {red}, regs::FaultCode::BadOperand, 0);
  // transpose: the free size must be a whole number of blocks.
  rig.run_fault(kVec, {compute(Opcode::Transpose, {4, 6, 1}, o, &a)}, regs::FaultCode::BadOperand, 0);
  // ScalarE's opcode on VectorE.
  Instr act = compute(Opcode::Activation, s, o, &a);
  rig.run_fault(kVec, {act}, regs::FaultCode::WrongEngine, 0);
  // The device runs the next job.
  rig.fill(a, s);
  Instr add = compute(Opcode::TensorTensor, s, o, &a, &a);
  add.op = uint64_t(AluOp::kAdd);
  rig.run(kVec, {add});
  expect_bits(
      rig, o, s,
      [&](uint32_t p, uint32_t, uint32_t i0) {
        const double v = in_value(rig.get_before(a, p, 0, i0), DType::kF32);
        return ref_out(v + v, DType::kF32);
      },
      "after the faults");
}

// start + max(min, N * inputs) cycles: 60 + max(64, N * k) on the tc1 configs.
TEST(VectorTiming, CyclesFollowTheDocumentedFormula) {
  Rig rig(find_config("tc1-16"));
  ASSERT_EQ(rig.cfg.vector_start_cycles, 60u);
  ASSERT_EQ(rig.cfg.vector_min_cycles, 64u);
  const TensorOperand a = sb(DType::kF32, 0, 0, 1, 100), o = sb(DType::kF32, 0, 8192, 1, 100);
  Instr add = compute(Opcode::TensorTensor, {16, 100, 3}, o, &a, &a);
  add.op = uint64_t(AluOp::kAdd);
  Instr sel = compute(Opcode::Select, {3, 50, 1}, o, &a, &a, &a);
  Instr ts = compute(Opcode::TensorScalar, {16, 30, 1}, o, &a);
  Instr red = compute(Opcode::TensorReduce, {16, 100, 2}, o, &a);
  red.op = uint64_t(AluOp::kMax), red.axes = 1;
  Instr iota = compute(Opcode::Iota, {16, 65, 1}, o);
  const std::vector<uint64_t> expected = {60 + 600, 60 + 150, 60 + 64, 60 + 200, 60 + 65};
  const auto r = rig.run(kVec, {add, sel, ts, red, iota});
  ASSERT_EQ(r.trace.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r.trace[i].end - r.trace[i].start, expected[i]) << "instruction " << i;
    if (i) EXPECT_EQ(r.trace[i].start, r.trace[i - 1].end) << "back to back";
  }
  EXPECT_EQ(r.trace[0].bytes, 16u * 300 * 4 * 3);  // two inputs and the output
}

// ---- Encoding and disassembly ----

TEST(VectorIsa, OperandWordsRoundTripAndDisassembleReadably) {
  const TensorOperand t{Space::kPsum, DType::kF32, 127, (1u << 20) - 4, 65535, 7};
  const TensorOperand u = isa::unpack_operand(isa::pack_operand(t));
  EXPECT_EQ(std::tuple(u.space, u.dtype, u.part, u.off, u.s0, u.s1),
            std::tuple(t.space, t.dtype, t.part, t.off, t.s0, t.s1));
  EXPECT_THROW(isa::pack_operand({Space::kSbuf, DType::kF32, 256, 0, 1, 0}), Error);
  EXPECT_THROW(isa::pack_operand({Space::kSbuf, DType::kF32, 0, 1u << 20, 1, 0}), Error);

  Instr in = compute(Opcode::TensorScalar, {8, 16, 2}, sb(DType::kBf16, 3, 0x40, 1, 16), nullptr);
  in.in0 = isa::pack_operand(ps(4, 0x100, 2, 40));
  in.op0 = uint64_t(AluOp::kMul), in.op1 = uint64_t(AluOp::kIsGe), in.col1_en = 1;
  in.imm0 = bits_of(0.5f), in.col1 = col(sb(DType::kF32, 2, 0x800));
  const std::string d = isa::disassemble(in);
  for (const char* part : {"tensor_scalar np=8 n0=16 n1=2 op0=mul op1=is_ge", "out=sbuf[p3+0x40]:bf16:strides(1,16)",
                           "in0=psum[p4+0x100]:f32:strides(2,40)", "imm0=0.5", "col1=sbuf[p2+0x800]:f32"})
    EXPECT_NE(d.find(part), std::string::npos) << part << " in: " << d;
  Instr act;
  act.opcode = Opcode::Activation;
  act.func = uint64_t(isa::ActFunc::kGeluTanh);
  EXPECT_NE(isa::disassemble(act).find("func=gelu_tanh"), std::string::npos) << isa::disassemble(act);
  Instr io = compute(Opcode::Iota, {1, 1, 1}, sb(DType::kI32, 0, 0));
  io.base = uint32_t(-5);
  EXPECT_NE(isa::disassemble(io).find("base=-5"), std::string::npos) << isa::disassemble(io);

  // Encode/decode round trip; a bit no field of the opcode covers is refused.
  const isa::Words w = isa::encode(in);
  const isa::Decoded back = isa::decode(w);
  ASSERT_TRUE(back.instr) << back.error;
  EXPECT_EQ(isa::disassemble(*back.instr), d);
  isa::Words bad = isa::encode(compute(Opcode::TensorCopy, {1, 1, 1}, sb(DType::kF32, 0, 0), &t));
  bad[4] = 1;  // tensor_copy uses words 1..3
  EXPECT_FALSE(isa::decode(bad).instr);
  EXPECT_TRUE(isa::engine_accepts(isa::kEngineVector, Opcode::Select));
  EXPECT_FALSE(isa::engine_accepts(isa::kEngineScalar, Opcode::Select));
  EXPECT_TRUE(isa::engine_accepts(isa::kEngineScalar, Opcode::Activation));
  EXPECT_FALSE(isa::engine_accepts(isa::kEngineDma0, Opcode::Activation));
}

}  // namespace
}  // namespace tcemu::test
