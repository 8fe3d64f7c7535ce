//===- LarqlOps.h - larql ops -----------------------------------*- C++ -*-===//
#ifndef VINDEX_DIALECT_LARQL_LARQLOPS_H
#define VINDEX_DIALECT_LARQL_LARQLOPS_H

#include "vindex/Dialect/Larql/LarqlDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"

#include <optional>
#include <utility>

#define GET_OP_CLASSES
#include "vindex/Dialect/Larql/LarqlOps.h.inc"

namespace vindex::larql {

/// The methods of INSERT (MODE m; docs/lql.md, "Methods"): `slot` (the
/// default) writes each fact as new gated features in appended FFN slots.
inline constexpr llvm::StringLiteral InsertModes[] = {"slot", "memit"};

/// Clause locations. An op lowered from a script is located at its
/// statement's first token; a clause a verifier checks (WITH K's count, a
/// relation's template) can be located too, so that its error points where
/// the script wrote it: a NameLoc named after the op's attribute, fused
/// after the statement's location (which stays the op's first position).
mlir::Location
withClauses(mlir::Location Statement,
            llvm::ArrayRef<std::pair<llvm::StringRef, mlir::Location>> Clauses);
/// The location of the clause that set Op's attribute Attr, if recorded.
std::optional<mlir::Location> clauseLoc(mlir::Operation *Op,
                                        llvm::StringRef Attr);
/// The clause name under which a script's column reference is recorded
/// ("column:" and the column as written): the verifier, which checks column
/// names, reports an unknown one at it and in the script's spelling.
std::string columnClause(llvm::StringRef Spelling);
/// The clause name of an INSERT's row N (1-based): "row:N", located at the
/// row's '('.
std::string rowClause(size_t N);
/// An error about row N of an INSERT: at the row when the op came from a
/// script, else on the op naming the row.
mlir::InFlightDiagnostic rowError(mlir::Operation *Op, size_t N);

} // namespace vindex::larql

#endif
