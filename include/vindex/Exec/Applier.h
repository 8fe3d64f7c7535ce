//===- Applier.h - vindex ops into the overlay ----------------*- C++ -*-===//
//
// What runs an edit: the ops of the `vindex` dialect
// (include/vindex/Dialect/Vindex/VindexOps.td), as the passes left them,
// written into a PatchBuilder over the current view:
//   vindex.remove_feature {layer, feature}      zeroes the feature's rows
//   vindex.install_feature {layer, slot, ...}   slot < width replaces the
//                                               feature, slot == width
//                                               appends one
//   vindex.update_weights "t" {row_begin, ...}  replaces rows of tensor t
//   vindex.set_label                            refused: labels arrive with
//                                               the probe issue
// Values are converted to each tensor's dtype (round to nearest even).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_EXEC_APPLIER_H
#define VINDEX_EXEC_APPLIER_H

#include "vindex/Store/Patch.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

namespace mlir {
class Operation;
} // namespace mlir

namespace vindex {

/// Applies one op. The error names the op ("'vindex.install_feature' op
/// ...") but not its location: report it at Op->getLoc().
llvm::Error applyVindexOp(mlir::Operation *Op, PatchBuilder &P);

/// Applies Ops in order, stopping at the first failure; the error's text
/// is "<location>: '<op>' op <problem>" with the op's location (file:line:col
/// for ops lowered from a script). On failure P holds the changes of the
/// ops before the failing one: discard it. Ops of other dialects are an
/// error.
llvm::Error applyVindexOps(llvm::ArrayRef<mlir::Operation *> Ops,
                           PatchBuilder &P);

} // namespace vindex

#endif // VINDEX_EXEC_APPLIER_H
