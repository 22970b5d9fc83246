// VectorE/ScalarE operand checks and fp32 datapath (compute.h). Compiled with -ffp-contract=off: every
// documented rounding is a separate IEEE operation, never a fused multiply-add.
#include "compute.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tcemu/numerics.h"

namespace tcemu::emu::compute {

using isa::ActFunc;
using isa::AluOp;
using isa::DType;
using isa::Space;

void Checker::shape(const Shape& s) {
  if (s.np == 0) fail(FaultCode::BadPartition, 0);
  if (s.n0 == 0 || s.n1 == 0 || s.n0 * s.n1 > isa::kMaxFreeElements) fail(FaultCode::BadOperand, 0);
}

View Checker::tensor(uint64_t word, const Shape& shape) {
  View v;
  if (!ok()) return v;
  const isa::TensorOperand t = isa::unpack_operand(word);
  const bool sbuf = t.space == Space::kSbuf;
  if (!sbuf && t.space != Space::kPsum) {
    fail(FaultCode::BadSpace, isa::make_addr(t.space, t.off));
    return v;
  }
  const uint64_t partitions = uint64_t(sbuf ? mem_.cfg.sbuf_partitions : mem_.cfg.psum_partitions);
  const uint64_t pitch = sbuf ? mem_.cfg.sbuf_partition_bytes : mem_.cfg.psum_partition_bytes();
  const uint64_t base = isa::make_addr(t.space, t.part * pitch + t.off);  // device address of element (0,0,0)
  const uint32_t bytes = isa::dtype_bytes(uint64_t(t.dtype));
  if (bytes == 0 || (!sbuf && t.dtype != DType::kF32)) {
    fail(FaultCode::BadDtype, base);
    return v;
  }
  const uint64_t quadrant = uint64_t(mem_.cfg.partition_quadrant);
  if (t.part + shape.np > partitions || (shape.np > quadrant && t.part % quadrant != 0)) {
    fail(FaultCode::BadPartition, base);
    return v;
  }
  if (t.off % bytes != 0) {
    fail(FaultCode::BadOperand, base);
    return v;
  }
  // Strides are unsigned: the last element is the farthest. If it is out of range, report the first
  // element (in iteration order) that is.
  const uint64_t last = t.off + ((shape.n1 - 1) * t.s1 + (shape.n0 - 1) * t.s0 + 1) * bytes;
  if (last > pitch) {
    for (uint64_t i1 = 0; i1 < shape.n1; ++i1)
      for (uint64_t i0 = 0; i0 < shape.n0; ++i0) {
        const uint64_t end = t.off + (i1 * t.s1 + i0 * t.s0 + 1) * bytes;
        if (end > pitch) {
          fail(sbuf ? FaultCode::SbufOutOfRange : FaultCode::PsumOutOfRange, base + (end - bytes - t.off));
          return v;
        }
      }
  }
  v.pitch = sbuf ? mem_.sbuf_pitch : mem_.psum_pitch;
  v.data = (sbuf ? mem_.sbuf : mem_.psum) + t.part * v.pitch + t.off;
  v.s0 = t.s0, v.s1 = t.s1;
  v.dtype = t.dtype;
  v.bytes = bytes;
  return v;
}

namespace {

constexpr float kMinNormal = std::numeric_limits<float>::min();  // 2^-126

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

uint32_t rd(const uint8_t* p, uint32_t bytes) {
  uint32_t u = 0;
  for (uint32_t i = 0; i < bytes; ++i) u |= uint32_t(p[i]) << (8 * i);
  return u;
}

float daz(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }

// Round to nearest even, saturate to the int32 range; NaN -> 0.
uint32_t i32_of(double x) {
  if (std::isnan(x)) return 0;
  const double r = std::nearbyint(x);  // default rounding mode: to nearest, ties to even
  if (r >= 2147483648.0) return uint32_t(std::numeric_limits<int32_t>::max());
  if (r < -2147483648.0) return uint32_t(std::numeric_limits<int32_t>::min());
  return uint32_t(int32_t(r));
}

// An integer (|x| < 2^53) rounded once to bf16 (8 significant bits), ties to even.
uint16_t bf16_of_int(int64_t x) {
  if (x == 0) return 0;
  int e;
  const double m = std::frexp(double(x), &e);                            // |m| in [0.5, 1)
  const double r = std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8);  // exact, <= 2^63
  return num::f32_to_bf16(float(r));                                     // exact: r has <= 8 significant bits
}

}  // namespace

float finish(float x) {
  if (std::isnan(x)) return f32(num::kF32CanonicalNan);
  if (x != 0 && std::fabs(x) < kMinNormal) return std::copysign(0.0f, x);
  return x;
}

float load(const View& v, uint64_t p, uint64_t i1, uint64_t i0) {
  const uint8_t* e = v.at(p, i1, i0);
  switch (v.dtype) {
    case DType::kF32: return daz(f32(rd(e, 4)));
    case DType::kBf16: return daz(num::bf16_to_f32(uint16_t(rd(e, 2))));
    case DType::kI32: return float(int32_t(rd(e, 4)));
  }
  return 0;
}

