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
//  4. t is an edge of the relation r (of R) whose labelled feature writes
//     it most (largest positive c_i(t)); the edge names that feature. t
//     with no labelled feature of R writing it positively, or whose total
//     from all the FFNs (the sum of c_i(t) over every feature) is not
//     positive, is no edge: an edge is knowledge the FFNs write.
//  5. Its score is the model's logit of t there: the model's own ranking
//     of the entity's targets. AT LAYER and a band restrict which features
//     may carry an edge, not the score.
//
// The cost is one forward pass per prompt, one pass over each layer's down
// vectors (its output y), and labelled features x candidates dot products
// (the probe's credit, layerAttribution's formula).
//
//===----------------------------------------------------------------------===//
#include "vindex/Probe/Describe.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Probe/Probe.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

using namespace llvm;

namespace vindex {

namespace {

/// Tokens the greedy continuation of a target may add.
constexpr size_t kMaxContinuation = 12;

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
    if (!Tok.isSpecial(Ids[I]) &&
        !StringRef(Tok.decode({Ids[I]})).trim().empty())
      Out.push_back(Ids[I]);
  return Out;
}

class ResidualDescriber {
public:
  ResidualDescriber(const Model &M, const Tokenizer &Tok, const Labels &L,
                    const DescribeOptions &Opts)
      : M(M), Tok(Tok), L(L), Opts(Opts) {}

  /// The edges of relations Rels that the prompt Ids shows. Without a
  /// relation's template (the entity alone) a candidate is an edge only if
  /// it is one of its carrier's stored top output tokens: a token the
  /// feature writes in any context, not the syntax that follows a name.
  void prompt(StringRef Text, ArrayRef<int32_t> Ids, ArrayRef<uint32_t> Rels,
              bool NeedOutputToken, std::vector<DescribeEdge> &Out) {
    const ModelConfig &C = M.config();
    size_t D = C.HiddenSize, NL = M.numLayers();
    Session S(M, Opts.Threads);
    ForwardOptions FO;
    FO.CaptureFFN = true;
    FO.CaptureResiduals = true;
    ForwardResult R = S.run(Ids, FO);
    size_t P = Ids.size() - 1;
    std::vector<int32_t> Cands = topTokens(R.Logits, Tok, Opts.Candidates);

    // Each candidate's logit direction in the final residual (the probe's
    // readout: its attribution is the same linearisation).
    ArrayRef<float> X(R.Residuals[NL].data() + P * D, D);
    std::vector<std::vector<float>> U;
    for (int32_t T : Cands)
      U.push_back(
          readoutVector(X, M.finalNorm(), M.lmHead(), size_t(T), C.NormEps));

    // Per candidate: what all the features write for it, and per relation
    // asked about the labelled feature (of the layers asked for) that
    // writes most.
    struct Carrier {
      float Credit = 0;
      uint32_t Layer = 0, Feature = 0;
    };
    std::vector<double> Total(Cands.size(), 0.0);
    std::map<uint32_t, std::vector<Carrier>> Best;
    for (uint32_t Rel : Rels)
      Best[Rel].resize(Cands.size());

    std::vector<float> Y(D), LR(D);
    for (uint32_t Layer = 0; Layer < NL; ++Layer) {
      // Every layer writes the score; only the layers asked for (AT LAYER,
      // a band) may carry an edge.
      bool Carries = featureAllowed(L, Layer, Opts);
      const LayerWeights &W = M.layer(Layer);
      size_t F = W.Down.Rows;
      ArrayRef<float> A(R.FFNActivations[Layer].data() + P * F, F);
      // The layer's FFN output y = sum a_i down_i, and the post-FFN norm at
      // this position held at its value (as the probe's attribution does).
      std::fill(Y.begin(), Y.end(), 0.0f);
      for (size_t I = 0; I < F; ++I)
        if (A[I] != 0.0f)
          axpyRow(A[I], W.Down, I, Y.data());
      float Scale = C.PostNorms ? 1 / rms(Y.data(), D, C.NormEps) : 1;
      ArrayRef<FeatureLabel> Labelled;
      if (Carries)
        Labelled = L.layerFeatures(Layer);
      for (size_t K = 0; K < Cands.size(); ++K) {
        for (size_t J = 0; J < D; ++J)
          LR[J] = C.PostNorms ? U[K][J] * W.PostFFNNorm[J] : U[K][J];
        // The credits of all the layer's features sum to Scale * (LR . y):
        // one dot product rather than one per feature.
        Total[K] += Scale * dotF32(LR.data(), Y.data(), D);
        for (const FeatureLabel &FL : Labelled) {
          if (FL.Feature >= F || A[FL.Feature] == 0.0f)
            continue;
          if (NeedOutputToken &&
              none_of(FL.OutputTokens, [&](const TokenScore &T) {
                return int32_t(T.Token) == Cands[K];
              }))
            continue;
          // The feature's credit, layerAttribution's for one row.
          float X =
              A[FL.Feature] * Scale * dotRow(LR.data(), W.Down, FL.Feature);
          for (const RelationLabel &RL : FL.Relations) {
            auto It = Best.find(RL.Relation);
            if (It != Best.end() && X > It->second[K].Credit)
              It->second[K] = {X, Layer, FL.Feature};
          }
        }
      }
    }

    // A candidate is an edge of the relation whose labelled feature writes
    // it most (one relation per candidate and prompt).
    for (size_t K = 0; K < Cands.size(); ++K) {
      const Carrier *Top = nullptr;
      uint32_t TopRel = 0;
      for (auto &[Rel, Cs] : Best)
        if (Cs[K].Credit > 0 && (!Top || Cs[K].Credit > Top->Credit)) {
          Top = &Cs[K];
          TopRel = Rel;
        }
      if (!Top || !(Total[K] > 0))
        continue;
      DescribeEdge E;
      E.Relation = L.Relations[TopRel].Name;
      E.TargetToken = Cands[K];
      E.Target = complete(Ids, Cands[K]);
      E.Layer = Top->Layer;
      E.Feature = Top->Feature;
      E.Score = R.Logits[Cands[K]];
      E.LayerBand = L.band(E.Layer);
      E.Context = Text.str();
      Out.push_back(std::move(E));
    }
  }

private:
  /// Token T after Ids, completed by greedy decoding up to the first
  /// punctuation mark or special token: the whole target ("New Delhi",
  /// "West African CFA franc"), as the model would go on to write it.
  std::string complete(ArrayRef<int32_t> Ids, int32_t T) {
    std::vector<int32_t> Target{T};
    std::vector<int32_t> Seq(Ids.begin(), Ids.end());
    Seq.push_back(T);
    uint64_t Max = M.config().MaxPositions;
    Session S(M, Opts.Threads);
    std::vector<float> Logits = S.run(Seq).Logits;
    for (size_t Step = 0; Step < kMaxContinuation; ++Step) {
      if (Max && Seq.size() >= Max)
        break;
      int32_t Next = int32_t(argmax(Logits));
      if (Tok.isSpecial(Next) || is_contained(M.config().EosIds, int64_t(Next)))
        break;
      StringRef Piece = StringRef(Tok.decode({Next})).ltrim(" ");
      if (Piece.empty() || StringRef(".,;:!?\n\"()").contains(Piece.front()))
        break;
      Target.push_back(Next);
      Seq.push_back(Next);
      Logits = S.run({Next}).Logits;
    }
    return StringRef(Tok.decode(Target)).trim().str();
  }

