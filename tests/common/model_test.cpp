// The model file (.tcm): round trip, one test per validation rule of docs/model-format.md, and a
// robustness loop. The corruption tests patch a valid file at the offsets the document gives (the
// constants below are copied from its tables, not from model.cpp) and, where the rule under test lies
// past the checksum, recompute the CRC so that the loader reaches it.
#include "tcemu/model.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <random>
#include <string>

#include "tcemu/crc32.h"
#include "model_fixtures.h"
#include "tcemu/error.h"
#include "tcemu/isa.h"

namespace {

using tcemu::Error;
using tcemu::ErrorCode;
namespace isa = tcemu::isa;
namespace model = tcemu::model;

// docs/model-format.md, "Header".
constexpr size_t kVersionAt = 0x08, kHeaderBytesAt = 0x0C, kFileBytesAt = 0x10, kCrcAt = 0x18, kReserved0At = 0x1C,
                 kNameAt = 0x20, kArrayRowsAt = 0x28, kWindowAt = 0x30, kStringsOffsetAt = 0x38, kStringsBytesAt = 0x40,
                 kTensorCountAt = 0x44, kTensorsOffsetAt = 0x48, kStreamCountAt = 0x50, kStreamsOffsetAt = 0x58,
                 kCodeOffsetAt = 0x60, kInstrCountAt = 0x68, kDataOffsetAt = 0x70, kDataBytesAt = 0x78,
                 kHeaderSize = 128;
// "Tensor entry" (104 bytes).
constexpr size_t kTensorEntry = 104, kTName = 0x00, kTDtype = 0x04, kTKind = 0x05, kTRank = 0x06, kTReserved = 0x07,
                 kTHbmOffset = 0x08, kTBytes = 0x10, kTDataOffset = 0x18, kTDataBytes = 0x20, kTShape = 0x28;
// "Stream entry" (16 bytes).
constexpr size_t kStreamEntry = 16, kSEngine = 0x00, kSInstrCount = 0x04, kSFirstInstr = 0x08;

model::Tensor tensor(std::string name, model::DType dt, model::TensorKind kind, std::vector<int64_t> shape,
                     uint64_t offset) {
  return tcemu::test::make_tensor(std::move(name), dt, kind, std::move(shape), offset, 0xA0, 1);
}

isa::Instr nop(uint64_t wait_sem, uint64_t wait_value) {
  isa::Instr in;
  in.opcode = isa::Opcode::Nop;
  in.wait_en = 1;
  in.wait_sem = wait_sem;
  in.wait_value = wait_value;
  return in;
}

isa::Instr dma(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t signal_sem) {
  isa::Instr in;
  in.opcode = isa::Opcode::DmaCopy;
  in.src = src;
  in.dst = dst;
  in.bytes = bytes;
  in.d1_count = 2;
  in.d2_count = 1;
  in.src_d1_stride = bytes;
  in.dst_d1_stride = 4096;
  in.signal_en = 1;
  in.signal_sem = signal_sem;
  in.signal_value = 1;
  return in;
}

isa::Instr matmul() {
  isa::Instr in;
  in.opcode = isa::Opcode::Matmul;
  in.k = 16;
  in.m = 16;
  in.n = 64;
  in.accumulate = 1;
  in.st_off = 0x100;
  in.mv_off = 0x200;
  in.out_off = 0x40;
  in.wait_en = 1;
  in.wait_sem = 16;
  in.wait_value = 2;
  in.signal_en = 1;
  in.signal_set = 1;
  in.signal_sem = 0;
  in.signal_value = 7;
  return in;
}

// Tensors: a (bf16 input), w (f32 const, 16 bytes), c (f32 output), s (bf16 scalar scratch), k (bf16 const,
// 6 bytes: the data section then has padding between constants). Streams: dma0, tensor, dma3 (not sorted).
model::Model sample() {
  using model::DType;
  using model::TensorKind;
  model::Model m;
  m.name = "sample";
  m.config_name = "tc1-16";
  m.array_rows = 16;
  m.array_cols = 16;
  m.hbm_window_bytes = 512;
  m.tensors.push_back(tensor("a", DType::kBf16, TensorKind::kInput, {2, 3}, 0));
  m.tensors.push_back(tensor("w", DType::kF32, TensorKind::kConst, {4}, 64));
  m.tensors.push_back(tensor("c", DType::kF32, TensorKind::kOutput, {2, 2}, 128));
  m.tensors.push_back(tensor("s", DType::kBf16, TensorKind::kScratch, {}, 192));
  m.tensors.push_back(tensor("k", DType::kBf16, TensorKind::kConst, {1, 3, 1}, 256));
  const uint64_t hbm = isa::make_addr(isa::Space::kHbm, 0);
  const uint64_t sbuf = isa::make_addr(isa::Space::kSbuf, 0x100);
  m.streams.push_back({isa::kEngineDma0, {dma(hbm, sbuf, 6, 16), dma(hbm + 64, sbuf + 0x100, 16, 16)}});
  m.streams.push_back({isa::kEngineTensor, {nop(16, 1), matmul()}});
  m.streams.push_back({isa::kEngineDma0 + 3, {nop(0, 1), dma(isa::make_addr(isa::Space::kPsum, 0), hbm + 128, 8, 19)}});
  return m;
}

// A file image with little-endian accessors at documented offsets.
struct Image {
  std::vector<uint8_t> b;

