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

// What the driver saw and did to get jobs through a misbehaving device (docs/driver.md, "Recovery"). The
// counts are of one wait() (exact per job when one job is in flight, as JOB_CYCLES is) or, in
// rt::RunResult, summed over a run's attempts.
struct Recovery {
  uint32_t missed_irqs = 0;       // completions found by polling without their JOB_DONE interrupt (lost, or late)
  uint32_t late_irqs = 0;         // JOB_DONE interrupts for completions already found by polling (a late one)
  uint32_t spurious_irqs = 0;     // JOB_DONE interrupts with no completion to account for them
  uint32_t doorbell_retries = 0;  // DOORBELL writes repeated because RING_TAIL had not taken the new tail
  uint32_t ecc_corrected = 0;     // single-bit memory errors the device corrected (increase of ECC_CORRECTED)
  uint64_t ecc_addr = 0;          // the last word corrected (ECC_ADDR, a device address; HBM absolute), if any
  Recovery& operator+=(const Recovery& o);
  // The counts of `later` minus those of `earlier` (both running totals); ecc_addr of `later`.
  static Recovery since(const Recovery& earlier, const Recovery& later);
  bool any() const { return missed_irqs || late_irqs || spurious_irqs || doorbell_retries || ecc_corrected; }
  bool operator==(const Recovery&) const = default;
};

// One engine's state as the driver read it (ENGINE_BLOCK registers).
struct EngineStatus {
  int engine = 0;                                   // isa engine id
  regs::EngineState state = regs::EngineState::kIdle;
  uint32_t pc = 0;                                  // the instruction it is on
  uint32_t wait_sem = 0, wait_value = 0, sem_value = 0;  // state kWaiting: what it waits for, the semaphore's value
};

// Error(kTimeout) from wait(): the job did not complete in time. The driver has reset the context (the job
// and any queued behind it were aborted); `engines` are the engines that were still running or blocked.
class TimeoutError : public Error {
 public:
  TimeoutError(uint32_t seq, std::vector<EngineStatus> engines, const std::string& message)
      : Error(ErrorCode::kTimeout, message), seq_(seq), engines_(std::move(engines)) {}
  uint32_t seq() const { return seq_; }
  const std::vector<EngineStatus>& engines() const { return engines_; }
  // True if an engine was executing (not blocked on a semaphore): a hung engine, or a job longer than
  // the timeout; false for a semaphore deadlock, which a rerun repeats.
  bool engine_running() const;

 private:
  uint32_t seq_;
  std::vector<EngineStatus> engines_;
};

// Error(kDevice) from wait(): the job's completion record (regs.h) failed its check (magic, sequence
// number or CRC), so whether the job did what it should is unknown. The device is not halted.
class CompletionError : public Error {
 public:
  CompletionError(uint32_t seq, const std::string& message) : Error(ErrorCode::kDevice, message), seq_(seq) {}
  uint32_t seq() const { return seq_; }

 private:
  uint32_t seq_;
};

struct JobResult {
  uint32_t seq = 0;
  uint64_t cycles = 0;       // device cycles from job start to completion (its completion record)
  uint32_t trace_count = 0;  // records the job produced (completion record); min(count, capacity) were written
  std::vector<Notification> notifications;  // the job's notify instructions, in the order the device posted them
  // Notifies the device dropped (its FIFO was full) while this wait ran: the increase of NOTIFY_DROPPED,
  // exact when one job is in flight (as JOB_CYCLES is).
  uint32_t notifications_dropped = 0;
  Recovery recovery;  // interrupts missed or spurious, doorbell retries, ECC corrections while it ran
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

  // Resets the device context (CTRL.RESET: aborts its jobs, clears faults, interrupts, semaphores and
  // counters) and re-initialises the command ring; sequence numbers start again from 1. HBM contents and
  // allocations are kept.
  void reset();

  // HBM allocation, from the device through the transport (Transport::mem_alloc): first fit, `align` must
  // be a power of two. Throws Error(kCapacity) with the request and the largest free block when it cannot
  // be satisfied.
  uint64_t alloc(uint64_t bytes, uint64_t align = 4096);
  void free(uint64_t addr);  // Error(kInvalidArgument) if addr was not returned by alloc
  uint64_t bytes_free() const;

  void write(uint64_t addr, std::span<const uint8_t> src) { transport_.mem_write(addr, src); }
  void read(uint64_t addr, std::span<uint8_t> dst) { transport_.mem_read(addr, dst); }

