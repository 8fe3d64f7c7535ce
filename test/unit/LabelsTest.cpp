//===- LabelsTest.cpp - labels.vfb round trip, checks, and in a V-index ---===//
#include "vindex/Store/Labels.h"

#include "vindex/Convert/Decompose.h"
#include "vindex/Store/Copy.h"
#include "vindex/Store/Manifest.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/AtomicOutput.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include "gtest/gtest.h"

using namespace vindex;
using namespace llvm;

static Labels sample(unsigned NumLayers = 2) {
  Labels L;
  L.Relations = {
      {"capital", "The capital of {e} is", {"{e}'s capital is"}, "", {0, 2}},
      {"language", "In {e}, people speak", {}, "{e} speaks"}};
  L.Entities = {"France", "Japan", "Cote d'Ivoire"};
  for (unsigned I = 0; I < NumLayers; ++I)
    L.Layers.push_back({I, I + 1 == NumLayers ? Band::Output : Band::Knowledge,
                        I, 0.25f * I, 3 * I});
  FeatureLabel A;
  A.Layer = 0;
  A.Feature = 7;
  A.InputTokens = {{5, 1.5f}, {9, 0.5f}};
  A.OutputTokens = {{11, 2.f}};
  A.Relations = {{0, 2, 0.75f, 0.66f, {"Paris", "Tokyo"}},
                 {1, 1, 0.25f, 0.33f, {"French"}}};
  FeatureLabel B;
  B.Layer = 1;
  B.Feature = 3;
  B.OutputTokens = {{9, 1.f}};
  B.Relations = {{1, 3, 0.5f, 1.f, {"Japanese"}}};
  L.Features = {A, B};
  L.Tokens = {{5, " Paris"}, {9, " French"}, {11, " Tokyo"}};
  L.Inputs = {{"facts", "facts.tsv", 123, std::string(64, 'a')}};
  L.Parameters = {8, 16, 2, 0.1f};
  L.Facts = 6;
  return L;
}

TEST(Labels, RoundTripsEveryField) {
  Labels L = sample();
  std::string Bytes = serializeLabels(L);
  EXPECT_EQ(serializeLabels(sample()), Bytes) << "not deterministic";
  Expected<Labels> Back = readLabels(arrayRefFromStringRef(Bytes), "l");
  ASSERT_TRUE(bool(Back)) << toString(Back.takeError());
  EXPECT_EQ(serializeLabels(*Back), Bytes);
  EXPECT_EQ(Back->Relations[1].HeldoutPrompt, "{e} speaks");
  EXPECT_EQ(Back->Relations[0].Templates[0], "{e}'s capital is");
  EXPECT_EQ(Back->Entities[2], "Cote d'Ivoire");
  EXPECT_EQ(Back->Relations[0].Entities, (std::vector<uint32_t>{0, 2}));
  EXPECT_TRUE(Back->Relations[1].Entities.empty()); // as labels before them
  EXPECT_EQ(Back->Layers[1].Band, Band::Output);
  EXPECT_EQ(Back->Layers[1].LensTop10First, 3u);
  EXPECT_EQ(Back->Parameters.TopContributors, 16u);
  EXPECT_EQ(Back->Facts, 6u);
  EXPECT_EQ(Back->Inputs[0].Sha256, std::string(64, 'a'));
  const FeatureLabel *F = Back->feature(0, 7);
  ASSERT_NE(F, nullptr);
  EXPECT_EQ(F->Relations[0].Examples[1], "Tokyo");
  EXPECT_FLOAT_EQ(F->Relations[0].MeanAttribution, 0.75f);
  EXPECT_EQ(F->InputTokens[0].Token, 5u);
  EXPECT_EQ(Back->feature(0, 8), nullptr);
  EXPECT_EQ(Back->feature(1, 7), nullptr);
}

