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
#include "vindex/Support/Error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace llvm;

namespace vindex {
namespace edit {

/// The upper triangle of Σ k kᵀ over positions From ... To of A ([T, F]),
/// each element summed over the positions in order (a fixed order). Row by
/// row of C, all the positions at once, so that a row (at most F doubles)
/// stays in cache while they are added: position by position, every
/// position streamed the whole triangle (420 MB a layer at F = 10240)
/// through memory. Each element sees the same additions in the same order
/// either way, so the bits are the same (and a product of two floats is
/// exact in double, so contracting it into a fused multiply-add changes
/// nothing).
static void accumulateUpper(ArrayRef<float> A, size_t F, size_t From,
                            size_t To, std::vector<double> &C) {
  for (size_t I = 0; I < F; ++I) {
    double *Row = &C[I * F];
    for (size_t P = From; P < To; ++P) {
      const float *K = &A[P * F];
      double Ki = K[I];
      if (Ki == 0)
        continue;
      for (size_t J = I; J < F; ++J)
        Row[J] += Ki * double(K[J]);
    }
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
                                      std::string Source, bool NormKeys) {
  size_t Next = 0;
  return keyStatistics(
      M,
      [&](std::vector<int32_t> &Ids) {
        if (Next == Texts.size())
          return false;
        Ids = Texts[Next++];
        return true;
      },
      Layers, std::move(Source), NormKeys);
}

Expected<KeyStatistics>
keyStatistics(const Model &M,
              function_ref<bool(std::vector<int32_t> &)> NextText,
              ArrayRef<unsigned> Layers, std::string Source, bool NormKeys) {
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
  Session Sess(M, 1);
  ForwardOptions O;
  O.CaptureFFN = true;
  std::vector<std::vector<float>> Scales;
  recordOutputScales(M, NormKeys, O, Scales);
  // The keys of the highest layer need no layer above it, nor the LM head.
  if (!Layers.empty())
    O.StopAfter = size_t(*llvm::max_element(Layers)) + 1;
  std::vector<int32_t> Ids;
  while (NextText(Ids)) {
    if (Ids.empty())
      continue;
    Sess.reset();
    ForwardResult R = Sess.run(Ids, O);
    for (size_t LI = 0; LI < Layers.size(); ++LI) {
      std::vector<float> &A = R.FFNActivations[Layers[LI]];
      size_t F = A.size() / Ids.size();
      scaleRows(A, F, 0, Ids.size(), Scales[Layers[LI]]);
      accumulateUpper(A, F, 0, Ids.size(), S.Moment[LI]);
    }
    S.Positions += Ids.size();
  }
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
                   unsigned Threads, bool NormKeys) {
  size_t F = M.layer(Layer).Down.Rows;
  std::vector<double> U(F * F, 0.0);
  ForwardOptions O;
  O.CaptureFFN = true;
  O.StopAfter = size_t(Layer) + 1;
  std::vector<std::vector<float>> Scales;
  recordOutputScales(M, NormKeys, O, Scales);
  // The texts run TextsPerBatch at a time as one batched forward (the
  // weights read once per batch: the texts are hundreds of short
  // prompts); the first session carries the threads.
  constexpr size_t TextsPerBatch = 32;
  std::vector<std::unique_ptr<Session>> Sessions;
  Sessions.push_back(std::make_unique<Session>(M, std::max(1u, Threads)));
  for (size_t I = 1; I < TextsPerBatch; ++I)
    Sessions.push_back(std::make_unique<Session>(M, 1));
  std::vector<const PreservedText *> Used;
  for (const PreservedText &T : Texts)
    if (!T.Ids.empty() && T.From < T.Ids.size())
      Used.push_back(&T);
  // Every text's keys side by side, then one pass over U: the same
  // additions in the same order as a pass per text, which streamed U (840
  // MB at F = 10240) through memory once per text.
  std::vector<float> Keys;
  for (size_t B = 0; B < Used.size(); B += TextsPerBatch) {
    size_t N = std::min(TextsPerBatch, Used.size() - B);
    std::vector<Session *> Rows;
    std::vector<ArrayRef<int32_t>> Tokens;
    for (size_t I = 0; I < N; ++I) {
      Sessions[I]->reset();
      Rows.push_back(Sessions[I].get());
      Tokens.push_back(Used[B + I]->Ids);
    }
    ForwardResult R = Session::runMany(Rows, Tokens, O);
    std::vector<float> &A = R.FFNActivations[Layer];
    scaleRows(A, F, 0, A.size() / F, Scales[Layer]);
    size_t Row = 0;
    for (size_t I = 0; I < N; ++I) {
      const PreservedText &T = *Used[B + I];
      Keys.insert(Keys.end(), A.begin() + (Row + T.From) * F,
                  A.begin() + (Row + T.Ids.size()) * F);
      Row += T.Ids.size();
    }
  }
  accumulateUpper(Keys, F, 0, Keys.size() / F, U);
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
