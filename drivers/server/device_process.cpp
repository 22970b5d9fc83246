// A device process of `tcemu serve`: one emulated device, shared by the clients the broker hands over, each
// with its own context. One thread, one poll() loop: requests are answered between slices of simulated
// time, and time advances only while at least one client waits for its interrupt (docs/server.md, "Time").
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <memory>

#include "net.h"
#include "server_internal.h"
#include "tcemu/emu/device.h"
#include "tcemu/error.h"
#include "tcemu/faults.h"
#include "tcemu/regs.h"

namespace tcemu::srv {

namespace {

using Clock = std::chrono::steady_clock;
using proto::Msg;

// Simulated time runs in slices between which other clients are answered. A slice is at most kMaxSlice
// cycles, and is cut so that one takes about kSliceWall of host time on this device (an RTL device at
// full size simulates a few thousand cycles per second, the fast engine millions).
constexpr uint64_t kMinSlice = 1u << 10, kMaxSlice = 1u << 16;
constexpr double kSliceWall = 0.01;
constexpr auto kLinger = std::chrono::seconds(1);
constexpr size_t kReadAhead = 64;  // bytes read past a header, so that a small request takes one recv

struct Client {
  net::UniqueFd fd;
  uint32_t id = 0;
  std::string name;             // "client 7 (tcemu (pid 123), unix, pid 123)"
  int ctx = -1;                 // -1: closed
  std::vector<uint8_t> in;      // received bytes: the current frame, maybe the start of the next
  bool header_checked = false;  // the header at the start of `in` has passed check_header
  std::vector<uint8_t> out;     // reply bytes not yet sent
  size_t out_done = 0;
  bool waiting = false;   // inside WaitIrq
  uint64_t deadline = 0;  // device cycle at which its wait times out
  uint8_t* shm = nullptr;
  size_t shm_bytes = 0;
  bool closing = false;  // no more requests: send what is left, then drain and close
  Clock::time_point close_by;
  bool gone = false;
};

uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

class DeviceServer {
 public:
  DeviceServer(int control, DeviceSpec spec) : control_(control), spec_(std::move(spec)) {}

  int run() {
    // The first client triggers the device; its construction error is that client's answer.
    if (!receive_client(/*blocking=*/true)) return 0;
    if (!device_) return 3;
    for (;;) {
      std::erase_if(clients_, [](const Client& c) { return c.gone; });
      if (clients_.empty() && (!control_open_ || (spec_.exclusive() && served_)))
        return 0;  // an exclusive device ends with its client; a shared one with the server
      bool waiting = false, lingering = false;
      std::vector<pollfd> fds;
      if (control_open_) fds.push_back({control_, POLLIN, 0});
      for (auto& c : clients_) {
        short ev = 0;
        if (c.out_done < c.out.size()) ev |= POLLOUT;
        if (c.closing)
          ev |= POLLIN, lingering = true;
        else if (c.waiting)
          ev |= POLLRDHUP, waiting = true;  // a client that dies while it waits
        else if (c.out_done == c.out.size())
          ev |= POLLIN;
        fds.push_back({c.fd.get(), ev, 0});
      }
      if (::poll(fds.data(), fds.size(), waiting ? 0 : lingering ? 100 : -1) < 0 && errno != EINTR)
        throw Error(ErrorCode::kIo, fmt::format("poll: {}", std::strerror(errno)));
      size_t i = control_open_ ? 1 : 0;
      const size_t polled = fds.size();
      for (auto& c : clients_) {
        if (i == polled) break;  // clients added while handling these were not polled
        const short rev = fds[i++].revents;
        if (c.gone || !rev) {
          if (c.closing && Clock::now() > c.close_by) close_fd(c);
          continue;
        }
        if (rev & POLLOUT) flush(c);
        if (c.gone) continue;
        if (c.closing) {
          drain(c);
        } else if (c.waiting) {
          if (rev & (POLLRDHUP | POLLHUP | POLLERR)) drop(c, "disconnected while waiting for its interrupt");
        } else if (rev & (POLLIN | POLLHUP | POLLERR)) {
          on_readable(c);
        }
      }
      if (control_open_ && fds[0].revents) receive_client(false);
      if (waiting) run_slice();
    }
  }

