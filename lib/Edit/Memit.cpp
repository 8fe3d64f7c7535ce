//===- Memit.cpp - INSERT ... MODE memit ----------------------------------===//
//
// See Memit.h for the method. The key statistics are KeyStats.cpp's.
//
//===----------------------------------------------------------------------===//
#include "vindex/Edit/Memit.h"
#include "Internal.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Backward.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/Kernels.h"
#include "vindex/Store/Patch.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/Progress.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/ThreadPool.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>

#include <immintrin.h>

using namespace llvm;

namespace vindex {
namespace edit {

std::vector<unsigned> memitLayers(const MemitOptions &Opts, size_t NumLayers) {
  if (!Opts.Layers.empty())
    return Opts.Layers;
  std::vector<unsigned> L;
  for (size_t I = NumLayers / 4; I <= NumLayers / 2 && I + 1 < NumLayers; ++I)
    L.push_back(unsigned(I));
  if (L.empty())
    L.push_back(0);
  return L;
}

namespace {

/// A[I][J] -= Σ_{P0 <= P < P1} A[I][P] A[J][P] for rows I in [I0, I1) and
/// columns J in [J0, J1), each element's products subtracted in P order,
/// one multiply then one subtraction each (this file is built with
/// -ffp-contract=off): the steps of the unblocked Cholesky, whatever the
/// blocking. Lt holds A[J][P0 + p] at Lt[p * Width + (J - J0)].
void subtractProductsScalar(double *A, size_t F, size_t I0, size_t I1,
                            size_t J0, size_t J1, size_t P0, size_t P1,
                            const double *Lt, size_t Width) {
  for (size_t I = I0; I < I1; ++I)
    for (size_t J = J0; J < J1; ++J) {
      double T = A[I * F + J];
      for (size_t P = P0; P < P1; ++P)
        T -= A[I * F + P] * Lt[(P - P0) * Width + (J - J0)];
      A[I * F + J] = T;
    }
}

#if defined(__x86_64__)
/// subtractProductsScalar for 8 rows x 16 columns, AVX-512: lane j of
/// Acc[i][h] is element (I0 + i, J0 + 8h + j), the same operations in the
/// same order.
__attribute__((target("avx512f"))) void
subtractProducts8x16(double *A, size_t F, size_t I0, size_t J0, size_t P0,
                     size_t P1, const double *Lt, size_t Width) {
  __m512d Acc[8][2];
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      Acc[I][H] = _mm512_loadu_pd(A + (I0 + I) * F + J0 + 8 * H);
  for (size_t P = P0; P < P1; ++P) {
    const double *Row = Lt + (P - P0) * Width;
    __m512d B0 = _mm512_loadu_pd(Row), B1 = _mm512_loadu_pd(Row + 8);
    for (unsigned I = 0; I < 8; ++I) {
      __m512d L = _mm512_set1_pd(A[(I0 + I) * F + P]);
      Acc[I][0] = _mm512_sub_pd(Acc[I][0], _mm512_mul_pd(L, B0));
      Acc[I][1] = _mm512_sub_pd(Acc[I][1], _mm512_mul_pd(L, B1));
    }
  }
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      _mm512_storeu_pd(A + (I0 + I) * F + J0 + 8 * H, Acc[I][H]);
}
#endif

/// The rows I0 ... I1 - 1 of a block's update from panel P0 ... P1 - 1,
/// in AVX-512 tiles where Wide.
void subtractPanel(double *A, size_t F, size_t I0, size_t I1, size_t J0,
                   size_t J1, size_t P0, size_t P1, const double *Lt,
                   bool Wide) {
  size_t Width = J1 - J0, I = I0;
#if defined(__x86_64__)
  if (Wide && Width % 16 == 0)
    for (; I + 8 <= I1; I += 8)
      for (size_t J = J0; J < J1; J += 16)
        subtractProducts8x16(A, F, I, J, P0, P1, Lt + (J - J0), Width);
#endif
  subtractProductsScalar(A, F, I, I1, J0, J1, P0, P1, Lt, Width);
}

/// A = L Lᵀ in place (L in the lower triangle; the upper is left
/// undefined), the element-by-element operations of the textbook
/// row-oriented Cholesky (L[I][J] = (A[I][J] - Σ_{P<J} L[I][P] L[J][P]) /
/// L[J][J], the sum subtracted in P order), blocked: the products of the
/// columns left of a block of columns are subtracted first, panel by
/// panel of P, 8 x 16 elements at a time where the CPU has AVX-512F,
/// then the block is factored. Each element sees the same operations in
/// the same order either way, so the bits do not depend on the blocking
/// or the machine; at F = 10240 (Gemma 3 4B's FFN) the unblocked loops
/// took about 5 minutes a layer.
Error choleskyInPlace(std::vector<double> &AV, size_t F, unsigned Jobs) {
  double *A = AV.data();
  // The AVX-512 kernel paths (VINDEX_KERNELS=avx2 forces the scalar form,
  // which gives the same bits: MemitTest).
  bool Wide = activeKernelPath() != KernelPath::AVX2;
  constexpr size_t B = 64, PB = 256;
  std::vector<double> Lt(PB * B);
  std::optional<DefaultThreadPool> Pool;
  if (Jobs > 1 && F >= 1024)
    Pool.emplace(hardware_concurrency(Jobs));
  for (size_t J0 = 0; J0 < F; J0 += B) {
    size_t J1 = std::min(F, J0 + B), Width = J1 - J0;
    // The columns left of the block: rows J0 ... F - 1, in shares of rows
    // (multiples of 8) on the pool's threads; each element is one share's.
    for (size_t P0 = 0; P0 < J0; P0 += PB) {
      size_t P1 = std::min(J0, P0 + PB);
      for (size_t P = P0; P < P1; ++P)
        for (size_t J = J0; J < J1; ++J)
          Lt[(P - P0) * Width + (J - J0)] = A[J * F + P];
      if (!Pool) {
        subtractPanel(A, F, J0, F, J0, J1, P0, P1, Lt.data(), Wide);
        continue;
      }
      size_t Rows = F - J0,
             Share = std::max<size_t>(8, (Rows / Jobs + 7) / 8 * 8);
      for (size_t I = J0; I < F; I += Share)
        Pool->async([=, &Lt] {
          subtractPanel(A, F, I, std::min(F, I + Share), J0, J1, P0, P1,
                        Lt.data(), Wide);
        });
      Pool->wait();
    }
    // The block itself, column by column, with the products of its own
    // columns left of each.
    for (size_t J = J0; J < J1; ++J) {
      double S = A[J * F + J];
      for (size_t P = J0; P < J; ++P)
        S -= A[J * F + P] * A[J * F + P];
      if (!(S > 0))
        return makeError("memit: the key statistics are not positive "
                         "definite (row {0})",
                         J);
      double Ljj = std::sqrt(S);
      A[J * F + J] = Ljj;
      for (size_t I = J + 1; I < F; ++I) {
        double T = A[I * F + J];
        for (size_t P = J0; P < J; ++P)
          T -= A[I * F + P] * A[J * F + P];
        A[I * F + J] = T / Ljj;
      }
    }
  }
  return Error::success();
}

/// Out[i][c] += Σ_{J < N} Left[J][i] Right[J][c] for i < Rows, c < Cols
/// (Out's rows OutStride apart, Left's and Right's rows LeftStride and
/// RightStride apart), each element's products added in J order, one
/// multiply then one addition each: the textbook loops' bits.
void addProductsScalar(double *Out, size_t OutStride, const double *Left,
                       size_t LeftStride, const double *Right,
                       size_t RightStride, size_t N, size_t Rows, size_t Cols) {
  for (size_t I = 0; I < Rows; ++I)
    for (size_t C = 0; C < Cols; ++C) {
      double T = Out[I * OutStride + C];
      for (size_t J = 0; J < N; ++J)
        T += Left[J * LeftStride + I] * Right[J * RightStride + C];
      Out[I * OutStride + C] = T;
    }
}

#if defined(__x86_64__)
/// addProductsScalar for 8 rows x 16 columns, AVX-512, held in registers
/// over every J: the same operations in the same order.
__attribute__((target("avx512f"))) void
addProducts8x16(double *Out, size_t OutStride, const double *Left,
                size_t LeftStride, const double *Right, size_t RightStride,
                size_t N) {
  __m512d Acc[8][2];
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      Acc[I][H] = _mm512_loadu_pd(Out + I * OutStride + 8 * H);
  for (size_t J = 0; J < N; ++J) {
    const double *Row = Right + J * RightStride;
    __m512d B0 = _mm512_loadu_pd(Row), B1 = _mm512_loadu_pd(Row + 8);
    for (unsigned I = 0; I < 8; ++I) {
      __m512d L = _mm512_set1_pd(Left[J * LeftStride + I]);
      Acc[I][0] = _mm512_add_pd(Acc[I][0], _mm512_mul_pd(L, B0));
      Acc[I][1] = _mm512_add_pd(Acc[I][1], _mm512_mul_pd(L, B1));
    }
  }
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      _mm512_storeu_pd(Out + I * OutStride + 8 * H, Acc[I][H]);
}
#endif

/// addProductsScalar over Rows x Cols, in AVX-512 tiles where Wide: each
/// 16 columns' tiles of Right in turn, the row tiles' Left read again for
/// each. Both are copied first into panels of their own, N x 16 and
/// N x 8 doubles side by side: in place a tile's N rows are F doubles
/// apart (22 KB at F = 2800), a page and a cache line each, and the tile
/// waited on them; packed, a tile reads 48 KB in order (the same
/// products in the same order: the bits do not change).
void addProductsTiled(double *Out, size_t OutStride, const double *Left,
                      size_t LeftStride, const double *Right,
                      size_t RightStride, size_t N, size_t Rows, size_t Cols,
                      bool Wide) {
  size_t TiledRows = 0;
#if defined(__x86_64__)
  if (Wide) {
    TiledRows = Rows / 8 * 8;
    size_t TiledCols = Cols / 16 * 16;
    std::vector<double> LeftPanels(TiledRows * N), RightPanel(N * 16);
    for (size_t I = 0; I < TiledRows; I += 8)
      for (size_t J = 0; J < N; ++J)
        std::copy_n(Left + J * LeftStride + I, 8, &LeftPanels[I * N + J * 8]);
    for (size_t C = 0; C < TiledCols; C += 16) {
      if (TiledRows)
        for (size_t J = 0; J < N; ++J)
          std::copy_n(Right + J * RightStride + C, 16, &RightPanel[J * 16]);
      for (size_t I = 0; I < TiledRows; I += 8)
        addProducts8x16(Out + I * OutStride + C, OutStride, &LeftPanels[I * N],
                        8, RightPanel.data(), 16, N);
    }
    if (TiledRows)
      addProductsScalar(Out + TiledCols, OutStride, Left, LeftStride,
                        Right + TiledCols, RightStride, N, TiledRows,
                        Cols - TiledCols);
  }
#endif
  addProductsScalar(Out + TiledRows * OutStride, OutStride, Left + TiledRows,
                    LeftStride, Right, RightStride, N, Rows - TiledRows, Cols);
}

/// addProductsScalar's bits, a block of KeyBlock of the N products at a
/// time: each element's running sum is stored between blocks and picks up
/// where it stopped, so the operations and their order are the same. A
/// block's Left and Right rows (KeyBlock x Rows and KeyBlock x Cols) stay
/// in cache while every tile of Out reads them; over all N at once each
/// tile streamed all of them from memory (K Kᵀ at F = 2800 and 8,000 keys:
/// one solve took 49 s, bound by memory).
void addProducts(double *Out, size_t OutStride, const double *Left,
                 size_t LeftStride, const double *Right, size_t RightStride,
                 size_t N, size_t Rows, size_t Cols, bool Wide) {
  constexpr size_t KeyBlock = 256;
  for (size_t J = 0; J < N; J += KeyBlock)
    addProductsTiled(Out, OutStride, Left + J * LeftStride, LeftStride,
                     Right + J * RightStride, RightStride,
                     std::min(KeyBlock, N - J), Rows, Cols, Wide);
}

/// X = L⁻¹ X (Forward, L in A's lower triangle) or X = U⁻¹ X (U = Lᵀ in
/// A's upper triangle) for the Cols columns of X ([F][Stride]), as the
/// textbook substitution does it column by column: row I's products
/// subtracted in P order (ascending, P < I forward, P > I back), then one
/// division.
void substituteScalar(const double *A, size_t F, double *X, size_t Stride,
                      size_t Cols, bool Forward) {
  for (size_t C = 0; C < Cols; ++C)
    for (size_t Step = 0; Step < F; ++Step) {
      size_t I = Forward ? Step : F - 1 - Step;
      size_t P0 = Forward ? 0 : I + 1, P1 = Forward ? I : F;
      double T = X[I * Stride + C];
      for (size_t P = P0; P < P1; ++P)
        T -= A[I * F + P] * X[P * Stride + C];
      X[I * Stride + C] = T / A[I * F + I];
    }
}

#if defined(__x86_64__)
/// substituteScalar for 32 columns, AVX-512: the columns' chains run side
/// by side (one column alone waits on each subtraction), the same
/// operations in the same order.
__attribute__((target("avx512f"))) void substitute32(const double *A, size_t F,
                                                     double *X, size_t Stride,
                                                     bool Forward) {
  for (size_t Step = 0; Step < F; ++Step) {
    size_t I = Forward ? Step : F - 1 - Step;
    size_t P0 = Forward ? 0 : I + 1, P1 = Forward ? I : F;
    __m512d T[4];
    for (unsigned H = 0; H < 4; ++H)
      T[H] = _mm512_loadu_pd(X + I * Stride + 8 * H);
    for (size_t P = P0; P < P1; ++P) {
      __m512d L = _mm512_set1_pd(A[I * F + P]);
      const double *Row = X + P * Stride;
      for (unsigned H = 0; H < 4; ++H)
        T[H] =
            _mm512_sub_pd(T[H], _mm512_mul_pd(L, _mm512_loadu_pd(Row + 8 * H)));
    }
    __m512d Diag = _mm512_set1_pd(A[I * F + I]);
    for (unsigned H = 0; H < 4; ++H)
      _mm512_storeu_pd(X + I * Stride + 8 * H, _mm512_div_pd(T[H], Diag));
  }
}
#endif

/// Runs Task(0) ... Task(Count - 1) on Jobs threads (each task's output
/// its own: the bits do not depend on the threads).
void runTasks(size_t Count, unsigned Jobs, function_ref<void(size_t)> Task) {
  if (Jobs < 2 || Count < 2) {
    for (size_t T = 0; T < Count; ++T)
      Task(T);
    return;
  }
  DefaultThreadPool Pool(hardware_concurrency(Jobs));
  for (size_t T = 0; T < Count; ++T)
    Pool.async([&Task, T] { Task(T); });
  Pool.wait();
}

} // namespace

/// Rows of K Kᵀ and Kᵀ R a task computes.
static constexpr size_t BandRows = 64;

/// The inputs that fix λ C + K Kᵀ: C's, K's bytes, λ and the shapes.
static XXH128_hash_t hashFactorInputs(ArrayRef<double> C, double Lambda,
                                      ArrayRef<double> K, size_t F) {
  auto Bytes = [](ArrayRef<double> V) {
    return ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(V.data()),
                             V.size() * sizeof(double));
  };
  XXH128_hash_t Parts[2] = {xxh3_128bits(Bytes(C)), xxh3_128bits(Bytes(K))};
  double Shape[3] = {Lambda, double(F), double(K.size())};
  std::vector<uint8_t> All(reinterpret_cast<const uint8_t *>(Parts),
                           reinterpret_cast<const uint8_t *>(Parts + 2));
  All.insert(All.end(), reinterpret_cast<const uint8_t *>(Shape),
             reinterpret_cast<const uint8_t *>(Shape + 3));
  return xxh3_128bits(All);
}

/// A[i][p] += Σ_{J < N} K[J][i] K[J][p] (K's rows F apart) for p up to
/// the last row of i's band of BandRows rows (the lower triangle and a
/// little above it): each band's elements as addProducts computes them,
/// products added in key order, so the bits are addProducts'. Each block
/// of KeyBlock keys is packed once into panels of 16 columns (KeyBlock x
/// 16 doubles side by side, zero past column F), which every band's
/// tiles then read in order as their right and (8 of the 16) left sides:
/// packed per band, the strided gather of the panels was a fifth of a
/// solve at F = 3200 and 20,000 keys (8.7 -> 7.6 CPU s; blocks of 512
/// keys rather than 256, 7.3).
static void addKeyGram(double *A, size_t F, const double *K, size_t N,
                       unsigned Jobs, bool Wide) {
  constexpr size_t KeyBlock = 512;
  size_t Bands = (F + BandRows - 1) / BandRows;
  std::optional<DefaultThreadPool> Pool;
  if (Jobs > 1 && Bands > 1)
    Pool.emplace(hardware_concurrency(Jobs));
  auto Run = [&](size_t Count, function_ref<void(size_t)> Task) {
    if (!Pool) {
      for (size_t T = 0; T < Count; ++T)
        Task(T);
      return;
    }
    for (size_t T = 0; T < Count; ++T)
      Pool->async([&Task, T] { Task(T); });
    Pool->wait();
  };
  size_t PanelCount = Wide ? (F + 15) / 16 : 0;
  std::vector<double> Panels(PanelCount * KeyBlock * 16);
  for (size_t J0 = 0; J0 < N; J0 += KeyBlock) {
    size_t Keys = std::min(KeyBlock, N - J0);
    const double *Block = K + J0 * F;
    Run(PanelCount, [&](size_t P) {
      double *Panel = &Panels[P * KeyBlock * 16];
      size_t C0 = P * 16, Width = std::min<size_t>(16, F - C0);
      for (size_t J = 0; J < Keys; ++J) {
        std::copy_n(Block + J * F + C0, Width, Panel + J * 16);
        std::fill(Panel + J * 16 + Width, Panel + J * 16 + 16, 0.0);
      }
    });
    Run(Bands, [&](size_t T) {
      size_t I0 = T * BandRows, Rows = std::min(BandRows, F - I0);
      size_t Cols = I0 + Rows;
      double *Out = &A[I0 * F];
      size_t TiledRows = 0;
#if defined(__x86_64__)
      if (Wide) {
        TiledRows = Rows / 8 * 8;
        size_t TiledCols = Cols / 16 * 16;
        for (size_t C = 0; C < TiledCols; C += 16)
          for (size_t I = 0; I < TiledRows; I += 8) {
            size_t Row = I0 + I;
            addProducts8x16(Out + I * F + C, F,
                            &Panels[Row / 16 * KeyBlock * 16 + Row % 16], 16,
                            &Panels[C / 16 * KeyBlock * 16], 16, Keys);
          }
        if (TiledRows)
          addProductsScalar(Out + TiledCols, F, Block + I0, F,
                            Block + TiledCols, F, Keys, TiledRows,
                            Cols - TiledCols);
      }
#endif
      addProductsScalar(Out + TiledRows * F, F, Block + I0 + TiledRows, F,
                        Block, F, Keys, Rows - TiledRows, Cols);
    });
  }
}

/// λ C + K Kᵀ = L Lᵀ: L below the diagonal of the result, Lᵀ above it.
static Expected<std::vector<double>> factorUpdate(ArrayRef<double> C,
                                                  double Lambda,
                                                  ArrayRef<double> K, size_t F,
                                                  unsigned Jobs, bool Wide) {
  size_t N = K.size() / F;
  // A = λ C + K Kᵀ (F x F, symmetric positive definite when λ C is), each
  // element's products added in key order; only the lower triangle and
  // the diagonal are read below, so each band of rows computes only the
  // columns up to its last row.
  std::vector<double> A(F * F);
  for (size_t I = 0; I < F * F; ++I)
    A[I] = Lambda * C[I];
  addKeyGram(A.data(), F, K.data(), N, Jobs, Wide);
  // Cholesky A = L Lᵀ, L in the lower triangle of A. A tiny ridge keeps a
  // key direction the text never used solvable.
  double Trace = 0;
  for (size_t I = 0; I < F; ++I)
    Trace += A[I * F + I];
  double Ridge = 1e-10 * Trace / double(F) + 1e-300;
  for (size_t I = 0; I < F; ++I)
    A[I * F + I] += Ridge;
  if (Error E = choleskyInPlace(A, F, Jobs))
    return std::move(E);
  // Lᵀ into the upper triangle, so that the back substitution reads rows
  // (a column of L is F apart per element: a cache miss each).
  forUpperInTiles(F, [&](size_t I, size_t P) { A[I * F + P] = A[P * F + I]; });
  return A;
}

Expected<std::vector<double>> solveUpdate(ArrayRef<double> C, double Lambda,
                                          ArrayRef<double> K,
                                          ArrayRef<double> R, size_t F,
                                          size_t D, unsigned Jobs,
                                          UpdateFactor *Keep) {
  size_t N = K.size() / F;
  if (C.size() != F * F || K.size() != N * F || R.size() != N * D)
    return makeError("memit: the update's shapes disagree");
  bool Wide = activeKernelPath() != KernelPath::AVX2;
  XXH128_hash_t Inputs{};
  if (Keep)
    Inputs = hashFactorInputs(C, Lambda, K, F);
  std::vector<double> Own;
  const std::vector<double> *Factor = &Own;
  if (Keep && !Keep->A.empty() && Keep->Inputs == Inputs) {
    Factor = &Keep->A;
  } else {
    Expected<std::vector<double>> Made =
        factorUpdate(C, Lambda, K, F, Jobs, Wide);
    if (!Made)
      return Made.takeError();
    Own = std::move(*Made);
    if (Keep) {
      Keep->A = std::move(Own);
      Keep->Inputs = Inputs;
      Factor = &Keep->A;
    }
  }
  const std::vector<double> &A = *Factor;
  // Δᵀ = A⁻¹ (Kᵀ R): the right-hand side B = Kᵀ R first (F x D, feature
  // f's row Σ_j K_j[f] R_j in key order), then forward and back
  // substitution on its D columns, 32 at a time (padded with zero columns
  // to a multiple of 32). Substituting B's D columns rather than Kᵀ's N
  // (A⁻¹ Kᵀ, then R times it) costs F² D instead of F² N: a statement
  // holding earlier facts has thousands of keys against D = 96 (10 x 100
  // facts on tiny-llama: 43% of a link was the substitution of the keys).
  constexpr size_t Chunk = 32;
  size_t Stride = (D + Chunk - 1) / Chunk * Chunk;
  std::vector<double> B(F * Stride, 0.0); // [F][Stride]
  runTasks((F + BandRows - 1) / BandRows, Jobs, [&](size_t T) {
    size_t F0 = T * BandRows;
    addProducts(&B[F0 * Stride], Stride, K.data() + F0, F, R.data(), D, N,
                std::min(BandRows, F - F0), D, Wide);
  });
  runTasks(Stride / Chunk, Jobs, [&](size_t T) {
    double *Cols = &B[T * Chunk];
    for (bool Forward : {true, false}) {
#if defined(__x86_64__)
      if (Wide) {
        substitute32(A.data(), F, Cols, Stride, Forward);
        continue;
      }
#endif
      substituteScalar(A.data(), F, Cols, Stride, Chunk, Forward);
    }
  });
  // Row f of the feature-major layout: feature f's change.
  std::vector<double> Delta(F * D);
  for (size_t I = 0; I < F; ++I)
    std::copy_n(&B[I * Stride], D, &Delta[I * D]);
  return Delta;
}

namespace {

/// The position of the last token of Entity in Ids (the last occurrence),
/// else the last position.
size_t subjectPosition(const Tokenizer &Tok, ArrayRef<int32_t> Ids,
                       StringRef Entity) {
  for (std::string Form : {(" " + Entity).str(), Entity.str()}) {
    std::vector<int32_t> E = Tok.encode(Form, /*AddSpecial=*/false);
    if (E.empty() || E.size() > Ids.size())
      continue;
    for (size_t S = Ids.size() - E.size() + 1; S-- > 0;)
      if (std::equal(E.begin(), E.end(), Ids.begin() + S))
        return S + E.size() - 1;
  }
  return Ids.size() - 1;
}

/// The token that ends the word after Ids (a prompt and a target's
/// Pieces): the model's likeliest next token whose text does not go on
/// with a letter or digit (a space, punctuation, the end of text).
int32_t wordEnd(const Model &M, const Tokenizer &Tok, ArrayRef<int32_t> Ids,
                ArrayRef<int32_t> Pieces) {
  Session S(M, 1);
  std::vector<float> Logits = S.run(Ids).Logits;
  std::vector<int32_t> Order(Logits.size());
  for (size_t I = 0; I < Order.size(); ++I)
    Order[I] = int32_t(I);
  // Ties broken by id: the same token whatever the sort does.
  llvm::stable_sort(
      Order, [&](int32_t A, int32_t B) { return Logits[A] > Logits[B]; });
  std::string Word = Tok.decode(Pieces);
  std::vector<int32_t> Next(Pieces.begin(), Pieces.end());
  Next.push_back(0);
  for (int32_t T : Order) {
    if (Tok.eosId() == T)
      return T;
    Next.back() = T;
    std::string Text = Tok.decode(Next);
    if (Text.size() <= Word.size() || Text.compare(0, Word.size(), Word))
      continue;
    unsigned char C = Text[Word.size()];
    if (!std::isalnum(C) && C < 0x80)
      return T;
  }
  return Order.front();
}

/// What the optimiser and the update need of one fact.
struct FactState {
  /// The canonical prompt then the context prefixes: prompt ids and the
  /// edit position in each.
  std::vector<std::vector<int32_t>> Prompts;
  std::vector<size_t> Positions;
  /// Each context followed by the fact's whole target (and the word's end):
  /// every unit's teacher-forced sequence begins it, so the units of a fact
  /// share its unedited run (SequenceRuns).
  std::vector<std::vector<int32_t>> Wholes;
  /// The pieces the offset writes (teacher-forced after each prompt).
  std::vector<int32_t> Target;
  std::vector<double> Z; ///< the target residual at Lmax + 1
  /// Unless the keys are the mean: each context's target residual (its own
  /// residual plus the offset), canonical first.
  std::vector<std::vector<double>> ContextZ;
  /// Each context's key group (MemitOptions::Keys), ascending from 0.
  std::vector<size_t> Group;
  std::string Record;
  /// ‖h‖ where the unit was first optimised or held: the offsets of later
  /// rounds are bounded by it as well, so that an update that inflates the
  /// residual cannot inflate them (3 statements of 100 facts on
  /// tiny-llama: offsets grew to 3668 and the model answered nothing).
  double FirstNorm = 0;
  /// Whether the last optimisation stopped early (every piece likely).
  bool Converged = false;
};

/// Context prefixes before the canonical prompt (MEMIT uses short
/// generated texts; fixed ones keep the result deterministic).
constexpr const char *Prefixes[] = {"Yes.", "Well,", "I see."};

double norm(ArrayRef<double> V) {
  double S = 0;
  for (double X : V)
    S += X * X;
  return std::sqrt(S);
}

/// Residual Residual and the FFN keys and raw FFN output of layer Layer at
/// position Pos of Ids, from the f32 engine.
struct Probe {
  std::vector<double> Residual;
  /// The engine's f32 keys as they are (F of them per probe, and tens of
  /// thousands of probes a round: in double they were a gigabyte).
  std::vector<float> Key;
  std::vector<double> FFNOut;
};
struct ProbeAt {
  ArrayRef<int32_t> Ids;
  size_t Pos;
};

/// The texts of At that are run (hosts, in the order of their first reader
/// in At) and, for each, the texts of At read from its run: every text is
/// read from the longest text of At that it begins (itself when none is
/// longer). A unit of a target's k-th piece is its context followed by the
/// k - 1 pieces before: every unit of a fact but the last is a prefix of
/// the last one's text.
struct ProbeHosts {
  std::vector<size_t> Text;
  std::vector<std::vector<size_t>> Readers;
};
ProbeHosts shareProbeTexts(ArrayRef<ProbeAt> At) {
  std::vector<size_t> Sorted(At.size());
  for (size_t I = 0; I < At.size(); ++I)
    Sorted[I] = I;
  auto Less = [&](size_t A, size_t B) {
    return std::lexicographical_compare(At[A].Ids.begin(), At[A].Ids.end(),
                                        At[B].Ids.begin(), At[B].Ids.end());
  };
  std::stable_sort(Sorted.begin(), Sorted.end(), Less);
  // In sorted order a text that begins another begins the one after it
  // (everything between them begins with it too): from the last back,
  // each text goes to its successor's host when it begins the successor.
  std::vector<size_t> HostText(At.size());
  for (size_t S = At.size(); S-- > 0;) {
    size_t I = Sorted[S];
    HostText[I] = I;
    if (S + 1 < At.size()) {
      ArrayRef<int32_t> Ids = At[I].Ids, Next = At[Sorted[S + 1]].Ids;
      if (Ids.size() <= Next.size() &&
          std::equal(Ids.begin(), Ids.end(), Next.begin()))
        HostText[I] = HostText[Sorted[S + 1]];
    }
  }
  ProbeHosts H;
  std::vector<size_t> Index(At.size(), size_t(-1)); // text -> host
  for (size_t I = 0; I < At.size(); ++I) {
    size_t T = HostText[I];
    if (Index[T] == size_t(-1)) {
      Index[T] = H.Text.size();
      H.Text.push_back(T);
      H.Readers.emplace_back();
    }
    H.Readers[Index[T]].push_back(I);
  }
  return H;
}

/// The probes of several texts, run a batch at a time as one forward (the
/// weights read once per batch; the first session carries the threads):
/// each the same as the text run alone (EngineTest,
/// RunManyGivesEachSequenceItsRows), and from Resume's layer where given.
/// A text that begins another is not run: its rows are the longer one's
/// (a position's row does not depend on the tokens after it:
/// EngineReference.RunTextsGivesAPrefixTheLongerTextsRows).
std::vector<Probe> probeMany(const Model &M, ArrayRef<ProbeAt> At,
                             size_t Residual, std::optional<unsigned> Layer,
                             unsigned Threads,
                             ForwardResume *Resume = nullptr) {
  bool Resuming =
      Resume && Layer && !Resume->Inputs.empty() && Resume->Layer <= *Layer;
  ProbeHosts Hosts = shareProbeTexts(At);
  constexpr size_t TextsPerBatch = 32;
  size_t Batches = (Hosts.Text.size() + TextsPerBatch - 1) / TextsPerBatch;
  std::vector<std::vector<float>> Inputs(Resume && Layer ? Batches : 0);
  size_t D = M.config().HiddenSize;
  std::vector<Probe> Out(At.size());
  forEachBatch(M, Batches, Threads, [&](size_t BI, unsigned BatchThreads) {
    ForwardOptions O;
    O.CaptureResiduals = true;
    O.CaptureFFN = Layer.has_value();
    // Nothing above what is read, nor the LM head.
    O.StopAfter = std::max<size_t>(Residual, Layer ? *Layer + 1 : 0);
    std::vector<float> FFNOut; // layer Layer's, every row of the batch
    if (Layer)
      O.AfterFFN = [&](size_t L, size_t, size_t T, ArrayRef<float>,
                       MutableArrayRef<float> Out) {
        if (L == *Layer)
          FFNOut.assign(Out.begin(), Out.begin() + T * D);
      };
    size_t B = BI * TextsPerBatch;
    size_t N = std::min(TextsPerBatch, Hosts.Text.size() - B);
    std::vector<ArrayRef<int32_t>> Tokens;
    for (size_t I = 0; I < N; ++I)
      Tokens.push_back(At[Hosts.Text[B + I]].Ids);
    if (Resuming) {
      O.StartLayer = Resume->Layer;
      O.StartResidual = Resume->Inputs[BI];
    }
    ForwardResult R = Session::runTexts(M, Tokens, O, BatchThreads);
    if (Resume && Layer)
      Inputs[BI] = std::move(R.Residuals[*Layer]);
    const std::vector<float> &H = R.Residuals[Residual];
    size_t TotalRows = H.size() / D, Row = 0;
    for (size_t I = 0; I < N; ++I) {
      for (size_t Reader : Hosts.Readers[B + I]) {
        size_t At0 = Row + At[Reader].Pos;
        Probe &P = Out[Reader];
        P.Residual.assign(H.begin() + At0 * D, H.begin() + (At0 + 1) * D);
        if (Layer) {
          const std::vector<float> &A = R.FFNActivations[*Layer];
          size_t F = A.size() / TotalRows;
          P.Key.assign(A.begin() + At0 * F, A.begin() + (At0 + 1) * F);
          P.FFNOut.assign(FFNOut.begin() + At0 * D,
                          FFNOut.begin() + (At0 + 1) * D);
        }
      }
      Row += Tokens[I].size();
    }
  });
  if (Resume && Layer) {
    Resume->Layer = *Layer;
    Resume->Inputs = std::move(Inputs);
  }
  return Out;
}

Probe probe(const Model &M, ArrayRef<int32_t> Ids, size_t Pos, size_t Residual,
            std::optional<unsigned> Layer) {
  return std::move(probeMany(M, {ProbeAt{Ids, Pos}}, Residual, Layer, 1)[0]);
}

/// Unless the keys are the mean, each context's target residual: Z for
/// the canonical prompt, the context's own residual (Own, one per context
/// after the first) plus the offset Delta for the others.
void setContextTargets(FactState &St, ArrayRef<double> Z,
                       ArrayRef<double> Delta, ArrayRef<Probe> Own,
                       const MemitOptions &Opts) {
  St.ContextZ.clear();
  if (Opts.Keys == MemitOptions::KeyGroups::Mean)
    return;
  St.ContextZ.push_back(Z.vec());
  for (size_t C = 1; C < St.Prompts.size(); ++C) {
    std::vector<double> H = Own[C - 1].Residual;
    for (size_t I = 0; I < H.size(); ++I)
      H[I] += Delta[I];
    St.ContextZ.push_back(std::move(H));
  }
}

/// The probes setContextTargets needs: St's contexts after the first.
std::vector<ProbeAt> otherContexts(const FactState &St,
                                   const MemitOptions &Opts) {
  std::vector<ProbeAt> At;
  if (Opts.Keys != MemitOptions::KeyGroups::Mean)
    for (size_t C = 1; C < St.Prompts.size(); ++C)
      At.push_back({St.Prompts[C], St.Positions[C]});
  return At;
}

/// Step 2: the offset δ at residual Residual that makes the model emit the
/// target (Adam on OffsetObjective); returns h + δ.
Expected<std::vector<double>>
optimiseOffset(const Model &M, const Tokenizer &Tok, const Fact &F,
               FactState &St, size_t Residual, double Reach,
               const MemitOptions &Opts, SequenceRuns *Runs) {
  std::vector<LossSequence> Seqs;
  for (size_t C = 0; C < St.Prompts.size(); ++C) {
    LossSequence S = teacherForced(St.Prompts[C], St.Target);
    S.OffsetPositions = {St.Positions[C]};
    Seqs.push_back(std::move(S));
  }
  // The KL term: "{entity} is a" keeps its next-token distribution.
  {
    LossSequence S;
    S.Tokens = Tok.encode(F.Entity + " is a");
    size_t Last = S.Tokens.size() - 1;
    Expected<std::vector<double>> Ref = logProbs(M, S.Tokens, Last);
    if (!Ref)
      return Ref.takeError();
    S.KL.push_back({Last, std::move(*Ref), Opts.KLWeight});
    S.OffsetPositions = {
        Opts.AtSubject ? subjectPosition(Tok, S.Tokens, F.Entity) : Last};
    Seqs.push_back(std::move(S));
  }
  size_t NSeq = Seqs.size();
  Expected<OffsetObjective> Obj =
      OffsetObjective::create(M, std::move(Seqs), Residual, Runs, St.Wholes);
  if (!Obj)
    return Obj.takeError();
  Probe H = probe(M, St.Prompts[0], St.Positions[0], Residual, std::nullopt);
  size_t D = H.Residual.size();
  double HNorm = norm(H.Residual);
  double Lr = Opts.LearningRate * HNorm / std::sqrt(double(D));
  if (St.FirstNorm == 0)
    St.FirstNorm = HNorm;
  double Bound =
      std::min(Opts.NormBound * std::min(HNorm, St.FirstNorm), Reach);
  // Early stop: every sequence's NLL below ln 2 / sequences means every
  // piece has probability above 1/2 in every context: the greedy choice.
  double Stop = std::log(2.0) / double(NSeq);
  std::vector<double> Delta(D, 0.0), Mom(D, 0.0), Var(D, 0.0);
  double First = 0, Last = 0;
  unsigned Step = 0;
  for (; Step <= Opts.Steps; ++Step) {
    Expected<OffsetGradient> G = Obj->evaluate(Delta);
    if (!G)
      return G.takeError();
    if (Step == 0)
      First = G->Loss;
    Last = G->Loss;
    if (G->Loss < Stop || Step == Opts.Steps)
      break;
    const double B1 = 0.9, B2 = 0.999;
    double C1 = 1 - std::pow(B1, Step + 1), C2 = 1 - std::pow(B2, Step + 1);
    for (size_t I = 0; I < D; ++I) {
      double Gi = G->Gradient[I];
      Mom[I] = B1 * Mom[I] + (1 - B1) * Gi;
      Var[I] = B2 * Var[I] + (1 - B2) * Gi * Gi;
      Delta[I] -= Lr * (Mom[I] / C1) / (std::sqrt(Var[I] / C2) + 1e-12);
    }
    double N = norm(Delta);
    if (N > Bound)
      for (double &X : Delta)
        X *= Bound / N;
  }
  St.Converged = Last < Stop;
  St.Record =
      formatv("memit: '{0}' {1} -> '{2}' piece {8}: adam {3} steps, loss "
              "{4:f4} -> {5:f4}, |delta| {6:f3} (|h| {7:f3})",
              F.Entity, F.Relation, F.TargetText, Step, First, Last,
              norm(Delta), HNorm, St.Target.front())
          .str();
  std::vector<double> Z(D);
  for (size_t I = 0; I < D; ++I)
    Z[I] = H.Residual[I] + Delta[I];
  std::vector<Probe> Others =
      probeMany(M, otherContexts(St, Opts), Residual, std::nullopt, 1);
  setContextTargets(St, Z, Delta, Others, Opts);
  return Z;
}

} // namespace

Expected<std::vector<double>>
solveNullSpaceUpdate(ArrayRef<double> P, ArrayRef<double> E, double Alpha,
                     ArrayRef<double> K, ArrayRef<double> R, size_t F,
                     size_t D) {
  size_t N = K.size() / F;
  if (P.size() != F * F || (!E.empty() && E.size() != F * F) ||
      K.size() != N * F || R.size() != N * D)
    return makeError("memit: the null-space update's shapes disagree");
  // S = K Kᵀ + E, A = P S + α I, B = P K Rᵀ ([F * D]).
  std::vector<double> S(F * F, 0.0);
  if (!E.empty())
    S.assign(E.begin(), E.end());
  for (size_t J = 0; J < N; ++J)
    for (size_t I = 0; I < F; ++I)
      for (size_t Q = 0; Q < F; ++Q)
        S[I * F + Q] += K[J * F + I] * K[J * F + Q];
  std::vector<double> A(F * F, 0.0), KR(F * D, 0.0), B(F * D, 0.0);
  for (size_t I = 0; I < F; ++I)
    for (size_t Q = 0; Q < F; ++Q) {
      double Pi = P[I * F + Q];
      if (Pi == 0)
        continue;
      for (size_t C = 0; C < F; ++C)
        A[I * F + C] += Pi * S[Q * F + C];
    }
  for (size_t I = 0; I < F; ++I)
    A[I * F + I] += Alpha;
  for (size_t J = 0; J < N; ++J)
    for (size_t I = 0; I < F; ++I)
      for (size_t C = 0; C < D; ++C)
        KR[I * D + C] += K[J * F + I] * R[J * D + C];
  for (size_t I = 0; I < F; ++I)
    for (size_t Q = 0; Q < F; ++Q)
      for (size_t C = 0; C < D; ++C)
        B[I * D + C] += P[I * F + Q] * KR[Q * D + C];
  // LU with partial pivoting, in place; B's columns solved alongside.
  for (size_t Col = 0; Col < F; ++Col) {
    size_t Piv = Col;
    for (size_t I = Col + 1; I < F; ++I)
      if (std::fabs(A[I * F + Col]) > std::fabs(A[Piv * F + Col]))
        Piv = I;
    if (!(std::fabs(A[Piv * F + Col]) > 0))
      return makeError("memit: the null-space system is singular (column "
                       "{0})",
                       Col);
    if (Piv != Col) {
      std::swap_ranges(A.begin() + Piv * F, A.begin() + (Piv + 1) * F,
                       A.begin() + Col * F);
      std::swap_ranges(B.begin() + Piv * D, B.begin() + (Piv + 1) * D,
                       B.begin() + Col * D);
    }
    double Pv = A[Col * F + Col];
    for (size_t I = Col + 1; I < F; ++I) {
      double Fct = A[I * F + Col] / Pv;
      if (Fct == 0)
        continue;
      for (size_t C = Col; C < F; ++C)
        A[I * F + C] -= Fct * A[Col * F + C];
      for (size_t C = 0; C < D; ++C)
        B[I * D + C] -= Fct * B[Col * D + C];
    }
  }
  for (size_t I = F; I-- > 0;) {
    for (size_t Q = I + 1; Q < F; ++Q) {
      double Aiq = A[I * F + Q];
      for (size_t C = 0; C < D; ++C)
        B[I * D + C] -= Aiq * B[Q * D + C];
    }
    for (size_t C = 0; C < D; ++C)
      B[I * D + C] /= A[I * F + I];
  }
  return B;
}

std::vector<double> nullSpaceProjector(ArrayRef<double> C, size_t F,
                                       double Threshold, size_t &Rank) {
  // Cyclic Jacobi: A → Vᵀ A V diagonal, V's columns the eigenvectors.
  std::vector<double> A(C.begin(), C.end()), V(F * F, 0.0);
  for (size_t I = 0; I < F; ++I)
    V[I * F + I] = 1;
  for (unsigned Sweep = 0; Sweep < 60; ++Sweep) {
    double Off = 0, Diag = 0;
    for (size_t I = 0; I < F; ++I) {
      Diag += A[I * F + I] * A[I * F + I];
      for (size_t J = I + 1; J < F; ++J)
        Off += A[I * F + J] * A[I * F + J];
    }
    if (Off <= 1e-30 * Diag)
      break;
    for (size_t Pi = 0; Pi < F; ++Pi)
      for (size_t Q = Pi + 1; Q < F; ++Q) {
        double Apq = A[Pi * F + Q];
        if (std::fabs(Apq) < 1e-300)
          continue;
        double App = A[Pi * F + Pi], Aqq = A[Q * F + Q];
        double Theta = (Aqq - App) / (2 * Apq);
        double T = (Theta >= 0 ? 1.0 : -1.0) /
                   (std::fabs(Theta) + std::sqrt(Theta * Theta + 1));
        double Cs = 1 / std::sqrt(T * T + 1), Sn = T * Cs;
        for (size_t K = 0; K < F; ++K) { // columns p, q
          double Akp = A[K * F + Pi], Akq = A[K * F + Q];
          A[K * F + Pi] = Cs * Akp - Sn * Akq;
          A[K * F + Q] = Sn * Akp + Cs * Akq;
        }
        for (size_t K = 0; K < F; ++K) { // rows p, q
          double Apk = A[Pi * F + K], Aqk = A[Q * F + K];
          A[Pi * F + K] = Cs * Apk - Sn * Aqk;
          A[Q * F + K] = Sn * Apk + Cs * Aqk;
        }
        for (size_t K = 0; K < F; ++K) {
          double Vkp = V[K * F + Pi], Vkq = V[K * F + Q];
          V[K * F + Pi] = Cs * Vkp - Sn * Vkq;
          V[K * F + Q] = Sn * Vkp + Cs * Vkq;
        }
      }
  }
  double Max = 0;
  for (size_t I = 0; I < F; ++I)
    Max = std::max(Max, A[I * F + I]);
  std::vector<double> P(F * F, 0.0);
  Rank = 0;
  for (size_t E = 0; E < F; ++E) {
    if (A[E * F + E] > Threshold * Max)
      continue;
    ++Rank;
    for (size_t I = 0; I < F; ++I)
      for (size_t J = 0; J < F; ++J)
        P[I * F + J] += V[I * F + E] * V[J * F + E];
  }
  return P;
}

double pieceProbability(ArrayRef<float> Logits, int32_t Piece) {
  double Sum = 0;
  for (float X : Logits)
    Sum += std::exp(double(X) - double(Logits[Piece]));
  return 1.0 / Sum;
}

namespace {

/// Whether every piece of Target is the greedy choice after Prompt
/// (teacher-forced), on M as it is, with at least probability Margin.
/// Which units' targets are reached: after the canonical prompt of each
/// (with EveryContext after each of its contexts too), every piece is the
/// greedy choice, teacher-forced, with probability at least Margin when it
/// is above 0. Each context runs once, prompt and pieces together, and the
/// contexts run as batched forwards on Threads threads.
Expected<std::vector<bool>> reachedMany(const Model &M,
                                        ArrayRef<FactState> States,
                                        double Margin, bool EveryContext,
                                        unsigned Threads) {
  struct Check {
    size_t Unit;
    size_t PromptSize;
    std::vector<int32_t> Ids;  ///< the prompt, then the pieces but the last
    std::vector<float> Logits; ///< [pieces, vocab], from the prompt's last
  };
  std::vector<Check> Checks;
  for (size_t J = 0; J < States.size(); ++J) {
    const FactState &St = States[J];
    if (St.Target.empty())
      continue;
    size_t Contexts = EveryContext ? St.Prompts.size() : 1;
    for (size_t C = 0; C < Contexts; ++C) {
      Check K{J, St.Prompts[C].size(), St.Prompts[C], {}};
      K.Ids.insert(K.Ids.end(), St.Target.begin(), St.Target.end() - 1);
      Checks.push_back(std::move(K));
    }
  }
  // Batches of texts whose rows' logits stay under 16 MB (a 262K-token
  // vocabulary: a text or two), at most 32 texts.
  size_t V = M.config().VocabSize;
  size_t MaxRows =
      std::max<size_t>(1, (size_t(1) << 22) / std::max<size_t>(1, V));
  std::vector<size_t> BatchStart{0};
  for (size_t I = 0, Rows = 0; I < Checks.size(); ++I) {
    if (I > BatchStart.back() && (I - BatchStart.back() == 32 ||
                                  Rows + Checks[I].Ids.size() > MaxRows)) {
      BatchStart.push_back(I);
      Rows = 0;
    }
    Rows += Checks[I].Ids.size();
  }
  BatchStart.push_back(Checks.size());
  size_t Batches = Checks.empty() ? 0 : BatchStart.size() - 1;
  forEachBatch(M, Batches, Threads, [&](size_t BI, unsigned BatchThreads) {
    size_t B = BatchStart[BI], E = BatchStart[BI + 1];
    std::vector<ArrayRef<int32_t>> Tokens;
    for (size_t I = B; I < E; ++I)
      Tokens.push_back(Checks[I].Ids);
    ForwardOptions O;
    O.AllLogits = true;
    ForwardResult R = Session::runTexts(M, Tokens, O, BatchThreads);
    size_t Row = 0;
    for (size_t I = B; I < E; ++I) {
      Check &K = Checks[I];
      size_t From = Row + K.PromptSize - 1, To = Row + K.Ids.size();
      K.Logits.assign(R.Logits.begin() + From * V, R.Logits.begin() + To * V);
      Row += K.Ids.size();
    }
  });
  // Unit by unit, context by context, piece by piece, as one run per piece
  // would find them: the first piece missed decides.
  std::vector<bool> Reached(States.size(), true);
  for (const Check &K : Checks) {
    if (!Reached[K.Unit])
      continue;
    ArrayRef<int32_t> Target = States[K.Unit].Target;
    for (size_t P = 0; P < Target.size(); ++P) {
      ArrayRef<float> L(K.Logits.data() + P * V, V);
      if (size_t(Target[P]) >= V)
        return makeError("memit: target piece {0} outside the vocabulary",
                         Target[P]);
      if (size_t(std::max_element(L.begin(), L.end()) - L.begin()) !=
              size_t(Target[P]) ||
          (Margin > 0 && pieceProbability(L, Target[P]) < Margin)) {
        Reached[K.Unit] = false;
        break;
      }
    }
  }
  return Reached;
}

/// Optimises the targets of the next Opts.Jobs units from First on that
/// are not reached, in parallel, into Ready (each unit's optimisation reads
/// the model and writes only its own state).
void optimiseWindow(
    const Model &M, const Tokenizer &Tok, ArrayRef<Fact> Facts,
    ArrayRef<size_t> FactOf, MutableArrayRef<FactState> States,
    const std::vector<bool> &Reached, size_t First, size_t Residual,
    double Reach, const MemitOptions &Opts, SequenceRuns &Runs,
    std::vector<std::optional<Expected<std::vector<double>>>> &Ready) {
  std::vector<size_t> Window;
  for (size_t J = First;
       J < States.size() && Window.size() < std::max(1u, Opts.Jobs); ++J)
    if (!Reached[J])
      Window.push_back(J);
  auto Run = [&](size_t J) {
    Ready[J].emplace(optimiseOffset(M, Tok, Facts[FactOf[J]], States[J],
                                    Residual, Reach, Opts, &Runs));
  };
  if (Window.size() == 1) {
    Run(Window.front());
    return;
  }
  DefaultThreadPool Pool(hardware_concurrency(Window.size()));
  for (size_t J : Window)
    Pool.async([&, J] { Run(J); });
  Pool.wait();
}

} // namespace

Expected<MemitPlan> planMemit(const TensorView &View, const Tokenizer &Tok,
                              ArrayRef<Fact> Facts, KeyStatistics &Stats,
                              ArrayRef<PreservedText> Preserved,
                              const MemitOptions &Opts, raw_ostream *Verbose,
                              RowLifter Lift, ArrayRef<Fact> Held,
                              ArrayRef<Fact> Guarded) {
  TensorView V = View;
  Expected<std::unique_ptr<Model>> ML = Model::load(V);
  if (!ML)
    return ML.takeError();
  Model &M = **ML;
  size_t D = M.config().HiddenSize;
  std::vector<unsigned> Layers = Stats.Layers;
  if (Layers.empty())
    return makeError("memit: no edit layer");
  size_t Residual = Layers.back() + 1;
  // Where the FFN output is normed before the residual add (Gemma), a
  // layer's write has the norm of its norm's weights, whatever its down
  // projection: the offsets the edit layers can reach are bounded by their
  // sum.
  double Reach = std::numeric_limits<double>::infinity();
  if (!M.layer(Layers.front()).PostFFNNorm.empty()) {
    Reach = 0;
    for (unsigned L : Layers) {
      double S = 0;
      for (float W : M.layer(L).PostFFNNorm)
        S += double(W) * W;
      Reach += std::sqrt(S);
    }
  }

  // The facts' prompts: the canonical one, the context prefixes, the
  // relation's other prompts.
  std::vector<int32_t> Special = Tok.encode("", /*AddSpecial=*/true);
  // The edit units: at the subject, one per fact writing its whole
  // target; at the last position, one per target piece (the prompt and
  // the earlier pieces, teacher-forced), since an offset at one position
  // reaches the later pieces only through attention.
  std::vector<FactState> States;
  std::vector<size_t> FactOf;
  // The statement's facts, then the held ones, then the guard answers
  // written back (memit-repair); FactOf indexes All.
  std::vector<Fact> All(Facts.begin(), Facts.end());
  All.insert(All.end(), Held.begin(), Held.end());
  auto AddUnits = [&](size_t FI) {
    const Fact &F = All[FI];
    ArrayRef<int32_t> Canon = F.Prompts.front();
    ArrayRef<int32_t> Body = Canon;
    if (Body.size() >= Special.size() &&
        std::equal(Special.begin(), Special.end(), Body.begin()))
      Body = Body.drop_front(Special.size());
    std::vector<std::vector<int32_t>> Contexts = {Canon.vec()};
    for (const char *P : Prefixes) {
      std::vector<int32_t> Ids = Special;
      std::vector<int32_t> Pre = Tok.encode(P, /*AddSpecial=*/false);
      Ids.insert(Ids.end(), Pre.begin(), Pre.end());
      Ids.insert(Ids.end(), Body.begin(), Body.end());
      Contexts.push_back(std::move(Ids));
    }
    for (size_t C = 1; C < F.Prompts.size(); ++C)
      Contexts.push_back(F.Prompts[C]);
    std::vector<size_t> Group(Contexts.size(), 0);
    for (size_t C = 1; C < Contexts.size(); ++C)
      switch (Opts.Keys) {
      case MemitOptions::KeyGroups::Mean:
        break;
      case MemitOptions::KeyGroups::Each:
        Group[C] = C;
        break;
      case MemitOptions::KeyGroups::Prompts: // the prefixes join the canonical
        Group[C] = C <= std::size(Prefixes) ? 0 : C - std::size(Prefixes);
        break;
      }
    // At the last position, one more unit ends the word after the
    // target: without it the last piece's offset, keyed on a state much
    // like the one after it, wrote the piece again ("Mudvilleille...").
    std::optional<int32_t> End;
    if (!Opts.AtSubject && !F.Target.empty()) {
      std::vector<int32_t> Ids = Canon.vec();
      Ids.insert(Ids.end(), F.Target.begin(), F.Target.end());
      End = wordEnd(M, Tok, Ids, F.Target);
    }
    size_t Units = Opts.AtSubject ? 1 : F.Target.size() + bool(End);
    for (size_t J = 0; J < Units; ++J) {
      FactState St;
      St.Group = Group;
      for (std::vector<int32_t> P : Contexts) {
        std::vector<int32_t> Whole = P;
        Whole.insert(Whole.end(), F.Target.begin(), F.Target.end());
        if (End)
          Whole.push_back(*End);
        St.Wholes.push_back(std::move(Whole));
        if (Opts.AtSubject) {
          St.Positions.push_back(subjectPosition(Tok, P, F.Entity));
        } else {
          P.insert(P.end(), F.Target.begin(), F.Target.begin() + J);
          St.Positions.push_back(P.size() - 1);
        }
        St.Prompts.push_back(std::move(P));
      }
      if (Opts.AtSubject)
        St.Target = F.Target;
      else
        St.Target = {J < F.Target.size() ? F.Target[J] : *End};
      States.push_back(std::move(St));
      FactOf.push_back(FI);
    }
  };
  for (size_t FI = 0; FI < Facts.size(); ++FI)
    AddUnits(FI);
  size_t Own = States.size(); // the statement's own units come first
  for (size_t FI = Facts.size(); FI < All.size(); ++FI)
    AddUnits(FI);
  size_t HeldEnd = States.size(); // then the held ones, then the repairs

  MemitPlan Plan;
  size_t N = States.size();
  // The held units start where they are.
  std::vector<bool> Reached(N, false);
  for (size_t J = Own; J < N; ++J)
    Reached[J] = true;
  std::vector<int32_t> Lifted;
  std::vector<std::vector<double>> Projectors(Layers.size());
  std::vector<std::vector<double>> Covariances(Layers.size());
  UpdateFactor LowestFactor;
  std::vector<std::vector<double>> LastKeys(Layers.size());
  // memit-repair: a guard whose answer (up to punctuation) the model as it is
  // no longer gives (earlier statements lost it, or this one's update) joins
  // the update as a fact to write back, and its text is no longer held where it
  // is (it would hold the loss). Without it one fact per statement compounds:
  // each statement holds the answers the ones before it lost.
  if (!Guarded.empty() && Guarded.size() != Preserved.size())
    return makeError("memit: {0} guard answers for {1} guard texts",
                     Guarded.size(), Preserved.size());
  std::vector<bool> Repairing(Guarded.size(), false);
  // With WriteBack false the losses are only counted (and named with
  // --verbose): the last update's, when no round is left to write them
  // back.
  auto RepairLost = [&](bool WriteBack = true) -> size_t {
    if (!Opts.Repair)
      return 0;
    std::vector<size_t> Which, Limits;
    std::vector<std::vector<int32_t>> Prompts;
    size_t Longest = 0;
    for (size_t I = 0; I < Guarded.size(); ++I)
      if (!Repairing[I] && !Guarded[I].Target.empty()) {
        Which.push_back(I);
        Prompts.push_back(Guarded[I].Prompts.front());
        Limits.push_back(Guarded[I].Target.size());
        Longest = std::max(Longest, Guarded[I].Target.size());
      }
    // Each answer as long as its own target (the batch does not run on
    // for the longest one's sake).
    unsigned Threads = std::max(1u, Opts.Jobs);
    std::vector<std::vector<int32_t>> Answers =
        Session::generateMany(M, Prompts, Limits, {}, Threads);
    std::vector<size_t> Lost;
    for (size_t K = 0; K < Which.size(); ++K)
      if (Answers[K] != Guarded[Which[K]].Target)
        Lost.push_back(K);
    // What the lost ones say now, as long as the longest target.
    std::vector<std::vector<int32_t>> Now;
    if (Verbose) {
      std::vector<std::vector<int32_t>> LostPrompts;
      for (size_t K : Lost)
        LostPrompts.push_back(Prompts[K]);
      Now = Session::generateMany(M, LostPrompts, Longest, {}, Threads);
    }
    if (!WriteBack) {
      for (size_t LI = 0; Verbose && LI < Lost.size(); ++LI) {
        const Fact &G = Guarded[Which[Lost[LI]]];
        *Verbose << formatv("memit-repair: '{0}' {1}: the answer '{2}' "
                            "lost by the last update (now '{3}'), not "
                            "written back\n",
                            G.Entity, G.Relation, G.TargetText,
                            Tok.decode(Now[LI]));
      }
      return Lost.size();
    }
    for (size_t LI = 0; LI < Lost.size(); ++LI) {
      const Fact &G = Guarded[Which[Lost[LI]]];
      Repairing[Which[Lost[LI]]] = true;
      All.push_back(G);
      AddUnits(All.size() - 1);
      if (Verbose)
        *Verbose << formatv("memit-repair: '{0}' {1}: the answer '{2}' "
                            "lost (now '{3}'), written back\n",
                            G.Entity, G.Relation, G.TargetText,
                            Tok.decode(Now[LI]));
    }
    size_t Added = Lost.size();
    N = States.size();
    Reached.resize(N, false);
    if (Added) { // the held guard texts change: C is measured again
      for (std::vector<double> &C : Covariances)
        C.clear();
      for (std::vector<double> &P : Projectors)
        P.clear();
    }
    return Added;
  };
  RepairLost();
  const unsigned BaseRounds = std::max(1u, Opts.Rounds);
  unsigned Rounds = BaseRounds;
  unsigned ExtraRounds = Opts.Repair ? Opts.RepairRounds : 0;
  unsigned GrantsLeft = Opts.RepairGrants;
  unsigned RoundsRun = 0;
  // Whether the last update's losses were asked: not when the rounds ran
  // out with no grant (or no repair rounds) left.
  bool LastAsked = true;
  for (unsigned Round = 0; Round < Rounds; ++Round) {
    RoundsRun = Round + 1;
    if (Error E = M.reload())
      return std::move(E);
    // Step 2: target values of the units not reached; the reached ones
    // are held where they are. Units are optimised Opts.Jobs at a time on
    // the model as it is; a unit whose piece must be lifted changes the
    // model for the units after it, so those of its window are optimised
    // again: the results are those of one unit at a time, in order.
    //
    // Every unit's contexts are probed first, at the first edit layer (step
    // 3 starts with these): the held units' residuals are read from them.
    // Step 2 changes no weight they depend on (a lift changes an output
    // row, after untying a tied embedding).
    std::vector<ProbeAt> At;
    std::vector<size_t> FirstContext;
    for (const FactState &St : States) {
      FirstContext.push_back(At.size());
      for (size_t C = 0; C < St.Prompts.size(); ++C)
        At.push_back({St.Prompts[C], St.Positions[C]});
    }
    ForwardResume Resume, KeptResume;
    // The units' unedited runs, shared by the units of a fact (this
    // round's weights).
    SequenceRuns Runs;
    // A round of a large batch takes minutes: on a terminal (and without
    // --verbose, whose lines it would break) its targets and layers count
    // up.
    std::optional<Progress> Bar;
    if (!Verbose)
      Bar.emplace(formatv("memit: round {0}", Round + 1).str(),
                  uint64_t(llvm::count(Reached, false) + Layers.size()),
                  "targets and layers");
    std::vector<Probe> FirstLayer =
        probeMany(M, At, Residual, Layers.front(), Opts.Jobs, &Resume);
    std::vector<std::optional<Expected<std::vector<double>>>> Ready(N);
    for (size_t J = 0; J < N; ++J) {
      FactState &St = States[J];
      if (Reached[J]) {
        ArrayRef<Probe> H = ArrayRef<Probe>(FirstLayer)
                                .slice(FirstContext[J], St.Prompts.size());
        St.Z = H[0].Residual;
        if (St.FirstNorm == 0)
          St.FirstNorm = norm(St.Z);
        setContextTargets(St, St.Z, std::vector<double>(St.Z.size(), 0.0),
                          H.drop_front(), Opts);
        continue;
      }
      if (!Ready[J])
        optimiseWindow(M, Tok, All, FactOf, States, Reached, J, Residual, Reach,
                       Opts, Runs, Ready);
      Expected<std::vector<double>> Z = std::move(*Ready[J]);
      Ready[J].reset();
      if (!Z)
        return Z.takeError();
      // A piece no offset within the bound makes likely (one the model
      // never emits): its output row is lifted once, and Adam runs again.
      if (!St.Converged && Lift && St.Target.size() == 1 &&
          !llvm::is_contained(Lifted, St.Target[0])) {
        std::string Rec;
        Expected<PlannedRow> Row = Lift(St.Target[0], Rec);
        if (!Row)
          return Row.takeError();
        Lifted.push_back(St.Target[0]);
        // The first lift of a tied model unties the output matrix (Editor
        // did so on its own view; this one follows).
        if (Row->UntieFirst) {
          PatchBuilder U(V);
          if (Expected<std::string> Made = U.untieOutput(); !Made)
            return Made.takeError();
          if (Error E = V.push(U.finish()))
            return std::move(E);
        }
        PatchBuilder B(V);
        if (Error E = B.setRow(Row->Tensor, Row->Row, Row->Values))
          return std::move(E);
        if (Error E = V.push(B.finish()))
          return std::move(E);
        if (Error E = M.reload())
          return std::move(E);
        for (auto &Later : Ready) // optimised on the model before the lift
          Later.reset();
        Plan.Rows.push_back(std::move(*Row));
        if (Verbose)
          *Verbose << "memit: piece " << St.Target[0] << Rec << "\n";
        // A lift changes an output row, which no run reads; the runs are
        // dropped anyway, as for any change of the weights.
        Runs.clear();
        Z = optimiseOffset(M, Tok, All[FactOf[J]], St, Residual, Reach, Opts,
                           &Runs);
        if (!Z)
          return Z.takeError();
        St.Record += Rec;
      }
      St.Z = std::move(*Z);
      if (Bar)
        Bar->advance(1);
      if (Round)
        St.Record += formatv(" (round {0})", Round + 1).str();
      if (Verbose)
        *Verbose << St.Record << "\n";
    }

    // Step 3, layer by layer from the lowest. Each layer's probes start
    // where the last layer's did: nothing below it changed since.
    for (size_t LI = 0; LI < Layers.size(); ++LI) {
      unsigned L = Layers[LI];
      if (Error E = M.reload())
        return std::move(E);
      const LayerWeights &W = M.layer(L);
      size_t F = W.Down.Rows;
      if (Stats.Moment[LI].size() != F * F)
        return makeError("memit: layer {0}'s FFN width {1} differs from its "
                         "key statistics' (the layer has appended slots)",
                         L, F);
      // A key per group of a unit's contexts: its contexts' mean, with the
      // residual its first context is missing.
      size_t Keys = 0;
      for (const FactState &St : States)
        Keys += St.Group.back() + 1;
      std::vector<double> K(Keys * F, 0.0), R(Keys * D, 0.0);
      double Missing = 0;
      double Left = double(Layers.size() - LI);
      // Row Row's residual still missing, Target - P.Residual over the
      // layers left. Gemma norms the FFN output before the residual add:
      // to first order, a change r of the normed output is rms(o) r / w of
      // the raw one.
      auto SetMissing = [&](size_t Row, ArrayRef<double> Target,
                            const Probe &P) {
        for (size_t I = 0; I < D; ++I)
          R[Row * D + I] = (Target[I] - P.Residual[I]) / Left;
        if (!W.PostFFNNorm.empty()) {
          // With NormKeys the key is already over the rms.
          double Rms = Opts.NormKeys
                           ? 1.0
                           : 1.0 / outputScale(P.FFNOut, M.config().NormEps);
          for (size_t I = 0; I < D; ++I)
            R[Row * D + I] *= Rms / double(W.PostFFNNorm[I]);
        }
      };
      std::vector<Probe> Probes =
          LI == 0 ? std::move(FirstLayer)
                  : probeMany(M, At, Residual, L, Opts.Jobs, &Resume);
      size_t First = 0, Next = 0;
      for (size_t J = 0; J < N; ++J) {
        FactState &St = States[J];
        for (size_t C = 0; C < St.Prompts.size(); ++C) {
          const Probe &P = Probes[Next++];
          size_t G = St.Group[C], Row = First + G;
          double Size = double(llvm::count(St.Group, G));
          double Scale = Opts.NormKeys && !W.PostFFNNorm.empty()
                             ? outputScale(P.FFNOut, M.config().NormEps)
                             : 1.0;
          for (size_t I = 0; I < F; ++I)
            K[Row * F + I] += P.Key[I] * Scale / Size;
          if (C == 0 || G != St.Group[C - 1])
            SetMissing(Row, St.ContextZ.empty() ? St.Z : St.ContextZ[C], P);
          if (C == 0)
            Missing += norm(ArrayRef<double>(R).slice(Row * D, D)) * Left;
        }
        First += St.Group.back() + 1;
      }
      // λ C and the preserved keys at this layer, measured in the first
      // round (on the weights the lower layers' first updates left).
      if (Covariances[LI].empty()) {
        std::vector<double> &C = Covariances[LI];
        C.resize(F * F);
        for (size_t I = 0; I < F * F; ++I)
          C[I] = Opts.Lambda * Stats.Moment[LI][I];
        std::vector<PreservedText> Kept;
        for (size_t I = 0; I < Preserved.size(); ++I)
          if (I >= Repairing.size() || !Repairing[I])
            Kept.push_back(Preserved[I]);
        if (Opts.PreserveWeight > 0 && !Kept.empty())
          addKeyMoments(M, Kept, L, Opts.PreserveWeight, C, Opts.Jobs,
                        Opts.NormKeys, &KeptResume);
      }
      const std::vector<double> &C = Covariances[LI];
      Expected<std::vector<double>> Delta = std::vector<double>();
      size_t Rank = F;
      if (Opts.AlphaEdit) {
        if (Projectors[LI].empty())
          Projectors[LI] = nullSpaceProjector(C, F, Opts.NullThreshold, Rank);
        else
          Rank = size_t(-1);
        ArrayRef<double> E;
        if (LI < Stats.Edited.size())
          E = Stats.Edited[LI];
        Delta = solveNullSpaceUpdate(Projectors[LI], E, Opts.AlphaRidge, K, R,
                                     F, D);
      } else {
        // The lowest edit layer's keys come before any update: from
        // round to round only its residuals change (its factor is kept;
        // one F x F, the lowest layer's only).
        Delta = solveUpdate(C, 1.0, K, R, F, D, Opts.Jobs,
                            LI == 0 ? &LowestFactor : nullptr);
      }
      if (!Delta)
        return Delta.takeError();
      // The last round's solve is this layer's last use of its F x F
      // covariance (840 MB at F = 10240): one layer's at a time stays.
      if (Round + 1 == Rounds) {
        std::vector<double>().swap(Covariances[LI]);
        if (LI == 0)
          std::vector<double>().swap(LowestFactor.A);
      }
      if (Bar)
        Bar->advance(1);
      const TensorRecord *T = V.find(TensorRole::FFNDown, int(L));
      if (!T || V.rowElements(*T) != D || V.rows(*T) != F)
        return makeError("memit: layer {0} has no feature-major down "
                         "projection",
                         L);
      DownUpdate U;
      U.Layer = L;
      U.Tensor = T->Name;
      U.Rows = F;
      U.Values.resize(F * D);
      std::vector<float> Row;
      for (size_t Fi = 0; Fi < F; ++Fi) {
        if (Error E = V.readRow(*T, Fi, Row))
          return std::move(E);
        for (size_t I = 0; I < D; ++I)
          U.Values[Fi * D + I] = float(double(Row[I]) + (*Delta)[Fi * D + I]);
      }
      PatchBuilder B(V);
      if (Error E = B.setRows(U.Tensor, 0, U.Values))
        return std::move(E);
      if (Error E = V.push(B.finish()))
        return std::move(E);
      if (Verbose) {
        *Verbose << formatv("memit: round {0} layer {1}: {2} keys, mean "
                            "|z - h| {3:f3}, lambda {4}, {5} preserved texts",
                            Round + 1, L, Keys, Missing / double(N),
                            Opts.Lambda, Preserved.size());
        if (Opts.AlphaEdit && Rank != size_t(-1))
          *Verbose << formatv(", null space {0} of {1}", Rank, F);
        *Verbose << "\n";
      }
      // Only AlphaEdit reads a layer's keys after its update (held for the
      // next batches); otherwise they go now, not with the other layers'.
      if (Opts.AlphaEdit)
        LastKeys[LI] = std::move(K);
      // One update per layer in the plan: a later round's replaces it.
      auto Old = llvm::find_if(
          Plan.Updates, [&](const DownUpdate &X) { return X.Layer == L; });
      if (Old != Plan.Updates.end())
        *Old = std::move(U);
      else
        Plan.Updates.push_back(std::move(U));
    }
    // Which units the update reached.
    if (Error E = M.reload())
      return std::move(E);
    // The last round asks the greedy choice alone: what "answered" means.
    double Margin = Round + 1 < Rounds ? Opts.Margin : 0.0;
    Expected<std::vector<bool>> Now = reachedMany(
        M, States, Margin, Opts.ReachAll && Round + 1 < Rounds, Opts.Jobs);
    if (!Now)
      return Now.takeError();
    Reached = std::move(*Now);
    size_t Count = llvm::count(Reached, true);
    if (Verbose)
      *Verbose << formatv("memit: round {0}: {1} of {2} units answered\n",
                          Round + 1, Count, N);
    // Guards are asked once the units are all answered: between rounds
    // an update passes through states that lose answers the next round
    // gives back (one fact on tiny-llama lost 544 of 4,596 after its first
    // round, 3 of the 1,161 trained ones at the end).
    if (Round + 1 < Rounds) {
      if (Count == N && !RepairLost())
        break;
      continue;
    }
    // The last round's update is asked too, answered or not (no round
    // follows to give anything back): what it lost is written back in
    // rounds of the repair's own (memit-repair-grants times at most; they
    // ask again whenever their units are all answered).
    if (ExtraRounds == 0 || GrantsLeft == 0) {
      LastAsked = false;
      break;
    }
    if (!RepairLost())
      break;
    Rounds += ExtraRounds;
    --GrantsLeft;
  }
  // The last update's losses, asked once more so that the record says
  // what it cost (a benchmark's trained recall is what they are; 10 x 100
  // facts on tiny-llama: 46 trained answers lost in one statement whose
  // record said every loss was written back).
  std::optional<size_t> LostLast;
  if (Opts.Repair && !LastAsked)
    LostLast = RepairLost(/*WriteBack=*/false);
  // AlphaEdit holds this batch's keys in place for the next ones.
  if (Opts.AlphaEdit) {
    Stats.Edited.resize(Layers.size());
    for (size_t LI = 0; LI < Layers.size(); ++LI) {
      size_t F = Stats.Moment[LI].size()
                     ? size_t(std::sqrt(double(Stats.Moment[LI].size())) + 0.5)
                     : 0;
      std::vector<double> &E = Stats.Edited[LI];
      if (E.empty())
        E.assign(F * F, 0.0);
      const std::vector<double> &K = LastKeys[LI];
      for (size_t J = 0; J < K.size() / F; ++J)
        for (size_t I = 0; I < F; ++I)
          for (size_t Q = 0; Q < F; ++Q)
            E[I * F + Q] += K[J * F + I] * K[J * F + Q];
    }
  }
  // What the update reached: the residual still missing at Lmax + 1.
  size_t HeldAgain = 0, HeldLost = 0, RepairUnits = 0, RepairLeft = 0;
  Plan.Answered.assign(Facts.size(), true);
  for (size_t J = 0; J < Own; ++J)
    if (!Reached[J])
      Plan.Answered[FactOf[J]] = false;
  for (size_t J = 0; J < N; ++J) {
    FactState &St = States[J];
    if (J >= HeldEnd) { // a guard answer written back: counted
      RepairUnits += 1;
      RepairLeft += !Reached[J];
      continue;
    }
    if (J >= Own) { // a held unit: counted, not recorded one by one
      HeldAgain += !St.Record.empty();
      HeldLost += !Reached[J];
      continue;
    }
    Probe P = probe(M, St.Prompts[0], St.Positions[0], Residual, std::nullopt);
    for (size_t I = 0; I < D; ++I)
      P.Residual[I] -= St.Z[I];
    St.Record += formatv(", |z - h| after the update {0:f3}{1}",
                         norm(P.Residual), Reached[J] ? "" : ", not answered")
                     .str();
    if (Verbose)
      *Verbose << St.Record << "\n";
    Plan.Record.push_back(std::move(St.Record));
  }
  if (Opts.Repair) {
    std::string Added = std::to_string(Opts.RepairRounds);
    if (Opts.RepairGrants != 1)
      Added = formatv("{0} x {1}", Opts.RepairGrants, Added).str();
    std::string Line =
        formatv("memit-repair: {0} of {1} guard answers lost and written "
                "back ({2} units, {3} not answered after the update; "
                "{4} rounds of {5} + {6})",
                llvm::count(Repairing, true), Guarded.size(), RepairUnits,
                RepairLeft, RoundsRun, BaseRounds, Added)
            .str();
    if (LostLast)
      Line +=
          formatv("; {0} lost by the last update, not written back", *LostLast)
              .str();
    if (Verbose)
      *Verbose << Line << "\n";
    Plan.Record.push_back(std::move(Line));
  }
  if (Own < HeldEnd) {
    std::string Line =
        formatv("memit: {0} units of {1} facts of earlier statements held, "
                "{2} optimised again, {3} not answered",
                HeldEnd - Own, Held.size(), HeldAgain, HeldLost)
            .str();
    if (Verbose)
      *Verbose << Line << "\n";
    Plan.Record.push_back(std::move(Line));
  }
  return Plan;
}

namespace {

/// A pseudo-random row of N uniform values scaled to norm Norm, from a
/// splitmix64 stream seeded by Seed (integer arithmetic, then one sqrt and
/// a division per value: the same bits on every machine).
std::vector<float> randomRow(size_t N, double Norm, uint64_t Seed) {
  std::vector<double> V(N);
  double Sum = 0;
  for (double &X : V) {
    Seed += 0x9e3779b97f4a7c15ULL;
    uint64_t Z = Seed;
    Z = (Z ^ (Z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    Z = (Z ^ (Z >> 27)) * 0x94d049bb133111ebULL;
    Z ^= Z >> 31;
    X = double(Z >> 11) * 0x1.0p-53 * 2 - 1;
    Sum += X * X;
  }
  std::vector<float> Row(N);
  for (size_t I = 0; I < N; ++I)
    Row[I] = float(V[I] * Norm / std::sqrt(Sum));
  return Row;
}

/// The mean norm of T's rows.
Expected<double> meanRowNorm(const TensorView &View, const TensorRecord &T) {
  uint64_t Rows = View.rows(T);
  std::vector<float> Row;
  double Sum = 0;
  for (uint64_t R = 0; R < Rows; ++R) {
    if (Error E = View.readRow(T, R, Row))
      return std::move(E);
    double S = 0;
    for (float X : Row)
      S += double(X) * X;
    Sum += std::sqrt(S);
  }
  return Rows ? Sum / double(Rows) : 0.0;
}

} // namespace

Expected<std::vector<PlannedFeature>>
appendedFeatures(const TensorView &View, ArrayRef<unsigned> Layers,
                 size_t Count) {
  std::vector<PlannedFeature> Out;
  for (unsigned L : Layers) {
    const TensorRecord *Gate = View.find(TensorRole::FFNGate, int(L));
    const TensorRecord *Up = View.find(TensorRole::FFNUp, int(L));
    if (!Gate || !Up)
      return makeError("memit-widen: layer {0} has no gated FFN", L);
    Expected<double> GateNorm = meanRowNorm(View, *Gate);
    if (!GateNorm)
      return GateNorm.takeError();
    Expected<double> UpNorm = meanRowNorm(View, *Up);
    if (!UpNorm)
      return UpNorm.takeError();
    size_t D = View.rowElements(*Gate);
    for (size_t I = 0; I < Count; ++I) {
      PlannedFeature F;
      F.Layer = L;
      F.Slot = View.ffnWidth(L) + I;
      uint64_t Seed = (uint64_t(L) << 40) ^ (F.Slot << 1);
      F.Gate = randomRow(D, *GateNorm, Seed);
      F.Up = randomRow(D, *UpNorm, Seed | 1);
      F.Down.assign(D, 0.0f);
      Out.push_back(std::move(F));
    }
  }
  return Out;
}

} // namespace edit
} // namespace vindex
