//===- Passes.td - Passes over larql and vindex IR ---------*- tablegen -*-===//
#ifndef VINDEX_PASSES
#define VINDEX_PASSES

include "mlir/Pass/PassBase.td"

def LarqlLowerToVindex : Pass<"larql-lower-to-vindex", "::mlir::ModuleOp"> {
  let summary = "Lower the larql edits that need no model to vindex ops";
  let description = [{
    Lowers what needs neither a model nor labels: a `larql.delete` whose
    WHERE pins exactly one layer and one feature,
    `["and", ["=", "layer", L], ["=", "feature", F]]` (either order), becomes
    `vindex.remove_feature {layer = L, feature = F}`. Every other op is left
    as it is (INSERT and UPDATE need captured keys and planned slots).
  }];
  let dependentDialects = ["::vindex::vx::VindexDialect"];
}

#endif // VINDEX_PASSES
