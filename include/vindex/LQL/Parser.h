//===- Parser.h - LQL lexer and recursive-descent parser --------*- C++ -*-===//
#ifndef VINDEX_LQL_PARSER_H
#define VINDEX_LQL_PARSER_H

#include "vindex/LQL/AST.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/SourceMgr.h"

namespace vindex::lql {

/// Parses every statement of buffer BufferID of SM. Errors are MLIR
/// diagnostics emitted on CTX, located at the offending token (see
/// Diagnostics.h); a script with errors reports all of them and returns
/// nullopt, so nothing runs. CLEAN, if given, receives the statements that parsed without any
/// error (even when others failed), so that the driver can still lower and
/// verify them and report their errors too.
std::optional<std::vector<Statement>>
parseScript(llvm::SourceMgr &SM, unsigned BufferID, mlir::MLIRContext &Ctx,
            std::vector<Statement> *Clean = nullptr);

} // namespace vindex::lql

#endif // VINDEX_LQL_PARSER_H
