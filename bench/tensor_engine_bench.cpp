// `tcemu bench tensor-engine`: see tensor_engine_bench.h and docs/bench.md.
//
// The parent process only orchestrates: it starts one child per measurement (this executable again, with
// `bench tensor-engine --part NAME ...`), reads the child's one-line JSON answer from a pipe, and prints the
// report. Children are needed because SystemC allows one device per process (each device config and engine
// gets its own), and because OpenBLAS picks its kernels once, when the library initialises, from
// OPENBLAS_CORETYPE: the sgemm child gets the variable in the environment it is started with, and loads
// OpenBLAS with dlopen() only after that (linking it would initialise it in a constructor before main; a
// setenv() in the program's own constructors comes too late, measured). Loading it at run time also keeps
// OpenBLAS and its thread pool out of every other tcemu command.
#include "tensor_engine_bench.h"

#include "kernels_bench.h"

#include <cblas.h>  // prototypes only: the functions are looked up with dlsym()
#include <cpuid.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "inproc_transport.h"
#include "tcemu/config.h"
#include "tcemu/drv/driver.h"
#include "tcemu/error.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/kb/linear.h"
#include "tcemu/kb/ops.h"
#include "tcemu/kb/program.h"
#include "tcemu/numerics.h"
#include "tcemu/rt/runtime.h"
#include "te_speed.h"

extern char** environ;

namespace tcemu::bench {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Calls `once` (which returns its own wall seconds) until at least `min_seconds` have passed and it ran at
// least `min_runs` times; returns every run's seconds.
std::vector<double> repeat(double min_seconds, int min_runs, const std::function<double()>& once) {
  std::vector<double> runs;
  double total = 0;
  while (int(runs.size()) < min_runs || total < min_seconds) {
    runs.push_back(once());
    total += runs.back();
  }
  return runs;
}

// ---- Options -------------------------------------------------------------------------------------------

struct Options {
  bool json = false;
  bool quick = false;
  std::optional<double> min_time;       // seconds per measurement (default 1, --quick 0.05)
  std::vector<int> sizes;               // GEMM M = N = K
  std::optional<std::string> coretype;  // --openblas-coretype: overrides the detection
  // Child side (--part and its arguments).
  std::string part;
  std::string config;
  std::optional<TensorEngineKind> engine;
  int threads = 1;
  int m = 0, n = 0, k = 0;
};

int parse_int(const std::string& name, const std::string& v, int lo, int hi) {
  size_t used = 0;
  int x = 0;
  try {
    x = std::stoi(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != v.size()) throw UsageError(fmt::format("--{}: '{}' is not an integer", name, v));
  if (x < lo || x > hi) throw UsageError(fmt::format("--{}: {} is out of range [{}, {}]", name, x, lo, hi));
  return x;
}

Options parse(const std::vector<std::string>& args) {
  Options o;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string a = args[i], value;
    if (a.rfind("--", 0) != 0) throw UsageError("bench tensor-engine: unexpected argument '" + a + "'");
    std::string name = a.substr(2);
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos)
      value = name.substr(eq + 1), name.resize(eq), has_value = true;
    auto take = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= args.size()) throw UsageError("option --" + name + " needs a value");
      return args[++i];
    };
    if (name == "json")
      o.json = true;
    else if (name == "quick")
      o.quick = true;
    else if (name == "min-time") {
      const std::string v = take();
      char* end = nullptr;
      const double t = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end || !(t > 0) || t > 600)
        throw UsageError("--min-time: '" + v + "' is not a number of seconds in (0, 600]");
      o.min_time = t;
    } else if (name == "size")
      o.sizes.push_back(parse_int(name, take(), 16, 8192));
    else if (name == "openblas-coretype")
      o.coretype = take();
    else if (name == "part")
      o.part = take();
    else if (name == "config")
      o.config = take();
    else if (name == "tensor-engine") {
      try {
        o.engine = parse_tensor_engine(take());
      } catch (const Error& e) {
        throw UsageError(std::string("--tensor-engine: ") + e.what());
      }
    } else if (name == "threads")
      o.threads = parse_int(name, take(), 1, 256);
    else if (name == "m")
      o.m = parse_int(name, take(), 1, 1 << 16);
    else if (name == "n")
      o.n = parse_int(name, take(), 1, 1 << 16);
    else if (name == "k")
      o.k = parse_int(name, take(), 1, 1 << 16);
    else
      throw UsageError("bench tensor-engine: unknown option --" + name);
  }
  return o;
}

// ---- OpenBLAS ------------------------------------------------------------------------------------------

