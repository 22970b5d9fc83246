// Runtime: binding checks, model/device compatibility, fault recovery. One device per process.
#include <gtest/gtest.h>

#include "inproc_transport.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/kb/program.h"
#include "tcemu/numerics.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace {

struct Fixture {
  explicit Fixture(const char* config = "tc1-8") : cfg(find_config(config)), transport(cfg), driver(transport), runtime(driver) {}
  DeviceConfig cfg;
  drv::InProcessTransport transport;
  drv::Driver driver;
  rt::Runtime runtime;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

rt::HostTensor filled(std::vector<int64_t> shape, float v) {
  size_t n = 1;
  for (auto d : shape) n *= size_t(d);
  return {shape, std::vector<float>(n, v)};
}

TEST(Runtime, RejectsModelBuiltForAnotherArraySize) {
  Fixture f("tc1-8");
  model::Model m = kb::build_gemm(find_config("tc1-16"), 16, 16, 16);
  std::string msg = error_of([&] { f.runtime.load(m); });
  EXPECT_NE(msg.find("built for tc1-16 (16x16 array)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8x8"), std::string::npos) << msg;
}

TEST(Runtime, BindingErrorsNameTheTensor) {
  Fixture f;
  auto lm = f.runtime.load(kb::build_gemm(f.cfg, 4, 5, 6));
  std::string missing = error_of([&] { f.runtime.run(*lm, {{"a", filled({4, 6}, 1)}}); });
  EXPECT_NE(missing.find("input 'b'"), std::string::npos) << missing;
  std::string shape = error_of([&] { f.runtime.run(*lm, {{"a", filled({6, 4}, 1)}, {"b", filled({6, 5}, 1)}}); });
  EXPECT_NE(shape.find("input 'a': expected shape [4, 6], got [6, 4]"), std::string::npos) << shape;
  std::string unknown = error_of([&] { f.runtime.run(*lm, {{"x", filled({1}, 1)}}); });
  EXPECT_NE(unknown.find("no input named 'x'"), std::string::npos) << unknown;
}

TEST(Runtime, InputsAreRoundedToBf16NearestEven) {
  Fixture f;
  auto lm = f.runtime.load(kb::build_gemm(f.cfg, 1, 1, 1));
  // 1 + 2^-8 is a tie between bf16 1.0 and 1.0078125: RNE picks 1.0 (even). 1 + 3*2^-9 rounds up.
  auto r = f.runtime.run(*lm, {{"a", {{1, 1}, {1.0f + 0x1.0p-8f}}}, {"b", {{1, 1}, {1.0f + 3 * 0x1.0p-9f}}}});
  EXPECT_EQ(r.outputs.at("c").data[0], 1.0f * 1.0078125f);
}

TEST(Runtime, DmaOutsideWindowFaultsThenDeviceRunsNextJob) {
  Fixture f;
  // A model whose only DMA reads past the end of its HBM window.
  kb::Program p(f.cfg, "oob");
  uint64_t x = p.add_tensor("x", model::DType::kF32, model::TensorKind::kInput, {16});
  p.add_tensor("y", model::DType::kF32, model::TensorKind::kOutput, {16});
  isa::Instr in;
  in.opcode = isa::Opcode::DmaCopy;
  in.src = x + 1'000'000, in.dst = kb::sbuf_addr(f.cfg, 0, 0), in.bytes = 64, in.d1_count = 1, in.d2_count = 1;
  p.emit(isa::kEngineDma0 + 2, in);
  auto bad = f.runtime.load(p.finish());
  try {
    f.runtime.run(*bad, {{"x", filled({16}, 1)}});
    FAIL() << "expected a device fault";
  } catch (const drv::DeviceFault& e) {
    EXPECT_EQ(e.fault(), regs::FaultCode::HbmOutOfRange);
    EXPECT_EQ(e.engine(), isa::kEngineDma0 + 2);
    EXPECT_EQ(e.addr(), x + 1'000'000);
    EXPECT_NE(std::string(e.what()).find("engine dma2"), std::string::npos) << e.what();
  }
  // The runtime reset the device: a GEMM now runs and is right.
  auto lm = f.runtime.load(kb::build_gemm(f.cfg, 3, 3, 3));
  auto r = f.runtime.run(*lm, {{"a", filled({3, 3}, 2)}, {"b", filled({3, 3}, 0.5)}});
  for (float v : r.outputs.at("c").data) EXPECT_EQ(v, 3.0f);
}

TEST(Runtime, UnloadReturnsMemory) {
  Fixture f;
  uint64_t before = f.driver.bytes_free();
  auto lm = f.runtime.load(kb::build_gemm(f.cfg, 64, 64, 64));
  EXPECT_LT(f.driver.bytes_free(), before);
  f.runtime.unload(*lm);
  EXPECT_EQ(f.driver.bytes_free(), before);
}

}  // namespace
}  // namespace tcemu
