// Attention schedule (QT = array columns = queries per tile, KB = array rows = keys per block, NB = fp32 per
// PSUM bank; trn1: 128, 128, 512). Per head h and query tile u (QT queries, Sv visible keys: Sk, or causal
// the keys up to the tile's last query rounded up to a key block):
//
//   A  TensorE   scores S[queries x keys] in PSUM, queries on partitions: matmul(stationary qT[dh x QT],
//                moving kT[dh x <= NB keys]) per PSUM bank (dh > rows: the dh chunks accumulate); causal:
//                one more matmul adds the mask (0 / -2^100) to the diagonal block (identity stationary)
//   B  VectorE   m = max_j S (tensor_reduce over the whole row, which may span banks); negm = -scale * m
//      ScalarE   E = exp(scale * S + negm) -> SBUF f32, with l = sum_j E in the same instruction (acc);
//                r = 1 / l
//   C  ScalarE   P = E * r -> bf16 (normalised before the transpose: 1/l is per query, a per-partition
//                scalar here, but a per-free-element one in oT)
//      VectorE   P^T: transpose of the 32 x 32 blocks in place (transpose), then per key block SBUF->SBUF
//      DMA       copies (one per 32-key sub-block) move block (g, h) to (h, g) in 64-byte runs into
//                pT[keys x (key block, group query)]
//                (AttentionTranspose::kTensor instead: pe_transpose per block into PSUM, VectorE copies)
//   D  TensorE   per group of up to NB queries (NB / QT tiles): oT[dh x queries] = sum over key blocks b of
//                matmul(stationary v[b keys x dh], moving pT[b keys x group queries]) accumulated in PSUM,
//                so the PV matmuls stream NB columns each (n >= rows + cols - 1 + rows: one column per cycle);
//                the kernel's last group tile by tile, as each tile's P^T is ready (shorter drain)
//   E  ScalarE + VectorE (half the columns each): oT PSUM -> SBUF, a few tiles later; DMA -> oT rows
//
// Why the transpose is not on TensorE by default: a pe_transpose streams only QT identity columns, and a
// stream of n = 128 matmuls runs at one per (n + rows + cols - 1 + rows) / 2 = 255 cycles on trn1 (the
// shadow bank: docs/isa.md, matmul timing), so the transposes would cost TensorE about 2 S cycles per query
// tile on top of the 2 S of the QK^T and PV matmuls (about 50% utilisation at best). VectorE's transpose
// costs it S cycles and the block moves use the DMA queues; VectorE and ScalarE then carry about
// 2 S + 250 cycles each per tile against TensorE's 2 S, and bound the kernel.
//
// Rows longer than a PSUM bank (Sk > NB). The softmax needs the row's max before its exps, so the scores of
// a tile must be held (or computed twice). Plans, best first, the first whose buffers fit:
//   kRows       the row as one PSUM tile over ceil(Sk / NB) banks, up to four rows in flight (at least two):
//               one max and one exp instruction per row;
//   kBanks      a ring of single banks (more than a row's worth), each row's chunks taken in turn, a max and
//               an exp per chunk (the next row's first chunks are computed while this row's last ones are
//               still read; the chunks' maxima and sums are combined in SBUF columns);
//   kRows x 1   one row in flight (QK^T of the next row waits for this row's exps);
//   kRecompute  bank-sized chunks computed twice: pass 1 for each chunk's max, pass 2 again for its exp
//               with the row max. It costs TensorE S more cycles per tile, as copying the scores out of PSUM
//               would cost VectorE or ScalarE; an online (flash) softmax would rescale oT, which in this
//               layout is a different factor per free element (queries), not a per-partition scalar.
// trn1 (8 banks, two for the oT accumulators): kRows with two or more rows up to Sk = 1536, kBanks up to
// 2560, one row up to 3072, recompute beyond (up to the SBUF limit, about 7000 keys).
//
// Pipelining: the stages are emitted skewed (A runs up to four tiles ahead, B one tile ahead of C), in the
// order each in-order engine should run them (ScalarE: norm(u), exp(u+1); VectorE: max(u+1), transpose(u));
// every buffer is a ring and the builder turns reuse into semaphore waits, but program order is the meaning:
// a slot is reused only after its last reader has been emitted. q, k and v load up to two heads ahead.
// When fewer than two rows of scores can be ahead, a group's PV matmuls are emitted in slices of key
// blocks, one per following tile, so that TensorE interleaves them with the next tiles' QK^T instead of
// holding those behind the whole PV (the vector engines would wait). Causal: every other head runs its
// tiles backwards (row lengths stay similar from one tile to the next, so the two engines' halves of
// neighbouring tiles stay balanced).
#include "tcemu/kb/attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <vector>

#include "tcemu/error.h"

