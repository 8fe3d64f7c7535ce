//===- DType.h - Element types of stored tensors ----------------*- C++ -*-===//
#ifndef VINDEX_FORMATS_DTYPE_H
#define VINDEX_FORMATS_DTYPE_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace vindex {

/// The element types a V-index stores. Values are part of the on-disk format
/// (they equal the manifest schema's DType enum).
enum class DType : uint8_t { F32 = 0, F16 = 1, BF16 = 2 };

/// Safetensors spelling: "F32", "F16", "BF16".
llvm::StringRef dtypeName(DType T);
/// Bytes per element.
unsigned dtypeSize(DType T);
/// Parses a safetensors dtype name; nullopt for names we do not store.
std::optional<DType> parseDType(llvm::StringRef Name);
/// True for the dtype names safetensors defines (supported or not), so that
/// errors can say "not supported" rather than "unknown".
bool isKnownSafetensorsDType(llvm::StringRef Name);

/// Element conversions (narrowing rounds to nearest even, as ggml, numpy
/// and torch do).
inline float bf16ToFloat(uint16_t B) {
  uint32_t Bits = uint32_t(B) << 16;
  float F;
  __builtin_memcpy(&F, &Bits, 4);
  return F;
}
float f16ToFloat(uint16_t H);
uint16_t floatToF16(float F);
uint16_t floatToBF16(float F);

} // namespace vindex

#endif // VINDEX_FORMATS_DTYPE_H
