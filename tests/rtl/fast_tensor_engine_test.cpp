// The fast tensor engine (tcemu/rtl/fast_tensor_engine.h) against the verilated RTL, in lockstep: both
// models get the same protocol-compliant inputs and every output port (out_valid, all of out_data whether
// valid or not, wload_ready, busy, cycle) must be identical after every tick. Inputs: random streams with
// random K, matmul lengths, back-to-back and gapped columns, weight loads whenever wload_ready (also at the
// swap edge and while older columns are in flight), resets, and values that hit every special case of the
// arithmetic (subnormals, products that flush or overflow, inf, NaN, signed zeros, cancellation to tiny sums,
// the exact bounds of the fast path). Sizes the RTL is not built for (128x128, odd and non-square shapes) are
// checked against the golden model with te_stream.h's protocol checks. Also: the exact fallback is taken
// where it must be and the vector path for ordinary data, every vector kernel the host has, the contract.
#include "tcemu/rtl/fast_tensor_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tcemu/error.h"
#include "te_stream.h"

namespace tcemu::rtl::test {
namespace {

// ---- lockstep pair -----------------------------------------------------------------------------------------

// A TensorEngineModel that forwards every input to the verilated engine and the fast model and compares all
// their outputs after every tick() and reset(). Reads return the RTL's values.
class Lockstep final : public TensorEngineModel {
 public:
  Lockstep(TensorEngineModel& rtl, FastTensorEngine& fast) : rtl_(rtl), fast_(fast), a_(rtl.cols()), b_(rtl.cols()) {
    EXPECT_EQ(fast.rows(), rtl.rows());
    EXPECT_EQ(fast.cols(), rtl.cols());
    EXPECT_EQ(fast.latency(), rtl.latency());
    compare("construction");
  }

  int rows() const override { return rtl_.rows(); }
  int cols() const override { return rtl_.cols(); }
  int latency() const override { return rtl_.latency(); }
  void reset() override {
    rtl_.reset();
    fast_.reset();
    compare("reset()");
  }
  void set_wload(bool valid, int row, const uint16_t* data) override {
    rtl_.set_wload(valid, row, data);
    fast_.set_wload(valid, row, data);
  }
  void set_moving(bool valid, bool first, int k, const uint16_t* data) override {
    rtl_.set_moving(valid, first, k, data);
    fast_.set_moving(valid, first, k, data);
  }
  void tick() override {
    rtl_.tick();
    fast_.tick();
    ++ticks_;
    compare("tick()");
  }
  bool out_valid() const override { return rtl_.out_valid(); }
  void out_data(uint32_t* dst) const override { rtl_.out_data(dst); }
  bool wload_ready() const override { return rtl_.wload_ready(); }
  bool busy() const override { return rtl_.busy(); }
  uint64_t cycle() const override { return rtl_.cycle(); }
  void trace_open(const std::string& path) override { rtl_.trace_open(path); }
  void trace_close() override { rtl_.trace_close(); }
  void set_trace_cycle(uint64_t cycle) override { rtl_.set_trace_cycle(cycle); }

  uint64_t ticks() const { return ticks_; }
  uint64_t mismatches() const { return mismatches_; }

 private:
  void compare(const char* after) {
    std::string diff;
    if (rtl_.cycle() != fast_.cycle()) diff += fmt_diff("cycle", rtl_.cycle(), fast_.cycle());
    if (rtl_.out_valid() != fast_.out_valid()) diff += fmt_diff("out_valid", rtl_.out_valid(), fast_.out_valid());
    if (rtl_.busy() != fast_.busy()) diff += fmt_diff("busy", rtl_.busy(), fast_.busy());
    if (rtl_.wload_ready() != fast_.wload_ready()) {
      diff += fmt_diff("wload_ready", rtl_.wload_ready(), fast_.wload_ready());
    }
    rtl_.out_data(a_.data());
    fast_.out_data(b_.data());
    for (int c = 0; c < rtl_.cols(); ++c) {
      if (a_[c] != b_[c]) {
        diff += " out_data[" + std::to_string(c) + "]: rtl " + hex(a_[c]) + " fast " + hex(b_[c]) + ";";
        break;
      }
    }
    if (diff.empty()) return;
    if (mismatches_++ < 5) {
      ADD_FAILURE() << "fast model differs from the RTL after " << after << " at cycle " << rtl_.cycle() << " ("
                    << rtl_.rows() << "x" << rtl_.cols() << ", out_valid " << rtl_.out_valid() << "):" << diff;
    }
  }
  static std::string fmt_diff(const char* port, uint64_t rtl, uint64_t fast) {
    return std::string(" ") + port + ": rtl " + std::to_string(rtl) + " fast " + std::to_string(fast) + ";";
  }

