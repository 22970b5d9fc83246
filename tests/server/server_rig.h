// The server tests' rig: a `tcemu serve` of each test's own (the tcemu binary, started before and stopped
// after the test, its log kept), raw protocol connections for clients that misbehave on purpose, and GEMM
// runs checked bit for bit against the golden model (num::golden_gemm, independent of the device).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net.h"
#include "protocol.h"
#include "tcemu/config.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/numerics.h"
#include "tcemu/rt/runtime.h"

namespace tcemu::test {

namespace fs = std::filesystem;

// Polls `pred` until it holds or `seconds` of wall time pass; returns its last value.
template <class F>
bool eventually(F pred, double seconds = 10) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// `tcemu serve --listen unix:DIR/s.sock` (or tcp:127.0.0.1:0) in a temporary directory, stderr to DIR/serve.log.
class Server {
 public:
  explicit Server(bool tcp = false, const std::vector<std::string>& extra = {}) {
    static int n = 0;
    dir_ = fs::temp_directory_path() / ("tcemu_srv_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string sock = (dir_ / "s.sock").string();
    std::vector<std::string> args = {TCEMU_BIN, "serve", "--listen", tcp ? "tcp:127.0.0.1:0" : "unix:" + sock};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string log = (dir_ / "serve.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a test that dies leaves no server behind
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const bool up = eventually([&] {
      if (!tcp) return fs::exists(sock);  // the server renames the socket into place once it listens
      std::smatch m;
      const std::string l = this->log();
      if (!std::regex_search(l, m, std::regex("listening on (tcp:127\\.0\\.0\\.1:[0-9]+)"))) return false;
      address_ = m[1];
      return true;
    });
    if (!tcp) address_ = "unix:" + sock;
    if (!up) ADD_FAILURE() << "tcemu serve did not come up; its log:\n" << log_text();
  }
  ~Server() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    fs::remove_all(dir_);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // True while the broker process runs (it never exits on its own).
  bool alive() const {
    int st = 0;
    return ::waitpid(pid_, &st, WNOHANG) == 0;
  }
  std::string log() const { return log_text(); }

 private:
  std::string log_text() const {
    std::ifstream f(dir_ / "serve.log");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  fs::path dir_;
  pid_t pid_ = -1;
  std::string address_;
};

// A connection that speaks raw frames.
struct RawClient {
  explicit RawClient(const std::string& address) : fd(net::connect_to(net::parse_address(address))) {
    timeval tv{10, 0};  // a server that hangs fails the test instead of blocking it
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  bool send(std::span<const uint8_t> b) { return net::send_all(fd.get(), b); }
  // One frame, or nullopt at end of stream (or after 10 s without one).
  std::optional<std::pair<proto::Header, std::vector<uint8_t>>> frame() {
    uint8_t h[proto::kHeaderBytes];
    if (!net::recv_all(fd.get(), h)) return std::nullopt;
    const proto::Header head = proto::decode_header(std::span<const uint8_t, proto::kHeaderBytes>(h));
    if (head.length > proto::kMaxPayloadBytes) return std::nullopt;
    std::vector<uint8_t> p(head.length);
    if (!net::recv_all(fd.get(), p)) return std::nullopt;
    return std::pair{head, p};
  }
  // The Error the next frame carries (a test failure if it is not an Error frame).
  std::optional<Error> error() {
    auto f = frame();
    if (!f) {
      ADD_FAILURE() << "no reply: the connection ended";
      return std::nullopt;
    }
    if (f->first.type != uint16_t(proto::Msg::kError)) {
      ADD_FAILURE() << "expected an Error frame, got type 0x" << std::hex << f->first.type;
      return std::nullopt;
    }
    return proto::decode_error(f->second);
  }
  // True if the server closes the connection (within 10 s), whatever it sends before.
  bool closed() {
    uint8_t b[4096];
    for (;;) {
      ssize_t n = ::recv(fd.get(), b, sizeof b, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  // The handshake of a well-behaved client; returns the HelloReply.
  proto::HelloReply hello(const std::string& config = "tc1-8") {
    proto::Hello h;
    h.config = config;
    h.client = "raw test client";
    send(proto::encode(h));
    auto f = frame();
    if (!f || f->first.type != uint16_t(proto::Msg::kHelloReply)) {
      ADD_FAILURE() << "no HelloReply";
      return {};
    }
    return proto::decode_hello_reply(f->second);
  }
  net::UniqueFd fd;
};

struct GemmCheck {
  uint64_t cycles = 0;
  uint64_t mismatches = 0;
  std::vector<float> c;
};

// C = A x B on random bf16 inputs from `seed`, through the runtime; every output bit compared with the
// golden model.
inline GemmCheck run_gemm(rt::Runtime& runtime, const DeviceConfig& cfg, int M, int N, int K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  rt::TensorMap in;
  in["a"].shape = {M, K};
  in["b"].shape = {K, N};
  std::vector<uint16_t> A(size_t(M) * K), B(size_t(K) * N);
  for (auto& x : A) x = num::f32_to_bf16(u(rng));
  for (auto& x : B) x = num::f32_to_bf16(u(rng));
  for (uint16_t x : A) in["a"].data.push_back(num::bf16_to_f32(x));
  for (uint16_t x : B) in["b"].data.push_back(num::bf16_to_f32(x));
  auto lm = runtime.load(kb::build_gemm(cfg, M, N, K));
  rt::RunResult r = runtime.run(*lm, in);
  runtime.unload(*lm);
  std::vector<uint32_t> C(size_t(M) * N);
  num::golden_gemm(M, N, K, cfg.rows, A.data(), B.data(), C.data());
  GemmCheck g;
  g.cycles = r.cycles;
  g.c = r.outputs.at("c").data;
  for (size_t i = 0; i < C.size(); ++i) g.mismatches += num::f32_bits(g.c[i]) != C[i];
  return g;
}

}  // namespace tcemu::test
