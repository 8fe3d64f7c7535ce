//===- TokenizerTest.cpp - Tests for vindex::Tokenizer --------------------===//
//
// Part of Vindex.
//
//===----------------------------------------------------------------------===//
//
// The fixture oracles (ids produced by SentencePiece itself and the golden
// references) are compared line by line; the hand-written tests cover the
// error paths and the byte-level and Metaspace pipelines, which the fixture
// tokenizer does not use.
//
//===----------------------------------------------------------------------===//

#include "vindex/Formats/Tokenizer.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "gtest/gtest.h"

#include <chrono>
#include <cstdio>

#ifndef VINDEX_TEST_FIXTURES
#error "VINDEX_TEST_FIXTURES must name the shared fixtures folder"
#endif

using namespace llvm;
using namespace vindex;

namespace {

std::string fixture(StringRef Rel) {
  return (Twine(VINDEX_TEST_FIXTURES) + "/" + Rel).str();
}

std::string readFileOrDie(StringRef Path) {
  auto Buffer = MemoryBuffer::getFile(Path);
  if (!Buffer) {
    ADD_FAILURE() << "cannot read " << Path.str();
    return "";
  }
  return (*Buffer)->getBuffer().str();
}

/// Loads a tokenizer, failing the test with the error message otherwise.
std::optional<Tokenizer> load(StringRef Path) {
  Expected<Tokenizer> T = Tokenizer::fromFile(Path);
  if (!T) {
    ADD_FAILURE() << toString(T.takeError());
    return std::nullopt;
  }
  return std::move(*T);
}

std::optional<Tokenizer> loadText(StringRef Json) {
  Expected<Tokenizer> T = Tokenizer::fromJSON(Json, "inline.json");
  if (!T) {
    ADD_FAILURE() << toString(T.takeError());
    return std::nullopt;
  }
  return std::move(*T);
}

/// The error message of a load that must fail.
std::string loadError(StringRef Json, StringRef Name = "tokenizer.json") {
  Expected<Tokenizer> T = Tokenizer::fromJSON(Json, Name);
  if (T) {
    ADD_FAILURE() << "loading succeeded unexpectedly";
    return "";
  }
  return toString(T.takeError());
}

std::vector<int32_t> toIds(const json::Array &A) {
  std::vector<int32_t> Ids;
  for (const json::Value &V : A)
    Ids.push_back(int32_t(V.getAsInteger().value_or(-1)));
  return Ids;
}

std::string show(ArrayRef<int32_t> Ids) {
  std::string S = "[";
  for (size_t I = 0; I < Ids.size(); ++I)
    S += (I ? ", " : "") + std::to_string(Ids[I]);
  return S + "]";
}

struct IdsLine {
  std::string Text;
  std::vector<int32_t> Ids;
  std::optional<std::string> Decoded;
};

/// Reads a {text, ids[, decoded]} JSON-lines oracle.
std::vector<IdsLine> readIdsFile(StringRef Rel) {
  std::vector<IdsLine> Lines;
  std::string Content = readFileOrDie(fixture(Rel));
  SmallVector<StringRef, 0> Raw;
  StringRef(Content).split(Raw, '\n', -1, /*KeepEmpty=*/false);
  for (StringRef L : Raw) {
    Expected<json::Value> V = json::parse(L);
    if (!V) {
      ADD_FAILURE() << Rel.str() << ": " << toString(V.takeError());
      continue;
    }
    const json::Object *O = V->getAsObject();
    IdsLine Line;
    Line.Text = O->getString("text").value_or("").str();
    Line.Ids = toIds(*O->getArray("ids"));
    if (std::optional<StringRef> D = O->getString("decoded"))
      Line.Decoded = D->str();
    Lines.push_back(std::move(Line));
  }
  return Lines;
}

class FixtureTokenizer : public testing::Test {
protected:
  static void SetUpTestSuite() {
    Gemma = load(fixture("models/tiny-gemma3/tokenizer.json"));
    Llama = load(fixture("models/tiny-llama/tokenizer.json"));
  }
  static void TearDownTestSuite() {
    Gemma.reset();
    Llama.reset();
  }

