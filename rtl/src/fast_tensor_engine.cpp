// The fast tensor engine (fast_tensor_engine.h): the controller of rtl/tc_tensor_engine.sv mirrored
// register for register; the array replaced by a delay line of accepted columns whose whole results are
// computed (in batches) before they reach the outputs. docs/rtl.md ("The fast model") is the reference; the
// comments here say why it is exact.
#include "tcemu/rtl/fast_tensor_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tcemu/error.h"
#include "tcemu/numerics.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define TCEMU_FAST_TE_X86 1
#endif

namespace tcemu::rtl {
namespace {

// ---- When is fp32 FMA exact? -----------------------------------------------------------------------------
//
// A normal bf16 value with biased exponent field E (1..254) is m * 2^(E - 134) with an integer m in
// [128, 255]. A product of two is mw*mx * 2^(S - 268), S = Ew + Ex, and lies in [2^(S-254), 2^(S-252)).
//  - No product reaches 2^128 (where the engine's product becomes inf but an FMA's does not) if S <= 380.
//  - Every product is an integer multiple of 2^(Smin - 268), Smin the least S of the column's nonzero
//    products, and so is every rounded partial sum (rounding a multiple of 2^q to fp32 either keeps it or
//    moves it to a grid coarser than 2^q). A nonzero partial sum is therefore at least 2^(Smin - 268) in
//    magnitude: with Smin >= 142 no product and no partial sum falls below 2^-126, so the engine never
//    flushes (FTZ) and the host never sees a subnormal.
// Under both bounds, with no inf/NaN operand and subnormal operands read as zero (done when converting
// to float), every step is acc = RN(acc + p) with p exact in fp32: an FMA, or a multiply then an add, gives
// the engine's fp32_add bits, including signed zeros (the sum starts at +0; x + (-x) = +0 in both) and a
// sum's overflow to inf (round to nearest even in both; inf + finite = inf).
//
// The test is on exponent ranges: per weight column c and prefix of rows 0..k-1, the least and greatest
// exponent of its nonzero weights (precomputed per bank); per moving column, the same over its k enabled
// elements. Products are bounded by sums of those. Zero operands produce no product (exact in both);
// inf/NaN get sentinels that fail the test whatever the other side holds (0 * inf = NaN).
constexpr int kMinExpSum = 142;
constexpr int kMaxExpSum = 380;
constexpr int16_t kZeroLo = 1000;      // a zero: passes lo + other_lo >= 142 with any finite other side
constexpr int16_t kZeroHi = -1000;     //         and hi + other_hi <= 380 with any
constexpr int16_t kSpecialLo = -1000;  // inf or NaN: fails lo + other_lo >= 142 (also against a zero)
constexpr int16_t kSpecialHi = 1000;

struct ExpRange {
  int16_t lo;
  int16_t hi;
};

inline ExpRange exp_range(uint16_t b) {
  const int e = (b >> 7) & 0xFF;
  if (e == 0) return {kZeroLo, kZeroHi};  // zero or subnormal (read as zero)
  if (e == 0xFF) return {kSpecialLo, kSpecialHi};
  return {static_cast<int16_t>(e), static_cast<int16_t>(e)};
}

inline bool fast_ok(int w_lo, int w_hi, int x_lo, int x_hi) {
  return w_lo + x_lo >= kMinExpSum && w_hi + x_hi <= kMaxExpSum;
}

// bf16 -> fp32 with subnormals read as zero of their sign (the engine's DAZ).
inline float daz_f32(uint16_t b) {
  const uint32_t u = (b & 0x7F80u) != 0 ? static_cast<uint32_t>(b) << 16 : static_cast<uint32_t>(b & 0x8000u) << 16;
  return std::bit_cast<float>(u);
}

// The k elements of an accepted moving column: their bf16 patterns into `bits`, their fp32 values (DAZ) into
// `x`, and their exponent range (the least lo and greatest hi of exp_range). Cloned per host ISA: the loop
// runs 32 (AVX-512) or 16 (AVX2) elements wide.
[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
ExpRange accept_elements(const uint16_t* in, int k, uint16_t* bits, float* x) {
  int16_t lo = kZeroLo;
  int16_t hi = kZeroHi;
  for (int r = 0; r < k; ++r) {
    const uint16_t b = in[r];
    bits[r] = b;
    x[r] = daz_f32(b);
    const ExpRange e = exp_range(b);
    lo = std::min(lo, e.lo);
    hi = std::max(hi, e.hi);
  }
  return {lo, hi};
}

// ---- Vector kernels ----------------------------------------------------------------------------------------
//
// For each of n moving columns j (x + j*xs, k elements): out[j*os + c] = +0 (+) w[0][c]*x[0] (+) ... (+)
// w[k-1][c]*x[k-1] for c < width, each step one FMA or a multiply then an add (the same bits under the
// exactness test). w: k rows of `ws` floats; width, ws and os multiples of 16 floats; w and out 64-byte
// aligned. The summation order of every output is the engine's; only which outputs are computed side by side
// differs: a tile of several columns x a block of outputs in registers (each weight row loaded once for all
// the tile's columns), a single column with a wide block of outputs (enough independent FMA chains).
using KernelFn = void (*)(const float* w, size_t ws, int k, const float* x, size_t xs, int n, int width, float* out,
                          size_t os);

constexpr int kPad = 16;  // floats: row strides and the kernels' width are multiples of this (64 bytes)

void kernel_generic(const float* w, size_t ws, int k, const float* x, size_t xs, int n, int width, float* out,
                    size_t os) {
  for (int j = 0; j < n; ++j, x += xs, out += os) {
    for (int c0 = 0; c0 < width; c0 += kPad) {
      float acc[kPad] = {};
      const float* wr = w + c0;
      for (int r = 0; r < k; ++r, wr += ws) {
        const float xr = x[r];
        for (int i = 0; i < kPad; ++i) acc[i] += wr[i] * xr;
      }
      std::memcpy(out + c0, acc, sizeof acc);
    }
  }
}

#ifdef TCEMU_FAST_TE_X86

// NB columns x V vectors of 8 outputs.
template <int NB, int V>
[[gnu::target("avx2,fma"), gnu::always_inline]] inline void tile_avx2(const float* w, size_t ws, int k, const float* x,
                                                                      size_t xs, float* out, size_t os) {
  __m256 acc[NB][V];
  for (int j = 0; j < NB; ++j) {
    for (int v = 0; v < V; ++v) acc[j][v] = _mm256_setzero_ps();
  }
  for (int r = 0; r < k; ++r, w += ws) {
    __m256 wv[V];
    for (int v = 0; v < V; ++v) wv[v] = _mm256_load_ps(w + 8 * v);
    for (int j = 0; j < NB; ++j) {
      const __m256 xr = _mm256_broadcast_ss(x + j * xs + r);
      for (int v = 0; v < V; ++v) acc[j][v] = _mm256_fmadd_ps(wv[v], xr, acc[j][v]);
    }
  }
  for (int j = 0; j < NB; ++j) {
    for (int v = 0; v < V; ++v) _mm256_store_ps(out + j * os + 8 * v, acc[j][v]);
  }
}

[[gnu::target("avx2,fma")]] void kernel_avx2(const float* w, size_t ws, int k, const float* x, size_t xs, int n,
                                             int width, float* out, size_t os) {
  constexpr int kTile = 6;  // 6 columns x 16 outputs: 12 accumulators, 2 weight vectors, 1 broadcast
  const int tiled = n / kTile * kTile;
  for (int c = 0; c < width; c += 16) {  // a 16-output slice of W stays in L1 while the columns go by
    for (int j = 0; j < tiled; j += kTile) tile_avx2<kTile, 2>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
  }
  for (int j = tiled; j < n; ++j) {
    int c = 0;
    for (; c + 64 <= width; c += 64) tile_avx2<1, 8>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
    for (; c < width; c += 16) tile_avx2<1, 2>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
  }
}

// NB columns x V vectors of 16 outputs.
template <int NB, int V>
[[gnu::target("avx512f"), gnu::always_inline]] inline void tile_avx512(const float* w, size_t ws, int k, const float* x,
                                                                       size_t xs, float* out, size_t os) {
  __m512 acc[NB][V];
  for (int j = 0; j < NB; ++j) {
    for (int v = 0; v < V; ++v) acc[j][v] = _mm512_setzero_ps();
  }
  for (int r = 0; r < k; ++r, w += ws) {
    __m512 wv[V];
    for (int v = 0; v < V; ++v) wv[v] = _mm512_load_ps(w + 16 * v);
    for (int j = 0; j < NB; ++j) {
      const __m512 xr = _mm512_set1_ps(x[j * xs + r]);
      for (int v = 0; v < V; ++v) acc[j][v] = _mm512_fmadd_ps(wv[v], xr, acc[j][v]);
    }
  }
  for (int j = 0; j < NB; ++j) {
    for (int v = 0; v < V; ++v) _mm512_store_ps(out + j * os + 16 * v, acc[j][v]);
  }
}

[[gnu::target("avx512f")]] void kernel_avx512(const float* w, size_t ws, int k, const float* x, size_t xs, int n,
                                              int width, float* out, size_t os) {
  // 4 columns x 64 outputs: 16 accumulators (measured on a Zen 4 host: as fast as 8 x 32, 6 x 32 or 12 x 16
  // at 128x128 and faster at 16x16 and 32x32, where the remaining 16-output blocks take 4 x 16).
  constexpr int kTile = 4;
  const int tiled = n / kTile * kTile;
  int c = 0;
  for (; c + 64 <= width; c += 64) {
    for (int j = 0; j < tiled; j += kTile) tile_avx512<kTile, 4>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
  }
  for (; c < width; c += 16) {
    for (int j = 0; j < tiled; j += kTile) tile_avx512<kTile, 1>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
  }
  for (int j = tiled; j < n; ++j) {
    c = 0;
    for (; c + 128 <= width; c += 128) tile_avx512<1, 8>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
    for (; c + 32 <= width; c += 32) tile_avx512<1, 2>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
    if (c < width) tile_avx512<1, 1>(w + c, ws, k, x + j * xs, xs, out + j * os + c, os);
  }
}

bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#endif  // TCEMU_FAST_TE_X86

bool always() { return true; }

struct KernelEntry {
  std::string_view name;
  KernelFn fn;
  bool (*supported)();
};

// Fastest first.
constexpr KernelEntry kKernels[] = {
#ifdef TCEMU_FAST_TE_X86
    {"avx512", &kernel_avx512, &has_avx512},
    {"avx2", &kernel_avx2, &has_avx2},
#endif
    {"generic", &kernel_generic, &always},
};

// ---- 64-byte aligned, zero-initialised float arrays ----------------------------------------------------------

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

AlignedFloats aligned_floats(size_t n) {
  const size_t bytes = std::max<size_t>(64, (n * sizeof(float) + 63) / 64 * 64);
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return AlignedFloats(p);
}

// ---- The engine ---------------------------------------------------------------------------------------------

// Results are computed in batches rather than at the accepting edge, which changes nothing visible: a column's
// operands are fixed when it is accepted (its moving data is copied into its delay-line entry; its bank is not
// written while it is in flight, since the shadow bank is written only while wload_ready(), i.e. while no column
// in flight uses it), so its result may be computed any time before it reaches the outputs. tick() computes all
// pending columns when the oldest reaches stage L: up to L + 1 columns at a time, a small GEMM in which each
// weight row is loaded once for several columns. A weight write to a bank with pending columns (outside the
// protocol) computes them first, so they still see the weights they were accepted with.
class FastEngine final : public FastTensorEngine {
 public:
  FastEngine(int rows, int cols)
      : rows_(rows),
        cols_(cols),
        lat_(tensor_engine_latency(rows, cols)),
        slots_(lat_ + 1),
        stride_(padded(cols)),
        xstride_(padded(rows)),
        wl_data_(cols),
        mv_bits_(rows),
        stage_(slots_),
        x_(aligned_floats(static_cast<size_t>(slots_) * xstride_)),
        xbits_(static_cast<size_t>(slots_) * rows),
        results_(aligned_floats(static_cast<size_t>(slots_) * stride_)) {
    for (Bank& b : bank_) {
      b.w = aligned_floats(static_cast<size_t>(rows) * stride_);
      b.bits.resize(static_cast<size_t>(rows) * cols);
      b.lo.resize(static_cast<size_t>(rows) * cols);
      b.hi.resize(static_cast<size_t>(rows) * cols);
      b.all_lo.resize(rows);
      b.all_hi.resize(rows);
    }
    select_kernel(supported_fast_kernels().front());
    reset();
  }

  int rows() const override { return rows_; }
  int cols() const override { return cols_; }
  int latency() const override { return lat_; }

  // The RTL's reset: both banks +0, active bank 0, pipeline empty; the adapter also clears the inputs and
  // the cycle count. Pending columns are computed first, so that every accepted column is counted in stats().
  void reset() override {
    compute_pending();
    for (Bank& b : bank_) {
      std::memset(b.w.get(), 0, static_cast<size_t>(rows_) * stride_ * sizeof(float));
      std::fill(b.bits.begin(), b.bits.end(), uint16_t{0});
      b.stale = true;
    }
    active_ = 0;
    std::fill(stage_.begin(), stage_.end(), Stage{});
    head_ = 0;
    out_ = 1;
    in_flight_[0] = in_flight_[1] = 0;
    wl_valid_ = false;
    wl_row_ = 0;
    std::fill(wl_data_.begin(), wl_data_.end(), uint16_t{0});
    mv_valid_ = false;
    mv_first_ = false;
    mv_k_ = 0;
    std::fill(mv_bits_.begin(), mv_bits_.end(), uint16_t{0});
    cycle_ = 0;
  }

  void set_wload(bool valid, int row, const uint16_t* data) override {
    if (valid && (row < 0 || row >= rows_ || data == nullptr)) {
      throw std::out_of_range(
          fmt::format("fast tensor engine {}x{}: set_wload(valid, row={}, data={}): row must be "
                      "in 0..{} and data non-null",
                      rows_, cols_, row, data ? "set" : "null", rows_ - 1));
    }
    wl_valid_ = valid;
    wl_row_ = valid ? row : 0;
    if (data != nullptr) std::copy(data, data + cols_, wl_data_.begin());
  }

  void set_moving(bool valid, bool first, int k, const uint16_t* data) override {
    if (valid && (k < 1 || k > rows_ || data == nullptr)) {
      throw std::out_of_range(
          fmt::format("fast tensor engine {}x{}: set_moving(valid, k={}, data={}): k must be in "
                      "1..{} and data non-null",
                      rows_, cols_, k, data ? "set" : "null", rows_));
    }
    mv_valid_ = valid;
    mv_first_ = first;
    mv_k_ = valid ? k : 0;
    if (data != nullptr) std::copy(data, data + rows_, mv_bits_.begin());
  }

  // One rising edge of tc_tensor_engine (the falling edge changes nothing).
  void tick() override {
    // The weight row goes into the shadow bank (wload_bank_i = ~active_q) before the column accepted at
    // this edge reads it: at a `first` edge that is the column's bank.
    const int shadow = active_ ^ 1;
    if (wl_valid_) {
      if (pending_in_bank_[shadow] > 0) compute_pending();
      write_row(bank_[shadow], wl_row_, wl_data_.data());
    }
    const int col_bank = mv_first_ ? shadow : active_;  // col_bank in the RTL
    if (mv_valid_ && mv_first_) active_ = shadow;

    // The delay line holds the columns accepted at the last lat_ + 1 edges (vld_q/bank_q[0..L] in the RTL);
    // entry head_ is stage 0. Advancing reuses the entry that was at stage L, and the column at stage L-1
    // moves to L: its last multiply is done, it no longer holds its bank.
    head_ = next(head_);
    out_ = next(head_);
    if (stage_[out_].valid) --in_flight_[stage_[out_].bank];
    stage_[head_] = Stage{};
    if (mv_valid_) {
      ++in_flight_[col_bank];
      accept(head_, col_bank);
    }
    if (stage_[out_].valid && !stage_[out_].computed) compute_pending();
    ++cycle_;
  }

  bool out_valid() const override { return stage_[out_].valid; }

  // An empty pipeline slot carries +0 down every column of the array (no row enabled), so the RTL's
  // out_data_o is all zeros whenever out_valid_o is low.
  void out_data(uint32_t* dst) const override {
    if (stage_[out_].valid) {
      std::memcpy(dst, results_.get() + static_cast<size_t>(out_) * stride_, static_cast<size_t>(cols_) * 4);
    } else {
      std::fill(dst, dst + cols_, 0u);
    }
  }

  bool wload_ready() const override { return in_flight_[active_ ^ 1] == 0; }
  bool busy() const override { return in_flight_[0] + in_flight_[1] > 0 || stage_[out_].valid; }
  uint64_t cycle() const override { return cycle_; }

  void trace_open(const std::string& fst_path) override {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("fast tensor engine {}x{}: trace_open(\"{}\"): the fast model has no waveforms; dump "
                            "them from the verilated model (make_tensor_engine)",
                            rows_, cols_, fst_path));
  }
  void trace_close() override {}
  void set_trace_cycle(uint64_t) override {}

  FastTensorEngineStats stats() const override { return stats_; }
  void clear_stats() override { stats_ = {}; }
  void set_force_exact(bool force) override { force_exact_ = force; }
  std::string_view kernel() const override { return kernel_name_; }

  void select_kernel(std::string_view name) override {
    for (const KernelEntry& e : kKernels) {
      if (e.name == name && e.supported()) {
        kernel_ = e.fn;
        kernel_name_ = e.name;
        return;
      }
    }
    std::string list;
    for (std::string_view s : supported_fast_kernels()) list += fmt::format("{}{}", list.empty() ? "" : ", ", s);
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("fast tensor engine {}x{}: select_kernel(\"{}\"): not a kernel this host supports; "
                            "supported: {}",
                            rows_, cols_, name, list));
  }

