// Shared by the fuzz targets: what counts as a bug. A target calls check() for every property the library
// documents; a violated property prints what was expected and aborts, which libFuzzer reports as a crash
// and saves the input. An exception that is not the documented tcemu::Error escapes LLVMFuzzerTestOneInput,
// reaches std::terminate and is reported the same way.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "tcemu/error.h"

namespace tcemu::fuzz {

[[noreturn]] inline void bug(const std::string& what) {
  std::fprintf(stderr, "fuzz: property violated: %s\n", what.c_str());
  std::abort();
}

inline void check(bool ok, const std::string& what) {
  if (!ok) bug(what);
}

// A rejection must be a tcemu::Error of one of the documented codes (checked by the caller's catch).
inline void expect_code(const Error& e, std::initializer_list<ErrorCode> allowed, const char* call) {
  for (ErrorCode c : allowed)
    if (e.code() == c) return;
  bug(std::string(call) + " threw Error(" + error_code_name(e.code()) + "), not a documented code: " + e.what());
}

}  // namespace tcemu::fuzz
