// Instruction footprints: the bytes of HBM, SBUF and PSUM an instruction reads and writes, written from
// docs/isa.md (operand layouts and access patterns), independently of the emulator's code.
//
// Used by the profiler's occupancy counters (runtime/src/occupancy.cpp) and meant for hazard tracking in
// the kernel builder. tests/common/footprint_test.cpp checks it by hand per opcode and against the device
// (every byte an instruction changes lies inside its write footprint).
#pragma once

#include <cstdint>
#include <vector>

#include "tcemu/config.h"
#include "tcemu/isa.h"

namespace tcemu::isa {

// A contiguous run of bytes in one partition: [begin, end) are byte offsets within the partition (SBUF:
// < sbuf_partition_bytes, PSUM: < psum_partition_bytes()). HBM has no partitions: partition is 0 and the
// offsets are offsets in the job's HBM window (like dma_copy's hbm: addresses).
struct Region {
  Space space = Space::kSbuf;
  uint32_t partition = 0;
  uint64_t begin = 0, end = 0;
  bool operator==(const Region&) const = default;
};

// The regions of each side, sorted by (space, partition, begin) and coalesced: no two regions of one side
// overlap or touch. A read-modify-write (matmul / pe_transpose with accumulate) lists its output on both
// sides. Reads and writes are what the instruction's definition touches, not when: every instruction of
// TC1 reads its inputs and writes its outputs at completion.
struct Footprint {
  std::vector<Region> reads, writes;
  bool operator==(const Footprint&) const = default;
};

// The footprint of `in` on a device with configuration `cfg` (partition counts and sizes).
//  - nop, and any opcode this function does not know, touch nothing (an empty footprint).
//  - It describes valid instructions. For an instruction the device would fault on (which then touches
//    nothing), it is what the instruction would touch if it ran anyway, with these limits: operands with
//    an unknown space or dtype are left out, a matmul with a reserved dtype has an empty footprint, and
//    SBUF/PSUM regions are clipped to the space (a run that crosses a partition end continues in the next
//    partition, as device addresses do).
Footprint footprint(const DeviceConfig& cfg, const Instr& in);

// Sorts `regions` by (space, partition, begin) and merges the ones that overlap or touch.
void coalesce(std::vector<Region>& regions);

// Total bytes of `regions` (which must not overlap, e.g. after coalesce()).
uint64_t region_bytes(const std::vector<Region>& regions);

}  // namespace tcemu::isa
