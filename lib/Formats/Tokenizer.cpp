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
#include "vindex/Support/JSON.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/UnicodeCharRanges.h"

#include <algorithm>
#include <functional>

using namespace llvm;
using namespace vindex;

/// The largest token id accepted (16M; real vocabularies have at most a few
/// hundred thousand), so that a corrupt file cannot make us allocate
/// gigabytes.
static constexpr int64_t kMaxTokenId = int64_t(1) << 24;

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

/// The Unicode White_Space property: what `\s` means in the Oniguruma and
/// Rust regexes that Hugging Face uses, and what Rust's char::is_whitespace
/// tests for lstrip/rstrip.
static bool isWhitespace(uint32_t CP) {
  if (CP < 0x80)
    return (CP >= 0x09 && CP <= 0x0D) || CP == 0x20;
  return CP == 0x85 || CP == 0xA0 || CP == 0x1680 ||
         (CP >= 0x2000 && CP <= 0x200A) || CP == 0x2028 || CP == 0x2029 ||
         CP == 0x202F || CP == 0x205F || CP == 0x3000;
}

// General categories L (Lu Ll Lt Lm Lo) and N (Nd Nl No) of Unicode 14.0, the
// version of the Oniguruma library behind Hugging Face's regexes. Generated
// with Python's unicodedata (unidata_version 14.0.0); see NOTES.md.
static const llvm::sys::UnicodeCharRange LetterRanges[] = {
    {0x0041, 0x005A},   {0x0061, 0x007A},   {0x00AA, 0x00AA},
    {0x00B5, 0x00B5},   {0x00BA, 0x00BA},   {0x00C0, 0x00D6},
    {0x00D8, 0x00F6},   {0x00F8, 0x02C1},   {0x02C6, 0x02D1},
    {0x02E0, 0x02E4},   {0x02EC, 0x02EC},   {0x02EE, 0x02EE},
    {0x0370, 0x0374},   {0x0376, 0x0377},   {0x037A, 0x037D},
    {0x037F, 0x037F},   {0x0386, 0x0386},   {0x0388, 0x038A},
    {0x038C, 0x038C},   {0x038E, 0x03A1},   {0x03A3, 0x03F5},
    {0x03F7, 0x0481},   {0x048A, 0x052F},   {0x0531, 0x0556},
    {0x0559, 0x0559},   {0x0560, 0x0588},   {0x05D0, 0x05EA},
    {0x05EF, 0x05F2},   {0x0620, 0x064A},   {0x066E, 0x066F},
    {0x0671, 0x06D3},   {0x06D5, 0x06D5},   {0x06E5, 0x06E6},
    {0x06EE, 0x06EF},   {0x06FA, 0x06FC},   {0x06FF, 0x06FF},
    {0x0710, 0x0710},   {0x0712, 0x072F},   {0x074D, 0x07A5},
    {0x07B1, 0x07B1},   {0x07CA, 0x07EA},   {0x07F4, 0x07F5},
    {0x07FA, 0x07FA},   {0x0800, 0x0815},   {0x081A, 0x081A},
    {0x0824, 0x0824},   {0x0828, 0x0828},   {0x0840, 0x0858},
    {0x0860, 0x086A},   {0x0870, 0x0887},   {0x0889, 0x088E},
    {0x08A0, 0x08C9},   {0x0904, 0x0939},   {0x093D, 0x093D},
    {0x0950, 0x0950},   {0x0958, 0x0961},   {0x0971, 0x0980},
    {0x0985, 0x098C},   {0x098F, 0x0990},   {0x0993, 0x09A8},
    {0x09AA, 0x09B0},   {0x09B2, 0x09B2},   {0x09B6, 0x09B9},
    {0x09BD, 0x09BD},   {0x09CE, 0x09CE},   {0x09DC, 0x09DD},
    {0x09DF, 0x09E1},   {0x09F0, 0x09F1},   {0x09FC, 0x09FC},
    {0x0A05, 0x0A0A},   {0x0A0F, 0x0A10},   {0x0A13, 0x0A28},
    {0x0A2A, 0x0A30},   {0x0A32, 0x0A33},   {0x0A35, 0x0A36},
    {0x0A38, 0x0A39},   {0x0A59, 0x0A5C},   {0x0A5E, 0x0A5E},
    {0x0A72, 0x0A74},   {0x0A85, 0x0A8D},   {0x0A8F, 0x0A91},
    {0x0A93, 0x0AA8},   {0x0AAA, 0x0AB0},   {0x0AB2, 0x0AB3},
    {0x0AB5, 0x0AB9},   {0x0ABD, 0x0ABD},   {0x0AD0, 0x0AD0},
    {0x0AE0, 0x0AE1},   {0x0AF9, 0x0AF9},   {0x0B05, 0x0B0C},
    {0x0B0F, 0x0B10},   {0x0B13, 0x0B28},   {0x0B2A, 0x0B30},
    {0x0B32, 0x0B33},   {0x0B35, 0x0B39},   {0x0B3D, 0x0B3D},
    {0x0B5C, 0x0B5D},   {0x0B5F, 0x0B61},   {0x0B71, 0x0B71},
    {0x0B83, 0x0B83},   {0x0B85, 0x0B8A},   {0x0B8E, 0x0B90},
    {0x0B92, 0x0B95},   {0x0B99, 0x0B9A},   {0x0B9C, 0x0B9C},
    {0x0B9E, 0x0B9F},   {0x0BA3, 0x0BA4},   {0x0BA8, 0x0BAA},
    {0x0BAE, 0x0BB9},   {0x0BD0, 0x0BD0},   {0x0C05, 0x0C0C},
    {0x0C0E, 0x0C10},   {0x0C12, 0x0C28},   {0x0C2A, 0x0C39},
    {0x0C3D, 0x0C3D},   {0x0C58, 0x0C5A},   {0x0C5D, 0x0C5D},
    {0x0C60, 0x0C61},   {0x0C80, 0x0C80},   {0x0C85, 0x0C8C},
    {0x0C8E, 0x0C90},   {0x0C92, 0x0CA8},   {0x0CAA, 0x0CB3},
    {0x0CB5, 0x0CB9},   {0x0CBD, 0x0CBD},   {0x0CDD, 0x0CDE},
    {0x0CE0, 0x0CE1},   {0x0CF1, 0x0CF2},   {0x0D04, 0x0D0C},
    {0x0D0E, 0x0D10},   {0x0D12, 0x0D3A},   {0x0D3D, 0x0D3D},
    {0x0D4E, 0x0D4E},   {0x0D54, 0x0D56},   {0x0D5F, 0x0D61},
    {0x0D7A, 0x0D7F},   {0x0D85, 0x0D96},   {0x0D9A, 0x0DB1},
    {0x0DB3, 0x0DBB},   {0x0DBD, 0x0DBD},   {0x0DC0, 0x0DC6},
    {0x0E01, 0x0E30},   {0x0E32, 0x0E33},   {0x0E40, 0x0E46},
    {0x0E81, 0x0E82},   {0x0E84, 0x0E84},   {0x0E86, 0x0E8A},
    {0x0E8C, 0x0EA3},   {0x0EA5, 0x0EA5},   {0x0EA7, 0x0EB0},
    {0x0EB2, 0x0EB3},   {0x0EBD, 0x0EBD},   {0x0EC0, 0x0EC4},
    {0x0EC6, 0x0EC6},   {0x0EDC, 0x0EDF},   {0x0F00, 0x0F00},
    {0x0F40, 0x0F47},   {0x0F49, 0x0F6C},   {0x0F88, 0x0F8C},
    {0x1000, 0x102A},   {0x103F, 0x103F},   {0x1050, 0x1055},
    {0x105A, 0x105D},   {0x1061, 0x1061},   {0x1065, 0x1066},
    {0x106E, 0x1070},   {0x1075, 0x1081},   {0x108E, 0x108E},
    {0x10A0, 0x10C5},   {0x10C7, 0x10C7},   {0x10CD, 0x10CD},
    {0x10D0, 0x10FA},   {0x10FC, 0x1248},   {0x124A, 0x124D},
    {0x1250, 0x1256},   {0x1258, 0x1258},   {0x125A, 0x125D},
    {0x1260, 0x1288},   {0x128A, 0x128D},   {0x1290, 0x12B0},
    {0x12B2, 0x12B5},   {0x12B8, 0x12BE},   {0x12C0, 0x12C0},
    {0x12C2, 0x12C5},   {0x12C8, 0x12D6},   {0x12D8, 0x1310},
    {0x1312, 0x1315},   {0x1318, 0x135A},   {0x1380, 0x138F},
    {0x13A0, 0x13F5},   {0x13F8, 0x13FD},   {0x1401, 0x166C},
    {0x166F, 0x167F},   {0x1681, 0x169A},   {0x16A0, 0x16EA},
    {0x16F1, 0x16F8},   {0x1700, 0x1711},   {0x171F, 0x1731},
    {0x1740, 0x1751},   {0x1760, 0x176C},   {0x176E, 0x1770},
    {0x1780, 0x17B3},   {0x17D7, 0x17D7},   {0x17DC, 0x17DC},
    {0x1820, 0x1878},   {0x1880, 0x1884},   {0x1887, 0x18A8},
    {0x18AA, 0x18AA},   {0x18B0, 0x18F5},   {0x1900, 0x191E},
    {0x1950, 0x196D},   {0x1970, 0x1974},   {0x1980, 0x19AB},
    {0x19B0, 0x19C9},   {0x1A00, 0x1A16},   {0x1A20, 0x1A54},
    {0x1AA7, 0x1AA7},   {0x1B05, 0x1B33},   {0x1B45, 0x1B4C},
    {0x1B83, 0x1BA0},   {0x1BAE, 0x1BAF},   {0x1BBA, 0x1BE5},
    {0x1C00, 0x1C23},   {0x1C4D, 0x1C4F},   {0x1C5A, 0x1C7D},
    {0x1C80, 0x1C88},   {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},
    {0x1CE9, 0x1CEC},   {0x1CEE, 0x1CF3},   {0x1CF5, 0x1CF6},
    {0x1CFA, 0x1CFA},   {0x1D00, 0x1DBF},   {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},
    {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC},   {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},
    {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},   {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2071, 0x2071},   {0x207F, 0x207F},   {0x2090, 0x209C},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},
    {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},
    {0x2126, 0x2126},   {0x2128, 0x2128},   {0x212A, 0x212D},
    {0x212F, 0x2139},   {0x213C, 0x213F},   {0x2145, 0x2149},
    {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2CE4},
    {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0x2D00, 0x2D25},
    {0x2D27, 0x2D27},   {0x2D2D, 0x2D2D},   {0x2D30, 0x2D67},
    {0x2D6F, 0x2D6F},   {0x2D80, 0x2D96},   {0x2DA0, 0x2DA6},
    {0x2DA8, 0x2DAE},   {0x2DB0, 0x2DB6},   {0x2DB8, 0x2DBE},
    {0x2DC0, 0x2DC6},   {0x2DC8, 0x2DCE},   {0x2DD0, 0x2DD6},
    {0x2DD8, 0x2DDE},   {0x2E2F, 0x2E2F},   {0x3005, 0x3006},
    {0x3031, 0x3035},   {0x303B, 0x303C},   {0x3041, 0x3096},
    {0x309D, 0x309F},   {0x30A1, 0x30FA},   {0x30FC, 0x30FF},
    {0x3105, 0x312F},   {0x3131, 0x318E},   {0x31A0, 0x31BF},
    {0x31F0, 0x31FF},   {0x3400, 0x4DBF},   {0x4E00, 0xA48C},
    {0xA4D0, 0xA4FD},   {0xA500, 0xA60C},   {0xA610, 0xA61F},
    {0xA62A, 0xA62B},   {0xA640, 0xA66E},   {0xA67F, 0xA69D},
    {0xA6A0, 0xA6E5},   {0xA717, 0xA71F},   {0xA722, 0xA788},
    {0xA78B, 0xA7CA},   {0xA7D0, 0xA7D1},   {0xA7D3, 0xA7D3},
    {0xA7D5, 0xA7D9},   {0xA7F2, 0xA801},   {0xA803, 0xA805},
    {0xA807, 0xA80A},   {0xA80C, 0xA822},   {0xA840, 0xA873},
    {0xA882, 0xA8B3},   {0xA8F2, 0xA8F7},   {0xA8FB, 0xA8FB},
    {0xA8FD, 0xA8FE},   {0xA90A, 0xA925},   {0xA930, 0xA946},
    {0xA960, 0xA97C},   {0xA984, 0xA9B2},   {0xA9CF, 0xA9CF},
    {0xA9E0, 0xA9E4},   {0xA9E6, 0xA9EF},   {0xA9FA, 0xA9FE},
    {0xAA00, 0xAA28},   {0xAA40, 0xAA42},   {0xAA44, 0xAA4B},
    {0xAA60, 0xAA76},   {0xAA7A, 0xAA7A},   {0xAA7E, 0xAAAF},
    {0xAAB1, 0xAAB1},   {0xAAB5, 0xAAB6},   {0xAAB9, 0xAABD},
    {0xAAC0, 0xAAC0},   {0xAAC2, 0xAAC2},   {0xAADB, 0xAADD},
    {0xAAE0, 0xAAEA},   {0xAAF2, 0xAAF4},   {0xAB01, 0xAB06},
    {0xAB09, 0xAB0E},   {0xAB11, 0xAB16},   {0xAB20, 0xAB26},
    {0xAB28, 0xAB2E},   {0xAB30, 0xAB5A},   {0xAB5C, 0xAB69},
    {0xAB70, 0xABE2},   {0xAC00, 0xD7A3},   {0xD7B0, 0xD7C6},
    {0xD7CB, 0xD7FB},   {0xF900, 0xFA6D},   {0xFA70, 0xFAD9},
    {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFB1D, 0xFB1D},
    {0xFB1F, 0xFB28},   {0xFB2A, 0xFB36},   {0xFB38, 0xFB3C},
    {0xFB3E, 0xFB3E},   {0xFB40, 0xFB41},   {0xFB43, 0xFB44},
    {0xFB46, 0xFBB1},   {0xFBD3, 0xFD3D},   {0xFD50, 0xFD8F},
    {0xFD92, 0xFDC7},   {0xFDF0, 0xFDFB},   {0xFE70, 0xFE74},
    {0xFE76, 0xFEFC},   {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},
    {0xFF66, 0xFFBE},   {0xFFC2, 0xFFC7},   {0xFFCA, 0xFFCF},
    {0xFFD2, 0xFFD7},   {0xFFDA, 0xFFDC},   {0x10000, 0x1000B},
    {0x1000D, 0x10026}, {0x10028, 0x1003A}, {0x1003C, 0x1003D},
    {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA},
    {0x10280, 0x1029C}, {0x102A0, 0x102D0}, {0x10300, 0x1031F},
    {0x1032D, 0x10340}, {0x10342, 0x10349}, {0x10350, 0x10375},
    {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF},
    {0x10400, 0x1049D}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10500, 0x10527}, {0x10530, 0x10563}, {0x10570, 0x1057A},
    {0x1057C, 0x1058A}, {0x1058C, 0x10592}, {0x10594, 0x10595},
    {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9},
    {0x105BB, 0x105BC}, {0x10600, 0x10736}, {0x10740, 0x10755},
    {0x10760, 0x10767}, {0x10780, 0x10785}, {0x10787, 0x107B0},
    {0x107B2, 0x107BA}, {0x10800, 0x10805}, {0x10808, 0x10808},
    {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C},
    {0x1083F, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E},
    {0x108E0, 0x108F2}, {0x108F4, 0x108F5}, {0x10900, 0x10915},
    {0x10920, 0x10939}, {0x10980, 0x109B7}, {0x109BE, 0x109BF},
    {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17},
    {0x10A19, 0x10A35}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C},
    {0x10AC0, 0x10AC7}, {0x10AC9, 0x10AE4}, {0x10B00, 0x10B35},
    {0x10B40, 0x10B55}, {0x10B60, 0x10B72}, {0x10B80, 0x10B91},
    {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x10D00, 0x10D23}, {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1},
    {0x10F00, 0x10F1C}, {0x10F27, 0x10F27}, {0x10F30, 0x10F45},
    {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6},
    {0x11003, 0x11037}, {0x11071, 0x11072}, {0x11075, 0x11075},
    {0x11083, 0x110AF}, {0x110D0, 0x110E8}, {0x11103, 0x11126},
    {0x11144, 0x11144}, {0x11147, 0x11147}, {0x11150, 0x11172},
    {0x11176, 0x11176}, {0x11183, 0x111B2}, {0x111C1, 0x111C4},
    {0x111DA, 0x111DA}, {0x111DC, 0x111DC}, {0x11200, 0x11211},
    {0x11213, 0x1122B}, {0x11280, 0x11286}, {0x11288, 0x11288},
    {0x1128A, 0x1128D}, {0x1128F, 0x1129D}, {0x1129F, 0x112A8},
    {0x112B0, 0x112DE}, {0x11305, 0x1130C}, {0x1130F, 0x11310},
    {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333},
    {0x11335, 0x11339}, {0x1133D, 0x1133D}, {0x11350, 0x11350},
    {0x1135D, 0x11361}, {0x11400, 0x11434}, {0x11447, 0x1144A},
    {0x1145F, 0x11461}, {0x11480, 0x114AF}, {0x114C4, 0x114C5},
    {0x114C7, 0x114C7}, {0x11580, 0x115AE}, {0x115D8, 0x115DB},
    {0x11600, 0x1162F}, {0x11644, 0x11644}, {0x11680, 0x116AA},
    {0x116B8, 0x116B8}, {0x11700, 0x1171A}, {0x11740, 0x11746},
    {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906},
    {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916},
    {0x11918, 0x1192F}, {0x1193F, 0x1193F}, {0x11941, 0x11941},
    {0x119A0, 0x119A7}, {0x119AA, 0x119D0}, {0x119E1, 0x119E1},
    {0x119E3, 0x119E3}, {0x11A00, 0x11A00}, {0x11A0B, 0x11A32},
    {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89},
    {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8}, {0x11C00, 0x11C08},
    {0x11C0A, 0x11C2E}, {0x11C40, 0x11C40}, {0x11C72, 0x11C8F},
    {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D30},
    {0x11D46, 0x11D46}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68},
    {0x11D6A, 0x11D89}, {0x11D98, 0x11D98}, {0x11EE0, 0x11EF2},
    {0x11FB0, 0x11FB0}, {0x12000, 0x12399}, {0x12480, 0x12543},
    {0x12F90, 0x12FF0}, {0x13000, 0x1342E}, {0x14400, 0x14646},
    {0x16800, 0x16A38}, {0x16A40, 0x16A5E}, {0x16A70, 0x16ABE},
    {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F}, {0x16B40, 0x16B43},
    {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F}, {0x16E40, 0x16E7F},
    {0x16F00, 0x16F4A}, {0x16F50, 0x16F50}, {0x16F93, 0x16F9F},
    {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3}, {0x17000, 0x187F7},
    {0x18800, 0x18CD5}, {0x18D00, 0x18D08}, {0x1AFF0, 0x1AFF3},
    {0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122},
    {0x1B150, 0x1B152}, {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB},
    {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88},
    {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C},
    {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6},
    {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB},
    {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A},
    {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539},
    {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544}, {0x1D546, 0x1D546},
    {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5}, {0x1D6A8, 0x1D6C0},
    {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714},
    {0x1D716, 0x1D734}, {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E},
    {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2},
    {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E}, {0x1E100, 0x1E12C},
    {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD},
    {0x1E2C0, 0x1E2EB}, {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB},
    {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4},
    {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B}, {0x1EE00, 0x1EE03},
    {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24},
    {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37},
    {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42},
    {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B},
    {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54},
    {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59}, {0x1EE5B, 0x1EE5B},
    {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62},
    {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72},
    {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E},
    {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3},
    {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB}, {0x20000, 0x2A6DF},
    {0x2A700, 0x2B738}, {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1},
    {0x2CEB0, 0x2EBE0}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A},
};

