//===- LQLParserFuzzer.cpp - libFuzzer target for the LQL parser ----------===//
//
// Any byte string is a script: the parser must report errors, never crash,
// read out of bounds, loop or leak. Built and run by utils/fuzz.sh (clang's
// -fsanitize=fuzzer,address,undefined); the inputs that ever crashed it are
// kept in test/fuzz/crashers/ and replayed on every run.
//
//===----------------------------------------------------------------------===//
#include "vindex/LQL/Parser.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  llvm::SourceMgr SM;
  // Diagnostics are formatted (exercising locations and ranges) and dropped.
  SM.setDiagHandler([](const llvm::SMDiagnostic &D, void *) {
    std::string Text;
    llvm::raw_string_ostream OS(Text);
    D.print("fuzz", OS);
  });
  SM.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(Data), Size),
          "fuzz.lql"),
      llvm::SMLoc());
  (void)vindex::lql::parseScript(SM, 1);
  return 0;
}
