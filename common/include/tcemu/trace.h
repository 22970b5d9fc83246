// Trace records: the device's trace unit writes one 64-byte record per completed instruction into a
// trace buffer in HBM (job descriptor trace_addr / trace_capacity); the driver drains them and the
// runtime builds the profile from them. Layout (little-endian):
//   0  u16 engine        2  u16 opcode       4  u32 pc
//   8  u64 start         16 u64 end           cycles since the job started; [start, end) is the time the
//                                             instruction occupied its engine (TensorE: its streaming window)
//   24 u64 wait_cycles   cycles blocked on its semaphore before it started
//   32 u64 bytes         bytes moved (DMA) or read + written (compute engines)
//   40 u64 macs          multiply-accumulates (TensorE)
//   48 u32 wait_sem      semaphore waited on, 0xFFFFFFFF for none
//   52 u32 wait_value
//   56 u32 signal_sem    semaphore updated on completion, 0xFFFFFFFF for none
//   60 u32 reserved (0)
#pragma once

#include <cstdint>
#include <span>

namespace tcemu {

inline constexpr uint32_t kTraceRecordBytes = 64;
inline constexpr uint32_t kNoSemaphore = 0xFFFFFFFFu;

struct TraceRecord {
  uint16_t engine = 0, opcode = 0;
  uint32_t pc = 0;
  uint64_t start = 0, end = 0, wait_cycles = 0, bytes = 0, macs = 0;
  uint32_t wait_sem = kNoSemaphore, wait_value = 0, signal_sem = kNoSemaphore;

  void encode(std::span<uint8_t, kTraceRecordBytes> out) const;
  static TraceRecord decode(std::span<const uint8_t, kTraceRecordBytes> in);
  bool operator==(const TraceRecord&) const = default;
};

}  // namespace tcemu
