// Whole-file reads and writes with errors that name the path and the system's reason (Error(kIo)).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tcemu {

std::vector<uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace tcemu
