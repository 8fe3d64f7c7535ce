//===- Diagnostics.h - LQL diagnostics through MLIR ------------*- C++ -*-===//
//
// Every LQL diagnostic (parser, verifier, execution) is an MLIR diagnostic
// located in the script: a FileLineColLoc at the offending token, or, when
// the token is longer than one character, a FusedLoc of its first and
// one-past-last positions tagged "lql.token" so that the printer can
// underline it. MLIR's own handlers (the -verify-diagnostics verifier among
// them) see the first position.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LQL_DIAGNOSTICS_H
#define VINDEX_LQL_DIAGNOSTICS_H

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "llvm/Support/SourceMgr.h"

namespace vindex::lql {

/// The location of LOC in SM as an MLIR location (UnknownLoc outside SM).
mlir::Location toLocation(mlir::MLIRContext &Ctx, const llvm::SourceMgr &SM,
                          llvm::SMLoc Loc);

/// The location of the token RANGE in SM (see the file comment).
mlir::Location toLocation(mlir::MLIRContext &Ctx, const llvm::SourceMgr &SM,
                          llvm::SMRange Range);

/// Prints the diagnostics of CTX as "TOOL: file:line:col: error: message",
/// the source line and the token underlined (DESIGN 9), notes after their
/// diagnostic; counts the errors. Installed for its lifetime.
class ScriptDiagnosticPrinter {
public:
  ScriptDiagnosticPrinter(mlir::MLIRContext &Ctx, llvm::SourceMgr &SM,
                          llvm::StringRef Tool, llvm::raw_ostream &OS);
  ~ScriptDiagnosticPrinter();
  unsigned errors() const { return Errors; }

private:
  void print(mlir::Location Loc, llvm::SourceMgr::DiagKind Kind,
             const llvm::Twine &Message);

  mlir::MLIRContext &Ctx;
  llvm::SourceMgr &SM;
  std::string Tool;
  llvm::raw_ostream &OS;
  mlir::DiagnosticEngine::HandlerID Handler;
  unsigned Errors = 0;
};

} // namespace vindex::lql

#endif // VINDEX_LQL_DIAGNOSTICS_H
