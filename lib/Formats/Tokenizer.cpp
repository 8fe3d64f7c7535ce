//===- Tokenizer.cpp - Hugging Face tokenizer.json BPE tokenizer ----------===//
//
// Part of Vindex.
//
//===----------------------------------------------------------------------===//
//
// The pipeline mirrors the Hugging Face `tokenizers` library:
//
//   encode: split on added tokens matched in the raw text
//           -> normalizer (per remaining piece)
//           -> split on added tokens that are matched after normalization
//           -> pre-tokenizer (splits a piece into words)
//           -> BPE model (per word) -> post-processor (<bos> etc.)
//   decode: ids -> pieces (optionally without specials) -> decoder steps
//
// Every component is parsed into a small plain struct at load time; anything
// we do not implement is rejected then, so encode() and decode() cannot fail.
//
//===----------------------------------------------------------------------===//

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Formats/Tokenizer_generated.h"
#include "vindex/Support/JSON.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/xxhash.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <functional>

using namespace llvm;
using namespace vindex;

namespace tfb = vindex::fb::tokenizer;

/// The largest token id accepted (16M; real vocabularies have at most a few
/// hundred thousand), so that a corrupt file cannot make us allocate
/// gigabytes.
static constexpr int64_t kMaxTokenId = int64_t(1) << 24;

/// Whether Id can belong to a table of Entries tokens. Ids index a table,
/// so beyond kMaxTokenId they must also be about as dense as real
/// vocabularies are (0 to N - 1, added tokens just past them): a 66-byte
/// tokenizer.json with one id of 16,777,215 took half a gigabyte.
static bool plausibleId(int64_t Id, size_t Entries) {
  return Id >= 0 && Id < kMaxTokenId && uint64_t(Id) < 2 * Entries + 1024;
}

static StringRef fbStr(const flatbuffers::String *S) {
  return S ? StringRef(S->data(), S->size()) : StringRef();
}

/// The hashes of the compiled form's tables (Tokenizer.fbs): stored on disk,
/// so they must never change (xxh3 is specified, not an implementation
/// detail).
static uint64_t flatHash(StringRef Piece) {
  return xxh3_64bits(arrayRefFromStringRef(Piece));
}
static uint64_t flatHash(int32_t L, int32_t R) {
  uint64_t Key = (uint64_t(uint32_t(L)) << 32) | uint32_t(R);
  return (Key * 0x9E3779B97F4A7C15ull) >> 20;
}

//===----------------------------------------------------------------------===//
// Unicode helpers
//===----------------------------------------------------------------------===//

namespace {
/// One decoded UTF-8 character. Malformed input decodes to U+FFFD with Len =
/// the length of the maximal well-formed prefix (at least 1), which is how
/// Rust's String::from_utf8_lossy (used by the byte-level decoder) cuts it.
struct Utf8Char {
  uint32_t CP;
  unsigned Len;
  bool Valid;
};
} // namespace

static Utf8Char decodeMultiByte(StringRef S, size_t I) {
  unsigned char B0 = S[I];
  unsigned Need;
  uint32_t CP;
  // Bounds of the second byte; they exclude overlong forms and surrogates.
  unsigned char Lo = 0x80, Hi = 0xBF;
  if (B0 >= 0xC2 && B0 <= 0xDF) {
    Need = 1;
    CP = B0 & 0x1F;
  } else if (B0 >= 0xE0 && B0 <= 0xEF) {
    Need = 2;
    CP = B0 & 0x0F;
    Lo = B0 == 0xE0 ? 0xA0 : 0x80;
    Hi = B0 == 0xED ? 0x9F : 0xBF;
  } else if (B0 >= 0xF0 && B0 <= 0xF4) {
    Need = 3;
    CP = B0 & 0x07;
    Lo = B0 == 0xF0 ? 0x90 : 0x80;
    Hi = B0 == 0xF4 ? 0x8F : 0xBF;
  } else {
    return {0xFFFD, 1, false};
  }
  for (unsigned K = 1; K <= Need; ++K) {
    if (I + K >= S.size())
      return {0xFFFD, K, false};
    unsigned char B = S[I + K];
    if (B < Lo || B > Hi)
      return {0xFFFD, K, false};
    Lo = 0x80;
    Hi = 0xBF;
    CP = (CP << 6) | (B & 0x3F);
  }
  return {CP, Need + 1, true};
}

static inline Utf8Char decodeChar(StringRef S, size_t I) {
  unsigned char B0 = S[I];
  if (LLVM_LIKELY(B0 < 0x80))
    return {B0, 1, true};
  return decodeMultiByte(S, I);
}

static void appendUTF8(std::string &Out, uint32_t CP) {
  if (CP < 0x80) {
    Out += char(CP);
  } else if (CP < 0x800) {
    Out += char(0xC0 | (CP >> 6));
    Out += char(0x80 | (CP & 0x3F));
  } else if (CP < 0x10000) {
    Out += char(0xE0 | (CP >> 12));
    Out += char(0x80 | ((CP >> 6) & 0x3F));
    Out += char(0x80 | (CP & 0x3F));
  } else {
    Out += char(0xF0 | (CP >> 18));
    Out += char(0x80 | ((CP >> 12) & 0x3F));
    Out += char(0x80 | ((CP >> 6) & 0x3F));
    Out += char(0x80 | (CP & 0x3F));
  }
}

static bool isValidUTF8(StringRef S) {
  for (size_t I = 0; I < S.size();) {
    Utf8Char C = decodeChar(S, I);
    if (!C.Valid)
      return false;
    I += C.Len;
  }
  return true;
}

/// Replaces malformed sequences by U+FFFD, like String::from_utf8_lossy.
static std::string toValidUTF8(StringRef S) {
  std::string Out;
  Out.reserve(S.size());
  for (size_t I = 0; I < S.size();) {
    Utf8Char C = decodeChar(S, I);
    if (C.Valid)
      Out.append(S.data() + I, C.Len);
    else
      Out += "\xEF\xBF\xBD";
    I += C.Len;
  }
  return Out;
}

/// The general category of a code point, from utf8proc (whose Unicode
/// version utf8proc_unicode_version() reports; docs/tokenizers.md).
static utf8proc_category_t category(uint32_t CP) {
  return utf8proc_category(utf8proc_int32_t(CP));
}

/// The Unicode White_Space property: what `\s` means in the Oniguruma and
/// Rust regexes that Hugging Face uses, and what Rust's char::is_whitespace
/// tests for lstrip/rstrip. By its definition in PropList.txt it is the
/// separators (Zs, Zl, Zp) plus the controls TAB..CR and NEL.
static bool isWhitespace(uint32_t CP) {
  if (CP < 0x80)
    return (CP >= 0x09 && CP <= 0x0D) || CP == 0x20;
  if (CP == 0x85)
    return true;
  utf8proc_category_t C = category(CP);
  return C == UTF8PROC_CATEGORY_ZS || C == UTF8PROC_CATEGORY_ZL ||
         C == UTF8PROC_CATEGORY_ZP;
}

/// \p{L}: Lu, Ll, Lt, Lm, Lo.
static bool isLetter(uint32_t CP) {
  if (CP < 0x80)
    return isAlpha(char(CP));
  utf8proc_category_t C = category(CP);
  return C >= UTF8PROC_CATEGORY_LU && C <= UTF8PROC_CATEGORY_LO;
}

/// \p{N}: Nd, Nl, No.
static bool isNumber(uint32_t CP) {
  if (CP < 0x80)
    return isDigit(char(CP));
  utf8proc_category_t C = category(CP);
  return C >= UTF8PROC_CATEGORY_ND && C <= UTF8PROC_CATEGORY_NO;
}

//===----------------------------------------------------------------------===//
// GPT-2 byte-to-unicode mapping
//===----------------------------------------------------------------------===//

namespace {
/// GPT-2 maps every byte to a printable character so that BPE pieces are
/// always valid text: the printable Latin-1 bytes map to themselves, the 68
/// others to U+0100.. in byte order (e.g. ' ' -> U+0120 'Ġ').
struct ByteLevelTable {
  std::string ByteToUTF8[256];
  DenseMap<uint32_t, uint8_t> CharToByte;

  ByteLevelTable() {
    uint32_t Next = 256;
    for (unsigned B = 0; B < 256; ++B) {
      bool Printable = (B >= '!' && B <= '~') || (B >= 0xA1 && B <= 0xAC) ||
                       (B >= 0xAE && B <= 0xFF);
      uint32_t CP = Printable ? B : Next++;
      appendUTF8(ByteToUTF8[B], CP);
      CharToByte[CP] = uint8_t(B);
    }
  }
};
} // namespace

static const ByteLevelTable &byteLevelTable() {
  static const ByteLevelTable Table;
  return Table;
}

static std::string byteLevelEncode(StringRef S) {
  const ByteLevelTable &T = byteLevelTable();
  std::string Out;
  Out.reserve(S.size() * 2);
  for (unsigned char B : S)
    Out += T.ByteToUTF8[B];
  return Out;
}

/// Maps a byte-level piece back to its bytes, or returns it unchanged when a
/// character is outside the mapping (e.g. an added token), as Hugging Face
/// does.
static void byteLevelDecodeAppend(StringRef Piece, std::string &Out) {
  const ByteLevelTable &T = byteLevelTable();
  std::string Bytes;
  for (size_t I = 0; I < Piece.size();) {
    Utf8Char C = decodeChar(Piece, I);
    auto It = T.CharToByte.find(C.CP);
    if (!C.Valid || It == T.CharToByte.end()) {
      Out += Piece;
      return;
    }
    Bytes += char(It->second);
    I += C.Len;
  }
  Out += Bytes;
}

//===----------------------------------------------------------------------===//
// Splitting: match spans and the split behaviours
//===----------------------------------------------------------------------===//

namespace {
/// A piece of a string; every string is covered by contiguous spans, each
/// either a pattern match or the text between matches.
struct Span {
  size_t Begin, End;
  bool IsMatch;
};

enum class SplitBehavior {
  Removed,
  Isolated,
  MergedWithPrevious,
  MergedWithNext,
  Contiguous
};

/// The split regexes that we implement as hand-written scanners.
enum class SplitRegex { GPT2, Llama3, Qwen2 };

enum class CharClass { Letter, Number, Space, Other };
} // namespace

/// Covers \p S with spans, given a function that returns the end of the match
/// starting at a byte offset (or 0 for no match), scanning like a regex
/// find_iter: leftmost, non-overlapping, never empty.
static std::vector<Span> findSpans(StringRef S,
                                   function_ref<size_t(size_t)> MatchAt) {
  std::vector<Span> Spans;
  if (S.empty())
    return {Span{0, 0, false}};
  size_t Prev = 0;
  for (size_t I = 0; I < S.size();) {
    size_t End = MatchAt(I);
    if (End <= I) {
      I += decodeChar(S, I).Len;
      continue;
    }
    if (Prev < I)
      Spans.push_back({Prev, I, false});
    Spans.push_back({I, End, true});
    Prev = I = End;
  }
  if (Prev < S.size())
    Spans.push_back({Prev, S.size(), false});
  return Spans;
}

static std::vector<Span> findLiteral(StringRef S, StringRef Literal) {
  if (Literal.empty())
    return {Span{0, S.size(), false}};
  return findSpans(S, [&](size_t I) -> size_t {
    return S.substr(I).starts_with(Literal) ? I + Literal.size() : 0;
  });
}

/// Turns spans into the [Begin, End) pieces to keep, as
/// NormalizedString::split does for each SplitDelimiterBehavior.
static std::vector<std::pair<size_t, size_t>>
applyBehavior(ArrayRef<Span> Spans, SplitBehavior Behavior) {
  std::vector<std::pair<size_t, size_t>> Out;
  bool PrevMatch = false;
  switch (Behavior) {
  case SplitBehavior::Removed:
    for (const Span &S : Spans)
      if (!S.IsMatch)
        Out.push_back({S.Begin, S.End});
    break;
  case SplitBehavior::Isolated:
    for (const Span &S : Spans)
      Out.push_back({S.Begin, S.End});
    break;
  case SplitBehavior::Contiguous:
    for (const Span &S : Spans) {
      if (S.IsMatch == PrevMatch && !Out.empty())
        Out.back().second = S.End;
      else
        Out.push_back({S.Begin, S.End});
      PrevMatch = S.IsMatch;
    }
    break;
  case SplitBehavior::MergedWithPrevious:
    for (const Span &S : Spans) {
      if (S.IsMatch && !PrevMatch && !Out.empty())
        Out.back().second = S.End;
      else
        Out.push_back({S.Begin, S.End});
      PrevMatch = S.IsMatch;
    }
    break;
  case SplitBehavior::MergedWithNext:
    // A delimiter joins the piece after it unless that piece is another
    // delimiter: "a--b" -> "a", "-", "-b".
    for (const Span &S : llvm::reverse(Spans)) {
      if (S.IsMatch && !PrevMatch && !Out.empty())
        Out.back().first = S.Begin;
      else
        Out.push_back({S.Begin, S.End});
      PrevMatch = S.IsMatch;
    }
    std::reverse(Out.begin(), Out.end());
    break;
  }
  return Out;
}

