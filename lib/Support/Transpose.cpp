//===- Transpose.cpp ------------------------------------------------------===//
//
// The transpose runs once per down projection on every decompose and compile
// (1.8 GB for Gemma 3 4B), so it is vectorised: 8x8 blocks of 16-bit or 4x4
// blocks of 32-bit elements are transposed in SSE2 registers (baseline
// x86-64), inside 64x64 tiles that keep both sides in L1.
//
//===----------------------------------------------------------------------===//
#include "vindex/Support/Transpose.h"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace vindex {

// Element by element through memcpy: safetensors does not align tensor
// data, so the pointers may not be aligned for T.
template <typename T>
static void transposeScalar(const T *Src, uint64_t SrcStride,
                            uint64_t DstStride, uint64_t R0, uint64_t R1,
                            uint64_t C0, uint64_t C1, T *Dst) {
  const char *S = reinterpret_cast<const char *>(Src);
  char *D = reinterpret_cast<char *>(Dst);
  for (uint64_t R = R0; R < R1; ++R)
    for (uint64_t C = C0; C < C1; ++C)
      std::memcpy(D + (C * DstStride + R) * sizeof(T),
                  S + (R * SrcStride + C) * sizeof(T), sizeof(T));
}

#if defined(__SSE2__)
// Dst[c][r] = Src[r][c] for an 8x8 block of 16-bit elements.
static inline void transpose8x8u16(const uint16_t *Src, uint64_t SrcStride,
                                   uint16_t *Dst, uint64_t DstStride) {
  __m128i R[8];
  for (int I = 0; I < 8; ++I)
    R[I] =
        _mm_loadu_si128(reinterpret_cast<const __m128i *>(Src + I * SrcStride));
  __m128i A0 = _mm_unpacklo_epi16(R[0], R[1]),
          A1 = _mm_unpackhi_epi16(R[0], R[1]);
  __m128i A2 = _mm_unpacklo_epi16(R[2], R[3]),
          A3 = _mm_unpackhi_epi16(R[2], R[3]);
  __m128i A4 = _mm_unpacklo_epi16(R[4], R[5]),
          A5 = _mm_unpackhi_epi16(R[4], R[5]);
  __m128i A6 = _mm_unpacklo_epi16(R[6], R[7]),
          A7 = _mm_unpackhi_epi16(R[6], R[7]);
  __m128i B0 = _mm_unpacklo_epi32(A0, A2), B1 = _mm_unpackhi_epi32(A0, A2);
  __m128i B2 = _mm_unpacklo_epi32(A1, A3), B3 = _mm_unpackhi_epi32(A1, A3);
  __m128i B4 = _mm_unpacklo_epi32(A4, A6), B5 = _mm_unpackhi_epi32(A4, A6);
  __m128i B6 = _mm_unpacklo_epi32(A5, A7), B7 = _mm_unpackhi_epi32(A5, A7);
  __m128i O[8] = {_mm_unpacklo_epi64(B0, B4), _mm_unpackhi_epi64(B0, B4),
                  _mm_unpacklo_epi64(B1, B5), _mm_unpackhi_epi64(B1, B5),
                  _mm_unpacklo_epi64(B2, B6), _mm_unpackhi_epi64(B2, B6),
                  _mm_unpacklo_epi64(B3, B7), _mm_unpackhi_epi64(B3, B7)};
  for (int I = 0; I < 8; ++I)
    _mm_storeu_si128(reinterpret_cast<__m128i *>(Dst + I * DstStride), O[I]);
}

// Dst[c][r] = Src[r][c] for a 4x4 block of 32-bit elements.
static inline void transpose4x4u32(const uint32_t *Src, uint64_t SrcStride,
                                   uint32_t *Dst, uint64_t DstStride) {
  __m128i R0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(Src));
  __m128i R1 =
      _mm_loadu_si128(reinterpret_cast<const __m128i *>(Src + SrcStride));
  __m128i R2 =
      _mm_loadu_si128(reinterpret_cast<const __m128i *>(Src + 2 * SrcStride));
  __m128i R3 =
      _mm_loadu_si128(reinterpret_cast<const __m128i *>(Src + 3 * SrcStride));
  __m128i A0 = _mm_unpacklo_epi32(R0, R1), A1 = _mm_unpackhi_epi32(R0, R1);
  __m128i A2 = _mm_unpacklo_epi32(R2, R3), A3 = _mm_unpackhi_epi32(R2, R3);
  _mm_storeu_si128(reinterpret_cast<__m128i *>(Dst),
                   _mm_unpacklo_epi64(A0, A2));
  _mm_storeu_si128(reinterpret_cast<__m128i *>(Dst + DstStride),
                   _mm_unpackhi_epi64(A0, A2));
  _mm_storeu_si128(reinterpret_cast<__m128i *>(Dst + 2 * DstStride),
                   _mm_unpacklo_epi64(A1, A3));
  _mm_storeu_si128(reinterpret_cast<__m128i *>(Dst + 3 * DstStride),
                   _mm_unpackhi_epi64(A1, A3));
}
#endif

template <typename T, unsigned K>
static void transposeTiled(const T *Src, uint64_t SrcStride, uint64_t Rows,
                           uint64_t Cols, T *Dst, uint64_t DstStride) {
  constexpr uint64_t Tile = 64;
  for (uint64_t R0 = 0; R0 < Rows; R0 += Tile) {
    uint64_t R1 = std::min(Rows, R0 + Tile);
    for (uint64_t C0 = 0; C0 < Cols; C0 += Tile) {
      uint64_t C1 = std::min(Cols, C0 + Tile);
#if defined(__SSE2__)
      // Whole KxK blocks in registers, the ragged edges element by element.
      uint64_t RB = R0 + (R1 - R0) / K * K, CB = C0 + (C1 - C0) / K * K;
      for (uint64_t R = R0; R < RB; R += K)
        for (uint64_t C = C0; C < CB; C += K) {
          if constexpr (K == 8)
            transpose8x8u16(Src + R * SrcStride + C, SrcStride,
                            Dst + C * DstStride + R, DstStride);
          else
            transpose4x4u32(Src + R * SrcStride + C, SrcStride,
                            Dst + C * DstStride + R, DstStride);
        }
      transposeScalar(Src, SrcStride, DstStride, R0, RB, CB, C1, Dst);
      transposeScalar(Src, SrcStride, DstStride, RB, R1, C0, C1, Dst);
#else
      transposeScalar(Src, SrcStride, DstStride, R0, R1, C0, C1, Dst);
#endif
    }
  }
}

void transposeStrided(const uint8_t *Src, uint64_t SrcStride, uint64_t Rows,
                      uint64_t Cols, unsigned ElemSize, uint8_t *Dst,
                      uint64_t DstStride) {
  if (ElemSize == 2)
    transposeTiled<uint16_t, 8>(reinterpret_cast<const uint16_t *>(Src),
                                SrcStride, Rows, Cols,
                                reinterpret_cast<uint16_t *>(Dst), DstStride);
  else
    transposeTiled<uint32_t, 4>(reinterpret_cast<const uint32_t *>(Src),
                                SrcStride, Rows, Cols,
                                reinterpret_cast<uint32_t *>(Dst), DstStride);
}

void transposeMatrix(const uint8_t *Src, uint64_t Rows, uint64_t Cols,
                     unsigned ElemSize, uint8_t *Dst) {
  transposeStrided(Src, Cols, Rows, Cols, ElemSize, Dst, Rows);
}

} // namespace vindex
