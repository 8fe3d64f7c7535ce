//===- Schema.h - The tables and columns LQL knows --------------*- C++ -*-===//
//
// Shared by the parser (names it must know to parse, suggestions) and the
// `larql` dialect's verifiers, the one place that checks column names (for a
// script and for IR written by hand alike).
// docs/lql.md documents each column.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_DIALECT_LARQL_SCHEMA_H
#define VINDEX_DIALECT_LARQL_SCHEMA_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"

#include <algorithm>
#include <optional>
#include <string>

namespace vindex::lql::schema {

inline constexpr llvm::StringLiteral Tables[] = {"edges", "features",
                                                 "entities"};
/// How deep a WHERE expression may nest (AND/OR operators and parentheses
/// along any path from its root). Everything that walks the expression
/// (parser, lowering, verifier, cost estimate, evaluation, destruction)
/// recurses once per level, so the bound keeps the stack bounded; a left-deep
/// chain `a AND b AND ...` is as deep as it is long.
inline constexpr unsigned MaxWhereDepth = 256;
/// edges: what DESCRIBE computes (docs/lql.md "The edges table").
inline constexpr llvm::StringLiteral EdgeColumns[] = {
    "entity", "relation", "target", "layer", "feature", "score", "band"};
/// `score` is the KNN score of NEAREST TO (only with it; not part of * else).
inline constexpr llvm::StringLiteral FeatureColumns[] = {
    "layer",     "feature",    "gate_norm", "up_norm",
    "down_norm", "top_output", "top_input", "score"};
/// entities: the entities the probe was given, in its order.
inline constexpr llvm::StringLiteral EntityColumns[] = {"entity", "id",
                                                        "tokens"};
/// The results of SHOW RELATIONS, SHOW ENTITIES and SHOW FEATURES n, which
/// take WHERE and LIMIT on these columns.
inline constexpr llvm::StringLiteral RelationsColumns[] = {
    "relation", "features", "layers", "examples", "template"};
inline constexpr llvm::StringLiteral ShowEntitiesColumns[] = {"entity", "id",
                                                              "tokens"};
inline constexpr llvm::StringLiteral ShowFeaturesColumns[] = {
    "layer",       "feature",    "relation",  "entities",
    "attribution", "confidence", "top_input", "top_output"};

/// The columns of TABLE (lower case), or nullopt for an unknown table.
inline std::optional<llvm::ArrayRef<llvm::StringLiteral>>
columns(llvm::StringRef Table) {
  if (Table == "edges")
    return llvm::ArrayRef(EdgeColumns);
  if (Table == "features")
    return llvm::ArrayRef(FeatureColumns);
  if (Table == "entities")
    return llvm::ArrayRef(EntityColumns);
  return std::nullopt;
}

/// The columns of SHOW WHAT's result when it takes WHERE and LIMIT
/// (relations, entities, features), else nullopt.
inline std::optional<llvm::ArrayRef<llvm::StringLiteral>>
showColumns(llvm::StringRef What) {
  if (What == "relations")
    return llvm::ArrayRef(RelationsColumns);
  if (What == "entities")
    return llvm::ArrayRef(ShowEntitiesColumns);
  if (What == "features")
    return llvm::ArrayRef(ShowFeaturesColumns);
  return std::nullopt;
}

/// TABLE is a table name, or "show <what>" for a SHOW result.
inline std::optional<llvm::ArrayRef<llvm::StringLiteral>>
anyColumns(llvm::StringRef Table) {
  if (Table.consume_front("show "))
    return showColumns(Table);
  return columns(Table);
}

inline bool hasColumn(llvm::StringRef Table, llvm::StringRef Column) {
  auto Cols = anyColumns(Table);
  return Cols && llvm::is_contained(*Cols, Column);
}

/// Numeric columns compare against numbers; the others (entity, relation,
/// target, band, top_output, top_input, layers, examples, template) are
/// text and compare against strings.
inline bool isNumericColumn(llvm::StringRef Column) {
  return Column == "layer" || Column == "feature" || Column == "score" ||
         Column.ends_with("_norm") || Column == "features" || Column == "id" ||
         Column == "tokens" || Column == "entities" ||
         Column == "attribution" || Column == "confidence";
}

inline constexpr llvm::StringLiteral ShowKinds[] = {
    "relations", "layers", "entities", "features", "patches", "model"};
inline constexpr llvm::StringLiteral Bands[] = {"syntax", "knowledge",
                                                "output"};
inline constexpr llvm::StringLiteral Formats[] = {"gguf", "safetensors"};
/// The element types of a GGUF's matrices (COMPILE ... FORMAT gguf TYPE t,
/// vindex-compile --type): the names parseGGUFOutputType reads.
inline constexpr llvm::StringLiteral GGUFTypes[] = {"auto", "f32", "f16",
                                                    "bf16", "q8_0"};
inline constexpr llvm::StringLiteral CompareOps[] = {
    "=", "!=", "<", "<=", ">", ">=", "in", "like"};

/// The candidate closest to WORD (case-insensitively), if it is close: the
/// "did you mean" of the parser (keywords, UPPER) and of the verifier
/// (columns, lower).
template <typename Range>
std::optional<std::string> closest(llvm::StringRef Word,
                                   const Range &Candidates, bool Upper) {
  std::string W = Upper ? Word.upper() : Word.lower();
  unsigned Max = std::max<unsigned>(1, W.size() / 3);
  std::optional<std::string> Best;
  unsigned BestD = Max + 1;
  for (llvm::StringRef C : Candidates) {
    if (C == W)
      continue;
    unsigned D = llvm::StringRef(W).edit_distance(C, true, Max);
    if (D < BestD) {
      BestD = D;
      Best = C.str();
    }
  }
  return Best;
}

/// The error for a column SPELLING (as written) that TABLE (known) lacks: a
/// suggestion when one is close, else the table's columns.
inline std::string unknownColumnMessage(llvm::StringRef Table,
                                        llvm::StringRef Spelling) {
  std::string Msg = "unknown column '" + Spelling.str() + "'";
  auto Cols = *anyColumns(Table);
  if (auto Best = closest(Spelling, Cols, /*Upper=*/false))
    return Msg + "; did you mean '" + *Best + "'?";
  Msg += " (" + (Table.starts_with("show ") ? Table.upper() : Table.str()) +
         " has ";
  llvm::ListSeparator LS(", ");
  for (llvm::StringRef Col : Cols)
    (Msg += LS) += Col;
  return Msg + ")";
}

} // namespace vindex::lql::schema

#endif // VINDEX_DIALECT_LARQL_SCHEMA_H
