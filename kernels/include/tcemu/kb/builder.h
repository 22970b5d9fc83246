// The kernel builder: tensors in HBM, tiles in SBUF and PSUM from an allocator that checks capacity when the
// kernel is built, one call per instruction, and automatic synchronisation.
//
// Every instruction's footprint (isa::footprint: the bytes of HBM, SBUF and PSUM it reads and writes) is
// compared with what earlier instructions touched: a read after a write (RAW), a write after a read (WAR)
// and a write after a write (WAW) on overlapping bytes become a dependency, which kb::Program turns into a
// semaphore wait (semaphore e counts the completed instructions of engine e). Kernel authors never write a
// semaphore, and a tile can be reused, or its memory given to another tile, at any time: the next writer
// waits for the last readers of the bytes it overwrites. docs/kernels.md, "Builder", is the user guide.
//
// DMA copies go to the queue the builder's static schedule estimate says is free first (or to queues the
// caller names), optionally split over several queues; that estimate (cycles per instruction from
// docs/isa.md's timing rules, ignoring HBM sharing) only chooses queues, it never affects correctness.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tcemu/config.h"
#include "tcemu/footprint.h"
#include "tcemu/isa.h"
#include "tcemu/kb/program.h"
#include "tcemu/model.h"

namespace tcemu::kb {

uint32_t elem_bytes(isa::DType t);
isa::DType isa_dtype(model::DType t);

// One side of a dma_copy: runs of `run_elems` contiguous elements of `dtype`, repeated over up to three
// dimensions (count, byte stride), innermost first. Both sides of a copy have the same counts; when their
// dtypes differ the copy converts (docs/isa.md, dma_copy casts).
struct Ap {
  uint64_t addr = 0;  // device address of the first element (hbm:/sbuf:/psum:)
  isa::DType dtype = isa::DType::kF32;
  uint64_t run_elems = 0;
  std::vector<std::pair<uint64_t, uint64_t>> dims;  // (count, byte stride), innermost first; at most 3
  std::string what;                                 // for error messages: "tensor 'b'" / "tile 'x'"
  uint64_t runs() const;
  uint64_t bytes() const { return runs() * run_elems * elem_bytes(dtype); }
};

// A tensor in the model's HBM window, row-major.
struct Dram {
  std::string name;
  isa::DType dtype = isa::DType::kF32;
  std::vector<int64_t> shape;
  uint64_t addr = 0;  // hbm: device address
  uint64_t elems() const;
  uint64_t cols() const { return shape.empty() ? 1 : uint64_t(shape.back()); }  // last dimension
  // Rows [r0, r0 + nr) x columns [c0, c0 + nc) of the tensor seen as [elems / cols, cols]: nr runs of nc.
  Ap rows(uint64_t r0, uint64_t nr, uint64_t c0, uint64_t nc) const;
  // Any pattern: runs of `run_elems` from element `offset`, dims as (count, stride in elements).
  Ap ap(uint64_t offset, uint64_t run_elems, std::initializer_list<std::pair<uint64_t, uint64_t>> dims) const;
};

// A view of SBUF or PSUM: `np` partitions from `part`, and in each `n1` x `n0` elements of `dtype` at byte
// `off` + (i1 * s1 + i0 * s0) * size — exactly a VectorE/ScalarE tensor operand (docs/isa.md). Allocations
// are dense [np][n0] tiles; the methods make sub-views.
struct Tile {
  std::string name;
  isa::Space space = isa::Space::kSbuf;
  isa::DType dtype = isa::DType::kF32;
  uint32_t part = 0, np = 0;
  uint64_t off = 0;
  uint32_t n1 = 1, n0 = 0;
  uint32_t s1 = 0, s0 = 1;
  uint64_t partition_bytes = 0;  // of the space (device addresses)

