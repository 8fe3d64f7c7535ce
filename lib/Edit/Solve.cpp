//===- Solve.cpp - MODE memit's closed-form updates
//------------------------===//
//
// See Solve.h. Every sum here is added in a fixed order, one multiply then
// one addition (this file is built with -ffp-contract=off), so the blocked
// and threaded forms give the textbook loops' bits on every machine
// (MemitTest).
//
//===----------------------------------------------------------------------===//
#include "vindex/Edit/Solve.h"
#include "Internal.h"

#include "vindex/Model/Kernels.h"
#include "vindex/Support/Error.h"

#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <immintrin.h>

using namespace llvm;

namespace vindex {
namespace edit {

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
    // columns left of each; then the rows below it, each on its own (row
    // I's column J reads row I's columns left of J and the block's row J:
    // the same operations in the same order as column by column), in
    // shares on the pool's threads.
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
      for (size_t I = J + 1; I < J1; ++I) {
        double T = A[I * F + J];
        for (size_t P = J0; P < J; ++P)
          T -= A[I * F + P] * A[J * F + P];
        A[I * F + J] = T / Ljj;
      }
    }
    auto Below = [=](size_t I0, size_t I1) {
      for (size_t I = I0; I < I1; ++I)
        for (size_t J = J0; J < J1; ++J) {
          double T = A[I * F + J];
          for (size_t P = J0; P < J; ++P)
            T -= A[I * F + P] * A[J * F + P];
          A[I * F + J] = T / A[J * F + J];
        }
    };
    if (!Pool || F - J1 < 2 * B) {
      Below(J1, F);
      continue;
    }
    size_t Share = (F - J1 + Jobs - 1) / Jobs;
    for (size_t I = J1; I < F; I += Share)
      Pool->async([=] { Below(I, std::min(F, I + Share)); });
    Pool->wait();
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
/// over every J: the same operations in the same order. Fused, with fused
/// multiply-adds: the same bits where every product is exact in double, as
/// a product of two floats is (24-bit significands, 48 bits of product
/// against double's 53): the multiply then rounds nothing and the addition
/// rounds once, as the fused one does. K Kᵀ of keys the engine gave in f32
/// is such a product.
template <bool Fused>
__attribute__((target("avx512f"))) void
addProductsTile(double *Out, size_t OutStride, const double *Left,
                size_t LeftStride, const double *Right, size_t RightStride,
                size_t N) {
  __m512d Acc[8][2];
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      Acc[I][H] = _mm512_loadu_pd(Out + I * OutStride + 8 * H);
  for (size_t J = 0; J < N; ++J) {
    const double *Row = Right + J * RightStride;
    __m512d B[2] = {_mm512_loadu_pd(Row), _mm512_loadu_pd(Row + 8)};
    for (unsigned I = 0; I < 8; ++I) {
      __m512d L = _mm512_set1_pd(Left[J * LeftStride + I]);
      for (unsigned H = 0; H < 2; ++H)
        Acc[I][H] = Fused ? _mm512_fmadd_pd(L, B[H], Acc[I][H])
                          : _mm512_add_pd(Acc[I][H], _mm512_mul_pd(L, B[H]));
    }
  }
  for (unsigned I = 0; I < 8; ++I)
    for (unsigned H = 0; H < 2; ++H)
      _mm512_storeu_pd(Out + I * OutStride + 8 * H, Acc[I][H]);
}
constexpr auto addProducts8x16 = addProductsTile<false>;
constexpr auto addExactProducts8x16 = addProductsTile<true>;
#endif

/// Whether X holds a float's value exactly (not NaN).
inline bool floatExact(double X) { return double(float(X)) == X; }

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

/// Runs Task(0) ... Task(Count - 1) on Pool's threads, or here without
/// one (each task's output its own: the bits do not depend on the
/// threads).
void runTasks(size_t Count, ThreadPoolInterface *Pool,
              function_ref<void(size_t)> Task) {
  if (!Pool || Count < 2) {
    for (size_t T = 0; T < Count; ++T)
      Task(T);
    return;
  }
  for (size_t T = 0; T < Count; ++T)
    Pool->async([&Task, T] { Task(T); });
  Pool->wait();
}

} // namespace

