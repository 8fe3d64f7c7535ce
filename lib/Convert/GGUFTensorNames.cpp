//===- GGUFTensorNames.cpp - Names from GGUFTensorNames.def ---------------===//
#include "GGUFTensorNames.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace llvm;

namespace vindex {

namespace {

constexpr TensorNameRow GlobalRows[] = {
#define GGUF_GLOBAL(Role, Name) {TensorRole::Role, Name},
#include "GGUFTensorNames.def"
};

/// Per-layer rows: every GGUF_LAYER row, and for Gemma the GGUF_GEMMA rows
/// in their roles' places.
struct LayerRow {
  TensorRole Role;
  StringLiteral Name;
  bool Gemma;
};
constexpr LayerRow LayerRows[] = {
#define GGUF_LAYER(Role, Suffix) {TensorRole::Role, Suffix, false},
#define GGUF_GEMMA(Role, Suffix) {TensorRole::Role, Suffix, true},
#include "GGUFTensorNames.def"
};

constexpr StringLiteral LayerPrefix = "blk.";

bool appliesTo(const LayerRow &R, const ArchitectureInfo &Arch) {
  if (R.Gemma)
    return Arch.Gemma;
  return !Arch.Gemma || none_of(LayerRows, [&](const LayerRow &O) {
    return O.Gemma && O.Role == R.Role;
  });
}

} // namespace

StringRef ggufGlobalTensorName(TensorRole Role) {
  for (const TensorNameRow &R : GlobalRows)
    if (R.Role == Role)
      return R.Name;
  return "";
}

std::string ggufTensorName(const ArchitectureInfo &Arch, TensorRole Role,
                           int Layer) {
  if (StringRef Global = ggufGlobalTensorName(Role); !Global.empty())
    return Global.str();
  if (Layer < 0)
    return "";
  for (const LayerRow &R : LayerRows)
    if (R.Role == Role && appliesTo(R, Arch))
      return formatv("{0}{1}.{2}", LayerPrefix, Layer, R.Name);
  return "";
}

std::optional<TensorClass> classifyGGUFTensor(const ArchitectureInfo &Arch,
                                              StringRef Name) {
  for (const TensorNameRow &R : GlobalRows)
    if (R.Name == Name)
      return TensorClass{R.Role, -1};
  StringRef Rest = Name;
  unsigned Layer;
  if (!Rest.consume_front(LayerPrefix))
    return std::nullopt;
  // "blk.01" must not alias "blk.1": only canonical numbers are layers.
  if (Rest.size() > 1 && Rest[0] == '0' && Rest[1] != '.')
    return std::nullopt;
  if (Rest.consumeInteger(10, Layer) || !Rest.consume_front("."))
    return std::nullopt;
  for (const LayerRow &R : LayerRows)
    if (R.Name == Rest && appliesTo(R, Arch))
      return TensorClass{R.Role, int(Layer)};
  return std::nullopt;
}

unsigned ggufGlobalRank(StringRef Name) {
  for (unsigned I = 0; I < std::size(GlobalRows); ++I)
    if (GlobalRows[I].Name == Name)
      return I;
  return Name == kGGUFRopeFreqsName ? std::size(GlobalRows)
                                    : std::size(GlobalRows) + 1;
}

} // namespace vindex
