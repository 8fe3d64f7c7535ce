//===- ToIR.h - Lowering LQL statements to the larql dialect ----*- C++ -*-===//
#ifndef VINDEX_LQL_TOIR_H
#define VINDEX_LQL_TOIR_H

#include "vindex/LQL/AST.h"
#include "vindex/LQL/Diagnostics.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/SourceMgr.h"

namespace vindex::lql {

/// One `larql` op per statement, in order, in a new builtin.module; each op
/// is located (FileLineColLoc) at its statement's first token in SM. The
/// module is not verified.
mlir::OwningOpRef<mlir::ModuleOp> lowerToIR(mlir::MLIRContext &Ctx,
                                            const llvm::SourceMgr &SM,
                                            llvm::ArrayRef<Statement> Stmts);

} // namespace vindex::lql

#endif // VINDEX_LQL_TOIR_H
