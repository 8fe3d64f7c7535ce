//===- ProbeTest.cpp - Attribution arithmetic, bands, inputs --------------===//
#include "vindex/Probe/Probe.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace vindex;
using namespace llvm;

static WeightMatrix matrix(const std::vector<float> &Data, size_t Rows,
                           size_t Cols) {
  WeightMatrix W;
  W.Data = Data.data();
  W.Type = DType::F32;
  W.Rows = Rows;
  W.Cols = Cols;
  return W;
}

// Worked by hand: x = (3, 4), rms(x) = sqrt(12.5); g = (1, 2);
// U[1] = (0.5, -1): r = (0.5, -2) / sqrt(12.5).
TEST(ProbeAttribution, ReadoutVector) {
  std::vector<float> U = {9, 9, 0.5f, -1};
  std::vector<float> R =
      readoutVector({3, 4}, {1, 2}, matrix(U, 2, 2), 1, /*Eps=*/0);
  ASSERT_EQ(R.size(), 2u);
  EXPECT_NEAR(R[0], 0.5 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(R[1], -2 / std::sqrt(12.5), 1e-6);
}

// Credit_i = a_i * scale * (down_i . r). With r = (0.1, -0.4), scale 2:
//   d0 = (2, 0),  a0 = 1:    1 * 2 * 0.2   =  0.4
//   d1 = (1, 1),  a1 = -2:  -2 * 2 * -0.3  =  1.2 (negative activation,
//                                                  negative projection)
//   d2 = (0, -1), a2 = 0.5: 0.5 * 2 * 0.4  =  0.4
//   d3 = (5, 5),  a3 = 0:   a silent feature gets nothing.
TEST(ProbeAttribution, LayerAttribution) {
  std::vector<float> Down = {2, 0, 1, 1, 0, -1, 5, 5};
  std::vector<float> Out(4, -1);
  layerAttribution({1, -2, 0.5f, 0}, matrix(Down, 4, 2), {0.1f, -0.4f}, 2, Out);
  EXPECT_NEAR(Out[0], 0.4, 1e-6);
  EXPECT_NEAR(Out[1], 1.2, 1e-6);
  EXPECT_NEAR(Out[2], 0.4, 1e-6);
  EXPECT_EQ(Out[3], 0);
}

// Top tokens: directions (1, 0) and (0, 1) over four tokens; the second
// token is skipped; scores scaled per token.
TEST(ProbeTokens, TopTokensRanksAndSkips) {
  std::vector<float> Vocab = {3, 0, 5, 5, 1, 2, -1, 2};
  std::vector<std::vector<TokenScore>> Out;
  topTokens({1, 0, 0, 1}, 2, 2, matrix(Vocab, 4, 2), {}, 2, {0, 1, 0, 0}, 2,
            Out);
  ASSERT_EQ(Out.size(), 2u);
  ASSERT_EQ(Out[0].size(), 2u);
  EXPECT_EQ(Out[0][0].Token, 0u); // 3
  EXPECT_EQ(Out[0][1].Token, 2u); // 1
  // Ties (2 and 2) go to the lower id.
  EXPECT_EQ(Out[1][0].Token, 2u);
  EXPECT_EQ(Out[1][1].Token, 3u);
  topTokens({1, 0, 0, 1}, 2, 2, matrix(Vocab, 4, 2), {0.1f, 1, 10, 1}, 1, {}, 1,
            Out);
  EXPECT_EQ(Out[0][0].Token, 2u); // 1 * 10
  EXPECT_FLOAT_EQ(Out[0][0].Score, 10);
  EXPECT_EQ(Out[1][0].Token, 2u); // 2 * 10
}

static std::vector<LayerLabel> layers(std::vector<float> Share,
                                      std::vector<uint32_t> Lens) {
  std::vector<LayerLabel> L;
  for (size_t I = 0; I < Share.size(); ++I)
    L.push_back({uint32_t(I), Band::Unlabelled, 0, Share[I], Lens[I]});
  return L;
}

TEST(ProbeBands, FromLensAndAttribution) {
  // 10 facts: the median target enters the top 10 after layer 4; layers
  // 5-7 are output. Before that the largest share is 0.2 (layer 4);
  // layer 2 is the first with at least 0.1: knowledge 2-4, syntax 0-1.
  auto L = layers({0.01f, 0.05f, 0.1f, 0.15f, 0.2f, 0.2f, 0.1f, 0.19f},
                  {0, 0, 1, 1, 3, 4, 1, 0});
  computeBands(L, 10);
  std::vector<Band> Want = {Band::Syntax,    Band::Syntax,    Band::Knowledge,
                            Band::Knowledge, Band::Knowledge, Band::Output,
                            Band::Output,    Band::Output};
  for (size_t I = 0; I < L.size(); ++I)
    EXPECT_EQ(L[I].Band, Want[I]) << "layer " << I;
  // Targets never reach the top 10: the last layer alone is output.
  L = layers({0.5f, 0.5f, 0.f}, {0, 0, 0});
  computeBands(L, 4);
  EXPECT_EQ(L[2].Band, Band::Output);
  EXPECT_EQ(L[0].Band, Band::Knowledge);
  // No facts: no bands.
  L = layers({0, 0}, {0, 0});
  computeBands(L, 0);
  EXPECT_EQ(L[0].Band, Band::Unlabelled);
}

TEST(ProbeInputs, FactsAndTemplates) {
  auto F = parseFacts("entity\trelation\ttarget\nFrance\tcapital\tParis\r\n\n"
                      "Chad\tborders\tLibya\n",
                      "f.tsv");
  ASSERT_TRUE(bool(F)) << toString(F.takeError());
  ASSERT_EQ(F->size(), 2u);
  EXPECT_EQ((*F)[1].Line, 4u);
  EXPECT_EQ((*F)[0].Target, "Paris");
  auto Bad = parseFacts("h\nFrance\t\tParis\n", "f.tsv");
  ASSERT_FALSE(bool(Bad));
  EXPECT_EQ(toString(Bad.takeError()), "f.tsv:2: the relation is empty");
  auto T = parseTemplates(R"({"b": {"canonical": "B {e}", "train": ["x"]},
    "a": {"canonical": "{e} a", "heldout_prompt": "h {e}"}})",
                          "t.json");
  ASSERT_TRUE(bool(T)) << toString(T.takeError());
  ASSERT_EQ(T->size(), 2u);
  EXPECT_EQ((*T)[0].Name, "b"); // the file's order
  EXPECT_EQ((*T)[1].HeldoutPrompt, "h {e}");
  EXPECT_EQ((*T)[1].prompt("X"), "X a");
  auto NoE = parseTemplates("{\"a\": {\"canonical\": \"{e} a\",\n"
                            "  \"heldout_prompt\": \"h\"}}",
                            "t.json");
  ASSERT_FALSE(bool(NoE));
  EXPECT_EQ(toString(NoE.takeError()),
            "t.json:2: relation 'a': the heldout_prompt has no {e} for the "
            "entity: \"h\"");
}

