//===- LQLParserFuzzer.cpp - libFuzzer target for the LQL parser ----------===//
//
// Any byte string is a script: the parser must report errors, never crash,
// read out of bounds, loop or leak. Built and run by utils/fuzz.sh (clang's
// -fsanitize=fuzzer,address,undefined); the inputs that ever crashed it are
// kept in test/fuzz/crashers/ and replayed on every run.
//
//===----------------------------------------------------------------------===//
#include "vindex/LQL/Diagnostics.h"
#include "vindex/LQL/Parser.h"

#include "mlir/IR/MLIRContext.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  // One context for every input: diagnostics are formatted (exercising
  // locations and token ranges) and dropped.
  static mlir::MLIRContext Ctx(mlir::MLIRContext::Threading::DISABLED);
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS(Text);
  vindex::lql::ScriptDiagnosticPrinter Printer(Ctx, SM, "fuzz", OS);
  SM.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(Data), Size),
          "fuzz.lql"),
      llvm::SMLoc());
  (void)vindex::lql::parseScript(SM, 1, Ctx);
  return 0;
}