static const llvm::sys::UnicodeCharRange NumberRanges[] = {
    {0x0030, 0x0039},   {0x00B2, 0x00B3},   {0x00B9, 0x00B9},
    {0x00BC, 0x00BE},   {0x0660, 0x0669},   {0x06F0, 0x06F9},
    {0x07C0, 0x07C9},   {0x0966, 0x096F},   {0x09E6, 0x09EF},
    {0x09F4, 0x09F9},   {0x0A66, 0x0A6F},   {0x0AE6, 0x0AEF},
    {0x0B66, 0x0B6F},   {0x0B72, 0x0B77},   {0x0BE6, 0x0BF2},
    {0x0C66, 0x0C6F},   {0x0C78, 0x0C7E},   {0x0CE6, 0x0CEF},
    {0x0D58, 0x0D5E},   {0x0D66, 0x0D78},   {0x0DE6, 0x0DEF},
    {0x0E50, 0x0E59},   {0x0ED0, 0x0ED9},   {0x0F20, 0x0F33},
    {0x1040, 0x1049},   {0x1090, 0x1099},   {0x1369, 0x137C},
    {0x16EE, 0x16F0},   {0x17E0, 0x17E9},   {0x17F0, 0x17F9},
    {0x1810, 0x1819},   {0x1946, 0x194F},   {0x19D0, 0x19DA},
    {0x1A80, 0x1A89},   {0x1A90, 0x1A99},   {0x1B50, 0x1B59},
    {0x1BB0, 0x1BB9},   {0x1C40, 0x1C49},   {0x1C50, 0x1C59},
    {0x2070, 0x2070},   {0x2074, 0x2079},   {0x2080, 0x2089},
    {0x2150, 0x2182},   {0x2185, 0x2189},   {0x2460, 0x249B},
    {0x24EA, 0x24FF},   {0x2776, 0x2793},   {0x2CFD, 0x2CFD},
    {0x3007, 0x3007},   {0x3021, 0x3029},   {0x3038, 0x303A},
    {0x3192, 0x3195},   {0x3220, 0x3229},   {0x3248, 0x324F},
    {0x3251, 0x325F},   {0x3280, 0x3289},   {0x32B1, 0x32BF},
    {0xA620, 0xA629},   {0xA6E6, 0xA6EF},   {0xA830, 0xA835},
    {0xA8D0, 0xA8D9},   {0xA900, 0xA909},   {0xA9D0, 0xA9D9},
    {0xA9F0, 0xA9F9},   {0xAA50, 0xAA59},   {0xABF0, 0xABF9},
    {0xFF10, 0xFF19},   {0x10107, 0x10133}, {0x10140, 0x10178},
    {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323},
    {0x10341, 0x10341}, {0x1034A, 0x1034A}, {0x103D1, 0x103D5},
    {0x104A0, 0x104A9}, {0x10858, 0x1085F}, {0x10879, 0x1087F},
    {0x108A7, 0x108AF}, {0x108FB, 0x108FF}, {0x10916, 0x1091B},
    {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF},
    {0x10A40, 0x10A48}, {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F},
    {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F}, {0x10B78, 0x10B7F},
    {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39},
    {0x10E60, 0x10E7E}, {0x10F1D, 0x10F26}, {0x10F51, 0x10F54},
    {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9},
    {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x111E1, 0x111F4},
    {0x112F0, 0x112F9}, {0x11450, 0x11459}, {0x114D0, 0x114D9},
    {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x11730, 0x1173B},
    {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11C50, 0x11C6C},
    {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11FC0, 0x11FD4},
    {0x12400, 0x1246E}, {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9},
    {0x16B50, 0x16B59}, {0x16B5B, 0x16B61}, {0x16E80, 0x16E96},
    {0x1D2E0, 0x1D2F3}, {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF},
    {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9}, {0x1E8C7, 0x1E8CF},
    {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB}, {0x1ECAD, 0x1ECAF},
    {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D},
    {0x1F100, 0x1F10C}, {0x1FBF0, 0x1FBF9},
};

