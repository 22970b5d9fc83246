// The fast tensor engine against the verilated RTL on the emulated device (docs/rtl.md, "Choosing the
// engine, and lockstep"): random TensorE instruction sequences in lockstep, checked against the golden
// model, plus the same sequences on the fast engine alone; and a comparison that is made to fail.
//
// Each sequence is one job: random matmuls (bf16 and fp32) and pe_transposes with random shapes and
// operand places, accumulate chains into one PSUM place, issued back to back or separated by semaphore
// waits (on a DMA that evacuates PSUM after the previous instruction, on an independent DMA, on a
// signalling nop that drains the array, behind a notify). SBUF holds fresh values for every operand, from
// distributions that reach both the fast model's vector path and its exact path (normal values, small
// integers, subnormals, inf and NaN, products at the flush and overflow boundaries, raw bits).
//
// "0 result differences": in lockstep the RTL's outputs go to PSUM and the fast model's are compared
// with them after every cycle; a difference faults the job (LockstepMismatch), so every job completing
// means none occurred. PSUM is also read back after every job and compared in full with the golden
// model (num::golden_matmul_tile, num::golden_matmul_fp32_tile) applied in program order.
//
// "0 cycle differences": in lockstep every port (out_valid, wload_ready, busy, out_data) is compared
// every cycle, and the sequencer decides each cycle only from those ports and the semaphores, so equal
// ports mean the same cycles. That argument rests on the device behaving the same whatever engine it
// drives, so the test also checks it directly: before it makes its device, the test process forks a
// child (a process may hold one SystemC device) that runs the same seeded sequences on the fast engine
// alone (TensorEngineKind::kFast) and writes, per job, the job's cycles, every trace record (TensorE and
// DMA: start, end, wait cycles, bytes, MACs) and a hash of PSUM. The parent compares them with its
// lockstep run's: equal cycles, records and PSUM for every job. The two processes run in parallel.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>

#include "tcemu/numerics.h"
#include "tcemu/regs.h"
#include "tensor_rig.h"

