//===- CompiledTokenizer.h - tokenizer.vfb at decompose (private) -*- C++ -*-===//
//
// Both decomposers (safetensors and GGUF) compile the tokenizer.json they
// write into tokenizer.vfb once, here, after checking it against the
// embedding (Tokenizer::idsPastEmbedding).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_CONVERT_COMPILEDTOKENIZER_H
#define VINDEX_LIB_CONVERT_COMPILEDTOKENIZER_H

#include "vindex/Store/Manifest.h"

#include "llvm/Support/Error.h"

#include <vector>

namespace vindex {

class AtomicDirectory;

/// Compiles tokenizer.json text (read from \p JsonPath) into
/// kCompiledTokenizerFileName in \p Out and lists it in \p Files. A
/// tokenizer Vindex cannot load is a warning, not an error: the V-index is
/// written without the compiled form and the statements that tokenize say
/// why. A tokenizer whose ids past the embedding's \p Rows are added tokens
/// is accepted with a warning; one whose model vocabulary is past it is an
/// error.
llvm::Error addCompiledTokenizer(llvm::StringRef JsonText,
                                 llvm::StringRef JsonPath, uint64_t Rows,
                                 const AtomicDirectory &Out,
                                 std::vector<AuxFileRecord> &Files);

} // namespace vindex

#endif // VINDEX_LIB_CONVERT_COMPILEDTOKENIZER_H
