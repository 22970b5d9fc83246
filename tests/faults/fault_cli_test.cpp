// Fault injection from the command line (docs/driver.md, "From the command line"): --fault, --faults,
// --fault-seed on gemm and run, the report's "faults" section and its JSON, usage errors for bad specs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tcemu/npy.h"

namespace tcemu {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string out, err;
};

// Runs tcemu with `args`; stdout and stderr apart.
Result tcemu(const std::string& args) {
  const fs::path err = fs::temp_directory_path() / ("tcemu_fault_cli_err_" + std::to_string(::getpid()));
  const std::string cmd = std::string(TCEMU_BIN) + " " + args + " 2>" + err.string();
  FILE* p = popen(cmd.c_str(), "r");
  Result r{-1, "", ""};
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  std::ifstream f(err);
  r.err.assign(std::istreambuf_iterator<char>(f), {});
  fs::remove(err);
  return r;
}

constexpr const char* kGemm = "gemm --m 16 --n 24 --k 20 --config tc1-8 --tensor-engine fast --seed 3";

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(FaultCli, GemmRecoversFromADmaErrorAndReportsItInJson) {
  const Result clean = tcemu(std::string(kGemm) + " --json");
  const Result r = tcemu(std::string(kGemm) + " --fault \"dma_error transfer=2\" --json");
  ASSERT_EQ(clean.status, 0) << clean.out << clean.err;
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto c = nlohmann::json::parse(clean.out), j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["mismatches"], 0);
  EXPECT_EQ(j["cycles"], c["cycles"]);  // the job that completed is the same job
  const auto& f = j["faults"];
  EXPECT_EQ(f["injected"], nlohmann::json::array({"dma_error job=1 transfer=2"}));
  EXPECT_EQ(f["retries"], 1);
  ASSERT_EQ(f["recovered"].size(), 1u);
  EXPECT_EQ(f["recovered"][0]["attempt"], 1);
  EXPECT_EQ(f["recovered"][0]["error"], "device-fault");
  EXPECT_EQ(f["recovered"][0]["fault"], "DmaError");
  EXPECT_TRUE(has(f["recovered"][0]["message"].get<std::string>(), "DMA queue"));
  EXPECT_GE(f["device_cycles"].get<uint64_t>(), c["faults"]["device_cycles"].get<uint64_t>());
  for (const char* key : {"missed_irqs", "late_irqs", "spurious_irqs", "doorbell_retries", "ecc_corrected"})
    EXPECT_EQ(f[key], 0) << key;
  // A clean run has the same fields, empty.
  EXPECT_EQ(c["faults"]["injected"], nlohmann::json::array());
  EXPECT_EQ(c["faults"]["retries"], 0);
}

TEST(FaultCli, HumanReportHasAFaultsSectionOnlyWhenThereIsSomethingToSay) {
  const Result clean = tcemu(kGemm);
  ASSERT_EQ(clean.status, 0) << clean.err;
  EXPECT_FALSE(has(clean.out, "faults")) << clean.out;
  const Result r =
      tcemu(std::string(kGemm) + " --fault \"irq_drop\" --fault \"doorbell_ignore count=2\" --fault-seed 9");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(has(r.out, "PASS, bit-exact")) << r.out;
  EXPECT_TRUE(has(r.out, "  faults        injected: irq_drop job=1; doorbell_ignore count=2 (seed 9)")) << r.out;
  EXPECT_TRUE(has(r.out, "interrupts: 1 missed, 0 late, 0 spurious; doorbell retries: 2")) << r.out;
}

TEST(FaultCli, SpecFileAndRunCommand) {
  const fs::path dir = fs::temp_directory_path() / ("tcemu_fault_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string spec = (dir / "plan.faults").string(), model = (dir / "g.tcm").string();
  std::ofstream(spec) << "# the first attempt's completion record is corrupt\nseed 4\ncompletion_corrupt\n";
  // The saved model and random inputs for `run`.
  ASSERT_EQ(tcemu(std::string(kGemm) + " --save-model " + model).status, 0);
  const Result g = tcemu(std::string(kGemm) + " --faults " + spec + " --json");
  ASSERT_EQ(g.status, 0) << g.err;
  const auto j = nlohmann::json::parse(g.out);
  EXPECT_EQ(j["mismatches"], 0);
  EXPECT_EQ(j["faults"]["seed"], 4);
  EXPECT_EQ(j["faults"]["retries"], 1);
  EXPECT_EQ(j["faults"]["recovered"][0]["error"], "device");
  EXPECT_TRUE(has(j["faults"]["recovered"][0]["message"].get<std::string>(), "completion record"));
  // run: the file's faults, then --fault lines; --fault-seed replaces the file's seed.
  const std::string a = (dir / "a.npy").string(), b = (dir / "b.npy").string();
  npy::save(a, {{16, 20}, std::vector<float>(16 * 20, 0.25f)});
  npy::save(b, {{20, 24}, std::vector<float>(20 * 24, 0.5f)});
  const Result r =
      tcemu("run " + model + " --input a=" + a + " --input b=" + b + " --output-dir " + (dir / "out").string() +
            " --faults " + spec + " --fault \"irq_spurious cycle=50\" --fault-seed 5 --json");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto k = nlohmann::json::parse(r.out);
  EXPECT_EQ(k["faults"]["seed"], 5);
  EXPECT_EQ(k["faults"]["injected"],
            nlohmann::json::array({"completion_corrupt job=1", "irq_spurious job=1 cycle=50"}));
  EXPECT_EQ(k["faults"]["retries"], 1);
  EXPECT_EQ(k["faults"]["spurious_irqs"], 1);
  EXPECT_TRUE(fs::exists(dir / "out" / "c.npy"));
  fs::remove_all(dir);
}

TEST(FaultCli, BadSpecsAreOneLineUsageErrors) {
  struct Case {
    std::string args, problem;
  };
  const Case cases[] = {
      {"--fault \"dma_eror transfer=2\"", "tcemu: error: --fault 'dma_eror transfer=2': unknown fault 'dma_eror'"},
      {"--fault \"bit_flip space=sbuf bits=3\"", "bits=3 is out of range [1, 2]"},
      {"--fault \"hang\"", "hang needs engine=NAME"},
      {"--fault-seed x", "tcemu: error: --fault-seed: 'x' is not a non-negative integer"},
      {"--faults /nonexistent/plan.faults", "/nonexistent/plan.faults"},
  };
  for (const Case& c : cases) {
    const Result r = tcemu(std::string(kGemm) + " " + c.args);
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.err;
    const std::string first = r.err.substr(0, r.err.find('\n'));
    EXPECT_TRUE(has(first, c.problem)) << c.args << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args << ": nothing is run: " << r.out;
  }
}

TEST(FaultCli, AFailureThatOutlastsTheRetriesIsAnError) {
  const Result r = tcemu(std::string(kGemm) + " --fault \"dma_error job=1\" --fault \"dma_error job=2\"");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(has(r.err, "tcemu: error: device fault DmaError")) << r.err;
}

}  // namespace
}  // namespace tcemu
