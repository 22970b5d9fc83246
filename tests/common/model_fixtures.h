// Shared by the model-file tests: a tensor table entry with its byte size computed from the shape, and,
// for a constant, data bytes base, base + step, base + 2 step, ... (mod 256).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tcemu/model.h"

namespace tcemu::test {

inline model::Tensor make_tensor(std::string name, model::DType dt, model::TensorKind kind, std::vector<int64_t> shape,
                                 uint64_t offset, uint8_t base, uint8_t step) {
  model::Tensor t;
  t.name = std::move(name);
  t.dtype = dt;
  t.kind = kind;
  t.shape = std::move(shape);
  t.bytes = model::element_count(t.shape) * model::dtype_size(dt);
  t.hbm_offset = offset;
  if (kind == model::TensorKind::kConst)
    for (uint64_t i = 0; i < t.bytes; ++i) t.data.push_back(uint8_t(base + step * i));
  return t;
}

}  // namespace tcemu::test
