// The tcemu device protocol: the messages SocketTransport (drivers/socket, the client) and `tcemu serve`
// (drivers/server) exchange over a unix or TCP stream socket. One header for both sides, so that a message's
// layout has one source. docs/server.md describes the protocol for readers; this file is the definition.
//
// Framing: every message is a frame, an 8-byte header {u32 length; u16 type; u16 reserved = 0} and then
// `length` payload bytes. All integers are little-endian; a string is {u32 bytes; bytes} (UTF-8, no NUL).
// The client speaks first (Hello) and then sends one request at a time; the server answers each request
// with exactly one frame: the request's reply type or Error.
//
// Versioning: the first 8 payload bytes of Hello ({magic, version}) and the Error frame's layout are frozen
// across protocol versions, so that a server can always tell a client of another version what it speaks.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tcemu/config.h"
#include "tcemu/error.h"

namespace tcemu::proto {

inline constexpr uint32_t kMagic = 0x50534354;  // "TCSP" as bytes on the wire
inline constexpr uint32_t kVersion = 1;

inline constexpr size_t kHeaderBytes = 8;
// Limits a receiver enforces before it allocates anything (a frame above them ends the connection).
inline constexpr uint32_t kMaxStringBytes = 4096;
inline constexpr uint32_t kMaxHelloBytes = 4 * kMaxStringBytes + 256;  // the first frame a server accepts
inline constexpr uint32_t kMaxDataBytes = 4u << 20;                    // device memory bytes in one frame
inline constexpr uint32_t kMaxPayloadBytes = kMaxDataBytes + 64;       // any frame after the handshake
// The shared-memory bounce buffer a server offers a unix-socket client (memfd, passed with SCM_RIGHTS).
inline constexpr uint64_t kShmBytes = 8u << 20;

// Frame types. Requests (client -> server) are below 0x80; replies (server -> client) at 0x80 and above.
enum class Msg : uint16_t {
  // request             payload                                          reply
  kHello = 1,          // Hello                                            HelloReply
  kMmioRead = 2,       // u32 offset                                       U32
  kMmioWrite = 3,      // u32 offset, u32 value                            Ok
  kMemRead = 4,        // u64 addr, u32 bytes (<= kMaxDataBytes)           Data
  kMemWrite = 5,       // u64 addr, bytes... (<= kMaxDataBytes)            Ok
  kMemReadShm = 6,     // u64 addr, u64 bytes (<= shm size): into shm      Ok
  kMemWriteShm = 7,    // u64 addr, u64 bytes (<= shm size): from shm      Ok
  kMemAlloc = 8,       // u64 bytes, u64 align                             U64 (address)
  kMemFree = 9,        // u64 addr                                         Ok
  kMemBytesFree = 10,  // (empty)                                          U64
  kInjectFaults = 11,  // string: the plan's spec text (fi::to_spec)       Ok
  kWaitIrq = 12,       // u64 timeout_cycles                               Irq
  kBye = 13,           // (empty): close my context now                    Ok, then the server closes
  // reply
  kHelloReply = 0x81,  // HelloReply
  kOk = 0x82,          // (empty)
  kU32 = 0x83,         // u32
  kU64 = 0x84,         // u64
  kIrq = 0x85,         // u8 asserted (0 or 1)
  kData = 0x86,        // bytes (the frame's whole payload)
  kError = 0xFF,       // u32 tcemu::ErrorCode, string message
};
// "MmioRead", ... or nullptr for a type that is not defined.
const char* msg_name(uint16_t type);

// Hello flags.
inline constexpr uint32_t kHelloWantShm = 1;  // offer me the shared-memory buffer if the socket allows it
inline constexpr uint32_t kHelloFlagsKnown = kHelloWantShm;

inline constexpr uint8_t kEngineDefault = 0xFF;  // Hello/HelloReply tensor_engine: the config's default

// What the client wants: the device (emu::DeviceOptions without the emulator's types) and how to talk.
struct Hello {
  uint32_t magic = kMagic, version = kVersion;
  uint32_t flags = 0;
  std::string config;                      // empty: the server's default (serve --config)
  uint8_t tensor_engine = kEngineDefault;  // TensorEngineKind, or kEngineDefault
  std::string wave_path;                   // absolute; empty: no waveform
  uint64_t wave_from = 0, wave_to = UINT64_MAX;
  uint64_t lockstep_inject_column = UINT64_MAX;
  std::string client;  // for the server's log ("tcemu gemm", "pid 1234")
  bool operator==(const Hello&) const = default;
};

struct HelloReply {
  uint32_t version = kVersion;
  uint32_t context = 0;       // the device context (register bank) this connection holds
  uint32_t device_pid = 0;    // the device process
  uint64_t shm_bytes = 0;     // size of the memfd passed with this frame (SCM_RIGHTS); 0: none, data inline
  std::string config;         // the device's config name
  uint8_t tensor_engine = 0;  // TensorEngineKind actually running
  bool operator==(const HelloReply&) const = default;
};

// ---- encoding -------------------------------------------------------------------------------------------

// Builds one frame: header + payload.
class Writer {
 public:
  explicit Writer(Msg type);
  Writer& u8(uint8_t v);
  Writer& u32(uint32_t v);
  Writer& u64(uint64_t v);
  Writer& str(const std::string& s);
  Writer& bytes(std::span<const uint8_t> b);
  // The frame, with the header's length filled in.
  std::vector<uint8_t> finish();

 private:
  std::vector<uint8_t> buf_;
};

// Reads a payload; every read checks the bytes left, so a short or malformed payload is an
// Error(kFormat) naming the message and the field, never a read past the end.
class Reader {
 public:
  Reader(std::span<const uint8_t> payload, const char* what) : p_(payload), what_(what) {}
  uint8_t u8(const char* field);
  uint32_t u32(const char* field);
  uint64_t u64(const char* field);
  std::string str(const char* field);
  std::span<const uint8_t> rest() { return p_.subspan(pos_); }
  // Error(kFormat) if bytes are left over.
  void done();

 private:
  std::span<const uint8_t> take(size_t n, const char* field);
  std::span<const uint8_t> p_;
  size_t pos_ = 0;
  const char* what_;
};

struct Header {
  uint32_t length = 0;
  uint16_t type = 0;
  uint16_t reserved = 0;
};
Header decode_header(std::span<const uint8_t, kHeaderBytes> b);

std::vector<uint8_t> encode(const Hello& h);
std::vector<uint8_t> encode(const HelloReply& r);
std::vector<uint8_t> encode_error(ErrorCode code, const std::string& message);

// Decode a payload (without its header). Error(kFormat) for a malformed payload; decode_hello throws
// Error(kDevice) naming both versions when the magic matches but the version does not, and Error(kFormat)
// when the magic does not match ("not a tcemu client").
Hello decode_hello(std::span<const uint8_t> payload);
HelloReply decode_hello_reply(std::span<const uint8_t> payload);
// The error an Error frame carries, as the tcemu::Error the server caught (same code, same text).
Error decode_error(std::span<const uint8_t> payload);

}  // namespace tcemu::proto
