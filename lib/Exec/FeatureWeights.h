//===- FeatureWeights.h - The matrices the queries read --------*- C++ -*-===//
//
// Private to lib/Exec: SELECT FROM features and SHOW LAYERS read a
// feature's gate/up/down rows and the vocabulary matrices (embedding, LM
// head), nothing else of the model. They are bound from the engine when it
// is loaded, else straight from the V-index's view (the engine need not be
// able to run it: an unsupported tensor or architecture does not matter).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_EXEC_FEATUREWEIGHTS_H
#define VINDEX_LIB_EXEC_FEATUREWEIGHTS_H

#include "vindex/Formats/ModelConfig.h"
#include "vindex/Model/Kernels.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <vector>

namespace vindex {
class Model;
class TensorView;
} // namespace vindex

namespace vindex::lql {

class FeatureWeights {
public:
  struct Layer {
    WeightMatrix Gate, Up, Down; ///< feature-major [F, d]
    bool Sliding = false;
  };

  /// Views of M's matrices (M must outlive the result).
  static std::unique_ptr<FeatureWeights> fromModel(const Model &M);
  /// The matrices the view shows, in their stored dtype (f32 and bf16 in
  /// place when unpatched and uncompressed; f16 widened to f32), checked
  /// against the config's shapes and the view's per-layer FFN widths.
  static llvm::Expected<std::unique_ptr<FeatureWeights>>
  fromView(const TensorView &V);

  const ModelConfig &config() const { return Config; }
  const WeightMatrix &embedding() const { return Embedding; }
  const WeightMatrix &lmHead() const { return LMHead; }
  const Layer &layer(size_t L) const { return Layers[L]; }
  size_t numLayers() const { return Layers.size(); }

private:
  ModelConfig Config;
  WeightMatrix Embedding, LMHead;
  std::vector<Layer> Layers;
  std::vector<std::vector<uint8_t>> Owned;
};

} // namespace vindex::lql

#endif // VINDEX_LIB_EXEC_FEATUREWEIGHTS_H
