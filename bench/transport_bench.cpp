// tcemu-bench-transport [--json] [--quick] [--min-time S] [--config C] [--bytes N] [--gemm M]: what a
// device behind `tcemu serve` costs against the emulator in the same process, measured in one run:
// device-memory bandwidth (mem_write, mem_read of N bytes at a time), 4 KiB writes per second and MMIO
// round trips per second, and the host time of a whole GEMM (M x M x M, load + run) through the runtime,
// for each transport:
//   in-process      drv::InProcessTransport
//   unix (shm)      drv::SocketTransport over a unix socket, bulk data through the memfd bounce buffer
//   unix (inline)   the same without the shared buffer: data in the socket's frames
//   tcp             over TCP on 127.0.0.1, data inline
// and each figure as a ratio to in-process. Figures only: nothing is asserted (docs/server.md, docs/bench.md).
//
// The servers are this program's children (srv::serve in a forked process, which forks its device
// processes), started before this process builds its own in-process device: SystemC allows one per process
// and a process with a device must not fork a server from itself.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "inproc_transport.h"
#include "socket_transport.h"
#include "tcemu/config.h"
#include "tcemu/drv/driver.h"
#include "tcemu/error.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/regs.h"
#include "tcemu/rt/runtime.h"
#include "tcemu/srv/server.h"

