// Text assembly of models (docs/model-format.md, "Text assembly"). Instruction lines are isa::disassemble's;
// the reader below parses every form it prints (isa.cpp, format_compute_field and disassemble), field by
// field through isa::fields(), so a field added to the table is read back without a change here unless
// the disassembler gives it a form of its own.
#include "tcemu/assembly.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "tcemu/error.h"
#include "tcemu/isa.h"

namespace tcemu::model {

namespace {

constexpr uint64_t mask_of(int width) { return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1; }

// ---- writing ----------------------------------------------------------------------------------------

// A string in double quotes: `"` and `\` escaped, control bytes as \xNN, every other byte as it is.
std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (u < 0x20 || u == 0x7F) o += fmt::format("\\x{:02x}", unsigned(u));
    else o += c;
  }
  return o + "\"";
}

constexpr size_t kDataBytesPerLine = 32, kDataGroup = 4;

std::string plural(size_t n, const char* what) { return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s"); }

}  // namespace

std::string to_assembly(const Model& m) {
  std::string s = fmt::format("# tcemu model assembly (docs/model-format.md, \"Text assembly\"): {}, {}, {}\n",
                              plural(m.tensors.size(), "tensor"), plural(m.streams.size(), "stream"),
                              plural(m.instruction_count(), "instruction"));
  s += ".model " + quote(m.name) + "\n";
  s += ".config " + quote(m.config_name) + "\n";
  s += fmt::format(".array rows={} cols={}\n", m.array_rows, m.array_cols);
  s += fmt::format(".hbm_window_bytes 0x{:x}\n", m.hbm_window_bytes);
  if (!m.tensors.empty()) s += "\n# tensors in table order: name, dtype, kind, shape, place in the HBM window\n";
  for (const Tensor& t : m.tensors) {
    std::string shape;
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (d) shape += ',';
      shape += std::to_string(t.shape[d]);
    }
    s += fmt::format(".tensor {} {} {} shape=[{}] hbm_offset=0x{:x} bytes={}\n", quote(t.name), dtype_name(t.dtype),
                     kind_name(t.kind), shape, t.hbm_offset, t.bytes);
    for (size_t i = 0; i < t.data.size(); i += kDataBytesPerLine) {
      s += "  .data";
      for (size_t j = i; j < std::min(t.data.size(), i + kDataBytesPerLine); ++j) {
        if ((j - i) % kDataGroup == 0) s += ' ';
        s += fmt::format("{:02x}", unsigned(t.data[j]));
      }
      s += '\n';
    }
  }
  for (const Stream& st : m.streams) {
    s += fmt::format("\n.stream {}  # {}\n", isa::engine_name(st.engine), plural(st.instrs.size(), "instruction"));
    for (const isa::Instr& in : st.instrs) s += "  " + isa::disassemble(in) + "\n";
  }
  return s;
}

namespace {

// ---- reading ----------------------------------------------------------------------------------------

struct Token {
  std::string_view text;
  size_t col = 0;  // 1-based byte column of its first character
};

// One line of the source: its tokens and the error reporter that names source:line:column.
class Line {
 public:
  Line(const std::string& source, size_t number, std::string_view text) : source_(source), number_(number), text_(text) {
    lex();
  }
  size_t number() const { return number_; }
  const std::vector<Token>& tokens() const { return tokens_; }
  size_t end_col() const { return text_.size() + 1; }

  [[noreturn]] void fail(size_t col, const std::string& what) const {
    throw Error(ErrorCode::kFormat, fmt::format("{}:{}:{}: {}", source_, number_, col, what));
  }
  // "<what>: expected <expected>, found '<found>'"
  [[noreturn]] void fail(size_t col, const std::string& what, const std::string& expected, std::string_view found) const {
    fail(col, fmt::format("{}: expected {}, found '{}'", what, expected, printable(found)));
  }
  static std::string printable(std::string_view s) {
    std::string o;
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7F) o += fmt::format("\\x{:02x}", unsigned(u));
      else o += c;
    }
    return o;
  }

 private:
  // Tokens are separated by blanks; a quoted string ("...", with \-escapes) and a bracketed group ([...],
  // (...)) are parts of a token even when they hold blanks. `#` outside a string starts a comment.
  void lex() {
    size_t i = 0;
    const size_t n = text_.size();
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
    while (true) {
      while (i < n && blank(text_[i])) ++i;
      if (i >= n || text_[i] == '#') return;
      const size_t start = i;
      int depth = 0;
      while (i < n && (depth > 0 || !blank(text_[i])) && text_[i] != '#') {
        const char c = text_[i];
        if (c == '"') {
          const size_t open = i++;
          while (i < n && text_[i] != '"') i += text_[i] == '\\' ? 2 : 1;
          if (i >= n) fail(open + 1, "unterminated string", "a closing '\"'", text_.substr(open));
        } else if (c == '[' || c == '(') {
          ++depth;
        } else if ((c == ']' || c == ')') && depth > 0) {
          --depth;
        }
        ++i;
      }
      tokens_.push_back({text_.substr(start, i - start), start + 1});
    }
  }

  const std::string& source_;
  size_t number_;
  std::string_view text_;
  std::vector<Token> tokens_;
};

