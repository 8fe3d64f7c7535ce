//===- JSON.cpp - llvm::json::parse with a bound on nesting ---------------===//
#include "vindex/Support/JSON.h"

#include "vindex/Support/Error.h"

using namespace llvm;

namespace vindex {

Expected<json::Value> parseJSON(StringRef Text) {
  // Brackets inside strings do not nest; an unterminated string or an
  // unbalanced bracket is left for json::parse to report.
  unsigned Depth = 0;
  bool InString = false;
  for (size_t I = 0; I < Text.size(); ++I) {
    char C = Text[I];
    if (InString) {
      if (C == '\\')
        ++I;
      else if (C == '"')
        InString = false;
    } else if (C == '"') {
      InString = true;
    } else if (C == '[' || C == '{') {
      if (++Depth > kMaxJSONDepth)
        return makeError("JSON nests deeper than {0} levels at byte {1}",
                         kMaxJSONDepth, I);
    } else if ((C == ']' || C == '}') && Depth) {
      --Depth;
    }
  }
  return json::parse(Text);
}

} // namespace vindex
