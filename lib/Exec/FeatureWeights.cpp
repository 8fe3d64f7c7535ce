//===- FeatureWeights.cpp - The matrices the queries read ----------------===//
#include "FeatureWeights.h"

#include "vindex/Formats/DType.h"
#include "vindex/Formats/Safetensors.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"

#include <cstring>

using namespace llvm;

namespace vindex::lql {

std::unique_ptr<FeatureWeights> FeatureWeights::fromModel(const Model &M) {
  auto W = std::make_unique<FeatureWeights>();
  W->Config = M.config();
  W->Embedding = M.embedding();
  W->LMHead = M.lmHead();
  for (size_t L = 0; L < M.numLayers(); ++L) {
    const LayerWeights &LW = M.layer(L);
    W->Layers.push_back({LW.Gate, LW.Up, LW.Down, LW.Sliding});
  }
  return W;
}

namespace {

/// Binds tensors of one view as WeightMatrix views.
struct Binder {
  const TensorView &V;
  std::vector<std::vector<uint8_t>> &Owned;

  Expected<WeightMatrix> matrix(TensorRole Role, int Layer, size_t Rows,
                                size_t Cols) {
    StringRef Dir = V.base().directory();
    const TensorRecord *Base = V.find(Role, Layer);
    if (!Base) {
      if (Layer < 0)
        return makeError("{0}: the model has no {1} tensor", Dir,
                         roleName(Role));
      return makeError("{0}: layer {1} has no {2} tensor", Dir, Layer,
                       roleName(Role));
    }
    // The record as the view sees it (appended rows included).
    TensorRecord Rec = V.record(*Base);
    const TensorRecord *T = &Rec;
    if (numElements(T->Dims).value_or(0) != Rows * Cols)
      return makeError("{0}: tensor '{1}' has shape {2}, expected [{3}, {4}]",
                       Dir, T->Name, shapeString(T->Dims), Rows, Cols);
    if (T->Type != DType::F32 && T->Type != DType::BF16 &&
        T->Type != DType::F16)
      return makeError("{0}: tensor '{1}' is not f32, bf16 or f16", Dir,
                       T->Name);
    std::vector<uint8_t> Storage;
    Expected<ArrayRef<uint8_t>> Bytes = V.data(*Base, Storage);
    if (!Bytes)
      return Bytes.takeError();
    if (Bytes->size() != Rows * Cols * dtypeSize(T->Type))
      return makeError("{0}: tensor '{1}' holds {2} bytes, expected {3}", Dir,
                       T->Name, Bytes->size(),
                       Rows * Cols * dtypeSize(T->Type));
    WeightMatrix W;
    W.Rows = Rows;
    W.Cols = Cols;
    W.Type = T->Type;
    if (T->Type == DType::F16) {
      // The kernels take f32 and bf16: widen (exactly) to f32.
      std::vector<uint8_t> F(Rows * Cols * 4);
      for (size_t I = 0; I < Rows * Cols; ++I) {
        uint16_t H;
        std::memcpy(&H, Bytes->data() + 2 * I, 2);
        float X = f16ToFloat(H);
        std::memcpy(F.data() + 4 * I, &X, 4);
      }
      Owned.push_back(std::move(F));
      W.Type = DType::F32;
      W.Data = Owned.back().data();
    } else if (!Storage.empty()) {
      Owned.push_back(std::move(Storage));
      W.Data = Owned.back().data();
    } else {
      W.Data = Bytes->data();
    }
    return W;
  }
};

} // namespace

Expected<std::unique_ptr<FeatureWeights>>
FeatureWeights::fromView(const TensorView &V) {
  auto W = std::make_unique<FeatureWeights>();
  W->Config = V.config();
  const ModelConfig &C = W->Config;
  Binder B{V, W->Owned};
  size_t D = C.HiddenSize;
  Expected<WeightMatrix> Emb =
      B.matrix(TensorRole::Embedding, -1, C.VocabSize, D);
  if (!Emb)
    return Emb.takeError();
  W->Embedding = *Emb;
  if (C.TiedEmbeddings && !V.find(TensorRole::LMHead, -1)) {
    W->LMHead = W->Embedding;
  } else {
    Expected<WeightMatrix> Head =
        B.matrix(TensorRole::LMHead, -1, C.VocabSize, D);
    if (!Head)
      return Head.takeError();
    W->LMHead = *Head;
  }
  W->Layers.resize(C.NumLayers);
  for (size_t L = 0; L < C.NumLayers; ++L) {
    Layer &LW = W->Layers[L];
    size_t F = V.ffnWidth(unsigned(L)); // appended slots included
    for (auto [Role, Out] : {std::pair(TensorRole::FFNGate, &LW.Gate),
                             std::pair(TensorRole::FFNUp, &LW.Up),
                             std::pair(TensorRole::FFNDown, &LW.Down)}) {
      Expected<WeightMatrix> M = B.matrix(Role, int(L), F, D);
      if (!M)
        return M.takeError();
      *Out = *M;
    }
    LW.Sliding =
        L < C.LayerKinds.size() && C.LayerKinds[L] == LayerKind::Sliding;
  }
  return std::move(W);
}

} // namespace vindex::lql