 private:
  struct Bank {
    AlignedFloats w;              // [rows][stride_]: the weights as fp32, subnormals as zero, padding +0
    std::vector<uint16_t> bits;   // [rows][cols]: the bf16 patterns, for the exact path
    std::vector<int16_t> lo, hi;  // [rows][cols]: exponent range of W[0..r][c] (see exp_range)
    std::vector<int16_t> all_lo;  // [rows]: exponent range of W[0..r][all columns]
    std::vector<int16_t> all_hi;
    bool stale = true;  // lo/hi/all_* need recomputing after a write
  };

  // One delay-line entry: the RTL's vld_q/bank_q bits plus the column's operands and result.
  struct Stage {
    bool valid = false;
    bool computed = false;
    uint8_t bank = 0;
    int k = 0;
    int16_t x_lo = kZeroLo;  // exponent range of the k enabled moving elements
    int16_t x_hi = kZeroHi;
  };

  static int padded(int n) { return (n + kPad - 1) / kPad * kPad; }
  int next(int slot) const { return slot + 1 == slots_ ? 0 : slot + 1; }

  void write_row(Bank& b, int r, const uint16_t* data) {
    float* w = b.w.get() + static_cast<size_t>(r) * stride_;
    uint16_t* bits = b.bits.data() + static_cast<size_t>(r) * cols_;
    for (int c = 0; c < cols_; ++c) {
      bits[c] = data[c];
      w[c] = daz_f32(data[c]);
    }
    b.stale = true;
  }

