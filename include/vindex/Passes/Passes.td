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

def LarqlStripQueries : Pass<"larql-strip-queries", "::mlir::ModuleOp"> {
  let summary = "Drop the read-only query ops, keeping the edits";
  let description = [{
    Erases `larql.select`, `larql.describe`, `larql.show`, `larql.infer`,
    `larql.walk` and `larql.trace`: ops that only read the V-index and print.
    What is left changes the V-index or writes it (edits, patch blocks,
    COMPILE), so a script written to explore and patch can be run as a patch
    only, e.g. in a make rule: `larql-opt in.vindex edits.lql -o out.vindex
    --pass-pipeline='builtin.module(larql-strip-queries)'`.
  }];
}

def LarqlResolveTokens : Pass<"larql-resolve-tokens", "::mlir::ModuleOp"> {
  let summary = "Tokenize the prompts of INFER and WALK with the V-index's "
                "tokenizer";
  let description = [{
    Needs a V-index (`larql-opt IN.vindex ...`; without one the pass fails,
    "pass larql-resolve-tokens needs a V-index"). Each `larql.infer` and
    `larql.walk` gets the ids of its prompt as `tokens = array<i32: ...>`,
    and execution reads them from the IR instead of tokenizing again, so
    `--emit=mlir` shows the very ids the model runs on. A prompt that
    encodes to no tokens is an error at its op, before anything runs. Ops
    that already carry tokens (written by hand, or by an earlier run) keep
    them.
  }];
}

#endif // VINDEX_PASSES
