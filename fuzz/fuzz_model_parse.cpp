// libFuzzer target: bytes -> model::parse (docs/model-format.md). Properties (model.h, assembly.h):
//  - parse() returns a model or throws Error(kFormat); nothing else (no crash, sanitizer report, hang, other
//    exception or error code, allocation beyond a small multiple of the input).
//  - A model parse() returns is well formed: validate() and serialize() accept it, and the image serialize()
//    writes parses back to an equal model.
//  - Its text assembly reads back to the same file image: serialize(from_assembly(to_assembly(m))) ==
//    serialize(m).
// The input is parsed as given (the magic, size and checksum checks), then again with the header's crc32 and
// file_bytes made right, so that mutated files reach the table and stream rules behind the checksum.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tcemu/assembly.h"
#include "tcemu/crc32.h"
#include "tcemu/error.h"
#include "tcemu/model.h"

namespace {

using namespace tcemu;

// Header fields (docs/model-format.md, "Header").
constexpr size_t kFileBytesAt = 0x10, kCrcAt = 0x18;

void put_le(std::vector<uint8_t>& b, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

void check_model(std::span<const uint8_t> bytes) {
  model::Model m;
  try {
    m = model::parse(bytes, "fuzz.tcm");
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kFormat}, "model::parse");
    return;
  }
  // Any Error from here on is a bug: parse() promised a well-formed model.
  model::validate(m);
  const std::vector<uint8_t> image = model::serialize(m);
  fuzz::check(model::parse(image, "again.tcm") == m, "parse(serialize(parse(x))) == parse(x)");
  const model::Model back = model::from_assembly(model::to_assembly(m), "fuzz.s");
  fuzz::check(model::serialize(back) == image, "serialize(from_assembly(to_assembly(m))) == serialize(m)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  check_model(in);
  if (size >= kCrcAt + 4) {
    std::vector<uint8_t> fixed(in.begin(), in.end());
    put_le(fixed, kFileBytesAt, size, 8);
    put_le(fixed, kCrcAt, 0, 4);  // the checksum is computed with its own field zero
    put_le(fixed, kCrcAt, crc32(fixed), 4);
    check_model(fixed);
  }
  return 0;
}
