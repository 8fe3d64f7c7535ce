//===- Kernels.cpp --------------------------------------------------------===//
//
// Written with GCC vector extensions (8 x f32 lanes); lib/Model/CMakeLists.txt
// compiles this file for x86-64-v3 (AVX2 + FMA), which every machine of the
// project's kinds has. The dot product keeps four independent accumulators
// of 8 lanes and reduces them in a fixed order.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <immintrin.h>

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

// exp(x) for 8 lanes: Cephes' range reduction and degree-6 polynomial
// (relative error about 1e-7), so the activations need no libm call per
// element.
static inline V8 expV8(V8 X) {
  const V8 Hi = {88.3762626647949f, 88.3762626647949f, 88.3762626647949f,
                 88.3762626647949f, 88.3762626647949f, 88.3762626647949f,
                 88.3762626647949f, 88.3762626647949f};
  X = X > Hi ? Hi : X;
  X = X < -Hi ? -Hi : X;
  __m256 XM = (__m256)X;
  __m256 FX = _mm256_floor_ps(_mm256_fmadd_ps(
      XM, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  XM = _mm256_fnmadd_ps(FX, _mm256_set1_ps(0.693359375f), XM);
  XM = _mm256_fnmadd_ps(FX, _mm256_set1_ps(-2.12194440e-4f), XM);
  __m256 Y = _mm256_set1_ps(1.9875691500E-4f);
  Y = _mm256_fmadd_ps(Y, XM, _mm256_set1_ps(1.3981999507E-3f));
  Y = _mm256_fmadd_ps(Y, XM, _mm256_set1_ps(8.3334519073E-3f));
  Y = _mm256_fmadd_ps(Y, XM, _mm256_set1_ps(4.1665795894E-2f));
  Y = _mm256_fmadd_ps(Y, XM, _mm256_set1_ps(1.6666665459E-1f));
  Y = _mm256_fmadd_ps(Y, XM, _mm256_set1_ps(5.0000001201E-1f));
  Y = _mm256_fmadd_ps(Y, _mm256_mul_ps(XM, XM), XM);
  Y = _mm256_add_ps(Y, _mm256_set1_ps(1.0f));
  __m256i N = _mm256_cvttps_epi32(FX);
  __m256i Pow2 =
      _mm256_slli_epi32(_mm256_add_epi32(N, _mm256_set1_epi32(127)), 23);
  return (V8)_mm256_mul_ps(Y, _mm256_castsi256_ps(Pow2));
}

static inline V8 splat(float F) { return V8{F, F, F, F, F, F, F, F}; }

// Multiply-adds are always fused, written out rather than left to the
// compiler's contraction, so that a vector lane and the scalar tail compute
// bit-identical chains (results must not depend on where a thread's share
// of a row ends).
static inline V8 fmaV(V8 A, V8 B, V8 C) {
  return (V8)_mm256_fmadd_ps((__m256)A, (__m256)B, (__m256)C);
}
static inline float fmaS(float A, float B, float C) {
  return __builtin_fmaf(A, B, C);
}

static inline V8 activateV8(Activation A, V8 X) {
  switch (A) {
  case Activation::SiLU:
    return X / (splat(1.0f) + expV8(-X));
  case Activation::GeluTanh: {
    // tanh(u) = 1 - 2 / (exp(2u) + 1)
    V8 U = splat(0.7978845608028654f) * (X + splat(0.044715f) * X * X * X);
    V8 Tanh =
        splat(1.0f) - splat(2.0f) / (expV8(splat(2.0f) * U) + splat(1.0f));
    return splat(0.5f) * X * (splat(1.0f) + Tanh);
  }
  case Activation::Gelu: {
    V8 Out;
    for (int I = 0; I < 8; ++I)
      Out[I] = 0.5f * X[I] * (1.0f + std::erf(X[I] * 0.7071067811865476f));
    return Out;
  }
  }
  return X;
}

void activateAndMultiply(Activation A, float *G, const float *U, size_t N) {
  size_t I = 0;
  for (; I + 8 <= N; I += 8)
    store8(G + I, activateV8(A, load8(G + I)) * load8(U + I));
  if (I < N) {
    // The tail goes through the same vector code, so a value does not
    // depend on where in an array it sits.
    float GT[8] = {}, UT[8] = {};
    std::memcpy(GT, G + I, (N - I) * 4);
    std::memcpy(UT, U + I, (N - I) * 4);
    store8(GT, activateV8(A, load8(GT)) * load8(UT));
    std::memcpy(G + I, GT, (N - I) * 4);
  }
}

float WeightMatrix::at(size_t R, size_t C) const {
  if (Type == DType::F16) // exact, as f16ToFloat
    return _cvtsh_ss(bf16Row(R)[C]);
  return Type == DType::BF16 ? bf16ToFloat(bf16Row(R)[C]) : f32Row(R)[C];
}

/// Row R of W as f32 (exact for each type).
static void rowToF32(const WeightMatrix &W, size_t R, float *Out) {
  const size_t K = W.Cols;
  if (W.Type == DType::F32) {
    std::memcpy(Out, W.f32Row(R), K * sizeof(float));
    return;
  }
  const uint16_t *Row = W.bf16Row(R);
  size_t I = 0;
  if (W.Type == DType::BF16) {
    for (; I + 8 <= K; I += 8)
      store8(Out + I, loadBF16x8(Row + I));
  } else {
    for (; I + 8 <= K; I += 8)
      _mm256_storeu_ps(Out + I,
                       _mm256_cvtph_ps(_mm_loadu_si128(
                           reinterpret_cast<const __m128i *>(Row + I))));
  }
  for (; I < K; ++I)
    Out[I] = W.at(R, I);
}

// Every output element is one chain of 8-lane multiply-adds over K in
// steps of 8, a fixed horizontal sum, then the scalar tail: whatever block
// shape computes it, the value is the same, so blocking (and threading) can
// change freely without changing results.
template <bool BF16> static inline V8 loadW(const void *Row, size_t I) {
  if constexpr (BF16)
    return loadBF16x8(static_cast<const uint16_t *>(Row) + I);
  else
    return load8(static_cast<const float *>(Row) + I);
}
template <bool BF16> static inline float scalarW(const void *Row, size_t I) {
  if constexpr (BF16)
    return bf16ToFloat(static_cast<const uint16_t *>(Row)[I]);
  else
    return static_cast<const float *>(Row)[I];
}
template <bool BF16>
static inline const void *rowPtr(const WeightMatrix &W, size_t R) {
  if constexpr (BF16)
    return W.bf16Row(R);
  else
    return W.f32Row(R);
}

/// Y[t][n] for TB tokens x NB rows.
template <bool BF16, unsigned TB, unsigned NB>
static inline void block(const float *X, size_t XStride,
                         const void *const *Rows, size_t K, float *Y,
                         size_t YStride) {
  V8 Acc[TB][NB] = {};
  size_t KV = K / 8 * 8;
  // Generation streams each weight once: prefetch the next block of rows
  // (contiguous after this one) at the pace this block is read, 128 bytes
  // of it per step, since the hardware prefetcher does not see 8 short
  // interleaved streams coming.
  constexpr size_t ElemBytes = BF16 ? 2 : 4;
  const char *Next = static_cast<const char *>(Rows[0]) + NB * K * ElemBytes;
  for (size_t I = 0; I < KV; I += 8) {
    if constexpr (TB == 1 && NB == 8) {
      __builtin_prefetch(Next + I * NB * ElemBytes);
      __builtin_prefetch(Next + I * NB * ElemBytes + 64);
      if constexpr (!BF16) {
        __builtin_prefetch(Next + I * NB * ElemBytes + 128);
        __builtin_prefetch(Next + I * NB * ElemBytes + 192);
      }
    }
    V8 XV[TB];
    for (unsigned T = 0; T < TB; ++T)
      XV[T] = load8(X + T * XStride + I);
    for (unsigned N = 0; N < NB; ++N) {
      V8 WV = loadW<BF16>(Rows[N], I);
      for (unsigned T = 0; T < TB; ++T)
        Acc[T][N] = fmaV(XV[T], WV, Acc[T][N]);
    }
  }
  for (unsigned T = 0; T < TB; ++T)
    for (unsigned N = 0; N < NB; ++N) {
      float S = hsum(Acc[T][N]);
      for (size_t I = KV; I < K; ++I)
        S = fmaS(X[T * XStride + I], scalarW<BF16>(Rows[N], I), S);
      Y[T * YStride + N] = S;
    }
}

template <bool BF16>
static inline float dotImpl(const float *X, const void *Row, size_t N) {
  float Y;
  block<BF16, 1, 1>(X, 0, &Row, N, &Y, 0);
  return Y;
}

float dotRow(const float *X, const WeightMatrix &W, size_t R) {
  if (W.Type == DType::F16) { // the f32 chain over the row widened
    thread_local std::vector<float> Row;
    Row.resize(W.Cols);
    rowToF32(W, R, Row.data());
    return dotImpl<false>(X, Row.data(), W.Cols);
  }
  return W.Type == DType::BF16 ? dotImpl<true>(X, W.bf16Row(R), W.Cols)
                               : dotImpl<false>(X, W.f32Row(R), W.Cols);
}

float dotF32(const float *A, const float *B, size_t N) {
  return dotImpl<false>(A, B, N);
}

void axpyF32(float A, const float *X, float *Y, size_t N) {
  V8 AV = {A, A, A, A, A, A, A, A};
  size_t I = 0;
  for (; I + 8 <= N; I += 8)
    store8(Y + I, fmaV(AV, load8(X + I), load8(Y + I)));
  for (; I < N; ++I)
    Y[I] = fmaS(A, X[I], Y[I]);
}

// bf16 weights against several tokens: widen a panel of 16 rows into an f32
// [K, 16] buffer once, then run the GEMM kernel over every token with it, so
// the conversion is paid once per weight rather than once per token.
static void matmulNTPanelsBF16(const float *X, size_t T, size_t XStride,
                               const WeightMatrix &W, size_t N0, size_t N1,
                               float *Y, size_t YStride) {
  const size_t K = W.Cols;
  constexpr size_t P = 16;
  thread_local std::vector<float> Panel;
  Panel.resize(K * P);
  size_t N = N0;
  for (; N + P <= N1; N += P) {
    for (size_t R = 0; R < P; ++R) {
      const uint16_t *Row = W.bf16Row(N + R);
      for (size_t I = 0; I < K; ++I)
        Panel[I * P + R] = bf16ToFloat(Row[I]);
    }
    gemmKN(X, T, XStride, Panel.data(), K, P, 0, P, Y + N, YStride,
           /*Accumulate=*/false);
  }
  for (; N < N1; ++N)
    for (size_t T0 = 0; T0 < T; ++T0) {
      float Acc = 0;
      const uint16_t *Row = W.bf16Row(N);
      for (size_t I = 0; I < K; ++I)
        Acc = fmaS(X[T0 * XStride + I], bf16ToFloat(Row[I]), Acc);
      Y[T0 * YStride + N] = Acc;
    }
}

template <bool BF16>
static void matmulNTImpl(const float *X, size_t T, size_t XStride,
                         const WeightMatrix &W, size_t N0, size_t N1, float *Y,
                         size_t YStride) {
  const size_t K = W.Cols;
  const void *Rows[8];
  if constexpr (BF16)
    if (T >= 4)
      return matmulNTPanelsBF16(X, T, XStride, W, N0, N1, Y, YStride);
  size_t T0 = 0;
  // 4 tokens x 2 rows: each weight vector is converted once and used 4
  // times, with 8 independent chains in flight.
  for (; T0 + 4 <= T; T0 += 4) {
    const float *XT = X + T0 * XStride;
    float *YT = Y + T0 * YStride;
    size_t N = N0;
    for (; N + 2 <= N1; N += 2) {
      Rows[0] = rowPtr<BF16>(W, N);
      Rows[1] = rowPtr<BF16>(W, N + 1);
      block<BF16, 4, 2>(XT, XStride, Rows, K, YT + N, YStride);
    }
    for (; N < N1; ++N) {
      Rows[0] = rowPtr<BF16>(W, N);
      block<BF16, 4, 1>(XT, XStride, Rows, K, YT + N, YStride);
    }
  }
  // Remaining tokens (generation: one) against 8 rows at a time.
  for (; T0 < T; ++T0) {
    const float *XT = X + T0 * XStride;
    float *YT = Y + T0 * YStride;
    size_t N = N0;
    for (; N + 8 <= N1; N += 8) {
      for (unsigned J = 0; J < 8; ++J)
        Rows[J] = rowPtr<BF16>(W, N + J);
      block<BF16, 1, 8>(XT, 0, Rows, K, YT + N, 0);
    }
    for (; N < N1; ++N) {
      Rows[0] = rowPtr<BF16>(W, N);
      block<BF16, 1, 1>(XT, 0, Rows, K, YT + N, 0);
    }
  }
}

// Y[t][n] = sum_k X[t][k] * Wt[k][n] over the transposed copy: TB tokens
// by 16 columns of accumulators, each element a chain of multiply-adds over
// k in order starting from zero (the scalar tails compute the same chain).
template <unsigned TB, unsigned NV>
static inline void gemmBlock(const float *X, size_t XStride, const float *Wt,
                             size_t Rows, size_t K, size_t N, float *Y,
                             size_t YStride, bool Accumulate) {
  V8 Acc[TB][NV] = {};
  if (Accumulate) // continue the chains where an earlier call left them
    for (unsigned T = 0; T < TB; ++T)
      for (unsigned J = 0; J < NV; ++J)
        Acc[T][J] = load8(Y + T * YStride + N + 8 * J);
  for (size_t I = 0; I < K; ++I) {
    V8 W[NV];
    for (unsigned J = 0; J < NV; ++J)
      W[J] = load8(Wt + I * Rows + N + 8 * J);
    for (unsigned T = 0; T < TB; ++T) {
      V8 XV = splat(X[T * XStride + I]);
      for (unsigned J = 0; J < NV; ++J)
        Acc[T][J] = fmaV(XV, W[J], Acc[T][J]);
    }
  }
  for (unsigned T = 0; T < TB; ++T)
    for (unsigned J = 0; J < NV; ++J)
      store8(Y + T * YStride + N + 8 * J, Acc[T][J]);
}

void gemmKN(const float *X, size_t T, size_t XStride, const float *W, size_t K,
            size_t N, size_t N0, size_t N1, float *Y, size_t YStride,
            bool Accumulate) {
  const size_t Rows = N;
  const float *Wt = W;
  size_t T0 = 0;
  for (unsigned Step; T0 < T; T0 += Step) {
    Step = T - T0 >= 6 ? 6 : T - T0 >= 4 ? 4 : 1;
    const float *XT = X + T0 * XStride;
    float *YT = Y + T0 * YStride;
    // Twelve chains in flight for prompts (6 tokens x 16 columns: more than
    // the 8 that two FMA units of latency 4 need), eight otherwise: 4
    // tokens x 16 columns, or one token x 64 columns (generation).
    size_t Col = N0;
    if (Step == 6) {
      for (; Col + 16 <= N1; Col += 16)
        gemmBlock<6, 2>(XT, XStride, Wt, Rows, K, Col, YT, YStride, Accumulate);
    } else if (Step == 4) {
      for (; Col + 16 <= N1; Col += 16)
        gemmBlock<4, 2>(XT, XStride, Wt, Rows, K, Col, YT, YStride, Accumulate);
    } else {
      for (; Col + 64 <= N1; Col += 64)
        gemmBlock<1, 8>(XT, XStride, Wt, Rows, K, Col, YT, YStride, Accumulate);
      for (; Col + 16 <= N1; Col += 16)
        gemmBlock<1, 2>(XT, XStride, Wt, Rows, K, Col, YT, YStride, Accumulate);
    }
    for (unsigned TT = 0; TT < Step; ++TT)
      for (size_t M = Col; M < N1; ++M) {
        float Acc = Accumulate ? YT[TT * YStride + M] : 0.0f;
        for (size_t I = 0; I < K; ++I)
          Acc = fmaS(XT[TT * XStride + I], Wt[I * Rows + M], Acc);
        YT[TT * YStride + M] = Acc;
      }
  }
}

void matmulNT(const float *X, size_t T, size_t XStride, const WeightMatrix &W,
              size_t N0, size_t N1, float *Y, size_t YStride) {
  if (W.Transposed)
    return gemmKN(X, T, XStride, W.Transposed, W.Cols, W.Rows, N0, N1, Y,
                  YStride, /*Accumulate=*/false);
  if (W.Type == DType::BF16)
    matmulNTImpl<true>(X, T, XStride, W, N0, N1, Y, YStride);
  else
    matmulNTImpl<false>(X, T, XStride, W, N0, N1, Y, YStride);
}

void matmulNTRowPanels(const float *X, size_t T, size_t XStride,
                       const WeightMatrix &W, size_t N0, size_t N1, float *Y,
                       size_t YStride) {
  const size_t K = W.Cols;
  constexpr size_t P = 16;
  thread_local std::vector<float> Panel, Row;
  Panel.resize(K * P);
  Row.resize(K);
  for (size_t N = N0; N < N1; N += P) {
    size_t Width = std::min(P, N1 - N);
    for (size_t R = 0; R < Width; ++R) {
      rowToF32(W, N + R, Row.data());
      for (size_t I = 0; I < K; ++I)
        Panel[I * Width + R] = Row[I];
    }
    gemmKN(X, T, XStride, Panel.data(), K, Width, 0, Width, Y + N, YStride,
           /*Accumulate=*/false);
  }
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
    store8(Y + C, fmaV(AV, W, load8(Y + C)));
  }
  for (; C < C1; ++C) {
    float W = BF16 ? bf16ToFloat(static_cast<const uint16_t *>(Row)[C])
                   : static_cast<const float *>(Row)[C];
    Y[C] = fmaS(A, W, Y[C]);
  }
}

void axpyRow(float A, const WeightMatrix &W, size_t R, float *Y) {
  if (W.Type == DType::BF16)
    axpyImpl<true>(A, W.bf16Row(R), 0, W.Cols, Y);
  else
    axpyImpl<false>(A, W.f32Row(R), 0, W.Cols, Y);
}

// Y[t][c0:c1] += sum_r A[t][r] * W[r][c0:c1], with the partial sums of 64
// columns held in registers across all rows (no store per row). The sum for
// an element runs over rows in order starting from zero and is then added
// to Y once, so it equals a chain of axpyRow calls into a zeroed Y.
template <bool BF16>
static void matmulNNImpl(const float *A, size_t T, size_t AStride,
                         const WeightMatrix &W, size_t R0, size_t R1, size_t C0,
                         size_t C1, float *Y, size_t YStride) {
  constexpr size_t Block = 64;
  for (size_t T0 = 0; T0 < T; ++T0) {
    const float *AT = A + T0 * AStride;
    float *YT = Y + T0 * YStride;
    size_t C = C0;
    for (; C + Block <= C1; C += Block) {
      V8 Acc[Block / 8] = {};
      for (size_t R = R0; R < R1; ++R) {
        float S = AT[R];
        V8 AV = {S, S, S, S, S, S, S, S};
        const void *Row = rowPtr<BF16>(W, R);
        for (size_t J = 0; J < Block / 8; ++J)
          Acc[J] = fmaV(AV, loadW<BF16>(Row, C + 8 * J), Acc[J]);
      }
      for (size_t J = 0; J < Block / 8; ++J)
        store8(YT + C + 8 * J, load8(YT + C + 8 * J) + Acc[J]);
    }
    for (; C + 8 <= C1; C += 8) {
      V8 Acc = {};
      for (size_t R = R0; R < R1; ++R) {
        float S = AT[R];
        V8 AV = {S, S, S, S, S, S, S, S};
        Acc = fmaV(AV, loadW<BF16>(rowPtr<BF16>(W, R), C), Acc);
      }
      store8(YT + C, load8(YT + C) + Acc);
    }
    for (; C < C1; ++C) {
      float Acc = 0;
      for (size_t R = R0; R < R1; ++R)
        Acc = fmaS(AT[R], scalarW<BF16>(rowPtr<BF16>(W, R), C), Acc);
      YT[C] += Acc;
    }
  }
}

void matmulNN(const float *A, size_t T, size_t AStride, const WeightMatrix &W,
              size_t R0, size_t R1, size_t C0, size_t C1, float *Y,
              size_t YStride) {
  // f32 rows over the whole range are already the [K, N] layout of the
  // GEMM kernel, whose chains equal the ones below (Y must be zero).
  if (W.Type == DType::F32 && R0 == 0 && R1 == W.Rows)
    return gemmKN(A, T, AStride, W.f32Row(0), W.Rows, W.Cols, C0, C1, Y,
                  YStride, /*Accumulate=*/false);
  if (W.Type == DType::BF16 && T >= 4) {
    // Widen 64 rows (their columns C0..C1) at a time and continue the GEMM
    // chains across the panels: the conversion is paid once per weight.
    constexpr size_t P = 64;
    size_t Width = C1 - C0;
    thread_local std::vector<float> Panel;
    Panel.resize(P * Width);
    for (size_t R = R0; R < R1; R += P) {
      size_t Rn = std::min(P, R1 - R);
      for (size_t I = 0; I < Rn; ++I) {
        const uint16_t *Row = W.bf16Row(R + I) + C0;
        for (size_t C = 0; C < Width; ++C)
          Panel[I * Width + C] = bf16ToFloat(Row[C]);
      }
      gemmKN(A + R, T, AStride, Panel.data(), Rn, Width, 0, Width, Y + C0,
             YStride, /*Accumulate=*/true);
    }
    return;
  }
  if (W.Type == DType::BF16)
    matmulNNImpl<true>(A, T, AStride, W, R0, R1, C0, C1, Y, YStride);
  else
    matmulNNImpl<false>(A, T, AStride, W, R0, R1, C0, C1, Y, YStride);
}

} // namespace vindex
