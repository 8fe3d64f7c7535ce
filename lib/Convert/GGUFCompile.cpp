//===- GGUFCompile.cpp - V-index -> GGUF for llama.cpp --------------------===//
//
// The KVs and tensor infos are computed from the manifest and
// tokenizer.json before a byte is written; then each tensor is lowered in
// turn (llama.cpp's name, Hugging Face row order, Gemma norms + 1, Llama
// Q/K rows permuted, the output type) and appended, so one tensor at a time
// is in memory. The file is written under a temporary name and renamed
// into place.
//
// Each tensor is cut into pieces of one checksum chunk (4 MiB) of its stored
// bytes: the pool hashes a piece and converts its rows (or transposes them
// back) while this thread writes the earlier pieces in file order, so
// quantization runs on every core, hashing overlaps the writes, and the
// bytes do not depend on the thread count. A checksum mismatch is found
// when the tensor's last piece is written, before the output is renamed
// into place.
//
// Pieces of tensors written unchanged are read with pread(2) into the
// piece's buffer, hashed there and written from it, rather than hashed
// through the mapping and copied with copy_file_range(2) as the safetensors
// compile does: GGUF data is only 32-byte aligned in the file, and the
// kernel's splice copies into a file position that is not page aligned cost
// about twice a write(2) of the same bytes (4-layer synthetic Gemma 3 4B,
// 2.1 GB warm: 3.2-3.4 s against 2.1-2.2 s for the whole compile + sync).
//
//===----------------------------------------------------------------------===//
#include "vindex/Convert/Compile.h"

#include "GGUFTensorNames.h"
#include "GGUFTokenizer.h"

#include "vindex/Formats/GGUF.h"
#include "vindex/Formats/Rope.h"
#include "vindex/Formats/RowConversion.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/AtomicOutput.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/JSON.h"
#include "vindex/Support/OutputFile.h"
#include "vindex/Support/Progress.h"
#include "vindex/Support/Transpose.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ThreadPool.h"

#include <cstring>
#include <future>
#include <optional>

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
  const TensorRecord *T; ///< Null for a tensor llama.cpp derives (Values).
  std::string Name;
  GGMLType Out;
  SmallVector<uint64_t, 4> Ne; ///< ggml order.
  bool PlusOne = false;
  uint64_t PermuteHeadDim = 0; ///< Rows permuted in heads of this size.
  std::vector<float> Values;   ///< The F32 data of a derived tensor.
  /// T as written: with the view's appended rows and the zero rows that
  /// pad every layer to the widest FFN when widths differ.
  TensorRecord Eff;
  /// Patched or padded: read through the view, not the payload.
  bool ThroughView = false;
  int layer() const { return T ? T->Layer : -1; }
  // Set when the tensor's turn comes (prepare()):
  bool Verbatim = false; ///< Output bytes = stored bytes (maybe transposed).
  bool Mapped = false;   ///< Uncompressed: read, and hashed, in place.
  bool Streamed = false; ///< Compressed, unchanged: written by prepare().
  const uint8_t *Src = nullptr; ///< The stored (V-index layout) bytes.
  std::vector<uint64_t> Hashes; ///< Of each checksum chunk (mapped).
};

