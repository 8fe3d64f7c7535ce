//===- JSON.h - llvm::json::parse with a bound on nesting -------*- C++ -*-===//
//
// llvm::json's parser, its Value's destructor and every walk over a parsed
// document recurse once per nesting level, so a downloaded config.json,
// tokenizer.json, index.json or safetensors header of a million '[' would
// overflow the stack. Every JSON the tools read goes through parseJSON,
// which refuses such a document, naming the byte, before parsing it.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_JSON_H
#define VINDEX_SUPPORT_JSON_H

#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace vindex {

/// How deeply arrays and objects may nest (Hugging Face files nest a dozen
/// levels at most).
constexpr unsigned kMaxJSONDepth = 256;

/// llvm::json::parse, after checking that no array or object nests deeper
/// than kMaxJSONDepth ("JSON nests deeper than 256 levels at byte N").
llvm::Expected<llvm::json::Value> parseJSON(llvm::StringRef Text);

/// A key of a document's top-level object, where the file has it.
struct JSONKey {
  std::string Name; ///< Decoded (escapes resolved).
  unsigned Line;    ///< 1-based.
};

/// The keys of the top-level object of Text, a document parseJSON accepted,
/// in the file's order (json::Object is a hash map and keeps none), in one
/// pass over the text.
std::vector<JSONKey> topLevelKeys(llvm::StringRef Text);

} // namespace vindex

#endif // VINDEX_SUPPORT_JSON_H
