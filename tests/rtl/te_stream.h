// Test helpers for the verilated tensor engine: matmul jobs, value generators and a streamer that drives
// the engine the way a sequencer would (weights of the next matmul loaded into the shadow bank while the
// current one streams, matmuls back to back), checking the protocol every cycle.
//
// Expected results always come from the golden model (tcemu/numerics.h), never from the RTL.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <deque>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tcemu/numerics.h"
#include "tcemu/rtl/tensor_engine.h"

namespace tcemu::rtl::test {

// One matmul (one tile): Y[c][n] = sum_{k<K} W[k][c] * X[k][n].
struct MatmulJob {
  int K = 0;
  int M = 0;
  int N = 0;
  std::vector<uint16_t> W;  // K x M row-major bf16
  std::vector<uint16_t> X;  // K x N row-major bf16
  std::vector<uint32_t> Y;  // M x N row-major fp32 bits, filled by Streamer::run
  std::string label;        // for failure messages
};

inline std::vector<uint32_t> golden(const MatmulJob& j) {
  std::vector<uint32_t> y(static_cast<size_t>(j.M) * j.N);
  num::golden_matmul_tile(j.K, j.M, j.N, j.W.data(), j.X.data(), y.data());
  return y;
}

inline std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}
inline std::string hex16(uint16_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04X", v);
  return buf;
}

// Compares a job's RTL result with the golden model; on mismatch reports the first differing element with
// its inputs (the K products in summation order). Returns the number of mismatching elements.
inline int expect_matches_golden(const MatmulJob& j) {
  const std::vector<uint32_t> want = golden(j);
  int bad = 0;
  for (int c = 0; c < j.M; ++c) {
    for (int n = 0; n < j.N; ++n) {
      const size_t i = static_cast<size_t>(c) * j.N + n;
      if (j.Y[i] == want[i]) continue;
      if (bad++ == 0) {
        std::string terms;
        for (int k = 0; k < j.K; ++k) {
          terms += ' ';
          terms += hex16(j.W[static_cast<size_t>(k) * j.M + c]);
          terms += '*';
          terms += hex16(j.X[static_cast<size_t>(k) * j.N + n]);
        }
        ADD_FAILURE() << j.label << " K=" << j.K << " M=" << j.M << " N=" << j.N << ": Y[" << c << "]["
                      << n << "] rtl=" << hex(j.Y[i]) << " golden=" << hex(want[i])
                      << "; W*X terms in order:" << terms;
      }
    }
  }
  if (bad > 1) ADD_FAILURE() << j.label << ": " << bad << " mismatching elements in total";
  return bad;
}

// ---- value generators ---------------------------------------------------------------------------------

enum class Dist {
  kNormal,    // random normal numbers, exponents within 2^+-30
  kCancel,    // exponents within 2^+-2, random signs: heavy cancellation and rounding
  kRawBits,   // uniformly random 16-bit patterns (every class, incl. NaN/inf/subnormal)
  kSpecials,  // mostly normal with a quarter of specials (+-0, +-inf, NaNs, subnormals, extremes)
  kTiny,      // exponents near 2^-63: products near 2^-126 (product flush, FTZ of sums)
  kHuge,      // exponents near 2^+63: products near 2^127 (overflow of products and sums)
  kSmallInt,  // small integers: exact sums, exact cancellation to +0
  kCount
};

inline const char* dist_name(Dist d) {
  switch (d) {
    case Dist::kNormal: return "normal";
    case Dist::kCancel: return "cancel";
    case Dist::kRawBits: return "rawbits";
    case Dist::kSpecials: return "specials";
    case Dist::kTiny: return "tiny";
    case Dist::kHuge: return "huge";
    case Dist::kSmallInt: return "smallint";
    default: return "?";
  }
}

constexpr uint16_t kSpecialValues[] = {
    0x0000, 0x8000,                  // +-0
    0x7F80, 0xFF80,                  // +-inf
    0x7FC0, 0xFFC0, 0x7F81, 0xFFFF,  // quiet/signalling NaNs with payloads
    0x0001, 0x807F, 0x0040,          // subnormals (read as zero)
    0x0080, 0x8080,                  // +-min normal
    0x7F7F, 0xFF7F,                  // +-max
    0x3F80, 0xBF80,                  // +-1
};

inline uint16_t make_bf16(uint32_t sign, int exp, uint32_t mant) {
  return static_cast<uint16_t>((sign << 15) | (static_cast<uint32_t>(exp) << 7) | (mant & 0x7Fu));
}

