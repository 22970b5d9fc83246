#include "socket_transport.h"

#include <errno.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "tcemu/error.h"

namespace tcemu::drv {

using proto::Msg;

namespace {

// The header's length counts payload bytes sent after the frame's own fields (a MemWrite's data).
void add_length(std::vector<uint8_t>& frame, size_t extra) {
  const uint32_t n = uint32_t(frame.size() - proto::kHeaderBytes + extra);
  for (int i = 0; i < 4; ++i) frame[size_t(i)] = uint8_t(n >> (8 * i));
}

std::string client_name() { return fmt::format("{} (pid {})", program_invocation_short_name, ::getpid()); }

}  // namespace

SocketTransport::SocketTransport(const std::string& address, const DeviceRequest& request) : address_(address) {
  const net::Address a = net::parse_address(address);
  fd_ = net::connect_to(a);

  proto::Hello h;
  h.flags = request.shared_memory && a.kind == net::Address::Kind::kUnix ? proto::kHelloWantShm : 0;
  h.config = request.config;
  if (request.tensor_engine) h.tensor_engine = uint8_t(*request.tensor_engine);
  // The server writes the file from its own working directory.
  if (!request.wave_path.empty()) h.wave_path = std::filesystem::absolute(request.wave_path).string();
  h.wave_from = request.wave_from, h.wave_to = request.wave_to;
  h.lockstep_inject_column = request.lockstep_inject_column;
  h.client = client_name();
  if (!net::send_all(fd_.get(), proto::encode(h))) lost(fmt::format("sending the hello: {}", std::strerror(errno)));

  // The shared-memory descriptor, if any, travels with the reply's first byte.
  uint8_t hdr[proto::kHeaderBytes];
  net::UniqueFd shm_fd;
  const long got = net::recv_with_fd(fd_.get(), hdr, shm_fd);
  if (got <= 0) lost("the server closed the connection during the handshake");
  if (!net::recv_all(fd_.get(), std::span(hdr).subspan(size_t(got))))
    lost("the server closed the connection during the handshake");
  const proto::Header head = proto::decode_header(std::span<const uint8_t, proto::kHeaderBytes>(hdr));
  if (head.length > proto::kMaxHelloBytes || head.reserved != 0 ||
      (head.type != uint16_t(Msg::kHelloReply) && head.type != uint16_t(Msg::kError)))
    throw Error(ErrorCode::kDevice, fmt::format("{}: not a tcemu server (first reply: type 0x{:x}, {} bytes)", address_,
                                                head.type, head.length));
  std::vector<uint8_t> payload(head.length);
  if (!net::recv_all(fd_.get(), payload)) lost("the server closed the connection during the handshake");
  if (head.type == uint16_t(Msg::kError)) throw proto::decode_error(payload);
  hello_ = proto::decode_hello_reply(payload);
  if (hello_.shm_bytes) {
    if (!shm_fd)
      throw Error(ErrorCode::kDevice,
                  fmt::format("{}: the server offered shared memory but passed no descriptor", address_));
    void* p = ::mmap(nullptr, hello_.shm_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd.get(), 0);
    if (p == MAP_FAILED)
      throw Error(ErrorCode::kDevice, fmt::format("{}: cannot map the shared buffer of {} bytes: {}", address_,
                                                  hello_.shm_bytes, std::strerror(errno)));
    shm_ = static_cast<uint8_t*>(p);
    shm_bytes_ = hello_.shm_bytes;
  }
}

SocketTransport::~SocketTransport() {
  if (fd_ && broken_.empty()) {
    try {
      call(proto::Writer(Msg::kBye).finish(), Msg::kOk);
    } catch (const Error&) {  // the server is gone: it has nothing left to close
    }
  }
  if (shm_) ::munmap(shm_, shm_bytes_);
}

void SocketTransport::lost(const std::string& why) {
  broken_ = fmt::format("{}: connection to the device server lost: {}", address_, why);
  throw Error(ErrorCode::kDevice, broken_);
}

void SocketTransport::check_open() const {
  if (!broken_.empty()) throw Error(ErrorCode::kDevice, broken_);
}

std::span<const uint8_t> SocketTransport::call(std::vector<uint8_t> frame, Msg reply, std::span<const uint8_t> data,
                                               std::span<uint8_t> into) {
  check_open();
  if (!data.empty()) add_length(frame, data.size());
  iovec iov[2] = {{frame.data(), frame.size()}, {const_cast<uint8_t*>(data.data()), data.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = data.empty() ? 1 : 2;
  size_t left = frame.size() + data.size();
  while (left > 0) {  // sendmsg may write part of the frame; advance through the two pieces
    ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) lost(fmt::format("sending {}: {}", proto::msg_name(frame[4] | frame[5] << 8), std::strerror(errno)));
    left -= size_t(n);
    while (n > 0 && msg.msg_iovlen > 0) {
      const size_t step = std::min(size_t(n), msg.msg_iov->iov_len);
      msg.msg_iov->iov_base = static_cast<uint8_t*>(msg.msg_iov->iov_base) + step;
      msg.msg_iov->iov_len -= step;
      n -= ssize_t(step);
      if (msg.msg_iov->iov_len == 0) ++msg.msg_iov, --msg.msg_iovlen;
    }
  }
  uint8_t hdr[proto::kHeaderBytes];
  if (!net::recv_all(fd_.get(), hdr)) lost("the server closed the connection");
  const proto::Header h = proto::decode_header(std::span<const uint8_t, proto::kHeaderBytes>(hdr));
  if (h.length > proto::kMaxPayloadBytes || h.reserved != 0)
    lost(fmt::format("malformed reply header (type 0x{:x}, {} bytes)", h.type, h.length));
  if (h.type == uint16_t(reply) && !into.empty()) {
    if (h.length != into.size()) lost(fmt::format("a Data reply of {} bytes for a read of {}", h.length, into.size()));
    if (!net::recv_all(fd_.get(), into)) lost("the server closed the connection");
    return into;
  }
  payload_.resize(h.length);
  if (!net::recv_all(fd_.get(), payload_)) lost("the server closed the connection");
  if (h.type == uint16_t(Msg::kError)) throw proto::decode_error(payload_);
  if (h.type != uint16_t(reply)) {
    const char* got = proto::msg_name(h.type);
    lost(fmt::format("expected a {} reply, got {}", proto::msg_name(uint16_t(reply)),
                     got ? got : fmt::format("type 0x{:x}", h.type)));
  }
  return payload_;
}

namespace {
// Reads the one value a reply carries; a payload of another size is a protocol error.
template <class T>
T value(std::span<const uint8_t> p, const char* what) {
  proto::Reader r(p, what);
  T v;
  if constexpr (sizeof(T) == 1)
    v = r.u8("value");
  else if constexpr (sizeof(T) == 4)
    v = r.u32("value");
  else
    v = r.u64("value");
  r.done();
  return v;
}
}  // namespace

uint32_t SocketTransport::mmio_read(uint32_t offset) {
  return value<uint32_t>(call(proto::Writer(Msg::kMmioRead).u32(offset).finish(), Msg::kU32), "U32");
}

void SocketTransport::mmio_write(uint32_t offset, uint32_t v) {
  call(proto::Writer(Msg::kMmioWrite).u32(offset).u32(v).finish(), Msg::kOk);
}

void SocketTransport::mem_read(uint64_t addr, std::span<uint8_t> dst) {
  const size_t chunk = shm_ ? shm_bytes_ : proto::kMaxDataBytes;
  for (size_t off = 0; off < dst.size() || (off == 0 && dst.empty()); off += chunk) {
    const size_t n = std::min(chunk, dst.size() - off);
    if (shm_) {
      call(proto::Writer(Msg::kMemReadShm).u64(addr + off).u64(n).finish(), Msg::kOk);
      if (n) std::memcpy(dst.data() + off, shm_, n);
    } else if (n == 0) {
      call(proto::Writer(Msg::kMemRead).u64(addr).u32(0).finish(), Msg::kData);
    } else {
      call(proto::Writer(Msg::kMemRead).u64(addr + off).u32(uint32_t(n)).finish(), Msg::kData, {}, dst.subspan(off, n));
    }
    if (dst.empty()) break;
  }
}

void SocketTransport::mem_write(uint64_t addr, std::span<const uint8_t> src) {
  const size_t chunk = shm_ ? shm_bytes_ : proto::kMaxDataBytes;
  for (size_t off = 0; off < src.size() || (off == 0 && src.empty()); off += chunk) {
    const size_t n = std::min(chunk, src.size() - off);
    if (shm_) {
      if (n) std::memcpy(shm_, src.data() + off, n);
      call(proto::Writer(Msg::kMemWriteShm).u64(addr + off).u64(n).finish(), Msg::kOk);
    } else {
      call(proto::Writer(Msg::kMemWrite).u64(addr + off).finish(), Msg::kOk, src.subspan(off, n));
    }
    if (src.empty()) break;
  }
}

uint64_t SocketTransport::mem_alloc(uint64_t bytes, uint64_t align) {
  return value<uint64_t>(call(proto::Writer(Msg::kMemAlloc).u64(bytes).u64(align).finish(), Msg::kU64), "U64");
}

void SocketTransport::mem_free(uint64_t addr) { call(proto::Writer(Msg::kMemFree).u64(addr).finish(), Msg::kOk); }

uint64_t SocketTransport::mem_bytes_free() {
  return value<uint64_t>(call(proto::Writer(Msg::kMemBytesFree).finish(), Msg::kU64), "U64");
}

void SocketTransport::inject_faults(const fi::Plan& plan) {
  call(proto::Writer(Msg::kInjectFaults).str(fi::to_spec(plan)).finish(), Msg::kOk);
}

bool SocketTransport::wait_irq(uint64_t timeout_cycles) {
  const uint8_t v = value<uint8_t>(call(proto::Writer(Msg::kWaitIrq).u64(timeout_cycles).finish(), Msg::kIrq), "Irq");
  if (v > 1) lost(fmt::format("an Irq reply of {} (expected 0 or 1)", v));
  return v == 1;
}

std::string SocketTransport::describe() const {
  return fmt::format("tcemu serve at {} (device {}, {} tensor engine, device process {}, context {}, {})", address_,
                     hello_.config, tensor_engine_name(TensorEngineKind(hello_.tensor_engine)), hello_.device_pid,
                     hello_.context, shm_ ? "shared memory" : "inline data");
}

}  // namespace tcemu::drv
