// Fault injection plans: what the emulated device does wrong, when, for driver and runtime testing
// (docs/driver.md, "Fault injection"). A plan is armed on one context of the device (Transport's
// inject_faults) and applies to the jobs that context starts after that, counted from 1. Everything a plan
// does is decided by the plan and its seed, so a run with a plan is as deterministic as one without.
//
// The spec text, one fault per line ('#' starts a comment; `seed N` sets the seed):
//   dma_error          [job=J] [transfer=N]                 the N-th dma_copy of job J fails: DmaError fault
//   bit_flip           [job=J] space=sbuf|psum|hbm bits=1|2 [cycle=C] [addr=SPACE:OFFSET]
//                                                           at job cycle C, flips `bits` bits of the 8-byte
//                                                           ECC word at addr (hbm: window offset; default a
//                                                           seeded random word of the space, or of the window)
//   hang               [job=J] engine=E [instr=P]           engine E stops at its instruction P of job J
//   irq_drop           [job=J]                              job J's JOB_DONE interrupt is never raised
//   irq_delay          [job=J] cycles=D                     job J's JOB_DONE interrupt is raised D cycles late
//   irq_spurious       [job=J] [cycle=C]                    JOB_DONE is raised at job cycle C, job not done
//   doorbell_ignore    [count=N]                            the next N DOORBELL writes are lost
//   completion_corrupt [job=J]                              one bit of job J's completion record flips
// Defaults: job=1, transfer=1, cycle=0, instr=0, count=1. Engines are named as in the ISA (tensor, vector,
// scalar, dma0..dma15).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tcemu::fi {

enum class Kind {
  kDmaError,
  kBitFlip,
  kHang,
  kIrqDrop,
  kIrqDelay,
  kIrqSpurious,
  kDoorbellIgnore,
  kCompletionCorrupt,
};
const char* kind_name(Kind k);  // the spec's keyword, e.g. "dma_error"

struct Fault {
  Kind kind = Kind::kDmaError;
  uint32_t job = 1;        // which job of the context, counted from 1 after the plan is armed
  uint32_t transfer = 1;   // kDmaError: the N-th dma_copy the job starts (all queues, in start order)
  int space = 0;           // kBitFlip: isa::Space (0 hbm, 1 sbuf, 2 psum)
  int bits = 1;            // kBitFlip: 1 (corrected by ECC) or 2 (uncorrectable)
  uint64_t cycle = 0;      // kBitFlip, kIrqSpurious: job cycle
  std::optional<uint64_t> addr;  // kBitFlip: byte offset in the space (hbm: in the job's window)
  int engine = 0;          // kHang: isa engine id
  uint32_t instr = 0;      // kHang: instruction index in the engine's stream
  uint64_t delay = 0;      // kIrqDelay: cycles
  uint32_t count = 1;      // kDoorbellIgnore: doorbell writes to lose
  bool operator==(const Fault&) const = default;
};

struct Plan {
  uint64_t seed = 1;
  std::vector<Fault> faults;
  bool empty() const { return faults.empty(); }
  bool operator==(const Plan&) const = default;
};

// Parses spec text; Error(kFormat) naming `source`, the line and what is wrong.
Plan parse(const std::string& text, const std::string& source = "fault spec");
// Parses one line (a CLI --fault value) and appends it to `plan`.
void add(Plan& plan, const std::string& line, const std::string& source = "--fault");
// Reads a spec file; Error(kIo) naming the path if it cannot be read.
Plan load(const std::string& path);
// The spec text of `plan`: parse(to_spec(p)) == p.
std::string to_spec(const Plan& plan);
// One line, as in the spec.
std::string describe(const Fault& f);

}  // namespace tcemu::fi
