//===- Backward.cpp - Gradients of a loss on the logits ------------------===//
//
// A double-precision forward pass that records its intermediate values (the
// tape), then the reverse pass over it. The forward follows Engine.cpp step
// by step; each backward step is the derivative of the matching forward
// step, written next to the others in the order the reverse pass runs them.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Backward.h"

#include "vindex/Formats/DType.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/Kernels.h"
#include "vindex/Support/Error.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <future>
#include <map>
#include <mutex>

#include <immintrin.h>

using namespace llvm;

namespace vindex {

namespace {

//===----------------------------------------------------------------------===//
// Arithmetic
//===----------------------------------------------------------------------===//

/// Row R of W widened to double.
void widenRow(const WeightMatrix &W, size_t R, double *Out) {
  if (W.Type == DType::F32) {
    const float *Row = W.f32Row(R);
    for (size_t C = 0; C < W.Cols; ++C)
      Out[C] = Row[C];
    return;
  }
  if (W.Type == DType::BF16) { // the 4B shape widens every step
    const uint16_t *Row = W.bf16Row(R);
    size_t C = 0;
    // bf16 is f32's upper half, and f32 -> double is exact: four at a time
    // (the scalar loop was a fifth of a 4B-shape Adam step).
    for (; C + 4 <= W.Cols; C += 4) {
      __m128i H = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(Row + C));
      __m128i F = _mm_slli_epi32(_mm_cvtepu16_epi32(H), 16);
      _mm256_storeu_pd(Out + C, _mm256_cvtps_pd(_mm_castsi128_ps(F)));
    }
    for (; C < W.Cols; ++C)
      Out[C] = bf16ToFloat(Row[C]);
    return;
  }
  for (size_t C = 0; C < W.Cols; ++C)
    Out[C] = W.at(R, C);
}

} // namespace

const double *WideWeights::of(const WeightMatrix &W) {
  auto It = Cache.find(W.Data);
  if (It != Cache.end())
    return It->second.data();
  size_t Bytes = W.Rows * W.Cols * sizeof(double);
  if (Used + Bytes > Budget)
    return nullptr;
  Used += Bytes;
  std::vector<double> &Rows = Cache[W.Data];
  Rows.resize(W.Rows * W.Cols);
  for (size_t R = 0; R < W.Rows; ++R)
    widenRow(W, R, &Rows[R * W.Cols]);
  return Rows.data();
}