  // Prefix exponent ranges, once per bank contents.
  void analyse(Bank& b) {
    for (int r = 0; r < rows_; ++r) {
      const size_t row = static_cast<size_t>(r) * cols_;
      int16_t all_lo = kZeroLo;  // lo/hi are prefix ranges already
      int16_t all_hi = kZeroHi;
      for (int c = 0; c < cols_; ++c) {
        const ExpRange e = exp_range(b.bits[row + c]);
        const int16_t lo = r ? std::min(b.lo[row - cols_ + c], e.lo) : e.lo;
        const int16_t hi = r ? std::max(b.hi[row - cols_ + c], e.hi) : e.hi;
        b.lo[row + c] = lo;
        b.hi[row + c] = hi;
        all_lo = std::min(all_lo, lo);
        all_hi = std::max(all_hi, hi);
      }
      b.all_lo[r] = all_lo;
      b.all_hi[r] = all_hi;
    }
    b.stale = false;
  }

  // Copies the moving column into entry `slot`: bf16 patterns, fp32 values (subnormals as zero) and the
  // exponent range of its k enabled elements; the result is computed later (compute_pending).
  void accept(int slot, int bank) {
    Stage& s = stage_[slot];
    s.valid = true;
    s.bank = static_cast<uint8_t>(bank);
    s.k = mv_k_;
    const ExpRange e = accept_elements(mv_bits_.data(), mv_k_, xbits_.data() + static_cast<size_t>(slot) * rows_,
                                       x_.get() + static_cast<size_t>(slot) * xstride_);
    s.x_lo = e.lo;
    s.x_hi = e.hi;
    if (pending_ == 0) pending_first_ = slot;
    ++pending_;
    ++pending_in_bank_[bank];
  }

