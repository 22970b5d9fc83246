// Compiled models and the model file (.tcm) that stores them. A model is what the kernel builder produces
// and the runtime loads: a tensor table laid out in one HBM window, one instruction stream per engine, and
// the bytes of the constant tensors. docs/model-format.md specifies the file layout byte by byte, the
// validation rules and the error-message form.
//
// Producer: kb::Program::finish() (kernels/). Consumers: rt::Runtime::load() (runtime/), the tcemu tool.
// parse()/load() validate everything before returning, so a Model they return is always well formed;
// serialize()/save() refuse to write a model that parse() would reject.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tcemu/isa.h"

namespace tcemu::model {

enum class DType : uint8_t { kBf16 = 1, kF32 = 2 };
size_t dtype_size(DType t);       // bytes per element; 0 for a value outside the enum
// Elements of a tensor of `shape` (1 for a scalar); for shapes whose product fits 64 bits.
inline uint64_t element_count(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}
const char* dtype_name(DType t);  // "bf16", "f32"; "invalid" outside the enum

enum class TensorKind : uint8_t {
  kInput = 1,    // written by the runtime from the caller's arrays before each run
  kOutput = 2,   // read back by the runtime after each run
  kConst = 3,    // written once when the model is loaded, from Tensor::data
  kScratch = 4,  // intermediate; contents undefined at the start of a run
};
const char* kind_name(TensorKind k);  // "input", "output", "const", "scratch"; "invalid" outside the enum

inline constexpr size_t kMaxRank = 8;
// Longest name (model, config, tensor). Names are short so that reading them costs a bounded amount per
// table entry: without a limit, N tensor entries naming N suffixes of one long string would make the loader
// copy and hash O(N^2) bytes from an O(N) file.
inline constexpr size_t kMaxNameBytes = 255;

struct Tensor {
  std::string name;  // unique within the model, 1..kMaxNameBytes bytes, no NUL byte
  DType dtype = DType::kF32;
  TensorKind kind = TensorKind::kScratch;
  std::vector<int64_t> shape;  // row-major; 0..kMaxRank dims, each >= 1; rank 0 is a scalar
  uint64_t hbm_offset = 0;     // byte offset inside the model's HBM window
  uint64_t bytes = 0;          // = product(shape) * dtype_size(dtype)
  std::vector<uint8_t> data;   // constants only: exactly `bytes` bytes (device layout); empty otherwise

  bool operator==(const Tensor&) const = default;
};

struct Stream {
  int engine = 0;  // isa::kEngineTensor, isa::kEngineDma0 + q, ... (isa::engine_name)
  std::vector<isa::Instr> instrs;

  // Same engine and the same instructions, compared field by field through isa::fields().
  bool operator==(const Stream& other) const;
};

struct Model {
  std::string name;                    // 0..kMaxNameBytes bytes, no NUL byte (so is config_name)
  std::string config_name;             // device config it was built for, e.g. "tc1-16"
  int array_rows = 0, array_cols = 0;  // the loader's caller checks these against the device
  uint64_t hbm_window_bytes = 0;       // size of the HBM window the model's DMA addresses are relative to
  std::vector<Tensor> tensors;
  std::vector<Stream> streams;  // at most one per engine, in any order (the file keeps the order)

  const Tensor* find_tensor(const std::string& name) const;  // nullptr if there is none
  size_t instruction_count() const;                          // over all streams
  bool operator==(const Model&) const = default;
};

inline constexpr uint32_t kFormatVersion = 1;

// Checks every rule of docs/model-format.md ("Validation") that applies to an in-memory model; throws
// Error(kInvalidArgument) naming the model, the field (e.g. 'tensor[2].hbm_offset'), expected and found.
void validate(const Model& m);

// The file image of `m`. Throws Error(kInvalidArgument) if validate() rejects m, Error(kEncoding) if an
// instruction field does not fit its encoding.
std::vector<uint8_t> serialize(const Model& m);

// Reads a file image; `source` (usually the file name) starts every error message. Throws Error(kFormat)
// for the first problem found, as "<source>: offset 0x1c: field 'tensor[2].hbm_offset': expected ...,
// found ...". Never reads outside `bytes` and never allocates more than a small multiple of bytes.size().
Model parse(std::span<const uint8_t> bytes, const std::string& source);

// File wrappers: Error(kIo) naming the path and the system's reason; otherwise as serialize()/parse().
void save(const Model& m, const std::string& path);
Model load(const std::string& path);

}  // namespace tcemu::model
