//===- vindex-tokenize.cpp - Encode a corpus with a tokenizer, for tests --===//
//
// Test-only: encodes every text of a JSON array of strings with a
// tokenizer.json and prints, per text, a JSON object with
//   ids        encode(text, AddSpecial=true)
//   plain      encode(text, AddSpecial=false)
//   decoded    decode(plain, SkipSpecial=false)
//   skipped    decode(ids, SkipSpecial=true)
// one object per line, in corpus order. The conformance suite
// (test/tokenizers/conformance.js) compares these with Hugging Face's Rust
// tokenizers. --compiled first compiles the tokenizer to the V-index's binary
// form and encodes with the tokenizer mapped from that, so both ways of
// loading are checked against the reference.
//
//   vindex-tokenize [--compiled] tokenizer.json corpus.json
//   vindex-tokenize tokenizer.vfb corpus.json
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> TokenizerPath(cl::Positional, cl::Required,
                                          cl::desc("tokenizer.json"),
                                          cl::cat(toolOptions()));
static cl::opt<std::string> CorpusPath(cl::Positional, cl::Required,
                                       cl::desc("corpus.json"),
                                       cl::cat(toolOptions()));
static cl::opt<bool>
    Compiled("compiled",
             cl::desc("Encode with the tokenizer compiled to its binary form"),
             cl::cat(toolOptions()));

static Expected<Tokenizer> loadTokenizer() {
  if (StringRef(TokenizerPath).ends_with(".vfb")) { // Already compiled.
    ErrorOr<std::unique_ptr<MemoryBuffer>> Bytes = MemoryBuffer::getFile(
        TokenizerPath, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!Bytes)
      return createStringError(Bytes.getError(),
                               TokenizerPath + ": cannot read");
    return Tokenizer::fromCompiled(std::move(*Bytes), TokenizerPath);
  }
  if (!Compiled)
    return Tokenizer::fromFile(TokenizerPath);
  ErrorOr<std::unique_ptr<MemoryBuffer>> Text =
      MemoryBuffer::getFile(TokenizerPath);
  if (!Text)
    return createStringError(Text.getError(), TokenizerPath + ": cannot read");
  Expected<std::string> Binary =
      Tokenizer::compile((*Text)->getBuffer(), TokenizerPath);
  if (!Binary)
    return Binary.takeError();
  return Tokenizer::fromCompiled(
      MemoryBuffer::getMemBufferCopy(*Binary, "compiled"), "compiled");
}

static json::Array toJSON(ArrayRef<int32_t> Ids) {
  json::Array A;
  for (int32_t Id : Ids)
    A.push_back(Id);
  return A;
}

static Error run() {
  Expected<Tokenizer> T = loadTokenizer();
  if (!T)
    return T.takeError();
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buffer =
      MemoryBuffer::getFile(CorpusPath);
  if (!Buffer)
    return createStringError(Buffer.getError(), CorpusPath + ": cannot read");
  Expected<json::Value> Corpus = json::parse((*Buffer)->getBuffer());
  if (!Corpus)
    return Corpus.takeError();
  const json::Array *Texts = Corpus->getAsArray();
  if (!Texts)
    return createStringError(inconvertibleErrorCode(),
                             CorpusPath + ": not an array of strings");
  for (const json::Value &V : *Texts) {
    std::optional<StringRef> Text = V.getAsString();
    if (!Text)
      return createStringError(inconvertibleErrorCode(),
                               CorpusPath + ": not an array of strings");
    std::vector<int32_t> Ids = T->encode(*Text, /*AddSpecial=*/true);
    std::vector<int32_t> Plain = T->encode(*Text, /*AddSpecial=*/false);
    json::Object O{{"ids", toJSON(Ids)},
                   {"plain", toJSON(Plain)},
                   {"decoded", T->decode(Plain, /*SkipSpecial=*/false)},
                   {"skipped", T->decode(Ids, /*SkipSpecial=*/true)}};
    outs() << formatv("{0}", json::Value(std::move(O))) << "\n";
  }
  return Error::success();
}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv,
                       "vindex-tokenize: encode a corpus (tests only)\n");
  return exitWith("vindex-tokenize", run());
}