namespace tcemu::kb {

namespace {

using isa::ActFunc;
using isa::AluOp;
using isa::DType;
using isa::Space;

constexpr size_t kEvacDelay = 3;

// Where a tile's scores live (see the top of the file).
enum class Scores {
  kRows,       // a PSUM tile per row (several banks when Sk > NB), a ring of score_bufs rows
  kBanks,      // a ring of score_bufs single banks, a row's chunks taken in turn; each chunk reduced separately
  kRecompute,  // a ring of score_bufs banks, the row's chunks computed twice (max, then exp)
};

struct Plan {
  uint64_t G = 1;     // query tiles per PV group
  int head_bufs = 2;  // q/k/v ring depth (2: the next head loads while this one runs)
  Scores scores = Scores::kRows;
  int score_bufs = 2;  // rows (kRows) or banks in the ring
};

struct Chunk {
  Tile view;  // nq partitions x len scores in PSUM
  uint64_t kb0, len;
};

struct Unit {
  uint64_t h, t, q0, nq, sv, gi, tg;
  bool last_in_group;
};

struct Group {
  uint64_t h, t0, nt, qg0, nqg;
};

class Attention {
 public:
  Attention(Kernel& k, const Dram& qT, const Dram& kT, const Dram& v, const Dram& oT, const AttentionOptions& o)
      : k_(k), cfg_(k.config()), qT_(qT), kT_(kT), v_(v), oT_(oT), o_(o) {
    auto fail = [&](const std::string& why) {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("attention in kernel '{}': {}", k.name(), why));
    };
    if (qT.shape.size() != 2 || kT.shape.size() != 2 || v.shape.size() != 2 || oT.shape.size() != 2)
      fail("qT, kT, v and oT must be matrices");
    if (o.heads < 1) fail(fmt::format("heads must be positive, got {}", o.heads));
    H_ = uint64_t(o.heads);
    HD_ = uint64_t(qT.shape[0]);
    Sq_ = uint64_t(qT.shape[1]);
    Sk_ = uint64_t(kT.shape[1]);
    if (HD_ == 0 || Sq_ == 0 || Sk_ == 0 || HD_ % H_ != 0)
      fail(fmt::format("qT [{}, {}]: rows must be a positive multiple of heads ({}) and there must be queries",
                       qT.shape[0], qT.shape[1], H_));
    if (uint64_t(kT.shape[0]) != HD_ || uint64_t(v.shape[0]) != Sk_ || uint64_t(v.shape[1]) != HD_ ||
        uint64_t(oT.shape[0]) != HD_ || uint64_t(oT.shape[1]) != Sq_)
      fail(fmt::format(
          "shapes qT [{}, {}], kT [{}, {}], v [{}, {}], oT [{}, {}] do not match qT [H*dh, Sq], kT "
          "[H*dh, Sk], v [Sk, H*dh], oT [H*dh, Sq]",
          qT.shape[0], qT.shape[1], kT.shape[0], kT.shape[1], v.shape[0], v.shape[1], oT.shape[0], oT.shape[1]));
    if (o.causal && Sq_ != Sk_) fail(fmt::format("causal attention needs Sq == Sk, got {} and {}", Sq_, Sk_));
    dh_ = HD_ / H_;
    scale_ = o.scale.value_or(float(1.0 / std::sqrt(double(dh_))));
    QT_ = uint64_t(cfg_.cols);
    KB_ = uint64_t(cfg_.rows);
    NB_ = cfg_.psum_bank_bytes / 4;
    DC_ = std::min<uint64_t>(cfg_.rows, cfg_.cols);
    if (QT_ > uint64_t(cfg_.psum_partitions) || KB_ > uint64_t(cfg_.sbuf_partitions) || NB_ % QT_ != 0 || QT_ > NB_)
      fail(fmt::format("config {} is not supported (array {} x {}, {} partitions, {} fp32 per PSUM bank)", cfg_.name,
                       cfg_.rows, cfg_.cols, cfg_.sbuf_partitions, NB_));
    dc_ = ceil_div(dh_, DC_);
    Bt_ = std::min<uint64_t>(32, QT_);
    if (KB_ % Bt_ != 0 || QT_ % Bt_ != 0)
      fail(fmt::format("config {}: array rows and columns must be multiples of {}", cfg_.name, Bt_));
    nqt_ = ceil_div(Sq_, QT_);
    nkb_ = ceil_div(Sk_, KB_);
    pb_ = cfg_.sbuf_partition_bytes;
  }

