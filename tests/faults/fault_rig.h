// Shared by the fault tests: one emulated device (one per process: each test runs in its own process) seen
// through a transport that counts doorbells and resets, a GEMM workload checked bit for bit against the
// golden model, a small "probe" model whose tensors pass through SBUF, PSUM and HBM with time to spare
// between their writer and their reader (for bit flips at a known place and time), and the helpers that
// find that place and time in a clean run's trace.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "inproc_transport.h"
#include "tcemu/config.h"
#include "tcemu/drv/driver.h"
#include "tcemu/faults.h"
#include "tcemu/footprint.h"
#include "tcemu/kb/builder.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/numerics.h"
#include "tcemu/regs.h"
#include "tcemu/rt/runtime.h"

namespace tcemu::fault_test {

// Forwards to the device's transport, counting DOORBELL writes and context resets (CTRL.RESET): how many
// times a job was submitted, and whether the driver or runtime reset the device.
class CountingTransport : public drv::Transport {
 public:
  explicit CountingTransport(drv::Transport& inner) : inner_(inner) {}
  uint32_t mmio_read(uint32_t offset) override { return inner_.mmio_read(offset); }
  void mmio_write(uint32_t offset, uint32_t value) override {
    if (offset == regs::DOORBELL) ++doorbells;
    if (offset == regs::CTRL && (value & regs::kCtrlReset)) ++resets;
    inner_.mmio_write(offset, value);
  }
  void mem_read(uint64_t addr, std::span<uint8_t> dst) override { inner_.mem_read(addr, dst); }
  void mem_write(uint64_t addr, std::span<const uint8_t> src) override { inner_.mem_write(addr, src); }
  uint64_t mem_alloc(uint64_t bytes, uint64_t align) override { return inner_.mem_alloc(bytes, align); }
  void mem_free(uint64_t addr) override { inner_.mem_free(addr); }
  uint64_t mem_bytes_free() override { return inner_.mem_bytes_free(); }
  void inject_faults(const fi::Plan& plan) override { inner_.inject_faults(plan); }
  bool wait_irq(uint64_t timeout_cycles) override { return inner_.wait_irq(timeout_cycles); }
  std::string describe() const override { return inner_.describe(); }

  int doorbells = 0, resets = 0;

 private:
  drv::Transport& inner_;
};

// tc1-8 with the fast tensor engine: the RTL is not what these tests are about.
struct Rig {
  explicit Rig(const char* config = "tc1-8")
      : cfg(find_config(config)), inner(cfg, options()), transport(inner), driver(transport), runtime(driver) {}
  static emu::DeviceOptions options() {
    emu::DeviceOptions o;
    o.tensor_engine = TensorEngineKind::kFast;
    return o;
  }
  uint32_t reg(uint32_t offset) { return inner.mmio_read(offset); }

  DeviceConfig cfg;
  drv::InProcessTransport inner;
  CountingTransport transport;
  drv::Driver driver;
  rt::Runtime runtime;
};

inline fi::Plan plan(const std::string& spec) { return fi::parse(spec, "test plan"); }

inline rt::RunOptions with_faults(const std::string& spec, uint32_t max_retries = 1) {
  rt::RunOptions o;
  o.faults = plan(spec);
  o.max_retries = max_retries;
  return o;
}

// Runs `fn`, which must throw E; returns the exception (nullopt, and the caller's ASSERT fails, if nothing
// was thrown). Another exception type propagates and fails the test with its message.
template <class E, class F>
std::optional<E> thrown(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e;
  }
  return std::nullopt;
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// c = a x b with random bf16 inputs; the expected bits from num::golden_gemm (K in chunks of the array's
// rows, as the kernel accumulates them).
struct Gemm {
  Gemm(const DeviceConfig& cfg, int m, int n, int k, uint32_t seed = 1)
      : M(m), N(n), K(k), model(kb::build_gemm(cfg, m, n, k)) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<uint16_t> a(size_t(M) * K), b(size_t(K) * N);
    for (auto& x : a) x = num::f32_to_bf16(d(rng));
    for (auto& x : b) x = num::f32_to_bf16(d(rng));
    auto to_f32 = [](const std::vector<uint16_t>& v) {
      std::vector<float> f(v.size());
      for (size_t i = 0; i < v.size(); ++i) f[i] = num::bf16_to_f32(v[i]);
      return f;
    };
    inputs["a"] = {{M, K}, to_f32(a)};
    inputs["b"] = {{K, N}, to_f32(b)};
    golden.resize(size_t(M) * N);
    num::golden_gemm(M, N, K, cfg.rows, a.data(), b.data(), golden.data());
  }
  // Elements of the result whose bits differ from the golden model's (all of them if there is no output).
  size_t mismatches(const rt::RunResult& r) const {
    auto it = r.outputs.find("c");
    if (it == r.outputs.end() || it->second.data.size() != golden.size()) return golden.size();
    size_t bad = 0;
    for (size_t i = 0; i < golden.size(); ++i) bad += num::f32_bits(it->second.data[i]) != golden[i];
    return bad;
  }
  int M, N, K;
  model::Model model;
  rt::TensorMap inputs;
  std::vector<uint32_t> golden;
};