  // Computes every accepted column whose result is not computed yet (entries pending_first_ .. head_, in
  // order; bubbles in between are skipped), in runs of consecutive entries with the same bank and k.
  void compute_pending() {
    int slot = pending_first_;
    int left = pending_;
    for (int seen = 0; left > 0 && seen < slots_;) {  // at most one lap of the ring
      const Stage& s = stage_[slot];
      if (!s.valid || s.computed) {
        slot = next(slot);
        ++seen;
        continue;
      }
      int n = 1;
      while (n < left && slot + n < slots_) {
        const Stage& t = stage_[slot + n];
        if (!t.valid || t.computed || t.bank != s.bank || t.k != s.k) break;
        ++n;
      }
      compute_run(slot, n);
      left -= n;
      seen += n;
      slot = (slot + n) % slots_;
    }
    pending_ = 0;
    pending_in_bank_[0] = pending_in_bank_[1] = 0;
  }

  // Results of the n columns in entries slot .. slot+n-1 (same bank, same k).
  void compute_run(int slot, int n) {
    Bank& b = bank_[stage_[slot].bank];
    if (b.stale) analyse(b);
    const int k = stage_[slot].k;
    kernel_(b.w.get(), static_cast<size_t>(stride_), k, x_.get() + static_cast<size_t>(slot) * xstride_,
            static_cast<size_t>(xstride_), n, stride_, results_.get() + static_cast<size_t>(slot) * stride_,
            static_cast<size_t>(stride_));
    const size_t last = static_cast<size_t>(k - 1);
    for (int j = slot; j < slot + n; ++j) {
      Stage& s = stage_[j];
      s.computed = true;
      ++stats_.columns;
      if (!force_exact_ && fast_ok(b.all_lo[last], b.all_hi[last], s.x_lo, s.x_hi)) {
        ++stats_.columns_fast;
        continue;
      }
      // Some element may flush, overflow or meet inf/NaN: recompute those with the engine's arithmetic.
      const int16_t* lo = b.lo.data() + last * cols_;
      const int16_t* hi = b.hi.data() + last * cols_;
      const uint16_t* x = xbits_.data() + static_cast<size_t>(j) * rows_;
      float* out = results_.get() + static_cast<size_t>(j) * stride_;
      uint64_t exact = 0;
      for (int c = 0; c < cols_; ++c) {
        if (!force_exact_ && fast_ok(lo[c], hi[c], s.x_lo, s.x_hi)) continue;
        uint32_t acc = 0;  // +0
        for (int r = 0; r < k; ++r) {
          acc = num::golden_add(acc, num::golden_mul(b.bits[static_cast<size_t>(r) * cols_ + c], x[r]));
        }
        std::memcpy(out + c, &acc, sizeof acc);
        ++exact;
      }
      if (exact == 0) {
        ++stats_.columns_fast;
      } else {
        ++stats_.columns_exact;
        stats_.elements_exact += exact;
      }
    }
  }