//===----------------------------------------------------------------------===//
// Scanners for the known split regexes
//===----------------------------------------------------------------------===//
//
// std::regex has no \p{L}, so the three regexes that byte-level checkpoints
// ship are implemented by hand. Each scanner returns the end of the match
// that the regex (leftmost-first alternation with backtracking, as in
// Oniguruma) finds at a given offset; every offset matches something.

static CharClass classify(uint32_t CP) {
  if (isLetter(CP))
    return CharClass::Letter;
  if (isNumber(CP))
    return CharClass::Number;
  if (isWhitespace(CP))
    return CharClass::Space;
  return CharClass::Other;
}

static CharClass classAt(StringRef S, size_t I) {
  return classify(decodeChar(S, I).CP);
}

/// End of the run of characters of class \p C starting at \p I, taking at
/// most \p MaxChars characters.
static size_t runOf(StringRef S, size_t I, CharClass C,
                    size_t MaxChars = SIZE_MAX) {
  for (size_t N = 0; I < S.size() && N < MaxChars; ++N) {
    Utf8Char Ch = decodeChar(S, I);
    if (classify(Ch.CP) != C)
      break;
    I += Ch.Len;
  }
  return I;
}

/// `'s|'t|'re|'ve|'m|'ll|'d`, optionally case-insensitive; returns the match
/// length or 0.
static size_t matchContraction(StringRef S, size_t I, bool IgnoreCase) {
  if (S[I] != '\'')
    return 0;
  StringRef Rest = S.substr(I + 1);
  for (StringRef Suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
    StringRef Head = Rest.take_front(Suffix.size());
    if (IgnoreCase ? Head.equals_insensitive(Suffix) : Head == Suffix)
      return 1 + Suffix.size();
  }
  // Under (?i), U+017F LATIN SMALL LETTER LONG S case-folds to 's'.
  if (IgnoreCase && Rest.starts_with("\xC5\xBF"))
    return 3;
  return 0;
}

/// `\s+(?!\S)|\s+` at a whitespace character: a whitespace run, minus its
/// last character when a non-space follows and the run is longer than one
/// (that last space then prefixes the next word).
static size_t matchSpaceRun(StringRef S, size_t I) {
  size_t End = I, LastStart = I;
  while (End < S.size()) {
    Utf8Char C = decodeChar(S, End);
    if (!isWhitespace(C.CP))
      break;
    LastStart = End;
    End += C.Len;
  }
  if (End == S.size() || LastStart == I)
    return End;
  return LastStart;
}

/// GPT-2:
/// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
static size_t matchGPT2(StringRef S, size_t I) {
  if (size_t Len = matchContraction(S, I, /*IgnoreCase=*/false))
    return I + Len;
  // The optional space may only prefix a letter, number or "other" run; the
  // three classes are disjoint, so the first character decides which.
  size_t J = S[I] == ' ' ? I + 1 : I;
  if (J < S.size()) {
    CharClass C = classAt(S, J);
    if (C != CharClass::Space)
      return runOf(S, J, C);
  }
  return matchSpaceRun(S, I);
}

/// Llama 3 (MaxDigits = 3) and Qwen 2 (MaxDigits = 1):
/// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
static size_t matchLlama3(StringRef S, size_t I, size_t MaxDigits) {
  if (size_t Len = matchContraction(S, I, /*IgnoreCase=*/true))
    return I + Len;
  Utf8Char C0 = decodeChar(S, I);
  CharClass K0 = classify(C0.CP);
  bool IsNewline = C0.CP == '\r' || C0.CP == '\n';

  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (K0 == CharClass::Letter)
    return runOf(S, I, CharClass::Letter);
  if (K0 != CharClass::Number && !IsNewline) {
    size_t J = I + C0.Len;
    if (J < S.size() && classAt(S, J) == CharClass::Letter)
      return runOf(S, J, CharClass::Letter);
  }
  // \p{N}{1,3}
  if (K0 == CharClass::Number)
    return runOf(S, I, CharClass::Number, MaxDigits);
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t J = C0.CP == ' ' ? I + 1 : I;
  if (J < S.size() && classAt(S, J) == CharClass::Other) {
    size_t End = runOf(S, J, CharClass::Other);
    while (End < S.size() && (S[End] == '\r' || S[End] == '\n'))
      ++End;
    return End;
  }
  // Only whitespace is left. \s*[\r\n]+ backtracks to the last newline of
  // the whitespace run.
  size_t End = I, AfterLastNewline = 0;
  while (End < S.size()) {
    Utf8Char C = decodeChar(S, End);
    if (!isWhitespace(C.CP))
      break;
    End += C.Len;
    if (C.CP == '\r' || C.CP == '\n')
      AfterLastNewline = End;
  }
  if (AfterLastNewline)
    return AfterLastNewline;
  return matchSpaceRun(S, I);
}

static std::vector<Span> findRegex(StringRef S, SplitRegex Regex) {
  switch (Regex) {
  case SplitRegex::GPT2:
    return findSpans(S, [&](size_t I) { return matchGPT2(S, I); });
  case SplitRegex::Llama3:
    return findSpans(S, [&](size_t I) { return matchLlama3(S, I, 3); });
  case SplitRegex::Qwen2:
    return findSpans(S, [&](size_t I) { return matchLlama3(S, I, 1); });
  }
  llvm_unreachable("unknown split regex");
}

// The regexes exactly as they appear (after JSON unescaping) in tokenizer.json.
static constexpr StringLiteral GPT2Pattern =
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
static constexpr StringLiteral Llama3Pattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
static constexpr StringLiteral Qwen2Pattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

namespace {
/// Each split regex we have a scanner for: its family name and its pattern.
struct SplitRegexName {
  SplitRegex Regex;
  StringLiteral Family;
  StringLiteral Pattern;
};
} // namespace
static constexpr SplitRegexName SplitRegexNames[] = {
    {SplitRegex::GPT2, "gpt2", GPT2Pattern},
    {SplitRegex::Llama3, "llama3", Llama3Pattern},
    {SplitRegex::Qwen2, "qwen2", Qwen2Pattern}};

static StringRef familyName(SplitRegex Regex) {
  for (const SplitRegexName &N : SplitRegexNames)
    if (N.Regex == Regex)
      return N.Family;
  llvm_unreachable("unknown split regex");
}

StringRef vindex::byteLevelSplitPattern(StringRef Family) {
  for (const SplitRegexName &N : SplitRegexNames)
    if (N.Family == Family)
      return N.Pattern;
  return "";
}

//===----------------------------------------------------------------------===//
// Pipeline components
//===----------------------------------------------------------------------===//

namespace {
enum class PrependScheme { First, Always, Never };

struct NormalizerStep {
  enum KindTy { Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD } Kind;
  std::string From; // Replace: the literal to replace.
  std::string To;   // Prepend: the prefix; Replace: the replacement.
  bool Left = false, Right = false; // Strip.
};

struct PreTokenizerStep {
  enum KindTy { Metaspace, ByteLevel, SplitLiteral, SplitPattern, Digits } Kind;
  std::string Literal; // Metaspace replacement or Split string pattern.
  PrependScheme Scheme = PrependScheme::Always;     // Metaspace.
  bool MetaspaceSplit = true;                       // Metaspace.
  bool AddPrefixSpace = false, UseRegex = true;     // ByteLevel.
  SplitRegex Regex = SplitRegex::GPT2;              // Split.
  SplitBehavior Behavior = SplitBehavior::Isolated; // Split.
  bool Invert = false;                              // Split.
};

struct DecoderStep {
  enum KindTy { Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel } Kind;
  std::string From, To;         // Replace; Strip and Metaspace use From.
  unsigned Start = 0, Stop = 0; // Strip.
  PrependScheme Scheme = PrependScheme::Always; // Metaspace.
};

struct AddedToken {
  std::string Content;
  /// What decode() shows: Hugging Face shows normalized tokens in their
  /// normalized form.
  std::string DecodeAs;
  int32_t Id;
  bool Special, LStrip, RStrip, SingleWord, Normalized;
};

/// A piece of text on its way through the pipeline. AtStart records whether
/// it begins at offset 0 of the input, which Metaspace's "first" prepend
/// scheme looks at.
struct Segment {
  std::string Text;
  bool AtStart;
};

/// Byte trie over added-token contents for leftmost-longest matching.
class TokenTrie {
public:
  TokenTrie() : Values(1, -1) {}

  void insert(StringRef Key, unsigned Value) {
    if (Key.empty())
      return;
    FirstBytes[uint8_t(Key[0])] = true;
    uint32_t Node = 0;
    for (unsigned char B : Key) {
      auto [It, Inserted] = Edges.try_emplace(edgeKey(Node, B), 0);
      if (Inserted) {
        It->second = Values.size();
        Values.push_back(-1);
      }
      Node = It->second;
    }
    Values[Node] = Value;
  }

  bool empty() const { return Edges.empty(); }

  /// The longest key starting at S[Pos], as {length, value}.
  std::optional<std::pair<size_t, unsigned>> longestAt(StringRef S,
                                                       size_t Pos) const {
    std::optional<std::pair<size_t, unsigned>> Best;
    if (!FirstBytes[uint8_t(S[Pos])])
      return Best;
    uint32_t Node = 0;
    for (size_t I = Pos; I < S.size(); ++I) {
      auto It = Edges.find(edgeKey(Node, S[I]));
      if (It == Edges.end())
        break;
      Node = It->second;
      if (Values[Node] >= 0)
        Best = {I + 1 - Pos, unsigned(Values[Node])};
    }
    return Best;
  }

private:
  static uint64_t edgeKey(uint32_t Node, unsigned char B) {
    return (uint64_t(Node) << 8) | B;
  }
  DenseMap<uint64_t, uint32_t> Edges;
  std::vector<int64_t> Values; // Per node: the value of the key ending here.
  bool FirstBytes[256] = {};   // Bytes that start some key.
};

/// The BPE model: vocabulary, ranked merges and the unknown-character policy.
struct BPEModel {
  StringMap<int32_t> Vocab;
  /// (left id, right id) -> {rank, merged id}. (A pair key hashes both ids;
  /// DenseMap's uint64_t hash would ignore the high half of a packed key.)
  DenseMap<std::pair<int32_t, int32_t>, std::pair<int32_t, int32_t>> Merges;
  std::optional<int32_t> UnkId;
  bool FuseUnk = false, ByteFallback = false, IgnoreMerges = false;
  /// Ids of the "<0xNN>" pieces, -1 where missing.
  int32_t ByteIds[256];
  /// Ids of the single-character pieces by code point (the initial split
  /// looks up every character; this avoids hashing strings).
  int32_t AsciiIds[128];
  DenseMap<uint32_t, int32_t> CharIds;

  BPEModel() {
    std::fill(std::begin(ByteIds), std::end(ByteIds), -1);
    std::fill(std::begin(AsciiIds), std::end(AsciiIds), -1);
  }
  /// Fills ByteIds from the vocabulary's "<0xNN>" pieces. (Not utohexstr
  /// with a width: it spells 0 as "000".)
  void deriveByteIds() {
    for (unsigned B = 0; B < 256; ++B) {
      char Piece[] = {'<', '0', 'x', hexdigit(B >> 4), hexdigit(B & 15), '>'};
      ByteIds[B] = vocabId(StringRef(Piece, sizeof(Piece))).value_or(-1);
    }
  }

  std::optional<int32_t> charId(Utf8Char C) const {
    if (!C.Valid)
      return std::nullopt;
    if (C.CP < 128) {
      if (AsciiIds[C.CP] < 0)
        return std::nullopt;
      return AsciiIds[C.CP];
    }
    auto It = CharIds.find(C.CP);
    if (It == CharIds.end())
      return std::nullopt;
    return It->second;
  }

  /// The compiled form's tables, used in place when the tokenizer was
  /// mapped (fromCompiled); null when it was parsed from JSON.
  const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>
      *FlatVocabPieces = nullptr;
  const flatbuffers::Vector<int32_t> *FlatVocabIds = nullptr;
  const flatbuffers::Vector<uint32_t> *FlatVocabTable = nullptr;
  const flatbuffers::Vector<const tfb::Merge *> *FlatMerges = nullptr;

  /// The id of a piece of the model vocabulary.
  std::optional<int32_t> vocabId(StringRef Piece) const {
    if (!FlatVocabTable) {
      auto It = Vocab.find(Piece);
      if (It == Vocab.end())
        return std::nullopt;
      return It->second;
    }
    uint32_t Mask = FlatVocabTable->size() - 1;
    for (uint32_t Slot = uint32_t(flatHash(Piece)) & Mask;;
         Slot = (Slot + 1) & Mask) {
      uint32_t Index = FlatVocabTable->Get(Slot);
      if (!Index)
        return std::nullopt;
      const flatbuffers::String *S = FlatVocabPieces->Get(Index - 1);
      if (StringRef(S->data(), S->size()) == Piece)
        return FlatVocabIds->Get(Index - 1);
    }
  }