  TensorEngineModel& rtl_;
  FastTensorEngine& fast_;
  std::vector<uint32_t> a_;
  std::vector<uint32_t> b_;
  uint64_t ticks_ = 0;
  uint64_t mismatches_ = 0;
};

// ---- values ------------------------------------------------------------------------------------------------

// te_stream.h's distributions plus two at the fast path's bounds: exponents whose pairwise sums straddle 142
// (products near 2^-112, partial sums down to 2^-126 and one binade below) and 380 (products near 2^126..2^128).
enum class Val { kLowBound = static_cast<int>(Dist::kCount), kHighBound, kCount };

uint16_t gen(int dist, std::mt19937_64& rng) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  if (dist < static_cast<int>(Dist::kCount)) return gen_value(static_cast<Dist>(dist), rng);
  const uint32_t sign = rng() & 1u;
  const uint32_t mant = rng() & 0x7Fu;
  if (dist == static_cast<int>(Val::kLowBound)) return make_bf16(sign, 71 + uni(-2, 2), mant);
  return make_bf16(sign, 190 + uni(-1, 1), mant);
}

int random_dist(std::mt19937_64& rng) {
  return std::uniform_int_distribution<int>(0, static_cast<int>(Val::kCount) - 1)(rng);
}

// ---- random protocol-compliant driver ----------------------------------------------------------------------

struct FuzzCounts {
  uint64_t ticks = 0;
  uint64_t columns = 0;
  uint64_t matmuls = 0;  // columns with `first`
  uint64_t weight_rows = 0;
  uint64_t resets = 0;
};

// Drives `te` for `ticks` cycles: weight rows (random row, random values) whenever wload_ready() allows and a
// coin says so, moving columns with random gaps, `first` starting matmuls of random length, K fixed per matmul
// or (sometimes) random per column, value distributions changing over time, and an occasional reset(); then
// ticks until idle. Stops early once `stop()` is true.
template <class Stop>
void fuzz(TensorEngineModel& te, std::mt19937_64& rng, uint64_t ticks, FuzzCounts& n, Stop stop) {
  const int rows = te.rows();
  const int cols = te.cols();
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto coin = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  std::vector<uint16_t> wrow(cols);
  std::vector<uint16_t> xcol(rows);

  int wdist = random_dist(rng);
  int xdist = random_dist(rng);
  double p_load = 0.3;
  double p_col = 0.8;
  int k = rows;
  bool k_per_column = false;
  int left = 0;  // columns left in the current matmul; 0: the next column starts one
  for (uint64_t t = 0; t < ticks && !stop(); ++t) {
    if (uni(0, 499) == 0) {  // a new phase: other values, loads and gaps
      wdist = random_dist(rng);
      xdist = random_dist(rng);
      p_load = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      p_col = std::uniform_real_distribution<double>(0.2, 1.0)(rng);
    }
    if (uni(0, 2999) == 0) {
      te.reset();
      ++n.resets;
      left = 0;
    }
    const bool wload = te.wload_ready() && coin(p_load);
    if (wload) {
      for (auto& v : wrow) v = gen(wdist, rng);
      te.set_wload(true, uni(0, rows - 1), wrow.data());
      ++n.weight_rows;
    } else {
      te.set_wload(false, 0, nullptr);
    }
    const bool mv = coin(p_col);
    if (mv) {
      const bool first = left == 0;
      if (first) {
        left = uni(0, 3) == 0 ? uni(1, 3) : uni(1, 4 * (rows + cols));
        k = uni(0, 2) == 0 ? rows : uni(1, rows);
        k_per_column = uni(0, 9) == 0;
        ++n.matmuls;
      }
      --left;
      for (auto& v : xcol) v = gen(xdist, rng);
      te.set_moving(true, first, k_per_column ? uni(1, rows) : k, xcol.data());
      ++n.columns;
    } else {
      te.set_moving(false, false, 0, nullptr);
    }
    te.tick();
    ++n.ticks;
  }
  // Drain: every accepted column comes out (and the fast model has computed and counted it).
  te.set_wload(false, 0, nullptr);
  te.set_moving(false, false, 0, nullptr);
  while (te.busy() && !stop()) {
    te.tick();
    ++n.ticks;
  }
}

// ---- lockstep against the RTL ------------------------------------------------------------------------------

struct LockstepCase {
  int size;
  uint64_t fuzz_ticks;
  int stream_matmuls;
  uint64_t seed;
};

void PrintTo(const LockstepCase& c, std::ostream* os) { *os << c.size << "x" << c.size << ", seed " << c.seed; }

class FastVsRtl : public ::testing::TestWithParam<LockstepCase> {};

// Random streams (fuzz): every port after every tick, with each vector kernel the host has.
TEST_P(FastVsRtl, FuzzEveryTick) {
  const LockstepCase lc = GetParam();
  auto rtl = make_tensor_engine(lc.size, lc.size);
  auto fast = make_fast_tensor_engine(lc.size, lc.size);
  Lockstep pair(*rtl, *fast);
  std::mt19937_64 rng(lc.seed);
  FuzzCounts n;
  const auto kernels = supported_fast_kernels();
  for (std::string_view kernel : kernels) {
    SCOPED_TRACE(std::string("kernel ") + std::string(kernel));
    fast->select_kernel(kernel);
    fuzz(pair, rng, lc.fuzz_ticks / kernels.size(), n, [&] { return pair.mismatches() > 0; });
    ASSERT_EQ(pair.mismatches(), 0u);
  }
  const FastTensorEngineStats s = fast->stats();
  RecordProperty("ticks", std::to_string(n.ticks));
  RecordProperty("matmuls", std::to_string(n.matmuls));
  RecordProperty("columns_fast", std::to_string(s.columns_fast));
  RecordProperty("columns_exact", std::to_string(s.columns_exact));
  std::printf(
      "%dx%d fuzz: %llu ticks, %llu matmuls, %llu columns (fast %llu, exact %llu, %llu elements exact), "
      "%llu weight rows, %llu resets\n",
      lc.size, lc.size, static_cast<unsigned long long>(n.ticks), static_cast<unsigned long long>(n.matmuls),
      static_cast<unsigned long long>(n.columns), static_cast<unsigned long long>(s.columns_fast),
      static_cast<unsigned long long>(s.columns_exact), static_cast<unsigned long long>(s.elements_exact),
      static_cast<unsigned long long>(n.weight_rows), static_cast<unsigned long long>(n.resets));
  EXPECT_EQ(s.columns, n.columns);
  EXPECT_GT(n.resets, 0u);
  EXPECT_GT(s.columns_fast, 0u);
  EXPECT_GT(s.columns_exact, 0u);
}

// Matmul streams as a sequencer issues them (te_stream.h: next weights under streaming, back to back, the
// last row at the swap edge, bubbles, garbage in unused rows and columns); the results also match golden.
TEST_P(FastVsRtl, MatmulStreamsEveryTick) {
  const LockstepCase lc = GetParam();
  auto rtl = make_tensor_engine(lc.size, lc.size);
  auto fast = make_fast_tensor_engine(lc.size, lc.size);
  Lockstep pair(*rtl, *fast);
  std::mt19937_64 rng(lc.seed + 100);
  StreamOptions opt;
  opt.gap_probability = 0.05;
  opt.late_load_probability = 0.3;
  Streamer streamer(pair, lc.seed + 200, opt);
  int done = 0;
  while (done < lc.stream_matmuls) {
    std::vector<MatmulJob> jobs;
    for (int i = 0; i < 50 && done + i < lc.stream_matmuls; ++i) {
      jobs.push_back(random_job(lc.size, lc.size, rng));
      // N up to a few times the latency keeps the RTL's share of the time small.
      jobs.back().N = std::min(jobs.back().N, 3 * pair.latency());
      jobs.back().X.resize(static_cast<size_t>(jobs.back().K) * jobs.back().N);
    }
    streamer.run(jobs);
    for (const auto& j : jobs) expect_matches_golden(j);
    ASSERT_EQ(pair.mismatches(), 0u);
    done += static_cast<int>(jobs.size());
  }
  std::printf("%dx%d streams: %d matmuls, %llu ticks in lockstep\n", lc.size, lc.size, done,
              static_cast<unsigned long long>(pair.ticks()));
  RecordProperty("matmuls", done);
}

// The exact path alone (every element recomputed with the engine's arithmetic) on random streams.
TEST_P(FastVsRtl, ForcedExactPathEveryTick) {
  const LockstepCase lc = GetParam();
  auto rtl = make_tensor_engine(lc.size, lc.size);
  auto fast = make_fast_tensor_engine(lc.size, lc.size);
  fast->set_force_exact(true);
  Lockstep pair(*rtl, *fast);
  std::mt19937_64 rng(lc.seed + 300);
  FuzzCounts n;
  fuzz(pair, rng, lc.fuzz_ticks / 8, n, [&] { return pair.mismatches() > 0; });
  EXPECT_EQ(pair.mismatches(), 0u);
  EXPECT_EQ(fast->stats().columns_fast, 0u);
  EXPECT_EQ(fast->stats().columns_exact, n.columns);
}

// About 10k matmuls and 0.5 M ticks in lockstep in total; fewer at the larger sizes, whose RTL cycles cost more.
INSTANTIATE_TEST_SUITE_P(Sizes, FastVsRtl,
                         ::testing::Values(LockstepCase{8, 200'000, 1500, 1}, LockstepCase{16, 80'000, 600, 2},
                                           LockstepCase{32, 24'000, 200, 3}),
                         [](const ::testing::TestParamInfo<LockstepCase>& info) {
                           return std::to_string(info.param.size) + "x" + std::to_string(info.param.size);
                         });

// Every size built into tcemu_rtl, including any added with -DTCEMU_RTL_EXTRA_SIZES (e.g. 128x128): a short
// fuzzed stream in lockstep each.
TEST(FastVsRtlAllSizes, ShortFuzzEachBuiltSize) {
  for (const auto& [rows, cols] : available_tensor_engine_sizes()) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    auto rtl = make_tensor_engine(rows, cols);
    auto fast = make_fast_tensor_engine(rows, cols);
    Lockstep pair(*rtl, *fast);
    std::mt19937_64 rng(4000 + rows * 1000 + cols);
    FuzzCounts n;
    fuzz(pair, rng, std::clamp<uint64_t>(4'000'000 / (rows * cols), 1000, 20'000), n,
         [&] { return pair.mismatches() > 0; });
    EXPECT_EQ(pair.mismatches(), 0u);
    std::printf("%dx%d: %llu ticks, %llu matmuls in lockstep\n", rows, cols, static_cast<unsigned long long>(n.ticks),
                static_cast<unsigned long long>(n.matmuls));
  }
}

// ---- sizes without an RTL: against the golden model ----------------------------------------------------------

struct Shape {
  int rows;
  int cols;
};

// Streams random matmuls through the fast model alone; Streamer checks latency, order, busy and wload_ready
// by their definitions every tick, and the results against golden_matmul_tile.
void stream_against_golden(FastTensorEngine& te, int matmuls, uint64_t seed) {
  std::mt19937_64 rng(seed);
  StreamOptions opt;
  opt.gap_probability = 0.05;
  opt.late_load_probability = 0.3;
  Streamer streamer(te, seed ^ 0x5EED, opt);
  std::vector<MatmulJob> jobs;
  for (int i = 0; i < matmuls; ++i) {
    jobs.push_back(random_job(te.rows(), te.cols(), rng));
    jobs.back().N = std::min(jobs.back().N, 2 * te.latency());
    jobs.back().X.resize(static_cast<size_t>(jobs.back().K) * jobs.back().N);
  }
  streamer.run(jobs);
  int failed = 0;
  for (const auto& j : jobs) failed += expect_matches_golden(j) != 0;
  EXPECT_EQ(failed, 0);
}

TEST(FastTensorEngine, OtherSizesAgainstGoldenEveryKernel) {
  // Widths that take every block size of the kernels (16-float units: 1, 2, 3, 7, 8, 9) and non-square arrays.
  const Shape shapes[] = {{2, 2}, {3, 5}, {5, 3}, {7, 40}, {20, 12}, {9, 100}, {128, 128}, {24, 130}, {64, 16}};
  for (std::string_view kernel : supported_fast_kernels()) {
    for (const Shape& s : shapes) {
      SCOPED_TRACE(std::to_string(s.rows) + "x" + std::to_string(s.cols) + " kernel " + std::string(kernel));
      auto te = make_fast_tensor_engine(s.rows, s.cols);
      te->select_kernel(kernel);
      stream_against_golden(*te, s.rows * s.cols >= 4096 ? 12 : 60, 1000 + s.rows * 131 + s.cols);
      EXPECT_GT(te->stats().columns_fast, 0u);
    }
  }
}

// ---- which path computes what ---------------------------------------------------------------------------------

MatmulJob job_of(int K, int M, int N, int dw, int dx, std::mt19937_64& rng) {
  MatmulJob j;
  j.K = K;
  j.M = M;
  j.N = N;
  for (int i = 0; i < K * M; ++i) j.W.push_back(gen(dw, rng));
  for (int i = 0; i < K * N; ++i) j.X.push_back(gen(dx, rng));
  j.label = "dists " + std::to_string(dw) + "/" + std::to_string(dx);
  return j;
}

// Ordinary data never leaves the vector path.
TEST(FastTensorEngine, OrdinaryDataTakesTheFastPath) {
  for (const int size : {8, 32, 128}) {
    auto te = make_fast_tensor_engine(size, size);
    std::mt19937_64 rng(7);
    std::vector<MatmulJob> jobs;
    uint64_t columns = 0;
    for (const Dist d : {Dist::kNormal, Dist::kCancel, Dist::kSmallInt}) {
      jobs.push_back(job_of(size, size, 3 * size, static_cast<int>(d), static_cast<int>(Dist::kNormal), rng));
      jobs.push_back(job_of(size / 2, size, 2 * size, static_cast<int>(Dist::kNormal), static_cast<int>(d), rng));
      columns += 5 * size;
    }
    StreamOptions opt;
    opt.fill_unused_with_garbage = false;
    Streamer(*te, 9, opt).run(jobs);
    for (const auto& j : jobs) expect_matches_golden(j);
    const FastTensorEngineStats s = te->stats();
    EXPECT_EQ(s.columns, columns) << size;
    EXPECT_EQ(s.columns_fast, columns) << size;
    EXPECT_EQ(s.columns_exact, 0u) << size;
    EXPECT_EQ(s.elements_exact, 0u) << size;
  }
}

// Each kind of value the FMA would get wrong sends exactly the affected result elements to the exact path, and
// the results are right (against golden; the lockstep tests compare the same against the RTL). W and X are all
// 1.0 except W[3][5] = w and X[3][0] = x; four moving columns, so weight 5 meets x once and 1.0 three times.
TEST(FastTensorEngine, FallbackTakenExactlyWhereNeeded) {
  constexpr int kSize = 16;
  constexpr uint16_t kOne = 0x3F80;
  struct Case {
    const char* what;
    uint16_t w;
    uint16_t x;
    uint64_t columns_exact;
    uint64_t elements_exact;
  };
  const Case cases[] = {
      {"ordinary", 0x4040, 0xC000, 0, 0},
      {"zero weight", 0x8000, 0x4000, 0, 0},
      {"subnormal weight (reads as zero)", 0x0001, 0x4000, 0, 0},
      {"subnormal moving element (reads as -0)", kOne, 0x8001, 0, 0},
      {"inf weight: every column meets it in output 5", 0x7F80, kOne, 4, 4},
      {"NaN moving element: all outputs of column 0", kOne, 0x7FC1, 1, kSize},
      {"product below 2^-126 (flushed)", 0x0C00, 0x0C00, 1, 1},
      {"exponent sum 141: a partial sum could flush", 0x2380, 0x2300, 1, 1},
      {"exponent sum 142: the lower bound, fast", 0x2380, 0x2380, 0, 0},
      {"product overflows (and 2^127 * 1 is past the bound)", 0x7F00, 0x4000, 4, 4},
      {"exponent sum 380: the upper bound, fast", 0x7E80, kOne, 0, 0},
      {"exponent sum 381: past the upper bound", 0x7E80, 0x4000, 1, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto te = make_fast_tensor_engine(kSize, kSize);
    MatmulJob j;
    j.K = kSize;
    j.M = kSize;
    j.N = 4;
    j.W.assign(kSize * kSize, kOne);
    j.X.assign(kSize * j.N, kOne);
    j.W[3 * kSize + 5] = c.w;
    j.X[3 * j.N + 0] = c.x;
    j.label = c.what;
    std::vector<MatmulJob> jobs{j};
    StreamOptions opt;
    opt.fill_unused_with_garbage = false;
    Streamer(*te, 1, opt).run(jobs);
    expect_matches_golden(jobs[0]);
    const FastTensorEngineStats s = te->stats();
    EXPECT_EQ(s.columns, 4u);
    EXPECT_EQ(s.columns_exact, c.columns_exact);
    EXPECT_EQ(s.elements_exact, c.elements_exact);
    EXPECT_EQ(s.columns_fast, 4u - c.columns_exact);
  }
}

// The fast path's bounds are tight: one binade past each, the FMA would differ from the engine. Each case is a
// single column through the RTL and the fast model in lockstep, and the RTL's result is checked to be the one the
// case was built for (a flush to +0 or an inf the FMA would not give).
TEST(FastTensorEngine, FastPathBoundsAreTight) {
  struct Case {
    const char* what;
    std::vector<std::pair<uint16_t, uint16_t>> terms;  // (weight, moving) per row, in summation order
    uint32_t rtl;                                      // the engine's result
    uint64_t columns_exact;
  };
  const Case cases[] = {
      // Exponent sums 141: products are multiples of 2^-127; 129*129 - 128*130 = 1 leaves 2^-127, flushed to +0
      // by the engine, a subnormal for an FMA.
      {"sum 141: a partial sum of 2^-127", {{0x2381, 0x2301}, {0x2380, 0xA302}}, 0x00000000, 1},
      // Exponent sums 142: the same construction leaves 2^-126, normal: the fast path is exact.
      {"sum 142: a partial sum of 2^-126", {{0x2381, 0x2381}, {0x2380, 0xA382}}, 0x00800000, 0},
      // Exponent sum 381: 255 * 255 * 2^113 >= 2^128 is inf for the engine; an FMA would add -1.99 * 2^127 to the
      // exact product and stay finite.
      {"sum 381: product overflow after a large negative sum", {{0x7F7F, 0xBF80}, {0x7F7F, 0x3FFF}}, 0x7F800000, 1},
      // Exponent sum 380: products below 2^128 (255 * 255 * 2^112); their sum overflows in both.
      {"sum 380: overflow of the sum only", {{0x7EFF, 0x3FFF}, {0x7EFF, 0x3FFF}}, 0x7F800000, 0},
  };
  constexpr int kSize = 8;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto rtl = make_tensor_engine(kSize, kSize);
    auto fast = make_fast_tensor_engine(kSize, kSize);
    Lockstep pair(*rtl, *fast);
    std::vector<uint16_t> row(kSize, 0);
    std::vector<uint16_t> x(kSize, 0);
    for (int r = 0; r < kSize; ++r) {
      const bool used = r < static_cast<int>(c.terms.size());
      std::fill(row.begin(), row.end(), used ? c.terms[r].first : uint16_t{0});
      x[r] = used ? c.terms[r].second : uint16_t{0};
      pair.set_wload(true, r, row.data());
      pair.tick();
    }
    pair.set_wload(false, 0, nullptr);
    pair.set_moving(true, true, kSize, x.data());
    pair.tick();
    pair.set_moving(false, false, 0, nullptr);
    while (!pair.out_valid()) pair.tick();
    std::vector<uint32_t> y(kSize);
    pair.out_data(y.data());
    EXPECT_EQ(hex(y[0]), hex(c.rtl));
    EXPECT_EQ(pair.mismatches(), 0u);
    EXPECT_EQ(fast->stats().columns_exact, c.columns_exact);
  }
}

// The fuzz values (specials, tiny, huge, bounds) do reach the fallback, and most ordinary columns do not.
TEST(FastTensorEngine, StatsCountFallbackOnSpecialData) {
  auto te = make_fast_tensor_engine(16, 16);
  std::mt19937_64 rng(5);
  std::vector<MatmulJob> jobs;
  for (int i = 0; i < 40; ++i) jobs.push_back(job_of(16, 16, 20, random_dist(rng), random_dist(rng), rng));
  StreamOptions opt;
  opt.fill_unused_with_garbage = false;
  Streamer(*te, 3, opt).run(jobs);
  for (const auto& j : jobs) expect_matches_golden(j);
  const FastTensorEngineStats s = te->stats();
  EXPECT_EQ(s.columns, 800u);
  EXPECT_GT(s.columns_exact, 0u);
  EXPECT_GT(s.columns_fast, 0u);
  EXPECT_GT(s.elements_exact, s.columns_exact);
  te->clear_stats();
  EXPECT_EQ(te->stats().columns, 0u);
}

// ---- contract ---------------------------------------------------------------------------------------------------

TEST(FastTensorEngine, Contract) {
  auto te = make_fast_tensor_engine(8, 12);
  EXPECT_EQ(te->rows(), 8);
  EXPECT_EQ(te->cols(), 12);
  EXPECT_EQ(te->latency(), tensor_engine_latency(8, 12));
  EXPECT_EQ(te->cycle(), 0u);
  EXPECT_FALSE(te->busy());
  EXPECT_FALSE(te->out_valid());
  EXPECT_TRUE(te->wload_ready());

  expect_rejects_out_of_range_inputs(*te);

  for (const auto& [r, c] : {std::pair{1, 8}, std::pair{8, 1}, std::pair{0, 0}, std::pair{-2, 4}}) {
    try {
      make_fast_tensor_engine(r, c);
      ADD_FAILURE() << "no exception for " << r << "x" << c;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(r) + "x" + std::to_string(c)), std::string::npos) << e.what();
    }
  }

  try {
    te->trace_open("/tmp/never.fst");
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("waveforms"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(te->set_trace_cycle(5));
  EXPECT_NO_THROW(te->trace_close());

  const auto kernels = supported_fast_kernels();
  ASSERT_FALSE(kernels.empty());
  EXPECT_EQ(kernels.back(), "generic");
  EXPECT_EQ(te->kernel(), kernels.front());
  try {
    te->select_kernel("sse9");
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("generic"), std::string::npos) << e.what();
  }
  te->select_kernel("generic");
  EXPECT_EQ(te->kernel(), "generic");
}

// A model's ports before and after reset() equal a fresh one's, mid-stream too.
TEST(FastTensorEngine, ResetMidStreamMatchesRtl) {
  auto rtl = make_tensor_engine(8, 8);
  auto fast = make_fast_tensor_engine(8, 8);
  Lockstep pair(*rtl, *fast);
  std::mt19937_64 rng(21);
  std::vector<MatmulJob> jobs{job_of(8, 8, 40, 0, 0, rng)};
  // Load the weights and start streaming, then reset with columns in flight and a bank swapped.
  std::vector<uint16_t> row(8);
  for (int r = 0; r < 8; ++r) {
    std::copy_n(&jobs[0].W[r * 8], 8, row.begin());
    pair.set_wload(true, r, row.data());
    pair.tick();
  }
  pair.set_wload(false, 0, nullptr);
  std::vector<uint16_t> x(8, 0x3F80);
  for (int n = 0; n < 10; ++n) {
    pair.set_moving(true, n == 0, 8, x.data());
    pair.tick();
  }
  EXPECT_TRUE(pair.busy());
  pair.reset();
  EXPECT_FALSE(pair.busy());
  EXPECT_EQ(pair.cycle(), 0u);
  // After reset the inputs are cleared: ticking does nothing; then a column on the zero bank gives +0.
  for (int i = 0; i < 20; ++i) pair.tick();
  pair.set_moving(true, true, 8, x.data());
  for (int i = 0; i < 20; ++i) pair.tick();
  EXPECT_EQ(pair.mismatches(), 0u);
}

}  // namespace
}  // namespace tcemu::rtl::test