inline uint16_t gen_value(Dist d, std::mt19937_64& rng) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const uint32_t sign = rng() & 1u;
  const uint32_t mant = rng() & 0x7Fu;
  switch (d) {
    case Dist::kNormal: return make_bf16(sign, 127 + uni(-30, 30), mant);
    case Dist::kCancel: return make_bf16(sign, 127 + uni(-2, 2), mant);
    case Dist::kRawBits: return static_cast<uint16_t>(rng());
    case Dist::kSpecials:
      if (uni(0, 3) == 0) return kSpecialValues[uni(0, std::size(kSpecialValues) - 1)];
      return make_bf16(sign, 127 + uni(-20, 20), mant);
    case Dist::kTiny: return make_bf16(sign, 63 + uni(-3, 3), mant);
    case Dist::kHuge: return make_bf16(sign, 191 + uni(-3, 1), mant);
    case Dist::kSmallInt: {
      const int v = uni(-8, 8);
      return num::f32_to_bf16(static_cast<float>(v));
    }
    default: return 0;
  }
}

// A random job for an array of rows x cols: K <= rows, M <= cols, N from a mix of lengths (N = 1, short,
// a few array lengths, long). W and X use independently drawn distributions.
inline MatmulJob random_job(int rows, int cols, std::mt19937_64& rng) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  MatmulJob j;
  j.K = uni(0, 3) == 0 ? rows : uni(1, rows);
  j.M = uni(0, 3) == 0 ? cols : uni(1, cols);
  const int pick = uni(0, 99);
  if (pick < 15) {
    j.N = 1;
  } else if (pick < 80) {
    j.N = uni(2, 2 * cols);
  } else if (pick < 95) {
    j.N = uni(2 * cols, 4 * (rows + cols));
  } else {
    j.N = uni(256, 600);
  }
  const Dist dw = static_cast<Dist>(uni(0, static_cast<int>(Dist::kCount) - 1));
  const Dist dx = static_cast<Dist>(uni(0, static_cast<int>(Dist::kCount) - 1));
  j.W.resize(static_cast<size_t>(j.K) * j.M);
  j.X.resize(static_cast<size_t>(j.K) * j.N);
  for (auto& v : j.W) v = gen_value(dw, rng);
  for (auto& v : j.X) v = gen_value(dx, rng);
  j.label = std::string("W:") + dist_name(dw) + " X:" + dist_name(dx);
  return j;
}

// ---- streamer -----------------------------------------------------------------------------------------

struct StreamOptions {
  double gap_probability = 0.0;      // chance of an idle cycle between two columns of a matmul
  double late_load_probability = 0;  // chance of writing a matmul's last weight row at its first column's edge
  bool fill_unused_with_garbage = true;  // unused weight columns / moving rows get random bits (NaN, inf...)
};

// Drives jobs through the engine back to back and fills job.Y. Checks, every cycle: every result comes
// exactly latency() cycles after its column was accepted and in order; busy() and wload_ready() match
// their definitions. Returns the number of cycles used.
class Streamer {
 public:
  Streamer(TensorEngineModel& te, uint64_t seed, StreamOptions opt = {})
      : te_(te), rng_(seed), opt_(opt) {}

