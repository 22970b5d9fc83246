// The TC1 instruction set: ONE table (the X-macros below) from which the encoder, decoder, validator
// and disassembler are all derived. docs/isa.md documents each instruction's meaning and timing.
//
// Every instruction is 64 bytes: eight little-endian 64-bit words. Word 0 holds the opcode and the
// synchronisation fields common to all instructions; words 1..7 hold the opcode's operands. Bits that no
// field of the opcode covers are reserved and must be zero (the decoder rejects them).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tcemu::isa {

inline constexpr size_t kInstrBytes = 64;
inline constexpr size_t kInstrWords = 8;
using Words = std::array<uint64_t, kInstrWords>;

// Engines: instruction streams are per engine. DMA queue q is engine kDma0 + q.
inline constexpr int kEngineTensor = 0;
inline constexpr int kEngineVector = 1;  // VectorE: elementwise, tensor-scalar, reduce, copy/cast, memset, iota, ...
inline constexpr int kEngineScalar = 2;  // ScalarE: activation functions
inline constexpr int kEngineDma0 = 16;
inline constexpr int kMaxEngines = 32;
std::string engine_name(int engine);  // "tensor", "dma3", ...; "engine<N>" for unknown ids

// Device addresses used by DMA operands: bits [47:44] select the space, bits [43:0] the byte offset.
//  HBM  : offset relative to the running job's HBM window (base/size in the job descriptor).
//  SBUF : partition * sbuf_partition_bytes + byte offset within the partition.
//  PSUM : partition * psum_partition_bytes + byte offset within the partition.
enum class Space : uint8_t { kHbm = 0, kSbuf = 1, kPsum = 2 };
inline constexpr int kSpaceShift = 44;
inline constexpr uint64_t kOffsetMask = (uint64_t(1) << kSpaceShift) - 1;
inline constexpr uint64_t make_addr(Space s, uint64_t offset) {
  return (uint64_t(s) << kSpaceShift) | (offset & kOffsetMask);
}
inline constexpr uint64_t addr_space(uint64_t a) { return a >> kSpaceShift; }
inline constexpr uint64_t addr_offset(uint64_t a) { return a & kOffsetMask; }
const char* space_name(uint64_t space);

// ---- VectorE / ScalarE operands (docs/isa.md, "Tensor operands") ---------------------------------------
// Element types of tensor operands. X(Name, code, name, bytes)
#define TCEMU_DTYPES(X) \
  X(F32, 0, "f32", 4)   \
  X(Bf16, 1, "bf16", 2) \
  X(I32, 2, "i32", 4)
enum class DType : uint8_t {
#define TCEMU_X(name, code, str, bytes) k##name = code,
  TCEMU_DTYPES(TCEMU_X)
#undef TCEMU_X
};
const char* dtype_name(uint64_t code);  // "f32", ...; nullptr for an unknown code
uint32_t dtype_bytes(uint64_t code);    // 4, 2, 4; 0 for an unknown code

// A tensor operand is one 64-bit word (fields `out`, `in0`..`in2`):
//   bits  1:0  space   (Space: 1 sbuf, 2 psum)      bits 11:4   part  first partition
//   bits  3:2  dtype   (DType)                      bits 31:12  off   byte offset within each partition
//   bits 47:32 s0      element stride of free dim 0 (inner, n0 elements)
//   bits 63:48 s1      element stride of free dim 1 (outer, n1 elements)
// Element (p, i1, i0), p < np, sits in partition part + p at byte off + (i1 * s1 + i0 * s0) * bytes(dtype).
// The partition count np and the free counts n0, n1 are fields of the instruction, shared by all of its
// tensor operands. A column operand (one element per partition: per-partition scalars, bias, reduce
// results) is the low 32 bits of the same layout (space, dtype, part, off).
struct TensorOperand {
  Space space = Space::kSbuf;
  DType dtype = DType::kF32;
  uint32_t part = 0;  // < 256
  uint32_t off = 0;   // < 2^20
  uint32_t s0 = 1;    // < 2^16
  uint32_t s1 = 0;    // < 2^16
};
// pack_operand throws Error(kEncoding) naming the part that does not fit; unpacking never fails (bad
// space or dtype codes are kept and faulted by the engine).
uint64_t pack_operand(const TensorOperand& t);
TensorOperand unpack_operand(uint64_t word);
inline uint64_t pack_column(Space space, DType dtype, uint32_t part, uint32_t off) {
  return pack_operand({space, dtype, part, off, 0, 0});
}
// Largest free size n0 * n1 of one instruction (elements per partition).
inline constexpr uint64_t kMaxFreeElements = uint64_t(1) << 16;

