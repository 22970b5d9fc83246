// The TC1 register map: ONE table used by the emulator's CSR block and by the driver. docs/registers.md
// documents it. All registers are 32 bits wide at 4-byte aligned offsets of BAR0.
// Access: RO read-only, RW read/write, W1C write 1 to clear, WO write-only (reads 0).
#pragma once

#include <cstdint>
#include <span>

namespace tcemu::regs {

inline constexpr uint32_t kDeviceId = 0x54433101;  // "TC1" + revision 1
inline constexpr uint32_t kVersionMajor = 1, kVersionMinor = 4;  // 1.1: NOTIFY_*; 1.2: HBM/DMA timing capabilities; 1.3: TE_MODEL, LOCKSTEP_*;
                                                                 // 1.4: contexts (CONTEXT_ID), HbmProtection, ECC_*,
                                                                 // DmaError, EccUncorrectable, completion records
inline constexpr uint32_t kVersion = (kVersionMajor << 16) | kVersionMinor;
inline constexpr uint32_t kBarBytes = 0x1000;

// X(NAME, offset, access, description)
#define TCEMU_REGS(X)                                                                                   \
  X(ID, 0x000, RO, "device identification, 0x54433101")                                              \
  X(VERSION, 0x004, RO, "register-map version: major << 16 | minor")                                 \
  X(ARRAY_ROWS, 0x008, RO, "TensorE array rows (K lanes)")                                           \
  X(ARRAY_COLS, 0x00C, RO, "TensorE array columns (M)")                                              \
  X(SBUF_PARTITIONS, 0x010, RO, "SBUF partitions")                                                   \
  X(SBUF_PARTITION_BYTES, 0x014, RO, "bytes per SBUF partition")                                     \
  X(PSUM_PARTITIONS, 0x018, RO, "PSUM partitions")                                                   \
  X(PSUM_BANK_BYTES, 0x01C, RO, "bytes per PSUM bank per partition")                                 \
  X(PSUM_BANKS, 0x020, RO, "PSUM banks")                                                             \
  X(HBM_SIZE_LO, 0x024, RO, "HBM size in bytes, low word")                                           \
  X(HBM_SIZE_HI, 0x028, RO, "HBM size in bytes, high word")                                          \
  X(DMA_QUEUES, 0x02C, RO, "DMA queues (engines 16..16+n-1)")                                        \
  X(NUM_SEMAPHORES, 0x030, RO, "semaphores")                                                         \
  X(CLOCK_MHZ, 0x034, RO, "core clock in MHz")                                                       \
  X(DMA_BYTES_PER_CYCLE, 0x038, RO, "peak bytes per cycle of one DMA queue")                         \
  X(HBM_BYTES_PER_CYCLE, 0x03C, RO, "peak HBM bytes per cycle, shared by all DMA queues")            \
  X(CTRL, 0x040, RW, "bit0 RESET (self-clearing: aborts all work, clears state; HBM kept); bit1 ENABLE") \
  X(STATUS, 0x044, RO, "bit0 READY, bit1 BUSY (a job is running), bit2 FAULT (halted on a fault)")     \
  X(IRQ_STATUS, 0x048, W1C, "bit0 JOB_DONE, bit1 FAULT, bit2 NOTIFY (a notify executed); write 1 to clear") \
  X(IRQ_MASK, 0x04C, RW, "interrupt enables, same bits as IRQ_STATUS")                               \
  X(DMA_LATENCY_CYCLES, 0x050, RO, "fixed start latency of a dma_copy in cycles")                     \
  X(DMA_MIN_RUN_BYTES, 0x054, RO, "bandwidth a DMA run costs at least, however short (bytes)")       \
  X(RING_BASE_LO, 0x060, RW, "command ring base (HBM byte address, 64-aligned), low word")           \
  X(RING_BASE_HI, 0x064, RW, "command ring base, high word")                                         \
  X(RING_SIZE, 0x068, RW, "command ring entries (power of two, 1..4096)")                            \
  X(RING_HEAD, 0x06C, RO, "index of the next entry the device will consume (mod RING_SIZE)")         \
  X(RING_TAIL, 0x070, RO, "index one past the last entry submitted (last DOORBELL value)")          \
  X(DOORBELL, 0x074, WO, "write the new tail: entries [head, tail) are submitted")                  \
  X(COMPLETED_SEQ, 0x078, RO, "sequence number of the last job that completed")                    \
  X(FAULT_CODE, 0x080, RO, "fault code (see FaultCode), 0 when none")                               \
  X(FAULT_ENGINE, 0x084, RO, "engine that faulted (0 tensor, 1 vector, 2 scalar, 16+q DMA queue q)") \
  X(FAULT_PC, 0x088, RO, "index of the faulting instruction in its engine's stream")               \
  X(FAULT_ADDR_LO, 0x08C, RO, "faulting device address, low word")                                 \
  X(FAULT_ADDR_HI, 0x090, RO, "faulting device address, high word")                                \
  X(FAULT_INFO, 0x094, RO, "extra detail: opcode of the faulting instruction")                      \
  X(FAULT_SEQ, 0x098, RO, "sequence number of the job that faulted")                                \
  X(CYCLE_LO, 0x0A0, RO, "cycle counter, low word (reading it latches CYCLE_HI)")                   \
  X(CYCLE_HI, 0x0A4, RO, "cycle counter, high word (as latched)")                                   \
  X(JOB_CYCLES_LO, 0x0A8, RO, "cycles of the last completed job, low word")                         \
  X(JOB_CYCLES_HI, 0x0AC, RO, "cycles of the last completed job, high word")                        \
  X(TRACE_COUNT, 0x0B0, RO, "trace records the current/last job produced (written: min(count, capacity))") \
  X(NOTIFY_COUNT, 0x0C0, RO, "notification FIFO: entries pending (0..64)")                         \
  X(NOTIFY_TAG, 0x0C4, RO, "head entry: tag of the notify instruction (0 when the FIFO is empty)")    \
  X(NOTIFY_ENGINE, 0x0C8, RO, "head entry: engine that executed the notify")                          \
  X(NOTIFY_CYCLE_LO, 0x0CC, RO, "head entry: job cycle at which the notify completed, low word")      \
  X(NOTIFY_CYCLE_HI, 0x0D0, RO, "head entry: job cycle, high word")                                   \
  X(NOTIFY_SEQ, 0x0D4, RO, "head entry: sequence number of the job that posted it")                  \
  X(NOTIFY_POP, 0x0D8, WO, "bit0: remove the head entry (no effect when the FIFO is empty)")         \
  X(NOTIFY_DROPPED, 0x0DC, RO, "notifies dropped because the FIFO was full, since reset (saturates)") \
  X(TE_MODEL, 0x0E0, RO, "tensor engine implementation: 0 rtl, 1 fast, 2 lockstep (TensorEngineKind)") \
  X(LOCKSTEP_PORT, 0x0E4, RO, "LockstepMismatch: port that differed (1 out_valid, 2 out_data, 3 wload_ready, 4 busy)") \
  X(LOCKSTEP_COLUMN, 0x0E8, RO, "LockstepMismatch: result column (n) of the instruction the port was presenting") \
  X(LOCKSTEP_ELEMENT, 0x0EC, RO, "LockstepMismatch: out_data element (result row c) that differed first")   \
  X(LOCKSTEP_RTL, 0x0F0, RO, "LockstepMismatch: the RTL's value (fp32 bits, or 0/1 for a flag)")            \
  X(LOCKSTEP_FAST, 0x0F4, RO, "LockstepMismatch: the fast model's value")                                  \
  X(LOCKSTEP_CYCLE_LO, 0x0F8, RO, "LockstepMismatch: job cycle after which the ports differed, low word") \
  X(LOCKSTEP_CYCLE_HI, 0x0FC, RO, "LockstepMismatch: job cycle, high word")                               \
  X(PERF_CTRL, 0x100, WO, "bit0: clear the performance counters")                                   \
  X(TE_MACS_LO, 0x104, RO, "TensorE multiply-accumulates since the counters were cleared, low word") \
  X(TE_MACS_HI, 0x108, RO, "TensorE multiply-accumulates, high word")                               \
  X(DMA_BYTES_LO, 0x10C, RO, "bytes moved by all DMA queues since the counters were cleared, low")  \
  X(DMA_BYTES_HI, 0x110, RO, "bytes moved by all DMA queues, high word")                            \
  X(WATCHDOG_CYCLES, 0x114, RW, "deadlock watchdog: cycles all unfinished engines may stay blocked on semaphores (0: off)") \
  X(CONTEXT_ID, 0x118, RO, "this register bank's context (0..15); every register but the capabilities is per context") \
  X(ECC_CORRECTED, 0x11C, RO, "single-bit memory errors ECC corrected in this context's jobs and host reads since reset") \
  X(ECC_ADDR_LO, 0x120, RO, "address of the last corrected word as in instructions (isa::make_addr; hbm: absolute), low") \
  X(ECC_ADDR_HI, 0x124, RO, "device address of the last corrected word, high word")                \
  X(ENGINE_BLOCK, 0x200, RO, "per engine e at 0x200 + 32*e: BUSY_LO/HI, STALL_LO/HI, STATE, PC, WAIT_SEM, WAIT_VALUE") \
  X(SEM_BLOCK, 0x800, RO, "semaphore s at 0x800 + 4*s (256 semaphores)")

enum Reg : uint32_t {
#define TCEMU_X(name, off, acc, doc) name = off,
  TCEMU_REGS(TCEMU_X)
#undef TCEMU_X
};

enum class Access { RO, RW, W1C, WO };

struct RegInfo {
  const char* name;
  uint32_t offset;
  Access access;
  const char* doc;
};

inline constexpr RegInfo kRegs[] = {
#define TCEMU_X(name, off, acc, doc) {#name, off, Access::acc, doc},
    TCEMU_REGS(TCEMU_X)
#undef TCEMU_X
};

// Per-engine register block: ENGINE_BLOCK + kEngineBlockStride * e + one of these.
inline constexpr uint32_t kEngineBlockStride = 32;
enum EngineReg : uint32_t {
  ENG_BUSY_LO = 0x00,     // cycles executing instructions (TensorE: streaming moving columns)
  ENG_BUSY_HI = 0x04,
  ENG_STALL_LO = 0x08,    // cycles blocked waiting on a semaphore
  ENG_STALL_HI = 0x0C,
  ENG_STATE = 0x10,       // EngineState
  ENG_PC = 0x14,          // instruction the engine is on (or stopped at)
  ENG_WAIT_SEM = 0x18,    // semaphore it waits on (valid in state kWaiting)
  ENG_WAIT_VALUE = 0x1C,  // value it waits for
};
enum class EngineState : uint32_t { kIdle = 0, kRunning = 1, kWaiting = 2, kDone = 3 };
constexpr uint32_t engine_reg(int engine, EngineReg r) { return ENGINE_BLOCK + kEngineBlockStride * uint32_t(engine) + r; }
constexpr uint32_t sem_reg(int sem) { return SEM_BLOCK + 4 * uint32_t(sem); }

// CTRL bits
inline constexpr uint32_t kCtrlReset = 1u << 0;
inline constexpr uint32_t kCtrlEnable = 1u << 1;
// STATUS bits
inline constexpr uint32_t kStatusReady = 1u << 0;
inline constexpr uint32_t kStatusBusy = 1u << 1;
inline constexpr uint32_t kStatusFault = 1u << 2;
// IRQ bits
inline constexpr uint32_t kIrqJobDone = 1u << 0;
inline constexpr uint32_t kIrqFault = 1u << 1;
inline constexpr uint32_t kIrqNotify = 1u << 2;
inline constexpr uint32_t kIrqAll = kIrqJobDone | kIrqFault | kIrqNotify;

// X(NAME, code, description)
#define TCEMU_FAULTS(X)                                                                  \
  X(None, 0, "no fault")                                                                 \
  X(BadOpcode, 1, "unknown opcode or reserved bits set")                                \
  X(WrongEngine, 2, "opcode not executable on this engine")                             \
  X(BadOperand, 3, "operand out of its documented range")                               \
  X(HbmOutOfRange, 4, "access outside the job's HBM window or outside HBM")            \
  X(SbufOutOfRange, 5, "access outside SBUF")                                           \
  X(PsumOutOfRange, 6, "access outside PSUM or across a PSUM bank")                    \
  X(BadSpace, 7, "address space not allowed for this operand")                         \
  X(BadJob, 8, "malformed job descriptor")                                              \
  X(BadRing, 9, "command ring misconfigured")                                           \
  X(Watchdog, 10, "deadlock: every unfinished engine blocked on a semaphore for WATCHDOG_CYCLES") \
  X(BadDtype, 11, "element type not allowed for this operand (unknown code, or not f32 in PSUM)") \
  X(BadPartition, 12, "partition range outside the memory, empty, or not aligned to the quadrant") \
  X(LockstepMismatch, 13, "the RTL and the fast tensor engine differed (LOCKSTEP_* registers say where)")                               \
  X(HbmProtection, 14, "HBM access to a page this context does not own (another context's or free memory)")    \
  X(DmaError, 15, "a DMA transfer failed (link or memory error); what it moved is incomplete")             \
  X(EccUncorrectable, 16, "a two-bit memory error that ECC cannot correct (FAULT_ADDR: the 8-byte word)")

enum class FaultCode : uint32_t {
#define TCEMU_X(name, code, doc) name = code,
  TCEMU_FAULTS(TCEMU_X)
#undef TCEMU_X
};
const char* fault_name(FaultCode code);

// Command ring entry (64 bytes, little-endian) and job descriptor, both in HBM.
//   ring entry: u64 job_desc_addr; u32 seq; u32 reserved[13]
//   job descriptor: u32 magic 'TCJB' (0x424A4354); u32 num_streams; u64 hbm_base; u64 hbm_size;
//                   u64 trace_addr; u32 trace_capacity (records; 0: no trace); u32 reserved (0);
//                   then num_streams x { u32 engine; u32 count; u64 instr_addr }  (16 bytes each)
//   completion record, written by the device into the job's ring entry when the job completes (bytes 16..39):
//     u32 magic 'TCDN' (0x4E444354); u32 seq; u64 job cycles; u32 trace count; u32 crc32 of the 20 bytes
//     before it (bytes 16..35 of the entry). The driver zeroes it when it submits the entry.
inline constexpr uint32_t kRingEntryBytes = 64;
inline constexpr uint32_t kCompletionOffset = 16, kCompletionBytes = 24;
inline constexpr uint32_t kCompletionMagic = 0x4E444354;
inline constexpr uint32_t kJobMagic = 0x424A4354;
inline constexpr uint32_t kJobHeaderBytes = 40;
inline constexpr uint32_t kJobStreamBytes = 16;
inline constexpr uint32_t kNumSemaphores = 256;
// Register banks (contexts) of one device: one per client of a shared device (docs/registers.md, "Contexts").
inline constexpr uint32_t kMaxContexts = 16;
inline constexpr uint32_t kDefaultWatchdogCycles = 1'000'000;
// Entries of the notification FIFO (NOTIFY_* registers; docs/registers.md, "Notifications").
inline constexpr uint32_t kNotifyFifoDepth = 64;

}  // namespace tcemu::regs
