// Text assembly of whole models: a readable, editable form of a model file (.tcm) that holds every byte
// of it. docs/model-format.md ("Text assembly") specifies the syntax. `tcemu dis` and `tcemu asm` use it.
//
//   serialize(from_assembly(to_assembly(m), src)) == serialize(m)   for every model serialize accepts
//
// Instruction lines are isa::disassemble's lines; the rest is one directive per line (.model, .config,
// .array, .hbm_window, .tensor, .data, .stream) and `#` comments.
#pragma once

#include <string>
#include <string_view>

#include "tcemu/model.h"

namespace tcemu::model {

// The assembly text of `m`: header, tensors (constants with their bytes in hex), streams in model order.
std::string to_assembly(const Model& m);

// Parses assembly text; `source` (usually the file name) starts every error message. A malformed or
// unknown line throws Error(kFormat) "<source>:<line>:<column>: <what>: expected ..., found '<token>'".
// The model is then checked with validate(), whose Error(kInvalidArgument) propagates.
Model from_assembly(std::string_view text, const std::string& source);

}  // namespace tcemu::model