namespace tcemu {
namespace {

using isa::Instr;
using isa::MatmulType;
using isa::Opcode;
using test::hex;
using test::TensorRig;

// ---- Operand values ---------------------------------------------------------------------------------

enum class Dist { kNormal, kSmallInt, kSpecials, kTiny, kHuge, kWide, kRaw };

uint32_t pack(uint32_t sign, uint32_t exp, uint32_t frac, bool fp32) {
  return fp32 ? sign << 31 | exp << 23 | (frac & 0x7FFFFF) : sign << 15 | exp << 7 | (frac & 0x7F);
}

// One element of distribution d: bf16 bits (fp32 false) or fp32 bits. The exponent ranges are those of
// the fast model's exact-path test (docs/rtl.md: a product of exponent fields E_w + E_x = S is exact in
// an FMA for 142 <= S <= 380): kTiny puts S around 142 (products and sums near 2^-126, flushed by the
// engine), kHuge around 381 (products near 2^128, overflowing to inf).
uint32_t random_element(std::mt19937_64& rng, Dist d, bool fp32) {
  static const uint16_t kBf16Specials[] = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x0001,
                                           0x807F, 0x0040, 0x0080, 0x8080, 0x7F7F, 0xFF7F, 0x3F80, 0xBF80};
  static const uint32_t kFp32Specials[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFA00001,
                                           0x7F800001, 0x00000001, 0x807FFFFF, 0x00400000, 0x00800000, 0x80800000,
                                           0x03801234, 0x7F7FFFFF, 0xFF7F8000, 0x3F808000, 0x3F818000, 0x3F800000};
  auto in = [&](uint32_t lo, uint32_t hi) { return lo + uint32_t(rng() % (hi - lo + 1)); };
  const uint32_t sign = uint32_t(rng() & 1), frac = uint32_t(rng());
  switch (d) {
    case Dist::kNormal:
      return pack(sign, in(121, 133), frac, fp32);  // |x| in [2^-6, 2^7)
    case Dist::kSmallInt: {                         // exact products; sums cancel to signed zeros
      const uint32_t f = num::f32_bits(float(int(in(0, 16)) - 8));
      return fp32 ? f : f >> 16;
    }
    case Dist::kSpecials:
      if (rng() % 4 == 0)
        return fp32 ? kFp32Specials[rng() % std::size(kFp32Specials)] : kBf16Specials[rng() % std::size(kBf16Specials)];
      return pack(sign, in(121, 133), frac, fp32);
    case Dist::kTiny:
      return pack(sign, in(60, 82), frac, fp32);
    case Dist::kHuge:
      return pack(sign, in(170, 212), frac, fp32);
    case Dist::kWide:
      return pack(sign, in(1, 254), frac, fp32);  // any finite normal
    case Dist::kRaw:
      return fp32 ? uint32_t(rng()) : uint32_t(rng() & 0xFFFF);
  }
  return 0;
}

Dist random_dist(std::mt19937_64& rng) {
  static const Dist kWeighted[] = {Dist::kNormal,   Dist::kNormal, Dist::kNormal, Dist::kSmallInt, Dist::kSpecials,
                                   Dist::kSpecials, Dist::kTiny,   Dist::kHuge,   Dist::kWide,     Dist::kRaw};
  return kWeighted[rng() % std::size(kWeighted)];
}

// ---- Sequences ----------------------------------------------------------------------------------------

// Semaphores of a sequence (all 0 when the job starts).
constexpr uint64_t kSemTensorDone = 1;  // TensorE -> evacuating DMA: the instruction before the boundary completed
constexpr uint64_t kSemEvacuated = 2;   // evacuating DMA -> TensorE
constexpr uint64_t kSemDrained = 3;     // signalling TensorE nop -> the next instruction
constexpr uint64_t kSemDelay = 4;       // independent DMA -> TensorE
constexpr int kEvacQueue = isa::kEngineDma0 + 1, kDelayQueue = isa::kEngineDma0 + 2;

enum class Boundary { kNone, kEvacuate, kDrainNop, kNopWaitsDma, kWaitsDma, kNotify, kCount };
const char* const kBoundaryNames[] = {"back to back",         "wait on a DMA evacuating PSUM", "signalling nop",
                                      "nop waiting on a DMA", "instruction waiting on a DMA",  "notify"};

struct Sequence {
  std::vector<Instr> tensor, evac, delay;  // the job's streams: TensorE, kEvacQueue, kDelayQueue
  std::vector<Instr> array;                // the matmuls and pe_transposes in program order
  std::vector<Boundary> boundaries;        // before each array instruction
};

// Where operands live in each SBUF partition: bf16 operands in [0, bf16_end), fp32 operands in
// [bf16_end, scratch); the scratch (the rig's PSUM read-back, and the evacuating DMAs' destination) is
// never an operand. The host image holds [0, scratch) of every partition.
struct Layout {
  explicit Layout(const DeviceConfig& cfg)
      : parts(cfg.sbuf_partitions),
        scratch(cfg.sbuf_partition_bytes - cfg.psum_bank_bytes),
        bf16_end(scratch / 2 / 4 * 4) {}
  uint64_t parts, scratch, bf16_end;
};

uint64_t columns(const Instr& in) { return in.opcode == Opcode::PeTranspose ? in.k : in.n; }
bool is_fp32(const Instr& in) { return in.opcode == Opcode::Matmul && in.dtype == uint64_t(MatmulType::kFp32); }

// A random output place: m partitions x n fp32 inside one PSUM bank.
void place_output(std::mt19937_64& rng, const DeviceConfig& cfg, Instr& in) {
  const uint64_t per_bank = cfg.psum_bank_bytes / 4, n = columns(in);
  in.out_part = rng() % (cfg.psum_partitions - in.m + 1);
  in.out_off = (rng() % cfg.psum_banks) * cfg.psum_bank_bytes + 4 * (rng() % (per_bank - n + 1));
}

// A random operand offset for `count` elements of `eb` bytes inside [lo, hi), aligned to eb.
uint64_t place_operand(std::mt19937_64& rng, uint64_t lo, uint64_t hi, uint64_t count, uint64_t eb) {
  return lo + eb * (rng() % ((hi - lo) / eb - count + 1));
}

// Moving columns: often short (n < k + L: the pipeline's hazards between neighbouring matmuls), up to a
// whole PSUM bank.
uint64_t random_n(std::mt19937_64& rng, const DeviceConfig& cfg) {
  const uint64_t latency = uint64_t(cfg.rows + cfg.cols - 1), r = rng() % 10;
  if (r < 4) return 1 + rng() % (2 * latency);
  if (r < 8) return 1 + rng() % 128;
  return 1 + rng() % (cfg.psum_bank_bytes / 4);
}

// A random matmul (bf16 or fp32) or pe_transpose; with `chain`, of its output shape, at its place and
// accumulating. Operand places are random in the layout.
Instr random_array_instr(std::mt19937_64& rng, const DeviceConfig& cfg, const Layout& lay, const Instr* chain) {
  const uint64_t rows = uint64_t(cfg.rows), cols = uint64_t(cfg.cols);
  Instr in;
  const unsigned kind = unsigned(rng() % 20);  // 5 pe_transpose : 8 bf16 : 7 fp32
  const uint64_t m = chain ? chain->m : (rng() % 2 ? cols : 1 + rng() % cols);
  uint64_t n = chain ? columns(*chain) : random_n(rng, cfg);
  if (kind < 5 && !chain) n = rng() % 2 ? rows : 1 + rng() % rows;
  if (kind < 5 && n <= rows) {  // pe_transpose: k = the output's columns
    in.opcode = Opcode::PeTranspose;
    in.k = n, in.m = m;
  } else {
    in.opcode = Opcode::Matmul;
    in.dtype = uint64_t(kind < 13 ? MatmulType::kBf16 : MatmulType::kFp32);
    in.k = rng() % 2 ? rows : 1 + rng() % rows;
    in.m = m, in.n = n;
  }
  const uint64_t eb = is_fp32(in) ? 4 : 2;
  const uint64_t lo = eb == 4 ? lay.bf16_end : 0, hi = eb == 4 ? lay.scratch : lay.bf16_end;
  in.st_part = rng() % (lay.parts - in.k + 1);
  in.st_off = place_operand(rng, lo, hi, in.m, eb);
  if (in.opcode == Opcode::Matmul) {
    in.mv_part = rng() % (lay.parts - in.k + 1);
    in.mv_off = place_operand(rng, lo, hi, in.n, eb);
  }
  if (chain) {
    in.out_part = chain->out_part, in.out_off = chain->out_off, in.accumulate = 1;
  } else {
    place_output(rng, cfg, in);
    in.accumulate = rng() % 4 == 0;  // adds to what the earlier jobs left in PSUM
  }
  return in;
}

Instr dma_copy(uint64_t src, uint64_t dst, uint64_t bytes, uint64_t runs, uint64_t src_stride, uint64_t dst_stride) {
  return TensorRig::copy(src, dst, bytes, runs, src_stride, dst_stride);
}

void wait_on(Instr& in, uint64_t sem, uint64_t value) { in.wait_en = 1, in.wait_sem = sem, in.wait_value = value; }
void signal_on(Instr& in, uint64_t sem) { in.signal_en = 1, in.signal_sem = sem, in.signal_value = 1; }

Sequence random_sequence(std::mt19937_64& rng, const TensorRig& rig, const Layout& lay) {
  const DeviceConfig& cfg = rig.cfg;
  Sequence s;
  uint64_t te_signals = 0, evacs = 0, drains = 0, delays = 0;
  const int count = rng() % 4 == 0 ? 1 + int(rng() % 3) : 2 + int(rng() % 11);
  std::optional<Instr> chain;  // the place the last instruction wrote, to accumulate into
  for (int i = 0; i < count; ++i) {
    const bool extend = chain && rng() % 5 < 2;
    Instr in = random_array_instr(rng, cfg, lay, extend ? &*chain : nullptr);
    // The boundary before it. The first instruction has no predecessor to wait for, only a DMA.
    Boundary b = Boundary::kNone;
    if (rng() % 2) b = Boundary(1 + rng() % (int(Boundary::kCount) - 1));
    if (i == 0 && b != Boundary::kNopWaitsDma && b != Boundary::kWaitsDma) b = Boundary::kNone;
    auto delay_dma = [&] {
      const uint64_t bytes = 16 + rng() % (uint64_t(16) << (rng() % 11));  // up to 16 KiB: ~0 to ~1 k cycles
      Instr c = dma_copy(TensorRig::hbm(TensorRig::kStage), TensorRig::hbm(TensorRig::kBack), bytes, 1, 0, 0);
      signal_on(c, kSemDelay);
      s.delay.push_back(c);
      return ++delays;
    };
    switch (b) {
      case Boundary::kNone:
        break;
      case Boundary::kEvacuate: {       // a DMA copies the previous instruction's result to SBUF, then TensorE goes on
        Instr& prev = s.tensor.back();  // the previous array instruction: boundaries go before their instruction
        signal_on(prev, kSemTensorDone);
        const uint64_t bytes = 4 * columns(prev);
        Instr c = dma_copy(rig.psum(prev.out_part, prev.out_off), rig.sbuf(prev.out_part, rig.scratch_off()), bytes,
                           prev.m, cfg.psum_partition_bytes(), cfg.sbuf_partition_bytes);
        wait_on(c, kSemTensorDone, ++te_signals);
        signal_on(c, kSemEvacuated);
        s.evac.push_back(c);
        wait_on(in, kSemEvacuated, ++evacs);
        break;
      }
      case Boundary::kDrainNop: {  // a signalling nop waits for every earlier matmul to be in PSUM
        Instr nop;
        nop.opcode = Opcode::Nop;
        signal_on(nop, kSemDrained);
        s.tensor.push_back(nop);
        wait_on(in, kSemDrained, ++drains);
        break;
      }
      case Boundary::kNopWaitsDma: {
        Instr nop;
        nop.opcode = Opcode::Nop;
        wait_on(nop, kSemDelay, delay_dma());
        s.tensor.push_back(nop);
        break;
      }
      case Boundary::kWaitsDma:
        wait_on(in, kSemDelay, delay_dma());
        break;
      case Boundary::kNotify: {
        Instr notify;
        notify.opcode = Opcode::Notify;
        notify.tag = uint64_t(i);
        s.tensor.push_back(notify);
        break;
      }
      case Boundary::kCount:
        break;
    }
    s.tensor.push_back(in);
    s.array.push_back(in);
    s.boundaries.push_back(b);
    chain = in;
  }
  return s;
}

// The host image of SBUF [0, scratch) of every partition, row-major by partition.
struct SbufImage {
  explicit SbufImage(const Layout& lay) : lay(lay), bytes(lay.parts * lay.scratch) {}
  const Layout& lay;
  std::vector<uint8_t> bytes;
  uint8_t* at(uint64_t part, uint64_t off) { return &bytes[part * lay.scratch + off]; }
  uint32_t get(uint64_t part, uint64_t off, uint64_t eb) {
    uint32_t v = 0;
    std::memcpy(&v, at(part, off), eb);
    return v;
  }
};

// Fresh values for an instruction's operands (rows x count elements from `part`, `off`).
void fill_operand(std::mt19937_64& rng, SbufImage& img, uint64_t part, uint64_t off, uint64_t rows, uint64_t count,
                  bool fp32, Dist d) {
  const uint64_t eb = fp32 ? 4 : 2;
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t i = 0; i < count; ++i) {
      const uint32_t v = random_element(rng, d, fp32);
      std::memcpy(img.at(part + r, off + eb * i), &v, eb);
    }
}