namespace {

/// The one chain every dot product here follows: four lanes of fused
/// multiply-adds over the indices I = lane (mod 4), a tail of N mod 4
/// elements into lane 0, then (S0 + S1) + (S2 + S3). Written out with
/// intrinsics rather than left to the compiler's contraction, so that the
/// row-blocked products below give the same bits as one call per row.
double dot(const double *A, const double *B, size_t N) {
  __m256d Acc = _mm256_setzero_pd();
  size_t I = 0;
  for (; I + 4 <= N; I += 4)
    Acc = _mm256_fmadd_pd(_mm256_loadu_pd(A + I), _mm256_loadu_pd(B + I), Acc);
  alignas(32) double S[4];
  _mm256_store_pd(S, Acc);
  for (; I < N; ++I)
    S[0] = std::fma(A[I], B[I], S[0]);
  return (S[0] + S[1]) + (S[2] + S[3]);
}

/// Out[r] = dot(Rows + r * N, X, N) for r < 4, bit for bit: four
/// independent chains in flight where one call waits on each FMA.
void dot4(const double *Rows, const double *X, size_t N, double *Out) {
  __m256d A0 = _mm256_setzero_pd(), A1 = A0, A2 = A0, A3 = A0;
  size_t I = 0;
  for (; I + 4 <= N; I += 4) {
    __m256d Xv = _mm256_loadu_pd(X + I);
    A0 = _mm256_fmadd_pd(_mm256_loadu_pd(Rows + I), Xv, A0);
    A1 = _mm256_fmadd_pd(_mm256_loadu_pd(Rows + N + I), Xv, A1);
    A2 = _mm256_fmadd_pd(_mm256_loadu_pd(Rows + 2 * N + I), Xv, A2);
    A3 = _mm256_fmadd_pd(_mm256_loadu_pd(Rows + 3 * N + I), Xv, A3);
  }
  alignas(32) double S[4][4];
  _mm256_store_pd(S[0], A0);
  _mm256_store_pd(S[1], A1);
  _mm256_store_pd(S[2], A2);
  _mm256_store_pd(S[3], A3);
  for (unsigned R = 0; R < 4; ++R) {
    for (size_t J = I; J < N; ++J)
      S[R][0] = std::fma(Rows[R * N + J], X[J], S[R][0]);
    Out[R] = (S[R][0] + S[R][1]) + (S[R][2] + S[R][3]);
  }
}

/// Whether the four-token forms below run: on the AVX-512 kernel paths
/// (VINDEX_KERNELS=avx2 forces the one-token forms). They give the bits of
/// dot4 / axpy4 one token at a time (each 256-bit half of a register is
/// one token's four lanes), so the results do not depend on the path
/// (BackwardTest's SameBitsOnEveryKernelPath).
bool fourTokenForms() { return activeKernelPath() != KernelPath::AVX2; }

// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_pd,
// which -Wuninitialized reports at every use (as in the kernels, which
// build with -Wno-maybe-uninitialized).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/// Two tokens' 4-lane vectors side by side: A's in the low half.
__attribute__((target("avx512f"))) inline __m512d pack2(__m256d A, __m256d B) {
  return _mm512_insertf64x4(_mm512_zextpd256_pd512(A), B, 1);
}

/// dot4 for tokens X, X + N, X + 2N, X + 3N at once: Y[t * YStride + r] =
/// dot(Rows + r * N, X + t * N, N), the chains of dot4 (eight registers of
/// two tokens each in flight where dot4 has four of one).
__attribute__((target("avx512f"))) void
dot4Tokens4(const double *Rows, const double *X, size_t N, double *Y,
            size_t YStride) {
  __m512d A[4][2];
  for (unsigned R = 0; R < 4; ++R)
    A[R][0] = A[R][1] = _mm512_setzero_pd();
  size_t I = 0;
  for (; I + 4 <= N; I += 4) {
    __m512d X01 =
        pack2(_mm256_loadu_pd(X + I), _mm256_loadu_pd(X + N + I));
    __m512d X23 = pack2(_mm256_loadu_pd(X + 2 * N + I),
                        _mm256_loadu_pd(X + 3 * N + I));
    for (unsigned R = 0; R < 4; ++R) {
      __m512d Rv = _mm512_broadcast_f64x4(_mm256_loadu_pd(Rows + R * N + I));
      A[R][0] = _mm512_fmadd_pd(Rv, X01, A[R][0]);
      A[R][1] = _mm512_fmadd_pd(Rv, X23, A[R][1]);
    }
  }
  for (unsigned R = 0; R < 4; ++R) {
    alignas(64) double S[2][8];
    _mm512_store_pd(S[0], A[R][0]);
    _mm512_store_pd(S[1], A[R][1]);
    for (unsigned Tk = 0; Tk < 4; ++Tk) {
      double *L = &S[Tk / 2][4 * (Tk % 2)];
      for (size_t J = I; J < N; ++J)
        L[0] = std::fma(Rows[R * N + J], X[Tk * N + J], L[0]);
      Y[Tk * YStride + R] = (L[0] + L[1]) + (L[2] + L[3]);
    }
  }
}

/// axpy4 for four tokens at once: axpy4(A + t * AStride, Rows, Y + t * N,
/// N) for t < 4, bit for bit.
__attribute__((target("avx512f"))) void
axpy4Tokens4(const double *A, size_t AStride, const double *Rows, double *Y,
             size_t N) {
  __m512d Av[4][2];
  for (unsigned R = 0; R < 4; ++R)
    for (unsigned P = 0; P < 2; ++P)
      Av[R][P] = pack2(_mm256_set1_pd(A[2 * P * AStride + R]),
                       _mm256_set1_pd(A[(2 * P + 1) * AStride + R]));
  size_t I = 0;
  for (; I + 4 <= N; I += 4) {
    __m512d Y01 = pack2(_mm256_loadu_pd(Y + I), _mm256_loadu_pd(Y + N + I));
    __m512d Y23 = pack2(_mm256_loadu_pd(Y + 2 * N + I),
                        _mm256_loadu_pd(Y + 3 * N + I));
    for (unsigned R = 0; R < 4; ++R) {
      __m512d Rv = _mm512_broadcast_f64x4(_mm256_loadu_pd(Rows + R * N + I));
      Y01 = _mm512_fmadd_pd(Av[R][0], Rv, Y01);
      Y23 = _mm512_fmadd_pd(Av[R][1], Rv, Y23);
    }
    _mm256_storeu_pd(Y + I, _mm512_castpd512_pd256(Y01));
    _mm256_storeu_pd(Y + N + I, _mm512_extractf64x4_pd(Y01, 1));
    _mm256_storeu_pd(Y + 2 * N + I, _mm512_castpd512_pd256(Y23));
    _mm256_storeu_pd(Y + 3 * N + I, _mm512_extractf64x4_pd(Y23, 1));
  }
  for (unsigned Tk = 0; Tk < 4; ++Tk)
    for (size_t J = I; J < N; ++J)
      for (unsigned R = 0; R < 4; ++R)
        Y[Tk * N + J] =
            std::fma(A[Tk * AStride + R], Rows[R * N + J], Y[Tk * N + J]);
}

#pragma GCC diagnostic pop

/// Y[I] += A * X[I], one fused multiply-add per element.
void axpy(double A, const double *X, double *Y, size_t N) {
  __m256d Av = _mm256_set1_pd(A);
  size_t I = 0;
  for (; I + 4 <= N; I += 4)
    _mm256_storeu_pd(Y + I, _mm256_fmadd_pd(Av, _mm256_loadu_pd(X + I),
                                            _mm256_loadu_pd(Y + I)));
  for (; I < N; ++I)
    Y[I] = std::fma(A, X[I], Y[I]);
}

/// axpy(A[r], Rows + r * N, Y, N) for r < 4 in order, bit for bit, Y held
/// in registers across the four rows.
void axpy4(const double *A, const double *Rows, double *Y, size_t N) {
  __m256d A0 = _mm256_set1_pd(A[0]), A1 = _mm256_set1_pd(A[1]),
          A2 = _mm256_set1_pd(A[2]), A3 = _mm256_set1_pd(A[3]);
  size_t I = 0;
  for (; I + 4 <= N; I += 4) {
    __m256d Yv = _mm256_loadu_pd(Y + I);
    Yv = _mm256_fmadd_pd(A0, _mm256_loadu_pd(Rows + I), Yv);
    Yv = _mm256_fmadd_pd(A1, _mm256_loadu_pd(Rows + N + I), Yv);
    Yv = _mm256_fmadd_pd(A2, _mm256_loadu_pd(Rows + 2 * N + I), Yv);
    Yv = _mm256_fmadd_pd(A3, _mm256_loadu_pd(Rows + 3 * N + I), Yv);
    _mm256_storeu_pd(Y + I, Yv);
  }
  for (; I < N; ++I)
    for (unsigned R = 0; R < 4; ++R)
      Y[I] = std::fma(A[R], Rows[R * N + I], Y[I]);
}

/// Calls Body(R, Block, Rows) for W's rows in blocks of four (fewer at the
/// end) in order, Rows the block's rows widened to double, row-major: from
/// the objective's cache when it holds W, else widened here.
template <typename Fn>
void forRowBlocks(const WeightMatrix &W, WideWeights *Wide, Fn Body) {
  const double *Cached = Wide ? Wide->of(W) : nullptr;
  std::vector<double> Buf;
  for (size_t R = 0; R < W.Rows; R += 4) {
    size_t Block = std::min<size_t>(4, W.Rows - R);
    const double *Rows = Cached + R * W.Cols;
    if (!Cached) {
      Buf.resize(Block * W.Cols);
      for (size_t B = 0; B < Block; ++B)
        widenRow(W, R + B, &Buf[B * W.Cols]);
      Rows = Buf.data();
    }
    Body(R, Block, Rows);
  }
}

/// Y[t][r] = W[r] . X[t]: a projection (and the backward of the down
/// projection, whose rows are features).
void timesRows(const WeightMatrix &W, const double *X, size_t T, double *Y,
               WideWeights *Wide) {
  size_t N = W.Cols;
  bool Four = fourTokenForms();
  forRowBlocks(W, Wide, [&](size_t R, size_t Block, const double *Rows) {
    size_t Tk = 0;
    if (Block == 4 && Four)
      for (; Tk + 4 <= T; Tk += 4)
        dot4Tokens4(Rows, X + Tk * N, N, Y + Tk * W.Rows + R, W.Rows);
    for (; Tk < T; ++Tk) {
      double *Out = Y + Tk * W.Rows + R;
      if (Block == 4) {
        dot4(Rows, X + Tk * N, N, Out);
        continue;
      }
      for (size_t B = 0; B < Block; ++B)
        Out[B] = dot(Rows + B * N, X + Tk * N, N);
    }
  });
}

/// Y[t] += sum_r X[t][r] W[r], rows in order: the backward of a projection
/// (and the down projection's forward).
void accumulateRows(const WeightMatrix &W, const double *X, size_t T, double *Y,
                    WideWeights *Wide) {
  size_t N = W.Cols;
  bool Four = fourTokenForms();
  forRowBlocks(W, Wide, [&](size_t R, size_t Block, const double *Rows) {
    size_t Tk = 0;
    if (Block == 4 && Four)
      for (; Tk + 4 <= T; Tk += 4)
        axpy4Tokens4(X + Tk * W.Rows + R, W.Rows, Rows, Y + Tk * N, N);
    for (; Tk < T; ++Tk) {
      const double *A = X + Tk * W.Rows + R;
      double *Out = Y + Tk * N;
      if (Block == 4) {
        axpy4(A, Rows, Out, N);
        continue;
      }
      for (size_t B = 0; B < Block; ++B)
        axpy(A[B], Rows + B * N, Out, N);
    }
  });
}

/// Out = X / rms(X) * W; returns 1 / rms(X).
double rmsNorm(const double *X, size_t N, ArrayRef<float> W, double Eps,
               double *Out) {
  double SumSq = 0;
  for (size_t I = 0; I < N; ++I)
    SumSq += X[I] * X[I];
  double Inv = 1.0 / std::sqrt(SumSq / double(N) + Eps);
  for (size_t I = 0; I < N; ++I)
    Out[I] = X[I] * Inv * W[I];
  return Inv;
}

/// DX += d(rmsNorm)/dX^T DY, for the X and 1 / rms of the forward:
/// DX_i = Inv W_i DY_i - X_i Inv^3 / N * sum_j DY_j W_j X_j.
void rmsNormBackward(const double *X, double Inv, size_t N, ArrayRef<float> W,
                     const double *DY, double *DX) {
  double S = 0;
  for (size_t I = 0; I < N; ++I)
    S += DY[I] * W[I] * X[I];
  double C = S * Inv * Inv * Inv / double(N);
  for (size_t I = 0; I < N; ++I)
    DX[I] += Inv * W[I] * DY[I] - X[I] * C;
}

/// act(X) and d act / dX.
void activation(Activation A, double X, double &F, double &DF) {
  switch (A) {
  case Activation::SiLU: {
    double S = 1.0 / (1.0 + std::exp(-X));
    F = X * S;
    DF = S * (1.0 + X * (1.0 - S));
    return;
  }
  case Activation::GeluTanh: {
    const double K = 0.7978845608028654; // sqrt(2 / pi)
    double U = K * (X + 0.044715 * X * X * X);
    double Th = std::tanh(U);
    F = 0.5 * X * (1.0 + Th);
    DF = 0.5 * (1.0 + Th) +
         0.5 * X * (1.0 - Th * Th) * K * (1.0 + 3 * 0.044715 * X * X);
    return;
  }
  case Activation::Gelu: {
    F = 0.5 * X * (1.0 + std::erf(X * 0.7071067811865476));
    DF = 0.5 * (1.0 + std::erf(X * 0.7071067811865476)) +
         X * std::exp(-0.5 * X * X) * 0.3989422804014327; // 1 / sqrt(2 pi)
    return;
  }
  }
  F = X;
  DF = 1;
}

/// cos and sin of position P's angles, the angle computed in f32 as the
/// engine does.
void ropeAngles(ArrayRef<float> InvFreq, size_t P, double *Cos, double *Sin) {
  for (size_t I = 0; I < InvFreq.size(); ++I) {
    float Angle = float(P) * InvFreq[I];
    Cos[I] = std::cos(double(Angle));
    Sin[I] = std::sin(double(Angle));
  }
}

/// Rotate-half RoPE; Sign -1 applies the inverse (transposed) rotation,
/// which is its backward.
void rope(double *V, size_t HD, const double *Cos, const double *Sin,
          double Sign) {
  size_t Half = HD / 2;
  for (size_t I = 0; I < Half; ++I) {
    double A = V[I], B = V[I + Half], S = Sign * Sin[I];
    V[I] = A * Cos[I] - B * S;
    V[I + Half] = B * Cos[I] + A * S;
  }
}

//===----------------------------------------------------------------------===//
// The tape
//===----------------------------------------------------------------------===//

/// What one layer's backward pass needs from its forward pass.
struct LayerTape {
  std::vector<double> X;                                   ///< Input [T, D].
  std::vector<double> InInv, AttnInv, FFNInInv, FFNOutInv; ///< [T] each.
  /// Q and K before QK-norm (with bias), their 1 / rms per head, and after
  /// RoPE; V.
  std::vector<double> QRaw, KRaw, QInv, KInv, Q, K, V;
  std::vector<double> Probs;  ///< [NH, T, T], zero outside the mask.
  std::vector<double> Capped; ///< tanh(score / cap) [NH, T, T], if capped.
  std::vector<double> O;      ///< Attention output [T, QDim].
  std::vector<double> APre;   ///< o_proj output [T, D].
  std::vector<double> X1;     ///< After the attention residual add.
  std::vector<double> G, U;   ///< Gate and up [T, F].
  std::vector<double> FPre;   ///< Down projection output [T, D].
};

/// Several sequences run as one tape: their tokens one after another, each
/// attending only within its own segment, from its own position 0. Every
/// token's arithmetic is what it would be alone (the products' reductions run
/// per token, attention per segment), and each weight row is read once for
/// all of them.
///
/// A segment's tape tokens may start after its position 0: the tokens before
/// them are a fixed context, whose keys and values per layer are given (the
/// tokens before an offset do not depend on it). Attention reads them in
/// position order before the tape's own, as it would read them in the whole
/// sequence, so the tape's tokens get the bits of the whole sequence.
struct Segments {
  std::vector<size_t> Index;    ///< Per tape token: its segment.
  std::vector<size_t> Position; ///< Per tape token: its position in it.
  std::vector<size_t> First;    ///< Per segment: its first tape token.
  /// Per segment: the row of its position 0 in ContextK/V (its context is
  /// positions 0 ... Position[First[s]] - 1).
  std::vector<size_t> ContextRow;
  /// Per layer (empty below the tape's first): the contexts' keys (after
  /// QK-norm and RoPE) and values, [rows, KVDim].
  std::vector<std::vector<double>> ContextK, ContextV;
  size_t count() const { return First.size(); }
};

class Tape {
public:
  Tape(const Model &M, const LossSequence &S, WideWeights *Wide = nullptr,
       const Segments *Segs = nullptr)
      : M(M), C(M.config()), S(S), Wide(Wide), Segs(Segs) {}

