// The TC1 driver: probe, reset, HBM allocation, command ring, job submission and completion, and fault
// reporting. It talks to the device only through a Transport.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tcemu/config.h"
#include "tcemu/drv/transport.h"
#include "tcemu/error.h"
#include "tcemu/isa.h"
#include "tcemu/regs.h"
#include "tcemu/trace.h"

namespace tcemu::drv {

// Hardware parameters as the device publishes them in its capability registers.
struct DeviceInfo {
  uint32_t id = 0, version = 0;
  int rows = 0, cols = 0;
  int sbuf_partitions = 0;
  uint32_t sbuf_partition_bytes = 0;
  int psum_partitions = 0;
  uint32_t psum_bank_bytes = 0;
  int psum_banks = 0;
  uint64_t hbm_bytes = 0;
  int dma_queues = 0;
  int num_semaphores = 0;
  uint32_t clock_mhz = 0;
  uint32_t dma_bytes_per_cycle = 0;  // peak of one queue
  uint32_t hbm_bytes_per_cycle = 0;  // peak of HBM, shared by the queues
  uint32_t dma_latency_cycles = 0;   // fixed start cost of a dma_copy
  uint32_t dma_min_run_bytes = 0;    // bandwidth a run costs at least
  TensorEngineKind tensor_engine = TensorEngineKind::kRtl;  // the implementation running (TE_MODEL)
};

// A fault the device reported; the device is halted until Driver::reset().
class DeviceFault : public Error {
 public:
  // `detail` is appended to the message (e.g. the state of every blocked engine for a watchdog fault).
  DeviceFault(regs::FaultCode code, int engine, uint32_t pc, uint64_t addr, uint32_t info, uint32_t seq,
              const std::string& detail = "");
  regs::FaultCode fault() const { return fault_; }
  int engine() const { return engine_; }
  uint32_t pc() const { return pc_; }
  uint64_t addr() const { return addr_; }
  uint32_t info() const { return info_; }
  uint32_t seq() const { return seq_; }

 private:
  regs::FaultCode fault_;
  int engine_;
  uint32_t pc_;
  uint64_t addr_;
  uint32_t info_, seq_;
};

struct StreamRef {
  int engine;          // isa engine id
  uint64_t addr;       // absolute HBM address of the first 64-byte instruction
  uint32_t count;      // instructions
};

struct Job {
  uint64_t window_base = 0;  // HBM window the job's DMA "hbm:" addresses are relative to
  uint64_t window_size = 0;
  std::vector<StreamRef> streams;
  uint64_t trace_addr = 0;       // HBM buffer for the trace unit's records (64 bytes each), or 0
  uint32_t trace_capacity = 0;   // records that fit; the device counts, but does not write, the rest
};

// One notify instruction as the device reported it (docs/registers.md, "Notifications").
struct Notification {
  uint32_t tag = 0;    // the instruction's tag field
  int engine = 0;      // isa engine id that executed it
  uint64_t cycle = 0;  // cycle at which it completed, counted from its job's start (as trace records are)
  uint32_t seq = 0;    // sequence number of its job
  bool operator==(const Notification&) const = default;
};

struct JobResult {
  uint32_t seq = 0;
  uint64_t cycles = 0;       // device cycles from job start to completion (JOB_CYCLES)
  uint32_t trace_count = 0;  // records the job produced (TRACE_COUNT); min(count, capacity) were written
  std::vector<Notification> notifications;  // the job's notify instructions, in the order the device posted them
  // Notifies the device dropped (its FIFO was full) while this wait ran: the increase of NOTIFY_DROPPED,
  // exact when one job is in flight (as JOB_CYCLES is).
  uint32_t notifications_dropped = 0;
};

// Performance counters (cumulative since reset or clear_counters()).
struct Counters {
  std::array<uint64_t, isa::kMaxEngines> busy{};   // cycles each engine executed instructions
  std::array<uint64_t, isa::kMaxEngines> stall{};  // cycles each engine was blocked on a semaphore
  uint64_t te_macs = 0, dma_bytes = 0;
};

class Driver {
 public:
  // Probes the device (ID and major version must match), reads its capabilities, resets it and sets up
  // the command ring. Throws Error(kDevice) naming what was found if the device is not a TC1.
  explicit Driver(Transport& transport);
  ~Driver();

