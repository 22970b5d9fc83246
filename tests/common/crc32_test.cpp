// CRC-32 against the published check value of the IEEE 802.3 / zlib CRC (the "CRC catalogue":
// CRC-32/ISO-HDLC, check = 0xCBF43926 for the ASCII bytes "123456789").
#include "tcemu/crc32.h"

#include <gtest/gtest.h>

#include <string_view>

namespace {

std::span<const uint8_t> bytes_of(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(Crc32, PublishedCheckValue) { EXPECT_EQ(tcemu::crc32(bytes_of("123456789")), 0xCBF43926u); }

TEST(Crc32, EmptyInputIsZero) { EXPECT_EQ(tcemu::crc32({}), 0u); }

// Other published values: zlib.crc32(b"a") and zlib.crc32(b"The quick brown fox jumps over the lazy dog").
TEST(Crc32, KnownStrings) {
  EXPECT_EQ(tcemu::crc32(bytes_of("a")), 0xE8B7BE43u);
  EXPECT_EQ(tcemu::crc32(bytes_of("The quick brown fox jumps over the lazy dog")), 0x414FA339u);
}

TEST(Crc32, PiecesChainLikeZlib) {
  const std::string_view s = "123456789";
  for (size_t cut = 0; cut <= s.size(); ++cut)
    EXPECT_EQ(tcemu::crc32(bytes_of(s.substr(cut)), tcemu::crc32(bytes_of(s.substr(0, cut)))), 0xCBF43926u) << cut;
}

}  // namespace