// The probe model on P partitions (the config's SBUF partitions):
//   t (SBUF) <- a (HBM);  p (PSUM) <- VectorE copy of t;  v (SBUF, L columns) <- big (HBM), a long copy;
//   v[:, 0:n] <- t;  v[:, n:2n] <- p;  v[:, 2n:3n] <- a2 (HBM);  out <- v[:, 0:3n]
// The three copies into v wait for the long copy (they overwrite its bytes), so t, p and a2 lie unread for
// thousands of cycles between their writer and their reader, which are DMA copies (they check ECC when they
// start). "spare" is an output the job never writes: the host's read of it is its only access.
// Every value moves by exact f32 copies: out must equal [a | a | a2] bit for bit.
struct Probe {
  static constexpr int kN = 16, kLong = 2048;
  explicit Probe(const DeviceConfig& cfg) : P(cfg.sbuf_partitions) {
    kb::Kernel k(cfg, "fault_probe");
    const kb::Dram a = k.input("a", model::DType::kF32, {P, kN});
    const kb::Dram a2 = k.input("a2", model::DType::kF32, {P, kN});
    const kb::Dram big = k.input("big", model::DType::kF32, {P, kLong});
    const kb::Dram out = k.output("out", model::DType::kF32, {P, 3 * kN});
    k.output("spare", model::DType::kF32, {P, 2});
    t = k.sbuf("t", isa::DType::kF32, uint32_t(P), kN);
    p = k.psum("p", uint32_t(P), kN);
    const kb::Tile v = k.sbuf("v", isa::DType::kF32, uint32_t(P), kLong);
    auto on = [](int q) {
      kb::DmaOpts o;
      o.queues = {q};
      o.split = 1;
      return o;
    };
    k.dma(t.ap(), a.rows(0, uint64_t(P), 0, kN), on(0));
    k.tensor_copy(p, t);
    k.dma(v.ap(), big.rows(0, uint64_t(P), 0, kLong), on(1));
    k.dma(v.cols(0, kN).ap(), t.ap(), on(2));
    k.dma(v.cols(kN, kN).ap(), p.ap(), on(3));
    k.dma(v.cols(2 * kN, kN).ap(), a2.rows(0, uint64_t(P), 0, kN), on(4));
    k.dma(out.rows(0, uint64_t(P), 0, 3 * kN), v.cols(0, 3 * kN).ap(), on(5));
    model = k.finish();
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> d(-4.0f, 4.0f);
    for (const char* name : {"a", "a2"}) {
      auto& x = inputs[name];
      x.shape = {P, kN};
      x.data.resize(size_t(P) * kN);
      for (auto& e : x.data) e = d(rng);
    }
    inputs["big"] = {{P, kLong}, std::vector<float>(size_t(P) * kLong, 0.5f)};
  }
  // out == [a | a | a2], bit for bit, and spare == 0.
  size_t mismatches(const rt::RunResult& r) const {
    auto out = r.outputs.find("out"), spare = r.outputs.find("spare");
    if (out == r.outputs.end() || spare == r.outputs.end()) return size_t(P) * 3 * kN;
    size_t bad = 0;
    for (int row = 0; row < P; ++row)
      for (int c = 0; c < 3 * kN; ++c) {
        const float want = (c < 2 * kN ? inputs.at("a") : inputs.at("a2")).data[size_t(row) * kN + c % kN];
        bad += num::f32_bits(out->second.data[size_t(row) * 3 * kN + c]) != num::f32_bits(want);
      }
    for (float x : spare->second.data) bad += num::f32_bits(x) != 0;
    return bad;
  }
  // Byte offset of tensor `name` in the model's HBM window.
  uint64_t hbm_offset(const std::string& name) const { return model.find_tensor(name)->hbm_offset; }
  // Linear byte offset (partition * partition bytes + offset) of element e of partition part of `tile`.
  static uint64_t linear(const DeviceConfig& cfg, const kb::Tile& tile, uint32_t part, uint64_t e) {
    const uint64_t pb = tile.space == isa::Space::kSbuf ? cfg.sbuf_partition_bytes : cfg.psum_partition_bytes();
    return uint64_t(tile.part + part) * pb + tile.off + e * 4;
  }

