//===- StoreRoundTripTest.cpp - decompose/open/read in process ------------===//
#include "vindex/Convert/Decompose.h"
#include "vindex/Formats/Safetensors.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Transpose.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

using namespace vindex;
using namespace llvm;

namespace {

class StoreRoundTrip : public ::testing::TestWithParam<bool> {
protected:
  void SetUp() override {
    ASSERT_FALSE(sys::fs::createUniqueDirectory("vindex-store-test", Tmp));
  }
  void TearDown() override { sys::fs::remove_directories(Tmp); }
  SmallString<128> Tmp;
};

} // namespace

// The V-index stores gate/up verbatim and down transposed; reading it back
// through the store gives the source tensors in those layouts.
TEST_P(StoreRoundTrip, FeatureMajorFFN) {
  std::string Model =
      (Twine(VINDEX_TEST_FIXTURES) + "/models/tiny-llama").str();
  std::string Out = (Tmp + "/l.vindex").str();
  DecomposeOptions Opts;
  Opts.Input = Model;
  Opts.Output = Out;
  Opts.Compress = GetParam();
  Opts.Jobs = 2;
  std::vector<std::string> Inputs;
  ASSERT_FALSE(bool(decompose(Opts, Inputs)));
  EXPECT_GE(Inputs.size(), 2u);

  auto V = Vindex::open(Out);
  ASSERT_TRUE(bool(V)) << toString(V.takeError());
  auto Src = SafetensorsFile::open(Model + "/model.safetensors");
  ASSERT_TRUE(bool(Src));
  const ModelConfig &C = (*V)->config();
  EXPECT_EQ((*V)->manifest().Layers.size(), C.NumLayers);

  for (int L = 0; L < int(C.NumLayers); ++L) {
    for (TensorRole R :
         {TensorRole::FFNGate, TensorRole::FFNUp, TensorRole::FFNDown}) {
      const TensorRecord *T = (*V)->find(R, L);
      ASSERT_NE(T, nullptr);
      EXPECT_EQ(T->Dims, (Shape{C.IntermediateSize, C.HiddenSize}));
      EXPECT_EQ(T->Compression, GetParam() ? Codec::ZstdShuffle : Codec::None);
      if (!GetParam()) {
        EXPECT_EQ(T->Offset % kPayloadAlignment, 0u);
      }
      std::vector<uint8_t> Storage;
      auto Data = (*V)->data(*T, Storage);
      ASSERT_TRUE(bool(Data));
      const SafetensorsEntry *E = (*Src)->find(T->Name);
      ASSERT_NE(E, nullptr);
      std::vector<uint8_t> Expected((*Src)->data(*E).begin(),
                                    (*Src)->data(*E).end());
      if (R == TensorRole::FFNDown) {
        EXPECT_TRUE(T->Transposed);
        transposeMatrix((*Src)->data(*E).data(), E->Dims[0], E->Dims[1], 2,
                        Expected.data());
      }
      EXPECT_TRUE(std::equal(Data->begin(), Data->end(), Expected.begin(),
                             Expected.end()))
          << T->Name;
    }
  }
  EXPECT_FALSE(bool((*V)->verify(2)));
}

INSTANTIATE_TEST_SUITE_P(Codecs, StoreRoundTrip, ::testing::Bool());
