// CRC-32 as in IEEE 802.3, zlib and PNG: reflected, polynomial 0xEDB88320, initial value and final XOR
// 0xFFFFFFFF. The check value of the ASCII bytes "123456789" is 0xCBF43926.
#pragma once

#include <cstdint>
#include <span>

namespace tcemu {

// CRC of `bytes`. `seed` is the CRC of the bytes that precede them (0 for none), so a CRC can be computed
// in pieces: crc32(b, crc32(a)) == crc32(a followed by b), as zlib's crc32() does.
uint32_t crc32(std::span<const uint8_t> bytes, uint32_t seed = 0);

}  // namespace tcemu