  /// Checks encode(Text, false) == Ids (and decode when \p CheckDecode) on
  /// every line; reports the counts.
  static void checkCorpus(StringRef Rel, size_t ExpectedLines,
                          bool CheckDecode) {
    ASSERT_TRUE(Gemma);
    std::vector<IdsLine> Lines = readIdsFile(Rel);
    EXPECT_EQ(Lines.size(), ExpectedLines);
    size_t EncodeOK = 0, DecodeOK = 0, Decoded = 0;
    for (const IdsLine &L : Lines) {
      std::vector<int32_t> Got = Gemma->encode(L.Text, /*AddSpecial=*/false);
      if (Got == L.Ids)
        ++EncodeOK;
      else
        ADD_FAILURE() << Rel.str() << ": encode(\"" << L.Text
                      << "\") = " << show(Got) << ", want " << show(L.Ids);
      if (!CheckDecode)
        continue;
      // Where the oracle has no "decoded", the text itself round-trips.
      const std::string &Want = L.Decoded ? *L.Decoded : L.Text;
      ++Decoded;
      std::string Back = Gemma->decode(L.Ids);
      if (Back == Want)
        ++DecodeOK;
      else
        ADD_FAILURE() << Rel.str() << ": decode(" << show(L.Ids) << ") = \""
                      << Back << "\", want \"" << Want << "\"";
    }
    std::printf("[ oracle   ] %s: encode %zu/%zu identical", Rel.str().c_str(),
                EncodeOK, Lines.size());
    if (CheckDecode)
      std::printf(", decode %zu/%zu identical", DecodeOK, Decoded);
    std::printf("\n");
  }

