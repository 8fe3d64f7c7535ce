//===- Memit.h - INSERT ... MODE memit --------------------------*- C++ -*-===//
//
// MEMIT (Meng et al. 2023) on the engine: a closed-form least-squares
// update of the FFN down projections of a range of layers, for a batch of
// facts at once (docs/lql.md, "MODE memit").
//   1. Key statistics: per edit layer, the uncentred second moment
//      C = E[k kᵀ] of the FFN keys k = act(gate x) * (up x) (what the down
//      projection multiplies, width F) over every position of ordinary text
//      (keyStatistics), in double, in a fixed order.
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

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>
#include <vector>

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
};

/// The edit layers Opts asks for on a model of NumLayers layers.
std::vector<unsigned> memitLayers(const MemitOptions &Opts,
                                  size_t NumLayers);

/// E[k kᵀ] of each of Layers' FFN keys, [F * F] row-major, over every
/// position of Texts.
struct KeyStatistics {
  std::vector<unsigned> Layers;
  std::vector<std::vector<double>> Moment;
  uint64_t Positions = 0;
  /// Where the text came from (recorded with each patch).
  std::string Source;
};
llvm::Expected<KeyStatistics>
keyStatistics(const Model &M, llvm::ArrayRef<std::vector<int32_t>> Texts,
              llvm::ArrayRef<unsigned> Layers, std::string Source);

/// The model's own text: greedy continuations (MaxNew tokens) of the start
/// of text and of its Count most likely first tokens. What stands in for a
/// corpus when none is given.
std::vector<std::vector<int32_t>> greedyTexts(const Model &M,
                                              const Tokenizer &Tok,
                                              size_t Count, size_t MaxNew);

/// The closed form: Δ = R Kᵀ (λ C + K Kᵀ)⁻¹, in the down projection's
/// stored (feature-major) layout: [F * D], row f the change of feature f's
/// down vector. C is [F * F], K [N * F] (a key per row), R [N * D] (a
/// residual per row). Solved by Cholesky in double.
llvm::Expected<std::vector<double>>
solveUpdate(llvm::ArrayRef<double> C, double Lambda, llvm::ArrayRef<double> K,
            llvm::ArrayRef<double> R, size_t F, size_t D);

/// A layer's new down projection, all rows: [F * hidden] (lowers to
/// vindex.update_weights of rows 0 ... F of Tensor).
struct DownUpdate {
  unsigned Layer = 0;
  std::string Tensor;
  uint64_t Rows = 0;
  std::vector<float> Values;
};

struct MemitPlan {
  std::vector<DownUpdate> Updates;
  /// One line per fact: the optimiser's steps and losses, ‖δ‖, the share
  /// of the residual each layer reached.
  std::vector<std::string> Record;
};

/// Plans a batch of INSERTs against View.
llvm::Expected<MemitPlan> planMemit(const TensorView &View,
                                    const Tokenizer &Tok,
                                    llvm::ArrayRef<Fact> Facts,
                                    const KeyStatistics &Stats,
                                    const MemitOptions &Opts,
                                    llvm::raw_ostream *Verbose);

} // namespace edit
} // namespace vindex

#endif // VINDEX_EDIT_MEMIT_H
