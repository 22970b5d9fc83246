// The tcemu command line as a user runs it: exit codes, one-line errors, JSON fields, files.
#include <gtest/gtest.h>

#include <set>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "tcemu/kb/gemm.h"
#include "tcemu/model.h"
#include "tcemu/npy.h"
#include "tcemu/numerics.h"

namespace tcemu {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string out;  // stdout and stderr together
};

Result tcemu(const std::string& args) {
  std::string cmd = std::string(TCEMU_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Result r{-1, ""};
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

uint64_t json_uint(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + "\": *([0-9]+)"))) return UINT64_MAX;
  return std::stoull(m[1]);
}

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("tcemu_cli_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Cli, GemmJsonIsBitExactAndDeterministic) {
  Result a = tcemu("gemm --m 64 --n 96 --k 80 --config tc1-16 --seed 7 --json");
  Result b = tcemu("gemm --m 64 --n 96 --k 80 --config tc1-16 --seed 7 --json");
  ASSERT_EQ(a.status, 0) << a.out;
  EXPECT_EQ(json_uint(a.out, "mismatches"), 0u) << a.out;
  EXPECT_EQ(json_uint(a.out, "macs"), 64u * 96 * 80);
  EXPECT_NE(json_uint(a.out, "cycles"), UINT64_MAX);
  EXPECT_EQ(json_uint(a.out, "cycles"), json_uint(b.out, "cycles"));
  EXPECT_NE(a.out.find("\"utilization\": 0."), std::string::npos) << a.out;
  EXPECT_EQ(lines(a.out), 1) << "JSON output must be one object and nothing else: " << a.out;
}

TEST(Cli, LinearChecksAgainstTheReferenceAndWritesAProfile) {
  const fs::path dir = temp_dir("linear");
  const std::string trace = (dir / "t.json").string();
  Result a = tcemu("linear --m 48 --n 40 --k 36 --config tc1-8 --act gelu_erf --json --profile " + trace);
  Result b = tcemu("linear --m 48 --n 40 --k 36 --config tc1-8 --act gelu_erf --json");
  ASSERT_EQ(a.status, 0) << a.out;
  EXPECT_EQ(lines(a.out), 1) << a.out;
  EXPECT_EQ(json_uint(a.out, "mismatches"), 0u) << a.out;
  EXPECT_EQ(json_uint(a.out, "macs"), 48u * 40 * 36);
  EXPECT_EQ(json_uint(a.out, "cycles"), json_uint(b.out, "cycles"));
  EXPECT_NE(a.out.find("\"bound_by\""), std::string::npos) << a.out;
  Result s = tcemu("profile summary " + trace);
  ASSERT_EQ(s.status, 0) << s.out;
  EXPECT_NE(s.out.find("ScalarE"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("VectorE"), std::string::npos) << s.out;
  Result bad = tcemu("linear --m 4 --n 4 --k 4 --act gelu");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.out.find("--act: unknown function 'gelu' (one of identity, relu, gelu_tanh"), std::string::npos)
      << bad.out;
  fs::remove_all(dir);
}

TEST(Cli, InfoJson) {
  Result r = tcemu("info --config tc1-32 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(json_uint(r.out, "array_rows"), 32u);
  EXPECT_EQ(json_uint(r.out, "dma_queues"), 16u);
}

std::string json_string(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + "\": *\"([^\"]*)\""))) return "<missing>";
  return m[1];
}

