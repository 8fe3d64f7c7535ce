//===- HFConfigTest.cpp ---------------------------------------------------===//
#include "vindex/Formats/ModelConfig.h"

#include "llvm/Support/MemoryBuffer.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace vindex;
using namespace llvm;

static ModelConfig parseFixture(StringRef Model) {
  std::string Path =
      (Twine(VINDEX_TEST_FIXTURES) + "/models/" + Model + "/config.json").str();
  auto Buf = MemoryBuffer::getFile(Path);
  EXPECT_TRUE(bool(Buf));
  Expected<ModelConfig> C = parseHFConfig((*Buf)->getBuffer(), Path);
  EXPECT_TRUE(bool(C)) << toString(C.takeError());
  return *C;
}

static std::string parseError(StringRef Json) {
  Expected<ModelConfig> C = parseHFConfig(Json, "config.json");
  if (C)
    return "";
  return toString(C.takeError());
}

TEST(HFConfig, TinyGemma3) {
  ModelConfig C = parseFixture("tiny-gemma3");
  EXPECT_EQ(C.Architecture, "gemma3_text");
  EXPECT_EQ(C.HiddenSize, 128u);
  EXPECT_EQ(C.IntermediateSize, 512u);
  EXPECT_EQ(C.NumLayers, 6u);
  EXPECT_EQ(C.NumHeads, 4u);
  EXPECT_EQ(C.NumKVHeads, 2u);
  EXPECT_EQ(C.HeadDim, 32u);
  EXPECT_EQ(C.VocabSize, 2048u);
  EXPECT_EQ(C.Act, Activation::GeluTanh);
  EXPECT_EQ(C.Norm, NormStyle::OnePlusWeight);
  EXPECT_TRUE(C.QKNorm);
  EXPECT_TRUE(C.PostNorms);
  EXPECT_TRUE(C.TiedEmbeddings);
  EXPECT_DOUBLE_EQ(C.RopeTheta, 1e6);
  EXPECT_DOUBLE_EQ(C.RopeLocalTheta, 1e4);
  EXPECT_DOUBLE_EQ(C.NormEps, 1e-6);
  EXPECT_DOUBLE_EQ(C.EmbeddingScale, std::sqrt(128.0));
  EXPECT_DOUBLE_EQ(C.QueryScale, 1.0 / std::sqrt(32.0));
  EXPECT_EQ(C.SlidingWindow, 16u);
  ASSERT_EQ(C.LayerKinds.size(), 6u);
  for (int I = 0; I < 5; ++I)
    EXPECT_EQ(C.LayerKinds[I], LayerKind::Sliding);
  EXPECT_EQ(C.LayerKinds[5], LayerKind::Full);
  EXPECT_EQ(C.BosId, 2);
  ASSERT_EQ(C.EosIds.size(), 1u);
  EXPECT_EQ(C.EosIds[0], 1);
  EXPECT_EQ(C.PadId, 0);
}

TEST(HFConfig, TinyLlama) {
  ModelConfig C = parseFixture("tiny-llama");
  EXPECT_EQ(C.Architecture, "llama");
  EXPECT_EQ(C.HiddenSize, 96u);
  EXPECT_EQ(C.NumKVHeads, 4u);
  EXPECT_EQ(C.HeadDim, 24u);
  EXPECT_EQ(C.Act, Activation::SiLU);
  EXPECT_EQ(C.Norm, NormStyle::Weight);
  EXPECT_FALSE(C.QKNorm);
  EXPECT_FALSE(C.PostNorms);
  EXPECT_FALSE(C.TiedEmbeddings);
  EXPECT_DOUBLE_EQ(C.NormEps, 1e-5);
  EXPECT_DOUBLE_EQ(C.EmbeddingScale, 1.0);
  EXPECT_EQ(C.SlidingWindow, 0u);
}

TEST(HFConfig, Llama3RopeScalingAndEosList) {
  Expected<ModelConfig> C = parseHFConfig(R"({
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 100, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192},
    "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": true})",
                                          "config.json");
  ASSERT_TRUE(bool(C)) << toString(C.takeError());
  EXPECT_EQ(C->Scaling.Type, "llama3");
  EXPECT_DOUBLE_EQ(C->Scaling.Factor, 8.0);
  EXPECT_DOUBLE_EQ(C->Scaling.HighFreqFactor, 4.0);
  EXPECT_EQ(C->Scaling.OriginalMaxPositions, 8192u);
  EXPECT_EQ(C->EosIds.size(), 3u);
  EXPECT_EQ(C->HeadDim, 16u);
  EXPECT_TRUE(C->TiedEmbeddings);
}

TEST(HFConfig, Qwen2HasAttentionBiasQwen3HasQKNorm) {
  const char *Base = R"("hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100)";
  Expected<ModelConfig> Q2 = parseHFConfig(
      (Twine("{\"model_type\": \"qwen2\", ") + Base + "}").str(), "c.json");
  ASSERT_TRUE(bool(Q2));
  EXPECT_TRUE(Q2->AttentionBias);
  EXPECT_FALSE(Q2->QKNorm);
  EXPECT_EQ(Q2->SlidingWindow, 0u);
  Expected<ModelConfig> Q3 = parseHFConfig(
      (Twine("{\"model_type\": \"qwen3\", \"head_dim\": 32, ") + Base + "}")
          .str(),
      "c.json");
  ASSERT_TRUE(bool(Q3));
  EXPECT_TRUE(Q3->QKNorm);
  EXPECT_FALSE(Q3->AttentionBias);
  EXPECT_EQ(Q3->HeadDim, 32u);
  Expected<ModelConfig> M = parseHFConfig(
      (Twine("{\"model_type\": \"mistral\", \"sliding_window\": 4096, ") +
       Base + "}")
          .str(),
      "c.json");
  ASSERT_TRUE(bool(M));
  EXPECT_EQ(M->SlidingWindow, 4096u);
  EXPECT_EQ(M->LayerKinds[0], LayerKind::Sliding);
}

