//===- Query.h - WHERE, ORDER BY and LIMIT over rows ------------*- C++ -*-===//
//
// Private to lib/Exec: the one evaluation of a larql WHERE expression and of
// ORDER BY, shared by SELECT FROM features (rows computed on demand) and
// the label queries (SELECT FROM edges / entities, SHOW RELATIONS /
// ENTITIES / FEATURES, whose rows are materialised).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_EXEC_QUERY_H
#define VINDEX_LIB_EXEC_QUERY_H

#include "ResultTable.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

// A namespace of its own: the front end's AST (never seen here) has its own
// Expr and OrderKey in vindex::lql.
namespace vindex::lql::query {

/// A column's value: numbers compare as double, text bytewise.
using Value = std::variant<double, std::string>;
using Literal = std::variant<int64_t, double, std::string>;

/// A WHERE expression, read once from its attribute (the op's
/// ["and"|"or", lhs, rhs] / [op, column, value] form, verified).
struct Expr {
  enum class Kind { Cmp, And, Or };
  Kind K = Kind::Cmp;
  std::string Column;
  std::string Op; ///< "=", "!=", "<", "<=", ">", ">=", "in", "like"
  std::vector<Literal> Values;
  std::unique_ptr<Expr> LHS, RHS;

  /// True if the expression compares Column anywhere.
  bool uses(llvm::StringRef Col) const;
  /// True if the expression compares a column Pred accepts anywhere.
  bool usesAny(llvm::function_ref<bool(llvm::StringRef)> Pred) const;
};

std::unique_ptr<Expr> toExpr(mlir::ArrayAttr A);

struct OrderKey {
  std::string Column;
  bool Descending = false;
};

/// Reads ORDER BY's attribute (verified).
std::vector<OrderKey> toOrderKeys(std::optional<mlir::ArrayAttr> A);

/// The value of a column of the row being evaluated.
using ColumnFn = llvm::function_ref<Value(llvm::StringRef Column)>;
/// How expensive a column is to compute (lower first); evaluation of AND/OR
/// takes the cheaper side first.
using CostFn = llvm::function_ref<int(llvm::StringRef Column)>;

bool evalExpr(const Expr &E, ColumnFn Get, CostFn Cost);

/// The row order ORDER BY asks for: stable, ties keep the input order.
/// Key(Row, K) is the value of key K of row Row (computed once each).
std::vector<size_t>
orderRows(size_t Rows, llvm::ArrayRef<OrderKey> Keys,
          llvm::function_ref<Value(size_t Row, size_t Key)> KeyValue);

Value toValue(const Cell &C);

/// Keeps the rows of R (materialised) that pass Where (may be null), orders
/// them by Keys and keeps the first Limit.
void filterRows(ResultTable &R, const Expr *Where,
                llvm::ArrayRef<OrderKey> Keys, std::optional<int64_t> Limit);

} // namespace vindex::lql::query

#endif // VINDEX_LIB_EXEC_QUERY_H
