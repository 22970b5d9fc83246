#include "inproc_transport.h"

#include "tcemu/emu/device.h"

namespace tcemu::drv {

InProcessTransport::InProcessTransport(const DeviceConfig& config, const emu::DeviceOptions& options)
    : device_(std::make_unique<emu::Device>(config, options)) {}
InProcessTransport::~InProcessTransport() = default;

uint32_t InProcessTransport::mmio_read(uint32_t offset) { return device_->mmio_read(ctx_, offset); }
void InProcessTransport::mmio_write(uint32_t offset, uint32_t value) { device_->mmio_write(ctx_, offset, value); }
void InProcessTransport::mem_read(uint64_t addr, std::span<uint8_t> dst) { device_->hbm_read(ctx_, addr, dst); }
void InProcessTransport::mem_write(uint64_t addr, std::span<const uint8_t> src) { device_->hbm_write(ctx_, addr, src); }
uint64_t InProcessTransport::mem_alloc(uint64_t bytes, uint64_t align) { return device_->hbm_alloc(ctx_, bytes, align); }
void InProcessTransport::mem_free(uint64_t addr) { device_->hbm_free(ctx_, addr); }
uint64_t InProcessTransport::mem_bytes_free() { return device_->hbm_bytes_free(); }
void InProcessTransport::inject_faults(const fi::Plan& plan) { device_->inject_faults(ctx_, plan); }
bool InProcessTransport::wait_irq(uint64_t timeout_cycles) { return device_->run(timeout_cycles, 1u << ctx_); }
std::string InProcessTransport::describe() const { return "in-process emulator (" + device_->config().name + ")"; }

}  // namespace tcemu::drv
