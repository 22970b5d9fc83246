#include "tcemu/config.h"

#include "tcemu/error.h"

namespace tcemu {

namespace {

// The tc1-N configs scale Trainium1's core (128 partitions x 192 KiB SBUF, 16 KiB PSUM per partition in
// 8 banks of 2 KiB) down to an N x N array so that the RTL runs fast: partitions follow the array, PSUM
// keeps its per-partition geometry (a matmul still produces up to 512 fp32 per partition), and the SBUF
// free size shrinks with N.
DeviceConfig make_tc1(int n, uint32_t sbuf_partition_kib, uint64_t hbm_mib) {
  DeviceConfig c;
  c.name = "tc1-" + std::to_string(n);
  c.rows = c.cols = n;
  c.sbuf_partitions = c.psum_partitions = n;
  c.sbuf_partition_bytes = sbuf_partition_kib * 1024;
  c.hbm_bytes = hbm_mib << 20;
  return c;
}

}  // namespace

const std::vector<DeviceConfig>& builtin_configs() {
  static const std::vector<DeviceConfig> configs = {
      make_tc1(8, 16, 256),
      make_tc1(16, 32, 512),
      make_tc1(32, 64, 1024),
  };
  return configs;
}

const DeviceConfig& find_config(const std::string& name) {
  std::string known;
  for (const auto& c : builtin_configs()) {
    if (c.name == name) return c;
    known += (known.empty() ? "" : ", ") + c.name;
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown device config '" + name + "' (known: " + known + ")");
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kFormat: return "format";
    case ErrorCode::kEncoding: return "encoding";
    case ErrorCode::kCapacity: return "capacity";
    case ErrorCode::kDeviceFault: return "device-fault";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kDevice: return "device";
  }
  return "unknown";
}

}  // namespace tcemu

#include "tcemu/regs.h"

namespace tcemu::regs {
const char* fault_name(FaultCode code) {
  switch (code) {
#define TCEMU_X(name, c, doc) \
  case FaultCode::name: return #name;
    TCEMU_FAULTS(TCEMU_X)
#undef TCEMU_X
  }
  return "UnknownFault";
}
}  // namespace tcemu::regs
