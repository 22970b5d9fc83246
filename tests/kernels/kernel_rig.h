// Shared by the kernel tests: one emulated device (driver + runtime; one device per process, so each test
// runs in its own process through gtest_discover_tests), random inputs, and bf16 rounding as the runtime
// binds bf16 tensors.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "inproc_transport.h"
#include "tcemu/error.h"
#include "tcemu/model.h"
#include "tcemu/numerics.h"
#include "tcemu/rt/runtime.h"

namespace tcemu::testing_rig {

struct Device {
  explicit Device(const DeviceConfig& cfg, TensorEngineKind engine)
      : transport(cfg, options(engine)), driver(transport), runtime(driver) {}
  explicit Device(const DeviceConfig& cfg) : Device(cfg, cfg.tensor_engine) {}
  static emu::DeviceOptions options(TensorEngineKind engine) {
    emu::DeviceOptions o;
    o.tensor_engine = engine;
    return o;
  }
  // Loads `m`, runs it once on `inputs` and unloads it.
  rt::RunResult run(const model::Model& m, const rt::TensorMap& inputs, bool profile = false) {
    auto lm = runtime.load(m);
    rt::RunOptions opts;
    opts.profile = profile;
    rt::RunResult r = runtime.run(*lm, inputs, opts);
    runtime.unload(*lm);
    return r;
  }
  drv::InProcessTransport transport;
  drv::Driver driver;
  rt::Runtime runtime;
};

inline std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// The value a bf16 tensor holds on the device for an fp32 host value (round to nearest even).
inline float bf16_round(float x) { return num::bf16_to_f32(num::f32_to_bf16(x)); }
inline std::vector<float> bf16_round(std::vector<float> v) {
  for (auto& x : v) x = bf16_round(x);
  return v;
}

// Runs `fn`, which must throw tcemu::Error with `code`; returns the message ("" and a test failure when it
// does not throw, or throws another code).
template <class F>
std::string error_of(F&& fn, ErrorCode code) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown (expected " << error_code_name(code) << ")";
  return "";
}

}  // namespace tcemu::testing_rig
