// (c) back-to-back matmuls with bank swaps and weight loads during streaming, (d) exact latency and
// determinism, plus the adapter's contract: sizes, errors, reset, coexisting instances, waveform dumps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <vector>

#include "te_stream.h"

namespace tcemu::rtl::test {
namespace {

using Size = std::pair<int, int>;
const Size kSizes[] = {{8, 8}, {16, 16}, {32, 32}};

std::string size_name(const ::testing::TestParamInfo<Size>& info) {
  return std::to_string(info.param.first) + "x" + std::to_string(info.param.second);
}

MatmulJob dense_job(int K, int M, int N, Dist dw, Dist dx, std::mt19937_64& rng, const std::string& label) {
  MatmulJob j;
  j.K = K;
  j.M = M;
  j.N = N;
  for (int i = 0; i < K * M; ++i) j.W.push_back(gen_value(dw, rng));
  for (int i = 0; i < K * N; ++i) j.X.push_back(gen_value(dx, rng));
  j.label = label;
  return j;
}

// Writes all weight rows of a job into the shadow bank (asserting wload_ready), one per tick.
void load_weights(TensorEngineModel& te, const MatmulJob& j) {
  std::vector<uint16_t> row(te.cols(), 0);
  for (int k = 0; k < j.K; ++k) {
    ASSERT_TRUE(te.wload_ready()) << "cycle " << te.cycle();
    for (int c = 0; c < j.M; ++c) row[c] = j.W[static_cast<size_t>(k) * j.M + c];
    te.set_wload(true, k, row.data());
    te.tick();
  }
  te.set_wload(false, 0, nullptr);
}

std::vector<uint16_t> column(const MatmulJob& j, int n, int rows) {
  std::vector<uint16_t> x(rows, 0);
  for (int k = 0; k < j.K; ++k) x[k] = j.X[static_cast<size_t>(k) * j.N + n];
  return x;
}

// ---- adapter contract ------------------------------------------------------------------------------

TEST(TensorEngineAdapter, AvailableSizes) {
  const auto sizes = available_tensor_engine_sizes();
  for (const Size& s : kSizes) EXPECT_NE(std::find(sizes.begin(), sizes.end(), s), sizes.end());
  EXPECT_TRUE(std::is_sorted(sizes.begin(), sizes.end()));
  for (const auto& [r, c] : sizes) {
    auto te = make_tensor_engine(r, c);
    EXPECT_EQ(te->rows(), r);
    EXPECT_EQ(te->cols(), c);
    EXPECT_EQ(te->latency(), tensor_engine_latency(r, c));
    EXPECT_EQ(te->latency(), r + c - 1);
    EXPECT_EQ(te->cycle(), 0u);
    EXPECT_FALSE(te->busy());
    EXPECT_FALSE(te->out_valid());
    EXPECT_TRUE(te->wload_ready());
  }
}

TEST(TensorEngineAdapter, UnknownSizeThrowsNamingSizes) {
  try {
    make_tensor_engine(7, 9);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("7x9"), std::string::npos) << msg;
    for (const auto& [r, c] : available_tensor_engine_sizes()) {
      EXPECT_NE(msg.find(std::to_string(r) + "x" + std::to_string(c)), std::string::npos) << msg;
    }
  }
}

TEST(TensorEngineAdapter, RejectsOutOfRangeInputs) {
  auto te = make_tensor_engine(8, 8);
  expect_rejects_out_of_range_inputs(*te);
}

class TensorEngineProtocol : public ::testing::TestWithParam<Size> {};

// (d) One column at a time at arbitrary cycles: out_valid() rises exactly latency() ticks after the
// accepting tick, for exactly one tick; busy() covers exactly that interval.
TEST_P(TensorEngineProtocol, FixedLatency) {
  const auto [rows, cols] = GetParam();
  auto te = make_tensor_engine(rows, cols);
  std::mt19937_64 rng(11);
  const MatmulJob j = dense_job(rows, cols, 5, Dist::kNormal, Dist::kNormal, rng, "latency");
  const std::vector<uint32_t> want = golden(j);
  load_weights(*te, j);
  const uint64_t lat = static_cast<uint64_t>(te->latency());
  std::vector<uint32_t> out(cols);
  for (int n = 0; n < j.N; ++n) {
    for (int idle = 0; idle < n * 3; ++idle) te->tick();  // a different phase for each column
    const auto x = column(j, n, rows);
    te->set_moving(true, n == 0, j.K, x.data());
    te->tick();
    const uint64_t accepted = te->cycle();
    te->set_moving(false, false, 0, nullptr);
    EXPECT_TRUE(te->busy());
    for (uint64_t t = 1; t <= lat + 3; ++t) {
      EXPECT_EQ(te->out_valid(), te->cycle() == accepted + lat) << "column " << n << ", cycle " << te->cycle();
      EXPECT_EQ(te->busy(), te->cycle() <= accepted + lat) << "column " << n << ", cycle " << te->cycle();
      if (te->out_valid()) {
        te->out_data(out.data());
        for (int c = 0; c < cols; ++c) {
          EXPECT_EQ(out[c], want[static_cast<size_t>(c) * j.N + n]) << "Y[" << c << "][" << n << "]";
        }
      }
      te->tick();
    }
  }
}

// One column per cycle in, one result per cycle out, in order, after exactly latency().
TEST_P(TensorEngineProtocol, FullThroughputStream) {
  const auto [rows, cols] = GetParam();
  auto te = make_tensor_engine(rows, cols);
  std::mt19937_64 rng(12);
  std::vector<MatmulJob> jobs;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(dense_job(rows, cols, 3 * (rows + cols), Dist::kCancel, Dist::kNormal, rng, "stream"));
  }
  const uint64_t cycles = Streamer(*te, 3).run(jobs);
  for (const auto& j : jobs) expect_matches_golden(j);
  // The first weights (rows - 1 ticks; the last row goes in with the first column), 4 x N columns back to
  // back and the pipeline tail: no bubble anywhere, the later weights load under streaming.
  EXPECT_EQ(cycles, (rows - 1) + 4u * jobs[0].N + te->latency());
}

