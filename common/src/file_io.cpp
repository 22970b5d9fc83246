#include "tcemu/file_io.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tcemu/error.h"

namespace tcemu {

void write_file(const std::string& path, std::span<const uint8_t> bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(ErrorCode::kIo, fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
  const size_t n = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int write_errno = errno;
  if (n != bytes.size()) {
    std::fclose(f);
    throw Error(ErrorCode::kIo, fmt::format("{}: write failed after {} of {} bytes: {}", path, n, bytes.size(),
                                            std::strerror(write_errno)));
  }
  if (std::fclose(f) != 0) throw Error(ErrorCode::kIo, fmt::format("{}: write failed: {}", path, std::strerror(errno)));
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(ErrorCode::kIo, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::vector<uint8_t> out;
  std::array<uint8_t, 1 << 16> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.insert(out.end(), buf.begin(), buf.begin() + n);
  const bool failed = std::ferror(f);
  const int read_errno = errno;
  std::fclose(f);
  if (failed) throw Error(ErrorCode::kIo, fmt::format("{}: read failed: {}", path, std::strerror(read_errno)));
  return out;
}

}  // namespace tcemu
