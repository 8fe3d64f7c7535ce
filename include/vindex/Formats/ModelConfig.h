//===- ModelConfig.h - One description of every architecture ----*- C++ -*-===//
//
// config.json differs between model families in names, defaults and
// nesting. It is read once (HFConfig.cpp) into this struct, which the
// V-index manifest stores and every later pass reads.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_MODELCONFIG_H
#define VINDEX_FORMATS_MODELCONFIG_H

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vindex {

/// How RMSNorm applies its weight: x * w (Llama) or x * (1 + w) (Gemma).
enum class NormStyle : uint8_t { Weight = 0, OnePlusWeight = 1 };
enum class Activation : uint8_t { SiLU = 0, GeluTanh = 1, Gelu = 2 };
enum class LayerKind : uint8_t { Full = 0, Sliding = 1 };

struct RopeScaling {
  std::string Type; ///< "" when absent; "linear", "llama3", "yarn", ...
  double Factor = 1.0;
  double LowFreqFactor = 0.0;
  double HighFreqFactor = 0.0;
  uint64_t OriginalMaxPositions = 0;
};

struct ModelConfig {
  /// Architecture family we run: gemma3_text, llama, mistral, qwen2, qwen3.
  std::string Architecture;
  /// config.json "model_type" as given (gemma3 for multimodal checkpoints).
  std::string SourceModelType;
  /// Prefix of the text model's tensors ("language_model." in gemma3).
  std::string TensorPrefix;

  uint64_t HiddenSize = 0;
  uint64_t IntermediateSize = 0;
  uint64_t NumLayers = 0;
  uint64_t NumHeads = 0;
  uint64_t NumKVHeads = 0;
  uint64_t HeadDim = 0;
  uint64_t VocabSize = 0;
  uint64_t MaxPositions = 0; ///< 0: the config states none.

  /// Positions a generated sequence may reach: the config's, else
  /// kUnstatedMaxPositions, so that a long GENERATE stops before the KV
  /// cache takes the machine's memory.
  uint64_t generationPositions() const {
    return MaxPositions ? MaxPositions : kUnstatedMaxPositions;
  }
  static constexpr uint64_t kUnstatedMaxPositions = 8192;

  double RopeTheta = 10000.0;      ///< Base of full-attention layers.
  double RopeLocalTheta = 10000.0; ///< Base of sliding layers (Gemma 3).
  RopeScaling Scaling;

  double NormEps = 1e-6;
  NormStyle Norm = NormStyle::Weight;
  Activation Act = Activation::SiLU;

  uint64_t SlidingWindow = 0; ///< 0: no sliding layers.
  std::vector<LayerKind> LayerKinds;

  double EmbeddingScale = 1.0; ///< Gemma: sqrt(hidden).
  double QueryScale = 0.0;     ///< Attention score scale (1/sqrt(d) usually).
  double AttnSoftcap = 0.0;    ///< 0: none.
  double FinalSoftcap = 0.0;   ///< 0: none.
  bool TiedEmbeddings = false;
  bool QKNorm = false;        ///< q_norm/k_norm before RoPE (Gemma 3, Qwen 3).
  bool PostNorms = false;     ///< Post-attention and post-FFN norms (Gemma).
  bool AttentionBias = false; ///< q/k/v biases (Qwen 2).

  std::optional<int64_t> BosId;
  llvm::SmallVector<int64_t, 2> EosIds;
  std::optional<int64_t> PadId;
};

/// Parses config.json text. FileName is for messages.
llvm::Expected<ModelConfig> parseHFConfig(llvm::StringRef Text,
                                          llvm::StringRef FileName);

/// More layers than any model has by orders of magnitude (the deepest have a
/// few hundred): tables sized per layer from a file stay small.
constexpr uint64_t kMaxLayers = 1u << 16;

/// How the file being checked names the config's fields, for messages.
enum class ConfigSpelling {
  HFConfig, ///< config.json: num_attention_heads, num_key_value_heads...
  Manifest, ///< manifest.vfb (Manifest.fbs): num_heads, num_kv_heads...
};

/// The size invariants every pass divides and multiplies by: hidden size,
/// FFN width, layers, heads, KV heads, head dimension and vocabulary are
/// positive, KV heads divide heads, the head dimension is even (RoPE rotates
/// pairs), layers are at most kMaxLayers, and the weight matrices these
/// sizes imply fit 64 bits even widened to f32. Checked when config.json is
/// read and again when a V-index is opened, since a manifest is input too.
/// FileName names the file in messages.
llvm::Error checkModelConfig(const ModelConfig &C, llvm::StringRef FileName,
                             ConfigSpelling Names = ConfigSpelling::HFConfig);

/// config.json text for C (what parseHFConfig reads back as C). Keys of
/// Original, the source's config.json text when given, that C does not
/// describe are kept as they were; the keys C describes are written from
/// C. FileName is for messages about Original.
llvm::Expected<std::string> writeHFConfig(const ModelConfig &C,
                                          llvm::StringRef Original = "",
                                          llvm::StringRef FileName = "");

} // namespace vindex

#endif // VINDEX_FORMATS_MODELCONFIG_H
