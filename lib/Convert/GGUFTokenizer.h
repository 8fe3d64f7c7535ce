//===- GGUFTokenizer.h - The tokenizer in GGUF (private) --------*- C++ -*-===//
//
// tokenizer.json to llama.cpp's tokenizer.ggml.* KVs (GGUF writer) and back
// (GGUF reader), written once so that the two directions cannot disagree.
// The rules are those of docs/notes/gguf-for-llama-cpp.md.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_CONVERT_GGUFTOKENIZER_H
#define VINDEX_LIB_CONVERT_GGUFTOKENIZER_H

#include "vindex/Formats/GGUF.h"
#include "vindex/Formats/ModelConfig.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace vindex {

/// The tokenizer.ggml.* KVs for tokenizer.json text, for an embedding of
/// NVocab rows.
llvm::Expected<std::vector<GGUFKV>>
ggufTokenizerKVs(llvm::StringRef TokenizerJson, llvm::StringRef FileName,
                 const ModelConfig &C, uint64_t NVocab);
/// A tokenizer.json equivalent to the tokenizer.ggml.* KVs of G.
llvm::Expected<std::string> tokenizerJsonFromGGUF(const GGUFFile &G);

} // namespace vindex

#endif // VINDEX_LIB_CONVERT_GGUFTOKENIZER_H
