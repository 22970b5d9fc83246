#include "tcemu/ref_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>

#include "tcemu/error.h"

namespace tcemu::ref {
namespace {

[[noreturn]] void invalid(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, message); }

// Checks that a dimension is at least `min` and returns it as a size_t.
size_t dim(const char* fn, const char* name, int64_t value, int64_t min = 0) {
  if (value < min) invalid(fmt::format("ref::{}: {} = {} must be >= {}", fn, name, value, min));
  return size_t(value);
}

// The product of dimensions (already checked >= 0), refusing an overflow of size_t.
size_t product(const char* fn, const char* what, std::initializer_list<size_t> dims) {
  size_t p = 1;
  for (size_t d : dims)
    if (__builtin_mul_overflow(p, d, &p)) invalid(fmt::format("ref::{}: the size of {} overflows", fn, what));
  return p;
}

// Checks that a span holds exactly the elements of its shape.
void expect_size(const char* fn, const char* name, size_t got, size_t want, const char* shape) {
  if (got != want)
    invalid(fmt::format("ref::{}: {} has {} elements, its shape {} needs {}", fn, name, got, shape, want));
}

// The output size of one convolution dimension; checks that one kernel window fits.
size_t conv_out(const char* fn, const char* in_name, size_t in, const char* k_name, size_t k, size_t stride,
                size_t pad) {
  const size_t padded = in + 2 * pad;
  if (padded < k)
    invalid(fmt::format("ref::{}: the padded input ({} + 2 * pad = {}) is smaller than {} = {}", fn, in_name, padded,
                        k_name, k));
  return (padded - k) / stride + 1;
}

// Shared by gemm and gemm_abs: validates, then sums term(a, b) over k.
template <typename Term>
std::vector<double> gemm_sum(const char* fn, int64_t M_, int64_t N_, int64_t K_, std::span<const float> a,
                             std::span<const float> b, Term term) {
  const size_t M = dim(fn, "M", M_), N = dim(fn, "N", N_), K = dim(fn, "K", K_);
  expect_size(fn, "a", a.size(), product(fn, "a", {M, K}), "[M][K]");
  expect_size(fn, "b", b.size(), product(fn, "b", {K, N}), "[K][N]");
  std::vector<double> c(product(fn, "c", {M, N}), 0.0);
  for (size_t m = 0; m < M; ++m)
    for (size_t n = 0; n < N; ++n) {
      double s = 0;
      for (size_t k = 0; k < K; ++k) s += term(double(a[m * K + k]) * double(b[k * N + n]));
      c[m * N + n] = s;
    }
  return c;
}

// Shared by conv2d and conv2d_abs: validates, then sums term(x * w) (and term(bias)) per output.
template <typename Term>
std::vector<double> conv_sum(const char* fn, int64_t N_, int64_t C_, int64_t H_, int64_t W_, int64_t F_, int64_t KH_,
                             int64_t KW_, int64_t sh_, int64_t sw_, int64_t ph_, int64_t pw_, std::span<const float> x,
                             std::span<const float> w, std::span<const float> bias, Term term) {
  const size_t N = dim(fn, "N", N_), C = dim(fn, "C", C_), H = dim(fn, "H", H_), W = dim(fn, "W", W_);
  const size_t F = dim(fn, "F", F_), KH = dim(fn, "KH", KH_, 1), KW = dim(fn, "KW", KW_, 1);
  const size_t sh = dim(fn, "stride_h", sh_, 1), sw = dim(fn, "stride_w", sw_, 1);
  const size_t ph = dim(fn, "pad_h", ph_), pw = dim(fn, "pad_w", pw_);
  product(fn, "the padded input", {H + 2 * ph, W + 2 * pw});  // refuses absurd paddings before using them
  expect_size(fn, "x", x.size(), product(fn, "x", {N, C, H, W}), "[N][C][H][W]");
  expect_size(fn, "w", w.size(), product(fn, "w", {F, C, KH, KW}), "[F][C][KH][KW]");
  if (!bias.empty()) expect_size(fn, "bias", bias.size(), F, "[F] (or empty)");
  const size_t OH = conv_out(fn, "H", H, "KH", KH, sh, ph), OW = conv_out(fn, "W", W, "KW", KW, sw, pw);
  std::vector<double> y(product(fn, "y", {N, F, OH, OW}), 0.0);
  for (size_t n = 0; n < N; ++n)
    for (size_t f = 0; f < F; ++f)
      for (size_t oh = 0; oh < OH; ++oh)
        for (size_t ow = 0; ow < OW; ++ow) {
          double s = 0;
          for (size_t c = 0; c < C; ++c)
            for (size_t kh = 0; kh < KH; ++kh) {
              // Input row oh*sh - ph + kh, in unsigned arithmetic: rows above the top wrap to huge values.
              const size_t ih = oh * sh + kh - ph;
              if (oh * sh + kh < ph || ih >= H) continue;  // zero padding
              for (size_t kw = 0; kw < KW; ++kw) {
                const size_t iw = ow * sw + kw - pw;
                if (ow * sw + kw < pw || iw >= W) continue;
                s += term(double(x[((n * C + c) * H + ih) * W + iw]) * double(w[((f * C + c) * KH + kh) * KW + kw]));
              }
            }
          if (!bias.empty()) s += term(double(bias[f]));
          y[((n * F + f) * OH + oh) * OW + ow] = s;
        }
  return y;
}

double identity(double t) { return t; }
double magnitude(double t) { return std::fabs(t); }

// Stable softmax of n scores in place (p[j] = exp(s[j] - max) / sum).
void softmax_in_place(double* s, size_t n) {
  if (n == 0) return;
  double mx = s[0];
  for (size_t j = 1; j < n; ++j) mx = std::max(mx, s[j]);  // a NaN score makes the sum, so the row, NaN
  double sum = 0;
  for (size_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
  for (size_t j = 0; j < n; ++j) s[j] /= sum;
}

}  // namespace

std::vector<double> gemm(int64_t M, int64_t N, int64_t K, std::span<const float> a, std::span<const float> b) {
  return gemm_sum("gemm", M, N, K, a, b, identity);
}

std::vector<double> gemm_abs(int64_t M, int64_t N, int64_t K, std::span<const float> a, std::span<const float> b) {
  return gemm_sum("gemm_abs", M, N, K, a, b, magnitude);
}

std::vector<double> softmax_rows(int64_t R_, int64_t C_, std::span<const float> x) {
  const char* fn = "softmax_rows";
  const size_t R = dim(fn, "R", R_), C = dim(fn, "C", C_);
  expect_size(fn, "x", x.size(), product(fn, "x", {R, C}), "[R][C]");
  std::vector<double> y(x.begin(), x.end());
  for (size_t r = 0; r < R; ++r) softmax_in_place(y.data() + r * C, C);
  return y;
}

std::vector<double> layernorm_rows(int64_t R_, int64_t D_, std::span<const float> x, std::span<const float> gamma,
                                   std::span<const float> beta, double eps) {
  const char* fn = "layernorm_rows";
  const size_t R = dim(fn, "R", R_), D = dim(fn, "D", D_, 1);
  expect_size(fn, "x", x.size(), product(fn, "x", {R, D}), "[R][D]");
  expect_size(fn, "gamma", gamma.size(), D, "[D]");
  expect_size(fn, "beta", beta.size(), D, "[D]");
  if (!(eps >= 0)) invalid(fmt::format("ref::{}: eps = {} must be >= 0", fn, eps));
  std::vector<double> y(R * D);
  for (size_t r = 0; r < R; ++r) {
    const float* row = x.data() + r * D;
    double sum = 0;
    for (size_t d = 0; d < D; ++d) sum += row[d];
    const double mean = sum / double(D);
    double ss = 0;
    for (size_t d = 0; d < D; ++d) ss += (row[d] - mean) * (row[d] - mean);
    const double inv = 1 / std::sqrt(ss / double(D) + eps);
    for (size_t d = 0; d < D; ++d) y[r * D + d] = (row[d] - mean) * inv * gamma[d] + beta[d];
  }
  return y;
}

std::vector<double> rmsnorm_rows(int64_t R_, int64_t D_, std::span<const float> x, std::span<const float> gamma,
                                 double eps) {
  const char* fn = "rmsnorm_rows";
  const size_t R = dim(fn, "R", R_), D = dim(fn, "D", D_, 1);
  expect_size(fn, "x", x.size(), product(fn, "x", {R, D}), "[R][D]");
  expect_size(fn, "gamma", gamma.size(), D, "[D]");
  if (!(eps >= 0)) invalid(fmt::format("ref::{}: eps = {} must be >= 0", fn, eps));
  std::vector<double> y(R * D);
  for (size_t r = 0; r < R; ++r) {
    const float* row = x.data() + r * D;
    double ss = 0;
    for (size_t d = 0; d < D; ++d) ss += double(row[d]) * double(row[d]);
    const double inv = 1 / std::sqrt(ss / double(D) + eps);
    for (size_t d = 0; d < D; ++d) y[r * D + d] = row[d] * inv * gamma[d];
  }
  return y;
}

std::vector<double> attention(int64_t H_, int64_t Sq_, int64_t Sk_, int64_t dh_, int64_t dv_, std::span<const float> q,
                              std::span<const float> k, std::span<const float> v, double scale, bool causal) {
  const char* fn = "attention";
  const size_t H = dim(fn, "H", H_), Sq = dim(fn, "Sq", Sq_), Sk = dim(fn, "Sk", Sk_, 1);
  const size_t dh = dim(fn, "dh", dh_), dv = dim(fn, "dv", dv_);
  if (causal && Sq != Sk)
    invalid(fmt::format("ref::{}: causal needs Sq == Sk (query i sees keys 0..i), got Sq = {}, Sk = {}", fn, Sq, Sk));
  expect_size(fn, "q", q.size(), product(fn, "q", {H, Sq, dh}), "[H][Sq][dh]");
  expect_size(fn, "k", k.size(), product(fn, "k", {H, Sk, dh}), "[H][Sk][dh]");
  expect_size(fn, "v", v.size(), product(fn, "v", {H, Sk, dv}), "[H][Sk][dv]");
  std::vector<double> o(product(fn, "o", {H, Sq, dv}), 0.0);
  std::vector<double> p(Sk);
  for (size_t h = 0; h < H; ++h)
    for (size_t i = 0; i < Sq; ++i) {
      const size_t visible = causal ? i + 1 : Sk;  // keys j > i are masked: weight exactly 0
      const float* qi = q.data() + (h * Sq + i) * dh;
      for (size_t j = 0; j < visible; ++j) {
        const float* kj = k.data() + (h * Sk + j) * dh;
        double s = 0;
        for (size_t d = 0; d < dh; ++d) s += double(qi[d]) * double(kj[d]);
        p[j] = scale * s;
      }
      softmax_in_place(p.data(), visible);
      double* oi = o.data() + (h * Sq + i) * dv;
      for (size_t j = 0; j < visible; ++j) {
        const float* vj = v.data() + (h * Sk + j) * dv;
        for (size_t e = 0; e < dv; ++e) oi[e] += p[j] * vj[e];
      }
    }
  return o;
}

std::vector<double> conv2d(int64_t N, int64_t C, int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
                           int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, std::span<const float> x,
                           std::span<const float> w, std::span<const float> bias) {
  return conv_sum("conv2d", N, C, H, W, F, KH, KW, stride_h, stride_w, pad_h, pad_w, x, w, bias, identity);
}

std::vector<double> conv2d_abs(int64_t N, int64_t C, int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
                               int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                               std::span<const float> x, std::span<const float> w, std::span<const float> bias) {
  return conv_sum("conv2d_abs", N, C, H, W, F, KH, KW, stride_h, stride_w, pad_h, pad_w, x, w, bias, magnitude);
}

std::vector<double> transpose(int64_t R_, int64_t C_, std::span<const float> x) {
  const char* fn = "transpose";
  const size_t R = dim(fn, "R", R_), C = dim(fn, "C", C_);
  expect_size(fn, "x", x.size(), product(fn, "x", {R, C}), "[R][C]");
  std::vector<double> y(R * C);
  for (size_t r = 0; r < R; ++r)
    for (size_t c = 0; c < C; ++c) y[c * R + r] = x[r * C + c];
  return y;
}

std::vector<double> elementwise(isa::ActFunc f, std::span<const float> x) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = activation(f, double(x[i]));
  return y;
}