  Error check(const ResidualOffset &Offset) const;
  /// Residual R of the sequence, without an offset (the layers below R
  /// recorded).
  std::vector<double> residual(size_t R);
  /// The forward pass and the loss (and dLoss/dlogits at the loss
  /// positions); From > 0 starts at layer From with X, residual From
  /// before the offset (as residual() gave it).
  void forward(const ResidualOffset &Offset, size_t From = 0,
               std::vector<double> X = {});
  /// Fills R.Gradients from residual numLayers() down to Lowest (at least
  /// the From of forward()).
  void backward(size_t Lowest, BackwardResult &R);

  const LayerTape &layer(size_t L) const { return Layers[L]; }

  double NLL = 0, KL = 0;
  /// NLL and KL of each segment (with Segs), summed as the segment alone.
  std::vector<double> SegmentNLL, SegmentKL;
  /// Log-probabilities at the loss positions (by position).
  std::map<size_t, std::vector<double>> LogProbs;

private:
  void layerForward(size_t L, std::vector<double> &X);
  void attentionForward(size_t L, LayerTape &Tp);
  /// DX is the gradient of the layer's output on entry, of its input on
  /// return.
  void layerBackward(size_t L, std::vector<double> &DX);
  void attentionBackward(size_t L, const std::vector<double> &DO,
                         std::vector<double> &DH);
  void lossForward();
  size_t segmentIndex(size_t P) const { return Segs ? Segs->Index[P] : 0; }
  /// Tape token P's position in its sequence (RoPE, the window).
  size_t position(size_t P) const { return Segs ? Segs->Position[P] : P; }
  /// The positions of a segment before its first tape token.
  size_t contextLength(size_t Seg) const {
    return Segs ? Segs->Position[Segs->First[Seg]] : 0;
  }
  /// Key (or value, with Values) row of position Q of segment Seg at layer
  /// L: from the context below the segment's tape tokens, else the tape's.
  const double *kvRow(size_t L, const LayerTape &Tp, bool Values, size_t Seg,
                      size_t Q) const {
    size_t KVDim = C.NumKVHeads * C.HeadDim;
    if (Q < contextLength(Seg)) {
      const std::vector<double> &Ctx =
          Values ? Segs->ContextV[L] : Segs->ContextK[L];
      return &Ctx[(Segs->ContextRow[Seg] + Q) * KVDim];
    }
    return &(Values ? Tp.V : Tp.K)[tapeIndex(Seg, Q) * KVDim];
  }
  /// The tape token at position Q (at least the context's length) of Seg.
  size_t tapeIndex(size_t Seg, size_t Q) const {
    return Segs ? Segs->First[Seg] + Q - contextLength(Seg) : Q;
  }
  /// The first position position P attends to (the sliding window's edge).
  static size_t attentionStart(size_t P, size_t Window) {
    return Window && P + 1 > Window ? P + 1 - Window : 0;
  }
  /// Positions a row of attention probabilities spans: the longest segment.
  size_t span() const {
    size_t N = 0;
    for (size_t P = 0; P < T; ++P)
      N = std::max(N, position(P) + 1);
    return N;
  }

