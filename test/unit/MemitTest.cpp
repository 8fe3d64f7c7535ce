//===- MemitTest.cpp - MODE memit's closed form ---------------------------===//
//
// solveUpdate against updates worked out by hand, and against the textbook
// (unblocked) Cholesky bit for bit.
//
//===----------------------------------------------------------------------===//
#include "vindex/Edit/Memit.h"
#include "vindex/Model/Kernels.h"

#include "llvm/Support/ThreadPool.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

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

/// The update with the textbook Cholesky (row by row, each sum subtracted
/// in order) written out here: solveUpdate blocks it, and must give these
/// bits whatever the blocking and the machine.
static std::vector<double> unblockedUpdate(const std::vector<double> &C,
                                           double Lambda,
                                           const std::vector<double> &K,
                                           const std::vector<double> &R,
                                           size_t F, size_t D) {
  size_t N = K.size() / F;
  std::vector<double> A(F * F);
  for (size_t I = 0; I < F * F; ++I)
    A[I] = Lambda * C[I];
  for (size_t J = 0; J < N; ++J)
    for (size_t I = 0; I < F; ++I)
      for (size_t P = 0; P < F; ++P)
        A[I * F + P] += K[J * F + I] * K[J * F + P];
  double Trace = 0;
  for (size_t I = 0; I < F; ++I)
    Trace += A[I * F + I];
  double Ridge = 1e-10 * Trace / double(F) + 1e-300;
  for (size_t I = 0; I < F; ++I)
    A[I * F + I] += Ridge;
  for (size_t J = 0; J < F; ++J) {
    double S = A[J * F + J];
    for (size_t P = 0; P < J; ++P)
      S -= A[J * F + P] * A[J * F + P];
    double Ljj = std::sqrt(S);
    A[J * F + J] = Ljj;
    for (size_t I = J + 1; I < F; ++I) {
      double T = A[I * F + J];
      for (size_t P = 0; P < J; ++P)
        T -= A[I * F + P] * A[J * F + P];
      A[I * F + J] = T / Ljj;
    }
  }
  // B = Kᵀ R, each element's products added in key order; then A⁻¹ B
  // column by column (forward with L, back with Lᵀ).
  std::vector<double> Delta(F * D, 0.0);
  for (size_t J = 0; J < N; ++J)
    for (size_t Fi = 0; Fi < F; ++Fi)
      for (size_t I = 0; I < D; ++I)
        Delta[Fi * D + I] += K[J * F + Fi] * R[J * D + I];
  for (size_t Col = 0; Col < D; ++Col) {
    for (size_t I = 0; I < F; ++I) {
      double T = Delta[I * D + Col];
      for (size_t P = 0; P < I; ++P)
        T -= A[I * F + P] * Delta[P * D + Col];
      Delta[I * D + Col] = T / A[I * F + I];
    }
    for (size_t I = F; I-- > 0;) {
      double T = Delta[I * D + Col];
      for (size_t P = I + 1; P < F; ++P)
        T -= A[P * F + I] * Delta[P * D + Col];
      Delta[I * D + Col] = T / A[I * F + I];
    }
  }
  return Delta;
}

