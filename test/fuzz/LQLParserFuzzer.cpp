//===- LQLParserFuzzer.cpp - libFuzzer target for the LQL front end -------===//
//
// Any byte string is a script: the front end (lexer, parser, lowering to
// the larql dialect, the dialect's verifiers, the printer) and the passes
// that need no model (larql-lower-to-vindex, larql-strip-queries, each
// followed by the verifiers) must report errors, never crash, read out of
// bounds, loop or leak. Built and run by
// utils/fuzz.sh (clang's -fsanitize=fuzzer,address,undefined) against the
// VindexLQL library; the inputs that ever crashed it are kept in
// test/fuzz/crashers/ and replayed first on every run.
//
//===----------------------------------------------------------------------===//
#include "vindex/Dialect/Larql/LarqlDialect.h"
#include "vindex/Dialect/Vindex/VindexDialect.h"
#include "vindex/LQL/Diagnostics.h"
#include "vindex/LQL/Parser.h"
#include "vindex/LQL/ToIR.h"
#include "vindex/Passes/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  // One context for every input: diagnostics are formatted (exercising
  // locations and token ranges) and dropped.
  static mlir::MLIRContext Ctx(mlir::MLIRContext::Threading::DISABLED);
  static const bool Loaded = [] {
    Ctx.loadDialect<vindex::larql::LarqlDialect, vindex::vx::VindexDialect>();
    return true;
  }();
  (void)Loaded;
  Ctx.printOpOnDiagnostic(false);
  llvm::SourceMgr SM;
  std::string Text;
  llvm::raw_string_ostream OS(Text);
  vindex::lql::ScriptDiagnosticPrinter Printer(Ctx, SM, "fuzz", OS);
  SM.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(Data), Size),
          "fuzz.lql"),
      llvm::SMLoc());
  // What larql-opt does before running anything: the statements that
  // parsed are lowered and verified, and the module printed.
  std::vector<vindex::lql::Statement> Clean;
  (void)vindex::lql::parseScript(SM, 1, Ctx, &Clean);
  mlir::OwningOpRef<mlir::ModuleOp> Module =
      vindex::lql::lowerToIR(Ctx, SM, Clean);
  if (failed(mlir::verify(*Module)))
    return 0;
  Module->print(OS);
  // Then what larql-opt -o runs before it needs a model: the edits that need
  // none lowered to vindex ops, the queries dropped.
  mlir::PassManager PM(&Ctx);
  PM.addPass(vindex::createLarqlLowerToVindex());
  PM.addPass(vindex::createLarqlStripQueries());
  if (succeeded(PM.run(*Module)))
    Module->print(OS);
  return 0;
}
