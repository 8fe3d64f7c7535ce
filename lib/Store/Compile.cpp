//===- Compile.cpp - V-index -> Hugging Face safetensors ------------------===//
//
// Every output file's layout (header, then tensors in the source order) is
// known before a byte is written, so tensors are written in parallel with
// pwrite at fixed offsets: the bytes do not depend on the thread count.
//
//===----------------------------------------------------------------------===//
#include "vindex/Store/Compile.h"

#include "vindex/Store/Layout.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/AtomicDirectory.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/Progress.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/ThreadPool.h"

#include <set>
#include <unistd.h>

using namespace llvm;

namespace vindex {

namespace {

/// An output file open for positional writes from several threads.
class PositionalFile {
public:
  static Expected<std::unique_ptr<PositionalFile>> create(StringRef Path) {
    int FD;
    if (std::error_code EC = sys::fs::openFileForWrite(Path, FD))
      return fileError(Path, "cannot create: {0}", EC.message());
    return std::unique_ptr<PositionalFile>(new PositionalFile(Path, FD));
  }
  ~PositionalFile() { sys::Process::SafelyCloseFileDescriptor(FD); }

  Error write(uint64_t Offset, ArrayRef<uint8_t> Data) const {
    while (!Data.empty()) {
      ssize_t N = ::pwrite(FD, Data.data(), Data.size(), Offset);
      if (N < 0 && errno == EINTR)
        continue;
      if (N <= 0)
        return fileError(Path, "write failed: {0}",
                         std::error_code(errno, std::generic_category())
                             .message());
      Data = Data.drop_front(N);
      Offset += N;
    }
    return Error::success();
  }

private:
  PositionalFile(StringRef Path, int FD) : Path(Path.str()), FD(FD) {}
  std::string Path;
  int FD;
};

struct OutputShard {
  std::string Name;
  std::vector<const TensorRecord *> Tensors;
  std::unique_ptr<SafetensorsWriter> Writer;
  std::unique_ptr<PositionalFile> File;
  std::vector<uint64_t> Offsets; ///< Absolute offset of each tensor.
};

/// Writes one tensor in the source layout at Offset.
Error writeTensor(const Vindex &V, const TensorRecord &T,
                  const PositionalFile &File, uint64_t Offset, Progress &P) {
  if (!T.Transposed) {
    return V.read(T, [&](ArrayRef<uint8_t> Chunk) -> Error {
      if (Error E = File.write(Offset, Chunk))
        return E;
      Offset += Chunk.size();
      P.advance(Chunk.size());
      return Error::success();
    });
  }
  std::vector<uint8_t> Stored;
  Stored.reserve(T.Length);
  if (Error E = V.read(T, [&](ArrayRef<uint8_t> Chunk) {
        Stored.insert(Stored.end(), Chunk.begin(), Chunk.end());
        return Error::success();
      }))
    return E;
  std::vector<uint8_t> Source(T.Length);
  transposeMatrix(Stored.data(), T.Dims[0], T.Dims[1], dtypeSize(T.Type),
                  Source.data());
  P.advance(T.Length);
  return File.write(Offset, Source);
}

/// config.json of the text model for a multimodal Gemma 3 source: the
/// V-index holds only the language model, so that is what we emit.
Expected<std::string> textModelConfig(StringRef Text, StringRef File) {
  Expected<json::Value> Root = json::parse(Text);
  if (!Root)
    return fileError(File, "not valid JSON: {0}", toString(Root.takeError()));
  json::Object *Top = Root->getAsObject();
  json::Object *TextCfg = Top ? Top->getObject("text_config") : nullptr;
  if (!TextCfg)
    return fileError(File, "missing 'text_config'");
  json::Object Out = *TextCfg;
  Out["model_type"] = "gemma3_text";
  Out["architectures"] = json::Array{"Gemma3ForCausalLM"};
  for (StringRef Key : {"bos_token_id", "eos_token_id", "pad_token_id",
                        "torch_dtype"})
    if (!Out.get(Key))
      if (const json::Value *V = Top->get(Key))
        Out[Key] = *V;
  return formatv("{0:2}", json::Value(std::move(Out))).str() + "\n";
}

Error copyAuxFiles(const Vindex &V, const AtomicDirectory &Out) {
  const ModelConfig &Cfg = V.config();
  for (const AuxFileRecord &F : V.manifest().Files) {
    ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(
        V.path(F.Name), /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!Buf)
      return fileError(V.path(F.Name), "cannot read: {0}",
                       Buf.getError().message());
    std::string Bytes = (*Buf)->getBuffer().str();
    if (F.Name == "config.json" && Cfg.SourceModelType != Cfg.Architecture) {
      Expected<std::string> Derived = textModelConfig(Bytes, V.path(F.Name));
      if (!Derived)
        return Derived.takeError();
      Bytes = std::move(*Derived);
    }
    if (Error E = writeFileAtomically(Out.file(F.Name), Bytes))
      return E;
  }
  return Error::success();
}

Error writeIndex(ArrayRef<OutputShard> Shards, const AtomicDirectory &Out) {
  json::Object WeightMap;
  uint64_t Total = 0;
  for (const OutputShard &S : Shards)
    for (const TensorRecord *T : S.Tensors) {
      WeightMap[T->Name] = S.Name;
      Total += T->Length;
    }
  json::Object Index{{"metadata", json::Object{{"total_size", Total}}},
                     {"weight_map", std::move(WeightMap)}};
  return writeFileAtomically(
      Out.file("model.safetensors.index.json"),
      formatv("{0:2}", json::Value(std::move(Index))).str() + "\n");
}

} // namespace

Error compileSafetensors(const Vindex &V, StringRef OutDir, unsigned Jobs) {
  const Manifest &M = V.manifest();
  std::vector<OutputShard> Shards(std::max<size_t>(1, M.Shards.size()));
  for (size_t I = 0; I < Shards.size(); ++I)
    Shards[I].Name = M.Shards.empty() ? "model.safetensors" : M.Shards[I].Name;
  for (const TensorRecord &T : M.Tensors)
    Shards[M.Shards.empty() ? 0 : T.SourceShard].Tensors.push_back(&T);

  Expected<AtomicDirectory> Out = AtomicDirectory::create(OutDir);
  if (!Out)
    return Out.takeError();
  uint64_t Total = 0;
  for (size_t I = 0; I < Shards.size(); ++I) {
    OutputShard &S = Shards[I];
    std::vector<SafetensorsWriter::Tensor> List;
    for (const TensorRecord *T : S.Tensors)
      List.push_back({T->Name, T->Type, T->sourceDims()});
    S.Writer = std::make_unique<SafetensorsWriter>(
        std::move(List), M.Shards.empty() ? Metadata() : M.Shards[I].Meta);
    Expected<std::unique_ptr<PositionalFile>> F =
        PositionalFile::create(Out->file(S.Name));
    if (!F)
      return F.takeError();
    S.File = std::move(*F);
    if (Error E = S.File->write(0, arrayRefFromStringRef(S.Writer->header())))
      return E;
    uint64_t Offset = S.Writer->header().size();
    for (size_t J = 0; J < S.Tensors.size(); ++J) {
      S.Offsets.push_back(Offset);
      Offset += S.Writer->byteLength(J);
      Total += S.Writer->byteLength(J);
    }
  }

  Progress P("compile", Total);
  std::vector<std::pair<size_t, size_t>> Work;
  for (size_t I = 0; I < Shards.size(); ++I)
    for (size_t J = 0; J < Shards[I].Tensors.size(); ++J)
      Work.emplace_back(I, J);
  std::vector<std::string> Errors(Work.size());
  {
    DefaultThreadPool Pool(hardware_concurrency(Jobs));
    for (size_t W = 0; W < Work.size(); ++W)
      Pool.async([&, W] {
        const OutputShard &S = Shards[Work[W].first];
        size_t J = Work[W].second;
        if (Error E = writeTensor(V, *S.Tensors[J], *S.File, S.Offsets[J], P))
          Errors[W] = toString(std::move(E));
      });
    Pool.wait();
  }
  P.finish();
  for (const std::string &E : Errors)
    if (!E.empty())
      return makeError("{0}", E);
  for (OutputShard &S : Shards)
    S.File.reset();
  if (M.SourceIndex)
    if (Error E = writeIndex(Shards, *Out))
      return E;
  if (Error E = copyAuxFiles(V, *Out))
    return E;
  return Out->commit();
}

std::vector<std::string> vindexInputFiles(const Vindex &V) {
  std::set<std::string> Files{V.path(kManifestFileName)};
  for (const TensorRecord &T : V.manifest().Tensors)
    Files.insert(V.path(T.File));
  for (const AuxFileRecord &F : V.manifest().Files)
    Files.insert(V.path(F.Name));
  return {Files.begin(), Files.end()};
}

} // namespace vindex
