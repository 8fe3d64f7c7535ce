//===- Editor.h - Writing facts into the FFN weights ------------*- C++ -*-===//
//
// The edit planner behind INSERT, DELETE and UPDATE of facts (docs/lql.md,
// "Methods"). It runs the engine, never the language front end: the passes
// (passes/PlanEdits.cpp) hand it facts with their prompts tokenized and
// lower what it plans to `vindex.install_feature` ops.
//
// Method `slot` (the default): each target piece of a fact gets a new gated
// feature in an appended FFN slot of one layer L.
//   - key: the FFN input of L (after the pre-FFN norm; what gate and up
//     multiply) at the last position of the prompt followed by the earlier
//     pieces of the target (Keys.cpp);
//   - gate = a * g, with g the ridge least-squares separator that maps the
//     key to +1 and the layer's ordinary inputs (the key statistics, the
//     guard prompts' keys and their greedy answers' keys, every position
//     of the statement's other facts and of the facts written before, the
//     fact's own other positions) to -1, reweighted toward a max margin
//     (Keys.cpp, fitGate); the FFN has no bias, and the -1 of
//     ordinary inputs is what their large common (mean) component pays
//     for. Where it maps to -1, act(a g.x) is ~0: the feature is quiet on
//     other inputs (Keys.cpp). up: the layer's mean input direction, 1 at
//     the key (up = gate on Gemma);
//   - down: the final state (before the final norm's weights) that makes
//     the piece most likely, measured by gradient ascent over the LM head
//     (divided by the post-FFN norm's weights on Gemma), scaled by the
//     strength the balancer finds; a piece no state makes likely (a token
//     the model never emits) gets its output row lifted first.
// DELETE writes the opposite direction (away from the model's answer and
// from the answers other entities get for the relation); UPDATE is an
// insert of the new target over the old one.
//
// After its rows, a statement is checked as a whole (every fact and every
// guard prompt's answer with all its features in place) and the facts whose
// features fire where an answer was lost are fitted again (a few rounds).
//
// Each statement is planned against the view as the earlier statements of
// the module leave it: the editor keeps a scratch view on which it pushes
// every plan it returns, in the order the applier will install them (so
// the appended slots' numbers agree).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_EDIT_EDITOR_H
#define VINDEX_EDIT_EDITOR_H

#include "vindex/Store/TensorView.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vindex {

class Model;
class Tokenizer;