void fill_operands(std::mt19937_64& rng, SbufImage& img, const Sequence& s) {
  for (const Instr& in : s.array) {
    const Dist dw = random_dist(rng), dx = rng() % 2 ? dw : random_dist(rng);
    fill_operand(rng, img, in.st_part, in.st_off, in.k, in.m, is_fp32(in), dw);
    if (in.opcode == Opcode::Matmul) fill_operand(rng, img, in.mv_part, in.mv_off, in.k, in.n, is_fp32(in), dx);
  }
}

// ---- Golden model and statistics ----------------------------------------------------------------------

// PSUM after `in`, from the SBUF image, by the golden model: matmul (docs/isa.md), fp32 matmul (its
// passes), pe_transpose (the matmul with the tile stationary and the identity moving).
void apply_golden(const DeviceConfig& cfg, SbufImage& img, const Instr& in, std::vector<uint32_t>& psum) {
  const int K = int(in.k), M = int(in.m), N = int(columns(in));
  const uint64_t pitch = cfg.psum_partition_bytes() / 4;
  std::vector<uint32_t> y(size_t(M) * N);
  for (int c = 0; c < M; ++c)
    for (int n = 0; n < N; ++n) y[size_t(c) * N + n] = psum[(in.out_part + c) * pitch + in.out_off / 4 + n];
  if (is_fp32(in)) {
    std::vector<uint32_t> w(size_t(K) * M), x(size_t(K) * N);
    for (int r = 0; r < K; ++r) {
      for (int c = 0; c < M; ++c) w[size_t(r) * M + c] = img.get(in.st_part + r, in.st_off + 4 * c, 4);
      for (int n = 0; n < N; ++n) x[size_t(r) * N + n] = img.get(in.mv_part + r, in.mv_off + 4 * n, 4);
    }
    num::golden_matmul_fp32_tile(K, M, N, w.data(), x.data(), y.data(), in.accumulate);
  } else {
    std::vector<uint16_t> w(size_t(K) * M), x(size_t(K) * N, 0);
    for (int r = 0; r < K; ++r) {
      for (int c = 0; c < M; ++c) w[size_t(r) * M + c] = uint16_t(img.get(in.st_part + r, in.st_off + 2 * c, 2));
      for (int n = 0; n < N; ++n)
        x[size_t(r) * N + n] = in.opcode == Opcode::PeTranspose
                                   ? (r == n ? 0x3F80 : 0)
                                   : uint16_t(img.get(in.mv_part + r, in.mv_off + 2 * n, 2));
    }
    std::vector<uint32_t> t(y.size());
    num::golden_matmul_tile(K, M, N, w.data(), x.data(), t.data());
    for (size_t i = 0; i < y.size(); ++i) y[i] = in.accumulate ? num::golden_add(y[i], t[i]) : t[i];
  }
  for (int c = 0; c < M; ++c)
    for (int n = 0; n < N; ++n) psum[(in.out_part + c) * pitch + in.out_off / 4 + n] = y[size_t(c) * N + n];
}