// The OPENBLAS_CORETYPE that matches this CPU, and why. OpenBLAS's own detection (0.3.21, Debian's) is
// unreliable on virtualised hosts (it falls back to Prescott, without AVX, on some Xeons); naming the target
// makes it use the kernels the CPU can run. Zen 4 executes 512-bit operations as two 256-bit halves, and
// OpenBLAS 0.3.21 has no Zen 4 target: its Zen (AVX2) kernels measured as fast as or faster than the AVX-512
// ones of SkylakeX and Cooperlake there (docs/bench.md), so AMD gets ZEN.
struct CoreType {
  std::string name;  // empty: no AVX2, leave OpenBLAS to its own detection
  std::string reason;
};

CoreType detect_coretype() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  char vendor[13] = {};
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    std::memcpy(vendor, &b, 4), std::memcpy(vendor + 4, &d, 4), std::memcpy(vendor + 8, &c, 4);
  }
  unsigned family = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    family = (a >> 8) & 0xF;
    if (family == 0xF) family += (a >> 20) & 0xFF;
  }
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
  const std::string isa = bf16 ? "AVX-512 with BF16" : avx512 ? "AVX-512" : avx2 ? "AVX2+FMA" : "no AVX2";
  const std::string cpu = fmt::format("{} family 0x{:x}, {}", vendor, family, isa);
  if (!avx2) return {"", cpu + ": OpenBLAS's own detection"};
  if (std::string(vendor) == "AuthenticAMD" && family >= 0x17) return {"ZEN", cpu + ": AMD Zen"};
  if (bf16) return {"COOPERLAKE", cpu};
  if (avx512) return {"SKYLAKEX", cpu};
  return {"HASWELL", cpu};
}

struct OpenBlas {
  decltype(&cblas_sgemm) sgemm = nullptr;
  decltype(&openblas_set_num_threads) set_num_threads = nullptr;
  decltype(&openblas_get_num_threads) get_num_threads = nullptr;
  decltype(&openblas_get_corename) get_corename = nullptr;
  decltype(&openblas_get_config) get_config = nullptr;
  std::string library;
};

// Loads OpenBLAS (the library CMake found, else the soname); it initialises now, reading OPENBLAS_CORETYPE.
OpenBlas load_openblas() {
  std::string tried;
  void* h = nullptr;
  for (const char* path : {TCEMU_OPENBLAS_LIBRARY, "libopenblas.so.0"}) {
    if (!*path) continue;
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h) {
      OpenBlas ob;
      ob.library = path;
      auto sym = [&](auto& f, const char* name) {
        f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(h, name));
        if (!f) throw Error(ErrorCode::kIo, fmt::format("OpenBLAS '{}' has no symbol {}", path, name));
      };
      sym(ob.sgemm, "cblas_sgemm");
      sym(ob.set_num_threads, "openblas_set_num_threads");
      sym(ob.get_num_threads, "openblas_get_num_threads");
      sym(ob.get_corename, "openblas_get_corename");
      sym(ob.get_config, "openblas_get_config");
      return ob;
    }
    tried += fmt::format("{}'{}' ({})", tried.empty() ? "" : ", ", path, dlerror());
  }
  throw Error(ErrorCode::kIo, "cannot load OpenBLAS: tried " + tried + " (scripts/setup.sh installs libopenblas-dev)");
}

std::vector<float> random_bf16_floats(std::mt19937_64& rng, size_t n) {
  // Uniform in [-1, 1), rounded to bf16 (as tcemu gemm's inputs).
  std::vector<float> v(n);
  for (auto& x : v) {
    const double u = double(rng() >> 11) * 0x1.0p-53;
    x = num::bf16_to_f32(num::f32_to_bf16(float(2.0 * u - 1.0)));
  }
  return v;
}

// sgemm C = A B, row-major, M = N = K = each size, with 1 thread and then `threads` threads.
json part_sgemm(const Options& o) {
  OpenBlas ob = load_openblas();
  json out = {{"openblas_coretype", ob.get_corename()},
              {"openblas_config", ob.get_config()},
              {"openblas_library", ob.library},
              {"sizes", json::array()}};
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  out["openblas_coretype_env"] = env ? env : "";
  for (int s : o.sizes) {
    std::mt19937_64 rng{uint64_t(s)};
    const size_t nn = size_t(s) * s;
    std::vector<float> A = random_bf16_floats(rng, nn), B = random_bf16_floats(rng, nn), C(nn);
    json row = {{"size", s}};
    for (int t : {1, o.threads}) {
      if (t == 1 && row.contains("threads_1")) continue;
      ob.set_num_threads(t);
      auto once = [&] {
        const auto t0 = Clock::now();
        ob.sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s, s, s, 1.0f, A.data(), s, B.data(), s, 0.0f, C.data(), s);
        return seconds_since(t0);
      };
      once();  // warm-up: thread pool, buffers, page faults
      const double sec = median(repeat(*o.min_time, 3, once));
      row[fmt::format("threads_{}", t)] = {
          {"threads", ob.get_num_threads()}, {"seconds", sec}, {"macs_per_s", double(s) * s * s / sec}};
    }
    out["sizes"].push_back(row);
  }
  return out;
}

