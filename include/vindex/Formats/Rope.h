//===- Rope.h - Rotary position embedding frequencies -----------*- C++ -*-===//
//
// The RoPE inverse frequencies of a configuration, with its scaling, and
// the llama3 scaling's formula written once: the engine rotates by these
// frequencies, the GGUF writer expresses a llama3 scaling as llama.cpp's
// per-pair factors, and the GGUF reader fits a scaling to such factors.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_ROPE_H
#define VINDEX_FORMATS_ROPE_H

#include "vindex/Formats/ModelConfig.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <vector>

namespace vindex {

/// transformers' inverse frequencies for the layers of a kind (computed in
/// f32 as it does), with the "linear" and "llama3" scalings.
llvm::Expected<std::vector<float>> ropeInverseFrequencies(const ModelConfig &C,
                                                          bool Sliding);

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

} // namespace vindex

#endif // VINDEX_FORMATS_ROPE_H