  const Model &M;
  const ModelConfig &C;
  const LossSequence &S;
  /// Widened weights shared by an objective's passes, or null.
  WideWeights *Wide;
  const Segments *Segs;
  size_t T = 0;
  std::vector<LayerTape> Layers;
  std::vector<double> XFinal, FinalInv;
  /// Positions whose logits a loss term reads, in order.
  std::vector<size_t> LossPositions;
  /// dLoss / d(logits before the final softcap) at LossPositions,
  /// [P, vocab].
  std::vector<double> DLogits;
};

Error Tape::check(const ResidualOffset &Offset) const {
  size_t N = S.Tokens.size();
  if (N == 0)
    return makeError("backward: the sequence has no tokens");
  for (int32_t Id : S.Tokens)
    if (Id < 0 || size_t(Id) >= C.VocabSize)
      return makeError("backward: token {0} is outside the vocabulary", Id);
  for (const LossSequence::Target &Tg : S.Targets)
    if (Tg.Position >= N || Tg.Token < 0 || size_t(Tg.Token) >= C.VocabSize)
      return makeError("backward: target {0} at position {1} is out of range",
                       Tg.Token, Tg.Position);
  for (const LossSequence::KLTerm &K : S.KL)
    if (K.Position >= N || K.Reference.size() != C.VocabSize)
      return makeError("backward: KL term at position {0} needs a position "
                       "below {1} and {2} reference log-probabilities",
                       K.Position, N, C.VocabSize);
  if (!Offset.Delta.empty()) {
    if (Offset.Delta.size() != C.HiddenSize)
      return makeError("backward: the offset has {0} values, not {1}",
                       Offset.Delta.size(), C.HiddenSize);
    if (Offset.Residual > M.numLayers())
      return makeError("backward: residual {0} is past the last ({1})",
                       Offset.Residual, M.numLayers());
    for (size_t P : S.OffsetPositions)
      if (P >= N)
        return makeError("backward: offset position {0} is past the sequence",
                         P);
  }
  return Error::success();
}

std::vector<double> Tape::residual(size_t R) {
  T = S.Tokens.size();
  size_t D = C.HiddenSize;
  std::vector<double> X(T * D);
  for (size_t Tk = 0; Tk < T; ++Tk)
    for (size_t I = 0; I < D; ++I)
      X[Tk * D + I] =
          double(M.embedding().at(size_t(S.Tokens[Tk]), I)) * C.EmbeddingScale;
  Layers.assign(M.numLayers(), LayerTape());
  for (size_t L = 0; L < R; ++L)
    layerForward(L, X);
  return X;
}

void Tape::forward(const ResidualOffset &Offset, size_t From,
                   std::vector<double> X) {
  T = S.Tokens.size();
  size_t D = C.HiddenSize;
  if (From == 0)
    X = residual(0);
  Layers.resize(M.numLayers());
  auto AddOffset = [&](size_t R) {
    if (Offset.Delta.empty() || Offset.Residual != R)
      return;
    for (size_t P : S.OffsetPositions)
      axpy(1.0, Offset.Delta.data(), &X[P * D], D);
  };
  for (size_t L = From; L < M.numLayers(); ++L) {
    AddOffset(L);
    layerForward(L, X);
  }
  AddOffset(M.numLayers());
  XFinal = std::move(X);
  lossForward();
}

void Tape::layerForward(size_t L, std::vector<double> &X) {
  const LayerWeights &W = M.layer(L);
  LayerTape &Tp = Layers[L];
  size_t D = C.HiddenSize, F = W.Gate.Rows;
  Tp.X = X;
  std::vector<double> H(T * D);
  Tp.InInv.resize(T);
  for (size_t Tk = 0; Tk < T; ++Tk)
    Tp.InInv[Tk] = rmsNorm(&X[Tk * D], D, W.InputNorm, C.NormEps, &H[Tk * D]);
  Tp.QRaw.resize(T * W.Q.Rows);
  Tp.KRaw.resize(T * W.K.Rows);
  Tp.V.resize(T * W.V.Rows);
  timesRows(W.Q, H.data(), T, Tp.QRaw.data(), Wide);
  timesRows(W.K, H.data(), T, Tp.KRaw.data(), Wide);
  timesRows(W.V, H.data(), T, Tp.V.data(), Wide);
  attentionForward(L, Tp);

  Tp.APre.resize(T * D);
  timesRows(W.O, Tp.O.data(), T, Tp.APre.data(), Wide);
  std::vector<double> A = Tp.APre;
  Tp.AttnInv.resize(T);
  for (size_t Tk = 0; Tk < T; ++Tk) {
    if (C.PostNorms)
      Tp.AttnInv[Tk] =
          rmsNorm(&Tp.APre[Tk * D], D, W.PostAttnNorm, C.NormEps, &A[Tk * D]);
    axpy(1.0, &A[Tk * D], &X[Tk * D], D);
  }
  Tp.X1 = X;
  Tp.FFNInInv.resize(T);
  for (size_t Tk = 0; Tk < T; ++Tk)
    Tp.FFNInInv[Tk] =
        rmsNorm(&X[Tk * D], D, C.PostNorms ? W.PreFFNNorm : W.PostAttnNorm,
                C.NormEps, &H[Tk * D]);

  Tp.G.resize(T * F);
  Tp.U.resize(T * F);
  timesRows(W.Gate, H.data(), T, Tp.G.data(), Wide);
  timesRows(W.Up, H.data(), T, Tp.U.data(), Wide);
  std::vector<double> Act(T * F);
  for (size_t I = 0; I < T * F; ++I) {
    double Fx, DFx;
    activation(C.Act, Tp.G[I], Fx, DFx);
    Act[I] = Fx * Tp.U[I];
  }
  Tp.FPre.assign(T * D, 0.0);
  accumulateRows(W.Down, Act.data(), T, Tp.FPre.data(), Wide);
  Tp.FFNOutInv.resize(T);
  for (size_t Tk = 0; Tk < T; ++Tk) {
    if (C.PostNorms) {
      Tp.FFNOutInv[Tk] =
          rmsNorm(&Tp.FPre[Tk * D], D, W.PostFFNNorm, C.NormEps, &A[Tk * D]);
      axpy(1.0, &A[Tk * D], &X[Tk * D], D);
    } else {
      axpy(1.0, &Tp.FPre[Tk * D], &X[Tk * D], D);
    }
  }
}

void Tape::attentionForward(size_t L, LayerTape &Tp) {
  const LayerWeights &W = M.layer(L);
  size_t HD = C.HeadDim, NH = C.NumHeads, NKV = C.NumKVHeads;
  size_t QDim = NH * HD, KVDim = NKV * HD, Group = NH / NKV;
  for (size_t Tk = 0; Tk < T; ++Tk) {
    for (size_t I = 0; I < W.QBias.size(); ++I)
      Tp.QRaw[Tk * QDim + I] += W.QBias[I];
    for (size_t I = 0; I < W.KBias.size(); ++I)
      Tp.KRaw[Tk * KVDim + I] += W.KBias[I];
    for (size_t I = 0; I < W.VBias.size(); ++I)
      Tp.V[Tk * KVDim + I] += W.VBias[I];
  }
  Tp.Q = Tp.QRaw;
  Tp.K = Tp.KRaw;
  Tp.QInv.assign(T * NH, 0.0);
  Tp.KInv.assign(T * NKV, 0.0);
  std::vector<double> Cos(HD / 2), Sin(HD / 2);
  for (size_t Tk = 0; Tk < T; ++Tk) {
    ropeAngles(W.RopeInvFreq, position(Tk), Cos.data(), Sin.data());
    for (size_t H = 0; H < NH; ++H) {
      double *QH = &Tp.Q[Tk * QDim + H * HD];
      if (C.QKNorm)
        Tp.QInv[Tk * NH + H] = rmsNorm(QH, HD, W.QNorm, C.NormEps, QH);
      rope(QH, HD, Cos.data(), Sin.data(), 1.0);
    }
    for (size_t H = 0; H < NKV; ++H) {
      double *KH = &Tp.K[Tk * KVDim + H * HD];
      if (C.QKNorm)
        Tp.KInv[Tk * NKV + H] = rmsNorm(KH, HD, W.KNorm, C.NormEps, KH);
      rope(KH, HD, Cos.data(), Sin.data(), 1.0);
    }
  }
  size_t Window = W.Sliding ? C.SlidingWindow : 0;
  double Cap = C.AttnSoftcap;
  // Rows of probabilities are indexed by position in the segment.
  size_t Span = span();
  Tp.Probs.assign(NH * T * Span, 0.0);
  if (Cap > 0)
    Tp.Capped.assign(NH * T * Span, 0.0);
  Tp.O.assign(T * QDim, 0.0);
  for (size_t H = 0; H < NH; ++H) {
    size_t KVH = H / Group;
    for (size_t P = 0; P < T; ++P) {
      size_t Seg = segmentIndex(P), Pos = position(P);
      size_t Lo = attentionStart(Pos, Window);
      double *Row = &Tp.Probs[(H * T + P) * Span];
      const double *QH = &Tp.Q[P * QDim + H * HD];
      double Max = -INFINITY;
      for (size_t J = Lo; J <= Pos; ++J) {
        double Sc =
            dot(QH, kvRow(L, Tp, false, Seg, J) + KVH * HD, HD) * C.QueryScale;
        if (Cap > 0) {
          double Th = std::tanh(Sc / Cap);
          Tp.Capped[(H * T + P) * Span + J] = Th;
          Sc = Cap * Th;
        }
        Row[J] = Sc;
        Max = std::max(Max, Sc);
      }
      double Sum = 0;
      for (size_t J = Lo; J <= Pos; ++J)
        Sum += (Row[J] = std::exp(Row[J] - Max));
      double *O = &Tp.O[P * QDim + H * HD];
      for (size_t J = Lo; J <= Pos; ++J) {
        Row[J] /= Sum;
        axpy(Row[J], kvRow(L, Tp, true, Seg, J) + KVH * HD, O, HD);
      }
    }
  }
}

/// Log-softmax of Z in place; returns nothing (Z becomes log p).
void logSoftmax(std::vector<double> &Z) {
  double Max = *std::max_element(Z.begin(), Z.end());
  double Sum = 0;
  for (double V : Z)
    Sum += std::exp(V - Max);
  double LogSum = Max + std::log(Sum);
  for (double &V : Z)
    V -= LogSum;
}

void Tape::lossForward() {
  size_t D = C.HiddenSize, Vocab = C.VocabSize;
  for (const LossSequence::Target &Tg : S.Targets)
    LossPositions.push_back(Tg.Position);
  for (const LossSequence::KLTerm &K : S.KL)
    LossPositions.push_back(K.Position);
  llvm::sort(LossPositions);
  LossPositions.erase(std::unique(LossPositions.begin(), LossPositions.end()),
                      LossPositions.end());
  size_t NP = LossPositions.size();
  SegmentNLL.assign(Segs ? Segs->count() : 1, 0.0);
  SegmentKL.assign(SegmentNLL.size(), 0.0);
  std::vector<double> Normed(NP * D);
  FinalInv.resize(NP);
  for (size_t I = 0; I < NP; ++I)
    FinalInv[I] = rmsNorm(&XFinal[LossPositions[I] * D], D, M.finalNorm(),
                          C.NormEps, &Normed[I * D]);
  std::vector<double> Logits(NP * Vocab);
  timesRows(M.lmHead(), Normed.data(), NP, Logits.data(), Wide);
  double Cap = C.FinalSoftcap;
  DLogits.assign(NP * Vocab, 0.0);
  for (size_t I = 0; I < NP; ++I) {
    std::vector<double> Z(Logits.begin() + I * Vocab,
                          Logits.begin() + (I + 1) * Vocab);
    if (Cap > 0)
      for (double &V : Z)
        V = Cap * std::tanh(V / Cap);
    logSoftmax(Z);
    double *DZ = &DLogits[I * Vocab];
    size_t P = LossPositions[I];
    // d(-log p_t)/dz = softmax - onehot(t).
    for (const LossSequence::Target &Tg : S.Targets)
      if (Tg.Position == P) {
        NLL -= Z[size_t(Tg.Token)];
        SegmentNLL[segmentIndex(P)] -= Z[size_t(Tg.Token)];
        for (size_t V = 0; V < Vocab; ++V)
          DZ[V] += std::exp(Z[V]);
        DZ[size_t(Tg.Token)] -= 1.0;
      }
    for (const LossSequence::KLTerm &K : S.KL)
      if (K.Position == P) {
        // d/dz sum_v r_v (log r_v - log p_v) = p sum_v r_v - r (r need
        // not be normalised).
        double Sum = 0, Mass = 0;
        for (size_t V = 0; V < Vocab; ++V) {
          double R = std::exp(K.Reference[V]);
          Sum += R * (K.Reference[V] - Z[V]);
          Mass += R;
        }
        for (size_t V = 0; V < Vocab; ++V)
          DZ[V] +=
              K.Weight * (std::exp(Z[V]) * Mass - std::exp(K.Reference[V]));
        KL += K.Weight * Sum;
        SegmentKL[segmentIndex(P)] += K.Weight * Sum;
      }
    if (Cap > 0)
      for (size_t V = 0; V < Vocab; ++V) {
        double Th = std::tanh(Logits[I * Vocab + V] / Cap);
        DZ[V] *= 1.0 - Th * Th;
      }
    LogProbs[P] = std::move(Z);
  }
}

void Tape::backward(size_t Lowest, BackwardResult &R) {
  size_t D = C.HiddenSize, NP = LossPositions.size();
  R.Gradients.assign(M.numLayers() + 1, {});
  std::vector<double> DNormed(NP * D, 0.0);
  accumulateRows(M.lmHead(), DLogits.data(), NP, DNormed.data(), Wide);
  std::vector<double> DX(T * D, 0.0);
  for (size_t I = 0; I < NP; ++I) {
    size_t P = LossPositions[I];
    rmsNormBackward(&XFinal[P * D], FinalInv[I], D, M.finalNorm(),
                    &DNormed[I * D], &DX[P * D]);
  }
  R.Gradients[M.numLayers()] = DX;
  for (size_t L = M.numLayers(); L-- > Lowest;) {
    layerBackward(L, DX);
    R.Gradients[L] = DX;
  }
}

void Tape::layerBackward(size_t L, std::vector<double> &DX) {
  const LayerWeights &W = M.layer(L);
  const LayerTape &Tp = Layers[L];
  size_t D = C.HiddenSize, F = W.Gate.Rows;
  // X2 = X1 + postFFNNorm(FPre): DX (of X2) flows to X1 unchanged.
  std::vector<double> DF(T * D, 0.0);
  for (size_t Tk = 0; Tk < T; ++Tk) {
    if (C.PostNorms)
      rmsNormBackward(&Tp.FPre[Tk * D], Tp.FFNOutInv[Tk], D, W.PostFFNNorm,
                      &DX[Tk * D], &DF[Tk * D]);
    else
      std::copy(&DX[Tk * D], &DX[Tk * D] + D, &DF[Tk * D]);
  }
  // FPre = (act(G) * U) Down: through the down, the product and the
  // activation, into the gate and up projections.
  std::vector<double> DAct(T * F), DG(T * F), DU(T * F);
  timesRows(W.Down, DF.data(), T, DAct.data(), Wide);
  for (size_t I = 0; I < T * F; ++I) {
    double Fx, DFx;
    activation(C.Act, Tp.G[I], Fx, DFx);
    DG[I] = DAct[I] * Tp.U[I] * DFx;
    DU[I] = DAct[I] * Fx;
  }
  std::vector<double> DH(T * D, 0.0);
  accumulateRows(W.Gate, DG.data(), T, DH.data(), Wide);
  accumulateRows(W.Up, DU.data(), T, DH.data(), Wide);
  for (size_t Tk = 0; Tk < T; ++Tk)
    rmsNormBackward(&Tp.X1[Tk * D], Tp.FFNInInv[Tk], D,
                    C.PostNorms ? W.PreFFNNorm : W.PostAttnNorm, &DH[Tk * D],
                    &DX[Tk * D]);
  // X1 = X + postAttnNorm(APre).
  std::vector<double> DA(T * D, 0.0);
  for (size_t Tk = 0; Tk < T; ++Tk) {
    if (C.PostNorms)
      rmsNormBackward(&Tp.APre[Tk * D], Tp.AttnInv[Tk], D, W.PostAttnNorm,
                      &DX[Tk * D], &DA[Tk * D]);
    else
      std::copy(&DX[Tk * D], &DX[Tk * D] + D, &DA[Tk * D]);
  }
  std::vector<double> DO(T * W.O.Cols, 0.0);
  accumulateRows(W.O, DA.data(), T, DO.data(), Wide);
  std::fill(DH.begin(), DH.end(), 0.0);
  attentionBackward(L, DO, DH);
  for (size_t Tk = 0; Tk < T; ++Tk)
    rmsNormBackward(&Tp.X[Tk * D], Tp.InInv[Tk], D, W.InputNorm, &DH[Tk * D],
                    &DX[Tk * D]);
}

void Tape::attentionBackward(size_t L, const std::vector<double> &DO,
                             std::vector<double> &DH) {
  const LayerWeights &W = M.layer(L);
  const LayerTape &Tp = Layers[L];
  size_t HD = C.HeadDim, NH = C.NumHeads, NKV = C.NumKVHeads;
  size_t QDim = NH * HD, KVDim = NKV * HD, Group = NH / NKV;
  size_t Window = W.Sliding ? C.SlidingWindow : 0;
  double Cap = C.AttnSoftcap;
  size_t Span = span();
  std::vector<double> DQ(T * QDim, 0.0), DK(T * KVDim, 0.0), DV(T * KVDim, 0.0),
      DS(Span);
  for (size_t H = 0; H < NH; ++H) {
    size_t KVH = H / Group;
    for (size_t P = 0; P < T; ++P) {
      size_t Seg = segmentIndex(P), Pos = position(P);
      size_t Lo = attentionStart(Pos, Window), Ctx = contextLength(Seg);
      const double *Row = &Tp.Probs[(H * T + P) * Span];
      const double *DOP = &DO[P * QDim + H * HD];
      // O = sum_j p_j V_j; softmax: ds_j = p_j (dp_j - sum_k p_k dp_k).
      // The context's keys and values are fixed: no gradient for them.
      double Mean = 0;
      for (size_t J = Lo; J <= Pos; ++J) {
        DS[J] = dot(DOP, kvRow(L, Tp, true, Seg, J) + KVH * HD, HD);
        Mean += Row[J] * DS[J];
        if (J >= Ctx)
          axpy(Row[J], DOP, &DV[tapeIndex(Seg, J) * KVDim + KVH * HD], HD);
      }
      for (size_t J = Lo; J <= Pos; ++J) {
        double G = Row[J] * (DS[J] - Mean);
        if (Cap > 0) {
          double Th = Tp.Capped[(H * T + P) * Span + J];
          G *= 1.0 - Th * Th;
        }
        G *= C.QueryScale;
        axpy(G, kvRow(L, Tp, false, Seg, J) + KVH * HD, &DQ[P * QDim + H * HD],
             HD);
        if (J >= Ctx)
          axpy(G, &Tp.Q[P * QDim + H * HD],
               &DK[tapeIndex(Seg, J) * KVDim + KVH * HD], HD);
      }
    }
  }
  // Back through RoPE (the inverse rotation) and the QK-norm.
  std::vector<double> Cos(HD / 2), Sin(HD / 2), Tmp(HD);
  std::vector<double> DQRaw(T * QDim, 0.0), DKRaw(T * KVDim, 0.0);
  // Token Tk's Heads heads of one projection (Dim wide): the gradient G
  // rotated back, then through the head's QK-norm (Raw its input, Inv its
  // 1 / rms) into DRaw.
  auto BackHeads = [&](size_t Tk, size_t Heads, size_t Dim, double *G,
                       const std::vector<double> &Raw,
                       const std::vector<double> &Inv,
                       const std::vector<float> &Norm, double *DRaw) {
    for (size_t H = 0; H < Heads; ++H) {
      size_t Off = Tk * Dim + H * HD;
      rope(G + Off, HD, Cos.data(), Sin.data(), -1.0);
      if (C.QKNorm)
        rmsNormBackward(&Raw[Off], Inv[Tk * Heads + H], HD, Norm, G + Off,
                        DRaw + Off);
      else
        axpy(1.0, G + Off, DRaw + Off, HD);
    }
  };
  for (size_t Tk = 0; Tk < T; ++Tk) {
    ropeAngles(W.RopeInvFreq, position(Tk), Cos.data(), Sin.data());
    BackHeads(Tk, NH, QDim, DQ.data(), Tp.QRaw, Tp.QInv, W.QNorm,
              DQRaw.data());
    BackHeads(Tk, NKV, KVDim, DK.data(), Tp.KRaw, Tp.KInv, W.KNorm,
              DKRaw.data());
  }
  accumulateRows(W.Q, DQRaw.data(), T, DH.data(), Wide);
  accumulateRows(W.K, DKRaw.data(), T, DH.data(), Wide);
  accumulateRows(W.V, DV.data(), T, DH.data(), Wide);
}

} // namespace