Compare compare(std::string name, std::span<const int64_t> shape, std::span<const float> got,
                std::span<const double> want, std::function<double(size_t index, double want)> allowed) {
  const char* fn = "compare";
  size_t count = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) invalid(fmt::format("ref::{}({}): shape[{}] = {} must be >= 0", fn, name, d, shape[d]));
    if (__builtin_mul_overflow(count, size_t(shape[d]), &count))
      invalid(fmt::format("ref::{}({}): the shape's element count overflows", fn, name));
  }
  const auto shape_text = [&] {
    std::string s = "[";
    for (size_t d = 0; d < shape.size(); ++d) s += fmt::format("{}{}", d ? ", " : "", shape[d]);
    return s + "]";
  };
  if (got.size() != count)
    invalid(fmt::format("ref::{}({}): got has {} elements, the shape {} needs {}", fn, name, got.size(), shape_text(),
                        count));
  if (want.size() != count)
    invalid(fmt::format("ref::{}({}): want has {} elements, the shape {} needs {}", fn, name, want.size(), shape_text(),
                        count));
  Compare c;
  for (size_t i = 0; i < count; ++i) {
    const double g = got[i], w = want[i];
    const double tol = allowed ? allowed(i, w) : 0.0;
    if (!(tol >= 0))
      invalid(fmt::format("ref::{}({}): allowed({}, {}) returned {}, must be >= 0", fn, name, i, w, tol));
    ++c.checked;
    bool ok;
    double ratio;  // |g - w| / tol, for worst
    if (std::isnan(g) || std::isnan(w)) {
      ok = false, ratio = std::numeric_limits<double>::infinity();
    } else if (g == w) {  // also the same infinity, where g - w would be NaN
      ok = true, ratio = 0;
    } else {
      const double err = std::fabs(g - w);
      ok = err <= tol;
      if (ok) {
        ratio = err / tol;                 // tol > 0 here; <= 1 as division is monotonic
        if (std::isnan(ratio)) ratio = 1;  // inf / inf
      } else {
        ratio = tol > 0 ? err / tol : std::numeric_limits<double>::infinity();
        if (!(ratio > 1)) ratio = std::nextafter(1.0, 2.0);  // keep "worst > 1 exactly when a mismatch"
      }
    }
    c.worst = std::max(c.worst, ratio);
    if (ok) continue;
    if (c.mismatches++ == 0) {
      std::string where = name;
      size_t rest = i, stride = count;
      for (size_t d = 0; d < shape.size(); ++d) {
        stride /= size_t(shape[d]);
        where += fmt::format("[{}]", rest / stride);
        rest %= stride;
      }
      c.first_bad = fmt::format("{}: got {}, want {}, allowed {}", where, got[i], w, tol);
    }
  }
  return c;
}

}  // namespace tcemu::ref