/// \p{L}
static bool isLetter(uint32_t CP) {
  if (CP < 0x80)
    return isAlpha(char(CP));
  static const sys::UnicodeCharSet Letters(LetterRanges);
  return Letters.contains(CP);
}

/// \p{N}
static bool isNumber(uint32_t CP) {
  if (CP < 0x80)
    return isDigit(char(CP));
  static const sys::UnicodeCharSet Numbers(NumberRanges);
  return Numbers.contains(CP);
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
  enum KindTy { Prepend, Replace, Strip } Kind;
  std::string From; // Replace: the literal to replace.
  std::string To;   // Prepend: the prefix; Replace: the replacement.
  bool Left = false, Right = false; // Strip.
};

struct PreTokenizerStep {
  enum KindTy { Metaspace, ByteLevel, SplitLiteral, SplitPattern } Kind;
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

  const std::pair<int32_t, int32_t> *findMerge(int32_t L, int32_t R) const {
    auto It = Merges.find({L, R});
    return It == Merges.end() ? nullptr : &It->second;
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
    const auto *M = findMerge(S.Id, Syms[S.Next].Id);
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
    auto It = Vocab.find(Word);
    if (It != Vocab.end()) {
      Out.push_back(It->second);
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
    }
  }
  return Cur;
}

/// \w as the Rust regex crate sees it, approximated by letters, numbers and
/// '_'; used by single_word added tokens.
static bool isWordChar(uint32_t CP) {
  return CP == '_' || isLetter(CP) || isNumber(CP);
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

  Error parseModel(const json::Value *V);
  Error parseMerges(const json::Array &Merges);
  Error parseAddedTokens(const json::Value *V);
  Error parseNormalizer(const json::Value &V, const std::string &Path);
  Error parsePreTokenizer(const json::Value &V, const std::string &Path);
  Error parseSplit(const json::Object &O, const std::string &Path);
  Error parseDecoder(const json::Value &V, const std::string &Path);
  Error parsePostProcessor(const json::Value &V, const std::string &Path);
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
  std::fill(std::begin(T.Model.AsciiIds), std::end(T.Model.AsciiIds), -1);
  for (const auto &[Key, IdValue] : *Vocab) {
    StringRef Piece = Key;
    std::optional<int64_t> Id = IdValue.getAsInteger();
    // Ids index a table: bound them far above any real vocabulary (262K)
    // so that a corrupt file cannot make us allocate gigabytes.
    if (!Id || *Id < 0 || *Id >= kMaxTokenId)
      return fail("model.vocab['" + Piece + "'] is not a valid id");
    T.Model.Vocab[Piece] = int32_t(*Id);
    if (size_t(*Id) >= T.Pieces.size())
      T.Pieces.resize(*Id + 1);
    T.Pieces[*Id] = Piece.str();
    if (Piece.empty())
      continue;
    if (Utf8Char C = decodeChar(Piece, 0); C.Valid && C.Len == Piece.size()) {
      if (C.CP < 128)
        T.Model.AsciiIds[C.CP] = int32_t(*Id);
      else
        T.Model.CharIds[C.CP] = int32_t(*Id);
    }
  }

  for (unsigned B = 0; B < 256; ++B) {
    auto It = T.Model.Vocab.find("<0x" +
                                 utohexstr(B, /*LowerCase=*/false,
                                           /*Width=*/2) +
                                 ">");
    T.Model.ByteIds[B] = It == T.Model.Vocab.end() ? -1 : It->second;
  }

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
    unsigned Index = T.Added.size();
    T.AddedByContent[Tok.Content] = Index;
    T.AddedById[Tok.Id] = Index;
    (Tok.Normalized ? T.NormalizedTrie : T.RawTrie)
        .insert(Tok.Normalized ? Tok.DecodeAs : Tok.Content, Index);
    if (Tok.Id < 0 || Tok.Id >= kMaxTokenId)
      return fail(Path + ": id " + Twine(Tok.Id) + " is not a valid id");
    if (size_t(Tok.Id) >= T.Pieces.size())
      T.Pieces.resize(Tok.Id + 1);
    T.Pieces[Tok.Id] = Tok.Content;
    T.Added.push_back(std::move(Tok));
  }
  return Error::success();
}

