//===- ArchitectureTest.cpp - Lists derived from Architectures.def --------===//
#include "vindex/Formats/Architecture.h"

#include "gtest/gtest.h"

using namespace vindex;
using namespace llvm;

namespace {

StringRef modelTypeOf(const ArchitectureInfo *A) {
  return A ? A->ModelType : "<none>";
}

// llama.cpp's converter writes Mistral as "llama" (MistralModel derives from
// LlamaModel) and Gemma 3 as "gemma3"; a GGUF reads back as the family
// whose facts it shows.
TEST(Architecture, GGUFNamesBothWays) {
  EXPECT_EQ(findArchitecture("mistral")->GGUFName, "llama");
  EXPECT_EQ(findArchitecture("gemma3_text")->GGUFName, "gemma3");
  EXPECT_EQ(modelTypeOf(findGGUFArchitecture("llama", false)), "llama");
  EXPECT_EQ(modelTypeOf(findGGUFArchitecture("llama", true)), "mistral");
  EXPECT_EQ(modelTypeOf(findGGUFArchitecture("qwen2", true)), "qwen2");
  EXPECT_EQ(modelTypeOf(findGGUFArchitecture("gemma3", true)), "gemma3_text");
  EXPECT_EQ(findGGUFArchitecture("falcon", false), nullptr);
  EXPECT_EQ(ggufArchitectureList(), "gemma3, llama, qwen2, qwen3");
}

TEST(Architecture, ModelTypesAndWrapper) {
  std::vector<StringRef> Types(supportedModelTypes().begin(),
                               supportedModelTypes().end());
  EXPECT_EQ(Types, (std::vector<StringRef>{"gemma3_text", "gemma3", "llama",
                                           "mistral", "qwen2", "qwen3"}));
  EXPECT_EQ(findArchitecture("gemma3"), nullptr); // a wrapper, not a model
  const ArchitectureWrapper *W = findArchitectureWrapper("gemma3");
  ASSERT_NE(W, nullptr);
  EXPECT_EQ(W->Text->ModelType, "gemma3_text");
  EXPECT_EQ(W->ConfigKey, "text_config");
  EXPECT_EQ(W->TensorPrefix, "language_model.");
  EXPECT_EQ(findArchitectureWrapper("llama"), nullptr);
}

} // namespace