namespace {

using namespace tcemu;
using Clock = std::chrono::steady_clock;

struct Options {
  bool json = false;
  double min_time = 0.5;  // seconds per measurement
  std::string config = "trn1";
  uint64_t bytes = 16u << 20;
  int gemm = 1024;
};

struct Figures {
  std::string name;
  std::string describe;
  double write_mb_s = 0, read_mb_s = 0, small_writes_s = 0, mmio_s = 0, gemm_s = 0;
  uint64_t gemm_cycles = 0;
};

// Repeats `op` until min_time has passed (at least twice); returns operations per second.
double rate(double min_time, const std::function<void()>& op) {
  op();  // warm: first touches of HBM pages and of the shared buffer
  uint64_t n = 0;
  const auto t0 = Clock::now();
  double s = 0;
  do {
    op();
    ++n;
    s = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (s < min_time || n < 2);
  return double(n) / s;
}

Figures measure(const std::string& name, drv::Transport& t, const Options& o) {
  Figures f;
  f.name = name;
  f.describe = t.describe();
  std::vector<uint8_t> buf(o.bytes);
  std::mt19937 rng(1);
  for (auto& b : buf) b = uint8_t(rng());
  const uint64_t at = t.mem_alloc(o.bytes, 4096);
  f.write_mb_s = rate(o.min_time, [&] { t.mem_write(at, buf); }) * double(o.bytes) / 1e6;
  f.read_mb_s = rate(o.min_time, [&] { t.mem_read(at, buf); }) * double(o.bytes) / 1e6;
  const std::span<const uint8_t> page(buf.data(), 4096);
  f.small_writes_s = rate(o.min_time, [&] { t.mem_write(at, page); });
  f.mmio_s = rate(o.min_time,
                  [&] {
                    for (int i = 0; i < 100; ++i) t.mmio_read(regs::ID);
                  }) *
             100;
  t.mem_free(at);

  // A whole job through driver and runtime: model load, inputs, run (simulation included), outputs.
  const DeviceConfig& cfg = find_config(o.config);
  drv::Driver driver(t);
  rt::Runtime runtime(driver);
  const model::Model m = kb::build_gemm(cfg, o.gemm, o.gemm, o.gemm);
  rt::TensorMap in;
  in["a"] = {{o.gemm, o.gemm}, std::vector<float>(size_t(o.gemm) * o.gemm, 0.5f)};
  in["b"] = {{o.gemm, o.gemm}, std::vector<float>(size_t(o.gemm) * o.gemm, 0.25f)};
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    auto lm = runtime.load(m);
    const rt::RunResult r = runtime.run(*lm, in);
    runtime.unload(*lm);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    f.gemm_cycles = r.cycles;
  }
  f.gemm_s = best;
  return f;
}

// A `tcemu serve` in a child process; its address once it listens.
struct ServerChild {
  pid_t pid = -1;
  std::string address;
  ServerChild(const std::string& listen, const std::string& config) {
    int p[2];
    if (::pipe(p) != 0) throw Error(ErrorCode::kIo, "pipe failed");
    pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      ::freopen("/dev/null", "w", stderr);  // the server's log lines are not figures
      srv::ServeOptions so;
      so.listen = listen;
      so.config = config;
      so.on_ready = [&](const std::string& a) {
        (void)!::write(p[1], a.data(), a.size());
        ::close(p[1]);
      };
      int st = 1;
      try {
        st = srv::serve(so);
      } catch (...) {
      }
      ::_exit(st);
    }
    ::close(p[1]);
    char buf[256];
    ssize_t n = ::read(p[0], buf, sizeof buf);
    ::close(p[0]);
    if (n <= 0) throw Error(ErrorCode::kDevice, "the bench's server did not start on " + listen);
    address.assign(buf, size_t(n));
  }
  ~ServerChild() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st;
      ::waitpid(pid, &st, 0);
    }
  }
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::kInvalidArgument, a + " needs a value");
      return argv[++i];
    };
    if (a == "--json")
      o.json = true;
    else if (a == "--quick")
      o.min_time = 0.05, o.gemm = 128;
    else if (a == "--min-time")
      o.min_time = std::stod(value());
    else if (a == "--config")
      o.config = find_config(value()).name;
    else if (a == "--bytes")
      o.bytes = std::stoull(value());
    else if (a == "--gemm")
      o.gemm = std::stoi(value());
    else
      throw Error(ErrorCode::kInvalidArgument, "unknown option " + a);
  }
  if (o.bytes == 0 || o.bytes < 4096) throw Error(ErrorCode::kInvalidArgument, "--bytes: at least 4096");
  if (o.gemm < 1) throw Error(ErrorCode::kInvalidArgument, "--gemm: at least 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const DeviceConfig& cfg = find_config(o.config);
    const std::string dir =
        (std::filesystem::temp_directory_path() / fmt::format("tcemu_bench_transport_{}", ::getpid())).string();
    std::filesystem::create_directories(dir);
    std::vector<Figures> rows;
    {
      ServerChild unix_server("unix:" + dir + "/s.sock", o.config);
      ServerChild tcp_server("tcp:127.0.0.1:0", o.config);
      drv::DeviceRequest shm, plain;
      shm.config = plain.config = o.config;
      plain.shared_memory = false;
      {
        drv::SocketTransport t(unix_server.address, shm);
        rows.push_back(measure("unix (shm)", t, o));
      }
      {
        drv::SocketTransport t(unix_server.address, plain);
        rows.push_back(measure("unix (inline)", t, o));
      }
      {
        drv::SocketTransport t(tcp_server.address, plain);
        rows.push_back(measure("tcp", t, o));
      }
    }
    std::filesystem::remove_all(dir);
    {
      drv::InProcessTransport t(cfg);  // after the servers: nothing forks from here on
      rows.insert(rows.begin(), measure("in-process", t, o));
    }
    const Figures& base = rows.front();
    if (o.json) {
      nlohmann::json j;
      j["config"] = o.config;
      j["bytes"] = o.bytes;
      j["gemm"] = o.gemm;
      j["min_time"] = o.min_time;
      for (const Figures& f : rows) {
        nlohmann::json r = {{"transport", f.name},
                            {"describe", f.describe},
                            {"mem_write_mb_s", f.write_mb_s},
                            {"mem_read_mb_s", f.read_mb_s},
                            {"mem_write_4k_per_s", f.small_writes_s},
                            {"mmio_round_trips_per_s", f.mmio_s},
                            {"gemm_seconds", f.gemm_s},
                            {"gemm_cycles", f.gemm_cycles}};
        r["vs_in_process"] = {{"mem_write", f.write_mb_s / base.write_mb_s},
                              {"mem_read", f.read_mb_s / base.read_mb_s},
                              {"mem_write_4k", f.small_writes_s / base.small_writes_s},
                              {"mmio", f.mmio_s / base.mmio_s},
                              {"gemm_time", f.gemm_s / base.gemm_s}};
        j["transports"].push_back(r);
      }
      fmt::print("{}\n", j.dump());
      return 0;
    }
    fmt::print("transports to a {} device: {} MiB transfers, {} KiB writes, MMIO reads of ID, gemm {}^3 (load + run)\n",
               o.config, o.bytes >> 20, 4, o.gemm);
    fmt::print("{:<14} {:>22} {:>22} {:>22} {:>24} {:>20}\n", "transport", "mem_write MB/s", "mem_read MB/s",
               "4 KiB writes/s", "MMIO round trips/s", "gemm seconds");
    auto cell = [](double v, double ratio, int width) {
      return fmt::format("{:>{}}", fmt::format("{:.4g} ({:.3g}x)", v, ratio), width);
    };
    for (const Figures& f : rows)
      fmt::print("{:<14} {} {} {} {} {}\n", f.name, cell(f.write_mb_s, f.write_mb_s / base.write_mb_s, 22),
                 cell(f.read_mb_s, f.read_mb_s / base.read_mb_s, 22),
                 cell(f.small_writes_s, f.small_writes_s / base.small_writes_s, 22),
                 cell(f.mmio_s, f.mmio_s / base.mmio_s, 24), cell(f.gemm_s, f.gemm_s / base.gemm_s, 20));
    fmt::print("(ratios against in-process, measured in this run; gemm: {} device cycles on every transport)\n",
               base.gemm_cycles);
    for (const Figures& f : rows)
      if (f.gemm_cycles != base.gemm_cycles)
        fmt::print("note: {} ran the gemm in {} cycles, in-process in {}\n", f.name, f.gemm_cycles, base.gemm_cycles);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcemu-bench-transport: error: {}\n", e.what());
    return 1;
  }
}
