#include "tcemu/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "tcemu/crc32.h"
#include "tcemu/error.h"
#include "tcemu/file_io.h"

namespace tcemu::model {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kBf16: return 2;
    case DType::kF32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kBf16: return "bf16";
    case DType::kF32: return "f32";
  }
  return "invalid";
}

const char* kind_name(TensorKind k) {
  switch (k) {
    case TensorKind::kInput: return "input";
    case TensorKind::kOutput: return "output";
    case TensorKind::kConst: return "const";
    case TensorKind::kScratch: return "scratch";
  }
  return "invalid";
}

bool Stream::operator==(const Stream& other) const {
  if (engine != other.engine || instrs.size() != other.instrs.size()) return false;
  for (size_t i = 0; i < instrs.size(); ++i) {
    const isa::Instr& a = instrs[i];
    const isa::Instr& b = other.instrs[i];
    if (a.opcode != b.opcode) return false;
    for (const auto& f : isa::fields())
      if (a.*f.member != b.*f.member) return false;
  }
  return true;
}

size_t Model::instruction_count() const {
  size_t n = 0;
  for (const Stream& s : streams) n += s.instrs.size();
  return n;
}

const Tensor* Model::find_tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

// ---- File layout (docs/model-format.md is the specification; keep the two in step) ----

constexpr std::array<uint8_t, 8> kMagic = {0x89, 'T', 'C', 'M', '\r', '\n', 0x1A, '\n'};
constexpr uint64_t kHeaderBytes = 128;
constexpr uint64_t kTensorEntryBytes = 104;
constexpr uint64_t kStreamEntryBytes = 16;
constexpr uint64_t kTableAlign = 8;   // tensor table
constexpr uint64_t kBlockAlign = 64;  // code section, data section, each constant, end of file
constexpr int kMaxArrayDim = 65535;

// Header field offsets.
namespace hdr {
constexpr uint64_t kMagicAt = 0x00, kVersion = 0x08, kHeaderBytesAt = 0x0C, kFileBytes = 0x10, kCrc = 0x18,
                   kReserved0 = 0x1C, kName = 0x20, kConfigName = 0x24, kArrayRows = 0x28, kArrayCols = 0x2C,
                   kWindow = 0x30, kStringsOffset = 0x38, kStringsBytes = 0x40, kTensorCount = 0x44,
                   kTensorsOffset = 0x48, kStreamCount = 0x50, kReserved1 = 0x54, kStreamsOffset = 0x58,
                   kCodeOffset = 0x60, kInstrCount = 0x68, kDataOffset = 0x70, kDataBytes = 0x78;
}  // namespace hdr

struct HeaderField {
  const char* name;
  uint64_t offset, size;
};
constexpr HeaderField kHeaderFields[] = {
    {"magic", hdr::kMagicAt, 8},
    {"version", hdr::kVersion, 4},
    {"header_bytes", hdr::kHeaderBytesAt, 4},
    {"file_bytes", hdr::kFileBytes, 8},
    {"crc32", hdr::kCrc, 4},
    {"reserved0", hdr::kReserved0, 4},
    {"name", hdr::kName, 4},
    {"config_name", hdr::kConfigName, 4},
    {"array_rows", hdr::kArrayRows, 4},
    {"array_cols", hdr::kArrayCols, 4},
    {"hbm_window_bytes", hdr::kWindow, 8},
    {"strings_offset", hdr::kStringsOffset, 8},
    {"strings_bytes", hdr::kStringsBytes, 4},
    {"tensor_count", hdr::kTensorCount, 4},
    {"tensors_offset", hdr::kTensorsOffset, 8},
    {"stream_count", hdr::kStreamCount, 4},
    {"reserved1", hdr::kReserved1, 4},
    {"streams_offset", hdr::kStreamsOffset, 8},
    {"code_offset", hdr::kCodeOffset, 8},
    {"instr_count", hdr::kInstrCount, 8},
    {"data_offset", hdr::kDataOffset, 8},
    {"data_bytes", hdr::kDataBytes, 8},
};

// Tensor table entry field offsets.
namespace te {
constexpr uint64_t kName = 0x00, kDtype = 0x04, kKind = 0x05, kRank = 0x06, kReserved = 0x07, kHbmOffset = 0x08,
                   kBytes = 0x10, kDataOffset = 0x18, kDataBytes = 0x20, kShape = 0x28;
}  // namespace te

// Stream table entry field offsets.
namespace se {
constexpr uint64_t kEngine = 0x00, kInstrCount = 0x04, kFirstInstr = 0x08;
}  // namespace se

constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::string shape_string(std::span<const int64_t> shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// ---- Error reporting shared by parse() (with file offsets) and validate() (without) ----

class Reporter {
 public:
  Reporter(ErrorCode code, std::string prefix) : code_(code), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(std::optional<uint64_t> offset, std::string_view field, std::string_view what) const {
    std::string msg = prefix_;
    if (offset) msg += fmt::format(": offset 0x{:x}", *offset);
    msg += fmt::format(": field '{}': {}", field, what);
    throw Error(code_, msg);
  }

 private:
  ErrorCode code_;
  std::string prefix_;
};

// One tensor as both checkers see it: from the file (entry = offset of its table entry) or from memory.
struct RawTensor {
  std::optional<uint64_t> entry;
  std::string_view name;
  unsigned dtype = 0, kind = 0;
  size_t rank = 0;
  std::span<const int64_t> shape;  // `rank` dims
  uint64_t hbm_offset = 0, bytes = 0, data_bytes = 0;
  const char* data_field = "data_bytes";
};

std::optional<uint64_t> at(std::optional<uint64_t> base, uint64_t field) {
  if (!base) return std::nullopt;
  return *base + field;
}

// The rules of one tensor entry, in entry order.
void check_tensor(const Reporter& r, size_t i, const RawTensor& t, uint64_t window) {
  auto field = [&](std::string_view f) { return fmt::format("tensor[{}].{}", i, f); };
  if (t.name.empty()) r.fail(at(t.entry, te::kName), field("name"), "expected a non-empty name, found \"\"");
  const DType dtype = DType(t.dtype);
  if (dtype_size(dtype) == 0)
    r.fail(at(t.entry, te::kDtype), field("dtype"),
           fmt::format("expected a dtype (1 = bf16, 2 = f32), found {}", t.dtype));
  const TensorKind kind = TensorKind(t.kind);
  if (std::string_view(kind_name(kind)) == "invalid")
    r.fail(at(t.entry, te::kKind), field("kind"),
           fmt::format("expected a kind (1 = input, 2 = output, 3 = const, 4 = scratch), found {}", t.kind));
  if (t.rank > kMaxRank)
    r.fail(at(t.entry, te::kRank), field("rank"), fmt::format("expected at most {} dims, found {}", kMaxRank, t.rank));
  for (size_t d = 0; d < t.rank; ++d)
    if (t.shape[d] < 1)
      r.fail(at(t.entry, te::kShape + 8 * d), field(fmt::format("shape[{}]", d)),
             fmt::format("expected a dim >= 1, found {}", t.shape[d]));
  // Every dim is >= 1, so the product only grows; stop at the first factor that would overflow.
  const uint64_t elem = dtype_size(dtype);
  uint64_t need = elem;
  for (size_t d = 0; d < t.rank; ++d) {
    const uint64_t dim = uint64_t(t.shape[d]);
    if (need > std::numeric_limits<uint64_t>::max() / dim)
      r.fail(at(t.entry, te::kBytes), field("bytes"),
             fmt::format("expected product of shape {} x {} bytes ({}), which overflows 64 bits; found {}",
                         shape_string(t.shape), elem, dtype_name(dtype), t.bytes));
    need *= dim;
  }
  if (t.bytes != need)
    r.fail(at(t.entry, te::kBytes), field("bytes"),
           fmt::format("expected {} (product of shape {} x {} bytes of {}), found {}", need, shape_string(t.shape),
                       elem, dtype_name(dtype), t.bytes));
  if (t.hbm_offset > window || t.bytes > window - t.hbm_offset)
    r.fail(at(t.entry, te::kHbmOffset), field("hbm_offset"),
           fmt::format("expected hbm_offset + bytes <= hbm_window_bytes (0x{:x}), found 0x{:x} + 0x{:x}", window,
                       t.hbm_offset, t.bytes));
  if (kind == TensorKind::kConst) {
    if (t.data_bytes != t.bytes)
      r.fail(at(t.entry, te::kDataBytes), field(t.data_field),
             fmt::format("expected {} bytes of constant data (the tensor's bytes), found {}", t.bytes, t.data_bytes));
  } else if (t.data_bytes != 0) {
    r.fail(at(t.entry, te::kDataBytes), field(t.data_field),
           fmt::format("expected no data for a tensor of kind {}, found {} bytes", kind_name(kind), t.data_bytes));
  }
}

// Names are checked as tensors are read, so the first duplicate in table order is reported.
class NameSet {
 public:
  void add(const Reporter& r, size_t i, const RawTensor& t) {
    auto [it, fresh] = seen_.emplace(t.name, i);
    if (!fresh)
      r.fail(at(t.entry, te::kName), fmt::format("tensor[{}].name", i),
             fmt::format("expected a unique name, found '{}' (also tensor[{}])", t.name, it->second));
  }

 private:
  std::unordered_map<std::string_view, size_t> seen_;
};

// Reports an overlapping pair: the first one met sweeping the tensors in address order. The later tensor of
// the pair (by table index) is blamed, and the message names both.
void check_overlaps(const Reporter& r, const std::vector<RawTensor>& ts) {
  std::vector<size_t> order(ts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return ts[a].hbm_offset != ts[b].hbm_offset ? ts[a].hbm_offset < ts[b].hbm_offset : a < b;
  });
  // The tensor with the highest end so far; ranges are known to lie inside the window, so ends don't overflow.
  std::optional<size_t> reach;
  for (size_t j : order) {
    if (reach && ts[j].hbm_offset < ts[*reach].hbm_offset + ts[*reach].bytes) {
      size_t a = std::min(j, *reach), b = std::max(j, *reach);
      const RawTensor& ta = ts[a];
      const RawTensor& tb = ts[b];
      r.fail(at(tb.entry, te::kHbmOffset), fmt::format("tensor[{}].hbm_offset", b),
             fmt::format("expected no overlap with tensor[{}] '{}' at [0x{:x}, 0x{:x}), found '{}' at [0x{:x}, 0x{:x})",
                         a, ta.name, ta.hbm_offset, ta.hbm_offset + ta.bytes, tb.name, tb.hbm_offset,
                         tb.hbm_offset + tb.bytes));
    }
    if (!reach || ts[j].hbm_offset + ts[j].bytes > ts[*reach].hbm_offset + ts[*reach].bytes) reach = j;
  }
}

