//===- Labels.cpp - labels.vfb <-> Labels ---------------------------------===//
#include "vindex/Store/Labels.h"

#include "Unaligned.h"
#include "vindex/Store/Labels_generated.h"
#include "vindex/Store/Manifest.h"
#include "vindex/Support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

using namespace llvm;
namespace lfb = vindex::fb::labels;

namespace vindex {

StringRef bandName(Band B) {
  switch (B) {
  case Band::Syntax:
    return "syntax";
  case Band::Knowledge:
    return "knowledge";
  case Band::Output:
    return "output";
  case Band::Unlabelled:
    break;
  }
  return "";
}

std::optional<Band> parseBand(StringRef Name) {
  for (Band B : {Band::Syntax, Band::Knowledge, Band::Output})
    if (Name.equals_insensitive(bandName(B)))
      return B;
  return std::nullopt;
}

std::string RelationInfo::prompt(StringRef Entity) const {
  std::string Out;
  StringRef Rest = Canonical;
  for (size_t At; (At = Rest.find("{e}")) != StringRef::npos;) {
    Out += Rest.take_front(At);
    Out += Entity;
    Rest = Rest.drop_front(At + 3);
  }
  Out += Rest;
  return Out;
}

static bool featureLess(const FeatureLabel &F,
                        std::pair<uint32_t, uint32_t> K) {
  return std::make_pair(F.Layer, F.Feature) < K;
}

const FeatureLabel *Labels::feature(uint32_t Layer, uint32_t Feature) const {
  auto It =
      llvm::lower_bound(Features, std::make_pair(Layer, Feature), featureLess);
  if (It == Features.end() || It->Layer != Layer || It->Feature != Feature)
    return nullptr;
  return &*It;
}

ArrayRef<FeatureLabel> Labels::layerFeatures(uint32_t Layer) const {
  auto Begin =
      llvm::lower_bound(Features, std::make_pair(Layer, 0u), featureLess);
  auto End = std::find_if(Begin, Features.end(), [&](const FeatureLabel &F) {
    return F.Layer != Layer;
  });
  // Through data(), not &*Begin: Begin may be end() (no labelled feature in
  // this layer or after it).
  return ArrayRef<FeatureLabel>(Features.data() + (Begin - Features.begin()),
                                End - Begin);
}

std::optional<uint32_t> Labels::relation(StringRef Name) const {
  for (size_t I = 0; I < Relations.size(); ++I)
    if (Relations[I].Name == Name)
      return I;
  return std::nullopt;
}

std::optional<uint32_t> Labels::entity(StringRef Name) const {
  for (size_t I = 0; I < Entities.size(); ++I)
    if (Entities[I] == Name)
      return I;
  return std::nullopt;
}

StringRef Labels::tokenText(uint32_t Token) const {
  auto It = llvm::lower_bound(Tokens, Token,
                              [](const std::pair<uint32_t, std::string> &T,
                                 uint32_t Id) { return T.first < Id; });
  return It != Tokens.end() && It->first == Token ? StringRef(It->second)
                                                  : StringRef();
}

Band Labels::band(uint32_t Layer) const {
  return Layer < Layers.size() ? Layers[Layer].Band : Band::Unlabelled;
}

std::vector<uint32_t> Labels::relationFeatureCounts() const {
  std::vector<uint32_t> Counts(Relations.size());
  for (const FeatureLabel &F : Features)
    for (const RelationLabel &R : F.Relations)
      ++Counts[R.Relation];
  return Counts;
}

std::vector<std::vector<uint32_t>> Labels::relationLayers() const {
  std::vector<std::vector<uint32_t>> Layers(Relations.size());
  for (const FeatureLabel &F : Features)
    for (const RelationLabel &R : F.Relations)
      if (Layers[R.Relation].empty() || Layers[R.Relation].back() != F.Layer)
        Layers[R.Relation].push_back(F.Layer);
  return Layers;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace {

class LabelsBuilder {
public:
  std::string build(const Labels &L) {
    std::vector<flatbuffers::Offset<lfb::Relation>> Relations;
    for (const RelationInfo &R : L.Relations)
      Relations.push_back(lfb::CreateRelation(
          B, str(R.Name), str(R.Canonical), strings(R.Templates),
          str(R.HeldoutPrompt),
          R.Entities.empty() ? 0 : B.CreateVector(R.Entities)));
    auto Entities = strings(L.Entities);
    std::vector<flatbuffers::Offset<lfb::Layer>> Layers;
    for (const LayerLabel &Y : L.Layers)
      Layers.push_back(lfb::CreateLayer(B, Y.Index, lfb::Band(Y.Band),
                                        Y.RelationFeatures, Y.AttributionShare,
                                        Y.LensTop10First));
    std::vector<flatbuffers::Offset<lfb::Feature>> Features;
    for (const FeatureLabel &F : L.Features)
      Features.push_back(feature(F));
    std::vector<flatbuffers::Offset<lfb::Token>> Tokens;
    for (const auto &T : L.Tokens)
      Tokens.push_back(lfb::CreateToken(B, T.first, str(T.second)));
    std::vector<flatbuffers::Offset<lfb::ProbeInput>> Inputs;
    for (const ProbeInput &I : L.Inputs)
      Inputs.push_back(lfb::CreateProbeInput(B, str(I.Role), str(I.Path),
                                             I.Size, str(I.Sha256)));
    const ProbeParameters &P = L.Parameters;
    auto Params = lfb::CreateParameters(B, P.TopTokens, P.TopContributors,
                                        P.MinEntities, P.MinConfidence);
    auto Root = lfb::CreateLabels(
        B, kLabelsFormatVersion, B.CreateVector(Relations), Entities,
        B.CreateVector(Layers), B.CreateVector(Features),
        B.CreateVector(Tokens), B.CreateVector(Inputs), Params, L.Facts);
    B.Finish(Root, lfb::LabelsIdentifier());
    return std::string(reinterpret_cast<const char *>(B.GetBufferPointer()),
                       B.GetSize());
  }

private:
  flatbuffers::Offset<flatbuffers::String> str(StringRef S) {
    return B.CreateString(S.data(), S.size());
  }

  flatbuffers::Offset<
      flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>>
  strings(ArrayRef<std::string> Strings) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> Offsets;
    for (const std::string &S : Strings)
      Offsets.push_back(str(S));
    return B.CreateVector(Offsets);
  }

  flatbuffers::Offset<flatbuffers::Vector<const lfb::TokenScore *>>
  scores(ArrayRef<TokenScore> Scores) {
    std::vector<lfb::TokenScore> S;
    for (const TokenScore &T : Scores)
      S.emplace_back(T.Token, T.Score);
    return B.CreateVectorOfStructs(S);
  }

  flatbuffers::Offset<lfb::Feature> feature(const FeatureLabel &F) {
    std::vector<flatbuffers::Offset<lfb::RelationLabel>> Rels;
    for (const RelationLabel &R : F.Relations)
      Rels.push_back(lfb::CreateRelationLabel(B, R.Relation, R.Entities,
                                              R.MeanAttribution, R.Confidence,
                                              strings(R.Examples)));
    auto In = scores(F.InputTokens);
    auto Out = scores(F.OutputTokens);
    return lfb::CreateFeature(B, F.Layer, F.Feature, In, Out,
                              B.CreateVector(Rels));
  }

  flatbuffers::FlatBufferBuilder B{1 << 16};
};

} // namespace

std::string serializeLabels(const Labels &L) {
  return LabelsBuilder().build(L);
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

static std::string str(const flatbuffers::String *S) {
  return S ? S->str() : std::string();
}

static std::vector<std::string> strings(
    const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>> *V) {
  std::vector<std::string> Out;
  if (V)
    for (const flatbuffers::String *S : *V)
      Out.push_back(str(S));
  return Out;
}

static std::vector<TokenScore>
scores(const flatbuffers::Vector<const lfb::TokenScore *> *V) {
  std::vector<TokenScore> Out;
  if (V)
    for (const lfb::TokenScore *S : *V)
      Out.push_back({S->token(), S->score()});
  return Out;
}

/// The indices and orders a reader relies on.
static Error checkIndices(const Labels &L, StringRef File) {
  for (size_t I = 0; I < L.Layers.size(); ++I) {
    if (L.Layers[I].Index != I)
      return fileError(File, "layer record {0} has index {1}", I,
                       L.Layers[I].Index);
    if (uint8_t(L.Layers[I].Band) > uint8_t(Band::Output))
      return fileError(File, "layer {0}: unknown band {1}", I,
                       unsigned(L.Layers[I].Band));
  }
  for (size_t I = 0; I < L.Features.size(); ++I) {
    const FeatureLabel &F = L.Features[I];
    if (I && !featureLess(L.Features[I - 1], {F.Layer, F.Feature}))
      return fileError(File, "feature ({0}, {1}) is out of order or repeated",
                       F.Layer, F.Feature);
    if (!L.Layers.empty() && F.Layer >= L.Layers.size())
      return fileError(File, "feature ({0}, {1}): layer out of range", F.Layer,
                       F.Feature);
    for (const RelationLabel &R : F.Relations)
      if (R.Relation >= L.Relations.size())
        return fileError(File,
                         "feature ({0}, {1}): relation index {2} out of "
                         "range ({3} relations)",
                         F.Layer, F.Feature, R.Relation, L.Relations.size());
  }
  for (const RelationInfo &R : L.Relations)
    for (size_t I = 0; I < R.Entities.size(); ++I) {
      if (R.Entities[I] >= L.Entities.size())
        return fileError(File,
                         "relation '{0}': entity index {1} out of range ({2} "
                         "entities)",
                         R.Name, R.Entities[I], L.Entities.size());
      if (I && R.Entities[I - 1] >= R.Entities[I])
        return fileError(
            File, "relation '{0}': entities out of order or repeated", R.Name);
    }
  for (size_t I = 1; I < L.Tokens.size(); ++I)
    if (L.Tokens[I - 1].first >= L.Tokens[I].first)
      return fileError(File, "token table is not in ascending id order");
  return Error::success();
}

Expected<Labels> readLabels(ArrayRef<uint8_t> Bytes, StringRef File) {
  if (Bytes.size() < 8 ||
      !flatbuffers::BufferHasIdentifier(Bytes.data(), lfb::LabelsIdentifier()))
    return fileError(File, "not a labels file (missing the 'VLAB' "
                           "identifier)");
  flatbuffers::Verifier V(Bytes.data(), Bytes.size(), verifierOptions());
  if (!lfb::VerifyLabelsBuffer(V))
    return fileError(File, "corrupt labels file (flatbuffer verification "
                           "failed)");
  const lfb::Labels *F = lfb::GetLabels(Bytes.data());
  if (F->format_version() != kLabelsFormatVersion)
    return fileError(File,
                     "labels format version {0} is not supported (this "
                     "build reads version {1})",
                     F->format_version(), kLabelsFormatVersion);
  Labels L;
  if (F->relations())
    for (const lfb::Relation *R : *F->relations())
      L.Relations.push_back({str(R->name()), str(R->canonical()),
                             strings(R->templates()), str(R->heldout_prompt()),
                             R->entities()
                                 ? std::vector<uint32_t>(R->entities()->begin(),
                                                         R->entities()->end())
                                 : std::vector<uint32_t>()});
  L.Entities = strings(F->entities());
  if (F->layers())
    for (const lfb::Layer *Y : *F->layers())
      L.Layers.push_back({Y->index(), Band(Y->band()), Y->relation_features(),
                          Y->attribution_share(), Y->lens_top10_first()});
  if (F->features())
    for (const lfb::Feature *X : *F->features()) {
      FeatureLabel FL;
      FL.Layer = X->layer();
      FL.Feature = X->feature();
      FL.InputTokens = scores(X->input_tokens());
      FL.OutputTokens = scores(X->output_tokens());
      if (X->relations())
        for (const lfb::RelationLabel *R : *X->relations())
          FL.Relations.push_back({R->relation(), R->entities(),
                                  R->mean_attribution(), R->confidence(),
                                  strings(R->examples())});
      L.Features.push_back(std::move(FL));
    }
  if (F->tokens())
    for (const lfb::Token *T : *F->tokens())
      L.Tokens.emplace_back(T->id(), str(T->text()));
  if (F->inputs())
    for (const lfb::ProbeInput *I : *F->inputs())
      L.Inputs.push_back(
          {str(I->role()), str(I->path()), I->size(), str(I->sha256())});
  if (const lfb::Parameters *P = F->parameters())
    L.Parameters = {P->top_tokens(), P->top_contributors(), P->min_entities(),
                    P->min_confidence()};
  L.Facts = F->facts();
  if (Error E = checkIndices(L, File))
    return std::move(E);
  return L;
}

Error checkLabels(const Labels &L, const Manifest &M, StringRef File) {
  uint64_t NumLayers = M.Config.NumLayers;
  if (L.Layers.size() != NumLayers)
    return fileError(File, "{0} layer records for a model of {1} layers",
                     L.Layers.size(), NumLayers);
  auto Width = [&](uint32_t Layer) -> uint64_t {
    for (const LayerRecord &R : M.Layers)
      if (R.Index == Layer)
        return R.Features;
    return M.Config.IntermediateSize;
  };
  for (const FeatureLabel &F : L.Features) {
    if (F.Feature >= Width(F.Layer))
      return fileError(File,
                       "feature ({0}, {1}) is past the layer's {2} "
                       "features",
                       F.Layer, F.Feature, Width(F.Layer));
    for (ArrayRef<TokenScore> Scores :
         {ArrayRef(F.InputTokens), ArrayRef(F.OutputTokens)})
      for (const TokenScore &T : Scores)
        if (T.Token >= M.Config.VocabSize)
          return fileError(File,
                           "feature ({0}, {1}): token {2} is outside the "
                           "vocabulary ({3} tokens)",
                           F.Layer, F.Feature, T.Token, M.Config.VocabSize);
  }
  return Error::success();
}

} // namespace vindex