// ALU operations of tensor_tensor, tensor_scalar and tensor_reduce: out = a OP b, in fp32.
// X(Name, code, mnemonic, meaning)
#define TCEMU_ALU_OPS(X)                                             \
  X(Bypass, 0, "bypass", "a (b ignored; tensor_scalar only)")        \
  X(Add, 1, "add", "a + b")                                          \
  X(Sub, 2, "sub", "a - b")                                          \
  X(Mul, 3, "mul", "a * b")                                          \
  X(Div, 4, "div", "a / b (IEEE division)")                          \
  X(Max, 5, "max", "max(a, b); max(+0, -0) = +0")                    \
  X(Min, 6, "min", "min(a, b); min(+0, -0) = -0")                    \
  X(IsEqual, 7, "is_equal", "1.0 if a == b else 0.0")               \
  X(IsLt, 8, "is_lt", "1.0 if a < b else 0.0")                      \
  X(IsLe, 9, "is_le", "1.0 if a <= b else 0.0")                     \
  X(IsGt, 10, "is_gt", "1.0 if a > b else 0.0")                     \
  X(IsGe, 11, "is_ge", "1.0 if a >= b else 0.0")
enum class AluOp : uint8_t {
#define TCEMU_X(name, code, mnem, doc) k##name = code,
  TCEMU_ALU_OPS(TCEMU_X)
#undef TCEMU_X
};
const char* alu_op_name(uint64_t code);  // nullptr for an unknown code

// ScalarE activation functions f. X(Name, code, mnemonic, definition)
#define TCEMU_ACT_FUNCS(X)                                                  \
  X(Identity, 0, "identity", "x")                                           \
  X(Relu, 1, "relu", "x > 0 ? x : +0")                                      \
  X(GeluTanh, 2, "gelu_tanh", "x * sigmoid(2 * sqrt(2/pi) * (x + 0.044715 x^3))") \
  X(GeluErf, 3, "gelu_erf", "x * erfc(-x / sqrt(2)) / 2")                   \
  X(Sigmoid, 4, "sigmoid", "1 / (1 + exp(-x))")                             \
  X(Tanh, 5, "tanh", "tanh(x)")                                             \
  X(Exp, 6, "exp", "exp(x)")                                                \
  X(Silu, 7, "silu", "x / (1 + exp(-x))")                                   \
  X(Softplus, 8, "softplus", "log(1 + exp(x))")                             \
  X(Rsqrt, 9, "rsqrt", "1 / sqrt(x)")                                       \
  X(Reciprocal, 10, "reciprocal", "1 / x")                                  \
  X(Square, 11, "square", "x * x")                                          \
  X(Log, 12, "log", "log(x)")
enum class ActFunc : uint8_t {
#define TCEMU_X(name, code, mnem, doc) k##name = code,
  TCEMU_ACT_FUNCS(TCEMU_X)
#undef TCEMU_X
};
const char* act_func_name(uint64_t code);  // nullptr for an unknown code

// VectorE (0x30..) and ScalarE (0x40..) opcodes, spliced into TCEMU_OPCODES.
#define TCEMU_COMPUTE_OPCODES(X)                                                                           \
  X(TensorTensor, 0x30, EngineClass::kVector, "tensor_tensor", "out = in0 OP in1, elementwise")           \
  X(TensorScalar, 0x31, EngineClass::kVector, "tensor_scalar",                                            \
    "out = op1(op0(in0, scalar0), scalar1); scalars immediate or per-partition columns")                  \
  X(TensorReduce, 0x32, EngineClass::kVector, "tensor_reduce", "out = add/max/min of in0 along free dims") \
  X(TensorCopy, 0x33, EngineClass::kVector, "tensor_copy", "out = in0, converting the dtype (cast)")      \
  X(Memset, 0x34, EngineClass::kVector, "memset", "out = value")                                          \
  X(Iota, 0x35, EngineClass::kVector, "iota", "out = base + partition * pstep + free_index * fstep")      \
  X(Select, 0x36, EngineClass::kVector, "select", "out = in0 != 0 ? in1 : in2")                          \
  X(Transpose, 0x37, EngineClass::kVector, "transpose",                                                  \
    "out = in0 transposed in square blocks of min(np, 32) partitions x elements")                       \
  X(Activation, 0x40, EngineClass::kScalar, "activation",                                                \
    "out = f(in0 * scale + bias); optional per-partition sum of the outputs into acc_col")