  uint64_t free_elems() const { return uint64_t(n0) * n1; }
  bool dense() const { return s0 == 1 && (n1 == 1 || s1 == n0); }  // contiguous in each partition
  Tile parts(uint32_t p0, uint32_t n) const;                       // partitions [p0, p0 + n) of the view
  Tile cols(uint64_t e0, uint64_t n) const;                        // free elements [e0, e0 + n) of a 1-D view
  Tile col(uint64_t e) const { return cols(e, 1); }                // one element per partition (a column operand)
  Tile view2(uint32_t n1, uint32_t n0, uint32_t s1, uint32_t s0 = 1) const;  // any 2-D pattern from `off`
  Tile bcast(uint32_t n) const;                         // a column repeated n times along the free dimension
  uint64_t addr(uint64_t p = 0, uint64_t e = 0) const;  // device address of element e of partition p
  uint64_t operand() const;                             // the 64-bit tensor operand word
  uint64_t column() const;                              // the 32-bit column operand (first element)
  Ap ap() const;                                        // as one side of a dma_copy
};

// A per-partition scalar: an fp32 immediate or a column.
struct Scalar {
  Scalar(float v) : imm(v) {}           // NOLINT: implicit on purpose
  Scalar(const Tile& c) : column(c) {}  // NOLINT
  float imm = 0;
  std::optional<Tile> column;
};

struct DmaOpts {
  std::vector<int> queues;  // queue numbers (0 .. dma_queues-1) to choose from; empty: all
  int split = 0;            // copies to split into along the outer dimension; 0: by size (>= 32 KiB each)
};

struct ActOpts {
  ActOpts(Scalar s = 1.0f, std::optional<Tile> b = std::nullopt, std::optional<Tile> a = std::nullopt)  // NOLINT
      : scale(std::move(s)), bias(std::move(b)), acc(std::move(a)) {}
  Scalar scale;
  std::optional<Tile> bias;  // column, added after the scale
  std::optional<Tile> acc;   // column receiving the per-partition sum of the outputs
};

// DMA queues for a stream of tiles: loads on the first queues, stores on the others, in proportion to their
// bytes (at least one each). A queue runs its copies in order, so a load queued behind a store that waits
// for compute would wait too; with separate queues the loads run ahead as far as the buffers allow. Before
// the first store the loads may use every queue, and so may the last stores (no load comes after them).
// Every copy is split over its queues in pieces of at least 2 KiB (a piece's 64-cycle start latency stays
// under half its transfer time).
class StreamQueues {
 public:
  StreamQueues(const DeviceConfig& cfg, uint64_t load_bytes, uint64_t store_bytes);
  DmaOpts load(uint64_t bytes) const;        // every queue until the first store(), then the load queues
  DmaOpts store(uint64_t bytes, bool last);  // the store queues; every queue when `last`
  DmaOpts any(uint64_t bytes) const;         // every queue (copies nothing waits behind)

 private:
  static DmaOpts spread(const std::vector<int>& queues, uint64_t bytes);
  std::vector<int> load_, store_, all_;
  bool stored_ = false;
};

class Kernel {
 public:
  Kernel(const DeviceConfig& cfg, std::string name);
  const DeviceConfig& config() const { return cfg_; }
  const std::string& name() const { return name_; }

  // ---- HBM tensors ----
  Dram input(const std::string& name, model::DType dtype, std::vector<int64_t> shape);
  Dram output(const std::string& name, model::DType dtype, std::vector<int64_t> shape);
  Dram scratch(const std::string& name, model::DType dtype, std::vector<int64_t> shape);
  Dram tensor(const std::string& name, model::DType dtype, model::TensorKind kind, std::vector<int64_t> shape);
  // A constant embedded in the model file (written when the model is loaded): `values` row-major, rounded
  // to bf16 (nearest even) for a bf16 tensor.
  Dram constant(const std::string& name, model::DType dtype, std::vector<int64_t> shape,
                const std::vector<float>& values);

  // ---- on-chip tiles ----
  // A dense tile of np partitions x n elements. Throws Error(kCapacity) naming the tile, its size and
  // what holds the space when it does not fit. PSUM tiles are f32 and never cross a bank unless larger
  // than one (then they start at a bank).
  Tile sbuf(const std::string& name, isa::DType dtype, uint32_t np, uint64_t n);
  Tile psum(const std::string& name, uint32_t np, uint64_t n);
  void release(const Tile& t);  // gives its bytes back (later users wait for its readers automatically)
  // Allocations made while a Scope lives are released when it ends.
  class Scope {
   public:
    explicit Scope(Kernel& k);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Kernel& k_;
    size_t mark_;
  };
  uint64_t sbuf_available() const;  // bytes per partition above the highest live SBUF tile
  // The most buffers, up to `want` (at least 1), of `bytes` per partition each that fit together in one
  // free SBUF range next to the live tiles. With 1 the real allocation reports what does not fit.
  int buffers_that_fit(int want, uint64_t bytes) const;
  uint64_t sbuf_peak_bytes() const { return peak_[0]; }  // per partition
  uint64_t psum_peak_bytes() const { return peak_[1]; }