// ---- The device ----------------------------------------------------------------------------------------

// The device, driver and runtime of this (child) process.
struct Session {
  Session(const DeviceConfig& cfg, const emu::DeviceOptions& opts)
      : transport(cfg, opts), driver(transport), runtime(driver) {}
  drv::InProcessTransport transport;
  drv::Driver driver;
  rt::Runtime runtime;
};

emu::DeviceOptions device_options(const Options& o) {
  emu::DeviceOptions d;
  d.tensor_engine = o.engine;
  return d;
}

// Times Runtime::run of a loaded model: binding the inputs, the job, reading the outputs back.
struct Timed {
  uint64_t cycles = 0;
  std::vector<double> seconds;      // every run, wall time
  std::vector<double> cpu_seconds;  // every run, this process's CPU time (less sensitive to a busy host)
};

double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

Timed time_runs(Session& s, rt::LoadedModel& lm, const rt::TensorMap& in, double min_seconds, int min_runs) {
  Timed t;
  t.seconds = repeat(min_seconds, min_runs, [&] {
    const double c0 = cpu_now();
    const auto t0 = Clock::now();
    rt::RunResult r = s.runtime.run(lm, in);
    const double sec = seconds_since(t0);
    t.cpu_seconds.push_back(cpu_now() - c0);
    if (t.cycles && r.cycles != t.cycles)
      throw Error(ErrorCode::kDevice, fmt::format("the same job took {} and then {} cycles", t.cycles, r.cycles));
    t.cycles = r.cycles;
    return sec;
  });
  return t;
}

// (a) The whole emulated GEMM (kb::build_gemm) at each size: a first run (page faults, caches), then runs
// until min_time; the median.
json part_gemm(const Options& o) {
  const DeviceConfig& cfg = find_config(o.config);
  Session s(cfg, device_options(o));
  json out = {{"config", cfg.name},
              {"tensor_engine", tensor_engine_name(s.driver.info().tensor_engine)},
              {"sizes", json::array()}};
  for (int n : o.sizes) {
    model::Model m = kb::build_gemm(cfg, n, n, n);
    std::mt19937_64 rng(1);
    rt::TensorMap in;
    in["a"] = {{n, n}, random_bf16_floats(rng, size_t(n) * n)};
    in["b"] = {{n, n}, random_bf16_floats(rng, size_t(n) * n)};
    auto lm = s.runtime.load(m);
    Timed first = time_runs(s, *lm, in, 0, 1);
    Timed t = time_runs(s, *lm, in, *o.min_time, 3);
    const double sec = median(t.seconds);
    const double macs = double(n) * n * n;
    out["sizes"].push_back({{"m", n},
                            {"n", n},
                            {"k", n},
                            {"cycles", t.cycles},
                            {"runs", t.seconds.size()},
                            {"first_run_seconds", first.seconds[0]},
                            {"seconds", sec},
                            {"cpu_seconds", median(t.cpu_seconds)},
                            {"macs", macs},
                            {"macs_per_s", macs / sec},
                            {"device_cycles_per_s", double(t.cycles) / sec}});
    s.runtime.unload(*lm);
  }
  return out;
}

// (a) The fast engine model alone at rows x rows, with the best kernel (bench/te_speed.h).
json part_fast_model(const Options& o) {
  const int n = o.sizes.empty() ? 128 : o.sizes[0];
  const std::string_view kernel = rtl::supported_fast_kernels().front();
  TeSpeed r = measure_fast_model(n, n, kernel, *o.min_time);
  return {{"rows", n},
          {"cols", n},
          {"kernel", kernel},
          {"columns", r.cycles},
          {"seconds", r.seconds},
          {"columns_per_s", r.cycles_per_second()},
          {"macs_per_s", r.macs_per_second()}};
}