// An unsigned integer: decimal, or hexadecimal with 0x. nullopt if `s` is not one or exceeds 64 bits.
std::optional<uint64_t> to_u64(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s.remove_prefix(2);
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return std::nullopt;
    if (v > (~uint64_t(0) - uint64_t(d)) / uint64_t(base)) return std::nullopt;
    v = v * uint64_t(base) + uint64_t(d);
  }
  return v;
}

// A cursor over one token, for values with inner structure (operands, addresses, wait/signal).
struct Cursor {
  const Line& line;
  Token tok;
  size_t pos = 0;

  size_t col() const { return tok.col + pos; }
  bool done() const { return pos >= tok.text.size(); }
  void ws() {
    while (!done() && (tok.text[pos] == ' ' || tok.text[pos] == '\t')) ++pos;
  }
  bool eat(std::string_view lit) {
    ws();
    if (tok.text.substr(pos, lit.size()) != lit) return false;
    pos += lit.size();
    return true;
  }
  // A run of letters, digits and underscores.
  std::string_view word() {
    ws();
    const size_t start = pos;
    while (!done() && (std::isalnum(static_cast<unsigned char>(tok.text[pos])) || tok.text[pos] == '_')) ++pos;
    return tok.text.substr(start, pos - start);
  }
  uint64_t number(const std::string& what, uint64_t max) {
    const size_t c = col();
    const std::string_view w = word();
    const auto v = to_u64(w);
    if (!v || *v > max) line.fail(c, what, fmt::format("an integer 0..{}", max), w.empty() ? tok.text.substr(pos, 1) : w);
    return *v;
  }
  void expect(std::string_view lit, const std::string& what) {
    if (!eat(lit)) {
      ws();
      line.fail(col(), what, fmt::format("'{}'", lit), done() ? std::string_view("end of the value") : tok.text.substr(pos));
    }
  }
  void end(const std::string& what) {
    ws();
    if (!done()) line.fail(col(), what, "the end of the value", tok.text.substr(pos));
  }
};

// A string token: "..." with \\, \", \n, \t and \xNN escapes.
std::string unquote(const Line& line, const Token& t, const std::string& what) {
  const std::string_view s = t.text;
  if (s.size() < 2 || s.front() != '"' || s.back() != '"')
    line.fail(t.col, what, "a string in double quotes", s);
  std::string o;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] != '\\') {
      o += s[i];
      continue;
    }
    const char e = i + 2 < s.size() ? s[i + 1] : '\0';
    if (e == '\\' || e == '"') o += e, ++i;
    else if (e == 'n') o += '\n', ++i;
    else if (e == 't') o += '\t', ++i;
    else if (e == 'x' && i + 4 < s.size()) {
      const auto v = to_u64(std::string("0x") + std::string(s.substr(i + 2, 2)));
      if (!v) line.fail(t.col + i, what + ": bad escape", "\\xNN with two hex digits", s.substr(i, 4));
      o += char(*v);
      i += 3;
    } else {
      line.fail(t.col + i, what + ": bad escape", "one of \\\\ \\\" \\n \\t \\xNN", s.substr(i, 2));
    }
  }
  return o;
}

