// The TC1 device: a SystemC model of the whole core (CSR/MMIO block, command processor, per-engine
// sequencers with semaphores, DMA queues, HBM, SBUF, PSUM) with the tensor engine as verilated RTL, the
// fast C++ model, or both in lockstep.
//
// Contract with the host side (the in-process Transport is the only caller):
//  - The host calls mmio_read/mmio_write/hbm_read/hbm_write only while the simulation is paused, i.e.
//    between calls of run(); they take no simulated time.
//  - run(max_cycles) is the only way simulated time advances. It returns as soon as the interrupt line
//    is asserted (IRQ_STATUS & IRQ_MASK != 0) or after max_cycles cycles, whichever is first.
//  - SystemC allows one simulation per process and no restart: a process can construct ONE Device. It is
//    elaborated once and reset by the CTRL.RESET register.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "tcemu/config.h"

namespace tcemu::emu {

class Tc1;  // the SystemC module tree (device.cpp)

// Simulator options: what a user of the emulator (not the driver) chooses.
struct DeviceOptions {
  // FST waveform of the tensor-engine RTL for job cycles [wave_from, wave_to) of the first job that runs
  // through that window (cycles counted from the job's start, as in the profile). Empty: no waveform.
  std::string wave_path;
  uint64_t wave_from = 0, wave_to = UINT64_MAX;
  // The tensor engine's implementation; unset: the config's default (tc1-*: rtl, trn1: fast). Waveforms
  // need the RTL (rtl or lockstep).
  std::optional<TensorEngineKind> tensor_engine;
  // Test hook for lockstep: flips one bit of the fast model's `lockstep_inject_column`-th result column
  // (0-based, since the device was made), so that tests can show the comparison failing. UINT64_MAX: off.
  uint64_t lockstep_inject_column = UINT64_MAX;
};

class Device {
 public:
  // Throws Error(kDevice) if a Device already exists in this process, Error(kInvalidArgument) if the RTL
  // is asked for (rtl, lockstep) and no RTL tensor engine of the config's array size is built, or a
  // waveform is asked for without the RTL.
  explicit Device(const DeviceConfig& config, const DeviceOptions& options = {});
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceConfig& config() const;

  uint32_t mmio_read(uint32_t offset);
  void mmio_write(uint32_t offset, uint32_t value);
  // Absolute HBM byte addresses. Throws Error(kInvalidArgument) naming the range if outside HBM.
  void hbm_read(uint64_t addr, std::span<uint8_t> dst);
  void hbm_write(uint64_t addr, std::span<const uint8_t> src);

  // Advances simulated time; returns true if the interrupt line is asserted on return.
  bool run(uint64_t max_cycles);
  bool irq_asserted() const;
  uint64_t cycle() const;

  // Host memory held by HBM pages that were touched (HBM is sparse).
  uint64_t hbm_resident_bytes() const;

 private:
  std::unique_ptr<Tc1> tc1_;
};

}  // namespace tcemu::emu
