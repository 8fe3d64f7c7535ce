//===- Kernels_avx2.cpp - The kernels compiled for avx2 -------------------===//
//
// KernelsImpl.inc with this file's target flags (lib/Model/CMakeLists.txt).
//
//===----------------------------------------------------------------------===//
#define VINDEX_KERNELS_NS avx2
#define VINDEX_KERNELS_TABLE AVX2Table
#define VINDEX_KERNELS_AVX512 0
#define VINDEX_KERNELS_AVX512BF16 0
#include "KernelsImpl.inc"