  /// The merge of (L, R), as {rank, merged id}.
  std::optional<std::pair<int32_t, int32_t>> findMerge(int32_t L,
                                                       int32_t R) const {
    if (!FlatMerges) {
      auto It = Merges.find({L, R});
      if (It == Merges.end())
        return std::nullopt;
      return It->second;
    }
    uint32_t Mask = FlatMerges->size() - 1;
    for (uint32_t Slot = uint32_t(flatHash(L, R)) & Mask;;
         Slot = (Slot + 1) & Mask) {
      const tfb::Merge *M = FlatMerges->Get(Slot);
      if (M->left() < 0)
        return std::nullopt;
      if (M->left() == L && M->right() == R)
        return std::pair{M->rank(), M->merged()};
    }
  }

  /// True when no merge can join a character to a following "▁" (U+2581),
  /// so a word can be cut before each such "▁" and the parts encoded
  /// separately with the same result. SentencePiece-style tokenizers have no
  /// pre-tokenizer, so a whole prompt is one word; cutting it keeps the merge
  /// heap small.
  bool CutBeforeMetaspace = false;
  void computeCutBeforeMetaspace();

  void encodeWord(StringRef Word, std::vector<int32_t> &Out) const;

private:
  struct Symbol {
    int32_t Id;
    int32_t Prev, Next; // Indices of the neighbours, -1 at the ends.
    bool Alive;
    /// The merge of this symbol with its Next: rank (-1 if none) and result.
    int32_t PairRank, PairId;
  };
  void splitChars(StringRef Word, std::vector<Symbol> &Syms) const;
  void mergeAll(std::vector<Symbol> &Syms) const;
  void encodePart(StringRef Part, std::vector<Symbol> &Syms,
                  std::vector<int32_t> &Out) const;
};
} // namespace

static constexpr StringLiteral Metaspace = "\xE2\x96\x81"; // U+2581 "▁"

/// A merged symbol spans a cut before a "▁" only if its piece contains "▁"
/// right after another character. If no piece does, and "▁" itself is in the
/// vocabulary (so it never becomes <unk> or byte pieces), no merge crosses
/// such a cut.
void BPEModel::computeCutBeforeMetaspace() {
  CutBeforeMetaspace =
      Vocab.count(Metaspace) && llvm::none_of(Vocab, [](const auto &E) {
        StringRef Piece = E.getKey();
        for (size_t At = Piece.find(Metaspace, 1); At != StringRef::npos;
             At = Piece.find(Metaspace, At + 1))
          if (!Piece.take_front(At).ends_with(Metaspace))
            return true;
        return false;
      });
}

/// One symbol per character; a character missing from the vocabulary becomes
/// its <0xNN> byte pieces (byte_fallback) or <unk>, fused with a preceding
/// <unk> under fuse_unk.
void BPEModel::splitChars(StringRef Word, std::vector<Symbol> &Syms) const {
  auto Add = [&](int32_t Id) {
    Syms.push_back({Id, int32_t(Syms.size()) - 1, -1, true, -1, -1});
  };
  bool PendingUnk = false;
  for (size_t I = 0; I < Word.size();) {
    Utf8Char C = decodeChar(Word, I);
    StringRef Char = Word.substr(I, C.Len);
    I += C.Len;
    if (std::optional<int32_t> Id = charId(C)) {
      if (PendingUnk)
        Add(*UnkId);
      PendingUnk = false;
      Add(*Id);
      continue;
    }
    if (ByteFallback &&
        llvm::all_of(Char, [&](char B) { return ByteIds[uint8_t(B)] >= 0; })) {
      // As in Hugging Face, a pending <unk> is only flushed by an
      // in-vocabulary character, so it may land after these byte pieces.
      for (char B : Char)
        Add(ByteIds[uint8_t(B)]);
      continue;
    }
    if (!UnkId)
      continue; // Hugging Face drops the character too.
    if (PendingUnk && !FuseUnk)
      Add(*UnkId);
    PendingUnk = true;
  }
  if (PendingUnk)
    Add(*UnkId);
  for (size_t I = 0; I + 1 < Syms.size(); ++I)
    Syms[I].Next = int32_t(I + 1);
}

/// Repeatedly applies the lowest-ranked merge among adjacent pairs (leftmost
/// first on ties). Each symbol caches the merge it forms with its right
/// neighbour; candidates live in a min-heap keyed by (rank, position), and an
/// entry is stale, and skipped, once the cached rank at its position differs
/// (ranks are unique per pair).
void BPEModel::mergeAll(std::vector<Symbol> &Syms) const {
  std::vector<uint64_t> Heap;
  std::greater<uint64_t> After;
  // Recomputes the pair starting at Pos; returns its heap key, if mergeable.
  auto Refresh = [&](int32_t Pos) -> std::optional<uint64_t> {
    Symbol &S = Syms[Pos];
    S.PairRank = -1;
    if (S.Next < 0)
      return std::nullopt;
    std::optional<std::pair<int32_t, int32_t>> M =
        findMerge(S.Id, Syms[S.Next].Id);
    if (!M)
      return std::nullopt;
    S.PairRank = M->first;
    S.PairId = M->second;
    return (uint64_t(M->first) << 32) | uint32_t(Pos);
  };
  auto Push = [&](int32_t Pos) {
    if (std::optional<uint64_t> Key = Refresh(Pos)) {
      Heap.push_back(*Key);
      std::push_heap(Heap.begin(), Heap.end(), After);
    }
  };
  for (size_t I = 0; I + 1 < Syms.size(); ++I)
    if (std::optional<uint64_t> Key = Refresh(int32_t(I)))
      Heap.push_back(*Key);
  std::make_heap(Heap.begin(), Heap.end(), After);

  while (!Heap.empty()) {
    std::pop_heap(Heap.begin(), Heap.end(), After);
    uint64_t Top = Heap.back();
    Heap.pop_back();
    int32_t Pos = int32_t(uint32_t(Top));
    Symbol &Left = Syms[Pos];
    if (!Left.Alive || Left.PairRank != int32_t(Top >> 32))
      continue;
    Symbol &Right = Syms[Left.Next];
    Left.Id = Left.PairId;
    Left.Next = Right.Next;
    Right.Alive = false;
    if (Left.Next >= 0)
      Syms[Left.Next].Prev = Pos;
    if (Left.Prev >= 0)
      Push(Left.Prev);
    Push(Pos);
  }
}

void BPEModel::encodeWord(StringRef Word, std::vector<int32_t> &Out) const {
  if (Word.empty())
    return;
  if (IgnoreMerges) {
    if (std::optional<int32_t> Id = vocabId(Word)) {
      Out.push_back(*Id);
      return;
    }
  }
  std::vector<Symbol> Syms;
  if (!CutBeforeMetaspace)
    return encodePart(Word, Syms, Out);
  // Cut before every "▁" that follows another character.
  size_t Begin = 0;
  for (size_t At = Word.find(Metaspace, 1); At != StringRef::npos;
       At = Word.find(Metaspace, At + Metaspace.size())) {
    if (Word.take_front(At).ends_with(Metaspace))
      continue;
    encodePart(Word.slice(Begin, At), Syms, Out);
    Begin = At;
  }
  encodePart(Word.drop_front(Begin), Syms, Out);
}

void BPEModel::encodePart(StringRef Part, std::vector<Symbol> &Syms,
                          std::vector<int32_t> &Out) const {
  Syms.clear();
  splitChars(Part, Syms);
  mergeAll(Syms);
  for (const Symbol &S : Syms)
    if (S.Alive)
      Out.push_back(S.Id);
}

//===----------------------------------------------------------------------===//
// Tokenizer::Impl
//===----------------------------------------------------------------------===//

struct Tokenizer::Impl {
  BPEModel Model;
  /// The compiled form when mapped (fromCompiled), which then supplies the
  /// vocabulary, the merges and Pieces in place.
  std::unique_ptr<MemoryBuffer> FlatBuffer;
  const tfb::Tokenizer *Flat = nullptr;
  /// Id -> vocabulary piece (model vocabulary, overridden by added tokens).
  std::vector<std::string> Pieces;
  std::vector<AddedToken> Added;
  DenseMap<int32_t, unsigned> AddedById;
  StringMap<unsigned> AddedByContent;
  TokenTrie RawTrie;        // Added tokens with normalized=false.
  TokenTrie NormalizedTrie; // Added tokens with normalized=true.
  std::vector<NormalizerStep> Normalizers;
  std::vector<PreTokenizerStep> PreTokenizers;
  bool HasDecoder = false;
  std::vector<DecoderStep> Decoders;
  std::vector<int32_t> Prefix, Suffix; // From the post_processor.
  std::optional<int32_t> Bos, Eos;
  Tokenizer::Kind TheKind = Tokenizer::Kind::SentencePieceBPE;

  /// Records a piece of the model vocabulary (Id < kMaxTokenId).
  void addVocabEntry(StringRef Piece, int32_t Id);
  /// Records an added token (a new content, Id < kMaxTokenId).
  void addAddedToken(AddedToken Tok);

  /// The piece of an id (model vocabulary overridden by added tokens); ""
  /// for ids no token has.
  StringRef pieceOf(int32_t Id) const {
    if (Id < 0 || size_t(Id) >= numPieces())
      return {};
    if (Flat)
      return fbStr(Flat->pieces_by_id()->Get(Id));
    return Pieces[Id];
  }
  size_t numPieces() const {
    return Flat ? Flat->pieces_by_id()->size() : Pieces.size();
  }

  const AddedToken *addedById(int32_t Id) const {
    // Guard DenseMap's reserved keys (INT32_MAX, INT32_MIN) too.
    if (Id < 0 || Id == INT32_MAX)
      return nullptr;
    auto It = AddedById.find(Id);
    return It == AddedById.end() ? nullptr : &Added[It->second];
  }
  std::string normalize(StringRef S) const;
  void splitOnAdded(const Segment &Seg, const TokenTrie &Trie,
                    function_ref<void(Segment, const AddedToken *)> Fn) const;
  void applyPreTokenizer(const PreTokenizerStep &Step, Segment Seg,
                         std::vector<Segment> &Out) const;
  std::vector<Segment> preTokenize(Segment Seg) const;
  /// Calls Fn on every word the model must encode, in order, and on every
  /// added token found in the text.
  void forEachWord(StringRef Text,
                   function_ref<void(StringRef, const AddedToken *)> Fn) const;
  std::vector<std::string> applyDecoder(const DecoderStep &Step,
                                        std::vector<std::string> Tokens) const;
};

void Tokenizer::Impl::addVocabEntry(StringRef Piece, int32_t Id) {
  Model.Vocab[Piece] = Id;
  if (size_t(Id) >= Pieces.size())
    Pieces.resize(Id + 1);
  Pieces[Id] = Piece.str();
  if (Piece.empty())
    return;
  if (Utf8Char C = decodeChar(Piece, 0); C.Valid && C.Len == Piece.size()) {
    if (C.CP < 128)
      Model.AsciiIds[C.CP] = Id;
    else
      Model.CharIds[C.CP] = Id;
  }
}

void Tokenizer::Impl::addAddedToken(AddedToken Tok) {
  unsigned Index = Added.size();
  AddedByContent[Tok.Content] = Index;
  AddedById[Tok.Id] = Index;
  (Tok.Normalized ? NormalizedTrie : RawTrie)
      .insert(Tok.Normalized ? Tok.DecodeAs : Tok.Content, Index);
  if (!Flat) { // The compiled pieces_by_id has them already.
    if (size_t(Tok.Id) >= Pieces.size())
      Pieces.resize(Tok.Id + 1);
    Pieces[Tok.Id] = Tok.Content;
  }
  Added.push_back(std::move(Tok));
}

static std::string replaceAll(StringRef S, StringRef From, StringRef To) {
  if (From.empty())
    return S.str();
  std::string Out;
  Out.reserve(S.size() + S.size() / 2);
  size_t Pos = 0;
  for (size_t Hit; (Hit = S.find(From, Pos)) != StringRef::npos;
       Pos = Hit + From.size()) {
    Out.append(S.data() + Pos, Hit - Pos);
    Out += To;
  }
  Out.append(S.data() + Pos, S.size() - Pos);
  return Out;
}

/// Length in bytes of the leading whitespace of S.
static size_t whitespacePrefix(StringRef S) {
  size_t I = 0;
  while (I < S.size()) {
    Utf8Char C = decodeChar(S, I);
    if (!isWhitespace(C.CP))
      break;
    I += C.Len;
  }
  return I;
}

/// Offset where the trailing whitespace of S starts.
static size_t whitespaceSuffixStart(StringRef S) {
  size_t Start = 0;
  for (size_t I = 0; I < S.size();) {
    Utf8Char C = decodeChar(S, I);
    I += C.Len;
    if (!isWhitespace(C.CP))
      Start = I;
  }
  return Start;
}

/// One of the four Unicode normalization forms, through utf8proc. Text that
/// is not valid UTF-8 is left as it is (Hugging Face only sees Rust strings,
/// which are always valid).
static std::string unicodeNormalize(StringRef S, NormalizerStep::KindTy Form) {
  // ASCII is invariant under every form.
  if (llvm::all_of(S, [](char C) { return uint8_t(C) < 0x80; }))
    return S.str();
  int Options = UTF8PROC_STABLE;
  switch (Form) {
  case NormalizerStep::NFC:
    Options |= UTF8PROC_COMPOSE;
    break;
  case NormalizerStep::NFD:
    Options |= UTF8PROC_DECOMPOSE;
    break;
  case NormalizerStep::NFKC:
    Options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    break;
  case NormalizerStep::NFKD:
    Options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    break;
  default:
    llvm_unreachable("not a normalization form");
  }
  utf8proc_uint8_t *Out = nullptr;
  utf8proc_ssize_t Len =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t *>(S.data()),
                   utf8proc_ssize_t(S.size()), &Out, utf8proc_option_t(Options));
  if (Len < 0)
    return S.str();
  std::string Result(reinterpret_cast<const char *>(Out), size_t(Len));
  std::free(Out);
  return Result;
}

