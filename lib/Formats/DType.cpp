//===- DType.cpp ----------------------------------------------------------===//
#include "vindex/Formats/DType.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/ErrorHandling.h"

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

} // namespace vindex
