//===- GGUFTokenizer.cpp - tokenizer.json <-> tokenizer.ggml.* ------------===//
//
// The split regex of a byte-level BPE is the one the Tokenizer parsed
// (Tokenizer::splitRegexFamily), named as llama.cpp names it.
//
// Token scores. A SentencePiece BPE vocabulary in tokenizer.json carries
// merges but no scores, and llama.cpp's SPM tokenizer merges by score: it
// repeatedly merges the adjacent pair whose concatenation is the
// highest-scoring piece (leftmost on ties). llama.cpp's converter, when it
// has only tokenizer.json (LlamaHfVocab), writes -1000 for every piece,
// which loses the merge order. We derive scores from the merge list
// instead: the piece produced by the k-th distinct merge result (k = 1, 2,
// ... in merge order) scores -k; pieces no merge produces (single
// characters, bytes, special tokens) score 0. Merging the highest score
// first is then merging the earliest merge first, which is what BPE over
// tokenizer.json does, and is also how sentencepiece orders BPE scores.
// The reader inverts this: pieces with negative scores, by decreasing
// score, each with every split into two vocabulary pieces, give the merges.
//
//===----------------------------------------------------------------------===//
#include "GGUFTokenizer.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/JSON.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <utility>

using namespace llvm;

namespace vindex {

//===----------------------------------------------------------------------===//
// tokenizer.json -> tokenizer.ggml.*
//===----------------------------------------------------------------------===//

namespace {

enum TokenType : int32_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

bool isBytePiece(StringRef P) {
  return P.size() == 6 && P.starts_with("<0x") && P.ends_with(">") &&
         isHexDigit(P[3]) && isHexDigit(P[4]);
}

/// A merge as "a b" (either spelling tokenizer.json uses).
std::optional<std::pair<std::string, std::string>>
mergePair(const json::Value &M) {
  if (std::optional<StringRef> S = M.getAsString()) {
    auto [A, B] = S->split(' ');
    return std::make_pair(A.str(), B.str());
  }
  if (const json::Array *A = M.getAsArray())
    if (A->size() == 2)
      if (auto X = (*A)[0].getAsString())
        if (auto Y = (*A)[1].getAsString())
          return std::make_pair(X->str(), Y->str());
  return std::nullopt;
}

/// True if a normalizer or pre-tokenizer prepends "▁" to the text
/// (SentencePiece's add_dummy_prefix).
bool addsSpacePrefix(const json::Value *V) {
  if (!V)
    return false;
  const json::Object *O = V->getAsObject();
  if (!O)
    return false;
  std::optional<StringRef> Type = O->getString("type");
  if (Type == "Sequence") {
    for (StringRef Key : {"normalizers", "pretokenizers"})
      if (const json::Array *A = O->getArray(Key))
        for (const json::Value &E : *A)
          if (addsSpacePrefix(&E))
            return true;
    return false;
  }
  if (Type == "Prepend")
    return O->getString("prepend") == "\xE2\x96\x81";
  if (Type == "Metaspace") {
    if (std::optional<StringRef> S = O->getString("prepend_scheme"))
      return *S != "never";
    return O->getBoolean("add_prefix_space").value_or(true);
  }
  return false;
}

/// llama.cpp's tokenizer.ggml.pre names of the split regexes we implement,
/// with their families (byteLevelSplitPattern): the first of a family is
/// the one we write ("gpt2" is refused by llama.cpp when loading, and
/// "default" is not GPT-2's regex there, so neither is used).
constexpr std::pair<StringLiteral, StringLiteral> PreNames[] = {
    {"gpt-2", "gpt2"},
    {"llama-bpe", "llama3"},
    {"llama3", "llama3"},
    {"llama-v3", "llama3"},
    {"qwen2", "qwen2"}};

/// llama.cpp's pre-tokenizer name for a byte-level BPE's split regex
/// (GPT-2's when it has none: ByteLevel without its regex).
StringRef bpePre(const Tokenizer &Tok) {
  StringRef Family = Tok.splitRegexFamily();
  for (auto [Name, Of] : PreNames)
    if (Of == Family)
      return Name;
  return PreNames[0].first;
}

} // namespace

Expected<std::vector<GGUFKV>> ggufTokenizerKVs(StringRef Text, StringRef File,
                                               const ModelConfig &C,
                                               uint64_t NVocab) {
  Expected<Tokenizer> Tok = Tokenizer::fromJSON(Text, File);
  if (!Tok)
    return Tok.takeError();
  Expected<json::Value> Root = parseJSON(Text);
  if (!Root)
    return fileError(File, "not valid JSON: {0}", toString(Root.takeError()));
  const json::Object &Top = *Root->getAsObject();
  const json::Object *Model = Top.getObject("model");
  if (!Model || Model->getString("type") != "BPE")
    return fileError(File, "only BPE tokenizers can be written to GGUF");
  // Added tokens past the embedding are left out (as transformers runs
  // such pairs); anything else past it is an error.
  if (Expected<std::vector<int32_t>> Past = Tok->idsPastEmbedding(NVocab, File);
      !Past)
    return Past.takeError();
  bool SPM = Tok->kind() == Tokenizer::Kind::SentencePieceBPE;

  std::vector<GGUFKV> KVs;
  auto Add = [&](StringRef Key, GGUFValue V) {
    KVs.push_back({Key.str(), std::move(V)});
  };
  Add("tokenizer.ggml.model", GGUFValue::string(SPM ? "llama" : "gpt2"));
  Add("tokenizer.ggml.pre",
      GGUFValue::string(SPM ? "default" : bpePre(*Tok).str()));

  std::optional<int32_t> Unk;
  if (std::optional<StringRef> U = Model->getString("unk_token"))
    Unk = Tok->id(*U);
  bool ByteFallback = Model->getBoolean("byte_fallback").value_or(false);
  StringMap<bool> Added; // content -> special
  if (const json::Array *A = Top.getArray("added_tokens"))
    for (const json::Value &E : *A)
      if (const json::Object *O = E.getAsObject())
        if (std::optional<StringRef> Content = O->getString("content"))
          Added[*Content] = O->getBoolean("special").value_or(false);

  // Scores from the merge order (see the file comment).
  StringMap<float> Scores;
  std::vector<GGUFValue> Merges;
  if (const json::Array *A = Model->getArray("merges")) {
    for (size_t I = 0; I < A->size(); ++I) {
      auto M = mergePair((*A)[I]);
      if (!M)
        return fileError(File, "model.merges[{0}] is not a pair of strings", I);
      if (SPM)
        Scores.try_emplace(M->first + M->second, -float(Scores.size() + 1));
      else
        Merges.push_back(GGUFValue::string(M->first + " " + M->second));
    }
  }

  // 262,144 entries for Gemma 3: reserved, and the padding names built
  // without formatv: from reading tokenizer.json to the first byte of a
  // Gemma 3 GGUF went from 0.31-0.34 s to 0.15-0.17 s.
  std::vector<GGUFValue> Tokens, ScoreVals, Types;
  Tokens.reserve(NVocab);
  Types.reserve(NVocab);
  if (SPM)
    ScoreVals.reserve(NVocab);
  for (uint64_t I = 0; I < NVocab; ++I) {
    StringRef P = Tok->piece(int32_t(I));
    int32_t Type = Normal;
    std::string Piece = P.str();
    if (P.empty()) {
      Piece = ("[PAD" + Twine(I) + "]").str();
      Type = Unused;
    } else if (Unk && *Unk == int32_t(I)) {
      Type = Unknown;
    } else if (auto It = Added.find(P); It != Added.end()) {
      Type = It->second ? Control : UserDefined;
    } else if (SPM && ByteFallback && isBytePiece(P)) {
      Type = Byte;
    }
    Tokens.push_back(GGUFValue::string(std::move(Piece)));
    if (SPM) {
      auto It = Scores.find(P);
      ScoreVals.push_back(GGUFValue::f32(
          Type == Normal && It != Scores.end() ? It->second : 0.0f));
    }
    Types.push_back(GGUFValue::i32(Type));
  }
  Add("tokenizer.ggml.tokens",
      GGUFValue::array(GGUFType::String, std::move(Tokens)));
  if (SPM)
    Add("tokenizer.ggml.scores",
        GGUFValue::array(GGUFType::Float32, std::move(ScoreVals)));
  Add("tokenizer.ggml.token_type",
      GGUFValue::array(GGUFType::Int32, std::move(Types)));
  if (!SPM)
    Add("tokenizer.ggml.merges",
        GGUFValue::array(GGUFType::String, std::move(Merges)));

  // Special ids: config.json first (what the model was trained with), then
  // the tokenizer. SPM defaults in llama.cpp (bos 1, eos 2, unk 0) are not
  // Gemma's, so every id we know is written.
  std::optional<int64_t> Bos = C.BosId, Eos, Pad = C.PadId;
  if (!Bos)
    Bos = Tok->bosId();
  if (!C.EosIds.empty())
    Eos = C.EosIds.front();
  else
    Eos = Tok->eosId();
  if (!Pad)
    for (StringRef Name : {"<pad>", "[PAD]", "<|endoftext|>"})
      if (std::optional<int32_t> Id = Tok->id(Name)) {
        Pad = *Id;
        break;
      }
  auto AddId = [&](StringRef Key, std::optional<int64_t> Id) {
    if (Id && *Id >= 0 && uint64_t(*Id) < NVocab)
      Add(Key, GGUFValue::u32(uint32_t(*Id)));
  };
  AddId("tokenizer.ggml.bos_token_id", Bos);
  AddId("tokenizer.ggml.eos_token_id", Eos);
  AddId("tokenizer.ggml.unknown_token_id", Unk);
  AddId("tokenizer.ggml.padding_token_id", Pad);
  // Whether the post-processor adds BOS/EOS, observed on a probe text.
  std::vector<int32_t> With = Tok->encode("a", true),
                       Without = Tok->encode("a", false);
  bool AddBos = With.size() > Without.size() && !With.empty() &&
                Tok->isSpecial(With.front()) &&
                (Without.empty() || With.front() != Without.front());
  bool AddEos = With.size() > Without.size() && !With.empty() &&
                Tok->isSpecial(With.back()) &&
                (Without.empty() || With.back() != Without.back());
  Add("tokenizer.ggml.add_bos_token", GGUFValue::boolean(AddBos));
  Add("tokenizer.ggml.add_eos_token", GGUFValue::boolean(AddEos));
  if (SPM)
    Add("tokenizer.ggml.add_space_prefix",
        GGUFValue::boolean(addsSpacePrefix(Top.get("normalizer")) ||
                           addsSpacePrefix(Top.get("pre_tokenizer"))));
  return KVs;
}

//===----------------------------------------------------------------------===//
// tokenizer.ggml.* -> tokenizer.json
//===----------------------------------------------------------------------===//

namespace {

/// The tokenizer.ggml.* arrays and ids of a GGUF, checked.
struct GGUFVocab {
  const std::vector<GGUFValue> *Tokens = nullptr;
  const GGUFValue *Scores = nullptr; ///< FLOAT32 array or null.
  const GGUFValue *Types = nullptr;  ///< INT32 array or null.
  const GGUFValue *Merges = nullptr; ///< STRING array or null.
  std::optional<int64_t> Bos, Eos, Unk;
  bool AddBos = true, AddEos = false, SpacePrefix = true;

