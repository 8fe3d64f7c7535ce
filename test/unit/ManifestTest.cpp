//===- ManifestTest.cpp ---------------------------------------------------===//
#include "vindex/Store/Manifest.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

#include "gtest/gtest.h"

using namespace vindex;
using namespace llvm;

static Manifest sample() {
  Manifest M;
  M.Config.Architecture = "llama";
  M.Config.SourceModelType = "llama";
  M.Config.HiddenSize = 96;
  M.Config.NumLayers = 2;
  M.Config.LayerKinds = {LayerKind::Full, LayerKind::Sliding};
  M.Config.BosId = 2;
  M.Config.EosIds = {1, 7};
  M.Config.Scaling.Type = "llama3";
  M.Config.Scaling.Factor = 8;
  TensorRecord T;
  T.Name = "model.layers.1.mlp.down_proj.weight";
  T.Role = TensorRole::FFNDown;
  T.Layer = 1;
  T.Type = DType::BF16;
  T.Dims = {384, 96};
  T.Transposed = true;
  T.File = "tensors/layer-001.bin";
  T.Offset = 128;
  T.StoredLength = T.Length = 384 * 96 * 2;
  T.Checksum = 0x123456789abcdefull;
  T.SourceShard = 1;
  M.Tensors.push_back(T);
  M.Shards = {{"a.safetensors", {{"format", "pt"}}}, {"b.safetensors", {}}};
  M.Layers = {{0, 384, 0}, {1, 384, 2}};
  M.Files = {{"tokenizer.json", 10, 99}};
  M.Provenance = {"vindex-decompose",
                  "0.1.0",
                  "vindex-decompose x",
                  {{"x/config.json", 5, std::string(64, 'a')}}};
  M.SourceIndex = true;
  return M;
}

TEST(Manifest, RoundTripsEveryField) {
  Manifest M = sample();
  std::string Bytes = serializeManifest(M);
  Expected<Manifest> Back = parseManifest(arrayRefFromStringRef(Bytes), "m");
  ASSERT_TRUE(bool(Back)) << toString(Back.takeError());
  EXPECT_EQ(serializeManifest(*Back), Bytes);
  EXPECT_EQ(Back->Config.Architecture, "llama");
  EXPECT_EQ(Back->Config.LayerKinds[1], LayerKind::Sliding);
  EXPECT_EQ(Back->Config.BosId, 2);
  EXPECT_FALSE(Back->Config.PadId.has_value());
  EXPECT_EQ(Back->Config.Scaling.Factor, 8);
  const TensorRecord &T = Back->Tensors[0];
  EXPECT_EQ(T.Name, "model.layers.1.mlp.down_proj.weight");
  EXPECT_EQ(T.Role, TensorRole::FFNDown);
  EXPECT_TRUE(T.Transposed);
  EXPECT_EQ(T.sourceDims(), (Shape{96, 384}));
  EXPECT_EQ(T.Checksum, 0x123456789abcdefull);
  EXPECT_EQ(Back->Shards[0].Meta[0].second, "pt");
  EXPECT_EQ(Back->Layers[1].Band, 2);
  EXPECT_TRUE(Back->SourceIndex);
  EXPECT_EQ(Back->Provenance.Sources[0].Sha256.size(), 64u);
}

