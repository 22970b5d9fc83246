// `tcemu serve` with drv::SocketTransport clients: results and cycles as in-process, several clients on one
// device, isolation between them, clients that die or misbehave, device processes that die. Each test
// starts its own server (tcemu serve, the real binary) and stops it at the end.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <barrier>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "inproc_transport.h"
#include "server_rig.h"
#include "socket_transport.h"
#include "tcemu/drv/driver.h"
#include "tcemu/error.h"
#include "tcemu/isa.h"
#include "tcemu/kb/linear.h"
#include "tcemu/regs.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace {

using isa::Instr;
using isa::Opcode;
using test::Server;

drv::DeviceRequest request(const std::string& config, std::optional<TensorEngineKind> engine = std::nullopt) {
  drv::DeviceRequest r;
  r.config = config;
  r.tensor_engine = engine;
  return r;
}

// A client: transport, driver and runtime, as a program of its own would hold them.
struct Client {
  Client(const std::string& address, const drv::DeviceRequest& r)
      : transport(address, r), driver(transport), runtime(driver) {}
  drv::SocketTransport transport;
  drv::Driver driver;
  rt::Runtime runtime;
};

template <class F>
Error error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error(ErrorCode::kDevice, "");
}

uint64_t hbm(uint64_t off) { return isa::make_addr(isa::Space::kHbm, off); }
uint64_t sbuf(uint64_t off) { return isa::make_addr(isa::Space::kSbuf, off); }

Instr copy(uint64_t src, uint64_t dst, uint64_t bytes) {
  Instr in;
  in.opcode = Opcode::DmaCopy;
  in.src = src, in.dst = dst, in.bytes = bytes, in.d1_count = 1, in.d2_count = 1;
  return in;
}

// Writes `instrs` into memory the client allocates and returns the stream.
drv::StreamRef stream(drv::Driver& d, int engine, const std::vector<Instr>& instrs) {
  const std::vector<uint8_t> code = isa::encode_stream(instrs);
  const uint64_t at = d.alloc(code.size(), 64);
  d.write(at, code);
  return {engine, at, uint32_t(instrs.size())};
}

// One client alone gets what the emulator in its own process gives: the same outputs, bit for bit, in the
// same device cycles (the server runs the device in slices; slicing must not change time). In-process
// first: the process's one device is the reference.
TEST(Server, OneClientGemmIsCycleIdenticalToInProcess) {
  Server server;
  const DeviceConfig& cfg = find_config("tc1-16");
  test::GemmCheck remote;
  {
    Client c(server.address(), request("tc1-16"));
    EXPECT_TRUE(c.transport.shared_memory());
    EXPECT_EQ(c.transport.tensor_engine(), TensorEngineKind::kRtl);
    remote = test::run_gemm(c.runtime, cfg, 64, 96, 80, 7);
  }
  drv::InProcessTransport local(cfg);
  drv::Driver driver(local);
  rt::Runtime runtime(driver);
  const test::GemmCheck here = test::run_gemm(runtime, cfg, 64, 96, 80, 7);
  EXPECT_EQ(here.mismatches, 0u);
  EXPECT_EQ(remote.mismatches, 0u);
  EXPECT_GT(remote.cycles, 0u);
  EXPECT_EQ(remote.cycles, here.cycles);
  EXPECT_TRUE(remote.c == here.c);
}