bool engine_known(int64_t e) {
  return e == isa::kEngineTensor || e == isa::kEngineVector || e == isa::kEngineScalar ||
         (e >= isa::kEngineDma0 && e < isa::kMaxEngines);
}

// Engine id of stream i: known, and no other stream for it.
void check_engine(const Reporter& r, size_t i, std::optional<uint64_t> entry, int64_t engine,
                  std::array<std::optional<size_t>, isa::kMaxEngines>& owner) {
  const std::string field = fmt::format("stream[{}].engine", i);
  if (!engine_known(engine))
    r.fail(at(entry, se::kEngine), field,
           fmt::format("expected an engine id (0 tensor, 1 vector, 2 scalar, {}..{} dma0..dma{}), found {}",
                       isa::kEngineDma0, isa::kMaxEngines - 1, isa::kMaxEngines - 1 - isa::kEngineDma0, engine));
  auto& o = owner[size_t(engine)];
  if (o)
    r.fail(at(entry, se::kEngine), field,
           fmt::format("expected one stream per engine, found a second stream for engine {} (also stream[{}])",
                       isa::engine_name(int(engine)), *o));
  o = i;
}

void check_accepted(const Reporter& r, size_t s, size_t k, std::optional<uint64_t> offset, int engine,
                    const isa::Instr& in) {
  if (isa::engine_accepts(engine, in.opcode)) return;
  std::vector<std::string> ok;
  for (const auto& o : isa::opcodes())
    if (isa::engine_accepts(engine, o.opcode)) ok.push_back(o.mnemonic);
  const isa::OpcodeInfo* info = isa::find_opcode(uint8_t(in.opcode));
  std::string found = info ? info->mnemonic : fmt::format("opcode 0x{:02x}", unsigned(in.opcode));
  r.fail(offset, fmt::format("stream[{}].instr[{}]", s, k),
         fmt::format("engine {} instruction {}: expected an opcode the engine runs ({}), found {}",
                     isa::engine_name(engine), k, fmt::join(ok, ", "), found));
}

// ---- Little-endian access ----

uint64_t get_le(std::span<const uint8_t> b, uint64_t off, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t(b[off + i]) << (8 * i);
  return v;
}

void put_le(std::vector<uint8_t>& b, uint64_t off, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = uint8_t(v >> (8 * i));
}

// ---- Parser ----

