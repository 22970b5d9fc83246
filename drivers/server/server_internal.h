// What the broker (broker.cpp) and a device process (device_process.cpp) of `tcemu serve` share.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol.h"
#include "tcemu/config.h"

namespace tcemu::srv {

// The device a request resolves to: the broker fills in the server's defaults, so that requests which
// differ only in what they left unsaid share a device.
struct DeviceSpec {
  std::string config;
  TensorEngineKind engine = TensorEngineKind::kRtl;
  std::string wave_path;
  uint64_t wave_from = 0, wave_to = UINT64_MAX;
  uint64_t lockstep_inject_column = UINT64_MAX;
  // A waveform (one per device, of its first job through the window) or the lockstep test hook (counts
  // result columns since the device was made) belongs to one client: such a device is never shared, and
  // its process ends with its client.
  bool exclusive() const { return !wave_path.empty() || lockstep_inject_column != UINT64_MAX; }
  std::string key() const;    // equal for requests that may share a device
  std::string label() const;  // for logs: "tc1-16/rtl"
};

// Broker -> device process, one SOCK_SEQPACKET message per client with the client's socket attached
// (SCM_RIGHTS): {u32 client_id; string peer; the client's Hello payload as received}.
std::vector<uint8_t> encode_handoff(uint32_t client_id, const std::string& peer, std::span<const uint8_t> hello);
struct Handoff {
  uint32_t client_id = 0;
  std::string peer;
  proto::Hello hello;
};
Handoff decode_handoff(std::span<const uint8_t> msg);
inline constexpr size_t kMaxHandoffBytes = proto::kMaxHelloBytes + proto::kMaxStringBytes + 64;

// Serves clients handed over on `control` until the broker goes away and no client is left (or, for an
// exclusive device, until its client leaves). Builds the device when the first client arrives; if that
// fails, every client handed over is told why and the process ends. Returns the process's exit status.
int run_device_process(int control, const DeviceSpec& spec);

// One line on stderr, written with one write() so that lines of the broker and its device processes do
// not interleave.
void log_line(const std::string& line);

}  // namespace tcemu::srv
