//===- OverlayTest.cpp - One patch, seen by every consumer ----------------===//
//
// A patch that changes one FFN row and appends one feature slot is recorded
// through the overlay API on tiny-llama and tiny-gemma3 (uncompressed and
// compressed) and must show in every consumer:
// the engine, the safetensors compile, the GGUF compile, the copy that
// keeps patches (-o) and the one that materialises them (COMPILE INTO
// VINDEX), each reopened with its checksums verified.
//
// The reference is built independently of the overlay: the test edits the
// source checkpoint itself (its own row replacement, its own transposed
// column for down_proj, zero rows for the other layers as a single
// intermediate_size needs) and decomposes that.
//
//===----------------------------------------------------------------------===//
#include "vindex/Convert/Compile.h"
#include "vindex/Convert/Decompose.h"
#include "vindex/Dialect/Vindex/VindexDialect.h"
#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Exec/Applier.h"
#include "vindex/Formats/GGUF.h"
#include "vindex/Formats/ModelConfig.h"
#include "vindex/Formats/Safetensors.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/Copy.h"
#include "vindex/Store/Patch.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "TestFixtures.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>

using namespace vindex;
using namespace llvm;
using vindex::test::fixture;

/// Checks an llvm::Error (printing it) or consumes an expected one.
#define ASSERT_OK(X)                                                           \
  do {                                                                         \
    Error Err_ = (X);                                                          \
    ASSERT_FALSE(bool(Err_)) << toString(std::move(Err_));                     \
  } while (0)
#define EXPECT_FAILS(X)                                                        \
  do {                                                                         \
    Error Err_ = (X);                                                          \
    EXPECT_TRUE(bool(Err_));                                                   \
    consumeError(std::move(Err_));                                             \
  } while (0)

