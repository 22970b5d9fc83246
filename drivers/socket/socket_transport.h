// SocketTransport: the driver's Transport to a device in a `tcemu serve` process (drivers/server), over a
// unix or TCP socket with the protocol of protocol.h. It links the driver only, not the emulator: a process
// can hold several (one per thread), each its own client of the server with its own device context.
//
// Implemented here; called by drv::Driver (as any Transport) and created by drv::open_transport or
// directly. Errors the device raises on the server come back as the same tcemu::Error (code and text);
// a lost connection is Error(kDevice) naming the address.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net.h"
#include "protocol.h"
#include "tcemu/config.h"
#include "tcemu/drv/transport.h"

namespace tcemu::drv {

// The device a client asks the server for: emu::DeviceOptions without the emulator's types. Clients that
// ask for the same config and options share one device (each with its own context); a waveform or the
// lockstep test hook gets a device of its own.
struct DeviceRequest {
  std::string config;                             // empty: the server's default (serve --config)
  std::optional<TensorEngineKind> tensor_engine;  // unset: serve --tensor-engine, else the config's default
  std::string wave_path;                          // written by the server process; made absolute here
  uint64_t wave_from = 0, wave_to = UINT64_MAX;
  uint64_t lockstep_inject_column = UINT64_MAX;
  // Over a unix socket, move bulk device memory through a shared-memory buffer (memfd) instead of the
  // socket. Off: the bytes go inline in frames, as over TCP (the bench compares both).
  bool shared_memory = true;
};

class SocketTransport : public Transport {
 public:
  // Connects to `address` ("unix:PATH" or "tcp:HOST:PORT") and does the handshake. Throws what the server
  // answers (e.g. the device's construction error, Error(kCapacity) when all contexts are taken),
  // Error(kDevice) if nothing listens there or the server speaks another protocol version (naming both).
  explicit SocketTransport(const std::string& address, const DeviceRequest& request = {});
  // Says goodbye and waits for the server to close this client's context (a running job is aborted, its
  // memory freed), so that the device is clean when this returns.
  ~SocketTransport() override;
  SocketTransport(const SocketTransport&) = delete;
  SocketTransport& operator=(const SocketTransport&) = delete;

  uint32_t mmio_read(uint32_t offset) override;
  void mmio_write(uint32_t offset, uint32_t value) override;
  // Transfers larger than one frame (proto::kMaxDataBytes inline, the shared buffer's size otherwise) are
  // split; an error names the part that failed, and the parts before it have been done.
  void mem_read(uint64_t addr, std::span<uint8_t> dst) override;
  void mem_write(uint64_t addr, std::span<const uint8_t> src) override;
  uint64_t mem_alloc(uint64_t bytes, uint64_t align) override;
  void mem_free(uint64_t addr) override;
  uint64_t mem_bytes_free() override;
  void inject_faults(const fi::Plan& plan) override;
  bool wait_irq(uint64_t timeout_cycles) override;
  std::string describe() const override;

  const std::string& config_name() const { return hello_.config; }
  TensorEngineKind tensor_engine() const { return TensorEngineKind(hello_.tensor_engine); }
  int context() const { return int(hello_.context); }
  int device_pid() const { return int(hello_.device_pid); }
  bool shared_memory() const { return shm_ != nullptr; }

 private:
  // Sends `frame` (and `data` after it, as part of the same frame), reads the reply, throws an Error reply,
  // checks the type is `reply` and returns its payload (or reads a Data payload straight into `into`).
  std::span<const uint8_t> call(std::vector<uint8_t> frame, proto::Msg reply, std::span<const uint8_t> data = {},
                                std::span<uint8_t> into = {});
  [[noreturn]] void lost(const std::string& why);
  void check_open() const;

  std::string address_;
  net::UniqueFd fd_;
  proto::HelloReply hello_;
  uint8_t* shm_ = nullptr;
  size_t shm_bytes_ = 0;
  std::string broken_;  // set when the connection is lost: every later call throws it
  std::vector<uint8_t> payload_;
};

}  // namespace tcemu::drv
