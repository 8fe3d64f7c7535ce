//===- KernelsTest.cpp - Every kernel path against the AVX2 one ----------===//
//
// Each kernel of Kernels.h on random f32 and bf16 operands of awkward
// shapes (vector tails, odd row counts, token counts on both sides of the
// blocked paths, sub-ranges as threads split them), run on every path this
// CPU supports: the exact paths must give AVX2's bits, the inexact one
// (avx512bf16) AVX2's values within bf16 rounding of the activations. A
// path the CPU lacks is skipped; the engine-level references per path are
// in EngineTest (EveryKernelPathMatchesReferences).
//
//===----------------------------------------------------------------------===//
#include "vindex/Model/Kernels.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <algorithm>
#include <functional>
#include <numeric>
#include <random>

using namespace vindex;

namespace {

struct Operands {
  std::vector<float> F32;
  std::vector<uint16_t> BF16;
};

Operands randomMatrix(size_t N, std::mt19937 &Rng) {
  std::normal_distribution<float> D(0.0f, 1.0f);
  Operands O;
  for (size_t I = 0; I < N; ++I) {
    float F = D(Rng);
    uint32_t Bits;
    std::memcpy(&Bits, &F, 4);
    O.BF16.push_back(uint16_t(Bits >> 16));
    O.F32.push_back(F);
  }
  return O;
}

std::vector<float> randomVector(size_t N, std::mt19937 &Rng) {
  return randomMatrix(N, Rng).F32;
}

/// W's values as a [Rows, Cols] matrix of the given type, in place.
WeightMatrix weightsOf(const Operands &W, bool BF16, size_t Rows, size_t Cols) {
  WeightMatrix M;
  M.Data = BF16 ? static_cast<const void *>(W.BF16.data()) : W.F32.data();
  M.Type = BF16 ? DType::BF16 : DType::F32;
  M.Rows = Rows;
  M.Cols = Cols;
  return M;
}

/// Runs Body on every supported path; returns each path's outputs.
std::vector<std::pair<KernelPath, std::vector<float>>>
onEveryPath(const std::function<std::vector<float>()> &Body) {
  KernelPath Saved = activeKernelPath();
  std::vector<std::pair<KernelPath, std::vector<float>>> Out;
  for (KernelPath P : supportedKernelPaths()) {
    EXPECT_TRUE(setKernelPath(P));
    Out.push_back({P, Body()});
  }
  setKernelPath(Saved);
  return Out;
}

/// The exact paths give AVX2's bits; so does every path when InexactTol is
/// negative (the kernel has no inexact variant), else the inexact path is
/// within InexactTol of AVX2.
void expectSameAsAVX2(const std::function<std::vector<float>()> &Body,
                      const std::string &What, double InexactTol = -1) {
  auto Runs = onEveryPath(Body);
  ASSERT_EQ(Runs.front().first, KernelPath::AVX2);
  const std::vector<float> &Base = Runs.front().second;
  for (auto &[P, Got] : Runs) {
    ASSERT_EQ(Got.size(), Base.size());
    for (size_t I = 0; I < Got.size(); ++I) {
      if (kernelPathExact(P) || InexactTol < 0) {
        ASSERT_EQ(std::memcmp(&Got[I], &Base[I], 4), 0)
            << What << " on " << kernelPathName(P) << ": element " << I
            << " is " << Got[I] << ", avx2 gives " << Base[I];
      } else {
        ASSERT_NEAR(Got[I], Base[I], InexactTol)
            << What << " on " << kernelPathName(P) << ": element " << I;
      }
    }
  }
}

TEST(Kernels, EveryPathIsListedAndSelectable) {
  std::vector<KernelPath> Paths = supportedKernelPaths();
  ASSERT_FALSE(Paths.empty());
  EXPECT_EQ(Paths.front(), KernelPath::AVX2);
  EXPECT_TRUE(kernelPathExact(defaultKernelPath()));
  for (KernelPath P :
       {KernelPath::AVX2, KernelPath::AVX512, KernelPath::AVX512BF16})
    EXPECT_EQ(parseKernelPath(kernelPathName(P)), P);
  EXPECT_FALSE(parseKernelPath("sse2"));
  KernelPath Saved = activeKernelPath();
  for (KernelPath P : Paths) {
    ASSERT_TRUE(setKernelPath(P));
    EXPECT_EQ(activeKernelPath(), P);
    // What writes results never runs an inexact path.
    EXPECT_TRUE(kernelPathExact(requireExactKernels()));
  }
  setKernelPath(Saved);
}

TEST(Kernels, MatmulNTOnEveryPath) {
  std::mt19937 Rng(7);
  for (size_t K : {1, 7, 8, 33, 57, 130, 2560})
    for (size_t N : {1, 9, 24, 37})
      for (size_t T : {1, 2, 3, 4, 5, 7, 13})
        for (bool BF16 : {false, true}) {
          Operands W = randomMatrix(N * K, Rng);
          std::vector<float> X = randomVector(T * K, Rng);
          WeightMatrix M = weightsOf(W, BF16, N, K);
          expectSameAsAVX2(
              [&] {
                std::vector<float> Y(T * N), Split(T * N);
                matmulNT(X.data(), T, K, M, 0, N, Y.data(), N);
                // As threads split the rows: the same values.
                matmulNT(X.data(), T, K, M, 0, N / 3, Split.data(), N);
                matmulNT(X.data(), T, K, M, N / 3, N, Split.data(), N);
                EXPECT_EQ(Y, Split);
                Y.push_back(dotRow(X.data(), M, N - 1));
                return Y;
              },
              "matmulNT K=" + std::to_string(K) + " N=" + std::to_string(N) +
                  " T=" + std::to_string(T) + (BF16 ? " bf16" : " f32"),
              // avx512bf16's vdpbf16ps kernel (bf16 weights, T < 4): each
              // activation as two bf16 numbers, 2^-16 relative, against
              // |x| |w| of about 0.64 per term.
              BF16 && T < 4 ? 1e-5 * K : -1);
        }
}

TEST(Kernels, GemmAndDownProjectionOnEveryPath) {
  std::mt19937 Rng(11);
  for (size_t R : {1, 8, 70, 300})
    for (size_t Cols : {5, 16, 100, 1100, 4500})
      for (size_t T : {1, 3, 4, 6, 11})
        for (bool BF16 : {false, true}) {
          Operands W = randomMatrix(R * Cols, Rng);
          std::vector<float> A = randomVector(T * R, Rng);
          WeightMatrix M = weightsOf(W, BF16, R, Cols);
          expectSameAsAVX2(
              [&] {
                std::vector<float> Y(T * Cols), Split(T * Cols);
                matmulNN(A.data(), T, R, M, 0, R, 0, Cols, Y.data(), Cols);
                size_t Mid = Cols / 2;
                matmulNN(A.data(), T, R, M, 0, R, 0, Mid, Split.data(), Cols);
                matmulNN(A.data(), T, R, M, 0, R, Mid, Cols, Split.data(),
                         Cols);
                EXPECT_EQ(Y, Split);
                // A sub-range of rows (and, for f32, the GEMM over them).
                std::vector<float> Part(T * Cols);
                matmulNN(A.data(), T, R, M, R / 4, R, 1, Cols, Part.data(),
                         Cols);
                Y.insert(Y.end(), Part.begin(), Part.end());
                if (!BF16) {
                  std::vector<float> G(T * Cols, 1.0f);
                  gemmKN(A.data(), T, R, W.F32.data(), R, Cols, 0, Cols,
                         G.data(), Cols, /*Accumulate=*/true);
                  Y.insert(Y.end(), G.begin(), G.end());
                }
                std::vector<float> Ax(Cols);
                axpyRow(A[0], M, R - 1, Ax.data());
                Y.insert(Y.end(), Ax.begin(), Ax.end());
                return Y;
              },
              "down R=" + std::to_string(R) + " C=" + std::to_string(Cols) +
                  " T=" + std::to_string(T) + (BF16 ? " bf16" : " f32"));
        }
}

TEST(Kernels, VectorKernelsOnEveryPath) {
  std::mt19937 Rng(3);
  for (size_t N : {1, 7, 8, 31, 256, 1003}) {
    std::vector<float> A = randomVector(N, Rng), B = randomVector(N, Rng);
    for (Activation Act :
         {Activation::SiLU, Activation::GeluTanh, Activation::Gelu})
      expectSameAsAVX2(
          [&] {
            std::vector<float> G = A;
            activateAndMultiply(Act, G.data(), B.data(), N);
            G.push_back(dotF32(A.data(), B.data(), N));
            axpyF32(0.5f, A.data(), G.data(), N);
            return G;
          },
          "vector kernels N=" + std::to_string(N));
  }
}

} // namespace

