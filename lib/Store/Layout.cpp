//===- Layout.cpp ---------------------------------------------------------===//
#include "vindex/Store/Layout.h"

#include <algorithm>
#include <cstring>

namespace vindex {

template <typename T>
static void transposeBlocked(const T *Src, uint64_t Rows, uint64_t Cols,
                             T *Dst) {
  // 64x64 blocks of 2-4 byte elements stay within L1 on both sides.
  constexpr uint64_t Block = 64;
  for (uint64_t R0 = 0; R0 < Rows; R0 += Block) {
    uint64_t R1 = std::min(Rows, R0 + Block);
    for (uint64_t C0 = 0; C0 < Cols; C0 += Block) {
      uint64_t C1 = std::min(Cols, C0 + Block);
      for (uint64_t R = R0; R < R1; ++R)
        for (uint64_t C = C0; C < C1; ++C)
          Dst[C * Rows + R] = Src[R * Cols + C];
    }
  }
}

void transposeMatrix(const uint8_t *Src, uint64_t Rows, uint64_t Cols,
                     unsigned ElemSize, uint8_t *Dst) {
  if (ElemSize == 2)
    transposeBlocked(reinterpret_cast<const uint16_t *>(Src), Rows, Cols,
                     reinterpret_cast<uint16_t *>(Dst));
  else
    transposeBlocked(reinterpret_cast<const uint32_t *>(Src), Rows, Cols,
                     reinterpret_cast<uint32_t *>(Dst));
}

} // namespace vindex