  uint64_t get(size_t off, int n) const {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(b.at(off + i)) << (8 * i);
    return v;
  }
  void set(size_t off, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.at(off + i) = uint8_t(v >> (8 * i));
  }
  size_t tensor(size_t i) const { return get(kTensorsOffsetAt, 8) + i * kTensorEntry; }
  size_t stream(size_t i) const { return get(kStreamsOffsetAt, 8) + i * kStreamEntry; }
  size_t instr(size_t stream_index, size_t k) const {
    return get(kCodeOffsetAt, 8) + (get(stream(stream_index) + kSFirstInstr, 8) + k) * 64;
  }
  // The CRC of the file with its crc32 field taken as zero.
  void fix_crc() {
    set(kCrcAt, 0, 4);
    set(kCrcAt, tcemu::crc32(b), 4);
  }
};

Image image() { return Image{model::serialize(sample())}; }

// parse() must throw Error(code) whose message contains every one of `parts`.
void expect_error(const std::vector<uint8_t>& bytes, std::initializer_list<std::string> parts,
                  ErrorCode code = ErrorCode::kFormat) {
  try {
    model::parse(bytes, "m.tcm");
    ADD_FAILURE() << "parse accepted the file";
  } catch (const Error& e) {
    EXPECT_EQ(int(e.code()), int(code)) << e.what();
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("m.tcm: ", 0), 0u) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "offset 0x%llx:", (unsigned long long)v);
  return buf;
}

// ---- Round trip and layout ----

TEST(ModelFile, RoundTripGivesAnEqualModel) {
  const model::Model m = sample();
  const model::Model back = model::parse(model::serialize(m), "m.tcm");
  EXPECT_EQ(back, m);
  ASSERT_EQ(back.streams.size(), 3u);
  EXPECT_EQ(back.streams[2].engine, isa::kEngineDma0 + 3);  // stream order is kept
  EXPECT_EQ(back.tensors[1].data, m.tensors[1].data);
}

TEST(ModelFile, ReserializeIsByteIdentical) {
  const std::vector<uint8_t> a = model::serialize(sample());
  EXPECT_EQ(model::serialize(model::parse(a, "m.tcm")), a);
}

TEST(ModelFile, EmptyModelRoundTrips) {
  model::Model m;
  m.array_rows = m.array_cols = 8;
  const std::vector<uint8_t> a = model::serialize(m);
  EXPECT_EQ(a.size(), 192u);  // header, one NUL of strings, padding to the 64-aligned code section
  EXPECT_EQ(model::parse(a, "m.tcm"), m);
}