  const DeviceInfo& info() const { return info_; }
  Transport& transport() { return transport_; }

  // Resets the device (aborting any job), clears faults and interrupts and re-initialises the command
  // ring. HBM contents and allocations are kept.
  void reset();

  // HBM allocation, from the device through the transport (Transport::mem_alloc): first fit, `align` must
  // be a power of two. Throws Error(kCapacity) with the request and the largest free block when it cannot
  // be satisfied.
  uint64_t alloc(uint64_t bytes, uint64_t align = 4096);
  void free(uint64_t addr);  // Error(kInvalidArgument) if addr was not returned by alloc
  uint64_t bytes_free() const;

  void write(uint64_t addr, std::span<const uint8_t> src) { transport_.mem_write(addr, src); }
  void read(uint64_t addr, std::span<uint8_t> dst) { transport_.mem_read(addr, dst); }

  // Writes the job descriptor and a ring entry, rings the doorbell. Returns the job's sequence number.
  uint32_t submit(const Job& job);
  // Called about every kProgressSlice device cycles while wait() runs, with the cycles waited so far.
  using Progress = std::function<void(uint64_t cycles_waited)>;
  static constexpr uint64_t kProgressSlice = 1 << 20;

  // Called by wait() for each notification as it drains the device's FIFO (on the NOTIFY interrupt, and
  // before returning or throwing), in FIFO order, with simulated time standing still. An exception it
  // throws leaves wait() (the job keeps running; the notification is already in the driver's hands).
  using NotifyHandler = std::function<void(const Notification&)>;
  void set_notify_handler(NotifyHandler handler) { notify_handler_ = std::move(handler); }

  // Waits until job `seq` completes. Throws DeviceFault if the device faulted (the device then needs
  // reset()), Error(kTimeout) if `timeout_cycles` device cycles pass without completion. Notifications
  // of other jobs drained meanwhile are kept for their own wait() (until reset()).
  JobResult wait(uint32_t seq, uint64_t timeout_cycles, const Progress& progress = {});
  // submit + wait.
  JobResult run(const Job& job, uint64_t timeout_cycles, const Progress& progress = {});

  uint64_t cycle();

  Counters read_counters();
  void clear_counters();
  // Reads `count` trace records from a job's trace buffer.
  std::vector<TraceRecord> read_trace(uint64_t addr, uint32_t count);

 private:
  void init_ring();
  DeviceFault read_fault();
  // Moves every entry of the device's notification FIFO into notifications_, calling the handler.
  void drain_notifications();

  Transport& transport_;
  DeviceInfo info_;
  uint64_t ring_addr_ = 0, desc_addr_ = 0;
  uint32_t ring_entries_ = 0;
  uint32_t tail_ = 0, next_seq_ = 1, completed_ = 0;
  NotifyHandler notify_handler_;
  std::map<uint32_t, std::vector<Notification>> notifications_;  // drained, by job seq, not yet returned
};

// Device memory owned by a scope: whatever is allocated through it goes back to the driver's allocator
// when it is destroyed, also when the job that used it faulted or threw.
class ScopedMemory {
 public:
  explicit ScopedMemory(Driver& driver) : driver_(driver) {}
  ~ScopedMemory();
  ScopedMemory(const ScopedMemory&) = delete;
  ScopedMemory& operator=(const ScopedMemory&) = delete;

  uint64_t alloc(uint64_t bytes, uint64_t align = 64);
  // Encodes `instrs` into fresh device memory; returns the stream for a Job.
  StreamRef stream(int engine, std::span<const isa::Instr> instrs);

 private:
  Driver& driver_;
  std::vector<uint64_t> blocks_;
};

}  // namespace tcemu::drv
