//===- Kernels.h - The arithmetic of the forward pass -----------*- C++ -*-===//
//
// f32 activations against f32 or bf16 weights. Every output element is
// computed by one call of one kernel with a fixed order of operations, and
// work is split between threads only by output element, so results do not
// depend on the thread count.
//
// The kernels are compiled for several instruction sets and one set is
// chosen for the process at run time (KernelPath): the fastest exact path
// the CPU reports, or the one VINDEX_KERNELS names. The exact paths give
// bit-identical results; see docs/benchmarks.md.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_MODEL_KERNELS_H
#define VINDEX_MODEL_KERNELS_H

#include "vindex/Formats/DType.h"
#include "vindex/Formats/ModelConfig.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace vindex {

/// An instruction set the kernels are compiled for.
enum class KernelPath {
  /// AVX2 + FMA + F16C (x86-64-v3): every machine of the project's kinds.
  AVX2,
  /// AVX-512F: the same sums as AVX2, bit for bit, in wider registers.
  AVX512,
  /// AVX-512F + BW + AVX512-BF16: as AVX512, except that bf16 weights
  /// against one to three tokens use vdpbf16ps, which rounds the
  /// activations to bf16. Inexact: never chosen unless forced, and
  /// requireExactKernels() leaves it.
  AVX512BF16,
};

/// "avx2", "avx512", "avx512bf16".
const char *kernelPathName(KernelPath P);
std::optional<KernelPath> parseKernelPath(std::string_view Name);
/// Whether P gives the bits of every other exact path.
bool kernelPathExact(KernelPath P);
/// Whether this CPU (and this build's compiler) can run P.
bool kernelPathSupported(KernelPath P);
/// The paths this CPU can run, AVX2 first.
std::vector<KernelPath> supportedKernelPaths();
/// The fastest exact path this CPU can run.
KernelPath defaultKernelPath();
/// The path in use. The first call (or kernel call) chooses it: the path
/// that the environment variable VINDEX_KERNELS names, else
/// defaultKernelPath(); naming an unknown or unsupported path is a fatal
/// error.
KernelPath activeKernelPath();
/// Use P from now on, for the whole process (false, and no change, when
/// the CPU cannot run P). Not to be called while kernels run.
bool setKernelPath(KernelPath P);
/// For code whose results are written (edits, balancer decisions, labels):
/// if an inexact path is active, switch to defaultKernelPath() (with a note
/// on stderr). Returns the path now active.
KernelPath requireExactKernels();

/// A row-major [Rows, Cols] weight matrix, f32 or bf16, in place; f16 only
/// for the vocabulary matrices the engine keeps as stored (at, dotRow and
/// matmulNTRowPanels read it).
struct WeightMatrix {
  const void *Data = nullptr;
  DType Type = DType::F32;
  size_t Rows = 0;
  size_t Cols = 0;
  /// Optional f32 copy laid out [Cols, Rows] (the transpose). When present
  /// matmulNT runs as a register-blocked GEMM over it: no horizontal sums.
  const float *Transposed = nullptr;

  const float *f32Row(size_t R) const {
    return static_cast<const float *>(Data) + R * Cols;
  }
  const uint16_t *bf16Row(size_t R) const {
    return static_cast<const uint16_t *>(Data) + R * Cols;
  }
  /// Element (R, C) as f32.
  float at(size_t R, size_t C) const;
};

/// G[i] = act(G[i]) * U[i]: the gated FFN's activation. Vectorised; each
/// value is computed by the same code wherever it sits in the array.
void activateAndMultiply(Activation A, float *G, const float *U, size_t N);

/// Dot product of two f32 vectors (the same chain as every kernel here).
float dotF32(const float *A, const float *B, size_t N);
/// Y[i] += A * X[i].
void axpyF32(float A, const float *X, float *Y, size_t N);

/// Out[j] = dotF32(X, Rows + j * Stride, K) for j < N, bit for bit (one
/// query against N cached keys), several rows at a time.
void dotRowsF32(const float *X, const float *Rows, size_t Stride, size_t N,
                size_t K, float *Out);
/// axpyF32(A[j], Rows + j * Stride, Y, K) for j < N in order, bit for bit
/// (the attention weights times N cached values), Y held in registers.
void axpyRowsF32(const float *A, const float *Rows, size_t Stride, size_t N,
                 size_t K, float *Y);

/// Dot product of X (N floats) with row R of W (f16 rows: the f32 chain
/// over the row widened).
float dotRow(const float *X, const WeightMatrix &W, size_t R);

/// Y[t][n] = dot(X[t], W[n]) for t < T, n in [N0, N1). X is [T, W.Cols] with
/// row stride XStride; Y has row stride YStride.
void matmulNT(const float *X, size_t T, size_t XStride, const WeightMatrix &W,
              size_t N0, size_t N1, float *Y, size_t YStride);

/// matmulNT's GEMM chains (those of a transposed f32 copy: each element one
/// chain of multiply-adds over k in order from zero) computed from W's rows
/// in place, f32, bf16 or f16: for bf16 rows and fewer than 4 tokens
/// (generation's LM head) straight from the rows, 16x16 blocks transposed
/// in registers; otherwise by widening 16 rows at a time into a panel. The
/// same bits as W with a Transposed copy, without the copy. For
/// vocabulary-sized matrices (the LM head), whose copies would cost more
/// to make than the statements that use them.
void matmulNTRowPanels(const float *X, size_t T, size_t XStride,
                       const WeightMatrix &W, size_t N0, size_t N1, float *Y,
                       size_t YStride);

/// Y[j] = dotRow(X, W, Rows[j]) for j < N, bit for bit: the up vectors
/// of the features a walk fires, 16 rows in flight and the next ones
/// prefetched.
void dotRowsGathered(const float *X, const WeightMatrix &W,
                     const uint32_t *Rows, size_t N, float *Y);

/// Y[c] += sum_{j<N} A[j] * W[Rows[j]][c] for c in [C0, C1), each element one
/// chain over j in order from zero added to Y once: into a zeroed Y, the
/// bits of axpyRow(A[j], W, Rows[j], Y) in order. The down vectors of the
/// features a walk fires (f32 or bf16 rows).
void axpyRowsGathered(const float *A, const WeightMatrix &W,
                      const uint32_t *Rows, size_t N, size_t C0, size_t C1,
                      float *Y);

/// Y[n] += A * W[R][n] for n < W.Cols (one feature's vector, scaled).
void axpyRow(float A, const WeightMatrix &W, size_t R, float *Y);

/// Y[t][n] = sum_k X[t][k] * W[k][n] for n in [N0, N1), W row-major [K, N]
/// f32: the register-blocked GEMM. Each element is one chain of fused
/// multiply-adds over k in order from zero.
/// With Accumulate the chains start from Y's values instead of zero (a
/// GEMM over K split into consecutive parts gives the same bits).
void gemmKN(const float *X, size_t T, size_t XStride, const float *W, size_t K,
            size_t N, size_t N0, size_t N1, float *Y, size_t YStride,
            bool Accumulate);

/// Y[t][c] += sum_{r in [R0,R1)} A[t][r] * W[r][c] for c in [C0, C1): the
/// down projection over feature-major rows. For f32 weights over all rows
/// Y must start at zero (the GEMM kernel stores rather than adds).
void matmulNN(const float *A, size_t T, size_t AStride, const WeightMatrix &W,
              size_t R0, size_t R1, size_t C0, size_t C1, float *Y,
              size_t YStride);

} // namespace vindex

#endif // VINDEX_MODEL_KERNELS_H