// Sizes below, at and across the blocks (64 columns, 8 x 16 tiles, panels
// of 256, bands of 64 rows, blocks of 256 keys for Kᵀ R and of 512 for
// K Kᵀ, 32 columns a substitution), including ragged ones, on one thread and on
// three (shares of rows from F = 1024 on, for the panels and for the rows
// below each block; bands of rows and chunks of columns), on every exact
// kernel path (avx2: the scalar tiles).
TEST(MemitTest, BlockedCholeskyGivesTheUnblockedBits) {
  std::mt19937 Rng(5);
  std::normal_distribution<double> G;
  // A factor buffer kept from solve to solve (what the planner passes for
  // the layers above the lowest): what it held before is not read.
  std::vector<double> Work;
  for (size_t F : {1, 7, 64, 100, 333, 600, 1089})
    for (size_t N : {3, 41, 300, 700}) {
      // D of one substitution chunk and of three, the last ragged.
      size_t D = N == 3 ? 21 : 70, Rank = 40;
      std::vector<double> B(F * Rank);
      for (double &X : B)
        X = G(Rng);
      std::vector<double> C(F * F);
      for (size_t I = 0; I < F; ++I)
        for (size_t J = 0; J < F; ++J) {
          double S = 0;
          for (size_t Q = 0; Q < Rank; ++Q)
            S += B[I * Rank + Q] * B[J * Rank + Q];
          C[I * F + J] = S / Rank + (I == J);
        }
      std::vector<double> K(N * F), R(N * D);
      // Keys of f32 values (as the engine gives them) for two of the key
      // counts: K Kᵀ then runs its fused tiles, which must give the same
      // bits since every product is exact.
      bool Floats = N == 41 || N == 700;
      for (double &X : K)
        X = Floats ? double(float(G(Rng))) : G(Rng);
      for (double &X : R)
        X = G(Rng);
      std::vector<double> Want = unblockedUpdate(C, 10.0, K, R, F, D);
      for (KernelPath P : supportedKernelPaths()) {
        if (!kernelPathExact(P))
          continue;
        ASSERT_TRUE(setKernelPath(P));
        for (unsigned Jobs : {1u, 3u}) {
          llvm::Expected<std::vector<double>> Got = edit::solveUpdate(
              C, 10.0, K, R, F, D, Jobs, nullptr, Jobs == 3 ? &Work : nullptr);
          ASSERT_TRUE(bool(Got)) << llvm::toString(Got.takeError());
          ASSERT_EQ(Got->size(), Want.size());
          EXPECT_EQ(0, std::memcmp(Got->data(), Want.data(),
                                   Want.size() * sizeof(double)))
              << "F = " << F << ", N = " << N << ", jobs " << Jobs << ", "
              << kernelPathName(P);
        }
      }
      setKernelPath(defaultKernelPath());
    }
}

// A kept factor: reused (its bits are the result's) while C, λ and the
// keys are the ones it was made of, made again when any of them changes.
TEST(MemitTest, KeptFactorIsReusedForTheSameKeysOnly) {
  std::mt19937 Rng(7);
  std::normal_distribution<double> G;
  size_t F = 100, N = 41, D = 21;
  std::vector<double> C(F * F, 0.0), K(N * F), R(N * D), R2(N * D);
  for (size_t I = 0; I < F; ++I)
    C[I * F + I] = 1.0 + 0.01 * double(I);
  for (std::vector<double> *V : {&K, &R, &R2})
    for (double &X : *V)
      X = G(Rng);
  auto Same = [](const std::vector<double> &A, const std::vector<double> &B) {
    return A.size() == B.size() &&
           !std::memcmp(A.data(), B.data(), A.size() * sizeof(double));
  };
  edit::UpdateFactor Keep;
  llvm::Expected<std::vector<double>> First =
      edit::solveUpdate(C, 10.0, K, R, F, D, 1, &Keep);
  ASSERT_TRUE(bool(First)) << llvm::toString(First.takeError());
  EXPECT_TRUE(Same(*First, unblockedUpdate(C, 10.0, K, R, F, D)));
  ASSERT_EQ(Keep.A.size(), F * F);
  // Other residuals, the same keys: the kept factor's bits are the result's.
  llvm::Expected<std::vector<double>> Again =
      edit::solveUpdate(C, 10.0, K, R2, F, D, 1, &Keep);
  ASSERT_TRUE(bool(Again));
  EXPECT_TRUE(Same(*Again, unblockedUpdate(C, 10.0, K, R2, F, D)));
  // A factor spoiled on purpose shows that it was read...
  Keep.A[0] *= 2.0;
  llvm::Expected<std::vector<double>> Spoiled =
      edit::solveUpdate(C, 10.0, K, R2, F, D, 1, &Keep);
  ASSERT_TRUE(bool(Spoiled));
  EXPECT_FALSE(Same(*Spoiled, *Again));
  // ...and that another key, another C or another λ is not solved with it.
  std::vector<double> K2 = K, C2 = C;
  K2[5 * F + 3] += 1.0;
  C2[7 * F + 7] += 1.0;
  for (auto [Cx, Kx, Lambda] :
       {std::tuple(&C, &K2, 10.0), std::tuple(&C2, &K, 10.0),
        std::tuple(&C, &K, 3.0)}) {
    Keep.A[0] *= 2.0;
    llvm::Expected<std::vector<double>> Other =
        edit::solveUpdate(*Cx, Lambda, *Kx, R2, F, D, 1, &Keep);
    ASSERT_TRUE(bool(Other));
    EXPECT_TRUE(Same(*Other, unblockedUpdate(*Cx, Lambda, *Kx, R2, F, D)));
  }
}

