// The host-facing facade of the TC1 model (tcemu/emu/device.h).
#include "tcemu/emu/device.h"

#include <cstdio>
#include <cstdlib>

#include "tc1.h"
#include "tcemu/error.h"

// libsystemc's own main() calls sc_main; tcemu programs have their own main and never call it.
int sc_main(int, char*[]) { return 1; }

namespace tcemu::emu {

// ---- Device (host-facing facade) -----------------------------------------------------------------

namespace {
bool g_device_exists = false;
}

Device::Device(const DeviceConfig& config, const DeviceOptions& options) {
  if (g_device_exists)
    throw Error(ErrorCode::kDevice, "a TC1 device already exists in this process (SystemC allows one simulation per process)");
  ::setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  tc1_ = std::make_unique<Tc1>("tc1", config, options);
  g_device_exists = true;
  sc_core::sc_start(sc_core::SC_ZERO_TIME);  // elaborate and let every process reach its first wait
}

Device::~Device() = default;

const DeviceConfig& Device::config() const { return tc1_->config(); }
uint32_t Device::mmio_read(uint32_t offset) { return tc1_->mmio_read(offset); }
void Device::mmio_write(uint32_t offset, uint32_t value) { tc1_->mmio_write(offset, value); }

static void check_hbm_range(const SparseMemory& m, uint64_t addr, uint64_t n, const char* what) {
  if (addr > m.size() || n > m.size() - addr)
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " of " + std::to_string(n) + " bytes at HBM 0x" +
                                                 [&] {
                                                   char b[24];
                                                   std::snprintf(b, sizeof b, "%llx", (unsigned long long)addr);
                                                   return std::string(b);
                                                 }() +
                                                 " is outside HBM (" + std::to_string(m.size()) + " bytes)");
}

void Device::hbm_read(uint64_t addr, std::span<uint8_t> dst) {
  check_hbm_range(tc1_->hbm(), addr, dst.size(), "read");
  tc1_->hbm().read(addr, dst.data(), dst.size());
}

void Device::hbm_write(uint64_t addr, std::span<const uint8_t> src) {
  check_hbm_range(tc1_->hbm(), addr, src.size(), "write");
  tc1_->hbm().write(addr, src.data(), src.size());
}

bool Device::run(uint64_t max_cycles) {
  if (tc1_->irq_line()) return true;
  if (max_cycles == 0) {
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
  } else {
    sc_core::sc_start(kCycle * double(max_cycles));
  }
  return tc1_->irq_line();
}

bool Device::irq_asserted() const { return tc1_->irq_line(); }
uint64_t Device::cycle() const { return tc1_->cycle(); }
uint64_t Device::hbm_resident_bytes() const { return tc1_->hbm().resident_bytes(); }

}  // namespace tcemu::emu
