//===- Kernels.cpp - The kernels' instruction set, chosen at run time -----===//
//
// The public kernels forward to the table of one instruction set
// (KernelTable.h), chosen once from what the CPU reports or from
// VINDEX_KERNELS.
//
//===----------------------------------------------------------------------===//
#include "KernelTable.h"

#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

using namespace vindex;
using namespace vindex::kernels;

namespace {

struct PathInfo {
  KernelPath Path;
  const char *Name;
  bool Exact;
  const KernelTable *Table;
};

const PathInfo Paths[] = {
    {KernelPath::AVX2, "avx2", true, &AVX2Table},
#ifdef VINDEX_HAVE_AVX512
    {KernelPath::AVX512, "avx512", true, &AVX512Table},
#else
    {KernelPath::AVX512, "avx512", true, nullptr},
#endif
#ifdef VINDEX_HAVE_AVX512BF16
    {KernelPath::AVX512BF16, "avx512bf16", false, &AVX512BF16Table},
#else
    {KernelPath::AVX512BF16, "avx512bf16", false, nullptr},
#endif
};

const PathInfo &info(KernelPath P) { return Paths[unsigned(P)]; }

bool cpuHas(KernelPath P) {
  __builtin_cpu_init();
  bool AVX2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (P) {
  case KernelPath::AVX2:
    return AVX2;
  case KernelPath::AVX512:
    return AVX2 && __builtin_cpu_supports("avx512f");
  case KernelPath::AVX512BF16:
    return AVX2 && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
  }
  return false;
}

KernelPath initialPath() {
  if (const char *Env = std::getenv("VINDEX_KERNELS"); Env && *Env) {
    std::optional<KernelPath> P = parseKernelPath(Env);
    if (!P)
      llvm::report_fatal_error(
          llvm::Twine("VINDEX_KERNELS=") + Env +
              ": unknown kernel path (avx2, avx512 or avx512bf16)",
          /*gen_crash_diag=*/false);
    if (!kernelPathSupported(*P))
      llvm::report_fatal_error(llvm::Twine("VINDEX_KERNELS=") + Env +
                                   ": this CPU or build cannot run it",
                               /*gen_crash_diag=*/false);
    return *P;
  }
  return defaultKernelPath();
}

std::atomic<const PathInfo *> &active() {
  static std::atomic<const PathInfo *> Active{&info(initialPath())};
  return Active;
}

inline const KernelTable &table() {
  return *active().load(std::memory_order_relaxed)->Table;
}

} // namespace

const char *vindex::kernelPathName(KernelPath P) { return info(P).Name; }

std::optional<KernelPath> vindex::parseKernelPath(std::string_view Name) {
  for (const PathInfo &I : Paths)
    if (Name == I.Name)
      return I.Path;
  return std::nullopt;
}

bool vindex::kernelPathExact(KernelPath P) { return info(P).Exact; }

bool vindex::kernelPathSupported(KernelPath P) {
  return info(P).Table && cpuHas(P);
}

std::vector<KernelPath> vindex::supportedKernelPaths() {
  std::vector<KernelPath> Out;
  for (const PathInfo &I : Paths)
    if (kernelPathSupported(I.Path))
      Out.push_back(I.Path);
  return Out;
}

KernelPath vindex::defaultKernelPath() {
  return kernelPathSupported(KernelPath::AVX512) ? KernelPath::AVX512
                                                 : KernelPath::AVX2;
}

KernelPath vindex::activeKernelPath() { return active().load()->Path; }

bool vindex::setKernelPath(KernelPath P) {
  if (!kernelPathSupported(P))
    return false;
  active().store(&info(P));
  return true;
}

KernelPath vindex::requireExactKernels() {
  KernelPath P = activeKernelPath();
  if (kernelPathExact(P))
    return P;
  KernelPath D = defaultKernelPath();
  llvm::errs() << "note: kernel path " << kernelPathName(P)
               << " is inexact; using " << kernelPathName(D)
               << " for results that are written\n";
  setKernelPath(D);
  return D;
}

float *vindex::kernels::kernelScratch(unsigned Slot, size_t N) {
  thread_local std::vector<float> Buffers[6];
  std::vector<float> &B = Buffers[Slot];
  if (B.size() < N)
    B.resize(N);
  return B.data();
}

float WeightMatrix::at(size_t R, size_t C) const {
  if (Type == DType::F16) // exact
    return f16ToFloat(bf16Row(R)[C]);
  return Type == DType::BF16 ? bf16ToFloat(bf16Row(R)[C]) : f32Row(R)[C];
}