namespace {

constexpr unsigned kLayer = 1;      // the patched layer
constexpr uint64_t kChangedRow = 5; // the replaced gate row

std::string layerName(unsigned L, StringRef Proj) {
  return ("model.layers." + Twine(L) + ".mlp." + Proj + ".weight").str();
}

/// Values exactly representable in bf16 (so the stored bytes are known).
std::vector<float> pattern(size_t N, unsigned Seed, float Scale) {
  std::vector<float> V(N);
  for (size_t I = 0; I < N; ++I)
    V[I] = float(int((I * 37 + Seed * 11) % 17) - 8) / 8.0f * Scale;
  return V;
}

std::vector<uint8_t> bf16Bytes(ArrayRef<float> V) {
  std::vector<uint8_t> Out(V.size() * 2);
  for (size_t I = 0; I < V.size(); ++I) {
    uint16_t H = floatToBF16(V[I]);
    std::memcpy(&Out[2 * I], &H, 2);
  }
  return Out;
}

std::vector<uint8_t> readAll(const std::string &Path) {
  auto Buf = MemoryBuffer::getFile(Path, false, false);
  EXPECT_TRUE(bool(Buf)) << Path;
  if (!Buf)
    return {};
  StringRef S = (*Buf)->getBuffer();
  return std::vector<uint8_t>(S.begin(), S.end());
}

void writeAll(const std::string &Path, ArrayRef<uint8_t> Bytes) {
  std::error_code EC;
  raw_fd_ostream OS(Path, EC);
  ASSERT_FALSE(EC) << Path;
  OS.write(reinterpret_cast<const char *>(Bytes.data()), Bytes.size());
}

std::vector<float> logits(const Model &M) {
  Session S(M);
  static const int32_t Ids[] = {2, 101, 305, 777, 1200, 64, 9};
  return S.run(Ids).Logits;
}

float maxDiff(ArrayRef<float> A, ArrayRef<float> B) {
  EXPECT_EQ(A.size(), B.size());
  float D = 0;
  for (size_t I = 0; I < std::min(A.size(), B.size()); ++I)
    D = std::max(D, std::fabs(A[I] - B[I]));
  return D;
}

/// The parameters: the fixture model, and whether the base V-index is
/// compressed (patched tensors then stream from decoded chunks, and
/// materialise uncompressed).
class Overlay
    : public ::testing::TestWithParam<std::tuple<const char *, bool>> {
protected:
  void SetUp() override {
    ASSERT_FALSE(sys::fs::createUniqueDirectory("vindex-overlay-test", Tmp));
    Base = path("base.vindex");
    DecomposeOptions Opts;
    Opts.Input = source();
    Opts.Output = Base;
    Opts.Compress = std::get<1>(GetParam());
    std::vector<std::string> Inputs;
    Error E = decompose(Opts, Inputs);
    ASSERT_FALSE(bool(E)) << toString(std::move(E));
    auto V = Vindex::open(Base);
    ASSERT_TRUE(bool(V)) << toString(V.takeError());
    BaseV = std::move(*V);
    const ModelConfig &C = BaseV->config();
    D = C.HiddenSize;
    F = C.IntermediateSize;
    NewGate = pattern(D, 1, 0.25f);
    NewUp = pattern(D, 2, 0.25f);
    NewDown = pattern(D, 3, 0.5f);
    ChangedGate = pattern(D, 4, 0.125f);
  }
  void TearDown() override { sys::fs::remove_directories(Tmp); }

  std::string path(const Twine &Name) { return (Tmp + "/" + Name).str(); }
  std::string source() {
    return fixture(Twine("models/") + std::get<0>(GetParam()));
  }

  /// The patch of this test, recorded through the API.
  std::shared_ptr<const Patch> record(const TensorView &View) {
    PatchBuilder B(View, {"edit-1", "INSERT INTO edges ...", "ab12"});
    Error E =
        B.setRow(layerName(kLayer, "gate_proj"), kChangedRow, ChangedGate);
    EXPECT_FALSE(bool(E)) << toString(std::move(E));
    Expected<uint64_t> Slot = B.appendFeature(kLayer, NewGate, NewUp, NewDown);
    EXPECT_TRUE(bool(Slot)) << toString(Slot.takeError());
    EXPECT_EQ(*Slot, F);
    EXPECT_EQ(B.ffnWidth(kLayer), F + 1);
    EXPECT_EQ(B.ffnWidth(0), F);
    return B.finish();
  }

  /// The patched checkpoint made by hand from the source safetensors, in a
  /// Hugging Face directory (every layer F + 1 wide, zero rows elsewhere).
  std::string referenceCheckpoint() {
    std::string Dir = path("reference");
    EXPECT_FALSE(sys::fs::create_directories(Dir));
    std::string Src = source();
    for (StringRef Aux :
         {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "generation_config.json", "tokenizer.model"})
      writeAll(Dir + "/" + Aux.str(), readAll(Src + "/" + Aux.str()));
    auto Cfg = MemoryBuffer::getFile(Src + "/config.json");
    Expected<json::Value> J = json::parse((*Cfg)->getBuffer());
    EXPECT_TRUE(bool(J));
    (*J->getAsObject())["intermediate_size"] = int64_t(F + 1);
    std::string Text = formatv("{0:2}", *J).str();
    writeAll(Dir + "/config.json", arrayRefFromStringRef(Text));

    auto ST = SafetensorsFile::open(Src + "/model.safetensors");
    EXPECT_TRUE(bool(ST));
    std::vector<SafetensorsWriter::Tensor> List;
    std::vector<std::vector<uint8_t>> Data;
    for (const SafetensorsEntry &E : (*ST)->entries()) {
      ArrayRef<uint8_t> Bytes = (*ST)->data(E);
      std::vector<uint8_t> Out(Bytes.begin(), Bytes.end());
      Shape Dims = E.Dims;
      std::optional<unsigned> Layer;
      for (unsigned L = 0; L < BaseV->config().NumLayers; ++L)
        if (StringRef(E.Name).starts_with(
                ("model.layers." + Twine(L) + ".").str()))
          Layer = L;
      bool Gate = StringRef(E.Name).ends_with("gate_proj.weight");
      bool Up = StringRef(E.Name).ends_with("up_proj.weight");
      bool Down = StringRef(E.Name).ends_with("down_proj.weight");
      if (Gate || Up) {
        // [F, d]: a new last row.
        EXPECT_EQ(Dims, (Shape{F, D}));
        std::vector<uint8_t> Row(D * 2, 0);
        if (*Layer == kLayer)
          Row = bf16Bytes(Gate ? NewGate : NewUp);
        if (Gate && *Layer == kLayer) {
          std::vector<uint8_t> Changed = bf16Bytes(ChangedGate);
          std::memcpy(Out.data() + kChangedRow * D * 2, Changed.data(), D * 2);
        }
        Out.insert(Out.end(), Row.begin(), Row.end());
        Dims[0] = F + 1;
      } else if (Down) {
        // [d, F]: a new last column.
        EXPECT_EQ(Dims, (Shape{D, F}));
        std::vector<uint8_t> Col = *Layer == kLayer
                                       ? bf16Bytes(NewDown)
                                       : std::vector<uint8_t>(D * 2, 0);
        std::vector<uint8_t> Wide;
        for (uint64_t R = 0; R < D; ++R) {
          Wide.insert(Wide.end(), Out.begin() + R * F * 2,
                      Out.begin() + (R + 1) * F * 2);
          Wide.insert(Wide.end(), Col.begin() + R * 2, Col.begin() + R * 2 + 2);
        }
        Out = std::move(Wide);
        Dims[1] = F + 1;
      }
      List.push_back({E.Name, E.Type, Dims});
      Data.push_back(std::move(Out));
    }
    SafetensorsWriter W(List, (*ST)->metadata());
    std::vector<uint8_t> File(W.header().begin(), W.header().end());
    for (auto &Bytes : Data)
      File.insert(File.end(), Bytes.begin(), Bytes.end());
    writeAll(Dir + "/model.safetensors", File);
    return Dir;
  }

  SmallString<128> Tmp;
  std::string Base;
  std::unique_ptr<Vindex> BaseV;
  uint64_t D = 0, F = 0;
  std::vector<float> NewGate, NewUp, NewDown, ChangedGate;
};

} // namespace