TEST(Labels, Lookups) {
  Labels L = sample();
  EXPECT_EQ(L.relation("language"), 1u);
  EXPECT_FALSE(L.relation("borders"));
  EXPECT_EQ(L.entity("Japan"), 1u);
  EXPECT_EQ(L.tokenText(9), " French");
  EXPECT_EQ(L.tokenText(10), "");
  EXPECT_EQ(L.band(0), Band::Knowledge);
  EXPECT_EQ(L.band(9), Band::Unlabelled);
  EXPECT_EQ(L.relationFeatureCounts(), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(L.relationLayers()[1], (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(L.layerFeatures(1).size(), 1u);
  EXPECT_EQ(L.layerFeatures(1)[0].Feature, 3u);
  EXPECT_TRUE(L.layerFeatures(5).empty());
  EXPECT_EQ(L.Relations[0].prompt("France"), "The capital of France is");
  EXPECT_EQ(bandName(Band::Knowledge), "knowledge");
  EXPECT_EQ(parseBand("OUTPUT"), Band::Output);
  EXPECT_FALSE(parseBand("middle"));
}

static std::string readError(const Labels &L) {
  std::string Bytes = serializeLabels(L);
  Expected<Labels> Back = readLabels(arrayRefFromStringRef(Bytes), "l.vfb");
  return Back ? std::string() : toString(Back.takeError());
}

TEST(Labels, RejectsBadIndices) {
  Labels L = sample();
  L.Features[1].Relations[0].Relation = 2;
  EXPECT_NE(readError(L).find("relation index 2 out of range"),
            std::string::npos);
  L = sample();
  std::swap(L.Features[0], L.Features[1]);
  EXPECT_NE(readError(L).find("out of order"), std::string::npos);
  L = sample();
  L.Features[1].Layer = 5;
  EXPECT_NE(readError(L).find("layer out of range"), std::string::npos);
  L = sample();
  L.Layers[1].Index = 0;
  EXPECT_NE(readError(L).find("has index 0"), std::string::npos);
  L = sample();
  std::swap(L.Tokens[0], L.Tokens[2]);
  EXPECT_NE(readError(L).find("ascending"), std::string::npos);
  L = sample();
  L.Relations[0].Entities = {0, 3};
  EXPECT_NE(readError(L).find("relation 'capital': entity index 3 out of "
                              "range (3 entities)"),
            std::string::npos);
  L = sample();
  L.Relations[0].Entities = {2, 0};
  EXPECT_NE(readError(L).find("entities out of order or repeated"),
            std::string::npos);
}

TEST(Labels, RejectsCorruptBytes) {
  std::string Bytes = serializeLabels(sample());
  EXPECT_FALSE(bool(readLabels(arrayRefFromStringRef("short"), "l")));
  std::string NoId = Bytes;
  NoId[4] = 'X';
  Expected<Labels> Bad = readLabels(arrayRefFromStringRef(NoId), "l");
  ASSERT_FALSE(bool(Bad));
  EXPECT_NE(toString(Bad.takeError()).find("'VLAB'"), std::string::npos);
  // Truncations are refused, never read past the end (the last few bytes
  // can be alignment padding no table reaches).
  for (size_t N = 8; N + 8 < Bytes.size(); N += 7) {
    Expected<Labels> T =
        readLabels(arrayRefFromStringRef(StringRef(Bytes).take_front(N)), "l");
    if (T)
      ADD_FAILURE() << "truncated to " << N << " accepted";
    else
      consumeError(T.takeError());
  }
}

TEST(Labels, CheckedAgainstTheModel) {
  Manifest M;
  M.Config.NumLayers = 2;
  M.Config.IntermediateSize = 8;
  M.Config.VocabSize = 12;
  EXPECT_FALSE(bool(checkLabels(sample(), M, "l")));
  Error E = checkLabels(sample(3), M, "l");
  EXPECT_NE(toString(std::move(E)).find("3 layer records"), std::string::npos);
  M.Config.IntermediateSize = 7;
  E = checkLabels(sample(), M, "l");
  EXPECT_NE(toString(std::move(E)).find("past the layer's 7 features"),
            std::string::npos);
  M.Config.IntermediateSize = 8;
  M.Config.VocabSize = 11;
  E = checkLabels(sample(), M, "l");
  EXPECT_NE(toString(std::move(E)).find("outside the vocabulary"),
            std::string::npos);
}

namespace {
class LabelsInVindex : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(sys::fs::createUniqueDirectory("vindex-labels-test", Tmp));
  }
  void TearDown() override { sys::fs::remove_directories(Tmp); }
  SmallString<128> Tmp;
};
} // namespace

// labels.vfb written beside the manifest, listed with its checksum, read
// on open, kept by a plain copy, and refused when changed.
TEST_F(LabelsInVindex, WrittenCheckedAndCopied) {
  std::string In = (Tmp + "/in.vindex").str();
  DecomposeOptions Opts;
  Opts.Input = (Twine(VINDEX_TEST_FIXTURES) + "/models/tiny-llama").str();
  Opts.Output = In;
  Opts.Jobs = 1;
  std::vector<std::string> Inputs;
  ASSERT_FALSE(bool(decompose(Opts, Inputs)));
  auto V = Vindex::open(In);
  ASSERT_TRUE(bool(V)) << toString(V.takeError());
  EXPECT_EQ((*V)->labels(), nullptr);

  Labels L = sample((*V)->config().NumLayers);
  std::string Out = (Tmp + "/out.vindex").str();
  LabelsFileRecord R;
  R.CommandLine = "larql-probe x";
  R.Sources = {{"facts.tsv", 1, std::string(64, 'b')}};
  ASSERT_FALSE(bool(copyVindexWithLabels(**V, Out, L, R)));
  auto P = Vindex::open(Out);
  ASSERT_TRUE(bool(P)) << toString(P.takeError());
  ASSERT_NE((*P)->labels(), nullptr);
  EXPECT_EQ(serializeLabels(*(*P)->labels()), serializeLabels(L));
  ASSERT_TRUE((*P)->manifest().LabelsFile.has_value());
  EXPECT_EQ((*P)->manifest().LabelsFile->Sources[0].Sha256,
            std::string(64, 'b'));
  EXPECT_EQ((*P)->manifest().Layers.back().Band, uint8_t(Band::Output));
  EXPECT_FALSE(bool((*P)->verify(1)));

  // A plain copy keeps the labels.
  std::string Copy = (Tmp + "/copy.vindex").str();
  ASSERT_FALSE(bool(copyVindex(**P, Copy)));
  auto C = Vindex::open(Copy);
  ASSERT_TRUE(bool(C)) << toString(C.takeError());
  ASSERT_NE((*C)->labels(), nullptr);

  // A changed labels.vfb is refused on open.
  std::string File = (Twine(Copy) + "/" + kLabelsFileName).str();
  auto Buf = MemoryBuffer::getFile(File);
  ASSERT_TRUE(bool(Buf));
  std::string Bytes = (*Buf)->getBuffer().str();
  Bytes.back() ^= 1;
  ASSERT_FALSE(bool(writeFileAtomically(File, Bytes)));
  auto Bad = Vindex::open(Copy);
  ASSERT_FALSE(bool(Bad));
  EXPECT_NE(toString(Bad.takeError()).find("checksum mismatch"),
            std::string::npos);
}
