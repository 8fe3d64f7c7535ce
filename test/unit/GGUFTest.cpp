//===- GGUFTest.cpp - GGUF out and in, through the engine -----------------===//
//
// fixture -> V-index -> GGUF (each --type) -> V-index: the engine's logits
// on every reference prompt equal those of the original V-index within 1e-5
// for f32, bf16 and f16, and keep the top-1 token for q8_0; the rebuilt
// tokenizer.json encodes every prompt and corpus line as the original does.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/GGUF.h"
#include "vindex/Formats/RowConversion.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Convert/Compile.h"
#include "vindex/Convert/Decompose.h"
#include "vindex/Store/Vindex.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include "TestFixtures.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>

using namespace vindex;
using namespace llvm;
using vindex::test::fixture;

namespace {

std::vector<std::string> lines(const std::string &Path, size_t Max) {
  auto Buf = MemoryBuffer::getFile(Path);
  EXPECT_TRUE(bool(Buf)) << Path;
  SmallVector<StringRef, 0> L;
  (*Buf)->getBuffer().split(L, '\n', -1, /*KeepEmpty=*/false);
  std::vector<std::string> Out;
  for (StringRef S : L)
    if (Out.size() < Max)
      Out.push_back(S.str());
  return Out;
}

struct Opened {
  std::unique_ptr<Vindex> V;
  std::unique_ptr<Model> M;
  std::unique_ptr<Tokenizer> Tok;
};

Opened open(const std::string &Dir) {
  Opened O;
  auto V = Vindex::open(Dir);
  EXPECT_TRUE(bool(V)) << toString(V.takeError());
  O.V = std::move(*V);
  auto M = Model::load(*O.V);
  EXPECT_TRUE(bool(M)) << toString(M.takeError());
  O.M = std::move(*M);
  auto T = Tokenizer::fromFile(O.V->path("tokenizer.json"));
  EXPECT_TRUE(bool(T)) << toString(T.takeError());
  O.Tok = std::make_unique<Tokenizer>(std::move(*T));
  return O;
}

void decomposeTo(const std::string &In, const std::string &Out) {
  DecomposeOptions Opts;
  Opts.Input = In;
  Opts.Output = Out;
  std::vector<std::string> Inputs;
  Error E = decompose(Opts, Inputs);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
}

size_t argmax(const std::vector<float> &V) {
  return std::max_element(V.begin(), V.end()) - V.begin();
}

using Param = std::tuple<const char *, const char *>;
class GGUFRoundTrip : public ::testing::TestWithParam<Param> {};

} // namespace

TEST_P(GGUFRoundTrip, EngineAndTokenizerSurvive) {
  auto [Name, TypeName] = GetParam();
  SmallString<128> Dir;
  ASSERT_FALSE(sys::fs::createUniqueDirectory("vindex-gguf-test", Dir));
  std::string V0 = (Dir + "/m.vindex").str(), G = (Dir + "/m.gguf").str(),
              V1 = (Dir + "/back.vindex").str();
  decomposeTo(fixture(Twine("models/") + Name), V0);
  {
    Opened O = open(V0);
    Error E = compileGGUF(*O.V, G, *parseGGUFOutputType(TypeName), 1);
    ASSERT_FALSE(bool(E)) << toString(std::move(E));
  }
  decomposeTo(G, V1);
  Opened A = open(V0), B = open(V1);
  bool Quantized = StringRef(TypeName) == "q8_0";

  std::vector<std::string> Prompts =
      lines(fixture(Twine("references/") + Name + "/prompts.txt"), 1000);
  ASSERT_FALSE(Prompts.empty());
  double Worst = 0;
  size_t Top1Kept = 0;
  for (const std::string &P : Prompts) {
    std::vector<int32_t> Ids = A.Tok->encode(P);
    ASSERT_EQ(B.Tok->encode(P), Ids) << P;
    Session SA(*A.M, 1), SB(*B.M, 1);
    std::vector<float> LA = SA.run(Ids).Logits, LB = SB.run(Ids).Logits;
    ASSERT_EQ(LA.size(), LB.size());
    double Diff = 0;
    for (size_t I = 0; I < LA.size(); ++I)
      Diff = std::max(Diff, double(std::fabs(LA[I] - LB[I])));
    Worst = std::max(Worst, Diff);
    if (!Quantized) {
      EXPECT_LE(Diff, 1e-5) << P;
    }
    EXPECT_EQ(argmax(LA), argmax(LB)) << P;
    Top1Kept += argmax(LA) == argmax(LB);
  }
  std::printf("[ measured ] %s %s: %zu prompts, max |logit diff| = %.3g, "
              "top-1 kept %zu/%zu\n",
              Name, TypeName, Prompts.size(), Worst, Top1Kept, Prompts.size());

  // The rebuilt tokenizer.json against the original on corpus lines.
  size_t Same = 0;
  std::vector<std::string> Corpus = lines(fixture("corpus/heldout.txt"), 400);
  for (const std::string &L : Corpus) {
    bool Eq =
        A.Tok->encode(L) == B.Tok->encode(L) &&
        B.Tok->decode(B.Tok->encode(L)) == A.Tok->decode(A.Tok->encode(L));
    EXPECT_TRUE(Eq) << L;
    Same += Eq;
  }
  EXPECT_EQ(Same, Corpus.size());
  sys::fs::remove_directories(Dir);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, GGUFRoundTrip,
    ::testing::Combine(::testing::Values("tiny-gemma3", "tiny-llama"),
                       ::testing::Values("f32", "bf16", "f16", "q8_0")),
    [](const ::testing::TestParamInfo<Param> &I) {
      std::string S =
          std::string(std::get<0>(I.param)) + "_" + std::get<1>(I.param);
      for (char &C : S)
        if (!isAlnum(C))
          C = '_';
      return S;
    });