// Fields of the compute opcodes, spliced into TCEMU_FIELDS. Word 1 holds the shape (np, n0, n1) and the
// opcode's control bits; words 2.. the tensor operands, then column operands and immediates.
#define TCEMU_COMPUTE_SHAPE(X, Op)                                                         \
  X(Op, np, 1, 0, 8, "partitions of every operand (1..partitions)")                        \
  X(Op, n0, 1, 8, 16, "elements of free dim 0 (>= 1)")                                     \
  X(Op, n1, 1, 24, 16, "elements of free dim 1 (>= 1); n0 * n1 <= 65536")
#define TCEMU_COMPUTE_OUT(X, Op) X(Op, out, 2, 0, 64, "output tensor operand (operand word)")
#define TCEMU_COMPUTE_IN0(X, Op) X(Op, in0, 3, 0, 64, "input tensor operand 0 (operand word)")
#define TCEMU_COMPUTE_FIELDS(X)                                                                              \
  TCEMU_COMPUTE_SHAPE(X, TensorTensor)                                                                       \
  X(TensorTensor, op, 1, 40, 4, "ALU operation (add .. is_ge; not bypass)")                                  \
  TCEMU_COMPUTE_OUT(X, TensorTensor)                                                                         \
  TCEMU_COMPUTE_IN0(X, TensorTensor)                                                                         \
  X(TensorTensor, in1, 4, 0, 64, "input tensor operand 1 (operand word)")                                    \
  TCEMU_COMPUTE_SHAPE(X, TensorScalar)                                                                       \
  X(TensorScalar, op0, 1, 40, 4, "first ALU operation")                                                      \
  X(TensorScalar, op1, 1, 44, 4, "second ALU operation (bypass: none)")                                      \
  X(TensorScalar, rev0, 1, 48, 1, "1: op0 takes (scalar0, x) instead of (x, scalar0)")                        \
  X(TensorScalar, rev1, 1, 49, 1, "1: op1 takes (scalar1, y) instead of (y, scalar1)")                        \
  X(TensorScalar, col0_en, 1, 50, 1, "scalar0: 0 the immediate imm0, 1 the per-partition column col0")       \
  X(TensorScalar, col1_en, 1, 51, 1, "scalar1: 0 the immediate imm1, 1 the per-partition column col1")       \
  TCEMU_COMPUTE_OUT(X, TensorScalar)                                                                         \
  TCEMU_COMPUTE_IN0(X, TensorScalar)                                                                         \
  X(TensorScalar, imm0, 4, 0, 32, "scalar0 immediate (fp32 bits)")                                           \
  X(TensorScalar, imm1, 4, 32, 32, "scalar1 immediate (fp32 bits)")                                          \
  X(TensorScalar, col0, 5, 0, 32, "scalar0 column operand (one value per partition)")                        \
  X(TensorScalar, col1, 5, 32, 32, "scalar1 column operand")                                                 \
  TCEMU_COMPUTE_SHAPE(X, TensorReduce)                                                                       \
  X(TensorReduce, op, 1, 40, 4, "ALU operation: add, max or min")                                            \
  X(TensorReduce, axes, 1, 44, 2, "free dims reduced: 1 dim 0, 2 dim 1, 3 both")                             \
  TCEMU_COMPUTE_OUT(X, TensorReduce)                                                                         \
  TCEMU_COMPUTE_IN0(X, TensorReduce)                                                                         \
  TCEMU_COMPUTE_SHAPE(X, TensorCopy)                                                                         \
  TCEMU_COMPUTE_OUT(X, TensorCopy)                                                                           \
  TCEMU_COMPUTE_IN0(X, TensorCopy)                                                                           \
  TCEMU_COMPUTE_SHAPE(X, Memset)                                                                             \
  TCEMU_COMPUTE_OUT(X, Memset)                                                                               \
  X(Memset, value, 3, 0, 32, "value: f32 or i32 bits as the out dtype; bf16: fp32 bits rounded RNE")        \
  TCEMU_COMPUTE_SHAPE(X, Iota)                                                                               \
  TCEMU_COMPUTE_OUT(X, Iota)                                                                                 \
  X(Iota, base, 3, 0, 32, "base (signed 32-bit)")                                                            \
  X(Iota, pstep, 3, 32, 32, "step per partition (signed 32-bit)")                                            \
  X(Iota, fstep, 4, 0, 32, "step per free index i1 * n0 + i0 (signed 32-bit)")                             \
  TCEMU_COMPUTE_SHAPE(X, Select)                                                                             \
  TCEMU_COMPUTE_OUT(X, Select)                                                                               \
  TCEMU_COMPUTE_IN0(X, Select)                                                                               \
  X(Select, in1, 4, 0, 64, "input tensor operand 1 (operand word)")                                          \
  X(Select, in2, 5, 0, 64, "input tensor operand 2 (operand word)")                                          \
  TCEMU_COMPUTE_SHAPE(X, Transpose)                                                                          \
  TCEMU_COMPUTE_OUT(X, Transpose)                                                                            \
  TCEMU_COMPUTE_IN0(X, Transpose)                                                                            \
  TCEMU_COMPUTE_SHAPE(X, Activation)                                                                         \
  X(Activation, func, 1, 40, 5, "activation function f")                                                     \
  X(Activation, scale_col_en, 1, 45, 1, "scale: 0 the immediate scale_imm, 1 the column scale_col")          \
  X(Activation, bias_en, 1, 46, 1, "1: add the per-partition bias column bias_col")                          \
  X(Activation, acc_en, 1, 47, 1, "1: write the per-partition sum of the outputs to acc_col")                \
  TCEMU_COMPUTE_OUT(X, Activation)                                                                           \
  TCEMU_COMPUTE_IN0(X, Activation)                                                                           \
  X(Activation, scale_imm, 4, 0, 32, "scale immediate (fp32 bits)")                                          \
  X(Activation, scale_col, 4, 32, 32, "scale column operand")                                                \
  X(Activation, bias_col, 5, 0, 32, "bias column operand")                                                   \
  X(Activation, acc_col, 5, 32, 32, "accumulate-reduce output column operand")

