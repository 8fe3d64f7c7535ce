//===- Transpose.h - The one matrix transpose -------------------*- C++ -*-===//
//
// Every consumer that needs a matrix the other way round calls these: the
// V-index stores HF's down_proj [hidden, features] as [features, hidden]
// (decompose and both compiles), and the engine keeps a transposed f32 copy
// of small models' matrices for its GEMM kernel.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_TRANSPOSE_H
#define VINDEX_SUPPORT_TRANSPOSE_H

#include <cstdint>

namespace vindex {

/// Dst[c][r] = Src[r][c] for a Rows x Cols row-major matrix of ElemSize-byte
/// elements (2 or 4). Cache-blocked and vectorised.
void transposeMatrix(const uint8_t *Src, uint64_t Rows, uint64_t Cols,
                     unsigned ElemSize, uint8_t *Dst);

/// The same on sub-matrices: Src rows are SrcStride elements apart, Dst rows
/// DstStride elements apart. Lets a large matrix be transposed in strips.
void transposeStrided(const uint8_t *Src, uint64_t SrcStride, uint64_t Rows,
                      uint64_t Cols, unsigned ElemSize, uint8_t *Dst,
                      uint64_t DstStride);

} // namespace vindex

#endif // VINDEX_SUPPORT_TRANSPOSE_H
