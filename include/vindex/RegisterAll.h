//===- RegisterAll.h - Every dialect of Vindex ------------------*- C++ -*-===//
//
// One registration shared by every tool main (larql-opt today).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_REGISTERALL_H
#define VINDEX_REGISTERALL_H

#include "vindex/Dialect/Larql/LarqlDialect.h"
#include "vindex/Dialect/Vindex/VindexDialect.h"

#include "vindex/Passes/Passes.h"

#include "mlir/IR/DialectRegistry.h"

namespace vindex {

inline void registerAllDialects(mlir::DialectRegistry &Registry) {
  Registry.insert<larql::LarqlDialect, vx::VindexDialect>();
}

/// Every pass of passes/Passes.td (larql-lower-to-vindex, ...).
inline void registerAllPasses() { registerLarqlPasses(); }

} // namespace vindex

#endif // VINDEX_REGISTERALL_H