  static std::optional<Tokenizer> Gemma, Llama;
};

std::optional<Tokenizer> FixtureTokenizer::Gemma;
std::optional<Tokenizer> FixtureTokenizer::Llama;

TEST_F(FixtureTokenizer, Properties) {
  ASSERT_TRUE(Gemma && Llama);
  for (const Tokenizer *T : {&*Gemma, &*Llama}) {
    EXPECT_EQ(T->kind(), Tokenizer::Kind::SentencePieceBPE);
    EXPECT_EQ(T->vocabSize(), 2048u);
    EXPECT_EQ(T->bosId(), 2);
    EXPECT_EQ(T->eosId(), 1);
    EXPECT_EQ(T->piece(2), "<bos>");
    EXPECT_EQ(T->piece(4), "<0x00>");
    EXPECT_EQ(T->piece(259), "<0xFF>");
    EXPECT_EQ(T->id("<unk>"), 3);
    EXPECT_EQ(T->id("\xE2\x96\x81is"), 264); // "▁is"
    EXPECT_EQ(T->id("no such piece"), std::nullopt);
    EXPECT_EQ(T->piece(5000), "");
    for (int32_t Id : {0, 1, 2, 3})
      EXPECT_TRUE(T->isSpecial(Id));
    EXPECT_FALSE(T->isSpecial(264));
  }
}

TEST_F(FixtureTokenizer, TrainCorpus) {
  checkCorpus("corpus/train.ids.jsonl", 5334, /*CheckDecode=*/true);
}

TEST_F(FixtureTokenizer, HeldoutCorpus) {
  checkCorpus("corpus/heldout.ids.jsonl", 1778, /*CheckDecode=*/true);
}

TEST_F(FixtureTokenizer, StressStrings) {
  checkCorpus("corpus/tokenizer_stress.ids.jsonl", 309, /*CheckDecode=*/true);
}

/// encode(prompt) with <bos> equals the goldens' token_ids, for every prompt
/// of prompts.txt, for both models.
TEST_F(FixtureTokenizer, Goldens) {
  for (StringRef Model : {"tiny-gemma3", "tiny-llama"}) {
    const Tokenizer &T = Model == "tiny-gemma3" ? *Gemma : *Llama;
    std::string Golden =
        readFileOrDie(fixture(("references/" + Model + "/goldens.json").str()));
    Expected<json::Value> Root = json::parse(Golden);
    ASSERT_TRUE(bool(Root)) << toString(Root.takeError());
    const json::Array *Prompts = Root->getAsObject()->getArray("prompts");
    ASSERT_TRUE(Prompts);

    std::string PromptsTxt =
        readFileOrDie(fixture(("references/" + Model + "/prompts.txt").str()));
    SmallVector<StringRef, 0> PromptLines;
    StringRef(PromptsTxt).split(PromptLines, '\n', -1, /*KeepEmpty=*/false);
    EXPECT_EQ(PromptLines.size(), Prompts->size());

    size_t OK = 0;
    for (size_t I = 0; I < Prompts->size(); ++I) {
      const json::Object *P = (*Prompts)[I].getAsObject();
      StringRef Text = P->getString("text").value_or("");
      if (I < PromptLines.size()) {
        EXPECT_EQ(Text, PromptLines[I]);
      }
      std::vector<int32_t> Want = toIds(*P->getArray("token_ids"));
      std::vector<int32_t> Got = T.encode(Text);
      if (Got == Want)
        ++OK;
      else
        ADD_FAILURE() << Model.str() << ": encode(\"" << Text.str()
                      << "\") = " << show(Got) << ", want " << show(Want);
    }
    std::printf("[ oracle   ] references/%s/goldens.json: %zu/%zu prompts "
                "identical\n",
                Model.str().c_str(), OK, Prompts->size());
  }
}

TEST_F(FixtureTokenizer, ByteFallbackForUnknownCharacter) {
  // U+20AC EURO SIGN is not in the vocabulary: it becomes its three UTF-8
  // bytes after the "▁" that the normalizer prepends.
  ASSERT_EQ(Gemma->id("\xE2\x82\xAC"), std::nullopt);
  std::vector<int32_t> Want = {*Gemma->id("\xE2\x96\x81"), *Gemma->id("<0xE2>"),
                               *Gemma->id("<0x82>"), *Gemma->id("<0xAC>")};
  EXPECT_EQ(Want, (std::vector<int32_t>{1992, 230, 134, 176}));
  EXPECT_EQ(Gemma->encode("\xE2\x82\xAC", /*AddSpecial=*/false), Want);
  EXPECT_EQ(Gemma->decode(Want), "\xE2\x82\xAC");
  // A lone continuation byte cannot be decoded: one U+FFFD per byte.
  EXPECT_EQ(Gemma->decode({*Gemma->id("<0x82>"), *Gemma->id("<0x82>")}),
            "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(FixtureTokenizer, DecodeSkipsSpecials) {
  std::vector<int32_t> Ids = Gemma->encode("The capital of France is");
  EXPECT_EQ(Ids, (std::vector<int32_t>{2, 303, 342, 270, 607, 264}));
  Ids.push_back(*Gemma->eosId());
  EXPECT_EQ(Gemma->decode(Ids), "The capital of France is");
  EXPECT_EQ(Gemma->decode(Ids, /*SkipSpecial=*/false),
            "<bos> The capital of France is<eos>");
  EXPECT_EQ(Gemma->decode({}), "");
  EXPECT_EQ(Gemma->decode({-1, 99999, INT32_MAX, INT32_MIN}), "");
  EXPECT_FALSE(Gemma->isSpecial(INT32_MAX));
}

TEST_F(FixtureTokenizer, EmptyAndSpecialText) {
  EXPECT_EQ(Gemma->encode(""), std::vector<int32_t>{2});
  EXPECT_EQ(Gemma->encode("", /*AddSpecial=*/false), std::vector<int32_t>{});
  // Special tokens written in the text are matched before normalization;
  // the text after them is normalized (gets its "▁") on its own.
  std::vector<int32_t> Want = {2};
  for (int32_t Id : Gemma->encode("Paris", /*AddSpecial=*/false))
    Want.push_back(Id);
  Want.push_back(1);
  EXPECT_EQ(Gemma->encode("<bos>Paris<eos>", /*AddSpecial=*/false), Want);
  EXPECT_EQ(Gemma->preTokenize("a<eos>b"),
            (std::vector<std::string>{"\xE2\x96\x81"
                                      "a",
                                      "<eos>",
                                      "\xE2\x96\x81"
                                      "b"}));
}

/// A 512-token prompt must encode well under a millisecond.
TEST_F(FixtureTokenizer, EncodesLongPromptQuickly) {
  std::vector<IdsLine> Lines = readIdsFile("corpus/train.ids.jsonl");
  std::string Prompt;
  std::vector<int32_t> Want;
  for (const IdsLine &L : Lines) {
    if (Want.size() >= 511)
      break;
    Prompt += (Prompt.empty() ? "" : " ") + L.Text;
    Want = Gemma->encode(Prompt);
  }
  ASSERT_GE(Want.size(), 512u);
  double Best = 1e9;
  for (int Round = 0; Round < 5; ++Round) {
    auto Start = std::chrono::steady_clock::now();
    constexpr int Iterations = 50;
    for (int I = 0; I < Iterations; ++I)
      EXPECT_EQ(Gemma->encode(Prompt).size(), Want.size());
    std::chrono::duration<double, std::micro> D =
        std::chrono::steady_clock::now() - Start;
    Best = std::min(Best, D.count() / Iterations);
  }
  std::printf("[ timing   ] encode of a %zu-byte, %zu-token prompt: %.1f us\n",
              Prompt.size(), Want.size(), Best);
  EXPECT_LT(Best, 1000.0);
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(TokenizerErrors, UnigramModelIsRejected) {
  std::string Msg = loadError(R"({"model": {"type": "Unigram", "unk_id": 0,
                                            "vocab": [["<unk>", 0.0]]}})");
  EXPECT_EQ(Msg, "tokenizer.json: model.type 'Unigram' is not supported "
                 "(supported: BPE)");
}

TEST(TokenizerErrors, MalformedJSONNamesTheFile) {
  std::string Msg = loadError(R"({"model": {"type": "BPE",)", "my/tok.json");
  EXPECT_TRUE(StringRef(Msg).starts_with("my/tok.json: invalid JSON")) << Msg;
}

TEST(TokenizerErrors, MissingFileNamesThePath) {
  Expected<Tokenizer> T = Tokenizer::fromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(bool(T));
  std::string Msg = toString(T.takeError());
  EXPECT_TRUE(StringRef(Msg).starts_with("/nonexistent/tokenizer.json: "))
      << Msg;
}

const char *MinimalModel =
    R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                  "merges": ["a b"]})";

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  auto With = [](StringRef Extra) {
    return ("{" + Twine(MinimalModel) + ", " + Extra + "}").str();
  };
  EXPECT_EQ(loadError(With(R"("normalizer": {"type": "Lowercase"})")),
            "tokenizer.json: normalizer.type 'Lowercase' is not supported "
            "(supported: Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, "
            "Sequence)");
  EXPECT_EQ(
      loadError(With(R"("normalizer": {"type": "Sequence", "normalizers":
          [{"type": "NFKC"}, {"type": "BertNormalizer"}]})")),
      "tokenizer.json: normalizer.normalizers[1].type 'BertNormalizer' is not "
      "supported (supported: Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, "
      "Sequence)");
  EXPECT_EQ(loadError(With(R"("pre_tokenizer": {"type": "Whitespace"})")),
            "tokenizer.json: pre_tokenizer.type 'Whitespace' is not supported "
            "(supported: Metaspace, ByteLevel, Split, Digits, Sequence)");
  EXPECT_EQ(loadError(With(R"("decoder": {"type": "WordPiece"})")),
            "tokenizer.json: decoder.type 'WordPiece' is not supported "
            "(supported: Replace, ByteFallback, Fuse, Strip, Metaspace, "
            "ByteLevel, Sequence)");
  EXPECT_EQ(loadError(With(R"("post_processor": {"type": "BertProcessing"})")),
            "tokenizer.json: post_processor.type 'BertProcessing' is not "
            "supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  std::string Msg = loadError(With(R"("pre_tokenizer": {"type": "Split",
      "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false})"));
  EXPECT_TRUE(StringRef(Msg).starts_with(
      "tokenizer.json: pre_tokenizer.pattern: Regex '\\w+' is not supported"))
      << Msg;
  EXPECT_EQ(loadError(R"({"model": {"type": "WordPiece", "vocab": {}}})"),
            "tokenizer.json: model.type 'WordPiece' is not supported "
            "(supported: BPE)");
  EXPECT_EQ(loadError(R"({"model": {"type": "BPE", "vocab": {"a": 0},
                                    "merges": ["a b"]}})"),
            "tokenizer.json: model.merges[0]: 'b' is not in model.vocab");
}