  // ---- instructions (each returns the issued instruction's completion) ----
  std::vector<Ref> dma(const Ap& dst, const Ap& src, const DmaOpts& opts = {});
  Ref matmul(const Tile& out, const Tile& stationary, const Tile& moving, bool accumulate);
  Ref pe_transpose(const Tile& out, const Tile& in);
  Ref activation(const Tile& out, const Tile& in, isa::ActFunc f, const ActOpts& opts = {});
  Ref tensor_tensor(const Tile& out, const Tile& a, const Tile& b, isa::AluOp op);
  Ref tensor_scalar(const Tile& out, const Tile& in, isa::AluOp op0, const Scalar& s0,
                    isa::AluOp op1 = isa::AluOp::kBypass, const Scalar& s1 = 0.0f, bool rev0 = false,
                    bool rev1 = false);
  Ref tensor_reduce(const Tile& out, const Tile& in, isa::AluOp op, int axes = 1);
  Ref tensor_copy(const Tile& out, const Tile& in);
  Ref copy_scalar(const Tile& out, const Tile& in);  // the same copy on ScalarE (identity activation)
  Ref memset(const Tile& out, float value);
  Ref iota(const Tile& out, int32_t base, int32_t pstep, int32_t fstep);
  Ref select(const Tile& out, const Tile& pred, const Tile& a, const Tile& b);
  Ref transpose32(const Tile& out, const Tile& in);  // VectorE 32x32 block transpose
  Ref notify(int engine, uint32_t tag);

  // Any instruction, synchronised like the others (fields except wait/signal as given).
  Ref issue(int engine, isa::Instr in);

  size_t instruction_count() const { return prog_.instruction_count(); }
  uint64_t estimated_cycles() const;  // the queue-choice estimate's makespan (not the device's cycles)
  model::Model finish() const { return prog_.finish(); }

 private:
  struct Alloc {
    std::string name;
    int space;  // 0 sbuf, 1 psum
    uint64_t off, bytes;
    uint32_t np;
    bool live;
  };
  struct Rec {
    uint64_t end;
    Ref writer;
    std::array<uint32_t, isa::kMaxEngines> readers{};
  };
  uint64_t allocate(int space, const std::string& name, uint32_t np, uint64_t bytes, uint64_t align, uint64_t bank);
  std::vector<Ref> hazards(const isa::Footprint& fp);
  void record(const isa::Footprint& fp, Ref r);
  std::map<uint64_t, Rec>& track(isa::Space s, uint32_t partition);
  void split_at(std::map<uint64_t, Rec>& m, uint64_t at);
  uint64_t ready_time(const std::vector<Ref>& deps) const;
  uint64_t cost(const isa::Instr& in) const;  // estimated cycles (docs/isa.md timing)
  Ref emit(int engine, const isa::Instr& in, const isa::Footprint& fp, const std::vector<Ref>& deps);
  Ref compute(int engine, isa::Instr in, const Tile& out, std::initializer_list<const Tile*> ins);

  DeviceConfig cfg_;
  std::string name_;
  Program prog_;
  std::vector<Alloc> allocs_;
  uint64_t peak_[2] = {0, 0};
  std::map<std::pair<int, uint32_t>, std::map<uint64_t, Rec>> mem_;  // (space, partition) -> [begin, end)
  std::array<std::vector<uint64_t>, isa::kMaxEngines> finish_;       // estimated finish per ordinal
  std::array<uint64_t, isa::kMaxEngines> busy_{};                    // estimated engine busy-until
};

// Rotating buffers: next() returns the tiles in turn (double buffering with n = 2). Hazards on reuse are
// the builder's business.
class Ring {
 public:
  Ring(Kernel& k, const std::string& name, isa::Space space, isa::DType dtype, uint32_t np, uint64_t n, int bufs);
  const Tile& next() { return tiles_[i_++ % tiles_.size()]; }
  const Tile& operator[](size_t i) const { return tiles_[i % tiles_.size()]; }
  void release(Kernel& k);

 private:
  std::vector<Tile> tiles_;
  size_t i_ = 0;
};

// Calls fn(index, start, size) for consecutive chunks of `chunk` (the last may be shorter) covering [0, total).
inline void for_chunks(uint64_t total, uint64_t chunk, const std::function<void(uint64_t, uint64_t, uint64_t)>& fn) {
  for (uint64_t i = 0, s = 0; s < total; ++i, s += chunk) fn(i, s, std::min(chunk, total - s));
}
inline uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
inline uint64_t round_up(uint64_t a, uint64_t b) { return ceil_div(a, b) * b; }

}  // namespace tcemu::kb
