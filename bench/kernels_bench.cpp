#include "kernels_bench.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>

#include "inproc_transport.h"
#include "tcemu/config.h"
#include "tcemu/error.h"
#include "tcemu/kb/attention.h"
#include "tcemu/kb/conv2d.h"
#include "tcemu/kb/elementwise.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/kb/linear.h"
#include "tcemu/kb/norm.h"
#include "tcemu/kb/softmax.h"
#include "tcemu/kb/transformer.h"
#include "tcemu/kb/transpose.h"
#include "tcemu/ref_block.h"
#include "tcemu/rt/profile.h"
#include "tcemu/rt/runtime.h"
#include "tensor_engine_bench.h"

namespace tcemu::bench {
namespace {

// One benchmark row: a kernel at one shape.
struct Case {
  std::string kernel, shape;
  uint64_t macs;  // useful multiply-accumulates (0 for kernels without matmuls)
  std::function<model::Model(const DeviceConfig&)> build;
  bool quick;                                        // part of --quick
  nlohmann::json params = nlohmann::json::object();  // the shape as numbers (and layout, dtype)
};

std::vector<Case> cases() {
  std::vector<Case> v;
  auto gemm = [&](int m, int n, int k, bool aT, isa::DType compute, bool quick) {
    kb::GemmOptions o;
    o.a_transposed = aT;
    o.compute = compute;
    o.in_dtype = compute == isa::DType::kF32 ? model::DType::kF32 : model::DType::kBf16;
    v.push_back({"gemm",
                 fmt::format("{}x{}x{} {} a{}", m, n, k, compute == isa::DType::kF32 ? "f32" : "bf16",
                             aT ? "T [K,M]" : " [M,K]"),
                 uint64_t(m) * n * k,
                 [=](const DeviceConfig& c) { return kb::build_gemm(c, m, n, k, o); },
                 quick,
                 {{"m", m},
                  {"n", n},
                  {"k", k},
                  {"dtype", compute == isa::DType::kF32 ? "f32" : "bf16"},
                  {"a_layout", aT ? "aT[K,M]" : "a[M,K]"}}});
  };
  gemm(1024, 1024, 1024, true, isa::DType::kBf16, true);
  gemm(1024, 1024, 1024, false, isa::DType::kBf16, false);
  gemm(2048, 2048, 512, true, isa::DType::kBf16, false);
  gemm(500, 700, 300, true, isa::DType::kBf16, true);
  gemm(512, 512, 512, true, isa::DType::kF32, false);
  auto linear = [&](int m, int n, int k, isa::ActFunc f, bool residual, bool quick) {
    v.push_back(
        {"linear",
         fmt::format("{}x{}x{} +bias {}{}", m, n, k, isa::act_func_name(uint64_t(f)), residual ? " +residual" : ""),
         uint64_t(m) * n * k,
         [=](const DeviceConfig& c) {
           return kb::build_linear(c, m, n, k, {f, residual});
         },
         quick,
         {{"m", m}, {"n", n}, {"k", k}, {"act", isa::act_func_name(uint64_t(f))}, {"residual", residual}}});
  };
  linear(1024, 1024, 1024, isa::ActFunc::kGeluTanh, false, true);
  linear(1024, 1024, 1024, isa::ActFunc::kGeluTanh, true, false);
  linear(512, 2048, 512, isa::ActFunc::kRelu, false, false);
  auto rows_kernel = [&](const char* kernel, int64_t r, int64_t c, bool quick,
                         std::function<model::Model(const DeviceConfig&)> build) {
    v.push_back({kernel, fmt::format("{}x{} f32", r, c), 0, std::move(build), quick, {{"rows", r}, {"cols", c}}});
  };
  rows_kernel("softmax", 1024, 1024, true, [](const DeviceConfig& c) { return kb::build_softmax(c, 1024, 1024); });
  rows_kernel("softmax", 4096, 512, false, [](const DeviceConfig& c) { return kb::build_softmax(c, 4096, 512); });
  rows_kernel("layernorm", 1024, 1024, true, [](const DeviceConfig& c) { return kb::build_layernorm(c, 1024, 1024); });
  rows_kernel("rmsnorm", 1024, 1024, false, [](const DeviceConfig& c) { return kb::build_rmsnorm(c, 1024, 1024); });
  rows_kernel("gelu", 1024, 1024, false, [](const DeviceConfig& c) {
    return kb::build_elementwise_unary(c, 1024, 1024, model::DType::kF32, {isa::ActFunc::kGeluTanh});
  });
  rows_kernel("add", 1024, 1024, false,
              [](const DeviceConfig& c) { return kb::build_elementwise_binary(c, 1024, 1024); });
  rows_kernel("transpose", 1024, 1024, true,
              [](const DeviceConfig& c) { return kb::build_transpose(c, 1024, 1024, model::DType::kF32); });
  auto attention = [&](int seq, int dh, int heads, bool causal, bool quick) {
    kb::AttentionOptions o;
    o.heads = heads;
    o.causal = causal;
    // QK^T and PV: 2 S^2 dh per head; the causal mask's skipped half is not counted.
    const uint64_t macs = uint64_t(heads) * 2 * uint64_t(seq) * seq * dh / (causal ? 2 : 1);
    v.push_back({"attention",
                 fmt::format("seq {} head_dim {} heads {}{}", seq, dh, heads, causal ? " causal" : ""),
                 macs,
                 [=](const DeviceConfig& c) { return kb::build_attention(c, seq, dh, o); },
                 quick,
                 {{"seq", seq}, {"head_dim", dh}, {"heads", heads}, {"causal", causal}}});
  };
  attention(512, 128, 1, false, true);
  attention(512, 128, 4, false, false);
  attention(512, 128, 4, true, false);
  attention(2048, 128, 1, true, false);
  auto conv = [&](int64_t n, int64_t c, int64_t hw, int64_t f, int64_t k, int stride, bool quick) {
    kb::Conv2dShape sh;
    sh.n = n, sh.c = c, sh.h = sh.w = hw, sh.f = f, sh.kh = sh.kw = k;
    kb::Conv2dOptions o;
    o.stride_h = o.stride_w = stride;
    o.pad_h = o.pad_w = int(k / 2);
    const int64_t oh = (hw + 2 * (k / 2) - k) / stride + 1;
    const uint64_t macs = uint64_t(n * f * oh * oh * c * k * k);
    v.push_back({"conv2d",
                 fmt::format("N{} C{} {}x{} F{} {}x{} stride {} pad {}", n, c, hw, hw, f, k, k, stride, k / 2),
                 macs,
                 [=](const DeviceConfig& cfg) { return kb::build_conv2d(cfg, sh, o); },
                 quick,
                 {{"n", n},
                  {"c", c},
                  {"h", hw},
                  {"w", hw},
                  {"f", f},
                  {"kh", k},
                  {"kw", k},
                  {"stride", stride},
                  {"pad", k / 2}}});
  };
  conv(1, 128, 56, 128, 3, 1, true);
  conv(1, 64, 56, 64, 3, 1, false);
  conv(1, 256, 28, 256, 3, 1, false);
  conv(1, 128, 56, 256, 1, 2, false);
  auto block = [&](int64_t seq, int64_t d, int64_t heads, int64_t ff, bool quick) {
    ref::BlockShape sh;
    sh.seq = seq, sh.d_model = d, sh.heads = heads, sh.d_ff = ff;
    v.push_back(
        {"transformer_block",
         fmt::format("seq {} d_model {} heads {} d_ff {} causal", seq, d, heads, ff),
         kb::transformer_block_macs(sh),
         [=](const DeviceConfig& c) { return kb::build_transformer_block(c, sh, ref::make_block_params(sh, 1)); },
         quick,
         {{"seq", seq}, {"d_model", d}, {"heads", heads}, {"d_ff", ff}, {"causal", true}}});
  };
  block(512, 512, 4, 2048, true);
  block(1024, 1024, 8, 4096, false);
  return v;
}

struct Row {
  std::string kernel, shape, bound_by;
  std::string skipped;  // why the shape cannot be built on this config (a capacity error), else empty
  nlohmann::json params;
  uint64_t cycles = 0, macs = 0, instructions = 0;
  double utilization = 0, wall_s = 0, profiled_wall_s = 0;
};

// Random inputs in [-1, 1) for every input tensor of `m`.
rt::TensorMap inputs_for(const model::Model& m, std::mt19937& rng) {
  rt::TensorMap in;
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (const auto& t : m.tensors) {
    if (t.kind != model::TensorKind::kInput) continue;
    auto& h = in[t.name];
    h.shape = t.shape;
    size_t n = 1;
    for (int64_t s : t.shape) n *= size_t(s);
    h.data.resize(n);
    for (auto& x : h.data) x = d(rng);
  }
  return in;
}

int run(const std::vector<std::string>& args) {
  bool json = false, quick = false;
  std::string config = "trn1";
  std::vector<std::string> only;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json")
      json = true;
    else if (a == "--quick")
      quick = true;
    else if (a == "--config" && i + 1 < args.size())
      config = args[++i];
    else if (a == "--only" && i + 1 < args.size())
      only.push_back(args[++i]);
    else
      throw UsageError("bench kernels: unknown option '" + a +
                       "' (options: --quick, --config C, --only KERNEL, --json)");
  }
  const DeviceConfig& cfg = find_config(config);
  std::vector<Case> todo;
  for (Case& c : cases()) {
    if (quick && !c.quick) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), c.kernel) == only.end()) continue;
    todo.push_back(std::move(c));
  }
  if (todo.empty()) throw UsageError("bench kernels: no kernel matches --only");
  drv::InProcessTransport transport(cfg);
  drv::Driver driver(transport);
  rt::Runtime runtime(driver);
  const bool tty = isatty(fileno(stderr)) != 0;
  std::vector<Row> rows;
  std::mt19937 rng(1);
  for (size_t i = 0; i < todo.size(); ++i) {
    const Case& c = todo[i];
    if (tty) fmt::print(stderr, "[{}/{}] {} {} ...\n", i + 1, todo.size(), c.kernel, c.shape);
    // A shape that does not fit this config's SBUF/PSUM is reported and skipped; the others still run.
    model::Model m;
    try {
      m = c.build(cfg);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kCapacity) throw;
      Row r{c.kernel, c.shape, "", e.what(), c.params};
      r.macs = c.macs;
      rows.push_back(r);
      continue;
    }
    auto lm = runtime.load(m);
    const rt::TensorMap in = inputs_for(m, rng);
    Row r{c.kernel, c.shape, "", "", c.params, 0, c.macs, m.instruction_count()};
    auto t0 = std::chrono::steady_clock::now();
    const rt::RunResult plain = runtime.run(*lm, in);
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rt::RunOptions po;
    po.profile = true;
    t0 = std::chrono::steady_clock::now();
    const rt::RunResult prof = runtime.run(*lm, in, po);
    r.profiled_wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    runtime.unload(*lm);
    if (plain.cycles != prof.cycles)
      throw std::runtime_error(fmt::format("{} {}: {} cycles, then {} cycles profiled: not deterministic", c.kernel,
                                           c.shape, plain.cycles, prof.cycles));
    r.cycles = plain.cycles;
    r.utilization = double(r.macs) / (double(r.cycles) * cfg.rows * cfg.cols);
    r.bound_by = rt::summarize(*prof.profile).bound_by;
    r.bound_by = r.bound_by.substr(0, r.bound_by.find(" ("));  // "TensorE (93.6% busy)" -> "TensorE"
    rows.push_back(r);
  }
  if (json) {
    nlohmann::json j;
    j["benchmark"] = "kernels";
    j["config"] = cfg.name;
    j["tensor_engine"] = tensor_engine_name(driver.info().tensor_engine);
    for (const Row& r : rows) {
      if (!r.skipped.empty()) {
        j["rows"].push_back({{"kernel", r.kernel}, {"shape", r.shape}, {"params", r.params}, {"skipped", r.skipped}});
        continue;
      }
      j["rows"].push_back({{"kernel", r.kernel},
                           {"shape", r.shape},
                           {"params", r.params},
                           {"cycles", r.cycles},
                           {"macs", r.macs},
                           {"utilization", r.utilization},
                           {"bound_by", r.bound_by},
                           {"instructions", r.instructions},
                           {"host_wall_s", r.wall_s},
                           {"host_wall_profiled_s", r.profiled_wall_s}});
    }
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print(
      "kernels on {} ({}x{} array, {} tensor engine): emulated cycles, TensorE utilisation = MACs / "
      "(cycles x {} x {})\n",
      cfg.name, cfg.rows, cfg.cols, tensor_engine_name(driver.info().tensor_engine), cfg.rows, cfg.cols);
  fmt::print("  {:<17} {:<44} {:>10} {:>14} {:>7}  {:<10} {:>9}\n", "kernel", "shape", "cycles", "MACs", "util",
             "bound by", "host s");
  for (const Row& r : rows) {
    if (!r.skipped.empty()) {
      fmt::print("  {:<17} {:<44} does not fit {}: {}\n", r.kernel, r.shape, cfg.name, r.skipped);
      continue;
    }
    fmt::print("  {:<17} {:<44} {:>10} {:>14} {:>6.1f}%  {:<10} {:>9.3f}\n", r.kernel, r.shape, r.cycles, r.macs,
               100 * r.utilization, r.bound_by, r.wall_s);
  }
  return 0;
}

}  // namespace

int run_kernels_bench(const std::vector<std::string>& args) { return run(args); }

}  // namespace tcemu::bench