struct Stats {
  uint64_t sequences = 0, jobs = 0, job_cycles = 0;
  std::map<std::string, uint64_t> instrs;  // by kind: "bf16 matmul", "fp32 matmul", "pe_transpose"
  uint64_t accumulating = 0, chained = 0;  // instructions with accumulate; of them, onto the previous one's place
  uint64_t boundaries[int(Boundary::kCount)] = {};
  // Instructions whose operands hold: inf or NaN; a subnormal; a normal with exponent field < 90 (tiny);
  // > 165 (huge); and how many such elements there were.
  uint64_t with_inf_nan = 0, with_subnormal = 0, with_tiny = 0, with_huge = 0, special_elements = 0;
};

void count_specials(SbufImage& img, const Instr& in, Stats& st) {
  const bool fp32 = is_fp32(in);
  const uint64_t eb = fp32 ? 4 : 2;
  bool inf_nan = false, sub = false, tiny = false, huge = false;
  auto look = [&](uint64_t part, uint64_t off, uint64_t rows, uint64_t count) {
    for (uint64_t r = 0; r < rows; ++r)
      for (uint64_t i = 0; i < count; ++i) {
        const uint32_t v = img.get(part + r, off + eb * i, eb);
        const uint32_t e = fp32 ? (v >> 23) & 0xFF : (v >> 7) & 0xFF, f = fp32 ? v & 0x7FFFFF : v & 0x7F;
        const bool a = e == 0xFF, b = e == 0 && f != 0, c = e != 0 && e < 90, d = e != 0xFF && e > 165;
        inf_nan |= a, sub |= b, tiny |= c, huge |= d;
        st.special_elements += a || b || c || d;
      }
  };
  look(in.st_part, in.st_off, in.k, in.m);
  if (in.opcode == Opcode::Matmul) look(in.mv_part, in.mv_off, in.k, in.n);
  st.with_inf_nan += inf_nan, st.with_subnormal += sub, st.with_tiny += tiny, st.with_huge += huge;
}