/// One piece of the output in flight: the part of a tensor that comes from
/// its stored bytes [Begin, End), one checksum chunk.
struct Slot {
  size_t Tensor = 0;
  uint64_t Begin = 0, End = 0;
  std::shared_future<void> Done;
  std::string Problem;             ///< An error computing the piece.
  std::vector<uint8_t> Buf, Strip; ///< Output bytes; a transposed strip.
  std::vector<float> Row;
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

Expected<std::string> readAux(const Vindex &V, StringRef Name) {
  Expected<std::unique_ptr<MemoryBuffer>> Buf = V.readAuxFile(Name);
  if (!Buf)
    return Buf.takeError();
  return (*Buf)->getBuffer().str();
}

class GGUFCompiler {
public:
  GGUFCompiler(const TensorView &View, GGUFOutputType Type)
      : View(View), V(View.base()), Type(Type) {}
  Error run(StringRef Path, unsigned Threads);

private:
  Error plan();
  /// One of the V-index's tensors: its name, shape and type in the GGUF
  /// and what is done to it on the way.
  Expected<Planned> planTensor(const TensorRecord &T);
  /// The GGUF type of a tensor of source shape Src under --type.
  GGMLType outputType(const TensorRecord &T, const Shape &Src) const;
  /// rope_freqs.weight, for a llama3 RoPE scaling (none otherwise).
  Error planRopeFreqs();
  Error buildKVs();
  /// general.*: what the model is and where it came from (CfgObj: the
  /// V-index's config.json, if it parses).
  void addGeneralKVs(const json::Object *CfgObj);
  /// The hyperparameters, attention windows and RoPE scaling.
  Error addHyperparameterKVs();
  /// The attention windows llama.cpp can express.
  Error addWindowKVs();
  void add(StringRef Key, GGUFValue Val) {
    KVs.push_back({Key.str(), std::move(Val)});
  }
  /// Arch's key Suffix ("llama.context_length").
  std::string archKey(StringRef Suffix) const {
    return (Arch + "." + Suffix).str();
  }
  Error writeTensors(unsigned Threads, Progress &P);
  Error prepare(size_t I, Progress &P);
  void compute(Slot &S);
  Error writeNext();
  Error drain();

