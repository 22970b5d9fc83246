// Fault injection on the command line (docs/driver.md, "From the command line"): the options --fault LINE
// (repeatable), --faults FILE and --fault-seed N that gemm, linear, run and demo take, and the "faults"
// part of their reports. Called by tools/tcemu.cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tcemu/faults.h"
#include "tcemu/rt/runtime.h"

namespace tcemu::cli {

// The valued options, for a command's option list.
inline const std::vector<std::string> kFaultOptions = {"fault", "faults", "fault-seed"};

// The plan of the options: the spec file's faults (--faults FILE), then each --fault line in order;
// --fault-seed N replaces the seed. Throws Error(kFormat) naming the option (or file and line) and the
// problem, Error(kIo) naming a file that cannot be read.
fi::Plan fault_plan(const std::vector<std::string>& lines, const std::optional<std::string>& file,
                    const std::optional<std::string>& seed);

// The report's "faults" section for the human output: what was injected, the failures recovered from,
// the driver's recovery counters. Empty when no fault was injected and nothing needed recovering.
std::string faults_text(const fi::Plan& plan, const rt::RunResult& r);

// The same as a JSON object (always present in --json output, so that its fields can be relied on):
// {"injected": [spec lines], "seed": N, "retries": N, "recovered": [{"attempt", "error", "fault",
// "message"}], "missed_irqs", "late_irqs", "spurious_irqs", "doorbell_retries", "ecc_corrected",
// "device_cycles"}.
std::string faults_json(const fi::Plan& plan, const rt::RunResult& r);

}  // namespace tcemu::cli
