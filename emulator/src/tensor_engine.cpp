// The TensorE sequencer: drives the verilated array cycle by cycle (docs/isa.md: matmul, pe_transpose).
//
// Everything the engine does is a sequence of array passes (struct Matmul): a bf16 matmul is one pass, a
// pe_transpose is one pass whose moving columns are the identity, made here, and an fp32 matmul is
// num::kFp32MatmulPasses bf16 passes over the bf16 parts of its operands, split here as they are read
// (docs/numerics.md). The passes of one instruction go through the pipeline exactly like separate
// instructions; the instruction completes (trace record, semaphore) with its last pass.
#include <immintrin.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <vector>

#include "tc1.h"
#include "transpose.h"

namespace tcemu::emu {

namespace {

constexpr uint16_t kBf16One = 0x3F80;

bool is_array_op(Opcode op) { return op == Opcode::Matmul || op == Opcode::PeTranspose; }
bool is_fp32(const Instr& in) { return in.opcode == Opcode::Matmul && in.dtype == uint64_t(isa::MatmulType::kFp32); }
// Moving columns of one pass: pe_transpose streams k identity columns.
uint64_t columns(const Instr& in) { return in.opcode == Opcode::PeTranspose ? in.k : in.n; }
int passes(const Instr& in) { return is_fp32(in) ? num::kFp32MatmulPasses : 1; }
uint64_t element_bytes(const Instr& in) { return is_fp32(in) ? 4 : 2; }

// Rounds the value v * 2^e (v a signed integer, |v| < 2^25) to bf16, to nearest with ties to even, and
// leaves the remainder (v minus the part, exact) in v. A value below 2^-126 is flushed: the part is +0
// and v becomes 0, so the parts after it are +0 too. With `no_inf` a rounding that would overflow to inf
// truncates instead. This is the operand splitter's datapath, in integers; num::golden_split_fp32 is
// the golden model of the same rule in host floats.
uint16_t take_bf16_part(int64_t& v, int e, bool no_inf) {
  if (v == 0) return 0;
  const bool neg = v < 0;
  const uint64_t a = uint64_t(neg ? -v : v);
  const int p = 63 - __builtin_clzll(a);  // a's leading one: the value is in [2^(p+e), 2^(p+e+1))
  int exp = p + e;
  if (exp < -126) {
    v = 0;
    return 0;
  }
  uint64_t q, kept;  // q: the 8-bit significand (1.xxxxxxx); kept: the part in units of 2^e
  if (p <= 7) {
    q = a << (7 - p);
    kept = a;
  } else {
    const int shift = p - 7;
    q = a >> shift;
    const uint64_t rem = a & ((uint64_t(1) << shift) - 1), half = uint64_t(1) << (shift - 1);
    const bool up = rem > half || (rem == half && (q & 1));
    if (up && !(no_inf && exp == 127 && q == 255)) ++q;
    kept = q << shift;
    if (q == 256) q = 128, ++exp;  // rounded up into the next binade
  }
  const int64_t rest = int64_t(a) - int64_t(kept);
  v = neg ? -rest : rest;
  return uint16_t((neg ? 0x8000u : 0u) | uint32_t(exp + 127) << 7 | uint32_t(q & 0x7F));
}

// The three bf16 parts (hi, mid, lo) of an fp32 operand (docs/numerics.md, "fp32 matmul").
void split_fp32(uint32_t x, uint16_t parts[3]) {
  parts[0] = parts[1] = parts[2] = 0;
  const uint32_t e = (x >> 23) & 0xFF, f = x & 0x7FFFFF;
  if (e == 0xFF) {  // inf keeps its sign; any NaN becomes the canonical one
    parts[0] = f ? num::kBf16CanonicalNan : uint16_t(x >> 16);
    return;
  }
  if (e == 0) {  // zero, or a subnormal read as zero (DAZ)
    parts[0] = uint16_t((x >> 16) & 0x8000);
    return;
  }
  int64_t v = int64_t((uint32_t(1) << 23) | f);
  if (x >> 31) v = -v;
  for (int i = 0; i < 3; ++i) parts[i] = take_bf16_part(v, int(e) - 150, i == 0);
}

}  // namespace

bool Tc1::check_matmul(uint32_t pc, const Instr& in) {
  auto fault = [&](FaultCode c, uint64_t addr) {
    raise_fault(c, isa::kEngineTensor, pc, addr, uint32_t(in.opcode));
    return false;
  };
  const uint64_t max_n = cfg_.psum_bank_bytes / 4, n = columns(in), eb = element_bytes(in);
  if (in.k < 1 || in.k > uint64_t(cfg_.rows) || in.m < 1 || in.m > uint64_t(cfg_.cols) || n < 1 || n > max_n)
    return fault(FaultCode::BadOperand, 0);
  if (in.opcode == Opcode::Matmul && in.dtype > uint64_t(isa::MatmulType::kFp32))
    return fault(FaultCode::BadOperand, 0);
  if (in.st_off % eb || in.mv_off % eb || in.out_off % 4) return fault(FaultCode::BadOperand, 0);
  const uint64_t sp = cfg_.sbuf_partition_bytes, pp = cfg_.psum_partition_bytes();
  if (in.st_part + in.k > uint64_t(cfg_.sbuf_partitions) || in.st_off + eb * in.m > sp)
    return fault(FaultCode::SbufOutOfRange, isa::make_addr(isa::Space::kSbuf, in.st_part * sp + in.st_off));
  if (in.opcode == Opcode::Matmul && (in.mv_part + in.k > uint64_t(cfg_.sbuf_partitions) || in.mv_off + eb * in.n > sp))
    return fault(FaultCode::SbufOutOfRange, isa::make_addr(isa::Space::kSbuf, in.mv_part * sp + in.mv_off));
  if (in.out_part + in.m > uint64_t(cfg_.psum_partitions) || in.out_off + 4 * n > pp ||
      (in.out_off % cfg_.psum_bank_bytes) + 4 * n > cfg_.psum_bank_bytes)
    return fault(FaultCode::PsumOutOfRange, isa::make_addr(isa::Space::kPsum, in.out_part * pp + in.out_off));
  return true;
}

uint16_t Tc1::sbuf_bf16(uint64_t part, uint64_t byte_off) const {
  const uint8_t* p = sbuf_.row(part) + byte_off;
  return uint16_t(p[0] | (p[1] << 8));
}

// Rows 0..m-1 of a held PSUM block: n consecutive fp32 per partition, partitions `pitch` bytes apart, from
// `data` (n result columns of `stride` fp32): a transpose, and for an accumulating block the PSUM adder.
void write_psum_rows_generic(uint8_t* first, uint64_t pitch, uint64_t m, int n, const uint32_t* data, uint64_t stride,
                             bool accumulate) {
  for (uint64_t c = 0; c < m; ++c, first += pitch) {
    uint32_t* dst = reinterpret_cast<uint32_t*>(first);  // 4-aligned (matmul operands are checked)
    const uint32_t* src = data + c;
    if (accumulate) {
      // PSUM's near-memory adder: fp32 RNE with the numerics policy (docs/numerics.md).
      for (int j = 0; j < n; ++j) dst[j] = num::fast_add(dst[j], src[uint64_t(j) * stride]);
    } else {
      for (int j = 0; j < n; ++j) dst[j] = src[uint64_t(j) * stride];
    }
  }
}

// GCC 12 reports the deliberately undefined register inside its AVX-512 shuffle intrinsics as "may be used
// uninitialized" (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// An exponent field of 0 keeps only the sign: DAZ on the way in, FTZ on the way out (num::fast_add).
[[gnu::target("avx512f")]] inline __m512i flush_to_zero_avx512(__m512i v) {
  const __m512i exp = _mm512_set1_epi32(0x7F800000), sign = _mm512_set1_epi32(int(0x80000000u));
  return _mm512_mask_and_epi32(v, _mm512_testn_epi32_mask(v, exp), v, sign);
}

// The same with AVX-512, 16 partitions at a time: the 16 x 16 block (16 columns of 16 partitions) transposed in
// registers, then num::fast_add 16 lanes wide, step for step (DAZ on both operands, the IEEE RNE sum, FTZ,
// the canonical NaN). Partitions past the last multiple of 16 go the generic way.
[[gnu::target("avx512f")]] void write_psum_rows_avx512(uint8_t* first, uint64_t pitch, uint64_t m, int n,
                                                       const uint32_t* data, uint64_t stride, bool accumulate) {
  static_assert(kPsumBlock == 16, "one column per lane");
  const __mmask16 lanes = __mmask16(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
  const __m512i exp = _mm512_set1_epi32(0x7F800000), abs = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i nan = _mm512_set1_epi32(int(num::kF32CanonicalNan));
  uint64_t c0 = 0;
  for (; c0 + 16 <= m; c0 += 16) {
    __m512i r[16], t[16];
    // Row j: partitions c0 .. c0+15 of column j (columns j >= n are not used: masked below).
    for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_si512(data + uint64_t(j) * stride + c0);
    for (int j = 0; j < 16; j += 2) {
      t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
      t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
    }
    // r[4g + q], 128-bit lane L: partition 4L + q of columns 4g .. 4g+3.
    for (int g = 0; g < 16; g += 4) {
      r[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
      r[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
      r[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
      r[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int q = 0; q < 4; ++q) {
      const __m512i lo0 = _mm512_shuffle_i32x4(r[q], r[4 + q], 0x44), hi0 = _mm512_shuffle_i32x4(r[q], r[4 + q], 0xEE);
      const __m512i lo1 = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0x44);
      const __m512i hi1 = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0xEE);
      t[q] = _mm512_shuffle_i32x4(lo0, lo1, 0x88);       // partition c0 + q: columns 0 .. 15
      t[4 + q] = _mm512_shuffle_i32x4(lo0, lo1, 0xDD);   // c0 + 4 + q
      t[8 + q] = _mm512_shuffle_i32x4(hi0, hi1, 0x88);   // c0 + 8 + q
      t[12 + q] = _mm512_shuffle_i32x4(hi0, hi1, 0xDD);  // c0 + 12 + q
    }
    for (int c = 0; c < 16; ++c) {
      uint8_t* row = first + (c0 + uint64_t(c)) * pitch;
      __m512i v = t[c];
      if (accumulate) {
        const __m512 a = _mm512_castsi512_ps(flush_to_zero_avx512(_mm512_maskz_loadu_epi32(lanes, row)));
        const __m512 b = _mm512_castsi512_ps(flush_to_zero_avx512(v));
        v = flush_to_zero_avx512(_mm512_castps_si512(_mm512_add_ps(a, b)));
        v = _mm512_mask_mov_epi32(v, _mm512_cmpgt_epu32_mask(_mm512_and_epi32(v, abs), exp), nan);
      }
      _mm512_mask_storeu_epi32(row, lanes, v);
    }
  }
  write_psum_rows_generic(first + c0 * pitch, pitch, m - c0, n, data + c0, stride, accumulate);
}

#pragma GCC diagnostic pop

void write_psum_rows(uint8_t* first, uint64_t pitch, uint64_t m, int n, const uint32_t* data, uint64_t stride,
                     bool accumulate) {
  static const bool avx512 = [] {
    __builtin_cpu_init();  // may run before libgcc's own initialisation of the CPU model
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  (avx512 ? write_psum_rows_avx512 : write_psum_rows_generic)(first, pitch, m, n, data, stride, accumulate);
}

void Tc1::psum_flush() {
  PsumBlock& b = psum_block_;
  if (b.n == 0) return;
  write_psum_rows(b.first, psum_.pitch(), b.m, b.n, b.data.data(), uint64_t(cfg_.cols), b.accumulate);
  b.n = 0;
}

uint32_t* Tc1::psum_column(const Matmul& mm) {
  uint8_t* p = psum_.row(mm.in.out_part) + mm.in.out_off + 4 * uint64_t(mm.next_out);
  const uint64_t m = mm.in.m;
  const bool accumulate = mm.in.accumulate || mm.pass > 0;  // an fp32 matmul's later passes add to earlier ones
  PsumBlock& b = psum_block_;
  // A block holds distinct, consecutive addresses of one kind of write; anything else starts a new one.
  if (b.n > 0 && (p != b.first + 4 * uint64_t(b.n) || b.m != m || b.accumulate != accumulate)) psum_flush();
  if (b.n == 0) b.first = p, b.m = m, b.accumulate = accumulate;
  return &b.data[uint64_t(b.n) * uint64_t(cfg_.cols)];
}

void Tc1::psum_commit() {
  if (++psum_block_.n == kPsumBlock) psum_flush();
}

// One loop iteration = one clock cycle while the array has work. Pipeline: one matmul loads its
// weights into the shadow bank while the previous one streams; results drain in order behind them.
void Tc1::wave_step() {
  if (options_.wave_path.empty() || wave_done_) return;
  const uint64_t rel = cycle() - job_start_cycle_;
  if (!wave_open_ && rel >= options_.wave_from && rel < options_.wave_to) {
    te_->set_trace_cycle(rel);  // first, so the dump starts at the window's time
    te_->trace_open(options_.wave_path);
    wave_open_ = true;
  }
  if (wave_open_ && rel >= options_.wave_to) {
    te_->trace_close();
    wave_open_ = false, wave_done_ = true;
    return;
  }
  if (wave_open_) te_->set_trace_cycle(rel);
}

// The RTL and the fast model differed after this cycle's edge: fault with where (LOCKSTEP_* registers).
// A result port names the instruction whose column is being presented (the oldest in flight); a weight
// or busy flag the instruction being loaded, else the newest in flight.
void Tc1::report_lockstep(const rtl::LockstepDivergence& d, const std::deque<Matmul>& inflight,
                          const std::optional<Matmul>& loading, uint32_t next_pc) {
  const bool result_port = d.port == rtl::LockstepPort::kOutData || d.port == rtl::LockstepPort::kOutValid;
  const Matmul* mm = result_port ? (inflight.empty() ? nullptr : &inflight.front())
                                 : (loading ? &*loading : (inflight.empty() ? nullptr : &inflight.back()));
  Context& x = jc();
  x.ls_port = uint32_t(d.port);
  x.ls_column = mm ? uint32_t(mm->next_out) : 0;
  x.ls_element = d.element < 0 ? 0 : uint32_t(d.element);
  x.ls_rtl = d.reference, x.ls_fast = d.candidate;
  x.ls_cycle = cycle() + 1 - job_start_cycle_;  // the edge of this cycle, as a job cycle
  uint64_t addr = 0;
  if (mm && d.element >= 0)
    addr = isa::make_addr(isa::Space::kPsum, (mm->in.out_part + uint64_t(d.element)) * cfg_.psum_partition_bytes() +
                                                 mm->in.out_off + 4 * uint64_t(mm->next_out));
  raise_fault(FaultCode::LockstepMismatch, isa::kEngineTensor, mm ? mm->pc : next_pc, addr,
              mm ? uint32_t(mm->in.opcode) : 0);
}

void Tc1::tensor_engine() {
  const int engine = isa::kEngineTensor;
  const int rows = cfg_.rows, cols = cfg_.cols;
  const uint64_t sbuf_pitch = sbuf_.pitch();  // host bytes from one SBUF partition to the next
  std::vector<uint16_t>& wrow = te_wrow_;
  std::vector<uint16_t>& xcol = te_xcol_;
  wrow.assign(size_t(cols), 0);
  xcol.assign(size_t(rows), 0);
  // Moving columns of bf16 matmuls, gathered kGatherBlock at a time: one SBUF cache line per partition holds
  // 32 of them, and transposing a block is far cheaper than reading one element per partition every cycle.
  // The block is the SBUF contents as of sbuf_gen_ == block_gen: a column read from it later is the column
  // read from SBUF in its own cycle as long as nothing has written SBUF since.
  constexpr int kGatherBlock = 32;
  std::vector<uint16_t>& block = te_block_;  // [column][row], rows >= k are +0
  block.assign(size_t(kGatherBlock) * size_t(rows), 0);
  const uint8_t* block_src = nullptr;  // SBUF address of the block's first column in its first partition
  int block_k = 0, block_count = 0;
  uint64_t block_gen = 0;
  auto sbuf_u32 = [this](uint64_t part, uint64_t byte_off) {
    uint32_t v;
    std::memcpy(&v, sbuf_.row(part) + byte_off, 4);  // little-endian host
    return v;
  };
  // The bf16 operand the array sees: the SBUF element itself, or for an fp32 matmul the pass's part of it.
  auto operand = [&](const Matmul& mm, int which, uint64_t part, uint64_t index) -> uint16_t {
    if (!is_fp32(mm.in)) return sbuf_bf16(part, (which == 0 ? mm.in.st_off : mm.in.mv_off) + 2 * index);
    uint16_t parts[3];
    split_fp32(sbuf_u32(part, (which == 0 ? mm.in.st_off : mm.in.mv_off) + 4 * index), parts);
    return parts[num::kFp32PassParts[mm.pass][which]];
  };
  for (;;) {
    uint64_t token = wait_for_work(engine);
    te_->reset();
    uint32_t next_pc = 0;
    std::optional<Matmul> loading;
    std::optional<Matmul> next_pass;  // the next pass of the instruction whose last pass started
    // Passes whose columns entered the array, oldest first; only the newest may still be streaming.
    // Result columns leave the array in the same order and are routed to the front.
    std::deque<Matmul> inflight;
    auto streaming = [&]() -> Matmul* {
      return !inflight.empty() && uint64_t(inflight.back().next_col) < columns(inflight.back().in) ? &inflight.back()
                                                                                                   : nullptr;
    };
    while (token == job_token_) {
      // Fill the load slot: the next pass of the current instruction, else the next instruction. A NOP
      // completes here once its wait is met; a NOP that signals also waits for every earlier instruction
      // to finish, so its signal means "all work before me is done". A NOTIFY always does, so that the
      // host hears of it only once the work before it is in PSUM.
      if (!loading && next_pass) {
        loading = std::move(next_pass);
        next_pass.reset();
      } else if (!loading && next_pc < streams_[engine].count) {
        // An injected hang stops the engine as it reaches the instruction; what is in the array stays there.
        if (!job_faults_.empty() && hang_if_aimed(engine, next_pc, token)) break;
        std::optional<Instr> in = fetch(engine, next_pc);
        if (!in || (is_array_op(in->opcode) && !check_matmul(next_pc, *in))) break;  // faulted
        loading = Matmul{*in, next_pc};
        engines_[engine].pc = next_pc;
        ++next_pc;
      }
      if (loading && (loading->in.opcode == Opcode::Nop || loading->in.opcode == Opcode::Notify)) {
        const bool notify = loading->in.opcode == Opcode::Notify;
        if (sem_ready(loading->in) && ((!loading->in.signal_en && !notify) || inflight.empty())) {
          if (notify) post_notification(engine, loading->in);
          record(engine, loading->pc, loading->in, cycle(), cycle(), loading->waited, {});
          signal(loading->in);
          loading.reset();
          continue;
        }
      }
      if (!loading && !next_pass && inflight.empty() && next_pc >= streams_[engine].count) break;  // stream done

      const bool array_op = loading && is_array_op(loading->in.opcode);
      if (array_op && !streaming() && loading->rows_loaded == int(loading->in.k)) {
        // Start streaming this cycle. The instruction's trace slice runs from its first pass's first
        // column to its last pass's last column.
        if (loading->pass == 0) loading->start = cycle();
        if (loading->pass + 1 < passes(loading->in)) {
          next_pass = Matmul{loading->in, loading->pc, loading->pass + 1};
          next_pass->waited = loading->waited;
          next_pass->start = loading->start;
        }
        inflight.push_back(std::move(*loading));
        loading.reset();  // the next pass or instruction enters the load slot next cycle
      }
      // Only an instruction's first pass waits for its semaphore: the wait was met when it started.
      const bool can_load = loading && is_array_op(loading->in.opcode) &&
                            (loading->pass > 0 || sem_ready(loading->in)) &&
                            loading->rows_loaded < int(loading->in.k) && te_->wload_ready();
      Matmul* st = streaming();
      if (!can_load && !st && inflight.empty() && loading && loading->pass == 0) {
        // Nothing can move until the loading instruction's semaphore is signalled: sleep without
        // clocking the array (these are the engine's stall cycles).
        loading->waited += block_on_semaphore(engine, loading->pc, loading->in, token);
        continue;
      }
      // Drive this cycle's inputs.
      if (can_load) {
        // The instruction starts reading SBUF now (its semaphore wait is met): injected faults act here.
        if (loading->pass == 0 && loading->rows_loaded == 0 && (!job_faults_.empty() || !poison_.empty()) &&
            !before_execute(engine, loading->pc, loading->in, token))
          break;
        const int r = loading->rows_loaded;
        const uint64_t m = loading->in.m;
        if (is_fp32(loading->in)) {
          for (uint64_t c = 0; c < m; ++c) wrow[c] = operand(*loading, 0, loading->in.st_part + r, c);
        } else {  // a bf16 row: m elements in a row of partition st_part + r
          std::memcpy(wrow.data(), sbuf_.row(loading->in.st_part + uint64_t(r)) + loading->in.st_off, 2 * m);
        }
        std::fill(wrow.begin() + int64_t(m), wrow.end(), uint16_t(0));
        te_->set_wload(true, r, wrow.data());
        ++loading->rows_loaded;
      } else {
        te_->set_wload(false, 0, nullptr);
      }
      if (st) {
        const Instr& in = st->in;
        const int k = int(in.k);
        if (in.opcode == Opcode::PeTranspose) {  // identity column next_col (< k)
          std::fill(xcol.begin(), xcol.begin() + k, uint16_t(0));
          xcol[size_t(st->next_col)] = kBf16One;
        } else if (is_fp32(in)) {
          for (int r = 0; r < k; ++r)
            xcol[size_t(r)] = operand(*st, 1, in.mv_part + uint64_t(r), uint64_t(st->next_col));
        }
        const uint16_t* column = xcol.data();
        if (in.opcode == Opcode::Matmul && !is_fp32(in)) {  // element next_col of partitions mv_part ..
          const uint8_t* x = sbuf_.row(in.mv_part) + in.mv_off + 2 * uint64_t(st->next_col);
          if (block_gen != sbuf_gen_ || block_k != k || x < block_src || x >= block_src + 2 * block_count) {
            block_src = x, block_k = k, block_gen = sbuf_gen_;
            block_count = int(std::min<uint64_t>(kGatherBlock, columns(in) - uint64_t(st->next_col)));
            transpose_u16(x, sbuf_pitch, reinterpret_cast<uint8_t*>(block.data()), 2 * uint64_t(rows), uint64_t(k),
                          uint64_t(block_count));
            for (int j = 0; j < block_count; ++j)
              std::fill(block.begin() + j * rows + k, block.begin() + (j + 1) * rows, uint16_t(0));
          }
          column = &block[size_t((x - block_src) / 2) * size_t(rows)];
        } else {
          std::fill(xcol.begin() + k, xcol.end(), uint16_t(0));
        }
        te_->set_moving(true, st->next_col == 0, int(in.k), column);
        if (uint64_t(++st->next_col) == columns(in)) st->end = cycle() + 1;
      } else {
        te_->set_moving(false, false, 1, nullptr);
      }
      wave_step();
      te_->tick();
      if (lockstep_ && lockstep_->divergence()) {
        report_lockstep(*lockstep_->divergence(), inflight, loading, next_pc);
        break;
      }
      if (!wait_cycles(1, token)) break;
      if (te_->out_valid()) {
        if (inflight.empty()) {  // a result nobody asked for: an RTL protocol bug, reported, not fatal
          raise_fault(FaultCode::BadOperand, engine, next_pc, 0, 0xFF);
          break;
        }
        Matmul& mm = inflight.front();
        te_->out_data(psum_column(mm));
        psum_commit();
        if (uint64_t(++mm.next_out) == columns(mm.in)) {
          if (mm.pass + 1 == passes(mm.in)) {
            // The trace slice of an instruction is its streaming window, so the tensor engine's slices
            // never overlap even though instructions pipeline. MACs count the array's bf16 multiplies.
            const Instr& in = mm.in;
            const uint64_t n = columns(in);
            InstrStats st;
            st.macs = uint64_t(passes(in)) * in.k * in.m * n;
            st.bytes = in.opcode == Opcode::PeTranspose ? 2 * in.k * in.m + 4 * in.m * n
                                                        : element_bytes(in) * in.k * (in.m + n) + 4 * in.m * n;
            record(engine, mm.pc, in, mm.start, mm.end, mm.waited, st);
            signal(in);
          }
          inflight.pop_front();
        }
      }
    }
    if (!options_.wave_path.empty() && !wave_done_ && token == job_token_) {
      // The window reaches past this job's tensor work, or the array's clock was gated (idle) all
      // through it: the dump shows the array's state up to here and ends with the job's tensor work.
      te_->set_trace_cycle(std::max(cycle() - job_start_cycle_, options_.wave_from));
      if (!wave_open_) te_->trace_open(options_.wave_path);
      te_->trace_close();
      wave_open_ = false, wave_done_ = true;
    }
    engine_finished(engine, token);
  }
}

}  // namespace tcemu::emu
