// The runtime: loads a model onto a device, binds host tensors (fp32, converted to the model's dtypes
// with round-to-nearest-even), runs it and reads the outputs back. It sees the device only through the
// driver.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tcemu/drv/driver.h"
#include "tcemu/model.h"
#include "tcemu/npy.h"
#include "tcemu/rt/profile.h"

namespace tcemu::rt {

using HostTensor = npy::Array;  // fp32, C order
using TensorMap = std::map<std::string, HostTensor>;

// A model resident on the device: its HBM window (tensors) and its instruction streams.
class LoadedModel {
 public:
  const model::Model& model() const { return model_; }
  uint64_t window_addr() const { return window_addr_; }
  uint64_t code_addr() const { return code_addr_; }

 private:
  friend class Runtime;
  model::Model model_;
  uint64_t window_addr_ = 0, code_addr_ = 0;
  drv::Job job_;
};

struct RunResult {
  uint64_t cycles = 0;  // device cycles of the job
  TensorMap outputs;
  std::vector<drv::Notification> notifications;  // the job's notify instructions, in the order they were posted
  uint32_t notifications_dropped = 0;            // notifies lost to a full device FIFO (drv::JobResult)
  std::optional<Profile> profile;  // with RunOptions::profile
};

struct RunOptions {
  uint64_t timeout_cycles = 10'000'000'000ull;  // a deadlock costs no wall time: an idle device skips ahead
  drv::Driver::Progress progress;               // optional: called about every 2^20 device cycles
  bool profile = false;                         // collect trace records and counters into RunResult::profile
};

class Runtime {
 public:
  explicit Runtime(drv::Driver& driver) : driver_(driver) {}

  // Checks the model against the device (array size, engines present), allocates its HBM window and
  // code, writes constants and instruction streams. Throws Error(kInvalidArgument / kCapacity).
  std::unique_ptr<LoadedModel> load(const model::Model& m);
  void unload(LoadedModel& lm);

  // Binds every input (missing, unknown or mis-shaped inputs: Error(kInvalidArgument) naming the tensor),
  // runs the job and returns the outputs. On a device fault the device is reset, so it can run the next
  // job, and the drv::DeviceFault is rethrown.
  RunResult run(LoadedModel& lm, const TensorMap& inputs, const RunOptions& opts = {});

  drv::Driver& driver() { return driver_; }

 private:
  void write_tensor(uint64_t addr, const HostTensor& t, model::DType dtype);
  drv::Driver& driver_;
};

// Host-side dtype conversions used for binding (exposed for tests and tools).
std::vector<uint8_t> to_device_bytes(const HostTensor& t, model::DType dtype);
std::vector<float> from_device_bytes(std::span<const uint8_t> bytes, model::DType dtype);
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace tcemu::rt
