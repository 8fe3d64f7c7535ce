//===- Checks.h - Tensor records against the model config -------*- C++ -*-===//
//
// What every pass assumes of a model's tensors, checked once where the
// records are made (decompose) and again where they are read back (opening
// a V-index): a manifest is input like any other.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_CHECKS_H
#define VINDEX_STORE_CHECKS_H

#include "vindex/Store/Manifest.h"

#include "llvm/Support/Error.h"

namespace vindex {

/// Checks the tensors every pass relies on against the config: the shapes
/// of the attention, FFN, norm, embedding and LM-head tensors, that every
/// layer has its projections and input norm, and that no tensor names a
/// layer past the last. Records hold V-index shapes (down transposed).
/// Cfg has passed checkModelConfig. File names the source in messages.
/// Layers, when given, is the manifest's per-layer table: a layer's FFN
/// width is then its feature count (a materialised patch may have widened
/// some layers; intermediate_size is the widest), which must be positive
/// and at most intermediate_size.
llvm::Error checkModelTensors(const ModelConfig &Cfg,
                              llvm::ArrayRef<TensorRecord> Records,
                              llvm::StringRef File,
                              llvm::ArrayRef<LayerRecord> Layers = {});

} // namespace vindex

#endif // VINDEX_STORE_CHECKS_H
