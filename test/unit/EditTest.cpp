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
