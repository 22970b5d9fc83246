#include "tcemu/npy.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <variant>

#include "tcemu/error.h"
#include "tcemu/file_io.h"

namespace tcemu::npy {

namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes, then major, minor
constexpr size_t kMagicBytes = 6;
constexpr size_t kAlign = 64;  // numpy pads the header so the data starts 64-aligned

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kFormat, fmt::format("{}: {}", source, what));
}

// ---- The header: a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ----

using Value = std::variant<std::string, bool, std::vector<int64_t>>;

// Parses the subset of Python literal syntax numpy writes: a dict of string keys whose values are strings,
// True/False, or tuples of non-negative integers.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  std::vector<std::pair<std::string, Value>> dict() {
    std::vector<std::pair<std::string, Value>> items;
    skip_ws();
    expect('{', "'{' (the header must be a Python dict literal)");
    skip_ws();
    while (peek() != '}') {
      std::string key = string();
      skip_ws();
      expect(':', "':' after a dict key");
      skip_ws();
      Value v = value(key);
      items.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        skip_ws();
      } else if (peek() != '}') {
        error("',' or '}'");
      }
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) error("the end of the header after the dict");
    return items;
  }

 private:
  int peek() const { return pos_ < s_.size() ? (unsigned char)s_[pos_] : -1; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  [[noreturn]] void error(std::string_view expected) const {
    std::string found = pos_ < s_.size() ? fmt::format("\"{}\"", s_.substr(pos_, 12)) : "the end of the header";
    fail(source_,
         fmt::format("header is not a valid dict: at header offset {}: expected {}, found {}", pos_, expected, found));
  }
  void expect(char c, std::string_view what) {
    if (peek() != c) error(what);
    ++pos_;
  }

  std::string string() {
    const int q = peek();
    if (q != '\'' && q != '"') error("a quoted string");
    const size_t end = s_.find(char(q), pos_ + 1);
    if (end == std::string_view::npos) error("a closing quote");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }

  int64_t integer() {
    const size_t start = pos_;
    uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      const uint64_t digit = uint64_t(peek() - '0');
      if (v > (uint64_t(std::numeric_limits<int64_t>::max()) - digit) / 10) error("a dimension that fits 64 bits");
      v = v * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) error("a non-negative integer dimension");
    if (peek() == 'L') ++pos_;  // files written by Python 2 numpy: (2L, 3L)
    return int64_t(v);
  }

  Value value(const std::string& key) {
    const int c = peek();
    if (c == '\'' || c == '"') return string();
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    if (c == '(') {
      ++pos_;
      std::vector<int64_t> dims;
      bool comma = false;  // (3) is an int in Python, not a tuple
      skip_ws();
      while (peek() != ')') {
        dims.push_back(integer());
        skip_ws();
        comma = false;
        if (peek() == ',') {
          ++pos_;
          comma = true;
          skip_ws();
        } else if (peek() != ')') {
          error("',' or ')' in a tuple");
        }
      }
      if (dims.size() == 1 && !comma) error("',' after the only dimension (a 1-d shape is written (3,))");
      ++pos_;
      return dims;
    }
    if (c == '[')
      fail(source_, fmt::format("'{}' is a list: structured dtypes are not supported (expected a plain descr "
                                "such as '<f4')",
                                key));
    error("a string, True, False or a tuple");
  }

  std::string_view s_;
  size_t pos_ = 0;
  const std::string& source_;
};

// ---- Element types ----

enum class Elem { kF4, kF8, kF2, kI4, kI8 };
struct ElemInfo {
  const char* code;  // descr without the byte-order character
  Elem elem;
  size_t size;
};
constexpr ElemInfo kElems[] = {
    {"f4", Elem::kF4, 4}, {"f8", Elem::kF8, 8}, {"f2", Elem::kF2, 2}, {"i4", Elem::kI4, 4}, {"i8", Elem::kI8, 8},
};

const ElemInfo& parse_descr(const std::string& descr, const std::string& source) {
  if (!descr.empty() && descr[0] == '>')
    fail(source, fmt::format("descr '{}' is big-endian: not supported (expected byte order '<' or '|')", descr));
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '|'))
    for (const auto& e : kElems)
      if (descr.compare(1, std::string::npos, e.code) == 0) return e;
  fail(source, fmt::format("descr '{}' not supported (expected '<f4', '<f8', '<f2', '<i4' or '<i8')", descr));
}

