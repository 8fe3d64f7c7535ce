//===- Backward.h - Gradients of a loss on the logits -----------*- C++ -*-===//
//
// The backward pass through the engine's model: the gradient of a loss on
// the output logits (teacher-forced negative log-likelihood of target pieces,
// plus KL terms against reference distributions) with respect to the
// residual stream. Editing methods that optimise a residual offset (MEMIT's
// target values) run on it.
//
// It recomputes the forward pass in double precision, keeping what the
// backward pass needs, one sequence at a time on one thread, with every sum
// in a fixed order: results are deterministic. It covers what the engine runs
// densely: RMSNorm (plain and Gemma's 1 + w, folded in at load), QK-norm,
// rotate-half RoPE, GQA, causal and sliding-window masks, the query scale,
// attention and final logit softcapping, Gemma's post-norms, gated FFNs
// (SiLU, tanh and exact GELU), the embedding scale, tied or separate heads,
// and the widths patches give a layer. The walk FFN and the forward hooks
// (ForwardOptions) are not part of it.
//
// Residual index R names the residual stream at the input of layer R:
// R = 0 is the scaled embedding, R = numLayers() the input of the final norm,
// and the output of layer L (after its FFN's residual add, where MEMIT adds
// its offset and ForwardOptions::AfterLayer(L) reads) is residual L + 1. It is
// ForwardOptions::CaptureResiduals' Residuals[R] and transformers'
// hidden_states[R] before the final norm.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_MODEL_BACKWARD_H
#define VINDEX_MODEL_BACKWARD_H

#include "vindex/Model/Kernels.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace vindex {

class Model;
struct ForwardOptions;

/// One token sequence, run from position 0, and the loss terms read from its
/// logits. The sequence's loss is the sum of its terms.
struct LossSequence {
  std::vector<int32_t> Tokens;
  /// -log p(Token | Tokens[0 ... Position]): the logits at Position.
  struct Target {
    size_t Position = 0;
    int32_t Token = 0;
  };
  std::vector<Target> Targets;
  /// Weight * KL(Reference || model) at Position, Reference being
  /// log-probabilities over the vocabulary (as logProbs() gives them for the
  /// unedited model).
  struct KLTerm {
    size_t Position = 0;
    std::vector<double> Reference;
    double Weight = 1.0;
  };
  std::vector<KLTerm> KL;
  /// Where a ResidualOffset is added in this sequence.
  std::vector<size_t> OffsetPositions;
};

/// Prompt followed by Target, with one NLL term per target piece (the piece
/// at Prompt.size() + J read from the logits at Prompt.size() + J - 1).
LossSequence teacherForced(llvm::ArrayRef<int32_t> Prompt,
                           llvm::ArrayRef<int32_t> Target);

/// A vector added to residual Residual at the sequence's OffsetPositions.
struct ResidualOffset {
  size_t Residual = 0;
  std::vector<double> Delta; ///< [hidden]; empty adds nothing.
};

struct BackwardOptions {
  /// Gradients are computed for residuals LowestResidual ... numLayers();
  /// the backward pass stops there.
  size_t LowestResidual = 0;
  ResidualOffset Offset;
};

struct BackwardResult {
  /// Loss = NLL + KL (KL weighted).
  double Loss = 0, NLL = 0, KL = 0;
  /// Gradients[R]: dLoss / d(residual R), [T, hidden]; empty below
  /// LowestResidual.
  std::vector<std::vector<double>> Gradients;
};

/// The loss of S and its gradient with respect to the residual stream.
llvm::Expected<BackwardResult> backward(const Model &M, const LossSequence &S,
                                        const BackwardOptions &Opts = {});

/// The loss of S alone (the forward half of backward()).
llvm::Expected<double> loss(const Model &M, const LossSequence &S,
                            const ResidualOffset &Offset = {});

/// Log-probabilities over the vocabulary at Position of Tokens (double
/// forward), with Offset added at OffsetPositions if given.
llvm::Expected<std::vector<double>>
logProbs(const Model &M, llvm::ArrayRef<int32_t> Tokens, size_t Position,
         const ResidualOffset &Offset = {},
         llvm::ArrayRef<size_t> OffsetPositions = {});

/// What an optimiser of a residual offset needs: the summed loss of the
/// sequences, each with Offset added at its OffsetPositions, and the
/// gradient with respect to Offset.Delta.
struct OffsetGradient {
  double Loss = 0;
  std::vector<double> Gradient; ///< [hidden]
};
llvm::Expected<OffsetGradient>
offsetGradient(const Model &M, llvm::ArrayRef<LossSequence> Sequences,
               const ResidualOffset &Offset);

/// offsetGradient() for an optimiser's many steps over the same sequences
/// and residual: the residual stream below the offset does not depend on
/// it, so it is computed once, at creation, and each evaluation runs the
/// layers from Residual up and back.
/// Weight matrices widened to double once, for the many passes of one
/// optimisation (the weights must not change while it lives). A budget
/// bounds it: a matrix past it is widened a few rows at a time on each use,
/// with the same values.
class WideWeights {
public:
  /// W's rows as doubles, row-major, or null when W does not fit.
  const double *of(const WeightMatrix &W);

private:
  static constexpr size_t Budget = size_t(512) << 20;
  size_t Used = 0;
  std::map<const void *, std::vector<double>> Cache;
};

struct PackedSequences;

/// Runs of whole sequences up to a residual, kept for
/// OffsetObjective::create: an optimiser's sequences are often prefixes of
/// one whole (a fact's context teacher-forced one more target piece at a
/// time), and a token's arithmetic does not depend on the tokens after it
/// (the tape's reductions run per token, attention up to the token's
/// position), so one run of the whole gives each prefix its bits. Valid
/// for one model's weights and one residual: clear() when they change.
/// Safe to share between threads.
class SequenceRuns {
public:
  SequenceRuns();
  ~SequenceRuns();
  void clear();
  struct Impl;
  std::unique_ptr<Impl> P;
};

class OffsetObjective {
public:
  /// With Runs, sequence I's unedited run is that of Wholes[I] (when given
  /// and not empty: Sequences[I]'s tokens must begin it), shared through
  /// Runs with the objectives created after it; the same bits as without.
  static llvm::Expected<OffsetObjective>
  create(const Model &M, std::vector<LossSequence> Sequences, size_t Residual,
         SequenceRuns *Runs = nullptr,
         llvm::ArrayRef<std::vector<int32_t>> Wholes = {});
  /// The summed loss and its gradient with Delta ([hidden]) added.
  llvm::Expected<OffsetGradient> evaluate(llvm::ArrayRef<double> Delta) const;
  const std::vector<LossSequence> &sequences() const { return Sequences; }

private:
  const Model *M = nullptr;
  size_t Residual = 0;
  std::vector<LossSequence> Sequences;
  /// The sequences run as one (each attending within itself), so that an
  /// evaluation reads every weight once, and their residual Residual.
  std::shared_ptr<const PackedSequences> Packed;
  /// Shared by copies: evaluate() is const but fills it.
  std::shared_ptr<WideWeights> Wide;
};

/// Makes the engine's forward add Delta to residual Residual (>= 1: the
/// output of layer Residual - 1) at the given absolute positions, through
/// Opts.AfterLayer (which must be unset): to check an offset with the f32
/// engine (greedy decoding, efficacy).
llvm::Error addResidualOffset(ForwardOptions &Opts, const Model &M,
                              size_t Residual, std::vector<size_t> Positions,
                              std::vector<float> Delta);

} // namespace vindex

#endif // VINDEX_MODEL_BACKWARD_H
