//===- DType.cpp ----------------------------------------------------------===//
#include "vindex/Formats/DType.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/ErrorHandling.h"

#include <cmath>
#include <cstring>

using namespace llvm;

namespace vindex {

StringRef dtypeName(DType T) {
  switch (T) {
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  }
  llvm_unreachable("bad dtype");
}

unsigned dtypeSize(DType T) {
  switch (T) {
  case DType::F32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  }
  llvm_unreachable("bad dtype");
}

std::optional<DType> parseDType(StringRef Name) {
  return StringSwitch<std::optional<DType>>(Name)
      .Case("F32", DType::F32)
      .Case("F16", DType::F16)
      .Case("BF16", DType::BF16)
      .Default(std::nullopt);
}

bool isKnownSafetensorsDType(StringRef Name) {
  return StringSwitch<bool>(Name)
      .Cases("BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", true)
      .Cases("U64", "F64", "F32", "F16", "BF16", true)
      .Cases("F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", true)
      .Default(false);
}

// Round to nearest even, as ggml, numpy and torch do.
float f16ToFloat(uint16_t H) {
  uint32_t Sign = uint32_t(H & 0x8000) << 16;
  uint32_t Exp = (H >> 10) & 0x1f, Man = H & 0x3ff;
  uint32_t Bits;
  if (Exp == 0) {
    if (Man == 0) {
      Bits = Sign;
    } else {
      float F = std::ldexp(float(Man), -24);
      return Sign ? -F : F;
    }
  } else if (Exp == 31) {
    Bits = Sign | 0x7f800000 | (Man << 13);
  } else {
    Bits = Sign | ((Exp + 112) << 23) | (Man << 13);
  }
  float F;
  std::memcpy(&F, &Bits, 4);
  return F;
}

uint16_t floatToF16(float F) {
  uint32_t X;
  std::memcpy(&X, &F, 4);
  uint32_t Sign = (X >> 16) & 0x8000;
  uint32_t Abs = X & 0x7fffffff;
  if (Abs >= 0x7f800000) // inf, nan
    return Sign | (Abs > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (Abs >= 0x477ff000) // rounds to infinity
    return Sign | 0x7c00;
  if (Abs < 0x38800000) { // half subnormal (exact scaling, then RNE)
    float A;
    std::memcpy(&A, &Abs, 4);
    return Sign | uint16_t(std::nearbyint(A * 16777216.0f));
  }
  uint32_t M = Abs - 0x38000000;
  return Sign | uint16_t((M + 0xfff + ((M >> 13) & 1)) >> 13);
}

uint16_t floatToBF16(float F) {
  uint32_t X;
  std::memcpy(&X, &F, 4);
  if ((X & 0x7fffffff) > 0x7f800000)
    return uint16_t((X >> 16) | 0x40);
  return uint16_t((X + 0x7fff + ((X >> 16) & 1)) >> 16);
}

} // namespace vindex
