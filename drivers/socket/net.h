// Socket plumbing shared by SocketTransport and the server: addresses ("unix:PATH", "tcp:HOST:PORT"),
// connecting and listening, whole-buffer I/O and passing file descriptors (SCM_RIGHTS). POSIX only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tcemu::net {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct Address {
  enum class Kind { kUnix, kTcp } kind = Kind::kUnix;
  std::string path;         // kUnix
  std::string host;         // kTcp
  uint16_t port = 0;        // kTcp (0 when listening: any free port)
  std::string str() const;  // back to "unix:PATH" / "tcp:HOST:PORT"
};

// Parses "unix:PATH" or "tcp:HOST:PORT" (HOST a name, IPv4 address or [IPv6]). Error(kInvalidArgument)
// naming `spec` and the accepted forms.
Address parse_address(const std::string& spec);

// A connected, blocking stream socket (TCP_NODELAY for tcp). Error(kDevice) naming the address and the
// system's reason.
UniqueFd connect_to(const Address& a);

// A listening socket, non-blocking and close-on-exec. For unix, the socket is bound under a temporary name
// and renamed to PATH once it listens, so that PATH exists only when it accepts connections; an existing
// PATH is replaced only if nothing answers there (a stale socket), otherwise Error(kIo). For tcp with port
// 0, `a.port` is set to the port chosen. Error(kIo) naming the address and the reason.
UniqueFd listen_on(Address& a);

// Writes all of `b` (blocking; EINTR retried; no SIGPIPE). Returns false if the peer is gone.
bool send_all(int fd, std::span<const uint8_t> b);
// Reads exactly b.size() bytes (blocking). Returns false on end of stream or error before that.
bool recv_all(int fd, std::span<uint8_t> b);

// sendmsg of `data` with `pass_fd` attached (SCM_RIGHTS) when it is >= 0; blocking. False on failure.
bool send_with_fd(int sock, std::span<const uint8_t> data, int pass_fd, int flags = 0);
// recvmsg of up to b.size() bytes; a descriptor passed with them is stored in `fd` (any further ones are
// closed). Returns the bytes read (0 at end of stream) or -1 with errno set.
long recv_with_fd(int sock, std::span<uint8_t> b, UniqueFd& fd, int flags = 0);

void set_nonblocking(int fd, bool on);

}  // namespace tcemu::net