TEST_P(Overlay, EveryConsumerSeesThePatch) {
  // Record, persist (-o semantics) and reopen: the patch is checked on open.
  TensorView View(*BaseV);
  std::shared_ptr<const Patch> P = record(View);
  ASSERT_OK(View.push(P));
  EXPECT_EQ(View.generation(), 1u);
  EXPECT_EQ(View.ffnWidth(kLayer), F + 1);
  EXPECT_TRUE(View.ffnWidthsChanged());
  std::string Kept = path("kept.vindex");
  Error E = copyVindex(View, Kept, PatchMode::Keep);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
  auto KV = Vindex::open(Kept);
  ASSERT_TRUE(bool(KV)) << toString(KV.takeError());
  ASSERT_OK((*KV)->verify(2));
  ASSERT_EQ((*KV)->manifest().Patches.size(), 1u);
  const PatchRecord &R = (*KV)->manifest().Patches[0];
  EXPECT_EQ(R.File, "patches/0001.vpatch");
  EXPECT_EQ(R.Name, "edit-1");
  EXPECT_EQ(R.Statement, "INSERT INTO edges ...");
  EXPECT_EQ(R.ScriptSha256, "ab12");
  ASSERT_EQ(R.Tensors.size(), 3u); // gate, up, down of the layer
  for (const PatchedTensorRecord &T : R.Tensors) {
    EXPECT_EQ(T.Layer, int(kLayer));
    EXPECT_EQ(T.BaseRows, F);
    EXPECT_EQ(T.AppendedRows, 1u);
  }
  for (const PatchedTensorRecord &T : R.Tensors)
    EXPECT_EQ(T.Rows, T.Name == layerName(kLayer, "gate_proj")
                          ? std::vector<uint64_t>{kChangedRow}
                          : std::vector<uint64_t>{})
        << T.Name;
  TensorView KeptView(**KV);
  EXPECT_EQ(KeptView.numPersisted(), 1u);
  EXPECT_EQ(KeptView.ffnWidth(kLayer), F + 1);
  EXPECT_EQ(KeptView.ffnWidth(0), F);

  // Rows through the view.
  std::vector<float> Row;
  const TensorRecord *Gate = KeptView.find(TensorRole::FFNGate, kLayer);
  ASSERT_OK(KeptView.readRow(*Gate, kChangedRow, Row));
  EXPECT_EQ(Row, ChangedGate);
  ASSERT_OK(KeptView.readRow(*Gate, F, Row));
  EXPECT_EQ(Row, NewGate);
  const TensorRecord *Down = KeptView.find(TensorRole::FFNDown, kLayer);
  ASSERT_OK(KeptView.readRow(*Down, F, Row));
  EXPECT_EQ(Row, NewDown);

  // The engine: the base, the overlay in memory, the reopened overlay and
  // the independently patched checkpoint.
  auto BaseM = Model::load(*BaseV);
  ASSERT_TRUE(bool(BaseM)) << toString(BaseM.takeError());
  auto MemM = Model::load(View);
  ASSERT_TRUE(bool(MemM)) << toString(MemM.takeError());
  auto KeptM = Model::load(KeptView);
  ASSERT_TRUE(bool(KeptM)) << toString(KeptM.takeError());
  // What the features queries read: per-layer widths and patched rows.
  const LayerWeights &W = (*MemM)->layer(kLayer);
  EXPECT_EQ(W.Gate.Rows, F + 1);
  EXPECT_EQ((*MemM)->layer(0).Gate.Rows, F);
  EXPECT_EQ((*MemM)->maxFFNWidth(), F + 1);
  for (uint64_t I = 0; I < D; ++I) {
    EXPECT_EQ(W.Gate.at(F, I), NewGate[I]);
    EXPECT_EQ(W.Down.at(F, I), NewDown[I]);
    EXPECT_EQ(W.Gate.at(kChangedRow, I), ChangedGate[I]);
  }
  std::vector<float> BaseL = logits(**BaseM), MemL = logits(**MemM),
                     KeptL = logits(**KeptM);
  EXPECT_GT(maxDiff(BaseL, MemL), 1e-2f);
  EXPECT_EQ(MemL, KeptL);

  std::string RefDir = referenceCheckpoint();
  std::string RefV = path("reference.vindex");
  {
    DecomposeOptions Opts;
    Opts.Input = RefDir;
    Opts.Output = RefV;
    std::vector<std::string> Inputs;
    Error E = decompose(Opts, Inputs);
    ASSERT_FALSE(bool(E)) << toString(std::move(E));
  }
  auto Ref = Vindex::open(RefV);
  ASSERT_TRUE(bool(Ref)) << toString(Ref.takeError());
  auto RefM = Model::load(**Ref);
  ASSERT_TRUE(bool(RefM)) << toString(RefM.takeError());
  std::vector<float> RefL = logits(**RefM);
  // Zero rows add exact zeros, but the kernels' blocking follows F.
  EXPECT_LT(maxDiff(RefL, MemL), 1e-4f);

  // The safetensors compile equals the reference checkpoint tensor for
  // tensor, and its config.json says the new width.
  std::string ST = path("compiled");
  E = compileSafetensors(KeptView, ST, 2);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
  {
    auto Got = SafetensorsFile::open(ST + "/model.safetensors");
    auto Want = SafetensorsFile::open(RefDir + "/model.safetensors");
    ASSERT_TRUE(bool(Got) && bool(Want));
    ASSERT_EQ((*Got)->entries().size(), (*Want)->entries().size());
    for (const SafetensorsEntry &W : (*Want)->entries()) {
      const SafetensorsEntry *G = (*Got)->find(W.Name);
      ASSERT_NE(G, nullptr) << W.Name;
      EXPECT_EQ(G->Dims, W.Dims) << W.Name;
      EXPECT_TRUE((*Got)->data(*G) == (*Want)->data(W)) << W.Name;
    }
    auto Cfg = MemoryBuffer::getFile(ST + "/config.json");
    auto Src = MemoryBuffer::getFile(source() + "/config.json");
    Expected<ModelConfig> GotC = parseHFConfig((*Cfg)->getBuffer(), "got");
    Expected<ModelConfig> SrcC = parseHFConfig((*Src)->getBuffer(), "src");
    ASSERT_TRUE(bool(GotC) && bool(SrcC));
    EXPECT_EQ(GotC->IntermediateSize, F + 1);
    SrcC->IntermediateSize = F + 1;
    Expected<std::string> A = writeHFConfig(*GotC), B = writeHFConfig(*SrcC);
    ASSERT_TRUE(bool(A) && bool(B));
    EXPECT_EQ(*A, *B);
  }

  // The GGUF compile: feed_forward_length and the rows and column read
  // back in llama.cpp's layout.
  std::string GPath = path("m.gguf");
  E = compileGGUF(KeptView, GPath, GGUFOutputType::Auto, 2);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
  {
    auto G = GGUFFile::open(GPath);
    ASSERT_TRUE(bool(G)) << toString(G.takeError());
    Expected<StringRef> Arch = (*G)->requiredString("general.architecture");
    ASSERT_TRUE(bool(Arch)) << toString(Arch.takeError());
    const GGUFValue *FFL = (*G)->find((*Arch + ".feed_forward_length").str());
    ASSERT_NE(FFL, nullptr);
    EXPECT_EQ(FFL->asInt(), int64_t(F + 1));
    auto Tensor = [&](StringRef Name) {
      const GGUFTensorInfo *T = (*G)->findTensor(Name);
      EXPECT_NE(T, nullptr) << Name.str();
      return T;
    };
    std::string Blk = ("blk." + Twine(kLayer) + ".").str();
    const GGUFTensorInfo *GG = Tensor(Blk + "ffn_gate.weight");
    ASSERT_NE(GG, nullptr);
    EXPECT_EQ(GG->Ne, (SmallVector<uint64_t, 4>{D, F + 1}));
    ArrayRef<uint8_t> GD = (*G)->data(*GG);
    EXPECT_TRUE(GD.slice(kChangedRow * D * 2, D * 2) ==
                ArrayRef(bf16Bytes(ChangedGate)));
    EXPECT_TRUE(GD.slice(F * D * 2, D * 2) == ArrayRef(bf16Bytes(NewGate)));
    const GGUFTensorInfo *GDn = Tensor(Blk + "ffn_down.weight");
    ASSERT_NE(GDn, nullptr);
    EXPECT_EQ(GDn->Ne, (SmallVector<uint64_t, 4>{F + 1, D}));
    ArrayRef<uint8_t> DD = (*G)->data(*GDn);
    std::vector<uint8_t> Col, WantCol = bf16Bytes(NewDown);
    for (uint64_t I = 0; I < D; ++I)
      Col.insert(Col.end(), DD.begin() + (I * (F + 1) + F) * 2,
                 DD.begin() + (I * (F + 1) + F) * 2 + 2);
    EXPECT_EQ(Col, WantCol);
    // Another layer is padded with a zero row.
    const GGUFTensorInfo *G0 = Tensor("blk.0.ffn_up.weight");
    ASSERT_NE(G0, nullptr);
    EXPECT_EQ(G0->Ne, (SmallVector<uint64_t, 4>{D, F + 1}));
    ArrayRef<uint8_t> Z = (*G)->data(*G0).slice(F * D * 2, D * 2);
    EXPECT_TRUE(llvm::all_of(Z, [](uint8_t B) { return B == 0; }));
  }

  // COMPILE INTO VINDEX: materialised, no patches, the same model and the
  // same compiled checkpoint.
  std::string Mat = path("materialised.vindex");
  E = copyVindex(KeptView, Mat, PatchMode::Materialise);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
  auto MV = Vindex::open(Mat);
  ASSERT_TRUE(bool(MV)) << toString(MV.takeError());
  ASSERT_OK((*MV)->verify(2));
  EXPECT_TRUE((*MV)->manifest().Patches.empty());
  EXPECT_FALSE(sys::fs::exists(Mat + "/patches"));
  EXPECT_EQ((*MV)->manifest().Layers[kLayer].Features, F + 1);
  EXPECT_EQ((*MV)->manifest().Layers[0].Features, F);
  EXPECT_EQ((*MV)->find(TensorRole::FFNDown, kLayer)->Dims, (Shape{F + 1, D}));
  auto MatM = Model::load(**MV);
  ASSERT_TRUE(bool(MatM)) << toString(MatM.takeError());
  EXPECT_EQ(logits(**MatM), MemL);
  std::string ST2 = path("compiled-from-materialised");
  E = compileSafetensors(**MV, ST2, 1);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
  for (StringRef Name : {"model.safetensors", "config.json"})
    EXPECT_EQ(readAll(ST2 + "/" + Name.str()), readAll(ST + "/" + Name.str()))
        << Name.str();
  std::string G2 = path("m2.gguf");
  E = compileGGUF(**MV, G2, GGUFOutputType::Auto, 1);
  ASSERT_FALSE(bool(E)) << toString(std::move(E));
  EXPECT_EQ(readAll(G2), readAll(GPath));
}

