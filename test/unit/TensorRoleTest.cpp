//===- TensorRoleTest.cpp - Hugging Face names both ways ------------------===//
#include "vindex/Formats/TensorRole.h"

#include "gtest/gtest.h"

using namespace vindex;

namespace {

// Names as transformers' Gemma 3 and Llama modules spell them.
TEST(TensorRole, HuggingFaceNamesBothWays) {
  EXPECT_EQ(hfTensorName(TensorRole::Embedding, -1),
            "model.embed_tokens.weight");
  EXPECT_EQ(hfTensorName(TensorRole::FFNDown, 3),
            "model.layers.3.mlp.down_proj.weight");
  EXPECT_EQ(hfTensorName(TensorRole::AttnKBias, 0),
            "model.layers.0.self_attn.k_proj.bias");
  EXPECT_EQ(hfTensorName(TensorRole::FFNDown, -1), "");
  EXPECT_EQ(hfTensorName(TensorRole::Other, 2), "");
  for (int R = int(TensorRole::Embedding); R <= int(TensorRole::FFNDown); ++R) {
    auto Role = TensorRole(R);
    bool Global = Role == TensorRole::Embedding || Role == TensorRole::LMHead ||
                  Role == TensorRole::FinalNorm;
    int Layer = Global ? -1 : 7;
    TensorClass C = classifyTensor(hfTensorName(Role, Layer));
    EXPECT_EQ(C.Role, Role) << roleName(Role).str();
    EXPECT_EQ(C.Layer, Layer) << roleName(Role).str();
  }
  TensorClass Other = classifyTensor("model.layers.4.mlp.bias");
  EXPECT_EQ(Other.Role, TensorRole::Other);
  EXPECT_EQ(Other.Layer, 4);
}

} // namespace