// The LM head's logits from stored rows (f32, bf16, f16) give the bits of
// the GEMM over a transposed f32 copy, on every path.
TEST(Kernels, RowPanelsMatchTheTransposedGEMM) {
  std::mt19937 Rng(13);
  for (size_t K : {1, 8, 33, 130})
    for (size_t N : {1, 16, 37, 70, 131})
      for (size_t T : {1, 3, 5})
        for (DType Type : {DType::F32, DType::BF16, DType::F16}) {
          Operands W = randomMatrix(N * K, Rng);
          std::vector<uint16_t> F16;
          for (float F : W.F32)
            F16.push_back(floatToF16(F));
          WeightMatrix M = weightsOf(W, Type == DType::BF16, N, K);
          if (Type == DType::F16) {
            M.Data = F16.data();
            M.Type = DType::F16;
          }
          std::vector<float> Transposed(K * N);
          for (size_t R = 0; R < N; ++R)
            for (size_t C = 0; C < K; ++C)
              Transposed[C * N + R] = M.at(R, C);
          std::vector<float> X = randomVector(T * K, Rng);
          expectSameAsAVX2(
              [&] {
                std::vector<float> Y(T * N), Panels(T * N);
                gemmKN(X.data(), T, K, Transposed.data(), K, N, 0, N, Y.data(),
                       N, /*Accumulate=*/false);
                matmulNTRowPanels(X.data(), T, K, M, 0, N / 2, Panels.data(),
                                  N);
                matmulNTRowPanels(X.data(), T, K, M, N / 2, N, Panels.data(),
                                  N);
                EXPECT_EQ(Y, Panels) << "K=" << K << " N=" << N << " T=" << T;
                if (Type == DType::F16) {
                  WeightMatrix Wide{Transposed.data(), DType::F32, 1, K};
                  std::vector<float> Row(K);
                  for (size_t C = 0; C < K; ++C)
                    Row[C] = M.at(N - 1, C);
                  Wide.Data = Row.data();
                  EXPECT_EQ(dotRow(X.data(), M, N - 1),
                            dotRow(X.data(), Wide, 0));
                }
                return Y;
              },
              "row panels K=" + std::to_string(K), -1);
        }
}

