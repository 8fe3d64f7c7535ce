//===- GGUFTensorNames.h - llama.cpp's tensors (private) --------*- C++ -*-===//
//
// Shared by the GGUF writer (GGUFCompile.cpp) and reader (GGUFDecompose.cpp):
// what llama.cpp calls each tensor (GGUFTensorNames.def) and how its
// converter reorders Q/K rows, each written once so that the two directions
// cannot disagree. The rules are those of docs/notes/gguf-for-llama-cpp.md
// (read from llama.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_CONVERT_GGUFTENSORNAMES_H
#define VINDEX_LIB_CONVERT_GGUFTENSORNAMES_H

#include "vindex/Formats/Architecture.h"
#include "vindex/Formats/TensorRole.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace vindex {

/// The per-pair RoPE factors of a llama3 scaling, a tensor llama.cpp
/// derives (no role of ours).
inline constexpr llvm::StringLiteral kGGUFRopeFreqsName = "rope_freqs.weight";

/// llama.cpp's name for a tensor outside the layers ("token_embd.weight"),
/// or "" for a per-layer role.
llvm::StringRef ggufGlobalTensorName(TensorRole Role);
/// llama.cpp's name for a tensor of a role ("blk.3.ffn_down.weight"), or ""
/// when it has none.
std::string ggufTensorName(const ArchitectureInfo &Arch, TensorRole Role,
                           int Layer);

/// The role and layer (-1 outside the layers) of a llama.cpp tensor name;
/// nullopt if unknown.
std::optional<TensorClass> classifyGGUFTensor(const ArchitectureInfo &Arch,
                                              llvm::StringRef Name);

/// Where a global tensor goes in llama.cpp's file order (token_embd,
/// output_norm, output, rope_freqs); after them, anything else.
unsigned ggufGlobalRank(llvm::StringRef Name);

/// Row I of the permuted Q/K matrix is row qkPermutedSource(I) of the HF one
/// (heads of HeadDim rows; the converter's reshape/swapaxes).
inline uint64_t qkPermutedSource(uint64_t I, uint64_t HeadDim) {
  uint64_t H = I / HeadDim, R = I % HeadDim, Half = HeadDim / 2;
  return H * HeadDim + (R % 2) * Half + R / 2;
}

} // namespace vindex

#endif // VINDEX_LIB_CONVERT_GGUFTENSORNAMES_H
