//===- TensorRole.cpp -----------------------------------------------------===//
#include "vindex/Formats/TensorRole.h"

#include "llvm/ADT/StringSwitch.h"

#include <cstdint>

using namespace llvm;

namespace vindex {

TensorClass classifyTensor(StringRef Name) {
  if (Name == "model.embed_tokens.weight")
    return {TensorRole::Embedding, -1};
  if (Name == "lm_head.weight")
    return {TensorRole::LMHead, -1};
  if (Name == "model.norm.weight")
    return {TensorRole::FinalNorm, -1};
  StringRef Rest = Name;
  unsigned long long Index;
  if (!Rest.consume_front("model.layers.") || Rest.consumeInteger(10, Index) ||
      !Rest.consume_front("."))
    return {};
  // An absurd index stays absurd (and is rejected against the config)
  // rather than wrapping into a plausible or negative one.
  int Layer = Index > uint64_t(INT32_MAX) ? INT32_MAX : int(Index);
  TensorRole Role =
      StringSwitch<TensorRole>(Rest)
          .Case("self_attn.q_proj.weight", TensorRole::AttnQ)
          .Case("self_attn.k_proj.weight", TensorRole::AttnK)
          .Case("self_attn.v_proj.weight", TensorRole::AttnV)
          .Case("self_attn.o_proj.weight", TensorRole::AttnO)
          .Case("self_attn.q_proj.bias", TensorRole::AttnQBias)
          .Case("self_attn.k_proj.bias", TensorRole::AttnKBias)
          .Case("self_attn.v_proj.bias", TensorRole::AttnVBias)
          .Case("self_attn.q_norm.weight", TensorRole::AttnQNorm)
          .Case("self_attn.k_norm.weight", TensorRole::AttnKNorm)
          .Case("input_layernorm.weight", TensorRole::InputNorm)
          .Case("post_attention_layernorm.weight", TensorRole::PostAttnNorm)
          .Case("pre_feedforward_layernorm.weight", TensorRole::PreFFNNorm)
          .Case("post_feedforward_layernorm.weight", TensorRole::PostFFNNorm)
          .Case("mlp.gate_proj.weight", TensorRole::FFNGate)
          .Case("mlp.up_proj.weight", TensorRole::FFNUp)
          .Case("mlp.down_proj.weight", TensorRole::FFNDown)
          .Default(TensorRole::Other);
  return {Role, Layer};
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
