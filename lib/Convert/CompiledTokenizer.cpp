//===- CompiledTokenizer.cpp - tokenizer.vfb at decompose -----------------===//
#include "CompiledTokenizer.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Support/AtomicOutput.h"
#include "vindex/Support/Checksum.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace vindex {

static void warn(const Twine &Msg) {
  WithColor::warning(errs(), "vindex-decompose") << Msg << "\n";
}

Error addCompiledTokenizer(StringRef JsonText, StringRef JsonPath,
                           uint64_t Rows, const AtomicDirectory &Out,
                           std::vector<AuxFileRecord> &Files) {
  Expected<Tokenizer> Tok = Tokenizer::fromJSON(JsonText, JsonPath);
  if (!Tok) {
    warn(toString(Tok.takeError()) +
         " (the V-index is written; statements that tokenize will fail)");
    return Error::success();
  }
  Expected<std::vector<int32_t>> Past = Tok->idsPastEmbedding(Rows, JsonPath);
  if (!Past)
    return Past.takeError();
  if (!Past->empty())
    warn(JsonPath + ": " + Tok->describeIdsPastEmbedding(*Past, Rows));
  std::string Bytes = Tok->compiled();
  if (Error E =
          writeFileAtomically(Out.file(kCompiledTokenizerFileName), Bytes))
    return E;
  Files.push_back({kCompiledTokenizerFileName.str(), Bytes.size(),
                   checksum(arrayRefFromStringRef(Bytes))});
  return Error::success();
}

} // namespace vindex