  void run() {
    // Plans from the fastest down; the first whose tiles all fit is used. The last one's capacity error
    // (naming the tile that does not fit) is the kernel's.
    std::vector<Plan> plans;
    uint64_t G0 = NB_ / QT_;
    while (G0 > 1 && G0 / 2 >= nqt_) G0 /= 2;
    // Scores: whole rows with at least two in flight; else a ring of banks holding at least a row (the next
    // row's first chunks are computed while this row's last ones are still read); else one row; else
    // recompute.
    const int nch = int(ceil_div(Sk_, NB_));
    for (uint64_t G = G0; G >= 1; G /= 2)
      for (int hb : {3, 2, 1}) {
        if (uint64_t(hb) > H_) continue;
        for (int nsb : {4, 3, 2}) plans.push_back({G, hb, Scores::kRows, nsb});
        if (nch > 1)
          for (int banks = cfg_.psum_banks; banks > nch; --banks) plans.push_back({G, hb, Scores::kBanks, banks});
        plans.push_back({G, hb, Scores::kRows, 1});
        plans.push_back({G, hb, Scores::kRecompute, 2});
        plans.push_back({G, hb, Scores::kRecompute, 1});
      }
    for (size_t i = 0;; ++i) {
      Kernel::Scope scope(k_);
      try {
        allocate(plans[i]);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kCapacity && i + 1 < plans.size()) continue;
        throw;
      }
      emit();
      return;
    }
  }

 private:
  // ---- plan and buffers ----
  void allocate(const Plan& p) {
    p_ = p;
    QG_ = p.G * QT_;
    units_.clear();
    groups_.clear();
    // Causal: every other head runs its tiles backwards, so that consecutive tiles have similar row lengths
    // across head boundaries (ScalarE and VectorE work on neighbouring tiles at the same time).
    for (uint64_t h = 0; h < H_; ++h) {
      const bool rev = o_.causal && h % 2 == 1;
      std::vector<uint64_t> starts;
      for (uint64_t t0 = 0; t0 < nqt_; t0 += p.G) starts.push_back(t0);
      if (rev) std::reverse(starts.begin(), starts.end());
      for (uint64_t t0 : starts) {
        Group g{h, t0, std::min(p.G, nqt_ - t0), t0 * QT_, 0};
        g.nqg = std::min(QG_, Sq_ - g.qg0);
        for (uint64_t j = 0; j < g.nt; ++j) {
          const uint64_t t = rev ? t0 + g.nt - 1 - j : t0 + j;
          units_.push_back(
              {h, t, t * QT_, std::min(QT_, Sq_ - t * QT_), sv_of(t), groups_.size(), t - t0, j + 1 == g.nt});
        }
        groups_.push_back(g);
      }
    }
    npmax_ = ceil_div(Sk_, NB_);
    const uint64_t skp = round_up(Sk_, Bt_);
    const bool vdma = o_.transpose == AttentionTranspose::kVectorDma;
    reset();
    // PSUM first (multi-bank score rows need whole banks), then SBUF.
    s_.emplace(k_, "attn_scores", Space::kPsum, DType::kF32, QT_, p.scores == Scores::kRows ? Sk_ : NB_, p.score_bufs);
    chunks_.assign(units_.size(), {});
    rows_ahead_ = p.scores == Scores::kRows    ? uint64_t(p.score_bufs)
                  : p.scores == Scores::kBanks ? uint64_t(p.score_bufs) / ceil_div(Sk_, NB_)
                                               : 0;
    owner_.assign(size_t(p.score_bufs), SIZE_MAX);
    cursor_ = 0;
    oacc_.emplace(k_, "attn_oacc", Space::kPsum, DType::kF32, DC_, dc_ * QG_, 2);
    if (!vdma) psT_.emplace(k_, "attn_pT_psum", Space::kPsum, DType::kF32, KB_, NB_, 2);
    const uint32_t dp = uint32_t(std::min(dh_, DC_));
    q_.emplace(k_, "attn_qT", Space::kSbuf, DType::kBf16, dp, dc_ * Sq_, p.head_bufs);
    kt_.emplace(k_, "attn_kT", Space::kSbuf, DType::kBf16, dp, dc_ * Sk_, p.head_bufs);
    v_t_.emplace(k_, "attn_v", Space::kSbuf, DType::kBf16, uint32_t(std::min(Sk_, KB_)), nkb_ * dh_, p.head_bufs);
    pT_.emplace(k_, "attn_pT", Space::kSbuf, DType::kBf16, KB_, nkb_ * QG_, 2);
    e_.emplace(k_, "attn_exp", Space::kSbuf, DType::kF32, QT_, Sk_, 2);
    p_t_.emplace(k_, "attn_p", Space::kSbuf, DType::kBf16, QT_, skp, 2);
    if (vdma) p32_.emplace(k_, "attn_p_blockT", Space::kSbuf, DType::kBf16, QT_, skp, 3);
    o_t_.emplace(k_, "attn_o", Space::kSbuf, DType::kF32, DC_, dc_ * QG_, 2);
    st_.emplace(k_, "attn_stats", Space::kSbuf, DType::kF32, QT_, 4 + 2 * npmax_, 4);
    if (o_.causal) {
      mw_ = QT_ + KB_;
      ident_ = k_.sbuf("attn_identity", DType::kBf16, uint32_t(QT_), QT_);
      mask_ = k_.sbuf("attn_mask", DType::kBf16, uint32_t(QT_), mw_);
    }
  }

