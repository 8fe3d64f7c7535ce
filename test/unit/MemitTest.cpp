//===- MemitTest.cpp - MODE memit's closed form ---------------------------===//
//
// solveUpdate against updates worked out by hand.
//
//===----------------------------------------------------------------------===//
#include "vindex/Edit/Memit.h"

#include "gtest/gtest.h"

using namespace vindex;

namespace {

// F = 2, D = 1, one key k = (1, 1), C = diag(1, 2), λ = 1, residual 3:
// A = λ C + k kᵀ = [[2, 1], [1, 3]], A⁻¹ = [[3, -1], [-1, 2]] / 5,
// A⁻¹ k = (2, 1) / 5, Δ = 3 (A⁻¹ k)ᵀ = (1.2, 0.6); Δ k = 1.8 = 3 * 3/5.
TEST(MemitTest, ClosedFormOneKey) {
  std::vector<double> C = {1, 0, 0, 2}, K = {1, 1}, R = {3};
  llvm::Expected<std::vector<double>> D =
      edit::solveUpdate(C, 1.0, K, R, 2, 1);
  ASSERT_TRUE(bool(D)) << llvm::toString(D.takeError());
  ASSERT_EQ(D->size(), 2u);
  EXPECT_NEAR((*D)[0], 1.2, 1e-9);
  EXPECT_NEAR((*D)[1], 0.6, 1e-9);
}

// F = 2, D = 2, keys e0 and e1, C = I, λ = 1: A = 2 I, Δ = R Kᵀ / 2; in
// the feature-major layout row f is residual f halved.
TEST(MemitTest, ClosedFormTwoKeysFeatureMajor) {
  std::vector<double> C = {1, 0, 0, 1}, K = {1, 0, 0, 1}, R = {2, 0, 0, 4};
  llvm::Expected<std::vector<double>> D =
      edit::solveUpdate(C, 1.0, K, R, 2, 2);
  ASSERT_TRUE(bool(D)) << llvm::toString(D.takeError());
  std::vector<double> Want = {1, 0, 0, 2};
  for (size_t I = 0; I < 4; ++I)
    EXPECT_NEAR((*D)[I], Want[I], 1e-9) << I;
}

TEST(MemitTest, ClosedFormShapesChecked) {
  std::vector<double> C = {1, 0, 0, 1}, K = {1, 0, 0}, R = {1};
  llvm::Expected<std::vector<double>> D =
      edit::solveUpdate(C, 1.0, K, R, 2, 1);
  EXPECT_FALSE(bool(D));
  llvm::consumeError(D.takeError());
}

// C = [[2, 1], [1, 2]]: eigenvalues 3 along (1, 1)/√2 and 1 along
// (1, -1)/√2. Below half the largest: the second, P = [[1, -1], [-1, 1]]/2.
TEST(MemitTest, NullSpaceProjector) {
  std::vector<double> C = {2, 1, 1, 2};
  size_t Rank = 0;
  std::vector<double> P = edit::nullSpaceProjector(C, 2, 0.5, Rank);
  EXPECT_EQ(Rank, 1u);
  std::vector<double> Want = {0.5, -0.5, -0.5, 0.5};
  for (size_t I = 0; I < 4; ++I)
    EXPECT_NEAR(P[I], Want[I], 1e-12) << I;
  // Nothing below a hundredth of the largest.
  P = edit::nullSpaceProjector(C, 2, 0.01, Rank);
  EXPECT_EQ(Rank, 0u);
}

// AlphaEdit's system by hand: P = diag(0, 1) (e0 preserved), one key
// k = (1, 1) with residual 2, α = 1: P k kᵀ = [[0, 0], [1, 1]],
// A = P k kᵀ + I = [[1, 0], [1, 2]], B = P k 2 = (0, 2): x = (0, 1).
// The preserved key e0 gets Δ e0 = 0.
TEST(MemitTest, NullSpaceUpdateByHand) {
  std::vector<double> P = {0, 0, 0, 1}, K = {1, 1}, R = {2};
  llvm::Expected<std::vector<double>> D =
      edit::solveNullSpaceUpdate(P, {}, 1.0, K, R, 2, 1);
  ASSERT_TRUE(bool(D)) << llvm::toString(D.takeError());
  EXPECT_NEAR((*D)[0], 0.0, 1e-12);
  EXPECT_NEAR((*D)[1], 1.0, 1e-12);
  // An earlier edit's key e1 held in place (E = 10 e1 e1ᵀ): A = [[1, 0],
  // [1, 12]], x1 = (2 - 0) / 12.
  std::vector<double> E = {0, 0, 0, 10};
  D = edit::solveNullSpaceUpdate(P, E, 1.0, K, R, 2, 1);
  ASSERT_TRUE(bool(D)) << llvm::toString(D.takeError());
  EXPECT_NEAR((*D)[0], 0.0, 1e-12);
  EXPECT_NEAR((*D)[1], 2.0 / 12.0, 1e-12);
}

} // namespace
