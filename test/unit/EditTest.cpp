//===- EditTest.cpp - lib/Edit's pieces -----------------------------------===//
#include "../../lib/Edit/Internal.h"

#include "vindex/Edit/Editor.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace vindex::edit;

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