std::string Tokenizer::Impl::normalize(StringRef S) const {
  std::string Cur = S.str();
  for (const NormalizerStep &Step : Normalizers) {
    switch (Step.Kind) {
    case NormalizerStep::Prepend:
      if (!Cur.empty()) // Prepending to an empty string is a no-op in HF.
        Cur = Step.To + Cur;
      break;
    case NormalizerStep::Replace:
      Cur = replaceAll(Cur, Step.From, Step.To);
      break;
    case NormalizerStep::Strip: {
      StringRef R = Cur;
      if (Step.Right)
        R = R.take_front(whitespaceSuffixStart(R));
      if (Step.Left)
        R = R.drop_front(whitespacePrefix(R));
      Cur = R.str();
      break;
    }
    case NormalizerStep::NFC:
    case NormalizerStep::NFD:
    case NormalizerStep::NFKC:
    case NormalizerStep::NFKD:
      Cur = unicodeNormalize(Cur, Step.Kind);
      break;
    }
  }
  return Cur;
}

/// \w as the Rust regex crate defines it (Alphabetic, M, Nd, Pc,
/// Join_Control), with Alphabetic taken as L and Nl, its bulk; used by
/// single_word added tokens.
static bool isWordChar(uint32_t CP) {
  if (CP < 0x80)
    return CP == '_' || isAlnum(char(CP));
  if (CP == 0x200C || CP == 0x200D) // Join_Control.
    return true;
  switch (category(CP)) {
  case UTF8PROC_CATEGORY_LU:
  case UTF8PROC_CATEGORY_LL:
  case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM:
  case UTF8PROC_CATEGORY_LO:
  case UTF8PROC_CATEGORY_MN:
  case UTF8PROC_CATEGORY_MC:
  case UTF8PROC_CATEGORY_ME:
  case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_NL:
  case UTF8PROC_CATEGORY_PC:
    return true;
  default:
    return false;
  }
}

static bool endsWithWordChar(StringRef S) {
  if (S.empty())
    return false;
  size_t I = S.size() - 1;
  while (I > 0 && (uint8_t(S[I]) & 0xC0) == 0x80)
    --I;
  return isWordChar(decodeChar(S, I).CP);
}

/// Splits Seg around the added tokens of Trie, matched leftmost-longest like
/// Hugging Face's Aho-Corasick automaton, honouring single_word, lstrip and
/// rstrip. Text between tokens is passed on with a null token.
void Tokenizer::Impl::splitOnAdded(
    const Segment &Seg, const TokenTrie &Trie,
    function_ref<void(Segment, const AddedToken *)> Fn) const {
  StringRef S = Seg.Text;
  size_t Emitted = 0; // End of the text already passed to Fn.
  auto EmitText = [&](size_t End) {
    if (Emitted < End)
      Fn(Segment{S.slice(Emitted, End).str(), Seg.AtStart && Emitted == 0},
         nullptr);
  };
  for (size_t Pos = 0; !Trie.empty() && Pos < S.size();) {
    auto Match = Trie.longestAt(S, Pos);
    if (!Match) {
      ++Pos;
      continue;
    }
    const AddedToken &Tok = Added[Match->second];
    size_t Begin = Pos, End = Pos + Match->first;
    // Matching resumes after this match even if it is discarded below.
    Pos = End;
    if (Tok.SingleWord &&
        (endsWithWordChar(S.take_front(Begin)) ||
         (End < S.size() && isWordChar(decodeChar(S, End).CP))))
      continue;
    if (Tok.LStrip) // Whitespace already emitted stays where it is.
      Begin = Emitted + whitespaceSuffixStart(S.slice(Emitted, Begin));
    if (Tok.RStrip)
      End += whitespacePrefix(S.drop_front(End));
    Pos = End;
    EmitText(Begin);
    Fn(Segment{S.slice(Begin, End).str(), Seg.AtStart && Begin == 0}, &Tok);
    Emitted = End;
  }
  EmitText(S.size());
}

void Tokenizer::Impl::applyPreTokenizer(const PreTokenizerStep &Step,
                                        Segment Seg,
                                        std::vector<Segment> &Out) const {
  auto Emit = [&](StringRef Text, ArrayRef<Span> Spans, SplitBehavior Behavior,
                  bool MapBytes) {
    for (auto [Begin, End] : applyBehavior(Spans, Behavior)) {
      if (Begin == End)
        continue;
      StringRef Piece = Text.slice(Begin, End);
      Out.push_back({MapBytes ? byteLevelEncode(Piece) : Piece.str(),
                     Seg.AtStart && Begin == 0});
    }
  };
  std::string Text;
  switch (Step.Kind) {
  case PreTokenizerStep::Metaspace: {
    Text = replaceAll(Seg.Text, " ", Step.Literal);
    bool Prepend = Step.Scheme == PrependScheme::Always ||
                   (Step.Scheme == PrependScheme::First && Seg.AtStart);
    if (Prepend && !Text.empty() && !StringRef(Text).starts_with(Step.Literal))
      Text = Step.Literal + Text;
    if (Step.MetaspaceSplit)
      Emit(Text, findLiteral(Text, Step.Literal), SplitBehavior::MergedWithNext,
           false);
    else
      Emit(Text, {Span{0, Text.size(), false}}, SplitBehavior::Isolated, false);
    return;
  }
  case PreTokenizerStep::ByteLevel:
    Text = std::move(Seg.Text);
    if (Step.AddPrefixSpace && !Text.empty() && Text[0] != ' ')
      Text = " " + Text;
    if (Step.UseRegex)
      Emit(Text, findRegex(Text, SplitRegex::GPT2), SplitBehavior::Isolated,
           true);
    else
      Emit(Text, {Span{0, Text.size(), false}}, SplitBehavior::Isolated, true);
    return;
  case PreTokenizerStep::SplitLiteral:
  case PreTokenizerStep::SplitPattern: {
    Text = std::move(Seg.Text);
    std::vector<Span> Spans = Step.Kind == PreTokenizerStep::SplitLiteral
                                  ? findLiteral(Text, Step.Literal)
                                  : findRegex(Text, Step.Regex);
    if (Step.Invert)
      for (Span &S : Spans)
        S.IsMatch = !S.IsMatch;
    Emit(Text, Spans, Step.Behavior, false);
    return;
  }
  case PreTokenizerStep::Digits:
    // Each numeric character (Rust's char::is_numeric: \p{N}) is a match;
    // Behavior is Isolated (individual_digits) or Contiguous.
    Text = std::move(Seg.Text);
    Emit(Text,
         findSpans(Text,
                   [&](size_t I) -> size_t {
                     Utf8Char C = decodeChar(Text, I);
                     return isNumber(C.CP) ? I + C.Len : 0;
                   }),
         Step.Behavior, false);
    return;
  }
}

std::vector<Segment> Tokenizer::Impl::preTokenize(Segment Seg) const {
  std::vector<Segment> Cur;
  Cur.push_back(std::move(Seg));
  for (const PreTokenizerStep &Step : PreTokenizers) {
    std::vector<Segment> Next;
    for (Segment &S : Cur)
      applyPreTokenizer(Step, std::move(S), Next);
    Cur = std::move(Next);
  }
  return Cur;
}

void Tokenizer::Impl::forEachWord(
    StringRef Text,
    function_ref<void(StringRef, const AddedToken *)> Fn) const {
  splitOnAdded(Segment{Text.str(), true}, RawTrie,
               [&](Segment Raw, const AddedToken *Tok) {
                 if (Tok)
                   return Fn(Raw.Text, Tok);
                 Segment Norm{normalize(Raw.Text), Raw.AtStart};
                 splitOnAdded(
                     Norm, NormalizedTrie, [&](Segment S, const AddedToken *T) {
                       if (T)
                         return Fn(S.Text, T);
                       for (const Segment &Word : preTokenize(std::move(S)))
                         Fn(Word.Text, nullptr);
                     });
               });
}

static bool parseByteToken(StringRef Piece, uint8_t &Byte) {
  if (Piece.size() != 6 || !Piece.starts_with("<0x") || !Piece.ends_with(">"))
    return false;
  unsigned Value;
  if (!isHexDigit(Piece[3]) || !isHexDigit(Piece[4]) ||
      Piece.substr(3, 2).getAsInteger(16, Value))
    return false;
  Byte = uint8_t(Value);
  return true;
}

std::vector<std::string>
Tokenizer::Impl::applyDecoder(const DecoderStep &Step,
                              std::vector<std::string> Tokens) const {
  std::vector<std::string> Out;
  switch (Step.Kind) {
  case DecoderStep::Replace:
    for (std::string &T : Tokens)
      T = replaceAll(T, Step.From, Step.To);
    return Tokens;
  case DecoderStep::ByteFallback: {
    // Runs of <0xNN> pieces become their bytes if those form valid UTF-8,
    // else one U+FFFD per byte.
    std::string Bytes;
    size_t NumBytes = 0;
    auto Flush = [&] {
      if (!NumBytes)
        return;
      if (isValidUTF8(Bytes))
        Out.push_back(Bytes);
      else
        Out.insert(Out.end(), NumBytes, "\xEF\xBF\xBD");
      Bytes.clear();
      NumBytes = 0;
    };
    for (std::string &T : Tokens) {
      uint8_t B;
      if (parseByteToken(T, B)) {
        Bytes += char(B);
        ++NumBytes;
        continue;
      }
      Flush();
      Out.push_back(std::move(T));
    }
    Flush();
    return Out;
  }
  case DecoderStep::Fuse:
    return {join(Tokens, "")};
  case DecoderStep::Strip:
    // Removes up to Start copies of the character at the front of each
    // token and up to Stop at the back.
    for (std::string &T : Tokens) {
      StringRef R = T;
      for (unsigned I = 0; I < Step.Start && R.starts_with(Step.From); ++I)
        R = R.drop_front(Step.From.size());
      for (unsigned I = 0; I < Step.Stop && R.ends_with(Step.From); ++I)
        R = R.drop_back(Step.From.size());
      Out.push_back(R.str());
    }
    return Out;
  case DecoderStep::Metaspace:
    // The replacement becomes a space, except in the first token where it
    // is dropped (it was prepended at encoding) unless the scheme is never.
    for (size_t I = 0; I < Tokens.size(); ++I) {
      bool Drop = I == 0 && Step.Scheme != PrependScheme::Never;
      Out.push_back(replaceAll(Tokens[I], Step.From, Drop ? "" : " "));
    }
    return Out;
  case DecoderStep::ByteLevel: {
    std::string Bytes;
    for (const std::string &T : Tokens)
      byteLevelDecodeAppend(T, Bytes);
    return {toValidUTF8(Bytes)};
  }
  }
  llvm_unreachable("unknown decoder step");
}

//===----------------------------------------------------------------------===//
// Loading tokenizer.json
//===----------------------------------------------------------------------===//

namespace {
/// How many times longer Replace steps may make a text. Each occurrence of
/// a From (at least a byte) becomes its To, so a chain of "a" -> "aa" steps
/// doubles a text per step: 34 of them in a 2 KB tokenizer.json asked for
/// gigabytes while its added tokens were normalized. Real chains stay
/// below 4 (" " -> "\u2581" is 3).
static constexpr uint64_t kMaxTextGrowth = 64;

template <typename StepT> static bool growsTooMuch(ArrayRef<StepT> Steps) {
  uint64_t Growth = 1;
  for (const StepT &S : Steps) {
    if (S.Kind != StepT::Replace || S.From.empty())
      continue;
    Growth *= std::max<uint64_t>(1, divideCeil(S.To.size(), S.From.size()));
    if (Growth > kMaxTextGrowth)
      return true;
  }
  return false;
}

/// Why the steps Impl holds could run away on a text, if they could.
static std::optional<std::string>
unboundedSteps(const std::vector<NormalizerStep> &Normalizers,
               const std::vector<DecoderStep> &Decoders) {
  for (auto [Grows, Which] :
       {std::pair(growsTooMuch<NormalizerStep>(Normalizers), "normalizer"),
        std::pair(growsTooMuch<DecoderStep>(Decoders), "decoder")})
    if (Grows)
      return (Twine("the ") + Which +
              "'s Replace steps can make a text more than " +
              Twine(kMaxTextGrowth) + " times longer")
          .str();
  for (const DecoderStep &D : Decoders)
    if ((D.Kind == DecoderStep::Strip || D.Kind == DecoderStep::Metaspace) &&
        D.From.empty())
      return std::string("a Strip or Metaspace decoder has no character");
  return std::nullopt;
}

/// Fills a Tokenizer::Impl from the parsed JSON. Every error names the file
/// and the JSON path of the offending component.
class Loader {
public:
  Loader(StringRef File, Tokenizer::Impl &T) : File(File), T(T) {}
  Error load(const json::Object &Root);

private:
  Error fail(const Twine &Msg) const {
    return createStringError(inconvertibleErrorCode(), File + ": " + Msg);
  }
  Error unsupported(const std::string &Path, StringRef Type,
                    StringRef Supported) const {
    return fail(Path + ".type '" + Type +
                "' is not supported (supported: " + Supported + ")");
  }