// key=value tokens of a directive, each key required exactly once.
std::map<std::string, Token> key_values(const Line& line, size_t first, const std::string& directive,
                                        std::initializer_list<const char*> keys) {
  std::map<std::string, Token> out;
  std::string names;
  for (const char* k : keys) names += std::string(names.empty() ? "" : ", ") + k + "=";
  const auto& toks = line.tokens();
  for (size_t i = first; i < toks.size(); ++i) {
    const Token& t = toks[i];
    const size_t eq = t.text.find('=');
    const std::string key(t.text.substr(0, eq == std::string_view::npos ? 0 : eq));
    bool known = false;
    for (const char* k : keys) known |= key == k;
    if (eq == std::string_view::npos || !known) line.fail(t.col, directive + ": unknown operand", names, t.text);
    if (out.count(key)) line.fail(t.col, directive + ": '" + key + "=' given twice", "each of " + names + " once", t.text);
    out[key] = {t.text.substr(eq + 1), t.col + eq + 1};
  }
  for (const char* k : keys)
    if (!out.count(k)) line.fail(line.end_col(), directive + ": missing '" + k + "='", names, "end of line");
  return out;
}

uint64_t number_token(const Line& line, const Token& t, const std::string& what, uint64_t max = ~uint64_t(0)) {
  const auto v = to_u64(t.text);
  if (!v || *v > max) line.fail(t.col, what, fmt::format("an integer 0..{} (decimal or 0x hex)", max), t.text);
  return *v;
}

// ---- instruction fields -------------------------------------------------------------------------------

bool is_compute(isa::Opcode op) {
  const isa::OpcodeInfo* info = isa::find_opcode(uint8_t(op));
  return info && (info->engine_class == isa::EngineClass::kVector || info->engine_class == isa::EngineClass::kScalar);
}

bool named(const char* name, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (std::strcmp(name, n) == 0) return true;
  return false;
}

// A name from a code table (`name_of(code)` non-null for known codes) or the code as a number.
uint64_t code_value(const Line& line, const Token& v, const std::string& what, const char* (*name_of)(uint64_t),
                    int width) {
  if (auto n = to_u64(v.text)) return *n;  // the width check follows
  std::string names;
  for (uint64_t c = 0; c <= mask_of(width) && c < 64; ++c)
    if (const char* n = name_of(c)) {
      if (v.text == n) return c;
      names += std::string(names.empty() ? "" : ", ") + n;
    }
  line.fail(v.col, what, "one of " + names + " or a number", v.text);
}

// "SPACE:0xOFF": hbm, sbuf, psum or spaceN (N = 0..15).
uint64_t address_value(const Line& line, const Token& v, const std::string& what) {
  Cursor c{line, v};
  const size_t at = c.col();
  const std::string_view w = c.word();
  uint64_t space = 0;
  if (w == "hbm") space = uint64_t(isa::Space::kHbm);
  else if (w == "sbuf") space = uint64_t(isa::Space::kSbuf);
  else if (w == "psum") space = uint64_t(isa::Space::kPsum);
  else if (w.substr(0, 5) == "space" && to_u64(w.substr(5)) && *to_u64(w.substr(5)) <= 15) space = *to_u64(w.substr(5));
  else line.fail(at, what, "a device address SPACE:OFFSET (SPACE hbm, sbuf, psum or space0..space15)", v.text);
  c.expect(":", what);
  const uint64_t off = c.number(what + ": offset", isa::kOffsetMask);
  c.end(what);
  return (space << isa::kSpaceShift) | off;
}

