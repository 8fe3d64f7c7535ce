//===- Architecture.cpp - Lists derived from Architectures.def ------------===//
#include "vindex/Formats/Architecture.h"

#include "llvm/ADT/STLExtras.h"

using namespace llvm;

namespace vindex {

namespace {

enum ArchId : unsigned {
#define ARCH(Id, ...) Id,
#include "vindex/Formats/Architectures.def"
};

constexpr ArchitectureInfo Table[] = {
#define ARCH(Id, ModelType, HFClass, GGUFName, Gemma, Window, QKNorm, QKVBias, \
             Tied, RopeTheta, LlamaConverter)                                  \
  {ModelType, HFClass, GGUFName, Gemma,     WindowStyle::Window,               \
   QKNorm,    QKVBias, Tied,     RopeTheta, LlamaConverter},
#include "vindex/Formats/Architectures.def"
};

constexpr ArchitectureWrapper Wrappers[] = {
#define WRAPPER(ModelType, TextId, ConfigKey, TensorPrefix)                    \
  {ModelType, &Table[TextId], ConfigKey, TensorPrefix},
#include "vindex/Formats/Architectures.def"
};

constexpr StringRef ModelTypes[] = {
#define ARCH(Id, ModelType, ...) ModelType,
#define WRAPPER(ModelType, ...) ModelType,
#include "vindex/Formats/Architectures.def"
};

} // namespace

ArrayRef<ArchitectureInfo> architectures() { return Table; }

const ArchitectureInfo *findArchitecture(StringRef ModelType) {
  const ArchitectureInfo *A = find_if(Table, [&](const ArchitectureInfo &A) {
    return A.ModelType == ModelType;
  });
  return A == std::end(Table) ? nullptr : A;
}

const ArchitectureWrapper *findArchitectureWrapper(StringRef ModelType) {
  const ArchitectureWrapper *W =
      find_if(Wrappers, [&](const ArchitectureWrapper &W) {
        return W.ModelType == ModelType;
      });
  return W == std::end(Wrappers) ? nullptr : W;
}

ArrayRef<StringRef> supportedModelTypes() { return ModelTypes; }

const ArchitectureInfo *findGGUFArchitecture(StringRef GGUFName,
                                             bool Windowed) {
  const ArchitectureInfo *Found = nullptr;
  for (const ArchitectureInfo &A : Table) {
    if (A.GGUFName != GGUFName)
      continue;
    if ((A.Window == WindowStyle::AllLayers) == Windowed)
      return &A;
    if (!Found && A.Window != WindowStyle::AllLayers)
      Found = &A;
  }
  return Found;
}

std::string ggufArchitectureList() {
  std::string List;
  for (size_t I = 0; I < std::size(Table); ++I)
    if (none_of(ArrayRef(Table).take_front(I), [&](const ArchitectureInfo &A) {
          return A.GGUFName == Table[I].GGUFName;
        }))
      List += (List.empty() ? "" : ", ") + Table[I].GGUFName.str();
  return List;
}

} // namespace vindex