// ---- Running sequences --------------------------------------------------------------------------------

// What must be equal between engines, per job.
struct JobSummary {
  uint64_t cycles = 0, psum_hash = 0;
  std::vector<TraceRecord> trace;
  bool operator==(const JobSummary&) const = default;
};

uint64_t fnv1a(const std::vector<uint32_t>& v) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint32_t x : v)
    for (int i = 0; i < 4; ++i) h = (h ^ ((x >> (8 * i)) & 0xFF)) * 0x100000001b3ull;
  return h;
}

struct RunResult {
  std::vector<JobSummary> jobs;
  Stats stats;
  uint64_t golden_mismatches = 0;
  std::string first_mismatches;  // the first few: sequence, PSUM place, device and golden bits
};

// Runs `count` seeded random sequences on a device of `config` with `engine`, one job each; with
// `golden`, checks PSUM after every job against the golden model. A device fault (LockstepMismatch
// included) is thrown as std::runtime_error naming the sequence and listing its TensorE stream.
RunResult run_sequences(const char* config, TensorEngineKind engine, uint64_t seed, int count, bool golden) {
  emu::DeviceOptions options;
  options.tensor_engine = engine;
  TensorRig rig(config, options);
  const DeviceConfig& cfg = rig.cfg;
  if (rig.driver.info().tensor_engine != engine)
    throw std::runtime_error("TE_MODEL does not show the engine asked for");
  const Layout lay(cfg);
  SbufImage img(lay);
  std::mt19937_64 rng(seed);
  RunResult res;
  Stats& st = res.stats;
  std::vector<uint32_t> psum = rig.psum_read_all();  // the model's PSUM starts from what the device holds
  for (int q = 0; q < count; ++q) {
    const Sequence s = random_sequence(rng, rig, lay);
    fill_operands(rng, img, s);
    rig.sbuf_write(0, 0, lay.scratch, lay.parts, img.bytes.data());
    std::vector<std::pair<int, std::vector<Instr>>> streams = {{isa::kEngineTensor, s.tensor}};
    if (!s.evac.empty()) streams.push_back({kEvacQueue, s.evac});
    if (!s.delay.empty()) streams.push_back({kDelayQueue, s.delay});
    drv::JobResult r;
    try {
      r = rig.run(streams, TensorRig::kTraceCapacity);
    } catch (const drv::DeviceFault& e) {
      std::string listing;
      for (size_t i = 0; i < s.tensor.size(); ++i)
        listing += "\n  " + std::to_string(i) + ": " + isa::disassemble(s.tensor[i]);
      throw std::runtime_error(std::string(config) + " " + tensor_engine_name(engine) + " sequence " +
                               std::to_string(q) + ": " + e.what() + "\nTensorE stream:" + listing);
    }
    if (r.trace_count != s.tensor.size() + s.evac.size() + s.delay.size())
      throw std::runtime_error("sequence " + std::to_string(q) + ": " + std::to_string(r.trace_count) +
                               " trace records, expected one per instruction");
    JobSummary js;
    js.cycles = r.cycles;
    js.trace = rig.driver.read_trace(rig.trace, r.trace_count);
    const std::vector<uint32_t> got = rig.psum_read_all();
    js.psum_hash = fnv1a(got);
    res.jobs.push_back(std::move(js));
    ++st.sequences, st.jobs += 3, st.job_cycles += r.cycles;  // SBUF write, the sequence, PSUM read-back
    for (size_t i = 0; i < s.array.size(); ++i) {
      const Instr& in = s.array[i];
      st.instrs[in.opcode == Opcode::PeTranspose ? "pe_transpose" : is_fp32(in) ? "fp32 matmul" : "bf16 matmul"]++;
      st.accumulating += in.accumulate;
      st.chained +=
          in.accumulate && i > 0 && in.out_part == s.array[i - 1].out_part && in.out_off == s.array[i - 1].out_off;
      st.boundaries[int(s.boundaries[i])]++;
      if (golden) count_specials(img, in, st);
    }
    if (!golden) continue;
    for (const Instr& in : s.array) apply_golden(cfg, img, in, psum);
    for (size_t i = 0; i < psum.size(); ++i) {
      if (got[i] == psum[i]) continue;
      if (res.golden_mismatches++ < 5) {
        const uint64_t pitch = cfg.psum_partition_bytes() / 4;
        res.first_mismatches += "sequence " + std::to_string(q) + ": PSUM partition " + std::to_string(i / pitch) +
                                " byte " + std::to_string(4 * (i % pitch)) + " is " + hex(got[i]) + ", golden " +
                                hex(psum[i]) + "\n";
      }
    }
    psum = got;  // go on from the device's PSUM, so that one difference is reported once
  }
  return res;
}

