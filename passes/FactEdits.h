//===- FactEdits.h - The facts an edit op names -----------------*- C++ -*-===//
//
// Shared by larql-resolve-relations and larql-plan-edits: INSERT's rows,
// and the (entity, relation) a DELETE or UPDATE pins.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_PASSES_FACTEDITS_H
#define VINDEX_PASSES_FACTEDITS_H

#include "vindex/Edit/Editor.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributeInterfaces.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Operation.h"

#include <optional>
#include <string>
#include <vector>

namespace vindex {

class Tokenizer;

/// The attribute larql-resolve-relations gives a fact edit: relation ->
/// its prompt templates.
inline constexpr llvm::StringLiteral RelationsAttr = "relations";
/// The attribute larql-plan-edits gives each vindex.install_feature it
/// emits: the balancer's record of the fact.
inline constexpr llvm::StringLiteral BalanceAttr = "balance";

struct FactRow {
  /// INSERT's row (1-based); 0 for DELETE and UPDATE.
  size_t Index = 0;
  std::string Entity, Relation, Target;
};

/// The facts Op edits: an INSERT's rows; a DELETE's or UPDATE's when its
/// WHERE is `entity = '...' AND relation = '...'` (either order; UPDATE's
/// Target from SET target). Other ops, and a DELETE that pins a layer and a
/// feature, edit no fact (Rows stays empty). A DELETE or UPDATE that names
/// entity or relation otherwise is an error, reported.
mlir::LogicalResult factRows(mlir::Operation *Op, std::vector<FactRow> &Rows);

/// The fact Entity/Relation with the relation's prompt templates (canonical
/// first) filled in and encoded, and Target's pieces as they follow the
/// canonical prompt (the tokenizer may join the space to the first piece);
/// no Target: a DELETE's fact, no pieces. Fails, saying why in Why, when
/// the pieces do not spell Target back or a prompt or the target holds a
/// token past the model's EmbeddingRows (an added token spelled out).
mlir::FailureOr<edit::Fact>
resolveFact(const Tokenizer &Tok, uint64_t EmbeddingRows,
            llvm::ArrayRef<std::string> Templates, llvm::StringRef Entity,
            llvm::StringRef Relation, std::optional<llvm::StringRef> Target,
            std::string &Why);

/// A 1-D f32 dense resource named Name holding V.
mlir::ElementsAttr floatResource(mlir::MLIRContext *Ctx, llvm::StringRef Name,
                                 llvm::ArrayRef<float> V);

/// A vindex.install_feature of F at B's insertion point, its vectors dense
/// resources named Prefix + "L<layer>_<slot>_gate" (_up, _down), with the
/// planner's record Record as its BalanceAttr.
void createInstallFeature(mlir::OpBuilder &B, mlir::Location Loc,
                          const edit::PlannedFeature &F,
                          llvm::StringRef Prefix, llvm::StringRef Record);

/// An error about fact Index of Op (an INSERT's row, else the statement).
mlir::InFlightDiagnostic factError(mlir::Operation *Op, size_t Index);

} // namespace vindex

#endif