// The default config is trn1 with the fast engine; a tc1 config defaults to the RTL.
TEST(Cli, InfoDefaultsToTrn1WithTheFastEngine) {
  Result r = tcemu("info --json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(json_string(r.out, "config"), "trn1") << r.out;
  EXPECT_EQ(json_string(r.out, "tensor_engine"), "fast") << r.out;
  EXPECT_EQ(json_uint(r.out, "array_rows"), 128u);
  EXPECT_EQ(json_string(tcemu("info --config tc1-8 --json").out, "tensor_engine"), "rtl");
  EXPECT_EQ(json_string(tcemu("info --config tc1-8 --tensor-engine lockstep --json").out, "tensor_engine"), "lockstep");
}

// The three engines give the same GEMM, bit-exact, in the same cycles; the JSON says which one ran.
TEST(Cli, GemmSameCyclesOnRtlFastAndLockstep) {
  std::map<std::string, uint64_t> cycles;
  for (const char* engine : {"rtl", "fast", "lockstep"}) {
    Result r =
        tcemu(std::string("gemm --m 40 --n 70 --k 50 --config tc1-16 --seed 3 --json --tensor-engine ") + engine);
    ASSERT_EQ(r.status, 0) << engine << ": " << r.out;
    EXPECT_EQ(lines(r.out), 1) << r.out;
    EXPECT_EQ(json_string(r.out, "tensor_engine"), engine) << r.out;
    EXPECT_EQ(json_uint(r.out, "mismatches"), 0u) << r.out;
    cycles[engine] = json_uint(r.out, "cycles");
  }
  EXPECT_NE(cycles["rtl"], UINT64_MAX);
  EXPECT_EQ(cycles["fast"], cycles["rtl"]);
  EXPECT_EQ(cycles["lockstep"], cycles["rtl"]);
}

TEST(Cli, TensorEngineErrors) {
  // An unknown name is a usage error naming the accepted ones.
  Result bogus = tcemu("gemm --m 4 --n 4 --k 4 --config tc1-8 --tensor-engine bogus");
  EXPECT_EQ(bogus.status, 2) << bogus.out;
  EXPECT_NE(bogus.out.find("tcemu: error: --tensor-engine: unknown tensor engine 'bogus' (known: rtl, fast, lockstep)"),
            std::string::npos)
      << bogus.out;
  // A waveform needs the RTL: refused with the fast engine, in one line, and no file is written.
  const fs::path d = temp_dir("wave_fast");
  const fs::path wave = d / "x.fst";
  Result fast = tcemu("gemm --m 4 --n 4 --k 4 --config tc1-8 --wave " + wave.string() + " --tensor-engine fast");
  EXPECT_EQ(fast.status, 1) << fast.out;
  EXPECT_EQ(lines(fast.out), 1) << fast.out;
  EXPECT_NE(fast.out.find("tcemu: error: a waveform needs the RTL tensor engine"), std::string::npos) << fast.out;
  EXPECT_FALSE(fs::exists(wave));
  // trn1 defaults to the fast engine, so --wave there is refused the same way.
  EXPECT_NE(tcemu("gemm --m 4 --n 4 --k 4 --wave " + wave.string()).out.find("a waveform needs the RTL"),
            std::string::npos);
  fs::remove_all(d);
}

TEST(Cli, BadArgumentsGiveOneLineErrorAndNonZeroExit) {
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"frobnicate", "unknown command 'frobnicate'"},
      {"gemm --m 4 --n 4", "missing required option --k"},
      {"gemm --m x --n 4 --k 4", "--m: 'x' is not an integer"},
      {"gemm --m 0 --n 4 --k 4", "out of range"},
      {"gemm --m 4 --n 4 --k 4 --config tc9", "unknown device config 'tc9'"},
      {"gemm --m 4 --n 4 --k 4 --bogus 1", "unknown option --bogus"},
      {"run", "expected exactly one MODEL.tcm"},
      {"run /nonexistent/model.tcm --output-dir /tmp/x", "/nonexistent/model.tcm"},
      {"gemm --m", "option --m needs a value"},
  };
  for (const auto& c : cases) {
    Result r = tcemu(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_LT(r.status, 128) << c.args << " crashed: " << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << " -> " << r.out;
    EXPECT_NE(r.out.find("tcemu: error: "), std::string::npos) << r.out;
  }
}