TEST(ModelFile, LayoutFollowsTheDocument) {
  const Image im = image();
  const std::vector<uint8_t> magic = {0x89, 'T', 'C', 'M', '\r', '\n', 0x1A, '\n'};
  EXPECT_TRUE(std::equal(magic.begin(), magic.end(), im.b.begin()));
  EXPECT_EQ(im.get(kVersionAt, 4), 1u);
  EXPECT_EQ(im.get(kHeaderBytesAt, 4), kHeaderSize);
  EXPECT_EQ(im.get(kFileBytesAt, 8), im.b.size());
  EXPECT_EQ(im.b.size() % 64, 0u);
  Image zeroed = im;
  zeroed.set(kCrcAt, 0, 4);
  EXPECT_EQ(im.get(kCrcAt, 4), tcemu::crc32(zeroed.b));
  EXPECT_EQ(im.get(kStringsOffsetAt, 8), kHeaderSize);
  EXPECT_EQ(im.get(kTensorCountAt, 4), 5u);
  EXPECT_EQ(im.get(kStreamCountAt, 4), 3u);
  EXPECT_EQ(im.get(kTensorsOffsetAt, 8) % 8, 0u);
  EXPECT_EQ(im.get(kCodeOffsetAt, 8) % 64, 0u);
  EXPECT_EQ(im.get(kInstrCountAt, 4), 6u);
  EXPECT_EQ(im.get(kDataOffsetAt, 8), im.get(kCodeOffsetAt, 8) + 6 * 64);
  EXPECT_EQ(im.get(kDataBytesAt, 8), 64u + 6u);  // w at 0 (16 bytes), k at the next 64-byte boundary
  // Tensor 4 ('k'): a 1x3x1 bf16 constant.
  const size_t t = im.tensor(4);
  EXPECT_EQ(im.b[t + kTDtype], 1);
  EXPECT_EQ(im.b[t + kTKind], 3);
  EXPECT_EQ(im.b[t + kTRank], 3);
  EXPECT_EQ(im.get(t + kTShape + 8, 8), 3u);
  EXPECT_EQ(im.get(t + kTDataOffset, 8), 64u);
  EXPECT_EQ(im.get(t + kTDataBytes, 8), 6u);
  EXPECT_EQ(im.b[im.get(kDataOffsetAt, 8) + 64], 0xA0);
  // Stream 1 (tensor): its instructions are the ones isa::encode_to produces, after dma0's two.
  EXPECT_EQ(im.get(im.stream(1) + kSEngine, 4), 0u);
  EXPECT_EQ(im.get(im.stream(1) + kSInstrCount, 4), 2u);
  EXPECT_EQ(im.get(im.stream(1) + kSFirstInstr, 8), 2u);
  std::array<uint8_t, 64> mm{};
  isa::encode_to(matmul(), mm);
  EXPECT_TRUE(std::equal(mm.begin(), mm.end(), im.b.begin() + im.instr(1, 1)));
}

// DMA addresses are the device's business (it faults at run time): the loader accepts any of them.
TEST(ModelFile, DmaAddressesAreNotChecked) {
  model::Model m = sample();
  m.streams[0].instrs[0].src = isa::make_addr(isa::Space::kHbm, uint64_t(1) << 40);
  m.streams[0].instrs[0].dst = isa::make_addr(isa::Space(7), 0);
  EXPECT_EQ(model::parse(model::serialize(m), "m.tcm"), m);
}

TEST(ModelFile, FindTensor) {
  const model::Model m = sample();
  ASSERT_NE(m.find_tensor("c"), nullptr);
  EXPECT_EQ(m.find_tensor("c")->hbm_offset, 128u);
  EXPECT_EQ(m.find_tensor("nope"), nullptr);
}

TEST(ModelFile, NamesOfEnums) {
  EXPECT_STREQ(model::dtype_name(model::DType::kBf16), "bf16");
  EXPECT_STREQ(model::dtype_name(model::DType::kF32), "f32");
  EXPECT_EQ(model::dtype_size(model::DType::kBf16), 2u);
  EXPECT_EQ(model::dtype_size(model::DType::kF32), 4u);
  EXPECT_STREQ(model::kind_name(model::TensorKind::kConst), "const");
  EXPECT_STREQ(model::kind_name(model::TensorKind::kScratch), "scratch");
}

TEST(ModelFile, SaveAndLoad) {
  const std::string path = testing::TempDir() + "model_test_save.tcm";
  model::save(sample(), path);
  EXPECT_EQ(model::load(path), sample());
  std::filesystem::remove(path);
}

