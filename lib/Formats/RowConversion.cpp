//===- RowConversion.cpp --------------------------------------------------===//
//
// Compiled with -mavx2 -mf16c (not -mfma: a fused multiply-add would change
// rounding). Where the hardware and the scalar definition can differ (NaN
// payloads, a Q8_0 block whose scaled values are not finite), the block is
// converted by the scalar definition instead.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/RowConversion.h"

#include "llvm/Support/Endian.h"

#include <cstring>
#include <immintrin.h>

using namespace llvm;

namespace vindex {

namespace {

void bf16ToFloats(const uint8_t *Src, uint64_t N, float *Dst) {
  uint64_t I = 0;
  for (; I + 8 <= N; I += 8) {
    __m128i H = _mm_loadu_si128(reinterpret_cast<const __m128i *>(Src + 2 * I));
    __m256i W = _mm256_slli_epi32(_mm256_cvtepu16_epi32(H), 16);
    _mm256_storeu_ps(Dst + I, _mm256_castsi256_ps(W));
  }
  for (; I < N; ++I)
    Dst[I] = bf16ToFloat(support::endian::read16le(Src + 2 * I));
}

void floatsToF16(const float *Src, uint64_t N, uint8_t *Dst) {
  uint64_t I = 0;
  for (; I + 8 <= N; I += 8) {
    __m256 X = _mm256_loadu_ps(Src + I);
    if (_mm256_movemask_ps(_mm256_cmp_ps(X, X, _CMP_UNORD_Q))) {
      // NaN: floatToF16 writes the canonical quiet NaN, the hardware keeps
      // the payload.
      for (uint64_t J = I; J < I + 8; ++J)
        support::endian::write16le(Dst + 2 * J, floatToF16(Src[J]));
      continue;
    }
    __m128i H = _mm256_cvtps_ph(X, _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i *>(Dst + 2 * I), H);
  }
  for (; I < N; ++I)
    support::endian::write16le(Dst + 2 * I, floatToF16(Src[I]));
}

/// quantizeQ8_0 eight lanes at a time: the maximum is exact in any order,
/// X * ID is the same single multiply, and roundf (half away from zero) is
/// trunc plus a correction on the exact remainder.
void quantizeQ8_0Row(const float *Src, uint64_t N, uint8_t *Dst) {
  const __m256 Abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 Half = _mm256_set1_ps(0.5f), MinusHalf = _mm256_set1_ps(-0.5f);
  const __m256 One = _mm256_set1_ps(1.0f), Limit = _mm256_set1_ps(128.0f);
  const __m256i Order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (uint64_t B = 0; B < N / kQ8_0Block; ++B) {
    const float *X = Src + B * kQ8_0Block;
    uint8_t *Y = Dst + B * kQ8_0BlockBytes;
    __m256 V[4], M = _mm256_setzero_ps();
    for (int K = 0; K < 4; ++K) {
      V[K] = _mm256_loadu_ps(X + 8 * K);
      M = _mm256_max_ps(M, _mm256_and_ps(V[K], Abs));
    }
    __m128 M4 =
        _mm_max_ps(_mm256_castps256_ps128(M), _mm256_extractf128_ps(M, 1));
    M4 = _mm_max_ps(M4, _mm_movehl_ps(M4, M4));
    M4 = _mm_max_ss(M4, _mm_shuffle_ps(M4, M4, 1));
    float D = _mm_cvtss_f32(M4) / 127.0f;
    float ID = D ? 1.0f / D : 0.0f;
    __m256 Scale = _mm256_set1_ps(ID);
    __m256i Q[4];
    int Bad = 0;
    for (int K = 0; K < 4; ++K) {
      __m256 S = _mm256_mul_ps(V[K], Scale);
      Bad |= _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_and_ps(S, Abs), Limit, _CMP_NLT_UQ));
      __m256 T = _mm256_round_ps(S, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      __m256 Rem = _mm256_sub_ps(S, T);
      T = _mm256_add_ps(
          T, _mm256_and_ps(_mm256_cmp_ps(Rem, Half, _CMP_GE_OQ), One));
      T = _mm256_sub_ps(
          T, _mm256_and_ps(_mm256_cmp_ps(Rem, MinusHalf, _CMP_LE_OQ), One));
      Q[K] = _mm256_cvttps_epi32(T);
    }
    if (Bad) { // NaN or infinity in the block, or a scale that overflows
      quantizeQ8_0(X, kQ8_0Block, Y);
      continue;
    }
    support::endian::write16le(Y, floatToF16(D));
    __m256i P = _mm256_packs_epi16(_mm256_packs_epi32(Q[0], Q[1]),
                                   _mm256_packs_epi32(Q[2], Q[3]));
    P = _mm256_permutevar8x32_epi32(P, Order);
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(Y + 2), P);
  }
}

} // namespace

void decodeRow(const uint8_t *Src, DType T, uint64_t N, float *Dst) {
  switch (T) {
  case DType::F32:
    std::memcpy(Dst, Src, N * 4);
    return;
  case DType::F16:
    for (uint64_t I = 0; I < N; ++I)
      Dst[I] = f16ToFloat(support::endian::read16le(Src + 2 * I));
    return;
  case DType::BF16:
    bf16ToFloats(Src, N, Dst);
    return;
  }
}

void decodeRow(const uint8_t *Src, GGMLType T, uint64_t N, float *Dst) {
  switch (T) {
  case GGMLType::F32:
    return decodeRow(Src, DType::F32, N, Dst);
  case GGMLType::F16:
    return decodeRow(Src, DType::F16, N, Dst);
  case GGMLType::BF16:
    return decodeRow(Src, DType::BF16, N, Dst);
  case GGMLType::Q8_0:
    return dequantizeQ8_0(Src, N, Dst);
  }
}

void encodeRow(const float *Src, uint64_t N, GGMLType T, uint8_t *Dst) {
  switch (T) {
  case GGMLType::F32:
    std::memcpy(Dst, Src, N * 4);
    return;
  case GGMLType::F16:
    floatsToF16(Src, N, Dst);
    return;
  case GGMLType::BF16:
    for (uint64_t I = 0; I < N; ++I)
      support::endian::write16le(Dst + 2 * I, floatToBF16(Src[I]));
    return;
  case GGMLType::Q8_0:
    quantizeQ8_0Row(Src, N, Dst);
    return;
  }
}

} // namespace vindex