TEST(Cli, RunModelFileWithNpyInputsWritesNpyOutputs) {
  fs::path d = temp_dir("run");
  const int M = 9, N = 11, K = 19;
  const DeviceConfig& cfg = find_config("tc1-8");
  // The last store queue ends with a notify: the host hears of it with its tag.
  model::Model g = kb::build_gemm(cfg, M, N, K);
  for (auto& st : g.streams)
    if (st.engine == isa::kEngineDma0 + 3) {
      isa::Instr n;
      n.opcode = isa::Opcode::Notify;
      n.tag = 42;
      st.instrs.push_back(n);
    }
  model::save(g, (d / "g.tcm").string());
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  npy::Array a{{M, K}, {}}, b{{K, N}, {}};
  for (int i = 0; i < M * K; ++i) a.data.push_back(u(rng));  // not bf16: the runtime rounds (RNE)
  for (int i = 0; i < K * N; ++i) b.data.push_back(u(rng));
  npy::save((d / "a.npy").string(), a);
  npy::save((d / "b.npy").string(), b);
  Result r = tcemu("run " + (d / "g.tcm").string() + " --input a=" + (d / "a.npy").string() + " --input b=" +
                   (d / "b.npy").string() + " --output-dir " + (d / "out").string() + " --json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_GT(json_uint(r.out, "cycles"), 0u);
  EXPECT_NE(r.out.find("\"notifications\": [{\"tag\": 42, \"engine\": \"dma3\", \"cycle\": "), std::string::npos)
      << r.out;
  npy::Array c = npy::load((d / "out" / "c.npy").string());
  ASSERT_EQ(c.shape, (std::vector<int64_t>{M, N}));
  std::vector<uint16_t> A, B;
  for (float x : a.data) A.push_back(num::f32_to_bf16(x));
  for (float x : b.data) B.push_back(num::f32_to_bf16(x));
  std::vector<uint32_t> C(M * N);
  num::golden_gemm(M, N, K, cfg.rows, A.data(), B.data(), C.data());
  for (int i = 0; i < M * N; ++i) ASSERT_EQ(num::f32_bits(c.data[i]), C[i]) << i;
  fs::remove_all(d);
}

TEST(Cli, CorruptModelFilesGivePreciseErrors) {
  fs::path d = temp_dir("corrupt");
  std::vector<uint8_t> good = model::serialize(kb::build_gemm(find_config("tc1-8"), 4, 4, 4));
  auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream f(d / name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    return (d / name).string();
  };
  std::vector<uint8_t> truncated(good.begin(), good.begin() + good.size() / 2);
  std::vector<uint8_t> magic = good;
  magic[0] ^= 0xFF;
  std::vector<uint8_t> flipped = good;
  flipped[good.size() - 1] ^= 0x01;
  for (auto [name, bytes] : {std::pair{"truncated.tcm", truncated}, {"magic.tcm", magic}, {"flipped.tcm", flipped}}) {
    std::string path = write(name, bytes);
    Result r = tcemu("run " + path + " --output-dir " + (d / "out").string());
    EXPECT_EQ(r.status, 1) << name << ": " << r.out;
    EXPECT_NE(r.out.find(path), std::string::npos) << "error must name the file: " << r.out;
    EXPECT_EQ(lines(r.out), 1) << r.out;
  }
  fs::remove_all(d);
}

TEST(Cli, MissingNpyInputNamesTheFile) {
  fs::path d = temp_dir("missing");
  model::save(kb::build_gemm(find_config("tc1-8"), 2, 2, 2), (d / "g.tcm").string());
  Result r = tcemu("run " + (d / "g.tcm").string() + " --input a=" + (d / "nope.npy").string() + " --output-dir " +
                   (d / "out").string());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("nope.npy"), std::string::npos) << r.out;
  fs::remove_all(d);
}