// ---- The fast engine alone, in a child process ----------------------------------------------------------

void write_summaries(std::FILE* f, const std::vector<JobSummary>& jobs) {
  std::vector<uint8_t> rec(kTraceRecordBytes);
  for (const JobSummary& j : jobs) {
    const uint64_t head[3] = {j.cycles, j.psum_hash, j.trace.size()};
    std::fwrite(head, sizeof head, 1, f);
    for (const TraceRecord& t : j.trace) {
      t.encode(std::span<uint8_t, kTraceRecordBytes>(rec.data(), kTraceRecordBytes));
      std::fwrite(rec.data(), 1, rec.size(), f);
    }
  }
}

std::vector<JobSummary> read_summaries(std::FILE* f) {
  std::vector<JobSummary> jobs;
  std::vector<uint8_t> rec(kTraceRecordBytes);
  uint64_t head[3];
  while (std::fread(head, sizeof head, 1, f) == 1) {
    JobSummary j{head[0], head[1], {}};
    for (uint64_t i = 0; i < head[2] && std::fread(rec.data(), 1, rec.size(), f) == rec.size(); ++i)
      j.trace.push_back(
          TraceRecord::decode(std::span<const uint8_t, kTraceRecordBytes>(rec.data(), kTraceRecordBytes)));
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// A child process, forked before the parent makes its device, that runs the sequences on the fast engine
// alone and writes their summaries to a temporary file. The destructor reaps it (killing it if the
// parent gives up early).
class FastEngineChild {
 public:
  FastEngineChild(const char* config, uint64_t seed, int count) {
    std::fflush(nullptr);  // nothing buffered is written twice
    file_ = std::tmpfile();
    if (!file_) throw std::runtime_error("tmpfile failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      int status = 0;
      try {
        write_summaries(file_, run_sequences(config, TensorEngineKind::kFast, seed, count, false).jobs);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "fast-engine child: %s\n", e.what());
        status = 1;
      }
      std::fflush(nullptr);
      _exit(status);  // no gtest teardown, no device destruction: the parent owns the test
    }
  }
  ~FastEngineChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (file_) std::fclose(file_);
  }
  // Waits for the child; its exit status (128 + signal if killed) and its summaries.
  std::pair<int, std::vector<JobSummary>> wait() {
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    std::rewind(file_);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), read_summaries(file_)};
  }

 private:
  pid_t pid_ = -1;
  std::FILE* file_ = nullptr;
};