Error Loader::parseNormalizer(const json::Value &V, const std::string &Path) {
  Expected<const json::Object *> O = getComponent(V, Path);
  if (!O || !*O)
    return O.takeError();
  Expected<StringRef> Type = getType(**O, Path);
  if (!Type)
    return Type.takeError();

  if (*Type == "Sequence") {
    const json::Array *Steps = (*O)->getArray("normalizers");
    if (!Steps)
      return fail(Path + ".normalizers is missing or not an array");
    for (size_t I = 0; I < Steps->size(); ++I)
      if (Error E =
              parseNormalizer((*Steps)[I], indexed(Path + ".normalizers", I)))
        return E;
    return Error::success();
  }
  NormalizerStep Step;
  if (*Type == "Prepend") {
    Expected<StringRef> Prefix = getString(**O, "prepend", Path);
    if (!Prefix)
      return Prefix.takeError();
    Step.Kind = NormalizerStep::Prepend;
    Step.To = Prefix->str();
  } else if (*Type == "Replace") {
    Expected<std::string> From = getStringPattern(**O, Path);
    if (!From)
      return From.takeError();
    Expected<StringRef> To = getString(**O, "content", Path);
    if (!To)
      return To.takeError();
    Step.Kind = NormalizerStep::Replace;
    Step.From = *From;
    Step.To = To->str();
  } else if (*Type == "Strip") {
    Expected<bool> Left = getBool(**O, "strip_left", Path, true);
    if (!Left)
      return Left.takeError();
    Expected<bool> Right = getBool(**O, "strip_right", Path, true);
    if (!Right)
      return Right.takeError();
    Step.Kind = NormalizerStep::Strip;
    Step.Left = *Left;
    Step.Right = *Right;
  } else {
    return unsupported(Path, *Type, "Prepend, Replace, Strip, Sequence");
  }
  T.Normalizers.push_back(std::move(Step));
  return Error::success();
}