// All four engines with a profile: the same cycles, outputs, trace records and busy counters.
TEST(Server, OneClientLinearProfileIsIdenticalToInProcess) {
  Server server;
  const DeviceConfig& cfg = find_config("tc1-8");
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  rt::TensorMap in;
  const int M = 48, N = 40, K = 36;
  for (auto [name, shape] : {std::pair{"xT", std::vector<int64_t>{K, M}}, {"w", {K, N}}, {"b", {N}}, {"rT", {N, M}}}) {
    in[name].shape = shape;
    in[name].data.resize(size_t(model::element_count(shape)));
    for (float& x : in[name].data) x = u(rng);
  }
  const model::Model m = kb::build_linear(cfg, M, N, K, {isa::ActFunc::kGeluTanh, true});
  rt::RunOptions o;
  o.profile = true;
  auto run = [&](rt::Runtime& runtime) {
    auto lm = runtime.load(m);
    return runtime.run(*lm, in, o);
  };
  rt::RunResult remote;
  {
    Client c(server.address(), request("tc1-8"));
    remote = run(c.runtime);
  }
  drv::InProcessTransport local(cfg);
  drv::Driver driver(local);
  rt::Runtime runtime(driver);
  const rt::RunResult here = run(runtime);
  EXPECT_EQ(remote.cycles, here.cycles);
  EXPECT_TRUE(remote.outputs.at("yT").data == here.outputs.at("yT").data);
  ASSERT_TRUE(remote.profile && here.profile);
  EXPECT_FALSE(here.profile->records.empty());
  EXPECT_TRUE(remote.profile->records == here.profile->records);
  EXPECT_EQ(remote.profile->counter_busy, here.profile->counter_busy);
}

// Clients asking for the same config share one device process, each with its own context, and their jobs,
// submitted at the same time from two threads, all give the golden model's results, in the cycles each
// gives alone (the engines run one job at a time).
TEST(Server, TwoClientsShareADeviceAndRunKernelsConcurrently) {
  Server server;
  const DeviceConfig& cfg = find_config("tc1-16");
  struct Shape {
    int m, n, k;
  };
  const std::vector<Shape> shapes[2] = {{{64, 96, 80}, {33, 17, 70}, {128, 64, 48}},
                                        {{80, 48, 96}, {16, 16, 16}, {96, 112, 40}}};
  std::vector<uint64_t> alone[2];
  {
    Client solo(server.address(), request("tc1-16", TensorEngineKind::kFast));
    for (int t = 0; t < 2; ++t)
      for (size_t i = 0; i < shapes[t].size(); ++i) {
        auto [m, n, k] = shapes[t][i];
        alone[t].push_back(test::run_gemm(solo.runtime, cfg, m, n, k, uint32_t(10 * t + i)).cycles);
      }
  }
  Client a(server.address(), request("tc1-16", TensorEngineKind::kFast));
  Client b(server.address(), request("tc1-16", TensorEngineKind::kFast));
  EXPECT_EQ(a.transport.device_pid(), b.transport.device_pid());
  EXPECT_NE(a.transport.context(), b.transport.context());
  std::barrier sync(2);
  std::vector<test::GemmCheck> got[2];
  auto work = [&](int t, Client& c) {
    for (size_t i = 0; i < shapes[t].size(); ++i) {
      auto [m, n, k] = shapes[t][i];
      sync.arrive_and_wait();  // both submit together
      got[t].push_back(test::run_gemm(c.runtime, cfg, m, n, k, uint32_t(10 * t + i)));
    }
  };
  std::thread ta(work, 0, std::ref(a)), tb(work, 1, std::ref(b));
  ta.join();
  tb.join();
  for (int t = 0; t < 2; ++t) {
    ASSERT_EQ(got[t].size(), shapes[t].size());
    for (size_t i = 0; i < got[t].size(); ++i) {
      EXPECT_EQ(got[t][i].mismatches, 0u) << "client " << t << " gemm " << i;
      EXPECT_EQ(got[t][i].cycles, alone[t][i]) << "client " << t << " gemm " << i;
    }
  }
}

