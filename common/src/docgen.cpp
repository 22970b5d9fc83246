#include "tcemu/docgen.h"

#include <fmt/format.h>

#include <string_view>

#include "tcemu/isa.h"
#include "tcemu/regs.h"

namespace tcemu {

std::string isa_markdown() {
  std::string s = "| opcode | mnemonic | engines | summary |\n| --- | --- | --- | --- |\n";
  for (const auto& o : isa::opcodes()) {
    const char* eng = o.engine_class == isa::EngineClass::kAny      ? "any"
                      : o.engine_class == isa::EngineClass::kTensor ? "tensor"
                      : o.engine_class == isa::EngineClass::kVector ? "vector"
                      : o.engine_class == isa::EngineClass::kScalar ? "scalar"
                                                                    : "dma queues";
    s += fmt::format("| 0x{:02x} | `{}` | {} | {} |\n", o.code, o.mnemonic, eng, o.doc);
  }
  s += "\n| field | opcode | word | bits | description |\n| --- | --- | --- | --- | --- |\n";
  // A field that several opcodes place identically (same name, bits and description) is one row listing
  // them all, at its first occurrence.
  auto same = [](const isa::FieldInfo& a, const isa::FieldInfo& b) {
    return std::string_view(a.name) == b.name && a.word == b.word && a.lsb == b.lsb && a.width == b.width &&
           std::string_view(a.doc) == b.doc;
  };
  const auto fields = isa::fields();
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto& f = fields[i];
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = same(fields[j], f);
    if (seen) continue;
    std::string owners;
    size_t compute_owners = 0, compute_opcodes = 0;
    for (const auto& o : isa::opcodes())
      compute_opcodes += o.engine_class == isa::EngineClass::kVector || o.engine_class == isa::EngineClass::kScalar;
    for (size_t j = i; j < fields.size(); ++j) {
      if (!same(fields[j], f)) continue;
      const isa::OpcodeInfo* o = isa::find_opcode(uint8_t(fields[j].owner));
      owners += (owners.empty() ? "" : ", ") + std::string(o ? o->mnemonic : "all");
      compute_owners += o && (o->engine_class == isa::EngineClass::kVector || o->engine_class == isa::EngineClass::kScalar);
    }
    if (compute_owners > 1 && compute_owners == compute_opcodes) owners = "all vector and scalar";
    s += fmt::format("| `{}` | {} | {} | {}:{} | {} |\n", f.name, owners, f.word, f.lsb + f.width - 1, f.lsb, f.doc);
  }
  s += "\n| dtype | code | bytes |\n| --- | --- | --- |\n";
#define TCEMU_X(name, code, str, bytes) s += fmt::format("| `{}` | {} | {} |\n", str, code, bytes);
  TCEMU_DTYPES(TCEMU_X)
#undef TCEMU_X
  s += "\n| ALU op | code | result |\n| --- | --- | --- |\n";
#define TCEMU_X(name, code, mnem, doc) s += fmt::format("| `{}` | {} | {} |\n", mnem, code, doc);
  TCEMU_ALU_OPS(TCEMU_X)
#undef TCEMU_X
  s += "\n| activation `func` | code | f(x) |\n| --- | --- | --- |\n";
#define TCEMU_X(name, code, mnem, doc) s += fmt::format("| `{}` | {} | {} |\n", mnem, code, doc);
  TCEMU_ACT_FUNCS(TCEMU_X)
#undef TCEMU_X
  return s;
}

std::string registers_markdown() {
  std::string s = "| offset | name | access | description |\n| --- | --- | --- | --- |\n";
  for (const auto& r : regs::kRegs) {
    const char* acc = r.access == regs::Access::RO ? "RO" : r.access == regs::Access::RW ? "RW" : r.access == regs::Access::W1C ? "W1C" : "WO";
    s += fmt::format("| 0x{:03x} | `{}` | {} | {} |\n", r.offset, r.name, acc, r.doc);
  }
  return s;
}

std::string faults_markdown() {
  std::string s = "| code | name | meaning |\n| --- | --- | --- |\n";
#define TCEMU_X(name, code, doc) s += fmt::format("| {} | `{}` | {} |\n", code, #name, doc);
  TCEMU_FAULTS(TCEMU_X)
#undef TCEMU_X
  return s;
}

}  // namespace tcemu

#include "tcemu/docblock.h"

namespace tcemu {

std::optional<std::string> generated_block(const std::string& name) {
  if (name == "isa") return isa_markdown();
  if (name == "registers") return registers_markdown();
  if (name == "faults") return faults_markdown();
  return std::nullopt;
}

namespace {
struct Span {
  size_t begin, end;  // content range
};
std::optional<Span> find_block(const std::string& doc, const std::string& name) {
  const std::string open = "<!-- generated: " + name + " -->\n", close = "<!-- end generated -->";
  size_t b = doc.find(open);
  if (b == std::string::npos) return std::nullopt;
  b += open.size();
  size_t e = doc.find(close, b);
  if (e == std::string::npos) return std::nullopt;
  return Span{b, e};
}
}  // namespace

std::optional<std::string> extract_block(const std::string& doc, const std::string& name) {
  auto s = find_block(doc, name);
  if (!s) return std::nullopt;
  return doc.substr(s->begin, s->end - s->begin);
}

std::optional<std::string> replace_block(const std::string& doc, const std::string& name, const std::string& content) {
  auto s = find_block(doc, name);
  if (!s) return std::nullopt;
  return doc.substr(0, s->begin) + content + doc.substr(s->end);
}

}  // namespace tcemu
