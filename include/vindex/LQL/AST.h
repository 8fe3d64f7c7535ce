//===- AST.h - LQL statements -----------------------------------*- C++ -*-===//
//
// The statements the engine runs today: INFER and WALK. The full language
// (DESIGN section 5) extends this AST and the parser; every node carries
// the location of its first token for diagnostics.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LQL_AST_H
#define VINDEX_LQL_AST_H

#include "llvm/Support/SMLoc.h"

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace vindex::lql {

/// INFER 'prompt' [TOP n] [GENERATE m]
struct InferStmt {
  std::string Prompt;
  unsigned Top = 5;
  std::optional<unsigned> Generate;
};

/// WALK 'prompt' [TOP n] [WITH K k]: INFER through the walk FFN.
struct WalkStmt {
  std::string Prompt;
  unsigned Top = 5;
  std::optional<unsigned> K;
};

struct Statement {
  llvm::SMLoc Loc;
  std::variant<InferStmt, WalkStmt> Node;
};

} // namespace vindex::lql

#endif // VINDEX_LQL_AST_H