  const int rows_;
  const int cols_;
  const int lat_;
  const int slots_;    // delay-line entries, lat_ + 1
  const int stride_;   // floats per weight row and per result, cols_ rounded up to kPad
  const int xstride_;  // floats per moving column, rows_ rounded up to kPad

  // Inputs: wires that keep their values until set again.
  bool wl_valid_ = false;
  int wl_row_ = 0;
  std::vector<uint16_t> wl_data_;
  bool mv_valid_ = false;
  bool mv_first_ = false;
  int mv_k_ = 0;
  std::vector<uint16_t> mv_bits_;

  // Engine state.
  Bank bank_[2];
  int active_ = 0;               // active_q
  std::vector<Stage> stage_;     // [slots_] ring: vld_q/bank_q by stage, entry head_ = stage 0
  AlignedFloats x_;              // [slots_][xstride_]: each entry's moving column as fp32
  std::vector<uint16_t> xbits_;  // [slots_][rows_]: and as bf16 (exact path)
  AlignedFloats results_;        // [slots_][stride_]: each entry's result
  int head_ = 0;
  int out_ = 1;                // entry at stage lat_ (on the outputs)
  int in_flight_[2] = {0, 0};  // valid entries in stages 0..lat_-1 per bank
  uint64_t cycle_ = 0;

  // Accepted columns whose results are not computed yet: pending_ of them, the oldest in entry pending_first_.
  int pending_ = 0;
  int pending_first_ = 0;
  int pending_in_bank_[2] = {0, 0};

  KernelFn kernel_ = &kernel_generic;
  std::string_view kernel_name_ = "generic";
  bool force_exact_ = false;
  FastTensorEngineStats stats_;
};

}  // namespace

std::vector<std::string_view> supported_fast_kernels() {
  std::vector<std::string_view> names;
  for (const KernelEntry& e : kKernels) {
    if (e.supported()) names.push_back(e.name);
  }
  return names;
}

std::unique_ptr<FastTensorEngine> make_fast_tensor_engine(int rows, int cols) {
  if (rows < 2 || cols < 2) {
    throw std::invalid_argument(fmt::format(
        "make_fast_tensor_engine: a tensor engine of size {}x{} (rows x cols) is not possible; rows and cols must "
        "both be at least 2",
        rows, cols));
  }
  return std::make_unique<FastEngine>(rows, cols);
}

}  // namespace tcemu::rtl