// (c) Bank swap with a weight load during streaming; garbage written into the shadow bank while a
// matmul streams does not reach it; wload_ready() drops at a swap while the previous matmul's columns
// are in flight and comes back exactly when the last of them has finished.
TEST_P(TensorEngineProtocol, BankSwapWithoutCrossTalk) {
  const auto [rows, cols] = GetParam();
  auto te = make_tensor_engine(rows, cols);
  const uint64_t lat = static_cast<uint64_t>(te->latency());
  std::mt19937_64 rng(13);
  MatmulJob a = dense_job(rows, cols, 2 * (rows + cols), Dist::kNormal, Dist::kNormal, rng, "A");
  MatmulJob b = dense_job(rows, cols, 2 * (rows + cols), Dist::kSmallInt, Dist::kCancel, rng, "B");
  MatmulJob c = dense_job(rows / 2, cols, 7, Dist::kSpecials, Dist::kNormal, rng, "C");
  for (MatmulJob* j : {&a, &b, &c}) j->Y.assign(static_cast<size_t>(j->M) * j->N, 0xDEADBEEFu);

  struct InFlight {
    MatmulJob* job;
    int n;
    uint64_t accepted;
  };
  std::deque<InFlight> fifo;
  std::vector<uint32_t> out(cols);
  auto tick = [&]() {
    te->tick();
    if (te->out_valid()) {
      ASSERT_FALSE(fifo.empty());
      const InFlight f = fifo.front();
      fifo.pop_front();
      EXPECT_EQ(te->cycle(), f.accepted + lat);
      te->out_data(out.data());
      for (int col = 0; col < f.job->M; ++col) f.job->Y[static_cast<size_t>(col) * f.job->N + f.n] = out[col];
    }
  };
  std::vector<uint16_t> nan_row(cols, 0x7FC1);
  std::vector<uint16_t> inf_row(cols, 0xFF80);

  load_weights(*te, a);
  ASSERT_FALSE(HasFatalFailure());
  uint64_t last_a = 0;
  uint64_t first_b = 0;
  for (int n = 0; n < a.N; ++n) {
    const auto x = column(a, n, rows);
    te->set_moving(true, n == 0, a.K, x.data());
    // While A streams, the shadow bank (never used yet) is free: fill it with NaN, then overwrite it
    // with B's weights. A must not see any of it.
    EXPECT_TRUE(te->wload_ready()) << "cycle " << te->cycle();
    if (n >= 1 && n <= rows) {
      te->set_wload(true, n - 1, nan_row.data());
    } else if (n > rows && n <= rows + b.K) {
      std::vector<uint16_t> row(cols);
      for (int col = 0; col < cols; ++col) row[col] = b.W[static_cast<size_t>(n - rows - 1) * b.M + col];
      te->set_wload(true, n - rows - 1, row.data());
    } else {
      te->set_wload(false, 0, nullptr);
    }
    tick();
    fifo.push_back({&a, n, te->cycle()});
    last_a = te->cycle();
  }
  ASSERT_GT(a.N, rows + b.K);
  te->set_wload(false, 0, nullptr);
  // B right after A's last column: the banks swap while A's columns are still in flight.
  for (int n = 0; n < b.N; ++n) {
    const auto x = column(b, n, rows);
    te->set_moving(true, n == 0, b.K, x.data());
    // The shadow bank is now A's until A's last column is through (accepted at last_a: it reads
    // weights up to the edge that makes cycle() == last_a + latency).
    const uint64_t now = te->cycle();
    if (n > 0) {
      EXPECT_EQ(te->wload_ready(), now >= last_a + lat) << "cycle " << now;
    }
    // Once free, scribble over it (B must not notice), then load C.
    if (n > 0 && te->wload_ready()) {
      const int since = static_cast<int>(now - (last_a + lat));
      if (since < rows) {
        te->set_wload(true, since, inf_row.data());
      } else if (since < rows + c.K) {
        std::vector<uint16_t> row(cols);
        for (int col = 0; col < cols; ++col) row[col] = c.W[static_cast<size_t>(since - rows) * c.M + col];
        te->set_wload(true, since - rows, row.data());
      } else {
        te->set_wload(false, 0, nullptr);
      }
    } else {
      te->set_wload(false, 0, nullptr);
    }
    tick();
    fifo.push_back({&b, n, te->cycle()});
    if (n == 0) first_b = te->cycle();
  }
  te->set_wload(false, 0, nullptr);
  EXPECT_EQ(first_b, last_a + 1);
  ASSERT_GT(b.N, static_cast<int>(lat) + rows + c.K);
  // C right after B (its weights were loaded under B).
  for (int n = 0; n < c.N; ++n) {
    const auto x = column(c, n, rows);
    te->set_moving(true, n == 0, c.K, x.data());
    tick();
    fifo.push_back({&c, n, te->cycle()});
  }
  te->set_moving(false, false, 0, nullptr);
  while (te->busy()) tick();
  EXPECT_TRUE(fifo.empty());
  for (const MatmulJob* j : {&a, &b, &c}) expect_matches_golden(*j);
}