TEST(TokenizerErrors, RunawayInputsAreRefused) {
  auto With = [](StringRef Extra) {
    return ("{" + Twine(MinimalModel) + ", " + Extra + "}").str();
  };
  // Each "a" -> "aa" step doubles a text: 34 of them asked for gigabytes
  // while the added tokens were normalized.
  std::string Double = R"({"type": "Replace", "pattern": {"String": "a"},
                            "content": "aa"})";
  std::string Doubling = Double;
  for (int I = 1; I < 8; ++I)
    Doubling += "," + Double;
  EXPECT_EQ(loadError(With(R"("normalizer": {"type": "Sequence",
                                "normalizers": [)" +
                           Doubling + "]}")),
            "tokenizer.json: the normalizer's Replace steps can make a text "
            "more than 64 times longer");
  EXPECT_EQ(loadError(With(R"("decoder": {"type": "Sequence",
                                "decoders": [)" +
                           Doubling + "]}")),
            "tokenizer.json: the decoder's Replace steps can make a text more "
            "than 64 times longer");
  // A few doublings are what real tokenizers do (" " -> U+2581 is 3 bytes).
  EXPECT_TRUE(bool(loadText(With(R"("normalizer": {"type": "Sequence",
      "normalizers": [)" + Double +
                                 "]}"))));
  // Ids index tables: one far past the entries is refused, not allocated.
  EXPECT_EQ(loadError(R"({"model": {"type": "BPE", "vocab": {"a": 16777215},
                                    "merges": []}})"),
            "tokenizer.json: model.vocab['a'] is not a valid id (ids run "
            "from 0 to about the number of entries, 1)");
  EXPECT_EQ(loadError(With(R"("added_tokens": [{"id": 9000000,
      "content": "<x>", "special": true}])")),
            "tokenizer.json: added_tokens[0]: id 9000000 is not a valid id");
  // A compiled tokenizer edited by hand: a Strip decoder whose character
  // is empty would loop Start times a token, and a vocabulary id without
  // a piece would be looked up past pieces_by_id.
  auto Edited = [](std::string Bytes, StringRef From, StringRef To) {
    size_t At = Bytes.find(From.str());
    EXPECT_NE(At, std::string::npos);
    EXPECT_EQ(Bytes.find(From.str(), At + 1), std::string::npos);
    if (At != std::string::npos)
      Bytes.replace(At, From.size(), To.str());
    return toString(Tokenizer::fromCompiled(
                        MemoryBuffer::getMemBufferCopy(Bytes, "t.vfb"), "t.vfb")
                        .takeError());
  };
  Expected<std::string> Strip = Tokenizer::compile(
      With(R"("decoder": {"type": "Strip", "content": " ", "start": 4,
                          "stop": 0})"),
      "t.json");
  ASSERT_TRUE(bool(Strip)) << toString(Strip.takeError());
  EXPECT_EQ(
      Edited(*Strip, StringRef("\1\0\0\0 \0", 6), StringRef("\0\0\0\0\0\0", 6)),
      "t.vfb: a Strip or Metaspace decoder has no character");
  Expected<std::string> Plain =
      Tokenizer::compile(With("\"decoder\": null"), "t.json");
  ASSERT_TRUE(bool(Plain)) << toString(Plain.takeError());
  // vocab_ids: 3 ids, 0 to 2 in some order; the 2 becomes 3.
  std::string Ids = Plain->substr(0, 0);
  for (const char *Order :
       {"\0\1\2", "\0\2\1", "\1\0\2", "\1\2\0", "\2\0\1", "\2\1\0"}) {
    std::string V("\3\0\0\0", 4);
    for (int I = 0; I < 3; ++I)
      V += std::string(1, Order[I]) + std::string(3, '\0');
    if (Plain->find(V) != std::string::npos)
      Ids = V;
  }
  ASSERT_FALSE(Ids.empty());
  std::string Past = Ids;
  Past[4 + 4 * (Ids.find(std::string("\2\0\0\0", 4), 4) / 4 - 1)] = '\3';
  EXPECT_EQ(Edited(*Plain, Ids, Past),
            "t.vfb: vocabulary id 3 is not a valid id");

  // A compiled tokenizer shorter than its identifier.
  Expected<Tokenizer> Short = Tokenizer::fromCompiled(
      MemoryBuffer::getMemBufferCopy("VTO", "short.vfb"), "short.vfb");
  ASSERT_FALSE(bool(Short));
  EXPECT_EQ(toString(Short.takeError()), "short.vfb: not a compiled tokenizer");
}

