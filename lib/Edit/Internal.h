//===- Internal.h - Shared pieces of lib/Edit -------------------*- C++ -*-===//
#ifndef VINDEX_LIB_EDIT_INTERNAL_H
#define VINDEX_LIB_EDIT_INTERNAL_H

#include "vindex/Edit/Editor.h"
#include "vindex/Model/Engine.h"

#include <vector>

namespace vindex::edit {

/// A feature tried before it is installed: the forward pass adds it to its
/// layer's FFN output (before the post-FFN norm), as an installed slot
/// would. Vectors are already rounded to the FFN tensors' dtype.
struct TrialFeature {
  unsigned Layer = 0;
  std::vector<float> Gate, Up, Down;
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
std::vector<std::vector<std::vector<float>>>
capturePositionKeys(const Model &M, llvm::ArrayRef<int32_t> Ids,
                    llvm::ArrayRef<TrialFeature> Trials);

/// Rounds V to what a tensor of dtype T stores (round to nearest even).
void roundTo(DType T, std::vector<float> &V);

double dot(llvm::ArrayRef<float> A, llvm::ArrayRef<float> B);

/// Softmax probabilities of Logits (double).
std::vector<double> softmax(llvm::ArrayRef<float> Logits);

} // namespace vindex::edit

#endif