  const TensorView &View;
  const Vindex &V;
  GGUFOutputType Type;
  const ArchitectureInfo *Info = nullptr;
  StringRef Arch; ///< llama.cpp's name of Info.
  std::vector<Planned> Tensors;
  std::vector<GGUFKV> KVs;
  OutputFile *Out = nullptr;
  Progress *Prog = nullptr;
  uint64_t Alignment = kGGUFDefaultAlignment;
  std::vector<uint8_t> Storage; ///< The compressed tensor being written.
  std::vector<Slot> Slots;      ///< Ring of pieces in flight.
  uint64_t Scheduled = 0, Written = 0;
};

Error GGUFCompiler::plan() {
  for (const TensorRecord *T : View.tensors()) {
    Expected<Planned> P = planTensor(*T);
    if (!P)
      return P.takeError();
    Tensors.push_back(std::move(*P));
  }
  if (Error E = planRopeFreqs())
    return E;
  // Globals first (token_embd, output_norm, output), then layer by layer in
  // llama.cpp's name order.
  auto Key = [](const Planned &P) {
    return std::make_tuple(P.layer(), ggufGlobalRank(P.Name), P.Name);
  };
  llvm::sort(Tensors, [&](const Planned &A, const Planned &B) {
    return Key(A) < Key(B);
  });
  return Error::success();
}

Expected<Planned> GGUFCompiler::planTensor(const TensorRecord &T) {
  const ModelConfig &C = V.config();
  Planned P;
  P.T = &T;
  P.Eff = View.record(T);
  if (isFFNRole(T.Role) && View.ffnWidthsChanged() && P.Eff.Dims.size() == 2) {
    P.Eff.Dims[0] = std::max(P.Eff.Dims[0], View.maxFFNWidth());
    P.Eff.Length = P.Eff.Dims[0] * View.rowBytes(T);
  }
  P.ThroughView = View.isPatched(T) || P.Eff.Length != T.Length;
  P.Name = ggufTensorName(*Info, T.Role, T.Layer);
  if (P.Name.empty())
    return fileError(V.directory(),
                     "tensor '{0}' has no llama.cpp name "
                     "for architecture '{1}'",
                     T.Name, Arch);
  Shape Src = P.Eff.sourceDims();
  P.Ne.assign(Src.rbegin(), Src.rend());
  P.Out = outputType(T, Src);
  P.PlusOne = C.Norm == NormStyle::OnePlusWeight && isNormRole(T.Role);
  if (Info->LlamaConverter &&
      (T.Role == TensorRole::AttnQ || T.Role == TensorRole::AttnK)) {
    if (C.HeadDim % 2 || Src[0] % C.HeadDim)
      return fileError(V.directory(),
                       "tensor '{0}' of shape {1} cannot "
                       "be split in heads of {2} rows",
                       T.Name, shapeString(Src), C.HeadDim);
    P.PermuteHeadDim = C.HeadDim;
  }
  return P;
}

GGMLType GGUFCompiler::outputType(const TensorRecord &T,
                                  const Shape &Src) const {
  if (Src.size() < 2)
    return GGMLType::F32;
  switch (Type) {
  case GGUFOutputType::Auto:
    return storedGGMLType(T.Type);
  case GGUFOutputType::F32:
    return GGMLType::F32;
  case GGUFOutputType::F16:
    return GGMLType::F16;
  case GGUFOutputType::BF16:
    return GGMLType::BF16;
  case GGUFOutputType::Q8_0:
    // As llama.cpp's converter: rows that are not whole blocks in F16.
    // The vocabulary matrices (the output projection, or the embedding
    // tied to it) stay F16 too: their error lands on the logits
    // directly (tiny-gemma3 in Q8_0 throughout loses the top-1 of a
    // prompt whose top two logits are 0.009 apart).
    return Src.back() % kQ8_0Block || T.Role == TensorRole::Embedding ||
                   T.Role == TensorRole::LMHead
               ? GGMLType::F16
               : GGMLType::Q8_0;
  }
  llvm_unreachable("every GGUF output type is handled");
}

Error GGUFCompiler::planRopeFreqs() {
  // llama.cpp applies a llama3 RoPE scaling through per-pair frequency
  // factors, which its converter derives from config.json.
  const ModelConfig &C = V.config();
  if (C.Scaling.Type != "llama3")
    return Error::success();
  if (!Info->LlamaConverter)
    return fileError(V.directory(),
                     "llama3 RoPE scaling cannot be written for "
                     "architecture '{0}'",
                     Arch);
  Planned P;
  P.T = nullptr;
  P.Name = kGGUFRopeFreqsName.str();
  P.Out = GGMLType::F32;
  P.Values = llama3RopeFactors(C.RopeTheta, C.HeadDim, C.Scaling);
  P.Ne = {P.Values.size()};
  Tensors.push_back(std::move(P));
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

void GGUFCompiler::addGeneralKVs(const json::Object *CfgObj) {
  add("general.architecture", GGUFValue::string(Arch.str()));
  add("general.name", GGUFValue::string(modelName(V, CfgObj)));
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
  add("general.source.files",
      GGUFValue::array(GGUFType::String, std::move(Sources)));
  // llama_ftype from the bulk of the weights (the FFN matrices).
  uint32_t FileType = 0; // LLAMA_FTYPE_ALL_F32
  for (const Planned &P : Tensors)
    if (P.T && P.T->Role == TensorRole::FFNGate)
      FileType = P.Out == GGMLType::F16    ? 1
                 : P.Out == GGMLType::Q8_0 ? 7
                 : P.Out == GGMLType::BF16 ? 32
                                           : 0;
  add("general.file_type", GGUFValue::u32(FileType));
  add("general.quantization_version", GGUFValue::u32(2));
}

Error GGUFCompiler::addWindowKVs() {
  const ModelConfig &C = V.config();
  if (Info->Gemma) {
    add(archKey("rope.freq_base_swa"), GGUFValue::f32(float(C.RopeLocalTheta)));
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
      add(archKey("attention.sliding_window"),
          GGUFValue::u32(uint32_t(C.SlidingWindow)));
      add(archKey("attention.sliding_window_pattern"),
          GGUFValue::u32(uint32_t(Pattern)));
    }
  } else if (C.SlidingWindow &&
             is_contained(C.LayerKinds, LayerKind::Sliding)) {
    // Mistral (and Qwen with use_sliding_window): every layer slides. The
    // window is recorded under llama.cpp's key so that it survives a round
    // trip, but llama.cpp's llama/qwen2/qwen3 graphs do not read it (its
    // converter drops it): past the window llama.cpp attends to every
    // earlier token.
    if (is_contained(C.LayerKinds, LayerKind::Full))
      return fileError(V.directory(),
                       "a mix of sliding and full attention layers "
                       "cannot be written for architecture '{0}'",
                       Arch);
    add(archKey("attention.sliding_window"),
        GGUFValue::u32(uint32_t(C.SlidingWindow)));
  }
  return Error::success();
}

Error GGUFCompiler::addHyperparameterKVs() {
  const ModelConfig &C = V.config();
  auto U32 = [&](StringRef Suffix, uint64_t X) {
    add(archKey(Suffix), GGUFValue::u32(uint32_t(X)));
  };
  auto F32 = [&](StringRef Suffix, double X) {
    add(archKey(Suffix), GGUFValue::f32(float(X)));
  };
  U32("context_length", C.MaxPositions);
  U32("embedding_length", C.HiddenSize);
  U32("block_count", C.NumLayers);
  // One width for every layer (narrower ones are padded: plan()).
  U32("feed_forward_length",
      View.ffnWidthsChanged() ? View.maxFFNWidth() : C.IntermediateSize);
  U32("attention.head_count", C.NumHeads);
  U32("attention.head_count_kv", C.NumKVHeads);
  U32("attention.key_length", C.HeadDim);
  U32("attention.value_length", C.HeadDim);
  F32("attention.layer_norm_rms_epsilon", C.NormEps);
  U32("rope.dimension_count", C.HeadDim);
  F32("rope.freq_base", C.RopeTheta);
  if (Error E = addWindowKVs())
    return E;
  if (C.FinalSoftcap)
    F32("final_logit_softcapping", C.FinalSoftcap);
  if (C.AttnSoftcap)
    F32("attn_logit_softcapping", C.AttnSoftcap);
  if (C.Scaling.Type == "linear") {
    add(archKey("rope.scaling.type"), GGUFValue::string("linear"));
    F32("rope.scaling.factor", C.Scaling.Factor);
  } else if (!C.Scaling.Type.empty() && C.Scaling.Type != "default" &&
             C.Scaling.Type != "llama3") { // llama3: rope_freqs.weight
    return fileError(V.directory(),
                     "rope scaling '{0}' is not supported in "
                     "GGUF output yet",
                     C.Scaling.Type);
  }
  if (Info->LlamaConverter)
    U32("vocab_size", C.VocabSize);
  return Error::success();
}

Error GGUFCompiler::buildKVs() {
  const ModelConfig &C = V.config();
  Expected<std::string> CfgText = readAux(V, "config.json");
  if (!CfgText)
    return CfgText.takeError();
  Expected<json::Value> CfgJson = parseJSON(*CfgText);
  const json::Object *CfgObj = CfgJson ? CfgJson->getAsObject() : nullptr;
  if (!CfgJson)
    consumeError(CfgJson.takeError());
  addGeneralKVs(CfgObj);
  if (Error E = addHyperparameterKVs())
    return E;
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

Error GGUFCompiler::prepare(size_t I, Progress &Prog) {
  Planned &P = Tensors[I];
  const TensorRecord &T = *P.T;
  P.Verbatim =
      !P.PlusOne && !P.PermuteHeadDim && P.Out == storedGGMLType(T.Type);
  if (P.ThroughView) {
    // As a compressed payload: built by this thread through the view (which
    // checks the base checksum), then cut into pieces.
    if (Error E = drain())
      return E;
    uint64_t Rows = P.Eff.Dims.empty() ? 1 : P.Eff.Dims[0];
    if (P.Verbatim && !T.Transposed) {
      P.Streamed = true;
      Prog.advance(P.Eff.Length);
      return View.read(
          T, [&](ArrayRef<uint8_t> Chunk) { return Out->write(Chunk); }, Rows);
    }
    if (Error E = View.readAll(T, Storage, Rows))
      return E;
    P.Src = Storage.data();
    return Error::success();
  }
  P.Mapped = T.Compression == Codec::None;
  if (P.Mapped) {
    P.Src = V.stored(T).data();
    P.Hashes.assign(divideCeil(T.Length, kChecksumChunk), 0);
    return Error::success();
  }
  // A compressed payload is decoded by this thread, its checksum checked on
  // the way; the pieces then read the decoded bytes, so the earlier ones
  // must be written first (only one tensor is held decoded).
  if (Error E = drain())
    return E;
  if (P.Verbatim && !T.Transposed) {
    P.Streamed = true;
    Prog.advance(T.Length);
    return V.read(T,
                  [&](ArrayRef<uint8_t> Chunk) { return Out->write(Chunk); });
  }
  Storage.clear();
  Storage.reserve(T.Length);
  if (Error E = V.read(T, [&](ArrayRef<uint8_t> Chunk) {
        Storage.insert(Storage.end(), Chunk.begin(), Chunk.end());
        return Error::success();
      }))
    return E;
  P.Src = Storage.data();
  return Error::success();
}

/// Computes one piece: its output bytes and the hash of its stored chunk
/// (mapped payloads).
void GGUFCompiler::compute(Slot &S) {
  Planned &P = Tensors[S.Tensor];
  const TensorRecord &T = P.Eff;
  ArrayRef<uint8_t> Chunk(P.Src + S.Begin, S.End - S.Begin);
  S.Problem.clear();
  if (P.Verbatim && !T.Transposed) { // only mapped: see prepare()
    S.Buf.resize(Chunk.size());
    if (Error E = V.payloadFile(T).readInto(T.Offset + S.Begin, S.Buf))
      S.Problem = toString(std::move(E));
    else if (!Chunk.empty())
      P.Hashes[S.Begin / kChecksumChunk] = chunkHash(S.Buf);
    return;
  }
  if (P.Mapped && !Chunk.empty())
    P.Hashes[S.Begin / kChecksumChunk] = chunkHash(Chunk);
  S.Buf.clear();
  // Rows (Hugging Face layout) whose first byte falls in [Begin, End).
  unsigned ElemSize = dtypeSize(T.Type);
  uint64_t Cols = T.sourceDims().back();
  uint64_t SrcRowBytes = Cols * ElemSize;
  if (SrcRowBytes == 0)
    return;
  uint64_t Rows = T.Length / SrcRowBytes;
  uint64_t R0 = std::min(Rows, divideCeil(S.Begin, SrcRowBytes));
  uint64_t R1 = std::min(Rows, divideCeil(S.End, SrcRowBytes));
  if (T.Transposed) {
    // Back to [hidden, features], this strip of rows only.
    std::vector<uint8_t> &Dst = P.Verbatim ? S.Buf : S.Strip;
    Dst.resize((R1 - R0) * SrcRowBytes);
    transposeStrided(P.Src + R0 * ElemSize, T.Dims[1], T.Dims[0], R1 - R0,
                     ElemSize, Dst.data(), T.Dims[0]);
    if (P.Verbatim)
      return;
  }
  uint64_t RowBytes = *ggmlRowSize(P.Out, Cols);
  S.Buf.resize((R1 - R0) * RowBytes);
  S.Row.resize(Cols);
  for (uint64_t R = R0; R < R1; ++R) {
    const uint8_t *SrcRow =
        T.Transposed ? S.Strip.data() + (R - R0) * SrcRowBytes
        : P.PermuteHeadDim
            ? P.Src + qkPermutedSource(R, P.PermuteHeadDim) * SrcRowBytes
            : P.Src + R * SrcRowBytes;
    decodeRow(SrcRow, T.Type, Cols, S.Row.data());
    if (P.PlusOne)
      for (float &X : S.Row)
        X += 1.0f;
    encodeRow(S.Row.data(), Cols, P.Out, S.Buf.data() + (R - R0) * RowBytes);
  }
  // Q/K rows come from anywhere within their head, and a transposed strip
  // from the whole tensor: those are released when the tensor is done.
  if (P.Mapped && !T.Transposed && !P.PermuteHeadDim && !Chunk.empty())
    V.payloadFile(T).dropPages(T.Offset + S.Begin, Chunk.size());
}

/// Writes the oldest piece in flight once it is computed; after a tensor's
/// last piece, checks its checksum and pads to the alignment.
Error GGUFCompiler::writeNext() {
  Slot &S = Slots[Written++ % Slots.size()];
  if (S.Done.valid())
    S.Done.wait();
  const Planned &P = Tensors[S.Tensor];
  const TensorRecord &T = P.Eff;
  if (!S.Problem.empty())
    return makeError("{0}", S.Problem);
  if (Error E = Out->write(S.Buf))
    return E;
  Prog->advance(S.End - S.Begin);
  if (S.End < T.Length)
    return Error::success();
  if (P.Mapped) {
    V.payloadFile(T).dropPages(T.Offset, T.Length);
    if (combineChunkHashes(P.Hashes) != T.Checksum)
      return fileError(V.path(T.File),
                       "tensor '{0}': checksum mismatch (the "
                       "payload is corrupt)",
                       T.Name);
  }
  return Out->padTo(Alignment);
}

Error GGUFCompiler::drain() {
  while (Written < Scheduled)
    if (Error E = writeNext())
      return E;
  return Error::success();
}

/// Cuts every tensor into pieces of one checksum chunk of its bytes,
/// computed by the pool (at most Slots.size() in flight) and written in
/// order by this thread, so the bytes do not depend on the thread count.
Error GGUFCompiler::writeTensors(unsigned Threads, Progress &P) {
  Prog = &P;
  std::optional<DefaultThreadPool> Pool;
  if (Threads > 1)
    Pool.emplace(hardware_concurrency(Threads));
  Slots.resize(Threads > 1 ? 2 * Threads + 2 : 1);
  auto Run = [&]() -> Error {
    for (size_t I = 0; I < Tensors.size(); ++I) {
      if (!Tensors[I].T) { // derived by us (rope_freqs): written as it is
        const std::vector<float> &Values = Tensors[I].Values;
        if (Error E = drain())
          return E;
        if (Error E = Out->write(ArrayRef<uint8_t>(
                reinterpret_cast<const uint8_t *>(Values.data()),
                Values.size() * sizeof(float))))
          return E;
        if (Error E = Out->padTo(Alignment))
          return E;
        continue;
      }
      const TensorRecord &T = Tensors[I].Eff;
      if (Error E = prepare(I, P))
        return E;
      if (Tensors[I].Streamed) {
        if (Error E = Out->padTo(Alignment))
          return E;
        continue;
      }
      uint64_t Begin = 0;
      do {
        if (Scheduled - Written == Slots.size())
          if (Error E = writeNext())
            return E;
        Slot &S = Slots[Scheduled++ % Slots.size()];
        S.Tensor = I;
        S.Begin = Begin;
        S.End = Begin = std::min(T.Length, Begin + kChecksumChunk);
        if (Pool)
          S.Done = Pool->async([this, &S] { compute(S); });
        else
          compute(S);
      } while (Begin < T.Length);
    }
    return drain();
  };
  Error E = Run();
  if (Pool)
    Pool->wait(); // nothing may still read the slots on an error
  return E;
}

Error GGUFCompiler::run(StringRef Path, unsigned Threads) {
  Info = findArchitecture(V.config().Architecture);
  if (!Info)
    return fileError(V.directory(),
                     "architecture '{0}' cannot be written "
                     "to GGUF",
                     V.config().Architecture);
  Arch = Info->GGUFName;
  if (Error E = plan())
    return E;
  if (Error E = buildKVs())
    return E;
  std::vector<GGUFWriter::Tensor> List;
  uint64_t Total = 0;
  for (const Planned &P : Tensors) {
    List.push_back({P.Name, P.Ne, P.Out});
    Total += P.T ? P.Eff.Length : 0;
  }
  GGUFWriter W(std::move(KVs), std::move(List));
  Alignment = W.alignment();
  Expected<AtomicFile> File = AtomicFile::create(Path);
  if (!File)
    return File.takeError();
  Out = &File->out();
  Progress Prog("compile", Total);
  if (Error E = Out->write(arrayRefFromStringRef(W.header())))
    return E;
  if (Error E = writeTensors(Threads, Prog))
    return E;
  Prog.finish();
  if (Out->size() != W.totalSize())
    return makeError("{0}: internal error: wrote {1} bytes, planned {2}", Path,
                     Out->size(), W.totalSize());
  return File->commit();
}

} // namespace

Error compileGGUF(const Vindex &V, StringRef Path, GGUFOutputType Type,
                  unsigned Jobs) {
  return compileGGUF(TensorView(V), Path, Type, Jobs);
}

Error compileGGUF(const TensorView &V, StringRef Path, GGUFOutputType Type,
                  unsigned Jobs) {
  return GGUFCompiler(V, Type).run(
      Path, hardware_concurrency(Jobs).compute_thread_count());
}

} // namespace vindex
