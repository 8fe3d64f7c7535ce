//===- Decompose.h - Hugging Face checkpoint -> V-index ---------*- C++ -*-===//
#ifndef VINDEX_CONVERT_DECOMPOSE_H
#define VINDEX_CONVERT_DECOMPOSE_H

#include "vindex/Store/Manifest.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace vindex {

struct DecomposeOptions {
  std::string
      Input; ///< Checkpoint directory, .safetensors, index.json or .gguf.
  std::string Output; ///< The V-index directory to create.
  bool Compress = false;
  int ZstdLevel = 3;
  unsigned Jobs = 0; ///< 0: one per core.
  bool Verify = false;
  /// Recorded in provenance: only what determines the output bytes.
  std::string CommandLine;
};

/// True if Input names a GGUF file (by its .gguf name or its magic).
bool isGGUFInput(llvm::StringRef Input);

/// A GGUF (F32, F16, BF16 or Q8_0 tensors) -> V-index, written atomically:
/// config.json and tokenizer.json are rebuilt from its metadata and
/// llama.cpp's tensor transforms are undone. decompose() calls it for GGUF
/// inputs.
llvm::Error decomposeGGUF(const DecomposeOptions &Opts,
                          std::vector<std::string> &InputFiles);

/// Writes the V-index atomically. InputFiles receives every file read (for
/// a depfile).
llvm::Error decompose(const DecomposeOptions &Opts,
                      std::vector<std::string> &InputFiles);

} // namespace vindex

#endif // VINDEX_CONVERT_DECOMPOSE_H
