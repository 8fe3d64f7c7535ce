//===- EditTest.cpp - lib/Edit's pieces -----------------------------------===//
#include "../../lib/Edit/Internal.h"

#include "vindex/Convert/Decompose.h"
#include "vindex/Edit/Editor.h"
#include "vindex/Edit/Memit.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace llvm;
using namespace vindex::edit;

/// tiny-llama decomposed into a fresh directory Dir (removed by the test).
static void decomposeTinyLlama(SmallString<128> &Dir,
                               std::unique_ptr<vindex::Vindex> &V) {
  using namespace vindex;
  ASSERT_FALSE(sys::fs::createUniqueDirectory("vindex-edit-test", Dir));
  DecomposeOptions Opts;
  Opts.Input = std::string(VINDEX_TEST_FIXTURES) + "/models/tiny-llama";
  Opts.Output = (Dir + "/m.vindex").str();
  std::vector<std::string> Inputs;
  Error E = decompose(Opts, Inputs);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
  V = cantFail(Vindex::open(Opts.Output));
}

TEST(Edit, FillTemplate) {
  EXPECT_EQ(fillTemplate("The capital of {entity} is", "France"),
            "The capital of France is");
  EXPECT_EQ(fillTemplate("{entity} and {entity}", "A"), "A and A");
  EXPECT_EQ(fillTemplate("no placeholder", "A"), "no placeholder");
}

TEST(Edit, SolveSPD) {
  // [[4, 2], [2, 3]] x = [2, 1]: x = [0.5, 0].
  std::vector<double> A{4, 2, 2, 3}, B{2, 1};
  ASSERT_TRUE(solveSPD(A, B, 2));
  EXPECT_NEAR(B[0], 0.5, 1e-12);
  EXPECT_NEAR(B[1], 0.0, 1e-12);
  std::vector<double> NotPD{1, 2, 2, 1}, C{1, 1};
  EXPECT_FALSE(solveSPD(NotPD, C, 2));
}

TEST(Edit, SeparatorTellsTheKeyFromOrdinaryInputs) {
  // Ordinary inputs share a large common component (as normed residuals
  // do) and vary around it; the key differs along one direction. The
  // separator must put the key near +1 and every ordinary input near -1,
  // although the FFN has no bias.
  const size_t D = 4;
  LayerStats S;
  S.D = D;
  std::vector<std::vector<float>> Inputs;
  for (int I = 0; I < 50; ++I) {
    float A = float((I % 7) - 3) * 0.1f, B = float((I % 5) - 2) * 0.1f;
    Inputs.push_back({1.0f, A, B, 0.0f});
  }
  for (const std::vector<float> &X : Inputs)
    S.add(X.data());
  S.finish();
  std::vector<float> Key{1.0f, 0.0f, 0.0f, 1.0f};
  std::vector<double> G = fitSeparator(S, Key, {});
  std::vector<float> GF(G.begin(), G.end());
  EXPECT_NEAR(dot(GF, Key), 1.0, 0.05);
  for (const std::vector<float> &X : Inputs)
    EXPECT_NEAR(dot(GF, X), -1.0, 0.05);
}

TEST(Edit, GateFitReweightsTheNegativesItCannotKeepQuiet) {
  // Ordinary inputs as above; one negative (another fact's prompt) lies
  // close to the key. The plain least-squares fit leaves it well above the
  // margin; reweighting it pushes it down while the key stays at +1 in
  // scale (the fit is normalised there).
  const size_t D = 4;
  LayerStats S;
  S.D = D;
  for (int I = 0; I < 50; ++I) {
    float A = float((I % 7) - 3) * 0.1f, B = float((I % 5) - 2) * 0.1f;
    std::vector<float> X{1.0f, A, B, 0.0f};
    S.add(X.data());
  }
  S.finish();
  std::vector<float> Key{1.0f, 0.0f, 0.0f, 1.0f};
  std::vector<float> Near{1.0f, 0.1f, 0.0f, 0.8f};
  auto Z = [&](const GateFit &F) {
    std::vector<float> G(F.G.begin(), F.G.end());
    return dot(G, Near) / dot(G, Key);
  };
  NegativePool Pool;
  Pool.add(Near, 0.01);
  GateFit Plain = fitGate(S, {Key}, Pool, {}, /*Rounds=*/0);
  EXPECT_EQ(Plain.Rounds, 0u);
  EXPECT_GT(Z(Plain), -0.3);
  EXPECT_EQ(Plain.Violators, 1u);
  GateFit Fit = fitGate(S, {Key}, Pool, {});
  EXPECT_GT(Fit.Rounds, 0u);
  EXPECT_LT(Z(Fit), Z(Plain) - 0.5);
  std::vector<float> G(Fit.G.begin(), Fit.G.end());
  EXPECT_GT(dot(G, Key), 0.0);
  // The base form (precomputed sums, one entry left out) equals listing
  // the entries: a pool whose only base entry is excluded is no pool.
  std::vector<double> Second(D * D), Sum(D);
  for (size_t I = 0; I < D; ++I) {
    Sum[I] = Near[I];
    for (size_t J = 0; J < D; ++J)
      Second[I * D + J] = double(Near[I]) * Near[J];
  }
  NegativePool Base;
  Base.BaseSecond = &Second;
  Base.BaseSum = &Sum;
  Base.BaseWeight = 0.01;
  Base.add(Near, 0.01);
  Base.NBase = 1;
  Base.Excluded = {0};
  GateFit None = fitGate(S, {Key}, Base, {}, 0);
  GateFit Empty = fitGate(S, {Key}, NegativePool(), {}, 0);
  for (size_t I = 0; I < D; ++I)
    EXPECT_NEAR(None.G[I], Empty.G[I], 1e-6);
}

