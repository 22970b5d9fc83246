// Fault injection (tcemu/faults.h, docs/driver.md "Fault injection"): the device misbehaving on purpose, as
// a plan armed on a context says, so that drivers and runtimes can be tested against DMA errors, memory
// errors with ECC, hung engines, lost and spurious interrupts, lost doorbells and corrupt completion records.
// Every choice a fault leaves open (which word, which bits) comes from the plan's seed and the fault's
// index, so a run with a plan is as deterministic as one without.
#include "tc1.h"
#include "tcemu/crc32.h"
#include "tcemu/footprint.h"

namespace tcemu::emu {

namespace {

constexpr uint64_t kWord = 8;  // ECC granule: bytes per code word

// splitmix64: a well-mixed 64-bit value from (seed, fault index, draw).
uint64_t mix(uint64_t seed, uint64_t index, uint64_t draw) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index * 8 + draw + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

void Tc1::arm_faults(int c, const fi::Plan& plan) {
  for (const fi::Fault& f : plan.faults) {
    const std::string what = fi::describe(f);
    if (f.kind == fi::Kind::kHang) {
      const bool present = f.engine == isa::kEngineTensor || f.engine == isa::kEngineVector ||
                           f.engine == isa::kEngineScalar ||
                           (f.engine >= isa::kEngineDma0 && f.engine < isa::kEngineDma0 + cfg_.dma_queues);
      if (!present)
        throw Error(ErrorCode::kInvalidArgument, fmt::format("fault '{}': device {} has no engine {}", what, cfg_.name,
                                                             isa::engine_name(f.engine)));
    }
    if (f.kind == fi::Kind::kBitFlip) {
      if (f.bits < 1 || f.bits > 2 || f.space < 0 || f.space > 2)
        throw Error(ErrorCode::kInvalidArgument, fmt::format("fault '{}': bits must be 1 or 2", what));
      const uint64_t size = f.space == int(isa::Space::kSbuf) ? cfg_.sbuf_bytes()
                            : f.space == int(isa::Space::kPsum) ? cfg_.psum_bytes()
                                                                 : UINT64_MAX;  // HBM: checked against the window
      if (f.addr && *f.addr >= size)
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("fault '{}': address 0x{:x} is outside {} ({} bytes)", what, *f.addr,
                                isa::space_name(uint64_t(f.space)), size));
    }
  }
  Context& x = ctx_[size_t(c)];
  x.plan = plan;
  x.jobs_started = 0;
  x.doorbells_to_ignore = 0;
  for (const fi::Fault& f : plan.faults)
    if (f.kind == fi::Kind::kDoorbellIgnore) x.doorbells_to_ignore += f.count;
}

void Tc1::select_job_faults() {
  Context& x = jc();
  const uint32_t job = ++x.jobs_started;
  job_faults_.clear();
  dma_started_ = 0;
  for (size_t i = 0; i < x.plan.faults.size(); ++i)
    if (x.plan.faults[i].job == job && x.plan.faults[i].kind != fi::Kind::kDoorbellIgnore)
      job_faults_.emplace_back(x.plan.faults[i], i);
}

void Tc1::schedule_job_faults() {
  for (auto& [f, i] : job_faults_) {
    if (f.kind == fi::Kind::kBitFlip || f.kind == fi::Kind::kIrqSpurious)
      schedule({job_start_cycle_ + f.cycle, job_ctx_, jc().epoch, job_token_, f, i});
  }
}

void Tc1::schedule(Timed t) {
  timed_.push_back(std::move(t));
  uint64_t first = UINT64_MAX;
  for (const Timed& x : timed_) first = std::min(first, x.due);
  // notify() keeps the earlier of a pending and a new notification: the injector wakes for the first due.
  timed_ev_.notify(kCycle * double(first > cycle() ? first - cycle() : 0));
}

void Tc1::injector() {
  for (;;) {
    wait(timed_ev_);
    const uint64_t now = cycle();
    std::vector<Timed> due;
    for (auto it = timed_.begin(); it != timed_.end();) {
      if (it->due <= now) {
        due.push_back(std::move(*it));
        it = timed_.erase(it);
      } else {
        ++it;
      }
    }
    for (const Timed& t : due) {
      const Context& x = ctx_[size_t(t.ctx)];
      if (!x.open || x.epoch != t.epoch) continue;  // the context was reset or closed meanwhile
      if (t.token != 0 && t.token != job_token_) continue;  // its job is over
      switch (t.fault.kind) {
        case fi::Kind::kBitFlip: flip_bits(t.fault, t.index); break;
        case fi::Kind::kIrqSpurious:
        case fi::Kind::kIrqDelay: raise_irq(t.ctx, regs::kIrqJobDone); break;
        default: break;
      }
    }
    uint64_t first = UINT64_MAX;
    for (const Timed& x : timed_) first = std::min(first, x.due);
    if (first != UINT64_MAX) timed_ev_.notify(kCycle * double(first > now ? first - now : 0));
  }
}

uint8_t* Tc1::word_ptr(uint64_t space, uint64_t word) {
  if (space == uint64_t(isa::Space::kSbuf)) return sbuf_.at(word);
  if (space == uint64_t(isa::Space::kPsum)) return psum_.at(word);
  return nullptr;
}

void Tc1::xor_word(uint64_t space, uint64_t word, uint64_t mask) {
  // PSUM: after TensorE's held columns are written; SBUF: TensorE's read-ahead columns become stale.
  if (space == uint64_t(isa::Space::kPsum)) psum_flush();
  if (space == uint64_t(isa::Space::kSbuf)) ++sbuf_gen_;
  uint8_t bytes[kWord];
  if (uint8_t* p = word_ptr(space, word)) std::memcpy(bytes, p, kWord);
  else hbm_.read(word, bytes, kWord);
  for (int i = 0; i < 64; ++i)
    if (mask >> i & 1) bytes[i / 8] ^= uint8_t(1u << (i % 8));
  if (uint8_t* p = word_ptr(space, word)) std::memcpy(p, bytes, kWord);
  else hbm_.write(word, bytes, kWord);
}

void Tc1::flip_bits(const fi::Fault& f, size_t index) {
  const uint64_t seed = jc().plan.seed;
  const uint64_t space = uint64_t(f.space);
  uint64_t word = 0;
  if (space == uint64_t(isa::Space::kHbm)) {
    if (window_size_ < kWord) return;
    const uint64_t off = f.addr ? *f.addr : mix(seed, index, 0) % window_size_;
    if (off >= window_size_) return;  // outside the job's window: nothing of the job's is hit
    word = (window_base_ + off) / kWord * kWord;
  } else {
    const uint64_t size = space == uint64_t(isa::Space::kSbuf) ? cfg_.sbuf_bytes() : cfg_.psum_bytes();
    word = (f.addr ? *f.addr : mix(seed, index, 0) % size) / kWord * kWord;
  }
  const int b0 = int(mix(seed, index, 1) % 64);
  uint64_t mask = uint64_t(1) << b0;
  if (f.bits == 2) mask |= uint64_t(1) << ((b0 + 1 + int(mix(seed, index, 2) % 63)) % 64);
  xor_word(space, word, mask);
  poison_[{space, word}] ^= mask;
  if (poison_[{space, word}] == 0) poison_.erase({space, word});
}

bool Tc1::ecc_word(int c, uint64_t space, uint64_t word, int engine, uint32_t pc, const Instr* in) {
  auto it = poison_.find({space, word});
  if (it == poison_.end()) return true;
  const uint64_t mask = it->second;
  const uint64_t addr = isa::make_addr(isa::Space(space), word);
  if (std::popcount(mask) >= 2) {
    if (engine < 0)
      throw Error(ErrorCode::kDeviceFault,
                  fmt::format("uncorrectable ECC error (2 bits) in {} word 0x{:x}", isa::space_name(space), word));
    raise_fault(FaultCode::EccUncorrectable, engine, pc, addr, in ? uint32_t(in->opcode) : 0);
    return false;
  }
  // One bit: the code corrects it on the way out and writes the word back.
  xor_word(space, word, mask);
  poison_.erase(it);
  Context& x = ctx_[size_t(c)];
  ++x.ecc_corrected;
  x.ecc_addr = addr;
  return true;
}

bool Tc1::ecc_check(int engine, uint32_t pc, const Instr& in) {
  const isa::Footprint fp = isa::footprint(cfg_, in);
  // Linear byte range of a region: HBM absolute, SBUF/PSUM partition * partition bytes + offset.
  auto range = [&](const isa::Region& r) {
    if (r.space == isa::Space::kHbm) return std::pair(window_base_ + r.begin, window_base_ + r.end);
    const uint64_t pb = r.space == isa::Space::kSbuf ? cfg_.sbuf_partition_bytes : cfg_.psum_partition_bytes();
    return std::pair(r.partition * pb + r.begin, r.partition * pb + r.end);
  };
  for (int side = 0; side < 2; ++side) {
    for (const isa::Region& r : side == 0 ? fp.reads : fp.writes) {
      const uint64_t space = uint64_t(r.space);
      const auto [lo, hi] = range(r);
      auto it = poison_.lower_bound({space, lo / kWord * kWord});
      while (it != poison_.end() && it->first.first == space && it->first.second < hi) {
        const uint64_t word = it->first.second;
        ++it;  // ecc_word may erase the entry
        if (side == 1 && word >= lo && word + kWord <= hi) {
          poison_.erase({space, word});  // overwritten whole: fresh data, fresh check bits
          continue;
        }
        if (!ecc_word(job_ctx_, space, word, engine, pc, &in)) return false;
      }
    }
  }
  return true;
}

void Tc1::host_ecc(int c, uint64_t addr, uint64_t n, bool write) {
  if (poison_.empty() || n == 0) return;
  const uint64_t space = uint64_t(isa::Space::kHbm);
  auto it = poison_.lower_bound({space, addr / kWord * kWord});
  while (it != poison_.end() && it->first.first == space && it->first.second < addr + n) {
    const uint64_t word = it->first.second;
    ++it;
    if (write && word >= addr && word + kWord <= addr + n) {
      poison_.erase({space, word});
      continue;
    }
    ecc_word(c, space, word, -1, 0, nullptr);
  }
}

bool Tc1::hang_if_aimed(int engine, uint32_t pc, uint64_t token) {
  for (auto& [f, i] : job_faults_) {
    if (f.kind == fi::Kind::kHang && f.engine == engine && f.instr == pc) {
      // The engine stops here: it neither completes nor waits on a semaphore, so the watchdog stays quiet.
      engines_[size_t(engine)].state = regs::EngineState::kRunning;
      engines_[size_t(engine)].pc = pc;
      while (token == job_token_) wait(abort_ev_);
      return true;
    }
  }
  return false;
}

bool Tc1::before_execute(int engine, uint32_t pc, const Instr& in, uint64_t token) {
  // TensorE hangs when it fetches the instruction (tensor_engine.cpp), whatever its opcode.
  if (engine != isa::kEngineTensor && hang_if_aimed(engine, pc, token)) return false;
  if (in.opcode == Opcode::DmaCopy) {
    const uint32_t n = ++dma_started_;
    for (auto& [f, i] : job_faults_)
      if (f.kind == fi::Kind::kDmaError && f.transfer == n) {
        raise_fault(FaultCode::DmaError, engine, pc, in.dst, uint32_t(in.opcode));
        return false;
      }
  }
  // TensorE reads SBUF from the cycle its instruction starts; the other engines move their data when the
  // instruction completes and check it there (dma.cpp, vector_engine.cpp, scalar_engine.cpp).
  return engine != isa::kEngineTensor || poison_.empty() || ecc_check(engine, pc, in);
}

void Tc1::write_completion_record(int c) {
  uint8_t rec[regs::kCompletionBytes] = {};
  auto put32 = [&](int at, uint32_t v) {
    for (int i = 0; i < 4; ++i) rec[at + i] = uint8_t(v >> (8 * i));
  };
  const Context& x = ctx_[size_t(c)];
  put32(0, regs::kCompletionMagic);
  put32(4, running_seq_);
  put32(8, uint32_t(x.job_cycles));
  put32(12, uint32_t(x.job_cycles >> 32));
  put32(16, x.trace_count);
  put32(20, crc32(std::span<const uint8_t>(rec, 20)));
  for (auto& [f, i] : job_faults_)
    if (f.kind == fi::Kind::kCompletionCorrupt) {
      const uint64_t bit = mix(x.plan.seed, i, 0) % (8 * regs::kCompletionBytes);
      rec[bit / 8] ^= uint8_t(1u << (bit % 8));
    }
  const uint64_t at = job_ring_base_ + uint64_t(job_ring_slot_) * regs::kRingEntryBytes + regs::kCompletionOffset;
  if (at + regs::kCompletionBytes <= hbm_.size() && owns(c, at, regs::kCompletionBytes)) hbm_.write(at, rec, sizeof rec);
}

void Tc1::job_done_irq(int c) {
  for (auto& [f, i] : job_faults_) {
    if (f.kind == fi::Kind::kIrqDrop) return;  // lost: the completion is visible only in the registers
    if (f.kind == fi::Kind::kIrqDelay) {
      schedule({cycle() + f.delay, c, ctx_[size_t(c)].epoch, 0, f, i});
      return;
    }
  }
  raise_irq(c, regs::kIrqJobDone);
}

}  // namespace tcemu::emu