  Expected<const json::Object *> getComponent(const json::Value &V,
                                              const std::string &Path);
  Expected<StringRef> getType(const json::Object &O, const std::string &Path);
  Expected<StringRef> getString(const json::Object &O, StringRef Key,
                                const std::string &Path);
  Expected<bool> getBool(const json::Object &O, StringRef Key,
                         const std::string &Path, bool Default);
  Expected<std::string> getChar(const json::Object &O, StringRef Key,
                                const std::string &Path);
  Expected<std::string> getStringPattern(const json::Object &O,
                                         const std::string &Path);
  Expected<PrependScheme> getPrependScheme(const json::Object &O,
                                           const std::string &Path);
  Error readReplace(const json::Object &O, const std::string &Path,
                    std::string &From, std::string &To);
  Error readMetaspace(const json::Object &O, const std::string &Path,
                      std::string &Replacement, PrependScheme &Scheme);

  Error parseModel(const json::Value *V);
  Error parseMerges(const json::Array &Merges);
  Error parseAddedTokens(const json::Value *V);
  /// Parses one step of a component whose "type" is Type.
  using StepParser = Error (Loader::*)(const json::Object &O, StringRef Type,
                                       const std::string &Path);
  Error parseComponent(const json::Value &V, const std::string &Path,
                       StringRef ListKey, StepParser Parse);
  Error parseNormalizer(const json::Object &O, StringRef Type,
                        const std::string &Path);
  Error parsePreTokenizer(const json::Object &O, StringRef Type,
                          const std::string &Path);
  Error parseSplit(const json::Object &O, const std::string &Path);
  Error parseDecoder(const json::Object &O, StringRef Type,
                     const std::string &Path);
  Error parsePostProcessor(const json::Object &O, StringRef Type,
                           const std::string &Path);
  Error parseTemplate(const json::Object &O, const std::string &Path);
  void deriveBosEos();

  StringRef File;
  Tokenizer::Impl &T;
};
} // namespace

static std::string indexed(const std::string &Path, size_t I) {
  return Path + "[" + std::to_string(I) + "]";
}

/// Null means "no such component"; anything else must be an object.
Expected<const json::Object *> Loader::getComponent(const json::Value &V,
                                                    const std::string &Path) {
  if (V.kind() == json::Value::Null)
    return nullptr;
  if (const json::Object *O = V.getAsObject())
    return O;
  return fail(Path + " is not an object");
}

Expected<StringRef> Loader::getType(const json::Object &O,
                                    const std::string &Path) {
  return getString(O, "type", Path);
}

Expected<StringRef> Loader::getString(const json::Object &O, StringRef Key,
                                      const std::string &Path) {
  if (std::optional<StringRef> S = O.getString(Key))
    return *S;
  return fail(Path + "." + Key + " is missing or not a string");
}

Expected<bool> Loader::getBool(const json::Object &O, StringRef Key,
                               const std::string &Path, bool Default) {
  const json::Value *V = O.get(Key);
  if (!V || V->kind() == json::Value::Null)
    return Default;
  if (std::optional<bool> B = V->getAsBoolean())
    return *B;
  return fail(Path + "." + Key + " is not a boolean");
}

/// A string field that must hold exactly one character.
Expected<std::string> Loader::getChar(const json::Object &O, StringRef Key,
                                      const std::string &Path) {
  Expected<StringRef> S = getString(O, Key, Path);
  if (!S)
    return S.takeError();
  if (S->empty() || decodeChar(*S, 0).Len != S->size())
    return fail(Path + "." + Key + " must be a single character");
  return S->str();
}

/// `"pattern": {"String": "..."}`; regex patterns are only supported by the
/// Split pre-tokenizer.
Expected<std::string> Loader::getStringPattern(const json::Object &O,
                                               const std::string &Path) {
  const json::Object *Pattern = O.getObject("pattern");
  if (!Pattern)
    return fail(Path + ".pattern is missing or not an object");
  if (std::optional<StringRef> S = Pattern->getString("String"))
    return S->str();
  if (std::optional<StringRef> R = Pattern->getString("Regex"))
    return fail(Path + ".pattern: Regex pattern '" + *R +
                "' is not supported (supported: String)");
  return fail(Path + ".pattern has neither String nor Regex");
}

/// Metaspace's prepend_scheme, or the older add_prefix_space flag.
Expected<PrependScheme> Loader::getPrependScheme(const json::Object &O,
                                                 const std::string &Path) {
  if (std::optional<bool> Add = O.getBoolean("add_prefix_space"); Add && !*Add)
    return PrependScheme::Never;
  std::optional<StringRef> S = O.getString("prepend_scheme");
  if (!S || *S == "always")
    return PrependScheme::Always;
  if (*S == "first")
    return PrependScheme::First;
  if (*S == "never")
    return PrependScheme::Never;
  return fail(Path + ".prepend_scheme '" + *S +
              "' is not one of first, always, never");
}

/// A Replace step's pattern and its "content", a normalizer's or a
/// decoder's.
Error Loader::readReplace(const json::Object &O, const std::string &Path,
                          std::string &From, std::string &To) {
  Expected<std::string> Pattern = getStringPattern(O, Path);
  if (!Pattern)
    return Pattern.takeError();
  Expected<StringRef> Content = getString(O, "content", Path);
  if (!Content)
    return Content.takeError();
  From = *Pattern;
  To = Content->str();
  return Error::success();
}

/// A Metaspace step's replacement character and prepend scheme, a
/// pre-tokenizer's or a decoder's.
Error Loader::readMetaspace(const json::Object &O, const std::string &Path,
                            std::string &Replacement, PrependScheme &Scheme) {
  Expected<std::string> Char = getChar(O, "replacement", Path);
  if (!Char)
    return Char.takeError();
  Expected<PrependScheme> Prepend = getPrependScheme(O, Path);
  if (!Prepend)
    return Prepend.takeError();
  Replacement = *Char;
  Scheme = *Prepend;
  return Error::success();
}