uint32_t encode(float x, DType d) {
  switch (d) {
    case DType::kF32: return bits_of(x);
    case DType::kBf16: return num::f32_to_bf16(x);
    case DType::kI32: return i32_of(x);
  }
  return 0;
}

uint32_t encode_int(int64_t x, DType d) {
  switch (d) {
    case DType::kF32: return bits_of(float(x));  // one rounding (RNE) from the exact integer
    case DType::kBf16: return bf16_of_int(x);
    case DType::kI32: {
      constexpr int64_t lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
      return uint32_t(int32_t(std::clamp<int64_t>(x, lo, hi)));
    }
  }
  return 0;
}

uint32_t convert(const View& src, uint64_t p, uint64_t i1, uint64_t i0, DType d) {
  if (src.dtype == d) return rd(src.at(p, i1, i0), src.bytes);
  if (src.dtype == DType::kI32) return encode_int(int32_t(rd(src.at(p, i1, i0), 4)), d);
  // f32 <-> bf16 and float -> i32: the (DAZ) value, rounded once. bf16 -> f32 is exact.
  return encode(finish(load(src, p, i1, i0)), d);
}

void put(const View& v, uint64_t p, uint64_t i1, uint64_t i0, uint32_t bits) {
  uint8_t* e = v.at(p, i1, i0);
  for (uint32_t i = 0; i < v.bytes; ++i) e[i] = uint8_t(bits >> (8 * i));
}

bool alu_op_valid(uint64_t op) { return isa::alu_op_name(op) != nullptr; }
bool act_func_valid(uint64_t f) { return isa::act_func_name(f) != nullptr; }

float alu(AluOp op, float a, float b) {
  const float nan = f32(num::kF32CanonicalNan);
  switch (op) {
    case AluOp::kBypass: return finish(a);
    case AluOp::kAdd: return finish(a + b);
    case AluOp::kSub: return finish(a - b);
    case AluOp::kMul: return finish(a * b);
    case AluOp::kDiv: return finish(a / b);
    case AluOp::kMax:
      if (std::isnan(a) || std::isnan(b)) return nan;
      if (a == b) return std::signbit(a) ? b : a;  // max(-0, +0) = +0
      return a > b ? a : b;
    case AluOp::kMin:
      if (std::isnan(a) || std::isnan(b)) return nan;
      if (a == b) return std::signbit(a) ? a : b;  // min(+0, -0) = -0
      return a < b ? a : b;
    case AluOp::kIsEqual: return a == b ? 1.0f : 0.0f;
    case AluOp::kIsLt: return a < b ? 1.0f : 0.0f;
    case AluOp::kIsLe: return a <= b ? 1.0f : 0.0f;
    case AluOp::kIsGt: return a > b ? 1.0f : 0.0f;
    case AluOp::kIsGe: return a >= b ? 1.0f : 0.0f;
  }
  return nan;
}

float activate(ActFunc f, float x) {
  // Formulations that avoid cancellation for negative x (x * sigmoid(.) rather than (1 + tanh(.)) / 2);
  // the infinities of the x * sigmoid forms are exact limits, not inf / inf.
  const float inf = std::numeric_limits<float>::infinity();
  auto x_sigmoid = [&](float z) {  // x / (1 + exp(-z))
    if (std::isinf(x)) return x > 0 ? x : -0.0f;
    return x / (1.0f + std::exp(-z));
  };
  switch (f) {
    case ActFunc::kIdentity: return finish(x);
    case ActFunc::kRelu: return std::isnan(x) ? finish(x) : (x > 0 ? x : 0.0f);
    case ActFunc::kGeluTanh: {
      const float k = 0.7978845608028654f;  // sqrt(2 / pi)
      return finish(x_sigmoid(2.0f * k * (x + 0.044715f * x * x * x)));
    }
    case ActFunc::kGeluErf:
      if (std::isinf(x)) return x > 0 ? x : -0.0f;
      return finish(0.5f * x * std::erfc(-x * 0.70710678118654752f));
    case ActFunc::kSigmoid: return finish(1.0f / (1.0f + std::exp(-x)));
    case ActFunc::kTanh: return finish(std::tanh(x));
    case ActFunc::kExp: return finish(std::exp(x));
    case ActFunc::kSilu: return finish(x_sigmoid(x));
    case ActFunc::kSoftplus:
      if (x == inf) return inf;
      return finish(x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)));
    case ActFunc::kRsqrt: return finish(1.0f / std::sqrt(x));
    case ActFunc::kReciprocal: return finish(1.0f / x);
    case ActFunc::kSquare: return finish(x * x);
    case ActFunc::kLog: return finish(std::log(x));
  }
  return f32(num::kF32CanonicalNan);
}

}  // namespace tcemu::emu::compute