// (b) The bare verilated engine (bench/te_speed.h): on the device stream job's data sizes (compared with
// the device), and as tcemu-bench-rtl runs it (weights loaded once, 64 moving columns repeated).
json part_rtl_bare(const Options& o) {
  const int n = o.sizes.at(0);
  const TeSpeed r = measure_rtl_stream(n, n, *o.min_time);
  const TeSpeed small = measure_rtl_bare(n, n, *o.min_time);
  return {{"rows", n},
          {"cols", n},
          {"cycles", r.cycles},
          {"seconds", r.seconds},
          {"cycles_per_s", r.cycles_per_second()},
          {"small_pool_cycles_per_s", small.cycles_per_second()}};
}

// (b) The same RTL clocked by TensorE inside the device. Two models: "fill" DMAs random bf16 into SBUF once;
// "stream" is TensorE alone, `matmuls` bf16 matmuls of 512 columns with K = rows and M = cols back to back
// (each next weight load hidden under the current matmul's columns, as in a GEMM's inner loop), cycling
// through SBUF operands and the 8 PSUM banks, accumulating after the first round. With no other engine and no
// semaphore wait, TensorE clocks the array on every cycle of the stream job, so its device cycles are RTL
// cycles (a column every cycle except the first weight load and the final drain); its wall time is the
// whole Runtime::run (SystemC scheduling, operand gathering, PSUM writes, driver and runtime included).
json part_rtl_systemc(const Options& o) {
  const DeviceConfig& cfg = find_config(o.config);
  Session s(cfg, device_options(o));
  const int rows = cfg.rows, cols = cfg.cols;
  constexpr int kColumns = 512, kMovingSets = 6, kWeightSets = 4;
  const uint32_t mv_bytes = kColumns * 2;
  const uint32_t fill = (kMovingSets + 1) * mv_bytes;  // bytes per partition: weight sets, then moving sets
  if (cfg.sbuf_partition_bytes < fill || cfg.psum_banks < 1 || cfg.psum_bank_bytes < 4 * kColumns)
    throw Error(ErrorCode::kCapacity, fmt::format("config {}: SBUF/PSUM too small for the stream job", cfg.name));

  kb::Program fp(cfg, "bench_fill");
  const uint64_t x = fp.add_tensor("x", model::DType::kBf16, model::TensorKind::kInput, {rows, fill / 2});
  fp.emit(isa::kEngineDma0,
          kb::ops::dma(x, kb::sbuf_addr(cfg, 0, 0), fill, uint64_t(rows), fill, cfg.sbuf_partition_bytes));
  auto fill_model = s.runtime.load(fp.finish());
  std::mt19937 rng(1234);
  rt::TensorMap fin;
  fin["x"] = {{rows, fill / 2}, std::vector<float>(size_t(rows) * fill / 2)};
  for (float& v : fin["x"].data) v = num::bf16_to_f32(random_bf16(rng));
  s.runtime.run(*fill_model, fin);

  const int matmuls = o.quick ? 8 : 64;
  kb::Program sp(cfg, "bench_stream");
  for (int i = 0; i < matmuls; ++i) {
    isa::Instr in;
    in.opcode = isa::Opcode::Matmul;
    in.k = uint64_t(rows), in.m = uint64_t(cols), in.n = kColumns;
    in.st_part = in.mv_part = in.out_part = 0;
    in.st_off = uint64_t(i % kWeightSets) * 2 * uint64_t(cols);
    in.mv_off = uint64_t(1 + i % kMovingSets) * mv_bytes;
    in.out_off = uint64_t(i % cfg.psum_banks) * cfg.psum_bank_bytes;
    in.accumulate = i >= cfg.psum_banks;
    sp.emit(isa::kEngineTensor, in);
  }
  auto stream = s.runtime.load(sp.finish());
  Timed t = time_runs(s, *stream, {}, *o.min_time, 2);
  double total = 0;
  for (double x : t.seconds) total += x;
  const double cycles = double(t.cycles) * double(t.seconds.size());
  return {{"config", cfg.name},     {"rows", rows},
          {"cols", cols},           {"tensor_engine", tensor_engine_name(s.driver.info().tensor_engine)},
          {"matmuls", matmuls},     {"columns_per_job", uint64_t(matmuls) * kColumns},
          {"job_cycles", t.cycles}, {"jobs", t.seconds.size()},
          {"seconds", total},       {"cycles_per_s", cycles / total}};
}

