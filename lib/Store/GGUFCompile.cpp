//===- GGUFCompile.cpp - V-index -> GGUF for llama.cpp --------------------===//
//
// The KVs and tensor infos are computed from the manifest and
// tokenizer.json before a byte is written; then each tensor is lowered in
// turn (llama.cpp's name, Hugging Face row order, Gemma norms + 1, Llama
// Q/K rows permuted, the output type) and appended, so one tensor at a time
// is in memory. Tensors that need no change are copied in the kernel. The
// file is written under a temporary name and renamed into place.
//
//===----------------------------------------------------------------------===//
#include "vindex/Store/Compile.h"

#include "GGUFNames.h"

#include "vindex/Formats/GGUF.h"
#include "vindex/Formats/RowConversion.h"
#include "vindex/Store/Layout.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/OutputFile.h"
#include "vindex/Support/Progress.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cstring>

using namespace llvm;

namespace vindex {

std::optional<GGUFOutputType> parseGGUFOutputType(StringRef Name) {
  return StringSwitch<std::optional<GGUFOutputType>>(Name)
      .Case("auto", GGUFOutputType::Auto)
      .Case("f32", GGUFOutputType::F32)
      .Case("f16", GGUFOutputType::F16)
      .Case("bf16", GGUFOutputType::BF16)
      .Case("q8_0", GGUFOutputType::Q8_0)
      .Default(std::nullopt);
}

namespace {

struct Planned {
  const TensorRecord *T;
  std::string Name;
  GGMLType Out;
  SmallVector<uint64_t, 4> Ne; ///< ggml order.
  bool PlusOne = false;
  uint64_t PermuteHeadDim = 0; ///< Rows permuted in heads of this size.
};

GGMLType storedGGMLType(DType T) {
  switch (T) {
  case DType::F32:
    return GGMLType::F32;
  case DType::F16:
    return GGMLType::F16;
  case DType::BF16:
    return GGMLType::BF16;
  }
  return GGMLType::F32;
}

bool isNormRole(TensorRole R) {
  switch (R) {
  case TensorRole::FinalNorm:
  case TensorRole::InputNorm:
  case TensorRole::PostAttnNorm:
  case TensorRole::PreFFNNorm:
  case TensorRole::PostFFNNorm:
  case TensorRole::AttnQNorm:
  case TensorRole::AttnKNorm:
    return true;
  default:
    return false;
  }
}

/// Writes the file under a temporary name and renames it into place; a
/// failure leaves nothing behind.
class AtomicOutput {
public:
  static Expected<AtomicOutput> create(StringRef Final) {
    SmallString<256> Temp;
    Expected<std::unique_ptr<OutputFile>> F =
        OutputFile::createUnique((Final + ".tmp-%%%%%%").str(), Temp);
    if (!F)
      return F.takeError();
    return AtomicOutput(Final.str(), Temp.str().str(), std::move(*F));
  }
  AtomicOutput(AtomicOutput &&O)
      : Final(std::move(O.Final)), Temp(std::move(O.Temp)),
        File(std::move(O.File)), Done(O.Done) {
    O.Done = true;
  }
  ~AtomicOutput() {
    if (!Done) {
      File.reset();
      sys::fs::remove(Temp);
    }
  }
  OutputFile &file() { return *File; }
  Error commit() {
    if (Error E = File->close())
      return E;
    if (std::error_code EC = sys::fs::rename(Temp, Final))
      return fileError(Final, "cannot rename output into place: {0}",
                       EC.message());
    Done = true;
    return Error::success();
  }

private:
  AtomicOutput(std::string Final, std::string Temp,
               std::unique_ptr<OutputFile> File)
      : Final(std::move(Final)), Temp(std::move(Temp)), File(std::move(File)) {}
  std::string Final, Temp;
  std::unique_ptr<OutputFile> File;
  bool Done = false;
};

Expected<std::string> readAux(const Vindex &V, StringRef Name) {
  bool Present = any_of(V.manifest().Files,
                        [&](const AuxFileRecord &F) { return F.Name == Name; });
  if (!Present)
    return fileError(V.directory(), "has no {0} (needed for GGUF)", Name);
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(
      V.path(Name), /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(V.path(Name), "cannot read: {0}",
                     Buf.getError().message());
  return (*Buf)->getBuffer().str();
}

class GGUFCompiler {
public:
  GGUFCompiler(const Vindex &V, GGUFOutputType Type) : V(V), Type(Type) {}
  Error run(StringRef Path);

private:
  Error plan();
  Error buildKVs();
  Error writeTensor(const Planned &P, OutputFile &Out, Progress &Prog);

  const Vindex &V;
  GGUFOutputType Type;
  StringRef Arch;
  std::vector<Planned> Tensors;
  std::vector<GGUFKV> KVs;
  std::vector<uint8_t> Storage, Transposed, OutBuf;
  std::vector<float> Row;
};

Error GGUFCompiler::plan() {
  const ModelConfig &C = V.config();
  for (const TensorRecord &T : V.manifest().Tensors) {
    Planned P;
    P.T = &T;
    P.Name = ggufTensorName(Arch, T.Role, T.Layer);
    if (P.Name.empty())
      return fileError(V.directory(),
                       "tensor '{0}' has no llama.cpp name "
                       "for architecture '{1}'",
                       T.Name, Arch);
    Shape Src = T.sourceDims();
    P.Ne.assign(Src.rbegin(), Src.rend());
    GGMLType Stored = storedGGMLType(T.Type);
    if (Src.size() < 2) {
      P.Out = GGMLType::F32;
    } else {
      switch (Type) {
      case GGUFOutputType::Auto:
        P.Out = Stored;
        break;
      case GGUFOutputType::F32:
        P.Out = GGMLType::F32;
        break;
      case GGUFOutputType::F16:
        P.Out = GGMLType::F16;
        break;
      case GGUFOutputType::BF16:
        P.Out = GGMLType::BF16;
        break;
      case GGUFOutputType::Q8_0:
        // As llama.cpp's converter: rows that are not whole blocks in F16.
        // The vocabulary matrices (the output projection, or the embedding
        // tied to it) stay F16 too: their error lands on the logits
        // directly (tiny-gemma3 in Q8_0 throughout loses the top-1 of a
        // prompt whose top two logits are 0.009 apart).
        P.Out = Src.back() % kQ8_0Block || T.Role == TensorRole::Embedding ||
                        T.Role == TensorRole::LMHead
                    ? GGMLType::F16
                    : GGMLType::Q8_0;
        break;
      }
    }
    P.PlusOne = C.Norm == NormStyle::OnePlusWeight && isNormRole(T.Role);
    if (ggufPermutesQK(Arch) &&
        (T.Role == TensorRole::AttnQ || T.Role == TensorRole::AttnK)) {
      if (C.HeadDim % 2 || Src[0] % C.HeadDim)
        return fileError(V.directory(),
                         "tensor '{0}' of shape {1} cannot "
                         "be split in heads of {2} rows",
                         T.Name, shapeString(Src), C.HeadDim);
      P.PermuteHeadDim = C.HeadDim;
    }
    Tensors.push_back(std::move(P));
  }
  // Globals first (token_embd, output_norm, output), then layer by layer in
  // llama.cpp's name order.
  auto Key = [](const Planned &P) {
    static const StringRef GlobalOrder[] = {
        "token_embd.weight", "output_norm.weight", "output.weight"};
    int G = find(GlobalOrder, P.Name) - std::begin(GlobalOrder);
    return std::make_tuple(P.T->Layer, G, P.Name);
  };
  llvm::sort(Tensors, [&](const Planned &A, const Planned &B) {
    return Key(A) < Key(B);
  });
  return Error::success();
}

/// general.name: config.json's _name_or_path, else the source directory.
std::string modelName(const Vindex &V, const json::Object *Cfg) {
  if (Cfg)
    if (std::optional<StringRef> N = Cfg->getString("_name_or_path"))
      return sys::path::filename(*N).str();
  const auto &Sources = V.manifest().Provenance.Sources;
  if (Sources.empty())
    return sys::path::stem(V.directory()).str();
  return sys::path::filename(sys::path::parent_path(Sources.front().Path))
      .str();
}

Error GGUFCompiler::buildKVs() {
  const ModelConfig &C = V.config();
  Expected<std::string> CfgText = readAux(V, "config.json");
  if (!CfgText)
    return CfgText.takeError();
  Expected<json::Value> CfgJson = json::parse(*CfgText);
  const json::Object *CfgObj = CfgJson ? CfgJson->getAsObject() : nullptr;
  if (!CfgJson)
    consumeError(CfgJson.takeError());

  auto Add = [&](StringRef Key, GGUFValue Val) {
    KVs.push_back({Key.str(), std::move(Val)});
  };
  auto A = [&](StringRef Suffix) { return (Arch + "." + Suffix).str(); };

  // general.*: what the model is and where it came from.
  Add("general.architecture", GGUFValue::string(Arch.str()));
  Add("general.name", GGUFValue::string(modelName(V, CfgObj)));
  // Source provenance: carried through a GGUF -> V-index -> GGUF round
  // trip in config.json, else the V-index's own record of its sources.
  std::vector<GGUFValue> Sources;
  if (const json::Array *S =
          CfgObj ? CfgObj->getArray("_vindex_sources") : nullptr) {
    for (const json::Value &E : *S)
      if (std::optional<StringRef> Str = E.getAsString())
        Sources.push_back(GGUFValue::string(Str->str()));
  } else {
    for (const SourceFileRecord &S : V.manifest().Provenance.Sources)
      Sources.push_back(GGUFValue::string(
          (sys::path::filename(S.Path) + " sha256:" + S.Sha256).str()));
  }
  Add("general.source.files",
      GGUFValue::array(GGUFType::String, std::move(Sources)));
  // llama_ftype from the bulk of the weights (the FFN matrices).
  uint32_t FileType = 0; // LLAMA_FTYPE_ALL_F32
  for (const Planned &P : Tensors)
    if (P.T->Role == TensorRole::FFNGate)
      FileType = P.Out == GGMLType::F16    ? 1
                 : P.Out == GGMLType::Q8_0 ? 7
                 : P.Out == GGMLType::BF16 ? 32
                                           : 0;
  Add("general.file_type", GGUFValue::u32(FileType));
  Add("general.quantization_version", GGUFValue::u32(2));

  // Hyperparameters.
  Add(A("context_length"), GGUFValue::u32(uint32_t(C.MaxPositions)));
  Add(A("embedding_length"), GGUFValue::u32(uint32_t(C.HiddenSize)));
  Add(A("block_count"), GGUFValue::u32(uint32_t(C.NumLayers)));
  Add(A("feed_forward_length"), GGUFValue::u32(uint32_t(C.IntermediateSize)));
  Add(A("attention.head_count"), GGUFValue::u32(uint32_t(C.NumHeads)));
  Add(A("attention.head_count_kv"), GGUFValue::u32(uint32_t(C.NumKVHeads)));
  Add(A("attention.key_length"), GGUFValue::u32(uint32_t(C.HeadDim)));
  Add(A("attention.value_length"), GGUFValue::u32(uint32_t(C.HeadDim)));
  Add(A("attention.layer_norm_rms_epsilon"), GGUFValue::f32(float(C.NormEps)));
  Add(A("rope.dimension_count"), GGUFValue::u32(uint32_t(C.HeadDim)));
  Add(A("rope.freq_base"), GGUFValue::f32(float(C.RopeTheta)));
  if (Arch == "gemma3") {
    Add(A("rope.freq_base_swa"), GGUFValue::f32(float(C.RopeLocalTheta)));
    if (C.SlidingWindow && is_contained(C.LayerKinds, LayerKind::Sliding)) {
      // llama.cpp: layer il slides iff il % pattern < pattern - 1.
      uint64_t Pattern = 0;
      for (uint64_t P = 1; P <= C.NumLayers + 1 && !Pattern; ++P) {
        bool Ok = true;
        for (uint64_t L = 0; L < C.NumLayers; ++L)
          Ok &= (C.LayerKinds[L] == LayerKind::Sliding) == (L % P < P - 1);
        if (Ok)
          Pattern = P;
      }
      if (!Pattern)
        return fileError(V.directory(), "the sliding/full layer sequence "
                                        "has no period llama.cpp can "
                                        "express");
      Add(A("attention.sliding_window"),
          GGUFValue::u32(uint32_t(C.SlidingWindow)));
      Add(A("attention.sliding_window_pattern"),
          GGUFValue::u32(uint32_t(Pattern)));
    }
  }
  if (C.FinalSoftcap)
    Add(A("final_logit_softcapping"), GGUFValue::f32(float(C.FinalSoftcap)));
  if (C.AttnSoftcap)
    Add(A("attn_logit_softcapping"), GGUFValue::f32(float(C.AttnSoftcap)));
  if (C.Scaling.Type == "linear") {
    Add(A("rope.scaling.type"), GGUFValue::string("linear"));
    Add(A("rope.scaling.factor"), GGUFValue::f32(float(C.Scaling.Factor)));
  } else if (!C.Scaling.Type.empty() && C.Scaling.Type != "default") {
    return fileError(V.directory(),
                     "rope scaling '{0}' is not supported in "
                     "GGUF output yet",
                     C.Scaling.Type);
  }
  if (Arch == "llama")
    Add(A("vocab_size"), GGUFValue::u32(uint32_t(C.VocabSize)));

  Expected<std::string> TokText = readAux(V, "tokenizer.json");
  if (!TokText)
    return TokText.takeError();
  Expected<std::vector<GGUFKV>> Tok =
      ggufTokenizerKVs(*TokText, V.path("tokenizer.json"), C, C.VocabSize);
  if (!Tok)
    return Tok.takeError();
  for (GGUFKV &KV : *Tok)
    KVs.push_back(std::move(KV));
  return Error::success();
}

Error GGUFCompiler::writeTensor(const Planned &P, OutputFile &Out,
                                Progress &Prog) {
  const TensorRecord &T = *P.T;
  auto Discard = [](ArrayRef<uint8_t>) { return Error::success(); };
  bool Mapped = T.Compression == Codec::None;
  bool Verbatim =
      !P.PlusOne && !P.PermuteHeadDim && P.Out == storedGGMLType(T.Type);
  Prog.advance(T.Length);
  if (Verbatim && !T.Transposed) {
    if (!Mapped) // decode, check and write chunk by chunk
      return V.read(T,
                    [&](ArrayRef<uint8_t> Chunk) { return Out.write(Chunk); });
    // Check through the mapping (releasing it behind), then let the kernel
    // copy the bytes.
    if (Error E = V.read(T, Discard))
      return E;
    return Out.copyFrom(V.payloadFile(T), T.Offset, T.Length);
  }

  // The checksum first (read() releases the mapped pages behind it), then
  // the values in Hugging Face layout: a view into the mapping, or decoded
  // (and for the down projection transposed back) into memory.
  if (Error E = V.read(T, Discard))
    return E;
  Expected<ArrayRef<uint8_t>> Data = V.data(T, Storage);
  if (!Data)
    return Data.takeError();
  ArrayRef<uint8_t> Src = *Data;
  unsigned ElemSize = dtypeSize(T.Type);
  if (T.Transposed) {
    Transposed.resize(T.Length);
    transposeMatrix(Src.data(), T.Dims[0], T.Dims[1], ElemSize,
                    Transposed.data());
    if (Mapped)
      V.payloadFile(T).dropPages(T.Offset, T.Length);
    Src = Transposed;
    Mapped = false;
  }
  if (Verbatim)
    return Out.write(Src);

  uint64_t Cols = T.sourceDims().back();
  uint64_t Rows = Cols ? T.Length / ElemSize / Cols : 0;
  uint64_t RowBytes = *ggmlRowSize(P.Out, Cols);
  uint64_t ChunkRows = std::max<uint64_t>(1, (4u << 20) / RowBytes);
  Row.resize(Cols);
  for (uint64_t R0 = 0; R0 < Rows; R0 += ChunkRows) {
    uint64_t N = std::min(ChunkRows, Rows - R0);
    OutBuf.resize(N * RowBytes);
    for (uint64_t R = R0; R < R0 + N; ++R) {
      uint64_t SrcRow =
          P.PermuteHeadDim ? qkPermutedSource(R, P.PermuteHeadDim) : R;
      decodeRow(Src.data() + SrcRow * Cols * ElemSize, T.Type, Cols,
                Row.data());
      if (P.PlusOne)
        for (float &X : Row)
          X += 1.0f;
      encodeRow(Row.data(), Cols, P.Out, OutBuf.data() + (R - R0) * RowBytes);
    }
    if (Error E = Out.write(OutBuf))
      return E;
    // Q/K rows come from anywhere within their head: release whole chunks
    // only when rows map to themselves.
    if (Mapped && !P.PermuteHeadDim)
      V.payloadFile(T).dropPages(T.Offset + R0 * Cols * ElemSize,
                                 N * Cols * ElemSize);
  }
  if (Mapped)
    V.payloadFile(T).dropPages(T.Offset, T.Length);
  return Error::success();
}

Error GGUFCompiler::run(StringRef Path) {
  Arch = ggufArchitecture(V.config());
  if (Arch.empty())
    return fileError(V.directory(),
                     "architecture '{0}' cannot be written "
                     "to GGUF",
                     V.config().Architecture);
  if (Error E = plan())
    return E;
  if (Error E = buildKVs())
    return E;
  std::vector<GGUFWriter::Tensor> List;
  uint64_t Total = 0;
  for (const Planned &P : Tensors) {
    List.push_back({P.Name, P.Ne, P.Out});
    Total += P.T->Length;
  }
  GGUFWriter W(std::move(KVs), std::move(List));
  Expected<AtomicOutput> Out = AtomicOutput::create(Path);
  if (!Out)
    return Out.takeError();
  Progress Prog("compile", Total);
  if (Error E = Out->file().write(arrayRefFromStringRef(W.header())))
    return E;
  for (const Planned &P : Tensors) {
    if (Error E = writeTensor(P, Out->file(), Prog))
      return E;
    if (Error E = Out->file().padTo(W.alignment()))
      return E;
  }
  Prog.finish();
  if (Out->file().size() != W.totalSize())
    return makeError("{0}: internal error: wrote {1} bytes, planned {2}", Path,
                     Out->file().size(), W.totalSize());
  return Out->commit();
}

} // namespace

Error compileGGUF(const Vindex &V, StringRef Path, GGUFOutputType Type,
                  unsigned Jobs) {
  (void)Jobs; // One output file, written front to back.
  return GGUFCompiler(V, Type).run(Path);
}

} // namespace vindex
