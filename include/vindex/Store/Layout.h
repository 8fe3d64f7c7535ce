//===- Layout.h - Moving between source and V-index layouts -----*- C++ -*-===//
#ifndef VINDEX_STORE_LAYOUT_H
#define VINDEX_STORE_LAYOUT_H

#include <cstdint>

namespace vindex {

/// Dst[c][r] = Src[r][c] for a Rows x Cols row-major matrix of ElemSize-byte
/// elements (2 or 4). Cache-blocked: HF's down_proj is [hidden, features]
/// and the V-index stores it [features, hidden].
void transposeMatrix(const uint8_t *Src, uint64_t Rows, uint64_t Cols,
                     unsigned ElemSize, uint8_t *Dst);

/// The same on sub-matrices: Src rows are SrcStride elements apart, Dst rows
/// DstStride elements apart. Lets a large matrix be transposed in strips.
void transposeStrided(const uint8_t *Src, uint64_t SrcStride, uint64_t Rows,
                      uint64_t Cols, unsigned ElemSize, uint8_t *Dst,
                      uint64_t DstStride);

} // namespace vindex

#endif // VINDEX_STORE_LAYOUT_H