//===----------------------------------------------------------------------===//
// The interface
//===----------------------------------------------------------------------===//

LossSequence teacherForced(ArrayRef<int32_t> Prompt, ArrayRef<int32_t> Target) {
  LossSequence S;
  S.Tokens.assign(Prompt.begin(), Prompt.end());
  S.Tokens.insert(S.Tokens.end(), Target.begin(), Target.end());
  for (size_t J = 0; J < Target.size() && Prompt.size() + J > 0; ++J)
    S.Targets.push_back({Prompt.size() + J - 1, Target[J]});
  return S;
}

Expected<BackwardResult> backward(const Model &M, const LossSequence &S,
                                  const BackwardOptions &Opts) {
  if (Opts.LowestResidual > M.numLayers())
    return makeError("backward: residual {0} is past the last ({1})",
                     Opts.LowestResidual, M.numLayers());
  Tape Tp(M, S);
  if (Error E = Tp.check(Opts.Offset))
    return std::move(E);
  Tp.forward(Opts.Offset);
  BackwardResult R;
  R.NLL = Tp.NLL;
  R.KL = Tp.KL;
  R.Loss = Tp.NLL + Tp.KL;
  Tp.backward(Opts.LowestResidual, R);
  return R;
}

Expected<double> loss(const Model &M, const LossSequence &S,
                      const ResidualOffset &Offset) {
  Tape Tp(M, S);
  if (Error E = Tp.check(Offset))
    return std::move(E);
  Tp.forward(Offset);
  return Tp.NLL + Tp.KL;
}

