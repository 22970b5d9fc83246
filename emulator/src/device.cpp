// The host-facing facade of the TC1 model (tcemu/emu/device.h).
#include "tcemu/emu/device.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "tc1.h"
#include "tcemu/error.h"

// libsystemc's own main() calls sc_main; tcemu programs have their own main and never call it.
int sc_main(int, char*[]) { return 1; }

namespace tcemu::emu {

// ---- Device (host-facing facade) -----------------------------------------------------------------

namespace {
bool g_device_exists = false;
constexpr uint64_t kAllocBase = 64 * 1024;  // HBM below this stays unused: address 0 is never valid
}  // namespace

Device::Device(const DeviceConfig& config, const DeviceOptions& options) {
  if (g_device_exists)
    throw Error(ErrorCode::kDevice, "a TC1 device already exists in this process (SystemC allows one simulation per process)");
  ::setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  tc1_ = std::make_unique<Tc1>("tc1", config, options);
  g_device_exists = true;
  sc_core::sc_start(sc_core::SC_ZERO_TIME);  // elaborate and let every process reach its first wait
  if (tc1_->hbm().size() > kAllocBase) free_[kAllocBase] = tc1_->hbm().size() - kAllocBase;
  tc1_->open_context();  // context 0, the default
}

Device::~Device() = default;

const DeviceConfig& Device::config() const { return tc1_->config(); }

void Device::check_context(int ctx) const {
  if (!tc1_->context_open(ctx))
    throw Error(ErrorCode::kInvalidArgument, fmt::format("device context {} is not open", ctx));
}

int Device::open_context() { return tc1_->open_context(); }

void Device::close_context(int ctx) {
  check_context(ctx);
  // The blocks are freed while the context is still open (hbm_free checks that it is); no simulated time
  // passes before close_context aborts its job, so the job never touches a freed page.
  std::vector<uint64_t> mine;
  for (auto& [addr, b] : used_)
    if (b.ctx == ctx) mine.push_back(addr);
  for (uint64_t a : mine) hbm_free(ctx, a);
  tc1_->close_context(ctx);
}

uint32_t Device::mmio_read(int ctx, uint32_t offset) {
  check_context(ctx);
  return tc1_->mmio_read(ctx, offset);
}
void Device::mmio_write(int ctx, uint32_t offset, uint32_t value) {
  check_context(ctx);
  tc1_->mmio_write(ctx, offset, value);
}

namespace {
void check_hbm_range(const Tc1& t, const SparseMemory& m, int ctx, uint64_t addr, uint64_t n, const char* what) {
  if (addr > m.size() || n > m.size() - addr)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} of {} bytes at HBM 0x{:x} is outside HBM ({} bytes)", what, n, addr, m.size()));
  if (!t.owns(ctx, addr, n))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} of {} bytes at HBM 0x{:x} touches memory this context did not allocate", what, n, addr));
}
}  // namespace

void Device::hbm_read(int ctx, uint64_t addr, std::span<uint8_t> dst) {
  check_context(ctx);
  check_hbm_range(*tc1_, tc1_->hbm(), ctx, addr, dst.size(), "read");
  tc1_->host_ecc(ctx, addr, dst.size(), false);
  tc1_->hbm().read(addr, dst.data(), dst.size());
}

void Device::hbm_write(int ctx, uint64_t addr, std::span<const uint8_t> src) {
  check_context(ctx);
  check_hbm_range(*tc1_, tc1_->hbm(), ctx, addr, src.size(), "write");
  tc1_->host_ecc(ctx, addr, src.size(), true);
  tc1_->hbm().write(addr, src.data(), src.size());
}

void Device::inject_faults(int ctx, const fi::Plan& plan) {
  check_context(ctx);
  tc1_->arm_faults(ctx, plan);
}

uint64_t Device::hbm_alloc(int ctx, uint64_t bytes, uint64_t align) {
  check_context(ctx);
  if (bytes == 0 || align == 0 || (align & (align - 1)))
    throw Error(ErrorCode::kInvalidArgument, fmt::format("alloc: bad request of {} bytes aligned to {}", bytes, align));
  const bool pages = tc1_->isolated();
  // Rounding up to pages must not wrap: a request larger than HBM stays as it is and fits nowhere.
  const uint64_t want = pages && bytes <= tc1_->hbm().size() ? (bytes + kPageBytes - 1) / kPageBytes * kPageBytes : bytes;
  if (pages) align = std::max(align, kPageBytes);
  uint64_t largest = 0;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    uint64_t start = (it->first + align - 1) & ~(align - 1);
    uint64_t pad = start - it->first;
    largest = std::max(largest, it->second > pad ? it->second - pad : 0);
    if (it->second < pad || it->second - pad < want) continue;
    uint64_t base = it->first, size = it->second;
    free_.erase(it);
    if (pad) free_[base] = pad;
    if (size - pad > want) free_[start + want] = size - pad - want;
    used_[start] = {want, ctx};
    if (pages) {
      tc1_->hbm().discard(start, want);  // a new owner finds zeros, not the last owner's data
      tc1_->set_owner(start, want, ctx);
    }
    return start;
  }
  throw Error(ErrorCode::kCapacity, fmt::format("HBM allocation of {} bytes (aligned to {}) failed: largest free block is {} bytes of {} free",
                                                bytes, align, largest, hbm_bytes_free()));
}

void Device::hbm_free(int ctx, uint64_t addr) {
  check_context(ctx);
  auto it = used_.find(addr);
  if (it == used_.end() || it->second.ctx != ctx)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("free: 0x{:x} is not an allocated HBM block", addr));
  const uint64_t size = it->second.size;
  used_.erase(it);
  if (tc1_->isolated()) {
    tc1_->set_owner(addr, size, -1);
    tc1_->hbm().discard(addr, size);
    tc1_->host_ecc(ctx, addr, size, true);  // the pages are fresh: no flipped bits left in them
  }
  auto [pos, ok] = free_.emplace(addr, size);
  auto next = std::next(pos);
  if (next != free_.end() && pos->first + pos->second == next->first) {
    pos->second += next->second;
    free_.erase(next);
  }
  if (pos != free_.begin()) {
    auto prev = std::prev(pos);
    if (prev->first + prev->second == pos->first) {
      prev->second += pos->second;
      free_.erase(pos);
    }
  }
}

uint64_t Device::hbm_bytes_free() const {
  uint64_t n = 0;
  for (auto& [a, s] : free_) n += s;
  return n;
}

bool Device::run(uint64_t max_cycles, uint32_t ctx_mask) {
  auto asserted = [&] {
    for (int c = 0; c < kMaxContexts; ++c)
      if ((ctx_mask >> c & 1u) && tc1_->context_open(c) && tc1_->irq_line(c)) return true;
    return false;
  };
  if (asserted()) return true;
  if (max_cycles == 0) {
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    return asserted();
  }
  // An interrupt of a context outside the mask pauses the simulation too; carry on until the end.
  const sc_core::sc_time end = sc_core::sc_time_stamp() + kCycle * double(max_cycles);
  while (sc_core::sc_time_stamp() < end) {
    sc_core::sc_start(end - sc_core::sc_time_stamp());
    if (asserted()) return true;
  }
  return asserted();
}

bool Device::irq_asserted(int ctx) const { return tc1_->context_open(ctx) && tc1_->irq_line(ctx); }
uint64_t Device::cycle() const { return tc1_->cycle(); }
uint64_t Device::hbm_resident_bytes() const { return tc1_->hbm().resident_bytes(); }

}  // namespace tcemu::emu