// (c) The linear layer (kb::build_linear: matmul, ScalarE bias + activation, VectorE residual, DMA), inputs
// as `tcemu linear` makes them; runs until min_time, the median.
json part_linear(const Options& o) {
  const DeviceConfig& cfg = find_config(o.config);
  Session s(cfg, device_options(o));
  const int M = o.m, N = o.n, K = o.k;
  model::Model m = kb::build_linear(cfg, M, N, K);
  std::mt19937_64 rng(1);
  rt::TensorMap in;
  in["xT"] = {{K, M}, random_bf16_floats(rng, size_t(K) * M)};
  in["w"] = {{K, N}, random_bf16_floats(rng, size_t(K) * N)};
  for (float& v : in["w"].data) v *= 2.0f / std::sqrt(float(K));
  in["b"] = {{N}, random_bf16_floats(rng, size_t(N))};
  in["rT"] = {{N, M}, random_bf16_floats(rng, size_t(N) * M)};
  auto lm = s.runtime.load(m);
  Timed t = time_runs(s, *lm, in, *o.min_time, 1);
  const double sec = median(t.seconds);
  return {{"kernel", "linear"},
          {"config", cfg.name},
          {"tensor_engine", tensor_engine_name(s.driver.info().tensor_engine)},
          {"m", M},
          {"n", N},
          {"k", K},
          {"cycles", t.cycles},
          {"runs", t.seconds.size()},
          {"seconds", sec},
          {"device_cycles_per_s", double(t.cycles) / sec}};
}

int run_part(const Options& o) {
  json r;
  if (o.part == "sgemm")
    r = part_sgemm(o);
  else if (o.part == "gemm")
    r = part_gemm(o);
  else if (o.part == "fast-model")
    r = part_fast_model(o);
  else if (o.part == "rtl-bare")
    r = part_rtl_bare(o);
  else if (o.part == "rtl-systemc")
    r = part_rtl_systemc(o);
  else if (o.part == "linear")
    r = part_linear(o);
  else
    throw UsageError("bench tensor-engine: unknown --part '" + o.part + "'");
  fmt::print("{}\n", r.dump());
  return 0;
}

// ---- The parent ----------------------------------------------------------------------------------------

std::string self_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error(ErrorCode::kIo, fmt::format("cannot read /proc/self/exe: {}", std::strerror(errno)));
  return std::string(buf, size_t(n));
}

bool progress_on() { return isatty(fileno(stderr)) != 0; }

template <typename... T>
void progress(fmt::format_string<T...> f, T&&... args) {
  if (!progress_on()) return;
  fmt::print(stderr, "tcemu bench: {}\n", fmt::format(f, std::forward<T>(args)...));
}

// Runs `tcemu bench tensor-engine --part ...` with `args` and the environment changed by `env` (a value
// sets, nullopt removes); returns the JSON object it printed.
json run_child(const std::vector<std::string>& args, const std::map<std::string, std::optional<std::string>>& env) {
  static const std::string self = self_path();
  std::vector<std::string> argv_s = {self, "bench", "tensor-engine"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (!env.count(kv.substr(0, kv.find('=')))) env_s.push_back(kv);
  }
  for (const auto& [k, v] : env)
    if (v) env_s.push_back(k + "=" + *v);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::string what;
  for (size_t i = 3; i < argv_s.size(); ++i) what += (what.empty() ? "" : " ") + argv_s[i];
  int fd[2];
  if (pipe(fd) != 0) throw Error(ErrorCode::kIo, fmt::format("pipe: {}", std::strerror(errno)));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fd[0]);
  posix_spawn_file_actions_addclose(&fa, fd[1]);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, self.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fd[1]);
  if (err != 0) {
    close(fd[0]);
    throw Error(ErrorCode::kIo, fmt::format("cannot start '{}': {}", self, std::strerror(err)));
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, size_t(n));
  }
  close(fd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(ErrorCode::kDevice, fmt::format("measurement '{}' failed ({} {}; its error is above)", what,
                                                WIFEXITED(status) ? "exit status" : "signal",
                                                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
  try {
    return json::parse(out);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kFormat,
                fmt::format("measurement '{}' printed no JSON object ({}): {}", what, e.what(), out));
  }
}

std::string host_cpu() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) return "unknown";
  char line[512];
  std::string name = "unknown";
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) == 0) {
      const char* c = std::strchr(line, ':');
      if (c) name = std::string(c + 2, std::strcspn(c + 2, "\n"));
      break;
    }
  }
  std::fclose(f);
  return name;
}

std::string sizes_arg(const std::vector<int>& sizes) {
  std::string s;
  for (int n : sizes) s += fmt::format("{}{}", s.empty() ? "" : ",", n);
  return s;
}

std::string sci(double x) { return fmt::format("{:.2e}", x); }

