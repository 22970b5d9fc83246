// Transport: everything the driver may do to a device, as a real driver sees a PCIe device (BAR0 MMIO,
// DMA to device memory, an interrupt line). The driver never calls into emulator objects.
//
// Implemented by: InProcessTransport (drivers/inproc; the emulator linked into this process) and
// SocketTransport (drivers/socket; a device in a `tcemu serve` process). Called by: drv::Driver only.
//
// A transport is one client's view of the device: its own register bank (context) and its own device
// memory. Device memory is allocated through the transport, as a user-mode driver asks the kernel driver
// for it, so that clients sharing a device get disjoint memory that the device itself keeps apart.
//
// Time: the device is the time master. Nothing free-runs: simulated time advances only inside
// wait_irq(), so a driver that polls must wait between polls.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "tcemu/faults.h"

namespace tcemu::drv {

class Transport {
 public:
  virtual ~Transport() = default;

  // 32-bit register access at a 4-aligned BAR0 offset. Takes no simulated time.
  virtual uint32_t mmio_read(uint32_t offset) = 0;
  virtual void mmio_write(uint32_t offset, uint32_t value) = 0;

  // Device (HBM) memory access at absolute byte addresses. Throws tcemu::Error(kInvalidArgument) if the
  // range is outside HBM. Takes no simulated time.
  virtual void mem_read(uint64_t addr, std::span<uint8_t> dst) = 0;
  virtual void mem_write(uint64_t addr, std::span<const uint8_t> src) = 0;

  // Device memory allocation (first fit; `align` a power of two). mem_alloc throws Error(kCapacity) naming
  // the request and the largest free block, Error(kInvalidArgument) for a bad request; mem_free throws
  // Error(kInvalidArgument) if `addr` is not a block this client allocated.
  virtual uint64_t mem_alloc(uint64_t bytes, uint64_t align) = 0;
  virtual void mem_free(uint64_t addr) = 0;
  virtual uint64_t mem_bytes_free() = 0;

  // Arms a fault-injection plan on this client's context (replacing any armed plan; an empty plan
  // disarms): the device misbehaves as the plan says in the jobs this context starts from now on, counted
  // from 1 (tcemu/faults.h, docs/driver.md). A test and debug port: real hardware has no such register.
  virtual void inject_faults(const fi::Plan& plan) = 0;

  // Lets the device run until its interrupt line is asserted or `timeout_cycles` device cycles pass.
  // Returns true if the interrupt line is asserted on return (it stays asserted until the driver clears
  // IRQ_STATUS).
  virtual bool wait_irq(uint64_t timeout_cycles) = 0;

  // A short description for messages ("in-process emulator, config tc1-16").
  virtual std::string describe() const = 0;
};

}  // namespace tcemu::drv