  // Writes the job descriptor and a ring entry (its completion record zeroed), rings the doorbell and reads
  // RING_TAIL back: a doorbell write that did not take is repeated up to kDoorbellRetries times (counted in
  // the job's JobResult::recovery). If it never takes, resets the context and throws Error(kDevice).
  // Returns the job's sequence number.
  uint32_t submit(const Job& job);
  static constexpr uint32_t kDoorbellRetries = 3;
  // Called about every kProgressSlice device cycles while wait() runs, with the cycles waited so far.
  using Progress = std::function<void(uint64_t cycles_waited)>;
  static constexpr uint64_t kProgressSlice = 1 << 20;

  // Called by wait() for each notification as it drains the device's FIFO (on the NOTIFY interrupt, and
  // before returning or throwing), in FIFO order, with simulated time standing still. An exception it
  // throws leaves wait() (the job keeps running; the notification is already in the driver's hands).
  using NotifyHandler = std::function<void(const Notification&)>;
  void set_notify_handler(NotifyHandler handler) { notify_handler_ = std::move(handler); }

  // Waits until job `seq` completes. It does not depend on the interrupt: it waits in bounded slices
  // (poll_cycles(), below; shorter when the interrupt comes) and checks STATUS and COMPLETED_SEQ after
  // each, counting completions found without their interrupt and interrupts without a cause; slicing does
  // not change the simulation. On completion it checks the job's completion record.
  // Throws DeviceFault if the device faulted (the device then needs reset()); TimeoutError (kTimeout) if
  // `timeout_cycles` device cycles pass without completion, naming the engines still running or blocked,
  // after resetting the context; CompletionError (kDevice) if the completion record is bad. Notifications
  // of other jobs drained meanwhile are kept for their own wait() (until reset()).
  JobResult wait(uint32_t seq, uint64_t timeout_cycles, const Progress& progress = {});
  // submit + wait.
  JobResult run(const Job& job, uint64_t timeout_cycles, const Progress& progress = {});

  uint64_t cycle();

  // The slice wait() lets the device run between two looks at its registers (device cycles, > 0): the
  // first after an interrupt (and at the start of a wait) is poll_cycles(); each slice that ends without
  // an interrupt doubles it, up to kMaxPollCycles (or poll_cycles() if larger). A completion whose
  // interrupt is lost is found at most one interval late.
  static constexpr uint64_t kPollCycles = 1 << 16;
  static constexpr uint64_t kMaxPollCycles = 1 << 24;
  void set_poll_cycles(uint64_t cycles);
  uint64_t poll_cycles() const { return poll_cycles_; }

  // Single-bit errors the device corrected for this context since the driver was made (ECC_CORRECTED,
  // which reset() clears, carried across resets).
  uint64_t ecc_corrected_total();
  // Everything the driver recovered from since it was made, including in waits and submissions that
  // threw (the difference of two readings is what happened in between; ecc_corrected as above).
  Recovery recovery_totals();
  // Every engine the device has (TensorE, VectorE, ScalarE, the DMA queues) with its state; with
  // `active_only`, only those running or blocked on a semaphore.
  std::vector<EngineStatus> engine_states(bool active_only = false);

  Counters read_counters();
  void clear_counters();
  // Reads `count` trace records from a job's trace buffer.
  std::vector<TraceRecord> read_trace(uint64_t addr, uint32_t count);

 private:
  void init_ring();
  DeviceFault read_fault();
  // Writes DOORBELL until RING_TAIL shows tail_ (see submit()).
  void ring_doorbell(uint32_t seq);
  // Counts the completions since the last look against `job_done` (JOB_DONE was pending) into `rec`.
  void account_completions(bool job_done, Recovery& rec);
  // Reads and checks job `seq`'s completion record into `r` (cycles, trace count); CompletionError if bad.
  void check_completion(uint32_t seq, JobResult& r);
  // The timeout error for job `seq`; resets the context.
  TimeoutError timeout(uint32_t seq, uint64_t timeout_cycles);
  // Moves every entry of the device's notification FIFO into notifications_, calling the handler.
  void drain_notifications();

  Transport& transport_;
  DeviceInfo info_;
  uint64_t ring_addr_ = 0, desc_addr_ = 0;
  uint32_t ring_entries_ = 0;
  uint32_t tail_ = 0, next_seq_ = 1;
  uint64_t poll_cycles_ = kPollCycles;
  // Interrupt accounting: the last COMPLETED_SEQ the driver looked at, and the completions it found by
  // polling whose JOB_DONE has not come (a JOB_DONE without a new completion pays one off as late).
  uint32_t seen_completed_ = 0, irqs_owed_ = 0;
  std::map<uint32_t, uint32_t> doorbell_retries_;  // by job seq, until its wait()
  uint64_t ecc_carry_ = 0;                         // ECC_CORRECTED counted before the last reset
  uint64_t ecc_addr_carry_ = 0;                    // and ECC_ADDR then
  Recovery totals_;                                // interrupt and doorbell counts since construction
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