// A weight row written at the same edge as a matmul's first column goes into the bank that column uses.
TEST_P(TensorEngineProtocol, WeightRowAtTheSwapEdge) {
  const auto [rows, cols] = GetParam();
  auto te = make_tensor_engine(rows, cols);
  std::mt19937_64 rng(14);
  MatmulJob j = dense_job(rows, cols, 4, Dist::kNormal, Dist::kNormal, rng, "late row");
  MatmulJob head = j;
  head.K = rows - 1;
  load_weights(*te, head);  // rows 0..K-2 (W is row-major, so the prefix is rows 0..K-2)
  std::vector<uint16_t> last(cols);
  for (int c = 0; c < cols; ++c) last[c] = j.W[static_cast<size_t>(rows - 1) * cols + c];
  j.Y.assign(static_cast<size_t>(cols) * j.N, 0);
  std::vector<uint32_t> out(cols);
  int got = 0;
  for (uint64_t t = 0; t < static_cast<uint64_t>(j.N + te->latency() + 2); ++t) {
    const int n = static_cast<int>(t);
    if (n < j.N) {
      const auto x = column(j, n, rows);
      te->set_moving(true, n == 0, j.K, x.data());
    } else {
      te->set_moving(false, false, 0, nullptr);
    }
    te->set_wload(n == 0, rows - 1, last.data());
    te->tick();
    if (te->out_valid()) {
      te->out_data(out.data());
      for (int c = 0; c < cols; ++c) j.Y[static_cast<size_t>(c) * j.N + got] = out[c];
      ++got;
    }
  }
  EXPECT_EQ(got, j.N);
  expect_matches_golden(j);
}

// (d) Determinism: the same input sequence gives the same outputs on every cycle, on a fresh instance
// and after reset().
TEST_P(TensorEngineProtocol, Deterministic) {
  const auto [rows, cols] = GetParam();
  struct Sample {
    bool valid, ready, busy;
    std::vector<uint32_t> data;
    bool operator==(const Sample&) const = default;
  };
  auto record = [&](TensorEngineModel& te) {
    std::mt19937_64 rng(15);
    std::vector<Sample> log;
    std::vector<uint16_t> w(cols), x(rows);
    for (int t = 0; t < 6 * (rows + cols); ++t) {
      const bool wl = te.wload_ready() && rng() % 3 == 0;
      for (auto& v : w) v = gen_value(Dist::kSpecials, rng);
      for (auto& v : x) v = gen_value(Dist::kRawBits, rng);
      te.set_wload(wl, static_cast<int>(rng() % rows), w.data());
      te.set_moving(rng() % 4 != 0, rng() % 9 == 0, 1 + static_cast<int>(rng() % rows), x.data());
      te.tick();
      Sample s{te.out_valid(), te.wload_ready(), te.busy(), std::vector<uint32_t>(cols)};
      if (s.valid) te.out_data(s.data.data());
      log.push_back(std::move(s));
    }
    return log;
  };
  auto te1 = make_tensor_engine(rows, cols);
  auto te2 = make_tensor_engine(rows, cols);
  const auto log1 = record(*te1);
  const auto log2 = record(*te2);
  te1->reset();
  EXPECT_EQ(te1->cycle(), 0u);
  const auto log3 = record(*te1);
  EXPECT_TRUE(log1 == log2);
  EXPECT_TRUE(log1 == log3);
}

