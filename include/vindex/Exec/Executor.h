//===- Executor.h - Running larql/vindex IR against a V-index ---*- C++ -*-===//
//
// The IR is the program: the executor walks a module (what the front end
// lowered, after the pass pipeline) and runs each op, reading its
// attributes. Query ops (larql.select, larql.show, larql.infer, ...) print
// results; vindex ops (vindex.remove_feature, ...) are edits, handed to the
// applier. The AST never reaches this library.
//
// The engine and the tokenizer are loaded on first use, by the ops that
// need them (through the VindexSession the passes see too), so that SHOW MODEL,
// SHOW LAYERS, SELECT FROM features (without NEAREST TO), COMPILE and -o work
// on a V-index the engine cannot run.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_EXEC_EXECUTOR_H
#define VINDEX_EXEC_EXECUTOR_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vindex {
class Model;
class TensorView;
class Tokenizer;
class Vindex;
class VindexSession;
struct Labels;
class PatchBuilder;
struct PatchOrigin;
} // namespace vindex

namespace vindex::lql {

class FeatureWeights;

enum class ResultFormat { Table, JSON, CSV };

/// An error loading what a statement needs from the V-index (the engine,
/// the tokenizer): it concerns the V-index, not the statement, so the
/// driver reports it without a script location.
class LoadError : public llvm::ErrorInfo<LoadError> {
public:
  static char ID;
  explicit LoadError(llvm::Error E) : Message(llvm::toString(std::move(E))) {}
  void log(llvm::raw_ostream &OS) const override { OS << Message; }
  std::error_code convertToErrorCode() const override {
    return llvm::inconvertibleErrorCode();
  }

private:
  std::string Message;
};

/// Runs ops against one V-index and prints each result: an aligned table,
/// one JSON object per line, or CSV. The model and tokenizer are loaded
/// once, when an op first needs them. Edits (vindex ops) go through the
/// applier into one patch per statement (the ops of one location), pushed
/// on the executor's view of the V-index:
/// every later op (the engine, the features queries, COMPILE) sees them.
class Executor {
public:
  /// Origin, when given, describes the statement an edit op came from (its
  /// text, the script's hash) for the patch's record.
  using OriginFn = std::function<PatchOrigin(mlir::Operation &)>;
  Executor(VindexSession &VS, llvm::raw_ostream &OS, ResultFormat Format,
           unsigned Threads, OriginFn Origin = nullptr);
  ~Executor();

  /// The V-index as the ops so far left it (its input with their patches):
  /// what -o writes.
  const TensorView &view() const { return *View; }

  /// Runs one op of a verified module. A failure is either a LoadError or
  /// the statement's own error (the caller reports it at Op's location).
  llvm::Error run(mlir::Operation &Op);
  /// After the last op: a patch still open (BEGIN PATCH without SAVE PATCH)
  /// is an error, reported at its BEGIN PATCH.
  mlir::LogicalResult finish();
  /// Pushes the last statement's edits on the view as one patch; run()
  /// does so before any op that is not that statement's edit, finish()
  /// at the end, and a driver after each module (the shell's lines).
  llvm::Error flushEdits();

private:
  /// The session's engine and tokenizer, their errors as LoadError.
  llvm::Expected<const Model &> model();
  llvm::Expected<const Tokenizer &> tokenizer();
  /// The FFN and vocabulary matrices (Select.cpp): the engine's once it is
  /// loaded, else read from the V-index without it.
  llvm::Expected<const FeatureWeights &> weights();

  /// Tokens: the prompt's ids when a pass resolved them
  /// (larql-resolve-tokens), else the prompt is tokenized here.
  llvm::Error infer(llvm::StringRef Kind, llvm::StringRef Prompt,
                    std::optional<llvm::ArrayRef<int32_t>> Tokens, unsigned Top,
                    std::optional<unsigned> Generate, std::optional<size_t> K);
  llvm::Error select(mlir::Operation &Op);  ///< Select.cpp
  llvm::Error compile(mlir::Operation &Op); ///< Compile.cpp

  // Show.cpp
  llvm::Error show(mlir::Operation &Op);
  llvm::Error showLayers();
  void showModel();
  void showPatches();

  // LabelQueries.cpp
  /// The V-index's labels, or the statement's error saying to probe it.
  llvm::Expected<const Labels &> labels();
  /// SHOW RELATIONS, ENTITIES, FEATURES n.
  llvm::Error showLabels(mlir::Operation &Op);
  llvm::Error selectLabels(mlir::Operation &Op); ///< FROM edges, entities
  llvm::Error describe(mlir::Operation &Op);

  // PatchFile.cpp
  static bool isEdit(mlir::Operation &Op); ///< an op of the vindex dialect
  llvm::Error edit(mlir::Operation &Op);   ///< apply, and record if open
  llvm::Error applyEdit(mlir::Operation &Op);
  llvm::Error beginPatch(mlir::Operation &Op);
  llvm::Error savePatch(mlir::Operation &Op);
  llvm::Error applyPatch(mlir::Operation &Op);

  VindexSession &VS;
  const Vindex &V;
  TensorView *View; ///< the session's
  OriginFn Origin;
  llvm::raw_ostream &OS;
  ResultFormat Format;
  unsigned Threads;
  std::unique_ptr<FeatureWeights> FW;
  uint64_t FWGeneration = 0; ///< the view's generation FW was bound at
  bool CSVHeaderDone = false;
  /// The edits since BEGIN PATCH (null when no patch is open).
  mlir::OwningOpRef<mlir::ModuleOp> Recording;
  /// The current statement's edits, not yet pushed (applyEdit), the
  /// location they share, and the balancer records (their ops' `balance`
  /// attributes) already in its origin.
  std::unique_ptr<PatchBuilder> Pending;
  std::optional<mlir::Location> PendingLoc;
  std::vector<mlir::Attribute> PendingBalances;
  std::string PatchName;
};

} // namespace vindex::lql

#endif // VINDEX_EXEC_EXECUTOR_H