namespace edit {

/// A feature to install: gate, up and down vectors (hidden size each) for
/// slot Slot of layer Layer (Slot == the layer's width appends).
struct PlannedFeature {
  /// The fact (index into the statement's facts) it writes.
  size_t Fact = 0;
  unsigned Layer = 0;
  uint64_t Slot = 0;
  std::vector<float> Gate, Up, Down;
};

/// A row of a tensor to replace: an output row lifted so that a target
/// piece the model never learned to emit can be (the LM head's row; a model
/// whose LM head is its embedding gets an output matrix of its own first).
struct PlannedRow {
  /// The output matrix must be untied from the embedding before this row
  /// (vindex.untie_output; the first lifted row of a tied model).
  bool UntieFirst = false;
  size_t Fact = 0;
  std::string Tensor;
  uint64_t Row = 0;
  std::vector<float> Values;
};

/// One fact of a statement, its prompts tokenized (with the tokenizer's
/// special tokens, as the engine runs them).
struct Fact {
  std::string Entity, Relation;
  /// The relation's prompts with the entity, canonical first.
  std::vector<std::vector<int32_t>> Prompts;
  /// The target's pieces as they follow the canonical prompt (INSERT and
  /// UPDATE); empty for DELETE.
  std::vector<int32_t> Target;
  std::string TargetText;
};

/// What a statement asks for.
enum class EditKind { Insert, Delete, Update };

struct EditOptions {
  /// AT LAYER n; unset chooses from the keys (the layer where the fact's
  /// key stands furthest from the other prompts').
  std::optional<unsigned> Layer;
  /// The balancer's goal: every target piece at least this probability,
  /// teacher-forced on the canonical prompt.
  double MinProbability = 0.99;
  /// A guard prompt keeps its answer, and that answer's probability moves
  /// by at most this much.
  double GuardTolerance = 0.01;
  /// Guard prompts per fact (the nearest other prompts by key).
  unsigned Guards = 48;
};

/// The plan of one statement.
struct StatementPlan {
  /// Lifted output rows: applied before the features.
  std::vector<PlannedRow> Rows;
  std::vector<PlannedFeature> Features;
  /// The balancer's bounds and decisions, one line per fact (recorded in
  /// the patch and printed with --verbose).
  std::vector<std::string> Record;
};

/// Prompts for the key statistics and the guards: every relation the
/// module edits, with the entities the vocabulary spells as whole words
/// (and, when given, lines of ordinary text).
struct Sample {
  /// Relation name -> its prompt templates ("{entity}" placeholder).
  std::vector<std::pair<std::string, std::vector<std::string>>> Relations;
  /// Entities the module edits: their prompts join the sample, so that
  /// every fact's features are fitted to stay quiet on the others' prompts
  /// (and the facts of other rows guard each fact).
  std::vector<std::string> Entities;
  /// Entities whose prompts guard the edits (the probed entities of the
  /// V-index's labels); empty: the vocabulary's whole words.
  std::vector<std::string> Known;
  /// Extra ordinary text (e.g. a corpus), one prompt per line.
  std::vector<std::string> Text;
  /// Measure the sample when the editor is created; false: at the first
  /// plan() or liftOutputRow(), on the view the editor was created with
  /// (the same statistics). Scripts whose statements are all MODE memit
  /// plan no slot features: on a large model the sample (the model's own
  /// texts, every known entity's prompts and answers) costs more than
  /// their whole edit.
  bool MeasureAtCreate = true;
  /// A deferred sample is measured on the V-index with its first
  /// MeasureOnPatches persisted patches instead of the view given to
  /// Editor::create (MODE memit over an input that
  /// earlier runs' memit statements made: the model their first statement
  /// met).
  size_t MeasureOnPatches = SIZE_MAX;
};

class Editor {
public:
  /// An editor over View (as the session's edits so far left it): the
  /// scratch view starts as a copy of it. Statistics are computed once,
  /// deterministically (the same sample in the same order, on View), here
  /// or at first use (Sample::MeasureAtCreate).
  static llvm::Expected<std::unique_ptr<Editor>>
  create(const TensorView &View, const Tokenizer &Tok, const Sample &S,
         llvm::raw_ostream *Verbose = nullptr);
  ~Editor();

  /// Plans one statement's facts (in row order, each against the edits of
  /// the rows before) and pushes the plan on the scratch view. An error
  /// (a fact that cannot be reached, a DELETE with nothing to suppress)
  /// names the fact's row (1-based) in Row.
  llvm::Expected<StatementPlan> plan(EditKind Kind, llvm::ArrayRef<Fact> Facts,
                                     const EditOptions &Opts,
                                     unsigned &FailedRow);

  /// Records an edit that is not a fact's (a vindex op already in the
  /// module) on the scratch view, so that later plans see it.
  llvm::Error apply(llvm::function_ref<llvm::Error(PatchBuilder &)> Edit);

  /// Lifts Token's output row as the slot method does for a piece the
  /// model never emits, on the scratch view; returns the new row and
  /// appends its record to Record. (MODE memit's hook.)
  llvm::Expected<PlannedRow> liftOutputRow(int32_t Token, std::string &Record);

  /// Adds entities to a deferred sample (Sample::MeasureAtCreate false),
  /// which is measured again at its next use if any is new: MODE memit's
  /// statements add theirs as they come, so that a statement's lifts read
  /// its own and earlier statements' entities, never a later one's (and a
  /// chain of runs lifts as one run of all its statements).
  void addSampleEntities(llvm::ArrayRef<std::string> Entities);

  /// The scratch view: the session's view with every plan so far.
  const TensorView &view() const;

  struct Impl;

private:
  explicit Editor(std::unique_ptr<Impl> I);
  std::unique_ptr<Impl> I;
};

/// The whole-word entities of a vocabulary: pieces that begin a word with
/// a capital letter followed by at least two letters, in id order, at most
/// Max of them (deterministic).
std::vector<std::string> vocabularyEntities(const Tokenizer &Tok, size_t Max);

/// "{entity}" in Template replaced by Entity.
std::string fillTemplate(llvm::StringRef Template, llvm::StringRef Entity);

} // namespace edit
} // namespace vindex

#endif // VINDEX_EDIT_EDITOR_H
