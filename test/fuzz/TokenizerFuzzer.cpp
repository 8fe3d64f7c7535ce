//===- TokenizerFuzzer.cpp - tokenizer.json -------------------------------===//
//
// Any text as a tokenizer.json: loaded (model, added tokens, normalizers,
// pre-tokenizers, post-processor, decoder); what loads encodes a fixed
// sample (ASCII, accents, digits, an added token's spelling, bytes) and
// decodes the ids back.
//
//===----------------------------------------------------------------------===//
#include "FuzzInput.h"

#include "vindex/Formats/Tokenizer.h"

using namespace vindex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  llvm::Expected<Tokenizer> T =
      Tokenizer::fromJSON(fuzz::asText(Data, Size), "tokenizer.json");
  if (!T) {
    llvm::consumeError(T.takeError());
    return 0;
  }
  static const char Sample[] =
      "The capital of France is Paris. caf\xc3\xa9 2026 <bos> \t\n  x\xff";
  std::vector<int32_t> Ids = T->encode(llvm::StringRef(Sample, sizeof(Sample) - 1));
  (void)T->decode(Ids, /*SkipSpecial=*/false);
  (void)T->decode(Ids);
  return 0;
}
