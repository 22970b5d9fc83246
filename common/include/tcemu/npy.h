// NumPy .npy files (format versions 1.0, 2.0 and 3.0), as host tensors: fp32, C order. This is how
// inputs reach the runtime and outputs leave it (`tcemu run --input a=a.npy`); numpy's own
// numpy.lib.format documentation is the specification followed here.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tcemu::npy {

struct Array {
  std::vector<int64_t> shape;  // () is a scalar (one element); dims >= 0
  std::vector<float> data;     // C (row-major) order; data.size() == product(shape)

  bool operator==(const Array&) const = default;
};

// Reads little-endian or byte-order-free ('<' or '|') f4, f8, f2, i4 and i8 arrays; everything except f4
// is converted to float (f8 and integers round to nearest). Rejects '>' (big-endian) descrs, structured
// dtypes and fortran_order=True with a message saying so.
// Errors: Error(kIo) "<path>: cannot open: <reason>" / read failures; Error(kFormat) "<path>: <problem>"
// for malformed files (bad magic, unsupported version, header not a dict, missing 'descr'/'shape', data
// shorter or longer than the shape needs: "expected N bytes, found M").
Array load(const std::string& path);

// Writes a v1.0 '<f4' file laid out as numpy writes it (header padded with spaces to a multiple of 64
// bytes, ending in '\n'); v2.0 only if the header would not fit v1.0's 16-bit length.
// Error(kInvalidArgument) if a dim is negative or data.size() != product(shape); Error(kIo) naming the path.
void save(const std::string& path, const Array& a);

// The same without files: `source` (the file name) starts every error message.
Array parse(std::span<const uint8_t> bytes, const std::string& source);
std::vector<uint8_t> serialize(const Array& a);

}  // namespace tcemu::npy
