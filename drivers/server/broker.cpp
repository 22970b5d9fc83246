// The broker of `tcemu serve`: listens, reads each client's hello, and hands the connection to the device
// process for what the client asked (forking one when there is none). It never builds a device, so it can
// fork device processes of any config, and a device process that crashes takes no other device with it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <list>

#include "net.h"
#include "server_internal.h"
#include "tcemu/error.h"
#include "tcemu/srv/server.h"

namespace tcemu::srv {

std::string DeviceSpec::key() const {
  return fmt::format("{}|{}|{}|{}|{}|{}", config, int(engine), wave_path, wave_from, wave_to, lockstep_inject_column);
}

std::string DeviceSpec::label() const {
  std::string s = config + "/" + tensor_engine_name(engine);
  if (!wave_path.empty())
    s += wave_to == UINT64_MAX ? fmt::format(" wave {} from {}", wave_path, wave_from)
                               : fmt::format(" wave {} [{}, {})", wave_path, wave_from, wave_to);
  if (lockstep_inject_column != UINT64_MAX) s += fmt::format(" lockstep-inject {}", lockstep_inject_column);
  return s;
}

std::vector<uint8_t> encode_handoff(uint32_t client_id, const std::string& peer, std::span<const uint8_t> hello) {
  // A Writer builds frames; the handoff is its payload without the header.
  std::vector<uint8_t> f = proto::Writer(proto::Msg::kHello).u32(client_id).str(peer).bytes(hello).finish();
  return std::vector<uint8_t>(f.begin() + proto::kHeaderBytes, f.end());
}

Handoff decode_handoff(std::span<const uint8_t> msg) {
  proto::Reader r(msg, "handoff");
  Handoff h;
  h.client_id = r.u32("client_id");
  h.peer = r.str("peer");
  h.hello = proto::decode_hello(r.rest());
  return h;
}

void log_line(const std::string& line) {
  const std::string s = "tcemu serve: " + line + "\n";
  (void)!::write(STDERR_FILENO, s.data(), s.size());
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kHelloTimeout = std::chrono::seconds(10);  // a connection that says nothing is dropped
constexpr auto kLinger = std::chrono::seconds(1);         // reading what a refused client still sends
constexpr size_t kMaxPending = 256;                       // handshakes in progress

int g_signal_pipe[2] = {-1, -1};
void on_signal(int sig) {
  const char c = char(sig);
  (void)!::write(g_signal_pipe[1], &c, 1);
}

struct Pending {
  net::UniqueFd fd;
  uint32_t id = 0;
  std::string peer;
  std::vector<uint8_t> buf;  // the hello frame so far
  Clock::time_point deadline;
  bool closing = false;  // refused: draining its input until it closes or the deadline passes
};

struct DeviceProc {
  pid_t pid = 0;
  net::UniqueFd control;
  DeviceSpec spec;
  bool taken = false;  // an exclusive device that has its client
};

std::string peer_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family == AF_UNIX) {
    ucred cred{};
    socklen_t cl = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) return fmt::format("unix, pid {}", cred.pid);
    return "unix";
  }
  len = sizeof ss;
  char host[64] = "?";
  uint16_t port = 0;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      port = ntohs(in6->sin6_port);
    }
  }
  return fmt::format("tcp {}:{}", host, port);
}

class Broker {
 public:
  explicit Broker(const ServeOptions& o) : opts_(o), addr_(net::parse_address(o.listen)) {
    find_config(opts_.config);  // a bad default config fails now, not at the first client
  }