TEST(ModelFile, LoadMissingFileIsIoError) {
  try {
    model::load("/nonexistent-dir/x.tcm");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.tcm"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

TEST(ModelFile, SaveToBadPathIsIoError) {
  try {
    model::save(sample(), "/nonexistent-dir/x.tcm");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.tcm"), std::string::npos);
  }
}

// ---- One test per rule ----

TEST(ModelFileRejects, EveryTruncation) {
  const Image im = image();
  for (size_t n = 0; n < im.b.size(); ++n) {
    std::vector<uint8_t> cut(im.b.begin(), im.b.begin() + n);
    SCOPED_TRACE(n);
    expect_error(cut, {"truncated"});
  }
}

TEST(ModelFileRejects, TruncationInsideTheHeaderNamesTheCutField) {
  const Image im = image();
  expect_error({im.b.begin(), im.b.begin() + 20},
               {"offset 0x10: field 'file_bytes'", "expected at least 128", "found 20"});
  expect_error({im.b.begin(), im.b.begin() + 5}, {"offset 0x0: field 'magic'", "truncated"});
  expect_error({}, {"field 'magic'", "found 0"});
}

TEST(ModelFileRejects, TruncationAfterTheHeader) {
  const Image im = image();
  expect_error({im.b.begin(), im.b.end() - 1},
               {"offset 0x10: field 'file_bytes'", "truncated", "expected " + std::to_string(im.b.size())});
}

TEST(ModelFileRejects, BadMagic) {
  Image im = image();
  im.b[1] = 'X';
  expect_error(im.b, {"offset 0x0: field 'magic'", "89 54 43 4d", "found 89 58 43 4d"});
  expect_error({'P', 'K', 3, 4}, {"field 'magic'", "found 50 4b 03 04"});
}

TEST(ModelFileRejects, NewerVersion) {
  Image im = image();
  im.set(kVersionAt, 2, 4);
  expect_error(im.b, {"offset 0x8: field 'version'", "version 2 not supported (this build reads 1)"});
  // Even when the rest of the header is missing.
  expect_error({im.b.begin(), im.b.begin() + 12}, {"version 2 not supported (this build reads 1)"});
}

TEST(ModelFileRejects, HeaderBytes) {
  Image im = image();
  im.set(kHeaderBytesAt, 256, 4);
  expect_error(im.b, {"offset 0xc: field 'header_bytes'", "expected 0x80", "found 0x100"});
}

TEST(ModelFileRejects, TrailingBytes) {
  Image im = image();
  im.b.push_back(0);
  expect_error(im.b, {"offset 0x10: field 'file_bytes'", "trailing", "found " + std::to_string(im.b.size())});
}

TEST(ModelFileRejects, BadChecksum) {
  Image im = image();
  const uint32_t stored = uint32_t(im.get(kCrcAt, 4));
  im.b[im.b.size() - 70] ^= 0x01;  // inside the data section
  Image zeroed = im;
  zeroed.set(kCrcAt, 0, 4);
  char want[64];
  std::snprintf(want, sizeof want, "expected 0x%08x (stored), computed 0x%08x", stored, tcemu::crc32(zeroed.b));
  expect_error(im.b, {"offset 0x18: field 'crc32'", want});
}

TEST(ModelFileRejects, ReservedHeaderField) {
  Image im = image();
  im.set(kReserved0At, 1, 4);
  im.fix_crc();
  expect_error(im.b, {"offset 0x1c: field 'reserved0'", "expected 0x0, found 0x1"});
}

TEST(ModelFileRejects, MisplacedSection) {
  Image im = image();
  im.set(kTensorsOffsetAt, im.get(kTensorsOffsetAt, 8) + 8, 8);
  im.fix_crc();
  expect_error(im.b, {"offset 0x48: field 'tensors_offset'", "expected 0x"});
}

TEST(ModelFileRejects, HugeCountsWithoutAllocating) {
  Image im = image();
  im.set(kTensorCountAt, 0xFFFFFFFF, 4);
  im.fix_crc();
  expect_error(im.b, {"offset 0x44: field 'tensor_count'", "found 4294967295"});
  im = image();
  im.set(kInstrCountAt, ~uint64_t(0), 8);
  im.fix_crc();
  expect_error(im.b, {"offset 0x68: field 'instr_count'", "found 18446744073709551615"});
}

TEST(ModelFileRejects, NonZeroPadding) {
  Image im = image();
  const size_t at = im.b.size() - 1;  // the file's tail after the last constant
  im.b[at] = 0x55;
  im.fix_crc();
  expect_error(im.b, {hex(at), "field 'padding'", "found 0x55"});
}

TEST(ModelFileRejects, StringOutOfRange) {
  Image im = image();
  const size_t f = im.tensor(2) + kTName;
  im.set(f, im.get(kStringsBytesAt, 4), 4);
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[2].name'", "string-table offset"});
}

TEST(ModelFileRejects, StringNotTerminated) {
  Image im = image();
  const size_t last = kHeaderSize + im.get(kStringsBytesAt, 4) - 1;  // NUL of the last string ('k')
  ASSERT_EQ(im.b[last], 0);
  im.b[last] = 'x';
  im.fix_crc();
  expect_error(im.b, {hex(im.tensor(4) + kTName), "field 'tensor[4].name'", "not NUL-terminated"});
}

TEST(ModelFileRejects, ModelNameOutOfRange) {
  Image im = image();
  im.set(kNameAt, 0x7FFFFFFF, 4);
  im.fix_crc();
  expect_error(im.b, {"offset 0x20: field 'name'", "found 0x7fffffff"});
}

TEST(ModelFileRejects, ArrayDims) {
  Image im = image();
  im.set(kArrayRowsAt, 0, 4);
  im.fix_crc();
  expect_error(im.b, {"offset 0x28: field 'array_rows'", "expected 1..65535, found 0"});
}

TEST(ModelFileRejects, EmptyName) {
  Image im = image();
  im.set(im.tensor(3) + kTName, 0, 4);  // offset 0 of the string table is the empty string
  im.fix_crc();
  expect_error(im.b, {hex(im.tensor(3) + kTName), "field 'tensor[3].name'", "non-empty"});
}

TEST(ModelFileRejects, DuplicateName) {
  Image im = image();
  im.set(im.tensor(3) + kTName, im.get(im.tensor(0) + kTName, 4), 4);
  im.fix_crc();
  expect_error(im.b, {hex(im.tensor(3) + kTName), "field 'tensor[3].name'", "unique", "'a'", "tensor[0]"});
}

TEST(ModelFileRejects, UnknownDtype) {
  Image im = image();
  im.b[im.tensor(2) + kTDtype] = 9;
  im.fix_crc();
  expect_error(im.b, {hex(im.tensor(2) + kTDtype), "field 'tensor[2].dtype'", "found 9"});
}

TEST(ModelFileRejects, UnknownKind) {
  Image im = image();
  im.b[im.tensor(2) + kTKind] = 0;
  im.fix_crc();
  expect_error(im.b, {hex(im.tensor(2) + kTKind), "field 'tensor[2].kind'", "found 0"});
}

TEST(ModelFileRejects, TooManyDims) {
  Image im = image();
  im.b[im.tensor(0) + kTRank] = 9;
  im.fix_crc();
  expect_error(im.b, {hex(im.tensor(0) + kTRank), "field 'tensor[0].rank'", "at most 8 dims, found 9"});
}

TEST(ModelFileRejects, NonPositiveDim) {
  for (int64_t bad : {0, -3}) {
    Image im = image();
    const size_t f = im.tensor(0) + kTShape + 8;
    im.set(f, uint64_t(bad), 8);
    im.fix_crc();
    expect_error(im.b, {hex(f), "field 'tensor[0].shape[1]'", "expected a dim >= 1, found " + std::to_string(bad)});
  }
}

TEST(ModelFileRejects, DimBeyondRankNotZero) {
  Image im = image();
  const size_t f = im.tensor(0) + kTShape + 8 * 2;
  im.set(f, 5, 8);
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[0].shape[2]'", "found 0x5"});
}

TEST(ModelFileRejects, ReservedTensorByte) {
  Image im = image();
  im.b[im.tensor(1) + kTReserved] = 1;
  im.fix_crc();
  expect_error(im.b, {hex(im.tensor(1) + kTReserved), "field 'tensor[1].reserved'"});
}

TEST(ModelFileRejects, BytesNotProductOfShape) {
  Image im = image();
  const size_t f = im.tensor(2) + kTBytes;
  im.set(f, 15, 8);
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[2].bytes'", "expected 16", "found 15"});
}

TEST(ModelFileRejects, BytesProductOverflows) {
  Image im = image();
  const size_t t = im.tensor(0);
  im.set(t + kTShape, uint64_t(1) << 40, 8);
  im.set(t + kTShape + 8, uint64_t(1) << 40, 8);
  im.fix_crc();
  expect_error(im.b, {hex(t + kTBytes), "field 'tensor[0].bytes'", "overflows 64 bits"});
}

TEST(ModelFileRejects, TensorOutsideTheWindow) {
  Image im = image();
  const size_t f = im.tensor(2) + kTHbmOffset;
  im.set(f, 512 - 8, 8);  // 16 bytes from 504 end past the 512-byte window
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[2].hbm_offset'", "<= hbm_window_bytes (0x200)", "found 0x1f8 + 0x10"});
}

TEST(ModelFileRejects, TensorOffsetThatWouldWrapAround) {
  Image im = image();
  const size_t f = im.tensor(2) + kTHbmOffset;
  im.set(f, ~uint64_t(0) - 3, 8);
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[2].hbm_offset'", "hbm_window_bytes"});
}

TEST(ModelFileRejects, WindowTooSmall) {
  Image im = image();
  im.set(kWindowAt, 200, 8);
  im.fix_crc();
  expect_error(im.b, {"field 'tensor[4].hbm_offset'", "<= hbm_window_bytes (0xc8)"});
}

TEST(ModelFileRejects, OverlappingTensors) {
  Image im = image();
  const size_t f = im.tensor(3) + kTHbmOffset;
  im.set(f, 136, 8);  // 's' (2 bytes) inside 'c' [128, 144)
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[3].hbm_offset'", "tensor[2] 'c' at [0x80, 0x90)", "'s' at [0x88, 0x8a)"});
}

TEST(ModelFileRejects, ConstantDataSizeMismatch) {
  Image im = image();
  const size_t f = im.tensor(1) + kTDataBytes;
  im.set(f, 12, 8);
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[1].data_bytes'", "expected 16 bytes of constant data", "found 12"});
}

TEST(ModelFileRejects, DataForANonConstant) {
  Image im = image();
  const size_t f = im.tensor(0) + kTDataBytes;
  im.set(f, 4, 8);
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[0].data_bytes'", "no data for a tensor of kind input"});
}

TEST(ModelFileRejects, MisplacedConstant) {
  Image im = image();
  const size_t f = im.tensor(4) + kTDataOffset;
  im.set(f, 0, 8);  // would alias w's bytes
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'tensor[4].data_offset'", "expected 0x40", "found 0x0"});
}

TEST(ModelFileRejects, UnknownEngine) {
  for (uint32_t bad : {5u, 32u, 0xFFFFFFFFu}) {
    Image im = image();
    const size_t f = im.stream(1) + kSEngine;
    im.set(f, bad, 4);
    im.fix_crc();
    expect_error(im.b, {hex(f), "field 'stream[1].engine'", "expected an engine id", "found " + std::to_string(bad)});
  }
}

TEST(ModelFileRejects, DuplicateStream) {
  Image im = image();
  const size_t f = im.stream(2) + kSEngine;
  im.set(f, uint32_t(isa::kEngineDma0), 4);
  im.fix_crc();
  expect_error(im.b, {hex(f), "field 'stream[2].engine'", "second stream for engine dma0", "stream[0]"});
}

TEST(ModelFileRejects, StreamCountsDisagree) {
  Image im = image();
  const size_t f = im.stream(2) + kSInstrCount;
  im.set(f, 1, 4);
  im.fix_crc();
  expect_error(im.b, {"offset 0x68: field 'instr_count'", "expected 0x5", "found 0x6"});
  im = image();
  im.set(im.stream(2) + kSInstrCount, 3, 4);
  im.fix_crc();
  expect_error(im.b, {hex(im.stream(2) + kSInstrCount), "field 'stream[2].instr_count'", "found 3"});
}

TEST(ModelFileRejects, InstructionThatDoesNotDecode) {
  Image im = image();
  const size_t at = im.instr(0, 1);
  im.b[at] = 0x7F;
  im.fix_crc();
  expect_error(im.b, {hex(at), "field 'stream[0].instr[1]'", "engine dma0 instruction 1 does not decode",
                      "unknown opcode 0x7f"});
}

TEST(ModelFileRejects, InstructionWithReservedBits) {
  Image im = image();
  const size_t at = im.instr(1, 0);  // the tensor engine's nop
  im.b[at + 6 * 8] = 1;              // word 6: no field of nop
  im.fix_crc();
  expect_error(im.b, {hex(at), "field 'stream[1].instr[0]'", "engine tensor instruction 0", "reserved bits set"});
}

TEST(ModelFileRejects, OpcodeNotAllowedOnTheEngine) {
  Image im = image();
  const size_t at = im.instr(2, 0);  // dma3's nop becomes a matmul (all its operand fields zero)
  im.b[at] = 0x20;
  im.fix_crc();
  expect_error(im.b, {hex(at), "field 'stream[2].instr[0]'", "engine dma3 instruction 0", "(nop, notify, dma_copy)",
                      "found matmul"});
}

// ---- serialize() refuses what parse() would reject ----

void expect_serialize_error(const model::Model& m, ErrorCode code, std::initializer_list<std::string> parts) {
  try {
    model::serialize(m);
    ADD_FAILURE() << "serialize accepted the model";
  } catch (const Error& e) {
    EXPECT_EQ(int(e.code()), int(code)) << e.what();
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(ModelSerialize, RejectsInvalidModels) {
  model::Model m = sample();
  m.tensors[2].bytes = 3;
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"model 'sample': field 'tensor[2].bytes'", "found 3"});
  m = sample();
  m.tensors[1].data.pop_back();
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'tensor[1].data'", "found 15"});
  m = sample();
  m.tensors[0].data = {1};
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'tensor[0].data'", "no data"});
  m = sample();
  m.tensors[3].name = "a";
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'tensor[3].name'", "unique"});
  m = sample();
  m.tensors[3].name = std::string("x\0y", 3);
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'tensor[3].name'", "NUL"});
  m = sample();
  m.tensors[3].name = std::string(256, 'n');
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'tensor[3].name'", "at most 255 bytes, found 256"});
  m = sample();
  m.tensors[0].shape = std::vector<int64_t>(9, 1);
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'tensor[0].rank'", "found 9"});
  m = sample();
  m.tensors[3].hbm_offset = 0;
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'tensor[3].hbm_offset'", "'a'", "'s'"});
  m = sample();
  m.array_cols = 0;
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'array_cols'"});
  m = sample();
  m.streams[1].engine = -1;
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'stream[1].engine'", "found -1"});
  m = sample();
  m.streams[2].engine = isa::kEngineTensor;
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'stream[2].engine'", "second stream"});
  m = sample();
  m.streams[1].instrs.push_back(dma(0, 0, 1, 0));
  expect_serialize_error(m, ErrorCode::kInvalidArgument, {"field 'stream[1].instr[2]'", "found dma_copy"});
}

TEST(ModelSerialize, FieldThatDoesNotFitItsEncoding) {
  model::Model m = sample();
  m.streams[1].instrs[1].k = 1 << 16;
  expect_serialize_error(m, ErrorCode::kEncoding,
                         {"model 'sample': field 'stream[1].instr[1]'", "engine tensor instruction 1", "'k'"});
}

// ---- Robustness: never crash, hang or throw anything but tcemu::Error ----

TEST(ModelFileRobustness, RandomTruncationsAndFlips) {
  const Image base = image();
  std::mt19937_64 rng(12345);
  int parsed = 0, rejected = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int iter = 0; iter < 20000; ++iter) {
    Image im = base;
    const int mode = int(rng() % 4);
    if (mode == 0) {
      im.b.resize(rng() % im.b.size());
    } else {
      // Flip 1..4 bytes, or (mode 3) write a random u32/u64 into a header or table field.
      const int flips = 1 + int(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        const size_t at = rng() % im.b.size();
        if (mode == 3 && at + 8 <= im.b.size())
          im.set(at & ~size_t(3), rng() >> (rng() % 64), (rng() & 1) ? 8 : 4);
        else
          im.b[at] ^= uint8_t(1 + rng() % 255);
      }
      // Most of the time, make the checksum right so that the deeper rules are exercised.
      if (mode != 1 && im.b.size() >= kCrcAt + 4) im.fix_crc();
    }
    try {
      const model::Model m = model::parse(im.b, "fuzz.tcm");
      // Whatever parses must be valid and re-serializable.
      model::validate(m);
      EXPECT_EQ(model::parse(model::serialize(m), "again.tcm"), m);
      ++parsed;
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ErrorCode::kFormat) << e.what();
      ++rejected;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("parsed", parsed);
  RecordProperty("rejected", rejected);
  EXPECT_GT(rejected, 15000);
  std::printf("robustness: %d parsed, %d rejected in %.2f s\n", parsed, rejected, seconds);
}

}  // namespace
