//===- TensorRole.h - What a checkpoint tensor is ---------------*- C++ -*-===//
//
// Roles and their Hugging Face names (HFTensorNames.def, the one list).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_TENSORROLE_H
#define VINDEX_FORMATS_TENSORROLE_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace vindex {

/// Values are part of the on-disk format (the manifest's TensorRole enum).
enum class TensorRole : uint8_t {
  Other = 0,
  Embedding,
  LMHead,
  FinalNorm,
  AttnQ,
  AttnK,
  AttnV,
  AttnO,
  AttnQBias,
  AttnKBias,
  AttnVBias,
  AttnQNorm,
  AttnKNorm,
  InputNorm,
  PostAttnNorm,
  PreFFNNorm,
  PostFFNNorm,
  FFNGate,
  FFNUp,
  FFNDown,
};

/// A row of a table of tensor names (HFTensorNames.def, and llama.cpp's).
struct TensorNameRow {
  TensorRole Role;
  llvm::StringLiteral Name;
};

struct TensorClass {
  TensorRole Role = TensorRole::Other;
  int Layer = -1; ///< -1 for tensors outside the decoder layers.
};

/// Classifies a Hugging Face tensor name of the text model
/// ("model.layers.3.mlp.down_proj.weight" -> FFNDown, layer 3).
TensorClass classifyTensor(llvm::StringRef Name);

/// The Hugging Face name of the tensor of a role (in Layer, for per-layer
/// roles), the inverse of classifyTensor; "" for none.
std::string hfTensorName(TensorRole Role, int Layer);

/// A short stable name ("ffn_down"), used in messages and docs.
llvm::StringRef roleName(TensorRole R);

/// Gate, up and down: the tensors stored feature-major.
inline bool isFFNRole(TensorRole R) {
  return R == TensorRole::FFNGate || R == TensorRole::FFNUp ||
         R == TensorRole::FFNDown;
}

} // namespace vindex

#endif // VINDEX_FORMATS_TENSORROLE_H