int run_bench(const Options& o) {
  const bool quick = o.quick;
  const std::vector<int> sizes = !o.sizes.empty() ? o.sizes
                                 : quick          ? std::vector<int>{128}
                                                  : std::vector<int>{512, 1024};
  const double mt = *o.min_time;
  const std::string mts = fmt::format("{}", mt);
  CoreType ct = detect_coretype();
  if (o.coretype) ct = {*o.coretype, "--openblas-coretype"};
  const int threads2 = std::max(2, int(std::min<long>(sysconf(_SC_NPROCESSORS_ONLN), 2)));
  auto with_sizes = [&](std::vector<std::string> a) {
    for (int n : sizes) a.push_back("--size"), a.push_back(std::to_string(n));
    return a;
  };

  // (a) OpenBLAS with the chosen core type (1 thread, then 2) and the emulator, alternating, in `rounds` rounds:
  // for each side and size the better round, so that a burst of other work on the host during one measurement
  // does not decide the ratio. Then OpenBLAS with its own core detection (1 thread).
  std::map<std::string, std::optional<std::string>> env_ct = {{"OPENBLAS_CORETYPE", std::nullopt},
                                                              {"OPENBLAS_NUM_THREADS", std::to_string(threads2)}};
  if (!ct.name.empty()) env_ct["OPENBLAS_CORETYPE"] = ct.name;
  const int rounds = quick ? 1 : 2;
  json sg, em;
  for (int round = 1; round <= rounds; ++round) {
    progress("round {}/{}: OpenBLAS sgemm, OPENBLAS_CORETYPE={} ({}), sizes {}", round, rounds,
             ct.name.empty() ? "(unset)" : ct.name, ct.reason, sizes_arg(sizes));
    json s =
        run_child(with_sizes({"--part", "sgemm", "--threads", std::to_string(threads2), "--min-time", mts}), env_ct);
    progress("round {}/{}: emulated GEMM on trn1, fast tensor engine, sizes {}", round, rounds, sizes_arg(sizes));
    json e =
        run_child(with_sizes({"--part", "gemm", "--config", "trn1", "--tensor-engine", "fast", "--min-time", mts}), {});
    if (round == 1) {
      sg = s, em = e;
      continue;
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      for (auto& [key, value] : s["sizes"][i].items())
        if (value.is_object() && value["macs_per_s"].get<double>() > sg["sizes"][i][key]["macs_per_s"].get<double>())
          sg["sizes"][i][key] = value;
      if (e["sizes"][i]["macs_per_s"].get<double>() > em["sizes"][i]["macs_per_s"].get<double>())
        em["sizes"][i] = e["sizes"][i];
    }
  }
  progress("OpenBLAS sgemm with its own core detection (OPENBLAS_CORETYPE unset)");
  json sg_default = run_child(with_sizes({"--part", "sgemm", "--threads", "1", "--min-time", mts}),
                              {{"OPENBLAS_CORETYPE", std::nullopt}, {"OPENBLAS_NUM_THREADS", "1"}});
  progress("fast tensor engine model alone, 128x128");
  json fm = run_child({"--part", "fast-model", "--size", "128", "--min-time", mts}, {});

  json report = {{"bench", "tensor-engine"},
                 {"quick", quick},
                 {"min_time_s", mt},
                 {"host_cpu", host_cpu()},
                 {"host_cores", sysconf(_SC_NPROCESSORS_ONLN)}};
  report["openblas_coretype"] = sg["openblas_coretype"];  // openblas_get_corename() of the compared run
  report["openblas_coretype_requested"] = ct.name;
  report["openblas_coretype_reason"] = ct.reason;
  report["openblas_default_coretype"] = sg_default["openblas_coretype"];
  report["openblas_threads"] = sg["sizes"][0]["threads_1"]["threads"];
  report["openblas_config"] = sg["openblas_config"];
  report["openblas_library"] = sg["openblas_library"];
  json gemm = json::array();
  for (size_t i = 0; i < sizes.size(); ++i) {
    const json& e = em["sizes"][i];
    const json& b = sg["sizes"][i];
    json g = {{"m", e["m"]},
              {"n", e["n"]},
              {"k", e["k"]},
              {"config", em["config"]},
              {"tensor_engine", em["tensor_engine"]},
              {"cycles", e["cycles"]},
              {"rounds", rounds},
              {"runs", e["runs"]},
              {"seconds", e["seconds"]},
              {"first_run_seconds", e["first_run_seconds"]},
              {"macs_per_s", e["macs_per_s"]},
              {"device_cycles_per_s", e["device_cycles_per_s"]},
              {"openblas_macs_per_s", b["threads_1"]["macs_per_s"]},
              {"openblas_default_macs_per_s", sg_default["sizes"][i]["threads_1"]["macs_per_s"]}};
    if (b.contains(fmt::format("threads_{}", threads2))) {
      g["openblas_multi_threads"] = b[fmt::format("threads_{}", threads2)]["threads"];
      g["openblas_multi_macs_per_s"] = b[fmt::format("threads_{}", threads2)]["macs_per_s"];
    }
    g["fast_vs_openblas"] = e["macs_per_s"].get<double>() / b["threads_1"]["macs_per_s"].get<double>();
    gemm.push_back(g);
  }
  report["gemm"] = gemm;
  report["fast_vs_openblas"] = gemm.back()["fast_vs_openblas"];  // at the largest size
  report["fast_model"] = fm;

  // (b) RTL bare vs inside SystemC.
  json rtl = json::array();
  for (int n : {16, 32}) {
    const std::string size = std::to_string(n), config = "tc1-" + size;
    progress("RTL {}x{}: bare verilated model", n, n);
    json bare = run_child({"--part", "rtl-bare", "--size", size, "--min-time", mts}, {});
    progress("RTL {}x{}: inside the SystemC device ({})", n, n, config);
    std::vector<std::string> a = {"--part",          "rtl-systemc", "--config",   config,
                                  "--tensor-engine", "rtl",         "--min-time", mts};
    if (quick) a.push_back("--quick");
    json sc = run_child(a, {});
    const int gn = quick ? 64 : 256;
    progress("RTL {}x{}: a whole GEMM {}^3 on {} (kb::build_gemm)", n, n, gn, config);
    json gm = run_child({"--part", "gemm", "--config", config, "--tensor-engine", "rtl", "--size", std::to_string(gn),
                         "--min-time", mts},
                        {});
    const json& g0 = gm["sizes"][0];
    const double b = bare["cycles_per_s"], s = sc["cycles_per_s"], small = bare["small_pool_cycles_per_s"];
    rtl.push_back({{"rows", n},
                   {"cols", n},
                   {"config", config},
                   {"rtl_bare_cycles_per_s", b},
                   {"rtl_systemc_cycles_per_s", s},
                   {"rtl_bare_over_systemc", b / s},
                   {"rtl_bare_small_pool_cycles_per_s", small},
                   {"rtl_bare_small_pool_over_systemc", small / s},
                   {"gemm_size", gn},
                   {"gemm_cycles", g0["cycles"]},
                   {"gemm_utilization", double(gn) * gn * gn / (g0["cycles"].get<double>() * n * n)},
                   {"gemm_device_cycles_per_s", g0["device_cycles_per_s"]},
                   {"systemc_job_cycles", sc["job_cycles"]},
                   {"systemc_jobs", sc["jobs"]},
                   {"systemc_matmuls_per_job", sc["matmuls"]}});
  }
  report["rtl"] = rtl;

  // (c) The mixed kernel.
  struct Mixed {
    const char* config;
    const char* engine;
    int m, n, k;
  };
  const std::vector<Mixed> mixed =
      quick ? std::vector<Mixed>{{"trn1", "fast", 128, 128, 128}, {"tc1-16", "rtl", 32, 32, 32}}
            : std::vector<Mixed>{{"trn1", "fast", 512, 512, 512}, {"tc1-16", "rtl", 512, 128, 128}};
  json mx = json::array();
  for (const Mixed& x : mixed) {
    progress("linear layer {}x{}x{} on {}, {} tensor engine", x.m, x.n, x.k, x.config, x.engine);
    mx.push_back(
        run_child({"--part", "linear", "--config", x.config, "--tensor-engine", x.engine, "--m", std::to_string(x.m),
                   "--n", std::to_string(x.n), "--k", std::to_string(x.k), "--min-time", mts},
                  {}));
  }
  report["mixed"] = mx;

  if (o.json) {
    fmt::print("{}\n", report.dump());
    return 0;
  }
  fmt::print("tcemu bench tensor-engine{} on {} ({} cores); the emulator is single-threaded\n\n",
             quick ? " --quick" : "", report["host_cpu"].get<std::string>(), report["host_cores"].get<long>());
  fmt::print(
      "(a) bf16 GEMM M = N = K: the whole emulated GEMM (trn1, 128x128, fast engine; host MAC/s of Runtime::run)\n"
      "    vs OpenBLAS sgemm, core type {} ({}), default detection: {}\n",
      report["openblas_coretype"].get<std::string>(), ct.reason,
      report["openblas_default_coretype"].get<std::string>());
  fmt::print("    {:>6} {:>10} {:>9} {:>12} {:>13} {:>8} {:>14} {:>14}\n", "size", "cycles", "seconds",
             "emulator MAC/s", "sgemm 1 thr", "ratio", fmt::format("sgemm {} thr", threads2), "sgemm default");
  for (const json& g : gemm) {
    fmt::print("    {:>6} {:>10} {:>9.4f} {:>14} {:>13} {:>8.3f} {:>14} {:>14}\n", g["m"].get<int>(),
               g["cycles"].get<uint64_t>(), g["seconds"].get<double>(), sci(g["macs_per_s"]),
               sci(g["openblas_macs_per_s"]), g["fast_vs_openblas"].get<double>(),
               g.contains("openblas_multi_macs_per_s") ? sci(g["openblas_multi_macs_per_s"]) : "-",
               sci(g["openblas_default_macs_per_s"]));
  }
  fmt::print("    fast engine model alone, {}x{} ({}): {} MAC/s\n\n", fm["rows"].get<int>(), fm["cols"].get<int>(),
             fm["kernel"].get<std::string>(), sci(fm["macs_per_s"]));
  fmt::print(
      "(b) RTL tensor engine, cycles per host second: bare verilated model vs clocked by TensorE in the SystemC "
      "device\n");
  fmt::print(
      "    (the same stream of 512-column matmuls and data sizes in both; the last two columns: bare on a 64-column\n"
      "    pool with fixed weights, as tcemu-bench-rtl runs it, which the host's branch predictors learn)\n");
  fmt::print("    {:>6} {:>14} {:>16} {:>14} {:>16} {:>14}\n", "size", "bare", "inside SystemC", "bare/SystemC",
             "bare, 64-col pool", "pool/SystemC");
  for (const json& r : rtl)
    fmt::print("    {:>6} {:>14.0f} {:>16.0f} {:>14.3f} {:>16.0f} {:>14.3f}\n",
               fmt::format("{}x{}", r["rows"].get<int>(), r["cols"].get<int>()),
               r["rtl_bare_cycles_per_s"].get<double>(), r["rtl_systemc_cycles_per_s"].get<double>(),
               r["rtl_bare_over_systemc"].get<double>(), r["rtl_bare_small_pool_cycles_per_s"].get<double>(),
               r["rtl_bare_small_pool_over_systemc"].get<double>());
  for (const json& r : rtl)
    fmt::print(
        "    {}: a whole GEMM {}^3 (kb::build_gemm, RTL; idle array cycles cost little): {:.0f} device "
        "cycles/s at {:.0f}% utilisation\n",
        r["config"].get<std::string>(), r["gemm_size"].get<int>(), r["gemm_device_cycles_per_s"].get<double>(),
        100.0 * r["gemm_utilization"].get<double>());
  fmt::print("\n(c) mixed kernel: linear layer (TensorE matmul, ScalarE bias + gelu_tanh, VectorE residual, DMA)\n");
  fmt::print("    {:>7} {:>6} {:>15} {:>10} {:>9} {:>16}\n", "config", "engine", "M x N x K", "cycles", "seconds",
             "device cycles/s");
  for (const json& x : mx)
    fmt::print("    {:>7} {:>6} {:>15} {:>10} {:>9.3f} {:>16.0f}\n", x["config"].get<std::string>(),
               x["tensor_engine"].get<std::string>(),
               fmt::format("{}x{}x{}", x["m"].get<int>(), x["n"].get<int>(), x["k"].get<int>()),
               x["cycles"].get<uint64_t>(), x["seconds"].get<double>(), x["device_cycles_per_s"].get<double>());
  return 0;
}

}  // namespace

int run_bench_command(const std::vector<std::string>& args) {
  try {
    if (!args.empty() && args[0] == "kernels")
      return run_kernels_bench(std::vector<std::string>(args.begin() + 1, args.end()));
    if (args.empty() || args[0] != "tensor-engine")
      throw UsageError(args.empty() ? "bench: name a benchmark (tensor-engine, kernels)"
                                    : "bench: unknown benchmark '" + args[0] + "' (known: tensor-engine, kernels)");
    Options o = parse(args);
    if (!o.min_time) o.min_time = o.quick ? 0.05 : 1.0;
    if (!o.part.empty()) return run_part(o);
    return run_bench(o);
  } catch (const UsageError& e) {
    fmt::print(stderr, "tcemu: error: {}\n(run 'tcemu --help' for usage)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcemu: error: {}\n", e.what());
    return 1;
  }
}

}  // namespace tcemu::bench
