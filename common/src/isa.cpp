#include "tcemu/isa.h"

#include <cstdio>
#include <cstring>

#include "tcemu/error.h"

namespace tcemu::isa {

std::string engine_name(int engine) {
  if (engine == kEngineTensor) return "tensor";
  if (engine == kEngineVector) return "vector";
  if (engine == kEngineScalar) return "scalar";
  if (engine >= kEngineDma0 && engine < kMaxEngines) return "dma" + std::to_string(engine - kEngineDma0);
  return "engine" + std::to_string(engine);
}

const char* space_name(uint64_t space) {
  switch (space) {
    case uint64_t(Space::kHbm): return "hbm";
    case uint64_t(Space::kSbuf): return "sbuf";
    case uint64_t(Space::kPsum): return "psum";
  }
  return "invalid-space";
}

const char* dtype_name(uint64_t code) {
  switch (code) {
#define TCEMU_X(name, c, str, bytes) \
  case c: return str;
    TCEMU_DTYPES(TCEMU_X)
#undef TCEMU_X
  }
  return nullptr;
}

uint32_t dtype_bytes(uint64_t code) {
  switch (code) {
#define TCEMU_X(name, c, str, bytes) \
  case c: return bytes;
    TCEMU_DTYPES(TCEMU_X)
#undef TCEMU_X
  }
  return 0;
}

const char* alu_op_name(uint64_t code) {
  switch (code) {
#define TCEMU_X(name, c, mnem, doc) \
  case c: return mnem;
    TCEMU_ALU_OPS(TCEMU_X)
#undef TCEMU_X
  }
  return nullptr;
}

const char* act_func_name(uint64_t code) {
  switch (code) {
#define TCEMU_X(name, c, mnem, doc) \
  case c: return mnem;
    TCEMU_ACT_FUNCS(TCEMU_X)
#undef TCEMU_X
  }
  return nullptr;
}

// Operand word layout (isa.h): space 1:0, dtype 3:2, part 11:4, off 31:12, s0 47:32, s1 63:48.
uint64_t pack_operand(const TensorOperand& t) {
  auto check = [](const char* what, uint64_t v, int bits) {
    if (v >> bits)
      throw Error(ErrorCode::kEncoding, std::string("tensor operand: ") + what + " " + std::to_string(v) +
                                            " does not fit in " + std::to_string(bits) + " bits");
    return v;
  };
  return check("space", uint64_t(t.space), 2) | check("dtype", uint64_t(t.dtype), 2) << 2 |
         check("part", t.part, 8) << 4 | check("off", t.off, 20) << 12 | check("s0", t.s0, 16) << 32 |
         check("s1", t.s1, 16) << 48;
}

TensorOperand unpack_operand(uint64_t w) {
  TensorOperand t;
  t.space = Space(w & 3);
  t.dtype = DType((w >> 2) & 3);
  t.part = uint32_t((w >> 4) & 0xFF);
  t.off = uint32_t((w >> 12) & 0xFFFFF);
  t.s0 = uint32_t((w >> 32) & 0xFFFF);
  t.s1 = uint32_t((w >> 48) & 0xFFFF);
  return t;
}

namespace {

constexpr FieldInfo kFields[] = {
#define TCEMU_X(owner, field, word, lsb, width, doc) {Opcode::owner, #field, word, lsb, width, doc, &Instr::field},
    TCEMU_FIELDS(TCEMU_X)
#undef TCEMU_X
};

constexpr OpcodeInfo kOpcodes[] = {
#define TCEMU_X(name, code, cls, mnem, doc) {Opcode::name, code, cls, mnem, doc},
    TCEMU_OPCODES(TCEMU_X)
#undef TCEMU_X
};

constexpr uint64_t mask_of(int width) { return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1; }

bool field_applies(const FieldInfo& f, Opcode op) { return f.owner == Opcode::Invalid || f.owner == op; }

bool is_compute(Opcode op) {
  const OpcodeInfo* info = find_opcode(uint8_t(op));
  return info && (info->engine_class == EngineClass::kVector || info->engine_class == EngineClass::kScalar);
}

// "sbuf[p3+0x40]:f32" for a column operand; a tensor operand adds ":strides(s0,s1)".
std::string operand_text(uint64_t w, bool tensor) {
  const TensorOperand t = unpack_operand(w);
  const char* dt = dtype_name(uint64_t(t.dtype));
  std::string s = (t.space == Space::kSbuf || t.space == Space::kPsum) ? space_name(uint64_t(t.space))
                                                                      : "space" + std::to_string(int(t.space));
  char buf[64];
  std::snprintf(buf, sizeof buf, "[p%u+0x%x]:", t.part, t.off);
  s += buf;
  s += dt ? dt : "dtype" + std::to_string(int(t.dtype));
  if (tensor) s += ":strides(" + std::to_string(t.s0) + "," + std::to_string(t.s1) + ")";
  return s;
}

// Readable values of the VectorE/ScalarE fields: operands, op and function names, fp32 immediates,
// signed iota steps. Returns false for fields printed as plain numbers.
bool format_compute_field(Opcode op, const char* name, uint64_t v, std::string& s) {
  if (!is_compute(op)) return false;
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (std::strcmp(name, n) == 0) return true;
    return false;
  };
  auto named = [&](const char* n) {
    s += n ? std::string(n) : std::to_string(v);
    return true;
  };
  char buf[48];
  if (is({"out", "in0", "in1", "in2"})) s += operand_text(v, true);
  else if (is({"col0", "col1", "scale_col", "bias_col", "acc_col"})) s += operand_text(v, false);
  else if (is({"op", "op0", "op1"})) return named(alu_op_name(v));
  else if (is({"func"})) return named(act_func_name(v));
  else if (is({"imm0", "imm1", "scale_imm"})) {
    // %.9g gives back the same float through strtof for every non-NaN value (-0 and +-inf included); a
    // NaN shows its bits, payload and sign, as nan:0x7fc00000.
    float f;
    const uint32_t u = uint32_t(v);
    std::memcpy(&f, &u, 4);
    if (f != f) std::snprintf(buf, sizeof buf, "nan:0x%08x", unsigned(u));
    else std::snprintf(buf, sizeof buf, "%.9g", double(f));
    s += buf;
  } else if (is({"base", "pstep", "fstep"})) s += std::to_string(int32_t(uint32_t(v)));
  else if (is({"value"})) {
    std::snprintf(buf, sizeof buf, "0x%08x", unsigned(v));
    s += buf;
  } else return false;
  return true;
}

}  // namespace

