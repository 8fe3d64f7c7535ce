//===- Memit.h - INSERT ... MODE memit --------------------------*- C++ -*-===//
//
// MEMIT (Meng et al. 2023) on the engine: a closed-form least-squares
// update of the FFN down projections of a range of layers, for a batch of
// facts at once (docs/lql.md, "MODE memit").
//   1. Key statistics: per edit layer, the uncentred second moment
//      C = E[k kᵀ] of the FFN keys k = act(gate x) * (up x) (what the down
//      projection multiplies, width F) over every position of ordinary text
//      (keyStatistics), in double, in a fixed order; or read from the
//      V-index where `larql-probe --key-stats` stored them
//      (passes/MemitEdits.cpp, include/vindex/Store/KeyStats.h).
//   2. Target values: per fact, the offset δ of residual Lmax + 1 (the
//      output of the last edit layer) at the subject's last token that makes
//      the model emit every target piece, teacher-forced, on the canonical
//      prompt and a few context prefixes, with a KL term holding
//      "{entity} is a"; Adam steps on Backward's OffsetObjective, ‖δ‖
//      bounded, early stop (optimiseOffset).
//   3. The update, layer by layer from the lowest: the residual still
//      missing at Lmax + 1, R = (z − h) / (layers left), and
//      Δ = R Kᵀ (λ C + K Kᵀ)⁻¹ added to the layer's down projection
//      (solveUpdate); the next layer's keys and residuals are measured
//      with it in place.
// Everything runs on one thread in double, in a fixed order: the same
// inputs give the same bytes whatever --jobs.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_EDIT_MEMIT_H
#define VINDEX_EDIT_MEMIT_H

#include "vindex/Edit/Editor.h"
#include "vindex/Edit/Solve.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llvm {
class ThreadPoolInterface;
}