// The server answers one client's MMIO while another's long job runs: simulated time moves (the other
// client waits for its interrupt) between the reads, which return at once.
TEST(Server, ClientsAreAnsweredWhileAnotherWaitsAndTimeOutInTheirOwnCycles) {
  Server server;
  Client a(server.address(), request("tc1-16"));  // RTL: slow enough to watch
  drv::SocketTransport b(server.address(), request("tc1-16"));
  // Alone, a wait ends exactly `timeout` cycles after it began.
  const uint64_t c0 = a.driver.cycle();
  EXPECT_FALSE(b.wait_irq(12'345));
  EXPECT_EQ(a.driver.cycle() - c0, 12'345u);

  std::atomic<bool> done{false};
  test::GemmCheck g;
  std::thread t([&] {
    g = test::run_gemm(a.runtime, find_config("tc1-16"), 256, 256, 128, 3);
    done = true;
  });
  std::set<uint64_t> seen;
  while (!done) {
    const uint64_t lo = b.mmio_read(regs::CYCLE_LO);
    seen.insert(lo | uint64_t(b.mmio_read(regs::CYCLE_HI)) << 32);
  }
  t.join();
  EXPECT_EQ(g.mismatches, 0u);
  // Answered only after the job's wait, the reads would see two times: before the job and after it.
  EXPECT_GE(seen.size(), 5u) << "the reads were not answered while the job ran";

  // With another client's long job in flight, a wait ends when its own timeout has passed, long before
  // that job does, and not before the timeout.
  done = false;
  std::thread t2([&] {
    g = test::run_gemm(a.runtime, find_config("tc1-16"), 256, 256, 128, 4);
    done = true;
  });
  const uint64_t lo = b.mmio_read(regs::CYCLE_LO);
  const uint64_t before = lo | uint64_t(b.mmio_read(regs::CYCLE_HI)) << 32;
  EXPECT_FALSE(b.wait_irq(1000));
  EXPECT_FALSE(done) << "the wait lasted as long as the other client's job";
  const uint64_t lo2 = b.mmio_read(regs::CYCLE_LO);
  EXPECT_GE((lo2 | uint64_t(b.mmio_read(regs::CYCLE_HI)) << 32) - before, 1000u);
  t2.join();
  EXPECT_EQ(g.mismatches, 0u);
}

// A job that DMAs into (or from) another client's memory faults HbmProtection and leaves that memory as it
// was; host reads and writes of it are refused.
TEST(Server, ClientsCannotTouchEachOthersMemory) {
  Server server;
  Client a(server.address(), request("tc1-8"));
  Client b(server.address(), request("tc1-8"));
  const uint64_t mine = a.driver.alloc(8192);
  std::vector<uint8_t> pattern(8192);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = uint8_t(i * 7 + 1);
  a.driver.write(mine, pattern);

  std::vector<uint8_t> peek(64);
  Error e = error_of([&] { b.driver.read(mine, peek); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("touches memory this context did not allocate"), std::string::npos) << e.what();
  EXPECT_EQ(error_of([&] { b.driver.write(mine + 64, peek); }).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of([&] { b.driver.free(mine); }).code(), ErrorCode::kInvalidArgument);

  // B's job, with its HBM window over A's block: a store into it, then (after reset) a load from it.
  for (bool store : {true, false}) {
    const drv::StreamRef s =
        stream(b.driver, isa::kEngineDma0, {store ? copy(sbuf(0), hbm(128), 256) : copy(hbm(128), sbuf(0), 256)});
    try {
      b.driver.run({mine, 8192, {s}}, 1'000'000);
      ADD_FAILURE() << "expected HbmProtection";
    } catch (const drv::DeviceFault& f) {
      EXPECT_EQ(f.fault(), regs::FaultCode::HbmProtection) << f.what();
    }
    b.driver.reset();
  }
  std::vector<uint8_t> back(pattern.size());
  a.driver.read(mine, back);
  EXPECT_TRUE(back == pattern) << "A's memory changed";
  // Both carry on: B within its own memory, A with its own job.
  const uint64_t own = b.driver.alloc(4096);
  b.driver.run({own, 4096, {stream(b.driver, isa::kEngineDma0, {copy(sbuf(0), hbm(0), 256)})}}, 1'000'000);
  EXPECT_EQ(test::run_gemm(a.runtime, find_config("tc1-8"), 9, 11, 19, 1).mismatches, 0u);
}

// A client killed (SIGKILL) in the middle of a job gives its context and memory back; the other clients
// and the server carry on.
TEST(Server, AKilledClientReleasesItsContextAndMemory) {
  Server server;
  drv::SocketTransport watcher(server.address(), request("tc1-8"));
  const uint64_t free_before = watcher.mem_bytes_free();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {  // the victim: a job that never ends, and a wait for it
    ::close(ready[0]);
    try {
      Client v(server.address(), request("tc1-8"));
      v.transport.mmio_write(regs::WATCHDOG_CYCLES, 0);  // no watchdog: the job hangs for good
      const uint64_t win = v.driver.alloc(1 << 20);
      std::vector<uint8_t> ones(1 << 20, 1);
      v.driver.write(win, ones);
      Instr forever;
      forever.opcode = Opcode::Nop;
      forever.wait_en = 1, forever.wait_sem = 9, forever.wait_value = 1;
      v.driver.submit({win, 1 << 20, {stream(v.driver, isa::kEngineTensor, {forever})}});
      v.transport.wait_irq(100'000);  // the job has started (and hangs)
      (void)!::write(ready[1], "x", 1);
      v.transport.wait_irq(UINT64_MAX / 2);
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << server.log();
  ::close(ready[0]);
  EXPECT_LT(watcher.mem_bytes_free(), free_before - (1 << 20));
  ::kill(child, SIGKILL);
  int st = 0;
  ::waitpid(child, &st, 0);
  EXPECT_TRUE(test::eventually([&] { return watcher.mem_bytes_free() == free_before; })) << server.log();
  EXPECT_NE(server.log().find("its running job aborted"), std::string::npos) << server.log();
  EXPECT_TRUE(server.alive());
  Client next(server.address(), request("tc1-8"));
  EXPECT_EQ(test::run_gemm(next.runtime, find_config("tc1-8"), 20, 12, 24, 2).mismatches, 0u);
}

// Connections that are not tcemu clients, speak another version, or stop in the middle of a frame: each
// gets one Error frame saying what was wrong (where there is anyone to tell), and the server goes on.
TEST(Server, BadHandshakesGetACleanErrorAndTheServerKeepsServing) {
  Server server;
  {
    test::RawClient http(server.address());
    const std::string get = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    http.send(std::span(reinterpret_cast<const uint8_t*>(get.data()), get.size()));
    auto e = http.error();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), ErrorCode::kFormat);
    EXPECT_NE(std::string(e->what()).find("not a tcemu client"), std::string::npos) << e->what();
    EXPECT_TRUE(http.closed());
  }
  {
    test::RawClient v(server.address());
    proto::Hello h;
    h.version = 99;
    v.send(proto::encode(h));
    auto e = v.error();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), ErrorCode::kDevice);
    EXPECT_EQ(std::string(e->what()),
              "protocol version mismatch: the client speaks version 99, this server speaks version 1");
    EXPECT_TRUE(v.closed());
  }
  {
    test::RawClient m(server.address());
    proto::Hello h;
    h.magic = 0x12345678;
    m.send(proto::encode(h));
    auto e = m.error();
    ASSERT_TRUE(e);
    EXPECT_NE(std::string(e->what()).find("the hello's magic is 0x12345678"), std::string::npos) << e->what();
  }
  {
    test::RawClient big(server.address());  // a first frame far larger than any hello
    big.send(proto::Writer(proto::Msg::kHello).u32(proto::kMagic).finish());
    std::vector<uint8_t> hdr = {0, 0, 0, 0x40, 1, 0, 0, 0};  // 1 GiB hello
    test::RawClient huge(server.address());
    huge.send(hdr);
    auto e = huge.error();
    ASSERT_TRUE(e);
    EXPECT_NE(std::string(e->what()).find("got type 0x1 of 1073741824 bytes"), std::string::npos) << e->what();
    auto e2 = big.error();  // the 4-byte hello: too short to hold its fields
    ASSERT_TRUE(e2);
    EXPECT_EQ(e2->code(), ErrorCode::kFormat);
  }
  {
    test::RawClient cut(server.address());  // a hello cut short: the client goes away in the middle
    std::vector<uint8_t> f = proto::encode(proto::Hello{});
    f.resize(f.size() / 2);
    cut.send(f);
  }
  {
    test::RawClient cfg(server.address());
    proto::Hello h;
    h.config = "tc9";
    cfg.send(proto::encode(h));
    auto e = cfg.error();
    ASSERT_TRUE(e);
    EXPECT_NE(std::string(e->what()).find("unknown device config 'tc9'"), std::string::npos) << e->what();
  }
  // The device's own construction error reaches the client as it was raised.
  drv::DeviceRequest wave = request("tc1-8", TensorEngineKind::kFast);
  wave.wave_path = "w.fst";
  Error e = error_of([&] { drv::SocketTransport t(server.address(), wave); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::string(e.what()).rfind("a waveform needs the RTL tensor engine", 0), 0u) << e.what();

  EXPECT_TRUE(test::eventually([&] { return server.log().find("bytes of its hello") != std::string::npos; }))
      << server.log();
  EXPECT_TRUE(server.alive());
  Client ok(server.address(), request("tc1-8"));
  EXPECT_EQ(test::run_gemm(ok.runtime, find_config("tc1-8"), 8, 8, 8, 1).mismatches, 0u);
}

// After the handshake: a malformed payload is an error reply and the connection stays; a header that cannot
// be a request (unknown type, oversized, a second hello) ends the connection after an error reply, and
// frees the client's context; a frame cut short by the client's end likewise.
TEST(Server, BadFramesAfterTheHandshakeAreRefusedAndFreeTheContext) {
  Server server;
  drv::SocketTransport watcher(server.address(), request("tc1-8"));
  const uint64_t free_before = watcher.mem_bytes_free();
  {
    test::RawClient c(server.address());
    c.hello();
    c.send(proto::Writer(proto::Msg::kMmioRead).u8(1).finish());  // 1 byte where a u32 belongs
    auto e = c.error();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code(), ErrorCode::kFormat);
    EXPECT_NE(std::string(e->what()).find("MmioRead frame: offset needs 4 bytes"), std::string::npos) << e->what();
    c.send(proto::Writer(proto::Msg::kMemRead).u64(1 << 20).u32(proto::kMaxDataBytes + 1).finish());
    EXPECT_TRUE(c.error());
    c.send(proto::Writer(proto::Msg::kMemAlloc).u64(64 << 10).u64(4096).finish());
    auto f = c.frame();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->first.type, uint16_t(proto::Msg::kU64));
    c.send(proto::Writer(proto::Msg::kMmioRead).u32(regs::ID).finish());
    f = c.frame();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->first.type, uint16_t(proto::Msg::kU32));
    EXPECT_EQ(f->second, (std::vector<uint8_t>{0x01, 0x31, 0x43, 0x54}));
    EXPECT_LT(watcher.mem_bytes_free(), free_before);
    c.send(proto::Writer(proto::Msg(0x42)).finish());
    e = c.error();
    ASSERT_TRUE(e);
    EXPECT_NE(std::string(e->what()).find("unknown request type 0x42"), std::string::npos) << e->what();
    EXPECT_TRUE(c.closed());
    EXPECT_TRUE(test::eventually([&] { return watcher.mem_bytes_free() == free_before; }));
  }
  {
    test::RawClient c(server.address());
    c.hello();
    std::vector<uint8_t> hdr = {0xFF, 0xFF, 0xFF, 0xFF, uint8_t(proto::Msg::kMemWrite), 0, 0, 0};
    c.send(hdr);
    auto e = c.error();
    ASSERT_TRUE(e);
    EXPECT_NE(std::string(e->what()).find("exceeds the limit"), std::string::npos) << e->what();
    EXPECT_TRUE(c.closed());
  }
  {
    test::RawClient c(server.address());
    c.hello();
    c.send(proto::encode(proto::Hello{}));
    auto e = c.error();
    ASSERT_TRUE(e);
    EXPECT_NE(std::string(e->what()).find("a second Hello"), std::string::npos) << e->what();
  }
  {
    test::RawClient c(server.address());
    c.hello();
    c.send(proto::Writer(proto::Msg::kMemAlloc).u64(1 << 20).u64(4096).finish());
    ASSERT_TRUE(c.frame());
    std::vector<uint8_t> f = proto::Writer(proto::Msg::kMemWrite).u64(0).bytes(std::vector<uint8_t>(1000)).finish();
    f.resize(500);  // and then the client is gone
    c.send(f);
  }
  EXPECT_TRUE(test::eventually([&] { return watcher.mem_bytes_free() == free_before; })) << server.log();
  EXPECT_NE(server.log().find("disconnected in the middle of a frame"), std::string::npos) << server.log();
  EXPECT_TRUE(server.alive());
}

// Random bytes, before and after a valid hello, on many connections: the server neither crashes nor hangs,
// every context is given back, and a real client works afterwards.
TEST(Server, RandomBytesNeverCrashOrHangTheServer) {
  Server server;
  drv::SocketTransport watcher(server.address(), request("tc1-8"));
  const uint64_t free_before = watcher.mem_bytes_free();
  std::mt19937 rng(2024);
  for (int i = 0; i < 300; ++i) {
    test::RawClient c(server.address());
    if (i % 3 != 0) c.hello();
    std::vector<uint8_t> junk(rng() % 200);
    for (auto& b : junk) b = uint8_t(rng());
    if (i % 3 == 2 && junk.size() >= 8) {  // a plausible header: a request type and a small length
      junk[0] = uint8_t(junk.size() - 8), junk[1] = junk[2] = junk[3] = 0;
      junk[4] = uint8_t(2 + rng() % 12), junk[5] = junk[6] = junk[7] = 0;
      if (junk[4] == uint8_t(proto::Msg::kWaitIrq) && junk.size() >= 16) junk[15] = 0;  // not forever
    }
    c.send(junk);
  }
  EXPECT_TRUE(test::eventually([&] { return watcher.mem_bytes_free() == free_before; }, 30)) << server.log();
  EXPECT_TRUE(server.alive());
  EXPECT_EQ(server.log().find("killed by signal"), std::string::npos) << server.log();
  Client ok(server.address(), request("tc1-8"));
  EXPECT_EQ(test::run_gemm(ok.runtime, find_config("tc1-8"), 12, 20, 16, 9).mismatches, 0u);
}

// 16 contexts per device: the 17th client of one config is refused with a capacity error; one of another
// config gets a device of its own.
TEST(Server, ADeviceHoldsSixteenClients) {
  Server server;
  std::vector<std::unique_ptr<drv::SocketTransport>> clients;
  std::set<int> contexts;
  for (int i = 0; i < 16; ++i) {
    clients.push_back(std::make_unique<drv::SocketTransport>(server.address(), request("tc1-8")));
    contexts.insert(clients.back()->context());
  }
  EXPECT_EQ(contexts.size(), 16u);
  Error e = error_of([&] { drv::SocketTransport t(server.address(), request("tc1-8")); });
  EXPECT_EQ(e.code(), ErrorCode::kCapacity);
  EXPECT_NE(std::string(e.what()).find("all 16 device contexts are in use"), std::string::npos) << e.what();
  drv::SocketTransport other(server.address(), request("tc1-16"));
  EXPECT_NE(other.device_pid(), clients[0]->device_pid());
  clients.pop_back();  // a context comes free
  drv::SocketTransport late(server.address(), request("tc1-8"));
  EXPECT_EQ(late.device_pid(), clients[0]->device_pid());
}

// A device process that dies: its clients hear that the connection is lost, the broker notices, and the
// next client asking for that device gets a new process.
TEST(Server, ADeadDeviceProcessIsNoticedAndReplaced) {
  Server server;
  auto first = std::make_unique<Client>(server.address(), request("tc1-8"));
  const int pid = first->transport.device_pid();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  Error e = error_of([&] { first->transport.mmio_read(regs::ID); });
  EXPECT_EQ(e.code(), ErrorCode::kDevice);
  EXPECT_NE(std::string(e.what()).find("connection to the device server lost"), std::string::npos) << e.what();
  first.reset();  // no goodbye to a dead server: must not hang or throw
  EXPECT_TRUE(test::eventually([&] { return server.log().find("killed by signal 9") != std::string::npos; }))
      << server.log();
  Client second(server.address(), request("tc1-8"));
  EXPECT_NE(second.transport.device_pid(), pid);
  EXPECT_EQ(test::run_gemm(second.runtime, find_config("tc1-8"), 16, 8, 24, 4).mismatches, 0u);
}

// Over TCP (and over a unix socket without shared memory) device memory goes inline in frames; results and
// cycles are the same, transfers larger than a frame included.
TEST(Server, InlineDataOverTcpAndUnixGivesTheSameResults) {
  Server tcp(true);
  Server unix_server;
  drv::DeviceRequest inline_unix = request("tc1-16", TensorEngineKind::kFast);
  inline_unix.shared_memory = false;
  Client over_tcp(tcp.address(), request("tc1-16", TensorEngineKind::kFast));
  Client over_unix(unix_server.address(), inline_unix);
  Client shm(unix_server.address(), request("tc1-16", TensorEngineKind::kFast));
  EXPECT_FALSE(over_tcp.transport.shared_memory());
  EXPECT_FALSE(over_unix.transport.shared_memory());
  EXPECT_TRUE(shm.transport.shared_memory());
  const auto g1 = test::run_gemm(over_tcp.runtime, find_config("tc1-16"), 64, 96, 80, 7);
  const auto g2 = test::run_gemm(over_unix.runtime, find_config("tc1-16"), 64, 96, 80, 7);
  EXPECT_EQ(g1.mismatches, 0u);
  EXPECT_EQ(g1.cycles, g2.cycles);
  EXPECT_TRUE(g1.c == g2.c);
  // 9 MiB: more than one inline frame (4 MiB) and more than the shared buffer (8 MiB).
  for (Client* c : {&over_tcp, &over_unix, &shm}) {
    std::vector<uint8_t> data(9 << 20);
    for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * 13 + i / 4096);
    const uint64_t at = c->driver.alloc(data.size());
    c->driver.write(at, data);
    std::vector<uint8_t> back(data.size());
    c->driver.read(at, back);
    EXPECT_TRUE(back == data) << c->transport.describe();
    c->driver.free(at);
  }
}

