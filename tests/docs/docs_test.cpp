// The generated tables in docs/ must match the one-source tables they document.
// To update them: build/bin/tcemu doc NAME --update docs/FILE.md
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tcemu/docblock.h"

namespace {

std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void check(const std::string& file, const std::string& block) {
  std::string doc = read(std::string(TCEMU_SOURCE_DIR) + "/docs/" + file);
  ASSERT_FALSE(doc.empty()) << file << " is missing";
  auto have = tcemu::extract_block(doc, block);
  ASSERT_TRUE(have) << file << " has no '<!-- generated: " << block << " -->' block";
  EXPECT_EQ(*have, *tcemu::generated_block(block))
      << "docs/" << file << " is out of date: run build/bin/tcemu doc " << block << " --update docs/" << file;
}

TEST(Docs, IsaTablesMatchTheIsaTable) { check("isa.md", "isa"); }
TEST(Docs, RegisterTableMatchesTheRegisterMap) { check("registers.md", "registers"); }
TEST(Docs, FaultTableMatchesTheFaultCodes) { check("registers.md", "faults"); }

}  // namespace
