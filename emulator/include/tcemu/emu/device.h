// The TC1 device: a SystemC model of the whole core (CSR/MMIO block, command processor, per-engine
// sequencers with semaphores, DMA queues, HBM, SBUF, PSUM) with the tensor engine as verilated RTL, the
// fast C++ model, or both in lockstep.
//
// Contract with the host side (the in-process Transport and the device server of `tcemu serve` are the
// callers):
//  - The host calls mmio_read/mmio_write/hbm_read/hbm_write only while the simulation is paused, i.e.
//    between calls of run(); they take no simulated time.
//  - run(max_cycles) is the only way simulated time advances. It returns as soon as the interrupt line
//    is asserted (IRQ_STATUS & IRQ_MASK != 0) or after max_cycles cycles, whichever is first.
//  - SystemC allows one simulation per process and no restart: a process can construct ONE Device. It is
//    elaborated once and reset by the CTRL.RESET register.
//  - Contexts: the device has kMaxContexts register banks. Each client opens one (open_context) and uses
//    it for MMIO, HBM access and allocation; jobs of all contexts share the engines one at a time. The
//    calls without a context argument are context 0's, for a single in-process client.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "tcemu/config.h"
#include "tcemu/faults.h"

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
  // Memory isolation between contexts: HBM is handed out in whole 4 KiB pages, each owned by the context
  // that allocated it (zeroed when allocated), and a context may touch only its own pages: host accesses
  // elsewhere throw, device accesses (ring, job descriptor, streams, trace buffer, DMA) fault
  // HbmProtection. `tcemu serve` turns it on; a single in-process client does not need it.
  bool isolate_contexts = false;
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

  static constexpr int kMaxContexts = 16;
  // Context 0 is open from construction (the default, for a single in-process client).
  // Takes a free context (reset state, no memory); Error(kCapacity) when all are taken.
  int open_context();
  // Aborts the context's job if it is running, resets its registers, frees its HBM allocations (with
  // isolation: zeroes their pages) and makes it free. Error(kInvalidArgument) if `ctx` is not open.
  void close_context(int ctx);

  uint32_t mmio_read(int ctx, uint32_t offset);
  void mmio_write(int ctx, uint32_t offset, uint32_t value);
  // Absolute HBM byte addresses. Throws Error(kInvalidArgument) naming the range if outside HBM, or (with
  // isolation) if it touches a page the context does not own.
  void hbm_read(int ctx, uint64_t addr, std::span<uint8_t> dst);
  void hbm_write(int ctx, uint64_t addr, std::span<const uint8_t> src);

  // HBM allocator (first fit above 64 KiB; `align` a power of two). With isolation, sizes and alignment
  // are rounded up to whole pages and the pages become the context's. Error(kCapacity) naming the request
  // and the largest free block; hbm_free: Error(kInvalidArgument) if `addr` is not the context's block.
  uint64_t hbm_alloc(int ctx, uint64_t bytes, uint64_t align);
  void hbm_free(int ctx, uint64_t addr);
  uint64_t hbm_bytes_free() const;

  // Arms `plan` on context `ctx` (tcemu/faults.h): it applies to the jobs the context starts from now on,
  // counted from 1. Replaces any plan armed before; an empty plan disarms.
  void inject_faults(int ctx, const fi::Plan& plan);

  // Context 0's registers and memory (a single in-process client).
  uint32_t mmio_read(uint32_t offset) { return mmio_read(0, offset); }
  void mmio_write(uint32_t offset, uint32_t value) { mmio_write(0, offset, value); }
  void hbm_read(uint64_t addr, std::span<uint8_t> dst) { hbm_read(0, addr, dst); }
  void hbm_write(uint64_t addr, std::span<const uint8_t> src) { hbm_write(0, addr, src); }

  // Advances simulated time until the interrupt line of a context in `ctx_mask` (bit c: context c) is
  // asserted, or `max_cycles` cycles have passed; returns true if such a line is asserted on return.
  bool run(uint64_t max_cycles, uint32_t ctx_mask = 1);
  bool irq_asserted(int ctx = 0) const;
  uint64_t cycle() const;

  // Host memory held by HBM pages that were touched (HBM is sparse).
  uint64_t hbm_resident_bytes() const;

 private:
  void check_context(int ctx) const;
  std::unique_ptr<Tc1> tc1_;
  struct Block {
    uint64_t size;
    int ctx;
  };
  std::map<uint64_t, uint64_t> free_;  // addr -> size
  std::map<uint64_t, Block> used_;     // addr -> block
};

}  // namespace tcemu::emu
