// SBUF and PSUM occupancy of a profiled run, by data liveness (docs/profiling.md, "Occupancy").
//
// The device has no allocator, so "occupied" means "holds data that is still needed": a byte is live from
// the end cycle of the instruction that writes it until the end cycle of the last instruction that reads it
// before it is next written. Bytes written but never read afterwards are never live, nor are bytes the job
// reads without having written them (data left by an earlier job). What each instruction reads and writes
// is its footprint (common/include/tcemu/footprint.h); when, is its trace record's end cycle: every TC1
// instruction reads its inputs and writes its outputs at completion (TensorE: the end of its streaming
// window, the trace slice's end). Instructions of one engine take effect in trace-record order; across
// engines by end cycle, then trace-record order. Within one instruction the reads come first, so an
// accumulating matmul keeps its PSUM output live without a gap.
//
// Granularity: exact bytes. Each partition of SBUF and PSUM is an interval map of (last write, last read)
// runs, so the cost grows with the number of footprint regions, not with their bytes: a 256x256x256 GEMM
// profile on tc1-16 (648 instructions) takes about 4 ms, on tc1-8 (7,000 instructions) about 25 ms
// (bench/occupancy_speed.cpp).
//
// Called by rt::Runtime::run() when it builds a Profile; usable on any recorded run.
#pragma once

#include <span>
#include <vector>

#include "tcemu/config.h"
#include "tcemu/drv/driver.h"
#include "tcemu/model.h"
#include "tcemu/rt/profile.h"
#include "tcemu/trace.h"

namespace tcemu::rt {

// The live-byte totals as a step function: a first sample at cycle 0, then one at every cycle where a
// total changes (each sample holds until the next). Records whose engine has no stream, or whose pc is
// past its stream's end, are ignored. Only the partition geometry of `cfg` is used.
std::vector<OccupancySample> occupancy(const DeviceConfig& cfg, std::span<const model::Stream> streams,
                                       std::span<const TraceRecord> records);

// The SBUF and PSUM geometry of a device as its driver reports it (the other DeviceConfig fields are
// left at their defaults): what occupancy() needs when the runtime has no DeviceConfig.
DeviceConfig memory_geometry(const drv::DeviceInfo& dev);

}  // namespace tcemu::rt