// ---- Tests --------------------------------------------------------------------------------------------

void lockstep_random_sequences(const char* config, uint64_t seed, int count) {
  FastEngineChild fast(config, seed, count);
  RunResult ls;
  try {
    ls = run_sequences(config, TensorEngineKind::kLockstep, seed, count, true);
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  EXPECT_EQ(ls.golden_mismatches, 0u) << ls.first_mismatches;
  const Stats& st = ls.stats;
  std::printf(
      "%s: %llu sequences, each a job in lockstep (%llu job cycles), all completed, PSUM golden after each "
      "(%llu jobs with those staging SBUF and reading PSUM):",
      config, (unsigned long long)st.sequences, (unsigned long long)st.job_cycles, (unsigned long long)st.jobs);
  for (const auto& [kind, n] : st.instrs) std::printf(" %llu %s,", (unsigned long long)n, kind.c_str());
  std::printf(" %llu accumulating (%llu onto the previous instruction's place)\n", (unsigned long long)st.accumulating,
              (unsigned long long)st.chained);
  for (int b = 0; b < int(Boundary::kCount); ++b)
    std::printf("  before %llu instructions: %s\n", (unsigned long long)st.boundaries[b], kBoundaryNames[b]);
  std::printf(
      "  operands with inf/NaN: %llu instructions, subnormals: %llu, tiny exponents: %llu, huge: %llu "
      "(%llu such elements)\n",
      (unsigned long long)st.with_inf_nan, (unsigned long long)st.with_subnormal, (unsigned long long)st.with_tiny,
      (unsigned long long)st.with_huge, (unsigned long long)st.special_elements);
  EXPECT_GT(st.instrs.at("fp32 matmul"), uint64_t(count) / 2);
  EXPECT_GT(st.instrs.at("pe_transpose"), uint64_t(count) / 4);
  for (uint64_t b : st.boundaries) EXPECT_GT(b, uint64_t(count) / 20);
  EXPECT_GT(st.with_inf_nan, uint64_t(count) / 4);

  // The fast engine alone: the same cycles, trace records and PSUM for every job.
  auto [status, alone] = fast.wait();
  ASSERT_EQ(status, 0) << "the fast-engine child failed (its message is above)";
  ASSERT_EQ(alone.size(), ls.jobs.size());
  int reported = 0;
  for (size_t q = 0; q < alone.size(); ++q) {
    const JobSummary &a = ls.jobs[q], &b = alone[q];
    if (a == b || reported++ >= 5) continue;
    std::string first;
    for (size_t i = 0; i < std::min(a.trace.size(), b.trace.size()) && first.empty(); ++i)
      if (!(a.trace[i] == b.trace[i]))
        first = " (first: record " + std::to_string(i) + ", " + isa::engine_name(a.trace[i].engine) + " pc " +
                std::to_string(a.trace[i].pc) + ": cycles " + std::to_string(a.trace[i].start) + ".." +
                std::to_string(a.trace[i].end) + " vs " + std::to_string(b.trace[i].start) + ".." +
                std::to_string(b.trace[i].end) + ")";
    ADD_FAILURE() << "sequence " << q << ": lockstep " << a.cycles << " cycles, fast alone " << b.cycles
                  << "; trace records " << a.trace.size() << " vs " << b.trace.size()
                  << (a.trace == b.trace ? " (equal)" : " (differ)") << first << "; PSUM "
                  << (a.psum_hash == b.psum_hash ? "equal" : "differs");
  }
  EXPECT_EQ(reported, 0) << "sequences whose cycles, trace or PSUM differ between lockstep and the fast engine";
  if (reported == 0)
    std::printf("  fast engine alone (a second process): the same cycles, trace records and PSUM in all %zu jobs\n",
                alone.size());
}

// 1,000 sequences per config, 2,000 in all (about 2,600 bf16 matmuls, 2,050 fp32 matmuls and 1,100
// pe_transposes per config); the test prints the counts.
TEST(Lockstep, RandomTensorSequencesMatchGoldenAndTheFastEngineAloneTc1_8) {
  lockstep_random_sequences("tc1-8", 8, 1000);
}

TEST(Lockstep, RandomTensorSequencesMatchGoldenAndTheFastEngineAloneTc1_16) {
  lockstep_random_sequences("tc1-16", 16, 1000);
}

// The comparison can fail: the test hook flips bit 7 of element 0 of the fast model's 14th result column,
// the 4th column of the second matmul of a K = 16 GEMM on tc1-8 (two K chunks into one PSUM place). The
// job faults with LockstepMismatch at that instruction, and the message names the column, the element and
// both values: the RTL's is the golden chunk result (the array's output, before the PSUM accumulate).
// After a reset the same job runs in lockstep and PSUM is the golden GEMM.
TEST(Lockstep, InjectedDifferenceFaultsNamingInstructionColumnElementAndValuesThenTheDeviceRecovers) {
  const int K = 8, M = 8, N = 10, kColumn = 3;
  emu::DeviceOptions options;
  options.tensor_engine = TensorEngineKind::kLockstep;
  options.lockstep_inject_column = N + kColumn;  // counted over the device's life: chunk 1's N, then chunk 2's
  TensorRig rig("tc1-8", options);
  ASSERT_EQ(rig.driver.info().tensor_engine, TensorEngineKind::kLockstep);
  std::mt19937_64 rng(5);
  std::vector<uint16_t> w[2], x[2];
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < K * M; ++i) w[t].push_back(uint16_t(random_element(rng, Dist::kNormal, false)));
    for (int i = 0; i < K * N; ++i) x[t].push_back(uint16_t(random_element(rng, Dist::kNormal, false)));
    rig.sbuf_write(0, 256 * t, 2 * M, K, w[t].data());
    rig.sbuf_write(0, 1024 + 256 * t, 2 * N, K, x[t].data());
  }
  const std::vector<Instr> gemm = {test::matmul(MatmulType::kBf16, K, M, N, {0, 0, 0, 1024, 0, 0}),
                                   test::matmul(MatmulType::kBf16, K, M, N, {0, 256, 0, 1024 + 256, 0, 0}, true)};
  std::vector<uint32_t> y[2];
  for (int t = 0; t < 2; ++t) {
    y[t].resize(M * N);
    num::golden_matmul_tile(K, M, N, w[t].data(), x[t].data(), y[t].data());
  }
  const uint32_t rtl = y[1][kColumn], fast = rtl ^ 0x80;  // element 0 = output partition 0: Y[0][kColumn]
  try {
    rig.run_tensor(gemm);
    ADD_FAILURE() << "the injected difference did not fault";
  } catch (const drv::DeviceFault& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.fault(), regs::FaultCode::LockstepMismatch) << msg;
    EXPECT_EQ(e.engine(), isa::kEngineTensor) << msg;
    EXPECT_EQ(e.pc(), 1u) << msg;
    EXPECT_EQ(e.info(), uint32_t(Opcode::Matmul)) << msg;
    EXPECT_EQ(e.addr(), rig.psum(0, 4 * kColumn)) << msg;  // where the column's element 0 was to go
    // Chunk 2 streams right after chunk 1 (S = k + n), its column 3 enters 3 cycles later and is
    // presented after the array's latency: job cycle k + n + 3 + L + 1 in the trace's counting.
    const uint64_t at = uint64_t(K + N + kColumn + rig.latency() + 1);
    for (const std::string& part : {std::string("LockstepMismatch"), std::string("engine tensor, instruction 1 of job"),
                                    "result column " + std::to_string(kColumn) + " element 0 at job cycle " +
                                        std::to_string(at) + ": rtl " + hex(rtl) + ", fast " + hex(fast)})
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
    std::printf("%s\n", msg.c_str());
  }
  rig.driver.reset();
  rig.run_tensor(gemm);
  std::vector<uint32_t> c(M * N);
  for (int i = 0; i < M * N; ++i) c[i] = num::golden_add(y[0][i], y[1][i]);
  EXPECT_EQ(rig.psum_read(0, 0, N, M), c);
  EXPECT_EQ(rig.driver.info().tensor_engine, TensorEngineKind::kLockstep);
}

}  // namespace
}  // namespace tcemu