TEST(Manifest, RoundTripsKeyStatistics) {
  Manifest M = sample();
  std::string Without = serializeManifest(M);
  M.KeyStats.push_back({"stats/key-L001.f64", 591360, 0xfeedull, 1, 384,
                        47359, 0xabcdef0123456789ull, "train.txt",
                        std::string(64, 'f'), "larql-probe x --key-stats y"});
  std::string Bytes = serializeManifest(M);
  // Absent, not empty, when never measured: older V-indexes keep their
  // bytes.
  EXPECT_NE(Bytes, Without);
  Expected<Manifest> Back = parseManifest(arrayRefFromStringRef(Bytes), "m");
  ASSERT_TRUE(bool(Back)) << toString(Back.takeError());
  EXPECT_EQ(serializeManifest(*Back), Bytes);
  ASSERT_EQ(Back->KeyStats.size(), 1u);
  const KeyStatsRecord &K = Back->KeyStats[0];
  EXPECT_EQ(K.File, "stats/key-L001.f64");
  EXPECT_EQ(K.Length, 591360u);
  EXPECT_EQ(K.Checksum, 0xfeedull);
  EXPECT_EQ(K.Layer, 1u);
  EXPECT_EQ(K.Features, 384u);
  EXPECT_EQ(K.Positions, 47359u);
  EXPECT_EQ(K.Weights, 0xabcdef0123456789ull);
  EXPECT_EQ(K.Corpus, "train.txt");
  EXPECT_EQ(K.CorpusSha256, std::string(64, 'f'));
  EXPECT_EQ(K.CommandLine, "larql-probe x --key-stats y");
  Expected<Manifest> Plain =
      parseManifest(arrayRefFromStringRef(Without), "m");
  ASSERT_TRUE(bool(Plain)) << toString(Plain.takeError());
  EXPECT_TRUE(Plain->KeyStats.empty());
}

TEST(Manifest, IsDeterministic) {
  EXPECT_EQ(serializeManifest(sample()), serializeManifest(sample()));
}

// Within one process the same allocator and addresses serve both calls, so
// the test above cannot see bytes that depend on pointers, hash seeds or
// uninitialised memory. Here two child processes (fresh address-space
// layouts) each write the sample's bytes, which must equal this process's.
static int Anchor;
TEST(Manifest, IsDeterministicAcrossProcesses) {
  if (const char *Out = std::getenv("VINDEX_MANIFEST_TEST_OUT")) {
    std::error_code EC;
    raw_fd_ostream OS(Out, EC);
    ASSERT_FALSE(EC);
    OS << serializeManifest(sample());
    return;
  }
  std::string Self = sys::fs::getMainExecutable(nullptr, &Anchor);
  SmallString<128> Dir;
  ASSERT_FALSE(sys::fs::createUniqueDirectory("manifest-test", Dir));
  std::string Mine = serializeManifest(sample());
  for (int Run = 0; Run < 2; ++Run) {
    std::string Out = (Dir + "/m" + Twine(Run) + ".vfb").str();
    std::string Env = "VINDEX_MANIFEST_TEST_OUT=" + Out;
    std::vector<StringRef> Args = {
        Self, "--gtest_filter=Manifest.IsDeterministicAcrossProcesses"};
    std::vector<StringRef> EnvList = {Env};
    ASSERT_EQ(sys::ExecuteAndWait(Self, Args, EnvList), 0);
    auto Bytes = MemoryBuffer::getFile(Out);
    ASSERT_TRUE(bool(Bytes));
    EXPECT_EQ((*Bytes)->getBuffer(), Mine) << "run " << Run;
    sys::fs::remove(Out);
  }
  sys::fs::remove(Dir);
}

TEST(Manifest, RejectsForeignAndCorruptBytes) {
  std::string Bytes = serializeManifest(sample());
  std::string Foreign = "not a flatbuffer at all";
  Expected<Manifest> A = parseManifest(arrayRefFromStringRef(Foreign), "m.vfb");
  ASSERT_FALSE(bool(A));
  EXPECT_EQ(toString(A.takeError()),
            "m.vfb: not a V-index manifest (missing the 'VIDX' identifier)");
  std::string Cut = Bytes.substr(0, Bytes.size() / 2);
  Expected<Manifest> B = parseManifest(arrayRefFromStringRef(Cut), "m.vfb");
  ASSERT_FALSE(bool(B));
  EXPECT_EQ(toString(B.takeError()),
            "m.vfb: corrupt manifest (flatbuffer verification failed)");
}
