//===- Kernels_avx512bf16.cpp - The kernels compiled for avx512bf16 -------===//
//
// KernelsImpl.inc with this file's target flags (lib/Model/CMakeLists.txt).
//
//===----------------------------------------------------------------------===//
#define VINDEX_KERNELS_NS avx512bf16
#define VINDEX_KERNELS_TABLE AVX512BF16Table
#define VINDEX_KERNELS_AVX512 1
#define VINDEX_KERNELS_AVX512BF16 1
#include "KernelsImpl.inc"
