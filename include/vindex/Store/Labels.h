//===- Labels.h - Feature labels of a probed V-index ------------*- C++ -*-===//
//
// larql-probe writes labels.vfb beside the manifest (schema
// lib/Store/Labels.fbs): the relations it was given with their prompt
// templates, the entities, per-layer evidence and band, and for each
// labelled FFN feature its top input and output tokens and the relations it
// carries with their evidence. Like the manifest, code works on this plain
// C++ mirror; only Labels.cpp sees the generated accessors.
//
// The header is stable: changes are additive.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_LABELS_H
#define VINDEX_STORE_LABELS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vindex {

struct Manifest;

constexpr uint32_t kLabelsFormatVersion = 1;
constexpr llvm::StringLiteral kLabelsFileName = "labels.vfb";

/// The role of a layer, computed by the probe from its data. Same numbering
/// as the manifest's LayerRecord::Band.
enum class Band : uint8_t {
  Unlabelled = 0,
  Syntax = 1,
  Knowledge = 2,
  Output = 3
};
/// "syntax", "knowledge", "output", or "" for Unlabelled.
llvm::StringRef bandName(Band B);
/// The band named (case-insensitive), or nothing.
std::optional<Band> parseBand(llvm::StringRef Name);

/// A relation given to the probe; `{e}` in a template stands for the entity.
struct RelationInfo {
  std::string Name;
  std::string Canonical;
  std::vector<std::string> Templates;
  std::string HeldoutPrompt; ///< "" when not given.
  /// The entities the probe was given facts of with this relation, as
  /// indices into Labels::Entities, ascending; empty in templates and in
  /// labels written before they were recorded.
  std::vector<uint32_t> Entities;

  /// Canonical with every `{e}` replaced by Entity.
  std::string prompt(llvm::StringRef Entity) const;
};

struct TokenScore {
  uint32_t Token = 0;
  float Score = 0;
};

/// One relation a feature carries and the evidence for it.
struct RelationLabel {
  uint32_t Relation = 0; ///< Index into Labels::Relations.
  uint32_t Entities = 0; ///< Distinct entities where it was a top contributor.
  float MeanAttribution = 0; ///< Mean logit attribution over those facts.
  float Confidence = 0;      ///< Entities / entities probed with the relation.
  std::vector<std::string>
      Examples; ///< Targets it promoted, most credited first.
};

struct FeatureLabel {
  uint32_t Layer = 0;
  uint32_t Feature = 0;
  std::vector<TokenScore> InputTokens;  ///< Descending score.
  std::vector<TokenScore> OutputTokens; ///< Descending score.
  std::vector<RelationLabel> Relations; ///< Descending mean attribution.
};

/// What the probe measured in one layer, and the band it concluded.
struct LayerLabel {
  uint32_t Index = 0;
  vindex::Band Band = Band::Unlabelled;
  uint32_t RelationFeatures = 0; ///< Features with a relation label.
  float AttributionShare = 0;    ///< Share of all positive fact attribution.
  uint32_t LensTop10First = 0;   ///< Facts whose target first enters the
                                 ///< logit lens's top 10 at this layer.
};

/// A file the probe read, recorded by SHA-256.
struct ProbeInput {
  std::string Role; ///< "facts", "templates".
  std::string Path;
  uint64_t Size = 0;
  std::string Sha256;
};

/// The thresholds the labels were made with (docs/user-guide.md).
struct ProbeParameters {
  uint32_t TopTokens = 0;
  uint32_t TopContributors = 0;
  uint32_t MinEntities = 0;
  float MinConfidence = 0;
};

struct Labels {
  std::vector<RelationInfo> Relations;
  std::vector<std::string> Entities; ///< In probe order.
  std::vector<LayerLabel> Layers;    ///< One per model layer, in order.
  /// Ascending (Layer, Feature), each at most once.
  std::vector<FeatureLabel> Features;
  /// The text of every token id the labels use, ascending id.
  std::vector<std::pair<uint32_t, std::string>> Tokens;
  std::vector<ProbeInput> Inputs;
  ProbeParameters Parameters;
  uint32_t Facts = 0; ///< Facts attributed.

  /// The labels of a feature, or null.
  const FeatureLabel *feature(uint32_t Layer, uint32_t Feature) const;
  /// The labelled features of a layer (a slice of Features).
  llvm::ArrayRef<FeatureLabel> layerFeatures(uint32_t Layer) const;
  /// The index of the relation named, or nothing.
  std::optional<uint32_t> relation(llvm::StringRef Name) const;
  /// The index of the entity named, or nothing.
  std::optional<uint32_t> entity(llvm::StringRef Name) const;
  /// The decoded text of a token the labels use ("" if unknown).
  llvm::StringRef tokenText(uint32_t Token) const;
  /// The band of a layer (Unlabelled when out of range).
  vindex::Band band(uint32_t Layer) const;
  /// Per relation, the number of features carrying it.
  std::vector<uint32_t> relationFeatureCounts() const;
  /// Per relation, the layers (ascending, distinct) where its features sit.
  std::vector<std::vector<uint32_t>> relationLayers() const;
};

/// The flatbuffer bytes of L (deterministic for equal labels).
std::string serializeLabels(const Labels &L);
/// Verifies and converts labels.vfb: identifier, version, every index in
/// range, features in ascending order. FileName is for messages.
llvm::Expected<Labels> readLabels(llvm::ArrayRef<uint8_t> Bytes,
                                  llvm::StringRef FileName);
/// Checks L against the model it labels: one layer record per layer, each
/// feature inside its layer's width, every token inside the vocabulary.
llvm::Error checkLabels(const Labels &L, const Manifest &M,
                        llvm::StringRef FileName);

} // namespace vindex

#endif // VINDEX_STORE_LABELS_H
