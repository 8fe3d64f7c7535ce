//===- KernelTable.h - One instruction set's kernels ------------*- C++ -*-===//
//
// The kernels of Kernels.h for one instruction set. KernelsImpl.inc is
// compiled once per instruction set (Kernels_avx2.cpp, Kernels_avx512.cpp,
// Kernels_avx512bf16.cpp, each with its own target flags) into a table of
// this type; Kernels.cpp picks one table for the process from what the CPU
// reports (or VINDEX_KERNELS) and forwards the public functions to it.
//
// The per-instruction-set files must not instantiate anything another
// translation unit may also instantiate (inline functions of headers, std::
// templates): the linker keeps one copy of such a function, which could be
// the one compiled for an instruction set this CPU lacks. They use only
// intrinsics, builtins and their own static functions, and get scratch
// memory from kernelScratch() below.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_LIB_MODEL_KERNELTABLE_H
#define VINDEX_LIB_MODEL_KERNELTABLE_H

#include "vindex/Model/Kernels.h"

namespace vindex::kernels {

struct KernelTable {
  void (*ActivateAndMultiply)(Activation A, float *G, const float *U, size_t N);
  float (*DotF32)(const float *A, const float *B, size_t N);
  void (*AxpyF32)(float A, const float *X, float *Y, size_t N);
  float (*DotRow)(const float *X, const WeightMatrix &W, size_t R);
  void (*MatmulNT)(const float *X, size_t T, size_t XStride,
                   const WeightMatrix &W, size_t N0, size_t N1, float *Y,
                   size_t YStride);
  void (*AxpyRow)(float A, const WeightMatrix &W, size_t R, float *Y);
  void (*GemmKN)(const float *X, size_t T, size_t XStride, const float *W,
                 size_t K, size_t N, size_t N0, size_t N1, float *Y,
                 size_t YStride, bool Accumulate);
  void (*MatmulNN)(const float *A, size_t T, size_t AStride,
                   const WeightMatrix &W, size_t R0, size_t R1, size_t C0,
                   size_t C1, float *Y, size_t YStride);
  void (*MatmulNTColumnChainsBF16)(const float *X, size_t T, size_t XStride,
                                   const WeightMatrix &W, size_t N0, size_t N1,
                                   float *Y, size_t YStride);
  void (*DotRowsF32)(const float *X, const float *Rows, size_t Stride,
                     size_t N, size_t K, float *Out);
  void (*AxpyRowsF32)(const float *A, const float *Rows, size_t Stride,
                      size_t N, size_t K, float *Y);
  void (*DotRowsGathered)(const float *X, const WeightMatrix &W,
                          const uint32_t *Idx, size_t N, float *Y);
  void (*AxpyRowsGathered)(const float *A, const WeightMatrix &W,
                           const uint32_t *Idx, size_t N, size_t C0, size_t C1,
                           float *Y);
};

/// The tables, defined in Kernels_<isa>.cpp (AVX-512 ones only when the
/// compiler can target them: VINDEX_HAVE_AVX512, VINDEX_HAVE_AVX512BF16).
extern const KernelTable AVX2Table;
extern const KernelTable AVX512Table;
extern const KernelTable AVX512BF16Table;

/// A thread-local buffer of at least N floats (one per Slot < 6), kept
/// between calls so that kernels allocate nothing per token.
float *kernelScratch(unsigned Slot, size_t N);

} // namespace vindex::kernels

#endif // VINDEX_LIB_MODEL_KERNELTABLE_H