  void reset() {
    s_.reset(), oacc_.reset(), psT_.reset(), q_.reset(), kt_.reset(), v_t_.reset(), pT_.reset(), e_.reset();
    p_t_.reset(), p32_.reset(), o_t_.reset(), st_.reset();
  }

  // ---- stages ----
  void load_head(uint64_t h) {
    // kT first, then qT a query tile at a time, then v, in pieces of >= 8 KiB spread over the queues: the
    // first head's loads are the kernel's startup latency, and its first QK^T needs only kT and one q tile
    // (up to 12 + 4 pieces: one wave over 16 queues).
    auto pieces = [](const Ap& a, uint64_t most) {
      return DmaOpts{{}, int(std::clamp<uint64_t>(a.bytes() / 8192, 1, most))};
    };
    for (uint64_t c = 0; c < dc_; ++c) {
      const uint64_t r0 = h * dh_ + c * DC_, dhc = std::min(DC_, dh_ - c * DC_);
      const Ap kd = (*kt_)[h].parts(0, uint32_t(dhc)).cols(c * Sk_, Sk_).ap();
      k_.dma(kd, kT_.rows(r0, dhc, 0, Sk_), pieces(kd, 12));
    }
    for (uint64_t t = 0; t < nqt_; ++t)
      for (uint64_t c = 0; c < dc_; ++c) {
        const uint64_t r0 = h * dh_ + c * DC_, dhc = std::min(DC_, dh_ - c * DC_);
        const uint64_t q0 = t * QT_, nq = std::min(QT_, Sq_ - q0);
        const Ap qd = (*q_)[h].parts(0, uint32_t(dhc)).cols(c * Sq_ + q0, nq).ap();
        k_.dma(qd, qT_.rows(r0, dhc, q0, nq), pieces(qd, 4));
      }
    // v[j][h*dh + e] -> partition j % KB, element (j / KB) * dh + e: whole key blocks in one copy, then the rest.
    const Tile& vt = (*v_t_)[h];
    const uint64_t full = Sk_ / KB_, rest = Sk_ % KB_, e = elem_bytes(DType::kBf16);
    if (full > 0) {
      const Ap vd{vt.addr(), DType::kBf16, dh_, {{KB_, pb_}, {full, dh_ * e}}, "tile 'attn_v'"};
      k_.dma(vd, v_.ap(h * dh_, dh_, {{KB_, HD_}, {full, KB_ * HD_}}), pieces(vd, 16));
    }
    if (rest > 0)
      k_.dma(Ap{vt.addr(0, full * dh_), DType::kBf16, dh_, {{rest, pb_}}, "tile 'attn_v'"},
             v_.ap(full * KB_ * HD_ + h * dh_, dh_, {{rest, HD_}}));
  }

  // Scores of unit u for keys [kb0, kb0 + len) into `out` (nq partitions; element 0 = key kb0). Causal: the
  // keys in the unit's diagonal range [q0, sv) get the mask added in PSUM by one more matmul, stationary the
  // identity and moving the mask (out[c][n] = sum_r I[r][c] mask[r][n] = mask[c][n]): TensorE has the slack
  // that VectorE (2 cycles per element for a tensor_tensor add) does not.
  void qk(const Unit& u, const Tile& out, uint64_t kb0, uint64_t len) {
    const uint32_t nq = uint32_t(u.nq);
    for (uint64_t kk = kb0; kk < kb0 + len; kk += NB_) {
      const uint64_t nk = std::min(NB_, kb0 + len - kk);
      for (uint64_t c = 0; c < dc_; ++c) {
        const uint32_t dhc = uint32_t(std::min(DC_, dh_ - c * DC_));
        k_.matmul(out.cols(kk - kb0, nk), (*q_)[u.h].parts(0, dhc).cols(c * Sq_ + u.q0, nq),
                  (*kt_)[u.h].parts(0, dhc).cols(c * Sk_ + kk, nk), c > 0);
      }
      const uint64_t a = std::max(u.q0, kk), b = std::min(u.sv, kk + nk);
      if (o_.causal && a < b)
        k_.matmul(out.cols(a - kb0, b - a), ident_.parts(0, nq).cols(0, nq), mask_.parts(0, nq).cols(a - u.q0, b - a),
                  true);
    }
  }