//===----------------------------------------------------------------------===//
// Byte-level BPE (GPT-2 style), built by hand
//===----------------------------------------------------------------------===//

// Byte-level pieces spell ' ' as U+0120 "Ġ" and '\n' as U+010A "Ċ".
// Merges, by rank:
//   0 "l l" -> ll(11)   3 "He llo" -> Hello(13)   6 "Ġw or" -> Ġwor(16)
//   1 "H e" -> He(10)   4 "Ġ w" -> Ġw(14)         7 "l d" -> ld(17)
//   2 "ll o" -> llo(12) 5 "o r" -> or(15)         8 "Ġwor ld" -> Ġworld(18)
const char *ByteLevelJSON = R"json({
  "version": "1.0",
  "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false,
                    "lstrip": false, "rstrip": false, "normalized": false,
                    "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                    "trim_offsets": true, "use_regex": true},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": false,
                     "trim_offsets": true, "use_regex": true},
  "decoder": {"type": "ByteLevel", "add_prefix_space": false,
              "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE", "dropout": null, "unk_token": null,
    "continuing_subword_prefix": "", "end_of_word_suffix": "",
    "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"<|endoftext|>": 0, "H": 1, "e": 2, "l": 3, "o": 4, "\u0120": 5,
              "w": 6, "r": 7, "d": 8, "!": 9, "He": 10, "ll": 11, "llo": 12,
              "Hello": 13, "\u0120w": 14, "or": 15, "\u0120wor": 16, "ld": 17,
              "\u0120world": 18, "\u010a": 19},
    "merges": ["l l", "H e", "ll o", "He llo", "\u0120 w", "o r",
               "\u0120w or", "l d", "\u0120wor ld"]
  }
})json";

