// fp64 references for the kernels and engines whose results follow the host's libm (docs/numerics.md):
// written from the functions' mathematical definitions, independently of the emulator, for tests and the
// CLI's result checks.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "tcemu/isa.h"

namespace tcemu::ref {

// f(u) in fp64, with its limits at the infinities where the formula would give inf/inf or inf*0.
double activation(isa::ActFunc f, double u);

// The documented accuracy of ScalarE's f (docs/numerics.md): |out - f(u)| <= ulps * 2^-23 * |f(u)| +
// max(abs, 2^-126); ulps == 0 means bit-exact.
struct Tolerance {
  double ulps = 0, abs = 0;
  double allowed(double want) const;  // the bound above for a reference value `want`
};
Tolerance activation_tolerance(isa::ActFunc f);

// Checks a linear layer's output yT[N x M] = f(W^T xT + b) (+ rT) as the device computes it: the matmul
// is bit-exact (num::golden_gemm, K in chunks of `k_chunk`), the bias add is one fp32 addition, f is
// compared with fp64 within its tolerance, and the residual add adds one fp32 rounding. Inputs are the
// fp32 values given to the runtime (xT and w are rounded to bf16 here, as the runtime binds them); rT may
// be empty (no residual).
struct Check {
  uint64_t checked = 0, mismatches = 0;
  double worst = 0;       // largest error as a fraction of its tolerance
  std::string first_bad;  // "yT[n][m]: got .., want .. +- .." for the first mismatch
};
Check check_linear(int M, int N, int K, int k_chunk, isa::ActFunc f, std::span<const float> xT,
                   std::span<const float> w, std::span<const float> b, std::span<const float> rT,
                   std::span<const float> yT);

}  // namespace tcemu::ref
