//===- Internal.h - Shared pieces of lib/Edit -------------------*- C++ -*-===//
#ifndef VINDEX_LIB_EDIT_INTERNAL_H
#define VINDEX_LIB_EDIT_INTERNAL_H

#include "vindex/Edit/Editor.h"
#include "vindex/Model/Engine.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <algorithm>
#include <vector>

namespace vindex::edit {

/// Runs Task(0) ... Task(Count - 1) on a pool of Jobs threads made for the
/// call, or here when Jobs or Count is below 2 (each task's output its
/// own: the bits do not depend on the threads).
void runTasks(size_t Count, unsigned Jobs,
              llvm::function_ref<void(size_t)> Task);

/// A feature tried before it is installed: the forward pass adds it to its
/// layer's FFN output (before the post-FFN norm), as an installed slot
/// would. Vectors are already rounded to the FFN tensors' dtype.
struct TrialFeature {
  unsigned Layer = 0;
  std::vector<float> Gate, Up, Down;
  /// The gate's pre-activation at the key it was fitted to.
  double Fire = 0;
};

/// Forward options that add Trials to the FFNs and, when Inputs is given,
/// record the FFN input of every layer at the last position of the run
/// ((*Inputs)[L], hidden size each): the keys.
ForwardOptions trialOptions(const Model &M, llvm::ArrayRef<TrialFeature> Trials,
                            std::vector<std::vector<float>> *Inputs = nullptr);

/// The keys of every layer at the last position of Ids, with Trials.
std::vector<std::vector<float>> captureKeys(const Model &M,
                                            llvm::ArrayRef<int32_t> Ids,
                                            llvm::ArrayRef<TrialFeature> Trials);

/// Key statistics of one layer: the mean and the uncentred second moment
/// E[x x^T] of its FFN inputs over a sample, in double.
struct LayerStats {
  size_t D = 0;
  double Count = 0;
  std::vector<double> Mean;   ///< [D]
  std::vector<double> Second; ///< [D, D] row-major
  void add(const float *X);
  void finish();
};

/// Solves A x = B for a symmetric positive definite A (n x n, row-major,
/// Cholesky); false if A is not positive definite.
bool solveSPD(std::vector<double> A, std::vector<double> &B, size_t N);

/// Adds 1e-4 times A's mean diagonal to its diagonal (N x N): a ridge that
/// scales with A, so that a moment of fewer samples than dimensions still
/// solves.
void addTraceRidge(std::vector<double> &A, size_t N);

/// The separator of the slot method: g with g.Key ~ +1 and g.x ~ -1 for the
/// layer's ordinary inputs (Stats) and for Negatives (the nearest other
/// prompts' keys, weighted as much as all of Stats), ridge-regularised.
/// Siblings (the keys of the same fact's other positions: the hardest
/// inputs to stay quiet on) each weigh as much as the key.
std::vector<double> fitSeparator(const LayerStats &Stats,
                                 llvm::ArrayRef<float> Key,
                                 llvm::ArrayRef<std::vector<float>> Negatives,
                                 llvm::ArrayRef<std::vector<float>> Siblings = {});

/// The keys of every position of Ids: [position][layer][hidden].
/// Negatives of a gate fit, each with its own weight, reweighted by
/// fitGate (iteratively reweighted least squares toward a max-margin
/// separator: a negative the fit leaves above the margin weighs more in the
/// next solve). The first NBase entries are a precomputed base (the
/// sample's prompts at one layer: their unweighted sums BaseSecond, BaseSum
/// are computed once, each entry weighing BaseWeight), the rest extras.
struct NegativePool {
  const std::vector<double> *BaseSecond = nullptr, *BaseSum = nullptr;
  double BaseWeight = 0;
  size_t NBase = 0;
  std::vector<const float *> X;
  std::vector<double> W;
  /// Base entries left out of this fit (the fact's own prompts).
  std::vector<size_t> Excluded;
  void add(llvm::ArrayRef<float> V, double Weight) {
    X.push_back(V.data());
    W.push_back(Weight);
  }
};

/// What fitGate did: the rounds of reweighting and the negatives left
/// above the margin (normalised so that the first positive is 1).
struct GateFit {
  std::vector<double> G;
  unsigned Rounds = 0;
  size_t Violators = 0;
  double WorstNegative = -1;
};

/// The separator g of fitSeparator with several positives (the fact's key
/// under each of its prompts, mapped to +1, the first weighing most) and a
/// pool of individually weighted negatives (mapped to -1): up to Rounds
/// times, the negatives with g.x above -Margin (g.k_0 = 1) get Boost
/// times their weight and g is solved again. Deterministic: sums in the
/// pool's order.
GateFit fitGate(const LayerStats &Stats, llvm::ArrayRef<std::vector<float>> Positives,
                NegativePool Pool, llvm::ArrayRef<std::vector<float>> Siblings,
                unsigned Rounds = 6, double Margin = 0.3, double Boost = 4.0);

/// The up vector of the slot method: u with u.k ~ 1 on the fact's keys
/// (Positives: the canonical prompt's, weighing most, then the
/// paraphrases', as in fitGate) and u.x ~ 0 on the layer's ordinary
/// inputs, on Pool's negatives (their initial weights) and on Siblings
/// (ridge least squares; with one positive u = A^-1 k / k^T A^-1 k, the key
/// whitened against the inputs the feature must stay quiet on), scaled so
/// that u.k = 1 at the canonical key. With it the feature act(g.x) (u.x)
/// needs both the gate and up to answer: a second test of the key.
std::vector<float> fitQuietUp(const LayerStats &Stats,
                              llvm::ArrayRef<std::vector<float>> Positives,
                              const NegativePool &Pool,
                              llvm::ArrayRef<std::vector<float>> Siblings);

std::vector<std::vector<std::vector<float>>>
capturePositionKeys(const Model &M, llvm::ArrayRef<int32_t> Ids,
                    llvm::ArrayRef<TrialFeature> Trials);

/// Rounds V to what a tensor of dtype T stores (round to nearest even).
void roundTo(DType T, std::vector<float> &V);

double dot(llvm::ArrayRef<float> A, llvm::ArrayRef<float> B);

/// Softmax probabilities of Logits (double).
std::vector<double> softmax(llvm::ArrayRef<float> Logits);

/// Calls Body(I, J) for every I <= J < N (the diagonal too), in 64 x 64
/// tiles, so that a body touching both [I][J] and the mirrored [J][I] of an
/// N x N row-major matrix keeps both in cache (a column is N apart per
/// element). Each pair is visited once.
template <typename Fn> void forUpperInTiles(size_t N, Fn Body) {
  constexpr size_t Tile = 64;
  for (size_t I0 = 0; I0 < N; I0 += Tile)
    for (size_t J0 = I0; J0 < N; J0 += Tile)
      for (size_t I = I0; I < std::min(N, I0 + Tile); ++I)
        for (size_t J = std::max(J0, I); J < std::min(N, J0 + Tile); ++J)
          Body(I, J);
}

} // namespace vindex::edit

#endif
