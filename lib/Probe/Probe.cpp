//===- Probe.cpp - Facts through the engine, labels out -------------------===//
#include "vindex/Probe/Probe.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Support/Progress.h"

#include "llvm/ADT/StringMap.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <thread>

using namespace llvm;

namespace vindex {

namespace {

using Clock = std::chrono::steady_clock;
static double since(Clock::time_point T0) {
  return std::chrono::duration<double>(Clock::now() - T0).count();
}

/// The last row of a [T, N] capture.
ArrayRef<float> lastRow(const std::vector<float> &Rows, size_t N) {
  return ArrayRef<float>(Rows).take_back(N);
}

/// What one worker thread accumulates besides the per-fact evidence.
struct WorkerTimes {
  double Forward = 0, Attribution = 0, Lens = 0;
};

/// Runs facts and collects their evidence; each worker has its own session.
class FactRunner {
public:
  FactRunner(const Model &M, const Tokenizer &Tok, const ProbeOptions &Opts)
      : M(M), Tok(Tok), Opts(Opts) {}

  FactEvidence run(Session &S, StringRef Prompt, StringRef Target,
                   WorkerTimes &Times, std::vector<float> &LayerPositive);

private:
  int lensFirstTop10(const ForwardResult &R, int32_t Target);
  const Model &M;
  const Tokenizer &Tok;
  const ProbeOptions &Opts;
};

} // namespace

FactEvidence FactRunner::run(Session &S, StringRef Prompt, StringRef Target,
                             WorkerTimes &Times,
                             std::vector<float> &LayerPositive) {
  const ModelConfig &C = M.config();
  size_t D = C.HiddenSize, NL = M.numLayers();
  FactEvidence E;
  FactTokens FT = factTokens(Tok, Prompt, Target);
  E.TargetToken = FT.Target;
  LayerPositive.assign(NL, 0.f);
  if (FT.Target < 0 || FT.Prompt.empty())
    return E;
  auto T0 = Clock::now();
  S.reset();
  ForwardOptions FO;
  FO.CaptureResiduals = true;
  FO.CaptureFFN = true;
  ForwardResult R = S.run(FT.Prompt, FO);
  Times.Forward += since(T0);

  T0 = Clock::now();
  std::vector<float> Readout =
      readoutVector(lastRow(R.Residuals[NL], D), M.finalNorm(), M.lmHead(),
                    size_t(FT.Target), C.NormEps);
  // The top contributors over every layer: (attribution, layer, feature),
  // ties to the lower (layer, feature) so that the result is one order.
  auto Better = [](const FactEvidence::Contribution &A,
                   const FactEvidence::Contribution &B) {
    if (A.Attribution != B.Attribution)
      return A.Attribution > B.Attribution;
    return std::make_pair(A.Layer, A.Feature) <
           std::make_pair(B.Layer, B.Feature);
  };
  std::vector<float> Credit, Y(D), LayerReadout(D);
  for (size_t L = 0; L < NL; ++L) {
    const LayerWeights &W = M.layer(L);
    size_t F = W.Down.Rows;
    ArrayRef<float> Act = lastRow(R.FFNActivations[L], F);
    float Scale = 1;
    ArrayRef<float> LR = Readout;
    if (C.PostNorms) {
      std::fill(Y.begin(), Y.end(), 0.f);
      for (size_t I = 0; I < F; ++I)
        if (Act[I] != 0)
          axpyRow(Act[I], W.Down, I, Y.data());
      double SumSq = 0;
      for (float V : Y)
        SumSq += double(V) * V;
      Scale = float(1 / std::sqrt(SumSq / double(D) + C.NormEps));
      for (size_t I = 0; I < D; ++I)
        LayerReadout[I] = Readout[I] * W.PostFFNNorm[I];
      LR = LayerReadout;
    }
    Credit.resize(F);
    layerAttribution(Act, W.Down, LR, Scale, Credit);
    for (size_t I = 0; I < F; ++I) {
      if (!(Credit[I] > 0))
        continue;
      LayerPositive[L] += Credit[I];
      FactEvidence::Contribution Cand{uint32_t(L), uint32_t(I), Credit[I]};
      if (E.Top.size() == Opts.TopContributors && !Better(Cand, E.Top.back()))
        continue;
      E.Top.insert(std::upper_bound(E.Top.begin(), E.Top.end(), Cand, Better),
                   Cand);
      if (E.Top.size() > Opts.TopContributors)
        E.Top.pop_back();
    }
  }
  Times.Attribution += since(T0);

  T0 = Clock::now();
  E.LensFirstTop10 = lensFirstTop10(R, FT.Target);
  Times.Lens += since(T0);
  return E;
}

/// The logit lens: each layer's output at the last position through the
/// final norm and the unembedding; the first layer whose logits rank the
/// target among the 10 largest (-1 if none does).
int FactRunner::lensFirstTop10(const ForwardResult &R, int32_t Target) {
  const ModelConfig &C = M.config();
  size_t D = C.HiddenSize, NL = M.numLayers(), V = M.lmHead().Rows;
  std::vector<float> H(NL * D);
  ArrayRef<float> G = M.finalNorm();
  for (size_t L = 0; L < NL; ++L) {
    ArrayRef<float> X = lastRow(R.Residuals[L + 1], D);
    double SumSq = 0;
    for (float V : X)
      SumSq += double(V) * V;
    float Inv = float(1 / std::sqrt(SumSq / double(D) + C.NormEps));
    for (size_t I = 0; I < D; ++I)
      H[L * D + I] = X[I] * Inv * G[I];
  }
  // Layers go through the unembedding a group at a time (a GEMM, not NL
  // matrix-vector products), stopping at the first group that answers.
  constexpr size_t kLensGroup = 8;
  std::vector<float> Logits(std::min(NL, kLensGroup) * V);
  for (size_t L0 = 0; L0 < NL; L0 += kLensGroup) {
    size_t N = std::min(kLensGroup, NL - L0);
    M.lmHeadLogits(&H[L0 * D], N, 0, V, Logits.data(), V);
    for (size_t L = L0; L < L0 + N; ++L) {
      const float *Row = &Logits[(L - L0) * V];
      float TargetLogit = Row[Target];
      unsigned Above = 0;
      for (size_t T = 0; T < V && Above < 10; ++T)
        Above += Row[T] > TargetLogit;
      if (Above < 10)
        return int(L);
    }
  }
  return -1;
}

void computeBands(std::vector<LayerLabel> &Layers, uint32_t Facts) {
  size_t N = Layers.size();
  if (!Facts || !N)
    return;
  // The median fact's target enters the logit lens's top 10 after layer
  // Median: that layer's retrieval put it there. The layers after it
  // refine a prediction already made: output (the last layer at least).
  size_t Median = N - 1;
  uint64_t Cum = 0;
  for (size_t L = 0; L < N; ++L) {
    Cum += Layers[L].LensTop10First;
    if (2 * Cum >= Facts) {
      Median = L;
      break;
    }
  }
  size_t OutStart = std::min(Median + 1, N - 1);
  // Knowledge: up to there, from the first layer holding at least half the
  // largest attribution share of those layers; syntax: the layers before.
  float MaxShare = 0;
  for (size_t L = 0; L < OutStart; ++L)
    MaxShare = std::max(MaxShare, Layers[L].AttributionShare);
  size_t KnowStart = OutStart;
  for (size_t L = 0; L < OutStart; ++L)
    if (MaxShare > 0 && Layers[L].AttributionShare >= MaxShare / 2) {
      KnowStart = L;
      break;
    }
  for (size_t L = 0; L < N; ++L)
    Layers[L].Band = L >= OutStart    ? Band::Output
                     : L >= KnowStart ? Band::Knowledge
                                      : Band::Syntax;
}

/// Each entity's index in L.Entities.
static StringMap<uint32_t> entityIndex(const Labels &L) {
  StringMap<uint32_t> Index;
  for (size_t I = 0; I < L.Entities.size(); ++I)
    Index[L.Entities[I]] = I;
  return Index;
}

/// Each relation's entities (those with a fact of it), so that an edit's
/// guards ask the pairs the facts name, not every entity with every
/// relation ("The capital of Paris is").
static void recordRelationEntities(ArrayRef<Fact> Facts, Labels &L) {
  StringMap<uint32_t> EntityIndex = entityIndex(L);
  std::vector<std::set<uint32_t>> Sets(L.Relations.size());
  for (const Fact &F : Facts)
    if (std::optional<uint32_t> Rel = L.relation(F.Relation))
      Sets[*Rel].insert(EntityIndex.lookup(F.Entity));
  for (size_t R = 0; R < Sets.size(); ++R)
    L.Relations[R].Entities.assign(Sets[R].begin(), Sets[R].end());
}

namespace {
/// A (layer, feature, relation) key's evidence, summed in fact order.
struct LabelEvidence {
  std::set<uint32_t> Entities;
  double Sum = 0;
  uint32_t Count = 0;
  std::map<std::string, double> Targets;
};
} // namespace

/// Relation labels from every fact's top contributors, reduced in fact
/// order; per-layer evidence into L.Layers.
static void reduce(ArrayRef<Fact> Facts, ArrayRef<FactEvidence> Evidence,
                   ArrayRef<std::vector<float>> LayerPositive,
                   const ProbeOptions &Opts, Labels &L,
                   std::vector<size_t> &LayerOffset) {
  StringMap<uint32_t> EntityIndex = entityIndex(L);
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, LabelEvidence> ByKey;
  double Total = 0;
  std::vector<double> PerLayer(L.Layers.size());
  for (size_t I = 0; I < Facts.size(); ++I) {
    uint32_t Rel = *L.relation(Facts[I].Relation);
    uint32_t Ent = EntityIndex[Facts[I].Entity];
    for (size_t Y = 0; Y < PerLayer.size(); ++Y) {
      PerLayer[Y] += LayerPositive[I][Y];
      Total += LayerPositive[I][Y];
    }
    const FactEvidence &E = Evidence[I];
    if (E.LensFirstTop10 >= 0)
      ++L.Layers[E.LensFirstTop10].LensTop10First;
    for (const FactEvidence::Contribution &C : E.Top) {
      LabelEvidence &LE = ByKey[{C.Layer, C.Feature, Rel}];
      LE.Entities.insert(Ent);
      LE.Sum += C.Attribution;
      ++LE.Count;
      LE.Targets[Facts[I].Target] += C.Attribution;
    }
  }
  for (size_t Y = 0; Y < PerLayer.size(); ++Y)
    L.Layers[Y].AttributionShare = Total > 0 ? float(PerLayer[Y] / Total) : 0;
  for (const auto &[Key, LE] : ByKey) {
    auto [Layer, Feature, Rel] = Key;
    uint32_t Entities = LE.Entities.size();
    float Confidence =
        float(Entities) / float(L.Relations[Rel].Entities.size());
    if (Entities < Opts.MinEntities || Confidence < Opts.MinConfidence)
      continue;
    RelationLabel RL;
    RL.Relation = Rel;
    RL.Entities = Entities;
    RL.MeanAttribution = float(LE.Sum / LE.Count);
    RL.Confidence = Confidence;
    std::vector<std::pair<double, std::string>> Targets;
    for (const auto &[Name, Sum] : LE.Targets)
      Targets.push_back({-Sum, Name});
    llvm::sort(Targets);
    for (size_t I = 0; I < Targets.size() && I < Opts.Examples; ++I)
      RL.Examples.push_back(Targets[I].second);
    L.Features[LayerOffset[Layer] + Feature].Relations.push_back(std::move(RL));
  }
  for (FeatureLabel &F : L.Features) {
    llvm::stable_sort(F.Relations,
                      [](const RelationLabel &A, const RelationLabel &B) {
                        return A.MeanAttribution > B.MeanAttribution;
                      });
    if (!F.Relations.empty())
      ++L.Layers[F.Layer].RelationFeatures;
  }
}

Error probe(const Model &M, const Tokenizer &Tok, ArrayRef<Fact> Facts,
            const ProbeOptions &Opts, Labels &L, ProbeStats &Stats) {
  size_t NL = M.numLayers();
  L.Layers.clear();
  for (size_t I = 0; I < NL; ++I)
    L.Layers.push_back({uint32_t(I)});
  L.Parameters = {Opts.TopTokens, Opts.TopContributors, Opts.MinEntities,
                  Opts.MinConfidence};
  L.Entities.clear();
  {
    StringMap<bool> Seen;
    for (const Fact &F : Facts)
      if (Seen.try_emplace(F.Entity, true).second)
        L.Entities.push_back(F.Entity);
  }
  recordRelationEntities(Facts, L);

  // Token labels, a layer at a time.
  auto T0 = Clock::now();
  L.Features.clear();
  std::vector<size_t> LayerOffset;
  {
    std::optional<TokenLabeler> Labeler;
    if (Opts.TokenLabels)
      Labeler.emplace(M, Tok, Opts);
    std::optional<Progress> P;
    if (Opts.ShowProgress)
      P.emplace("larql-probe: tokens", NL, "layers");
    for (size_t Y = 0; Y < NL; ++Y) {
      LayerOffset.push_back(L.Features.size());
      if (Opts.TokenLabels) {
        Labeler->label(Y, L.Features);
      } else {
        for (size_t I = 0; I < M.layer(Y).Gate.Rows; ++I)
          L.Features.push_back({uint32_t(Y), uint32_t(I)});
      }
      if (P)
        P->advance(1);
    }
  }
  Stats.TokenSeconds = since(T0);
  Stats.FeaturesTokenLabelled = Opts.TokenLabels ? L.Features.size() : 0;

  // Attribution: workers take facts in turn; evidence is kept per fact.
  std::vector<FactEvidence> Evidence(Facts.size());
  std::vector<std::vector<float>> LayerPositive(Facts.size());
  T0 = Clock::now();
  if (!Facts.empty()) {
    FactRunner Runner(M, Tok, Opts);
    std::atomic<size_t> Next{0};
    unsigned Workers = std::max(
        1u, std::min<unsigned>(Opts.Jobs ? Opts.Jobs
                                         : std::thread::hardware_concurrency(),
                               Facts.size()));
    std::vector<WorkerTimes> Times(Workers);
    std::optional<Progress> P;
    if (Opts.ShowProgress)
      P.emplace("larql-probe: facts", Facts.size(), "facts");
    auto Work = [&](unsigned W) {
      Session S(M, 1);
      for (size_t I; (I = Next++) < Facts.size();) {
        const Fact &F = Facts[I];
        const RelationInfo &R = L.Relations[*L.relation(F.Relation)];
        Evidence[I] = Runner.run(S, R.prompt(F.Entity), F.Target, Times[W],
                                 LayerPositive[I]);
        if (P)
          P->advance(1);
      }
    };
    std::vector<std::thread> Threads;
    for (unsigned W = 1; W < Workers; ++W)
      Threads.emplace_back(Work, W);
    Work(0);
    for (std::thread &T : Threads)
      T.join();
    for (const WorkerTimes &T : Times) {
      Stats.ForwardSeconds += T.Forward;
      Stats.AttributionSeconds += T.Attribution;
      Stats.LensSeconds += T.Lens;
    }
  }
  Stats.Facts = Facts.size();
  L.Facts = Facts.size();

  T0 = Clock::now();
  reduce(Facts, Evidence, LayerPositive, Opts, L, LayerOffset);
  computeBands(L.Layers, L.Facts);
  for (const FeatureLabel &F : L.Features) {
    Stats.RelationLabels += F.Relations.size();
    Stats.FeaturesWithRelations += !F.Relations.empty();
  }

  // The text of every token used.
  std::set<uint32_t> Used;
  for (const FeatureLabel &F : L.Features) {
    for (const TokenScore &T : F.InputTokens)
      Used.insert(T.Token);
    for (const TokenScore &T : F.OutputTokens)
      Used.insert(T.Token);
  }
  L.Tokens.clear();
  for (uint32_t T : Used)
    L.Tokens.emplace_back(T, Tok.decode({int32_t(T)}, /*SkipSpecial=*/false));
  Stats.ReduceSeconds = since(T0);
  return Error::success();
}

} // namespace vindex