// Operand words (isa.h, "Tensor operands"): "sbuf[p3+0x40]:f32:strides(1,16)"; a column has no strides.
uint64_t operand_value(const Line& line, const Token& v, const std::string& what, bool tensor) {
  const std::string form = tensor ? "a tensor operand SPACE[pPART+OFF]:DTYPE:strides(S0,S1)"
                                  : "a column operand SPACE[pPART+OFF]:DTYPE";
  Cursor c{line, v};
  size_t at = c.col();
  std::string_view w = c.word();
  uint64_t space = 0, dtype = 0;
  if (w == "sbuf") space = uint64_t(isa::Space::kSbuf);
  else if (w == "psum") space = uint64_t(isa::Space::kPsum);
  else if (w.substr(0, 5) == "space" && to_u64(w.substr(5)) && *to_u64(w.substr(5)) <= 3) space = *to_u64(w.substr(5));
  else line.fail(at, what + ": space", form + " with SPACE sbuf, psum or space0..space3", w.empty() ? v.text : w);
  c.expect("[", what);
  c.expect("p", what);
  const uint64_t part = c.number(what + ": partition", 255);
  c.expect("+", what);
  const uint64_t off = c.number(what + ": offset", (1u << 20) - 1);
  c.expect("]", what);
  c.expect(":", what);
  at = c.col();
  w = c.word();
  bool known = false;
  for (uint64_t d = 0; d < 4; ++d)
    if (const char* n = isa::dtype_name(d); n && w == n) dtype = d, known = true;
  if (!known && w.substr(0, 5) == "dtype" && to_u64(w.substr(5)) && *to_u64(w.substr(5)) <= 3)
    dtype = *to_u64(w.substr(5)), known = true;
  if (!known) line.fail(at, what + ": dtype", "f32, bf16, i32 or dtype0..dtype3", w.empty() ? v.text.substr(at - v.col) : w);
  uint64_t word = space | dtype << 2 | part << 4 | off << 12;
  if (tensor) {
    c.expect(":", what);
    c.expect("strides", what);
    c.expect("(", what);
    const uint64_t s0 = c.number(what + ": stride s0", 0xFFFF);
    c.expect(",", what);
    const uint64_t s1 = c.number(what + ": stride s1", 0xFFFF);
    c.expect(")", what);
    word |= s0 << 32 | s1 << 48;
  }
  c.end(what);
  return word;
}

