// Transposing 16-bit elements between strided host memories, 8 x 8 at a time in SSE2 registers (baseline
// x86-64): what a transposing dma_copy and TensorE's gathering of moving columns do, one element per SBUF
// partition. Internal to the emulator.
#pragma once

#include <emmintrin.h>

#include <cstdint>
#include <cstring>

namespace tcemu::emu {

// dst[j][i] = src[i][j] for i < rows, j < cols (16-bit elements): source row i starts at src + i * src_stride,
// destination row j at dst + j * dst_stride (bytes). The two must not overlap.
inline void transpose_u16(const uint8_t* src, uint64_t src_stride, uint8_t* dst, uint64_t dst_stride, uint64_t rows,
                          uint64_t cols) {
  uint64_t i = 0;
  for (; i + 8 <= rows; i += 8) {
    const uint8_t* s = src + i * src_stride;
    uint64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      __m128i r[8];
      for (int q = 0; q < 8; ++q) r[q] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + q * src_stride + 2 * j));
      const __m128i t0 = _mm_unpacklo_epi16(r[0], r[1]), t1 = _mm_unpackhi_epi16(r[0], r[1]);
      const __m128i t2 = _mm_unpacklo_epi16(r[2], r[3]), t3 = _mm_unpackhi_epi16(r[2], r[3]);
      const __m128i t4 = _mm_unpacklo_epi16(r[4], r[5]), t5 = _mm_unpackhi_epi16(r[4], r[5]);
      const __m128i t6 = _mm_unpacklo_epi16(r[6], r[7]), t7 = _mm_unpackhi_epi16(r[6], r[7]);
      const __m128i u0 = _mm_unpacklo_epi32(t0, t2), u1 = _mm_unpackhi_epi32(t0, t2);
      const __m128i u2 = _mm_unpacklo_epi32(t1, t3), u3 = _mm_unpackhi_epi32(t1, t3);
      const __m128i u4 = _mm_unpacklo_epi32(t4, t6), u5 = _mm_unpackhi_epi32(t4, t6);
      const __m128i u6 = _mm_unpacklo_epi32(t5, t7), u7 = _mm_unpackhi_epi32(t5, t7);
      const __m128i o[8] = {_mm_unpacklo_epi64(u0, u4), _mm_unpackhi_epi64(u0, u4), _mm_unpacklo_epi64(u1, u5),
                            _mm_unpackhi_epi64(u1, u5), _mm_unpacklo_epi64(u2, u6), _mm_unpackhi_epi64(u2, u6),
                            _mm_unpacklo_epi64(u3, u7), _mm_unpackhi_epi64(u3, u7)};
      for (int q = 0; q < 8; ++q)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (j + q) * dst_stride + 2 * i), o[q]);
    }
    for (; j < cols; ++j)
      for (uint64_t q = 0; q < 8; ++q) std::memcpy(dst + j * dst_stride + 2 * (i + q), s + q * src_stride + 2 * j, 2);
  }
  for (; i < rows; ++i)
    for (uint64_t j = 0; j < cols; ++j) std::memcpy(dst + j * dst_stride + 2 * i, src + i * src_stride + 2 * j, 2);
}

}  // namespace tcemu::emu