Error Loader::parsePreTokenizer(const json::Value &V, const std::string &Path) {
  Expected<const json::Object *> O = getComponent(V, Path);
  if (!O || !*O)
    return O.takeError();
  Expected<StringRef> Type = getType(**O, Path);
  if (!Type)
    return Type.takeError();

  if (*Type == "Sequence") {
    const json::Array *Steps = (*O)->getArray("pretokenizers");
    if (!Steps)
      return fail(Path + ".pretokenizers is missing or not an array");
    for (size_t I = 0; I < Steps->size(); ++I)
      if (Error E = parsePreTokenizer((*Steps)[I],
                                      indexed(Path + ".pretokenizers", I)))
        return E;
    return Error::success();
  }
  if (*Type == "Split")
    return parseSplit(**O, Path);

  PreTokenizerStep Step;
  if (*Type == "Metaspace") {
    Expected<std::string> Replacement = getChar(**O, "replacement", Path);
    if (!Replacement)
      return Replacement.takeError();
    Expected<PrependScheme> Scheme = getPrependScheme(**O, Path);
    if (!Scheme)
      return Scheme.takeError();
    Expected<bool> Split = getBool(**O, "split", Path, true);
    if (!Split)
      return Split.takeError();
    Step.Kind = PreTokenizerStep::Metaspace;
    Step.Literal = *Replacement;
    Step.Scheme = *Scheme;
    Step.MetaspaceSplit = *Split;
  } else if (*Type == "ByteLevel") {
    Expected<bool> AddPrefixSpace =
        getBool(**O, "add_prefix_space", Path, true);
    if (!AddPrefixSpace)
      return AddPrefixSpace.takeError();
    Expected<bool> UseRegex = getBool(**O, "use_regex", Path, true);
    if (!UseRegex)
      return UseRegex.takeError();
    Step.Kind = PreTokenizerStep::ByteLevel;
    Step.AddPrefixSpace = *AddPrefixSpace;
    Step.UseRegex = *UseRegex;
    T.TheKind = Tokenizer::Kind::ByteLevelBPE;
  } else {
    return unsupported(Path, *Type, "Metaspace, ByteLevel, Split, Sequence");
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

Error Loader::parseDecoder(const json::Value &V, const std::string &Path) {
  Expected<const json::Object *> O = getComponent(V, Path);
  if (!O || !*O)
    return O.takeError();
  Expected<StringRef> Type = getType(**O, Path);
  if (!Type)
    return Type.takeError();
  T.HasDecoder = true;

  if (*Type == "Sequence") {
    const json::Array *Steps = (*O)->getArray("decoders");
    if (!Steps)
      return fail(Path + ".decoders is missing or not an array");
    for (size_t I = 0; I < Steps->size(); ++I)
      if (Error E = parseDecoder((*Steps)[I], indexed(Path + ".decoders", I)))
        return E;
    return Error::success();
  }
  DecoderStep Step;
  if (*Type == "Replace") {
    Expected<std::string> From = getStringPattern(**O, Path);
    if (!From)
      return From.takeError();
    Expected<StringRef> To = getString(**O, "content", Path);
    if (!To)
      return To.takeError();
    Step.Kind = DecoderStep::Replace;
    Step.From = *From;
    Step.To = To->str();
  } else if (*Type == "ByteFallback") {
    Step.Kind = DecoderStep::ByteFallback;
  } else if (*Type == "Fuse") {
    Step.Kind = DecoderStep::Fuse;
  } else if (*Type == "Strip") {
    Expected<std::string> Content = getChar(**O, "content", Path);
    if (!Content)
      return Content.takeError();
    std::optional<int64_t> Start = (*O)->getInteger("start");
    std::optional<int64_t> Stop = (*O)->getInteger("stop");
    if (!Start || !Stop || *Start < 0 || *Stop < 0)
      return fail(Path + ".start/stop are missing or not valid counts");
    Step.Kind = DecoderStep::Strip;
    Step.From = *Content;
    Step.Start = unsigned(*Start);
    Step.Stop = unsigned(*Stop);
  } else if (*Type == "Metaspace") {
    Expected<std::string> Replacement = getChar(**O, "replacement", Path);
    if (!Replacement)
      return Replacement.takeError();
    Expected<PrependScheme> Scheme = getPrependScheme(**O, Path);
    if (!Scheme)
      return Scheme.takeError();
    Step.Kind = DecoderStep::Metaspace;
    Step.From = *Replacement;
    Step.Scheme = *Scheme;
  } else if (*Type == "ByteLevel") {
    Step.Kind = DecoderStep::ByteLevel;
    T.TheKind = Tokenizer::Kind::ByteLevelBPE;
  } else {
    return unsupported(
        Path, *Type,
        "Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel, Sequence");
  }
  T.Decoders.push_back(std::move(Step));
  return Error::success();
}

Error Loader::parsePostProcessor(const json::Value &V,
                                 const std::string &Path) {
  Expected<const json::Object *> O = getComponent(V, Path);
  if (!O || !*O)
    return O.takeError();
  Expected<StringRef> Type = getType(**O, Path);
  if (!Type)
    return Type.takeError();
  if (*Type == "Sequence") {
    const json::Array *Steps = (*O)->getArray("processors");
    if (!Steps)
      return fail(Path + ".processors is missing or not an array");
    for (size_t I = 0; I < Steps->size(); ++I)
      if (Error E =
              parsePostProcessor((*Steps)[I], indexed(Path + ".processors", I)))
        return E;
    return Error::success();
  }
  if (*Type == "TemplateProcessing")
    return parseTemplate(**O, Path);
  if (*Type == "ByteLevel")
    return Error::success(); // Only adjusts offsets, which we do not track.
  return unsupported(Path, *Type, "TemplateProcessing, ByteLevel, Sequence");
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
  if (Error E = parseNormalizer(Field("normalizer"), "normalizer"))
    return E;
  if (Error E = parseAddedTokens(Root.get("added_tokens")))
    return E;
  if (Error E = parsePreTokenizer(Field("pre_tokenizer"), "pre_tokenizer"))
    return E;
  if (Error E = parseDecoder(Field("decoder"), "decoder"))
    return E;
  if (Error E = parsePostProcessor(Field("post_processor"), "post_processor"))
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
    if (Id >= 0 && size_t(Id) < P->Pieces.size() && !P->Pieces[Id].empty())
      Tokens.push_back(P->Pieces[Id]);
  }
  if (!P->HasDecoder)
    return join(Tokens, " ");
  for (const DecoderStep &Step : P->Decoders)
    Tokens = P->applyDecoder(Step, std::move(Tokens));
  return join(Tokens, "");
}

StringRef Tokenizer::piece(int32_t Id) const {
  if (Id < 0 || size_t(Id) >= P->Pieces.size())
    return {};
  return P->Pieces[Id];
}

std::optional<int32_t> Tokenizer::id(StringRef Piece) const {
  if (auto It = P->AddedByContent.find(Piece); It != P->AddedByContent.end())
    return P->Added[It->second].Id;
  if (auto It = P->Model.Vocab.find(Piece); It != P->Model.Vocab.end())
    return It->second;
  return std::nullopt;
}

size_t Tokenizer::vocabSize() const { return P->Pieces.size(); }

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