// fp32 bits: a float as strtof reads it ("%.9g" gives back every non-NaN value exactly), or nan:0xBITS.
uint64_t f32_value(const Line& line, const Token& v, const std::string& what) {
  const std::string text(v.text);
  if (text.rfind("nan:", 0) == 0) {
    const auto b = to_u64(v.text.substr(4));
    if (!b || *b > 0xFFFFFFFF || (*b & 0x7F800000) != 0x7F800000 || (*b & 0x7FFFFF) == 0)
      line.fail(v.col + 4, what, "the bits of a NaN after nan: (0x7f800001..0x7fffffff or with the sign bit)",
                v.text.substr(4));
    return *b;
  }
  // 0x3f800000 would read as the float 1065353216: fp32 bits are written only for NaNs (nan:0xBITS), and a
  // hexadecimal float needs its exponent (0x1p-1).
  const size_t digits = text.find_first_not_of("+-");
  if (digits != std::string::npos && text.compare(digits, 2, "0x") == 0 && text.find_first_of("pP") == std::string::npos)
    line.fail(v.col, what, "an fp32 value; a hexadecimal float has a p exponent (0x1.8p+0), bits are not a value", v.text);
  errno = 0;
  char* end = nullptr;
  const float f = text.empty() ? 0.0f : std::strtof(text.c_str(), &end);
  const bool said_inf = text.find("inf") != std::string::npos || text.find("INF") != std::string::npos;
  if (text.empty() || end != text.c_str() + text.size() || std::isspace(static_cast<unsigned char>(text[0])) ||
      (std::isinf(f) && !said_inf))
    line.fail(v.col, what, "an fp32 value (e.g. 1.5, -0, 1e-3, inf, nan:0x7fc00000) within fp32 range", v.text);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// A signed 32-bit value (iota): -2^31 .. 2^32-1, stored as its 32 bits.
uint64_t i32_value(const Line& line, const Token& v, const std::string& what) {
  const bool neg = !v.text.empty() && v.text[0] == '-';
  const auto m = to_u64(neg ? v.text.substr(1) : v.text);
  if (!m || (neg && *m > (uint64_t(1) << 31)) || (!neg && *m > 0xFFFFFFFF))
    line.fail(v.col, what, "a signed 32-bit integer (-2147483648..2147483647; or 0..0xffffffff)", v.text);
  return neg ? (uint64_t(0) - *m) & 0xFFFFFFFF : *m;
}

// The value of field `f` of `op` in the form disassemble prints it (or a plain number where it allows).
uint64_t field_value(const Line& line, isa::Opcode op, const isa::FieldInfo& f, const Token& v) {
  const std::string what = fmt::format("field '{}'", f.name);
  if (op == isa::Opcode::DmaCopy && named(f.name, {"src", "dst"})) return address_value(line, v, what);
  if (op == isa::Opcode::DmaCopy && named(f.name, {"src_dtype", "dst_dtype"}))
    return code_value(line, v, what, isa::dtype_name, f.width);
  if (is_compute(op)) {
    if (named(f.name, {"out", "in0", "in1", "in2"})) return operand_value(line, v, what, true);
    if (named(f.name, {"col0", "col1", "scale_col", "bias_col", "acc_col"})) return operand_value(line, v, what, false);
    if (named(f.name, {"op", "op0", "op1"})) return code_value(line, v, what, isa::alu_op_name, f.width);
    if (named(f.name, {"func"})) return code_value(line, v, what, isa::act_func_name, f.width);
    if (named(f.name, {"imm0", "imm1", "scale_imm"})) return f32_value(line, v, what);
    if (named(f.name, {"base", "pstep", "fstep"})) return i32_value(line, v, what);
  }
  const auto n = to_u64(v.text);
  if (!n) line.fail(v.col, what, "an unsigned integer (decimal or 0x hex)", v.text);
  return *n;
}

std::string opcode_list(int engine) {
  std::string s;
  for (const auto& o : isa::opcodes())
    if (engine < 0 || isa::engine_accepts(engine, o.opcode)) s += std::string(s.empty() ? "" : ", ") + o.mnemonic;
  return s;
}

isa::Instr parse_instruction(const Line& line, int engine) {
  const auto& toks = line.tokens();
  const Token& mn = toks[0];
  const isa::OpcodeInfo* info = isa::find_mnemonic(std::string(mn.text));
  if (!info) line.fail(mn.col, "unknown mnemonic", "an opcode (" + opcode_list(-1) + ") or a directive", mn.text);
  if (!isa::engine_accepts(engine, info->opcode))
    line.fail(mn.col, fmt::format("engine {} does not run {}", isa::engine_name(engine), info->mnemonic),
              "one of " + opcode_list(engine), mn.text);
  isa::Instr in;
  in.opcode = info->opcode;
  std::set<std::string> seen;
  auto once = [&](const Token& t, const char* name) {
    if (!seen.insert(name).second)
      line.fail(t.col, fmt::format("field '{}' given twice", name), "each field at most once", t.text);
  };
  auto field_names = [&] {
    std::string s = "wait=, signal=";
    for (const auto& f : isa::fields())
      if (f.owner == in.opcode || f.owner == isa::Opcode::Invalid) s += std::string(", ") + f.name + "=";
    return s;
  };
  for (size_t i = 1; i < toks.size(); ++i) {
    const Token& t = toks[i];
    const size_t eq = t.text.find('=');
    if (eq == std::string_view::npos || eq == 0)
      line.fail(t.col, fmt::format("{} operand", info->mnemonic), "name=value", t.text);
    const std::string name(t.text.substr(0, eq));
    const Token v{t.text.substr(eq + 1), t.col + eq + 1};
    if (name == "wait") {  // wait=sN>=V
      for (const char* n : {"wait_en", "wait_sem", "wait_value"}) once(t, n);
      Cursor c{line, v};
      c.expect("s", "wait");
      in.wait_sem = c.number("wait: semaphore", 255);
      c.expect(">=", "wait");
      in.wait_value = c.number("wait: value", 0xFFFFFFFF);
      c.end("wait");
      in.wait_en = 1;
      continue;
    }
    if (name == "signal") {  // signal=sN+=V or signal=sN=V
      for (const char* n : {"signal_en", "signal_set", "signal_sem", "signal_value"}) once(t, n);
      Cursor c{line, v};
      c.expect("s", "signal");
      in.signal_sem = c.number("signal: semaphore", 255);
      if (c.eat("+=")) in.signal_set = 0;
      else if (c.eat("=")) in.signal_set = 1;
      else line.fail(c.col(), "signal", "'+=' (add) or '=' (set) after the semaphore", c.tok.text.substr(c.pos));
      in.signal_value = c.number("signal: value", 0xFFFFFFFF);
      c.end("signal");
      in.signal_en = 1;
      continue;
    }
    const isa::FieldInfo* field = nullptr;
    for (const auto& f : isa::fields())
      if ((f.owner == in.opcode || f.owner == isa::Opcode::Invalid) && name == f.name) field = &f;
    if (!field) line.fail(t.col, fmt::format("{} has no field '{}'", info->mnemonic, name), "one of " + field_names(), t.text);
    once(t, field->name);
    const uint64_t x = field_value(line, in.opcode, *field, v);
    if (x & ~mask_of(field->width))
      line.fail(v.col, fmt::format("field '{}' does not fit in {} bits", field->name, field->width),
                fmt::format("0..{}", mask_of(field->width)), v.text);
    in.*field->member = x;
  }
  return in;
}

int engine_value(const Line& line, const Token& t) {
  for (int e = 0; e < isa::kMaxEngines; ++e)
    if (e < 3 || e >= isa::kEngineDma0)
      if (t.text == isa::engine_name(e)) return e;
  line.fail(t.col, ".stream: unknown engine", "tensor, vector, scalar or dma0..dma15", t.text);
}

DType tensor_dtype(const Line& line, const Token& t) {
  for (DType d : {DType::kBf16, DType::kF32})
    if (t.text == dtype_name(d)) return d;
  line.fail(t.col, ".tensor: unknown dtype", "bf16 or f32", t.text);
}

TensorKind tensor_kind(const Line& line, const Token& t) {
  for (TensorKind k : {TensorKind::kInput, TensorKind::kOutput, TensorKind::kConst, TensorKind::kScratch})
    if (t.text == kind_name(k)) return k;
  line.fail(t.col, ".tensor: unknown kind", "input, output, const or scratch", t.text);
}

std::vector<int64_t> shape_value(const Line& line, const Token& v) {
  Cursor c{line, v};
  std::vector<int64_t> shape;
  c.expect("[", "shape");
  if (!c.eat("]")) {
    do {
      shape.push_back(int64_t(c.number("shape: dimension", uint64_t(INT64_MAX))));
      if (shape.size() > kMaxRank) line.fail(v.col, "shape", fmt::format("at most {} dimensions", kMaxRank), v.text);
    } while (c.eat(","));
    c.expect("]", "shape");
  }
  c.end("shape");
  return shape;
}

constexpr const char* kHeader[] = {".model", ".config", ".array", ".hbm_window_bytes"};

}  // namespace

