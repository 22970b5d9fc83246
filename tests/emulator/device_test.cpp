// The device's register block as a driver author sees it, below the driver: raw MMIO and HBM.
#include <gtest/gtest.h>

#include "tcemu/emu/device.h"
#include "tcemu/error.h"
#include "tcemu/regs.h"

namespace tcemu {
namespace {

using namespace regs;

TEST(Device, IdentityAndCapabilityRegisters) {
  const DeviceConfig& cfg = find_config("tc1-32");
  emu::Device d(cfg);
  EXPECT_EQ(d.mmio_read(ID), kDeviceId);
  EXPECT_EQ(d.mmio_read(VERSION), kVersion);
  EXPECT_EQ(d.mmio_read(ARRAY_ROWS), 32u);
  EXPECT_EQ(d.mmio_read(ARRAY_COLS), 32u);
  EXPECT_EQ(d.mmio_read(SBUF_PARTITION_BYTES), cfg.sbuf_partition_bytes);
  EXPECT_EQ(d.mmio_read(PSUM_BANKS), 8u);
  EXPECT_EQ(d.mmio_read(HBM_SIZE_LO) | (uint64_t(d.mmio_read(HBM_SIZE_HI)) << 32), cfg.hbm_bytes);
  EXPECT_EQ(d.mmio_read(0xFFC), 0u);  // unmapped reads as zero
}

TEST(Device, ReadOnlyRegistersIgnoreWritesAndMaskIsReadBack) {
  emu::Device d(find_config("tc1-8"));
  d.mmio_write(ID, 0);
  d.mmio_write(ARRAY_ROWS, 99);
  d.mmio_write(COMPLETED_SEQ, 5);
  EXPECT_EQ(d.mmio_read(ID), kDeviceId);
  EXPECT_EQ(d.mmio_read(ARRAY_ROWS), 8u);
  EXPECT_EQ(d.mmio_read(COMPLETED_SEQ), 0u);
  d.mmio_write(IRQ_MASK, 0xFFFFFFFF);
  EXPECT_EQ(d.mmio_read(IRQ_MASK), kIrqJobDone | kIrqFault | kIrqNotify);  // only implemented bits stick
}

TEST(Device, TimeAdvancesOnlyWhenTheHostWaits) {
  emu::Device d(find_config("tc1-8"));
  uint64_t c0 = d.mmio_read(CYCLE_LO);
  for (int i = 0; i < 1000; ++i) d.mmio_read(STATUS);  // polling without waiting does not move time
  EXPECT_EQ(d.mmio_read(CYCLE_LO), c0);
  EXPECT_FALSE(d.run(12345));  // no interrupt: runs the full timeout
  EXPECT_EQ(d.cycle(), c0 + 12345);
  EXPECT_EQ(d.mmio_read(CYCLE_LO), uint32_t(c0 + 12345));
  EXPECT_EQ(d.mmio_read(CYCLE_HI), 0u);
}

TEST(Device, MisconfiguredRingFaultsAndResetClears) {
  emu::Device d(find_config("tc1-8"));
  d.mmio_write(IRQ_MASK, kIrqFault | kIrqJobDone);
  d.mmio_write(RING_BASE_LO, 0x1000);
  d.mmio_write(RING_SIZE, 3);  // not a power of two
  d.mmio_write(CTRL, kCtrlEnable);
  d.mmio_write(DOORBELL, 1);
  EXPECT_TRUE(d.run(1000));
  EXPECT_EQ(d.mmio_read(IRQ_STATUS) & kIrqFault, kIrqFault);
  EXPECT_EQ(d.mmio_read(STATUS) & kStatusFault, kStatusFault);
  EXPECT_EQ(FaultCode(d.mmio_read(FAULT_CODE)), FaultCode::BadRing);
  d.mmio_write(IRQ_STATUS, kIrqFault);  // W1C
  EXPECT_EQ(d.mmio_read(IRQ_STATUS), 0u);
  d.mmio_write(CTRL, kCtrlReset);
  EXPECT_EQ(d.mmio_read(STATUS) & kStatusFault, 0u);
  EXPECT_EQ(d.mmio_read(FAULT_CODE), 0u);
  EXPECT_EQ(d.mmio_read(RING_SIZE), 0u);
}

TEST(Device, HbmIsSparseAndBoundsChecked) {
  const DeviceConfig& cfg = find_config("tc1-32");
  emu::Device d(cfg);
  std::vector<uint8_t> data(10, 0x5A), back(10);
  d.hbm_write(cfg.hbm_bytes - 10, data);
  d.hbm_read(cfg.hbm_bytes - 10, back);
  EXPECT_EQ(back, data);
  d.hbm_read(12345, back);
  EXPECT_EQ(back, std::vector<uint8_t>(10, 0));  // untouched memory reads as zero
  EXPECT_LE(d.hbm_resident_bytes(), 8192u);      // a 1 GiB HBM costs only the touched pages
  EXPECT_THROW(d.hbm_write(cfg.hbm_bytes - 9, data), Error);
  EXPECT_THROW(d.hbm_read(~uint64_t(0) - 2, back), Error);
}

TEST(Device, OnlyOneDevicePerProcess) {
  emu::Device d(find_config("tc1-8"));
  try {
    emu::Device second(find_config("tc1-8"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDevice);
    EXPECT_NE(std::string(e.what()).find("one simulation per process"), std::string::npos);
  }
}

}  // namespace
}  // namespace tcemu
