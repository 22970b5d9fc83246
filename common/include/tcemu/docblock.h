// Generated blocks inside markdown docs: "<!-- generated: NAME -->\n...<!-- end generated -->".
#pragma once

#include <optional>
#include <string>

namespace tcemu {

// The generated table for NAME (isa, registers, faults), or nullopt for an unknown name.
std::optional<std::string> generated_block(const std::string& name);
// Returns `doc` with the block NAME replaced by `content`; nullopt if the markers are missing.
std::optional<std::string> replace_block(const std::string& doc, const std::string& name, const std::string& content);
// The current content of block NAME in `doc`; nullopt if the markers are missing.
std::optional<std::string> extract_block(const std::string& doc, const std::string& name);

}  // namespace tcemu
