// tcemu: the command line. Every command that reports figures also has --json.
//
//   tcemu info  [--config C] [--json]
//   tcemu gemm  --m M --n N --k K [--config C] [--seed S] [--save-model FILE] [--json]
//   tcemu linear --m M --n N --k K [--act F] [--no-residual] [--config C] [--seed S] [--json]
//   tcemu run   MODEL.tcm --input NAME=FILE.npy ... --output-dir DIR [--json]
//   tcemu demo  [--json]          the main job: the embedded default model on the default config
//   tcemu bench tensor-engine [--quick] [--json]   host speed of the tensor engine's models (bench/)
//   tcemu bench kernels [--quick] [--json]         the kernel library's cycles and utilisation (bench/)
//   tcemu serve --listen unix:PATH|tcp:HOST:PORT   the device as a server for several clients (docs/server.md)
//
// Errors print one line "tcemu: error: ..." and exit with status 1 (2 for usage errors).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "fault_options.h"
#include "tcemu/drv/open_transport.h"
#include "tcemu/srv/server.h"
#include "tcemu/assembly.h"
#include "tcemu/config.h"
#include "tcemu/docblock.h"
#include "tcemu/drv/driver.h"
#include "tcemu/error.h"
#include "tcemu/file_io.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/kb/linear.h"
#include "tcemu/kb/transformer.h"
#include "tcemu/ref_block.h"
#include "tcemu/model.h"
#include "tcemu/npy.h"
#include "tcemu/numerics.h"
#include "tcemu/reference.h"
#include "tcemu/rt/runtime.h"
#include "tensor_engine_bench.h"

