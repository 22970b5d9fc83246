// The TensorE sequencer: drives the verilated array cycle by cycle (docs/isa.md, matmul).
#include <algorithm>
#include <deque>
#include <optional>
#include <vector>

#include "tc1.h"

namespace tcemu::emu {

bool Tc1::check_matmul(uint32_t pc, const Instr& in) {
  auto fault = [&](FaultCode c, uint64_t addr) {
    raise_fault(c, isa::kEngineTensor, pc, addr, uint32_t(in.opcode));
    return false;
  };
  const uint64_t max_n = cfg_.psum_bank_bytes / 4;
  if (in.k < 1 || in.k > uint64_t(cfg_.rows) || in.m < 1 || in.m > uint64_t(cfg_.cols) || in.n < 1 || in.n > max_n)
    return fault(FaultCode::BadOperand, 0);
  if (in.st_off % 2 || in.mv_off % 2 || in.out_off % 4) return fault(FaultCode::BadOperand, 0);
  const uint64_t sp = cfg_.sbuf_partition_bytes, pp = cfg_.psum_partition_bytes();
  if (in.st_part + in.k > uint64_t(cfg_.sbuf_partitions) || in.st_off + 2 * in.m > sp)
    return fault(FaultCode::SbufOutOfRange, isa::make_addr(isa::Space::kSbuf, in.st_part * sp + in.st_off));
  if (in.mv_part + in.k > uint64_t(cfg_.sbuf_partitions) || in.mv_off + 2 * in.n > sp)
    return fault(FaultCode::SbufOutOfRange, isa::make_addr(isa::Space::kSbuf, in.mv_part * sp + in.mv_off));
  if (in.out_part + in.m > uint64_t(cfg_.psum_partitions) || in.out_off + 4 * in.n > pp ||
      (in.out_off % cfg_.psum_bank_bytes) + 4 * in.n > cfg_.psum_bank_bytes)
    return fault(FaultCode::PsumOutOfRange, isa::make_addr(isa::Space::kPsum, in.out_part * pp + in.out_off));
  return true;
}

uint16_t Tc1::sbuf_bf16(uint64_t part, uint64_t byte_off) const {
  const uint8_t* p = &sbuf_[part * cfg_.sbuf_partition_bytes + byte_off];
  return uint16_t(p[0] | (p[1] << 8));
}

void Tc1::write_psum(const Matmul& mm, const uint32_t* col) {
  const uint64_t pp = cfg_.psum_partition_bytes();
  for (uint64_t c = 0; c < mm.in.m; ++c) {
    uint8_t* p = &psum_[(mm.in.out_part + c) * pp + mm.in.out_off + 4 * uint64_t(mm.next_out)];
    uint32_t v = col[c];
    if (mm.in.accumulate) {
      uint32_t old;
      std::memcpy(&old, p, 4);
      // PSUM's near-memory adder: fp32 RNE with the numerics policy (docs/numerics.md).
      v = num::golden_add(old, v);
    }
    std::memcpy(p, &v, 4);
  }
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

void Tc1::tensor_engine() {
  const int engine = isa::kEngineTensor;
  const int rows = cfg_.rows, cols = cfg_.cols;
  std::vector<uint16_t> wrow(cols), xcol(rows);
  std::vector<uint32_t> out(cols);
  for (;;) {
    uint64_t token = wait_for_work(engine);
    te_->reset();
    uint32_t next_pc = 0;
    std::optional<Matmul> loading;
    // Matmuls whose columns entered the array, oldest first; only the newest may still be streaming.
    // Result columns leave the array in the same order and are routed to the front.
    std::deque<Matmul> inflight;
    auto streaming = [&]() -> Matmul* {
      return !inflight.empty() && inflight.back().next_col < int(inflight.back().in.n) ? &inflight.back() : nullptr;
    };
    while (token == job_token_) {
      // Fetch the next instruction into the load slot. A NOP completes here once its wait is met; a
      // NOP that signals also waits for every earlier matmul to finish, so its signal means "all
      // work before me is done".
      if (!loading && next_pc < streams_[engine].count) {
        std::optional<Instr> in = fetch(engine, next_pc);
        if (!in || (in->opcode == Opcode::Matmul && !check_matmul(next_pc, *in))) break;  // faulted
        loading = Matmul{*in, next_pc};
        engines_[engine].pc = next_pc;
        ++next_pc;
      }
      if (loading && loading->in.opcode == Opcode::Nop) {
        if (sem_ready(loading->in) && (!loading->in.signal_en || inflight.empty())) {
          record(engine, loading->pc, loading->in, cycle(), cycle(), loading->waited, {});
          signal(loading->in);
          loading.reset();
          continue;
        }
      }
      if (!loading && inflight.empty() && next_pc >= streams_[engine].count) break;  // stream done

      bool can_start = !streaming() && loading && loading->in.opcode == Opcode::Matmul &&
                       loading->rows_loaded == int(loading->in.k);
      if (can_start) {
        inflight.push_back(std::move(*loading));
        loading.reset();  // the next instruction is fetched next cycle
      }
      bool can_load = loading && loading->in.opcode == Opcode::Matmul && sem_ready(loading->in) &&
                      loading->rows_loaded < int(loading->in.k) && te_->wload_ready();
      Matmul* st = streaming();
      if (!can_load && !st && inflight.empty()) {
        // Nothing can move until the loading instruction's semaphore is signalled: sleep without
        // clocking the array (these are the engine's stall cycles).
        loading->waited += block_on_semaphore(engine, loading->pc, loading->in, token);
        continue;
      }
      // Drive this cycle's inputs.
      if (can_load) {
        const Instr& in = loading->in;
        int r = loading->rows_loaded;
        for (int c = 0; c < cols; ++c)
          wrow[c] = uint64_t(c) < in.m ? sbuf_bf16(in.st_part + r, in.st_off + 2 * uint64_t(c)) : 0;
        te_->set_wload(true, r, wrow.data());
        ++loading->rows_loaded;
      } else {
        te_->set_wload(false, 0, nullptr);
      }
      if (st) {
        const Instr& in = st->in;
        for (int r = 0; r < rows; ++r)
          xcol[r] = uint64_t(r) < in.k ? sbuf_bf16(in.mv_part + r, in.mv_off + 2 * uint64_t(st->next_col)) : 0;
        te_->set_moving(true, st->next_col == 0, int(in.k), xcol.data());
        if (st->next_col == 0) st->start = cycle();
        if (++st->next_col == int(in.n)) st->end = cycle() + 1;
      } else {
        te_->set_moving(false, false, 1, nullptr);
      }
      wave_step();
      te_->tick();
      if (!wait_cycles(1, token)) break;
      if (te_->out_valid()) {
        te_->out_data(out.data());
        if (inflight.empty()) {  // a result nobody asked for: an RTL protocol bug, reported, not fatal
          raise_fault(FaultCode::BadOperand, engine, next_pc, 0, 0xFF);
          break;
        }
        Matmul& mm = inflight.front();
        write_psum(mm, out.data());
        if (++mm.next_out == int(mm.in.n)) {
          // The trace slice of a matmul is its streaming window, so the tensor engine's slices never
          // overlap even though matmuls pipeline.
          InstrStats st;
          st.macs = mm.in.k * mm.in.m * mm.in.n;
          st.bytes = 2 * mm.in.k * (mm.in.m + mm.in.n) + 4 * mm.in.m * mm.in.n;
          record(engine, mm.pc, mm.in, mm.start, mm.end, mm.waited, st);
          signal(mm.in);
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