Expected<std::vector<double>> logProbs(const Model &M, ArrayRef<int32_t> Tokens,
                                       size_t Position,
                                       const ResidualOffset &Offset,
                                       ArrayRef<size_t> OffsetPositions) {
  LossSequence S;
  S.Tokens.assign(Tokens.begin(), Tokens.end());
  S.OffsetPositions.assign(OffsetPositions.begin(), OffsetPositions.end());
  // A target makes the position's logits computed; its token is any.
  S.Targets.push_back({Position, 0});
  Tape Tp(M, S);
  if (Error E = Tp.check(Offset))
    return std::move(E);
  Tp.forward(Offset);
  return std::move(Tp.LogProbs[Position]);
}

/// An objective's sequences as one tape: of each, the tokens from the first
/// that depends on the offset or is read by a loss term to the last read,
/// with the tokens before them as fixed context (Segments).
struct PackedSequences {
  LossSequence All;
  Segments Segs;
  /// Per sequence: the position of its first tape token.
  std::vector<size_t> Begin;
  /// Residual Residual of the tape's tokens, [T, hidden].
  std::vector<double> Prefix;
  /// The tape token of position P of sequence I.
  size_t tapeIndex(size_t I, size_t P) const {
    return Segs.First[I] + P - Begin[I];
  }
};