namespace {

using namespace tcemu;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr const char* kUsage = R"(usage: tcemu <command> [options]

commands:
  info   [--config C] [--json]                    device configuration and capabilities
  gemm   --m M --n N --k K [--a-transposed] [--config C] [--seed S] [--save-model FILE]
         [--profile TRACE.json] [--json]          random bf16 GEMM c = a x b on the emulator, checked
                                                  bit-exactly against the golden model; --a-transposed
                                                  binds a as aT [K, M] (Trainium's stationary layout)
  linear --m M --n N --k K [--act F] [--no-residual] [--config C] [--seed S] [--save-model FILE]
         [--profile TRACE.json] [--json]          linear layer yT = F(W^T xT + b) + rT: matmul on TensorE,
                                                  bias + F on ScalarE, residual add on VectorE (F default
                                                  gelu_tanh), checked against the fp64 reference
  run    MODEL.tcm --input NAME=FILE.npy ... --output-dir DIR [--config C] [--profile TRACE.json] [--json]
                                                  run a model file; outputs are written as DIR/NAME.npy
  dis    MODEL.tcm [-o OUT.s]                     print a model file as text assembly (stdout unless -o);
                                                  the format: docs/model-format.md, "Text assembly"
  asm    IN.s -o OUT.tcm                          build the model file from text assembly; of dis's output
                                                  it gives back the same file, byte for byte
  doc    isa|registers|faults [--update FILE.md]  print (or refresh in FILE.md) a generated doc table
  profile summary TRACE.json [--json]             summarise a profile written by --profile
  demo   [--profile TRACE.json] [--json]          the main job: the embedded default model, a transformer
         [--seq S] [--d-model D] [--heads H]      block (LayerNorm, causal multi-head attention, MLP with
         [--d-ff F] [--no-causal] [--seed N]      gelu, residuals; default 512 tokens, d_model 512, 4
         [--config C] [--save-model FILE]         heads, d_ff 2048) on the default config (trn1), checked
                                                  against the fp64 reference, with its profile summary and
                                                  trace (default file: tcemu_demo_trace.json)
  bench  tensor-engine [--quick] [--min-time S] [--size N ...] [--openblas-coretype NAME] [--json]
                                                  host speed of the tensor engine's models: the emulated bf16
                                                  GEMM (trn1, fast engine) vs OpenBLAS sgemm on one thread,
                                                  RTL cycles/s bare vs inside SystemC, device cycles/s of the
                                                  linear layer (docs/bench.md)
  bench  kernels [--quick] [--config C] [--only KERNEL ...] [--json]
                                                  the kernel library on the emulated device: a row per
                                                  kernel and shape with cycles, MACs, TensorE utilisation,
                                                  the bounding engine and host time (docs/bench.md)
  serve  --listen unix:PATH|tcp:HOST:PORT [--config C] [--tensor-engine E]
                                                  the emulated device as a server that several clients
                                                  share (--device below), each with its own context and
                                                  memory; one device process per config asked for; --config
                                                  and --tensor-engine are the defaults (docs/server.md)

info, gemm, linear, run and demo take --device emu|unix:PATH|tcp:HOST:PORT: the emulator in this process
(emu), or the device of a `tcemu serve` at that address. Default: $TCEMU_DEVICE if set, else emu.

info, gemm, linear, run and demo take --tensor-engine rtl|fast|lockstep: the verilated RTL, the fast C++
model (bit- and cycle-exact with it), or both with every port compared each cycle (the first difference
stops the job with a LockstepMismatch fault naming the instruction, element and both values). Default:
the config's (trn1: fast; tc1-*: rtl).

gemm, linear, run and demo take fault injection (docs/driver.md): --fault "LINE" (repeatable, e.g.
--fault "dma_error transfer=3"), --faults FILE (a fault spec file) and --fault-seed N. The runtime
recovers from what it can (the report's "faults" section says what was injected and recovered).

gemm, linear, run and demo also take --wave FILE.fst [--wave-window FROM:TO]: an FST waveform (GTKWave)
of the tensor-engine RTL for job cycles FROM..TO (as numbered in the profile; needs the RTL: rtl or
lockstep); tracing slows simulation, so keep the window short.

configs: trn1 (default: 128x128, fast engine), tc1-8, tc1-16, tc1-32 (RTL at 8x8, 16x16, 32x32)
)";

// Minimal option parser: --name value, --flag, and positionals. Unknown options are usage errors.
class Args {
 public:
  Args(int argc, char** argv, int first, const std::vector<std::string>& flags,
       const std::vector<std::string>& valued) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        positional_.push_back(a);
        continue;
      }
      std::string name = a.substr(2), value;
      bool has_eq = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1), name = name.substr(0, eq), has_eq = true;
      }
      if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
        flags_[name] = true;
      } else if (std::find(valued.begin(), valued.end(), name) != valued.end()) {
        if (!has_eq) {
          if (i + 1 >= argc) throw UsageError("option --" + name + " needs a value");
          value = argv[++i];
        }
        values_[name].push_back(value);
      } else {
        throw UsageError("unknown option --" + name);
      }
    }
  }
  bool flag(const std::string& n) const { return flags_.count(n) != 0; }
  std::optional<std::string> value(const std::string& n) const {
    auto it = values_.find(n);
    if (it == values_.end()) return std::nullopt;
    return it->second.back();
  }
  std::vector<std::string> values(const std::string& n) const {
    auto it = values_.find(n);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  int64_t integer(const std::string& n, std::optional<int64_t> def, int64_t lo, int64_t hi) const {
    auto v = value(n);
    if (!v) {
      if (!def) throw UsageError("missing required option --" + n);
      return *def;
    }
    size_t used = 0;
    int64_t x = 0;
    try {
      x = std::stoll(*v, &used, 0);
    } catch (...) {
      used = 0;
    }
    if (used == 0 || used != v->size()) throw UsageError("--" + n + ": '" + *v + "' is not an integer");
    if (x < lo || x > hi) throw UsageError(fmt::format("--{}: {} is out of range [{}, {}]", n, x, lo, hi));
    return x;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, bool> flags_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += fmt::format("\\u{:04x}", int(c));
    else o += c;
  }
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Progress on stderr for long runs, only when stderr is a terminal (keeps logs and --json clean).
rt::RunOptions run_options() {
  rt::RunOptions o;
  if (isatty(fileno(stderr))) {
    auto t0 = std::chrono::steady_clock::now();
    o.progress = [t0](uint64_t cycles) {
      double s = seconds_since(t0);
      fmt::print(stderr, "\r  simulating: {:.1f} M device cycles, {:.0f} cycles/s ", double(cycles) / 1e6,
                 s > 0 ? double(cycles) / s : 0.0);
      std::fflush(stderr);
    };
  }
  return o;
}

void end_progress(const rt::RunOptions& o) {
  if (o.progress) fmt::print(stderr, "\r\033[K");
}

// --device (in-process emulator or a server's address) and the emulator's options.
struct DeviceChoice {
  std::string spec = drv::default_device_spec();
  emu::DeviceOptions options;
};

// The device, driver and runtime of this process (one emulated device per process).
struct Session {
  Session(const DeviceConfig& cfg, const DeviceChoice& device = {})
      : transport(drv::open_transport(device.spec, cfg, device.options)), driver(*transport), runtime(driver) {}
  // Loads and runs `m` with progress on a terminal; returns the result and the run's wall seconds.
  std::pair<rt::RunResult, double> load_and_run(const model::Model& m, const rt::TensorMap& inputs, bool profile) {
    auto lm = runtime.load(m);
    auto t0 = std::chrono::steady_clock::now();
    rt::RunOptions opts = run_options();
    opts.profile = profile;
    opts.faults = faults;
    rt::RunResult res = runtime.run(*lm, inputs, opts);
    end_progress(opts);
    return {std::move(res), seconds_since(t0)};
  }
  std::unique_ptr<drv::Transport> transport;  // --device: in-process or a tcemu serve
  drv::Driver driver;
  rt::Runtime runtime;
  fi::Plan faults;  // armed for load_and_run's job (--fault, --faults)
};

DeviceChoice device_options(const Args& args);

// A command's valued options with --fault, --faults and --fault-seed.
std::vector<std::string> with_faults(std::vector<std::string> valued) {
  valued.insert(valued.end(), cli::kFaultOptions.begin(), cli::kFaultOptions.end());
  return valued;
}

// --fault LINE ..., --faults FILE, --fault-seed N (tools/fault_options.h); a bad spec is a usage error.
fi::Plan fault_plan(const Args& args) {
  try {
    return cli::fault_plan(args.values("fault"), args.value("faults"), args.value("fault-seed"));
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

int cmd_info(const Args& args) {
  const DeviceConfig& cfg = find_config(args.value("config").value_or(kDefaultConfig));
  Session s(cfg, device_options(args));
  const drv::DeviceInfo& d = s.driver.info();
  const char* engine = tensor_engine_name(d.tensor_engine);
  if (args.flag("json")) {
    fmt::print(
        "{{\"config\": \"{}\", \"device_id\": \"0x{:08x}\", \"version\": \"{}.{}\", \"array_rows\": {}, \"array_cols\": {}, "
        "\"sbuf_partitions\": {}, \"sbuf_partition_bytes\": {}, \"psum_partitions\": {}, \"psum_bank_bytes\": {}, "
        "\"psum_banks\": {}, \"hbm_bytes\": {}, \"hbm_bytes_per_cycle\": {}, \"dma_queues\": {}, "
        "\"dma_bytes_per_cycle\": {}, \"dma_latency_cycles\": {}, \"dma_min_run_bytes\": {}, \"semaphores\": {}, "
        "\"clock_mhz\": {}, \"tensor_engine\": \"{}\", \"transport\": \"{}\"}}\n",
        cfg.name, d.id, d.version >> 16, d.version & 0xFFFF, d.rows, d.cols, d.sbuf_partitions, d.sbuf_partition_bytes,
        d.psum_partitions, d.psum_bank_bytes, d.psum_banks, d.hbm_bytes, d.hbm_bytes_per_cycle, d.dma_queues,
        d.dma_bytes_per_cycle, d.dma_latency_cycles, d.dma_min_run_bytes, d.num_semaphores, d.clock_mhz, engine,
        json_escape(s.transport->describe()));
    return 0;
  }
  fmt::print("tcemu device {} (ID 0x{:08x}, register map {}.{})\n", cfg.name, d.id, d.version >> 16, d.version & 0xFFFF);
  fmt::print("  TensorE     {}x{} weight-stationary systolic array, bf16 x bf16 -> fp32; {}\n", d.rows, d.cols,
             d.tensor_engine == TensorEngineKind::kRtl    ? "verilated RTL"
             : d.tensor_engine == TensorEngineKind::kFast ? "fast C++ model (bit- and cycle-exact with the RTL)"
                                                          : "RTL and fast model in lockstep");
  fmt::print("  SBUF        {} partitions x {} KiB = {} KiB\n", d.sbuf_partitions, d.sbuf_partition_bytes / 1024,
             uint64_t(d.sbuf_partitions) * d.sbuf_partition_bytes / 1024);
  fmt::print("  PSUM        {} partitions x {} banks x {} B\n", d.psum_partitions, d.psum_banks, d.psum_bank_bytes);
  fmt::print("  HBM         {} MiB (sparse), {} B/cycle shared by the DMA queues\n", d.hbm_bytes >> 20,
             d.hbm_bytes_per_cycle);
  fmt::print("  DMA         {} queues, {} B/cycle each, {} cycles start latency, runs cost at least {} B\n",
             d.dma_queues, d.dma_bytes_per_cycle, d.dma_latency_cycles, d.dma_min_run_bytes);
  fmt::print("  semaphores  {}\n", d.num_semaphores);
  fmt::print("  clock       {} MHz\n", d.clock_mhz);
  fmt::print("  transport   {}\n", s.transport->describe());
  return 0;
}

std::vector<float> random_bf16_values(std::mt19937_64& rng, size_t n) {
  // Uniform in [-1, 1), rounded to bf16 so the host copy is exactly what the device receives.
  std::vector<float> v(n);
  for (auto& x : v) {
    double u = double(rng() >> 11) * 0x1.0p-53;
    x = num::bf16_to_f32(num::f32_to_bf16(float(2.0 * u - 1.0)));
  }
  return v;
}

struct GemmReport {
  std::string config;
  int m, n, k;
  uint64_t seed, cycles, macs, mismatches, instructions;
  double utilization, wall_s, cycles_per_s;
  int rows, cols;
  std::string engine;  // tensor engine implementation
};

void print_gemm(const GemmReport& r, bool json, const std::optional<rt::Summary>& profile, const std::string& faults) {
  if (json) {
    fmt::print(
        "{{\"config\": \"{}\", \"m\": {}, \"n\": {}, \"k\": {}, \"seed\": {}, \"cycles\": {}, \"macs\": {}, "
        "\"utilization\": {:.6f}, \"mismatches\": {}, \"instructions\": {}, \"tensor_engine\": \"{}\", "
        "\"wall_seconds\": {:.3f}, \"device_cycles_per_second\": {:.0f}, \"faults\": {}{}}}\n",
        r.config, r.m, r.n, r.k, r.seed, r.cycles, r.macs, r.utilization, r.mismatches, r.instructions, r.engine, r.wall_s,
        r.cycles_per_s, faults, profile ? ", \"profile\": " + rt::summary_json(*profile) : "");
    return;
  }
  fmt::print("gemm {}x{}x{} (M x N x K) on {} ({}x{} array, {} tensor engine), seed {}\n", r.m, r.n, r.k, r.config,
             r.rows, r.cols, r.engine, r.seed);
  fmt::print("  cycles        {}\n", r.cycles);
  fmt::print("  MACs          {}\n", r.macs);
  fmt::print("  utilisation   {:.1f}%  (MACs / (cycles x {} x {}))\n", 100.0 * r.utilization, r.rows, r.cols);
  fmt::print("  instructions  {}\n", r.instructions);
  fmt::print("  check         {} ({} of {} elements differ from the golden model)\n",
             r.mismatches == 0 ? "PASS, bit-exact" : "FAIL", r.mismatches, uint64_t(r.m) * r.n);
  fmt::print("  host          {:.2f} s wall, {:.0f} device cycles/s\n", r.wall_s, r.cycles_per_s);
  fmt::print("{}", faults);
}

// Writes the Perfetto/Chrome trace of `res` to `path` and returns the summary (--profile).
std::optional<rt::Summary> write_profile(const rt::RunResult& res, const std::optional<std::string>& path) {
  if (!path || !res.profile) return std::nullopt;
  std::ofstream f(*path);
  f << rt::chrome_trace_json(*res.profile);
  if (!f) throw Error(ErrorCode::kIo, fmt::format("cannot write profile '{}'", *path));
  return rt::summarize(*res.profile);
}

void print_profile(const std::optional<rt::Summary>& s, const std::optional<std::string>& path) {
  if (!s) return;
  fmt::print("\n{}  trace: {} (open in https://ui.perfetto.dev or chrome://tracing)\n", rt::format_summary(*s), *path);
}

// --tensor-engine rtl|fast|lockstep; --wave FILE.fst [--wave-window FROM:TO] (job cycles, as in the profile).
DeviceChoice device_options(const Args& args) {
  DeviceChoice choice;
  if (auto d = args.value("device")) choice.spec = *d;
  emu::DeviceOptions& o = choice.options;
  if (auto te = args.value("tensor-engine")) {
    try {
      o.tensor_engine = parse_tensor_engine(*te);
    } catch (const Error& e) {
      throw UsageError(std::string("--tensor-engine: ") + e.what());
    }
  }
  auto wave = args.value("wave");
  auto window = args.value("wave-window");
  if (window && !wave) throw UsageError("--wave-window needs --wave FILE.fst");
  if (!wave) return choice;
  o.wave_path = *wave;
  if (window) {
    unsigned long long from = 0, to = 0;
    char tail = 0;
    if (std::sscanf(window->c_str(), "%llu:%llu%c", &from, &to, &tail) != 2 || from >= to)
      throw UsageError("--wave-window expects FROM:TO with FROM < TO (job cycles), got '" + *window + "'");
    o.wave_from = from, o.wave_to = to;
  }
  return choice;
}

// tcemu serve: the device server (drivers/server, docs/server.md); runs until SIGTERM or SIGINT.
int cmd_serve(const Args& args) {
  srv::ServeOptions o;
  const auto listen = args.value("listen");
  if (!listen) throw UsageError("serve: missing required option --listen unix:PATH|tcp:HOST:PORT");
  o.listen = *listen;
  o.config = find_config(args.value("config").value_or(kDefaultConfig)).name;
  o.tensor_engine = device_options(args).options.tensor_engine;
  return srv::serve(o);
}

int run_gemm(const DeviceConfig& cfg, int M, int N, int K, uint64_t seed, const std::optional<std::string>& save,
             const std::optional<std::string>& profile, bool json, const DeviceChoice& dev_opts = {},
             const kb::GemmOptions& gopts = {}, const fi::Plan& faults = {}) {
  model::Model m = kb::build_gemm(cfg, M, N, K, gopts);
  if (save) model::save(m, *save);
  const size_t instrs = m.instruction_count();

  std::mt19937_64 rng(seed);
  rt::TensorMap in;
  in["a"] = {{M, K}, random_bf16_values(rng, size_t(M) * K)};
  in["b"] = {{K, N}, random_bf16_values(rng, size_t(K) * N)};
  rt::TensorMap bind = in;
  if (gopts.a_transposed) {  // the kernel takes aT [K, M]
    bind.erase("a");
    auto& t = bind["aT"];
    t.shape = {K, M};
    t.data.resize(size_t(M) * K);
    for (int i = 0; i < M; ++i)
      for (int kk = 0; kk < K; ++kk) t.data[size_t(kk) * M + i] = in["a"].data[size_t(i) * K + kk];
  }

  Session s(cfg, dev_opts);
  s.faults = faults;
  auto [res, wall] = s.load_and_run(m, bind, profile.has_value());
  std::optional<rt::Summary> summary = write_profile(res, profile);

  // Golden model: independent plain C++ of the documented numerics (K chunked by the array rows).
  std::vector<uint16_t> A(size_t(M) * K), B(size_t(K) * N);
  for (size_t i = 0; i < A.size(); ++i) A[i] = num::f32_to_bf16(in["a"].data[i]);
  for (size_t i = 0; i < B.size(); ++i) B[i] = num::f32_to_bf16(in["b"].data[i]);
  std::vector<uint32_t> C(size_t(M) * N);
  num::golden_gemm(M, N, K, cfg.rows, A.data(), B.data(), C.data());
  const auto& out = res.outputs.at("c").data;
  uint64_t mismatches = 0;
  for (size_t i = 0; i < C.size(); ++i) mismatches += num::f32_bits(out[i]) != C[i];

  GemmReport r{cfg.name, M, N, K, seed, res.cycles, uint64_t(M) * N * K, mismatches, instrs, 0, wall, 0,
               cfg.rows, cfg.cols, tensor_engine_name(s.driver.info().tensor_engine)};
  r.utilization = double(r.macs) / (double(r.cycles) * cfg.rows * cfg.cols);
  r.cycles_per_s = wall > 0 ? double(r.cycles) / wall : 0;
  print_gemm(r, json, summary, json ? cli::faults_json(faults, res) : cli::faults_text(faults, res));
  if (!json) print_profile(summary, profile);
  return mismatches == 0 ? 0 : 1;
}

int cmd_gemm(const Args& args) {
  const DeviceConfig& cfg = find_config(args.value("config").value_or(kDefaultConfig));
  int M = int(args.integer("m", std::nullopt, 1, 1 << 16));
  int N = int(args.integer("n", std::nullopt, 1, 1 << 16));
  int K = int(args.integer("k", std::nullopt, 1, 1 << 16));
  uint64_t seed = uint64_t(args.integer("seed", 1, 0, INT64_MAX));
  kb::GemmOptions gopts;
  gopts.a_transposed = args.flag("a-transposed");
  const fi::Plan faults = fault_plan(args);
  return run_gemm(cfg, M, N, K, seed, args.value("save-model"), args.value("profile"), args.flag("json"),
                  device_options(args), gopts, faults);
}

isa::ActFunc parse_act(const std::string& name) {
  std::string names;
  for (uint64_t code = 0; isa::act_func_name(code); ++code) {
    if (name == isa::act_func_name(code)) return isa::ActFunc(code);
    names += std::string(names.empty() ? "" : ", ") + isa::act_func_name(code);
  }
  throw UsageError(fmt::format("--act: unknown function '{}' (one of {})", name, names));
}

// The lines of a run's report after its cycles and MACs: utilisation, instructions (when given), the
// check against a reference (ref::Check or ref::Compare) and the host speed.
template <class CheckT>
void print_checked_run(const DeviceConfig& cfg, double util, size_t instrs, const CheckT& c, const char* against,
                       uint64_t cycles, double wall) {
  fmt::print("  utilisation   {:.1f}%  (MACs / (cycles x {} x {}))\n", 100.0 * util, cfg.rows, cfg.cols);
  if (instrs) fmt::print("  instructions  {}\n", instrs);
  fmt::print("  check         {} ({} of {} elements outside {}; worst error {:.2f} of its tolerance){}\n",
             c.mismatches == 0 ? "PASS" : "FAIL", c.mismatches, c.checked, against, c.worst,
             c.mismatches ? "; first: " + c.first_bad : "");
  fmt::print("  host          {:.2f} s wall, {:.0f} device cycles/s\n", wall, wall > 0 ? cycles / wall : 0.0);
}

// A linear layer with random inputs, checked against the reference (tcemu/reference.h: the golden matmul
// bit for bit, the activation in fp64 within its documented tolerance).
int cmd_linear(const Args& args) {
  const DeviceConfig& cfg = find_config(args.value("config").value_or(kDefaultConfig));
  const int M = int(args.integer("m", std::nullopt, 1, 1 << 16));
  const int N = int(args.integer("n", std::nullopt, 1, 1 << 16));
  const int K = int(args.integer("k", std::nullopt, 1, 1 << 16));
  const uint64_t seed = uint64_t(args.integer("seed", 1, 0, INT64_MAX));
  const kb::LinearOptions lo{parse_act(args.value("act").value_or("gelu_tanh")), !args.flag("no-residual")};
  const auto profile = args.value("profile");
  const bool json = args.flag("json");
  const fi::Plan faults = fault_plan(args);
  model::Model m = kb::build_linear(cfg, M, N, K, lo);
  if (auto save = args.value("save-model")) model::save(m, *save);
  const size_t instrs = m.instruction_count();

  std::mt19937_64 rng(seed);
  rt::TensorMap in;
  in["xT"] = {{K, M}, random_bf16_values(rng, size_t(K) * M)};
  in["w"] = {{K, N}, random_bf16_values(rng, size_t(K) * N)};
  for (float& v : in["w"].data) v *= 2.0f / std::sqrt(float(K));  // pre-activations of order 1
  in["b"] = {{N}, random_bf16_values(rng, size_t(N))};
  if (lo.residual) in["rT"] = {{N, M}, random_bf16_values(rng, size_t(N) * M)};
  Session s(cfg, device_options(args));
  s.faults = faults;
  auto [res, wall] = s.load_and_run(m, in, profile.has_value());
  std::optional<rt::Summary> summary = write_profile(res, profile);
  const ref::Check c = ref::check_linear(M, N, K, cfg.rows, lo.act, in["xT"].data, in["w"].data, in["b"].data,
                                         lo.residual ? std::span<const float>(in["rT"].data) : std::span<const float>(),
                                         res.outputs.at("yT").data);
  const uint64_t macs = uint64_t(M) * N * K;
  const double util = double(macs) / (double(res.cycles) * cfg.rows * cfg.cols);
  const char* act = isa::act_func_name(uint64_t(lo.act));
  if (json) {
    fmt::print(
        "{{\"kernel\": \"linear\", \"config\": \"{}\", \"m\": {}, \"n\": {}, \"k\": {}, \"act\": \"{}\", "
        "\"residual\": {}, \"seed\": {}, \"cycles\": {}, \"macs\": {}, \"utilization\": {:.6f}, \"mismatches\": {}, "
        "\"worst_error_vs_tolerance\": {:.4f}, \"instructions\": {}, \"tensor_engine\": \"{}\", \"wall_seconds\": "
        "{:.3f}, \"faults\": {}{}}}\n",
        cfg.name, M, N, K, act, lo.residual, seed, res.cycles, macs, util, c.mismatches, c.worst, instrs,
        tensor_engine_name(s.driver.info().tensor_engine), wall, cli::faults_json(faults, res),
        summary ? ", \"profile\": " + rt::summary_json(*summary) : "");
  } else {
    fmt::print("linear yT = {}(W^T xT + b){} with M={} tokens, N={} features out, K={} in, on {} ({}x{} array, {} "
               "tensor engine), seed {}\n",
               act, lo.residual ? " + rT" : "", M, N, K, cfg.name, cfg.rows, cfg.cols,
               tensor_engine_name(s.driver.info().tensor_engine), seed);
    fmt::print("  cycles        {}\n", res.cycles);
    fmt::print("  MACs          {}\n", macs);
    print_checked_run(cfg, util, instrs, c, "the reference's tolerance", res.cycles, wall);
    fmt::print("{}", cli::faults_text(faults, res));
    print_profile(summary, profile);
  }
  return c.mismatches == 0 ? 0 : 1;
}

int cmd_run(const Args& args) {
  if (args.positional().size() != 1) throw UsageError("run: expected exactly one MODEL.tcm argument");
  const std::string path = args.positional()[0];
  model::Model m = model::load(path);
  auto out_dir = args.value("output-dir");
  if (!out_dir) throw UsageError("run: missing required option --output-dir");
  const DeviceConfig& cfg = find_config(args.value("config").value_or(m.config_name));
  const fi::Plan faults = fault_plan(args);
  rt::TensorMap inputs;
  for (const std::string& spec : args.values("input")) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw UsageError("--input expects NAME=FILE.npy, got '" + spec + "'");
    inputs[spec.substr(0, eq)] = npy::load(spec.substr(eq + 1));
  }
  Session s(cfg, device_options(args));
  s.faults = faults;
  auto profile = args.value("profile");
  auto [res, wall] = s.load_and_run(m, inputs, profile.has_value());
  std::optional<rt::Summary> summary = write_profile(res, profile);
  std::error_code ec;
  std::filesystem::create_directories(*out_dir, ec);
  if (ec) throw Error(ErrorCode::kIo, fmt::format("cannot create output directory '{}': {}", *out_dir, ec.message()));
  std::vector<std::string> written;
  for (auto& [name, t] : res.outputs) {
    std::string file = (std::filesystem::path(*out_dir) / (name + ".npy")).string();
    npy::save(file, t);
    written.push_back(file);
  }
  if (args.flag("json")) {
    std::string files;
    for (auto& f : written) files += (files.empty() ? "" : ", ") + fmt::format("\"{}\"", json_escape(f));
    std::string notes;
    for (const auto& n : res.notifications)
      notes += fmt::format("{}{{\"tag\": {}, \"engine\": \"{}\", \"cycle\": {}}}", notes.empty() ? "" : ", ", n.tag,
                           isa::engine_name(n.engine), n.cycle);
    fmt::print(
        "{{\"model\": \"{}\", \"config\": \"{}\", \"cycles\": {}, \"wall_seconds\": {:.3f}, \"outputs\": [{}], "
        "\"notifications\": [{}], \"notifications_dropped\": {}, \"faults\": {}{}}}\n",
        json_escape(m.name), cfg.name, res.cycles, wall, files, notes, res.notifications_dropped,
        cli::faults_json(faults, res),
        summary ? ", \"profile\": " + rt::summary_json(*summary) : "");
  } else {
    fmt::print("model {} on {}: {} cycles ({:.2f} s wall)\n", m.name, cfg.name, res.cycles, wall);
    for (const auto& n : res.notifications)
      fmt::print("  notify tag {} from {} at cycle {}\n", n.tag, isa::engine_name(n.engine), n.cycle);
    if (res.notifications_dropped)
      fmt::print("  {} notifications dropped (the device's FIFO was full)\n", res.notifications_dropped);
    for (auto& f : written) fmt::print("  wrote {}\n", f);
    fmt::print("{}", cli::faults_text(faults, res));
    print_profile(summary, profile);
  }
  return 0;
}

// tcemu doc NAME [--update FILE]: prints a generated doc table, or rewrites its block in FILE.
int cmd_doc(const Args& args) {
  if (args.positional().size() != 1) throw UsageError("doc: expected one table name (isa, registers, faults)");
  const std::string name = args.positional()[0];
  auto content = generated_block(name);
  if (!content) throw UsageError("doc: unknown table '" + name + "' (known: isa, registers, faults)");
  auto file = args.value("update");
  if (!file) {
    fmt::print("{}", *content);
    return 0;
  }
  std::ifstream in(*file);
  if (!in) throw Error(ErrorCode::kIo, fmt::format("cannot read '{}'", *file));
  std::stringstream ss;
  ss << in.rdbuf();
  auto updated = replace_block(ss.str(), name, *content);
  if (!updated) throw Error(ErrorCode::kFormat, fmt::format("'{}' has no '<!-- generated: {} -->' block", *file, name));
  std::ofstream out(*file);
  out << *updated;
  if (!out) throw Error(ErrorCode::kIo, fmt::format("cannot write '{}'", *file));
  return 0;
}

// tcemu profile summary FILE [--json]
int cmd_profile(const Args& args) {
  const auto& pos = args.positional();
  if (pos.size() != 2 || pos[0] != "summary") throw UsageError("profile: expected 'profile summary TRACE.json'");
  std::ifstream f(pos[1]);
  if (!f) throw Error(ErrorCode::kIo, fmt::format("cannot open profile '{}'", pos[1]));
  std::stringstream ss;
  ss << f.rdbuf();
  rt::Summary s = rt::summarize(rt::profile_from_chrome_json(ss.str(), pos[1]));
  fmt::print("{}", args.flag("json") ? rt::summary_json(s) + "\n" : rt::format_summary(s));
  return 0;
}

// The main job: the embedded default model, a transformer block (attention + MLP with residuals and
// LayerNorms, its parameters embedded in the model file) on the default config, checked against the fp64
// reference (tcemu/ref_block.h), with its profile summary and a Perfetto trace.
int cmd_demo(const Args& args) {
  const DeviceConfig& cfg = find_config(args.value("config").value_or(kDefaultConfig));
  ref::BlockShape shape;
  shape.seq = args.integer("seq", 512, 1, 1 << 14);
  shape.d_model = args.integer("d-model", 512, 1, 1 << 14);
  shape.heads = args.integer("heads", 4, 1, 1 << 10);
  shape.d_ff = args.integer("d-ff", 2048, 1, 1 << 16);
  shape.causal = !args.flag("no-causal");
  if (shape.d_model % shape.heads != 0)
    throw UsageError(fmt::format("--d-model {} is not divisible by --heads {}", shape.d_model, shape.heads));
  const uint32_t seed = uint32_t(args.integer("seed", 1, 0, UINT32_MAX));
  const std::string trace = args.value("profile").value_or("tcemu_demo_trace.json");
  const bool json = args.flag("json");
  const fi::Plan faults = fault_plan(args);
  const ref::BlockParams params = ref::make_block_params(shape, seed);
  const model::Model m = kb::build_transformer_block(cfg, shape, params);
  if (auto save = args.value("save-model")) model::save(m, *save);
  std::mt19937 rng(seed + 1);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  rt::TensorMap in;
  in["x"] = {{shape.seq, shape.d_model}, std::vector<float>(size_t(shape.seq * shape.d_model))};
  for (float& v : in["x"].data) v = d(rng);
  if (!json)
    fmt::print("tcemu demo: the default model, a transformer block (seq {}, d_model {}, {} heads, d_ff {}, {}) "
               "on {}\n\n",
               shape.seq, shape.d_model, shape.heads, shape.d_ff, shape.causal ? "causal" : "not causal", cfg.name);
  Session s(cfg, device_options(args));
  s.faults = faults;
  auto [res, wall] = s.load_and_run(m, in, true);
  const std::optional<rt::Summary> summary = write_profile(res, trace);
  const std::vector<double> want = ref::transformer_block(shape, in["x"].data, params);
  const ref::Compare c = ref::check_block(shape, in["x"].data, res.outputs.at("y").data, want);
  const uint64_t macs = kb::transformer_block_macs(shape);
  const double util = double(macs) / (double(res.cycles) * cfg.rows * cfg.cols);
  if (json) {
    fmt::print("{{\"model\": \"{}\", \"config\": \"{}\", \"seq\": {}, \"d_model\": {}, \"heads\": {}, \"d_ff\": {}, "
               "\"causal\": {}, \"seed\": {}, \"cycles\": {}, \"macs\": {}, \"utilization\": {:.6f}, "
               "\"mismatches\": {}, \"checked\": {}, \"worst_error_vs_tolerance\": {:.4f}, \"instructions\": {}, "
               "\"tensor_engine\": \"{}\", \"wall_seconds\": {:.3f}, \"trace\": \"{}\", \"faults\": {}, \"profile\": {}}}\n",
               m.name, cfg.name, shape.seq, shape.d_model, shape.heads, shape.d_ff, shape.causal, seed, res.cycles,
               macs, util, c.mismatches, c.checked, c.worst, m.instruction_count(),
               tensor_engine_name(s.driver.info().tensor_engine), wall, trace, cli::faults_json(faults, res),
               rt::summary_json(*summary));
  } else {
    fmt::print("  model         {} ({} instructions, {} tensors)\n", m.name, m.instruction_count(), m.tensors.size());
    fmt::print("  cycles        {}  ({:.1f} us at {} MHz)\n", res.cycles, res.cycles / double(cfg.clock_mhz), cfg.clock_mhz);
    fmt::print("  MACs          {}  (matmuls: projections, attention, MLP)\n", macs);
    print_checked_run(cfg, util, 0, c, "the tolerance of the fp64 reference", res.cycles, wall);
    fmt::print("{}", cli::faults_text(faults, res));
    print_profile(summary, trace);
  }
  return c.mismatches == 0 ? 0 : 1;
}

// ---- tcemu dis MODEL.tcm [-o OUT.s] / tcemu asm IN.s -o OUT.tcm: text assembly of model files ----------

// The one input file and the -o (or --output) file of asm/dis; -o arrives among the positionals.
std::pair<std::string, std::optional<std::string>> input_and_output(const Args& args, const std::string& cmd,
                                                                     const std::string& input) {
  std::optional<std::string> out = args.value("output");
  std::vector<std::string> inputs;
  const auto& pos = args.positional();
  for (size_t i = 0; i < pos.size(); ++i) {
    if (pos[i] == "-o") {
      if (i + 1 >= pos.size()) throw UsageError(cmd + ": option -o needs a value");
      if (out) throw UsageError(cmd + ": the output file is given twice");
      out = pos[++i];
    } else if (pos[i].size() > 1 && pos[i][0] == '-') {
      throw UsageError(cmd + ": unknown option " + pos[i]);
    } else {
      inputs.push_back(pos[i]);
    }
  }
  if (inputs.size() != 1)
    throw UsageError(fmt::format("{}: expected exactly one {} argument, got {}", cmd, input, inputs.size()));
  return {inputs[0], out};
}

int cmd_dis(const Args& args) {
  const auto [path, out] = input_and_output(args, "dis", "MODEL.tcm");
  const std::string text = model::to_assembly(model::load(path));
  if (out) {
    write_file(*out, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  } else if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    throw Error(ErrorCode::kIo, "dis: cannot write to standard output");
  }
  return 0;
}

int cmd_asm(const Args& args) {
  const auto [path, out] = input_and_output(args, "asm", "IN.s");
  if (!out) throw UsageError("asm: missing required option -o OUT.tcm");
  const std::vector<uint8_t> bytes = read_file(path);
  model::Model m;
  try {
    m = model::from_assembly(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kInvalidArgument) throw;  // format errors start with path:line:column
    throw Error(e.code(), path + ": " + e.what());       // model::validate's, naming the model
  }
  model::save(m, *out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "info") return cmd_info(Args(argc, argv, 2, {"json"}, {"config", "tensor-engine", "device"}));
    if (cmd == "gemm")
      return cmd_gemm(Args(argc, argv, 2, {"json", "a-transposed"},
                           with_faults({"m", "n", "k", "config", "seed", "save-model", "profile", "wave", "wave-window",
                                        "tensor-engine", "device"})));
    if (cmd == "linear")
      return cmd_linear(Args(argc, argv, 2, {"json", "no-residual"},
                             with_faults({"m", "n", "k", "act", "config", "seed", "save-model", "profile", "wave",
                                          "wave-window", "tensor-engine", "device"})));
    if (cmd == "run")
      return cmd_run(Args(argc, argv, 2, {"json"},
                          with_faults({"input", "output-dir", "config", "profile", "wave", "wave-window", "tensor-engine", "device"})));
    if (cmd == "dis") return cmd_dis(Args(argc, argv, 2, {}, {"output"}));
    if (cmd == "asm") return cmd_asm(Args(argc, argv, 2, {}, {"output"}));
    if (cmd == "profile") return cmd_profile(Args(argc, argv, 2, {"json"}, {}));
    if (cmd == "doc") return cmd_doc(Args(argc, argv, 2, {}, {"update"}));
    if (cmd == "serve") return cmd_serve(Args(argc, argv, 2, {}, {"listen", "config", "tensor-engine"}));
    if (cmd == "bench") return bench::run_bench_command(std::vector<std::string>(argv + 2, argv + argc));
    if (cmd == "demo")
      return cmd_demo(Args(argc, argv, 2, {"json", "no-causal"},
                           with_faults({"profile", "wave", "wave-window", "tensor-engine", "config", "seq", "d-model", "heads", "d-ff",
                            "seed", "save-model", "device"})));
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    if (isatty(fileno(stderr))) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "tcemu: error: {}\n(run 'tcemu --help' for usage)\n", e.what());
    return 2;
  } catch (const tcemu::Error& e) {
    if (isatty(fileno(stderr))) fmt::print(stderr, "\r\033[K");  // clear a progress line
    fmt::print(stderr, "tcemu: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcemu: error: {}\n", e.what());
    return 1;
  }
}