TEST(GGUFFormat, HalfAndBfloatRoundToNearestEven) {
  EXPECT_EQ(floatToF16(1.0f), 0x3c00);
  EXPECT_EQ(floatToF16(-2.0f), 0xc000);
  EXPECT_EQ(floatToF16(65504.0f), 0x7bff);
  EXPECT_EQ(floatToF16(65520.0f), 0x7c00);
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -25)), 0x0000);        // tie to even
  EXPECT_EQ(floatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00); // tie
  EXPECT_EQ(floatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  for (uint32_t H = 0; H < 0x7c00; ++H)
    ASSERT_EQ(floatToF16(f16ToFloat(uint16_t(H))), H);
  EXPECT_EQ(floatToBF16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBF16(1.0f + std::ldexp(1.0f, -8)), 0x3f80); // tie
  EXPECT_EQ(bf16ToFloat(0x3fc0), 1.5f);
}

TEST(GGUFFormat, Q8_0MatchesGGMLReference) {
  float X[32];
  for (int I = 0; I < 32; ++I)
    X[I] = (I - 10) * 0.25f;
  uint8_t Q[34];
  quantizeQ8_0(X, 32, Q);
  // amax 5.25, d = 5.25/127; x = 5.25 -> 127, x = -2.5 -> round(-60.47).
  EXPECT_EQ(int8_t(Q[2 + 31]), 127);
  EXPECT_EQ(int8_t(Q[2 + 0]), -60);
  float Back[32];
  dequantizeQ8_0(Q, 32, Back);
  for (int I = 0; I < 32; ++I)
    EXPECT_NEAR(Back[I], X[I], 5.25f / 127 / 2 + 1e-3f);
}