  // Whether A(i) may take its score buffers: their previous users' B (the last readers) must have been
  // emitted (program order is the meaning).
  bool scores_free(size_t i, size_t next_b) const {
    if (p_.scores == Scores::kRecompute) return true;
    const size_t n = p_.scores == Scores::kRows ? 1 : size_t(ceil_div(units_[i].sv, NB_));
    for (size_t j = 0; j < n; ++j) {
      const size_t o = owner_[(cursor_ + j) % owner_.size()];
      if (o != SIZE_MAX && o >= next_b) return false;
    }
    return true;
  }

  // A: the scores of unit i into its buffers (kRows: one row; kBanks: one bank per chunk of NB keys).
  void stage_a(size_t i) {
    const Unit& u = units_[i];
    const uint32_t nq = uint32_t(u.nq);
    if (p_.scores == Scores::kRecompute) return;
    const uint64_t step = p_.scores == Scores::kRows ? u.sv : NB_;
    for (uint64_t kb0 = 0; kb0 < u.sv; kb0 += step) {
      const uint64_t len = std::min(step, u.sv - kb0);
      owner_[cursor_ % owner_.size()] = i;
      const Tile view = (*s_)[cursor_++].parts(0, nq).cols(0, len);
      qk(u, view, kb0, len);
      chunks_[i].push_back({view, kb0, len});
    }
  }

  // B: row statistics and exp: E = exp(scale * S - scale * m), l = sum E, r = 1 / l (stats columns 0..3;
  // per-chunk maxima and sums from column 4 when the row has several chunks).
  void stage_b(size_t i) {
    const Unit& u = units_[i];
    const uint32_t nq = uint32_t(u.nq);
    const Tile st = (*st_)[i].parts(0, nq);
    const Tile ex = (*e_)[i].parts(0, nq);
    const bool again = p_.scores == Scores::kRecompute;
    if (again)  // pass 1 of the recompute: each chunk's scores, for its max only
      for (uint64_t kb0 = 0; kb0 < u.sv; kb0 += NB_) {
        const uint64_t len = std::min(NB_, u.sv - kb0);
        const Tile view = (*s_)[cursor_++].parts(0, nq).cols(0, len);
        qk(u, view, kb0, len);
        chunks_[i].push_back({view, kb0, len});
      }
    const std::vector<Chunk>& ch = chunks_[i];
    const uint64_t n = ch.size();
    for (uint64_t c = 0; c < n; ++c) k_.tensor_reduce(n > 1 ? st.col(4 + c) : st.col(0), ch[c].view, AluOp::kMax);
    if (n > 1) k_.tensor_reduce(st.col(0), st.cols(4, n), AluOp::kMax);
    k_.tensor_scalar(st.col(1), st.col(0), AluOp::kMul, -scale_);
    for (uint64_t c = 0; c < n; ++c) {  // recompute: pass 2 computes the same scores again
      Tile view = ch[c].view;
      if (again) {
        view = (*s_)[cursor_++].parts(0, nq).cols(0, ch[c].len);
        qk(u, view, ch[c].kb0, ch[c].len);
      }
      k_.activation(ex.cols(ch[c].kb0, ch[c].len), view, ActFunc::kExp,
                    {scale_, st.col(1), n > 1 ? st.col(4 + npmax_ + c) : st.col(2)});
    }
    if (n > 1) {  // l = sum of the chunks' sums, on ScalarE (the accumulate of an in-place identity): VectorE,
                  // which runs ahead on the next tile, would wait here for these exps
      const Tile ls = st.cols(4 + npmax_, n);
      ActOpts sum;
      sum.acc = st.col(2);
      k_.activation(ls, ls, ActFunc::kIdentity, sum);
    }
    k_.activation(st.col(3), st.col(2), ActFunc::kReciprocal);
    chunks_[i].clear();
  }

  // P = E * r, rounded to bf16 once.
  void stage_c_norm(size_t i) {
    const Unit& u = units_[i];
    const uint32_t nq = uint32_t(u.nq);
    ActOpts by_r;
    by_r.scale = (*st_)[i].parts(0, nq).col(3);
    k_.activation((*p_t_)[i].parts(0, nq).cols(0, u.sv), (*e_)[i].parts(0, nq).cols(0, u.sv), ActFunc::kIdentity, by_r);
  }

