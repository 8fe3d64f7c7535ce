//===- Decompose.h - Hugging Face checkpoint -> V-index ---------*- C++ -*-===//
#ifndef VINDEX_STORE_DECOMPOSE_H
#define VINDEX_STORE_DECOMPOSE_H

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace vindex {

struct DecomposeOptions {
  std::string Input;  ///< Checkpoint directory, .safetensors or index.json.
  std::string Output; ///< The V-index directory to create.
  bool Compress = false;
  int ZstdLevel = 3;
  unsigned Jobs = 0; ///< 0: one per core.
  bool Verify = false;
  /// Recorded in provenance: only what determines the output bytes.
  std::string CommandLine;
};

/// Writes the V-index atomically. InputFiles receives every file read (for
/// a depfile).
llvm::Error decompose(const DecomposeOptions &Opts,
                      std::vector<std::string> &InputFiles);

} // namespace vindex

#endif // VINDEX_STORE_DECOMPOSE_H
