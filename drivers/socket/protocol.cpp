#include "protocol.h"

#include <fmt/format.h>

namespace tcemu::proto {

const char* msg_name(uint16_t type) {
  switch (Msg(type)) {
    case Msg::kHello:
      return "Hello";
    case Msg::kMmioRead:
      return "MmioRead";
    case Msg::kMmioWrite:
      return "MmioWrite";
    case Msg::kMemRead:
      return "MemRead";
    case Msg::kMemWrite:
      return "MemWrite";
    case Msg::kMemReadShm:
      return "MemReadShm";
    case Msg::kMemWriteShm:
      return "MemWriteShm";
    case Msg::kMemAlloc:
      return "MemAlloc";
    case Msg::kMemFree:
      return "MemFree";
    case Msg::kMemBytesFree:
      return "MemBytesFree";
    case Msg::kInjectFaults:
      return "InjectFaults";
    case Msg::kWaitIrq:
      return "WaitIrq";
    case Msg::kBye:
      return "Bye";
    case Msg::kHelloReply:
      return "HelloReply";
    case Msg::kOk:
      return "Ok";
    case Msg::kU32:
      return "U32";
    case Msg::kU64:
      return "U64";
    case Msg::kIrq:
      return "Irq";
    case Msg::kData:
      return "Data";
    case Msg::kError:
      return "Error";
  }
  return nullptr;
}

Writer::Writer(Msg type) : buf_(kHeaderBytes, 0) {
  buf_[4] = uint8_t(uint16_t(type));
  buf_[5] = uint8_t(uint16_t(type) >> 8);
}

Writer& Writer::u8(uint8_t v) {
  buf_.push_back(v);
  return *this;
}
Writer& Writer::u32(uint32_t v) {
  for (int i = 0; i < 4; ++i) buf_.push_back(uint8_t(v >> (8 * i)));
  return *this;
}
Writer& Writer::u64(uint64_t v) {
  for (int i = 0; i < 8; ++i) buf_.push_back(uint8_t(v >> (8 * i)));
  return *this;
}
Writer& Writer::str(const std::string& s) {
  if (s.size() > kMaxStringBytes)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("a string of {} bytes does not fit the protocol (at most {}): '{}...'", s.size(),
                            kMaxStringBytes, s.substr(0, 64)));
  u32(uint32_t(s.size()));
  buf_.insert(buf_.end(), s.begin(), s.end());
  return *this;
}
Writer& Writer::bytes(std::span<const uint8_t> b) {
  buf_.insert(buf_.end(), b.begin(), b.end());
  return *this;
}
std::vector<uint8_t> Writer::finish() {
  const uint32_t n = uint32_t(buf_.size() - kHeaderBytes);
  for (int i = 0; i < 4; ++i) buf_[size_t(i)] = uint8_t(n >> (8 * i));
  return std::move(buf_);
}

std::span<const uint8_t> Reader::take(size_t n, const char* field) {
  if (p_.size() - pos_ < n)
    throw Error(ErrorCode::kFormat, fmt::format("{} frame: {} needs {} bytes at payload offset {}, {} left", what_,
                                                field, n, pos_, p_.size() - pos_));
  auto s = p_.subspan(pos_, n);
  pos_ += n;
  return s;
}
uint8_t Reader::u8(const char* field) { return take(1, field)[0]; }
uint32_t Reader::u32(const char* field) {
  auto b = take(4, field);
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}
uint64_t Reader::u64(const char* field) {
  auto b = take(8, field);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | b[size_t(i)];
  return v;
}
std::string Reader::str(const char* field) {
  const uint32_t n = u32(field);
  if (n > kMaxStringBytes)
    throw Error(ErrorCode::kFormat,
                fmt::format("{} frame: {} is {} bytes long (at most {})", what_, field, n, kMaxStringBytes));
  auto b = take(n, field);
  return std::string(b.begin(), b.end());
}
void Reader::done() {
  if (pos_ != p_.size())
    throw Error(ErrorCode::kFormat, fmt::format("{} frame: {} bytes after the last field (payload {} bytes)", what_,
                                                p_.size() - pos_, p_.size()));
}