// The vectorised rows give exactly the bytes of the scalar definitions,
// on ordinary values and on the ones where hardware and definition could
// part: NaNs (with payloads), infinities, subnormals, ties, overflow.
TEST(GGUFFormat, RowConversionsMatchScalarDefinitions) {
  std::vector<float> X;
  uint32_t Seed = 12345;
  auto Next = [&] { return Seed = Seed * 1664525u + 1013904223u; };
  for (int I = 0; I < 32 * 64; ++I) // random bit patterns, random floats
    X.push_back(I % 2 ? float(int32_t(Next())) / 3e8f
                      : bit_cast<float>(Next()));
  const float Special[] = {0.0f,
                           -0.0f,
                           INFINITY,
                           -INFINITY,
                           bit_cast<float>(0x7fc00001u),
                           bit_cast<float>(0xff812345u),
                           bit_cast<float>(0x7f800001u),
                           65504.0f,
                           65520.0f,
                           -65519.99f,
                           std::ldexp(1.0f, -24),
                           std::ldexp(1.0f, -25),
                           std::ldexp(3.0f, -26),
                           1.0f + std::ldexp(1.0f, -11),
                           std::ldexp(1.0f, -140),
                           1e-45f,
                           127.5f,
                           -0.5f};
  for (float F : Special) { // alone in a block of zeros, and among values
    for (int I = 0; I < 32; ++I)
      X.push_back(I == 7 ? F : 0.0f);
    for (int I = 0; I < 32; ++I)
      X.push_back(I == 20 ? F : float(I) - 15.5f);
  }
  for (int I = 0; I < 32; ++I) // ties of the Q8_0 rounding: 127 * k / 254
    X.push_back(I == 0 ? 127.0f : float(2 * I + 1) / 2);
  X.push_back(1.5f); // a row length that is not a multiple of 8 (f16 only)
  uint64_t N = X.size();

  std::vector<uint8_t> Fast(2 * N), Ref(2 * N);
  encodeRow(X.data(), N, GGMLType::F16, Fast.data());
  for (uint64_t I = 0; I < N; ++I)
    support::endian::write16le(Ref.data() + 2 * I, floatToF16(X[I]));
  EXPECT_EQ(Fast, Ref);

  uint64_t NQ = N / kQ8_0Block * kQ8_0Block;
  std::vector<uint8_t> FastQ(*ggmlRowSize(GGMLType::Q8_0, NQ)),
      RefQ(FastQ.size());
  encodeRow(X.data(), NQ, GGMLType::Q8_0, FastQ.data());
  quantizeQ8_0(X.data(), NQ, RefQ.data());
  EXPECT_EQ(FastQ, RefQ);

  std::vector<float> Wide(N), WideRef(N);
  decodeRow(Ref.data(), DType::BF16, N, Wide.data()); // any bits will do
  for (uint64_t I = 0; I < N; ++I)
    WideRef[I] = bf16ToFloat(support::endian::read16le(Ref.data() + 2 * I));
  EXPECT_EQ(std::memcmp(Wide.data(), WideRef.data(), 4 * N), 0);
}

TEST(GGUFFormat, WriterOutputReadsBack) {
  SmallString<128> Path;
  int FD;
  ASSERT_FALSE(sys::fs::createTemporaryFile("gguf-test", "gguf", FD, Path));
  std::vector<GGUFKV> KVs = {
      {"general.architecture", GGUFValue::string("llama")},
      {"x.u32", GGUFValue::u32(7)},
      {"x.f32", GGUFValue::f32(0.5f)},
      {"x.flag", GGUFValue::boolean(true)},
      {"x.strs", GGUFValue::array(GGUFType::String, {GGUFValue::string("a"),
                                                     GGUFValue::string("")})}};
  GGUFWriter W(KVs,
               {{"a", {3}, GGMLType::F32}, {"b", {32, 2}, GGMLType::Q8_0}});
  std::string Bytes = W.header();
  Bytes.append(12, '\1');
  Bytes.resize(Bytes.size() + 20, '\0'); // pad 12 -> 32
  Bytes.append(68, '\2');
  ASSERT_EQ(Bytes.size(), W.totalSize() - 28); // last tensor unpadded
  {
    raw_fd_ostream OS(FD, true);
    OS << Bytes;
  }
  auto G = GGUFFile::open(Path);
  ASSERT_TRUE(bool(G)) << toString(G.takeError());
  EXPECT_EQ((*G)->kvs().size(), 5u);
  EXPECT_EQ((*G)->find("x.u32")->asInt(), 7);
  EXPECT_EQ((*G)->find("x.f32")->asFloat(), 0.5);
  EXPECT_EQ((*G)->find("x.strs")->Elems[0].Str, "a");
  ASSERT_EQ((*G)->tensors().size(), 2u);
  EXPECT_EQ((*G)->tensors()[1].Offset, 32u);
  EXPECT_EQ((*G)->tensors()[1].Length, 68u);
  EXPECT_EQ((*G)->data((*G)->tensors()[1])[0], 2);
  sys::fs::remove(Path);
}
