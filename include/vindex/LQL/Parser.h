//===- Parser.h - LQL lexer and recursive-descent parser --------*- C++ -*-===//
#ifndef VINDEX_LQL_PARSER_H
#define VINDEX_LQL_PARSER_H

#include "vindex/LQL/AST.h"

#include "llvm/Support/SourceMgr.h"

namespace vindex::lql {

/// Parses every statement of buffer BufferID. Errors are reported through
/// SM ("file:line:col: error: ..." with the offending token underlined); a
/// script with errors reports all of them and returns nullopt, so nothing
/// runs. CLEAN, if given, receives the statements that parsed without any
/// error (even when others failed), so that the driver can still lower and
/// verify them and report their errors too.
std::optional<std::vector<Statement>>
parseScript(llvm::SourceMgr &SM, unsigned BufferID,
            std::vector<Statement> *Clean = nullptr);

} // namespace vindex::lql

#endif // VINDEX_LQL_PARSER_H
