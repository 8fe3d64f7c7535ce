//===- Parser.h - LQL lexer and recursive-descent parser --------*- C++ -*-===//
#ifndef VINDEX_LQL_PARSER_H
#define VINDEX_LQL_PARSER_H

#include "vindex/LQL/AST.h"

#include "llvm/Support/SourceMgr.h"

namespace vindex::lql {

/// Parses every statement of buffer BufferID. Errors are reported through
/// SM ("file:line:col: error: ..." with the offending token underlined); a
/// script with errors reports all of them and returns nullopt, so nothing
/// runs.
std::optional<std::vector<Statement>> parseScript(llvm::SourceMgr &SM,
                                                  unsigned BufferID);

} // namespace vindex::lql

#endif // VINDEX_LQL_PARSER_H
