//===- Decompose.cpp - Hugging Face checkpoint -> V-index -----------------===//
//
// One task per payload file (the global tensors, then one file per layer),
// run on a thread pool. A task streams its tensors from the mapped source in
// 4 MiB chunks, checksums (and optionally compresses) each chunk, writes it
// and releases the source pages behind it; only the FFN down projection is
// materialised whole, to transpose it. The plan does not depend on the
// number of threads, so the output bytes do not either.
//
//===----------------------------------------------------------------------===//
#include "vindex/Convert/Decompose.h"

#include "CompiledTokenizer.h"

#include "vindex/Formats/Checkpoint.h"
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
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ThreadPool.h"

#include <map>

using namespace llvm;

namespace vindex {

namespace {

struct PayloadFile {
  std::string Name;            ///< Relative to the V-index directory.
  std::vector<size_t> Tensors; ///< Indices into the tensor records.
};

std::string layerFileName(int Layer) {
  return Layer < 0 ? "tensors/global.bin"
                   : formatv("tensors/layer-{0:3}.bin", Layer).str();
}

class Decomposer {
public:
  Decomposer(const DecomposeOptions &Opts, const Checkpoint &C,
             AtomicDirectory &Out)
      : Opts(Opts), C(C), Out(Out) {}

  Error run();

private:
  void planTensors();
  Error writePayload(const PayloadFile &File, Progress &P);
  Error emitTensor(TensorRecord &R, const CheckpointTensor &Src,
                   OutputFile &Out, ZstdShuffleEncoder &Enc,
                   std::vector<uint8_t> &Scratch, Progress &P);
  Error copyAuxFiles();
  Manifest buildManifest();

