//===- VindexReader.cpp - Opening, reading and verifying a V-index --------===//
#include "vindex/Store/Vindex.h"

#include "vindex/Store/Checks.h"
#include "vindex/Store/Codec.h"
#include "vindex/Store/KeyStats.h"
#include "vindex/Store/Labels.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ThreadPool.h"

#include <cstdlib>
#include <mutex>
#include <set>

using namespace llvm;

namespace vindex {

std::string Vindex::path(StringRef Name) const {
  SmallString<256> P(Dir);
  sys::path::append(P, Name);
  return P.str().str();
}

std::vector<std::string> Vindex::files() const {
  std::set<std::string> Files{path(kManifestFileName)};
  for (const TensorRecord &T : M.Tensors)
    Files.insert(path(T.File));
  for (const AuxFileRecord &F : M.Files)
    Files.insert(path(F.Name));
  for (const PatchRecord &P : M.Patches)
    Files.insert(path(P.File));
  if (M.LabelsFile)
    Files.insert(path(M.LabelsFile->File));
  for (const KeyStatsRecord &S : M.KeyStats)
    Files.insert(path(S.File));
  return {Files.begin(), Files.end()};
}

// VINDEX_LOAD=memory copies the tensor files into memory (huge pages where
// the kernel gives them) instead of mapping them: the engine's decoding
// streams every weight once per token, and on some virtual machines the
// mapped page cache's small pages cost it half its speed
// (docs/benchmarks.md). Like llama.cpp's --no-mmap.
static Expected<Residency> tensorResidency() {
  const char *Env = std::getenv("VINDEX_LOAD");
  if (!Env || !*Env || StringRef(Env) == "map")
    return Residency::Mapped;
  if (StringRef(Env) == "memory")
    return Residency::Memory;
  return makeError("VINDEX_LOAD: unknown value '{0}' (map or memory)", Env);
}

Expected<std::unique_ptr<Vindex>> Vindex::open(StringRef Dir) {
  if (!sys::fs::is_directory(Dir))
    return fileError(Dir, "not a V-index directory");
  std::unique_ptr<Vindex> V(new Vindex());
  V->Dir = Dir.str();
  Expected<Residency> Load = tensorResidency();
  if (!Load)
    return Load.takeError();
  V->Load = *Load;
  if (Error E = V->load())
    return std::move(E);
  return std::move(V);
}

// A file name from the manifest: one component, no way out of a directory.
static bool isPlainFileName(StringRef Name) {
  return !Name.empty() && Name != "." && Name != ".." &&
         Name.find_first_of("/\\") == StringRef::npos;
}

// A name from the manifest must stay inside the V-index directory.
static bool isSafeRelativePath(StringRef P) {
  if (P.empty() || sys::path::is_absolute(P))
    return false;
  for (StringRef C : make_range(sys::path::begin(P), sys::path::end(P)))
    if (C == "..")
      return false;
  return true;
}

Error Vindex::load() {
  std::string ManifestPath = path(kManifestFileName);
  Expected<std::unique_ptr<MappedFile>> MF = MappedFile::open(ManifestPath);
  if (!MF)
    return MF.takeError();
  Expected<Manifest> Parsed = parseManifest((*MF)->bytes(), ManifestPath);
  if (!Parsed)
    return Parsed.takeError();
  M = std::move(*Parsed);

  if (Error E = checkManifest(ManifestPath))
    return E;
  for (size_t I = 0; I < M.Tensors.size(); ++I) {
    if (Error E = checkTensorRecord(I, ManifestPath))
      return E;
    if (Error E = mapPayload(M.Tensors[I]))
      return E;
  }
  if (Error E = checkModelTensors(M.Config, M.Tensors, ManifestPath, M.Layers))
    return E;
  if (Error E = loadLabels())
    return E;
  if (Error E = checkKeyStatsRecords(M, Dir, ManifestPath))
    return E;
  return loadPatches();
}

Error Vindex::checkTensorRecord(size_t I, StringRef ManifestPath) {
  const TensorRecord &T = M.Tensors[I];
  auto Bad = [&](const char *Problem) {
    return fileError(ManifestPath, "tensor '{0}': {1}", T.Name, Problem);
  };
  if (uint8_t(T.Type) > uint8_t(DType::BF16))
    return Bad("unknown dtype");
  if (uint8_t(T.Role) > uint8_t(TensorRole::FFNDown))
    return Bad("unknown role");
  if (T.Layer < -1 || (T.Layer >= 0 && uint64_t(T.Layer) >= M.Config.NumLayers))
    return Bad("layer out of range");
  if (T.Transposed && T.Dims.size() != 2)
    return Bad("a transposed tensor must have two dimensions");
  if (!ByName.try_emplace(T.Name, I).second)
    return Bad("appears twice");
  if (!isSafeRelativePath(T.File))
    return Bad("payload file name leaves the V-index directory");
  std::optional<uint64_t> N = numElements(T.Dims);
  bool Overflow = !N;
  uint64_t Bytes =
      N ? SaturatingMultiply<uint64_t>(*N, dtypeSize(T.Type), &Overflow) : 0;
  if (Overflow || Bytes != T.Length)
    return Bad("shape and dtype disagree with the decoded length");
  if (T.Compression == Codec::None && T.StoredLength != T.Length)
    return Bad("uncompressed but stored length differs from length");
  if (T.Compression == Codec::ZstdShuffle &&
      (T.CodecChunk == 0 || T.CodecChunk % dtypeSize(T.Type) ||
       T.CodecChunk > kCodecChunk))
    return fileError(ManifestPath,
                     "tensor '{0}': invalid codec chunk size {1} (a "
                     "multiple of the element size, at most {2})",
                     T.Name, T.CodecChunk, kCodecChunk);
  // Decoding sizes buffers by the claimed length: the stored bytes must
  // be able to hold it.
  if (T.Compression == Codec::ZstdShuffle &&
      T.StoredLength < minZstdShuffleStored(T.Length, T.CodecChunk))
    return fileError(ManifestPath,
                     "tensor '{0}': {1} stored bytes cannot hold {2} "
                     "decoded bytes",
                     T.Name, T.StoredLength, T.Length);
  if (T.Transposed != (T.Role == TensorRole::FFNDown))
    return Bad("only the FFN down projection is stored transposed");
  if (T.Compression != Codec::None && T.Compression != Codec::ZstdShuffle)
    return Bad("unknown codec");
  if (!M.Shards.empty() && T.SourceShard >= M.Shards.size())
    return Bad("source shard index out of range");
  return Error::success();
}

Error Vindex::mapPayload(const TensorRecord &T) {
  auto &File = Files[T.File];
  if (!File) {
    Expected<std::unique_ptr<MappedFile>> Opened =
        MappedFile::open(path(T.File), Load);
    if (!Opened)
      return Opened.takeError();
    File = std::move(*Opened);
  }
  if (T.Offset > File->size() || T.StoredLength > File->size() - T.Offset)
    return fileError(File->path(),
                     "tensor '{0}' [{1}, {2}) lies past the "
                     "end of the file ({3} bytes)",
                     T.Name, T.Offset, T.Offset + T.StoredLength, File->size());
  return Error::success();
}

Expected<std::unique_ptr<MemoryBuffer>>
Vindex::readListedFile(StringRef File, uint64_t Length, uint64_t Checksum,
                       StringRef What) const {
  std::string Path = path(File);
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(
      Path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(Path, "cannot read: {0}", Buf.getError().message());
  ArrayRef<uint8_t> Bytes = arrayRefFromStringRef((*Buf)->getBuffer());
  if (Bytes.size() != Length || checksum(Bytes) != Checksum)
    return fileError(Path, "checksum mismatch (the {0} was changed)", What);
  return std::move(*Buf);
}

Error Vindex::loadLabels() {
  if (!M.LabelsFile)
    return Error::success();
  const LabelsFileRecord &R = *M.LabelsFile;
  if (R.File != kLabelsFileName)
    return fileError(path(kManifestFileName),
                     "the labels file must be '{0}', not '{1}'",
                     kLabelsFileName, R.File);
  std::string Path = path(R.File);
  Expected<std::unique_ptr<MemoryBuffer>> Buf =
      readListedFile(R.File, R.Length, R.Checksum, "labels file");
  if (!Buf)
    return Buf.takeError();
  ArrayRef<uint8_t> Bytes = arrayRefFromStringRef((*Buf)->getBuffer());
  Expected<Labels> L = readLabels(Bytes, Path);
  if (!L)
    return L.takeError();
  if (Error E = checkLabels(*L, M, Path))
    return E;
  LabelsData = std::make_shared<const Labels>(std::move(*L));
  return Error::success();
}

// Everything a later step turns into a path or an array index is checked
// here, once: a manifest is input like any other.
Error Vindex::checkManifest(StringRef ManifestPath) const {
  const ModelConfig &C = M.Config;
  if (Error E = checkModelConfig(C, ManifestPath, ConfigSpelling::Manifest))
    return E;
  if (uint8_t(C.Norm) > uint8_t(NormStyle::OnePlusWeight) ||
      uint8_t(C.Act) > uint8_t(Activation::Gelu))
    return fileError(ManifestPath, "unknown norm style or activation");
  if (C.LayerKinds.size() != C.NumLayers)
    return fileError(ManifestPath, "{0} layer kinds for {1} layers",
                     C.LayerKinds.size(), C.NumLayers);
  for (LayerKind K : C.LayerKinds)
    if (uint8_t(K) > uint8_t(LayerKind::Sliding))
      return fileError(ManifestPath, "unknown layer kind");
  StringSet<> Names;
  for (const ShardRecord &S : M.Shards)
    if (!isPlainFileName(S.Name) || !Names.insert(S.Name).second)
      return fileError(ManifestPath, "invalid or repeated shard name '{0}'",
                       S.Name);
  Names.clear();
  for (const AuxFileRecord &F : M.Files)
    if (!isPlainFileName(F.Name) || !Names.insert(F.Name).second ||
        F.Name == kManifestFileName || F.Name == kLabelsFileName)
      return fileError(ManifestPath, "invalid or repeated file name '{0}'",
                       F.Name);
  return Error::success();
}

const TensorRecord *Vindex::find(StringRef Name) const {
  auto It = ByName.find(Name);
  return It == ByName.end() ? nullptr : &M.Tensors[It->second];
}

const TensorRecord *Vindex::find(TensorRole Role, int Layer) const {
  for (const TensorRecord &T : M.Tensors)
    if (T.Role == Role && T.Layer == Layer)
      return &T;
  return nullptr;
}

const MappedFile &Vindex::payloadFile(const TensorRecord &T) const {
  return *Files.find(T.File)->second;
}

ArrayRef<uint8_t> Vindex::stored(const TensorRecord &T) const {
  return payloadFile(T).slice(T.Offset, T.StoredLength);
}

Error Vindex::read(const TensorRecord &T,
                   function_ref<Error(ArrayRef<uint8_t>)> Sink) const {
  ChunkedChecksum Sum;
  auto Feed = [&](ArrayRef<uint8_t> Chunk) -> Error {
    Sum.update(Chunk);
    return Sink(Chunk);
  };
  ArrayRef<uint8_t> Stored = stored(T);
  const MappedFile &File = payloadFile(T);
  if (T.Compression == Codec::None) {
    for (uint64_t Done = 0; Done < T.Length; Done += kCodecChunk) {
      uint64_t N = std::min(kCodecChunk, T.Length - Done);
      if (Error E = Feed(Stored.slice(Done, N)))
        return E;
      File.dropPages(T.Offset + Done, N);
    }
  } else if (Error E = decodeZstdShuffle(Stored, T.Length, T.CodecChunk,
                                         dtypeSize(T.Type), Feed)) {
    return fileError(path(T.File), "tensor '{0}': {1}", T.Name,
                     toString(std::move(E)));
  }
  if (Sum.final() != T.Checksum)
    return fileError(path(T.File),
                     "tensor '{0}': checksum mismatch (the "
                     "payload is corrupt)",
                     T.Name);
  return Error::success();
}

Expected<ArrayRef<uint8_t>> Vindex::data(const TensorRecord &T,
                                         std::vector<uint8_t> &Storage) const {
  if (T.Compression == Codec::None)
    return stored(T);
  Storage.clear();
  // The claimed length is bounded only by the frames' best ratio (see
  // minZstdShuffleStored); reserve what real weights decode to and let the
  // frames that do decode grow the rest, so that a crafted length is not one
  // huge allocation up front.
  Storage.reserve(
      std::min<uint64_t>(T.Length, 4 * T.StoredLength + kCodecChunk));
  if (Error E = decodeZstdShuffle(
          stored(T), T.Length, T.CodecChunk, dtypeSize(T.Type),
          [&](ArrayRef<uint8_t> Chunk) {
            Storage.insert(Storage.end(), Chunk.begin(), Chunk.end());
            return Error::success();
          }))
    return fileError(path(T.File), "tensor '{0}': {1}", T.Name,
                     toString(std::move(E)));
  return ArrayRef<uint8_t>(Storage);
}

Error Vindex::verify(unsigned Jobs) const {
  DefaultThreadPool Pool(hardware_concurrency(Jobs));
  std::mutex Mu;
  // The first error in manifest order is reported, whatever the schedule.
  std::vector<std::optional<std::string>> Errors(M.Tensors.size() +
                                                 M.Files.size());
  for (size_t I = 0; I < M.Tensors.size(); ++I)
    Pool.async([&, I] {
      Error E = read(M.Tensors[I],
                     [](ArrayRef<uint8_t>) { return Error::success(); });
      if (E) {
        std::lock_guard<std::mutex> Lock(Mu);
        Errors[I] = toString(std::move(E));
      }
    });
  for (size_t I = 0; I < M.Files.size(); ++I)
    Pool.async([&, I] {
      Expected<std::unique_ptr<MemoryBuffer>> Buf =
          readAuxFile(M.Files[I].Name);
      if (!Buf) {
        std::lock_guard<std::mutex> Lock(Mu);
        Errors[M.Tensors.size() + I] = toString(Buf.takeError());
      }
    });
  Pool.wait();
  for (const auto &E : Errors)
    if (E)
      return makeError("{0}", *E);
  return Error::success();
}

Expected<std::unique_ptr<MemoryBuffer>>
Vindex::readAuxFile(StringRef Name) const {
  auto F = llvm::find_if(
      M.Files, [&](const AuxFileRecord &F) { return F.Name == Name; });
  if (F == M.Files.end())
    return fileError(Dir, "has no {0}", Name);
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(
      path(Name), /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(path(Name), "cannot read: {0}", Buf.getError().message());
  ArrayRef<uint8_t> Bytes = arrayRefFromStringRef((*Buf)->getBuffer());
  if (Bytes.size() != F->Length || checksum(Bytes) != F->Checksum)
    return fileError(path(Name), "checksum mismatch (the file was changed)");
  return std::move(*Buf);
}

} // namespace vindex