  // P^T into the group's pT: element (key j, query i of the group) at partition j % KB, element
  // (j / KB) * QG + i.
  void stage_c_transpose(size_t i) {
    const Unit& u = units_[i];
    const Tile& P = (*p_t_)[i];
    const Tile& pT = (*pT_)[u.gi];
    const uint64_t kbs = ceil_div(u.sv, KB_);
    if (o_.transpose == AttentionTranspose::kVectorDma) {
      const uint64_t np = round_up(u.nq, Bt_), svp = round_up(u.sv, Bt_), ng = np / Bt_, e = 2;
      const Tile& T = (*p32_)[i];
      // Rows nq..np and columns sv..svp hold stale values: they land on padding (queries past the group's
      // valid columns, keys past the block's valid rows) that the PV matmuls never read.
      k_.transpose32(T.parts(0, uint32_t(np)).cols(0, svp), P.parts(0, uint32_t(np)).cols(0, svp));
      for (uint64_t b = 0; b < kbs; ++b) {
        const uint64_t nh = ceil_div(std::min(KB_, u.sv - b * KB_), Bt_);
        // After the block transpose, partition g*Bt + r, element b*KB + hh*Bt + c holds P[g*Bt + c][b*KB +
        // hh*Bt + r], which belongs at partition hh*Bt + r, element b*QG + tg*QT + g*Bt + c.
        const Ap src{T.addr(0, b * KB_),
                     DType::kBf16,
                     Bt_,
                     {{Bt_, pb_}, {ng, Bt_ * pb_}, {nh, Bt_ * e}},
                     "tile 'attn_p_blockT'"};
        const Ap dst{pT.addr(0, b * QG_ + u.tg * QT_),
                     DType::kBf16,
                     Bt_,
                     {{Bt_, pb_}, {ng, Bt_ * e}, {nh, Bt_ * pb_}},
                     "tile 'attn_pT'"};
        k_.dma(dst, src, {{}, int(nh)});  // one copy per 32-key sub-block: short latency, several queues
      }
    } else {
      const uint64_t slots = NB_ / QT_;
      Tile ps;
      for (uint64_t b = 0; b < kbs; ++b) {
        const uint64_t slot = b % slots, nk = std::min(KB_, u.sv - b * KB_);
        if (slot == 0) ps = psT_->next();
        k_.pe_transpose(ps.parts(0, uint32_t(nk)).cols(slot * QT_, u.nq), P.parts(0, uint32_t(u.nq)).cols(b * KB_, nk));
        if (slot + 1 == slots || b + 1 == kbs) {
          const uint64_t b0 = b - slot, n = slot + 1, np = std::min(KB_, u.sv - b0 * KB_);
          const uint64_t at = b0 * QG_ + u.tg * QT_;
          const Tile src = ps.parts(0, uint32_t(np)).view2(uint32_t(n), uint32_t(u.nq), uint32_t(QT_));
          const Tile dst =
              pT.parts(0, uint32_t(np)).cols(at, pT.n0 - at).view2(uint32_t(n), uint32_t(u.nq), uint32_t(QG_));
          k_.tensor_copy(dst, src);
        }
      }
    }
  }

  // oT[dh x queries of the group's tiles ta..tb-1] = sum over key blocks b of matmul(stationary v_b, moving
  // pT_b), accumulated in PSUM.
  // Key blocks [b0, b1) of it (all when b1 is past the last one the tiles see).
  void stage_d(uint64_t gi, uint64_t ta, uint64_t tb, uint64_t b0 = 0, uint64_t b1 = UINT64_MAX) {
    const Group& g = groups_[gi];
    const Tile& acc = (*oacc_)[gi];
    const Tile& pT = (*pT_)[gi];
    const uint64_t col_end = std::min(g.nqg, tb * QT_);
    b1 = std::min(b1, ceil_div(sv_of(g.t0 + tb - 1), KB_));
    for (uint64_t c = 0; c < dc_; ++c) {
      const uint32_t dhc = uint32_t(std::min(DC_, dh_ - c * DC_));
      for (uint64_t b = b0; b < b1; ++b) {
        // The tiles that see key block b: a suffix (causal), all of them otherwise.
        uint64_t t = ta;
        while (b * KB_ >= sv_of(g.t0 + t)) ++t;
        const uint64_t col0 = t * QT_, ncols = col_end - col0;
        const uint32_t nk = uint32_t(std::min(KB_, Sk_ - b * KB_));
        k_.matmul(acc.parts(0, dhc).cols(c * QG_ + col0, ncols), (*v_t_)[g.h].parts(0, nk).cols(b * dh_ + c * DC_, dhc),
                  pT.parts(0, nk).cols(b * QG_ + col0, ncols), b > 0);
      }
    }
  }

