#include "inproc_transport.h"

#include "tcemu/emu/device.h"

namespace tcemu::drv {

InProcessTransport::InProcessTransport(const DeviceConfig& config, const emu::DeviceOptions& options)
    : device_(std::make_unique<emu::Device>(config, options)) {}
InProcessTransport::~InProcessTransport() = default;

uint32_t InProcessTransport::mmio_read(uint32_t offset) { return device_->mmio_read(offset); }
void InProcessTransport::mmio_write(uint32_t offset, uint32_t value) { device_->mmio_write(offset, value); }
void InProcessTransport::mem_read(uint64_t addr, std::span<uint8_t> dst) { device_->hbm_read(addr, dst); }
void InProcessTransport::mem_write(uint64_t addr, std::span<const uint8_t> src) { device_->hbm_write(addr, src); }
bool InProcessTransport::wait_irq(uint64_t timeout_cycles) { return device_->run(timeout_cycles); }
std::string InProcessTransport::describe() const { return "in-process emulator (" + device_->config().name + ")"; }

}  // namespace tcemu::drv
