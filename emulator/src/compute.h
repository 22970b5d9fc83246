// What VectorE and ScalarE share: checking tensor and column operands against the device (docs/isa.md,
// "Tensor operands" and "Hardware rules"), element access with dtype conversion, and the fp32 datapath
// with the chip's numerics policy (docs/numerics.md, "VectorE and ScalarE"). Pure functions over the
// memories: the engines' executors (vector_engine.cpp, scalar_engine.cpp) own time and faults.
#pragma once

#include <cstdint>
#include <cstring>

#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/regs.h"

namespace tcemu::emu::compute {

using regs::FaultCode;

// The memories an operand may live in: partition p of SBUF starts at sbuf + p * sbuf_pitch on the host
// (the host pitch is not the device's partition size: tc1.h, ChipMemory).
struct Memories {
  const DeviceConfig& cfg;
  uint8_t* sbuf;
  uint8_t* psum;
  uint64_t sbuf_pitch, psum_pitch;
};

// The iteration space of an instruction: np partitions x [n1][n0] free elements.
struct Shape {
  uint64_t np = 0, n0 = 0, n1 = 0;
  uint64_t free() const { return n0 * n1; }
};

// A checked operand: element (p, i1, i0) lives at at(p, i1, i0).
struct View {
  uint8_t* data = nullptr;  // element (0, 0, 0)
  uint64_t pitch = 0;       // host bytes from one partition to the next
  uint64_t s0 = 0, s1 = 0;  // element strides
  isa::DType dtype = isa::DType::kF32;
  uint32_t bytes = 4;
  uint8_t* at(uint64_t p, uint64_t i1, uint64_t i0) const { return data + p * pitch + (i1 * s1 + i0 * s0) * bytes; }
};

// Validates operands in order and keeps the first fault. Every element an operand's pattern touches is
// checked, so an instruction that passes cannot touch memory outside its operands.
class Checker {
 public:
  explicit Checker(const Memories& mem) : mem_(mem) {}
  // A tensor operand word iterated over `shape`.
  View tensor(uint64_t word, const Shape& shape);
  // A column operand (low 32 bits of an operand word): one element in each of `np` partitions.
  View column(uint64_t column, uint64_t np) { return tensor(column & 0xFFFFFFFFu, {np, 1, 1}); }
  // Instruction-level checks: the shape, and anything else (op codes).
  void shape(const Shape& s);
  void require(bool ok, FaultCode code) {
    if (!ok) fail(code, 0);
  }
  bool ok() const { return code_ == FaultCode::None; }
  FaultCode code() const { return code_; }
  uint64_t addr() const { return addr_; }

 private:
  void fail(FaultCode c, uint64_t addr) {
    if (code_ == FaultCode::None) code_ = c, addr_ = addr;
  }
  const Memories& mem_;
  FaultCode code_ = FaultCode::None;
  uint64_t addr_ = 0;
};

// ---- Numerics (docs/numerics.md) ----------------------------------------------------------------------
// Input side: an fp32 or bf16 subnormal reads as zero of its sign (DAZ); i32 converts to fp32 RNE.
float load(const View& v, uint64_t p, uint64_t i1, uint64_t i0);
// Result side: NaN -> canonical NaN, a result below 2^-126 in magnitude -> zero of its sign (FTZ).
float finish(float x);
// Bits of fp32 result `x` in dtype `d`: f32 as is; bf16 RNE; i32 RNE, saturating, NaN -> 0.
uint32_t encode(float x, isa::DType d);
// Bits of an exact integer in dtype `d`, rounded once (RNE); i32 saturates.
uint32_t encode_int(int64_t x, isa::DType d);
// An element moved to dtype `d`: the same bits if the dtype is the same, else its exact value rounded once.
uint32_t convert(const View& src, uint64_t p, uint64_t i1, uint64_t i0, isa::DType d);
void put(const View& v, uint64_t p, uint64_t i1, uint64_t i0, uint32_t bits);

bool alu_op_valid(uint64_t op);              // a defined ALU op code
float alu(isa::AluOp op, float a, float b);  // finished fp32 result
bool act_func_valid(uint64_t f);
float activate(isa::ActFunc f, float x);  // finished fp32 result

inline float f32(uint64_t bits) {
  float f;
  const uint32_t u = uint32_t(bits);
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace tcemu::emu::compute