// reset() in the middle of a stream: nothing in flight afterwards, both banks hold +0.
TEST_P(TensorEngineProtocol, ResetMidStream) {
  const auto [rows, cols] = GetParam();
  auto te = make_tensor_engine(rows, cols);
  std::mt19937_64 rng(16);
  MatmulJob j = dense_job(rows, cols, 50, Dist::kNormal, Dist::kNormal, rng, "before reset");
  load_weights(*te, j);
  for (int n = 0; n < 10; ++n) {
    const auto x = column(j, n, rows);
    te->set_moving(true, n == 0, rows, x.data());
    te->tick();
  }
  te->reset();
  EXPECT_EQ(te->cycle(), 0u);
  EXPECT_FALSE(te->busy());
  EXPECT_FALSE(te->out_valid());
  EXPECT_TRUE(te->wload_ready());
  // Inputs were cleared: ticking produces nothing.
  for (int t = 0; t < 2 * te->latency(); ++t) {
    te->tick();
    EXPECT_FALSE(te->out_valid());
  }
  // A column without any weight load: the first swap after reset activates a bank reset to +0.
  MatmulJob z = dense_job(rows, cols, 1, Dist::kNormal, Dist::kNormal, rng, "after reset, zero weights");
  std::fill(z.W.begin(), z.W.end(), 0);
  const auto x = column(z, 0, rows);
  te->set_moving(true, true, rows, x.data());
  te->tick();
  te->set_moving(false, false, 0, nullptr);
  while (!te->out_valid()) te->tick();
  std::vector<uint32_t> out(cols);
  te->out_data(out.data());
  const std::vector<uint32_t> want = golden(z);
  for (int c = 0; c < cols; ++c) EXPECT_EQ(out[c], want[static_cast<size_t>(c) * z.N]) << "Y[" << c << "][0]";
  std::vector<MatmulJob> jobs{dense_job(rows, cols, 20, Dist::kCancel, Dist::kCancel, rng, "after reset")};
  Streamer(*te, 4).run(jobs);
  expect_matches_golden(jobs[0]);
}

// Waveforms: a dump can be opened, written and closed (twice) without changing results.
TEST_P(TensorEngineProtocol, TraceDump) {
  const auto [rows, cols] = GetParam();
  auto te = make_tensor_engine(rows, cols);
  const std::filesystem::path dir = ::testing::TempDir();
  for (int round = 0; round < 2; ++round) {
    const std::filesystem::path fst =
        dir / ("tcemu_rtl_trace_" + std::to_string(rows) + "_" + std::to_string(round) + ".fst");
    std::filesystem::remove(fst);
    te->trace_open(fst.string());
    std::mt19937_64 rng(17 + round);
    std::vector<MatmulJob> jobs{dense_job(rows, cols, 5, Dist::kNormal, Dist::kNormal, rng, "traced")};
    Streamer(*te, 5).run(jobs);
    te->trace_close();
    expect_matches_golden(jobs[0]);
    ASSERT_TRUE(std::filesystem::exists(fst));
    EXPECT_GT(std::filesystem::file_size(fst), 100u);
    std::filesystem::remove(fst);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorEngineProtocol, ::testing::ValuesIn(kSizes), size_name);

// Instances of every size coexist in one process and run independently, on separate threads too.
TEST(TensorEngineAdapter, InstancesCoexistAcrossThreads) {
  std::vector<std::unique_ptr<TensorEngineModel>> engines;
  for (const Size& s : kSizes) engines.push_back(make_tensor_engine(s.first, s.second));
  engines.push_back(make_tensor_engine(8, 8));  // two of the same size
  std::vector<std::vector<MatmulJob>> work(engines.size());
  for (size_t i = 0; i < engines.size(); ++i) {
    std::mt19937_64 rng(100 + i);
    for (int m = 0; m < 20; ++m) work[i].push_back(random_job(engines[i]->rows(), engines[i]->cols(), rng));
  }
  // First interleaved on one thread, one matmul batch at a time per engine...
  for (size_t i = 0; i < engines.size(); ++i) {
    std::vector<MatmulJob> one{work[i][0]};
    Streamer(*engines[i], 1).run(one);
    expect_matches_golden(one[0]);
  }
  // ...then all engines at once on their own threads.
  std::vector<std::thread> threads;
  for (size_t i = 0; i < engines.size(); ++i) {
    threads.emplace_back([&, i] { Streamer(*engines[i], 2 + i).run(work[i]); });
  }
  for (auto& t : threads) t.join();
  for (const auto& jobs : work) {
    for (const auto& j : jobs) expect_matches_golden(j);
  }
}

}  // namespace
}  // namespace tcemu::rtl::test
