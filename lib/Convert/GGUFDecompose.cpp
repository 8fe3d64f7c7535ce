//===- GGUFDecompose.cpp - GGUF -> V-index --------------------------------===//
//
// A GGUF becomes the V-index of the Hugging Face checkpoint it came from:
// config.json is rebuilt from the hyperparameters, tokenizer.json from
// tokenizer.ggml.*, and every tensor gets its Hugging Face name and layout
// back (llama.cpp's transforms undone: Gemma norms - 1, Llama Q/K rows
// unpermuted, Q8_0 dequantized to F32). F32 vectors (llama.cpp keeps norms
// in F32) return to the matrices' F16/BF16 when that is exact, so a GGUF
// made from a BF16 checkpoint gives back its tensors bit for bit. One
// tensor at a time is in memory; one task per payload file.
//
//===----------------------------------------------------------------------===//
#include "vindex/Convert/Decompose.h"

#include "GGUFTensorNames.h"
#include "CompiledTokenizer.h"
#include "GGUFTokenizer.h"

#include "vindex/Formats/GGUF.h"
#include "vindex/Formats/Rope.h"
#include "vindex/Formats/RowConversion.h"
#include "vindex/Store/Checks.h"
#include "vindex/Store/Codec.h"
#include "vindex/Store/Manifest.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/AtomicOutput.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/OutputFile.h"
#include "vindex/Support/Progress.h"
#include "vindex/Support/ToolMain.h"
#include "vindex/Support/Transpose.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ThreadPool.h"

#include <cassert>
#include <cmath>
#include <cstring>
#include <map>

using namespace llvm;

namespace vindex {

bool isGGUFInput(StringRef Path) {
  if (Path.ends_with_insensitive(".gguf"))
    return true;
  if (sys::fs::is_directory(Path))
    return false;
  char Magic[4] = {};
  int FD;
  if (sys::fs::openFileForRead(Path, FD))
    return false;
  Expected<size_t> N = sys::fs::readNativeFile(
      sys::fs::convertFDToNativeFile(FD), MutableArrayRef<char>(Magic, 4));
  sys::fs::closeFile(FD);
  if (!N) {
    consumeError(N.takeError());
    return false;
  }
  return *N == 4 && std::memcmp(Magic, "GGUF", 4) == 0;
}

namespace {

/// The shortest decimal that reads back as the same float (1e-06, not
/// 9.999999974752427e-07), so config.json looks as a person wrote it.
json::Value shortFloat(float F) {
  for (int Digits = 1; Digits <= 9; ++Digits) {
    std::string S = formatv("{0}", format("%.*g", Digits, double(F))).str();
    if (float(std::strtod(S.c_str(), nullptr)) == F)
      return std::strtod(S.c_str(), nullptr);
  }
  return double(F);
}

class Hyperparams {
public:
  Hyperparams(const GGUFFile &G, StringRef Arch) : G(G), Arch(Arch) {}
  std::string key(StringRef Suffix) const {
    return (Arch + "." + Suffix).str();
  }

  Expected<uint64_t> u64(StringRef Suffix, std::optional<uint64_t> Default) {
    Expected<const GGUFValue *> V = lookup(Suffix, Default.has_value());
    if (!V)
      return V.takeError();
    if (!*V)
      return *Default;
    std::optional<int64_t> I = (*V)->isInteger() ? (*V)->asInt() : std::nullopt;
    if (!I || *I < 0)
      return fileError(G.path(), "key '{0}' must be UINT32, not {1}",
                       key(Suffix), ggufTypeName((*V)->Type));
    return uint64_t(*I);
  }
  Expected<float> f32(StringRef Suffix, std::optional<float> Default) {
    Expected<const GGUFValue *> V = lookup(Suffix, Default.has_value());
    if (!V)
      return V.takeError();
    if (!*V)
      return *Default;
    if ((*V)->Type != GGUFType::Float32 && (*V)->Type != GGUFType::Float64)
      return fileError(G.path(), "key '{0}' must be FLOAT32, not {1}",
                       key(Suffix), ggufTypeName((*V)->Type));
    return float(*(*V)->asFloat());
  }

private:
  /// The value of Arch.Suffix; null when it is absent but has a default.
  Expected<const GGUFValue *> lookup(StringRef Suffix, bool HasDefault) {
    const GGUFValue *V = G.find(key(Suffix));
    if (!V && !HasDefault)
      return fileError(G.path(), "missing required key '{0}'", key(Suffix));
    return V;
  }