/// Row R of W as f32 (exact for each type). The vocabulary matrices' rows
/// only; the per-instruction-set kernels widen bf16 in registers.
static void rowToF32(const WeightMatrix &W, size_t R, float *Out) {
  if (W.Type == DType::F32) {
    std::memcpy(Out, W.f32Row(R), W.Cols * sizeof(float));
    return;
  }
  for (size_t I = 0; I < W.Cols; ++I)
    Out[I] = W.at(R, I);
}

void vindex::activateAndMultiply(Activation A, float *G, const float *U,
                                 size_t N) {
  table().ActivateAndMultiply(A, G, U, N);
}

float vindex::dotF32(const float *A, const float *B, size_t N) {
  return table().DotF32(A, B, N);
}

void vindex::axpyF32(float A, const float *X, float *Y, size_t N) {
  table().AxpyF32(A, X, Y, N);
}

float vindex::dotRow(const float *X, const WeightMatrix &W, size_t R) {
  if (W.Type == DType::F16) { // the f32 chain over the row widened
    float *Row = kernelScratch(1, W.Cols);
    rowToF32(W, R, Row);
    WeightMatrix Widened{Row, DType::F32, 1, W.Cols};
    return table().DotRow(X, Widened, 0);
  }
  return table().DotRow(X, W, R);
}

void vindex::matmulNT(const float *X, size_t T, size_t XStride,
                      const WeightMatrix &W, size_t N0, size_t N1, float *Y,
                      size_t YStride) {
  table().MatmulNT(X, T, XStride, W, N0, N1, Y, YStride);
}

void vindex::matmulNTRowPanels(const float *X, size_t T, size_t XStride,
                               const WeightMatrix &W, size_t N0, size_t N1,
                               float *Y, size_t YStride) {
  // Few tokens against bf16 rows (generation's LM head): the same chains
  // with 16x16 blocks transposed in registers; widening rows into a panel
  // in memory cost more than reading them.
  if (W.Type == DType::BF16 && T < 4)
    return table().MatmulNTColumnChainsBF16(X, T, XStride, W, N0, N1, Y,
                                            YStride);
  const size_t K = W.Cols;
  constexpr size_t P = 16;
  // Scratch slots 2 and 3: gemmKN's kernels use the lower ones.
  float *Panel = kernelScratch(2, K * P);
  float *Row = kernelScratch(3, K);
  for (size_t N = N0; N < N1; N += P) {
    size_t Width = std::min(P, N1 - N);
    for (size_t R = 0; R < Width; ++R) {
      rowToF32(W, N + R, Row);
      for (size_t I = 0; I < K; ++I)
        Panel[I * Width + R] = Row[I];
    }
    gemmKN(X, T, XStride, Panel, K, Width, 0, Width, Y + N, YStride,
           /*Accumulate=*/false);
  }
}

void vindex::dotRowsF32(const float *X, const float *Rows, size_t Stride,
                        size_t N, size_t K, float *Out) {
  table().DotRowsF32(X, Rows, Stride, N, K, Out);
}

void vindex::axpyRowsF32(const float *A, const float *Rows, size_t Stride,
                         size_t N, size_t K, float *Y) {
  table().AxpyRowsF32(A, Rows, Stride, N, K, Y);
}

void vindex::dotRowsGathered(const float *X, const WeightMatrix &W,
                             const uint32_t *Rows, size_t N, float *Y) {
  if (W.Type == DType::F16) {
    for (size_t J = 0; J < N; ++J)
      Y[J] = dotRow(X, W, Rows[J]);
    return;
  }
  table().DotRowsGathered(X, W, Rows, N, Y);
}

void vindex::axpyRowsGathered(const float *A, const WeightMatrix &W,
                              const uint32_t *Rows, size_t N, size_t C0,
                              size_t C1, float *Y) {
  table().AxpyRowsGathered(A, W, Rows, N, C0, C1, Y);
}

void vindex::axpyRow(float A, const WeightMatrix &W, size_t R, float *Y) {
  table().AxpyRow(A, W, R, Y);
}

void vindex::gemmKN(const float *X, size_t T, size_t XStride, const float *W,
                    size_t K, size_t N, size_t N0, size_t N1, float *Y,
                    size_t YStride, bool Accumulate) {
  table().GemmKN(X, T, XStride, W, K, N, N0, N1, Y, YStride, Accumulate);
}

void vindex::matmulNN(const float *A, size_t T, size_t AStride,
                      const WeightMatrix &W, size_t R0, size_t R1, size_t C0,
                      size_t C1, float *Y, size_t YStride) {
  table().MatmulNN(A, T, AStride, W, R0, R1, C0, C1, Y, YStride);
}