// Engine classes an opcode may run on.
enum class EngineClass : uint8_t { kAny, kTensor, kDma, kVector, kScalar };

// matmul `dtype` field: the operand type of W and X (its own codes: 0 must stay bf16, the original format).
enum class MatmulType : uint8_t { kBf16 = 0, kFp32 = 1 };

// X(Name, code, engine class, mnemonic, summary)
#define TCEMU_OPCODES(X)                                                                       \
  X(Nop, 0x01, EngineClass::kAny, "nop", "no operation; waits/signals semaphores only")       \
  X(Notify, 0x02, EngineClass::kAny, "notify",                                                \
    "post {tag, engine, cycle} to the notification FIFO and raise the NOTIFY interrupt")      \
  X(DmaCopy, 0x10, EngineClass::kDma, "dma_copy",                                             \
    "copy between HBM, SBUF and PSUM with a 4-D access pattern on both sides; optional dtype cast") \
  X(Matmul, 0x20, EngineClass::kTensor, "matmul",                                             \
    "PSUM[out] = (or +=) W^T X: stationary W [k x m], moving X [k x n], bf16 or fp32 in SBUF, fp32 out") \
  X(PeTranspose, 0x21, EngineClass::kTensor, "pe_transpose",                                  \
    "PSUM[out] = (or +=) T^T through the array: bf16 tile T [k x m] in SBUF, fp32 out [m x k]") \
  TCEMU_COMPUTE_OPCODES(X)

enum class Opcode : uint8_t {
  Invalid = 0,
#define TCEMU_X(name, code, cls, mnem, doc) name = code,
  TCEMU_OPCODES(TCEMU_X)
#undef TCEMU_X
};