namespace {

/// The sequences one after another, whole, each its own segment.
std::pair<LossSequence, Segments> concatenate(ArrayRef<LossSequence> Seqs) {
  LossSequence All;
  Segments Segs;
  for (size_t I = 0; I < Seqs.size(); ++I) {
    Segs.First.push_back(All.Tokens.size());
    All.Tokens.insert(All.Tokens.end(), Seqs[I].Tokens.begin(),
                      Seqs[I].Tokens.end());
    for (size_t P = 0; P < Seqs[I].Tokens.size(); ++P) {
      Segs.Index.push_back(I);
      Segs.Position.push_back(P);
    }
  }
  return {std::move(All), std::move(Segs)};
}

/// The positions of S that an offset or a loss term reads, [Begin, End).
std::pair<size_t, size_t> activeRange(const LossSequence &S) {
  std::vector<size_t> Read(S.OffsetPositions);
  for (const LossSequence::Target &Tg : S.Targets)
    Read.push_back(Tg.Position);
  for (const LossSequence::KLTerm &K : S.KL)
    Read.push_back(K.Position);
  if (Read.empty())
    return {S.Tokens.size() - 1, S.Tokens.size()};
  return {*llvm::min_element(Read), *llvm::max_element(Read) + 1};
}

/// One whole sequence run unedited up to residual Residual: that residual
/// at every position, and the keys and values of the layers from Residual
/// up (what the contexts of an objective's tape tokens read).
struct WholeRun {
  std::vector<double> X;                ///< [T, hidden]
  std::vector<std::vector<double>> K;   ///< Per layer from Residual, [T, KVDim]
  std::vector<std::vector<double>> V;   ///< The same for the values
};

/// Runs Wholes as one tape (each attending within itself, each weight row
/// read once for all of them).
std::vector<std::shared_ptr<const WholeRun>>
runWholes(const Model &M, ArrayRef<std::vector<int32_t>> Wholes,
          size_t Residual) {
  const ModelConfig &C = M.config();
  size_t D = C.HiddenSize, KVDim = C.NumKVHeads * C.HeadDim;
  std::vector<LossSequence> Seqs(Wholes.size());
  for (size_t I = 0; I < Wholes.size(); ++I)
    Seqs[I].Tokens = Wholes[I];
  auto [Whole, WholeSegs] = concatenate(Seqs);
  Tape Run(M, Whole, nullptr, &WholeSegs);
  std::vector<double> Top = Run.residual(M.numLayers());
  const std::vector<double> &X =
      Residual < M.numLayers() ? Run.layer(Residual).X : Top;
  std::vector<std::shared_ptr<const WholeRun>> Out;
  for (size_t I = 0; I < Wholes.size(); ++I) {
    auto R = std::make_shared<WholeRun>();
    size_t Base = WholeSegs.First[I], T = Wholes[I].size();
    R->X.assign(X.begin() + Base * D, X.begin() + (Base + T) * D);
    for (size_t L = Residual; L < M.numLayers(); ++L) {
      const LayerTape &Tp = Run.layer(L);
      R->K.emplace_back(Tp.K.begin() + Base * KVDim,
                        Tp.K.begin() + (Base + T) * KVDim);
      R->V.emplace_back(Tp.V.begin() + Base * KVDim,
                        Tp.V.begin() + (Base + T) * KVDim);
    }
    Out.push_back(std::move(R));
  }
  return Out;
}

} // namespace

struct SequenceRuns::Impl {
  using Shared = std::shared_future<std::shared_ptr<const WholeRun>>;
  std::mutex Lock;
  size_t Residual = 0;
  std::map<std::vector<int32_t>, Shared> Runs;
  /// Insertion order, for the budget: the oldest go first.
  std::deque<std::vector<int32_t>> Order;
  size_t Bytes = 0;
  /// About 256 MB of runs (4B-shaped layers hold 0.3 MB a token).
  static constexpr size_t Budget = size_t(256) << 20;

  /// The runs of Wholes: those held (or being run by another thread), the
  /// others run here, as one tape, and held.
  std::vector<std::shared_ptr<const WholeRun>>
  runs(const Model &M, ArrayRef<std::vector<int32_t>> Wholes, size_t R) {
    const ModelConfig &C = M.config();
    size_t PerToken =
        C.HiddenSize + 2 * (M.numLayers() - R) * C.NumKVHeads * C.HeadDim;
    std::vector<Shared> Found(Wholes.size());
    std::vector<std::vector<int32_t>> Missing;
    std::vector<std::promise<std::shared_ptr<const WholeRun>>> Promises;
    {
      std::lock_guard<std::mutex> G(Lock);
      if (R != Residual) {
        clearLocked();
        Residual = R;
      }
      for (size_t I = 0; I < Wholes.size(); ++I) {
        auto It = Runs.find(Wholes[I]);
        if (It != Runs.end()) {
          Found[I] = It->second;
          continue;
        }
        Promises.emplace_back();
        Found[I] = Promises.back().get_future().share();
        Runs.emplace(Wholes[I], Found[I]);
        Order.push_back(Wholes[I]);
        Bytes += Wholes[I].size() * PerToken * sizeof(double);
        Missing.push_back(Wholes[I]);
      }
      // Evicting drops the map's reference only: a run in use stays alive.
      while (Bytes > Budget && Order.size() > Missing.size()) {
        Bytes -= Order.front().size() * PerToken * sizeof(double);
        Runs.erase(Order.front());
        Order.pop_front();
      }
    }
    if (!Missing.empty()) {
      std::vector<std::shared_ptr<const WholeRun>> Made =
          runWholes(M, Missing, R);
      for (size_t I = 0; I < Made.size(); ++I)
        Promises[I].set_value(std::move(Made[I]));
    }
    std::vector<std::shared_ptr<const WholeRun>> Out;
    for (const Shared &F : Found)
      Out.push_back(F.get());
    return Out;
  }

