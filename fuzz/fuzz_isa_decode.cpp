// libFuzzer target: a 64-byte instruction -> isa::decode_bytes (isa.h). Properties:
//  - decode_bytes() never throws: for any length it returns an instruction or a non-empty error, and a length
//    other than kInstrBytes is always an error.
//  - What decodes is exactly what was encoded: encode() of the instruction gives back the same 64 bytes (every
//    bit is a field or a reserved zero), and every field the opcode does not own keeps Instr{}'s value.
//  - disassemble() prints it (starting with its mnemonic) without throwing, and model::from_assembly reads
//    that line back to the same instruction on every engine that runs the opcode (isa.h: "It shows every
//    encoded bit ... model::from_assembly parses it back").
// Inputs shorter than 64 bytes are zero-padded and longer ones cut, so every input is an instruction.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>

#include "fuzz_check.h"
#include "tcemu/assembly.h"
#include "tcemu/isa.h"
#include "tcemu/model.h"

namespace {

using namespace tcemu;

std::string hex(std::span<const uint8_t> b) {
  std::string s;
  char buf[4];
  for (uint8_t v : b) {
    std::snprintf(buf, sizeof buf, "%02x", v);
    s += buf;
  }
  return s;
}

// The instruction as the only one of a stream on `engine`, through the text assembly.
isa::Instr through_assembly(const std::string& line, int engine) {
  const std::string text = ".model \"fuzz\"\n.config \"tc1-8\"\n.array rows=8 cols=8\n.hbm_window_bytes 0\n.stream " +
                           isa::engine_name(engine) + "\n  " + line + "\n";
  const model::Model m = model::from_assembly(text, "fuzz.s");
  fuzz::check(m.streams.size() == 1 && m.streams[0].instrs.size() == 1, "one instruction read back from: " + line);
  return m.streams[0].instrs[0];
}

bool same(const isa::Instr& a, const isa::Instr& b) {
  if (a.opcode != b.opcode) return false;
  for (const auto& f : isa::fields())
    if (a.*f.member != b.*f.member) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const isa::Decoded raw = isa::decode_bytes(std::span<const uint8_t>(data, size));
  if (size != isa::kInstrBytes) fuzz::check(!raw.instr && !raw.error.empty(), "a wrong length is an error");

  std::array<uint8_t, isa::kInstrBytes> bytes{};
  std::memcpy(bytes.data(), data, std::min(size, bytes.size()));
  const isa::Decoded d = isa::decode_bytes(bytes);
  if (!d.instr) {
    fuzz::check(!d.error.empty(), "an instruction that does not decode has an error message");
    return 0;
  }
  const isa::Instr& in = *d.instr;
  const isa::OpcodeInfo* info = isa::find_opcode(uint8_t(in.opcode));
  fuzz::check(info != nullptr, "a decoded opcode is in the table");

  std::array<uint8_t, isa::kInstrBytes> again{};
  isa::encode_to(in, again);
  fuzz::check(again == bytes, "encode(decode(x)) == x: " + hex(bytes) + " re-encodes as " + hex(again));

  // Fields are shared between opcodes (np of every compute opcode, k and m of matmul and pe_transpose):
  // a member is another opcode's only when no field of this opcode is stored in it.
  const isa::Instr defaults;
  auto owned = [&](uint64_t isa::Instr::*member) {
    for (const auto& f : isa::fields())
      if (f.member == member && (f.owner == isa::Opcode::Invalid || f.owner == in.opcode)) return true;
    return false;
  };
  for (const auto& f : isa::fields())
    if (!owned(f.member))
      fuzz::check(in.*f.member == defaults.*f.member, std::string("field '") + f.name + "' of another opcode is set");

  const std::string line = isa::disassemble(in);
  fuzz::check(line.rfind(info->mnemonic, 0) == 0, "disassembly starts with the mnemonic: " + line);
  for (int e = 0; e < isa::kMaxEngines; ++e) {
    if (e > isa::kEngineScalar && e < isa::kEngineDma0) continue;  // ids no engine has
    if (!isa::engine_accepts(e, in.opcode)) continue;
    fuzz::check(same(through_assembly(line, e), in), "from_assembly(disassemble(i)) == i for " + line);
    if (e >= isa::kEngineDma0) break;  // the DMA queues read it alike
  }
  return 0;
}