  const GGUFFile &G;
  StringRef Arch;
};

#define TRY_ASSIGN(Var, Expr)                                                  \
  auto Var##OrErr = (Expr);                                                    \
  if (!Var##OrErr)                                                             \
    return Var##OrErr.takeError();                                             \
  auto Var = *Var##OrErr;

DType dtypeOf(GGMLType T) {
  switch (T) {
  case GGMLType::F16:
    return DType::F16;
  case GGMLType::BF16:
    return DType::BF16;
  default:
    return DType::F32;
  }
}

struct Item {
  const GGUFTensorInfo *G;
  TensorRecord R;
  bool MinusOne = false;
  uint64_t UnpermuteHeadDim = 0;
};

class GGUFDecomposer {
public:
  GGUFDecomposer(const DecomposeOptions &Opts, const GGUFFile &G,
                 AtomicDirectory &Out)
      : Opts(Opts), G(G), Out(Out) {}
  Error run();

private:
  Expected<std::string> buildConfig();
  /// The attention window keys: Gemma's per-layer kinds, or one window.
  Error addWindowKeys(json::Object &C, Hyperparams &H, uint64_t Layers,
                      uint64_t Embedding, uint64_t Heads, uint64_t HeadDim,
                      uint64_t Window);
  /// rope_scaling: linear from the KVs, llama3 from rope_freqs.weight.
  Error addRopeScaling(json::Object &C, Hyperparams &H, float Theta,
                       uint64_t HeadDim);
  /// What config.json keeps of the file: its name, sources and special
  /// token ids.
  void addProvenanceKeys(json::Object &C);
  Error planTensors(const ModelConfig &C);
  /// general.architecture, and the type of the matrices (the embedding's).
  Error readArchitecture();
  /// Items by output file (tensors/*.bin), each file's in role and name
  /// order.
  using FileItems = std::pair<std::string, std::vector<size_t>>;
  std::vector<FileItems> itemsByFile() const;
  /// Every file's payload, on the pool's threads, and the GGUF's record as
  /// a source (its SHA-256 beside them).
  Error writePayloads(ArrayRef<FileItems> Files, SourceFileRecord &Source);
  Error writePayload(const std::string &File, ArrayRef<size_t> Items,
                     Progress &P);
  /// config.json, tokenizer.json (and its compiled form) and the manifest.
  Error writeManifest(const ModelConfig &Config, StringRef ConfigText,
                      StringRef TokText, ArrayRef<FileItems> Files,
                      const SourceFileRecord &Source);
  Error emit(Item &I, OutputFile &F, ZstdShuffleEncoder &Enc,
             std::vector<uint8_t> &Scratch, std::vector<uint8_t> &T2);

  const DecomposeOptions &Opts;
  const GGUFFile &G;
  AtomicDirectory &Out;
  std::string Arch; ///< llama.cpp's name.
  const ArchitectureInfo *Info = nullptr;
  std::vector<Item> Items;
  DType MatrixType = DType::F32;
};

Expected<std::string> GGUFDecomposer::buildConfig() {
  Hyperparams H(G, Arch);
  StringRef EmbdName = ggufGlobalTensorName(TensorRole::Embedding);
  const GGUFTensorInfo *Embd = G.findTensor(EmbdName);
  if (!Embd || Embd->Ne.size() != 2)
    return fileError(G.path(), "missing tensor '{0}' (2-D)", EmbdName);
  TRY_ASSIGN(Embedding, H.u64("embedding_length", std::nullopt));
  TRY_ASSIGN(Layers, H.u64("block_count", std::nullopt));
  TRY_ASSIGN(FF, H.u64("feed_forward_length", std::nullopt));
  TRY_ASSIGN(Heads, H.u64("attention.head_count", std::nullopt));
  if (Heads == 0 || Embedding == 0 || Layers == 0)
    return fileError(G.path(), "'{0}', '{1}' and '{2}' must be positive",
                     H.key("embedding_length"), H.key("block_count"),
                     H.key("attention.head_count"));
  // Every layer has tensors, so more layers than tensors is corrupt (and
  // would size tables by a number nobody checked).
  if (Layers > G.tensors().size())
    return fileError(G.path(),
                     "'{0}' is {1} but the file has only {2} "
                     "tensors",
                     H.key("block_count"), Layers, G.tensors().size());
  TRY_ASSIGN(KVHeads, H.u64("attention.head_count_kv", Heads));
  TRY_ASSIGN(HeadDim, H.u64("attention.key_length", Embedding / Heads));
  TRY_ASSIGN(Context, H.u64("context_length", std::nullopt));
  TRY_ASSIGN(Eps, H.f32("attention.layer_norm_rms_epsilon", std::nullopt));
  TRY_ASSIGN(Theta, H.f32("rope.freq_base", 10000.0f));
  // Outside Gemma a window slides over every layer (written by us; see
  // GGUFCompile.cpp): a llama one is Mistral's.
  TRY_ASSIGN(Window, H.u64("attention.sliding_window", 0));
  Info = findGGUFArchitecture(Arch, Window != 0);
  bool Gemma = Info->Gemma;

  json::Object C;
  C["model_type"] = Info->ModelType;
  C["architectures"] = json::Array{Info->HFClass};
  addProvenanceKeys(C);
  C["hidden_size"] = Embedding;
  C["intermediate_size"] = FF;
  C["num_hidden_layers"] = Layers;
  C["num_attention_heads"] = Heads;
  C["num_key_value_heads"] = KVHeads;
  C["head_dim"] = HeadDim;
  C["vocab_size"] = Embd->Ne[1];
  C["max_position_embeddings"] = Context;
  C["rms_norm_eps"] = shortFloat(Eps);
  C["rope_theta"] = shortFloat(Theta);
  C["tie_word_embeddings"] =
      G.findTensor(ggufGlobalTensorName(TensorRole::LMHead)) == nullptr;
  C[Gemma ? "hidden_activation" : "hidden_act"] =
      Gemma ? "gelu_pytorch_tanh" : "silu";
  C["torch_dtype"] = MatrixType == DType::BF16  ? "bfloat16"
                     : MatrixType == DType::F16 ? "float16"
                                                : "float32";
  if (Error E = addWindowKeys(C, H, Layers, Embedding, Heads, HeadDim, Window))
    return std::move(E);
  if (G.find(H.key("final_logit_softcapping"))) {
    TRY_ASSIGN(Cap, H.f32("final_logit_softcapping", 0.0f));
    C["final_logit_softcapping"] = shortFloat(Cap);
  }
  if (Error E = addRopeScaling(C, H, Theta, HeadDim))
    return std::move(E);
  if (Info->QKVBias)
    C["attention_bias"] = true;
  return formatv("{0:2}", json::Value(std::move(C))).str() + "\n";
}

Error GGUFDecomposer::addWindowKeys(json::Object &C, Hyperparams &H,
                                    uint64_t Layers, uint64_t Embedding,
                                    uint64_t Heads, uint64_t HeadDim,
                                    uint64_t Window) {
  if (Info->Gemma) {
    TRY_ASSIGN(SwaTheta, H.f32("rope.freq_base_swa", 10000.0f));
    TRY_ASSIGN(Pattern, H.u64("attention.sliding_window_pattern", 6));
    C["rope_local_base_freq"] = shortFloat(SwaTheta);
    // llama.cpp scales Gemma 3 27B (62 layers) by n_embd / n_head, every
    // other size by the head dimension; the GGUF has no key for it.
    C["query_pre_attn_scalar"] = Layers == 62 ? Embedding / Heads : HeadDim;
    json::Array Kinds;
    for (uint64_t L = 0; L < Layers; ++L)
      Kinds.push_back(Window && Pattern && L % Pattern < Pattern - 1
                          ? "sliding_attention"
                          : "full_attention");
    C["layer_types"] = std::move(Kinds);
    C["sliding_window"] = Window ? Window : 4096;
  } else if (Info->Window == WindowStyle::AllLayers) {
    C["sliding_window"] = Window;
  } else if (Window) {
    C["use_sliding_window"] = true;
    C["sliding_window"] = Window;
    C["max_window_layers"] = 0;
  }
  return Error::success();
}

Error GGUFDecomposer::addRopeScaling(json::Object &C, Hyperparams &H,
                                     float Theta, uint64_t HeadDim) {
  if (const GGUFValue *S = G.find(H.key("rope.scaling.type"))) {
    if (S->Str == "linear") {
      TRY_ASSIGN(Factor, H.f32("rope.scaling.factor", 1.0f));
      C["rope_scaling"] =
          json::Object{{"rope_type", "linear"}, {"factor", shortFloat(Factor)}};
    } else if (S->Str != "none") {
      return fileError(G.path(), "rope scaling '{0}' is not supported", S->Str);
    }
  }
  if (const GGUFTensorInfo *R = G.findTensor(kGGUFRopeFreqsName)) {
    // llama.cpp's form of a llama3 RoPE scaling: per-pair factors.
    if (!Info->LlamaConverter || R->Type != GGMLType::F32 ||
        R->Ne.size() != 1 || R->Ne[0] != HeadDim / 2)
      return fileError(G.path(),
                       "tensor 'rope_freqs.weight' must be F32 of {0} "
                       "elements in a llama model",
                       HeadDim / 2);
    ArrayRef<uint8_t> Bytes = G.data(*R);
    std::vector<float> Factors(R->Ne[0]);
    std::memcpy(Factors.data(), Bytes.data(), Factors.size() * 4);
    std::optional<RopeScaling> S =
        llama3ScalingFromFactors(Factors, Theta, HeadDim);
    if (!S)
      return fileError(G.path(), "tensor 'rope_freqs.weight' is not a "
                                 "llama3 RoPE scaling we can express");
    C["rope_scaling"] = json::Object{
        {"rope_type", "llama3"},
        {"factor", shortFloat(float(S->Factor))},
        {"low_freq_factor", S->LowFreqFactor},
        {"high_freq_factor", S->HighFreqFactor},
        {"original_max_position_embeddings", S->OriginalMaxPositions}};
  }
  return Error::success();
}

void GGUFDecomposer::addProvenanceKeys(json::Object &C) {
  if (const GGUFValue *N = G.find("general.name"))
    if (N->Type == GGUFType::String)
      C["_name_or_path"] = N->Str;
  if (const GGUFValue *S = G.find("general.source.files")) {
    json::Array A;
    for (const GGUFValue &E : S->Elems)
      A.push_back(E.Str);
    C["_vindex_sources"] = std::move(A);
  }
  for (auto [Key, HFKey] :
       {std::pair<StringRef, StringRef>{"tokenizer.ggml.bos_token_id",
                                        "bos_token_id"},
        {"tokenizer.ggml.eos_token_id", "eos_token_id"},
        {"tokenizer.ggml.padding_token_id", "pad_token_id"}})
    if (const GGUFValue *V = G.find(Key))
      if (std::optional<int64_t> I = V->asInt())
        C[HFKey] = *I;
}

Error GGUFDecomposer::planTensors(const ModelConfig &C) {
  bool Permuted = Info->LlamaConverter;
  for (const GGUFTensorInfo &T : G.tensors()) {
    if (T.Name == kGGUFRopeFreqsName)
      continue; // In config.json's rope_scaling (buildConfig).
    std::optional<TensorClass> Class = classifyGGUFTensor(*Info, T.Name);
    if (!Class)
      return fileError(G.path(),
                       "tensor '{0}' is not a tensor of a '{1}' "
                       "model that we know",
                       T.Name, Arch);
    if (Class->Layer >= 0 && uint64_t(Class->Layer) >= C.NumLayers)
      return fileError(G.path(),
                       "tensor '{0}' is in layer {1} but "
                       "'{2}.block_count' is {3}",
                       T.Name, Class->Layer, Arch, C.NumLayers);
    Item I;
    I.G = &T;
    TensorRecord &R = I.R;
    R.Name = hfTensorName(Class->Role, Class->Layer);
    R.Role = Class->Role;
    R.Layer = Class->Layer;
    R.Type = dtypeOf(T.Type);
    R.Dims = T.rowMajorDims();
    // Vectors return to the matrices' type when exact (checked in emit).
    if (R.Dims.size() == 1 && T.Type == GGMLType::F32)
      R.Type = MatrixType;
    I.MinusOne =
        C.Norm == NormStyle::OnePlusWeight && R.Role != TensorRole::AttnQBias &&
        R.Role != TensorRole::AttnKBias && R.Role != TensorRole::AttnVBias &&
        R.Dims.size() == 1 && R.Role != TensorRole::Other;
    if (Permuted &&
        (R.Role == TensorRole::AttnQ || R.Role == TensorRole::AttnK))
      I.UnpermuteHeadDim = C.HeadDim;
    if (I.UnpermuteHeadDim &&
        (R.Dims.size() != 2 || R.Dims[0] % C.HeadDim || C.HeadDim % 2))
      return fileError(G.path(),
                       "tensor '{0}' of shape {1} cannot be split "
                       "in heads of {2} rows",
                       T.Name, shapeString(R.Dims), C.HeadDim);
    R.Transposed = R.Role == TensorRole::FFNDown;
    if (R.Transposed)
      std::swap(R.Dims[0], R.Dims[1]);
    R.File = R.Layer < 0 ? "tensors/global.bin"
                         : formatv("tensors/layer-{0:3}.bin", R.Layer).str();
    uint64_t N = 1;
    for (uint64_t X : R.Dims)
      N *= X;
    R.Length = N * dtypeSize(R.Type);
    Items.push_back(std::move(I));
  }
  std::vector<TensorRecord> Records;
  for (const Item &I : Items)
    Records.push_back(I.R);
  return checkModelTensors(C, Records, G.path());
}

/// The tensor's values in Hugging Face layout and its V-index type, into
/// Scratch.
Error GGUFDecomposer::emit(Item &I, OutputFile &F, ZstdShuffleEncoder &Enc,
                           std::vector<uint8_t> &Scratch,
                           std::vector<uint8_t> &T2) {
  const GGUFTensorInfo &T = *I.G;
  TensorRecord &R = I.R;
  ArrayRef<uint8_t> Src = G.data(T);
  uint64_t Cols = T.Ne[0];
  uint64_t Rows = T.Ne.size() > 1 ? R.Length / dtypeSize(R.Type) / Cols : 1;
  uint64_t N = Rows * Cols;
  Scratch.resize(R.Length);
  bool SameType = dtypeOf(T.Type) == R.Type && T.Type != GGMLType::Q8_0;
  if (SameType && !I.MinusOne && !I.UnpermuteHeadDim) {
    std::memcpy(Scratch.data(), Src.data(), R.Length);
  } else {
    // Through f32. Rows of the GGUF tensor are rows of the HF one, except
    // permuted Q/K: GGUF row i is HF row qkPermutedSource(i).
    std::vector<float> Row(Cols);
    unsigned ESize = dtypeSize(R.Type);
    uint64_t SrcRowBytes = *ggmlRowSize(T.Type, Cols);
    bool Exact = true;
    for (uint64_t Rw = 0; Rw < Rows; ++Rw) {
      decodeRow(Src.data() + Rw * SrcRowBytes, T.Type, Cols, Row.data());
      if (I.MinusOne)
        for (float &X : Row)
          X -= 1.0f;
      uint64_t Dst =
          I.UnpermuteHeadDim ? qkPermutedSource(Rw, I.UnpermuteHeadDim) : Rw;
      uint8_t *D = Scratch.data() + Dst * Cols * ESize;
      for (uint64_t C = 0; C < Cols; ++C) {
        float X = Row[C];
        switch (R.Type) {
        case DType::F32:
          std::memcpy(D + 4 * C, &X, 4);
          break;
        case DType::F16: {
          uint16_t H = floatToF16(X);
          Exact &= f16ToFloat(H) == X || std::isnan(X);
          support::endian::write16le(D + 2 * C, H);
          break;
        }
        case DType::BF16: {
          uint16_t B = floatToBF16(X);
          Exact &= bf16ToFloat(B) == X || std::isnan(X);
          support::endian::write16le(D + 2 * C, B);
          break;
        }
        }
      }
    }
    if (!Exact) {
      // A vector that does not fit the matrices' type stays F32: Row holds
      // its converted values (vectors are one row).
      assert(Rows == 1 && "only vectors change type");
      R.Type = DType::F32;
      R.Length = N * 4;
      Scratch.resize(R.Length);
      std::memcpy(Scratch.data(), Row.data(), R.Length);
    }
  }
  ArrayRef<uint8_t> Data(Scratch.data(), R.Length);
  if (R.Transposed) {
    T2.resize(R.Length);
    // Scratch holds the HF [D, F] matrix; the V-index stores [F, D].
    transposeMatrix(Data.data(), R.Dims[1], R.Dims[0], dtypeSize(R.Type),
                    T2.data());
    Data = ArrayRef<uint8_t>(T2.data(), R.Length);
  }
  G.file().dropPages(G.dataOffset() + T.Offset, T.Length);

  ChunkedChecksum Sum;
  R.Offset = F.size();
  R.Compression = Opts.Compress ? Codec::ZstdShuffle : Codec::None;
  R.CodecChunk = Opts.Compress ? kCodecChunk : 0;
  for (uint64_t Done = 0; Done < R.Length; Done += kCodecChunk) {
    ArrayRef<uint8_t> Chunk =
        Data.slice(Done, std::min(kCodecChunk, R.Length - Done));
    Sum.update(Chunk);
    if (!Opts.Compress) {
      if (Error E = F.write(Chunk))
        return E;
      continue;
    }
    Expected<ArrayRef<uint8_t>> Frame = Enc.encode(Chunk, dtypeSize(R.Type));
    if (!Frame)
      return Frame.takeError();
    if (Error E = F.write(*Frame))
      return E;
  }
  R.StoredLength = F.size() - R.Offset;
  R.Checksum = Sum.final();
  return Error::success();
}

Error GGUFDecomposer::writePayload(const std::string &File,
                                   ArrayRef<size_t> Indices, Progress &P) {
  Expected<std::unique_ptr<OutputFile>> F = OutputFile::create(Out.file(File));
  if (!F)
    return F.takeError();
  ZstdShuffleEncoder Enc(Opts.ZstdLevel);
  std::vector<uint8_t> Scratch, T2;
  for (size_t I : Indices) {
    if (Error E = (*F)->padTo(kPayloadAlignment))
      return E;
    if (Error E = emit(Items[I], **F, Enc, Scratch, T2))
      return E;
    P.advance(Items[I].G->Length);
  }
  return (*F)->close();
}

Error GGUFDecomposer::run() {
  if (Error E = readArchitecture())
    return E;
  Expected<std::string> ConfigText = buildConfig();
  if (!ConfigText)
    return ConfigText.takeError();
  Expected<ModelConfig> Config =
      parseHFConfig(*ConfigText, (G.path() + " (config.json)").str());
  if (!Config)
    return Config.takeError();
  Expected<std::string> TokText = tokenizerJsonFromGGUF(G);
  if (!TokText)
    return TokText.takeError();
  if (Error E = planTensors(*Config))
    return E;
  std::vector<FileItems> Files = itemsByFile();
  SourceFileRecord Source;
  if (Error E = writePayloads(Files, Source))
    return E;
  return writeManifest(*Config, *ConfigText, *TokText, Files, Source);
}

Error GGUFDecomposer::readArchitecture() {
  Expected<StringRef> ArchName = G.requiredString("general.architecture");
  if (!ArchName)
    return ArchName.takeError();
  Arch = ArchName->str();
  if (!findGGUFArchitecture(Arch, /*Windowed=*/false))
    return fileError(G.path(),
                     "architecture '{0}' is not supported as input "
                     "(supported: {1})",
                     Arch, ggufArchitectureList());
  if (const GGUFTensorInfo *E =
          G.findTensor(ggufGlobalTensorName(TensorRole::Embedding)))
    MatrixType = dtypeOf(E->Type);
  return Error::success();
}

std::vector<GGUFDecomposer::FileItems> GGUFDecomposer::itemsByFile() const {
  std::map<std::string, std::vector<size_t>> ByFile;
  for (size_t I = 0; I < Items.size(); ++I)
    ByFile[Items[I].R.File].push_back(I);
  for (auto &[File, Indices] : ByFile)
    llvm::stable_sort(Indices, [&](size_t A, size_t B) {
      return std::make_pair(Items[A].R.Role, Items[A].R.Name) <
             std::make_pair(Items[B].R.Role, Items[B].R.Name);
    });
  return {ByFile.begin(), ByFile.end()};
}

Error GGUFDecomposer::writePayloads(ArrayRef<FileItems> Files,
                                    SourceFileRecord &Source) {
  if (std::error_code EC = sys::fs::create_directories(
          Out.file("tensors"), /*IgnoreExisting=*/true, sys::fs::all_all))
    return fileError(Out.file("tensors"), "cannot create: {0}", EC.message());
  uint64_t Total = 0;
  for (const Item &I : Items)
    Total += I.G->Length;
  Progress P("decompose", Total);
  std::vector<std::string> Errors(Files.size() + 1);
  {
    DefaultThreadPool Pool(hardware_concurrency(Opts.Jobs));
    for (size_t I = 0; I < Files.size(); ++I)
      Pool.async([&, I] {
        if (Error E = writePayload(Files[I].first, Files[I].second, P))
          Errors[I] = toString(std::move(E));
      });
    Pool.async([&] {
      Source = {Opts.Input, G.file().size(), sha256Hex(G.file())};
    });
    Pool.wait();
  }
  P.finish();
  for (const std::string &E : Errors)
    if (!E.empty())
      return makeError("{0}", E);
  return Error::success();
}

Error GGUFDecomposer::writeManifest(const ModelConfig &Config,
                                    StringRef ConfigText, StringRef TokText,
                                    ArrayRef<FileItems> Files,
                                    const SourceFileRecord &Source) {
  Manifest M;
  M.Config = Config;
  for (const auto &[File, Indices] : Files)
    for (size_t I : Indices)
      M.Tensors.push_back(Items[I].R);
  llvm::stable_sort(M.Tensors,
                    [](const TensorRecord &A, const TensorRecord &B) {
                      return A.Name < B.Name;
                    });
  M.Shards.push_back({"model.safetensors", {{"format", "pt"}}});
  for (uint64_t L = 0; L < M.Config.NumLayers; ++L)
    M.Layers.push_back({uint32_t(L), M.Config.IntermediateSize, 0});
  for (auto [Name, Bytes] :
       {std::pair<StringRef, StringRef>{"config.json", ConfigText},
        {"tokenizer.json", TokText}}) {
    if (Error E = writeFileAtomically(Out.file(Name), Bytes))
      return E;
    M.Files.push_back(
        {Name.str(), Bytes.size(), checksum(arrayRefFromStringRef(Bytes))});
  }
  if (Error E =
          addCompiledTokenizer(TokText, (G.path() + " (tokenizer.json)").str(),
                               M.Config.VocabSize, Out, M.Files))
    return E;
  M.Provenance = {
      "vindex-decompose", toolVersion().str(), Opts.CommandLine, {Source}};
  return writeFileAtomically(Out.file(kManifestFileName), serializeManifest(M));
}

} // namespace

Error decomposeGGUF(const DecomposeOptions &Opts,
                    std::vector<std::string> &InputFiles) {
  Expected<std::unique_ptr<GGUFFile>> G = GGUFFile::open(Opts.Input);
  if (!G)
    return G.takeError();
  InputFiles = {Opts.Input};
  Expected<AtomicDirectory> Out =
      AtomicDirectory::create(Opts.Output, isReplaceableVindex);
  if (!Out)
    return Out.takeError();
  if (Error E = GGUFDecomposer(Opts, **G, *Out).run())
    return E;
  if (Opts.Verify) {
    Expected<std::unique_ptr<Vindex>> V = Vindex::open(Out->path());
    if (!V)
      return V.takeError();
    if (Error E = (*V)->verify(Opts.Jobs))
      return E;
  }
  return Out->commit();
}

} // namespace vindex
