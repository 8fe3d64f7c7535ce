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

std::vector<JSONKey> topLevelKeys(StringRef Text) {
  std::vector<JSONKey> Keys;
  unsigned Depth = 0, Line = 1;
  bool TopIsObject = false;
  // At depth 1 a string that follows '{' or ',' is a key; one after ':' or
  // inside an array is a value.
  bool ExpectKey = false;
  for (size_t I = 0; I < Text.size(); ++I) {
    char C = Text[I];
    if (C == '\n') {
      ++Line;
    } else if (C == '"') {
      size_t End = I + 1;
      while (End < Text.size() && Text[End] != '"')
        End += Text[End] == '\\' ? 2 : 1;
      StringRef Quoted = Text.slice(I, End + 1);
      if (Depth == 1 && ExpectKey) {
        Expected<json::Value> Key = json::parse(Quoted);
        if (!Key)
          consumeError(Key.takeError());
        else if (std::optional<StringRef> S = Key->getAsString())
          Keys.push_back({S->str(), Line});
      }
      Line += Quoted.count('\n');
      ExpectKey = false;
      I = End;
    } else if (C == '[' || C == '{') {
      if (++Depth == 1)
        TopIsObject = C == '{';
      ExpectKey = Depth == 1 && TopIsObject;
    } else if (C == ']' || C == '}') {
      Depth -= Depth > 0;
    } else if (C == ',') {
      ExpectKey = Depth == 1 && TopIsObject;
    }
  }
  return Keys;
}

} // namespace vindex
