//===- KeyStats.cpp - MODE memit's key statistics -------------------------===//
//
// E[k kᵀ] of the FFN keys per edit layer over ordinary text, and the
// model's own greedy text that stands in for a corpus.
//
//===----------------------------------------------------------------------===//
#include "Internal.h"
#include "vindex/Edit/Memit.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/Kernels.h"
#include "vindex/Support/Error.h"

#include "llvm/Support/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace llvm;

namespace vindex {
namespace edit {

namespace {

/// C[I][J] += Σ_P A[P][I] A[P][J] for I in [I0, I1), J in [J0, J1),
/// each element's products added in position order. A product of two
/// floats is exact in double, so a multiply then an add and a fused
/// multiply-add round the same: one rounding per position, whatever the
/// form or the vector width below.
void accumulateTileScalar(const float *A, size_t F, size_t Positions, size_t I0,
                          size_t I1, size_t J0, size_t J1, double *C) {
  for (size_t I = I0; I < I1; ++I)
    for (size_t P = 0; P < Positions; ++P) {
      double Ki = A[P * F + I];
      const float *K = A + P * F;
      double *Row = C + I * F;
      for (size_t J = J0; J < J1; ++J)
        Row[J] += Ki * double(K[J]);
    }
}

#if defined(__x86_64__)
/// accumulateTileScalar for 8 rows x 16 columns, AVX-512: lane j of
/// Acc[i][h] is element (I0 + i, J0 + 8h + j), held in a register over
/// every position.
__attribute__((target("avx512f"))) void
accumulateTile8x16(const float *A, size_t F, size_t Positions, size_t I0,
                   size_t J0, double *C) {
  __m512d Acc[8][2];
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      Acc[I][H] = _mm512_loadu_pd(C + (I0 + I) * F + J0 + 8 * H);
  for (size_t P = 0; P < Positions; ++P) {
    const float *K = A + P * F;
    __m512d B0 = _mm512_cvtps_pd(_mm256_loadu_ps(K + J0));
    __m512d B1 = _mm512_cvtps_pd(_mm256_loadu_ps(K + J0 + 8));
    for (unsigned I = 0; I < 8; ++I) {
      __m512d L = _mm512_set1_pd(double(K[I0 + I]));
      Acc[I][0] = _mm512_fmadd_pd(L, B0, Acc[I][0]);
      Acc[I][1] = _mm512_fmadd_pd(L, B1, Acc[I][1]);
    }
  }
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      _mm512_storeu_pd(C + (I0 + I) * F + J0 + 8 * H, Acc[I][H]);
}

/// The same for 4 rows x 8 columns, AVX2 and FMA (the baseline).
__attribute__((target("avx2,fma"))) void
accumulateTile4x8(const float *A, size_t F, size_t Positions, size_t I0,
                  size_t J0, double *C) {
  __m256d Acc[4][2];
  for (unsigned I = 0; I < 4; ++I)
    for (unsigned H = 0; H < 2; ++H)
      Acc[I][H] = _mm256_loadu_pd(C + (I0 + I) * F + J0 + 4 * H);
  for (size_t P = 0; P < Positions; ++P) {
    const float *K = A + P * F;
    __m256d B0 = _mm256_cvtps_pd(_mm_loadu_ps(K + J0));
    __m256d B1 = _mm256_cvtps_pd(_mm_loadu_ps(K + J0 + 4));
    for (unsigned I = 0; I < 4; ++I) {
      __m256d L = _mm256_set1_pd(double(K[I0 + I]));
      Acc[I][0] = _mm256_fmadd_pd(L, B0, Acc[I][0]);
      Acc[I][1] = _mm256_fmadd_pd(L, B1, Acc[I][1]);
    }
  }
  for (unsigned I = 0; I < 4; ++I)
    for (unsigned H = 0; H < 2; ++H)
      _mm256_storeu_pd(C + (I0 + I) * F + J0 + 4 * H, Acc[I][H]);
}
#endif

} // namespace

void accumulateKeyMoments(ArrayRef<float> Keys, size_t F,
                          MutableArrayRef<double> C,
                          ThreadPoolInterface *Pool) {
  size_t Positions = F ? Keys.size() / F : 0;
  if (!Positions)
    return;
  const float *A = Keys.data();
  double *Out = C.data();
  // Tiles of Rows x Cols elements, each accumulated in registers over
  // every position: the triangle is read and written once per call, not
  // once per position. The columns of a tile start at its first row
  // rounded down to the tile width, so tiles on the diagonal also add to
  // a few elements below it (the lower triangle is not C's result).
  size_t Rows = 1, Cols = 1;
  void (*Tile)(const float *, size_t, size_t, size_t, size_t, double *) =
      nullptr;
#if defined(__x86_64__)
  if (activeKernelPath() == KernelPath::AVX2) {
    Rows = 4, Cols = 8, Tile = accumulateTile4x8;
  } else {
    Rows = 8, Cols = 16, Tile = accumulateTile8x16;
  }
#endif
  size_t TiledRows = Tile ? F / Rows * Rows : 0;
  size_t TiledCols = Tile ? F / Cols * Cols : 0;
  // A band of rows (every element of it) is one task's, whichever thread
  // runs it: the bits do not depend on the threads. Block is Count
  // positions from Begin: each element's products are still added in
  // position order, block after block.
  auto Band = [&](size_t I0, size_t Begin, size_t Count) {
    const float *Block = A + Begin * F;
    if (I0 >= TiledRows) {
      accumulateTileScalar(Block, F, Count, I0, I0 + 1, I0, F, Out);
      return;
    }
    size_t J0 = I0 / Cols * Cols;
    for (size_t J = J0; J < TiledCols; J += Cols)
      Tile(Block, F, Count, I0, J, Out);
    accumulateTileScalar(Block, F, Count, I0, I0 + Rows,
                         std::max(J0, TiledCols), F, Out);
  };
  std::vector<size_t> Bands;
  for (size_t I0 = 0; I0 < TiledRows; I0 += Rows)
    Bands.push_back(I0);
  for (size_t I = TiledRows; I < F; ++I)
    Bands.push_back(I);
  // Every band reads every position's keys: over all the positions at once
  // (tens of thousands of guard positions, hundreds of MB) each band
  // streamed them from memory. A block of about 4 MB of them stays in the
  // last-level cache while every band reads it (20,000 positions at
  // F = 2,000: 6.2 s -> 2.5 s, `vindex-bench-memit-solve --moments`).
  size_t PositionsPerBlock =
      std::max<size_t>(64, (size_t(4) << 20) / (F * sizeof(float)));
  bool Threaded = Pool && Pool->getMaxConcurrency() >= 2 && F >= 256;
  for (size_t Begin = 0; Begin < Positions; Begin += PositionsPerBlock) {
    size_t Count = std::min(PositionsPerBlock, Positions - Begin);
    // Small work (a few hundred short rows) is not worth the hand-off.
    if (!Threaded) {
      for (size_t I0 : Bands)
        Band(I0, Begin, Count);
      continue;
    }
    // Bands dealt round robin (the triangle's rows shorten as they go
    // down), a few per task.
    size_t Tasks = 4 * Pool->getMaxConcurrency();
    ThreadPoolTaskGroup Group(*Pool);
    for (size_t T = 0; T < Tasks; ++T)
      Group.async([&, T] {
        for (size_t B = T; B < Bands.size(); B += Tasks)
          Band(Bands[B], Begin, Count);
      });
    Group.wait();
  }
}

double outputScale(ArrayRef<double> FFNOut, double Eps) {
  double Ms = 0;
  for (double X : FFNOut)
    Ms += X * X;
  return 1.0 / std::sqrt(Ms / double(FFNOut.size()) + Eps);
}

/// With NormKeys on a model whose FFN output is normed: a hook that
/// records, per layer, outputScale of each row's raw FFN output (rows in
/// the order of the captured activations).
static void recordOutputScales(const Model &M, bool NormKeys, ForwardOptions &O,
                               std::vector<std::vector<float>> &Scales) {
  Scales.assign(M.numLayers(), {});
  if (!NormKeys || !M.config().PostNorms)
    return;
  size_t D = M.config().HiddenSize;
  double Eps = M.config().NormEps;
  O.AfterFFN = [&Scales, D, Eps](size_t Layer, size_t, size_t T,
                                 ArrayRef<float>, MutableArrayRef<float> Out) {
    std::vector<float> &S = Scales[Layer];
    S.resize(T);
    std::vector<double> Row(D);
    for (size_t Tk = 0; Tk < T; ++Tk) {
      for (size_t I = 0; I < D; ++I)
        Row[I] = Out[Tk * D + I];
      S[Tk] = float(outputScale(Row, Eps));
    }
  };
}

/// Rows From ... To of A ([T, F]) times Scales (none: unchanged).
static void scaleRows(MutableArrayRef<float> A, size_t F, size_t From,
                      size_t To, ArrayRef<float> Scales) {
  if (Scales.empty())
    return;
  for (size_t P = From; P < To; ++P)
    for (size_t I = 0; I < F; ++I)
      A[P * F + I] *= Scales[P];
}

Expected<KeyStatistics> keyStatistics(const Model &M,
                                      ArrayRef<std::vector<int32_t>> Texts,
                                      ArrayRef<unsigned> Layers,
                                      std::string Source, bool NormKeys,
                                      unsigned Threads) {
  size_t Next = 0;
  return keyStatistics(
      M,
      [&](std::vector<int32_t> &Ids) {
        if (Next == Texts.size())
          return false;
        Ids = Texts[Next++];
        return true;
      },
      Layers, std::move(Source), NormKeys, Threads);
}

Expected<KeyStatistics>
keyStatistics(const Model &M,
              function_ref<bool(std::vector<int32_t> &)> NextText,
              ArrayRef<unsigned> Layers, std::string Source, bool NormKeys,
              unsigned Threads) {
  KeyStatistics S;
  S.Layers.assign(Layers.begin(), Layers.end());
  S.Source = std::move(Source);
  for (unsigned L : Layers) {
    if (L >= M.numLayers())
      return makeError("memit: no layer {0} (the model has {1})", L,
                       M.numLayers());
    size_t F = M.layer(L).Down.Rows;
    S.Moment.emplace_back(F * F, 0.0);
  }
  // The keys of the highest layer need no layer above it, nor the LM head.
  std::optional<size_t> StopAfter;
  if (!Layers.empty())
    StopAfter = size_t(*llvm::max_element(Layers)) + 1;
  // The keys of a few hundred positions at a time go into the moments
  // together (in position order, so the sums are the same): a text is a
  // dozen positions, and each call reads and writes the whole triangle.
  // The texts of such a group run as batched forwards, TextsPerBatch texts
  // each, on Threads threads.
  constexpr size_t PositionsPerPass = 256, TextsPerBatch = 8;
  std::optional<DefaultThreadPool> Pool;
  if (Threads > 1)
    Pool.emplace(hardware_concurrency(Threads));
  std::vector<std::vector<int32_t>> Group;
  size_t GroupPositions = 0;
  auto RunGroup = [&] {
    size_t Batches = (Group.size() + TextsPerBatch - 1) / TextsPerBatch;
    // [batch][edit layer]: the keys of every position of the batch's texts.
    std::vector<std::vector<std::vector<float>>> Keys(Batches);
    forEachBatch(M, Batches, Threads, [&](size_t BI, unsigned BatchThreads) {
      ForwardOptions O;
      O.CaptureFFN = true;
      O.StopAfter = StopAfter;
      std::vector<std::vector<float>> Scales;
      recordOutputScales(M, NormKeys, O, Scales);
      size_t B = BI * TextsPerBatch;
      size_t N = std::min(TextsPerBatch, Group.size() - B);
      std::vector<ArrayRef<int32_t>> Tokens(Group.begin() + B,
                                            Group.begin() + B + N);
      ForwardResult R = Session::runTexts(M, Tokens, O, BatchThreads);
      for (unsigned L : Layers) {
        std::vector<float> &A = R.FFNActivations[L];
        size_t F = M.layer(L).Down.Rows;
        scaleRows(A, F, 0, A.size() / F, Scales[L]);
        Keys[BI].push_back(std::move(A));
      }
    });
    for (size_t LI = 0; LI < Layers.size(); ++LI) {
      std::vector<float> Pending;
      for (std::vector<std::vector<float>> &B : Keys)
        Pending.insert(Pending.end(), B[LI].begin(), B[LI].end());
      accumulateKeyMoments(Pending, M.layer(Layers[LI]).Down.Rows, S.Moment[LI],
                           Pool ? &*Pool : nullptr);
    }
    S.Positions += GroupPositions;
    Group.clear();
    GroupPositions = 0;
  };
  std::vector<int32_t> Ids;
  while (NextText(Ids)) {
    if (Ids.empty())
      continue;
    GroupPositions += Ids.size();
    Group.push_back(std::move(Ids));
    if (GroupPositions >= PositionsPerPass)
      RunGroup();
  }
  if (!Group.empty())
    RunGroup();
  if (!S.Positions)
    return makeError("memit: no text to measure the key statistics on");
  for (std::vector<double> &C : S.Moment) {
    size_t F = size_t(std::sqrt(double(C.size())) + 0.5);
    for (size_t I = 0; I < F; ++I)
      for (size_t J = I; J < F; ++J) {
        C[I * F + J] /= double(S.Positions);
        C[J * F + I] = C[I * F + J];
      }
  }
  return S;
}

void forEachCorpusLine(StringRef Text, function_ref<void(StringRef)> Line) {
  while (!Text.empty()) {
    auto [L, Rest] = Text.split('\n');
    Text = Rest;
    L = L.trim();
    if (!L.empty())
      Line(L);
  }
}

void addKeyMoments(const Model &M, ArrayRef<PreservedText> Texts,
                   unsigned Layer, double Weight, std::vector<double> &C,
                   unsigned Threads, bool NormKeys, ForwardResume *Resume) {
  size_t F = M.layer(Layer).Down.Rows;
  std::vector<double> U(F * F, 0.0);
  bool Resuming = Resume && !Resume->Inputs.empty() && Resume->Layer <= Layer;
  // The texts run TextsPerBatch at a time as one batched forward (the
  // weights read once per batch: the texts are hundreds of short prompts).
  constexpr size_t TextsPerBatch = 32;
  std::vector<const PreservedText *> Used;
  for (const PreservedText &T : Texts)
    if (!T.Ids.empty() && T.From < T.Ids.size())
      Used.push_back(&T);
  size_t Batches = (Used.size() + TextsPerBatch - 1) / TextsPerBatch;
  std::vector<std::vector<float>> Inputs(Resume ? Batches : 0);
  // Every text's keys side by side, each batch's at its place, then one
  // pass over U: the same additions in the same order as a pass per text,
  // which streamed U (840 MB at F = 10240) through memory once per text.
  std::vector<size_t> BatchRow(Batches + 1, 0);
  for (size_t I = 0; I < Used.size(); ++I)
    BatchRow[I / TextsPerBatch + 1] += Used[I]->Ids.size() - Used[I]->From;
  for (size_t B = 0; B < Batches; ++B)
    BatchRow[B + 1] += BatchRow[B];
  std::vector<float> Keys(BatchRow[Batches] * F);
  forEachBatch(M, Batches, Threads, [&](size_t BI, unsigned BatchThreads) {
    ForwardOptions O;
    O.CaptureFFN = true;
    O.CaptureFFNLayer = Layer;
    O.CaptureResiduals = Resume != nullptr;
    O.StopAfter = size_t(Layer) + 1;
    std::vector<std::vector<float>> Scales;
    recordOutputScales(M, NormKeys, O, Scales);
    size_t B = BI * TextsPerBatch;
    size_t N = std::min(TextsPerBatch, Used.size() - B);
    std::vector<ArrayRef<int32_t>> Tokens;
    for (size_t I = 0; I < N; ++I)
      Tokens.push_back(Used[B + I]->Ids);
    if (Resuming) {
      O.StartLayer = Resume->Layer;
      O.StartResidual = Resume->Inputs[BI];
    }
    ForwardResult R = Session::runTexts(M, Tokens, O, BatchThreads);
    if (Resume)
      Inputs[BI] = std::move(R.Residuals[Layer]);
    std::vector<float> &A = R.FFNActivations[Layer];
    scaleRows(A, F, 0, A.size() / F, Scales[Layer]);
    size_t Row = 0;
    float *To = Keys.data() + BatchRow[BI] * F;
    for (size_t I = 0; I < N; ++I) {
      const PreservedText &T = *Used[B + I];
      To = std::copy(A.begin() + (Row + T.From) * F,
                     A.begin() + (Row + T.Ids.size()) * F, To);
      Row += T.Ids.size();
    }
  });
  if (Resume) {
    Resume->Layer = Layer;
    Resume->Inputs = std::move(Inputs);
    Resume->AttentionOut.clear();
    Resume->Keys.clear();
  }
  std::optional<DefaultThreadPool> Pool;
  if (Threads > 1)
    Pool.emplace(hardware_concurrency(Threads));
  accumulateKeyMoments(Keys, F, U, Pool ? &*Pool : nullptr);
  // Each element of C gets its one addition.
  forUpperInTiles(F, [&](size_t I, size_t J) {
    C[I * F + J] += Weight * U[I * F + J];
    if (J != I)
      C[J * F + I] += Weight * U[I * F + J];
  });
}

std::vector<std::vector<int32_t>> greedyTexts(const Model &M,
                                              const Tokenizer &Tok,
                                              size_t Count, size_t MaxNew) {
  std::vector<int32_t> Start = Tok.encode("", /*AddSpecial=*/true);
  if (Start.empty())
    if (std::optional<int32_t> B = Tok.bosId())
      Start.push_back(*B);
  std::vector<std::vector<int32_t>> Texts;
  if (Start.empty())
    return Texts;
  Session S(M, 1);
  Texts.push_back(Start);
  std::vector<int32_t> G = S.generate(Start, MaxNew, {});
  Texts.back().insert(Texts.back().end(), G.begin(), G.end());
  S.reset();
  std::vector<float> Logits = S.run(Start).Logits;
  std::vector<int32_t> Order(Logits.size());
  std::iota(Order.begin(), Order.end(), 0);
  std::stable_sort(Order.begin(), Order.end(), [&](int32_t A, int32_t B) {
    return Logits[A] > Logits[B];
  });
  for (size_t I = 0; I < Count && I < Order.size(); ++I) {
    std::vector<int32_t> P = Start;
    P.push_back(Order[I]);
    S.reset();
    std::vector<int32_t> More = S.generate(P, MaxNew, {});
    P.insert(P.end(), More.begin(), More.end());
    Texts.push_back(std::move(P));
  }
  return Texts;
}

} // namespace edit
} // namespace vindex
