// Errors crossing layer boundaries. Every error says what was wrong, where, and what was expected;
// callers that need to branch on the kind of failure use code().
#pragma once

#include <stdexcept>
#include <string>

namespace tcemu {

enum class ErrorCode {
  kInvalidArgument,  // a caller passed a value outside the documented range
  kIo,               // a file could not be opened, read or written
  kFormat,           // a file's contents are malformed (model file, .npy)
  kEncoding,         // an instruction could not be encoded or decoded
  kCapacity,         // something does not fit (SBUF, PSUM, HBM, ring)
  kDeviceFault,      // the device reported a fault (see drv::DeviceFault for its registers)
  kTimeout,          // the device did not answer within the allowed number of device cycles
  kDevice,           // the device is missing, has the wrong ID/version, or misbehaved
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace tcemu
