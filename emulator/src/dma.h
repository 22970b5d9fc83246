// The HBM arbiter of the DMA queues: HBM bandwidth (DeviceConfig::hbm_bytes_per_cycle) shared equally by
// the dma_copy transfers that move HBM data at the same time (docs/isa.md, "dma_copy", Timing).
//
// Fluid model in whole cycles. While the set of active transfers does not change, each of them progresses
// at r = min(q, H / K) bytes per cycle, where q is the per-queue peak, H the HBM bandwidth and K the sum of
// the members' HBM sides (1 for HBM<->SBUF, 2 for HBM->HBM, which reads and writes HBM). After c cycles a
// member has moved floor(c * r) more bytes, so a member with R bytes left finishes ceil(R / r) cycles later
// unless the set changes first. When it changes (a transfer joins after its start latency, finishes or is
// abandoned) every member's progress is brought up to that cycle, rounded down to whole bytes, and the
// finish times are recomputed at the new rate. Everything happens at cycles of SystemC time, in integers:
// the result does not depend on the order in which SystemC runs the queues' processes within a cycle, nor
// on host timing.
//
// Called only from the DMA queue processes (dma.cpp). Slots are indexed by engine id; a queue has at most
// one transfer in flight (it runs its instructions in order). The arbiter holds no SystemC events: each
// member's process sleeps until next_finish() (the earliest predicted finish of any member), then calls
// sync(). A join only slows the others, so they wake early at worst and sleep again; a finish happens at
// a predicted cycle, when every member is awake. Nothing is ever cancelled, so the arbiter leaves no stale
// timed notifications that could reorder processes waking in the same cycle (and with them, trace
// records) from one job to the next.
#pragma once

#include <array>
#include <cstdint>
#include <systemc>
#include <vector>

#include "tcemu/isa.h"

namespace tcemu::emu {

class DmaArbiter {
 public:
  // Sets q (bytes per cycle of one queue) and H (HBM bytes per cycle); both >= 1.
  void configure(uint64_t queue_bytes_per_cycle, uint64_t hbm_bytes_per_cycle);

  // Transfer of `bytes` effective bytes with `sides` HBM sides (1 or 2) starts on `slot` at cycle `now`.
  void join(int slot, uint64_t bytes, uint32_t sides, uint64_t now);
  // Brings the arbiter up to cycle `now` if a member's finish time has come. Call it after each wake-up.
  void sync(uint64_t now);
  // True while `slot`'s transfer has bytes left.
  bool active(int slot) const { return slots_[size_t(slot)].active; }
  // The earliest cycle at which a member finishes at the current rate (UINT64_MAX when there is none).
  uint64_t next_finish() const;
  // Abandons `slot`'s transfer (reset, fault); the others continue at the new rate.
  void leave(int slot, uint64_t now);

 private:
  struct Slot {
    bool active = false;
    uint32_t sides = 0;
    uint64_t remaining = 0;  // effective bytes still to move
    uint64_t finish = 0;     // cycle at which `remaining` reaches zero at the current rate
  };
  // Bytes per cycle of every member as num / den.
  void rate(uint64_t& num, uint64_t& den) const;
  // Progress of every member from last_ to now at the current rate; members that reach zero leave.
  void advance(uint64_t now);
  // Finish cycles of the current members at the current rate.
  void reschedule(uint64_t now);

  std::array<Slot, isa::kMaxEngines> slots_{};
  uint64_t last_ = 0;  // cycle up to which progress is accounted
  uint64_t q_ = 1, h_ = 1;
};

// Retirement order of DMA instructions that complete in the same cycle: by engine id, two delta cycles
// after their timed wait ended (Tc1::dma_retire). Without it, same-cycle completions would move their
// data, signal and write their trace records in whatever order SystemC happens to wake the queues, and
// an engine sampling a semaphore in that cycle would see a signal or not depending on that order.
struct DmaRetireOrder {
  std::vector<int> waiting;  // engines completing this cycle, not yet released
  bool releasing = false;    // the first of them wakes one delta later and releases them all
  sc_core::sc_event release;
  std::array<sc_core::sc_event, isa::kMaxEngines> go;
};

}  // namespace tcemu::emu
