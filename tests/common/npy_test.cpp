// .npy files. The expected bytes are written out by hand here, as numpy.save writes them (numpy.lib.format:
// "\x93NUMPY", version, little-endian header length, then the dict literal padded with spaces and a final
// '\n' so that the data starts at a multiple of 64); numpy itself is not needed.
#include "tcemu/npy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <string>

#include "tcemu/error.h"

namespace {

using tcemu::Error;
using tcemu::ErrorCode;
namespace npy = tcemu::npy;

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

// A v1.0 file: magic, version 1.0, u16 header length, header, data.
std::vector<uint8_t> v1(const std::string& header, const std::string& data = "") {
  std::string s = std::string("\x93NUMPY\x01\x00", 8);
  s += char(header.size() & 0xFF);
  s += char(header.size() >> 8);
  return bytes(s + header + data);
}

template <typename T>
std::string raw(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) s.append(reinterpret_cast<const char*>(&v), sizeof v);
  return s;
}

// Header texts exactly as numpy 1.x writes them; each makes the file's header 128 bytes (10-byte prefix,
// dict, spaces, '\n'), i.e. a header length of 118.
const std::string kHeaderF4_2x3 =
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(58, ' ') + "\n";
const std::string kHeaderF4_3 =
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" + std::string(60, ' ') + "\n";
const std::string kHeaderF4_scalar =
    "{'descr': '<f4', 'fortran_order': False, 'shape': (), }" + std::string(62, ' ') + "\n";
const std::string kHeaderF8_2x3 =
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }" + std::string(58, ' ') + "\n";

void expect_error(const std::vector<uint8_t>& file, std::initializer_list<std::string> parts) {
  try {
    npy::parse(file, "x.npy");
    ADD_FAILURE() << "parse accepted the file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat) << e.what();
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("x.npy: ", 0), 0u) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

std::string temp_path(const std::string& name) { return testing::TempDir() + "npy_test_" + name; }

TEST(Npy, HandWrittenHeadersHave128Bytes) {
  for (const auto* h : {&kHeaderF4_2x3, &kHeaderF4_3, &kHeaderF4_scalar, &kHeaderF8_2x3}) EXPECT_EQ(h->size(), 118u);
}

TEST(Npy, SaveWritesWhatNumpyWrites) {
  const npy::Array a{{2, 3}, {1, 2, 3, 4, 5, 6}};
  EXPECT_EQ(npy::serialize(a), v1(kHeaderF4_2x3, raw<float>({1, 2, 3, 4, 5, 6})));
  EXPECT_EQ(npy::serialize({{3}, {1, 2, 3}}), v1(kHeaderF4_3, raw<float>({1, 2, 3})));
  EXPECT_EQ(npy::serialize({{}, {7}}), v1(kHeaderF4_scalar, raw<float>({7})));
}

TEST(Npy, ReadsF4) {
  npy::Array a = npy::parse(v1(kHeaderF4_2x3, raw<float>({1, 2, 3, 4, 5, -6.5f})), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data, (std::vector<float>{1, 2, 3, 4, 5, -6.5f}));
  a = npy::parse(v1(kHeaderF4_3, raw<float>({0.5f, 1e30f, -0.0f})), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(a.data[1], 1e30f);
  EXPECT_TRUE(std::signbit(a.data[2]));
  a = npy::parse(v1(kHeaderF4_scalar, raw<float>({42})), "x.npy");
  EXPECT_TRUE(a.shape.empty());
  EXPECT_EQ(a.data, (std::vector<float>{42}));
}

TEST(Npy, ReadsF8RoundingToFloat) {
  const npy::Array a = npy::parse(v1(kHeaderF8_2x3, raw<double>({1, 0.1, -2.5, 1e300, 3, 4})), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data[1], 0.1f);
  EXPECT_EQ(a.data[2], -2.5f);
  EXPECT_EQ(a.data[3], std::numeric_limits<float>::infinity());
}

TEST(Npy, ReadsF2I4I8AndByteOrderFreeDescr) {
  // binary16: 1.0 = 0x3C00, -2.0 = 0xC000, smallest subnormal 2^-24 = 0x0001, +inf = 0x7C00.
  npy::Array a = npy::parse(v1("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }\n",
                               raw<uint16_t>({0x3C00, 0xC000, 0x0001, 0x7C00})),
                            "x.npy");
  EXPECT_EQ(a.data, (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), std::numeric_limits<float>::infinity()}));
  a = npy::parse(v1("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n", raw<int32_t>({-7, 100000})),
                 "x.npy");
  EXPECT_EQ(a.data, (std::vector<float>{-7, 100000}));
  a = npy::parse(
      v1("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n", raw<int64_t>({-1, int64_t(1) << 40})), "x.npy");
  EXPECT_EQ(a.data, (std::vector<float>{-1, std::ldexp(1.0f, 40)}));
  a = npy::parse(v1("{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }\n", raw<float>({2})), "x.npy");
  EXPECT_EQ(a.data, (std::vector<float>{2}));
}