// The transport bench's quick mode: every transport with every figure, and the same GEMM cycles on all of
// them. Nothing is asserted about speed (the figures depend on the host and its load).
TEST(Server, TransportBenchQuickJsonHasEveryFigure) {
  FILE* p = popen(TCEMU_BENCH_TRANSPORT " --quick --json 2>&1", "r");
  ASSERT_TRUE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  std::vector<std::string> names;
  for (const auto& t : j.at("transports")) {
    names.push_back(t.at("transport"));
    for (const char* key :
         {"mem_write_mb_s", "mem_read_mb_s", "mem_write_4k_per_s", "mmio_round_trips_per_s", "gemm_seconds"})
      EXPECT_GT(t.at(key).get<double>(), 0) << key << " in " << t.dump();
    EXPECT_EQ(t.at("gemm_cycles"), j["transports"][0]["gemm_cycles"]) << t.dump();
    for (const char* key : {"mem_write", "mem_read", "mem_write_4k", "mmio", "gemm_time"})
      EXPECT_GT(t.at("vs_in_process").at(key).get<double>(), 0) << key << " in " << t.dump();
  }
  EXPECT_EQ(names, (std::vector<std::string>{"in-process", "unix (shm)", "unix (inline)", "tcp"}));
}

}  // namespace
}  // namespace tcemu
