// libFuzzer target: text -> model::from_assembly (assembly.h, docs/model-format.md "Text assembly").
// Properties:
//  - from_assembly() returns a model or throws Error(kFormat) (a malformed line) or Error(kInvalidArgument)
//    (validate() rejecting the model); nothing else.
//  - A model it returns is well formed: serialize() accepts it (every field was checked against its width)
//    and the image parses back to an equal model.
//  - The text is a faithful form of the model: to_assembly() of it reads back to an equal model.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "tcemu/assembly.h"
#include "tcemu/error.h"
#include "tcemu/model.h"

using namespace tcemu;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  model::Model m;
  try {
    m = model::from_assembly(text, "fuzz.s");
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kFormat, ErrorCode::kInvalidArgument}, "model::from_assembly");
    return 0;
  }
  const std::vector<uint8_t> image = model::serialize(m);
  fuzz::check(model::parse(image, "fuzz.tcm") == m, "parse(serialize(m)) == m");
  fuzz::check(model::from_assembly(model::to_assembly(m), "again.s") == m, "from_assembly(to_assembly(m)) == m");
  return 0;
}
