//===- Checkpoint.h - A Hugging Face checkpoint as input --------*- C++ -*-===//
//
// INPUT of vindex-decompose: a checkpoint directory, a .safetensors file or a
// model.safetensors.index.json. Opening one validates every shard and the
// config, and yields the list of text-model tensors with where they live.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_CHECKPOINT_H
#define VINDEX_FORMATS_CHECKPOINT_H

#include "vindex/Formats/ModelConfig.h"
#include "vindex/Formats/Safetensors.h"

#include <memory>
#include <string>
#include <vector>

namespace vindex {

struct CheckpointTensor {
  std::string Name; ///< Name in the text model (prefix stripped).
  size_t Shard = 0; ///< Index into Checkpoint::shards().
  const SafetensorsEntry *Entry = nullptr;
};

class Checkpoint {
public:
  static llvm::Expected<std::unique_ptr<Checkpoint>>
  open(llvm::StringRef Input);

  const ModelConfig &config() const { return Config; }
  /// config.json as given.
  llvm::StringRef configText() const { return ConfigText; }
  std::string configPath() const;
  /// The checkpoint directory.
  llvm::StringRef directory() const { return Dir; }
  /// The index.json, or "" for a single file.
  llvm::StringRef indexPath() const { return IndexPath; }
  llvm::ArrayRef<std::unique_ptr<SafetensorsFile>> shards() const {
    return Shards;
  }
  /// Text-model tensors, shard by shard in file order.
  llvm::ArrayRef<CheckpointTensor> tensors() const { return Tensors; }
  /// The index's "metadata" entries, values as JSON text.
  const Metadata &indexMetadata() const { return IndexMeta; }
  /// Tensors that are not part of the text model (a vision tower).
  size_t skippedTensors() const { return Skipped; }
  /// Tokenizer and generation files present beside config.json.
  llvm::ArrayRef<std::string> auxiliaryFiles() const { return AuxFiles; }
  /// Every file read: config, index, shards, auxiliary files (for depfiles
  /// and provenance).
  std::vector<std::string> inputFiles() const;

private:
  llvm::Error load(llvm::StringRef Input);
  llvm::Error loadShards(llvm::ArrayRef<std::string> Files);
  llvm::Error loadIndex(llvm::StringRef Path);
  llvm::Error collectTensors();

  ModelConfig Config;
  std::string ConfigText;
  std::string Dir;
  std::string IndexPath;
  std::vector<std::unique_ptr<SafetensorsFile>> Shards;
  /// From the index: tensor name -> shard index, checked against the shards.
  llvm::StringMap<size_t> IndexMap;
  Metadata IndexMeta;
  std::vector<CheckpointTensor> Tensors;
  size_t Skipped = 0;
  std::vector<std::string> AuxFiles;
};

/// The files copied into a V-index when present beside config.json.
llvm::ArrayRef<llvm::StringRef> auxiliaryFileNames();

} // namespace vindex

#endif // VINDEX_FORMATS_CHECKPOINT_H