void runTasks(size_t Count, unsigned Jobs, function_ref<void(size_t)> Task) {
  if (Jobs < 2 || Count < 2)
    return runTasks(Count, nullptr, Task);
  DefaultThreadPool Pool(hardware_concurrency(Jobs));
  runTasks(Count, &Pool, Task);
}

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
  // One pool for every block (two hand-offs a block).
  ThreadPoolInterface *Threads = Pool ? &*Pool : nullptr;
  size_t PanelCount = Wide ? (F + 15) / 16 : 0;
  std::vector<double> Panels(PanelCount * KeyBlock * 16);
  for (size_t J0 = 0; J0 < N; J0 += KeyBlock) {
    size_t Keys = std::min(KeyBlock, N - J0);
    const double *Block = K + J0 * F;
    // Whether each panel's values are floats' (then so is every product
    // of the block, and the fused tiles give the same bits).
    std::vector<char> PanelExact(PanelCount, 1);
    runTasks(PanelCount, Threads, [&](size_t P) {
      double *Panel = &Panels[P * KeyBlock * 16];
      size_t C0 = P * 16, Width = std::min<size_t>(16, F - C0);
      bool Exact = true;
      for (size_t J = 0; J < Keys; ++J) {
        std::copy_n(Block + J * F + C0, Width, Panel + J * 16);
        std::fill(Panel + J * 16 + Width, Panel + J * 16 + 16, 0.0);
        for (size_t C = 0; C < Width; ++C)
          Exact &= floatExact(Panel[J * 16 + C]);
      }
      PanelExact[P] = Exact;
    });
    bool Exact = llvm::all_of(PanelExact, [](char E) { return E != 0; });
    // The last rows' bands (which reach the most columns) first, so that
    // the threads finish together.
    runTasks(Bands, Threads, [&](size_t Task) {
      size_t T = Bands - 1 - Task;
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
            (Exact ? addExactProducts8x16 : addProducts8x16)(
                Out + I * F + C, F,
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

/// λ C + K Kᵀ = L Lᵀ into A: L below the diagonal, Lᵀ above it. A's
/// buffer is reused when it has the size (a fresh F x F one a solve was
/// page faults that cost as much as the Cholesky at F = 2000).
static Error factorUpdate(ArrayRef<double> C, double Lambda, ArrayRef<double> K,
                          size_t F, unsigned Jobs, bool Wide,
                          std::vector<double> &A) {
  size_t N = K.size() / F;
  // A = λ C + K Kᵀ (F x F, symmetric positive definite when λ C is), each
  // element's products added in key order; only the lower triangle and
  // the diagonal are read below, so each band of rows computes only the
  // columns up to its last row.
  A.resize(F * F);
  runTasks((F + BandRows - 1) / BandRows, Jobs, [&](size_t T) {
    size_t I1 = std::min(F, (T + 1) * BandRows) * F;
    for (size_t I = T * BandRows * F; I < I1; ++I)
      A[I] = Lambda * C[I];
  });
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
    return E;
  // Lᵀ into the upper triangle, so that the back substitution reads rows
  // (a column of L is F apart per element: a cache miss each).
  forUpperInTiles(F, [&](size_t I, size_t P) { A[I * F + P] = A[P * F + I]; });
  return Error::success();
}

Expected<std::vector<double>>
solveUpdate(ArrayRef<double> C, double Lambda, ArrayRef<double> K,
            ArrayRef<double> R, size_t F, size_t D, unsigned Jobs,
            UpdateFactor *Keep, std::vector<double> *Work) {
  size_t N = K.size() / F;
  if (C.size() != F * F || K.size() != N * F || R.size() != N * D)
    return makeError("memit: the update's shapes disagree");
  bool Wide = activeKernelPath() != KernelPath::AVX2;
  XXH128_hash_t Inputs{};
  if (Keep)
    Inputs = hashFactorInputs(C, Lambda, K, F);
  std::vector<double> Own;
  std::vector<double> *Factor = Work ? Work : &Own;
  if (Keep && !Keep->A.empty() && Keep->Inputs == Inputs) {
    Factor = &Keep->A;
  } else {
    if (Keep) { // refactored in place: no stale factor if it fails
      Keep->Inputs = {};
      Factor = &Keep->A;
    }
    if (Error E = factorUpdate(C, Lambda, K, F, Jobs, Wide, *Factor)) {
      Factor->clear();
      return std::move(E);
    }
    if (Keep)
      Keep->Inputs = Inputs;
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

} // namespace edit
} // namespace vindex