std::span<const FieldInfo> fields() { return kFields; }
std::span<const OpcodeInfo> opcodes() { return kOpcodes; }

const OpcodeInfo* find_opcode(uint8_t code) {
  for (const auto& o : kOpcodes)
    if (o.code == code) return &o;
  return nullptr;
}

const OpcodeInfo* find_mnemonic(const std::string& m) {
  for (const auto& o : kOpcodes)
    if (m == o.mnemonic) return &o;
  return nullptr;
}

bool engine_accepts(int engine, Opcode op) {
  const OpcodeInfo* info = find_opcode(uint8_t(op));
  if (!info) return false;
  switch (info->engine_class) {
    case EngineClass::kAny: return true;
    case EngineClass::kTensor: return engine == kEngineTensor;
    case EngineClass::kDma: return engine >= kEngineDma0 && engine < kMaxEngines;
    case EngineClass::kVector: return engine == kEngineVector;
    case EngineClass::kScalar: return engine == kEngineScalar;
  }
  return false;
}

Words encode(const Instr& in) {
  const OpcodeInfo* info = find_opcode(uint8_t(in.opcode));
  if (!info) throw Error(ErrorCode::kEncoding, "encode: unknown opcode " + std::to_string(int(in.opcode)));
  Words w{};
  w[0] = uint8_t(in.opcode);
  for (const auto& f : kFields) {
    uint64_t v = in.*f.member;
    if (!field_applies(f, in.opcode)) continue;
    if (v & ~mask_of(f.width))
      throw Error(ErrorCode::kEncoding, std::string("encode ") + info->mnemonic + ": field '" + f.name + "' value " +
                                            std::to_string(v) + " does not fit in " + std::to_string(f.width) +
                                            " bits");
    w[f.word] |= v << f.lsb;
  }
  return w;
}

void encode_to(const Instr& in, std::span<uint8_t, kInstrBytes> out) {
  Words w = encode(in);
  for (size_t i = 0; i < kInstrWords; ++i)
    for (int b = 0; b < 8; ++b) out[i * 8 + b] = uint8_t(w[i] >> (8 * b));
}

std::vector<uint8_t> encode_stream(std::span<const Instr> instrs) {
  std::vector<uint8_t> code(instrs.size() * kInstrBytes);
  for (size_t i = 0; i < instrs.size(); ++i)
    encode_to(instrs[i], std::span<uint8_t, kInstrBytes>(code.data() + i * kInstrBytes, kInstrBytes));
  return code;
}

