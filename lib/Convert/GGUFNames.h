//===- GGUFNames.h - What llama.cpp calls things (private) ------*- C++ -*-===//
//
// Shared by the GGUF writer (GGUFCompile.cpp) and reader (GGUFDecompose.cpp):
// the llama3 RoPE factors and the tokenizer translation, each
// written once so that the two directions cannot disagree. The rules are
// those of ../shared/notes/gguf-for-llama-cpp.md (read from llama.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_STORE_GGUFNAMES_H
#define VINDEX_LIB_STORE_GGUFNAMES_H

#include "vindex/Formats/GGUF.h"
#include "vindex/Formats/ModelConfig.h"

#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace vindex {

/// llama.cpp's rope_freqs.weight for a "llama3" RoPE scaling: for each
/// rotated pair of a head of HeadDim with base Base, the factor its
/// frequency is divided by. The converter's formula, in f32 as it computes
/// it.
std::vector<float> llama3RopeFactors(double Base, uint64_t HeadDim,
                                     const RopeScaling &S);
/// The llama3 scaling whose factors (llama3RopeFactors) are exactly F, or
/// nullopt if there is none we can find. Assumes low_freq_factor 1, as
/// every Llama 3 checkpoint has, when F does not determine it.
std::optional<RopeScaling> llama3ScalingFromFactors(llvm::ArrayRef<float> F,
                                                    double Base,
                                                    uint64_t HeadDim);

/// The tokenizer.ggml.* KVs for tokenizer.json text, for an embedding of
/// NVocab rows.
llvm::Expected<std::vector<GGUFKV>>
ggufTokenizerKVs(llvm::StringRef TokenizerJson, llvm::StringRef FileName,
                 const ModelConfig &C, uint64_t NVocab);
/// A tokenizer.json equivalent to the tokenizer.ggml.* KVs of G.
llvm::Expected<std::string> tokenizerJsonFromGGUF(const GGUFFile &G);

} // namespace vindex

#endif // VINDEX_LIB_STORE_GGUFNAMES_H