// The order, lines and duplicates of relations come from the keys
// themselves, not from the first place their text occurs: "a" and "c" are
// train templates of "b" before they are relations.
TEST(ProbeInputs, TemplatesOrderIsTheKeys) {
  auto T = parseTemplates("{\"b\": {\"canonical\": \"{e} b\", \"train\": "
                          "[\"a\"]},\n"
                          "\"c\": {\"canonical\": \"{e} c\"},\n"
                          "\"a\": {\"train\": []}}",
                          "t.json");
  ASSERT_FALSE(bool(T));
  EXPECT_EQ(toString(T.takeError()),
            "t.json:3: relation 'a' has no \"canonical\" prompt");
  T = parseTemplates("{\"b\": {\"canonical\": \"{e} b\", \"train\": "
                     "[\"c\", \"a\"]},\n"
                     "\"a\": {\"canonical\": \"{e} a\"},\n"
                     "\"c\": {\"canonical\": \"{e} c\"}}",
                     "t.json");
  ASSERT_TRUE(bool(T)) << toString(T.takeError());
  ASSERT_EQ(T->size(), 3u);
  EXPECT_EQ((*T)[0].Name, "b");
  EXPECT_EQ((*T)[1].Name, "a");
  EXPECT_EQ((*T)[2].Name, "c");
  auto Twice = parseTemplates("{\"a\": {\"canonical\": \"{e} a\"},\n"
                              "\"a\": {\"canonical\": \"{e} b\"}}",
                              "t.json");
  ASSERT_FALSE(bool(Twice));
  EXPECT_EQ(toString(Twice.takeError()),
            "t.json:2: relation 'a' is given twice (first on line 1)");
}