  const Model &M;
  const Tokenizer &Tok;
  const Labels &L;
  const DescribeOptions &Opts;
};

/// Keeps the best edge per (relation, target) and PerRelation edges per
/// relation, the edges of the relation's own template first (those of the
/// entity alone only fill a relation's remaining places), and sorts them by
/// descending score (ties: relation, target).
std::vector<DescribeEdge> finish(std::vector<DescribeEdge> Edges,
                                 unsigned PerRelation,
                                 StringRef AloneContext = "") {
  auto ByScore = [](const DescribeEdge &A, const DescribeEdge &B) {
    if (A.Score != B.Score)
      return A.Score > B.Score;
    if (A.Relation != B.Relation)
      return A.Relation < B.Relation;
    return A.Target < B.Target;
  };
  auto Alone = [&](const DescribeEdge &E) {
    return !AloneContext.empty() && E.Context == AloneContext;
  };
  std::stable_sort(Edges.begin(), Edges.end(),
                   [&](const DescribeEdge &A, const DescribeEdge &B) {
                     if (Alone(A) != Alone(B))
                       return Alone(B);
                     return ByScore(A, B);
                   });
  std::vector<DescribeEdge> Out;
  std::map<std::string, unsigned> PerRel;
  std::set<std::pair<std::string, std::string>> Seen;
  for (DescribeEdge &E : Edges) {
    if (!Seen.insert({E.Relation, E.Target}).second)
      continue;
    if (PerRel[E.Relation]++ >= PerRelation)
      continue;
    Out.push_back(std::move(E));
  }
  std::stable_sort(Out.begin(), Out.end(), ByScore);
  return Out;
}

Error checkPrompt(const Model &M, const Tokenizer &Tok, StringRef Text,
                  ArrayRef<int32_t> Ids) {
  if (Ids.empty())
    return createStringError(inconvertibleErrorCode(),
                             "the prompt '%s' encodes to no tokens",
                             Text.str().c_str());
  if (Error E = Tok.checkInEmbedding(Ids, M.config().VocabSize,
                                     "the prompt '" + Text.str() + "'"))
    return E;
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
    if (Error E = checkPrompt(M, Tok, Text, Ids))
      return std::move(E);
    RD.prompt(Text, Ids, {Rel}, /*NeedOutputToken=*/false, Edges);
  }
  if (Opts.EntityAlone) {
    std::vector<int32_t> Ids = Tok.encode(Entity);
    if (Error E = checkPrompt(M, Tok, Entity, Ids))
      return std::move(E);
    std::vector<uint32_t> All(L.Relations.size());
    std::iota(All.begin(), All.end(), 0);
    RD.prompt(Entity, Ids, All, /*NeedOutputToken=*/true, Edges);
  }
  return finish(std::move(Edges), Opts.PerRelation, Entity);
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
  if (Error E = Tok.checkInEmbedding(Ids, C.VocabSize,
                                     "the entity '" + Entity.str() + "'"))
    return std::move(E);
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
        E.Target =
            StringRef(L.tokenText(FL->OutputTokens.front().Token)).trim().str();
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

} // namespace vindex