Header decode_header(std::span<const uint8_t, kHeaderBytes> b) {
  Header h;
  h.length = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
  h.type = uint16_t(b[4] | b[5] << 8);
  h.reserved = uint16_t(b[6] | b[7] << 8);
  return h;
}

std::vector<uint8_t> encode(const Hello& h) {
  Writer w(Msg::kHello);
  w.u32(h.magic).u32(h.version).u32(h.flags).str(h.config).u8(h.tensor_engine).str(h.wave_path);
  w.u64(h.wave_from).u64(h.wave_to).u64(h.lockstep_inject_column).str(h.client);
  return w.finish();
}

std::vector<uint8_t> encode(const HelloReply& r) {
  Writer w(Msg::kHelloReply);
  w.u32(r.version).u32(r.context).u32(r.device_pid).u64(r.shm_bytes).str(r.config).u8(r.tensor_engine);
  return w.finish();
}

std::vector<uint8_t> encode_error(ErrorCode code, const std::string& message) {
  // A message longer than a protocol string is cut, not refused: the error must still reach the client.
  return Writer(Msg::kError).u32(uint32_t(code)).str(message.substr(0, kMaxStringBytes)).finish();
}

namespace {
uint8_t engine_field(Reader& r, const char* what, bool allow_default) {
  const uint8_t e = r.u8("tensor_engine");
  if (e > uint8_t(TensorEngineKind::kLockstep) && !(allow_default && e == kEngineDefault))
    throw Error(ErrorCode::kFormat, fmt::format("{} frame: tensor_engine {} is not 0 (rtl), 1 (fast), 2 (lockstep){}",
                                                what, e, allow_default ? " or 255 (the config's default)" : ""));
  return e;
}
}  // namespace

Hello decode_hello(std::span<const uint8_t> payload) {
  Reader r(payload, "Hello");
  Hello h;
  h.magic = r.u32("magic");
  if (h.magic != kMagic)
    throw Error(ErrorCode::kFormat,
                fmt::format("not a tcemu client: the hello's magic is 0x{:08x} (expected 0x{:08x})", h.magic, kMagic));
  h.version = r.u32("version");
  if (h.version != kVersion)
    throw Error(ErrorCode::kDevice,
                fmt::format("protocol version mismatch: the client speaks version {}, this server speaks version {}",
                            h.version, kVersion));
  h.flags = r.u32("flags");
  if (h.flags & ~kHelloFlagsKnown)
    throw Error(ErrorCode::kFormat, fmt::format("Hello frame: unknown flags 0x{:x}", h.flags & ~kHelloFlagsKnown));
  h.config = r.str("config");
  h.tensor_engine = engine_field(r, "Hello", true);
  h.wave_path = r.str("wave_path");
  h.wave_from = r.u64("wave_from");
  h.wave_to = r.u64("wave_to");
  h.lockstep_inject_column = r.u64("lockstep_inject_column");
  h.client = r.str("client");
  r.done();
  if (h.wave_from >= h.wave_to)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("Hello: waveform window [{}, {}) is empty", h.wave_from, h.wave_to));
  return h;
}

HelloReply decode_hello_reply(std::span<const uint8_t> payload) {
  Reader r(payload, "HelloReply");
  HelloReply h;
  h.version = r.u32("version");
  if (h.version != kVersion)
    throw Error(ErrorCode::kDevice,
                fmt::format("protocol version mismatch: the server speaks version {}, this client speaks version {}",
                            h.version, kVersion));
  h.context = r.u32("context");
  h.device_pid = r.u32("device_pid");
  h.shm_bytes = r.u64("shm_bytes");
  h.config = r.str("config");
  h.tensor_engine = engine_field(r, "HelloReply", false);
  r.done();
  return h;
}

Error decode_error(std::span<const uint8_t> payload) {
  Reader r(payload, "Error");
  const uint32_t code = r.u32("code");
  std::string message = r.str("message");
  r.done();
  if (code > uint32_t(ErrorCode::kDevice))
    return Error(ErrorCode::kDevice, fmt::format("the server sent an unknown error code {}: {}", code, message));
  return Error(ErrorCode(code), message);
}

}  // namespace tcemu::proto