/// The reference of the prompt kernels: output (t, n) is the fma chain over
/// k = 0, 1, ... of X[t][k] * W(k, n), in order.
template <typename WeightAt>
static std::vector<float> inOrderChains(const std::vector<float> &X,
                                        size_t T, size_t K, size_t N,
                                        WeightAt W) {
  std::vector<float> Out(T * N);
  for (size_t T0 = 0; T0 < T; ++T0)
    for (size_t C = 0; C < N; ++C) {
      float Acc = 0;
      for (size_t I = 0; I < K; ++I)
        Acc = std::fma(X[T0 * K + I], W(I, C), Acc);
      Out[T0 * N + C] = Acc;
    }
  return Out;
}

// The prompt GEMM (four tokens or more: packed tokens, register tiles,
// bf16 panels transposed in registers) computes each element as the
// reference chain, fmaf over k in order from zero, on every path: shapes
// around the tile sizes (8 or 6 tokens, 48 or 16 columns) and the 16-row,
// 32-column transposes, split as threads split them. So do one to three
// tokens (generation; on bf16 rows the column chains), so that a prompt
// fed a token at a time gets the bits it gets fed at once.
TEST(Kernels, PromptGEMMIsTheReferenceChain) {
  std::mt19937 Rng(17);
  for (size_t K : {1, 31, 32, 70, 300})
    for (size_t N : {1, 15, 16, 47, 48, 50, 100, 113})
      for (size_t T : {1, 2, 3, 4, 5, 8, 9, 12, 13, 17})
        for (bool BF16 : {false, true}) {
          Operands W = randomMatrix(N * K, Rng);
          std::vector<float> X = randomVector(T * K, Rng);
          WeightMatrix M = weightsOf(W, BF16, N, K);
          std::vector<float> Want = inOrderChains(
              X, T, K, N, [&](size_t I, size_t R) { return M.at(R, I); });
          std::vector<float> Transposed(K * N);
          for (size_t R = 0; R < N; ++R)
            for (size_t C = 0; C < K; ++C)
              Transposed[C * N + R] = M.at(R, C);
          std::string What = "K=" + std::to_string(K) +
                             " N=" + std::to_string(N) +
                             " T=" + std::to_string(T) +
                             (BF16 ? " bf16" : " f32");
          for (KernelPath P : supportedKernelPaths()) {
            if (!kernelPathExact(P))
              continue;
            ASSERT_TRUE(setKernelPath(P));
            std::vector<float> Y(T * N), G(T * N);
            size_t Cut = N / 3 + 1;
            if (BF16) { // the mapped-bf16 projections
              matmulNT(X.data(), T, K, M, 0, Cut, Y.data(), N);
              matmulNT(X.data(), T, K, M, Cut, N, Y.data(), N);
              EXPECT_EQ(Y, Want) << What << " " << kernelPathName(P);
            }
            gemmKN(X.data(), T, K, Transposed.data(), K, N, 0, Cut, G.data(),
                   N, /*Accumulate=*/false);
            gemmKN(X.data(), T, K, Transposed.data(), K, N, Cut, N, G.data(),
                   N, /*Accumulate=*/false);
            EXPECT_EQ(G, Want) << What << " gemmKN " << kernelPathName(P);
            // The down projection over feature-major rows [K, N]: the same
            // chains with k the row.
            WeightMatrix Down = weightsOf(W, BF16, K, N);
            std::vector<float> DY(T * N), DownWant = inOrderChains(
                X, T, K, N, [&](size_t I, size_t C) { return Down.at(I, C); });
            matmulNN(X.data(), T, K, Down, 0, K, 0, Cut, DY.data(), N);
            matmulNN(X.data(), T, K, Down, 0, K, Cut, N, DY.data(), N);
            EXPECT_EQ(DY, DownWant) << What << " matmulNN " << kernelPathName(P);
          }
          setKernelPath(defaultKernelPath());
        }
}