  const DecomposeOptions &Opts;
  const Checkpoint &C;
  AtomicDirectory &Out;
  std::vector<TensorRecord> Records;
  std::vector<PayloadFile> Payloads;
  std::vector<SourceFileRecord> Sources;
  std::vector<AuxFileRecord> AuxFiles;
};

void Decomposer::planTensors() {
  ArrayRef<CheckpointTensor> Tensors = C.tensors();
  std::map<int, std::vector<size_t>> ByLayer;
  for (size_t I = 0; I < Tensors.size(); ++I) {
    const SafetensorsEntry &E = *Tensors[I].Entry;
    TensorClass Class = classifyTensor(Tensors[I].Name);
    TensorRecord R;
    R.Name = Tensors[I].Name;
    R.Role = Class.Role;
    R.Layer = Class.Layer;
    R.Type = E.Type;
    R.Dims = E.Dims;
    R.Transposed = R.Role == TensorRole::FFNDown && R.Dims.size() == 2;
    if (R.Transposed)
      std::swap(R.Dims[0], R.Dims[1]);
    R.File = layerFileName(R.Layer);
    R.Length = E.Length;
    R.SourceShard = Tensors[I].Shard;
    Records.push_back(std::move(R));
    ByLayer[Class.Layer].push_back(I);
  }
  // Within a file: attention, norms, then gate, up, down (role order), so a
  // layer's FFN is one contiguous region.
  for (auto &[Layer, Indices] : ByLayer) {
    llvm::stable_sort(Indices, [&](size_t A, size_t B) {
      return std::make_pair(Records[A].Role, Records[A].Name) <
             std::make_pair(Records[B].Role, Records[B].Name);
    });
    Payloads.push_back({layerFileName(Layer), std::move(Indices)});
  }
}

Error Decomposer::emitTensor(TensorRecord &R, const CheckpointTensor &Src,
                             OutputFile &Out, ZstdShuffleEncoder &Enc,
                             std::vector<uint8_t> &Scratch, Progress &P) {
  const SafetensorsFile &Shard = *C.shards()[Src.Shard];
  const SafetensorsEntry &E = *Src.Entry;
  unsigned ElemSize = dtypeSize(E.Type);
  ChunkedChecksum Sum;
  R.Offset = Out.size();
  R.Compression = Opts.Compress ? Codec::ZstdShuffle : Codec::None;
  R.CodecChunk = Opts.Compress ? kCodecChunk : 0;
  auto Finish = [&] {
    R.StoredLength = Out.size() - R.Offset;
    R.Checksum = Sum.final();
    return Error::success();
  };

  // Verbatim and uncompressed (all but the down projection): checksum the
  // mapped source, then let the kernel copy the bytes.
  if (!R.Transposed && !Opts.Compress) {
    for (uint64_t Done = 0; Done < E.Length; Done += kCodecChunk) {
      uint64_t N = std::min(kCodecChunk, E.Length - Done);
      Sum.update(Shard.data(E).slice(Done, N));
      Shard.file().dropPages(E.Offset + Done, N);
      P.advance(N);
    }
    if (Error Err = Out.copyFrom(Shard.file(), E.Offset, E.Length))
      return Err;
    return Finish();
  }

  auto Emit = [&](ArrayRef<uint8_t> Chunk) -> Error {
    Sum.update(Chunk);
    if (!Opts.Compress)
      return Out.write(Chunk);
    Expected<ArrayRef<uint8_t>> Frame = Enc.encode(Chunk, ElemSize);
    if (!Frame)
      return Frame.takeError();
    return Out.write(*Frame);
  };
  ArrayRef<uint8_t> Data = Shard.data(E);
  if (!R.Transposed) {
    for (uint64_t Done = 0; Done < E.Length; Done += kCodecChunk) {
      uint64_t N = std::min(kCodecChunk, E.Length - Done);
      if (Error Err = Emit(Data.slice(Done, N)))
        return Err;
      Shard.file().dropPages(E.Offset + Done, N);
      P.advance(N);
    }
    return Finish();
  }

  // The down projection, transposed a strip of output rows (features) at a
  // time, so memory stays at a few MiB whatever the tensor's size; codec
  // chunks are cut at the same 4 MiB boundaries as any other tensor.
  uint64_t Rows = E.Dims[0], Cols = E.Dims[1];
  uint64_t RowBytes = Rows * ElemSize;
  uint64_t Strip = std::max<uint64_t>(1, kCodecChunk / RowBytes);
  Scratch.resize(Strip * RowBytes);
  std::vector<uint8_t> Pending;
  for (uint64_t F0 = 0; F0 < Cols; F0 += Strip) {
    uint64_t N = std::min(Strip, Cols - F0);
    transposeStrided(Data.data() + F0 * ElemSize, Cols, Rows, N, ElemSize,
                     Scratch.data(), Rows);
    ArrayRef<uint8_t> Block = ArrayRef(Scratch).take_front(N * RowBytes);
    if (!Opts.Compress) {
      if (Error Err = Emit(Block))
        return Err;
      continue;
    }
    Pending.insert(Pending.end(), Block.begin(), Block.end());
    size_t Used = 0;
    for (; Pending.size() - Used >= kCodecChunk; Used += kCodecChunk)
      if (Error Err = Emit(ArrayRef(Pending).slice(Used, kCodecChunk)))
        return Err;
    Pending.erase(Pending.begin(), Pending.begin() + Used);
  }
  if (!Pending.empty())
    if (Error Err = Emit(Pending))
      return Err;
  Shard.file().dropPages(E.Offset, E.Length);
  P.advance(E.Length);
  return Finish();
}

Error Decomposer::writePayload(const PayloadFile &File, Progress &P) {
  Expected<std::unique_ptr<OutputFile>> Out =
      OutputFile::create(this->Out.file(File.Name));
  if (!Out)
    return Out.takeError();
  ZstdShuffleEncoder Enc(Opts.ZstdLevel);
  std::vector<uint8_t> Scratch;
  for (size_t I : File.Tensors) {
    if (Error E = (*Out)->padTo(kPayloadAlignment))
      return E;
    if (Error E =
            emitTensor(Records[I], C.tensors()[I], **Out, Enc, Scratch, P))
      return E;
  }
  return (*Out)->close();
}

Error Decomposer::copyAuxFiles() {
  std::vector<std::string> Files{C.configPath()};
  for (const std::string &F : C.auxiliaryFiles())
    Files.push_back(F);
  for (const std::string &F : Files) {
    ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(
        F, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!Buf)
      return fileError(F, "cannot read: {0}", Buf.getError().message());
    StringRef Name = sys::path::filename(F);
    StringRef Bytes = (*Buf)->getBuffer();
    if (Error E = writeFileAtomically(Out.file(Name), Bytes))
      return E;
    AuxFiles.push_back(
        {Name.str(), Bytes.size(), checksum(arrayRefFromStringRef(Bytes))});
    if (Name == "tokenizer.json")
      if (Error E = addCompiledTokenizer(Bytes, F, C.config().VocabSize, Out,
                                         AuxFiles))
        return E;
  }
  return Error::success();
}

Manifest Decomposer::buildManifest() {
  Manifest M;
  M.Config = C.config();
  M.Tensors = Records;
  for (const auto &S : C.shards())
    M.Shards.push_back({sys::path::filename(S->path()).str(), S->metadata()});
  M.SourceIndex = !C.indexPath().empty();
  M.IndexMetadata = C.indexMetadata();
  for (uint64_t L = 0; L < M.Config.NumLayers; ++L)
    M.Layers.push_back({uint32_t(L), M.Config.IntermediateSize, 0});
  M.Files = AuxFiles;
  M.Provenance = {"vindex-decompose", toolVersion().str(), Opts.CommandLine,
                  Sources};
  return M;
}

Error Decomposer::run() {
  planTensors();
  if (Error E = checkModelTensors(C.config(), Records, C.configPath()))
    return E;
  if (std::error_code EC = sys::fs::create_directories(
          Out.file("tensors"), /*IgnoreExisting=*/true, sys::fs::all_all))
    return fileError(Out.file("tensors"), "cannot create: {0}", EC.message());

  std::vector<std::string> SourcePaths = C.inputFiles();
  Sources.resize(SourcePaths.size());
  uint64_t Total = 0;
  for (const CheckpointTensor &T : C.tensors())
    Total += T.Entry->Length;
  Progress P("decompose", Total);

  // Errors land in per-task slots and the first in plan order is reported,
  // so the message does not depend on the schedule either.
  std::vector<std::string> Errors(Payloads.size() + SourcePaths.size());
  {
    // The provenance SHA-256 runs on threads of its own from the start,
    // each source front to back, beside the pool that writes the payloads
    // (which read the sources in about the same order): the hashing overlaps
    // the copies instead of rereading every source after them, and a cold
    // source is read from disk once for both. One stream of SHA-256 is
    // slower than the copies (1.8 GB/s with SHA extensions on this machine
    // kind), so sources are hashed side by side on up to --jobs threads:
    // one hasher thread left the last shards hashing alone after the
    // payloads were written (34-layer synthetic, 4 shards, warm: 7.0 ->
    // 6.4 s).
    DefaultThreadPool Hasher(hardware_concurrency(std::min<unsigned>(
        hardware_concurrency(Opts.Jobs).compute_thread_count(),
        SourcePaths.size())));
    for (size_t I = 0; I < SourcePaths.size(); ++I)
      Hasher.async([&, I] {
        Expected<std::unique_ptr<MappedFile>> F =
            MappedFile::open(SourcePaths[I]);
        if (!F) {
          Errors[Payloads.size() + I] = toString(F.takeError());
          return;
        }
        Sources[I] = {SourcePaths[I], (*F)->size(), sha256Hex(**F)};
      });
    DefaultThreadPool Pool(hardware_concurrency(Opts.Jobs));
    for (size_t I = 0; I < Payloads.size(); ++I)
      Pool.async([&, I] {
        if (Error E = writePayload(Payloads[I], P))
          Errors[I] = toString(std::move(E));
      });
    Pool.wait();
    Hasher.wait();
  }
  P.finish();
  for (const std::string &E : Errors)
    if (!E.empty())
      return makeError("{0}", E);
  if (Error E = copyAuxFiles())
    return E;
  return writeFileAtomically(Out.file(kManifestFileName),
                             serializeManifest(buildManifest()));
}

} // namespace

Error decompose(const DecomposeOptions &Opts,
                std::vector<std::string> &InputFiles) {
  if (isGGUFInput(Opts.Input))
    return decomposeGGUF(Opts, InputFiles);
  Expected<std::unique_ptr<Checkpoint>> C = Checkpoint::open(Opts.Input);
  if (!C)
    return C.takeError();
  InputFiles = (*C)->inputFiles();
  Expected<AtomicDirectory> Out =
      AtomicDirectory::create(Opts.Output, isReplaceableVindex);
  if (!Out)
    return Out.takeError();
  if (Error E = Decomposer(Opts, **C, *Out).run())
    return E;
  if (Opts.Verify) {
    // Messages name the output as the user will know it, not the temporary.
    auto Rename = [&](Error E) {
      std::string Msg = toString(std::move(E));
      for (size_t At; (At = Msg.find(Out->path().str())) != std::string::npos;)
        Msg.replace(At, Out->path().size(), Opts.Output);
      return makeError("{0}", Msg);
    };
    Expected<std::unique_ptr<Vindex>> V = Vindex::open(Out->path());
    if (!V)
      return Rename(V.takeError());
    if (Error E = (*V)->verify(Opts.Jobs))
      return Rename(std::move(E));
  }
  return Out->commit();
}

} // namespace vindex