Decoded decode(const Words& w) {
  Decoded d;
  uint8_t code = uint8_t(w[0] & 0xFF);
  const OpcodeInfo* info = find_opcode(code);
  if (!info) {
    d.error = "unknown opcode 0x" + [&] {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02x", code);
      return std::string(buf);
    }();
    return d;
  }
  Instr in;
  in.opcode = info->opcode;
  Words covered{};
  covered[0] = 0xFF;
  for (const auto& f : kFields) {
    if (!field_applies(f, in.opcode)) continue;
    in.*f.member = (w[f.word] >> f.lsb) & mask_of(f.width);
    covered[f.word] |= mask_of(f.width) << f.lsb;
  }
  for (size_t i = 0; i < kInstrWords; ++i) {
    if (w[i] & ~covered[i]) {
      d.error = std::string(info->mnemonic) + ": reserved bits set in word " + std::to_string(i);
      return d;
    }
  }
  d.instr = in;
  return d;
}

Decoded decode_bytes(std::span<const uint8_t> bytes) {
  if (bytes.size() != kInstrBytes) {
    Decoded d;
    d.error = "instruction must be " + std::to_string(kInstrBytes) + " bytes, got " + std::to_string(bytes.size());
    return d;
  }
  Words w{};
  for (size_t i = 0; i < kInstrWords; ++i)
    for (int b = 0; b < 8; ++b) w[i] |= uint64_t(bytes[i * 8 + b]) << (8 * b);
  return decode(w);
}

namespace {

// dma_copy fields left out of the disassembly while they hold their defaults (no fourth dimension, no
// cast), so that a plain copy reads as it always did.
bool dma_default_field(const Instr& in, const char* name) {
  if (in.opcode != Opcode::DmaCopy) return false;
  auto is = [&](const char* n) { return std::strcmp(name, n) == 0; };
  if (is("d3_count") || is("src_d3_stride") || is("dst_d3_stride"))
    return in.d3_count == 1 && in.src_d3_stride == 0 && in.dst_d3_stride == 0;
  if (is("cast") || is("src_dtype") || is("dst_dtype")) return in.cast == 0 && in.src_dtype == 0 && in.dst_dtype == 0;
  return false;
}

}  // namespace

std::string disassemble(const Instr& in) {
  const OpcodeInfo* info = find_opcode(uint8_t(in.opcode));
  if (!info) return "<invalid>";
  std::string s = info->mnemonic;
  for (const auto& f : kFields) {
    if (f.owner != in.opcode || dma_default_field(in, f.name)) continue;
    s += ' ';
    s += f.name;
    s += '=';
    uint64_t v = in.*f.member;
    bool is_addr = (in.opcode == Opcode::DmaCopy) && (std::strcmp(f.name, "src") == 0 || std::strcmp(f.name, "dst") == 0);
    if (is_addr) {
      // A space with no name (3..15) shows its number, as the operands' "space3" does.
      const uint64_t sp = addr_space(v);
      const std::string space = sp <= uint64_t(Space::kPsum) ? space_name(sp) : "space" + std::to_string(sp);
      char buf[40];
      std::snprintf(buf, sizeof buf, "%s:0x%llx", space.c_str(), (unsigned long long)addr_offset(v));
      s += buf;
    } else if (in.opcode == Opcode::DmaCopy && in.cast && std::strstr(f.name, "_dtype") && dtype_name(v)) {
      s += dtype_name(v);
    } else if (!format_compute_field(in.opcode, f.name, v, s)) {
      s += std::to_string(v);
    }
  }
  if (in.wait_en) s += " wait=s" + std::to_string(in.wait_sem) + ">=" + std::to_string(in.wait_value);
  if (in.signal_en)
    s += " signal=s" + std::to_string(in.signal_sem) + (in.signal_set ? "=" : "+=") + std::to_string(in.signal_value);
  // Synchronisation fields that a disabled wait or signal leaves unshown, when they are not zero: they are
  // still encoded, and the line must say every bit of the instruction (model::from_assembly reads it back).
  auto hidden = [&](bool shown, const char* name, uint64_t v) {
    if (!shown && v != 0) s += std::string(" ") + name + "=" + std::to_string(v);
  };
  hidden(in.wait_en, "wait_sem", in.wait_sem);
  hidden(in.wait_en, "wait_value", in.wait_value);
  hidden(in.signal_en, "signal_set", in.signal_set);
  hidden(in.signal_en, "signal_sem", in.signal_sem);
  hidden(in.signal_en, "signal_value", in.signal_value);
  return s;
}

}  // namespace tcemu::isa
