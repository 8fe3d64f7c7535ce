//===- Describe.cpp - An entity's edges, computed from the model ----------===//
//
// The residual method, for one prompt (a relation template filled with the
// entity, or the entity alone) and the relations R it asks about:
//
//  1. Run the prompt; keep the FFN activations a (every layer) and the
//     final residual x at the last position.
//  2. Candidates: the model's own top tokens there (the logits).
//  3. Feature i of layer l adds a_i * down_i to the FFN output; through the
//     post-FFN norm (Gemma; frozen at its value here, w / rms(ffn_out)) and
//     the final norm (w / rms(x)) this is a linear map, so its part of the
//     logit of candidate t is
//        c_i(t) = a_i * (down_i * s_l * f) . unembed[t].
//  4. For each relation r in R, the features labelled r vote:
//        score_r(t) = sum over those features of c_i(t),
//     the logit that r's features give t in this context. The edge (r, t)
//     names the feature with the largest c_i(t); edges with a positive
//     score are kept, best first.
//
// Only labelled features and the candidate tokens are ever multiplied, so
// the cost is one forward pass per prompt plus |features| x |candidates|
// dot products.
//
//===----------------------------------------------------------------------===//
#include "vindex/Probe/Describe.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

using namespace llvm;

namespace vindex::probe {

namespace {

/// Tokens the greedy continuation of a target may add to finish its word.
constexpr size_t kMaxContinuation = 6;

bool startsWord(StringRef Piece) {
  return Piece.starts_with("\xE2\x96\x81") || Piece.starts_with("\xC4\xA0") ||
         Piece.starts_with(" ");
}

float rms(const float *X, size_t N, double Eps) {
  double S = 0;
  for (size_t I = 0; I < N; ++I)
    S += double(X[I]) * X[I];
  return float(std::sqrt(S / double(N) + Eps));
}

bool featureAllowed(const Labels &L, uint32_t Layer,
                    const DescribeOptions &Opts) {
  if (Opts.Layer && *Opts.Layer != Layer)
    return false;
  return !Opts.OnlyBand || L.band(Layer) == *Opts.OnlyBand;
}

/// The model's top N tokens in Logits that are not special, best first.
std::vector<int32_t> topTokens(ArrayRef<float> Logits, const Tokenizer &Tok,
                               unsigned N) {
  std::vector<int32_t> Ids(Logits.size());
  std::iota(Ids.begin(), Ids.end(), 0);
  auto Better = [&](int32_t A, int32_t B) {
    return Logits[A] > Logits[B] || (Logits[A] == Logits[B] && A < B);
  };
  std::vector<int32_t> Out;
  size_t Take = std::min<size_t>(Ids.size(), size_t(N) * 2 + 8);
  std::partial_sort(Ids.begin(), Ids.begin() + Take, Ids.end(), Better);
  for (size_t I = 0; I < Take && Out.size() < N; ++I)
    if (!Tok.isSpecial(Ids[I]) && !StringRef(Tok.decode({Ids[I]})).trim().empty())
      Out.push_back(Ids[I]);
  return Out;
}

class ResidualDescriber {
public:
  ResidualDescriber(const Model &M, const Tokenizer &Tok, const Labels &L,
                    const DescribeOptions &Opts)
      : M(M), Tok(Tok), L(L), Opts(Opts) {}

