#include "tcemu/rt/runtime.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include "tcemu/footprint.h"
#include "tcemu/isa.h"
#include "tcemu/numerics.h"
#include "tcemu/rt/occupancy.h"

namespace tcemu::rt {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<uint8_t> to_device_bytes(const HostTensor& t, model::DType dtype) {
  std::vector<uint8_t> out;
  if (dtype == model::DType::kBf16) {
    out.resize(t.data.size() * 2);
    for (size_t i = 0; i < t.data.size(); ++i) {
      const uint16_t b = num::f32_to_bf16(t.data[i]);
      std::memcpy(&out[2 * i], &b, 2);  // little-endian host, as the device memory
    }
  } else {
    out.resize(t.data.size() * 4);
    std::memcpy(out.data(), t.data.data(), out.size());
  }
  return out;
}

namespace {
// fp32 -> bf16 of n elements (num::f32_to_bf16), cloned per host ISA so that it runs 16 or 8 lanes wide.
[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] void to_bf16(const float* src, size_t n,
                                                                                   uint16_t* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = num::f32_to_bf16(src[i]);
}
}  // namespace

// Writes `t` to device memory at `addr` as `dtype`, converting a slice at a time: a tensor of many MiB then
// needs no device-sized host copy (whose fresh pages cost more than the conversion).
void Runtime::write_tensor(uint64_t addr, const HostTensor& t, model::DType dtype) {
  if (dtype != model::DType::kBf16) {
    driver_.write(addr, to_device_bytes(t, dtype));
    return;
  }
  constexpr size_t kSlice = 16384;  // elements
  uint16_t buf[kSlice];
  for (size_t i = 0; i < t.data.size(); i += kSlice) {
    const size_t n = std::min(kSlice, t.data.size() - i);
    to_bf16(t.data.data() + i, n, buf);
    driver_.write(addr + 2 * i, {reinterpret_cast<const uint8_t*>(buf), 2 * n});  // little-endian host
  }
}

std::vector<float> from_device_bytes(std::span<const uint8_t> bytes, model::DType dtype) {
  std::vector<float> out;
  if (dtype == model::DType::kBf16) {
    out.resize(bytes.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) out[i] = num::bf16_to_f32(uint16_t(bytes[2 * i] | (bytes[2 * i + 1] << 8)));
  } else {
    out.resize(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
  }
  return out;
}

std::unique_ptr<LoadedModel> Runtime::load(const model::Model& m) {
  model::validate(m);  // in-memory models (from the builder) get the same checks as files
  const drv::DeviceInfo& dev = driver_.info();
  if (m.array_rows != dev.rows || m.array_cols != dev.cols)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("model '{}' was built for {} ({}x{} array) but the device has a {}x{} array", m.name,
                            m.config_name, m.array_rows, m.array_cols, dev.rows, dev.cols));
  uint64_t code_bytes = 0;
  for (const auto& s : m.streams) {
    bool present = s.engine == isa::kEngineTensor || s.engine == isa::kEngineVector || s.engine == isa::kEngineScalar ||
                   (s.engine >= isa::kEngineDma0 && s.engine < isa::kEngineDma0 + dev.dma_queues);
    if (!present)
      throw Error(ErrorCode::kInvalidArgument, fmt::format("model '{}' has a stream for engine {}, which this device does not have",
                                                           m.name, isa::engine_name(s.engine)));
    code_bytes += s.instrs.size() * isa::kInstrBytes;
  }
  auto lm = std::make_unique<LoadedModel>();
  lm->model_ = m;
  lm->window_addr_ = driver_.alloc(std::max<uint64_t>(m.hbm_window_bytes, 1), 4096);
  try {
    lm->code_addr_ = driver_.alloc(std::max<uint64_t>(code_bytes, 64), 64);
  } catch (...) {
    driver_.free(lm->window_addr_);
    throw;
  }
  lm->job_.window_base = lm->window_addr_;
  lm->job_.window_size = m.hbm_window_bytes;
  uint64_t at = lm->code_addr_;
  for (const auto& s : m.streams) {
    lm->job_.streams.push_back({s.engine, at, uint32_t(s.instrs.size())});
    at += s.instrs.size() * isa::kInstrBytes;
  }
  write_model(*lm);
  return lm;
}

void Runtime::write_model(const LoadedModel& lm) {
  const model::Model& m = lm.model_;
  for (size_t i = 0; i < m.streams.size(); ++i) {
    const std::vector<uint8_t> code = isa::encode_stream(m.streams[i].instrs);
    if (!code.empty()) driver_.write(lm.job_.streams[i].addr, code);
  }
  for (const auto& t : m.tensors)
    if (t.kind == model::TensorKind::kConst) driver_.write(lm.window_addr_ + t.hbm_offset, t.data);
}

void Runtime::unload(LoadedModel& lm) {
  if (lm.window_addr_) driver_.free(lm.window_addr_);
  if (lm.code_addr_) driver_.free(lm.code_addr_);
  lm.window_addr_ = lm.code_addr_ = 0;
}

bool Runtime::retryable(const Error& e) {
  if (const auto* f = dynamic_cast<const drv::DeviceFault*>(&e))
    return f->fault() == regs::FaultCode::DmaError || f->fault() == regs::FaultCode::EccUncorrectable;
  if (e.code() == ErrorCode::kDeviceFault) return true;  // the transport's: an uncorrectable word on a host read
  if (const auto* t = dynamic_cast<const drv::TimeoutError*>(&e)) return t->engine_running();
  return dynamic_cast<const drv::CompletionError*>(&e) != nullptr;
}

void Runtime::read_outputs(const LoadedModel& lm, RunResult& result) {
  const model::Model& m = lm.model_;
  for (const auto& t : m.tensors) {
    if (t.kind != model::TensorKind::kOutput) continue;
    HostTensor h;
    h.shape = t.shape;
    if (t.dtype == model::DType::kF32) {  // the device's bytes are the host's floats (little-endian)
      h.data.resize(t.bytes / 4);
      driver_.read(lm.window_addr_ + t.hbm_offset, {reinterpret_cast<uint8_t*>(h.data.data()), t.bytes});
    } else {
      std::vector<uint8_t> bytes(t.bytes);
      driver_.read(lm.window_addr_ + t.hbm_offset, bytes);
      h.data = from_device_bytes(bytes, t.dtype);
    }
    result.outputs[t.name] = std::move(h);
  }
}

void Runtime::clear_outputs(const LoadedModel& lm) {
  // Whole words (the ECC granule), so that a word the host could not read gets fresh data and check bits
  // even where the output shares it with padding or another tensor: inputs and constants are written
  // after this, the job writes outputs and scratch itself.
  constexpr uint64_t kWord = 8;
  const model::Model& m = lm.model_;
  for (const auto& t : m.tensors) {
    if (t.kind != model::TensorKind::kOutput || t.bytes == 0) continue;
    const uint64_t begin = t.hbm_offset / kWord * kWord;
    const uint64_t end = std::min((t.hbm_offset + t.bytes + kWord - 1) / kWord * kWord, m.hbm_window_bytes);
    driver_.write(lm.window_addr_ + begin, std::vector<uint8_t>(end - begin, 0));
  }
}

void Runtime::attempt(LoadedModel& lm, const drv::Job& job, uint32_t capacity, const RunOptions& opts,
                      RunResult& result) {
  const model::Model& m = lm.model_;
  if (opts.profile) driver_.clear_counters();
  drv::JobResult jr = driver_.run(job, opts.timeout_cycles, opts.progress);
  result.cycles = jr.cycles;
  result.notifications = std::move(jr.notifications);
  result.notifications_dropped = jr.notifications_dropped;
  if (opts.profile) {
    Profile p;
    const drv::DeviceInfo& dev = driver_.info();
    p.info = {m.name, m.config_name, dev.rows, dev.cols, dev.dma_queues, dev.clock_mhz, dev.dma_bytes_per_cycle,
              jr.cycles, jr.trace_count > capacity ? jr.trace_count - capacity : 0};
    p.records = driver_.read_trace(job.trace_addr, std::min(jr.trace_count, capacity));
    std::map<int, const model::Stream*> by_engine;
    for (const auto& st : m.streams) by_engine[st.engine] = &st;
    for (const TraceRecord& r : p.records) {
      auto it = by_engine.find(r.engine);
      p.operands.push_back(it != by_engine.end() && r.pc < it->second->instrs.size()
                               ? isa::disassemble(it->second->instrs[r.pc])
                               : "");
    }
    drv::Counters c = driver_.read_counters();
    p.counter_busy.assign(c.busy.begin(), c.busy.end());
    p.info.sbuf_bytes = uint64_t(dev.sbuf_partitions) * dev.sbuf_partition_bytes;
    p.info.psum_bytes = uint64_t(dev.psum_partitions) * dev.psum_bank_bytes * uint64_t(dev.psum_banks);
    const DeviceConfig geometry = memory_geometry(dev);
    p.occupancy = occupancy(geometry, m.streams, p.records);
    // HBM traffic: the HBM side(s) of every DMA copy that ran (footprints count distinct bytes).
    p.info.hbm_bytes_per_cycle = dev.hbm_bytes_per_cycle;
    for (const TraceRecord& r : p.records) {
      auto it = by_engine.find(r.engine);
      if (r.engine < isa::kEngineDma0 || it == by_engine.end() || r.pc >= it->second->instrs.size()) continue;
      const isa::Footprint f = isa::footprint(geometry, it->second->instrs[r.pc]);
      for (const auto* side : {&f.reads, &f.writes})
        for (const isa::Region& g : *side)
          if (g.space == isa::Space::kHbm) p.info.hbm_bytes += g.end - g.begin;
    }
    result.profile = std::move(p);
  }
  read_outputs(lm, result);
}

namespace {
// Disarms the run's fault plan however run() leaves.
struct ArmedPlan {
  ArmedPlan(drv::Transport& t, const fi::Plan& plan) : transport(plan.empty() ? nullptr : &t) {
    if (transport) transport->inject_faults(plan);
  }
  ~ArmedPlan() {
    try {
      if (transport) transport->inject_faults({});
    } catch (const std::exception&) {  // the run's own outcome matters more than the disarm
    }
  }
  drv::Transport* transport;
};
}  // namespace

RunResult Runtime::run(LoadedModel& lm, const TensorMap& inputs, const RunOptions& opts) {
  const model::Model& m = lm.model_;
  for (const auto& [name, t] : inputs) {
    const model::Tensor* mt = m.find_tensor(name);
    if (!mt || mt->kind != model::TensorKind::kInput)
      throw Error(ErrorCode::kInvalidArgument, fmt::format("model '{}' has no input named '{}'", m.name, name));
  }
  for (const auto& t : m.tensors) {
    if (t.kind != model::TensorKind::kInput) continue;
    auto it = inputs.find(t.name);
    if (it == inputs.end())
      throw Error(ErrorCode::kInvalidArgument, fmt::format("input '{}' ({} {}) is not bound", t.name,
                                                           model::dtype_name(t.dtype), shape_string(t.shape)));
    if (it->second.shape != t.shape)
      throw Error(ErrorCode::kInvalidArgument, fmt::format("input '{}': expected shape {}, got {}", t.name,
                                                           shape_string(t.shape), shape_string(it->second.shape)));
  }
  RunResult result;
  drv::Job job = lm.job_;
  uint32_t capacity = 0;
  drv::ScopedMemory trace_buffer(driver_);
  if (opts.profile) {
    // One record per instruction: the buffer holds the whole job.
    capacity = std::max<uint32_t>(uint32_t(m.instruction_count()), 1);
    job.trace_addr = trace_buffer.alloc(uint64_t(capacity) * kTraceRecordBytes, 64);
    job.trace_capacity = capacity;
  }
  ArmedPlan armed(driver_.transport(), opts.faults);
  const drv::Recovery before = driver_.recovery_totals();
  const uint64_t start = driver_.cycle();
  for (uint32_t n = 1;; ++n) {
    try {
      // The job reads only what the runtime writes here (and the code and constants of load(), written
      // again before a retry): a resubmission starts from the same state as the first submission.
      if (n > 1) write_model(lm);
      for (const auto& t : m.tensors)
        if (t.kind == model::TensorKind::kInput) write_tensor(lm.window_addr_ + t.hbm_offset, inputs.at(t.name), t.dtype);
      attempt(lm, job, capacity, opts, result);
      result.retries = n - 1;
      break;
    } catch (const Error& e) {
      // The device may be halted or in the middle of a job: reset it, also when the error goes to the
      // caller (after a timeout or a lost doorbell the driver already did; once more does no harm). If
      // even that fails (the transport is gone), the original error says more.
      bool reset = true;
      if (e.code() == ErrorCode::kDeviceFault || e.code() == ErrorCode::kTimeout || e.code() == ErrorCode::kDevice) {
        try {
          driver_.reset();
        } catch (const Error&) {
          reset = false;
        }
      }
      if (!reset || !retryable(e) || n > opts.max_retries) throw;
      RecoveryEvent ev{n, e.code(), std::nullopt, e.what()};
      if (const auto* f = dynamic_cast<const drv::DeviceFault*>(&e)) {
        ev.fault = f->fault();
        // An uncorrectable HBM word (an absolute address) in the window gets fresh data and ECC from a
        // whole-word write, in case what the rerun writes there covers it only in part.
        if (f->fault() == regs::FaultCode::EccUncorrectable && isa::addr_space(f->addr()) == uint64_t(isa::Space::kHbm)) {
          const uint64_t word = isa::addr_offset(f->addr()) & ~uint64_t(7);
          if (word >= lm.window_addr_ && word + 8 <= lm.window_addr_ + m.hbm_window_bytes)
            driver_.write(word, std::array<uint8_t, 8>{});
        }
      }
      if (e.code() == ErrorCode::kDeviceFault && !ev.fault) clear_outputs(lm);
      result.recovered.push_back(std::move(ev));
    }
  }
  result.recovery = drv::Recovery::since(before, driver_.recovery_totals());
  result.device_cycles = driver_.cycle() - start;
  return result;
}

}  // namespace tcemu::rt
