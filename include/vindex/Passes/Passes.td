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
    --pass-pipeline='builtin.module(larql-strip-queries,
    larql-resolve-relations,larql-lower-to-vindex,larql-plan-edits)'` (the
    default pipeline after it: the edits still need lowering).
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

def LarqlResolveRelations
    : Pass<"larql-resolve-relations", "::mlir::ModuleOp"> {
  let summary = "Give the fact edits their relations' prompts";
  let description = [{
    Consumes `larql.create_relation` (several per relation are paraphrases;
    the first is the canonical prompt) and gives each `larql.insert`, and
    each `larql.delete`/`larql.update` that names an entity and a relation,
    the templates of the relations it uses:
    `relations = {capital = ["The capital of {entity} is", ...]}`. Relations
    created earlier in the session (the shell's earlier lines) count. A row
    whose relation has no prompt is an error at the row. Needs no model.
  }];
}

def LarqlPlanEdits : Pass<"larql-plan-edits", "::mlir::ModuleOp"> {
  let summary = "Capture keys, plan slots and vectors or MEMIT updates, "
                "balance, and lower INSERT/DELETE/UPDATE of facts to vindex "
                "ops";
  let description = [{
    Needs a V-index and the relations' prompts (larql-resolve-relations).
    Statement by statement, in order, against the V-index as the earlier
    statements leave it (lib/Edit, include/vindex/Edit/Editor.h): the key
    of each fact and target piece is captured by running the engine on the
    prompt, a layer is chosen (AT LAYER n, or from the keys), each piece
    gets a feature in an appended slot (MODE slot: gate and up separate the
    key from the layer's ordinary inputs, down writes the piece), and the
    balancer measures each fact's strength; a piece the model cannot emit
    gets its output row lifted. The op becomes one `vindex.update_weights`
    per lifted row, then one `vindex.install_feature` per feature, vectors
    as dense resources and the balancer's record as `balance`. An INSERT
    with MODE memit instead becomes `vindex.update_weights` of the down
    projections of the `memit-layers` (plus lifted rows, and appended
    features with `memit-widen`; docs/lql.md, "MODE memit"). A target the tokenizer cannot
    encode, a fact the balancer cannot reach, and a DELETE with no answer to
    remove are errors at the row or statement. The key statistics come from
    the relations' prompts filled with the vocabulary's whole-word entities,
    and from the lines of `corpus` when given.
  }];
  let options = [Option<"Corpus", "corpus", "std::string", "",
                        "A text file whose lines add to the key statistics">,
                 // MODE memit (docs/lql.md, "MODE memit").
                 ListOption<"MemitLayers", "memit-layers", "unsigned",
                            "MODE memit's edit layers (default: the "
                            "middle ones)">,
                 Option<"MemitLambda", "memit-lambda", "double", "10.0",
                        "MODE memit's weight of the ordinary keys">,
                 Option<"MemitAt", "memit-at", "std::string", "\"last\"",
                        "MODE memit's edit position: subject or last">,
                 Option<"MemitKeys", "memit-keys", "std::string", "\"each\"",
                        "MODE memit's keys: mean (one per unit, averaged "
                        "over its contexts), each (one per context) or "
                        "prompts (one per prompt of the relation)">,
                 Option<"MemitPreserve", "memit-preserve", "double", "1.0",
                        "MODE memit's weight of each guard key kept in "
                        "place (0: none)">,
                 Option<"MemitGuards", "memit-guards", "std::string",
                        "\"canonical\"",
                        "MODE memit's guard prompts: canonical (each "
                        "relation's canonical prompt) or all (every prompt "
                        "the relation was given)">,
                 Option<"MemitGuardEntities", "memit-guard-entities",
                        "std::string", "\"all\"",
                        "MODE memit's guard entities per relation: all "
                        "(every known entity) or probed (the entities the "
                        "labels record facts of with the relation, where "
                        "they do)">,
                 Option<"MemitGuardPositions", "memit-guard-positions",
                        "std::string", "\"last\"",
                        "MODE memit: the guard texts' positions held: last "
                        "(the prompt's last and its answer's) or all">,
                 Option<"MemitHold", "memit-hold", "std::string",
                        "\"units\"",
                        "MODE memit: how each statement's update holds the "
                        "facts earlier statements wrote: units (their "
                        "units join the update; true the same), guards "
                        "(their texts join the guards) or false">,
                 Option<"MemitRepair", "memit-repair", "bool", "false",
                        "MODE memit: a guard answer (a known entity's, up "
                        "to punctuation) that earlier statements or this "
                        "one's update lost is written back by the update">,
                 Option<"MemitRepairRounds", "memit-repair-rounds",
                        "unsigned", "8",
                        "MODE memit with memit-repair: rounds added after "
                        "memit-rounds when the last round's update lost "
                        "guard answers">,
                 Option<"MemitRepairGrants", "memit-repair-grants",
                        "unsigned", "1",
                        "MODE memit with memit-repair: how many times "
                        "memit-repair-rounds may be added (again whenever "
                        "the last added round's update lost answers)">,
                 Option<"MemitRepairMargin", "memit-repair-margin",
                        "double", "0.0",
                        "MODE memit with memit-repair: a guard answer "
                        "still given but whose pieces fall below this "
                        "probability is written back as well (0: only "
                        "lost ones)">,
                 Option<"MemitRounds", "memit-rounds", "unsigned", "8",
                        "MODE memit's rounds (units not answered are "
                        "solved again)">,
                 Option<"MemitRestat", "memit-restat", "bool", "true",
                        "MODE memit: measure the key statistics again at a "
                        "statement whose keys' weights earlier ones changed">,
                 Option<"MemitMargin", "memit-margin", "double", "0",
                        "MODE memit: the probability a unit's pieces must "
                        "have for it to count as answered between rounds">,
                 Option<"MemitReach", "memit-reach", "std::string",
                        "\"canonical\"",
                        "MODE memit: where a unit must be answered between "
                        "rounds: canonical (its canonical prompt) or all "
                        "(every context it was optimised on)">,
                 Option<"MemitNormKeys", "memit-norm-keys", "bool", "false",
                        "MODE memit, where the FFN output is normed (Gemma): "
                        "every key over the rms of the FFN output at its "
                        "position">,
                 Option<"MemitWiden", "memit-widen", "unsigned", "0",
                        "MODE memit: features appended to each edit layer "
                        "per fact (random gate and up) whose down rows the "
                        "update writes">,
                 Option<"MemitAlphaEdit", "memit-alphaedit", "bool", "false",
                        "MODE memit: project updates onto the null space "
                        "of preserved keys and hold earlier edits' keys">,
                 Option<"MemitNullThreshold", "memit-null-threshold",
                        "double", "0.01",
                        "AlphaEdit's null space: eigenvalues below this "
                        "times the largest">,
                 Option<"MemitStats", "memit-stats", "std::string",
                        "\"auto\"",
                        "MODE memit's key statistics: auto (the V-index's "
                        "stored ones when valid, else measured), stored "
                        "(those or an error), measure">,
                 Option<"Jobs", "jobs", "unsigned", "0",
                        "Threads of MODE memit (results do not depend on "
                        "it); 0: the driver's (larql-opt's --jobs), also "
                        "under a --pass-pipeline of one's own">];
  let dependentDialects = ["::vindex::vx::VindexDialect"];
}

#endif // VINDEX_PASSES
