#include "tcemu/config.h"

#include "tcemu/error.h"

namespace tcemu {

namespace {

// The tc1-N configs scale Trainium1's core (128 partitions x 192 KiB SBUF, 16 KiB PSUM per partition in
// 8 banks of 2 KiB) down to an N x N array so that the RTL runs fast: partitions follow the array, PSUM
// keeps its per-partition geometry (a matmul still produces up to 512 fp32 per partition), and the SBUF
// free size shrinks with N.
// DMA: each queue keeps Trainium's per-engine rate (16 B/cycle = 22 GB/s at 1.4 GHz; ~27 GB/s on trn1). HBM
// bandwidth scales with the array like the data the array consumes: Trainium1 has ~410 GB/s of HBM per
// NeuronCore, ~290 B/cycle at 1.4 GHz, about one 128-row bf16 column (256 B) per cycle; tc1-N keeps that
// ratio with 2N B/cycle (tc1-8: 16 = one queue at full rate, tc1-16: 32 = two, tc1-32: 64 = four). The run
// minimum stays at 16 B (one cycle of a queue): a queue starts at most one contiguous run per cycle.
DeviceConfig make_tc1(int n, uint32_t sbuf_partition_kib, uint64_t hbm_mib) {
  DeviceConfig c;
  c.name = "tc1-" + std::to_string(n);
  c.rows = c.cols = n;
  c.sbuf_partitions = c.psum_partitions = n;
  c.sbuf_partition_bytes = sbuf_partition_kib * 1024;
  c.hbm_bytes = hbm_mib << 20;
  c.hbm_bytes_per_cycle = 2 * uint32_t(n);
  return c;
}

// trn1: one Trainium1 NeuronCore at full size: a 128 x 128 array, 128 partitions of 192 KiB SBUF (24 MiB)
// and of 16 KiB PSUM (8 banks of 2 KiB: 2 MiB), 16 DMA queues of ~27 GB/s (19 B/cycle at 1.4 GHz) sharing
// ~410 GB/s of HBM (290 B/cycle), 16 GiB of (sparse) HBM. Its default tensor engine is the fast model:
// the verilated 128 x 128 array runs at a few thousand cycles per second.
DeviceConfig make_trn1() {
  DeviceConfig c;
  c.name = "trn1";
  c.tensor_engine = TensorEngineKind::kFast;
  c.rows = c.cols = 128;
  c.sbuf_partitions = c.psum_partitions = 128;
  c.sbuf_partition_bytes = 192 * 1024;
  c.hbm_bytes = uint64_t(16) << 30;
  c.dma_bytes_per_cycle = 19;
  c.hbm_bytes_per_cycle = 290;
  return c;
}

}  // namespace

const char* tensor_engine_name(TensorEngineKind k) {
  switch (k) {
    case TensorEngineKind::kRtl: return "rtl";
    case TensorEngineKind::kFast: return "fast";
    case TensorEngineKind::kLockstep: return "lockstep";
  }
  return "unknown";
}

TensorEngineKind parse_tensor_engine(const std::string& name) {
  for (TensorEngineKind k : {TensorEngineKind::kRtl, TensorEngineKind::kFast, TensorEngineKind::kLockstep})
    if (name == tensor_engine_name(k)) return k;
  throw Error(ErrorCode::kInvalidArgument, "unknown tensor engine '" + name + "' (known: rtl, fast, lockstep)");
}

const std::vector<DeviceConfig>& builtin_configs() {
  static const std::vector<DeviceConfig> configs = {
      make_trn1(),
      make_tc1(8, 16, 256),
      make_tc1(16, 32, 512),
      make_tc1(32, 64, 1024),
  };
  return configs;
}

const DeviceConfig& find_config(const std::string& name) {
  std::string known;
  for (const auto& c : builtin_configs()) {
    if (c.name == name) return c;
    known += (known.empty() ? "" : ", ") + c.name;
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown device config '" + name + "' (known: " + known + ")");
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kFormat: return "format";
    case ErrorCode::kEncoding: return "encoding";
    case ErrorCode::kCapacity: return "capacity";
    case ErrorCode::kDeviceFault: return "device-fault";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kDevice: return "device";
  }
  return "unknown";
}

}  // namespace tcemu

#include "tcemu/regs.h"

namespace tcemu::regs {
const char* fault_name(FaultCode code) {
  switch (code) {
#define TCEMU_X(name, c, doc) \
  case FaultCode::name: return #name;
    TCEMU_FAULTS(TCEMU_X)
#undef TCEMU_X
  }
  return "UnknownFault";
}
}  // namespace tcemu::regs
