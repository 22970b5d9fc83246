// The runtime: loads a model onto a device, binds host tensors (fp32, converted to the model's dtypes
// with round-to-nearest-even), runs it and reads the outputs back. It sees the device only through the
// driver.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tcemu/drv/driver.h"
#include "tcemu/faults.h"
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

// A failed attempt of a run that the runtime recovered from by resubmitting (RunOptions::max_retries).
struct RecoveryEvent {
  uint32_t attempt = 0;  // 1 for the first submission
  ErrorCode code = ErrorCode::kDeviceFault;
  std::optional<regs::FaultCode> fault;  // for a device fault
  std::string message;                   // the error's message
};

struct RunResult {
  uint64_t cycles = 0;  // device cycles of the job (of its last, successful attempt)
  TensorMap outputs;
  std::vector<drv::Notification> notifications;  // the job's notify instructions, in the order they were posted
  uint32_t notifications_dropped = 0;            // notifies lost to a full device FIFO (drv::JobResult)
  std::optional<Profile> profile;  // with RunOptions::profile
  uint32_t retries = 0;                  // attempts after the first, each after a recovered failure
  std::vector<RecoveryEvent> recovered;  // the failures that were retried, in order
  // The driver's recovery counters summed over all attempts; ecc_corrected also counts corrections on the
  // host's reads and writes of the run's tensors.
  drv::Recovery recovery;
  uint64_t device_cycles = 0;  // device cycles from the first submission to the last completion (all attempts)
};

struct RunOptions {
  uint64_t timeout_cycles = 10'000'000'000ull;  // a deadlock costs no wall time: an idle device skips ahead
  drv::Driver::Progress progress;               // optional: called about every 2^20 device cycles
  bool profile = false;                         // collect trace records and counters into RunResult::profile
  // Fault injection (tcemu/faults.h, docs/driver.md): armed on the device before the run's first attempt
  // (attempt n is the plan's job n) and disarmed when run() returns or throws. Empty: the runtime leaves
  // the device's plan alone.
  fi::Plan faults;
  // Resubmissions after a transient failure: a DmaError or EccUncorrectable fault, an uncorrectable error
  // on a host read, a timeout with an engine still running (a hang), a corrupt completion record. Program
  // errors (every other fault, a semaphore deadlock) are not retried (docs/driver.md, "Retry policy").
  uint32_t max_retries = 1;
};

class Runtime {
 public:
  explicit Runtime(drv::Driver& driver) : driver_(driver) {}

  // Checks the model against the device (array size, engines present), allocates its HBM window and
  // code, writes constants and instruction streams. Throws Error(kInvalidArgument / kCapacity).
  std::unique_ptr<LoadedModel> load(const model::Model& m);
  void unload(LoadedModel& lm);

  // Binds every input (missing, unknown or mis-shaped inputs: Error(kInvalidArgument) naming the tensor),
  // runs the job and returns the outputs. After a transient failure (RunOptions::max_retries) it resets
  // the device, writes the model's code, constants and inputs again and resubmits. An error that is not
  // retried, or the last attempt's, is rethrown (drv::DeviceFault, drv::TimeoutError,
  // drv::CompletionError, Error(kDevice) ...) after a device reset, so the device can run the next job.
  RunResult run(LoadedModel& lm, const TensorMap& inputs, const RunOptions& opts = {});

  // Whether a run that failed with `e` may be resubmitted: the failure is transient and the runtime owns
  // everything the job reads (docs/driver.md, "Retry policy").
  static bool retryable(const Error& e);

  drv::Driver& driver() { return driver_; }

 private:
  void write_tensor(uint64_t addr, const HostTensor& t, model::DType dtype);
  // Writes the model's instruction streams and constants (load, and before a retry).
  void write_model(const LoadedModel& lm);
  // Zeroes every output tensor, widened to whole 8-byte words (before a retry after a host read failed).
  void clear_outputs(const LoadedModel& lm);
  // Reads every output tensor into `result`.
  void read_outputs(const LoadedModel& lm, RunResult& result);
  // One submission: the job, then its profile and outputs.
  void attempt(LoadedModel& lm, const drv::Job& job, uint32_t trace_capacity, const RunOptions& opts,
               RunResult& result);
  drv::Driver& driver_;
};

// Host-side dtype conversions used for binding (exposed for tests and tools).
std::vector<uint8_t> to_device_bytes(const HostTensor& t, model::DType dtype);
std::vector<float> from_device_bytes(std::span<const uint8_t> bytes, model::DType dtype);
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace tcemu::rt