TEST(Npy, ReadsVersion2And3Headers) {
  const std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  for (char major : {'\x02', '\x03'}) {
    std::string s = std::string("\x93NUMPY", 6) + major + '\0';
    s += raw<uint32_t>({uint32_t(h.size())});
    const npy::Array a = npy::parse(bytes(s + h + raw<float>({3, 4})), "x.npy");
    EXPECT_EQ(a.data, (std::vector<float>{3, 4})) << int(major);
  }
}

TEST(Npy, ReadsOtherSpellingsOfTheDict) {
  // Key order, double quotes, no trailing comma, numpy >= 1.24's growth spaces, Python 2's long suffix.
  npy::Array a = npy::parse(
      v1("{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"<f4\"}   \n", raw<float>({1, 2})), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2}));
  a = npy::parse(v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }\n", raw<float>({1, 2})), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2}));
}

TEST(Npy, EmptyArray) {
  const npy::Array a = npy::parse(v1("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }\n"), "x.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{0, 5}));
  EXPECT_TRUE(a.data.empty());
  EXPECT_EQ(npy::parse(npy::serialize(a), "x.npy"), a);
}

TEST(Npy, FileRoundTrip) {
  npy::Array a{{2, 3, 4}, {}};
  for (int i = 0; i < 24; ++i) a.data.push_back(float(i) * 0.25f - 3);
  const std::string path = temp_path("roundtrip.npy");
  npy::save(path, a);
  EXPECT_EQ(std::filesystem::file_size(path) % 64, (24 * 4) % 64);  // the header is 64-aligned
  EXPECT_EQ(npy::load(path), a);
  std::filesystem::remove(path);
}

TEST(Npy, LongHeaderUsesVersion2) {
  npy::Array a;
  a.shape.assign(25000, 1);  // "1, " x 25000: the dict no longer fits v1.0's 16-bit length
  a.data = {5};
  const std::vector<uint8_t> f = npy::serialize(a);
  EXPECT_EQ(f[6], 2);
  EXPECT_EQ((12 + (f[8] | f[9] << 8 | f[10] << 16)) % 64, 0);
  EXPECT_EQ(npy::parse(f, "x.npy"), a);
}

// ---- Errors ----

TEST(NpyRejects, BadMagic) {
  expect_error(bytes("PK\x03\x04 not numpy"), {"not a .npy file", "found 50 4b 03 04 20 6e"});
  expect_error({}, {"not a .npy file", "found an empty file"});
}

TEST(NpyRejects, UnsupportedVersion) {
  std::vector<uint8_t> f = v1(kHeaderF4_3, raw<float>({1, 2, 3}));
  f[6] = 4;
  expect_error(f, {"version 4.0 not supported"});
}

TEST(NpyRejects, TruncatedPrefixAndHeader) {
  const std::vector<uint8_t> f = v1(kHeaderF4_3, raw<float>({1, 2, 3}));
  expect_error({f.begin(), f.begin() + 7}, {"truncated"});
  expect_error({f.begin(), f.begin() + 9}, {"truncated"});
  expect_error({f.begin(), f.begin() + 50}, {"header truncated", "expected 118 bytes", "found 40"});
}

TEST(NpyRejects, HeaderNotADict) {
  expect_error(v1("['descr', '<f4']\n"), {"not a valid dict", "expected '{'"});
  expect_error(v1("{'descr': '<f4', 'shape': (3,) 'fortran_order': False}\n"), {"not a valid dict"});
  expect_error(v1("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } extra\n"), {"not a valid dict"});
  expect_error(v1("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,), }\n"), {"not a valid dict"});
  expect_error(v1("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }\n"), {"non-negative"});
  expect_error(v1("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }\n"), {"a 1-d shape is written (3,)"});
}

TEST(NpyRejects, MissingKeys) {
  expect_error(v1("{'fortran_order': False, 'shape': (3,), }\n", raw<float>({1, 2, 3})), {"no 'descr' key"});
  expect_error(v1("{'descr': '<f4', 'fortran_order': False, }\n", raw<float>({1})), {"no 'shape' key"});
  expect_error(v1("{'descr': '<f4', 'shape': (1,), 'shape': (1,), 'fortran_order': False, }\n", raw<float>({1})),
               {"'shape' twice"});
  expect_error(v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 'y', }\n", raw<float>({1})),
               {"unexpected key 'x'"});
  expect_error(v1("{'descr': 4, 'fortran_order': False, 'shape': (1,), }\n", raw<float>({1})), {"not a valid dict"});
}

