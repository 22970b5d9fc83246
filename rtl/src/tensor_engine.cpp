// make_tensor_engine(): the registry of the verilated sizes built into tcemu_rtl. The list comes from
// rtl/CMakeLists.txt (te_sizes.inc, one TCEMU_RTL_SIZE(rows, cols) line per size).
#include "tcemu/rtl/tensor_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace tcemu::rtl {

namespace detail {
#define TCEMU_RTL_SIZE(R, C) std::unique_ptr<TensorEngineModel> make_tensor_engine_##R##x##C();
#include "te_sizes.inc"
#undef TCEMU_RTL_SIZE
}  // namespace detail

namespace {

struct SizeEntry {
  int rows;
  int cols;
  std::unique_ptr<TensorEngineModel> (*make)();
};

constexpr SizeEntry kSizes[] = {
#define TCEMU_RTL_SIZE(R, C) {R, C, &detail::make_tensor_engine_##R##x##C},
#include "te_sizes.inc"
#undef TCEMU_RTL_SIZE
};

}  // namespace

std::vector<std::pair<int, int>> available_tensor_engine_sizes() {
  std::vector<std::pair<int, int>> sizes;
  for (const SizeEntry& e : kSizes) sizes.emplace_back(e.rows, e.cols);
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

std::unique_ptr<TensorEngineModel> make_tensor_engine(int rows, int cols) {
  for (const SizeEntry& e : kSizes) {
    if (e.rows == rows && e.cols == cols) return e.make();
  }
  std::string list;
  for (const auto& [r, c] : available_tensor_engine_sizes()) {
    list += fmt::format("{}{}x{}", list.empty() ? "" : ", ", r, c);
  }
  throw std::invalid_argument(fmt::format(
      "make_tensor_engine: no verilated tensor engine of size {}x{} (rows x cols) was built; available: "
      "{} (add a size in rtl/CMakeLists.txt)",
      rows, cols, list));
}

}  // namespace tcemu::rtl