uint64_t load_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 -> binary32 is exact; subnormal halves become normal floats.
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {
    const float mag = std::ldexp(float(mant), -24);
    return sign ? -mag : mag;
  }
  if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (mant << 13));  // inf, NaN (payload kept)
  return f32_from_bits(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

float convert(const uint8_t* p, Elem e) {
  switch (e) {
    case Elem::kF4: return f32_from_bits(uint32_t(load_le(p, 4)));
    case Elem::kF8: {
      const uint64_t u = load_le(p, 8);
      double d;
      std::memcpy(&d, &u, 8);
      return float(d);
    }
    case Elem::kF2: return half_to_float(uint16_t(load_le(p, 2)));
    case Elem::kI4: return float(int32_t(uint32_t(load_le(p, 4))));
    case Elem::kI8: return float(int64_t(load_le(p, 8)));
  }
  return 0.0f;
}

std::string shape_repr(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

}  // namespace

Array parse(std::span<const uint8_t> bytes, const std::string& source) {
  const size_t size = bytes.size();
  if (size < kMagicBytes || std::memcmp(bytes.data(), kMagic, kMagicBytes) != 0)
    fail(source,
         fmt::format("not a .npy file: expected magic 93 4e 55 4d 50 59 (\"\\x93NUMPY\"), found {}",
                     size == 0 ? std::string("an empty file")
                               : fmt::format("{:02x}", fmt::join(bytes.first(std::min(size, kMagicBytes)), " "))));
  if (size < kMagicBytes + 2)
    fail(source, fmt::format("file truncated: expected at least {} bytes (magic and version), found {}",
                             kMagicBytes + 2, size));
  const unsigned major = bytes[6], minor = bytes[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    fail(source, fmt::format("version {}.{} not supported (expected 1.0, 2.0 or 3.0)", major, minor));
  const size_t len_bytes = major == 1 ? 2 : 4;  // v1: u16 header length; v2, v3: u32
  const size_t prefix = kMagicBytes + 2 + len_bytes;
  if (size < prefix)
    fail(source, fmt::format("file truncated: expected at least {} bytes (magic, version, header length), found {}",
                             prefix, size));
  const uint64_t header_len = load_le(bytes.data() + 8, len_bytes);
  if (header_len > size - prefix)
    fail(source, fmt::format("header truncated: expected {} bytes of header, found {}", header_len, size - prefix));
  // v1/v2 headers are latin-1 and v3 headers UTF-8; the keys and values this reader accepts are ASCII.
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + prefix), header_len);
  const auto items = HeaderParser(text, source).dict();

  const std::string* descr = nullptr;
  const std::vector<int64_t>* shape = nullptr;
  std::optional<bool> fortran;
  for (const auto& item : items) {
    const std::string& key = item.first;  // not a structured binding: clang < 16 cannot capture those
    const Value& v = item.second;
    auto dup = [&](bool seen) {
      if (seen) fail(source, fmt::format("header has key '{}' twice", key));
    };
    auto wrong = [&](const char* expected) {
      fail(source, fmt::format("header key '{}': expected {}", key, expected));
    };
    if (key == "descr") {
      dup(descr);
      if (!std::holds_alternative<std::string>(v)) wrong("a string such as '<f4'");
      descr = &std::get<std::string>(v);
    } else if (key == "shape") {
      dup(shape);
      if (!std::holds_alternative<std::vector<int64_t>>(v)) wrong("a tuple such as (2, 3)");
      shape = &std::get<std::vector<int64_t>>(v);
    } else if (key == "fortran_order") {
      dup(fortran.has_value());
      if (!std::holds_alternative<bool>(v)) wrong("True or False");
      fortran = std::get<bool>(v);
    } else {
      fail(source, fmt::format("header has unexpected key '{}' (expected 'descr', 'fortran_order', 'shape')", key));
    }
  }
  if (!descr) fail(source, "header has no 'descr' key");
  if (!shape) fail(source, "header has no 'shape' key");
  if (!fortran) fail(source, "header has no 'fortran_order' key");
  if (*fortran)
    fail(source,
         "fortran_order=True is not supported (expected a C-order array; "
         "save numpy.ascontiguousarray(a) instead)");
  const ElemInfo& elem = parse_descr(*descr, source);

  // Dims are non-negative (the header parser reads no sign); a zero dim makes the count zero.
  const uint64_t data_at = prefix + header_len;
  const uint64_t available = size - data_at;
  uint64_t count = 1;
  bool too_big = false;
  for (int64_t d : *shape) {
    if (d == 0) {
      count = 0;
      too_big = false;
      break;
    }
    if (too_big || count > std::numeric_limits<uint64_t>::max() / elem.size / uint64_t(d))
      too_big = true;
    else
      count *= uint64_t(d);
  }
  if (too_big)
    fail(source, fmt::format("data size mismatch: shape {} of '{}' needs more than 2^64 bytes, found {} bytes of data",
                             shape_repr(*shape), *descr, available));
  const uint64_t need = count * elem.size;
  if (available != need)
    fail(source, fmt::format("data size mismatch: expected {} bytes (shape {} of '{}'), found {}", need,
                             shape_repr(*shape), *descr, available));

  Array a;
  a.shape = *shape;
  a.data.resize(count);  // count * elem.size bytes are in the file, so this is at most twice its size
  const uint8_t* p = bytes.data() + data_at;
  if (elem.elem == Elem::kF4 && count) {
    std::memcpy(a.data.data(), p, count * 4);  // the host is little-endian (x86-64, AArch64)
  } else {
    for (uint64_t i = 0; i < count; ++i) a.data[i] = convert(p + i * elem.size, elem.elem);
  }
  return a;
}