class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, const std::string& source)
      : b_(bytes), size_(bytes.size()), r_(ErrorCode::kFormat, source) {}

  Model run() {
    check_header();
    check_layout();
    Model m;
    m.name = std::string(str(hdr::kName, "name"));
    m.config_name = std::string(str(hdr::kConfigName, "config_name"));
    m.array_rows = array_dim(hdr::kArrayRows, "array_rows");
    m.array_cols = array_dim(hdr::kArrayCols, "array_cols");
    m.hbm_window_bytes = u64(hdr::kWindow);
    read_tensors(m);
    read_streams(m);
    return m;
  }

 private:
  uint32_t u32(uint64_t off) const { return uint32_t(get_le(b_, off, 4)); }
  uint64_t u64(uint64_t off) const { return get_le(b_, off, 8); }
  [[noreturn]] void fail(uint64_t off, std::string_view field, std::string_view what) const {
    r_.fail(off, field, what);
  }

  void check_header() {
    // Magic first, so that a short file of another kind is reported as "not a model file".
    const size_t n = std::min<size_t>(size_, kMagic.size());
    if (!std::equal(b_.begin(), b_.begin() + n, kMagic.begin()))
      fail(0, "magic",
           fmt::format("expected {:02x} (\"\\x89TCM\\r\\n\\x1a\\n\", a tcemu model file), found {:02x}",
                       fmt::join(kMagic, " "), fmt::join(b_.first(n), " ")));
    // Version before the header size, so a newer file with a longer header gets the version message.
    if (size_ >= hdr::kVersion + 4) {
      const uint32_t v = u32(hdr::kVersion);
      if (v != kFormatVersion)
        fail(hdr::kVersion, "version",
             fmt::format("version {} not supported (this build reads {})", v, kFormatVersion));
    }
    if (size_ < kHeaderBytes) {
      const HeaderField* cut = &kHeaderFields[0];
      for (const auto& f : kHeaderFields)
        if (f.offset + f.size > size_) {
          cut = &f;
          break;
        }
      fail(cut->offset, cut->name,
           fmt::format("file truncated: expected at least {} bytes (the header), found {}", kHeaderBytes, size_));
    }
    expect_eq(hdr::kHeaderBytesAt, "header_bytes", u32(hdr::kHeaderBytesAt), kHeaderBytes);
    const uint64_t file_bytes = u64(hdr::kFileBytes);
    if (file_bytes != size_)
      fail(hdr::kFileBytes, "file_bytes",
           fmt::format("{}: expected {} bytes (the header's file_bytes), found {}",
                       size_ < file_bytes ? "file truncated" : "trailing bytes after the model", file_bytes, size_));
    const uint32_t stored = u32(hdr::kCrc);
    const std::array<uint8_t, 4> zero{};
    uint32_t crc = crc32(b_.first(hdr::kCrc));
    crc = crc32(zero, crc);
    crc = crc32(b_.subspan(hdr::kCrc + 4), crc);
    if (crc != stored)
      fail(hdr::kCrc, "crc32",
           fmt::format("checksum mismatch: expected 0x{:08x} (stored), computed 0x{:08x} over the file", stored, crc));
    expect_eq(hdr::kReserved0, "reserved0", u32(hdr::kReserved0), 0);
    expect_eq(hdr::kReserved1, "reserved1", u32(hdr::kReserved1), 0);
  }

  void expect_eq(uint64_t off, std::string_view field, uint64_t found, uint64_t expected,
                 std::string_view why = {}) const {
    if (found != expected)
      fail(off, field, fmt::format("expected 0x{:x}{}{}, found 0x{:x}", expected, why.empty() ? "" : " ", why, found));
  }

  // `count` entries of `entry` bytes from `start` must end inside the file.
  void expect_fits(uint64_t count_off, std::string_view count_field, uint64_t start, uint64_t count,
                   uint64_t entry) const {
    if (count > (size_ - start) / entry)
      fail(count_off, count_field,
           fmt::format("expected at most {} entries of {} bytes from 0x{:x} (the end of the file is 0x{:x}), found {}",
                       (size_ - start) / entry, entry, start, size_, count));
  }

  void expect_zero(uint64_t from, uint64_t to, std::string_view what) const {
    for (uint64_t o = from; o < to; ++o)
      if (b_[o] != 0) fail(o, "padding", fmt::format("expected 0 in the padding {}, found 0x{:02x}", what, b_[o]));
  }

  // Sections follow each other in a fixed order at fixed alignments, so every offset has exactly one valid
  // value; the stored offsets make the file self-describing and are checked against it.
  void check_layout() {
    strings_off_ = kHeaderBytes;
    expect_eq(hdr::kStringsOffset, "strings_offset", u64(hdr::kStringsOffset), strings_off_, "(end of the header)");
    strings_bytes_ = u32(hdr::kStringsBytes);
    expect_fits(hdr::kStringsBytes, "strings_bytes", strings_off_, strings_bytes_, 1);

    tensor_count_ = u32(hdr::kTensorCount);
    tensors_off_ = align_up(strings_off_ + strings_bytes_, kTableAlign);
    expect_eq(hdr::kTensorsOffset, "tensors_offset", u64(hdr::kTensorsOffset), tensors_off_,
              "(end of the string table, 8-aligned)");
    if (tensors_off_ > size_) fail(hdr::kStringsBytes, "strings_bytes", "padded string table ends past the file");
    expect_fits(hdr::kTensorCount, "tensor_count", tensors_off_, tensor_count_, kTensorEntryBytes);

    stream_count_ = u32(hdr::kStreamCount);
    streams_off_ = tensors_off_ + tensor_count_ * kTensorEntryBytes;
    expect_eq(hdr::kStreamsOffset, "streams_offset", u64(hdr::kStreamsOffset), streams_off_,
              "(end of the tensor table)");
    expect_fits(hdr::kStreamCount, "stream_count", streams_off_, stream_count_, kStreamEntryBytes);

    code_off_ = align_up(streams_off_ + stream_count_ * kStreamEntryBytes, kBlockAlign);
    expect_eq(hdr::kCodeOffset, "code_offset", u64(hdr::kCodeOffset), code_off_,
              "(end of the stream table, 64-aligned)");
    if (code_off_ > size_) fail(hdr::kStreamCount, "stream_count", "padded stream table ends past the file");
    instr_count_ = u64(hdr::kInstrCount);
    expect_fits(hdr::kInstrCount, "instr_count", code_off_, instr_count_, isa::kInstrBytes);

    data_off_ = code_off_ + instr_count_ * isa::kInstrBytes;
    expect_eq(hdr::kDataOffset, "data_offset", u64(hdr::kDataOffset), data_off_, "(end of the code section)");
    data_bytes_ = u64(hdr::kDataBytes);
    expect_fits(hdr::kDataBytes, "data_bytes", data_off_, data_bytes_, 1);
    expect_eq(hdr::kFileBytes, "file_bytes", size_, align_up(data_off_ + data_bytes_, kBlockAlign),
              "(end of the data section, 64-aligned)");

    expect_zero(strings_off_ + strings_bytes_, tensors_off_, "after the string table");
    expect_zero(streams_off_ + stream_count_ * kStreamEntryBytes, code_off_, "after the stream table");
    expect_zero(data_off_ + data_bytes_, size_, "at the end of the file");
  }

  // A string-table reference stored at `off`.
  std::string_view str(uint64_t off, std::string_view field) const {
    const uint32_t ref = u32(off);
    if (ref >= strings_bytes_)
      fail(off, field,
           fmt::format("expected a string-table offset < 0x{:x} (strings_bytes), found 0x{:x}", strings_bytes_, ref));
    const uint8_t* first = b_.data() + strings_off_ + ref;
    const uint8_t* table_end = b_.data() + strings_off_ + strings_bytes_;
    const uint8_t* end = first + std::min<uint64_t>(table_end - first, kMaxNameBytes + 1);
    const uint8_t* nul = std::find(first, end, uint8_t(0));
    if (nul == end && end == table_end)
      fail(off, field,
           fmt::format("string at string-table offset 0x{:x} is not NUL-terminated before the end of the table "
                       "(0x{:x})",
                       ref, strings_bytes_));
    if (nul == end)
      fail(off, field,
           fmt::format("expected a string of at most {} bytes at string-table offset 0x{:x}, found a longer one",
                       kMaxNameBytes, ref));
    return std::string_view(reinterpret_cast<const char*>(first), size_t(nul - first));
  }

  int array_dim(uint64_t off, std::string_view field) const {
    const uint32_t v = u32(off);
    if (v < 1 || v > uint32_t(kMaxArrayDim)) fail(off, field, fmt::format("expected 1..{}, found {}", kMaxArrayDim, v));
    return int(v);
  }

  void read_tensors(Model& m) {
    // tensor_count is bounded by the file size (check_layout), so these allocations are too.
    std::vector<RawTensor> raw(tensor_count_);
    std::vector<std::array<int64_t, kMaxRank>> shapes(tensor_count_);
    m.tensors.resize(tensor_count_);
    NameSet names;
    uint64_t data_end = 0;  // end of the previous constant inside the data section
    for (size_t i = 0; i < tensor_count_; ++i) {
      const uint64_t e = tensors_off_ + i * kTensorEntryBytes;
      auto field = [&](std::string_view f) { return fmt::format("tensor[{}].{}", i, f); };
      RawTensor& t = raw[i];
      t.entry = e;
      t.name = str(e + te::kName, field("name"));
      t.dtype = b_[e + te::kDtype];
      t.kind = b_[e + te::kKind];
      t.rank = b_[e + te::kRank];
      expect_eq(e + te::kReserved, field("reserved"), b_[e + te::kReserved], 0);
      t.hbm_offset = u64(e + te::kHbmOffset);
      t.bytes = u64(e + te::kBytes);
      t.data_bytes = u64(e + te::kDataBytes);
      for (size_t d = 0; d < kMaxRank; ++d) shapes[i][d] = int64_t(u64(e + te::kShape + 8 * d));
      t.shape = std::span<const int64_t>(shapes[i].data(), std::min(t.rank, kMaxRank));
      check_tensor(r_, i, t, m.hbm_window_bytes);
      for (size_t d = t.rank; d < kMaxRank; ++d)
        expect_eq(e + te::kShape + 8 * d, field(fmt::format("shape[{}]", d)), uint64_t(shapes[i][d]), 0,
                  "(unused dim)");
      names.add(r_, i, t);

      const uint64_t data_offset = u64(e + te::kDataOffset);
      Tensor& out = m.tensors[i];
      if (TensorKind(t.kind) == TensorKind::kConst) {
        // Constants are stored in table order, each at the next 64-byte boundary: the data section holds each
        // byte once, so copying the constants costs at most its size.
        const uint64_t want = align_up(data_end, kBlockAlign);
        expect_eq(e + te::kDataOffset, field("data_offset"), data_offset, want,
                  "(the next 64-byte boundary after the previous constant)");
        if (want > data_bytes_ || t.data_bytes > data_bytes_ - want)
          fail(e + te::kDataBytes, field("data_bytes"),
               fmt::format("expected the constant [0x{:x}, +0x{:x}) to end inside the data section (0x{:x} bytes)",
                           want, t.data_bytes, data_bytes_));
        const uint8_t* p = b_.data() + data_off_ + want;
        out.data.assign(p, p + t.data_bytes);
        expect_zero(data_off_ + data_end, data_off_ + want, "between constants");
        data_end = want + t.data_bytes;
      } else {
        expect_eq(e + te::kDataOffset, field("data_offset"), data_offset, 0, "(not a constant)");
      }
      out.name = std::string(t.name);
      out.dtype = DType(t.dtype);
      out.kind = TensorKind(t.kind);
      out.shape.assign(t.shape.begin(), t.shape.end());
      out.hbm_offset = t.hbm_offset;
      out.bytes = t.bytes;
    }
    expect_eq(hdr::kDataBytes, "data_bytes", data_bytes_, data_end, "(end of the last constant)");
    check_overlaps(r_, raw);
  }

  void read_streams(Model& m) {
    std::array<std::optional<size_t>, isa::kMaxEngines> owner{};
    uint64_t next = 0;  // first instruction of the next stream
    m.streams.resize(stream_count_);
    for (size_t i = 0; i < stream_count_; ++i) {
      const uint64_t e = streams_off_ + i * kStreamEntryBytes;
      Stream& s = m.streams[i];
      const uint32_t engine = u32(e + se::kEngine);
      check_engine(r_, i, e, engine, owner);
      s.engine = int(engine);
      const uint32_t count = u32(e + se::kInstrCount);
      expect_eq(e + se::kFirstInstr, fmt::format("stream[{}].first_instr", i), u64(e + se::kFirstInstr), next,
                "(streams are stored back to back in table order)");
      if (count > instr_count_ - next)
        fail(e + se::kInstrCount, fmt::format("stream[{}].instr_count", i),
             fmt::format("expected at most {} (instructions left in the code section), found {}", instr_count_ - next,
                         count));
      s.instrs.reserve(count);
      for (size_t k = 0; k < count; ++k) {
        const uint64_t off = code_off_ + (next + k) * isa::kInstrBytes;
        isa::Decoded d = isa::decode_bytes(b_.subspan(off, isa::kInstrBytes));
        if (!d.instr)
          fail(off, fmt::format("stream[{}].instr[{}]", i, k),
               fmt::format("engine {} instruction {} does not decode: {}", isa::engine_name(s.engine), k, d.error));
        check_accepted(r_, i, k, off, s.engine, *d.instr);
        s.instrs.push_back(*d.instr);
      }
      next += count;
    }
    expect_eq(hdr::kInstrCount, "instr_count", instr_count_, next, "(the streams' instructions)");
  }

  std::span<const uint8_t> b_;
  uint64_t size_;
  Reporter r_;
  uint64_t strings_off_ = 0, strings_bytes_ = 0, tensors_off_ = 0, tensor_count_ = 0, streams_off_ = 0,
           stream_count_ = 0, code_off_ = 0, instr_count_ = 0, data_off_ = 0, data_bytes_ = 0;
};

