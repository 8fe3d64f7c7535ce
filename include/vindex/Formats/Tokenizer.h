//===- Tokenizer.h - Hugging Face tokenizer.json BPE tokenizer --*- C++ -*-===//
//
// Part of Vindex.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// Loads a Hugging Face `tokenizer.json` and encodes/decodes text with it.
///
/// Two BPE families are supported, both described only by the file (never by
/// an architecture name):
///  * SentencePiece-style BPE (Gemma, Llama 2, Mistral): Prepend/Replace
///    normalizers or a Metaspace pre-tokenizer, byte fallback to `<0xNN>`
///    pieces, decoder Replace/ByteFallback/Fuse/Strip or Metaspace.
///  * GPT-2 byte-level BPE (GPT-2, Llama 3, Qwen): ByteLevel pre-tokenizer
///    and decoder, optionally behind a `Split` with one of the well-known
///    GPT-2, Llama-3 or Qwen-2 regexes (implemented as hand-written
///    scanners) or a `Digits` pre-tokenizer.
/// Normalizers include the Unicode forms NFC, NFD, NFKC and NFKD. Unicode
/// data (normalization, the regexes' letter/number/space classes) comes
/// from utf8proc (docs/tokenizers.md).
///
/// Anything else (other model types, normalizers, pre-tokenizers, decoders or
/// post-processors, unknown regexes) is rejected at load time with an
/// llvm::Error that names the file and the component.
///
/// A tokenizer is loaded from tokenizer.json or from its compiled form
/// (compiled(), Tokenizer.fbs), which a V-index keeps as tokenizer.vfb and
/// which is used in place from the mapped file.
///
//===----------------------------------------------------------------------===//

#ifndef VINDEX_FORMATS_TOKENIZER_H
#define VINDEX_FORMATS_TOKENIZER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vindex {

/// The pre-tokenizer split regexes of byte-level BPE tokenizers that we
/// implement, exactly as tokenizer.json spells them (a Split pre-tokenizer's
/// pattern.Regex): Family is "gpt2", "llama3" or "qwen2"; empty otherwise.
llvm::StringRef byteLevelSplitPattern(llvm::StringRef Family);

/// The compiled tokenizer's file in a V-index, beside tokenizer.json (which
/// is kept: compile writes the tokenizer from it).
inline constexpr llvm::StringLiteral kCompiledTokenizerFileName =
    "tokenizer.vfb";

class Tokenizer {
public:
  enum class Kind { SentencePieceBPE, ByteLevelBPE };

  /// Parses tokenizer.json text; FileName is used in error messages only.
  static llvm::Expected<Tokenizer> fromJSON(llvm::StringRef Text,
                                            llvm::StringRef FileName);
  /// Reads and parses a tokenizer.json file.
  static llvm::Expected<Tokenizer> fromFile(llvm::StringRef Path);

  /// The tokenizer in its compiled binary form (lib/Formats/Tokenizer.fbs):
  /// what loading tokenizer.json derives, so that fromCompiled() parses no
  /// JSON. The bytes depend only on the tokenizer.
  std::string compiled() const;
  /// tokenizer.json text -> compiled().
  static llvm::Expected<std::string> compile(llvm::StringRef JsonText,
                                             llvm::StringRef FileName);
  /// Builds the tokenizer from compiled() bytes (e.g. a mapped
  /// tokenizer.vfb); FileName is used in error messages only.
  static llvm::Expected<Tokenizer>
  fromCompiled(std::unique_ptr<llvm::MemoryBuffer> Buffer,
               llvm::StringRef FileName);

  Tokenizer(Tokenizer &&) noexcept;
  Tokenizer &operator=(Tokenizer &&) noexcept;
  ~Tokenizer();

  /// Encodes text. AddSpecial=true applies the post_processor (e.g. prepends
  /// <bos>). Added/special tokens written literally in \p Text are always
  /// recognised, as Hugging Face does.
  std::vector<int32_t> encode(llvm::StringRef Text,
                              bool AddSpecial = true) const;

  /// Decodes ids through the decoder pipeline; SkipSpecial drops special
  /// tokens. Ids outside the vocabulary are dropped.
  std::string decode(llvm::ArrayRef<int32_t> Ids,
                     bool SkipSpecial = true) const;

  /// The pieces the BPE model sees for \p Text, after added-token splitting,
  /// normalization and pre-tokenization (added tokens appear as their
  /// content). Meant for debugging and tests.
  std::vector<std::string> preTokenize(llvm::StringRef Text) const;

  /// The vocabulary string of an id (added tokens included); empty if the id
  /// is unknown.
  llvm::StringRef piece(int32_t Id) const;
  /// The id of a vocabulary string (added tokens included).
  std::optional<int32_t> id(llvm::StringRef Piece) const;
  /// One more than the largest id of the model vocabulary and added tokens,
  /// i.e. the number of embedding rows the ids can address.
  size_t vocabSize() const;
  /// How the tokenizer meets an embedding of \p Rows rows, as transformers
  /// takes it: ids at or past Rows may only be added tokens (Gemma 3 ships
  /// <image_soft_token> at 262,144 with 262,144-row checkpoints), which text
  /// reaches only by spelling them, and encoding such text is refused by
  /// the caller that holds the embedding (naming the token). Returns those
  /// ids, ascending, for a warning; an Error naming \p File and the first
  /// model-vocabulary or post-processor id past the embedding. The one check
  /// of tokenizer against embedding, at decompose, compile and open alike.
  llvm::Expected<std::vector<int32_t>>
  idsPastEmbedding(uint64_t Rows, llvm::StringRef File) const;
  /// The refusal idsPastEmbedding leaves to the caller that holds the
  /// embedding: an Error naming the first of \p Ids that is not one of its
  /// \p Rows rows ("<What> holds the token '<piece>' (id N), which is past
  /// the model's embedding"), success if every id is one. Every text that
  /// reaches the model passes it: prompts, targets, entities.
  llvm::Error checkInEmbedding(llvm::ArrayRef<int32_t> Ids, uint64_t Rows,
                               llvm::StringRef What) const;
  /// The warning for idsPastEmbedding's ids: how many, and which.
  std::string describeIdsPastEmbedding(llvm::ArrayRef<int32_t> Ids,
                                       uint64_t Rows) const;

  /// True for added tokens marked `"special": true`.
  bool isSpecial(int32_t Id) const;
  /// The single special token the post_processor puts before the sequence,
  /// else an added token named <bos>, <s>, <|begin_of_text|> or
  /// <|startoftext|>.
  std::optional<int32_t> bosId() const;
  /// The single special token the post_processor puts after the sequence,
  /// else an added token named <eos>, </s>, <|end_of_text|> or
  /// <|endoftext|>. A model's generation_config.json is more authoritative.
  std::optional<int32_t> eosId() const;
  /// ByteLevelBPE when a ByteLevel pre-tokenizer or decoder is present.
  Kind kind() const;
  /// The family of the split regex text is first cut with ("gpt2",
  /// "llama3" or "qwen2", as byteLevelSplitPattern names them): a Split
  /// pre-tokenizer's regex, or a ByteLevel pre-tokenizer's own (GPT-2's);
  /// "" when there is none.
  llvm::StringRef splitRegexFamily() const;

  struct Impl;

private:
  explicit Tokenizer(std::unique_ptr<Impl> I);
  std::unique_ptr<Impl> P;
};

} // namespace vindex

#endif // VINDEX_FORMATS_TOKENIZER_H
