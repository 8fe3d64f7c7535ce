//===- Manifest.h - The V-index manifest in memory --------------*- C++ -*-===//
//
// manifest.vfb is a flatbuffer (schema lib/Store/Manifest.fbs). Tools work
// on this plain C++ mirror and convert at the edges, so that no code outside
// Manifest.cpp depends on generated accessors.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_MANIFEST_H
#define VINDEX_STORE_MANIFEST_H

#include "vindex/Formats/DType.h"
#include "vindex/Formats/ModelConfig.h"
#include "vindex/Formats/Safetensors.h"
#include "vindex/Formats/TensorRole.h"

#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace vindex {

/// Bumped on every change a reader must know about. A V-index without
/// patches is written as version 1 (what earlier builds read); one with
/// patches as version 2, which earlier builds refuse rather than ignore the
/// patches.
constexpr uint32_t kVindexFormatVersion = 1;
constexpr uint32_t kVindexFormatVersionPatches = 2;
/// The directory of persisted patches in a V-index.
constexpr llvm::StringLiteral kPatchDirectory = "patches";
constexpr llvm::StringLiteral kManifestFileName = "manifest.vfb";
/// Uncompressed payloads start at multiples of this (mmap-able, SIMD-able).
constexpr uint64_t kPayloadAlignment = 64;

enum class Codec : uint8_t { None = 0, ZstdShuffle = 1 };

struct TensorRecord {
  std::string Name;
  TensorRole Role = TensorRole::Other;
  int Layer = -1;
  DType Type = DType::F32;
  Shape Dims;
  bool Transposed = false;
  std::string File;
  uint64_t Offset = 0;
  uint64_t StoredLength = 0;
  uint64_t Length = 0;
  Codec Compression = Codec::None;
  uint64_t CodecChunk = 0;
  uint64_t Checksum = 0;
  uint32_t SourceShard = 0;

  /// The shape in the source checkpoint (down is stored transposed).
  Shape sourceDims() const;
};

struct ShardRecord {
  std::string Name;
  Metadata Meta;
};

struct LayerRecord {
  uint32_t Index = 0;
  uint64_t Features = 0;
  uint8_t Band = 0;
};

struct AuxFileRecord {
  std::string Name;
  uint64_t Length = 0;
  uint64_t Checksum = 0;
};

struct SourceFileRecord {
  std::string Path;
  uint64_t Size = 0;
  std::string Sha256;
};

struct ProvenanceRecord {
  std::string Tool;
  std::string Version;
  std::string CommandLine;
  std::vector<SourceFileRecord> Sources;
};

/// What a patch changes in one tensor.
struct PatchedTensorRecord {
  std::string Name;
  int Layer = -1;
  /// Rows before the patch; appended rows start here.
  uint64_t BaseRows = 0;
  /// Replaced rows (< BaseRows), ascending.
  std::vector<uint64_t> Rows;
  uint64_t AppendedRows = 0;
  /// Non-empty: the patch creates the tensor as a copy of this one (the
  /// untied output matrix; Patch.h, TensorEdit::CopyOf).
  std::string CopyOf;
};

/// A persisted patch: its file under patches/ and what it changes.
struct PatchRecord {
  std::string Name;
  std::string Description;
  /// Relative to the V-index directory: "patches/NNNN.vpatch".
  std::string File;
  uint64_t Length = 0;
  /// Chunked xxh3 of the file's bytes (as tensor payloads).
  uint64_t Checksum = 0;
  /// The statement text that made it and the script's SHA-256 (hex).
  std::string Statement;
  std::string ScriptSha256;
  std::vector<PatchedTensorRecord> Tensors;
};

/// labels.vfb, the probe's tables (Labels.h), and what made it.
struct LabelsFileRecord {
  std::string File; ///< "labels.vfb"
  uint64_t Length = 0;
  /// Chunked xxh3 of the file's bytes (as tensor payloads).
  uint64_t Checksum = 0;
  std::string CommandLine;
  /// The probe's inputs by SHA-256.
  std::vector<SourceFileRecord> Sources;
};

/// One layer's key statistics under stats/ (larql-probe --key-stats;
/// docs/vindex-format.md, "Key statistics").
struct KeyStatsRecord {
  std::string File; ///< "stats/key-LNNN.f64"
  uint64_t Length = 0;
  /// Chunked xxh3 of the file's bytes (as tensor payloads).
  uint64_t Checksum = 0;
  uint32_t Layer = 0;
  /// The layer's FFN width when measured: the file holds F (F + 1) / 2
  /// doubles.
  uint64_t Features = 0;
  uint64_t Positions = 0;
  /// keyStatsWeightsIdentity of the weights measured (Store/KeyStats.h).
  uint64_t Weights = 0;
  std::string Corpus;
  std::string CorpusSha256;
  std::string CommandLine;
};

struct Manifest {
  uint32_t FormatVersion = kVindexFormatVersion;
  ModelConfig Config;
  std::vector<TensorRecord> Tensors;
  std::vector<ShardRecord> Shards;
  std::vector<LayerRecord> Layers;
  std::vector<AuxFileRecord> Files;
  ProvenanceRecord Provenance;
  std::vector<PatchRecord> Patches;
  Metadata IndexMetadata;
  bool SourceIndex = false;
  /// Present once larql-probe has labelled the V-index.
  std::optional<LabelsFileRecord> LabelsFile;
  /// Key statistics per layer, ascending layer (larql-probe --key-stats).
  std::vector<KeyStatsRecord> KeyStats;
};

/// The flatbuffer bytes of M (deterministic for equal manifests).
std::string serializeManifest(const Manifest &M);
/// Verifies and converts a manifest.vfb. FileName is for messages.
llvm::Expected<Manifest> parseManifest(llvm::ArrayRef<uint8_t> Bytes,
                                       llvm::StringRef FileName);

} // namespace vindex

#endif // VINDEX_STORE_MANIFEST_H
