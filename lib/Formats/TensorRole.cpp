//===- TensorRole.cpp - Roles from HFTensorNames.def ----------------------===//
#include "vindex/Formats/TensorRole.h"

#include "llvm/ADT/Twine.h"

#include <cstdint>

using namespace llvm;

namespace vindex {

namespace {

constexpr TensorNameRow GlobalRows[] = {
#define HF_GLOBAL(Role, Name) {TensorRole::Role, Name},
#include "vindex/Formats/HFTensorNames.def"
};

constexpr TensorNameRow LayerRows[] = {
#define HF_LAYER(Role, Suffix) {TensorRole::Role, Suffix},
#include "vindex/Formats/HFTensorNames.def"
};

constexpr StringLiteral LayerPrefix = "model.layers.";

} // namespace

TensorClass classifyTensor(StringRef Name) {
  for (const TensorNameRow &R : GlobalRows)
    if (R.Name == Name)
      return {R.Role, -1};
  StringRef Rest = Name;
  unsigned long long Index;
  if (!Rest.consume_front(LayerPrefix) || Rest.consumeInteger(10, Index) ||
      !Rest.consume_front("."))
    return {};
  // An absurd index stays absurd (and is rejected against the config)
  // rather than wrapping into a plausible or negative one.
  int Layer = Index > uint64_t(INT32_MAX) ? INT32_MAX : int(Index);
  for (const TensorNameRow &R : LayerRows)
    if (R.Name == Rest)
      return {R.Role, Layer};
  return {TensorRole::Other, Layer};
}

std::string hfTensorName(TensorRole Role, int Layer) {
  for (const TensorNameRow &R : GlobalRows)
    if (R.Role == Role)
      return R.Name.str();
  if (Layer >= 0)
    for (const TensorNameRow &R : LayerRows)
      if (R.Role == Role)
        return (LayerPrefix + Twine(Layer) + "." + R.Name).str();
  return "";
}
StringRef roleName(TensorRole R) {
  switch (R) {
  case TensorRole::Other:
    return "other";
  case TensorRole::Embedding:
    return "embedding";
  case TensorRole::LMHead:
    return "lm_head";
  case TensorRole::FinalNorm:
    return "final_norm";
  case TensorRole::AttnQ:
    return "attn_q";
  case TensorRole::AttnK:
    return "attn_k";
  case TensorRole::AttnV:
    return "attn_v";
  case TensorRole::AttnO:
    return "attn_o";
  case TensorRole::AttnQBias:
    return "attn_q_bias";
  case TensorRole::AttnKBias:
    return "attn_k_bias";
  case TensorRole::AttnVBias:
    return "attn_v_bias";
  case TensorRole::AttnQNorm:
    return "attn_q_norm";
  case TensorRole::AttnKNorm:
    return "attn_k_norm";
  case TensorRole::InputNorm:
    return "input_norm";
  case TensorRole::PostAttnNorm:
    return "post_attn_norm";
  case TensorRole::PreFFNNorm:
    return "pre_ffn_norm";
  case TensorRole::PostFFNNorm:
    return "post_ffn_norm";
  case TensorRole::FFNGate:
    return "ffn_gate";
  case TensorRole::FFNUp:
    return "ffn_up";
  case TensorRole::FFNDown:
    return "ffn_down";
  }
  return "other";
}

} // namespace vindex