  int P;
  kb::Tile t, p;
  model::Model model;
  rt::TensorMap inputs;
};

// Where and when to flip bits of one 8-byte ECC word so that a known instruction is the next to touch it.
struct FlipTarget {
  uint64_t cycle = 0;  // job cycle at which to flip (between the word's last access and its reader's start)
  int engine = -1;     // the instruction that reads the word next (not TensorE: it checks when it starts)
  uint32_t pc = 0;
};

// From a clean run's trace of model `m`: the instruction (not TensorE, whose checks happen before its trace
// interval when weights are loaded ahead) that reads word [word, word + 8) of `space` (SBUF/PSUM: linear
// offset, HBM: window offset) after the longest quiet time, and a cycle in the middle of that quiet time.
// TensorE accesses are widened to [the previous TensorE instruction's start, end + its pipeline drain].
// Fails the test (engine -1) if no reader has four quiet cycles before it.
inline FlipTarget flip_target(const DeviceConfig& cfg, const model::Model& m, const std::vector<TraceRecord>& records,
                              isa::Space space, uint64_t word) {
  struct Touch {
    uint64_t begin, end;
    bool reads, tensor;
    const TraceRecord* r;
  };
  std::vector<Touch> touches;
  uint64_t prev_te_start = 0;
  std::vector<TraceRecord> by_start = records;
  std::sort(by_start.begin(), by_start.end(), [](auto& x, auto& y) { return x.start < y.start; });
  for (const TraceRecord& r : by_start) {
    const model::Stream* s = nullptr;
    for (const auto& st : m.streams)
      if (st.engine == r.engine) s = &st;
    if (!s || r.pc >= s->instrs.size()) continue;
    const isa::Footprint fp = isa::footprint(cfg, s->instrs[r.pc]);
    auto hits = [&](const std::vector<isa::Region>& regions) {
      for (const isa::Region& g : regions) {
        if (g.space != space) continue;
        const uint64_t pb = space == isa::Space::kSbuf   ? cfg.sbuf_partition_bytes
                            : space == isa::Space::kPsum ? cfg.psum_partition_bytes()
                                                         : 0;
        const uint64_t lo = g.partition * pb + g.begin, hi = g.partition * pb + g.end;
        if (lo < word + 8 && word < hi) return true;
      }
      return false;
    };
    const bool reads = hits(fp.reads), writes = hits(fp.writes);
    const bool tensor = r.engine == isa::kEngineTensor;
    const uint64_t drain = tensor ? 2 * uint64_t(cfg.rows + cfg.cols) + 16 : 0;
    if (reads || writes) touches.push_back({tensor ? prev_te_start : r.start, r.end + drain, reads, tensor, &r});
    if (tensor) prev_te_start = r.start;
  }
  FlipTarget best;
  uint64_t best_gap = 0;
  for (const Touch& t : touches) {
    if (!t.reads || t.tensor) continue;
    uint64_t quiet_from = 0;
    bool tie = false;
    for (const Touch& o : touches) {
      if (&o == &t || o.begin > t.begin) continue;
      if (o.begin == t.begin) tie = true;
      quiet_from = std::max(quiet_from, o.end + 1);
    }
    if (tie || quiet_from + 4 > t.begin) continue;
    if (t.begin - quiet_from > best_gap) {
      best_gap = t.begin - quiet_from;
      best = {quiet_from + best_gap / 2, int(t.r->engine), t.r->pc};
    }
  }
  EXPECT_GE(best.engine, 0) << "no instruction reads " << isa::space_name(uint64_t(space)) << " word 0x" << std::hex
                            << word << " after a quiet time";
  return best;
}

// An ECC word's device address as FAULT_ADDR and ECC_ADDR give it (HBM: absolute).
inline uint64_t ecc_word_addr(isa::Space space, uint64_t offset) { return isa::make_addr(space, offset / 8 * 8); }

}  // namespace tcemu::fault_test