 private:
  // Takes one handoff from the broker. Returns false when the broker has closed its end.
  bool receive_client(bool blocking) {
    std::vector<uint8_t> msg(kMaxHandoffBytes);
    net::UniqueFd fd;
    const long n = net::recv_with_fd(control_, msg, fd, blocking ? 0 : MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {
      control_open_ = false;
      return false;
    }
    if (!fd) return true;  // nothing to serve (cannot happen with our broker)
    msg.resize(size_t(n));
    Handoff h;
    try {
      h = decode_handoff(msg);
    } catch (const Error& e) {  // the broker checked the hello: a bug, not a client's fault
      log(fmt::format("bad handoff from the broker: {}", e.what()));
      return true;
    }
    const std::string name = fmt::format("client {} ({}, {})", h.client_id, h.hello.client, h.peer);
    if (!device_) {
      if (!build_device(fd, name)) {
        // Everyone already queued for this device gets the same answer before the process ends.
        refuse_queued();
        return true;
      }
    }
    add_client(std::move(fd), h, name);
    return true;
  }

  bool build_device(net::UniqueFd& fd, const std::string& name) {
    emu::DeviceOptions o;
    o.tensor_engine = spec_.engine;
    o.wave_path = spec_.wave_path;
    o.wave_from = spec_.wave_from, o.wave_to = spec_.wave_to;
    o.lockstep_inject_column = spec_.lockstep_inject_column;
    o.isolate_contexts = true;
    try {
      device_ = std::make_unique<emu::Device>(find_config(spec_.config), o);
      // Context 0 is opened for a single in-process client; here every client opens its own.
      device_->close_context(0);
      return true;
    } catch (const Error& e) {
      build_error_ = std::make_unique<Error>(e);
    } catch (const std::exception& e) {
      build_error_ = std::make_unique<Error>(ErrorCode::kDevice, e.what());
    }
    log(fmt::format("cannot build the device for {}: {}", name, build_error_->what()));
    send_now(fd.get(), proto::encode_error(build_error_->code(), build_error_->what()));
    return false;
  }

  void refuse_queued() {
    for (;;) {
      std::vector<uint8_t> msg(kMaxHandoffBytes);
      net::UniqueFd fd;
      if (net::recv_with_fd(control_, msg, fd, MSG_DONTWAIT) <= 0) return;
      if (fd) send_now(fd.get(), proto::encode_error(build_error_->code(), build_error_->what()));
    }
  }

  // A small frame on a fresh connection: the socket buffer takes it whole.
  static void send_now(int fd, const std::vector<uint8_t>& frame) {
    (void)!::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }

  void add_client(net::UniqueFd fd, const Handoff& h, const std::string& name) {
    Client c;
    c.id = h.client_id;
    c.name = name;
    try {
      c.ctx = device_->open_context();
    } catch (const Error& e) {
      log(fmt::format("{} refused: {}", name, e.what()));
      send_now(fd.get(), proto::encode_error(e.code(), fmt::format("device {}: {}", spec_.label(), e.what())));
      return;
    }
    served_ = true;
    net::UniqueFd shm_fd;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if ((h.hello.flags & proto::kHelloWantShm) &&
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family == AF_UNIX)
      shm_fd = make_shm(c);
    proto::HelloReply r;
    r.context = uint32_t(c.ctx);
    r.device_pid = uint32_t(::getpid());
    r.shm_bytes = c.shm_bytes;
    r.config = spec_.config;
    r.tensor_engine = uint8_t(spec_.engine);
    c.fd = std::move(fd);
    const std::vector<uint8_t> frame = proto::encode(r);
    clients_.push_back(std::move(c));
    Client& added = clients_.back();
    if (!net::send_with_fd(added.fd.get(), frame, shm_fd ? shm_fd.get() : -1, MSG_DONTWAIT)) {
      drop(added, fmt::format("lost before the handshake completed ({})", std::strerror(errno)));
      return;
    }
    log(fmt::format("{} connected: context {}, {}", name, added.ctx,
                    added.shm ? fmt::format("{} MiB shared memory", added.shm_bytes >> 20) : "inline data"));
  }

  // The bounce buffer for bulk memory. Sealed at its size: a client that could shrink it would make this
  // process's next access to the mapping fault (SIGBUS).
  net::UniqueFd make_shm(Client& c) {
    net::UniqueFd fd(::memfd_create("tcemu-serve-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd || ::ftruncate(fd.get(), off_t(proto::kShmBytes)) != 0 ||
        ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      log(fmt::format("{}: no shared memory ({}); data goes inline", c.name, std::strerror(errno)));
      return {};
    }
    void* p = ::mmap(nullptr, proto::kShmBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) {
      log(fmt::format("{}: cannot map shared memory ({}); data goes inline", c.name, std::strerror(errno)));
      return {};
    }
    c.shm = static_cast<uint8_t*>(p);
    c.shm_bytes = proto::kShmBytes;
    return fd;
  }

  // Reads and handles requests until the socket has nothing more, a reply is pending or the client waits.
  void on_readable(Client& c) {
    for (;;) {
      // A complete frame in the buffer? Every header is checked before its length is trusted.
      if (c.in.size() >= proto::kHeaderBytes) {
        if (!c.header_checked) {
          if (!check_header(c)) return;
          c.header_checked = true;
        }
        const proto::Header h = header(c);
        const size_t total = proto::kHeaderBytes + h.length;
        if (c.in.size() >= total) {
          handle(c, h.type, std::span<const uint8_t>(c.in.data() + proto::kHeaderBytes, h.length));
          if (c.gone || c.closing) return;  // a closing client's buffer is already discarded
          c.in.erase(c.in.begin(), c.in.begin() + ptrdiff_t(total));
          c.header_checked = false;
          if (!c.gone && c.out_done < c.out.size()) flush(c);
          if (c.gone || c.closing || c.waiting || c.out_done < c.out.size()) return;
          continue;
        }
      }
      size_t want = c.in.size() < proto::kHeaderBytes ? proto::kHeaderBytes - c.in.size() + kReadAhead
                                                      : proto::kHeaderBytes + header(c).length - c.in.size();
      const size_t n0 = c.in.size();
      c.in.resize(n0 + want);
      const ssize_t n = ::recv(c.fd.get(), c.in.data() + n0, want, 0);
      c.in.resize(n0 + size_t(std::max<ssize_t>(n, 0)));
      if (n == 0) {
        drop(c, n0 ? fmt::format("disconnected in the middle of a frame ({} bytes received)", n0) : "disconnected");
        return;
      }
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          drop(c, fmt::format("connection error: {}", std::strerror(errno)));
        return;
      }
    }
  }

  static proto::Header header(const Client& c) {
    return proto::decode_header(std::span<const uint8_t, proto::kHeaderBytes>(c.in.data(), proto::kHeaderBytes));
  }

  // A header that cannot be a request loses the framing: the client is told and disconnected.
  bool check_header(Client& c) {
    const proto::Header h = header(c);
    const char* name = proto::msg_name(h.type);
    std::string why;
    if (h.reserved != 0)
      why = fmt::format("reserved header field is 0x{:x}, not 0", h.reserved);
    else if (!name || h.type >= 0x80)
      why = fmt::format("unknown request type 0x{:x}", h.type);
    else if (h.type == uint16_t(Msg::kHello))
      why = "a second Hello";
    else if (h.length > proto::kMaxPayloadBytes)
      why = fmt::format("a {} frame of {} bytes exceeds the limit of {}", name, h.length, proto::kMaxPayloadBytes);
    if (why.empty()) return true;
    protocol_error(c, why);
    return false;
  }

  void protocol_error(Client& c, const std::string& why) {
    c.out.clear(), c.out_done = 0;
    append(c, proto::encode_error(ErrorCode::kFormat, "protocol error: " + why));
    close_context(c, "protocol error: " + why);
    start_closing(c);
  }

  void append(Client& c, const std::vector<uint8_t>& frame) { c.out.insert(c.out.end(), frame.begin(), frame.end()); }

  void handle(Client& c, uint16_t type, std::span<const uint8_t> payload) {
    const char* name = proto::msg_name(type);
    try {
      proto::Reader r(payload, name);
      emu::Device& d = *device_;
      switch (Msg(type)) {
        case Msg::kMmioRead: {
          const uint32_t off = r.u32("offset");
          r.done();
          append(c, proto::Writer(Msg::kU32).u32(d.mmio_read(c.ctx, off)).finish());
          break;
        }
        case Msg::kMmioWrite: {
          const uint32_t off = r.u32("offset"), v = r.u32("value");
          r.done();
          d.mmio_write(c.ctx, off, v);
          append(c, proto::Writer(Msg::kOk).finish());
          break;
        }
        case Msg::kMemRead: {
          const uint64_t addr = r.u64("addr");
          const uint32_t n = r.u32("bytes");
          r.done();
          if (n > proto::kMaxDataBytes)
            throw Error(ErrorCode::kFormat, fmt::format("MemRead frame: {} bytes asked for, at most {} per frame", n,
                                                        proto::kMaxDataBytes));
          // The reply's data is read from HBM straight into the output buffer, after its header.
          std::vector<uint8_t> f = proto::Writer(Msg::kData).finish();
          f.resize(proto::kHeaderBytes + n);
          for (int k = 0; k < 4; ++k) f[size_t(k)] = uint8_t(n >> (8 * k));
          d.hbm_read(c.ctx, addr, std::span(f.data() + proto::kHeaderBytes, n));
          if (c.out.empty())
            c.out = std::move(f);
          else
            append(c, f);
          break;
        }
        case Msg::kMemWrite: {
          const uint64_t addr = r.u64("addr");
          d.hbm_write(c.ctx, addr, r.rest());
          append(c, proto::Writer(Msg::kOk).finish());
          break;
        }
        case Msg::kMemReadShm:
        case Msg::kMemWriteShm: {
          const uint64_t addr = r.u64("addr"), n = r.u64("bytes");
          r.done();
          if (!c.shm)
            throw Error(ErrorCode::kInvalidArgument, fmt::format("{}: this connection has no shared memory", name));
          if (n > c.shm_bytes)
            throw Error(ErrorCode::kInvalidArgument,
                        fmt::format("{}: {} bytes do not fit the shared buffer of {}", name, n, c.shm_bytes));
          if (Msg(type) == Msg::kMemReadShm)
            d.hbm_read(c.ctx, addr, std::span(c.shm, n));
          else
            d.hbm_write(c.ctx, addr, std::span<const uint8_t>(c.shm, n));
          append(c, proto::Writer(Msg::kOk).finish());
          break;
        }
        case Msg::kMemAlloc: {
          const uint64_t bytes = r.u64("bytes"), align = r.u64("align");
          r.done();
          append(c, proto::Writer(Msg::kU64).u64(d.hbm_alloc(c.ctx, bytes, align)).finish());
          break;
        }
        case Msg::kMemFree: {
          const uint64_t addr = r.u64("addr");
          r.done();
          d.hbm_free(c.ctx, addr);
          append(c, proto::Writer(Msg::kOk).finish());
          break;
        }
        case Msg::kMemBytesFree:
          r.done();
          append(c, proto::Writer(Msg::kU64).u64(d.hbm_bytes_free()).finish());
          break;
        case Msg::kInjectFaults: {
          const std::string spec = r.str("spec");
          r.done();
          d.inject_faults(c.ctx, fi::parse(spec, fmt::format("fault plan of {}", c.name)));
          append(c, proto::Writer(Msg::kOk).finish());
          break;
        }
        case Msg::kWaitIrq: {
          const uint64_t timeout = r.u64("timeout_cycles");
          r.done();
          if (d.irq_asserted(c.ctx)) {
            append(c, proto::Writer(Msg::kIrq).u8(1).finish());
          } else if (timeout == 0) {  // settles the current cycle, as in-process wait_irq(0) does
            append(c, proto::Writer(Msg::kIrq).u8(d.run(0, 1u << c.ctx) ? 1 : 0).finish());
          } else {
            // A wait that starts the device after an idle spell starts with short slices (run_slice).
            if (std::none_of(clients_.begin(), clients_.end(), [](const Client& o) { return o.waiting; }))
              slice_ = kMinSlice;
            c.waiting = true;
            c.deadline = sat_add(d.cycle(), timeout);
          }
          break;
        }
        case Msg::kBye:
          r.done();
          close_context(c, "said goodbye");
          append(c, proto::Writer(Msg::kOk).finish());
          start_closing(c);
          break;
        default:  // check_header let only requests through
          throw Error(ErrorCode::kFormat, fmt::format("unexpected frame type 0x{:x}", type));
      }
    } catch (const Error& e) {
      append(c, proto::encode_error(e.code(), e.what()));
    } catch (const std::exception& e) {  // e.g. bad_alloc: the client hears of it, the server goes on
      append(c, proto::encode_error(ErrorCode::kDevice, fmt::format("device server: {}", e.what())));
    }
  }

  // Runs the device for one slice with the interrupt lines of the waiting clients, then answers those
  // whose line is asserted or whose timeout has passed.
  void run_slice() {
    emu::Device& d = *device_;
    uint32_t mask = 0;
    uint64_t soonest = UINT64_MAX;
    for (auto& c : clients_)
      if (c.waiting && !c.gone) mask |= 1u << c.ctx, soonest = std::min(soonest, c.deadline);
    const uint64_t now = d.cycle();
    if (mask && soonest > now) {
      const uint64_t slice = std::min(soonest - now, slice_);
      const auto t0 = Clock::now();
      d.run(slice, mask);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      // The next slice: what this device simulates in kSliceWall at the speed just measured, growing at most
      // twofold, so that an idle stretch (no events: time jumps) does not make the next busy one run long.
      const uint64_t ran = d.cycle() - now;
      const uint64_t target = s > 0 ? uint64_t(double(ran) / s * kSliceWall) : kMaxSlice;
      slice_ = std::clamp<uint64_t>(std::min(2 * slice_, target), kMinSlice, kMaxSlice);
    }
    const uint64_t at = d.cycle();
    for (auto& c : clients_) {
      if (!c.waiting || c.gone) continue;
      const bool irq = d.irq_asserted(c.ctx);
      if (!irq && at < c.deadline) continue;
      c.waiting = false;
      append(c, proto::Writer(Msg::kIrq).u8(irq ? 1 : 0).finish());
      flush(c);
    }
  }

  void flush(Client& c) {
    while (c.out_done < c.out.size()) {
      const ssize_t n =
          ::send(c.fd.get(), c.out.data() + c.out_done, c.out.size() - c.out_done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        c.out_done += size_t(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      if (c.closing)
        close_fd(c);
      else
        drop(c, fmt::format("connection error: {}", std::strerror(errno)));
      return;
    }
    c.out.clear();
    c.out_done = 0;
    if (c.closing) ::shutdown(c.fd.get(), SHUT_WR);  // the last reply is out: the client sees the end
  }

  void start_closing(Client& c) {
    c.closing = true;
    c.waiting = false;
    c.close_by = Clock::now() + kLinger;
    c.in.clear();
    c.header_checked = false;
    flush(c);
  }

  // Discards what a closing client still sends; closes at its end of stream.
  void drain(Client& c) {
    uint8_t scratch[4096];
    ssize_t n;
    while ((n = ::recv(c.fd.get(), scratch, sizeof scratch, MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close_fd(c);
  }

  // Frees what the client held on the device: its context (a running job is aborted) and its memory.
  void close_context(Client& c, const std::string& why) {
    if (c.ctx < 0) return;
    std::string what;
    try {
      const bool busy = device_->mmio_read(c.ctx, regs::STATUS) & regs::kStatusBusy;
      const uint64_t before = device_->hbm_bytes_free();
      device_->close_context(c.ctx);
      what = fmt::format("context {} closed{}, {} bytes of device memory freed", c.ctx,
                         busy ? ", its running job aborted" : "", device_->hbm_bytes_free() - before);
    } catch (const std::exception& e) {
      what = fmt::format("closing context {} failed: {}", c.ctx, e.what());
    }
    log(fmt::format("{} {}: {}", c.name, why, what));
    c.ctx = -1;
  }

  void close_fd(Client& c) {
    if (c.shm) ::munmap(c.shm, c.shm_bytes);
    c.shm = nullptr;
    c.fd.reset();
    c.gone = true;
  }

  void drop(Client& c, const std::string& why) {
    close_context(c, why);
    close_fd(c);
  }

  void log(const std::string& line) {
    log_line(fmt::format("device {} (process {}): {}", spec_.label(), ::getpid(), line));
  }

  int control_;
  bool control_open_ = true;
  DeviceSpec spec_;
  std::unique_ptr<emu::Device> device_;
  std::unique_ptr<Error> build_error_;
  std::list<Client> clients_;  // stable addresses while requests are handled
  bool served_ = false;
  uint64_t slice_ = kMinSlice;
};

}  // namespace

int run_device_process(int control, const DeviceSpec& spec) { return DeviceServer(control, spec).run(); }

}  // namespace tcemu::srv
