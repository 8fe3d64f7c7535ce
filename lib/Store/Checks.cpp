//===- Checks.cpp - Tensor records against the model config ---------------===//
#include "vindex/Store/Checks.h"

#include "vindex/Support/Error.h"

#include <set>

using namespace llvm;

namespace vindex {

/// Layer L's FFN width: its feature count in the manifest's layer table
/// when there is one, else the config's.
static Expected<uint64_t> ffnWidth(const ModelConfig &Cfg,
                                   ArrayRef<LayerRecord> Layers, uint64_t L,
                                   StringRef File) {
  if (Layers.empty())
    return Cfg.IntermediateSize;
  uint64_t F = Layers[L].Features;
  if (F == 0 || F > Cfg.IntermediateSize)
    return fileError(File,
                     "layer {0} has {1} features but the config's FFN width "
                     "(the widest layer's) is {2}",
                     L, F, Cfg.IntermediateSize);
  return F;
}

Error checkModelTensors(const ModelConfig &Cfg, ArrayRef<TensorRecord> Records,
                        StringRef File, ArrayRef<LayerRecord> Layers) {
  if (!Layers.empty() && Layers.size() != Cfg.NumLayers)
    return fileError(File, "the layer table has {0} layers but the config {1}",
                     Layers.size(), Cfg.NumLayers);
  uint64_t D = Cfg.HiddenSize, F = Cfg.IntermediateSize, HD = Cfg.HeadDim;
  uint64_t QDim = Cfg.NumHeads * HD, KVDim = Cfg.NumKVHeads * HD;
  // The tensors every layer needs, by role.
  const TensorRole Required[] = {TensorRole::AttnQ,     TensorRole::AttnK,
                                 TensorRole::AttnV,     TensorRole::AttnO,
                                 TensorRole::InputNorm, TensorRole::FFNGate,
                                 TensorRole::FFNUp,     TensorRole::FFNDown};
  std::vector<std::set<TensorRole>> Seen(Cfg.NumLayers);
  for (const TensorRecord &R : Records) {
    if (R.Layer >= 0 && uint64_t(R.Layer) >= Cfg.NumLayers)
      return fileError(File,
                       "tensor '{0}' is in layer {1} but the config "
                       "has {2} layers",
                       R.Name, R.Layer, Cfg.NumLayers);
    if (R.Layer >= 0)
      Seen[R.Layer].insert(R.Role);
    if (R.Layer >= 0 && (R.Role == TensorRole::FFNGate ||
                         R.Role == TensorRole::FFNUp ||
                         R.Role == TensorRole::FFNDown)) {
      Expected<uint64_t> Width = ffnWidth(Cfg, Layers, R.Layer, File);
      if (!Width)
        return Width.takeError();
      F = *Width;
    }
    Shape Want;
    switch (R.Role) {
    case TensorRole::AttnQ:
      Want = {QDim, D};
      break;
    case TensorRole::AttnK:
    case TensorRole::AttnV:
      Want = {KVDim, D};
      break;
    case TensorRole::AttnO:
      Want = {D, QDim};
      break;
    case TensorRole::FFNGate:
    case TensorRole::FFNUp:
      Want = {F, D};
      break;
    case TensorRole::FFNDown:
      Want = {D, F};
      break;
    case TensorRole::Embedding:
    case TensorRole::LMHead:
      Want = {Cfg.VocabSize, D};
      break;
    case TensorRole::InputNorm:
    case TensorRole::PostAttnNorm:
    case TensorRole::PreFFNNorm:
    case TensorRole::PostFFNNorm:
    case TensorRole::FinalNorm:
      Want = {D};
      break;
    case TensorRole::AttnQNorm:
    case TensorRole::AttnKNorm:
      Want = {HD};
      break;
    default:
      continue;
    }
    if (R.sourceDims() != Want)
      return fileError(File,
                       "tensor '{0}' has shape {1} but the config "
                       "implies {2}",
                       R.Name, shapeString(R.sourceDims()), shapeString(Want));
  }
  for (uint64_t L = 0; L < Cfg.NumLayers; ++L)
    for (TensorRole Role : Required)
      if (!Seen[L].count(Role))
        return fileError(File, "layer {0} has no {1} tensor", L,
                         roleName(Role));
  return Error::success();
}

} // namespace vindex
