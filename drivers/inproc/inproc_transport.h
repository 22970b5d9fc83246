// InProcessTransport: the emulator linked into this process. Owns the (single, per-process) emulated
// device; implements the driver's Transport on it.
#pragma once

#include <memory>

#include "tcemu/config.h"
#include "tcemu/drv/transport.h"

#include "tcemu/emu/device.h"

namespace tcemu::drv {

class InProcessTransport : public Transport {
 public:
  // Builds the device for `config`. Throws Error(kDevice) if this process already built one.
  explicit InProcessTransport(const DeviceConfig& config, const emu::DeviceOptions& options = {});
  ~InProcessTransport() override;

  uint32_t mmio_read(uint32_t offset) override;
  void mmio_write(uint32_t offset, uint32_t value) override;
  void mem_read(uint64_t addr, std::span<uint8_t> dst) override;
  void mem_write(uint64_t addr, std::span<const uint8_t> src) override;
  uint64_t mem_alloc(uint64_t bytes, uint64_t align) override;
  void mem_free(uint64_t addr) override;
  uint64_t mem_bytes_free() override;
  void inject_faults(const fi::Plan& plan) override;
  bool wait_irq(uint64_t timeout_cycles) override;
  std::string describe() const override;

  emu::Device& device() { return *device_; }

 private:
  std::unique_ptr<emu::Device> device_;
  int ctx_ = 0;  // the device's default context
};

}  // namespace tcemu::drv
