//===- DescribeTest.cpp - DESCRIBE's edges against the engine -------------===//
//
// Labels made by hand (every feature of tiny-gemma3 labelled with one
// relation, or those of one layer), so that what DESCRIBE finds can be
// checked against the engine run directly and the probe's attribution
// kernel (hand-checked in ProbeTest.cpp), and against facts.tsv: the
// capital of France is Paris.
//
//===----------------------------------------------------------------------===//
#include "vindex/Probe/Describe.h"
#include "vindex/Convert/Decompose.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Probe/Probe.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/FileSystem.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace vindex;
using namespace llvm;

namespace {

struct Fixture {
  SmallString<128> Dir;
  std::unique_ptr<Vindex> V;
  std::unique_ptr<Model> M;
  std::unique_ptr<Tokenizer> Tok;
};

Fixture &gemma() {
  static std::unique_ptr<Fixture> F;
  if (F)
    return *F;
  F = std::make_unique<Fixture>();
  EXPECT_FALSE(sys::fs::createUniqueDirectory("vindex-describe-test", F->Dir));
  DecomposeOptions Opts;
  Opts.Input = std::string(VINDEX_TEST_FIXTURES) + "/models/tiny-gemma3";
  Opts.Output = (F->Dir + "/m.vindex").str();
  std::vector<std::string> Inputs;
  Error E = decompose(Opts, Inputs);
  EXPECT_FALSE(bool(E)) << toString(std::move(E));
  F->V = cantFail(Vindex::open(Opts.Output));
  F->M = cantFail(Model::load(*F->V));
  F->Tok = std::make_unique<Tokenizer>(
      cantFail(Tokenizer::fromFile(F->V->path("tokenizer.json"))));
  return *F;
}

/// One relation, capital; the features of Layers labelled with it, with
/// Output as their top output token when given. Layers 0-2 are knowledge,
/// 3-5 output.
Labels capitalLabels(const Model &M, ArrayRef<uint32_t> Layers,
                     std::optional<uint32_t> Output = std::nullopt) {
  Labels L;
  RelationInfo R;
  R.Name = "capital";
  R.Canonical = "The capital of {e} is";
  L.Relations.push_back(R);
  for (uint32_t I = 0; I < M.numLayers(); ++I) {
    LayerLabel LL;
    LL.Index = I;
    LL.Band = I < 3 ? Band::Knowledge : Band::Output;
    L.Layers.push_back(LL);
  }
  for (uint32_t Layer : Layers)
    for (uint32_t F = 0; F < M.layer(Layer).Down.Rows; ++F) {
      FeatureLabel FL;
      FL.Layer = Layer;
      FL.Feature = F;
      if (Output)
        FL.OutputTokens.push_back({*Output, 1.0f});
      FL.Relations.push_back({0, 3, 0.1f, 0.5f, {}});
      L.Features.push_back(FL);
    }
  if (Output)
    L.Tokens.push_back({*Output, "Paris"});
  return L;
}

std::vector<uint32_t> allLayers(const Model &M) {
  std::vector<uint32_t> Ls(M.numLayers());
  for (uint32_t I = 0; I < Ls.size(); ++I)
    Ls[I] = I;
  return Ls;
}

TEST(Describe, ResidualFindsParisScoredByTheModelsLogit) {
  Fixture &F = gemma();
  Labels L = capitalLabels(*F.M, allLayers(*F.M));
  DescribeOptions Opts;
  auto Edges = describeFromResidual(*F.M, *F.Tok, L, "France", Opts);
  ASSERT_TRUE(bool(Edges)) << toString(Edges.takeError());
  ASSERT_FALSE(Edges->empty());
  EXPECT_LE(Edges->size(), 3u); // one relation, 3 per relation
  const DescribeEdge &Top = Edges->front();
  EXPECT_EQ(Top.Relation, "capital");
  EXPECT_EQ(Top.Target, "Paris");
  EXPECT_EQ(Top.Context, "The capital of France is");

  // The score is the engine's logit of the token, the carrier the feature
  // with the largest credit by the probe's kernel.
  std::vector<int32_t> Ids = F.Tok->encode("The capital of France is");
  Session S(*F.M);
  ForwardOptions FO;
  FO.CaptureFFN = true;
  FO.CaptureResiduals = true;
  ForwardResult R = S.run(Ids, FO);
  EXPECT_EQ(size_t(Top.TargetToken), argmax(R.Logits));
  EXPECT_DOUBLE_EQ(Top.Score, R.Logits[Top.TargetToken]);
  const ModelConfig &C = F.M->config();
  size_t D = C.HiddenSize, NL = F.M->numLayers();
  std::vector<float> Readout = readoutVector(
      ArrayRef<float>(R.Residuals[NL]).take_back(D), F.M->finalNorm(),
      F.M->lmHead(), size_t(Top.TargetToken), C.NormEps);
  float Best = -INFINITY;
  uint32_t BestLayer = 0, BestFeature = 0;
  for (uint32_t Layer = 0; Layer < NL; ++Layer) {
    const LayerWeights &W = F.M->layer(Layer);
    size_t Fs = W.Down.Rows;
    ArrayRef<float> A = ArrayRef<float>(R.FFNActivations[Layer]).take_back(Fs);
    std::vector<float> Y(D, 0.0f), LR(D), Credit(Fs);
    for (size_t I = 0; I < Fs; ++I)
      axpyRow(A[I], W.Down, I, Y.data());
    double Sq = 0;
    for (float X : Y)
      Sq += double(X) * X;
    float Scale = C.PostNorms ? float(1 / std::sqrt(Sq / D + C.NormEps)) : 1;
    for (size_t J = 0; J < D; ++J)
      LR[J] = C.PostNorms ? Readout[J] * W.PostFFNNorm[J] : Readout[J];
    layerAttribution(A, W.Down, LR, Scale, Credit);
    for (uint32_t I = 0; I < Fs; ++I)
      if (Credit[I] > Best) {
        Best = Credit[I];
        BestLayer = Layer;
        BestFeature = I;
      }
  }
  EXPECT_EQ(Top.Layer, BestLayer);
  EXPECT_EQ(Top.Feature, BestFeature);
  EXPECT_EQ(Top.LayerBand, BestLayer < 3 ? Band::Knowledge : Band::Output);

  // Descending scores.
  for (size_t I = 1; I < Edges->size(); ++I)
    EXPECT_GE((*Edges)[I - 1].Score, (*Edges)[I].Score);
}

TEST(Describe, AtLayerAndBandChooseTheCarrierNotTheScore) {
  Fixture &F = gemma();
  Labels L = capitalLabels(*F.M, allLayers(*F.M));
  DescribeOptions Opts;
  auto All = cantFail(describeFromResidual(*F.M, *F.Tok, L, "France", Opts));
  Opts.Layer = 4;
  auto At4 = cantFail(describeFromResidual(*F.M, *F.Tok, L, "France", Opts));
  ASSERT_FALSE(At4.empty());
  for (const DescribeEdge &E : At4) {
    EXPECT_EQ(E.Layer, 4u);
    EXPECT_EQ(E.LayerBand, Band::Output);
    for (const DescribeEdge &A : All)
      if (A.Target == E.Target) {
        EXPECT_DOUBLE_EQ(A.Score, E.Score);
      }
  }
  Opts.Layer.reset();
  Opts.OnlyBand = Band::Knowledge;
  auto Know = cantFail(describeFromResidual(*F.M, *F.Tok, L, "France", Opts));
  ASSERT_FALSE(Know.empty());
  for (const DescribeEdge &E : Know)
    EXPECT_LT(E.Layer, 3u);
}

TEST(Describe, OnlyLabelledFeaturesCarry) {
  Fixture &F = gemma();
  // Only layer 1 labelled: every edge is carried there.
  Labels L = capitalLabels(*F.M, {1});
  auto Edges =
      cantFail(describeFromResidual(*F.M, *F.Tok, L, "France", {}));
  for (const DescribeEdge &E : Edges)
    EXPECT_EQ(E.Layer, 1u);
  // No labelled feature: no edge.
  Labels None = capitalLabels(*F.M, {});
  EXPECT_TRUE(
      cantFail(describeFromResidual(*F.M, *F.Tok, None, "France", {})).empty());
}

TEST(Describe, EntityAloneNeedsTheCarriersOutputToken) {
  Fixture &F = gemma();
  // Without stored output tokens the entity alone gives no edge: every edge
  // comes from the template.
  Labels L = capitalLabels(*F.M, allLayers(*F.M));
  for (const DescribeEdge &E :
       cantFail(describeFromResidual(*F.M, *F.Tok, L, "France", {})))
    EXPECT_EQ(E.Context, "The capital of France is");
}

TEST(Describe, EmbeddingBaselineScoresGatesWithTheEmbedding) {
  Fixture &F = gemma();
  int32_t Paris = F.Tok->encode("Paris", false).front();
  Labels L = capitalLabels(*F.M, allLayers(*F.M), uint32_t(Paris));
  DescribeOptions Opts;
  Opts.Layer = 2;
  auto Edges = cantFail(describeFromEmbedding(*F.M, *F.Tok, L, "France", Opts));
  ASSERT_EQ(Edges.size(), 1u); // one (relation, target) pair
  EXPECT_EQ(Edges[0].Target, "Paris");
  EXPECT_EQ(Edges[0].Layer, 2u);
  // The best gate of layer 2 against the embedding of 'France' (times the
  // embedding scale).
  std::vector<int32_t> Ids = F.Tok->encode("France", false);
  const ModelConfig &C = F.M->config();
  std::vector<float> Q(C.HiddenSize, 0.0f);
  for (int32_t Id : Ids)
    for (size_t J = 0; J < C.HiddenSize; ++J)
      Q[J] += F.M->embedding().at(Id, J) * float(C.EmbeddingScale) / Ids.size();
  const WeightMatrix &G = F.M->layer(2).Gate;
  float Best = -INFINITY;
  uint32_t BestFeature = 0;
  for (uint32_t I = 0; I < G.Rows; ++I)
    if (float S = dotRow(Q.data(), G, I); S > Best) {
      Best = S;
      BestFeature = I;
    }
  EXPECT_EQ(Edges[0].Feature, BestFeature);
  EXPECT_FLOAT_EQ(float(Edges[0].Score), Best);
}

} // namespace
