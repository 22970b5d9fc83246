// Robustness: random instruction streams (valid opcodes with random operands, and raw garbage) on
// every engine must end in a completion, a precise fault or the watchdog: never a crash or a hang.
// After each faulting job the device is reset, and at the end it still computes a GEMM bit-exactly.
#include <gtest/gtest.h>

#include <random>

#include "inproc_transport.h"
#include "tcemu/isa.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/numerics.h"
#include "tcemu/rt/runtime.h"

namespace tcemu {
namespace {

// A random instruction: a known opcode with every field filled with a random value that fits, biased
// towards small numbers so that many are in range, or (one in eight) 64 random bytes.
std::vector<uint8_t> random_instruction(std::mt19937_64& rng) {
  std::vector<uint8_t> raw(isa::kInstrBytes);
  if (rng() % 8 == 0) {
    for (auto& b : raw) b = uint8_t(rng());
    return raw;
  }
  auto ops = isa::opcodes();
  isa::Instr in;
  in.opcode = ops[rng() % ops.size()].opcode;
  for (const auto& f : isa::fields()) {
    if (f.owner != isa::Opcode::Invalid && f.owner != in.opcode) continue;
    const uint64_t mask = f.width >= 64 ? ~0ull : (1ull << f.width) - 1;
    uint64_t v;
    switch (rng() % 4) {
      case 0: v = rng() % 4; break;
      case 1: v = rng() % 64; break;
      case 2: v = rng() % 4096; break;
      default: v = rng(); break;
    }
    in.*f.member = v & mask;
  }
  // Keep DMA patterns small enough to run quickly; space bits stay random.
  in.d1_count %= 9, in.d2_count %= 9, in.d3_count %= 9;
  in.wait_sem %= 8, in.signal_sem %= 8, in.wait_value %= 4;
  isa::encode_to(in, std::span<uint8_t, isa::kInstrBytes>(raw.data(), isa::kInstrBytes));
  return raw;
}

TEST(RandomStreams, NeverCrashOrHangAndTheDeviceRecovers) {
  const DeviceConfig& cfg = find_config("tc1-8");
  drv::InProcessTransport transport(cfg);
  drv::Driver driver(transport);
  std::mt19937_64 rng(2024);
  const uint64_t window = 1 << 16;
  uint64_t win = driver.alloc(window);
  std::vector<uint8_t> fill(window);
  for (auto& b : fill) b = uint8_t(rng());
  driver.write(win, fill);
  const int engines[] = {isa::kEngineTensor, isa::kEngineVector, isa::kEngineScalar, isa::kEngineDma0,
                         isa::kEngineDma0 + 1, isa::kEngineDma0 + 15};
  int completed = 0, faulted = 0;
  std::map<regs::FaultCode, int> kinds;
  for (int job = 0; job < 300; ++job) {
    driver.transport().mmio_write(regs::WATCHDOG_CYCLES, 20000);
    drv::Job j{win, window, {}};
    std::vector<uint64_t> code_blocks;
    for (int engine : engines) {
      if (rng() % 2) continue;
      const uint32_t n = 1 + uint32_t(rng() % 6);
      std::vector<uint8_t> code;
      for (uint32_t i = 0; i < n; ++i) {
        auto ins = random_instruction(rng);
        code.insert(code.end(), ins.begin(), ins.end());
      }
      uint64_t at = driver.alloc(code.size(), 64);
      driver.write(at, code);
      code_blocks.push_back(at);
      j.streams.push_back({engine, at, n});
    }
    try {
      driver.run(j, 50'000'000);
      ++completed;
    } catch (const drv::DeviceFault& e) {
      ++faulted;
      kinds[e.fault()]++;
      EXPECT_NE(std::string(e.what()).find("device fault"), std::string::npos);
      driver.reset();
    } catch (const Error& e) {
      // A job whose engine the device lacks is refused as BadJob (a fault), never anything else.
      ADD_FAILURE() << "job " << job << ": " << e.what();
      driver.reset();
    }
    for (uint64_t a : code_blocks) driver.free(a);
  }
  std::string summary;
  for (auto& [k, n] : kinds) summary += std::string(regs::fault_name(k)) + "=" + std::to_string(n) + " ";
  std::printf("completed %d, faulted %d: %s\n", completed, faulted, summary.c_str());
  EXPECT_GT(completed, 0);
  EXPECT_GT(faulted, 0);
  EXPECT_GT(kinds.size(), 3u) << "the random streams exercise several fault kinds";
  // The device still computes correctly.
  rt::Runtime runtime(driver);
  const int M = 17, N = 23, K = 29;
  auto lm = runtime.load(kb::build_gemm(cfg, M, N, K));
  rt::TensorMap in;
  std::uniform_real_distribution<float> u(-1, 1);
  std::mt19937 r32(1);
  in["a"].shape = {M, K};
  in["b"].shape = {K, N};
  std::vector<uint16_t> A, B;
  for (int i = 0; i < M * K; ++i) A.push_back(num::f32_to_bf16(u(r32))), in["a"].data.push_back(num::bf16_to_f32(A.back()));
  for (int i = 0; i < K * N; ++i) B.push_back(num::f32_to_bf16(u(r32))), in["b"].data.push_back(num::bf16_to_f32(B.back()));
  auto res = runtime.run(*lm, in);
  std::vector<uint32_t> C(M * N);
  num::golden_gemm(M, N, K, cfg.rows, A.data(), B.data(), C.data());
  for (int i = 0; i < M * N; ++i) ASSERT_EQ(num::f32_bits(res.outputs.at("c").data[i]), C[i]) << i;
}

}  // namespace
}  // namespace tcemu
