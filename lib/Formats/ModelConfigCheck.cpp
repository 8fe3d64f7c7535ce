//===- ModelConfigCheck.cpp - The size invariants of a ModelConfig --------===//
//
// One check for config.json (when a checkpoint is read) and for the config a
// manifest carries (when a V-index is opened): what it accepts, every pass
// may divide and multiply by without further thought.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/ModelConfig.h"

#include "vindex/Support/Error.h"

#include "llvm/Support/MathExtras.h"

using namespace llvm;

namespace vindex {

namespace {

/// The size fields as one file or the other spells them.
struct SizeNames {
  StringRef Hidden, Intermediate, Layers, Heads, KVHeads, HeadDim, Vocab;
};

const SizeNames &namesFor(ConfigSpelling S) {
  static const SizeNames HF = {"hidden_size",         "intermediate_size",
                               "num_hidden_layers",   "num_attention_heads",
                               "num_key_value_heads", "head_dim",
                               "vocab_size"};
  static const SizeNames Manifest = {
      "config.hidden_size", "config.intermediate_size", "config.num_layers",
      "config.num_heads",   "config.num_kv_heads",      "config.head_dim",
      "config.vocab_size"};
  return S == ConfigSpelling::HFConfig ? HF : Manifest;
}

/// Rows x Cols f32 elements (the widest form any pass makes of a weight)
/// are addressable in 64 bits.
bool fitsAsF32(uint64_t Rows, uint64_t Cols) {
  bool Overflow = false;
  uint64_t Elements = SaturatingMultiply(Rows, Cols, &Overflow);
  SaturatingMultiply<uint64_t>(Elements, 4, &Overflow);
  return !Overflow;
}

} // namespace

Error checkModelConfig(const ModelConfig &C, StringRef File,
                       ConfigSpelling Spelling) {
  const SizeNames &N = namesFor(Spelling);
  const std::pair<StringRef, uint64_t> Positive[] = {
      {N.Hidden, C.HiddenSize},
      {N.Intermediate, C.IntermediateSize},
      {N.Layers, C.NumLayers},
      {N.Heads, C.NumHeads},
      {N.Vocab, C.VocabSize}};
  for (const auto &[Name, Value] : Positive)
    if (Value == 0)
      return fileError(File, "field '{0}' must be positive", Name);
  if (C.NumLayers > kMaxLayers)
    return fileError(File,
                     "field '{0}' is {1}, more than the {2} layers "
                     "accepted",
                     N.Layers, C.NumLayers, kMaxLayers);
  if (C.NumKVHeads == 0 || C.NumHeads % C.NumKVHeads)
    return fileError(File, "'{0}' ({1}) must divide '{2}' ({3})", N.KVHeads,
                     C.NumKVHeads, N.Heads, C.NumHeads);
  if (C.HeadDim == 0 || C.HeadDim % 2)
    return fileError(File, "'{0}' ({1}) must be a positive even number",
                     N.HeadDim, C.HeadDim);
  bool Overflow = false;
  uint64_t QDim = SaturatingMultiply(C.NumHeads, C.HeadDim, &Overflow);
  if (Overflow || !fitsAsF32(QDim, C.HiddenSize))
    return fileError(File,
                     "'{0}' ({1}) x '{2}' ({3}) x '{4}' ({5}) is too large "
                     "for a weight matrix",
                     N.Heads, C.NumHeads, N.HeadDim, C.HeadDim, N.Hidden,
                     C.HiddenSize);
  // KV heads divide heads, so the K and V projections are no larger.
  for (const auto &[Name, Value] :
       {std::pair(N.Intermediate, C.IntermediateSize),
        std::pair(N.Vocab, C.VocabSize)})
    if (!fitsAsF32(Value, C.HiddenSize))
      return fileError(File,
                       "'{0}' ({1}) x '{2}' ({3}) is too large for a weight "
                       "matrix",
                       Name, Value, N.Hidden, C.HiddenSize);
  return Error::success();
}

} // namespace vindex
