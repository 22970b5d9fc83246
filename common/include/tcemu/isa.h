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
inline constexpr int kEngineVector = 1;  // reserved: VectorE arrives with the whole-core work
inline constexpr int kEngineScalar = 2;  // reserved: ScalarE
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

// Engine classes an opcode may run on.
enum class EngineClass : uint8_t { kAny, kTensor, kDma };

// X(Name, code, engine class, mnemonic, summary)
#define TCEMU_OPCODES(X)                                                                       \
  X(Nop, 0x01, EngineClass::kAny, "nop", "no operation; waits/signals semaphores only")       \
  X(DmaCopy, 0x10, EngineClass::kDma, "dma_copy",                                             \
    "copy bytes between HBM, SBUF and PSUM with a 3-D access pattern on both sides")          \
  X(Matmul, 0x20, EngineClass::kTensor, "matmul",                                             \
    "PSUM[out] = (or +=) W^T X: stationary W [k x m], moving X [k x n], bf16 in SBUF, fp32 out")

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
  // dma_copy
  uint64_t src = 0, dst = 0, bytes = 0, d1_count = 0, d2_count = 0;
  uint64_t src_d1_stride = 0, dst_d1_stride = 0, src_d2_stride = 0, dst_d2_stride = 0;
  // matmul
  uint64_t k = 0, m = 0, n = 0, accumulate = 0;
  uint64_t st_part = 0, mv_part = 0, out_part = 0, st_off = 0, mv_off = 0, out_off = 0;
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
  X(DmaCopy, src, 1, 0, 48, "source device address (space in bits 47:44)")                     \
  X(DmaCopy, dst, 2, 0, 48, "destination device address")                                      \
  X(DmaCopy, bytes, 3, 0, 32, "contiguous bytes per innermost run (>= 1)")                     \
  X(DmaCopy, d1_count, 3, 32, 16, "runs in dimension 1 (>= 1)")                                \
  X(DmaCopy, d2_count, 3, 48, 16, "repetitions in dimension 2 (>= 1)")                         \
  X(DmaCopy, src_d1_stride, 4, 0, 32, "source byte stride of dimension 1")                     \
  X(DmaCopy, dst_d1_stride, 4, 32, 32, "destination byte stride of dimension 1")               \
  X(DmaCopy, src_d2_stride, 5, 0, 32, "source byte stride of dimension 2")                     \
  X(DmaCopy, dst_d2_stride, 5, 32, 32, "destination byte stride of dimension 2")               \
  X(Matmul, k, 1, 0, 16, "contraction rows K (1..array rows)")                                 \
  X(Matmul, m, 1, 16, 16, "stationary columns M = output partitions (1..array cols)")          \
  X(Matmul, n, 1, 32, 16, "moving columns N (1..512, one PSUM bank of fp32)")                  \
  X(Matmul, accumulate, 1, 48, 1, "0: overwrite PSUM; 1: add to PSUM")                         \
  X(Matmul, st_part, 2, 0, 16, "first SBUF partition of the stationary W")                     \
  X(Matmul, mv_part, 2, 16, 16, "first SBUF partition of the moving X")                        \
  X(Matmul, out_part, 2, 32, 16, "first PSUM partition of the output")                         \
  X(Matmul, st_off, 3, 0, 32, "byte offset of W in its partitions (bf16, 2-aligned)")          \
  X(Matmul, mv_off, 3, 32, 32, "byte offset of X in its partitions (bf16, 2-aligned)")         \
  X(Matmul, out_off, 4, 0, 32, "byte offset of the output in its PSUM partitions (fp32, 4-aligned)")

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
// Decoding returns the instruction or a message naming the problem (unknown opcode, reserved bits set).
struct Decoded {
  std::optional<Instr> instr;
  std::string error;
};
Decoded decode(const Words& w);
Decoded decode_bytes(std::span<const uint8_t> bytes);  // exactly kInstrBytes
// One line of assembly: "matmul k=16 m=16 n=64 ... [wait s3>=1] [signal s4+=1]"
std::string disassemble(const Instr& in);

}  // namespace tcemu::isa