  void clearLocked() {
    Runs.clear();
    Order.clear();
    Bytes = 0;
  }
};

SequenceRuns::SequenceRuns() : P(std::make_unique<Impl>()) {}
SequenceRuns::~SequenceRuns() = default;
void SequenceRuns::clear() {
  std::lock_guard<std::mutex> G(P->Lock);
  P->clearLocked();
}

namespace {

/// Packs Seqs (checked) for an objective at residual Residual from their
/// unedited runs (Wholes[I]'s for sequence I, through Runs when given): the
/// contexts' keys and values at the layers from Residual up and the tape
/// tokens' residual Residual.
PackedSequences pack(const Model &M, ArrayRef<LossSequence> Seqs,
                     size_t Residual, ArrayRef<std::vector<int32_t>> Wholes,
                     SequenceRuns *Runs) {
  const ModelConfig &C = M.config();
  size_t D = C.HiddenSize, KVDim = C.NumKVHeads * C.HeadDim;
  std::vector<std::shared_ptr<const WholeRun>> Whole =
      Runs ? Runs->P->runs(M, Wholes, Residual)
           : runWholes(M, Wholes, Residual);

  PackedSequences P;
  P.Segs.ContextK.resize(M.numLayers());
  P.Segs.ContextV.resize(M.numLayers());
  size_t ContextRows = 0;
  for (size_t I = 0; I < Seqs.size(); ++I) {
    const LossSequence &S = Seqs[I];
    const WholeRun &Run = *Whole[I];
    auto [Begin, End] = activeRange(S);
    P.Begin.push_back(Begin);
    P.Segs.First.push_back(P.All.Tokens.size());
    P.Segs.ContextRow.push_back(ContextRows);
    ContextRows += Begin;
    for (size_t L = Residual; L < M.numLayers(); ++L) {
      size_t Li = L - Residual;
      for (auto [From, To] : {std::pair(&Run.K[Li], &P.Segs.ContextK[L]),
                              {&Run.V[Li], &P.Segs.ContextV[L]}})
        To->insert(To->end(), From->begin(), From->begin() + Begin * KVDim);
    }
    for (size_t Pos = Begin; Pos < End; ++Pos) {
      P.All.Tokens.push_back(S.Tokens[Pos]);
      P.Segs.Index.push_back(I);
      P.Segs.Position.push_back(Pos);
      const double *X = &Run.X[Pos * D];
      P.Prefix.insert(P.Prefix.end(), X, X + D);
    }
    for (LossSequence::Target Tg : S.Targets) {
      Tg.Position = P.tapeIndex(I, Tg.Position);
      P.All.Targets.push_back(Tg);
    }
    for (LossSequence::KLTerm K : S.KL) {
      K.Position = P.tapeIndex(I, K.Position);
      P.All.KL.push_back(std::move(K));
    }
    for (size_t Pos : S.OffsetPositions)
      P.All.OffsetPositions.push_back(P.tapeIndex(I, Pos));
  }
  return P;
}

} // namespace

Expected<OffsetObjective>
OffsetObjective::create(const Model &M, std::vector<LossSequence> Sequences,
                        size_t Residual, SequenceRuns *Runs,
                        ArrayRef<std::vector<int32_t>> Wholes) {
  OffsetObjective O;
  O.M = &M;
  O.Residual = Residual;
  O.Sequences = std::move(Sequences);
  O.Wide = std::make_shared<WideWeights>();
  ResidualOffset Zero;
  Zero.Residual = Residual;
  Zero.Delta.assign(M.config().HiddenSize, 0.0);
  for (const LossSequence &S : O.Sequences)
    if (Error E = Tape(M, S).check(Zero))
      return std::move(E);
  std::vector<std::vector<int32_t>> Whole;
  for (size_t I = 0; I < O.Sequences.size(); ++I) {
    const std::vector<int32_t> &Tokens = O.Sequences[I].Tokens;
    if (I >= Wholes.size() || Wholes[I].empty()) {
      Whole.push_back(Tokens);
      continue;
    }
    if (Wholes[I].size() < Tokens.size() ||
        !std::equal(Tokens.begin(), Tokens.end(), Wholes[I].begin()))
      return makeError("offset objective: sequence {0} does not begin the "
                       "whole sequence given for it",
                       I);
    Whole.push_back(Wholes[I]);
  }
  O.Packed = std::make_shared<PackedSequences>(
      pack(M, O.Sequences, Residual, Whole, Runs));
  return O;
}

Expected<OffsetGradient>
OffsetObjective::evaluate(ArrayRef<double> Delta) const {
  size_t D = M->config().HiddenSize;
  if (Delta.size() != D)
    return makeError("offset gradient: the offset has {0} values, not {1}",
                     Delta.size(), D);
  ResidualOffset Offset;
  Offset.Residual = Residual;
  Offset.Delta.assign(Delta.begin(), Delta.end());
  OffsetGradient Out;
  Out.Gradient.assign(D, 0.0);
  if (Sequences.empty())
    return Out;
  Tape Tp(*M, Packed->All, Wide.get(), &Packed->Segs);
  Tp.forward(Offset, Residual, Packed->Prefix);
  BackwardResult R;
  Tp.backward(Residual, R);
  // Sequence by sequence, positions in order, each sequence's loss summed
  // as it alone: the sums are those of running them one at a time.
  const std::vector<double> &G = R.Gradients[Residual];
  for (size_t I = 0; I < Sequences.size(); ++I) {
    Out.Loss += Tp.SegmentNLL[I] + Tp.SegmentKL[I];
    for (size_t P : Sequences[I].OffsetPositions)
      axpy(1.0, &G[Packed->tapeIndex(I, P) * D], Out.Gradient.data(), D);
  }
  return Out;
}

Expected<OffsetGradient> offsetGradient(const Model &M,
                                        ArrayRef<LossSequence> Sequences,
                                        const ResidualOffset &Offset) {
  Expected<OffsetObjective> O = OffsetObjective::create(
      M, std::vector<LossSequence>(Sequences.begin(), Sequences.end()),
      Offset.Residual);
  if (!O)
    return O.takeError();
  return O->evaluate(Offset.Delta);
}

Error addResidualOffset(ForwardOptions &Opts, const Model &M, size_t Residual,
                        std::vector<size_t> Positions,
                        std::vector<float> Delta) {
  if (Residual == 0 || Residual > M.numLayers())
    return makeError("residual offset: the engine's hook reaches residuals 1 "
                     "to {0}, not {1}",
                     M.numLayers(), Residual);
  if (Delta.size() != M.config().HiddenSize)
    return makeError("residual offset: {0} values, not {1}", Delta.size(),
                     M.config().HiddenSize);
  if (Opts.AfterLayer)
    return makeError("residual offset: the forward already has a hook");
  size_t D = Delta.size();
  Opts.AfterLayer = [Layer = Residual - 1, Positions = std::move(Positions),
                     Delta = std::move(Delta),
                     D](size_t L, size_t Start, size_t T,
                        MutableArrayRef<float> X) {
    if (L != Layer)
      return;
    for (size_t P : Positions)
      if (P >= Start && P < Start + T)
        for (size_t I = 0; I < D; ++I)
          X[(P - Start) * D + I] += Delta[I];
  };
  return Error::success();
}

} // namespace vindex
