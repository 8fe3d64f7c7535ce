//===- MemitEdits.h - larql-plan-edits' MODE memit --------------*- C++ -*-===//
//
// An INSERT with MODE memit: planned by lib/Edit/Memit.cpp, lowered to one
// `vindex.update_weights` of each edit layer's whole down projection.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_PASSES_MEMITEDITS_H
#define VINDEX_PASSES_MEMITEDITS_H

#include "vindex/Edit/Memit.h"

#include "mlir/IR/Operation.h"
#include "llvm/ADT/StringMap.h"

#include <optional>

namespace vindex {

class TensorView;
class Tokenizer;

/// What MODE memit keeps across a pass run: its options, the corpus
/// lines, and the key statistics (measured on the first memit statement,
/// and again at a later one whose keys' weights earlier ones changed).
struct MemitContext {
  edit::MemitOptions Options;
  /// The corpus' lines tokenized; empty: the model's greedy text.
  std::vector<std::string> Corpus;
  std::string CorpusName;
  std::optional<edit::KeyStatistics> Stats;
  /// Whether Stats are the V-index's stored ones.
  bool StatsStored = false;
  /// keyStatsWeightsIdentity of each edit layer's weights when Stats were
  /// measured or found current.
  std::vector<uint64_t> StatsWeights;
  /// `memit-restat`: a statement whose keys' weights earlier statements
  /// changed measures the statistics again, from the same source (kept
  /// when they were stored and the pass was given no corpus).
  bool Restat = true;
  /// `memit-stats`: "auto" (the V-index's stored statistics, stats/, when
  /// present, of the corpus given if one is, and measured on the weights
  /// as they are; else measured here), "stored" (those or an error),
  /// "measure" (never the stored ones).
  std::string StatsMode = "auto";
  /// The patch record's line on the statistics used.
  std::string StatsRecord;
  /// The guard prompts whose keys the update keeps: every relation's
  /// canonical prompt with every known entity (the labels' probed
  /// entities, else the vocabulary's whole words), followed by the model's
  /// own greedy answer (measured once, on the input's weights).
  std::vector<std::pair<std::string, std::vector<std::string>>> Relations;
  std::vector<std::string> Known;
  /// Per relation, the entities the labels record facts of with it
  /// (`memit-guard-entities`): `all` guards every known entity with every
  /// relation; `probed` a relation found here with these alone;
  /// `probed-repair` every one, but memit-repair writes back the answers
  /// of these alone.
  llvm::StringMap<std::vector<std::string>> ProbedEntities;
  enum class GuardPairs { All, Probed, ProbedRepair };
  GuardPairs Pairs = GuardPairs::All;
  struct Guard {
    std::string Entity, Relation;
    edit::PreservedText Text;
    /// A pair the labels record (or any, where they record none for the
    /// relation).
    bool Probed = true;
    /// The prompt alone, and the answer up to punctuation as its target
    /// (`memit-repair` writes it back where an edit lost it).
    edit::Fact Answer;
  };
  std::optional<std::vector<Guard>> Guards;
  /// `memit-guards=all`: the guards ask every prompt of a relation, not
  /// only its canonical one.
  bool GuardEveryPrompt = false;
  /// `memit-guard-positions=all`: every position of a guard text is held,
  /// not only the prompt's last one and its answer's.
  bool GuardEveryPosition = false;
  /// The facts earlier MODE memit statements of this run wrote, and
  /// whether later statements hold them (`memit-hold`): their units join
  /// each later update, held where they are (`units`), or their texts join
  /// the guards (`guards`: their keys held in the solve's λ C + μ Σ k kᵀ,
  /// their whole targets written back by memit-repair when lost).
  std::vector<edit::Fact> Written;
  enum class Hold { None, Units, Guards };
  Hold HoldWritten = Hold::Units;
  /// The (entity, relation) pairs every statement of the run so far edits,
  /// whatever its mode: `memit-repair` never writes back the answer the
  /// input model gave to one of them (a slot-mode UPDATE between two memit
  /// statements is not undone).
  std::vector<std::pair<std::string, std::string>> Edited;
  /// `memit-widen`: features appended to each edit layer per fact of each
  /// statement, before its update (gate and up rows pseudo-random, down zero: a
  /// no-op until the update writes their down rows), so the update has more
  /// keys than the layer's width.
  unsigned Widen = 0;
  /// What the input's patches record of the MODE memit statements of the
  /// runs that made it (each statement's `memit: written` record line:
  /// its rows and whether each was answered), in order. The first memit
  /// statement of this run replays them into Written and Edited, so that a
  /// chain of runs holds what one run of all the statements would.
  struct EarlierRow {
    std::string Entity, Relation, Target;
    bool Answered = false;
  };
  std::vector<std::vector<EarlierRow>> Earlier;
  /// How many of the input's patches lie below its earliest memit
  /// statement's (when Earlier has any): the guards' answers and the
  /// stored statistics are measured and checked on the input with those
  /// alone (the model the chain's first memit statement met).
  size_t BeforeEarlier = 0;
  bool EarlierReplayed = false;
};

/// Reads View's persisted patches into Ctx.Earlier and Ctx.BeforeEarlier.
/// A `memit: written` line that is not the JSON it should be is an error
/// naming the patch.
llvm::Error readEarlierMemit(const TensorView &View, MemitContext &Ctx);

/// True when Op is an INSERT with MODE memit.
bool isMemit(mlir::Operation *Op);

/// Plans Facts (Op's rows) with MEMIT against Ed's view, replaces Op with
/// the update ops and pushes them on Ed's view. Errors are emitted on Op.
mlir::LogicalResult lowerMemit(mlir::Operation *Op,
                               llvm::ArrayRef<edit::Fact> Facts,
                               edit::Editor &Ed, const Tokenizer &Tok,
                               MemitContext &Ctx, llvm::raw_ostream *Verbose);

} // namespace vindex

#endif