  /// The edges of relations Rels that the prompt Ids shows.
  void prompt(StringRef Text, ArrayRef<int32_t> Ids, ArrayRef<uint32_t> Rels,
              std::vector<DescribeEdge> &Out) {
    const ModelConfig &C = M.config();
    size_t D = C.HiddenSize, NL = M.numLayers();
    Session S(M, Opts.Threads);
    ForwardOptions FO;
    FO.CaptureFFN = true;
    FO.CaptureResiduals = true;
    ForwardResult R = S.run(Ids, FO);
    size_t P = Ids.size() - 1;
    std::vector<int32_t> Cands = topTokens(R.Logits, Tok, Opts.Candidates);

    // The candidates' unembedding rows times the final norm's map.
    const float *X = R.Residuals[NL].data() + P * D;
    float FinalRms = rms(X, D, C.NormEps);
    ArrayRef<float> FW = M.finalNorm();
    std::vector<std::vector<float>> U(Cands.size(), std::vector<float>(D));
    for (size_t K = 0; K < Cands.size(); ++K)
      for (size_t J = 0; J < D; ++J)
        U[K][J] = M.lmHead().at(Cands[K], J) * FW[J] / FinalRms;

    // Per relation and candidate: the summed score and the best feature.
    struct Vote {
      double Score = 0, Best = -INFINITY;
      uint32_t Layer = 0, Feature = 0;
    };
    std::map<uint32_t, std::vector<Vote>> Votes;
    for (uint32_t Rel : Rels)
      Votes[Rel].resize(Cands.size());

    std::vector<float> Scale(D), V(D);
    for (uint32_t Layer = 0; Layer < NL; ++Layer) {
      ArrayRef<FeatureLabel> Labelled = L.layerFeatures(Layer);
      if (Labelled.empty() || !featureAllowed(L, Layer, Opts))
        continue;
      const LayerWeights &W = M.layer(Layer);
      size_t F = W.Down.Rows;
      const float *A = R.FFNActivations[Layer].data() + P * F;
      // The post-FFN norm's map at this position (identity without it).
      std::fill(Scale.begin(), Scale.end(), 1.0f);
      if (C.PostNorms) {
        std::vector<float> Out(D, 0.0f);
        for (size_t I = 0; I < F; ++I)
          if (A[I] != 0.0f)
            axpyRow(A[I], W.Down, I, Out.data());
        float Rms = rms(Out.data(), D, C.NormEps);
        for (size_t J = 0; J < D; ++J)
          Scale[J] = W.PostFFNNorm[J] / Rms;
      }
      for (const FeatureLabel &FL : Labelled) {
        bool Wanted = false;
        for (const RelationLabel &RL : FL.Relations)
          Wanted |= Votes.count(RL.Relation) != 0;
        if (!Wanted || FL.Feature >= F || A[FL.Feature] == 0.0f)
          continue;
        std::fill(V.begin(), V.end(), 0.0f);
        axpyRow(A[FL.Feature], W.Down, FL.Feature, V.data());
        for (size_t J = 0; J < D; ++J)
          V[J] *= Scale[J];
        for (size_t K = 0; K < Cands.size(); ++K) {
          double Ct = dotF32(V.data(), U[K].data(), D);
          for (const RelationLabel &RL : FL.Relations) {
            auto It = Votes.find(RL.Relation);
            if (It == Votes.end())
              continue;
            Vote &Vt = It->second[K];
            Vt.Score += Ct;
            if (Ct > Vt.Best) {
              Vt.Best = Ct;
              Vt.Layer = Layer;
              Vt.Feature = FL.Feature;
            }
          }
        }
      }
    }

    for (auto &[Rel, Vs] : Votes) {
      std::vector<size_t> Order(Cands.size());
      std::iota(Order.begin(), Order.end(), 0);
      std::stable_sort(Order.begin(), Order.end(), [&](size_t A, size_t B) {
        return Vs[A].Score > Vs[B].Score;
      });
      unsigned Kept = 0;
      for (size_t K : Order) {
        if (Kept == Opts.PerRelation || !(Vs[K].Score > 0))
          break;
        DescribeEdge E;
        E.Relation = L.Relations[Rel].Name;
        E.TargetToken = Cands[K];
        E.Target = complete(Ids, Cands[K]);
        E.Layer = Vs[K].Layer;
        E.Feature = Vs[K].Feature;
        E.Score = Vs[K].Score;
        E.LayerBand = L.band(E.Layer);
        E.Context = Text.str();
        Out.push_back(std::move(E));
        ++Kept;
      }
    }
  }

private:
  /// Token T after Ids, completed to the end of its word by greedy decoding.
  std::string complete(ArrayRef<int32_t> Ids, int32_t T) {
    std::vector<int32_t> Word{T};
    std::vector<int32_t> Seq(Ids.begin(), Ids.end());
    Seq.push_back(T);
    uint64_t Max = M.config().MaxPositions;
    Session S(M, Opts.Threads);
    std::vector<float> Logits = S.run(Seq).Logits;
    for (size_t Step = 0; Step < kMaxContinuation; ++Step) {
      if (Max && Seq.size() >= Max)
        break;
      int32_t Next = int32_t(argmax(Logits));
      if (Tok.isSpecial(Next) ||
          is_contained(M.config().EosIds, int64_t(Next)) ||
          startsWord(Tok.piece(Next)))
        break;
      StringRef Piece = Tok.decode({Next});
      // Punctuation ends the target ("Paris." is "Paris").
      if (Piece.empty() || !isAlnum(Piece.front()))
        break;
      Word.push_back(Next);
      Seq.push_back(Next);
      Logits = S.run({Next}).Logits;
    }
    return StringRef(Tok.decode(Word)).trim().str();
  }