// tcemu dis, then tcemu asm of its text, give back the model file byte for byte (docs/model-format.md, "Text
// assembly"); text that does not assemble is one error line naming file:line:column.
TEST(Cli, DisThenAsmGivesBackTheModelFileByteForByte) {
  const fs::path d = temp_dir("asm");
  model::Model g = kb::build_gemm(find_config("tc1-16"), 40, 24, 72);
  model::Tensor k;  // a constant, so that the file has a data section too
  k.name = "k", k.dtype = model::DType::kF32, k.kind = model::TensorKind::kConst, k.shape = {3, 7}, k.bytes = 84;
  k.hbm_offset = g.hbm_window_bytes;
  g.hbm_window_bytes += 128;
  for (int i = 0; i < 84; ++i) k.data.push_back(uint8_t(i * 29));
  g.tensors.push_back(k);
  const std::string tcm = (d / "g.tcm").string(), s = (d / "g.s").string(), back = (d / "back.tcm").string();
  model::save(g, tcm);
  auto contents = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(0, std::ios::end);
    std::string c(size_t(std::max<std::streamoff>(f.tellg(), 0)), '\0');
    f.seekg(0);
    f.read(c.data(), std::streamsize(c.size()));
    return c;
  };

  Result dis = tcemu("dis " + tcm + " -o " + s);
  ASSERT_EQ(dis.status, 0) << dis.out;
  EXPECT_EQ(dis.out, "");
  Result as = tcemu("asm " + s + " -o " + back);
  ASSERT_EQ(as.status, 0) << as.out;
  EXPECT_EQ(as.out, "");
  const std::string original = contents(tcm), text = contents(s);
  ASSERT_GT(original.size(), 0u);
  EXPECT_TRUE(contents(back) == original) << "asm of dis's text must give the same bytes";
  EXPECT_NE(text.find(".tensor \"k\" f32 const shape=[3,7]"), std::string::npos) << text.substr(0, 2000);
  Result out = tcemu("dis " + tcm);  // without -o: the same text on stdout
  ASSERT_EQ(out.status, 0) << out.out.substr(0, 2000);
  EXPECT_TRUE(out.out == text);

  std::string edited = text;
  edited.replace(edited.find("  matmul "), 9, "  matmull ");
  const std::string bad = (d / "bad.s").string();
  std::ofstream(bad) << edited;
  Result r = tcemu("asm " + bad + " -o " + (d / "bad.tcm").string());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^tcemu: error: .*bad\\.s:[0-9]+:3: unknown mnemonic: .*found 'matmull'")))
      << r.out;
  EXPECT_EQ(lines(r.out), 1) << r.out;
  EXPECT_FALSE(fs::exists(d / "bad.tcm"));
  r = tcemu("asm " + tcm + " -o " + (d / "x.tcm").string());  // a model file is not text
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("g.tcm:1:1: this is a model file"), std::string::npos) << r.out;
  for (const std::string& usage :
       {"asm " + s, std::string("dis"), "dis " + tcm + " " + tcm, "dis " + tcm + " -o", "dis -x " + tcm}) {
    r = tcemu(usage);
    EXPECT_EQ(r.status, 2) << usage << ": " << r.out;
    EXPECT_NE(r.out.find("tcemu: error: "), std::string::npos) << r.out;
  }
  fs::remove_all(d);
}

