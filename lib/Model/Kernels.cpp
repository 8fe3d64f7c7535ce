//===- Kernels.cpp --------------------------------------------------------===//
//
// Written with GCC vector extensions (8 x f32 lanes); lib/Model/CMakeLists.txt
// compiles this file for x86-64-v3 (AVX2 + FMA), which every machine of the
// project's kinds has. The dot product keeps four independent accumulators
// of 8 lanes and reduces them in a fixed order.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Kernels.h"

#include <cstring>

namespace vindex {

typedef float V8 __attribute__((vector_size(32)));
typedef uint16_t U8x16 __attribute__((vector_size(16)));
typedef uint32_t U8x32 __attribute__((vector_size(32)));

static inline V8 load8(const float *P) {
  V8 V;
  std::memcpy(&V, P, sizeof(V));
  return V;
}
static inline void store8(float *P, V8 V) { std::memcpy(P, &V, sizeof(V)); }
static inline V8 loadBF16x8(const uint16_t *P) {
  U8x16 H;
  std::memcpy(&H, P, sizeof(H));
  U8x32 W = __builtin_convertvector(H, U8x32) << 16;
  V8 F;
  std::memcpy(&F, &W, sizeof(F));
  return F;
}
static inline float hsum(V8 V) {
  // Fixed pairwise order.
  float A = (V[0] + V[4]) + (V[2] + V[6]);
  float B = (V[1] + V[5]) + (V[3] + V[7]);
  return A + B;
}

float f16ToFloat(uint16_t H) {
  uint32_t Sign = uint32_t(H & 0x8000) << 16;
  uint32_t Exp = (H >> 10) & 0x1f, Man = H & 0x3ff;
  uint32_t Bits;
  if (Exp == 0) {
    if (Man == 0) {
      Bits = Sign;
    } else { // subnormal: normalise
      int E = -1;
      do {
        ++E;
        Man <<= 1;
      } while (!(Man & 0x400));
      Bits = Sign | (uint32_t(127 - 15 - E) << 23) | ((Man & 0x3ff) << 13);
    }
  } else if (Exp == 31) {
    Bits = Sign | 0x7f800000 | (Man << 13);
  } else {
    Bits = Sign | ((Exp + 127 - 15) << 23) | (Man << 13);
  }
  float F;
  std::memcpy(&F, &Bits, 4);
  return F;
}

float WeightMatrix::at(size_t R, size_t C) const {
  return Type == DType::BF16 ? bf16ToFloat(bf16Row(R)[C]) : f32Row(R)[C];
}

template <bool BF16>
static inline float dotImpl(const float *X, const void *Row, size_t N) {
  V8 A0 = {}, A1 = {}, A2 = {}, A3 = {};
  size_t K = 0;
  auto W = [&](size_t I) {
    if constexpr (BF16)
      return loadBF16x8(static_cast<const uint16_t *>(Row) + I);
    else
      return load8(static_cast<const float *>(Row) + I);
  };
  for (; K + 32 <= N; K += 32) {
    A0 += load8(X + K) * W(K);
    A1 += load8(X + K + 8) * W(K + 8);
    A2 += load8(X + K + 16) * W(K + 16);
    A3 += load8(X + K + 24) * W(K + 24);
  }
  for (; K + 8 <= N; K += 8)
    A0 += load8(X + K) * W(K);
  float S = hsum((A0 + A1) + (A2 + A3));
  for (; K < N; ++K) {
    float WK;
    if constexpr (BF16)
      WK = bf16ToFloat(static_cast<const uint16_t *>(Row)[K]);
    else
      WK = static_cast<const float *>(Row)[K];
    S += X[K] * WK;
  }
  return S;
}

float dotRow(const float *X, const WeightMatrix &W, size_t R) {
  return W.Type == DType::BF16 ? dotImpl<true>(X, W.bf16Row(R), W.Cols)
                               : dotImpl<false>(X, W.f32Row(R), W.Cols);
}

// Four tokens against one weight row share the row's loads; each (t, n) is
// still the same dotImpl sequence of operations as a single call.
template <bool BF16>
static void matmulNTImpl(const float *X, size_t T, size_t XStride,
                         const WeightMatrix &W, size_t N0, size_t N1, float *Y,
                         size_t YStride) {
  const size_t K = W.Cols;
  for (size_t N = N0; N < N1; ++N) {
    const void *Row = BF16 ? static_cast<const void *>(W.bf16Row(N))
                           : static_cast<const void *>(W.f32Row(N));
    for (size_t T0 = 0; T0 < T; ++T0)
      Y[T0 * YStride + N] = dotImpl<BF16>(X + T0 * XStride, Row, K);
  }
}

void matmulNT(const float *X, size_t T, size_t XStride, const WeightMatrix &W,
              size_t N0, size_t N1, float *Y, size_t YStride) {
  if (W.Type == DType::BF16)
    matmulNTImpl<true>(X, T, XStride, W, N0, N1, Y, YStride);
  else
    matmulNTImpl<false>(X, T, XStride, W, N0, N1, Y, YStride);
}

template <bool BF16>
static inline void axpyImpl(float A, const void *Row, size_t C0, size_t C1,
                            float *Y) {
  V8 AV = {A, A, A, A, A, A, A, A};
  size_t C = C0;
  for (; C + 8 <= C1; C += 8) {
    V8 W;
    if constexpr (BF16)
      W = loadBF16x8(static_cast<const uint16_t *>(Row) + C);
    else
      W = load8(static_cast<const float *>(Row) + C);
    store8(Y + C, load8(Y + C) + AV * W);
  }
  for (; C < C1; ++C) {
    float W = BF16 ? bf16ToFloat(static_cast<const uint16_t *>(Row)[C])
                   : static_cast<const float *>(Row)[C];
    Y[C] += A * W;
  }
}

void axpyRow(float A, const WeightMatrix &W, size_t R, float *Y) {
  if (W.Type == DType::BF16)
    axpyImpl<true>(A, W.bf16Row(R), 0, W.Cols, Y);
  else
    axpyImpl<false>(A, W.f32Row(R), 0, W.Cols, Y);
}

void matmulNN(const float *A, size_t T, size_t AStride, const WeightMatrix &W,
              size_t R0, size_t R1, size_t C0, size_t C1, float *Y,
              size_t YStride) {
  // Rows outer so each feature's vector is read once for all tokens; the
  // sum over rows for an element is in row order whatever the caller splits
  // (callers split by columns only).
  for (size_t R = R0; R < R1; ++R) {
    const void *Row = W.Type == DType::BF16
                          ? static_cast<const void *>(W.bf16Row(R))
                          : static_cast<const void *>(W.f32Row(R));
    for (size_t T0 = 0; T0 < T; ++T0) {
      float Act = A[T0 * AStride + R];
      if (W.Type == DType::BF16)
        axpyImpl<true>(Act, Row, C0, C1, Y + T0 * YStride);
      else
        axpyImpl<false>(Act, Row, C0, C1, Y + T0 * YStride);
    }
  }
}

} // namespace vindex