TEST(HFConfig, Gemma3MultimodalUsesTextConfigAndDefaults) {
  // The shape of gemma-3-4b-it's config.json: text_config omits the head
  // counts and vocabulary size, which Gemma3TextConfig defaults.
  Expected<ModelConfig> C = parseHFConfig(R"({
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3", "eos_token_id": [1, 106],
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240,
      "model_type": "gemma3_text", "num_hidden_layers": 34,
      "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
      "sliding_window": 1024},
    "vision_config": {"model_type": "siglip_vision_model"}})",
                                          "config.json");
  ASSERT_TRUE(bool(C)) << toString(C.takeError());
  EXPECT_EQ(C->Architecture, "gemma3_text");
  EXPECT_EQ(C->SourceModelType, "gemma3");
  EXPECT_EQ(C->TensorPrefix, "language_model.");
  EXPECT_EQ(C->NumHeads, 8u);
  EXPECT_EQ(C->NumKVHeads, 4u);
  EXPECT_EQ(C->HeadDim, 256u);
  EXPECT_EQ(C->VocabSize, 262208u);
  EXPECT_EQ(C->Scaling.Type, "linear");
  EXPECT_EQ(C->LayerKinds[5], LayerKind::Full);
  EXPECT_EQ(C->LayerKinds[6], LayerKind::Sliding);
  EXPECT_EQ(C->EosIds.size(), 2u);
  EXPECT_DOUBLE_EQ(C->QueryScale, 1.0 / 16.0);
}

TEST(HFConfig, Errors) {
  EXPECT_EQ(parseError(R"({"model_type": "bert"})"),
            "config.json: unknown architecture 'bert' (supported: "
            "gemma3_text, gemma3, llama, mistral, qwen2, qwen3)");
  EXPECT_EQ(parseError(R"({"hidden_size": 4})"),
            "config.json: missing required field 'model_type'");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 4,
      "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 1})"),
            "config.json: missing required field 'vocab_size'");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": "big",
      "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 1, "vocab_size": 3})"),
            "config.json: field 'hidden_size' must be a non-negative integer");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 3})"),
            "config.json: 'num_key_value_heads' (3) must divide "
            "'num_attention_heads' (4)");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 0, "num_hidden_layers": 1,
      "num_attention_heads": 4, "vocab_size": 3})"),
            "config.json: field 'intermediate_size' must be positive");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 0, "vocab_size": 3})"),
            "config.json: field 'num_attention_heads' must be positive");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1, "head_dim": 3,
      "num_attention_heads": 4, "vocab_size": 3})"),
            "config.json: 'head_dim' (3) must be a positive even number");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 2305843009213693952, "num_hidden_layers": 1,
      "num_attention_heads": 4, "vocab_size": 3})"),
            "config.json: 'intermediate_size' (2305843009213693952) x "
            "'hidden_size' (8) is too large for a weight matrix");
  EXPECT_EQ(parseError(R"({"model_type": "gemma3"})"),
            "config.json: missing required field 'text_config' (model_type "
            "gemma3)");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1, "hidden_act": "relu6",
      "num_attention_heads": 4, "vocab_size": 3})"),
            "config.json: unsupported activation 'relu6' (supported: silu, "
            "gelu, gelu_pytorch_tanh)");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 4, "vocab_size": 3,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})"),
            "config.json: missing required field "
            "'rope_scaling.low_freq_factor' (rope_type llama3)");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 4, "vocab_size": 3,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
        "low_freq_factor": 4.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}})"),
            "config.json: field 'rope_scaling' needs 0 < low_freq_factor < "
            "high_freq_factor and original_max_position_embeddings > 0");
  EXPECT_EQ(parseError(R"({"model_type": "llama", "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 4, "vocab_size": 3,
      "rope_scaling": {"type": "linear"}})"),
            "config.json: missing required field 'rope_scaling.factor' "
            "(rope_type linear)");
}

// The same invariants, named as the manifest names them.
TEST(ModelConfigCheck, NamesManifestFields) {
  ModelConfig C = parseFixture("tiny-llama");
  EXPECT_FALSE(bool(checkModelConfig(C, "m", ConfigSpelling::Manifest)));
  ModelConfig Bad = C;
  Bad.NumKVHeads = 3;
  EXPECT_EQ(toString(checkModelConfig(Bad, "m", ConfigSpelling::Manifest)),
            "m: 'config.num_kv_heads' (3) must divide 'config.num_heads' "
            "(4)");
  Bad = C;
  Bad.NumLayers = kMaxLayers + 1;
  EXPECT_EQ(toString(checkModelConfig(Bad, "m", ConfigSpelling::Manifest)),
            "m: field 'config.num_layers' is 65537, more than the 65536 "
            "layers accepted");
  Bad = C;
  Bad.NumHeads = Bad.NumKVHeads = Bad.HeadDim = uint64_t(1) << 32;
  EXPECT_EQ(toString(checkModelConfig(Bad, "m", ConfigSpelling::Manifest)),
            "m: 'config.num_heads' (4294967296) x 'config.head_dim' "
            "(4294967296) x 'config.hidden_size' (96) is too large for a "
            "weight matrix");
}