TEST(Cli, DemoRunsTheDefaultModelAndPrintsItsProfile) {
  fs::path d = temp_dir("demo");
  std::string trace = (d / "t.json").string();
  Result r = tcemu("demo --profile " + trace);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("a transformer block (seq 512, d_model 512, 4 heads, d_ff 2048, causal) on trn1"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("check         PASS (0 of 262144 elements outside the tolerance"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("TensorE utilisation"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bound by"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(trace));
  // The file alone gives the same summary, as text and as JSON.
  Result s = tcemu("profile summary " + trace);
  ASSERT_EQ(s.status, 0) << s.out;
  EXPECT_NE(r.out.find(s.out.substr(0, s.out.find('\n'))), std::string::npos) << s.out;
  Result j = tcemu("profile summary " + trace + " --json");
  ASSERT_EQ(j.status, 0) << j.out;
  EXPECT_EQ(json_uint(j.out, "cycles"), json_uint(tcemu("demo --json --profile " + trace).out, "cycles"));
  Result bad = tcemu("profile summary " + (d / "missing.json").string());
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("missing.json"), std::string::npos) << bad.out;
  fs::remove_all(d);
}

// The speed benchmark's quick mode: one JSON object with every figure present and positive. Nothing is
// asserted about speed (the figures depend on the host and its load).
TEST(Cli, BenchTensorEngineQuickJsonHasEveryFigure) {
  Result r = tcemu("bench tensor-engine --quick --json");
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_EQ(lines(r.out), 1) << "JSON output must be one object and nothing else: " << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  auto positive = [](const nlohmann::json& o, const std::string& key) {
    ASSERT_TRUE(o.contains(key)) << key << " missing in " << o.dump();
    ASSERT_TRUE(o[key].is_number()) << key << " in " << o.dump();
    EXPECT_GT(o[key].get<double>(), 0.0) << key << " in " << o.dump();
  };
  positive(j, "fast_vs_openblas");
  EXPECT_EQ(j.value("openblas_threads", 0), 1) << r.out;  // like the emulator: one thread
  ASSERT_TRUE(j.contains("openblas_coretype")) << r.out;
  EXPECT_FALSE(j["openblas_coretype"].get<std::string>().empty()) << r.out;
  ASSERT_FALSE(j["gemm"].empty()) << r.out;
  for (const auto& g : j["gemm"]) {
    for (const char* key : {"cycles", "seconds", "macs_per_s", "openblas_macs_per_s", "fast_vs_openblas"})
      positive(g, key);
    EXPECT_EQ(g.value("tensor_engine", ""), "fast") << g.dump();
  }
  positive(j["fast_model"], "macs_per_s");
  ASSERT_EQ(j["rtl"].size(), 2u) << r.out;  // 16x16 and 32x32
  for (const auto& x : j["rtl"])
    for (const char* key :
         {"rtl_bare_cycles_per_s", "rtl_systemc_cycles_per_s", "rtl_bare_over_systemc", "gemm_device_cycles_per_s"})
      positive(x, key);
  ASSERT_EQ(j["mixed"].size(), 2u) << r.out;  // trn1 fast, tc1-16 rtl
  for (const auto& x : j["mixed"]) {
    EXPECT_EQ(x.value("kernel", ""), "linear") << x.dump();
    for (const char* key : {"cycles", "seconds", "device_cycles_per_s"}) positive(x, key);
  }
  Result bad = tcemu("bench tensor-engine --size 3");
  EXPECT_EQ(bad.status, 2) << bad.out;
  EXPECT_NE(bad.out.find("--size"), std::string::npos) << bad.out;
}

// The kernel benchmark's quick mode: a row per kernel with every field; the emulated figures are
// deterministic device cycles (not host time), so the acceptance levels of the schedules are asserted:
// GEMM 1024^3 bf16 (aT layout) >= 90% of TensorE peak on trn1, linear + bias + gelu >= 85%.
TEST(Cli, BenchKernelsQuickJsonHasARowPerKernelAndTheUtilisationLevels) {
  Result r = tcemu("bench kernels --quick --json");
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_EQ(lines(r.out), 1) << "JSON output must be one object and nothing else: " << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.value("config", ""), "trn1");
  std::set<std::string> kernels;
  double gemm = -1, linear = -1;
  for (const auto& row : j.at("rows")) {
    for (const char* key : {"cycles", "host_wall_s", "instructions"}) {
      ASSERT_TRUE(row.contains(key) && row[key].is_number()) << key << " in " << row.dump();
      EXPECT_GT(row[key].get<double>(), 0) << key << " in " << row.dump();
    }
    for (const char* key : {"macs", "utilization"}) ASSERT_TRUE(row.contains(key) && row[key].is_number()) << row.dump();
    EXPECT_FALSE(row.value("bound_by", "").empty()) << row.dump();
    const std::string k = row.value("kernel", "");
    kernels.insert(k);
    const auto& p = row.at("params");
    const bool cube = p.value("m", 0) == 1024 && p.value("n", 0) == 1024 && p.value("k", 0) == 1024;
    if (k == "gemm" && cube && p.value("a_layout", "") == "aT[K,M]" && p.value("dtype", "") == "bf16")
      gemm = row["utilization"].get<double>();
    if (k == "linear" && cube && p.value("act", "") == "gelu_tanh") linear = row["utilization"].get<double>();
  }
  EXPECT_GE(gemm, 0.90) << r.out;
  EXPECT_GE(linear, 0.85) << r.out;
  for (const char* k : {"gemm", "linear", "softmax"}) EXPECT_TRUE(kernels.count(k)) << k << " missing: " << r.out;
  Result bad = tcemu("bench kernels --only nothing");
  EXPECT_EQ(bad.status, 2) << bad.out;
}

}  // namespace
}  // namespace tcemu
