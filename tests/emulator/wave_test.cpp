// RTL waveforms of a window of job cycles through the whole stack.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "inproc_transport.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace {

namespace fs = std::filesystem;

uint64_t run_with_wave(const std::string& path, uint64_t from, uint64_t to) {
  const DeviceConfig& cfg = find_config("tc1-8");
  emu::DeviceOptions o;
  o.wave_path = path, o.wave_from = from, o.wave_to = to;
  drv::InProcessTransport transport(cfg, o);
  drv::Driver driver(transport);
  rt::Runtime runtime(driver);
  auto lm = runtime.load(kb::build_gemm(cfg, 32, 64, 40));
  rt::TensorMap in;
  in["a"] = {{32, 40}, std::vector<float>(32 * 40, 1.0f)};
  in["b"] = {{40, 64}, std::vector<float>(40 * 64, 2.0f)};
  rt::RunResult r = runtime.run(*lm, in);
  for (float v : r.outputs.at("c").data) EXPECT_EQ(v, 80.0f);  // tracing changes nothing
  return r.cycles;
}

class Wave : public ::testing::TestWithParam<int> {};

// One process per window size (one device per process).
TEST_P(Wave, WindowOfCyclesIsDumpedAsFst) {
  const int width = GetParam();
  fs::path f = fs::temp_directory_path() / ("tcemu_wave_" + std::to_string(width) + "_" + std::to_string(::getpid()) + ".fst");
  run_with_wave(f.string(), 200, 200 + width);
  ASSERT_TRUE(fs::exists(f)) << f;
  const auto size = fs::file_size(f);
  EXPECT_GT(size, 1000u);
  // FST files start with a header block (type 0) of fixed length 329.
  std::ifstream in(f, std::ios::binary);
  unsigned char hdr[9];
  in.read(reinterpret_cast<char*>(hdr), 9);
  EXPECT_EQ(hdr[0], 0);
  uint64_t len = 0;
  for (int i = 1; i < 9; ++i) len = (len << 8) | hdr[i];
  EXPECT_EQ(len, 329u);
  fs::remove(f);
}

INSTANTIATE_TEST_SUITE_P(Widths, Wave, ::testing::Values(50, 1000));

}  // namespace
}  // namespace tcemu