Model from_assembly(std::string_view text, const std::string& source) {
  if (text.substr(0, 4) == "\x89TCM")
    throw Error(ErrorCode::kFormat, source + ":1:1: this is a model file (.tcm): expected text assembly "
                                             "(`tcemu dis` prints a model file as text)");
  Model m;
  std::set<std::string> header;  // header directives seen
  bool body = false;             // a .tensor or .stream was seen
  std::map<std::string, size_t> tensor_lines;  // name -> line of its .tensor
  std::vector<size_t> tensor_line;             // per tensor: line of its .tensor
  std::map<int, size_t> stream_lines;          // engine -> line of its .stream
  bool data_ok = false;                        // the previous directive was .tensor or .data
  Stream* stream = nullptr;

  auto check_header = [&](const Line& line, size_t col, std::string_view found) {
    for (const char* h : kHeader)
      if (!header.count(h))
        line.fail(col, fmt::format("missing header directive '{}'", h),
                  ".model, .config, .array and .hbm_window_bytes before the first .tensor or .stream", found);
  };

  size_t number = 0, pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    const Line line(source, ++number, raw);
    const auto& toks = line.tokens();
    if (toks.empty()) continue;
    const Token& d = toks[0];
    const std::string dir(d.text);
    auto arity = [&](size_t n, const std::string& form) {
      if (toks.size() < n) line.fail(line.end_col(), dir + ": missing operand", form, "end of line");
      if (toks.size() > n) line.fail(toks[n].col, dir + ": too many operands", form, toks[n].text);
    };
    const bool was_data_ok = data_ok;
    data_ok = false;

    if (dir == ".model" || dir == ".config" || dir == ".array" || dir == ".hbm_window_bytes") {
      if (body) line.fail(d.col, "header directive after the first .tensor or .stream", "it before them", d.text);
      if (!header.insert(dir).second) line.fail(d.col, "header directive given twice", "it once", d.text);
      if (dir == ".model") {
        arity(2, ".model \"NAME\"");
        m.name = unquote(line, toks[1], ".model");
      } else if (dir == ".config") {
        arity(2, ".config \"NAME\"");
        m.config_name = unquote(line, toks[1], ".config");
      } else if (dir == ".array") {
        const auto kv = key_values(line, 1, ".array", {"rows", "cols"});
        m.array_rows = int(number_token(line, kv.at("rows"), ".array rows", INT32_MAX));
        m.array_cols = int(number_token(line, kv.at("cols"), ".array cols", INT32_MAX));
      } else {
        arity(2, ".hbm_window_bytes BYTES");
        m.hbm_window_bytes = number_token(line, toks[1], ".hbm_window_bytes");
      }
    } else if (dir == ".tensor") {
      if (!body) check_header(line, d.col, d.text);
      body = true;
      if (toks.size() < 4)
        line.fail(toks.size() > 1 ? toks.back().col : line.end_col(), ".tensor: missing operand",
                  ".tensor \"NAME\" DTYPE KIND shape=[...] hbm_offset=OFF bytes=N", "end of line");
      Tensor t;
      t.name = unquote(line, toks[1], ".tensor name");
      if (auto it = tensor_lines.find(t.name); it != tensor_lines.end())
        line.fail(toks[1].col, fmt::format("duplicate tensor name (first defined at line {})", it->second),
                  "a name no other tensor has", toks[1].text);
      t.dtype = tensor_dtype(line, toks[2]);
      t.kind = tensor_kind(line, toks[3]);
      const auto kv = key_values(line, 4, ".tensor", {"shape", "hbm_offset", "bytes"});
      t.shape = shape_value(line, kv.at("shape"));
      t.hbm_offset = number_token(line, kv.at("hbm_offset"), ".tensor hbm_offset");
      t.bytes = number_token(line, kv.at("bytes"), ".tensor bytes");
      tensor_lines[t.name] = line.number();
      tensor_line.push_back(line.number());
      m.tensors.push_back(std::move(t));
      data_ok = true;
    } else if (dir == ".data") {
      if (!was_data_ok)
        line.fail(d.col, ".data outside a tensor", "it right after a '.tensor' line (or another '.data')", d.text);
      Tensor& t = m.tensors.back();
      if (t.kind != TensorKind::kConst)
        line.fail(d.col, fmt::format(".data for {} tensor '{}'", kind_name(t.kind), t.name),
                  "data only for const tensors", d.text);
      for (size_t i = 1; i < toks.size(); ++i) {
        const Token& h = toks[i];
        for (size_t j = 0; j < h.text.size(); j += 2) {
          const auto b = j + 1 < h.text.size() ? to_u64(std::string("0x") + std::string(h.text.substr(j, 2)))
                                               : std::nullopt;
          if (!b) line.fail(h.col + j, ".data", "bytes as pairs of hex digits", h.text.substr(j, 2));
          t.data.push_back(uint8_t(*b));
        }
        if (t.data.size() > t.bytes)
          line.fail(h.col, fmt::format(".data of tensor '{}' longer than its bytes={}", t.name, t.bytes),
                    fmt::format("{} bytes in all", t.bytes), h.text);
      }
      data_ok = true;
    } else if (dir == ".stream") {
      if (!body) check_header(line, d.col, d.text);
      body = true;
      arity(2, ".stream ENGINE");
      const int engine = engine_value(line, toks[1]);
      if (auto it = stream_lines.find(engine); it != stream_lines.end())
        line.fail(toks[1].col, fmt::format("duplicate stream (engine {} first at line {})", toks[1].text, it->second),
                  "one .stream per engine", toks[1].text);
      stream_lines[engine] = line.number();
      m.streams.push_back({engine, {}});
      stream = &m.streams.back();
    } else if (!dir.empty() && dir[0] == '.') {
      line.fail(d.col, "unknown directive",
                "one of .model, .config, .array, .hbm_window_bytes, .tensor, .data, .stream", d.text);
    } else {
      if (!stream) {
        if (!isa::find_mnemonic(dir))
          line.fail(d.col, "unknown mnemonic", "a directive (.model, .tensor, .stream, ...) or an opcode", d.text);
        line.fail(d.col, "instruction outside a stream", "a '.stream ENGINE' line before it", d.text);
      }
      stream->instrs.push_back(parse_instruction(line, stream->engine));
    }
  }
  if (!body) {
    const Line end(source, number + 1, "");
    check_header(end, 1, "end of file");
  }
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const Tensor& t = m.tensors[i];
    if (t.kind == TensorKind::kConst && t.data.size() != t.bytes)
      throw Error(ErrorCode::kFormat,
                  fmt::format("{}:{}:1: const tensor '{}': expected {} bytes of .data (its bytes=), found {}", source,
                              tensor_line[i], t.name, t.bytes, t.data.size()));
  }
  validate(m);
  return m;
}

}  // namespace tcemu::model
