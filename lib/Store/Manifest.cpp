//===- Manifest.cpp - manifest.vfb <-> Manifest ---------------------------===//
#include "vindex/Store/Manifest.h"

#include "Unaligned.h"
#include "vindex/Store/Manifest_generated.h"
#include "vindex/Support/Error.h"

using namespace llvm;
namespace fb = vindex::fb;

namespace vindex {

Shape TensorRecord::sourceDims() const {
  Shape S = Dims;
  if (Transposed && S.size() == 2)
    std::swap(S[0], S[1]);
  return S;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace {

class ManifestBuilder {
public:
  std::string build(const Manifest &M) {
    auto Config = config(M.Config);
    std::vector<flatbuffers::Offset<fb::Tensor>> Tensors;
    for (const TensorRecord &T : M.Tensors)
      Tensors.push_back(tensor(T));
    std::vector<flatbuffers::Offset<fb::Shard>> Shards;
    for (const ShardRecord &S : M.Shards)
      Shards.push_back(fb::CreateShard(B, str(S.Name), keyValues(S.Meta)));
    std::vector<flatbuffers::Offset<fb::Layer>> Layers;
    for (const LayerRecord &L : M.Layers)
      Layers.push_back(fb::CreateLayer(B, L.Index, L.Features, L.Band));
    std::vector<flatbuffers::Offset<fb::AuxFile>> Files;
    for (const AuxFileRecord &F : M.Files)
      Files.push_back(fb::CreateAuxFile(B, str(F.Name), F.Length, F.Checksum));
    std::vector<flatbuffers::Offset<fb::SourceFile>> Sources;
    for (const SourceFileRecord &S : M.Provenance.Sources)
      Sources.push_back(source(S));
    auto Prov = fb::CreateProvenance(
        B, str(M.Provenance.Tool), str(M.Provenance.Version),
        str(M.Provenance.CommandLine), B.CreateVector(Sources));
    std::vector<flatbuffers::Offset<fb::Patch>> Patches;
    for (const PatchRecord &P : M.Patches)
      Patches.push_back(patch(P));
    flatbuffers::Offset<fb::LabelsFile> LabelsFile;
    if (M.LabelsFile)
      LabelsFile = labelsFile(*M.LabelsFile);
    std::vector<flatbuffers::Offset<fb::KeyStatsFile>> KeyStats;
    for (const KeyStatsRecord &K : M.KeyStats)
      KeyStats.push_back(fb::CreateKeyStatsFile(
          B, str(K.File), K.Length, K.Checksum, K.Layer, K.Features,
          K.Positions, K.Weights, str(K.Corpus), str(K.CorpusSha256),
          str(K.CommandLine)));
    // Patches need a reader that applies them (Manifest.h).
    uint32_t Version =
        M.Patches.empty() ? kVindexFormatVersion : kVindexFormatVersionPatches;
    auto Root = fb::CreateManifest(
        B, Version, Config, B.CreateVector(Tensors), B.CreateVector(Shards),
        B.CreateVector(Layers), B.CreateVector(Files), Prov,
        B.CreateVector(Patches), keyValues(M.IndexMetadata), M.SourceIndex,
        LabelsFile,
        // Absent rather than empty: a V-index never measured keeps its bytes.
        KeyStats.empty() ? 0 : B.CreateVector(KeyStats));
    B.Finish(Root, fb::ManifestIdentifier());
    return std::string(reinterpret_cast<const char *>(B.GetBufferPointer()),
                       B.GetSize());
  }

private:
  flatbuffers::Offset<flatbuffers::String> str(StringRef S) {
    return B.CreateString(S.data(), S.size());
  }

  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::KeyValue>>>
  keyValues(const Metadata &Meta) {
    std::vector<flatbuffers::Offset<fb::KeyValue>> KVs;
    for (const auto &KV : Meta)
      KVs.push_back(fb::CreateKeyValue(B, str(KV.first), str(KV.second)));
    return B.CreateVector(KVs);
  }

  flatbuffers::Offset<fb::ModelConfig> config(const ModelConfig &C) {
    auto Arch = str(C.Architecture);
    auto Source = str(C.SourceModelType);
    auto Prefix = str(C.TensorPrefix);
    auto Scaling = fb::CreateRopeScaling(
        B, str(C.Scaling.Type), C.Scaling.Factor, C.Scaling.LowFreqFactor,
        C.Scaling.HighFreqFactor, C.Scaling.OriginalMaxPositions);
    std::vector<fb::LayerKind> Kinds;
    for (LayerKind K : C.LayerKinds)
      Kinds.push_back(static_cast<fb::LayerKind>(K));
    auto KindsVec = B.CreateVector(
        reinterpret_cast<const uint8_t *>(Kinds.data()), Kinds.size());
    std::vector<int64_t> Eos(C.EosIds.begin(), C.EosIds.end());
    auto EosVec = B.CreateVector(Eos);
    fb::ModelConfigBuilder CB(B);
    CB.add_architecture(Arch);
    CB.add_source_model_type(Source);
    CB.add_tensor_prefix(Prefix);
    CB.add_hidden_size(C.HiddenSize);
    CB.add_intermediate_size(C.IntermediateSize);
    CB.add_num_layers(C.NumLayers);
    CB.add_num_heads(C.NumHeads);
    CB.add_num_kv_heads(C.NumKVHeads);
    CB.add_head_dim(C.HeadDim);
    CB.add_vocab_size(C.VocabSize);
    CB.add_max_positions(C.MaxPositions);
    CB.add_rope_theta(C.RopeTheta);
    CB.add_rope_local_theta(C.RopeLocalTheta);
    CB.add_rope_scaling(Scaling);
    CB.add_norm_eps(C.NormEps);
    CB.add_norm_style(static_cast<fb::NormStyle>(C.Norm));
    CB.add_activation(static_cast<fb::Activation>(C.Act));
    CB.add_sliding_window(C.SlidingWindow);
    CB.add_layer_kinds(
        flatbuffers::Offset<flatbuffers::Vector<fb::LayerKind>>(KindsVec.o));
    CB.add_embedding_scale(C.EmbeddingScale);
    CB.add_query_scale(C.QueryScale);
    CB.add_attn_softcap(C.AttnSoftcap);
    CB.add_final_softcap(C.FinalSoftcap);
    CB.add_tied_embeddings(C.TiedEmbeddings);
    CB.add_qk_norm(C.QKNorm);
    CB.add_post_norms(C.PostNorms);
    CB.add_attention_bias(C.AttentionBias);
    CB.add_has_bos(C.BosId.has_value());
    CB.add_bos_id(C.BosId.value_or(0));
    CB.add_eos_ids(EosVec);
    CB.add_has_pad(C.PadId.has_value());
    CB.add_pad_id(C.PadId.value_or(0));
    return CB.Finish();
  }

  flatbuffers::Offset<fb::SourceFile> source(const SourceFileRecord &S) {
    return fb::CreateSourceFile(B, str(S.Path), S.Size, str(S.Sha256));
  }

  flatbuffers::Offset<fb::LabelsFile> labelsFile(const LabelsFileRecord &L) {
    std::vector<flatbuffers::Offset<fb::SourceFile>> Sources;
    for (const SourceFileRecord &S : L.Sources)
      Sources.push_back(source(S));
    return fb::CreateLabelsFile(B, str(L.File), L.Length, L.Checksum,
                                str(L.CommandLine), B.CreateVector(Sources));
  }

  flatbuffers::Offset<fb::Patch> patch(const PatchRecord &P) {
    std::vector<flatbuffers::Offset<fb::PatchedTensor>> Tensors;
    for (const PatchedTensorRecord &T : P.Tensors)
      Tensors.push_back(
          fb::CreatePatchedTensor(
              B, str(T.Name), T.Layer, T.BaseRows, B.CreateVector(T.Rows),
              T.AppendedRows,
              T.CopyOf.empty() ? flatbuffers::Offset<flatbuffers::String>()
                               : str(T.CopyOf)));
    return fb::CreatePatch(B, str(P.Name), str(P.Description), str(P.File),
                           P.Length, P.Checksum, str(P.Statement),
                           str(P.ScriptSha256), B.CreateVector(Tensors));
  }

  flatbuffers::Offset<fb::Tensor> tensor(const TensorRecord &T) {
    auto Name = str(T.Name);
    auto File = str(T.File);
    std::vector<uint64_t> Dims(T.Dims.begin(), T.Dims.end());
    auto DimsVec = B.CreateVector(Dims);
    fb::TensorBuilder TB(B);
    TB.add_name(Name);
    TB.add_role(static_cast<fb::TensorRole>(T.Role));
    TB.add_layer(T.Layer);
    TB.add_dtype(static_cast<fb::DType>(T.Type));
    TB.add_shape(DimsVec);
    TB.add_transposed(T.Transposed);
    TB.add_file(File);
    TB.add_offset(T.Offset);
    TB.add_stored_length(T.StoredLength);
    TB.add_length(T.Length);
    TB.add_codec(static_cast<fb::Codec>(T.Compression));
    TB.add_codec_chunk(T.CodecChunk);
    TB.add_checksum(T.Checksum);
    TB.add_source_shard(T.SourceShard);
    return TB.Finish();
  }

  flatbuffers::FlatBufferBuilder B{1 << 16};
};

} // namespace

std::string serializeManifest(const Manifest &M) {
  return ManifestBuilder().build(M);
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

static std::string str(const flatbuffers::String *S) {
  return S ? S->str() : std::string();
}

static Metadata
keyValues(const flatbuffers::Vector<flatbuffers::Offset<fb::KeyValue>> *KVs) {
  Metadata Meta;
  if (KVs)
    for (const fb::KeyValue *KV : *KVs)
      Meta.emplace_back(str(KV->key()), str(KV->value()));
  return Meta;
}

static ModelConfig readConfig(const fb::ModelConfig &F) {
  ModelConfig C;
  C.Architecture = str(F.architecture());
  C.SourceModelType = str(F.source_model_type());
  C.TensorPrefix = str(F.tensor_prefix());
  C.HiddenSize = F.hidden_size();
  C.IntermediateSize = F.intermediate_size();
  C.NumLayers = F.num_layers();
  C.NumHeads = F.num_heads();
  C.NumKVHeads = F.num_kv_heads();
  C.HeadDim = F.head_dim();
  C.VocabSize = F.vocab_size();
  C.MaxPositions = F.max_positions();
  C.RopeTheta = F.rope_theta();
  C.RopeLocalTheta = F.rope_local_theta();
  if (const fb::RopeScaling *S = F.rope_scaling()) {
    C.Scaling.Type = str(S->type());
    C.Scaling.Factor = S->factor();
    C.Scaling.LowFreqFactor = S->low_freq_factor();
    C.Scaling.HighFreqFactor = S->high_freq_factor();
    C.Scaling.OriginalMaxPositions = S->original_max_positions();
  }
  C.NormEps = F.norm_eps();
  C.Norm = static_cast<NormStyle>(F.norm_style());
  C.Act = static_cast<Activation>(F.activation());
  C.SlidingWindow = F.sliding_window();
  if (F.layer_kinds())
    for (fb::LayerKind K : *F.layer_kinds())
      C.LayerKinds.push_back(static_cast<LayerKind>(K));
  C.EmbeddingScale = F.embedding_scale();
  C.QueryScale = F.query_scale();
  C.AttnSoftcap = F.attn_softcap();
  C.FinalSoftcap = F.final_softcap();
  C.TiedEmbeddings = F.tied_embeddings();
  C.QKNorm = F.qk_norm();
  C.PostNorms = F.post_norms();
  C.AttentionBias = F.attention_bias();
  if (F.has_bos())
    C.BosId = F.bos_id();
  C.EosIds.clear();
  appendElements(F.eos_ids(), C.EosIds);
  if (F.has_pad())
    C.PadId = F.pad_id();
  return C;
}

static TensorRecord readTensor(const fb::Tensor &F) {
  TensorRecord T;
  T.Name = str(F.name());
  T.Role = static_cast<TensorRole>(F.role());
  T.Layer = F.layer();
  T.Type = static_cast<DType>(F.dtype());
  T.Dims.clear();
  appendElements(F.shape(), T.Dims);
  T.Transposed = F.transposed();
  T.File = str(F.file());
  T.Offset = F.offset();
  T.StoredLength = F.stored_length();
  T.Length = F.length();
  T.Compression = static_cast<Codec>(F.codec());
  T.CodecChunk = F.codec_chunk();
  T.Checksum = F.checksum();
  T.SourceShard = F.source_shard();
  return T;
}

static std::vector<SourceFileRecord>
readSources(const flatbuffers::Vector<flatbuffers::Offset<fb::SourceFile>> *V) {
  std::vector<SourceFileRecord> Sources;
  if (V)
    for (const fb::SourceFile *S : *V)
      Sources.push_back({str(S->path()), S->size(), str(S->sha256())});
  return Sources;
}

static ProvenanceRecord readProvenance(const fb::Provenance &P) {
  ProvenanceRecord R;
  R.Tool = str(P.tool());
  R.Version = str(P.version());
  R.CommandLine = str(P.command_line());
  R.Sources = readSources(P.sources());
  return R;
}

static PatchRecord readPatch(const fb::Patch &P) {
  PatchRecord R;
  R.Name = str(P.name());
  R.Description = str(P.description());
  R.File = str(P.file());
  R.Length = P.length();
  R.Checksum = P.checksum();
  R.Statement = str(P.statement());
  R.ScriptSha256 = str(P.script_sha256());
  if (P.tensors())
    for (const fb::PatchedTensor *T : *P.tensors()) {
      PatchedTensorRecord PT;
      PT.Name = str(T->name());
      PT.Layer = T->layer();
      PT.BaseRows = T->base_rows();
      appendElements(T->rows(), PT.Rows);
      PT.AppendedRows = T->appended_rows();
      PT.CopyOf = str(T->copy_of());
      R.Tensors.push_back(std::move(PT));
    }
  return R;
}

static LabelsFileRecord readLabelsFile(const fb::LabelsFile &L) {
  LabelsFileRecord R;
  R.File = str(L.file());
  R.Length = L.length();
  R.Checksum = L.checksum();
  R.CommandLine = str(L.command_line());
  R.Sources = readSources(L.sources());
  return R;
}

Expected<Manifest> parseManifest(ArrayRef<uint8_t> Bytes, StringRef File) {
  if (Bytes.size() < 8 ||
      !flatbuffers::BufferHasIdentifier(Bytes.data(), fb::ManifestIdentifier()))
    return fileError(File, "not a V-index manifest (missing the 'VIDX' "
                           "identifier)");
  flatbuffers::Verifier V(Bytes.data(), Bytes.size(), verifierOptions());
  if (!fb::VerifyManifestBuffer(V))
    return fileError(File, "corrupt manifest (flatbuffer verification "
                           "failed)");
  const fb::Manifest *F = fb::GetManifest(Bytes.data());
  Manifest M;
  M.FormatVersion = F->format_version();
  if (M.FormatVersion != kVindexFormatVersion &&
      M.FormatVersion != kVindexFormatVersionPatches)
    return fileError(File,
                     "format version {0} is not supported (this build "
                     "reads versions {1} and {2})",
                     M.FormatVersion, kVindexFormatVersion,
                     kVindexFormatVersionPatches);
  if (!F->config())
    return fileError(File, "manifest has no model config");
  M.Config = readConfig(*F->config());
  if (F->tensors())
    for (const fb::Tensor *T : *F->tensors())
      M.Tensors.push_back(readTensor(*T));
  if (F->shards())
    for (const fb::Shard *S : *F->shards())
      M.Shards.push_back({str(S->name()), keyValues(S->metadata())});
  if (F->layers())
    for (const fb::Layer *L : *F->layers())
      M.Layers.push_back({L->index(), L->features(), L->band()});
  if (F->files())
    for (const fb::AuxFile *A : *F->files())
      M.Files.push_back({str(A->name()), A->length(), A->checksum()});
  if (const fb::Provenance *P = F->provenance())
    M.Provenance = readProvenance(*P);
  if (F->patches())
    for (const fb::Patch *P : *F->patches())
      M.Patches.push_back(readPatch(*P));
  if (!M.Patches.empty() && M.FormatVersion < kVindexFormatVersionPatches)
    return fileError(File,
                     "patch records in a version {0} manifest (patches "
                     "need version {1})",
                     M.FormatVersion, kVindexFormatVersionPatches);
  M.IndexMetadata = keyValues(F->index_metadata());
  M.SourceIndex = F->source_index();
  if (const fb::LabelsFile *L = F->labels())
    M.LabelsFile = readLabelsFile(*L);
  if (F->key_stats())
    for (const fb::KeyStatsFile *K : *F->key_stats())
      M.KeyStats.push_back({str(K->file()), K->length(), K->checksum(),
                            K->layer(), K->features(), K->positions(),
                            K->weights(), str(K->corpus()),
                            str(K->corpus_sha256()), str(K->command_line())});
  return M;
}

} // namespace vindex
