//===- Probe.h - Labelling the FFN features of a V-index --------*- C++ -*-===//
//
// What larql-probe computes (docs/user-guide.md, "larql-probe"):
//  - token labels: for every feature, the vocabulary tokens its gate reads
//    most (gate . normalised embedding) and the tokens its down vector
//    writes most (down through the final norm onto the unembedding), a
//    layer at a time;
//  - attribution: each fact's canonical prompt run through the engine, the
//    target's first-token logit credited to the features at the last
//    position (direct effect), the top contributors kept per fact;
//  - relation labels: a feature carries a relation where it was a top
//    contributor for several entities of it;
//  - layer bands from where attribution concentrates and where the logit
//    lens first ranks the target in its top 10.
// Results are reduced in a fixed order: the labels do not depend on Jobs.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_PROBE_PROBE_H
#define VINDEX_PROBE_PROBE_H

#include "vindex/Formats/ModelConfig.h"
#include "vindex/Model/Kernels.h"
#include "vindex/Store/Labels.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace vindex {

class Model;
class Tokenizer;

/// One line of a facts TSV.
struct Fact {
  std::string Entity, Relation, Target;
  unsigned Line = 0; ///< 1-based, for messages.
};

/// Reads `entity<TAB>relation<TAB>target` lines after a header line. Errors
/// name File:line and the problem.
llvm::Expected<std::vector<Fact>> parseFacts(llvm::StringRef Text,
                                             llvm::StringRef File);
/// Reads templates.json: per relation `canonical` (with `{e}`), `train`,
/// `heldout_prompt`. Relations come out in the file's order.
llvm::Expected<std::vector<RelationInfo>> parseTemplates(llvm::StringRef Text,
                                                         llvm::StringRef File);

/// The thresholds (docs/user-guide.md says why these defaults).
struct ProbeOptions {
  unsigned Jobs = 1;
  /// Input and output tokens kept per feature.
  unsigned TopTokens = 8;
  /// Features credited per fact (the largest positive attributions).
  unsigned TopContributors = 16;
  /// A relation label needs this many distinct entities...
  unsigned MinEntities = 3;
  /// ...and this share of the entities probed with the relation.
  float MinConfidence = 0.02f;
  /// Example targets kept per relation label.
  unsigned Examples = 3;
  /// Draw progress on a terminal.
  bool ShowProgress = true;
  /// Label features with their top tokens (off: relation labels only, on
  /// features without token lists; what benchmarks of attribution use).
  bool TokenLabels = true;
};

/// Where the time went, and how much was done.
struct ProbeStats {
  double TokenSeconds = 0, AttributionSeconds = 0, LensSeconds = 0,
         ForwardSeconds = 0, ReduceSeconds = 0;
  uint64_t FeaturesTokenLabelled = 0, Facts = 0, RelationLabels = 0,
           FeaturesWithRelations = 0;
};

/// The top-K tokens of each feature direction over the vocabulary.
/// Directions [N, d] (row n is feature n's direction), Vocab [V, d]; the
/// score of token t is (direction . Vocab row t) * TokenScale[t] (1 when
/// TokenScale is empty). Out gets N lists in descending score, ties to the
/// lower id. Tokens for which Skip is true are left out. Threads: Jobs.
void topTokens(llvm::ArrayRef<float> Directions, size_t N, size_t D,
               const WeightMatrix &Vocab, llvm::ArrayRef<float> TokenScale,
               unsigned K, llvm::ArrayRef<uint8_t> Skip, unsigned Jobs,
               std::vector<std::vector<TokenScore>> &Out);

/// Labels features with their top input and output tokens, a layer at a
/// time (what it holds besides the model: one layer's directions).
class TokenLabeler {
public:
  TokenLabeler(const Model &M, const Tokenizer &Tok, const ProbeOptions &Opts);
  /// Appends a label for every feature of layer L, in feature order.
  void label(unsigned L, std::vector<FeatureLabel> &Out) const;

private:
  const Model &M;
  const ProbeOptions &Opts;
  std::vector<uint8_t> Skip;
  std::vector<float> InvRMS; ///< Per token, 1 / RMS of its embedding.
};

/// The direct attribution of one layer's features to a logit: Out[i] =
/// Act[i] * Scale * (Down row i . Readout). Readout is the logit's
/// direction in this layer's output space (see readoutVector).
void layerAttribution(llvm::ArrayRef<float> Act, const WeightMatrix &Down,
                      llvm::ArrayRef<float> Readout, float Scale,
                      llvm::MutableArrayRef<float> Out);
/// The direction of token Target's logit in the final residual: the final
/// norm weight times its unembedding row, over the residual's RMS (the
/// norm as the model applied it to this residual).
std::vector<float> readoutVector(llvm::ArrayRef<float> FinalResidual,
                                 llvm::ArrayRef<float> FinalNorm,
                                 const WeightMatrix &Unembedding, size_t Target,
                                 double Eps);

/// One fact's evidence: its top contributors and the logit lens.
struct FactEvidence {
  struct Contribution {
    uint32_t Layer, Feature;
    float Attribution;
  };
  std::vector<Contribution> Top; ///< Descending attribution.
  int LensFirstTop10 = -1;       ///< First layer ranking the target top 10.
  int32_t TargetToken = -1;
};

/// The prompt's tokens and the target's first token, as the engine will
/// see them: the prompt is encoded with the model's special tokens, the
/// target is the first token where `prompt + " " + target` departs from
/// the prompt.
struct FactTokens {
  std::vector<int32_t> Prompt;
  int32_t Target = -1;
};
FactTokens factTokens(const Tokenizer &Tok, llvm::StringRef Prompt,
                      llvm::StringRef Target);

/// Runs every fact (prompts from Relations) and labels; Facts must have
/// been checked (checkFacts).
llvm::Error probe(const Model &M, const Tokenizer &Tok,
                  llvm::ArrayRef<Fact> Facts, const ProbeOptions &Opts,
                  Labels &L, ProbeStats &Stats);

/// Every fact's relation has a template with `{e}`, its prompt fits the
/// model's context, and its prompt and target tokens are rows of the
/// model's embedding. Errors name FactsFile:line.
llvm::Error checkFacts(llvm::ArrayRef<Fact> Facts,
                       llvm::ArrayRef<RelationInfo> Relations,
                       const Tokenizer &Tok, const ModelConfig &Config,
                       llvm::StringRef FactsFile);

/// The bands from the per-layer evidence already in L.Layers (attribution
/// share and logit-lens histogram); leaves them Unlabelled without facts.
void computeBands(std::vector<LayerLabel> &Layers, uint32_t Facts);

} // namespace vindex

#endif // VINDEX_PROBE_PROBE_H
