//===- Compile.h - V-index -> model files -----------------------*- C++ -*-===//
#ifndef VINDEX_STORE_COMPILE_H
#define VINDEX_STORE_COMPILE_H

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace vindex {

class Vindex;

/// Writes a Hugging Face checkpoint directory (config.json, the safetensors
/// shards of the source with their index, tokenizer files) atomically. For
/// an unpatched V-index every tensor equals the source byte for byte.
llvm::Error compileSafetensors(const Vindex &V, llvm::StringRef OutDir,
                               unsigned Jobs);

/// The files of a V-index that a compile reads (for a depfile).
std::vector<std::string> vindexInputFiles(const Vindex &V);

} // namespace vindex

#endif // VINDEX_STORE_COMPILE_H