// ---- Writer ----

class StringTable {
 public:
  StringTable() { bytes_.push_back(0); }  // offset 0 is the empty string
  uint32_t add(const std::string& s) {
    if (s.empty()) return 0;
    auto [it, fresh] = refs_.emplace(s, uint32_t(bytes_.size()));
    if (fresh) {
      bytes_.insert(bytes_.end(), s.begin(), s.end());
      bytes_.push_back(0);
    }
    return it->second;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  std::unordered_map<std::string, uint32_t> refs_;
};

}  // namespace

void validate(const Model& m) {
  const Reporter r(ErrorCode::kInvalidArgument, fmt::format("model '{}'", m.name));
  auto no_nul = [&](const std::string& s, const std::string& field) {
    if (s.find('\0') != std::string::npos) r.fail(std::nullopt, field, "expected a string without NUL bytes");
    if (s.size() > kMaxNameBytes)
      r.fail(std::nullopt, field, fmt::format("expected at most {} bytes, found {}", kMaxNameBytes, s.size()));
  };
  no_nul(m.name, "name");
  no_nul(m.config_name, "config_name");
  if (m.array_rows < 1 || m.array_rows > kMaxArrayDim)
    r.fail(std::nullopt, "array_rows", fmt::format("expected 1..{}, found {}", kMaxArrayDim, m.array_rows));
  if (m.array_cols < 1 || m.array_cols > kMaxArrayDim)
    r.fail(std::nullopt, "array_cols", fmt::format("expected 1..{}, found {}", kMaxArrayDim, m.array_cols));
  constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();
  if (m.tensors.size() > kU32Max)
    r.fail(std::nullopt, "tensors", fmt::format("expected at most {} tensors, found {}", kU32Max, m.tensors.size()));
  if (m.streams.size() > kU32Max)
    r.fail(std::nullopt, "streams", fmt::format("expected at most {} streams, found {}", kU32Max, m.streams.size()));
  uint64_t string_bytes = 1 + m.name.size() + 1 + m.config_name.size() + 1;

  std::vector<RawTensor> raw(m.tensors.size());
  NameSet names;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const Tensor& t = m.tensors[i];
    no_nul(t.name, fmt::format("tensor[{}].name", i));
    string_bytes += t.name.size() + 1;
    RawTensor& rt = raw[i];
    rt.name = t.name;
    rt.dtype = unsigned(t.dtype);
    rt.kind = unsigned(t.kind);
    rt.rank = t.shape.size();
    rt.shape = t.shape;
    rt.hbm_offset = t.hbm_offset;
    rt.bytes = t.bytes;
    rt.data_bytes = t.data.size();
    rt.data_field = "data";
    check_tensor(r, i, rt, m.hbm_window_bytes);
    names.add(r, i, rt);
  }
  if (string_bytes > kU32Max)
    r.fail(std::nullopt, "name", fmt::format("expected at most {} bytes of names, found {}", kU32Max, string_bytes));
  check_overlaps(r, raw);

  std::array<std::optional<size_t>, isa::kMaxEngines> owner{};
  for (size_t i = 0; i < m.streams.size(); ++i) {
    const Stream& s = m.streams[i];
    check_engine(r, i, std::nullopt, s.engine, owner);
    if (s.instrs.size() > kU32Max)
      r.fail(std::nullopt, fmt::format("stream[{}].instrs", i),
             fmt::format("expected at most {} instructions, found {}", kU32Max, s.instrs.size()));
    for (size_t k = 0; k < s.instrs.size(); ++k) check_accepted(r, i, k, std::nullopt, s.engine, s.instrs[k]);
  }
}

