// The driver tests' rig: one emulated device (one per process) with its in-process transport and driver,
// and a helper that writes an instruction stream into device memory.
#pragma once

#include <vector>

#include "inproc_transport.h"
#include "tcemu/config.h"
#include "tcemu/drv/driver.h"
#include "tcemu/isa.h"

namespace tcemu::test {

struct DriverFixture {
  explicit DriverFixture(const char* config = "tc1-8") : cfg(find_config(config)), transport(cfg), driver(transport) {}
  DeviceConfig cfg;
  drv::InProcessTransport transport;
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
