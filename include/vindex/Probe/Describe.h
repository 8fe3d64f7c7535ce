//===- Describe.h - An entity's edges, computed from the model --*- C++ -*-===//
//
// DESCRIBE's computation (docs/lql.md, "DESCRIBE"). The residual method
// runs the model on each stored relation template with the entity (and on
// the entity alone) and asks which labelled features write which of the
// model's candidate tokens there: an edge is (relation, target) with the
// labelled feature that writes it most, scored by the model's logit. It never looks the entity up in the probe's facts, so it works on
// entities the probe never saw. The embedding method is LARQL's baseline:
// a KNN of the gates with the entity's token embedding, each hit reporting
// its labels and its context-free top output token.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_PROBE_DESCRIBE_H
#define VINDEX_PROBE_DESCRIBE_H

#include "vindex/Store/Labels.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vindex {

class Model;
class Tokenizer;

struct DescribeEdge {
  std::string Relation;
  /// The target as text: the promoted token completed to a whole word by
  /// the model's greedy continuation (residual method), or the feature's
  /// top output token (embedding method).
  std::string Target;
  int32_t TargetToken = -1;        ///< The promoted token.
  uint32_t Layer = 0, Feature = 0; ///< The feature that carries it most.
  /// Residual: the model's logit of the target in the edge's context.
  /// Embedding: the gate's score against the entity's embedding.
  double Score = 0;
  Band LayerBand = Band::Unlabelled;
  /// The prompt the edge was found in ("" for the embedding method).
  std::string Context;
};

struct DescribeOptions {
  /// Only edges carried by features of this layer / of layers of this
  /// band (the residual score is still the whole FFN's).
  std::optional<uint32_t> Layer;
  std::optional<Band> OnlyBand;
  /// Edges kept per relation, best first.
  unsigned PerRelation = 3;
  /// Residual: the model's top tokens at the end of each prompt, the
  /// candidate targets. Embedding: features kept per layer by the KNN.
  unsigned Candidates = 16;
  /// Residual: also run the entity alone (edges of every relation).
  bool EntityAlone = true;
  /// Threads of the forward passes (0: one per core).
  unsigned Threads = 1;
};

/// The residual method. Edges in descending score; an error if a prompt
/// is empty or longer than the model's context.
llvm::Expected<std::vector<DescribeEdge>>
describeFromResidual(const Model &M, const Tokenizer &Tok, const Labels &L,
                     llvm::StringRef Entity, const DescribeOptions &Opts);

/// The embedding baseline (USING EMBEDDING). Edges in descending score.
llvm::Expected<std::vector<DescribeEdge>>
describeFromEmbedding(const Model &M, const Tokenizer &Tok, const Labels &L,
                      llvm::StringRef Entity, const DescribeOptions &Opts);

} // namespace vindex

#endif // VINDEX_PROBE_DESCRIBE_H