  // oT PSUM -> SBUF for tiles ta..tb-1 of the group, half the columns on ScalarE and half on VectorE (they
  // carry the same load per tile), then the store.
  void stage_e(uint64_t gi, uint64_t ta, uint64_t tb) {
    const Group& g = groups_[gi];
    const uint64_t c0 = ta * QT_, n = std::min(g.nqg, tb * QT_) - c0;
    for (uint64_t c = 0; c < dc_; ++c) {
      const uint32_t dhc = uint32_t(std::min(DC_, dh_ - c * DC_));
      const Tile out = (*o_t_)[gi].parts(0, dhc).cols(c * QG_ + c0, n);
      const Tile acc = (*oacc_)[gi].parts(0, dhc).cols(c * QG_ + c0, n);
      const uint64_t half = n / 2;
      if (half > 0) k_.copy_scalar(out.cols(0, half), acc.cols(0, half));
      k_.tensor_copy(out.cols(half, n - half), acc.cols(half, n - half));
      const Ap dst = oT_.rows(g.h * dh_ + c * DC_, dhc, g.qg0 + c0, n);
      k_.dma(dst, out.ap(), {{}, int(std::clamp<uint64_t>(dst.bytes() / 4096, 1, 16))});  // the last one is the drain
    }
  }

  // Keys query tile t sees: all, or causal those up to its last query rounded up to a key block (the rest of
  // that block is masked), so that every key block a tile sees is whole in its P.
  uint64_t sv_of(uint64_t t) const {
    return o_.causal ? std::min(Sk_, round_up(std::min(Sq_, (t + 1) * QT_), KB_)) : Sk_;
  }

  // mask[p][j] = j > p ? -2^100 : 0 (column j = key q0 + j, partition p = query q0 + p), bf16, and the bf16
  // identity. Not -inf: the identity's zeros would make inf x 0 = NaN in the matmul. A masked score becomes
  // s - 2^100 = -2^100 (|s| < 2^76 is absorbed), and exp(scale * -2^100 + negm) is exactly 0, as for -inf.
  void build_mask() {
    const Tile d = k_.sbuf("attn_mask_tmp", DType::kF32, uint32_t(QT_), mw_);
    k_.iota(d, 0, -1, 1);  // j - p
    k_.tensor_scalar(ident_, d.cols(0, QT_), AluOp::kIsEqual, 0.0f);
    k_.tensor_scalar(mask_, d, AluOp::kIsGt, 0.0f, AluOp::kMul, -0x1p100f);
    k_.release(d);
  }

  void emit() {
    if (o_.causal) build_mask();
    const size_t U = units_.size();
    const size_t la = p_.scores == Scores::kRecompute ? 1 : 4;
    // Program order is the meaning: a ring slot may be written again only after its last reader has been
    // emitted. Head h's q/k/v load once the final PV group of head h - head_bufs has been emitted; A(u) once
    // its head is loaded and B of its score buffers' previous units has been emitted; B(u) after A(u).
    uint64_t loaded = 0, heads_done = 0;
    size_t next_a = 0, next_b = 0;
    // Deferred work, in order: a group's PV matmuls in slices of key blocks, one slice per following tile
    // (TensorE interleaves them with the next tiles' QK^T instead of holding those behind a whole group's
    // PV), and its PSUM -> SBUF copy and store kEvacDelay tiles after the last slice (ScalarE and VectorE
    // run in order: the copy would hold them until the matmuls are done).
    struct Work {
      bool pv;
      uint64_t gi, ta, tb, b0, b1;
      size_t due;  // iteration at which to emit
    };
    std::deque<Work> work;  // in push order; a group's entries are emitted in that order
    auto emit_work = [&](std::deque<Work>::iterator it) {
      if (it->pv)
        stage_d(it->gi, it->ta, it->tb, it->b0, it->b1);
      else
        stage_e(it->gi, it->ta, it->tb);
      return work.erase(it);
    };
    auto flush = [&] { emit_work(work.begin()); };
    // Everything due by iteration i that may pass the entries still pending before it: those of the
    // previous group only (the other buffer of each double-buffered pair: oT accumulators, pT, oT copies).
    auto flush_due = [&](size_t i) {
      for (auto it = work.begin(); it != work.end();) {
        bool may = it->due <= i;
        for (auto e = work.begin(); may && e != it; ++e) may = e->gi + 1 == it->gi;
        it = may ? emit_work(it) : std::next(it);
      }
    };
    // Heads whose q/k/v are no longer read by anything left to emit: before the next unit's head and before
    // the head of the first pending PV slice.
    auto update_heads_done = [&](size_t next_unit) {
      uint64_t h = next_unit < U ? units_[next_unit].h : H_;
      for (const Work& w : work)
        if (w.pv) {
          h = std::min(h, groups_[w.gi].h);
          break;
        }
      heads_done = std::max(heads_done, h);
    };
    auto loads = [&] {
      while (loaded < H_ && loaded < heads_done + uint64_t(p_.head_bufs)) load_head(loaded++);
    };
    auto a_upto = [&](size_t last) {
      while (next_a <= last && next_a < U && units_[next_a].h < loaded && scores_free(next_a, next_b))
        stage_a(next_a++);
    };
    auto b_upto = [&](size_t last) {
      while (next_b <= last && next_b < next_a) stage_b(next_b++);
    };
    loads();
    a_upto(la);
    b_upto(0);
    for (size_t i = 0; i < U; ++i) {
      loads();
      a_upto(i + la);
      b_upto(i);  // normally emitted in the previous iteration
      stage_c_norm(i);
      b_upto(i + 1);
      // pT is double-buffered too: group g's PV matmuls (its readers) precede group g + 2's transposes.
      while (!work.empty() && work.front().gi + 2 <= units_[i].gi) flush();
      stage_c_transpose(i);
      const Unit& u = units_[i];
      // oT accumulators are double-buffered: group g's copy out must precede group g + 2's matmuls.
      if (u.gi + 1 == groups_.size() || u.last_in_group)
        while (!work.empty() && work.front().gi + 2 <= u.gi) flush();
      if (u.gi + 1 == groups_.size()) {
        // The last group: PV and store tile by tile as each tile's P^T is ready (TensorE has the slack at the
        // end), so that only the last tile's are left after the last softmax.
        stage_d(u.gi, u.tg, u.tg + 1);
        work.push_back({false, u.gi, u.tg, u.tg + 1, 0, 0, u.last_in_group ? i : i + 2});
      } else if (u.last_in_group) {
        const Group& g = groups_[u.gi];
        // Slices only when fewer than two tiles' scores can be ahead of the PV (kRows keeps up to four rows
        // and the vector engines have work queued for the whole PV; a bank ring of long rows does not).
        const uint64_t nkb = ceil_div(sv_of(g.t0 + g.nt - 1), KB_);
        const uint64_t slices = rows_ahead_ >= 2 ? 1 : std::min(p_.G, nkb);
        for (uint64_t j = 0; j < slices; ++j)
          work.push_back({true, u.gi, 0, g.nt, nkb * j / slices, nkb * (j + 1) / slices, i + j});
        work.push_back({false, u.gi, 0, g.nt, 0, 0, i + slices - 1 + kEvacDelay});
      }
      flush_due(i);
      update_heads_done(i + 1);
      loads();
      a_upto(i + 1 + la);
      b_upto(i + 1);
    }
    while (!work.empty()) flush();
  }

