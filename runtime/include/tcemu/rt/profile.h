// Profiles: built from the device's trace records and performance counters (never from host timing).
//
//  - chrome_trace_json(): Chrome trace-event JSON ("JSON object format") that Perfetto and
//    chrome://tracing open: one track per engine and per DMA queue with one slice per instruction
//    (named by mnemonic, operands and cycles in args), one track per engine for its semaphore waits,
//    and counter tracks. All figures needed to rebuild the profile travel in the file ("otherData" and
//    the slices' args), so `tcemu profile summary trace.json` works on the file alone.
//  - summarize(): per-engine busy %, TensorE utilisation, DMA bandwidth achieved vs peak, peak SBUF and
//    PSUM occupancy against their capacity, the slowest instructions, and the engine that bounds the run.
//  - SBUF/PSUM occupancy (live bytes over time) is computed by occupancy() (tcemu/rt/occupancy.h) and
//    travels as the counter tracks "SBUF live KiB" and "PSUM live KiB".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tcemu/trace.h"

namespace tcemu::rt {

struct ProfileInfo {
  std::string model, config;
  int rows = 0, cols = 0, dma_queues = 0;
  uint32_t clock_mhz = 0, dma_bytes_per_cycle = 0;  // per queue
  uint64_t cycles = 0;                              // the job's cycles
  uint64_t records_dropped = 0;                     // records the trace buffer could not hold
  uint64_t sbuf_bytes = 0, psum_bytes = 0;          // capacities (all partitions); 0: unknown
  uint32_t hbm_bytes_per_cycle = 0;                 // HBM peak, shared by all DMA queues; 0: unknown
  uint64_t hbm_bytes = 0;                           // bytes the job's DMA copies read from or wrote to HBM
};

// One step of the occupancy step function: from `cycle` until the next sample, this many SBUF and PSUM
// bytes are live (docs/profiling.md, "Occupancy").
struct OccupancySample {
  uint64_t cycle = 0, sbuf_bytes = 0, psum_bytes = 0;
  bool operator==(const OccupancySample&) const = default;
};

struct Profile {
  ProfileInfo info;
  std::vector<TraceRecord> records;
  std::vector<std::string> operands;  // per record: its disassembly (may be empty)
  // Device counters for the job (busy cycles per engine), when read; the test and summary cross-check.
  std::vector<uint64_t> counter_busy;  // indexed by engine; empty if not read
  std::vector<OccupancySample> occupancy;  // live bytes over time; empty if not computed
};

struct EngineSummary {
  int engine = 0;
  std::string name;  // "TensorE", "DMA q3", ...
  uint64_t instructions = 0, busy = 0, stall = 0;
  double busy_fraction = 0;
};

struct SlowInstruction {
  int engine = 0;
  uint32_t pc = 0;
  std::string mnemonic, operands;
  uint64_t cycles = 0, wait_cycles = 0;
};

struct Summary {
  ProfileInfo info;
  std::vector<EngineSummary> engines;  // engines that ran anything, by id
  uint64_t macs = 0, dma_bytes = 0;
  double te_utilization = 0;           // macs / (cycles * rows * cols)
  double dma_bytes_per_cycle = 0;      // achieved, all queues
  double dma_peak_bytes_per_cycle = 0; // dma_queues * per-queue peak
  double hbm_bytes_per_cycle = 0;      // achieved HBM traffic (DMA copies with an HBM side)
  // Occupancy peaks (from Profile::occupancy; 0 without it) and the first cycle each is reached.
  uint64_t sbuf_peak_live_bytes = 0, psum_peak_live_bytes = 0;
  uint64_t sbuf_peak_cycle = 0, psum_peak_cycle = 0;
  std::vector<SlowInstruction> slowest;
  std::string bound_by;                // the busiest engine (or "DMA" when the queues together are)
};

std::string engine_display_name(int engine);  // "TensorE", "VectorE", "ScalarE", "DMA q<N>"

Summary summarize(const Profile& p, size_t slowest = 5);
std::string format_summary(const Summary& s);  // readable text, several lines
std::string summary_json(const Summary& s);    // one JSON object

std::string chrome_trace_json(const Profile& p);
// Reads a file written by chrome_trace_json back. Throws Error(kFormat) naming `source` and what is
// missing or malformed.
Profile profile_from_chrome_json(const std::string& text, const std::string& source);

}  // namespace tcemu::rt
