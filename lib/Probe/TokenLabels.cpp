//===- TokenLabels.cpp - The tokens each feature reads and writes ---------===//
//
// A feature's input tokens are those whose embedding, as the FFN's pre-norm
// presents it (normalised to unit RMS, times the norm weight), its gate
// responds to most: the embedding scale (Gemma's sqrt(hidden)) cancels in
// that normalisation. Its output tokens are those whose logit its down
// vector raises most, through the final norm's weight (the per-position
// 1/RMS is a positive factor common to all tokens, so it does not change
// the ranking). Both are one GEMM of a layer's feature directions against
// the vocabulary, in blocks, so that memory stays one layer's directions
// plus a block of scores.
//
//===----------------------------------------------------------------------===//
#include "vindex/Probe/Probe.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"

#include "llvm/Support/ThreadPool.h"

#include <cmath>

using namespace llvm;

namespace vindex {

/// Features per block and tokens per chunk of the score GEMM: a block's
/// scores (64 x 4096 floats, 1 MiB) stay in cache-friendly reach.
constexpr size_t kFeatureBlock = 64;
constexpr size_t kTokenChunk = 4096;

/// Keeps the K best (score, token), best first; ties keep the earlier
/// (lower) token since tokens arrive in ascending order.
static void offer(std::vector<TokenScore> &Top, unsigned K, uint32_t Token,
                  float Score) {
  if (Top.size() == K && !(Score > Top.back().Score))
    return;
  auto At = std::upper_bound(
      Top.begin(), Top.end(), Score,
      [](float S, const TokenScore &T) { return S > T.Score; });
  Top.insert(At, {Token, Score});
  if (Top.size() > K)
    Top.pop_back();
}

/// Rows [V0, V1) of W as an f32 matrix of their own (bf16 rows widened into
/// F32Rows): the scores are then matmulNT's f32 chains whether the engine
/// keeps the vocabulary as stored (it always does) or as f32.
static WeightMatrix rowSlice(const WeightMatrix &W, size_t V0, size_t V1,
                             std::vector<float> &F32Rows) {
  WeightMatrix S = W;
  S.Rows = V1 - V0;
  S.Transposed = nullptr;
  if (W.Type == DType::F32) {
    S.Data = W.f32Row(V0);
    return S;
  }
  F32Rows.resize(S.Rows * W.Cols);
  for (size_t R = 0; R < S.Rows; ++R)
    for (size_t C = 0; C < W.Cols; ++C)
      F32Rows[R * W.Cols + C] = W.at(V0 + R, C);
  S.Data = F32Rows.data();
  S.Type = DType::F32;
  return S;
}

void topTokens(ArrayRef<float> Directions, size_t N, size_t D,
               const WeightMatrix &Vocab, ArrayRef<float> TokenScale,
               unsigned K, ArrayRef<uint8_t> Skip, unsigned Jobs,
               std::vector<std::vector<TokenScore>> &Out) {
  Out.assign(N, {});
  size_t V = Vocab.Rows;
  auto Block = [&](size_t F0) {
    size_t F1 = std::min(N, F0 + kFeatureBlock);
    std::vector<float> Scores((F1 - F0) * kTokenChunk), F32Rows;
    for (size_t V0 = 0; V0 < V; V0 += kTokenChunk) {
      size_t V1 = std::min(V, V0 + kTokenChunk);
      WeightMatrix Chunk = rowSlice(Vocab, V0, V1, F32Rows);
      matmulNT(Directions.data() + F0 * D, F1 - F0, D, Chunk, 0, V1 - V0,
               Scores.data(), kTokenChunk);
      for (size_t F = F0; F < F1; ++F) {
        const float *Row = &Scores[(F - F0) * kTokenChunk];
        for (size_t T = V0; T < V1; ++T)
          if (!(T < Skip.size() && Skip[T]))
            offer(Out[F], K, T,
                  TokenScale.empty() ? Row[T - V0]
                                     : Row[T - V0] * TokenScale[T]);
      }
    }
  };
  if (Jobs <= 1) {
    for (size_t F0 = 0; F0 < N; F0 += kFeatureBlock)
      Block(F0);
    return;
  }
  DefaultThreadPool Pool(hardware_concurrency(Jobs));
  for (size_t F0 = 0; F0 < N; F0 += kFeatureBlock)
    Pool.async([&, F0] { Block(F0); });
  Pool.wait();
}

/// Row n of W times Weight, elementwise, into Out[n * Cols...].
static void scaledRows(const WeightMatrix &W, ArrayRef<float> Weight,
                       std::vector<float> &Out) {
  Out.resize(W.Rows * W.Cols);
  for (size_t R = 0; R < W.Rows; ++R)
    for (size_t C = 0; C < W.Cols; ++C)
      Out[R * W.Cols + C] = W.at(R, C) * Weight[C];
}

/// Per token, 1 / RMS of its embedding row (the pre-norm's scale).
static std::vector<float> inverseRMS(const WeightMatrix &E) {
  std::vector<float> S(E.Rows);
  for (size_t T = 0; T < E.Rows; ++T) {
    double Sum = 0;
    for (size_t C = 0; C < E.Cols; ++C) {
      double X = E.at(T, C);
      Sum += X * X;
    }
    double RMS = std::sqrt(Sum / double(E.Cols));
    S[T] = RMS > 0 ? float(1 / RMS) : 0.f;
  }
  return S;
}

/// Tokens never worth a label: special tokens and ids the tokenizer does
/// not know.
static std::vector<uint8_t> skippedTokens(const Tokenizer &Tok, size_t V) {
  std::vector<uint8_t> Skip(V);
  for (size_t T = 0; T < V; ++T)
    Skip[T] = T >= Tok.vocabSize() || Tok.isSpecial(T) || Tok.piece(T).empty();
  return Skip;
}

TokenLabeler::TokenLabeler(const Model &M, const Tokenizer &Tok,
                           const ProbeOptions &Opts)
    : M(M), Opts(Opts), Skip(skippedTokens(Tok, M.lmHead().Rows)),
      InvRMS(inverseRMS(M.embedding())) {}

void TokenLabeler::label(unsigned L, std::vector<FeatureLabel> &Out) const {
  const ModelConfig &C = M.config();
  const LayerWeights &W = M.layer(L);
  size_t F = W.Gate.Rows, D = W.Gate.Cols;
  std::vector<float> Dirs;
  std::vector<std::vector<TokenScore>> In, OutTop;
  // gate . (w * e / rms(e)) = (gate * w) . e / rms(e).
  scaledRows(W.Gate, C.PostNorms ? W.PreFFNNorm : W.PostAttnNorm, Dirs);
  topTokens(Dirs, F, D, M.embedding(), InvRMS, Opts.TopTokens, Skip, Opts.Jobs,
            In);
  scaledRows(W.Down, M.finalNorm(), Dirs);
  topTokens(Dirs, F, D, M.lmHead(), {}, Opts.TopTokens, Skip, Opts.Jobs,
            OutTop);
  for (size_t I = 0; I < F; ++I) {
    FeatureLabel FL;
    FL.Layer = L;
    FL.Feature = I;
    FL.InputTokens = std::move(In[I]);
    FL.OutputTokens = std::move(OutTop[I]);
    Out.push_back(std::move(FL));
  }
}

} // namespace vindex
