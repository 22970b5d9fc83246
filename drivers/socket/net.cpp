#include "net.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tcemu/error.h"

namespace tcemu::net {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string Address::str() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  return host.find(':') != std::string::npos ? fmt::format("tcp:[{}]:{}", host, port)
                                             : fmt::format("tcp:{}:{}", host, port);
}

Address parse_address(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("device address '{}': {} (expected unix:PATH or tcp:HOST:PORT)", spec, why));
  };
  Address a;
  if (spec.rfind("unix:", 0) == 0) {
    a.path = spec.substr(5);
    if (a.path.empty()) throw bad("the socket path is empty");
    if (a.path.size() >= sizeof(sockaddr_un::sun_path))
      throw bad(fmt::format("the socket path is {} bytes long (at most {})", a.path.size(),
                            sizeof(sockaddr_un::sun_path) - 1));
    return a;
  }
  if (spec.rfind("tcp:", 0) == 0) {
    a.kind = Address::Kind::kTcp;
    std::string rest = spec.substr(4);
    size_t colon;
    if (!rest.empty() && rest[0] == '[') {  // [IPv6]:PORT
      size_t close = rest.find(']');
      if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
        throw bad("an IPv6 host is written [ADDR]:PORT");
      a.host = rest.substr(1, close - 1);
      colon = close + 1;
    } else {
      colon = rest.rfind(':');
      if (colon == std::string::npos) throw bad("no port");
      a.host = rest.substr(0, colon);
    }
    if (a.host.empty()) throw bad("no host");
    const std::string port = rest.substr(colon + 1);
    char* end = nullptr;
    errno = 0;
    const unsigned long p = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end || errno || p > 65535) throw bad("the port '" + port + "' is not a number 0..65535");
    a.port = uint16_t(p);
    return a;
  }
  throw bad("unknown scheme");
}

namespace {

std::string errno_text() { return std::strerror(errno); }

// Resolves a tcp address (numeric or by name) to its first stream address.
addrinfo* resolve(const Address& a, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(a.port);
  if (int rc = ::getaddrinfo(a.host.c_str(), port.c_str(), &hints, &res); rc != 0 || !res)
    throw Error(passive ? ErrorCode::kIo : ErrorCode::kDevice,
                fmt::format("{}: cannot resolve host '{}': {}", a.str(), a.host, gai_strerror(rc)));
  return res;
}

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un u{};
  u.sun_family = AF_UNIX;
  std::memcpy(u.sun_path, path.c_str(), path.size() + 1);  // parse_address bounded the length
  return u;
}

}  // namespace

UniqueFd connect_to(const Address& a) {
  if (a.kind == Address::Kind::kUnix) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw Error(ErrorCode::kDevice, fmt::format("{}: socket: {}", a.str(), errno_text()));
    sockaddr_un u = unix_addr(a.path);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&u), sizeof u) != 0)
      throw Error(ErrorCode::kDevice, fmt::format("cannot connect to {}: {} (is 'tcemu serve --listen {}' running?)",
                                                  a.str(), errno_text(), a.str()));
    return fd;
  }
  addrinfo* res = resolve(a, false);
  std::string why;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) continue;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      ::freeaddrinfo(res);
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // one small request at a time
      return fd;
    }
    why = errno_text();
  }
  ::freeaddrinfo(res);
  throw Error(ErrorCode::kDevice,
              fmt::format("cannot connect to {}: {} (is 'tcemu serve --listen {}' running?)", a.str(), why, a.str()));
}

UniqueFd listen_on(Address& a) {
  if (a.kind == Address::Kind::kUnix) {
    // Something already at PATH: a live server answers a connect, a stale socket file does not.
    struct stat st {};
    if (::lstat(a.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        throw Error(ErrorCode::kIo, fmt::format("{}: the path exists and is not a socket", a.str()));
      UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_un u = unix_addr(a.path);
      if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&u), sizeof u) == 0)
        throw Error(ErrorCode::kIo, fmt::format("{}: a server is already listening there", a.str()));
    }
    const std::string tmp = a.path + fmt::format(".{}.tmp", ::getpid());
    if (tmp.size() >= sizeof(sockaddr_un::sun_path))
      throw Error(ErrorCode::kIo,
                  fmt::format("{}: the socket path is too long to bind under a temporary name", a.str()));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw Error(ErrorCode::kIo, fmt::format("{}: socket: {}", a.str(), errno_text()));
    ::unlink(tmp.c_str());
    sockaddr_un u = unix_addr(tmp);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&u), sizeof u) != 0)
      throw Error(ErrorCode::kIo, fmt::format("{}: cannot bind {}: {}", a.str(), tmp, errno_text()));
    if (::listen(fd.get(), 64) != 0 || ::rename(tmp.c_str(), a.path.c_str()) != 0) {
      const std::string why = errno_text();
      ::unlink(tmp.c_str());
      throw Error(ErrorCode::kIo, fmt::format("{}: cannot listen: {}", a.str(), why));
    }
    return fd;
  }
  addrinfo* res = resolve(a, true);
  std::string why = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd) continue;
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 64) != 0) {
      why = errno_text();
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
      a.port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  throw Error(ErrorCode::kIo, fmt::format("{}: cannot listen: {}", a.str(), why));
}

bool send_all(int fd, std::span<const uint8_t> b) {
  while (!b.empty()) {
    ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    b = b.subspan(size_t(n));
  }
  return true;
}

bool recv_all(int fd, std::span<uint8_t> b) {
  while (!b.empty()) {
    ssize_t n = ::recv(fd, b.data(), b.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    b = b.subspan(size_t(n));
  }
  return true;
}

bool send_with_fd(int sock, std::span<const uint8_t> data, int pass_fd, int flags) {
  iovec iov{const_cast<uint8_t*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || size_t(n) != data.size()) {
      // The descriptor went with the first byte; the rest of a short write is plain data.
      if (n <= 0) return false;
      return send_all(sock, data.subspan(size_t(n)));
    }
    return true;
  }
}

long recv_with_fd(int sock, std::span<uint8_t> b, UniqueFd& fd, int flags) {
  iovec iov{b.data(), b.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(4 * sizeof(int))];
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof ctrl;
  ssize_t n;
  do n = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      if (!fd)
        fd.reset(f);
      else
        ::close(f);  // only one descriptor is ever expected
    }
  }
  return long(n);
}

void set_nonblocking(int fd, bool on) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

}  // namespace tcemu::net