TEST(ByteLevelBPE, HandBuiltTokenizer) {
  std::optional<Tokenizer> T = loadText(ByteLevelJSON);
  ASSERT_TRUE(T);
  EXPECT_EQ(T->kind(), Tokenizer::Kind::ByteLevelBPE);
  EXPECT_EQ(T->vocabSize(), 20u);
  EXPECT_EQ(T->bosId(), std::nullopt);
  EXPECT_EQ(T->eosId(), 0);

  // The GPT-2 regex splits "Hello world!" into "Hello", " world", "!",
  // mapped to "Hello", "Ġworld", "!".
  EXPECT_EQ(T->preTokenize("Hello world!"),
            (std::vector<std::string>{"Hello", "\xC4\xA0world", "!"}));
  // "Hello": H e l l o -> (rank 0) H e ll o -> (1) He ll o -> (2) He llo
  //   -> (3) Hello = 13.
  // "Ġworld": Ġ w o r l d -> (4) Ġw o r l d -> (5) Ġw or l d
  //   -> (6) Ġwor l d -> (7) Ġwor ld -> (8) Ġworld = 18.
  // "!" = 9. The ByteLevel post-processor adds nothing.
  EXPECT_EQ(T->encode("Hello world!"), (std::vector<int32_t>{13, 18, 9}));
  // Without the space "world" stops at w(6) or(15) ld(17): Ġw+or is the only
  // way to use "or" further.
  EXPECT_EQ(T->encode("world"), (std::vector<int32_t>{6, 15, 17}));
  // Equal ranks merge leftmost first: l l l l -> ll l l -> ll ll.
  EXPECT_EQ(T->encode("llll"), (std::vector<int32_t>{11, 11}));
  // Two spaces: \s+(?!\S) takes the first alone, the second prefixes "world".
  EXPECT_EQ(T->encode("Hello  world"), (std::vector<int32_t>{13, 5, 18}));
  // '\n' is byte 0x0A -> "Ċ" = 19; the special token is matched in the text.
  EXPECT_EQ(T->encode("Hello\n<|endoftext|>"),
            (std::vector<int32_t>{13, 19, 0}));
  // Characters outside the vocabulary are dropped (no unk, no byte fallback).
  EXPECT_EQ(T->encode("Hello?"), (std::vector<int32_t>{13}));

  EXPECT_EQ(T->decode({13, 18, 9}), "Hello world!");
  EXPECT_EQ(T->decode({13, 19, 0}), "Hello\n");
  EXPECT_EQ(T->decode({13, 19, 0}, /*SkipSpecial=*/false),
            "Hello\n<|endoftext|>");
}

/// The Llama-3 split regex, checked against Python's `regex` module on the
/// same strings.
TEST(ByteLevelBPE, Llama3SplitRegex) {
  std::string Json =
      (R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex":
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    "behavior": "Isolated", "invert": false}, )" +
       Twine(MinimalModel) + "}")
          .str();
  std::optional<Tokenizer> T = loadText(Json);
  ASSERT_TRUE(T);
  EXPECT_EQ(
      T->preTokenize("I'M  here\n\n123456 ok!!\n(hi) \t x  "),
      (std::vector<std::string>{"I", "'M", " ", " here", "\n\n", "123", "456",
                                " ok", "!!\n", "(hi", ")", " \t", " x", "  "}));
  EXPECT_EQ(T->preTokenize("don't 12345  \n\n  \xC3\xA9"),
            (std::vector<std::string>{"don", "'t", " ", "123", "45", "  \n\n",
                                      " ", " \xC3\xA9"}));
}

/// The GPT-2 regex as used by a ByteLevel pre-tokenizer, before the bytes are
/// mapped (Python's `regex` module gives the same pieces).
TEST(ByteLevelBPE, GPT2SplitRegex) {
  std::string Json =
      (R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex":
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
    "behavior": "Isolated", "invert": false}, )" +
       Twine(MinimalModel) + "}")
          .str();
  std::optional<Tokenizer> T = loadText(Json);
  ASSERT_TRUE(T);
  EXPECT_EQ(T->preTokenize("I'M  here\n\n123456 ok!!\n(hi) \t x  "),
            (std::vector<std::string>{"I", "'", "M", " ", " here", "\n", "\n",
                                      "123456", " ok", "!!", "\n", "(", "hi",
                                      ")", " \t", " x", "  "}));
}

/// Byte fallback covers every byte, NUL included: "<0x00>" (LLVM's
/// utohexstr with a width of 2 spells 0 as "000", which once lost it).
TEST(ByteFallback, EveryByteHasItsPiece) {
  std::optional<Tokenizer> T = loadText(R"({"model": {"type": "BPE",
      "vocab": {"<unk>": 0, "<0x00>": 1, "<0x0A>": 2, "<0xFF>": 3, "a": 4},
      "merges": [], "unk_token": "<unk>", "byte_fallback": true}})");
  ASSERT_TRUE(T);
  EXPECT_EQ(T->encode(StringRef("a\0\na", 4), false),
            (std::vector<int32_t>{4, 1, 2, 4}));
  EXPECT_EQ(T->encode("b", false), (std::vector<int32_t>{0}));
}