// Decoded instruction: every operand of every opcode, as unsigned integers. Fields an opcode does not
// use stay zero. The table below says which opcode owns each field and where it lives.
struct Instr {
  Opcode opcode = Opcode::Invalid;
  // Synchronisation (all opcodes): wait until sem[wait_sem] >= wait_value before starting; on completion
  // sem[signal_sem] += signal_value (or = signal_value when signal_set).
  uint64_t wait_en = 0, wait_sem = 0, wait_value = 0;
  uint64_t signal_en = 0, signal_set = 0, signal_sem = 0, signal_value = 0;
  // notify
  uint64_t tag = 0;
  // dma_copy (d3_count defaults to 1 so that builders of 3-D copies need not set it)
  uint64_t src = 0, dst = 0, bytes = 0, d1_count = 0, d2_count = 0;
  uint64_t src_d1_stride = 0, dst_d1_stride = 0, src_d2_stride = 0, dst_d2_stride = 0;
  uint64_t d3_count = 1, src_d3_stride = 0, dst_d3_stride = 0;
  uint64_t cast = 0, src_dtype = 0, dst_dtype = 0;
  // matmul (dtype: MatmulType); pe_transpose uses k, m, accumulate, st_part/st_off, out_part/out_off
  uint64_t k = 0, m = 0, n = 0, accumulate = 0, dtype = 0;
  uint64_t st_part = 0, mv_part = 0, out_part = 0, st_off = 0, mv_off = 0, out_off = 0;
  // VectorE / ScalarE (TCEMU_COMPUTE_FIELDS): shape, tensor operand words, column operands, ops, immediates
  uint64_t np = 0, n0 = 0, n1 = 0;
  uint64_t out = 0, in0 = 0, in1 = 0, in2 = 0;
  uint64_t op = 0, op0 = 0, op1 = 0, rev0 = 0, rev1 = 0, axes = 0;
  uint64_t col0_en = 0, col1_en = 0, imm0 = 0, imm1 = 0, col0 = 0, col1 = 0;
  uint64_t value = 0, base = 0, pstep = 0, fstep = 0;
  uint64_t func = 0, scale_col_en = 0, bias_en = 0, acc_en = 0, scale_imm = 0, scale_col = 0, bias_col = 0, acc_col = 0;
};

