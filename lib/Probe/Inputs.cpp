//===- Inputs.cpp - The probe's facts and templates ----------------------===//
#include "vindex/Probe/Probe.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/JSON.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/JSON.h"

using namespace llvm;

namespace vindex {

Expected<std::vector<Fact>> parseFacts(StringRef Text, StringRef File) {
  std::vector<Fact> Facts;
  SmallVector<StringRef, 0> Lines;
  Text.split(Lines, '\n');
  if (Lines.empty() || Lines[0].trim().empty())
    return fileError(File, "is empty (expected a header line "
                           "entity<TAB>relation<TAB>target)");
  for (size_t I = 1; I < Lines.size(); ++I) {
    StringRef Line = Lines[I];
    Line.consume_back("\r");
    unsigned No = I + 1;
    if (Line.trim().empty())
      continue;
    SmallVector<StringRef, 4> Fields;
    Line.split(Fields, '\t');
    if (Fields.size() != 3)
      return makeError("{0}:{1}: expected 3 tab-separated fields (entity, "
                       "relation, target), found {2}",
                       File, No, Fields.size());
    for (size_t F = 0; F < 3; ++F)
      if (Fields[F].trim().empty())
        return makeError("{0}:{1}: the {2} is empty", File, No,
                         F == 0   ? "entity"
                         : F == 1 ? "relation"
                                  : "target");
    Facts.push_back({Fields[0].trim().str(), Fields[1].trim().str(),
                     Fields[2].trim().str(), No});
  }
  if (Facts.empty())
    return fileError(File, "has no facts after its header");
  return Facts;
}

/// The 1-based line of the first occurrence of Needle (1 if absent), for an
/// error about a value: JSON values carry no positions.
static unsigned lineOf(StringRef Text, StringRef Needle) {
  size_t At = Text.find(Needle);
  return At == StringRef::npos ? 1 : 1 + Text.take_front(At).count('\n');
}

Expected<std::vector<RelationInfo>> parseTemplates(StringRef Text,
                                                   StringRef File) {
  Expected<json::Value> Parsed = parseJSON(Text);
  if (!Parsed)
    return fileError(File, "invalid JSON: {0}", toString(Parsed.takeError()));
  const json::Object *Root = Parsed->getAsObject();
  if (!Root)
    return fileError(File, "expected an object of relations");
  // json::Object is a hash map that keeps the last of duplicate keys: the
  // file's order, lines and duplicates come from a scan of the text.
  std::vector<JSONKey> Keys = topLevelKeys(Text);
  StringMap<size_t> Place;
  for (size_t I = 0; I < Keys.size(); ++I) {
    auto [At, New] = Place.try_emplace(Keys[I].Name, I);
    if (!New)
      return makeError("{0}:{1}: relation '{2}' is given twice (first on "
                       "line {3})",
                       File, Keys[I].Line, Keys[I].Name, Keys[At->second].Line);
  }
  std::vector<std::pair<size_t, RelationInfo>> Placed;
  for (const auto &KV : *Root) {
    RelationInfo R;
    R.Name = KV.first.str();
    auto At = Place.find(R.Name);
    size_t Order = At == Place.end() ? Keys.size() : At->second;
    unsigned No = At == Place.end() ? 1 : Keys[Order].Line;
    const json::Object *O = KV.second.getAsObject();
    if (!O)
      return makeError("{0}:{1}: relation '{2}': expected an object", File, No,
                       R.Name);
    std::optional<StringRef> Canonical = O->getString("canonical");
    if (!Canonical)
      return makeError("{0}:{1}: relation '{2}' has no \"canonical\" prompt",
                       File, No, R.Name);
    R.Canonical = Canonical->str();
    if (!Canonical->contains("{e}"))
      return makeError("{0}:{2}: relation '{1}': the canonical template has "
                       "no {{e} for the entity: \"{3}\"",
                       File, R.Name, lineOf(Text, "\"" + R.Canonical + "\""),
                       R.Canonical);
    if (const json::Array *Train = O->getArray("train"))
      for (const json::Value &T : *Train)
        if (std::optional<StringRef> S = T.getAsString())
          R.Templates.push_back(S->str());
    if (std::optional<StringRef> H = O->getString("heldout_prompt")) {
      R.HeldoutPrompt = H->str();
      if (!H->contains("{e}"))
        return makeError("{0}:{2}: relation '{1}': the heldout_prompt has "
                         "no {{e} for the entity: \"{3}\"",
                         File, R.Name,
                         lineOf(Text, "\"" + R.HeldoutPrompt + "\""),
                         R.HeldoutPrompt);
    }
    Placed.emplace_back(Order, std::move(R));
  }
  llvm::stable_sort(
      Placed, [](const auto &A, const auto &B) { return A.first < B.first; });
  std::vector<RelationInfo> Relations;
  for (auto &[Order, R] : Placed)
    Relations.push_back(std::move(R));
  return Relations;
}

Error checkFacts(ArrayRef<Fact> Facts, ArrayRef<RelationInfo> Relations,
                 const Tokenizer &Tok, const ModelConfig &Config,
                 StringRef FactsFile) {
  size_t MaxPositions = Config.MaxPositions;
  StringMap<const RelationInfo *> ByName;
  for (const RelationInfo &R : Relations)
    ByName[R.Name] = &R;
  for (const Fact &F : Facts) {
    auto It = ByName.find(F.Relation);
    if (It == ByName.end())
      return makeError("{0}:{1}: relation '{2}' has no template (add it to "
                       "the --templates file)",
                       FactsFile, F.Line, F.Relation);
    FactTokens T = factTokens(Tok, It->second->prompt(F.Entity), F.Target);
    if (T.Target < 0)
      return makeError("{0}:{1}: the target '{2}' adds no token to the "
                       "prompt",
                       FactsFile, F.Line, F.Target);
    if (MaxPositions && T.Prompt.size() > MaxPositions)
      return makeError("{0}:{1}: the prompt for '{2}' is {3} tokens, longer "
                       "than the model's context of {4}",
                       FactsFile, F.Line, F.Entity, T.Prompt.size(),
                       MaxPositions);
    std::vector<int32_t> Ids = T.Prompt;
    Ids.push_back(T.Target);
    if (Error E = Tok.checkInEmbedding(Ids, Config.VocabSize,
                                       "the fact of '" + F.Entity + "'"))
      return makeError("{0}:{1}: {2}", FactsFile, F.Line,
                       toString(std::move(E)));
  }
  return Error::success();
}

FactTokens factTokens(const Tokenizer &Tok, StringRef Prompt,
                      StringRef Target) {
  FactTokens T;
  T.Prompt = Tok.encode(Prompt);
  std::vector<int32_t> Full = Tok.encode((Prompt + " " + Target).str());
  size_t I = 0;
  while (I < T.Prompt.size() && I < Full.size() && T.Prompt[I] == Full[I])
    ++I;
  if (I < Full.size())
    T.Target = Full[I];
  // The prompt's last token merged with the target's start: feed the
  // common prefix and predict the first token that differs.
  T.Prompt.resize(I);
  return T;
}

} // namespace vindex