/// The Digits pre-tokenizer (SmolLM's), as Hugging Face splits with it:
/// numeric characters (\p{N}, here also U+0663 ARABIC-INDIC THREE) one by
/// one, or in runs.
TEST(PreTokenizers, Digits) {
  auto Pieces = [](StringRef Individual, StringRef Text) {
    std::optional<Tokenizer> T = loadText(
        ("{\"pre_tokenizer\": {\"type\": \"Digits\", "
         "\"individual_digits\": " + Individual + "}, " +
         Twine(MinimalModel) + "}")
            .str());
    return T ? T->preTokenize(Text) : std::vector<std::string>{};
  };
  EXPECT_EQ(Pieces("true", "Call 123 \xD9\xA3" "4x"),
            (std::vector<std::string>{"Call ", "1", "2", "3", " ",
                                      "\xD9\xA3", "4", "x"}));
  EXPECT_EQ(Pieces("false", "Call 123 \xD9\xA3" "4x"),
            (std::vector<std::string>{"Call ", "123", " ", "\xD9\xA3" "4",
                                      "x"}));
}

/// The four normalization forms. Goldens from the Unicode standard's own
/// examples (UAX #15 and NormalizationTest.txt): e + COMBINING ACUTE composes
/// to U+00E9; U+212B ANGSTROM SIGN is canonically U+00C5; the ligature U+FB01
/// and superscript two are compatibility characters; Hangul syllables
/// decompose to jamo.
TEST(Normalizers, UnicodeNormalizationForms) {
  auto Normalized = [](StringRef Form, StringRef Text) {
    std::optional<Tokenizer> T = loadText(
        ("{\"normalizer\": {\"type\": \"" + Form + "\"}, " +
         Twine(MinimalModel) + "}")
            .str());
    if (!T)
      return std::string("<load failed>");
    std::vector<std::string> Words = T->preTokenize(Text);
    return Words.empty() ? std::string() : Words[0];
  };
  StringRef Decomposed = "e\xCC\x81\xE2\x84\xAB\xEF\xAC\x81\xC2\xB2\xEA\xB0\x80";
  // NFC: é Å ﬁ ² 가
  EXPECT_EQ(Normalized("NFC", Decomposed),
            "\xC3\xA9\xC3\x85\xEF\xAC\x81\xC2\xB2\xEA\xB0\x80");
  // NFD: e+◌́ A+◌̊ ﬁ ² ᄀ+ᅡ
  EXPECT_EQ(Normalized("NFD", Decomposed),
            "e\xCC\x81" "A\xCC\x8A\xEF\xAC\x81\xC2\xB2"
            "\xE1\x84\x80\xE1\x85\xA1");
  // NFKC: é Å fi 2 가
  EXPECT_EQ(Normalized("NFKC", Decomposed),
            "\xC3\xA9\xC3\x85" "fi2\xEA\xB0\x80");
  // NFKD: e+◌́ A+◌̊ fi 2 ᄀ+ᅡ
  EXPECT_EQ(Normalized("NFKD", Decomposed),
            "e\xCC\x81" "A\xCC\x8A" "fi2\xE1\x84\x80\xE1\x85\xA1");
  EXPECT_EQ(Normalized("NFC", "plain ASCII"), "plain ASCII");
  EXPECT_EQ(Normalized("NFC", ""), "");
}

/// The split regexes' classes come from utf8proc's Unicode data (15.0): the
/// Kawi digits U+11F50.. (new in Unicode 15.0, category Nd in its
/// UnicodeData.txt) are numbers, split one per piece by Qwen 2's \p{N}.
TEST(ByteLevelBPE, SplitClassesFollowUnicode15) {
  std::string Json =
      (R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex":
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    "behavior": "Isolated", "invert": false}, )" +
       Twine(MinimalModel) + "}")
          .str();
  std::optional<Tokenizer> T = loadText(Json);
  ASSERT_TRUE(T);
  // U+11F50 U+11F51, then U+3000 IDEOGRAPHIC SPACE (White_Space) and "x".
  EXPECT_EQ(T->preTokenize("\xF0\x91\xBD\x90\xF0\x91\xBD\x91\xE3\x80\x80" "x"),
            (std::vector<std::string>{"\xF0\x91\xBD\x90", "\xF0\x91\xBD\x91",
                                      "\xE3\x80\x80" "x"}));
}

//===----------------------------------------------------------------------===//
// Added tokens
//===----------------------------------------------------------------------===//

