//===- ResultTable.h - Rows of a statement's result -------------*- C++ -*-===//
//
// Private to lib/LQL: a result is named columns and rows of cells, printed
// as an aligned table, one JSON object, or CSV (Executor's formats).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_LQL_RESULTTABLE_H
#define VINDEX_LIB_LQL_RESULTTABLE_H

#include "vindex/Exec/Executor.h"

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace vindex::lql {

/// A cell: an integer, a decimal, text, or a flag.
using Cell = std::variant<int64_t, double, std::string, bool>;

struct ResultTable {
  std::string Statement; ///< "SELECT", "SHOW LAYERS", ...
  std::vector<std::string> Columns;
  std::vector<std::vector<Cell>> Rows;
  /// Table format only: one "column  value" line per column (one row).
  bool Vertical = false;
};

/// Table: a header and aligned rows (decimals with 4 places); JSON: one
/// line {"statement": ..., "columns": [...], "rows": [{col: value}, ...]}
/// with decimals in full; CSV: a header line, then the rows (decimals with
/// 9 significant digits, text quoted).
void printResult(const ResultTable &R, ResultFormat Format,
                 llvm::raw_ostream &OS);

} // namespace vindex::lql

#endif
