// Markdown tables generated from the one-source tables (ISA, register map, fault codes). docs/isa.md
// and docs/registers.md embed them between "<!-- generated: NAME -->" and "<!-- end generated -->";
// a test checks that the docs match, and `tcemu doc NAME` prints them.
#pragma once

#include <string>

namespace tcemu {

std::string isa_markdown();        // NAME = isa
std::string registers_markdown();  // NAME = registers
std::string faults_markdown();     // NAME = faults

}  // namespace tcemu
