//===- BackwardTest.cpp - Gradients against PyTorch and finite differences ===//
//
// references/<model>/gradients.json were written by
// test/fixtures/scripts/make_grad_goldens.py: PyTorch autograd through the
// fixtures' own implementation (models.py) in float64, for trained facts,
// a multi-piece target, a prompt longer than the sliding window, and a
// fictional fact with an offset and a KL term (MEMIT's objective). The
// backward pass must match them at every residual and at each stored
// position, and match central differences of its own forward pass.
//
// Relative error of a gradient g against a reference r: ||g - r|| / ||r||
// (Euclidean, over the hidden vector), and per element
// max_i |g_i - r_i| / max_i |r_i|.
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Backward.h"

#include "vindex/Convert/Decompose.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/Kernels.h"
#include "vindex/Store/Vindex.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include "TestFixtures.h"

#include "gtest/gtest.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <optional>
#include <random>

using namespace vindex;
using namespace llvm;
using vindex::test::fixture;
using vindex::test::readJson;

namespace {

struct Loaded {
  SmallString<128> Dir;
  std::unique_ptr<Vindex> V;
  std::unique_ptr<Model> M;
};

/// A fixture, or with Variant a copy of it whose config.json has those
/// fields replaced (features the fixtures do not exercise: softcapping, the
/// exact GELU).
const Model &load(StringRef Name, const json::Object *Variant = nullptr,
                  StringRef VariantName = "") {
  static std::map<std::string, std::unique_ptr<Loaded>> Cache;
  auto &Slot = Cache[(Name + "/" + VariantName).str()];
  if (!Slot) {
    auto L = std::make_unique<Loaded>();
    EXPECT_FALSE(
        sys::fs::createUniqueDirectory("vindex-backward-test", L->Dir));
    DecomposeOptions Opts;
    Opts.Input = fixture("models/" + Name);
    if (Variant) {
      std::string Src = Opts.Input;
      Opts.Input = (L->Dir + "/model").str();
      EXPECT_FALSE(sys::fs::create_directory(Opts.Input));
      for (StringRef F :
           {"model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "generation_config.json"})
        EXPECT_FALSE(sys::fs::copy_file(Src + "/" + F, Opts.Input + "/" + F));
      json::Value Config = readJson(Src + "/config.json");
      for (const auto &KV : *Variant)
        (*Config.getAsObject())[KV.first] = KV.second;
      std::error_code EC;
      raw_fd_ostream Out(Opts.Input + "/config.json", EC);
      EXPECT_FALSE(EC);
      Out << Config;
    }
    Opts.Output = (L->Dir + "/m.vindex").str();
    std::vector<std::string> Inputs;
    Error E = decompose(Opts, Inputs);
    EXPECT_FALSE(bool(E)) << toString(std::move(E));
    auto V = Vindex::open(Opts.Output);
    EXPECT_TRUE(bool(V));
    L->V = std::move(*V);
    auto M = Model::load(*L->V);
    EXPECT_TRUE(bool(M)) << toString(M.takeError());
    L->M = std::move(*M);
    Slot = std::move(L);
  }
  return *Slot->M;
}

std::vector<double> doubles(const json::Value &V) {
  std::vector<double> Out;
  for (const json::Value &E : *V.getAsArray())
    Out.push_back(*E.getAsNumber());
  return Out;
}

/// ||G - R|| / ||R|| and max |G_i - R_i| / max |R_i|.
struct RelError {
  double Norm = 0, Element = 0;
};
RelError relError(ArrayRef<double> G, ArrayRef<double> R) {
  double Diff = 0, Ref = 0, MaxDiff = 0, MaxRef = 0;
  for (size_t I = 0; I < R.size(); ++I) {
    double E = G[I] - R[I];
    Diff += E * E;
    Ref += R[I] * R[I];
    MaxDiff = std::max(MaxDiff, std::fabs(E));
    MaxRef = std::max(MaxRef, std::fabs(R[I]));
  }
  return {std::sqrt(Diff) / std::sqrt(Ref), MaxDiff / MaxRef};
}

/// A golden sequence as the backward pass takes it; the KL references are
/// the unedited model's distribution (our own forward, as the script's are
/// its own).
LossSequence sequenceOf(const Model &M, const json::Object &S) {
  LossSequence Seq;
  for (const json::Value &T : *S.getArray("tokens"))
    Seq.Tokens.push_back(int32_t(*T.getAsInteger()));
  for (const json::Value &T : *S.getArray("targets")) {
    const json::Array &P = *T.getAsArray();
    Seq.Targets.push_back(
        {size_t(*P[0].getAsInteger()), int32_t(*P[1].getAsInteger())});
  }
  for (const json::Value &K : *S.getArray("kl")) {
    const json::Object &O = *K.getAsObject();
    size_t P = size_t(*O.getInteger("position"));
    Expected<std::vector<double>> Ref = logProbs(M, Seq.Tokens, P);
    EXPECT_TRUE(bool(Ref)) << toString(Ref.takeError());
    Seq.KL.push_back({P, std::move(*Ref), *O.getNumber("weight")});
  }
  for (const json::Value &P : *S.getArray("offset_positions"))
    Seq.OffsetPositions.push_back(size_t(*P.getAsInteger()));
  return Seq;
}

class Backward : public ::testing::TestWithParam<const char *> {};

} // namespace

// Every residual, every stored position, every case: within 1e-4 of PyTorch
// autograd (both measures above), and the losses and the offset gradient too.
TEST_P(Backward, MatchesPyTorchAutograd) {
  std::string Name = GetParam();
  const Model &M = load(Name);
  size_t D = M.config().HiddenSize;
  json::Value G = readJson(fixture("references/" + Name + "/gradients.json"));
  const json::Array &Cases = *G.getAsObject()->getArray("cases");
  ASSERT_EQ(Cases.size(), 4u);
  RelError Worst;
  size_t Checked = 0;
  for (const json::Value &CV : Cases) {
    const json::Object &C = *CV.getAsObject();
    std::string Case = C.getString("name")->str();
    ResidualOffset Offset;
    if (const json::Object *O = C.getObject("offset")) {
      Offset.Residual = size_t(*O->getInteger("residual"));
      Offset.Delta = doubles(*O->get("delta"));
    }
    std::vector<LossSequence> Seqs;
    double Total = 0;
    for (const json::Value &SV : *C.getArray("sequences")) {
      const json::Object &S = *SV.getAsObject();
      Seqs.push_back(sequenceOf(M, S));
      BackwardOptions Opts;
      Opts.Offset = Offset;
      Expected<BackwardResult> R = backward(M, Seqs.back(), Opts);
      ASSERT_TRUE(bool(R)) << toString(R.takeError());
      Total += R->Loss;
      EXPECT_NEAR(R->NLL, *S.getNumber("nll"), 1e-4 * (1 + *S.getNumber("nll")))
          << Case;
      EXPECT_NEAR(R->KL, *S.getNumber("kl_value"),
                  1e-4 * (1 + *S.getNumber("kl_value")))
          << Case;
      const json::Array &Pos = *S.getArray("gradient_positions");
      const json::Array &Grads = *S.getArray("gradients");
      ASSERT_EQ(Grads.size(), M.numLayers() + 1);
      for (size_t Res = 0; Res < Grads.size(); ++Res) {
        const json::Array &AtRes = *Grads[Res].getAsArray();
        for (size_t I = 0; I < Pos.size(); ++I) {
          size_t P = size_t(*Pos[I].getAsInteger());
          std::vector<double> Want = doubles(AtRes[I]);
          ArrayRef<double> Got = ArrayRef(R->Gradients[Res]).slice(P * D, D);
          if (llvm::all_of(Want, [](double X) { return X == 0; })) {
            // No loss term reads this position from here on (a residual
            // after the last loss position): exactly zero.
            EXPECT_TRUE(llvm::all_of(Got, [](double X) { return X == 0; }))
                << Case << " residual " << Res << " pos " << P;
            continue;
          }
          RelError E = relError(Got, Want);
          EXPECT_LE(E.Norm, 1e-4)
              << Case << " residual " << Res << " pos " << P;
          EXPECT_LE(E.Element, 1e-4)
              << Case << " residual " << Res << " pos " << P;
          Worst.Norm = std::max(Worst.Norm, E.Norm);
          Worst.Element = std::max(Worst.Element, E.Element);
          ++Checked;
        }
      }
    }
    EXPECT_NEAR(Total, *C.getNumber("loss"), 1e-4 * (1 + Total)) << Case;
    if (const json::Object *O = C.getObject("offset")) {
      Expected<OffsetGradient> OG = offsetGradient(M, Seqs, Offset);
      ASSERT_TRUE(bool(OG)) << toString(OG.takeError());
      EXPECT_NEAR(OG->Loss, Total, 1e-9 * Total);
      RelError E = relError(OG->Gradient, doubles(*O->get("gradient")));
      EXPECT_LE(E.Norm, 1e-4) << Case;
      EXPECT_LE(E.Element, 1e-4) << Case;
      std::printf("[ measured ] %s %s: offset gradient vs PyTorch: %.3g "
                  "(norm), %.3g (element)\n",
                  Name.c_str(), Case.c_str(), E.Norm, E.Element);
    }
  }
  EXPECT_GT(Checked, 0u);
  std::printf("[ measured ] %s: %zu gradient vectors vs PyTorch: max relative "
              "error %.3g (norm), %.3g (element)\n",
              Name.c_str(), Checked, Worst.Norm, Worst.Element);
}

// Central differences of the double forward, along random directions, at
// every residual and a few positions (including one outside the sliding
// window of the last position): (L(x + hv) - L(x - hv)) / 2h against g . v.
TEST_P(Backward, MatchesCentralDifferences) {
  std::string Name = GetParam();
  const Model &M = load(Name);
  size_t D = M.config().HiddenSize;
  // The fictional fact (large loss) and a 20-token prompt (sliding window
  // 16 on tiny-gemma3).
  LossSequence Fict =
      teacherForced({2, 303, 342, 270, 281, 2000, 1241, 2000, 514, 264},
                    {349, 1196, 893, 320});
  LossSequence Long =
      teacherForced({2, 303, 342, 270, 582, 264, 1706, 2003, 621, 264, 428, 296,
                     856, 2003, 303, 342, 270, 607, 264},
                    {1657});
  Expected<std::vector<double>> Ref = logProbs(M, Long.Tokens, 10);
  ASSERT_TRUE(bool(Ref));
  // A KL term at an unedited reference is at its minimum: perturb the
  // reference so that it has a gradient.
  for (size_t V = 0; V < Ref->size(); V += 7)
    (*Ref)[V] -= 0.01;
  Long.KL.push_back({10, std::move(*Ref), 0.3});
  std::mt19937_64 Rng(7);
  std::normal_distribution<double> N01;
  double Worst = 0;
  size_t Checked = 0;
  for (const LossSequence *S : {&Fict, &Long}) {
    Expected<BackwardResult> R = backward(M, *S);
    ASSERT_TRUE(bool(R)) << toString(R.takeError());
    size_t T = S->Tokens.size();
    for (size_t Res = 0; Res <= M.numLayers(); ++Res) {
      for (size_t P : {size_t(1), T / 2, T - 2}) {
        ResidualOffset Dir;
        Dir.Residual = Res;
        Dir.Delta.resize(D);
        for (double &V : Dir.Delta)
          V = N01(Rng);
        LossSequence At = *S;
        At.OffsetPositions = {P};
        // Small steps: llama's embeddings have norms near 0.2, and the
        // truncation error grows with the step relative to them.
        const double H = 1e-5;
        auto LossAlong = [&](double Step) {
          ResidualOffset O = Dir;
          for (double &V : O.Delta)
            V *= Step;
          Expected<double> L = loss(M, At, O);
          EXPECT_TRUE(bool(L));
          return *L;
        };
        double FD = (LossAlong(H) - LossAlong(-H)) / (2 * H);
        double GV = 0, GNorm = 0;
        for (size_t I = 0; I < D; ++I)
          GV += R->Gradients[Res][P * D + I] * Dir.Delta[I];
        for (double Gi : R->Gradients[Res])
          GNorm += Gi * Gi;
        // Relative to the norm of the whole residual's gradient (all
        // positions): g . v for v ~ N(0, I) is of the size of |g|, and a
        // position that barely matters is measured on the same scale as
        // the rest.
        double Scale = std::sqrt(GNorm);
        double Err = std::fabs(FD - GV) / std::max(Scale, 1e-300);
        EXPECT_LE(Err, 1e-4) << "residual " << Res << " pos " << P << ": fd "
                             << FD << " g.v " << GV;
        Worst = std::max(Worst, Err);
        ++Checked;
      }
    }
  }
  std::printf("[ measured ] %s: %zu directional derivatives vs central "
              "differences: max relative error %.3g\n",
              Name.c_str(), Checked, Worst);
}

// The double forward is the engine's forward: the same log-probabilities,
// with and without an offset put in through the engine's hook.
TEST_P(Backward, ForwardAgreesWithTheEngine) {
  const Model &M = load(GetParam());
  size_t D = M.config().HiddenSize;
  std::vector<int32_t> Ids = {2, 303, 342, 270, 607, 264};
  ResidualOffset O;
  O.Residual = 2;
  std::vector<float> Delta(D);
  for (size_t I = 0; I < D; ++I)
    Delta[I] = float(std::sin(double(I)));
  O.Delta.assign(Delta.begin(), Delta.end());
  for (bool WithOffset : {false, true}) {
    ForwardOptions Opts;
    if (WithOffset) {
      ASSERT_FALSE(bool(addResidualOffset(Opts, M, 2, {3}, Delta)));
    }
    Session S(M, 1);
    std::vector<float> Logits = S.run(Ids, Opts).Logits;
    Expected<std::vector<double>> LP =
        WithOffset ? logProbs(M, Ids, Ids.size() - 1, O, {3})
                   : logProbs(M, Ids, Ids.size() - 1);
    ASSERT_TRUE(bool(LP));
    double Max = *std::max_element(Logits.begin(), Logits.end()), Sum = 0;
    for (float L : Logits)
      Sum += std::exp(double(L) - Max);
    double Worst = 0;
    for (size_t V = 0; V < Logits.size(); ++V)
      Worst = std::max(
          Worst, std::fabs(double(Logits[V]) - Max - std::log(Sum) - (*LP)[V]));
    EXPECT_LE(Worst, 1e-4) << (WithOffset ? "with" : "without") << " offset";
    std::printf("[ measured ] %s: double forward vs engine, %s offset: max "
                "|log p - log p_engine| %.3g\n",
                GetParam(), WithOffset ? "with" : "without", Worst);
  }
}

TEST_P(Backward, OffsetGradientSumsOverPositionsAndSequences) {
  const Model &M = load(GetParam());
  size_t D = M.config().HiddenSize;
  LossSequence A = teacherForced({2, 303, 342, 270, 607, 264}, {1706});
  A.OffsetPositions = {4, 5};
  LossSequence B = teacherForced({2, 1657, 264, 266, 362, 296}, {582});
  B.OffsetPositions = {1};
  ResidualOffset O;
  O.Residual = 1;
  O.Delta.assign(D, 0.01);
  Expected<OffsetGradient> G = offsetGradient(M, {A, B}, O);
  ASSERT_TRUE(bool(G)) << toString(G.takeError());
  BackwardOptions Opts;
  Opts.Offset = O;
  std::vector<double> Want(D, 0.0);
  double Loss = 0;
  for (const LossSequence *S : {&A, &B}) {
    Expected<BackwardResult> R = backward(M, *S, Opts);
    ASSERT_TRUE(bool(R));
    Loss += R->Loss;
    for (size_t P : S->OffsetPositions)
      for (size_t I = 0; I < D; ++I)
        Want[I] += R->Gradients[1][P * D + I];
  }
  EXPECT_EQ(G->Loss, Loss);
  EXPECT_EQ(G->Gradient, Want);

  // The objective an optimiser steps on gives the same, evaluation after
  // evaluation (its cached lower layers are not changed by one).
  Expected<OffsetObjective> Obj = OffsetObjective::create(M, {A, B}, 1);
  ASSERT_TRUE(bool(Obj)) << toString(Obj.takeError());
  std::vector<double> Other(D, -0.02);
  Expected<OffsetGradient> First = Obj->evaluate(Other);
  Expected<OffsetGradient> Second = Obj->evaluate(O.Delta);
  ASSERT_TRUE(First && Second);
  EXPECT_EQ(Second->Loss, G->Loss);
  EXPECT_EQ(Second->Gradient, G->Gradient);
  EXPECT_NE(First->Loss, G->Loss);
  ResidualOffset OtherOffset{1, Other};
  Expected<OffsetGradient> Fresh = offsetGradient(M, {A, B}, OtherOffset);
  ASSERT_TRUE(bool(Fresh));
  EXPECT_EQ(First->Gradient, Fresh->Gradient);
}

// An objective runs its sequences as one tape, each attending only within
// itself from its own position 0. Sequences longer than tiny-gemma3's sliding
// window (16) check that the window is counted within each sequence; the
// bits must be those of running each sequence alone.
TEST_P(Backward, PackedSequencesGiveEachSequenceItsBits) {
  const Model &M = load(GetParam());
  size_t D = M.config().HiddenSize;
  auto Tokens = [](size_t N, int32_t Seed) {
    std::vector<int32_t> T = {2};
    for (size_t I = 1; I < N; ++I)
      T.push_back(int32_t(260 + (Seed * 37 + I * 101) % 1500));
    return T;
  };
  LossSequence A = teacherForced(Tokens(19, 1), {1706, 582});
  A.OffsetPositions = {18, 19};
  LossSequence B = teacherForced(Tokens(6, 2), {582});
  B.OffsetPositions = {5};
  LossSequence C;
  C.Tokens = Tokens(18, 3);
  Expected<std::vector<double>> Ref = logProbs(M, C.Tokens, 17);
  ASSERT_TRUE(bool(Ref));
  C.KL.push_back({17, std::move(*Ref), 0.25});
  C.Targets.push_back({3, 1657});
  C.OffsetPositions = {17, 2};
  size_t Residual = M.numLayers() / 2;
  ResidualOffset O;
  O.Residual = Residual;
  for (size_t I = 0; I < D; ++I)
    O.Delta.push_back(0.02 * std::sin(double(I)));
  Expected<OffsetObjective> Obj =
      OffsetObjective::create(M, {A, B, C}, Residual);
  ASSERT_TRUE(bool(Obj)) << toString(Obj.takeError());
  Expected<OffsetGradient> G = Obj->evaluate(O.Delta);
  ASSERT_TRUE(bool(G)) << toString(G.takeError());
  BackwardOptions Opts;
  Opts.Offset = O;
  Opts.LowestResidual = Residual;
  std::vector<double> Want(D, 0.0);
  double Loss = 0;
  for (const LossSequence *S : {&A, &B, &C}) {
    Expected<BackwardResult> R = backward(M, *S, Opts);
    ASSERT_TRUE(bool(R));
    Loss += R->Loss;
    for (size_t P : S->OffsetPositions)
      for (size_t I = 0; I < D; ++I)
        Want[I] += R->Gradients[Residual][P * D + I];
  }
  EXPECT_EQ(G->Loss, Loss);
  EXPECT_EQ(G->Gradient, Want);
}

// Objectives that read their sequences' unedited runs from the runs of
// longer sequences they begin (SequenceRuns: a fact's units share its
// contexts followed by the whole target), the second objective from runs the
// first one made: the bits of running each sequence itself. Wholes longer
// than tiny-gemma3's sliding window (16) check the window.
TEST_P(Backward, SharedRunsGiveThePrefixesTheirBits) {
  const Model &M = load(GetParam());
  size_t D = M.config().HiddenSize;
  std::vector<int32_t> Context = {2};
  for (size_t I = 1; I < 14; ++I)
    Context.push_back(int32_t(260 + (I * 101) % 1500));
  std::vector<int32_t> Target = {1706, 582, 1657, 303, 607};
  std::vector<int32_t> Whole = Context;
  Whole.insert(Whole.end(), Target.begin(), Target.end());
  std::vector<int32_t> Other = {2, 303, 342, 270};
  std::vector<double> Delta;
  for (size_t I = 0; I < D; ++I)
    Delta.push_back(0.02 * std::sin(double(I)));
  for (size_t Residual : {M.numLayers() / 2, M.numLayers()}) {
    SequenceRuns Runs;
    for (size_t Piece = 0; Piece < Target.size(); ++Piece) {
      std::vector<int32_t> Prompt = Context;
      Prompt.insert(Prompt.end(), Target.begin(), Target.begin() + Piece);
      LossSequence A = teacherForced(Prompt, {Target[Piece]});
      A.OffsetPositions = {Prompt.size() - 1};
      LossSequence B = teacherForced(Other, {1657});
      B.OffsetPositions = {Other.size() - 1};
      Expected<OffsetObjective> Own =
          OffsetObjective::create(M, {A, B}, Residual);
      Expected<OffsetObjective> Shared =
          OffsetObjective::create(M, {A, B}, Residual, &Runs, {Whole, {}});
      ASSERT_TRUE(Own && Shared);
      Expected<OffsetGradient> Want = Own->evaluate(Delta);
      Expected<OffsetGradient> Got = Shared->evaluate(Delta);
      ASSERT_TRUE(Want && Got);
      EXPECT_EQ(Got->Loss, Want->Loss) << "piece " << Piece;
      EXPECT_EQ(Got->Gradient, Want->Gradient) << "piece " << Piece;
    }
  }
  LossSequence A = teacherForced(Other, {1657});
  SequenceRuns Runs;
  Expected<OffsetObjective> Bad =
      OffsetObjective::create(M, {A}, 1, &Runs, {Whole});
  ASSERT_FALSE(bool(Bad));
  EXPECT_NE(toString(Bad.takeError()).find("does not begin the whole"),
            std::string::npos);
}

TEST_P(Backward, StopsAtTheLowestResidualAndIsDeterministic) {
  const Model &M = load(GetParam());
  LossSequence S = teacherForced({2, 303, 342, 270, 607, 264}, {1657});
  Expected<BackwardResult> All = backward(M, S);
  BackwardOptions Opts;
  Opts.LowestResidual = 2;
  Expected<BackwardResult> Part = backward(M, S, Opts);
  ASSERT_TRUE(All && Part);
  for (size_t R = 0; R <= M.numLayers(); ++R) {
    if (R < 2) {
      EXPECT_TRUE(Part->Gradients[R].empty());
    } else {
      EXPECT_EQ(Part->Gradients[R], All->Gradients[R]);
    }
  }
  // The last token has no loss after it: no gradient reaches it.
  size_t D = M.config().HiddenSize;
  for (size_t I = 0; I < D; ++I)
    EXPECT_EQ(All->Gradients[0][(S.Tokens.size() - 1) * D + I], 0.0);
}

TEST_P(Backward, RejectsWhatItCannotCompute) {
  const Model &M = load(GetParam());
  size_t V = M.config().VocabSize;
  LossSequence S = teacherForced({2, 303}, {int32_t(V)});
  EXPECT_FALSE(bool(backward(M, S))) << "target outside the vocabulary";
  consumeError(backward(M, S).takeError());
  S = teacherForced({2, 303}, {342});
  S.Targets[0].Position = 5;
  Expected<BackwardResult> R = backward(M, S);
  EXPECT_FALSE(bool(R));
  consumeError(R.takeError());
  S = teacherForced({2, 303}, {342});
  BackwardOptions Opts;
  Opts.Offset.Residual = 1;
  Opts.Offset.Delta.assign(3, 0.0);
  R = backward(M, S, Opts);
  EXPECT_FALSE(bool(R)) << "offset of the wrong size";
  consumeError(R.takeError());
  ForwardOptions FO;
  Error E = addResidualOffset(FO, M, 0, {0},
                              std::vector<float>(M.config().HiddenSize));
  EXPECT_TRUE(bool(E)) << "the engine's hook cannot reach residual 0";
  consumeError(std::move(E));
}

// What the fixtures do not exercise, on tiny-gemma3 with its config.json
// changed: attention and final logit softcapping (caps low enough to bend
// the scores and logits) and the exact GELU. The double forward against the
// engine, and the gradient against central differences.
TEST(BackwardVariants, SoftcappingAndExactGelu) {
  json::Object Variant{{"attn_logit_softcapping", 3.0},
                       {"final_logit_softcapping", 4.0},
                       {"hidden_activation", "gelu"}};
  const Model &M = load("tiny-gemma3", &Variant, "softcap-gelu");
  ASSERT_EQ(M.config().AttnSoftcap, 3.0);
  ASSERT_EQ(M.config().FinalSoftcap, 4.0);
  ASSERT_EQ(M.config().Act, Activation::Gelu);
  size_t D = M.config().HiddenSize;
  LossSequence S =
      teacherForced({2, 303, 342, 270, 281, 2000, 1241, 2000, 514, 264},
                    {349, 1196, 893, 320});
  Session Sess(M, 1);
  ForwardOptions FO;
  FO.AllLogits = true;
  std::vector<float> Logits = Sess.run(S.Tokens, FO).Logits;
  size_t Vocab = M.config().VocabSize;
  for (size_t P : {size_t(3), size_t(9)}) {
    Expected<std::vector<double>> LP = logProbs(M, S.Tokens, P);
    ASSERT_TRUE(bool(LP));
    ArrayRef<float> Z = ArrayRef(Logits).slice(P * Vocab, Vocab);
    double Max = *std::max_element(Z.begin(), Z.end()), Sum = 0;
    for (float V : Z)
      Sum += std::exp(double(V) - Max);
    double Worst = 0;
    for (size_t V = 0; V < Vocab; ++V)
      Worst = std::max(
          Worst, std::fabs(double(Z[V]) - Max - std::log(Sum) - (*LP)[V]));
    EXPECT_LE(Worst, 1e-3) << "position " << P;
  }
  Expected<BackwardResult> R = backward(M, S);
  ASSERT_TRUE(bool(R));
  std::mt19937_64 Rng(3);
  std::normal_distribution<double> N01;
  double Worst = 0;
  for (size_t Res = 0; Res <= M.numLayers(); ++Res) {
    ResidualOffset Dir;
    Dir.Residual = Res;
    Dir.Delta.resize(D);
    for (double &V : Dir.Delta)
      V = N01(Rng);
    LossSequence At = S;
    At.OffsetPositions = {8};
    const double H = 1e-5;
    auto LossAlong = [&](double Step) {
      ResidualOffset O = Dir;
      for (double &V : O.Delta)
        V *= Step;
      return *loss(M, At, O);
    };
    double FD = (LossAlong(H) - LossAlong(-H)) / (2 * H);
    double GV = 0, GNorm = 0;
    for (size_t I = 0; I < D; ++I)
      GV += R->Gradients[Res][8 * D + I] * Dir.Delta[I];
    for (double Gi : R->Gradients[Res])
      GNorm += Gi * Gi;
    double Err = std::fabs(FD - GV) / std::sqrt(GNorm);
    EXPECT_LE(Err, 1e-4) << "residual " << Res << ": fd " << FD << " g.v "
                         << GV;
    Worst = std::max(Worst, Err);
  }
  std::printf("[ measured ] tiny-gemma3 with softcapping and exact GELU: "
              "central differences max relative error %.3g\n",
              Worst);
}

/// Milliseconds of this thread's CPU time and of wall time that Body takes,
/// the fastest of five runs (the machine is shared: the CPU time is the
/// figure that does not depend on the other processes).
template <typename F> std::pair<double, double> timeIt(F Body) {
  auto Cpu = [] {
    timespec TS;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &TS);
    return TS.tv_sec * 1e3 + TS.tv_nsec * 1e-6;
  };
  double BestCpu = INFINITY, BestWall = INFINITY;
  for (int I = 0; I < 5; ++I) {
    double C0 = Cpu();
    auto W0 = std::chrono::steady_clock::now();
    Body();
    BestCpu = std::min(BestCpu, Cpu() - C0);
    BestWall = std::min(BestWall, std::chrono::duration<double, std::milli>(
                                      std::chrono::steady_clock::now() - W0)
                                      .count());
  }
  return {BestCpu, BestWall};
}

// One backward pass over an 11-token sequence (prompt and target), every
// residual, and one step of an offset optimiser: the figures the
// documentation quotes.
// The four-token products of the AVX-512 paths give the one-token products'
// bits: gradients, losses and the offset objective are the same on every
// exact kernel path (what MODE memit writes must not depend on the machine).
TEST_P(Backward, SameBitsOnEveryKernelPath) {
  const Model &M = load(GetParam());
  LossSequence S = teacherForced(
      {2, 303, 342, 270, 281, 2000, 1241, 2000, 514, 264}, {349, 1196, 893});
  S.OffsetPositions = {8};
  KernelPath Was = activeKernelPath();
  std::optional<BackwardResult> First;
  for (KernelPath P : supportedKernelPaths()) {
    if (!kernelPathExact(P))
      continue;
    ASSERT_TRUE(setKernelPath(P));
    Expected<BackwardResult> R = backward(M, S);
    ASSERT_TRUE(bool(R)) << toString(R.takeError());
    if (!First) {
      First = std::move(*R);
      continue;
    }
    EXPECT_EQ(R->NLL, First->NLL) << kernelPathName(P);
    for (size_t L = 0; L < R->Gradients.size(); ++L)
      EXPECT_EQ(R->Gradients[L], First->Gradients[L])
          << kernelPathName(P) << " residual " << L;
  }
  setKernelPath(Was);
}

TEST_P(Backward, Timing) {
  const Model &M = load(GetParam());
  LossSequence S =
      teacherForced({2, 303, 342, 270, 281, 2000, 1241, 2000, 514, 264}, {349});
  auto [Cpu, Wall] = timeIt([&] { ASSERT_TRUE(bool(backward(M, S))); });
  std::printf("[ measured ] %s: one backward pass, %zu tokens, all residuals: "
              "%.2f ms CPU (%.2f ms wall)\n",
              GetParam(), S.Tokens.size(), Cpu, Wall);

  // At the middle layer's output: the fictional fact's 4-piece target and a
  // neutral prompt with a KL term.
  LossSequence A =
      teacherForced({2, 303, 342, 270, 281, 2000, 1241, 2000, 514, 264},
                    {349, 1196, 893, 320});
  A.OffsetPositions = {8};
  std::vector<int32_t> Neutral = {2,   281, 2000, 1241, 2000,
                                  514, 264, 266,  343,  296};
  LossSequence B;
  B.Tokens = Neutral;
  Expected<std::vector<double>> Ref = logProbs(M, Neutral, 9);
  ASSERT_TRUE(bool(Ref));
  B.KL.push_back({9, std::move(*Ref), 0.5});
  B.OffsetPositions = {5};
  size_t Mid = M.numLayers() / 2 + 1;
  Expected<OffsetObjective> Obj = OffsetObjective::create(M, {A, B}, Mid);
  ASSERT_TRUE(bool(Obj));
  std::vector<double> Delta(M.config().HiddenSize, 0.01);
  auto [StepCpu, StepWall] =
      timeIt([&] { ASSERT_TRUE(bool(Obj->evaluate(Delta))); });
  std::printf("[ measured ] %s: one offset-objective evaluation (2 sequences, "
              "residual %zu): %.2f ms CPU (%.2f ms wall)\n",
              GetParam(), Mid, StepCpu, StepWall);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Backward,
                         ::testing::Values("tiny-gemma3", "tiny-llama"),
                         [](const auto &Info) {
                           std::string N = Info.param;
                           std::replace(N.begin(), N.end(), '-', '_');
                           return N;
                         });