  size_t size() const { return Tokens->size(); }
  const std::string &piece(size_t I) const { return (*Tokens)[I].Str; }
  int32_t type(size_t I) const {
    return Types ? int32_t(Types->Elems[I].Bits) : Normal;
  }
};

Expected<GGUFVocab> readVocab(const GGUFFile &G) {
  auto Missing = [&](StringRef Key) {
    return fileError(G.path(), "missing required key '{0}'", Key);
  };
  auto ArrayKV = [&](StringRef Key, GGUFType Elem,
                     bool Required) -> Expected<const GGUFValue *> {
    const GGUFValue *V = G.find(Key);
    if (!V) {
      if (Required)
        return Missing(Key);
      return nullptr;
    }
    if (V->Type != GGUFType::Array || V->ElemType != Elem)
      return fileError(G.path(), "key '{0}' must be an array of {1}", Key,
                       ggufTypeName(Elem));
    return V;
  };
  GGUFVocab Vocab;
  Expected<const GGUFValue *> Tokens =
      ArrayKV("tokenizer.ggml.tokens", GGUFType::String, true);
  if (!Tokens)
    return Tokens.takeError();
  Vocab.Tokens = &(*Tokens)->Elems;
  for (auto [Key, Elem, Slot] :
       {std::make_tuple("tokenizer.ggml.scores", GGUFType::Float32,
                        &Vocab.Scores),
        std::make_tuple("tokenizer.ggml.token_type", GGUFType::Int32,
                        &Vocab.Types),
        std::make_tuple("tokenizer.ggml.merges", GGUFType::String,
                        &Vocab.Merges)}) {
    Expected<const GGUFValue *> A = ArrayKV(Key, Elem, false);
    if (!A)
      return A.takeError();
    *Slot = *A;
  }
  for (const GGUFValue *A : {Vocab.Scores, Vocab.Types})
    if (A && A->Elems.size() != Vocab.size())
      return fileError(G.path(),
                       "tokenizer arrays differ in length ({0} "
                       "tokens, {1} entries)",
                       Vocab.size(), A->Elems.size());
  auto IdKV = [&](StringRef Key) -> std::optional<int64_t> {
    const GGUFValue *V = G.find(Key);
    if (!V)
      return std::nullopt;
    std::optional<int64_t> I = V->asInt();
    if (I && *I >= 0 && uint64_t(*I) < Vocab.size())
      return I;
    return std::nullopt;
  };
  auto Flag = [&](StringRef Key, bool Default) {
    const GGUFValue *V = G.find(Key);
    return V && V->Type == GGUFType::Bool ? V->Bits != 0 : Default;
  };
  Vocab.Bos = IdKV("tokenizer.ggml.bos_token_id");
  Vocab.Eos = IdKV("tokenizer.ggml.eos_token_id");
  Vocab.Unk = IdKV("tokenizer.ggml.unknown_token_id");
  Vocab.AddBos = Flag("tokenizer.ggml.add_bos_token", true);
  Vocab.AddEos = Flag("tokenizer.ggml.add_eos_token", false);
  Vocab.SpacePrefix = Flag("tokenizer.ggml.add_space_prefix", true);
  return Vocab;
}

/// model.vocab (every used piece) and added_tokens (control, user-defined
/// and unknown pieces) of a vocabulary.
std::pair<json::Object, json::Array> vocabularyJson(const GGUFVocab &V) {
  json::Object Vocab;
  json::Array Added;
  for (size_t I = 0; I < V.size(); ++I) {
    int32_t Type = V.type(I);
    if (Type == Unused)
      continue;
    Vocab[V.piece(I)] = int64_t(I);
    if (Type == Control || Type == UserDefined || Type == Unknown)
      Added.push_back(json::Object{{"id", int64_t(I)},
                                   {"content", V.piece(I)},
                                   {"single_word", false},
                                   {"lstrip", false},
                                   {"rstrip", false},
                                   {"normalized", false},
                                   {"special", Type != UserDefined}});
  }
  return {std::move(Vocab), std::move(Added)};
}

/// A TemplateProcessing post-processor adding BOS and/or EOS, or null.
json::Value specialTokensProcessor(const GGUFVocab &V) {
  std::optional<int64_t> Bos = V.AddBos ? V.Bos : std::nullopt;
  std::optional<int64_t> Eos = V.AddEos ? V.Eos : std::nullopt;
  if (!Bos && !Eos)
    return nullptr;
  auto Special = [&](int64_t Id, int TypeId) {
    return json::Object{
        {"SpecialToken",
         json::Object{{"id", V.piece(Id)}, {"type_id", TypeId}}}};
  };
  auto Seq = [&](StringRef Id, int TypeId) {
    return json::Object{
        {"Sequence", json::Object{{"id", Id}, {"type_id", TypeId}}}};
  };
  json::Array Single, Pair;
  for (int Part = 0; Part < 2; ++Part) {
    json::Array &Out = Part ? Pair : Single;
    for (int TypeId = 0; TypeId <= Part; ++TypeId) {
      if (Bos)
        Out.push_back(Special(*Bos, TypeId));
      Out.push_back(Seq(TypeId ? "B" : "A", TypeId));
      if (Eos)
        Out.push_back(Special(*Eos, TypeId));
    }
  }
  json::Object Specials;
  for (std::optional<int64_t> Id : {Bos, Eos})
    if (Id)
      Specials[V.piece(*Id)] =
          json::Object{{"id", V.piece(*Id)},
                       {"ids", json::Array{*Id}},
                       {"tokens", json::Array{V.piece(*Id)}}};
  return json::Object{{"type", "TemplateProcessing"},
                      {"single", std::move(Single)},
                      {"pair", std::move(Pair)},
                      {"special_tokens", std::move(Specials)}};
}

json::Object bpeModel(const GGUFVocab &V, json::Object Vocab,
                      json::Array Merges, bool ByteFallback, bool FuseUnk) {
  return json::Object{{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", V.Unk ? json::Value(V.piece(*V.Unk))
                                          : json::Value(nullptr)},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", FuseUnk},
                      {"byte_fallback", ByteFallback},
                      {"ignore_merges", false},
                      {"vocab", std::move(Vocab)},
                      {"merges", std::move(Merges)}};
}

std::string tokenizerJson(json::Array Added, json::Value Normalizer,
                          json::Value PreTokenizer, json::Value Decoder,
                          json::Value PostProcessor, json::Object Model) {
  json::Object Root{{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", std::move(Added)},
                    {"normalizer", std::move(Normalizer)},
                    {"pre_tokenizer", std::move(PreTokenizer)},
                    {"post_processor", std::move(PostProcessor)},
                    {"decoder", std::move(Decoder)},
                    {"model", std::move(Model)}};
  return formatv("{0:2}", json::Value(std::move(Root))).str() + "\n";
}

/// The longest piece a SentencePiece vocabulary read from a GGUF may hold.
constexpr size_t kMaxSentencePieceBytes = 256;

/// tokenizer.ggml.model "llama": SentencePiece BPE, merges recovered from
/// the scores (see the file comment).
std::string sentencePieceJson(const GGUFVocab &V) {
  auto [Vocab, Added] = vocabularyJson(V);
  StringMap<int64_t> Ids;
  bool HasBytes = false;
  for (size_t I = 0; I < V.size(); ++I)
    if (V.type(I) != Unused) {
      Ids[V.piece(I)] = int64_t(I);
      HasBytes |= V.type(I) == Byte;
    }

  // Merges: merge-produced pieces by decreasing score, each with every
  // split into two vocabulary pieces.
  std::vector<std::pair<float, size_t>> Ranked;
  if (V.Scores)
    for (size_t I = 0; I < V.size(); ++I) {
      float S = float(*V.Scores->Elems[I].asFloat());
      if (V.type(I) == Normal && S < 0)
        Ranked.push_back({-S, I});
    }
  llvm::stable_sort(Ranked);
  json::Array Merges;
  for (auto [Score, I] : Ranked) {
    StringRef P = V.piece(I);
    std::vector<std::tuple<int64_t, int64_t, size_t>> Splits;
    for (size_t Cut = 1; Cut < P.size(); ++Cut) {
      if ((uint8_t(P[Cut]) & 0xC0) == 0x80) // inside a UTF-8 sequence
        continue;
      auto A = Ids.find(P.take_front(Cut)), B = Ids.find(P.drop_front(Cut));
      if (A != Ids.end() && B != Ids.end())
        Splits.push_back({A->second, B->second, Cut});
    }
    llvm::sort(Splits);
    for (auto [A, B, Cut] : Splits)
      Merges.push_back(
          json::Array{P.take_front(Cut).str(), P.drop_front(Cut).str()});
  }

  json::Array Normalizers;
  if (V.SpacePrefix)
    Normalizers.push_back(
        json::Object{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}});
  Normalizers.push_back(json::Object{{"type", "Replace"},
                                     {"pattern", json::Object{{"String", " "}}},
                                     {"content", "\xE2\x96\x81"}});
  json::Array Decoders{
      json::Object{{"type", "Replace"},
                   {"pattern", json::Object{{"String", "\xE2\x96\x81"}}},
                   {"content", " "}},
      json::Object{{"type", "ByteFallback"}}, json::Object{{"type", "Fuse"}}};
  if (V.SpacePrefix)
    Decoders.push_back(json::Object{
        {"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  return tokenizerJson(
      std::move(Added),
      json::Object{{"type", "Sequence"}, {"normalizers", std::move(Normalizers)}},
      nullptr,
      json::Object{{"type", "Sequence"}, {"decoders", std::move(Decoders)}},
      specialTokensProcessor(V),
      bpeModel(V, std::move(Vocab), std::move(Merges), HasBytes,
               /*FuseUnk=*/true));
}

/// tokenizer.ggml.model "gpt2": byte-level BPE with the merges as stored
/// and the split regex that tokenizer.ggml.pre names. llama.cpp applies no
/// normalizer to these vocabularies, so none is written (Qwen's
/// tokenizer.json has NFC, which GGUF does not record).
Expected<std::string> byteLevelJson(const GGUFFile &G, const GGUFVocab &V) {
  if (!V.Merges)
    return fileError(G.path(), "missing required key 'tokenizer.ggml.merges' "
                               "(a gpt2 vocabulary needs its merges)");
  std::string Pre;
  if (const GGUFValue *P = G.find("tokenizer.ggml.pre");
      P && P->Type == GGUFType::String)
    Pre = P->Str;
  StringRef Family;
  std::string Names;
  for (auto [Name, Of] : PreNames) {
    if (Name == Pre)
      Family = Of;
    Names += (Names.empty() ? "" : ", ") + Name.str();
  }
  if (Family.empty())
    return fileError(G.path(),
                     "tokenizer.ggml.pre '{0}' is not supported as input "
                     "(supported: {1})",
                     Pre, Names);
  auto [Vocab, Added] = vocabularyJson(V);
  json::Array Merges;
  for (size_t I = 0; I < V.Merges->Elems.size(); ++I) {
    StringRef M = V.Merges->Elems[I].Str;
    auto [A, B] = M.split(' ');
    if (A.empty() || B.empty() || B.contains(' '))
      return fileError(G.path(),
                       "tokenizer.ggml.merges[{0}] is '{1}', not two pieces "
                       "separated by one space",
                       I, M);
    Merges.push_back(json::Array{A.str(), B.str()});
  }
  auto ByteLevel = [](bool UseRegex) {
    return json::Object{{"type", "ByteLevel"},
                        {"add_prefix_space", false},
                        {"trim_offsets", true},
                        {"use_regex", UseRegex}};
  };
  json::Value PreTokenizer = ByteLevel(/*UseRegex=*/true);
  if (Family != "gpt2")
    PreTokenizer = json::Object{
        {"type", "Sequence"},
        {"pretokenizers",
         json::Array{
             json::Object{{"type", "Split"},
                          {"pattern", json::Object{{"Regex",
                                                    byteLevelSplitPattern(
                                                        Family)}}},
                          {"behavior", "Isolated"},
                          {"invert", false}},
             ByteLevel(/*UseRegex=*/false)}}};
  return tokenizerJson(std::move(Added), nullptr, std::move(PreTokenizer),
                       ByteLevel(/*UseRegex=*/true), specialTokensProcessor(V),
                       bpeModel(V, std::move(Vocab), std::move(Merges),
                                /*ByteFallback=*/false, /*FuseUnk=*/false));
}

} // namespace

Expected<std::string> tokenizerJsonFromGGUF(const GGUFFile &G) {
  Expected<StringRef> Model = G.requiredString("tokenizer.ggml.model");
  if (!Model)
    return Model.takeError();
  if (*Model != "llama" && *Model != "gpt2")
    return fileError(G.path(),
                     "tokenizer.ggml.model '{0}' is not supported "
                     "as input (supported: llama, gpt2)",
                     *Model);
  Expected<GGUFVocab> Vocab = readVocab(G);
  if (!Vocab)
    return Vocab.takeError();
  if (*Model == "llama") {
    // Recovering the merges tries every split of every piece, a cost of
    // the square of its length: a hostile 1 MB piece would hang it. Real
    // SentencePiece pieces are far shorter (Gemma 3's longest: 93 bytes).
    for (size_t I = 0; I < Vocab->size(); ++I)
      if (Vocab->piece(I).size() > kMaxSentencePieceBytes)
        return fileError(G.path(),
                         "tokenizer.ggml.tokens[{0}] is {1} bytes long; a "
                         "SentencePiece piece may be at most {2}",
                         I, Vocab->piece(I).size(), kMaxSentencePieceBytes);
    return sentencePieceJson(*Vocab);
  }
  return byteLevelJson(G, *Vocab);
}

} // namespace vindex