  uint64_t run(std::vector<MatmulJob>& jobs) {
    const int rows = te_.rows();
    const int cols = te_.cols();
    const uint64_t lat = static_cast<uint64_t>(te_.latency());
    for (auto& j : jobs) j.Y.assign(static_cast<size_t>(j.M) * j.N, 0xDEADBEEFu);

    int started = -1;  // index of the matmul whose columns are being issued (last one that got `first`)
    int next_col = 0;  // next column of `started` to issue
    int ld_row = 0;    // next weight row of matmul started + 1 (the shadow bank is its bank)
    std::deque<Pending> pending;
    std::vector<uint16_t> wrow(cols);
    std::vector<uint16_t> xcol(rows);
    const uint64_t start_cycle = te_.cycle();
    const int njobs = static_cast<int>(jobs.size());
    uint64_t guard = 0;

    while (started < njobs - 1 || (started >= 0 && next_col < jobs[started].N) || !pending.empty()) {
      if (++guard > 10'000'000) {
        ADD_FAILURE() << "streamer: no progress";
        break;
      }
      const int nxt = started + 1;
      const bool cur_done = started < 0 || next_col >= jobs[started].N;

      // Weights of the next matmul, whenever the engine says the shadow bank is free. The last row may be
      // held back to the edge at which the matmul's first column enters (it must land in the new bank).
      bool wload = false;
      int wload_row = 0;
      if (nxt < njobs && ld_row < jobs[nxt].K && te_.wload_ready()) {
        const MatmulJob& j = jobs[nxt];
        const bool last_row = ld_row == j.K - 1;
        if (!last_row || !hold_last_row_ || cur_done) {
          for (int c = 0; c < cols; ++c) {
            wrow[c] = c < j.M ? j.W[static_cast<size_t>(ld_row) * j.M + c] : garbage();
          }
          wload = true;
          wload_row = ld_row++;
        }
      }

      // Moving column: the next matmul starts as soon as the current one has issued all its columns and
      // all its weight rows are written (the last one possibly at this very edge).
      bool mv = false;
      bool first = false;
      int k = 0;
      if (cur_done && nxt < njobs && ld_row == jobs[nxt].K) {
        started = nxt;
        next_col = 0;
        ld_row = 0;
        hold_last_row_ = coin(opt_.late_load_probability);
      }
      if (started >= 0 && next_col < jobs[started].N && !(next_col > 0 && coin(opt_.gap_probability))) {
        const MatmulJob& j = jobs[started];
        for (int r = 0; r < rows; ++r) xcol[r] = r < j.K ? j.X[static_cast<size_t>(r) * j.N + next_col] : garbage();
        mv = true;
        first = next_col == 0;
        k = j.K;
        pending.push_back({started, next_col, te_.cycle() + 1});
        ++next_col;
      }

      te_.set_wload(wload, wload_row, wload ? wrow.data() : nullptr);
      te_.set_moving(mv, first, k, mv ? xcol.data() : nullptr);
      te_.tick();
      const uint64_t now = te_.cycle();

      // busy(): some accepted column's result not yet presented (incl. the one presented now).
      EXPECT_EQ(te_.busy(), !pending.empty()) << "busy() at cycle " << now;
      // wload_ready(): no column in flight (accepted, fewer than latency() edges ago) uses the shadow bank,
      // i.e. belongs to a matmul other than the current one.
      bool shadow_in_use = false;
      for (const Pending& p : pending) {
        if (now - p.accepted < lat && p.job != started) shadow_in_use = true;
      }
      EXPECT_EQ(te_.wload_ready(), !shadow_in_use) << "wload_ready() at cycle " << now;

      if (te_.out_valid()) {
        if (pending.empty()) {
          ADD_FAILURE() << "out_valid() with no column in flight at cycle " << now;
        } else {
          const Pending p = pending.front();
          pending.pop_front();
          EXPECT_EQ(now, p.accepted + lat) << "result of a column accepted at cycle " << p.accepted;
          out_.resize(cols);
          te_.out_data(out_.data());
          MatmulJob& j = jobs[p.job];
          for (int c = 0; c < j.M; ++c) j.Y[static_cast<size_t>(c) * j.N + p.col] = out_[c];
        }
      } else if (!pending.empty() && now >= pending.front().accepted + lat) {
        ADD_FAILURE() << "no result at cycle " << now << " for the column accepted at cycle "
                      << pending.front().accepted << " (latency " << lat << ")";
        pending.pop_front();
      }
    }
    te_.set_wload(false, 0, nullptr);
    te_.set_moving(false, false, 0, nullptr);
    return te_.cycle() - start_cycle;
  }

 private:
  struct Pending {
    int job;
    int col;
    uint64_t accepted;  // cycle() value right after the accepting tick
  };

  bool coin(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  uint16_t garbage() {
    if (!opt_.fill_unused_with_garbage) return 0;
    // Favour NaN and inf so that any leak from an unused row or column shows.
    switch (rng_() % 4) {
      case 0: return 0x7FC1;
      case 1: return 0xFF80;
      default: return static_cast<uint16_t>(rng_());
    }
  }

  TensorEngineModel& te_;
  std::mt19937_64 rng_;
  StreamOptions opt_;
  bool hold_last_row_ = false;
  std::vector<uint32_t> out_;
};

// The adapter contract (tensor_engine.h) for any TensorEngineModel with 8 rows: a valid input out of
// range throws std::out_of_range naming the value and the range; an input marked not valid is ignored.
inline void expect_rejects_out_of_range_inputs(TensorEngineModel& te) {
  ASSERT_EQ(te.rows(), 8);
  std::vector<uint16_t> d(size_t(std::max(te.rows(), te.cols())), 0x3F80);
  EXPECT_THROW(te.set_wload(true, 8, d.data()), std::out_of_range);
  EXPECT_THROW(te.set_wload(true, -1, d.data()), std::out_of_range);
  EXPECT_THROW(te.set_wload(true, 0, nullptr), std::out_of_range);
  EXPECT_THROW(te.set_moving(true, true, 0, d.data()), std::out_of_range);
  EXPECT_THROW(te.set_moving(true, true, 9, d.data()), std::out_of_range);
  EXPECT_THROW(te.set_moving(true, false, 8, nullptr), std::out_of_range);
  // Not valid: anything goes.
  EXPECT_NO_THROW(te.set_wload(false, 99, nullptr));
  EXPECT_NO_THROW(te.set_moving(false, false, 0, nullptr));
  try {
    te.set_moving(true, false, 12, d.data());
    ADD_FAILURE() << "no exception";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("k=12"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1..8"), std::string::npos) << e.what();
  }
}

}  // namespace tcemu::rtl::test
