//===- Architecture.h - What each supported family is -----------*- C++ -*-===//
//
// The facts the code branches on, per architecture, from one table
// (Architectures.def): names in config.json, transformers and llama.cpp,
// config.json defaults, and what llama.cpp's converter does to it.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_ARCHITECTURE_H
#define VINDEX_FORMATS_ARCHITECTURE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace vindex {

/// How a family configures sliding-window attention.
enum class WindowStyle : uint8_t {
  None,        ///< Every layer sees every earlier token (Llama).
  Interleaved, ///< layer_types, or every Nth layer global (Gemma 3).
  AllLayers,   ///< sliding_window applies to every layer (Mistral).
  OptIn,       ///< use_sliding_window, from max_window_layers on (Qwen).
};

/// One row of Architectures.def (see there for each field).
struct ArchitectureInfo {
  llvm::StringRef ModelType;
  llvm::StringRef HFClass;
  llvm::StringRef GGUFName;
  bool Gemma;
  WindowStyle Window;
  bool QKNorm;
  bool QKVBias;
  bool Tied;
  double RopeTheta;
  bool LlamaConverter;
};

/// A checkpoint wrapping a text model (WRAPPER rows).
struct ArchitectureWrapper {
  llvm::StringRef ModelType;
  const ArchitectureInfo *Text;
  llvm::StringRef ConfigKey;
  llvm::StringRef TensorPrefix;
};

/// The text architectures, in table order.
llvm::ArrayRef<ArchitectureInfo> architectures();
/// The architecture of a config.json model_type (ModelConfig::Architecture),
/// or null.
const ArchitectureInfo *findArchitecture(llvm::StringRef ModelType);
/// The wrapper of a config.json model_type, or null.
const ArchitectureWrapper *findArchitectureWrapper(llvm::StringRef ModelType);
/// Every model_type config.json may name, architectures and wrappers, in
/// table order.
llvm::ArrayRef<llvm::StringRef> supportedModelTypes();

/// The architecture a GGUF of llama.cpp architecture GGUFName describes:
/// the one written under that name, or, for a GGUF with a sliding window,
/// the one whose window covers every layer if there is one (Mistral for
/// "llama"; outside Gemma our GGUFs slide over every layer). Null if none.
const ArchitectureInfo *findGGUFArchitecture(llvm::StringRef GGUFName,
                                             bool Windowed);
/// llama.cpp's architecture names we read, in table order, for messages.
std::string ggufArchitectureList();

} // namespace vindex

#endif // VINDEX_FORMATS_ARCHITECTURE_H
