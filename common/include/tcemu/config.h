// Device configurations. One struct holds every hardware parameter; the emulator is built from it, the
// device publishes it through its capability registers, and the kernel builder tiles to it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tcemu {

// The tensor engine's implementation (docs/rtl.md): the verilated RTL (the truth), the fast C++ model
// (bit- and cycle-exact with it), or both in lockstep (every port compared after every cycle).
enum class TensorEngineKind { kRtl, kFast, kLockstep };
const char* tensor_engine_name(TensorEngineKind k);  // "rtl", "fast", "lockstep"
// Throws Error(kInvalidArgument) naming `name` and the accepted names.
TensorEngineKind parse_tensor_engine(const std::string& name);

struct DeviceConfig {
  std::string name;
  TensorEngineKind tensor_engine = TensorEngineKind::kRtl;  // the default for this config
  int rows = 16;                       // TensorE array rows = contraction (K) lanes = SBUF partitions
  int cols = 16;                       // TensorE array columns = stationary width (M) = PSUM partitions used
  int sbuf_partitions = 16;
  uint32_t sbuf_partition_bytes = 0;   // free-dimension bytes per SBUF partition
  int psum_partitions = 16;
  uint32_t psum_bank_bytes = 2048;     // per partition; one matmul output must fit in one bank
  int psum_banks = 8;
  uint64_t hbm_bytes = 0;              // sparse: only touched 4 KiB pages cost host memory
  int dma_queues = 16;
  uint32_t dma_bytes_per_cycle = 16;   // per queue
  uint32_t dma_latency_cycles = 64;    // fixed start cost of one DMA instruction
  // DMA timing (docs/isa.md, dma_copy): every contiguous run costs at least dma_min_run_bytes of bandwidth
  // (a shorter run wastes the rest); queues moving HBM data at the same time share hbm_bytes_per_cycle.
  uint32_t dma_min_run_bytes = 16;
  uint32_t hbm_bytes_per_cycle = 32;   // all DMA queues together; SBUF/PSUM-only copies do not use it
  uint32_t clock_mhz = 1400;           // one clock for the whole core
  // VectorE / ScalarE (docs/isa.md, "Timing"): one lane per partition, all partitions in parallel; an
  // instruction over N free elements per partition reading k tensor inputs takes
  // start + max(min, N * max(k, 1)) cycles.
  uint32_t vector_start_cycles = 60;   // fixed cost: starting the SBUF/PSUM accesses
  uint32_t vector_min_cycles = 64;     // shortest streaming phase
  uint32_t scalar_start_cycles = 60;
  uint32_t scalar_min_cycles = 64;
  int partition_quadrant = 32;         // an access over more partitions starts at a multiple of this; transpose block

  uint32_t psum_partition_bytes() const { return psum_bank_bytes * static_cast<uint32_t>(psum_banks); }
  uint64_t sbuf_bytes() const { return uint64_t(sbuf_partitions) * sbuf_partition_bytes; }
  uint64_t psum_bytes() const { return uint64_t(psum_partitions) * psum_partition_bytes(); }
};

// Names accepted by --config: trn1, tc1-8, tc1-16, tc1-32.
const std::vector<DeviceConfig>& builtin_configs();
// Throws Error(kInvalidArgument) naming the unknown config and listing the known ones.
const DeviceConfig& find_config(const std::string& name);
inline constexpr const char* kDefaultConfig = "trn1";

}  // namespace tcemu