TEST_P(Overlay, TamperedPatchIsRefusedByName) {
  TensorView View(*BaseV);
  ASSERT_OK(View.push(record(View)));
  std::string Kept = path("kept.vindex");
  ASSERT_OK(copyVindex(View, Kept, PatchMode::Keep));
  {
    auto V = Vindex::open(Kept);
    ASSERT_TRUE(bool(V)) << toString(V.takeError());
  }
  std::string File = Kept + "/patches/0001.vpatch";
  std::vector<uint8_t> Bytes = readAll(File);
  ASSERT_FALSE(Bytes.empty());
  Bytes[Bytes.size() / 2] ^= 1;
  writeAll(File, Bytes);
  auto V = Vindex::open(Kept);
  ASSERT_FALSE(bool(V));
  std::string Msg = toString(V.takeError());
  EXPECT_NE(Msg.find("patches/0001.vpatch"), std::string::npos) << Msg;
  EXPECT_NE(Msg.find("checksum mismatch"), std::string::npos) << Msg;

  Bytes[Bytes.size() / 2] ^= 1; // restored
  writeAll(File, Bytes);

  // A manifest whose record disagrees with the file, or that points out of
  // patches/, is refused too.
  std::string ManifestPath = Kept + "/manifest.vfb";
  std::vector<uint8_t> Original = readAll(ManifestPath);
  auto Rewrite = [&](function_ref<void(PatchRecord &)> Edit) {
    Expected<Manifest> M = parseManifest(Original, "m");
    ASSERT_TRUE(bool(M)) << toString(M.takeError());
    Edit(M->Patches[0]);
    writeAll(ManifestPath, arrayRefFromStringRef(serializeManifest(*M)));
  };
  auto OpenError = [&] {
    auto V = Vindex::open(Kept);
    return V ? std::string() : toString(V.takeError());
  };
  Rewrite([](PatchRecord &R) { R.Statement = "something else"; });
  Msg = OpenError();
  EXPECT_NE(Msg.find("patches/0001.vpatch: does not match its record"),
            std::string::npos)
      << Msg;
  Rewrite([](PatchRecord &R) { R.Tensors[0].AppendedRows = 2; });
  Msg = OpenError();
  EXPECT_NE(Msg.find("does not match its record"), std::string::npos) << Msg;
  Rewrite([](PatchRecord &R) { R.File = "../x.vpatch"; });
  Msg = OpenError();
  EXPECT_NE(Msg.find("is not in patches/"), std::string::npos) << Msg;
  writeAll(ManifestPath, Original);
  EXPECT_EQ(OpenError(), "");
}

