// libFuzzer target: bytes -> npy::parse (npy.h). Properties:
//  - parse() returns an array or throws Error(kFormat); nothing else, and it allocates at most about twice
//    the input (f2 elements become 4-byte floats).
//  - What it returns is consistent (data.size() is the product of the shape) and writes back: serialize()
//    accepts it and its image parses to the same shape and the same float bits (NaN payloads included).
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_check.h"
#include "tcemu/error.h"
#include "tcemu/npy.h"

using namespace tcemu;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  npy::Array a;
  try {
    a = npy::parse(std::span<const uint8_t>(data, size), "fuzz.npy");
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kFormat}, "npy::parse");
    return 0;
  }
  bool zero = false;
  for (int64_t d : a.shape) {
    fuzz::check(d >= 0, "dims are >= 0");
    zero = zero || d == 0;
  }
  uint64_t count = zero ? 0 : 1;
  if (!zero)
    for (int64_t d : a.shape) count *= uint64_t(d);  // no overflow: that many elements are in the input
  fuzz::check(count == a.data.size(), "data.size() == product(shape)");
  const npy::Array back = npy::parse(npy::serialize(a), "again.npy");
  fuzz::check(back.shape == a.shape && back.data.size() == a.data.size() &&
                  (a.data.empty() || std::memcmp(back.data.data(), a.data.data(), a.data.size() * 4) == 0),
              "parse(serialize(a)) == a, bit for bit");
  return 0;
}