Error Loader::parseModel(const json::Value *V) {
  const json::Object *M = V ? V->getAsObject() : nullptr;
  if (!M)
    return fail("model is missing or not an object");
  if (std::optional<StringRef> Type = M->getString("type");
      Type && *Type != "BPE")
    return unsupported("model", *Type, "BPE");

  for (StringRef Key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (std::optional<StringRef> S = M->getString(Key); S && !S->empty())
      return fail("model." + Key + " '" + *S + "' is not supported");
  if (const json::Value *D = M->get("dropout"))
    if (D->kind() != json::Value::Null && D->getAsNumber().value_or(1) != 0)
      return fail("model.dropout is not supported");

  const json::Object *Vocab = M->getObject("vocab");
  if (!Vocab)
    return fail("model.vocab is missing or not an object");
  for (const auto &[Key, IdValue] : *Vocab) {
    StringRef Piece = Key;
    std::optional<int64_t> Id = IdValue.getAsInteger();
    if (!Id || !plausibleId(*Id, Vocab->size()))
      return fail("model.vocab['" + Piece + "'] is not a valid id (ids " +
                  "run from 0 to about the number of entries, " +
                  Twine(Vocab->size()) + ")");
    T.addVocabEntry(Piece, int32_t(*Id));
  }
  T.Model.deriveByteIds();

  const json::Value *Unk = M->get("unk_token");
  if (Unk && Unk->kind() != json::Value::Null) {
    std::optional<StringRef> Name = Unk->getAsString();
    if (!Name)
      return fail("model.unk_token is not a string");
    auto It = T.Model.Vocab.find(*Name);
    if (It == T.Model.Vocab.end())
      return fail("model.unk_token '" + *Name + "' is not in model.vocab");
    T.Model.UnkId = It->second;
  }

  std::string Path = "model";
  // Each Expected is checked before the next exists: an early return must
  // not drop one unchecked.
  Expected<bool> FuseUnk = getBool(*M, "fuse_unk", Path, false);
  if (!FuseUnk)
    return FuseUnk.takeError();
  Expected<bool> ByteFallback = getBool(*M, "byte_fallback", Path, false);
  if (!ByteFallback)
    return ByteFallback.takeError();
  Expected<bool> IgnoreMerges = getBool(*M, "ignore_merges", Path, false);
  if (!IgnoreMerges)
    return IgnoreMerges.takeError();
  T.Model.FuseUnk = *FuseUnk;
  T.Model.ByteFallback = *ByteFallback;
  T.Model.IgnoreMerges = *IgnoreMerges;

  const json::Array *Merges = M->getArray("merges");
  if (!Merges)
    return fail("model.merges is missing or not an array");
  T.Model.computeCutBeforeMetaspace();
  return parseMerges(*Merges);
}

/// Merges come as "left right" strings (one space, "#version" lines
/// skipped) or as ["left", "right"] pairs; their order is their rank.
Error Loader::parseMerges(const json::Array &Merges) {
  int32_t Rank = 0;
  auto IdOf = [&](StringRef Piece) -> std::optional<int32_t> {
    auto It = T.Model.Vocab.find(Piece);
    if (It == T.Model.Vocab.end())
      return std::nullopt;
    return It->second;
  };
  for (size_t I = 0; I < Merges.size(); ++I) {
    const json::Value &E = Merges[I];
    std::string Path = indexed("model.merges", I);
    StringRef Left, Right;
    if (std::optional<StringRef> S = E.getAsString()) {
      if (S->starts_with("#version"))
        continue;
      std::tie(Left, Right) = S->split(' ');
      if (S->count(' ') != 1)
        return fail(Path + " '" + *S + "' is not of the form 'left right'");
    } else if (const json::Array *Pair = E.getAsArray();
               Pair && Pair->size() == 2 && (*Pair)[0].getAsString() &&
               (*Pair)[1].getAsString()) {
      Left = *(*Pair)[0].getAsString();
      Right = *(*Pair)[1].getAsString();
    } else {
      return fail(Path + " is neither a string nor a pair of strings");
    }
    std::optional<int32_t> L = IdOf(Left), R = IdOf(Right);
    std::string MergedPiece = (Left + Right).str();
    std::optional<int32_t> Merged = IdOf(MergedPiece);
    for (auto [Id, Piece] : {std::pair{L, Left}, std::pair{R, Right},
                             std::pair{Merged, StringRef(MergedPiece)}})
      if (!Id)
        return fail(Path + ": '" + Piece + "' is not in model.vocab");
    // A repeated pair keeps its last rank, as in Hugging Face.
    T.Model.Merges[{*L, *R}] = {Rank++, *Merged};
  }
  return Error::success();
}

/// Added tokens take the model's id for their content when it has one, as
/// Hugging Face does; otherwise their own "id".
Error Loader::parseAddedTokens(const json::Value *V) {
  if (!V || V->kind() == json::Value::Null)
    return Error::success();
  const json::Array *A = V->getAsArray();
  if (!A)
    return fail("added_tokens is not an array");
  for (size_t I = 0; I < A->size(); ++I) {
    std::string Path = indexed("added_tokens", I);
    const json::Object *O = (*A)[I].getAsObject();
    if (!O)
      return fail(Path + " is not an object");
    Expected<StringRef> Content = getString(*O, "content", Path);
    if (!Content)
      return Content.takeError();
    if (Content->empty())
      continue; // Ignored by Hugging Face as well.
    std::optional<int64_t> JsonId = O->getInteger("id");
    if (!JsonId || *JsonId < 0 || *JsonId >= INT32_MAX)
      return fail(Path + ".id is missing or not a valid id");

    AddedToken Tok;
    Tok.Content = Content->str();
    auto VocabIt = T.Model.Vocab.find(*Content);
    Tok.Id =
        VocabIt != T.Model.Vocab.end() ? VocabIt->second : int32_t(*JsonId);
    bool *Flags[] = {&Tok.Special, &Tok.LStrip, &Tok.RStrip, &Tok.SingleWord};
    StringRef Names[] = {"special", "lstrip", "rstrip", "single_word"};
    for (size_t F = 0; F < std::size(Flags); ++F) {
      Expected<bool> B = getBool(*O, Names[F], Path, false);
      if (!B)
        return B.takeError();
      *Flags[F] = *B;
    }
    Expected<bool> Normalized = getBool(*O, "normalized", Path, !Tok.Special);
    if (!Normalized)
      return Normalized.takeError();
    Tok.Normalized = *Normalized;
    // Normalized tokens are matched, and shown by decode(), in normalized
    // form.
    Tok.DecodeAs = Tok.Normalized ? T.normalize(Tok.Content) : Tok.Content;

    if (T.AddedByContent.count(Tok.Content))
      return fail(Path + ": duplicate added token '" + Tok.Content + "'");
    if (!plausibleId(Tok.Id, T.numPieces() + A->size()))
      return fail(Path + ": id " + Twine(Tok.Id) + " is not a valid id");
    T.addAddedToken(std::move(Tok));
  }
  return Error::success();
}

/// A component (normalizer, pre-tokenizer, decoder or post-processor) at
/// Path: absent when null, else an object whose "type" is a step that Parse
/// reads or a "Sequence" whose ListKey array holds components in turn.
Error Loader::parseComponent(const json::Value &V, const std::string &Path,
                             StringRef ListKey, StepParser Parse) {
  Expected<const json::Object *> O = getComponent(V, Path);
  if (!O || !*O)
    return O.takeError();
  Expected<StringRef> Type = getType(**O, Path);
  if (!Type)
    return Type.takeError();
  if (*Type != "Sequence")
    return (this->*Parse)(**O, *Type, Path);
  std::string ListPath = Path + "." + ListKey.str();
  const json::Array *Steps = (*O)->getArray(ListKey);
  if (!Steps)
    return fail(ListPath + " is missing or not an array");
  for (size_t I = 0; I < Steps->size(); ++I)
    if (Error E =
            parseComponent((*Steps)[I], indexed(ListPath, I), ListKey, Parse))
      return E;
  return Error::success();
}

Error Loader::parseNormalizer(const json::Object &O, StringRef Type,
                              const std::string &Path) {
  NormalizerStep Step;
  if (Type == "Prepend") {
    Expected<StringRef> Prefix = getString(O, "prepend", Path);
    if (!Prefix)
      return Prefix.takeError();
    Step.Kind = NormalizerStep::Prepend;
    Step.To = Prefix->str();
  } else if (Type == "Replace") {
    if (Error E = readReplace(O, Path, Step.From, Step.To))
      return E;
    Step.Kind = NormalizerStep::Replace;
  } else if (Type == "Strip") {
    Expected<bool> Left = getBool(O, "strip_left", Path, true);
    if (!Left)
      return Left.takeError();
    Expected<bool> Right = getBool(O, "strip_right", Path, true);
    if (!Right)
      return Right.takeError();
    Step.Kind = NormalizerStep::Strip;
    Step.Left = *Left;
    Step.Right = *Right;
  } else if (Type == "NFC") {
    Step.Kind = NormalizerStep::NFC;
  } else if (Type == "NFD") {
    Step.Kind = NormalizerStep::NFD;
  } else if (Type == "NFKC") {
    Step.Kind = NormalizerStep::NFKC;
  } else if (Type == "NFKD") {
    Step.Kind = NormalizerStep::NFKD;
  } else {
    return unsupported(Path, Type,
                       "Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, "
                       "Sequence");
  }
  T.Normalizers.push_back(std::move(Step));
  return Error::success();
}

Error Loader::parsePreTokenizer(const json::Object &O, StringRef Type,
                                const std::string &Path) {
  if (Type == "Split")
    return parseSplit(O, Path);

  PreTokenizerStep Step;
  if (Type == "Metaspace") {
    if (Error E = readMetaspace(O, Path, Step.Literal, Step.Scheme))
      return E;
    Expected<bool> Split = getBool(O, "split", Path, true);
    if (!Split)
      return Split.takeError();
    Step.Kind = PreTokenizerStep::Metaspace;
    Step.MetaspaceSplit = *Split;
  } else if (Type == "Digits") {
    Expected<bool> Individual = getBool(O, "individual_digits", Path, false);
    if (!Individual)
      return Individual.takeError();
    Step.Kind = PreTokenizerStep::Digits;
    Step.Behavior =
        *Individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
  } else if (Type == "ByteLevel") {
    Expected<bool> AddPrefixSpace = getBool(O, "add_prefix_space", Path, true);
    if (!AddPrefixSpace)
      return AddPrefixSpace.takeError();
    Expected<bool> UseRegex = getBool(O, "use_regex", Path, true);
    if (!UseRegex)
      return UseRegex.takeError();
    Step.Kind = PreTokenizerStep::ByteLevel;
    Step.AddPrefixSpace = *AddPrefixSpace;
    Step.UseRegex = *UseRegex;
    T.TheKind = Tokenizer::Kind::ByteLevelBPE;
  } else {
    return unsupported(Path, Type,
                       "Metaspace, ByteLevel, Split, Digits, Sequence");
  }
  T.PreTokenizers.push_back(std::move(Step));
  return Error::success();
}

/// Split with a String pattern, or a Regex pattern that is one of the
/// regexes we have scanners for.
Error Loader::parseSplit(const json::Object &O, const std::string &Path) {
  PreTokenizerStep Step;
  const json::Object *Pattern = O.getObject("pattern");
  if (!Pattern)
    return fail(Path + ".pattern is missing or not an object");
  if (std::optional<StringRef> S = Pattern->getString("String")) {
    Step.Kind = PreTokenizerStep::SplitLiteral;
    Step.Literal = S->str();
  } else if (std::optional<StringRef> R = Pattern->getString("Regex")) {
    Step.Kind = PreTokenizerStep::SplitPattern;
    const SplitRegexName *N = llvm::find_if(
        SplitRegexNames, [&](const SplitRegexName &N) { return N.Pattern == *R; });
    if (N != std::end(SplitRegexNames))
      Step.Regex = N->Regex;
    else
      return fail(Path + ".pattern: Regex '" + *R +
                  "' is not supported (supported: the GPT-2, Llama-3 and "
                  "Qwen-2 split regexes)");
  } else {
    return fail(Path + ".pattern has neither String nor Regex");
  }

  Expected<StringRef> Behavior = getString(O, "behavior", Path);
  if (!Behavior)
    return Behavior.takeError();
  static const std::pair<StringRef, SplitBehavior> Behaviors[] = {
      {"Removed", SplitBehavior::Removed},
      {"Isolated", SplitBehavior::Isolated},
      {"MergedWithPrevious", SplitBehavior::MergedWithPrevious},
      {"MergedWithNext", SplitBehavior::MergedWithNext},
      {"Contiguous", SplitBehavior::Contiguous}};
  auto It = llvm::find_if(Behaviors,
                          [&](const auto &B) { return B.first == *Behavior; });
  if (It == std::end(Behaviors))
    return fail(Path + ".behavior '" + *Behavior + "' is not supported");
  Step.Behavior = It->second;
  Expected<bool> Invert = getBool(O, "invert", Path, false);
  if (!Invert)
    return Invert.takeError();
  Step.Invert = *Invert;
  T.PreTokenizers.push_back(std::move(Step));
  return Error::success();
}

Error Loader::parseDecoder(const json::Object &O, StringRef Type,
                           const std::string &Path) {
  DecoderStep Step;
  if (Type == "Replace") {
    if (Error E = readReplace(O, Path, Step.From, Step.To))
      return E;
    Step.Kind = DecoderStep::Replace;
  } else if (Type == "ByteFallback") {
    Step.Kind = DecoderStep::ByteFallback;
  } else if (Type == "Fuse") {
    Step.Kind = DecoderStep::Fuse;
  } else if (Type == "Strip") {
    Expected<std::string> Content = getChar(O, "content", Path);
    if (!Content)
      return Content.takeError();
    std::optional<int64_t> Start = O.getInteger("start");
    std::optional<int64_t> Stop = O.getInteger("stop");
    if (!Start || !Stop || *Start < 0 || *Stop < 0)
      return fail(Path + ".start/stop are missing or not valid counts");
    Step.Kind = DecoderStep::Strip;
    Step.From = *Content;
    Step.Start = unsigned(*Start);
    Step.Stop = unsigned(*Stop);
  } else if (Type == "Metaspace") {
    if (Error E = readMetaspace(O, Path, Step.From, Step.Scheme))
      return E;
    Step.Kind = DecoderStep::Metaspace;
  } else if (Type == "ByteLevel") {
    Step.Kind = DecoderStep::ByteLevel;
    T.TheKind = Tokenizer::Kind::ByteLevelBPE;
  } else {
    return unsupported(
        Path, Type,
        "Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel, Sequence");
  }
  T.Decoders.push_back(std::move(Step));
  return Error::success();
}

Error Loader::parsePostProcessor(const json::Object &O, StringRef Type,
                                 const std::string &Path) {
  if (Type == "TemplateProcessing")
    return parseTemplate(O, Path);
  if (Type == "ByteLevel")
    return Error::success(); // Only adjusts offsets, which we do not track.
  return unsupported(Path, Type, "TemplateProcessing, ByteLevel, Sequence");
}

/// The "single" template: special tokens before $A form the prefix, those
/// after it the suffix. A later processor wraps the result of an earlier one.
Error Loader::parseTemplate(const json::Object &O, const std::string &Path) {
  const json::Array *Single = O.getArray("single");
  if (!Single)
    return fail(Path + ".single is missing or not an array");
  const json::Object *Specials = O.getObject("special_tokens");
  std::vector<int32_t> Prefix, Suffix;
  bool SeenSequence = false;
  for (size_t I = 0; I < Single->size(); ++I) {
    std::string ItemPath = indexed(Path + ".single", I);
    const json::Object *Item = (*Single)[I].getAsObject();
    if (!Item)
      return fail(ItemPath + " is not an object");
    if (const json::Object *Seq = Item->getObject("Sequence")) {
      if (Seq->getString("id") != std::optional<StringRef>("A"))
        return fail(ItemPath + ": only sequence A can appear in 'single'");
      SeenSequence = true;
      continue;
    }
    const json::Object *Special = Item->getObject("SpecialToken");
    if (!Special)
      return fail(ItemPath + " is neither a Sequence nor a SpecialToken");
    Expected<StringRef> Name = getString(*Special, "id", ItemPath);
    if (!Name)
      return Name.takeError();
    const json::Object *Entry = Specials ? Specials->getObject(*Name) : nullptr;
    const json::Array *Ids = Entry ? Entry->getArray("ids") : nullptr;
    if (!Ids)
      return fail(ItemPath + ": special token '" + *Name + "' has no ids in " +
                  Path + ".special_tokens");
    for (const json::Value &IdValue : *Ids) {
      std::optional<int64_t> Id = IdValue.getAsInteger();
      if (!Id || *Id < 0 || *Id >= INT32_MAX)
        return fail(Path + ".special_tokens['" + *Name +
                    "'].ids holds an invalid id");
      (SeenSequence ? Suffix : Prefix).push_back(int32_t(*Id));
    }
  }
  T.Prefix.insert(T.Prefix.begin(), Prefix.begin(), Prefix.end());
  T.Suffix.insert(T.Suffix.end(), Suffix.begin(), Suffix.end());
  return Error::success();
}

/// <bos>/<eos> are what the post-processor adds around a sequence when that
/// is a single token, else the added token with a conventional name.
void Loader::deriveBosEos() {
  auto ByName = [&](ArrayRef<StringRef> Names) -> std::optional<int32_t> {
    for (StringRef Name : Names)
      if (auto It = T.AddedByContent.find(Name); It != T.AddedByContent.end())
        return T.Added[It->second].Id;
    return std::nullopt;
  };
  T.Bos =
      T.Prefix.size() == 1
          ? std::optional<int32_t>(T.Prefix[0])
          : ByName({"<bos>", "<s>", "<|begin_of_text|>", "<|startoftext|>"});
  T.Eos = T.Suffix.size() == 1
              ? std::optional<int32_t>(T.Suffix[0])
              : ByName({"<eos>", "</s>", "<|end_of_text|>", "<|endoftext|>"});
}

Error Loader::load(const json::Object &Root) {
  // The model first (added tokens take its ids), the normalizer before the
  // added tokens (normalized ones are matched in normalized form).
  if (Error E = parseModel(Root.get("model")))
    return E;
  const json::Value Null(nullptr);
  auto Field = [&](StringRef Key) -> const json::Value & {
    const json::Value *V = Root.get(Key);
    return V ? *V : Null;
  };
  if (Error E = parseComponent(Field("normalizer"), "normalizer", "normalizers",
                               &Loader::parseNormalizer))
    return E;
  // Before the added tokens, which are normalized as they load.
  if (std::optional<std::string> Why = unboundedSteps(T.Normalizers, {}))
    return fail(*Why);
  if (Error E = parseAddedTokens(Root.get("added_tokens")))
    return E;
  if (Error E = parseComponent(Field("pre_tokenizer"), "pre_tokenizer",
                               "pretokenizers", &Loader::parsePreTokenizer))
    return E;
  // A decoder that is there, even an empty Sequence, replaces the default
  // (tokens joined with spaces).
  T.HasDecoder = Field("decoder").kind() != json::Value::Null;
  if (Error E = parseComponent(Field("decoder"), "decoder", "decoders",
                               &Loader::parseDecoder))
    return E;
  if (std::optional<std::string> Why = unboundedSteps({}, T.Decoders))
    return fail(*Why);
  if (Error E = parseComponent(Field("post_processor"), "post_processor",
                               "processors", &Loader::parsePostProcessor))
    return E;
  deriveBosEos();
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Tokenizer
//===----------------------------------------------------------------------===//

Tokenizer::Tokenizer(std::unique_ptr<Impl> I) : P(std::move(I)) {}
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::~Tokenizer() = default;

/// llvm::json (LLVM 19) decodes an escaped surrogate pair of a code point
/// above U+1FFFF wrongly: "\ud84d\udcae" (U+234AE) comes out as U+134AE.
/// Files written by Python's json.dump escape all non-ASCII text, so such
/// pairs are rewritten as raw UTF-8 before parsing. Returns std::nullopt if
/// the text has none.
static std::optional<std::string> rewriteSurrogatePairs(StringRef Text) {
  auto Surrogate = [&](size_t At, unsigned Lo, unsigned Hi) -> unsigned {
    if (At + 6 > Text.size() || Text.substr(At, 2) != "\\u" ||
        !llvm::all_of(Text.substr(At + 2, 4), isHexDigit))
      return 0;
    unsigned V = 0;
    Text.substr(At + 2, 4).getAsInteger(16, V);
    return V >= Lo && V <= Hi ? V : 0;
  };
  std::optional<std::string> Out;
  size_t Copied = 0;
  for (size_t I = Text.find('\\'); I != StringRef::npos;
       I = Text.find('\\', I + 2)) { // I + 2 skips the escaped character.
    unsigned High = Surrogate(I, 0xD800, 0xDBFF);
    unsigned Low = High ? Surrogate(I + 6, 0xDC00, 0xDFFF) : 0;
    if (!Low)
      continue;
    if (!Out)
      Out.emplace();
    Out->append(Text.data() + Copied, I - Copied);
    appendUTF8(*Out, 0x10000 + ((High - 0xD800) << 10) + (Low - 0xDC00));
    Copied = I + 12;
    I += 10; // The loop adds 2.
  }
  if (Out)
    Out->append(Text.data() + Copied, Text.size() - Copied);
  return Out;
}

Expected<Tokenizer> Tokenizer::fromJSON(StringRef Text, StringRef FileName) {
  std::optional<std::string> Rewritten = rewriteSurrogatePairs(Text);
  Expected<json::Value> Root = parseJSON(Rewritten ? *Rewritten : Text);
  if (!Root)
    return createStringError(
        inconvertibleErrorCode(),
        FileName + ": invalid JSON: " + toString(Root.takeError()));
  const json::Object *O = Root->getAsObject();
  if (!O)
    return createStringError(inconvertibleErrorCode(),
                             FileName + ": the top level is not an object");
  auto I = std::make_unique<Impl>();
  if (Error E = Loader(FileName, *I).load(*O))
    return E;
  return Tokenizer(std::move(I));
}

Expected<Tokenizer> Tokenizer::fromFile(StringRef Path) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buffer =
      MemoryBuffer::getFile(Path, /*IsText=*/false,
                            /*RequiresNullTerminator=*/false);
  if (!Buffer)
    return createStringError(
        Buffer.getError(),
        Path + ": cannot read: " + Buffer.getError().message());
  return fromJSON((*Buffer)->getBuffer(), Path);
}

std::vector<int32_t> Tokenizer::encode(StringRef Text, bool AddSpecial) const {
  std::vector<int32_t> Ids;
  if (AddSpecial)
    Ids = P->Prefix;
  P->forEachWord(Text, [&](StringRef Word, const AddedToken *Tok) {
    if (Tok)
      Ids.push_back(Tok->Id);
    else
      P->Model.encodeWord(Word, Ids);
  });
  if (AddSpecial)
    Ids.insert(Ids.end(), P->Suffix.begin(), P->Suffix.end());
  return Ids;
}

std::vector<std::string> Tokenizer::preTokenize(StringRef Text) const {
  std::vector<std::string> Words;
  P->forEachWord(Text, [&](StringRef Word, const AddedToken *) {
    Words.push_back(Word.str());
  });
  return Words;
}

std::string Tokenizer::decode(ArrayRef<int32_t> Ids, bool SkipSpecial) const {
  std::vector<std::string> Tokens;
  Tokens.reserve(Ids.size());
  for (int32_t Id : Ids) {
    if (const AddedToken *Tok = P->addedById(Id)) {
      if (!(SkipSpecial && Tok->Special))
        Tokens.push_back(Tok->DecodeAs);
      continue;
    }
    if (StringRef Piece = P->pieceOf(Id); !Piece.empty())
      Tokens.push_back(Piece.str());
  }
  if (!P->HasDecoder)
    return join(Tokens, " ");
  for (const DecoderStep &Step : P->Decoders)
    Tokens = P->applyDecoder(Step, std::move(Tokens));
  return join(Tokens, "");
}

StringRef Tokenizer::piece(int32_t Id) const {
  return P->pieceOf(Id);
}

std::optional<int32_t> Tokenizer::id(StringRef Piece) const {
  if (auto It = P->AddedByContent.find(Piece); It != P->AddedByContent.end())
    return P->Added[It->second].Id;
  if (std::optional<int32_t> Id = P->Model.vocabId(Piece))
    return Id;
  return std::nullopt;
}

size_t Tokenizer::vocabSize() const { return P->numPieces(); }

Expected<std::vector<int32_t>>
Tokenizer::idsPastEmbedding(uint64_t Rows, StringRef File) const {
  auto Fail = [&](const Twine &What, int32_t Id) {
    return createStringError(
        inconvertibleErrorCode(),
        File + ": " + What + " '" + piece(Id) + "' (id " + Twine(Id) +
            ") is past the model's embedding (" + Twine(Rows) +
            " rows): text would encode to it");
  };
  for (const std::vector<int32_t> *Ids : {&P->Prefix, &P->Suffix})
    for (int32_t Id : *Ids)
      if (uint64_t(Id) >= Rows)
        return Fail("the post-processor's token", Id);
  std::vector<int32_t> Past;
  for (size_t Id = Rows; Id < P->numPieces(); ++Id) {
    if (P->addedById(int32_t(Id))) {
      Past.push_back(int32_t(Id));
      continue;
    }
    if (!P->pieceOf(int32_t(Id)).empty())
      return Fail("the vocabulary's token", int32_t(Id));
  }
  return Past;
}

Error Tokenizer::checkInEmbedding(ArrayRef<int32_t> Ids, uint64_t Rows,
                                  StringRef What) const {
  for (int32_t Id : Ids) {
    if (Id >= 0 && uint64_t(Id) < Rows)
      continue;
    if (StringRef Piece = piece(Id); !Piece.empty())
      return createStringError(inconvertibleErrorCode(),
                               What + " holds the token '" + Piece + "' (id " +
                                   Twine(Id) +
                                   "), which is past the model's embedding (" +
                                   Twine(Rows) + " rows)");
    return createStringError(inconvertibleErrorCode(),
                             "token id " + Twine(Id) +
                                 " is not in the model's vocabulary (" +
                                 Twine(Rows) + " tokens)");
  }
  return Error::success();
}

std::string Tokenizer::describeIdsPastEmbedding(ArrayRef<int32_t> Ids,
                                                uint64_t Rows) const {
  std::string Names;
  for (size_t I = 0; I < Ids.size() && I < 4; ++I)
    Names += (Twine(I ? ", " : "") + piece(Ids[I]) + " = " + Twine(Ids[I]))
                 .str();
  if (Ids.size() > 4)
    Names += ", ...";
  return (Twine(Ids.size()) + " added token" + (Ids.size() == 1 ? "" : "s") +
          " past the model's embedding (" + Twine(Rows) + " rows: " + Names +
          "), accepted as transformers does; text that spells one cannot "
          "be run")
      .str();
}

bool Tokenizer::isSpecial(int32_t Id) const {
  const AddedToken *Tok = P->addedById(Id);
  return Tok && Tok->Special;
}

std::optional<int32_t> Tokenizer::bosId() const { return P->Bos; }
std::optional<int32_t> Tokenizer::eosId() const { return P->Eos; }
Tokenizer::Kind Tokenizer::kind() const { return P->TheKind; }

StringRef Tokenizer::splitRegexFamily() const {
  for (const PreTokenizerStep &S : P->PreTokenizers) {
    if (S.Kind == PreTokenizerStep::SplitPattern)
      return familyName(S.Regex);
    if (S.Kind == PreTokenizerStep::ByteLevel && S.UseRegex)
      return familyName(SplitRegex::GPT2);
  }
  return "";
}

//===----------------------------------------------------------------------===//
// The compiled form (Tokenizer.fbs)
//===----------------------------------------------------------------------===//
//
// The enums of Tokenizer.fbs number their values as the structs above do, so
// the conversions are casts; the static_asserts keep the two in step.

static_assert(uint8_t(tfb::NormalizerKind::NFKD) == NormalizerStep::NFKD);
static_assert(uint8_t(tfb::PreTokenizerKind::Digits) ==
              PreTokenizerStep::Digits);
static_assert(uint8_t(tfb::DecoderKind::ByteLevel) == DecoderStep::ByteLevel);
static_assert(uint8_t(tfb::PrependScheme::Never) ==
              uint8_t(PrependScheme::Never));
static_assert(uint8_t(tfb::SplitRegex::Qwen2) == uint8_t(SplitRegex::Qwen2));
static_assert(uint8_t(tfb::SplitBehavior::Contiguous) ==
              uint8_t(SplitBehavior::Contiguous));
static_assert(uint8_t(tfb::Kind::ByteLevelBPE) ==
              uint8_t(Tokenizer::Kind::ByteLevelBPE));

static constexpr uint32_t kCompiledFormatVersion = 1;

/// The number of slots of a hash table for N keys: a power of two, at most
/// half full, so that probes stay short and an empty slot ends each one.
static size_t tableSlots(size_t N) { return PowerOf2Ceil(2 * N + 2); }

/// The vocabulary's hash table: per slot, 1 + the index (in Sorted, by id)
/// of the piece there, 0 for a free slot.
static std::vector<uint32_t>
vocabHashTable(ArrayRef<std::pair<int32_t, StringRef>> Sorted) {
  std::vector<uint32_t> Table(tableSlots(Sorted.size()), 0);
  size_t Mask = Table.size() - 1;
  for (size_t I = 0; I < Sorted.size(); ++I) {
    size_t Slot = uint32_t(flatHash(Sorted[I].second)) & Mask;
    while (Table[Slot])
      Slot = (Slot + 1) & Mask;
    Table[Slot] = uint32_t(I + 1);
  }
  return Table;
}

/// Every character's id (ASCII and the rest), by code point.
static std::vector<tfb::CharId> sortedCharIds(const BPEModel &M) {
  std::vector<tfb::CharId> CharIds;
  for (uint32_t CP = 0; CP < 128; ++CP)
    if (M.AsciiIds[CP] >= 0)
      CharIds.emplace_back(CP, M.AsciiIds[CP]);
  for (const auto &[CP, Id] : M.CharIds)
    CharIds.emplace_back(CP, Id);
  llvm::sort(CharIds, [](const tfb::CharId &A, const tfb::CharId &B) {
    return A.code_point() < B.code_point();
  });
  return CharIds;
}

/// The merges' hash table, keyed by the pair, free slots left -1. Inserted
/// by rank, so that the table's bytes depend only on the merges.
static std::vector<tfb::Merge> mergeHashTable(const BPEModel &Model) {
  std::vector<tfb::Merge> Merges;
  Merges.reserve(Model.Merges.size());
  for (const auto &[Pair, RankMerged] : Model.Merges)
    Merges.emplace_back(Pair.first, Pair.second, RankMerged.first,
                        RankMerged.second);
  llvm::sort(Merges, [](const tfb::Merge &A, const tfb::Merge &B) {
    return A.rank() < B.rank();
  });
  std::vector<tfb::Merge> Table(tableSlots(Merges.size()),
                                tfb::Merge(-1, -1, -1, -1));
  size_t Mask = Table.size() - 1;
  for (const tfb::Merge &M : Merges) {
    size_t Slot = uint32_t(flatHash(M.left(), M.right())) & Mask;
    while (Table[Slot].left() >= 0)
      Slot = (Slot + 1) & Mask;
    Table[Slot] = M;
  }
  return Table;
}

std::string Tokenizer::compiled() const {
  const Impl &T = *P;
  if (T.FlatBuffer) // Mapped from a compiled form: that is the answer.
    return T.FlatBuffer->getBuffer().str();
  flatbuffers::FlatBufferBuilder B(size_t(16) << 20);
  auto Str = [&](StringRef S) { return B.CreateString(S.data(), S.size()); };

  std::vector<flatbuffers::Offset<flatbuffers::String>> VocabPieces;
  std::vector<int32_t> VocabIds;
  VocabPieces.reserve(T.Model.Vocab.size());
  VocabIds.reserve(T.Model.Vocab.size());
  // By id, so that the bytes do not depend on the hash table's order.
  std::vector<std::pair<int32_t, StringRef>> Sorted;
  for (const auto &E : T.Model.Vocab)
    Sorted.push_back({E.getValue(), E.getKey()});
  llvm::sort(Sorted);
  for (auto [Id, Piece] : Sorted) {
    VocabPieces.push_back(Str(Piece));
    VocabIds.push_back(Id);
  }
  std::vector<uint32_t> VocabTable = vocabHashTable(Sorted);
  // pieces_by_id shares the vocabulary's strings where they are the same.
  std::vector<flatbuffers::Offset<flatbuffers::String>> PiecesById(
      T.Pieces.size());
  std::vector<bool> Shared(T.Pieces.size());
  for (size_t I = 0; I < Sorted.size(); ++I)
    if (T.Pieces[Sorted[I].first] == Sorted[I].second) {
      PiecesById[Sorted[I].first] = VocabPieces[I];
      Shared[Sorted[I].first] = true;
    }
  flatbuffers::Offset<flatbuffers::String> Empty = Str("");
  for (size_t Id = 0; Id < T.Pieces.size(); ++Id)
    if (!Shared[Id])
      PiecesById[Id] = T.Pieces[Id].empty() ? Empty : Str(T.Pieces[Id]);
  std::vector<tfb::CharId> CharIds = sortedCharIds(T.Model);
  std::vector<tfb::Merge> MergeTable = mergeHashTable(T.Model);

  std::vector<flatbuffers::Offset<tfb::AddedToken>> Added;
  for (const AddedToken &A : T.Added)
    Added.push_back(tfb::CreateAddedToken(B, Str(A.Content), Str(A.DecodeAs),
                                          A.Id, A.Special, A.LStrip, A.RStrip,
                                          A.SingleWord, A.Normalized));
  std::vector<flatbuffers::Offset<tfb::Normalizer>> Normalizers;
  for (const NormalizerStep &N : T.Normalizers)
    Normalizers.push_back(tfb::CreateNormalizer(
        B, tfb::NormalizerKind(N.Kind), Str(N.From), Str(N.To), N.Left,
        N.Right));
  std::vector<flatbuffers::Offset<tfb::PreTokenizer>> PreTokenizers;
  for (const PreTokenizerStep &S : T.PreTokenizers)
    PreTokenizers.push_back(tfb::CreatePreTokenizer(
        B, tfb::PreTokenizerKind(S.Kind), Str(S.Literal),
        tfb::PrependScheme(S.Scheme), S.MetaspaceSplit, S.AddPrefixSpace,
        S.UseRegex, tfb::SplitRegex(S.Regex), tfb::SplitBehavior(S.Behavior),
        S.Invert));
  std::vector<flatbuffers::Offset<tfb::Decoder>> Decoders;
  for (const DecoderStep &D : T.Decoders)
    Decoders.push_back(tfb::CreateDecoder(B, tfb::DecoderKind(D.Kind),
                                          Str(D.From), Str(D.To), D.Start,
                                          D.Stop, tfb::PrependScheme(D.Scheme)));

  auto Root = tfb::CreateTokenizer(
      B, kCompiledFormatVersion, tfb::Kind(T.TheKind),
      B.CreateVector(VocabPieces), B.CreateVector(VocabIds),
      B.CreateVector(VocabTable), B.CreateVector(PiecesById),
      B.CreateVectorOfStructs(CharIds), B.CreateVectorOfStructs(MergeTable),
      T.Model.UnkId.value_or(-1),
      T.Model.FuseUnk, T.Model.ByteFallback, T.Model.IgnoreMerges,
      T.Model.CutBeforeMetaspace, B.CreateVector(Added),
      B.CreateVector(Normalizers), B.CreateVector(PreTokenizers),
      T.HasDecoder, B.CreateVector(Decoders), B.CreateVector(T.Prefix),
      B.CreateVector(T.Suffix), T.Bos.value_or(-1), T.Eos.value_or(-1));
  tfb::FinishTokenizerBuffer(B, Root);
  return std::string(reinterpret_cast<const char *>(B.GetBufferPointer()),
                     B.GetSize());
}

Expected<std::string> Tokenizer::compile(StringRef JsonText,
                                         StringRef FileName) {
  Expected<Tokenizer> T = fromJSON(JsonText, FileName);
  if (!T)
    return T.takeError();
  return T->compiled();
}


namespace {
/// Rebuilds a Tokenizer::Impl from the compiled form, checking what the
/// flatbuffers verifier cannot: that enums are known and ids in range.
class CompiledLoader {
public:
  CompiledLoader(StringRef File, Tokenizer::Impl &T) : File(File), T(T) {}
  Error load(const tfb::Tokenizer &R);

private:
  /// The model's tables (vocabulary, merges, characters) and settings.
  Error loadModel(const tfb::Tokenizer &R);
  Error loadAddedTokens(const tfb::Tokenizer &R);
  /// The normalizer, pre-tokenizer and decoder steps.
  Error loadSteps(const tfb::Tokenizer &R);
  /// The post-processor's ids and the BOS and EOS ids.
  Error loadSpecialIds(const tfb::Tokenizer &R);
  Error fail(const Twine &Msg) const {
    return createStringError(inconvertibleErrorCode(), File + ": " + Msg);
  }
  /// An id with a piece: decode and the embedding checks look it up.
  bool validId(int64_t Id) const { return Id >= 0 && Id < NumIds; }
  int64_t NumIds = 0; // pieces_by_id's size, once loadModel checked it.
  StringRef File;
  Tokenizer::Impl &T;
};
} // namespace

Error CompiledLoader::load(const tfb::Tokenizer &R) {
  if (R.format_version() != kCompiledFormatVersion)
    return fail("compiled tokenizer format version " +
                Twine(R.format_version()) + " is not supported (supported: " +
                Twine(kCompiledFormatVersion) + ")");
  if (uint8_t(R.kind()) > uint8_t(tfb::Kind::MAX))
    return fail("unknown tokenizer kind");
  T.TheKind = Tokenizer::Kind(R.kind());

  if (Error E = loadModel(R))
    return E;
  if (Error E = loadAddedTokens(R))
    return E;
  if (Error E = loadSteps(R))
    return E;
  return loadSpecialIds(R);
}

Error CompiledLoader::loadModel(const tfb::Tokenizer &R) {
  // The tables are used in place; what encoding relies on is checked
  // here: sizes, a free slot in each hash table, ids in range.
  const auto *Pieces = R.vocab_pieces();
  const auto *Ids = R.vocab_ids();
  const auto *Table = R.vocab_table();
  const auto *ById = R.pieces_by_id();
  const auto *Merges = R.merge_table();
  const auto *Chars = R.char_ids();
  if (!Pieces || !Ids || !Table || !ById || !Merges || !Chars ||
      Pieces->size() != Ids->size() || ById->size() > kMaxTokenId)
    return fail("the vocabulary's tables are missing or differ in size");
  NumIds = int64_t(ById->size());
  auto IsTable = [](size_t Slots, size_t Used) {
    return isPowerOf2_64(Slots) && Used < Slots;
  };
  if (!IsTable(Table->size(), Pieces->size()) ||
      !IsTable(Merges->size(), 0))
    return fail("a hash table has no free slot");
  for (int32_t Id : *Ids)
    if (!validId(Id))
      return fail("vocabulary id " + Twine(Id) + " is not a valid id");
  bool Free = false;
  for (uint32_t Index : *Table) {
    if (Index > Pieces->size())
      return fail("the vocabulary table holds an invalid index");
    Free |= Index == 0;
  }
  bool FreeMerge = false;
  for (const tfb::Merge *M : *Merges) {
    if (M->left() < 0) {
      FreeMerge = true;
      continue;
    }
    if (!validId(M->right()) || !validId(M->merged()) || M->rank() < 0 ||
        !validId(M->left()))
      return fail("a merge holds an invalid id or rank");
  }
  if (!Free || !FreeMerge)
    return fail("a hash table has no free slot");
  T.Model.FlatVocabPieces = Pieces;
  T.Model.FlatVocabIds = Ids;
  T.Model.FlatVocabTable = Table;
  T.Model.FlatMerges = Merges;
  T.Model.CharIds.reserve(Chars->size());
  for (const tfb::CharId *C : *Chars) {
    if (!validId(C->id()) || C->code_point() > 0x10FFFF)
      return fail("character id " + Twine(C->id()) + " is not a valid id");
    if (C->code_point() < 128)
      T.Model.AsciiIds[C->code_point()] = C->id();
    else
      T.Model.CharIds[C->code_point()] = C->id();
  }
  T.Model.deriveByteIds();
  if (R.unk_id() >= 0) {
    if (!validId(R.unk_id()))
      return fail("unk id " + Twine(R.unk_id()) + " is not a valid id");
    T.Model.UnkId = R.unk_id();
  }
  T.Model.FuseUnk = R.fuse_unk();
  T.Model.ByteFallback = R.byte_fallback();
  T.Model.IgnoreMerges = R.ignore_merges();
  T.Model.CutBeforeMetaspace = R.cut_before_metaspace();

  return Error::success();
}

Error CompiledLoader::loadAddedTokens(const tfb::Tokenizer &R) {
  if (const auto *Added = R.added_tokens())
    for (const tfb::AddedToken *A : *Added) {
      if (!validId(A->id()))
        return fail("added token id " + Twine(A->id()) + " is not a valid id");
      if (fbStr(A->content()).empty() ||
          T.AddedByContent.count(fbStr(A->content())))
        return fail("an added token is empty or repeated");
      T.addAddedToken(AddedToken{fbStr(A->content()).str(),
                                 fbStr(A->decode_as()).str(), A->id(),
                                 A->special(), A->lstrip(), A->rstrip(),
                                 A->single_word(), A->normalized()});
    }
  return Error::success();
}

Error CompiledLoader::loadSteps(const tfb::Tokenizer &R) {
  if (const auto *Normalizers = R.normalizers())
    for (const tfb::Normalizer *N : *Normalizers) {
      if (uint8_t(N->kind()) > uint8_t(tfb::NormalizerKind::MAX))
        return fail("unknown normalizer kind");
      NormalizerStep Step;
      Step.Kind = NormalizerStep::KindTy(N->kind());
      Step.From = fbStr(N->from()).str();
      Step.To = fbStr(N->to()).str();
      Step.Left = N->left();
      Step.Right = N->right();
      T.Normalizers.push_back(std::move(Step));
    }
  if (const auto *PreTokenizers = R.pre_tokenizers())
    for (const tfb::PreTokenizer *S : *PreTokenizers) {
      if (uint8_t(S->kind()) > uint8_t(tfb::PreTokenizerKind::MAX) ||
          uint8_t(S->scheme()) > uint8_t(tfb::PrependScheme::MAX) ||
          uint8_t(S->regex()) > uint8_t(tfb::SplitRegex::MAX) ||
          uint8_t(S->behavior()) > uint8_t(tfb::SplitBehavior::MAX))
        return fail("unknown pre-tokenizer kind or setting");
      PreTokenizerStep Step;
      Step.Kind = PreTokenizerStep::KindTy(S->kind());
      Step.Literal = fbStr(S->literal()).str();
      Step.Scheme = PrependScheme(S->scheme());
      Step.MetaspaceSplit = S->metaspace_split();
      Step.AddPrefixSpace = S->add_prefix_space();
      Step.UseRegex = S->use_regex();
      Step.Regex = SplitRegex(S->regex());
      Step.Behavior = SplitBehavior(S->behavior());
      Step.Invert = S->invert();
      T.PreTokenizers.push_back(std::move(Step));
    }
  T.HasDecoder = R.has_decoder();
  if (const auto *Decoders = R.decoders())
    for (const tfb::Decoder *D : *Decoders) {
      if (uint8_t(D->kind()) > uint8_t(tfb::DecoderKind::MAX) ||
          uint8_t(D->scheme()) > uint8_t(tfb::PrependScheme::MAX))
        return fail("unknown decoder kind or setting");
      DecoderStep Step;
      Step.Kind = DecoderStep::KindTy(D->kind());
      Step.From = fbStr(D->from()).str();
      Step.To = fbStr(D->to()).str();
      Step.Start = D->start();
      Step.Stop = D->stop();
      Step.Scheme = PrependScheme(D->scheme());
      T.Decoders.push_back(std::move(Step));
    }
  if (std::optional<std::string> Why =
          unboundedSteps(T.Normalizers, T.Decoders))
    return fail(*Why);
  return Error::success();
}

Error CompiledLoader::loadSpecialIds(const tfb::Tokenizer &R) {
  auto Copy = [&](const flatbuffers::Vector<int32_t> *V,
                  std::vector<int32_t> &Out) -> Error {
    if (V)
      for (int32_t Id : *V) {
        if (!validId(Id))
          return fail("post-processor id " + Twine(Id) + " is not valid");
        Out.push_back(Id);
      }
    return Error::success();
  };
  if (Error E = Copy(R.prefix(), T.Prefix))
    return E;
  if (Error E = Copy(R.suffix(), T.Suffix))
    return E;
  if (R.bos_id() >= 0)
    T.Bos = R.bos_id();
  if (R.eos_id() >= 0)
    T.Eos = R.eos_id();
  return Error::success();
}

Expected<Tokenizer>
Tokenizer::fromCompiled(std::unique_ptr<MemoryBuffer> Buffer,
                        StringRef FileName) {
  StringRef Bytes = Buffer->getBuffer();
  auto *Data = reinterpret_cast<const uint8_t *>(Bytes.data());
  flatbuffers::Verifier V(Data, Bytes.size(),
                          flatbuffers::Verifier::Options{
                              /*max_depth=*/64, /*max_tables=*/1u << 30});
  // The verifier checks the identifier too, after the buffer's size.
  if (!tfb::VerifyTokenizerBuffer(V))
    return createStringError(inconvertibleErrorCode(),
                             FileName + ": not a compiled tokenizer");
  auto I = std::make_unique<Impl>();
  I->Flat = tfb::GetTokenizer(Data);
  if (Error E = CompiledLoader(FileName, *I).load(*I->Flat))
    return E;
  I->FlatBuffer = std::move(Buffer);
  return Tokenizer(std::move(I));
}