namespace vindex {

class Model;
class Tokenizer;
class TensorView;

namespace edit {

struct MemitOptions {
  /// The edit layers, ascending; empty: numLayers/4 ... numLayers/2.
  std::vector<unsigned> Layers;
  /// λ: how much the layer's ordinary keys weigh against the new ones.
  double Lambda = 10.0;
  /// Adam on δ: at most Steps steps of LearningRate * ‖h‖ / sqrt(hidden)
  /// per coordinate; ‖δ‖ <= NormBound * ‖h‖ after each.
  unsigned Steps = 100;
  double LearningRate = 0.1;
  double NormBound = 4.0;
  /// Weight of KL(unedited || edited) on "{entity} is a".
  double KLWeight = 0.0625;
  /// Edit at the subject's last token (MEMIT), one edit per fact; false
  /// (measured better on the tiny fixtures, whose attention carries little
  /// from the subject): at the prompt's last position, one edit per
  /// target piece (the prompt and the earlier pieces, teacher-forced).
  bool AtSubject = false;
  /// A unit's keys: Mean, MEMIT's one key averaged over its contexts (the
  /// canonical prompt, the context prefixes, the relation's other
  /// prompts); Each, one key per context; Prompts, one per prompt of the
  /// relation (the canonical one averaged with its prefixes). A key other
  /// than the mean is asked for the offset at its own position.
  enum class KeyGroups { Mean, Each, Prompts };
  KeyGroups Keys = KeyGroups::Each;
  /// Weight of each preserved key (PreservedText) against a new one:
  /// the update is the least-squares solution that also keeps Δ k ≈ 0 on
  /// them, Δ = R Kᵀ (λ C + μ Σ k_p k_pᵀ + K Kᵀ)⁻¹. 0: none.
  double PreserveWeight = 1.0;
  /// Rounds: after an update, the units whose piece is not yet the greedy
  /// choice on the canonical prompt are optimised and solved again (all
  /// units' keys kept, the reached ones held where they are).
  unsigned Rounds = 8;
  /// A unit counts as answered in rounds but the last only when each of
  /// its pieces also has at least this probability (0: the greedy choice).
  double Margin = 0.0;
  /// In rounds but the last, a unit counts as answered only when every one
  /// of its contexts (prefixes, the relation's other prompts) gives its
  /// pieces with Margin, not the canonical prompt alone.
  bool ReachAll = false;
  /// Where the FFN output is normed (Gemma): every key (the corpus', the
  /// guards', the units') divided by the rms of the FFN output at its
  /// position, the normed output's change being Δk / rms there to first
  /// order; the solve then weighs what each position sees after the norm.
  bool NormKeys = false;
  /// AlphaEdit (Fang et al. 2025): the update is projected onto the null
  /// space of the preserved keys (the eigenvectors of C + μ Σ k_p k_pᵀ
  /// whose eigenvalues are below NullThreshold times the largest), and the
  /// keys earlier edits wrote (KeyStatistics::Edited) are held in place:
  /// Δᵀ = (P (K Kᵀ + K_e K_eᵀ) + α I)⁻¹ P K Rᵀ.
  bool AlphaEdit = false;
  double NullThreshold = 1e-2;
  double AlphaRidge = 1.0;
  /// memit-repair: a guard text whose answer (planMemit's Guarded)
  /// the model no longer gives, before the update, once its units are
  /// all answered, or after the last round, joins the update as a fact to
  /// write back (and more rounds run).
  bool Repair = false;
  /// memit-repair-rounds: rounds the repair may add after the last one
  /// when that round's update lost guard answers (the last update is
  /// otherwise never asked).
  unsigned RepairRounds = 8;
  /// memit-repair-grants: how many times the repair may add its rounds
  /// (each time the last round's update lost answers, until a check finds
  /// none).
  unsigned RepairGrants = 1;
  /// memit-repair-margin: a guard answer the model still gives but with a
  /// piece below this probability (teacher-forced on its prompt) is written
  /// back too, before an update takes it (0: only the answers lost).
  double RepairMargin = 0.0;
  /// Threads optimising the units' targets (each unit's optimisation is
  /// its own; a lift's effect on later units is kept as if one at a time).
  unsigned Jobs = 1;
};

/// A text whose keys the update keeps (a guard prompt followed by the
/// model's own answer): positions From ... Ids.size() - 1.
struct PreservedText {
  std::vector<int32_t> Ids;
  size_t From = 0;
};

/// The edit layers Opts asks for on a model of NumLayers layers.
std::vector<unsigned> memitLayers(const MemitOptions &Opts, size_t NumLayers);

/// E[k kᵀ] of each of Layers' FFN keys, [F * F] row-major, over every
/// position of Texts.
struct KeyStatistics {
  std::vector<unsigned> Layers;
  std::vector<std::vector<double>> Moment;
  uint64_t Positions = 0;
  /// Where the text came from (recorded with each patch).
  std::string Source;
  /// Σ k kᵀ of the keys earlier memit edits wrote, per layer ([F * F],
  /// empty until the first edit): AlphaEdit holds them in place.
  std::vector<std::vector<double>> Edited;
};
llvm::Expected<KeyStatistics>
keyStatistics(const Model &M, llvm::ArrayRef<std::vector<int32_t>> Texts,
              llvm::ArrayRef<unsigned> Layers, std::string Source,
              bool NormKeys = false, unsigned Threads = 1);

/// The same over texts given one at a time: NextText fills its argument
/// with the next text's ids and returns false when there is none. Only a
/// few hundred positions' keys are held at a time (a streaming pass over
/// a corpus). The moments are summed on Threads threads (the same bits
/// whatever the count); the forward passes run on one.
llvm::Expected<KeyStatistics>
keyStatistics(const Model &M,
              llvm::function_ref<bool(std::vector<int32_t> &)> NextText,
              llvm::ArrayRef<unsigned> Layers, std::string Source,
              bool NormKeys = false, unsigned Threads = 1);

/// A corpus' texts: its lines, trimmed, the empty ones skipped (each is
/// tokenized with the tokenizer's special tokens, Tokenizer::encode's
/// default). The one definition of `corpus=F` and `--key-stats F`.
void forEachCorpusLine(llvm::StringRef Text,
                       llvm::function_ref<void(llvm::StringRef)> Line);

/// What one batched run over a set of texts keeps for the next run over
/// the same texts at a layer as high or higher: the input of its layer,
/// every row, batch by batch. The next run starts there
/// (ForwardOptions::StartLayer); it is valid while no layer below has
/// changed (MEMIT's step 3 updates each layer right after reading it, from
/// the lowest).
struct ForwardResume {
  unsigned Layer = 0;
  std::vector<std::vector<float>> Inputs;
  /// Where the runs can start at layer Layer's down projection instead
  /// (MODE memit's probes, one per batch): that layer's residual after its
  /// attention and its keys, every row; empty otherwise.
  std::vector<std::vector<float>> AttentionOut, Keys;
};

/// C += Weight Σ k kᵀ over the keys of layer Layer at positions
/// From ... of each text (C is [F * F], row-major, symmetric). The texts
/// run in batches on Threads threads; C does not depend on the count.
/// With Resume, the runs start from its layer where it holds one at or
/// below Layer, and keep Layer's inputs in it.
void addKeyMoments(const Model &M, llvm::ArrayRef<PreservedText> Texts,
                   unsigned Layer, double Weight, std::vector<double> &C,
                   unsigned Threads = 1, bool NormKeys = false,
                   ForwardResume *Resume = nullptr);

/// The upper triangle of C ([F * F], row-major) += Σ k kᵀ over Keys
/// ([positions, F]), each element's products added in position order in
/// double: the same bits on every kernel path (the products of floats are
/// exact in double). A few elements just below the diagonal are added to
/// as well; the lower triangle is not part of the result. Bands of rows
/// run on Pool's threads when given (each element is one band's).
void accumulateKeyMoments(llvm::ArrayRef<float> Keys, size_t F,
                          llvm::MutableArrayRef<double> C,
                          llvm::ThreadPoolInterface *Pool = nullptr);

/// The softmax probability Logits give Piece.
double pieceProbability(llvm::ArrayRef<float> Logits, int32_t Piece);

/// Where a guard's answer at the start of Text ends: at the first
/// punctuation that ends a phrase (".", ",", a newline...), not at one
/// inside a name: an apostrophe or hyphen ("N'Djamena", "Port-au-Prince",
/// "I-Kiribati"), a period before a letter ("D.C"), or after a capitalised
/// abbreviation of one or two letters before a capitalised word ("St.
/// George's"). The period that closes a dotted abbreviation of capitals
/// is the answer's ("Washington D.C."). Words after a space go on (" Swazi
/// lilangeni", " El Salvador").
size_t answerEnd(llvm::StringRef Text);

/// MemitOptions::NormKeys: 1 / rms of a raw FFN output.
double outputScale(llvm::ArrayRef<double> FFNOut, double Eps);

/// The model's own text: greedy continuations (MaxNew tokens) of the start
/// of text and of its Count most likely first tokens. What stands in for a
/// corpus when none is given.
std::vector<std::vector<int32_t>>
greedyTexts(const Model &M, const Tokenizer &Tok, size_t Count, size_t MaxNew);

/// A layer's new down projection, all rows: [F * hidden] (lowers to
/// vindex.update_weights of rows 0 ... F of Tensor).
struct DownUpdate {
  unsigned Layer = 0;
  std::string Tensor;
  uint64_t Rows = 0;
  std::vector<float> Values;
};

/// Lifts a piece's output row (the slot method's lift, Editor's hook):
/// the row to write; Record gets what was done.
using RowLifter =
    llvm::function_ref<llvm::Expected<PlannedRow>(int32_t, std::string &)>;

struct MemitPlan {
  /// Output rows lifted for pieces no residual offset reached, first.
  std::vector<PlannedRow> Rows;
  std::vector<DownUpdate> Updates;
  /// One line per fact: the optimiser's steps and losses, ‖δ‖, the share
  /// of the residual each layer reached.
  std::vector<std::string> Record;
  /// Per fact of the batch (not the held ones): whether every unit of it
  /// was answered after the last round.
  std::vector<bool> Answered;
};

/// Plans a batch of INSERTs against View; Preserved are the texts whose
/// keys the update keeps. Held are facts earlier statements wrote: their
/// units join the update held where they are (their target the residual
/// they have now), and one the update loses is optimised again in the
/// next round, as the batch's own. Guarded, empty or one per Preserved
/// text: the guard's prompt and the answer (up to punctuation) the input
/// model gave (Opts.Repair writes back the ones lost). With AlphaEdit the
/// batch's keys join Stats.Edited.
llvm::Expected<MemitPlan>
planMemit(const TensorView &View, const Tokenizer &Tok,
          llvm::ArrayRef<Fact> Facts, KeyStatistics &Stats,
          llvm::ArrayRef<PreservedText> Preserved, const MemitOptions &Opts,
          llvm::raw_ostream *Verbose, RowLifter Lift = nullptr,
          llvm::ArrayRef<Fact> Held = {}, llvm::ArrayRef<Fact> Guarded = {});

/// `memit-widen`: Count features to append to each of Layers (slots
/// ffnWidth(L) onwards, in order), their gate and up rows pseudo-random
/// (uniform, from a splitmix64 stream seeded by layer and slot, scaled to
/// the layer's mean gate and up row norms), their down rows zero: exact
/// no-ops until an update writes their down rows. More features, more
/// keys: the least-squares update then has room beyond the layer's width.
llvm::Expected<std::vector<PlannedFeature>>
appendedFeatures(const TensorView &View, llvm::ArrayRef<unsigned> Layers,
                 size_t Count);

} // namespace edit
} // namespace vindex

#endif // VINDEX_EDIT_MEMIT_H