  int run() {
    listen_ = net::listen_on(addr_);
    if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
      throw Error(ErrorCode::kIo, fmt::format("serve: pipe: {}", std::strerror(errno)));
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    log_line(fmt::format("listening on {} (pid {}; default device {}/{})", addr_.str(), ::getpid(), opts_.config,
                         opts_.tensor_engine ? tensor_engine_name(*opts_.tensor_engine) : "config default"));
    if (opts_.on_ready) opts_.on_ready(addr_.str());
    for (;;) {
      const bool accepting = Clock::now() >= accept_after_;
      std::vector<pollfd> fds = {{g_signal_pipe[0], POLLIN, 0}, {listen_.get(), short(accepting ? POLLIN : 0), 0}};
      std::vector<pid_t> polled;  // the device processes, in the order of their entries in fds
      for (auto& d : devices_) {
        fds.push_back({d.control.get(), 0, 0});  // POLLHUP: the process ended
        polled.push_back(d.pid);
      }
      for (auto& p : pending_) fds.push_back({p.fd.get(), POLLIN, 0});
      const int timeout = pending_.empty() && accepting ? -1 : 100;
      if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR)
        throw Error(ErrorCode::kIo, fmt::format("serve: poll: {}", std::strerror(errno)));
      if (fds[0].revents) break;  // SIGTERM or SIGINT
      // Ended device processes first, so that a hello below does not go to one of them.
      for (size_t k = 0; k < polled.size(); ++k)
        if (fds[2 + k].revents & (POLLHUP | POLLERR))
          for (auto it = devices_.begin(); it != devices_.end(); ++it)
            if (it->pid == polled[k]) {
              reap(*it);
              devices_.erase(it);
              break;
            }
      size_t i = 2 + polled.size();
      for (auto it = pending_.begin(); it != pending_.end(); ++i) {
        Pending& p = *it;
        if (fds[i].revents) read_pending(p);
        if (p.fd && Clock::now() > p.deadline) {
          if (!p.closing)
            refuse(p, Error(ErrorCode::kTimeout, "no hello within 10 s"));
          else
            p.fd.reset();
        }
        it = p.fd ? std::next(it) : pending_.erase(it);
      }
      if (fds[1].revents) accept_clients();
    }
    stop();
    return 0;
  }

 private:
  void accept_clients() {
    for (;;) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
        // E.g. out of descriptors: the connection stays queued, and the listening socket readable, so
        // look again only after a pause instead of spinning on it.
        log_line(fmt::format("accept: {}; pausing for 100 ms", std::strerror(errno)));
        accept_after_ = Clock::now() + std::chrono::milliseconds(100);
        return;
      }
      if (pending_.size() >= kMaxPending) {
        log_line(fmt::format("refused a connection: {} handshakes already in progress", kMaxPending));
        ::close(fd);
        continue;
      }
      if (addr_.kind == net::Address::Kind::kTcp) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      Pending p;
      p.fd.reset(fd);
      p.id = ++next_client_;
      p.peer = peer_of(fd);
      p.deadline = Clock::now() + kHelloTimeout;
      pending_.push_back(std::move(p));
    }
  }

  // Reads what has arrived of the hello (never more than the frame), and acts on it when complete.
  void read_pending(Pending& p) {
    uint8_t scratch[4096];
    if (p.closing) {  // refused: discard until the client closes
      ssize_t n;
      while ((n = ::recv(p.fd.get(), scratch, sizeof scratch, 0)) > 0) {
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) p.fd.reset();
      return;
    }
    for (;;) {
      size_t want = proto::kHeaderBytes;
      if (p.buf.size() >= proto::kHeaderBytes) {
        want += proto::decode_header(std::span<const uint8_t, proto::kHeaderBytes>(p.buf.data(), proto::kHeaderBytes))
                    .length;
        if (p.buf.size() == want) return on_hello(p);
      }
      const size_t n0 = p.buf.size();
      p.buf.resize(want);
      const ssize_t n = ::recv(p.fd.get(), p.buf.data() + n0, want - n0, 0);
      p.buf.resize(n0 + size_t(std::max<ssize_t>(n, 0)));
      if (n == 0) {
        log_line(fmt::format("client {} ({}) closed the connection {}", p.id, p.peer,
                             n0 ? fmt::format("after {} bytes of its hello", n0) : "before its hello"));
        p.fd.reset();
        return;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        log_line(fmt::format("client {} ({}): {}", p.id, p.peer, std::strerror(errno)));
        p.fd.reset();
        return;
      }
      if (p.buf.size() == proto::kHeaderBytes && !check_header(p)) return;
    }
  }

  // True if the buffered header may start a hello; otherwise refuses the client.
  bool check_header(Pending& p) {
    const proto::Header h =
        proto::decode_header(std::span<const uint8_t, proto::kHeaderBytes>(p.buf.data(), proto::kHeaderBytes));
    if (h.type == uint16_t(proto::Msg::kHello) && h.reserved == 0 && h.length >= 8 && h.length <= proto::kMaxHelloBytes)
      return true;
    refuse(p, Error(ErrorCode::kFormat,
                    fmt::format("not a tcemu client: the first frame must be a Hello (type 1, 8..{} bytes), got type "
                                "0x{:x} of {} bytes",
                                proto::kMaxHelloBytes, h.type, h.length)));
    return false;
  }

  void on_hello(Pending& p) {
    const std::span<const uint8_t> payload(p.buf.data() + proto::kHeaderBytes, p.buf.size() - proto::kHeaderBytes);
    DeviceSpec spec;
    try {
      const proto::Hello h = proto::decode_hello(payload);
      spec.config = find_config(h.config.empty() ? opts_.config : h.config).name;
      spec.engine = h.tensor_engine != proto::kEngineDefault ? TensorEngineKind(h.tensor_engine)
                    : opts_.tensor_engine                    ? *opts_.tensor_engine
                                                             : find_config(spec.config).tensor_engine;
      spec.wave_path = h.wave_path, spec.wave_from = h.wave_from, spec.wave_to = h.wave_to;
      spec.lockstep_inject_column = h.lockstep_inject_column;
    } catch (const Error& e) {
      return refuse(p, e);
    }
    const std::vector<uint8_t> msg = encode_handoff(p.id, p.peer, payload);
    for (int attempt = 0; attempt < 2; ++attempt) {
      DeviceProc* d = device_for(spec);
      if (!d) return refuse(p, Error(ErrorCode::kDevice, "cannot start a device process (fork failed)"));
      if (net::send_with_fd(d->control.get(), msg, p.fd.get(), MSG_DONTWAIT)) {
        if (spec.exclusive()) d->taken = true;
        p.fd.reset();  // the device process has its own copy now
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return refuse(p, Error(ErrorCode::kDevice,
                               fmt::format("device {} is busy: too many clients arriving at once", spec.label())));
      // The process ended since the last poll: replace it.
      for (auto it = devices_.begin(); it != devices_.end(); ++it)
        if (&*it == d) {
          reap(*it);
          devices_.erase(it);
          break;
        }
    }
    refuse(p, Error(ErrorCode::kDevice, fmt::format("device process for {} ended at once", spec.label())));
  }

  // Tells the client why (one Error frame) and drains what it still sends, so that closing does not reset
  // the connection before it has read the reason.
  void refuse(Pending& p, const Error& e) {
    log_line(fmt::format("client {} ({}) refused: {}", p.id, p.peer, e.what()));
    const std::vector<uint8_t> f = proto::encode_error(e.code(), e.what());
    (void)!::send(p.fd.get(), f.data(), f.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(p.fd.get(), SHUT_WR);
    p.closing = true;
    p.deadline = Clock::now() + kLinger;
  }

  DeviceProc* device_for(const DeviceSpec& spec) {
    if (!spec.exclusive())
      for (auto& d : devices_)
        if (d.spec.key() == spec.key()) return &d;
    return spawn(spec);
  }

  DeviceProc* spawn(const DeviceSpec& spec) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
      log_line(fmt::format("socketpair: {}", std::strerror(errno)));
      return nullptr;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t broker = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      log_line(fmt::format("fork: {}", std::strerror(errno)));
      ::close(sv[0]), ::close(sv[1]);
      return nullptr;
    }
    if (pid == 0) {
      // The device process keeps stdio and its end of the pair, nothing else of the broker.
      if (sv[1] != 3) ::dup2(sv[1], 3);
      ::close_range(4, ~0u, 0);
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGINT, SIG_DFL);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the server stops as a whole
      if (::getppid() != broker) ::_exit(0);
      int status = 1;
      try {
        status = run_device_process(3, spec);
      } catch (const std::exception& e) {
        log_line(fmt::format("device {} (process {}): {}", spec.label(), ::getpid(), e.what()));
      }
      ::_exit(status);  // never return into the broker's loop, never run its destructors
    }
    ::close(sv[1]);
    DeviceProc d;
    d.pid = pid;
    d.control.reset(sv[0]);
    d.spec = spec;
    log_line(fmt::format("device {}: process {} started", spec.label(), pid));
    devices_.push_back(std::move(d));
    return &devices_.back();
  }

  // Waits for a device process that has ended (or was told to, `stopping`) and says how it ended.
  void reap(DeviceProc& d, bool stopping = false) {
    int st = 0;
    while (::waitpid(d.pid, &st, 0) < 0 && errno == EINTR) {
    }
    std::string how;
    if (stopping && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)
      how = "stopped";
    else if (WIFSIGNALED(st))
      how = fmt::format("killed by signal {} ({})", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
      how = fmt::format("exited with status {}", WEXITSTATUS(st));
    log_line(fmt::format("device {}: process {} {}", d.spec.label(), d.pid, how));
  }

  void stop() {
    listen_.reset();
    if (addr_.kind == net::Address::Kind::kUnix) ::unlink(addr_.path.c_str());
    for (auto& d : devices_) ::kill(d.pid, SIGTERM);
    for (auto& d : devices_) reap(d, true);
    devices_.clear();
    log_line(fmt::format("stopped listening on {}", addr_.str()));
  }

  ServeOptions opts_;
  net::Address addr_;
  net::UniqueFd listen_;
  std::list<Pending> pending_;
  std::list<DeviceProc> devices_;  // stable addresses: device_for hands out pointers
  uint32_t next_client_ = 0;
  Clock::time_point accept_after_;  // accept() failed for want of resources: not before this
};

}  // namespace

int serve(const ServeOptions& options) { return Broker(options).run(); }

}  // namespace tcemu::srv
