// `tcemu serve`: the emulated device as a server that several driver processes share over a socket
// (docs/server.md). Implemented in drivers/server; called by tools/tcemu.cpp (the `serve` command), the
// transport bench and the server tests. Clients connect with drv::SocketTransport (drivers/socket).
//
// The listening process is a broker that never builds a device (SystemC allows one per process): it reads
// each client's hello, then hands the connection to a device process (forked, one per distinct device
// request: config, tensor engine, waveform) over a socketpair with SCM_RIGHTS. A device process serves
// all its clients in one poll() loop, one device context each, with memory isolation between them.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "tcemu/config.h"

namespace tcemu::srv {

struct ServeOptions {
  std::string listen;                             // "unix:PATH" or "tcp:HOST:PORT" (port 0: any free port)
  std::string config = kDefaultConfig;            // for clients that do not name one
  std::optional<TensorEngineKind> tensor_engine;  // for clients that do not name one; unset: the config's
  // Called once the socket accepts connections, with its address (tcp: with the port chosen).
  std::function<void(const std::string& address)> on_ready;
};

// Runs the server until SIGTERM or SIGINT, then stops its device processes, removes a unix socket and
// returns 0. Throws Error(kIo) if it cannot listen, Error(kInvalidArgument) for a bad address or config.
// Logs one line per connect, disconnect, device process start or exit, and error, to stderr.
int serve(const ServeOptions& options);

}  // namespace tcemu::srv
