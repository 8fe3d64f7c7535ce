//===- Solve.h - MODE memit's closed-form updates ---------------*- C++ -*-===//
//
// The least-squares updates of a layer's down projection that MODE memit
// solves at every edit layer of every round (docs/lql.md, "MODE memit",
// items 4 and 8): MEMIT's Δ = R Kᵀ (λ C + K Kᵀ)⁻¹ by Cholesky, and
// AlphaEdit's null-space form. Double precision, each sum in a fixed
// order: the same inputs give the same bits whatever the threads, the
// blocking or the kernel path.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_EDIT_SOLVE_H
#define VINDEX_EDIT_SOLVE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/xxhash.h"

#include <cstddef>
#include <vector>

namespace vindex {
namespace edit {

/// λ C + K Kᵀ as a solveUpdate factored it, kept for a later solve: one
/// whose C, λ and keys hash the same (xxh3, 128 bits) reuses the factor and
/// solves only for its residuals. MODE memit's lowest edit layer reads its
/// keys before any update, so they are the same from round to round.
struct UpdateFactor {
  llvm::XXH128_hash_t Inputs{};
  std::vector<double> A; // L below the diagonal, Lᵀ above it
};

/// The closed form: Δ = R Kᵀ (λ C + K Kᵀ)⁻¹, in the down projection's
/// stored (feature-major) layout: [F * D], row f the change of feature f's
/// down vector. C is [F * F], K [N * F] (a key per row), R [N * D] (a
/// residual per row). Solved by Cholesky in double, on Jobs threads (the
/// bits do not depend on it). With Keep, the factor is taken from it when
/// its inputs are these, and left in it otherwise (the same bits either
/// way). Without Keep, the factor is made in Work when given (its buffer
/// reused from solve to solve).
llvm::Expected<std::vector<double>>
solveUpdate(llvm::ArrayRef<double> C, double Lambda, llvm::ArrayRef<double> K,
            llvm::ArrayRef<double> R, size_t F, size_t D, unsigned Jobs = 1,
            UpdateFactor *Keep = nullptr, std::vector<double> *Work = nullptr);

/// AlphaEdit's update (feature-major [F * D], as solveUpdate): P projects
/// onto the null space ([F * F]), E = Σ k_e k_eᵀ of earlier edits' keys
/// (empty: none), Δᵀ = (P (K Kᵀ + E) + α I)⁻¹ P K Rᵀ (LU, double).
llvm::Expected<std::vector<double>>
solveNullSpaceUpdate(llvm::ArrayRef<double> P, llvm::ArrayRef<double> E,
                     double Alpha, llvm::ArrayRef<double> K,
                     llvm::ArrayRef<double> R, size_t F, size_t D);

/// The projector onto the eigenvectors of the symmetric C ([F * F]) whose
/// eigenvalues are at most Threshold times the largest (cyclic Jacobi,
/// double, a fixed order); Rank gets their number.
std::vector<double> nullSpaceProjector(llvm::ArrayRef<double> C, size_t F,
                                       double Threshold, size_t &Rank);

} // namespace edit
} // namespace vindex

#endif // VINDEX_EDIT_SOLVE_H