// X(owner opcode or Invalid for "all opcodes", field, word, lsb, width, description)
#define TCEMU_FIELDS(X)                                                                         \
  X(Invalid, wait_en, 0, 8, 1, "1: wait until sem[wait_sem] >= wait_value before starting")    \
  X(Invalid, signal_en, 0, 9, 1, "1: update sem[signal_sem] when the instruction completes")   \
  X(Invalid, signal_set, 0, 10, 1, "1: the update sets the semaphore; 0: it adds to it")       \
  X(Invalid, wait_sem, 0, 16, 8, "semaphore waited on")                                        \
  X(Invalid, signal_sem, 0, 24, 8, "semaphore updated on completion")                          \
  X(Invalid, wait_value, 7, 0, 32, "value the semaphore must reach")                          \
  X(Invalid, signal_value, 7, 32, 32, "value added (or set)")                                  \
  X(Notify, tag, 1, 0, 32, "value delivered to the host")                                      \
  X(DmaCopy, src, 1, 0, 48, "source device address (space in bits 47:44)")                     \
  X(DmaCopy, dst, 2, 0, 48, "destination device address")                                      \
  X(DmaCopy, bytes, 3, 0, 32, "source bytes per innermost run (>= 1; cast: a multiple of the src_dtype size)") \
  X(DmaCopy, d1_count, 3, 32, 16, "runs in dimension 1 (>= 1)")                                \
  X(DmaCopy, d2_count, 3, 48, 16, "repetitions in dimension 2 (>= 1)")                         \
  X(DmaCopy, src_d1_stride, 4, 0, 32, "source byte stride of dimension 1")                     \
  X(DmaCopy, dst_d1_stride, 4, 32, 32, "destination byte stride of dimension 1")               \
  X(DmaCopy, src_d2_stride, 5, 0, 32, "source byte stride of dimension 2")                     \
  X(DmaCopy, dst_d2_stride, 5, 32, 32, "destination byte stride of dimension 2")               \
  X(DmaCopy, d3_count, 1, 48, 16, "repetitions in dimension 3 (>= 1; outermost)")              \
  X(DmaCopy, src_d3_stride, 6, 0, 32, "source byte stride of dimension 3")                     \
  X(DmaCopy, dst_d3_stride, 6, 32, 32, "destination byte stride of dimension 3")               \
  X(DmaCopy, cast, 2, 48, 1, "0: copy raw bytes; 1: convert elements from src_dtype to dst_dtype") \
  X(DmaCopy, src_dtype, 2, 52, 4, "source element type (dtype code; 0 unless cast)")          \
  X(DmaCopy, dst_dtype, 2, 56, 4, "destination element type (dtype code; 0 unless cast)")     \
  X(Matmul, k, 1, 0, 16, "contraction rows K (1..array rows)")                                 \
  X(Matmul, m, 1, 16, 16, "stationary columns M = output partitions (1..array cols)")          \
  X(Matmul, n, 1, 32, 16, "moving columns N (1..512, one PSUM bank of fp32)")                  \
  X(Matmul, accumulate, 1, 48, 1, "0: overwrite PSUM; 1: add to PSUM")                         \
  X(Matmul, dtype, 1, 49, 2, "operand type of W and X: 0 bf16, 1 fp32 (6 bf16 passes); 2, 3 reserved") \
  X(Matmul, st_part, 2, 0, 16, "first SBUF partition of the stationary W")                     \
  X(Matmul, mv_part, 2, 16, 16, "first SBUF partition of the moving X")                        \
  X(Matmul, out_part, 2, 32, 16, "first PSUM partition of the output")                         \
  X(Matmul, st_off, 3, 0, 32, "byte offset of W in its partitions (aligned to the element size)") \
  X(Matmul, mv_off, 3, 32, 32, "byte offset of X in its partitions (aligned to the element size)") \
  X(Matmul, out_off, 4, 0, 32, "byte offset of the output in its PSUM partitions (fp32, 4-aligned)") \
  X(PeTranspose, k, 1, 0, 16, "partitions of the input tile (1..array rows) = output elements")  \
  X(PeTranspose, m, 1, 16, 16, "elements of the input tile (1..array cols) = output partitions") \
  X(PeTranspose, accumulate, 1, 48, 1, "0: overwrite PSUM; 1: add to PSUM")                    \
  X(PeTranspose, st_part, 2, 0, 16, "first SBUF partition of the input tile")                  \
  X(PeTranspose, out_part, 2, 32, 16, "first PSUM partition of the output")                    \
  X(PeTranspose, st_off, 3, 0, 32, "byte offset of the input in its partitions (bf16, 2-aligned)") \
  X(PeTranspose, out_off, 4, 0, 32, "byte offset of the output in its PSUM partitions (fp32, 4-aligned)") \
  TCEMU_COMPUTE_FIELDS(X)

struct FieldInfo {
  Opcode owner;  // Invalid: common to all opcodes
  const char* name;
  int word, lsb, width;
  const char* doc;
  uint64_t Instr::*member;
};
std::span<const FieldInfo> fields();

struct OpcodeInfo {
  Opcode opcode;
  uint8_t code;
  EngineClass engine_class;
  const char* mnemonic;
  const char* doc;
};
std::span<const OpcodeInfo> opcodes();
const OpcodeInfo* find_opcode(uint8_t code);            // nullptr if unknown
const OpcodeInfo* find_mnemonic(const std::string& m);  // nullptr if unknown
bool engine_accepts(int engine, Opcode op);

// Encoding throws Error(kEncoding) naming the field whose value does not fit.
Words encode(const Instr& in);
void encode_to(const Instr& in, std::span<uint8_t, kInstrBytes> out);
// A whole instruction stream, as it lies in device memory (kInstrBytes per instruction).
std::vector<uint8_t> encode_stream(std::span<const Instr> instrs);
// Decoding returns the instruction or a message naming the problem (unknown opcode, reserved bits set).
struct Decoded {
  std::optional<Instr> instr;
  std::string error;
};
Decoded decode(const Words& w);
Decoded decode_bytes(std::span<const uint8_t> bytes);  // exactly kInstrBytes
// One line of assembly: "matmul k=16 m=16 n=64 ... [wait=s3>=1] [signal=s4+=1]". It shows every encoded
// bit: fields at their defaults are left out only where the reader assumes them (dma_copy's fourth
// dimension and cast; wait_sem/wait_value/signal_* of a disabled wait or signal, shown as name=value when
// not zero), fp32 immediates print as %.9g (exact) or nan:0xBITS. model::from_assembly parses it back.
std::string disassemble(const Instr& in);

}  // namespace tcemu::isa