// The key moments, tile by tile in registers, against one position at a
// time in order (the definition), bit for bit: sizes with ragged rows and
// columns, keys with zeros, C not empty at the start, every exact kernel
// path (avx2: the 4 x 8 tiles; avx512: 8 x 16), on one thread and on
// three (bands of rows from F = 256 on).
TEST(MemitTest, KeyMomentsAreThePositionOrderSums) {
  std::mt19937 Rng(11);
  std::normal_distribution<float> G;
  llvm::DefaultThreadPool Pool(llvm::hardware_concurrency(3));
  // F = 300 and 4,000 positions: two blocks of positions (3,495 and 505).
  std::vector<std::pair<size_t, size_t>> Sizes = {{300, 4000}};
  for (size_t F : {1, 5, 16, 17, 33, 100, 130, 300})
    for (size_t Positions : {1, 7, 300})
      Sizes.push_back({F, Positions});
  for (auto [F, Positions] : Sizes) {
    std::vector<float> Keys(Positions * F);
    for (float &X : Keys)
      X = Rng() % 5 == 0 ? 0.0f : G(Rng) * 3.0f;
    std::vector<double> Start(F * F);
    for (double &X : Start)
      X = double(G(Rng));
    std::vector<double> Want = Start;
    for (size_t P = 0; P < Positions; ++P)
      for (size_t I = 0; I < F; ++I)
        for (size_t J = I; J < F; ++J)
          Want[I * F + J] += double(Keys[P * F + I]) * double(Keys[P * F + J]);
    for (KernelPath Path : supportedKernelPaths()) {
      if (!kernelPathExact(Path))
        continue;
      ASSERT_TRUE(setKernelPath(Path));
      for (llvm::ThreadPoolInterface *P :
           {(llvm::ThreadPoolInterface *)nullptr,
            (llvm::ThreadPoolInterface *)&Pool}) {
        std::vector<double> Got = Start;
        edit::accumulateKeyMoments(Keys, F, Got, P);
        for (size_t I = 0; I < F; ++I)
          for (size_t J = I; J < F; ++J)
            ASSERT_EQ(0, std::memcmp(&Got[I * F + J], &Want[I * F + J],
                                     sizeof(double)))
                << "F = " << F << ", " << Positions << " positions, (" << I
                << ", " << J << "), " << kernelPathName(Path)
                << (P ? ", 3 threads" : "");
      }
    }
    setKernelPath(defaultKernelPath());
  }
}

// Where a guard's answer ends (docs/lql.md, "MODE memit", item 11): the
// punctuation that ends a phrase, not the one inside a name, and the
// period that closes a dotted abbreviation is the answer's (the trained
// target "Washington D.C." lost its period unasked before).
TEST(MemitTest, AnswerEnd) {
  // Text, then its answer. A capitalised word of two letters before a
  // period ends the phrase when no capitalised word follows; so does a
  // lone capital.
  const std::pair<llvm::StringRef, llvm::StringRef> Cases[] = {
      {" Paris. The capital", " Paris"},
      {" Swazi lilangeni, and", " Swazi lilangeni"},
      {" N'Djamena.", " N'Djamena"},
      {" Port-au-Prince\nThe", " Port-au-Prince"},
      {" St. George's.", " St. George's"},
      {" Washington D.C. The", " Washington D.C."},
      {" Washington D.C.", " Washington D.C."},
      {" Washington D.C neighbour", " Washington D.C neighbour"},
      {" the U.S.A. and", " the U.S.A."},
      {" Ur. it", " Ur"},
      {" A.", " A"},
      {" Paris", " Paris"}};
  for (auto [Text, Answer] : Cases)
    EXPECT_EQ(Text.take_front(edit::answerEnd(Text)), Answer) << Text.str();
}