  const Model &M;
  const Tokenizer &Tok;
  const Labels &L;
  const DescribeOptions &Opts;
};

/// Keeps the best edge per (relation, target) and PerRelation edges per
/// relation, and sorts by descending score (ties: relation, target).
std::vector<DescribeEdge> finish(std::vector<DescribeEdge> Edges,
                                 unsigned PerRelation) {
  std::stable_sort(Edges.begin(), Edges.end(),
                   [](const DescribeEdge &A, const DescribeEdge &B) {
                     if (A.Score != B.Score)
                       return A.Score > B.Score;
                     if (A.Relation != B.Relation)
                       return A.Relation < B.Relation;
                     return A.Target < B.Target;
                   });
  std::vector<DescribeEdge> Out;
  std::map<std::string, unsigned> PerRel;
  std::map<std::pair<std::string, std::string>, bool> Seen;
  for (DescribeEdge &E : Edges) {
    if (!Seen.emplace(std::make_pair(E.Relation, E.Target), true).second)
      continue;
    if (PerRel[E.Relation]++ >= PerRelation)
      continue;
    Out.push_back(std::move(E));
  }
  return Out;
}

Error checkPrompt(const Model &M, StringRef Text, ArrayRef<int32_t> Ids) {
  if (Ids.empty())
    return createStringError(inconvertibleErrorCode(),
                             "the prompt '%s' encodes to no tokens",
                             Text.str().c_str());
  uint64_t Max = M.config().MaxPositions;
  if (Max && Ids.size() >= Max)
    return createStringError(inconvertibleErrorCode(),
                             "the prompt '%s' has %zu tokens; the model's "
                             "context is %llu",
                             Text.str().c_str(), Ids.size(),
                             (unsigned long long)Max);
  return Error::success();
}

} // namespace

Expected<std::vector<DescribeEdge>>
describeFromResidual(const Model &M, const Tokenizer &Tok, const Labels &L,
                     StringRef Entity, const DescribeOptions &Opts) {
  ResidualDescriber RD(M, Tok, L, Opts);
  std::vector<DescribeEdge> Edges;
  for (uint32_t Rel = 0; Rel < L.Relations.size(); ++Rel) {
    std::string Text = L.Relations[Rel].prompt(Entity);
    std::vector<int32_t> Ids = Tok.encode(Text);
    if (Error E = checkPrompt(M, Text, Ids))
      return std::move(E);
    RD.prompt(Text, Ids, {Rel}, Edges);
  }
  if (Opts.EntityAlone) {
    std::vector<int32_t> Ids = Tok.encode(Entity);
    if (Error E = checkPrompt(M, Entity, Ids))
      return std::move(E);
    std::vector<uint32_t> All(L.Relations.size());
    std::iota(All.begin(), All.end(), 0);
    RD.prompt(Entity, Ids, All, Edges);
  }
  return finish(std::move(Edges), Opts.PerRelation);
}

Expected<std::vector<DescribeEdge>>
describeFromEmbedding(const Model &M, const Tokenizer &Tok, const Labels &L,
                      StringRef Entity, const DescribeOptions &Opts) {
  // The query: the mean of the entity's token embeddings as the first
  // layer sees them (no special tokens).
  std::vector<int32_t> Ids = Tok.encode(Entity, /*AddSpecial=*/false);
  if (Ids.empty())
    return createStringError(inconvertibleErrorCode(),
                             "the entity '%s' encodes to no tokens",
                             Entity.str().c_str());
  const ModelConfig &C = M.config();
  size_t D = C.HiddenSize;
  std::vector<float> Q(D, 0.0f);
  for (int32_t Id : Ids)
    for (size_t J = 0; J < D; ++J)
      Q[J] += M.embedding().at(Id, J) * float(C.EmbeddingScale) / Ids.size();

  std::vector<DescribeEdge> Edges;
  for (uint32_t Layer = 0; Layer < M.numLayers(); ++Layer) {
    if (!featureAllowed(L, Layer, Opts))
      continue;
    const WeightMatrix &G = M.layer(Layer).Gate;
    std::vector<std::pair<float, uint32_t>> Scores;
    for (size_t I = 0; I < G.Rows; ++I)
      Scores.push_back({dotRow(Q.data(), G, I), uint32_t(I)});
    size_t K = std::min<size_t>(Opts.Candidates, Scores.size());
    std::partial_sort(Scores.begin(), Scores.begin() + K, Scores.end(),
                      [](const auto &A, const auto &B) {
                        return A.first > B.first ||
                               (A.first == B.first && A.second < B.second);
                      });
    for (size_t I = 0; I < K; ++I) {
      const FeatureLabel *FL = L.feature(Layer, Scores[I].second);
      if (!FL || FL->OutputTokens.empty())
        continue;
      for (const RelationLabel &RL : FL->Relations) {
        DescribeEdge E;
        E.Relation = L.Relations[RL.Relation].Name;
        E.TargetToken = int32_t(FL->OutputTokens.front().Token);
        E.Target = StringRef(L.tokenText(FL->OutputTokens.front().Token))
                       .trim()
                       .str();
        E.Layer = Layer;
        E.Feature = Scores[I].second;
        E.Score = Scores[I].first;
        E.LayerBand = L.band(Layer);
        Edges.push_back(std::move(E));
      }
    }
  }
  return finish(std::move(Edges), Opts.PerRelation);
}

} // namespace vindex::probe