  Kernel& k_;
  const DeviceConfig& cfg_;
  Dram qT_, kT_, v_, oT_;
  AttentionOptions o_;
  uint64_t H_ = 0, HD_ = 0, dh_ = 0, Sq_ = 0, Sk_ = 0, QT_ = 0, KB_ = 0, NB_ = 0, DC_ = 0, dc_ = 0, Bt_ = 0;
  uint64_t nqt_ = 0, nkb_ = 0, pb_ = 0, QG_ = 0, npmax_ = 0, mw_ = 0;
  float scale_ = 1;
  Plan p_;
  std::vector<Unit> units_;
  std::vector<std::vector<Chunk>> chunks_;  // per unit: its score buffers (from A until B)
  std::vector<size_t> owner_;               // per score buffer: the unit that last took it
  size_t cursor_ = 0;
  uint64_t rows_ahead_ = 0;  // score rows that can be computed ahead of the softmax                       // score
                             // buffers taken so far (ring position)
  std::vector<Group> groups_;
  std::optional<Ring> s_, oacc_, psT_, q_, kt_, v_t_, pT_, e_, p_t_, p32_, o_t_, st_;
  Tile ident_, mask_;
};

}  // namespace

void attention(Kernel& k, const Dram& qT, const Dram& kT, const Dram& v, const Dram& oT, const AttentionOptions& o) {
  Attention(k, qT, kT, v, oT, o).run();
}

model::Model build_attention(const DeviceConfig& cfg, int seq, int head_dim, const AttentionOptions& o) {
  if (seq < 1 || head_dim < 1 || o.heads < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("attention: sizes must be positive, got seq={} head_dim={} "
                                                         "heads={}",
                                                         seq, head_dim, o.heads));
  Kernel k(cfg, fmt::format("attention_h{}_s{}_d{}{}", o.heads, seq, head_dim, o.causal ? "_causal" : ""));
  const int64_t hd = int64_t(o.heads) * head_dim;
  const Dram qT = k.input("qT", o.in_dtype, {hd, seq});
  const Dram kT = k.input("kT", o.in_dtype, {hd, seq});
  const Dram v = k.input("v", o.in_dtype, {seq, hd});
  const Dram oT = k.output("oT", model::DType::kF32, {hd, seq});
  attention(k, qT, kT, v, oT, o);
  return k.finish();
}

}  // namespace tcemu::kb