// Attention's row kernels give the bits of one dotF32 / axpyF32 call per
// row, on every path.
TEST(Kernels, RowKernelsAreOneCallPerRow) {
  std::mt19937 Rng(19);
  for (size_t K : {1, 7, 8, 16, 32, 100, 128, 256, 300})
    for (size_t N : {1, 2, 7, 8, 9, 17, 40}) {
      size_t Stride = K + 5;
      std::vector<float> Rows = randomVector(N * Stride, Rng);
      std::vector<float> X = randomVector(K, Rng), A = randomVector(N, Rng);
      expectSameAsAVX2(
          [&] {
            std::vector<float> Want(N), Got(N);
            for (size_t J = 0; J < N; ++J)
              Want[J] = dotF32(X.data(), Rows.data() + J * Stride, K);
            dotRowsF32(X.data(), Rows.data(), Stride, N, K, Got.data());
            EXPECT_EQ(Got, Want) << "dotRowsF32 K=" << K << " N=" << N;
            std::vector<float> Y(K, 0.25f), Z(K, 0.25f);
            for (size_t J = 0; J < N; ++J)
              axpyF32(A[J], Rows.data() + J * Stride, Y.data(), K);
            axpyRowsF32(A.data(), Rows.data(), Stride, N, K, Z.data());
            EXPECT_EQ(Z, Y) << "axpyRowsF32 K=" << K << " N=" << N;
            Got.insert(Got.end(), Z.begin(), Z.end());
            return Got;
          },
          "row kernels K=" + std::to_string(K));
    }
}

// The walk's gathered rows: dotRowsGathered is dotRow per row, and
// axpyRowsGathered into a zeroed output is axpyRow per row in order, bit for
// bit, whatever the column share (threads split the columns), on f32 and
// bf16 rows, on every path.
TEST(Kernels, GatheredRowsAreOneCallPerRow) {
  std::mt19937 Rng(23);
  const size_t F = 300;
  for (size_t K : {5, 8, 32, 100, 640, 1030})
    for (size_t N : {1, 7, 8, 15, 16, 17, 33, 64, 150})
      for (bool BF16 : {false, true}) {
        Operands W = randomMatrix(F * K, Rng);
        WeightMatrix M = weightsOf(W, BF16, F, K);
        std::vector<uint32_t> Rows(F);
        std::iota(Rows.begin(), Rows.end(), 0);
        std::shuffle(Rows.begin(), Rows.end(), Rng);
        Rows.resize(N);
        std::sort(Rows.begin(), Rows.end());
        std::vector<float> X = randomVector(K, Rng), A = randomVector(N, Rng);
        std::string What = "gathered K=" + std::to_string(K) +
                           " N=" + std::to_string(N) +
                           (BF16 ? " bf16" : " f32");
        expectSameAsAVX2(
            [&] {
              std::vector<float> Want(N), Got(N);
              for (size_t J = 0; J < N; ++J)
                Want[J] = dotRow(X.data(), M, Rows[J]);
              dotRowsGathered(X.data(), M, Rows.data(), N, Got.data());
              EXPECT_EQ(Got, Want) << What;
              std::vector<float> Y(K, 0.0f), Z(K, 0.0f);
              for (size_t J = 0; J < N; ++J)
                axpyRow(A[J], M, Rows[J], Y.data());
              size_t Mid = std::min<size_t>(K, 32 * (K / 64) + 3);
              axpyRowsGathered(A.data(), M, Rows.data(), N, 0, Mid, Z.data());
              axpyRowsGathered(A.data(), M, Rows.data(), N, Mid, K, Z.data());
              EXPECT_EQ(Z, Y) << What;
              Got.insert(Got.end(), Z.begin(), Z.end());
              return Got;
            },
            What);
      }
}
