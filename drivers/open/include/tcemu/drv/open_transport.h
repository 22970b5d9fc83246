// open_transport: the Transport a device spec names, for programs that can use either kind (the tcemu
// command line's --device). Links the in-process emulator and the socket client.
#pragma once

#include <memory>
#include <string>

#include "tcemu/config.h"
#include "tcemu/drv/transport.h"
#include "tcemu/emu/device.h"

namespace tcemu::drv {

// `spec`: "emu" (the emulator in this process), "unix:PATH" or "tcp:HOST:PORT" (a `tcemu serve`; the server
// builds the device for `config` and `options`; options.isolate_contexts is the server's to choose).
// Error(kInvalidArgument) for any other spec; otherwise what the transport's constructor throws.
std::unique_ptr<Transport> open_transport(const std::string& spec, const DeviceConfig& config,
                                          const emu::DeviceOptions& options = {});

// The device spec a program uses when the user names none: $TCEMU_DEVICE if set and not empty, else "emu".
std::string default_device_spec();

}  // namespace tcemu::drv