TEST(AddedTokens, StripSingleWordAndNormalized) {
  std::optional<Tokenizer> T = loadText(R"json({
    "added_tokens": [
      {"id": 4, "content": "<m>", "single_word": false, "lstrip": true,
       "rstrip": true, "normalized": false, "special": true},
      {"id": 5, "content": "<w>", "single_word": true, "lstrip": false,
       "rstrip": false, "normalized": false, "special": false},
      {"id": 9, "content": "<c>", "single_word": false, "lstrip": false,
       "rstrip": false, "normalized": true, "special": false}],
    "normalizer": {"type": "Replace", "pattern": {"String": "c"},
                   "content": "a"},
    "model": {"type": "BPE",
              "vocab": {"a": 0, "b": 1, "ab": 2, " ": 3, "<": 6, "w": 7,
                        ">": 8},
              "merges": ["a b"]}})json");
  ASSERT_TRUE(T);
  EXPECT_EQ(T->vocabSize(), 10u);
  EXPECT_EQ(T->id("<m>"), 4);
  EXPECT_EQ(T->piece(9), "<c>");
  // lstrip/rstrip: the spaces around <m> belong to it.
  EXPECT_EQ(T->encode("ab <m> ab"), (std::vector<int32_t>{2, 4, 2}));
  // single_word: <w> only counts between non-word characters.
  EXPECT_EQ(T->encode("ab <w> a"), (std::vector<int32_t>{2, 3, 5, 3, 0}));
  EXPECT_EQ(T->encode("ab<w>"), (std::vector<int32_t>{2, 6, 7, 8}));
  // A normalized token is matched after normalization, in normalized form
  // ("<c>" -> "<a>"), so "<c>" and "<a>" in the text both match it; like
  // Hugging Face, decode() shows the normalized form.
  EXPECT_EQ(T->encode("<c>b"), (std::vector<int32_t>{9, 1}));
  EXPECT_EQ(T->encode("<a>b"), (std::vector<int32_t>{9, 1}));
  EXPECT_EQ(T->decode({9, 1}), "<a> b");
  EXPECT_TRUE(T->isSpecial(4));
  EXPECT_FALSE(T->isSpecial(5));
  EXPECT_EQ(T->decode({2, 4, 5}), "ab <w>");
}

/// llvm::json mis-decodes escaped surrogate pairs above U+1FFFF; the loader
/// rewrites them first.
TEST(AddedTokens, EscapedSurrogatePairsInVocabulary) {
  std::optional<Tokenizer> T = loadText(R"json({
    "model": {"type": "BPE",
              "vocab": {"\ud84d\udcae": 0, "\ud83d\ude00": 1, "\\": 2,
                        "\\ud84d\udcae": 3},
              "merges": []}})json");
  ASSERT_TRUE(T);
  EXPECT_EQ(T->id("\xF0\xA3\x92\xAE"), 0); // U+234AE
  EXPECT_EQ(T->id("\xF0\x9F\x98\x80"), 1); // U+1F600
  EXPECT_EQ(T->id("\\"), 2);
  // An escaped backslash followed by "ud84d" is not a surrogate escape; the
  // lone low surrogate after it becomes U+FFFD.
  EXPECT_EQ(T->id("\\ud84d\xEF\xBF\xBD"), 3);
  EXPECT_EQ(T->encode("\xF0\xA3\x92\xAE\xF0\x9F\x98\x80"),
            (std::vector<int32_t>{0, 1}));
}

//===----------------------------------------------------------------------===//
// Metaspace pre-tokenizer and decoder (Mistral style)
//===----------------------------------------------------------------------===//

TEST(MetaspaceBPE, SplitsAndDecodes) {
  std::optional<Tokenizer> T = loadText(R"json({
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                      "prepend_scheme": "first", "split": true},
    "decoder": {"type": "Metaspace", "replacement": "\u2581",
                "prepend_scheme": "first", "split": true},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true,
              "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "\u2581a": 4,
                        "\u2581b": 5},
              "merges": [["\u2581", "a"], ["\u2581", "b"]]}})json");
  ASSERT_TRUE(T);
  EXPECT_EQ(T->kind(), Tokenizer::Kind::SentencePieceBPE);
  // "a  b" -> "▁a▁▁b": each "▁" joins the piece after it unless that piece is
  // another "▁".
  EXPECT_EQ(T->preTokenize("a  b"), (std::vector<std::string>{"\xE2\x96\x81"
                                                              "a",
                                                              "\xE2\x96\x81",
                                                              "\xE2\x96\x81"
                                                              "b"}));
  EXPECT_EQ(T->encode("a  b"), (std::vector<int32_t>{4, 1, 5}));
  // Unknown characters fuse into one <unk>.
  EXPECT_EQ(T->encode("a xyz"), (std::vector<int32_t>{4, 1, 0}));
  EXPECT_EQ(T->decode({4, 1, 5}), "a  b");
}

} // namespace
