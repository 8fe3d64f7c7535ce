//===- Compile.h - V-index -> model files -----------------------*- C++ -*-===//
#ifndef VINDEX_CONVERT_COMPILE_H
#define VINDEX_CONVERT_COMPILE_H

#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace vindex {

class TensorView;
class Vindex;

/// Writes a Hugging Face checkpoint directory (config.json, the safetensors
/// shards of the source with their index, tokenizer files) atomically. For
/// an unpatched V-index every tensor equals the source byte for byte.
llvm::Error compileSafetensors(const Vindex &V, llvm::StringRef OutDir,
                               unsigned Jobs);
/// The same for the tensors the view shows: unpatched tensors keep their
/// fast paths, patched ones stream through the view. When a layer's FFN
/// width differs from the config's, config.json is written from the config
/// with intermediate_size the widest layer's, narrower layers padded with
/// zero rows (which contribute exactly 0).
llvm::Error compileSafetensors(const TensorView &V, llvm::StringRef OutDir,
                               unsigned Jobs);

/// Element type of the matrices in a GGUF (1-D tensors are always F32).
/// Auto keeps each matrix's stored type.
enum class GGUFOutputType { Auto, F32, F16, BF16, Q8_0 };
std::optional<GGUFOutputType> parseGGUFOutputType(llvm::StringRef Name);

/// Writes a GGUF file for llama.cpp atomically: general.* metadata, the
/// hyperparameters llama.cpp reads, the tokenizer from tokenizer.json and
/// every tensor under llama.cpp's name with its transforms. The bytes depend
/// only on the V-index and Type.
llvm::Error compileGGUF(const Vindex &V, llvm::StringRef Path,
                        GGUFOutputType Type, unsigned Jobs);
/// The same through a view (feed_forward_length and padding as
/// compileSafetensors).
llvm::Error compileGGUF(const TensorView &V, llvm::StringRef Path,
                        GGUFOutputType Type, unsigned Jobs);

} // namespace vindex

#endif // VINDEX_CONVERT_COMPILE_H
