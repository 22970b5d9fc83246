#include "tcemu/drv/open_transport.h"

#include <fmt/format.h>

#include <cstdlib>

#include "inproc_transport.h"
#include "socket_transport.h"
#include "tcemu/error.h"

namespace tcemu::drv {

std::unique_ptr<Transport> open_transport(const std::string& spec, const DeviceConfig& config,
                                          const emu::DeviceOptions& options) {
  if (spec == "emu") return std::make_unique<InProcessTransport>(config, options);
  if (spec.rfind("unix:", 0) == 0 || spec.rfind("tcp:", 0) == 0) {
    DeviceRequest r;
    r.config = config.name;
    r.tensor_engine = options.tensor_engine;
    r.wave_path = options.wave_path;
    r.wave_from = options.wave_from, r.wave_to = options.wave_to;
    r.lockstep_inject_column = options.lockstep_inject_column;
    return std::make_unique<SocketTransport>(spec, r);
  }
  throw Error(ErrorCode::kInvalidArgument, fmt::format("device '{}': expected emu, unix:PATH or tcp:HOST:PORT", spec));
}

std::string default_device_spec() {
  const char* env = std::getenv("TCEMU_DEVICE");
  return env && *env ? env : "emu";
}

}  // namespace tcemu::drv
