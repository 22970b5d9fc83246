#include "tcemu/trace.h"

#include <cstring>

namespace tcemu {

namespace {
template <typename T>
void put(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = uint8_t(uint64_t(v) >> (8 * i));
}
template <typename T>
T get(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(p[i]) << (8 * i);
  return T(v);
}
}  // namespace

void TraceRecord::encode(std::span<uint8_t, kTraceRecordBytes> out) const {
  uint8_t* p = out.data();
  std::memset(p, 0, kTraceRecordBytes);
  put<uint16_t>(p + 0, engine);
  put<uint16_t>(p + 2, opcode);
  put<uint32_t>(p + 4, pc);
  put<uint64_t>(p + 8, start);
  put<uint64_t>(p + 16, end);
  put<uint64_t>(p + 24, wait_cycles);
  put<uint64_t>(p + 32, bytes);
  put<uint64_t>(p + 40, macs);
  put<uint32_t>(p + 48, wait_sem);
  put<uint32_t>(p + 52, wait_value);
  put<uint32_t>(p + 56, signal_sem);
}

TraceRecord TraceRecord::decode(std::span<const uint8_t, kTraceRecordBytes> in) {
  const uint8_t* p = in.data();
  TraceRecord r;
  r.engine = get<uint16_t>(p + 0);
  r.opcode = get<uint16_t>(p + 2);
  r.pc = get<uint32_t>(p + 4);
  r.start = get<uint64_t>(p + 8);
  r.end = get<uint64_t>(p + 16);
  r.wait_cycles = get<uint64_t>(p + 24);
  r.bytes = get<uint64_t>(p + 32);
  r.macs = get<uint64_t>(p + 40);
  r.wait_sem = get<uint32_t>(p + 48);
  r.wait_value = get<uint32_t>(p + 52);
  r.signal_sem = get<uint32_t>(p + 56);
  return r;
}

}  // namespace tcemu