std::vector<uint8_t> serialize(const Model& m) {
  validate(m);
  StringTable strings;
  const uint32_t name_ref = strings.add(m.name);
  const uint32_t config_ref = strings.add(m.config_name);
  std::vector<uint32_t> tensor_refs;
  for (const auto& t : m.tensors) tensor_refs.push_back(strings.add(t.name));

  // Layout: see check_layout(); validate() has bounded every count.
  const uint64_t strings_off = kHeaderBytes;
  const uint64_t strings_bytes = strings.bytes().size();
  const uint64_t tensors_off = align_up(strings_off + strings_bytes, kTableAlign);
  const uint64_t streams_off = tensors_off + m.tensors.size() * kTensorEntryBytes;
  const uint64_t code_off = align_up(streams_off + m.streams.size() * kStreamEntryBytes, kBlockAlign);
  uint64_t instr_count = 0;
  for (const auto& s : m.streams) instr_count += s.instrs.size();
  const uint64_t data_off = code_off + instr_count * isa::kInstrBytes;
  std::vector<uint64_t> const_at(m.tensors.size(), 0);
  uint64_t data_bytes = 0;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (m.tensors[i].kind != TensorKind::kConst) continue;
    const_at[i] = align_up(data_bytes, kBlockAlign);
    data_bytes = const_at[i] + m.tensors[i].bytes;
  }
  const uint64_t file_bytes = align_up(data_off + data_bytes, kBlockAlign);

  std::vector<uint8_t> out(file_bytes, 0);
  std::copy(kMagic.begin(), kMagic.end(), out.begin());
  put_le(out, hdr::kVersion, kFormatVersion, 4);
  put_le(out, hdr::kHeaderBytesAt, kHeaderBytes, 4);
  put_le(out, hdr::kFileBytes, file_bytes, 8);
  put_le(out, hdr::kName, name_ref, 4);
  put_le(out, hdr::kConfigName, config_ref, 4);
  put_le(out, hdr::kArrayRows, uint32_t(m.array_rows), 4);
  put_le(out, hdr::kArrayCols, uint32_t(m.array_cols), 4);
  put_le(out, hdr::kWindow, m.hbm_window_bytes, 8);
  put_le(out, hdr::kStringsOffset, strings_off, 8);
  put_le(out, hdr::kStringsBytes, strings_bytes, 4);
  put_le(out, hdr::kTensorCount, m.tensors.size(), 4);
  put_le(out, hdr::kTensorsOffset, tensors_off, 8);
  put_le(out, hdr::kStreamCount, m.streams.size(), 4);
  put_le(out, hdr::kStreamsOffset, streams_off, 8);
  put_le(out, hdr::kCodeOffset, code_off, 8);
  put_le(out, hdr::kInstrCount, instr_count, 8);
  put_le(out, hdr::kDataOffset, data_off, 8);
  put_le(out, hdr::kDataBytes, data_bytes, 8);
  std::copy(strings.bytes().begin(), strings.bytes().end(), out.begin() + strings_off);

  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const Tensor& t = m.tensors[i];
    const uint64_t e = tensors_off + i * kTensorEntryBytes;
    put_le(out, e + te::kName, tensor_refs[i], 4);
    out[e + te::kDtype] = uint8_t(t.dtype);
    out[e + te::kKind] = uint8_t(t.kind);
    out[e + te::kRank] = uint8_t(t.shape.size());
    put_le(out, e + te::kHbmOffset, t.hbm_offset, 8);
    put_le(out, e + te::kBytes, t.bytes, 8);
    put_le(out, e + te::kDataOffset, const_at[i], 8);
    put_le(out, e + te::kDataBytes, t.data.size(), 8);
    for (size_t d = 0; d < t.shape.size(); ++d) put_le(out, e + te::kShape + 8 * d, uint64_t(t.shape[d]), 8);
    std::copy(t.data.begin(), t.data.end(), out.begin() + data_off + const_at[i]);
  }

  uint64_t next = 0;
  for (size_t i = 0; i < m.streams.size(); ++i) {
    const Stream& s = m.streams[i];
    const uint64_t e = streams_off + i * kStreamEntryBytes;
    put_le(out, e + se::kEngine, uint32_t(s.engine), 4);
    put_le(out, e + se::kInstrCount, s.instrs.size(), 4);
    put_le(out, e + se::kFirstInstr, next, 8);
    for (size_t k = 0; k < s.instrs.size(); ++k, ++next) {
      std::span<uint8_t, isa::kInstrBytes> slot(out.data() + code_off + next * isa::kInstrBytes, isa::kInstrBytes);
      try {
        isa::encode_to(s.instrs[k], slot);
      } catch (const Error& err) {
        throw Error(err.code(), fmt::format("model '{}': field 'stream[{}].instr[{}]': engine {} instruction {}: {}",
                                            m.name, i, k, isa::engine_name(s.engine), k, err.what()));
      }
    }
  }
  put_le(out, hdr::kCrc, crc32(out), 4);  // the crc32 field is still zero here, as the rule requires
  return out;
}

Model parse(std::span<const uint8_t> bytes, const std::string& source) { return Parser(bytes, source).run(); }

void save(const Model& m, const std::string& path) { write_file(path, serialize(m)); }

Model load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return parse(bytes, path);
}

}  // namespace tcemu::model
