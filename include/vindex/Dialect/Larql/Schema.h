//===- Schema.h - The tables and columns LQL knows --------------*- C++ -*-===//
//
// Shared by the parser (unknown names, suggestions) and the `larql` dialect's
// verifiers, so that a script and its IR are checked against the same list.
// docs/lql.md documents each column.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_DIALECT_LARQL_SCHEMA_H
#define VINDEX_DIALECT_LARQL_SCHEMA_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"

#include <optional>

namespace vindex::lql::schema {

inline constexpr llvm::StringLiteral Tables[] = {"edges", "features",
                                                 "entities"};
inline constexpr llvm::StringLiteral EdgeColumns[] = {
    "entity", "relation", "target", "layer", "feature", "score"};
/// `score` is the KNN score of NEAREST TO (only with it; not part of * else).
inline constexpr llvm::StringLiteral FeatureColumns[] = {
    "layer",     "feature",    "gate_norm", "up_norm",
    "down_norm", "top_output", "top_input", "score"};
inline constexpr llvm::StringLiteral EntityColumns[] = {"entity", "relation",
                                                        "layer", "feature"};

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

inline bool hasColumn(llvm::StringRef Table, llvm::StringRef Column) {
  auto Cols = columns(Table);
  return Cols && llvm::is_contained(*Cols, Column);
}

/// Numeric columns compare against numbers; the others (entity, relation,
/// target, top_output, top_input) are text and compare against strings.
inline bool isNumericColumn(llvm::StringRef Column) {
  return Column == "layer" || Column == "feature" || Column == "score" ||
         Column.ends_with("_norm");
}

inline constexpr llvm::StringLiteral ShowKinds[] = {
    "relations", "layers", "entities", "features", "patches", "model"};
inline constexpr llvm::StringLiteral Bands[] = {"syntax", "knowledge",
                                                "output"};
inline constexpr llvm::StringLiteral Formats[] = {"gguf", "safetensors"};
inline constexpr llvm::StringLiteral CompareOps[] = {
    "=", "!=", "<", "<=", ">", ">=", "in", "like"};

} // namespace vindex::lql::schema

#endif // VINDEX_DIALECT_LARQL_SCHEMA_H
