//===- AST.h - LQL statements -----------------------------------*- C++ -*-===//
//
// The whole language of DESIGN section 5 (docs/lql.md is the reference).
// Every statement carries the location of its first token; expressions and
// clauses carry the location of theirs, so that lowering to the `larql`
// dialect keeps the script's locations.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LQL_AST_H
#define VINDEX_LQL_AST_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace vindex::lql {

/// A literal: integer, decimal or string.
using Literal = std::variant<int64_t, double, std::string>;

/// The tables of SELECT (and of INSERT/DELETE/UPDATE, which take edges only).
enum class Table { Edges, Features, Entities };
llvm::StringRef tableName(Table T);

/// A WHERE expression: a comparison of a column against literals, or AND/OR
/// of two expressions.
struct Expr {
  enum class Kind { Cmp, And, Or };
  Kind K = Kind::Cmp;
  llvm::SMLoc Loc;
  // Cmp: Column Op Values (one value except for IN).
  std::string Column;
  std::string Op; ///< "=", "!=", "<", "<=", ">", ">=", "in", "like"
  std::vector<Literal> Values;
  // And / Or.
  std::unique_ptr<Expr> LHS, RHS;
};
using ExprPtr = std::shared_ptr<const Expr>;

struct OrderKey {
  std::string Column;
  bool Descending = false;
};

/// SELECT cols|* FROM table [NEAREST TO 'x' [AT LAYER n]] [WHERE e]
/// [ORDER BY col [ASC|DESC], ...] [LIMIT n]
struct SelectStmt {
  Table From = Table::Edges;
  std::vector<std::string> Columns; ///< empty means *
  std::optional<std::string> Nearest;
  std::optional<int64_t> Layer;
  ExprPtr Where;
  std::vector<OrderKey> OrderBy;
  std::optional<int64_t> Limit;
};

/// DESCRIBE 'x' [AT LAYER n] [SYNTAX|KNOWLEDGE|OUTPUT] [USING EMBEDDING]
struct DescribeStmt {
  std::string Entity;
  std::optional<int64_t> Layer;
  std::optional<std::string> Band; ///< "syntax", "knowledge", "output"
  bool UsingEmbedding = false;
};

/// SHOW RELATIONS|LAYERS|ENTITIES|FEATURES n|PATCHES|MODEL [WHERE e]
/// [LIMIT n]
struct ShowStmt {
  std::string What;             ///< lower case
  std::optional<int64_t> Layer; ///< FEATURES n
  ExprPtr Where;
  std::optional<int64_t> Limit;
};

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
  llvm::SMRange KLoc; ///< the count after WITH K
};

/// TRACE 'prompt'
struct TraceStmt {
  std::string Prompt;
};

/// Assignments `k = literal`, in source order.
using Assignments = std::vector<std::pair<std::string, Literal>>;

/// INSERT INTO edges VALUES (k='v', ...)[, (...)] [AT LAYER n] [MODE m]
struct InsertStmt {
  std::vector<Assignments> Rows;
  std::vector<llvm::SMRange> RowLocs; ///< each row's '(' (errors of a row)
  std::optional<int64_t> Layer;
  std::optional<std::string> Mode;
};

/// DELETE FROM edges WHERE e
struct DeleteStmt {
  ExprPtr Where;
};

/// UPDATE edges SET k='v'[, ...] WHERE e
struct UpdateStmt {
  Assignments Set;
  ExprPtr Where;
};

/// CREATE RELATION name AS 'template with {entity}'
struct CreateRelationStmt {
  std::string Name;
  std::string Template;
  llvm::SMRange TemplateLoc; ///< the template string
};

/// COMPILE CURRENT INTO VINDEX 'path'
/// COMPILE CURRENT INTO MODEL 'path' FORMAT gguf|safetensors
///   [TYPE auto|f32|f16|bf16|q8_0]   (TYPE with gguf only)
struct CompileStmt {
  std::string Target; ///< "vindex" or "model"
  std::string Path;
  std::optional<std::string> Format;
  std::optional<std::string> Type; ///< the GGUF matrices' element type
};

/// BEGIN PATCH 'name'
struct BeginPatchStmt {
  std::string Name;
};

/// SAVE PATCH ['path']
struct SavePatchStmt {
  std::optional<std::string> Path;
};

/// APPLY PATCH 'path'
struct ApplyPatchStmt {
  std::string Path;
};

/// A column name as the script wrote it (before lower-casing) and where:
/// ToIR records these in the op's location so that the `larql` verifier,
/// the one place that checks column names, reports an unknown one at its
/// token and in the script's spelling.
struct ColumnRef {
  std::string Spelling;
  llvm::SMRange Range; ///< the column's token
};

struct Statement {
  llvm::SMLoc Loc;
  std::vector<ColumnRef> Columns; ///< every column the statement names
  std::variant<SelectStmt, DescribeStmt, ShowStmt, InferStmt, WalkStmt,
               TraceStmt, InsertStmt, DeleteStmt, UpdateStmt,
               CreateRelationStmt, CompileStmt, BeginPatchStmt, SavePatchStmt,
               ApplyPatchStmt>
      Node;
  /// The statement's keyword as written in docs ("SELECT", "SHOW", ...).
  llvm::StringRef keyword() const;
};

} // namespace vindex::lql

#endif // VINDEX_LQL_AST_H
