// The driver tests' rig: one emulated device (one per process) with its transport and driver, and a helper
// that writes an instruction stream into device memory. The transport is the one $TCEMU_DEVICE names
// (drv::open_transport): in-process by default, a `tcemu serve` when the tests run again over the socket
// (tests/server/CMakeLists.txt).
#pragma once

#include <memory>
#include <vector>

#include "tcemu/drv/open_transport.h"
#include "tcemu/config.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"

namespace tcemu::test {

struct DriverFixture {
  explicit DriverFixture(const char* config = "tc1-8")
      : cfg(find_config(config)),
        owned(drv::open_transport(drv::default_device_spec(), cfg)),
        transport(*owned),
        driver(transport) {}
  DeviceConfig cfg;
  std::unique_ptr<drv::Transport> owned;
  drv::Transport& transport;
  drv::Driver driver;

  // Writes `instrs` for `engine` and returns the stream reference.
  drv::StreamRef stream(int engine, const std::vector<isa::Instr>& instrs) {
    const std::vector<uint8_t> code = isa::encode_stream(instrs);
    uint64_t at = driver.alloc(code.size(), 64);
    driver.write(at, code);
    return {engine, at, uint32_t(instrs.size())};
  }
  uint32_t reg(uint32_t offset) { return transport.mmio_read(offset); }
};

}  // namespace tcemu::test
