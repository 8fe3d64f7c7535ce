//===- Kernels_avx512.cpp - The kernels compiled for avx512 ---------------===//
//
// KernelsImpl.inc with this file's target flags (lib/Model/CMakeLists.txt).
//
//===----------------------------------------------------------------------===//
#define VINDEX_KERNELS_NS avx512
#define VINDEX_KERNELS_TABLE AVX512Table
#define VINDEX_KERNELS_AVX512 1
#define VINDEX_KERNELS_AVX512BF16 0
#include "KernelsImpl.inc"