// Persisted patches stack under new ones across copies, and materialising
// a stack equals the stack.
TEST_P(Overlay, UntiedOutputMatrix) {
  // A model whose LM head is its embedding gets an output matrix of its
  // own: an output row then changes without changing the token's input
  // embedding. The reference is the source checkpoint given an
  // lm_head.weight by hand (the embedding with that row replaced) and
  // tie_word_embeddings false, decomposed.
  TensorView View(*BaseV);
  PatchBuilder B(View, {"untie", "INSERT ...", ""});
  if (View.find(TensorRole::LMHead)) {
    EXPECT_FAILS(B.untieOutput().takeError()); // tiny-llama has its own
    EXPECT_TRUE(B.empty());
    return;
  }
  ASSERT_TRUE(View.config().TiedEmbeddings);
  const TensorRecord *Emb = View.find(TensorRole::Embedding);
  ASSERT_NE(Emb, nullptr);
  constexpr uint64_t kEmbRow = 7, kHeadRow = 9;
  std::vector<float> EmbRow = pattern(D, 5, 0.5f), HeadRow = pattern(D, 6, 2);
  // An embedding row patched before the untie is part of the copy.
  {
    PatchBuilder First(View);
    ASSERT_OK(First.setRow(Emb->Name, kEmbRow, EmbRow));
    ASSERT_OK(View.push(First.finish()));
  }
  auto M = Model::load(View);
  ASSERT_TRUE(bool(M)) << toString(M.takeError());
  std::vector<float> Tied = logits(**M);
  Expected<std::string> Head = B.untieOutput();
  ASSERT_TRUE(bool(Head)) << toString(Head.takeError());
  EXPECT_EQ(*Head, "lm_head.weight");
  EXPECT_FAILS(B.untieOutput().takeError()); // once
  ASSERT_OK(B.setRow(*Head, kHeadRow, HeadRow));
  ASSERT_OK(View.push(B.finish()));
  EXPECT_TRUE(View.untied());
  EXPECT_FALSE(View.config().TiedEmbeddings);
  const TensorRecord *H = View.find(TensorRole::LMHead);
  ASSERT_NE(H, nullptr);
  EXPECT_EQ(View.find(*Head), H);
  std::vector<float> Row, Want;
  ASSERT_OK(View.readRow(*H, kEmbRow, Row));
  EXPECT_EQ(Row, EmbRow);
  ASSERT_OK(View.readRow(*H, kHeadRow, Row));
  EXPECT_EQ(Row, HeadRow);
  ASSERT_OK(View.readRow(*Emb, kHeadRow, Row));
  ASSERT_OK(TensorView(*BaseV).readRow(*Emb, kHeadRow, Want));
  EXPECT_EQ(Row, Want); // the input embedding is unchanged

  // Only token kHeadRow's logit moves.
  ASSERT_OK((*M)->reload());
  std::vector<float> Untied = logits(**M);
  ASSERT_EQ(Untied.size(), Tied.size());
  for (size_t T = 0; T < Tied.size(); ++T)
    if (T == kHeadRow)
      EXPECT_NE(Untied[T], Tied[T]);
    else
      ASSERT_EQ(Untied[T], Tied[T]) << T;

  // The hand-made reference checkpoint.
  std::string Ref = path("untied-reference");
  ASSERT_FALSE(sys::fs::create_directories(Ref));
  std::string Src = source();
  for (StringRef Aux : {"tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "generation_config.json"})
    if (sys::fs::exists(Src + "/" + Aux.str()))
      writeAll(Ref + "/" + Aux.str(), readAll(Src + "/" + Aux.str()));
  {
    auto Cfg = MemoryBuffer::getFile(Src + "/config.json");
    Expected<json::Value> J = json::parse((*Cfg)->getBuffer());
    ASSERT_TRUE(bool(J));
    (*J->getAsObject())["tie_word_embeddings"] = false;
    writeAll(Ref + "/config.json",
             arrayRefFromStringRef(formatv("{0:2}", *J).str()));
    auto ST = SafetensorsFile::open(Src + "/model.safetensors");
    ASSERT_TRUE(bool(ST));
    std::vector<SafetensorsWriter::Tensor> List;
    std::vector<std::vector<uint8_t>> Data;
    for (const SafetensorsEntry &E : (*ST)->entries()) {
      ArrayRef<uint8_t> Bytes = (*ST)->data(E);
      List.push_back({E.Name, E.Type, E.Dims});
      Data.emplace_back(Bytes.begin(), Bytes.end());
      if (E.Name != Emb->Name)
        continue;
      ASSERT_EQ(E.Type, DType::BF16);
      std::vector<uint8_t> R = bf16Bytes(EmbRow);
      std::memcpy(Data.back().data() + kEmbRow * D * 2, R.data(), D * 2);
      List.push_back({"lm_head.weight", E.Type, E.Dims});
      Data.push_back(Data.back());
      R = bf16Bytes(HeadRow);
      std::memcpy(Data.back().data() + kHeadRow * D * 2, R.data(), D * 2);
    }
    SafetensorsWriter W(List, (*ST)->metadata());
    std::vector<uint8_t> File(W.header().begin(), W.header().end());
    for (auto &Bytes : Data)
      File.insert(File.end(), Bytes.begin(), Bytes.end());
    writeAll(Ref + "/model.safetensors", File);
  }
  auto Decomposed = [&](const std::string &Dir) -> std::vector<float> {
    DecomposeOptions Opts;
    Opts.Input = Dir;
    Opts.Output = Dir + ".vindex";
    std::vector<std::string> Inputs;
    Error E = decompose(Opts, Inputs);
    EXPECT_FALSE(bool(E)) << toString(std::move(E));
    auto V = Vindex::open(Opts.Output);
    EXPECT_TRUE(bool(V)) << toString(V.takeError());
    if (!V)
      return {};
    EXPECT_FALSE((*V)->config().TiedEmbeddings);
    auto RM = Model::load(**V);
    EXPECT_TRUE(bool(RM)) << toString(RM.takeError());
    return RM ? logits(**RM) : std::vector<float>{};
  };
  EXPECT_LT(maxDiff(Decomposed(Ref), Untied), 1e-5f);

  // Kept (-o), reopened: the created tensor comes back from the patch.
  std::string Kept = path("untied-kept.vindex");
  ASSERT_OK(copyVindex(View, Kept, PatchMode::Keep));
  auto KV = Vindex::open(Kept);
  ASSERT_TRUE(bool(KV)) << toString(KV.takeError());
  ASSERT_OK((*KV)->verify(2));
  EXPECT_EQ((*KV)->manifest().Patches[1].Tensors.front().CopyOf, Emb->Name);
  TensorView KeptView(**KV);
  EXPECT_TRUE(KeptView.untied());
  auto KM = Model::load(KeptView);
  ASSERT_TRUE(bool(KM)) << toString(KM.takeError());
  EXPECT_EQ(logits(**KM), Untied);

  // Compiled to safetensors (decomposed again) and materialised.
  std::string ST = path("untied-compiled");
  ASSERT_OK(compileSafetensors(KeptView, ST, 2));
  EXPECT_EQ(Decomposed(ST), Untied);
  std::string Mat = path("untied-mat.vindex");
  ASSERT_OK(copyVindex(KeptView, Mat, PatchMode::Materialise));
  auto MV = Vindex::open(Mat);
  ASSERT_TRUE(bool(MV)) << toString(MV.takeError());
  ASSERT_OK((*MV)->verify(2));
  EXPECT_FALSE((*MV)->config().TiedEmbeddings);
  ASSERT_NE((*MV)->find("lm_head.weight"), nullptr);
  auto MM = Model::load(**MV);
  ASSERT_TRUE(bool(MM)) << toString(MM.takeError());
  EXPECT_EQ(logits(**MM), Untied);

  // GGUF: output.weight is the untied matrix.
  std::string GPath = path("untied.gguf");
  ASSERT_OK(compileGGUF(KeptView, GPath, GGUFOutputType::Auto, 2));
  auto G = GGUFFile::open(GPath);
  ASSERT_TRUE(bool(G)) << toString(G.takeError());
  const GGUFTensorInfo *Out = (*G)->findTensor("output.weight");
  ASSERT_NE(Out, nullptr);
  EXPECT_TRUE((*G)->data(*Out).slice(kHeadRow * D * 2, D * 2) ==
              ArrayRef(bf16Bytes(HeadRow)));
}

TEST_P(Overlay, PatchesStackAcrossCopies) {
  TensorView View(*BaseV);
  ASSERT_OK(View.push(record(View)));
  std::string One = path("one.vindex"), Two = path("two.vindex"),
              Mat = path("mat.vindex");
  ASSERT_OK(copyVindex(View, One, PatchMode::Keep));
  auto V1 = Vindex::open(One);
  ASSERT_TRUE(bool(V1)) << toString(V1.takeError());
  TensorView View1(**V1);
  PatchBuilder B(View1, {"second", "DELETE ...", ""});
  ASSERT_OK(B.removeFeature(kLayer, 0));
  Expected<uint64_t> Slot = B.appendFeature(kLayer, NewUp, NewGate, NewDown);
  ASSERT_TRUE(bool(Slot)) << toString(Slot.takeError());
  EXPECT_EQ(*Slot, F + 1);
  ASSERT_OK(View1.push(B.finish()));
  ASSERT_OK(copyVindex(View1, Two, PatchMode::Keep));
  auto V2 = Vindex::open(Two);
  ASSERT_TRUE(bool(V2)) << toString(V2.takeError());
  ASSERT_EQ((*V2)->manifest().Patches.size(), 2u);
  EXPECT_EQ((*V2)->manifest().Patches[1].File, "patches/0002.vpatch");
  EXPECT_EQ((*V2)->manifest().Patches[1].Name, "second");
  TensorView View2(**V2);
  EXPECT_EQ(View2.ffnWidth(kLayer), F + 2);
  auto M2 = Model::load(View2);
  ASSERT_TRUE(bool(M2)) << toString(M2.takeError());
  auto M1 = Model::load(View1);
  ASSERT_TRUE(bool(M1)) << toString(M1.takeError());
  std::vector<float> L2 = logits(**M2);
  EXPECT_EQ(L2, logits(**M1));
  ASSERT_OK(copyVindex(View2, Mat, PatchMode::Materialise));
  auto VM = Vindex::open(Mat);
  ASSERT_TRUE(bool(VM)) << toString(VM.takeError());
  EXPECT_TRUE((*VM)->patches().empty());
  auto MM = Model::load(**VM);
  ASSERT_TRUE(bool(MM)) << toString(MM.takeError());
  EXPECT_EQ(logits(**MM), L2);
  // The removed feature reads as zeros in every matrix.
  std::vector<float> Row;
  TensorView MatView(**VM);
  for (TensorRole R :
       {TensorRole::FFNGate, TensorRole::FFNUp, TensorRole::FFNDown}) {
    ASSERT_OK(MatView.readRow(*MatView.find(R, kLayer), 0, Row));
    EXPECT_TRUE(llvm::all_of(Row, [](float X) { return X == 0.0f; }));
  }
}

TEST_P(Overlay, ModelReloadsWhenTheViewChanges) {
  TensorView View(*BaseV);
  auto M = Model::load(View);
  ASSERT_TRUE(bool(M)) << toString(M.takeError());
  std::vector<float> Before = logits(**M);
  ArrayRef<float> Scale = (*M)->layer(kLayer).walkScale();
  EXPECT_EQ(Scale.size(), F);
  const void *Layer0Gate = (*M)->layer(0).Gate.Data;
  const float *Layer0Tr = (*M)->layer(0).Gate.Transposed;
  const void *PatchedGate = (*M)->layer(kLayer).Gate.Data;
  ASSERT_OK(View.push(record(View)));
  EXPECT_TRUE((*M)->stale());
  ASSERT_OK((*M)->reload());
  EXPECT_FALSE((*M)->stale());
  // Unchanged matrices keep their copies; the patched ones are rebuilt.
  EXPECT_EQ((*M)->layer(0).Gate.Data, Layer0Gate);
  EXPECT_EQ((*M)->layer(0).Gate.Transposed, Layer0Tr);
  EXPECT_NE((*M)->layer(kLayer).Gate.Data, PatchedGate);
  EXPECT_EQ((*M)->layer(kLayer).Gate.Rows, F + 1);
  EXPECT_EQ((*M)->layer(kLayer).walkScale().size(), F + 1);
  EXPECT_GT(maxDiff(Before, logits(**M)), 1e-2f);

  // Removing what the patch did restores the base model exactly: the
  // changed row written back, the new slot zeroed.
  PatchBuilder Undo(View);
  const TensorRecord *Gate = View.find(TensorRole::FFNGate, kLayer);
  std::vector<float> Orig;
  TensorView Plain(*BaseV);
  ASSERT_OK(Plain.readRow(*Gate, kChangedRow, Orig));
  ASSERT_OK(Undo.setRow(Gate->Name, kChangedRow, Orig));
  ASSERT_OK(Undo.removeFeature(kLayer, F));
  ASSERT_OK(View.push(Undo.finish()));
  ASSERT_OK((*M)->reload());
  EXPECT_LT(maxDiff(Before, logits(**M)), 1e-5f);
}

TEST_P(Overlay, BuilderChecksItsArguments) {
  TensorView View(*BaseV);
  PatchBuilder B(View);
  std::vector<float> V(D, 1.0f), Short(D - 1, 1.0f);
  EXPECT_FAILS(B.setRow("no.such.tensor", 0, V));
  EXPECT_FAILS(B.setRow(layerName(0, "up_proj"), F, V));
  EXPECT_FAILS(B.setRow(layerName(0, "up_proj"), 0, Short));
  EXPECT_FAILS(B.setFeature(0, F + 1, V, V, V));
  EXPECT_FAILS(B.setFeature(0, 0, V, Short, V));
  EXPECT_FAILS(B.appendFeature(99, V, V, V).takeError());
  EXPECT_FAILS(B.removeFeature(0, F));
  EXPECT_TRUE(B.empty());
  // Appending then replacing the new slot, in one builder.
  ASSERT_OK(B.setFeature(2, F, V, V, V));
  EXPECT_EQ(B.ffnWidth(2), F + 1);
  ASSERT_OK(B.setFeature(2, F, V, V, V));
  EXPECT_EQ(B.ffnWidth(2), F + 1);
  ASSERT_OK(B.removeFeature(2, F));
  auto P = B.finish();
  ASSERT_OK(View.push(P));
  std::vector<float> Row;
  ASSERT_OK(View.readRow(*View.find(TensorRole::FFNUp, 2), F, Row));
  EXPECT_TRUE(llvm::all_of(Row, [](float X) { return X == 0.0f; }));
  // A patch built against another state does not stack.
  EXPECT_FAILS(View.push(P));
}

TEST_P(Overlay, ApplierWritesVindexOps) {
  mlir::MLIRContext Ctx;
  Ctx.loadDialect<vx::VindexDialect>();
  std::string Vec = "dense<0.5> : tensor<" + std::to_string(D) + "xf32>";
  std::string Src =
      "vindex.install_feature {layer = 1 : i64, slot = " + std::to_string(F) +
      " : i64, gate = " + Vec + ", up = " + Vec + ", down = " + Vec +
      "}\n"
      "vindex.remove_feature {layer = 0 : i64, feature = 3 : i64}\n"
      "vindex.update_weights \"model.norm.weight\" {row_begin = 0 : i64, "
      "row_end = 1 : i64, values = dense<2.0> : tensor<1x" +
      std::to_string(D) +
      "xf32>}\n"
      "vindex.install_feature {layer = 1 : i64, slot = " +
      std::to_string(F + 5) + " : i64, gate = " + Vec + ", up = " + Vec +
      ", down = " + Vec + "}\n";
  mlir::OwningOpRef<mlir::ModuleOp> M =
      mlir::parseSourceString<mlir::ModuleOp>(Src, &Ctx, "edits.mlir");
  ASSERT_TRUE(bool(M));
  std::vector<mlir::Operation *> Ops;
  for (mlir::Operation &Op : *M->getBody())
    Ops.push_back(&Op);
  ASSERT_EQ(Ops.size(), 4u);
  TensorView View(*BaseV);
  PatchBuilder B(View);
  ASSERT_OK(applyVindexOps(ArrayRef(Ops).take_front(3), B));
  EXPECT_EQ(B.ffnWidth(1), F + 1);
  Error E = applyVindexOps(ArrayRef(Ops).drop_front(3), B);
  ASSERT_TRUE(bool(E));
  std::string Msg = toString(std::move(E));
  EXPECT_NE(Msg.find("edits.mlir:4:1: 'vindex.install_feature' op slot"),
            std::string::npos)
      << Msg;
  ASSERT_OK(View.push(B.finish()));
  std::vector<float> Row;
  ASSERT_OK(View.readRow(*View.find("model.norm.weight"), 0, Row));
  EXPECT_TRUE(llvm::all_of(Row, [](float X) { return X == 2.0f; }));
  ASSERT_OK(View.readRow(*View.find(TensorRole::FFNDown, 0), 3, Row));
  EXPECT_TRUE(llvm::all_of(Row, [](float X) { return X == 0.0f; }));
}

INSTANTIATE_TEST_SUITE_P(Models, Overlay,
                         ::testing::Combine(::testing::Values("tiny-llama",
                                                              "tiny-gemma3"),
                                            ::testing::Bool()),
                         [](const auto &Info) {
                           std::string N = std::get<0>(Info.param);
                           std::replace(N.begin(), N.end(), '-', '_');
                           return N + (std::get<1>(Info.param) ? "_zstd" : "");
                         });

// config.json written from a ModelConfig reads back as that config.
TEST(HFConfigWriter, RoundTrips) {
  for (StringRef Name : {"tiny-llama", "tiny-gemma3"}) {
    auto Buf =
        MemoryBuffer::getFile(fixture("models/" + Name + "/config.json"));
    ASSERT_TRUE(bool(Buf));
    Expected<ModelConfig> C = parseHFConfig((*Buf)->getBuffer(), Name);
    ASSERT_TRUE(bool(C)) << toString(C.takeError());
    for (StringRef Original : {(*Buf)->getBuffer(), StringRef()}) {
      Expected<std::string> Text = writeHFConfig(*C, Original, Name);
      ASSERT_TRUE(bool(Text)) << toString(Text.takeError());
      Expected<ModelConfig> Back = parseHFConfig(*Text, "written");
      ASSERT_TRUE(bool(Back)) << toString(Back.takeError()) << *Text;
      Expected<std::string> Again = writeHFConfig(*Back, *Text, Name);
      ASSERT_TRUE(bool(Again));
      EXPECT_EQ(*Again, *Text) << Name.str();
      EXPECT_EQ(Back->IntermediateSize, C->IntermediateSize);
      EXPECT_EQ(Back->LayerKinds, C->LayerKinds);
      EXPECT_EQ(Back->QueryScale, C->QueryScale);
      EXPECT_EQ(Back->RopeTheta, C->RopeTheta);
      EXPECT_EQ(Back->SlidingWindow, C->SlidingWindow);
      EXPECT_EQ(Back->EosIds, C->EosIds);
      EXPECT_EQ(Back->TiedEmbeddings, C->TiedEmbeddings);
      EXPECT_EQ(Back->NumKVHeads, C->NumKVHeads);
      EXPECT_EQ(Back->HeadDim, C->HeadDim);
    }
    // Keys the config does not describe are kept.
    Expected<std::string> Text = writeHFConfig(*C, (*Buf)->getBuffer(), Name);
    ASSERT_TRUE(bool(Text));
    EXPECT_NE(Text->find("\"transformers_version\""), std::string::npos);
  }
}

// Patch records round-trip; a manifest with them is version 2, one without
// stays version 1 (what earlier builds read).
TEST(PatchRecords, RoundTripAndVersion) {
  Manifest M;
  M.Config.Architecture = "llama";
  M.Config.NumLayers = 1;
  M.Config.LayerKinds = {LayerKind::Full};
  Expected<Manifest> V1 =
      parseManifest(arrayRefFromStringRef(serializeManifest(M)), "m");
  ASSERT_TRUE(bool(V1)) << toString(V1.takeError());
  EXPECT_EQ(V1->FormatVersion, kVindexFormatVersion);
  PatchRecord P;
  P.Name = "p";
  P.Description = "d";
  P.File = "patches/0001.vpatch";
  P.Length = 1234;
  P.Checksum = 0xfeedfacecafebeefull;
  P.Statement = "INSERT INTO edges VALUES (...)";
  P.ScriptSha256 = std::string(64, 'c');
  P.Tensors = {{"model.layers.0.mlp.gate_proj.weight", 0, 384, {3, 9}, 1},
               {"model.norm.weight", -1, 1, {0}, 0}};
  M.Patches = {P};
  std::string Bytes = serializeManifest(M);
  Expected<Manifest> V2 = parseManifest(arrayRefFromStringRef(Bytes), "m");
  ASSERT_TRUE(bool(V2)) << toString(V2.takeError());
  EXPECT_EQ(V2->FormatVersion, kVindexFormatVersionPatches);
  EXPECT_EQ(serializeManifest(*V2), Bytes);
  ASSERT_EQ(V2->Patches.size(), 1u);
  const PatchRecord &B = V2->Patches[0];
  EXPECT_EQ(B.Name, P.Name);
  EXPECT_EQ(B.Description, P.Description);
  EXPECT_EQ(B.File, P.File);
  EXPECT_EQ(B.Length, P.Length);
  EXPECT_EQ(B.Checksum, P.Checksum);
  EXPECT_EQ(B.Statement, P.Statement);
  EXPECT_EQ(B.ScriptSha256, P.ScriptSha256);
  ASSERT_EQ(B.Tensors.size(), 2u);
  EXPECT_EQ(B.Tensors[0].Name, P.Tensors[0].Name);
  EXPECT_EQ(B.Tensors[0].Layer, 0);
  EXPECT_EQ(B.Tensors[0].BaseRows, 384u);
  EXPECT_EQ(B.Tensors[0].Rows, (std::vector<uint64_t>{3, 9}));
  EXPECT_EQ(B.Tensors[0].AppendedRows, 1u);
  EXPECT_EQ(B.Tensors[1].Layer, -1);
}
