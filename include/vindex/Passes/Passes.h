//===- Passes.h - Passes over larql and vindex IR ---------------*- C++ -*-===//
//
// registerLarqlPasses() registers every pass of passes/Passes.td.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_PASSES_PASSES_H
#define VINDEX_PASSES_PASSES_H

#include "vindex/Dialect/Larql/LarqlDialect.h"
#include "vindex/Dialect/Vindex/VindexDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace vindex {

/// What runs against a V-index when larql-opt is given no --pass-pipeline
/// (the passes of builtin.module(...)): every statement lowered as far as
/// it runs.
inline constexpr const char *kDefaultPipeline =
    "larql-resolve-relations,larql-lower-to-vindex,larql-plan-edits";

#define GEN_PASS_DECL
#include "vindex/Passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "vindex/Passes/Passes.h.inc"

} // namespace vindex

#endif // VINDEX_PASSES_PASSES_H