TEST(NpyRejects, FortranOrder) {
  expect_error(v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", raw<float>({1, 2, 3, 4, 5, 6})),
               {"fortran_order=True is not supported"});
}

TEST(NpyRejects, BigEndianAndOtherDescrs) {
  expect_error(v1("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n", raw<float>({1})),
               {"'>f4' is big-endian", "expected byte order '<' or '|'"});
  expect_error(v1("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", raw<float>({1, 2})),
               {"descr '<c8' not supported"});
  expect_error(v1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", raw<float>({1})),
               {"structured dtypes are not supported"});
}

TEST(NpyRejects, DataShorterOrLongerThanTheShape) {
  expect_error(v1(kHeaderF4_2x3, raw<float>({1, 2, 3, 4, 5})), {"expected 24 bytes", "found 20"});
  expect_error(v1(kHeaderF8_2x3, raw<double>({1, 2, 3, 4, 5, 6}) + "x"), {"expected 48 bytes", "found 49"});
  expect_error(v1("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n"),
               {"more than 2^64 bytes"});
}

TEST(NpyRejects, IoErrorsNameThePath) {
  try {
    npy::load("/nonexistent-dir/in.npy");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/in.npy: cannot open"), std::string::npos) << e.what();
  }
  try {
    npy::save("/nonexistent-dir/out.npy", {{1}, {1}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/out.npy"), std::string::npos) << e.what();
  }
}

TEST(NpyRejects, LoadOfAMalformedFileNamesThePath) {
  const std::string path = temp_path("bad.npy");
  std::ofstream(path, std::ios::binary) << "hello";
  try {
    npy::load(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    EXPECT_EQ(std::string(e.what()).rfind(path + ": not a .npy file", 0), 0u) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(NpyRejects, SaveOfAnInconsistentArray) {
  for (const npy::Array& a :
       {npy::Array{{2, 3}, {1, 2}}, npy::Array{{-1}, {}}, npy::Array{{int64_t(1) << 62, 8}, {1}}}) {
    try {
      npy::serialize(a);
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  }
}

}  // namespace
