//===- RowConversion.h - Rows of tensor elements, converted -----*- C++ -*-===//
//
// The per-row conversions of GGUF output. The hot ones (bf16 -> f32,
// f32 -> f16 and Q8_0 quantization) are vectorised with AVX2 + F16C, which
// every machine of the project's kinds has; each gives exactly the bytes of
// its element-by-element definition (bf16ToFloat, floatToF16, quantizeQ8_0),
// NaNs, infinities and subnormals included.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_ROWCONVERSION_H
#define VINDEX_FORMATS_ROWCONVERSION_H

#include "vindex/Formats/DType.h"
#include "vindex/Formats/GGUF.h"

#include <cstdint>

namespace vindex {

/// N little-endian elements of type T at Src, widened to floats.
void decodeRow(const uint8_t *Src, DType T, uint64_t N, float *Dst);
/// A row of N elements of ggml type T (for Q8_0, N is a multiple of 32),
/// widened to floats.
void decodeRow(const uint8_t *Src, GGMLType T, uint64_t N, float *Dst);
/// N floats as a row of ggml type T (for Q8_0, N is a multiple of 32).
void encodeRow(const float *Src, uint64_t N, GGMLType T, uint8_t *Dst);

} // namespace vindex

#endif // VINDEX_FORMATS_ROWCONVERSION_H