// An output-row lift reads the sample's final states and largest top
// logit. Scripts of MODE memit alone measure only those, at the first lift;
// the lifted row must be the one the whole sample, measured when the editor
// is created, gives (tiny-llama, the corpus lines and the model's own texts
// both tried).
TEST(Edit, LiftGivesTheSameRowFromTheFinalStatesAlone) {
  using namespace vindex;
  SmallString<128> Dir;
  std::unique_ptr<Vindex> V;
  ASSERT_NO_FATAL_FAILURE(decomposeTinyLlama(Dir, V));
  Tokenizer Tok = cantFail(Tokenizer::fromFile(V->path("tokenizer.json")));
  TensorView View(*V);
  int32_t Token = Tok.encode(" Poseidon").back();
  for (bool WithText : {false, true}) {
    Sample S;
    S.Relations = {{"capital", {"The capital of {entity} is"}}};
    S.Entities = {"Atlantis"};
    if (WithText)
      S.Text = {"Paris is the capital of France.", "Lima is in Peru."};
    std::vector<PlannedRow> Rows;
    for (bool AtCreate : {true, false}) {
      S.MeasureAtCreate = AtCreate;
      Expected<std::unique_ptr<Editor>> Ed = Editor::create(View, Tok, S);
      ASSERT_TRUE(bool(Ed)) << toString(Ed.takeError());
      std::string Record;
      Expected<PlannedRow> Row = (*Ed)->liftOutputRow(Token, Record);
      ASSERT_TRUE(bool(Row)) << toString(Row.takeError());
      Rows.push_back(std::move(*Row));
    }
    EXPECT_EQ(Rows[0].Tensor, Rows[1].Tensor);
    EXPECT_EQ(Rows[0].Row, Rows[1].Row);
    EXPECT_EQ(Rows[0].Values, Rows[1].Values) << "with text: " << WithText;
  }
  sys::fs::remove_directories(Dir);
}

// memit-widen's appended features: slots numbered from the layer's width,
// gate and up rows of the layer's mean row norms, zero down rows, the same
// rows on every call (seeded by layer and slot, not by call or order),
// and different rows for different slots.
TEST(Edit, AppendedFeaturesSeededByLayerAndSlot) {
  using namespace vindex;
  SmallString<128> Dir;
  std::unique_ptr<Vindex> V;
  ASSERT_NO_FATAL_FAILURE(decomposeTinyLlama(Dir, V));
  TensorView View(*V);
  std::vector<PlannedFeature> A =
      cantFail(appendedFeatures(View, {1, 2}, 3));
  std::vector<PlannedFeature> B = cantFail(appendedFeatures(View, {2}, 3));
  ASSERT_EQ(A.size(), 6u);
  auto Norm = [](ArrayRef<float> X) {
    double S = 0;
    for (float F : X)
      S += double(F) * F;
    return std::sqrt(S);
  };
  const TensorRecord *Gate = View.find(TensorRole::FFNGate, 2);
  ASSERT_NE(Gate, nullptr);
  std::vector<float> Row;
  double Mean = 0;
  for (uint64_t R = 0; R < View.rows(*Gate); ++R) {
    ASSERT_FALSE(bool(View.readRow(*Gate, R, Row)));
    Mean += Norm(Row) / double(View.rows(*Gate));
  }
  for (size_t I = 0; I < 3; ++I) {
    const PlannedFeature &F = A[3 + I];
    EXPECT_EQ(F.Layer, 2u);
    EXPECT_EQ(F.Slot, 384u + I);
    EXPECT_EQ(F.Gate, B[I].Gate) << I; // layer 1's rows before do not matter
    EXPECT_EQ(F.Up, B[I].Up) << I;
    EXPECT_NEAR(Norm(F.Gate), Mean, 1e-5 * Mean);
    EXPECT_EQ(F.Down, std::vector<float>(F.Gate.size(), 0.0f));
    EXPECT_NE(F.Gate, F.Up);
    EXPECT_NE(F.Gate, A[I].Gate); // another layer, another row
  }
  EXPECT_NE(A[3].Gate, A[4].Gate);
  sys::fs::remove_directories(Dir);
}