std::vector<uint8_t> serialize(const Array& a) {
  bool zero = false;
  for (size_t i = 0; i < a.shape.size(); ++i) {
    if (a.shape[i] < 0)
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("npy: shape {}: dim {} is {}, expected >= 0", shape_repr(a.shape), i, a.shape[i]));
    zero = zero || a.shape[i] == 0;
  }
  // Saturating product: stop as soon as it exceeds the element count, before it can overflow.
  uint64_t count = zero ? 0 : 1;
  for (size_t i = 0; i < a.shape.size() && count <= a.data.size() && count != 0; ++i) {
    const uint64_t d = uint64_t(a.shape[i]);
    count = d > std::numeric_limits<uint64_t>::max() / count ? std::numeric_limits<uint64_t>::max() : count * d;
  }
  if (count != a.data.size())
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("npy: shape {} needs {} elements, found {}", shape_repr(a.shape),
                            count > a.data.size() ? fmt::format("more than {}", a.data.size()) : std::to_string(count),
                            a.data.size()));
  // numpy's layout: dict keys sorted, "key: repr(value), " each, then spaces and '\n' so that the data starts
  // at a multiple of 64 (a full 64 bytes of padding when already aligned, as numpy's _wrap_header does).
  const std::string dict =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shape_repr(a.shape));
  const bool v1 = dict.size() + 1 + kAlign <= 65535;  // the header length must fit v1.0's u16
  const size_t prefix = kMagicBytes + 2 + (v1 ? 2 : 4);
  const size_t pad = kAlign - (prefix + dict.size() + 1) % kAlign;
  const size_t header_len = dict.size() + pad + 1;
  std::vector<uint8_t> out(prefix + header_len + a.data.size() * 4);
  std::memcpy(out.data(), kMagic, kMagicBytes);
  out[6] = v1 ? 1 : 2;
  out[7] = 0;
  for (size_t i = 0; i < prefix - 8; ++i) out[8 + i] = uint8_t(header_len >> (8 * i));
  std::memcpy(out.data() + prefix, dict.data(), dict.size());
  std::memset(out.data() + prefix + dict.size(), ' ', pad);
  out[prefix + header_len - 1] = '\n';
  if (!a.data.empty()) std::memcpy(out.data() + prefix + header_len, a.data.data(), a.data.size() * 4);
  return out;
}

Array load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return parse(bytes, path);
}

void save(const std::string& path, const Array& a) { write_file(path, serialize(a)); }

}  // namespace tcemu::npy
