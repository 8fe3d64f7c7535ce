//===- Copy.cpp - Writing a V-index as it is ------------------------------===//
//
// A copy keeps the view's patches as patches (patches/ and manifest
// records, over the base payloads copied as they are), or materialises them:
// each payload file holding a patched tensor is written again, the patched
// tensors uncompressed with their patches applied, the others as stored.
//
//===----------------------------------------------------------------------===//
#include "vindex/Store/Copy.h"
#include "vindex/Formats/ModelConfig.h"
#include "vindex/Store/KeyStats.h"
#include "vindex/Store/Labels.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Support/AtomicOutput.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/OutputFile.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace llvm;

namespace vindex {

static Error copyMapped(const MappedFile &Src, StringRef To) {
  Expected<std::unique_ptr<OutputFile>> Out = OutputFile::create(To);
  if (!Out)
    return Out.takeError();
  if (Error E = (*Out)->copyFrom(Src, 0, Src.size()))
    return E;
  return (*Out)->close();
}

/// File Name of V, byte for byte, into Out.
static Error copyFileAsIs(const Vindex &V, StringRef Name,
                          const AtomicDirectory &Out) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf =
      MemoryBuffer::getFile(V.path(Name), /*IsText=*/false,
                            /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(V.path(Name), "cannot read: {0}",
                     Buf.getError().message());
  return writeFileAtomically(Out.file(Name), (*Buf)->getBuffer());
}

/// The manifest, as it is (it has no checksum of its own; Vindex::open
/// validated it).
static Error copyManifest(const Vindex &V, const AtomicDirectory &Out) {
  return copyFileAsIs(V, kManifestFileName, Out);
}

Error copyVindex(const Vindex &V, StringRef OutDir) {
  return copyVindex(TensorView(V), OutDir, PatchMode::Keep);
}

static Error createParent(StringRef File) {
  SmallString<128> Dir(File);
  sys::path::remove_filename(Dir);
  if (std::error_code EC = sys::fs::create_directories(Dir))
    return fileError(Dir, "cannot create: {0}", EC.message());
  return Error::success();
}

static Error copyAuxFiles(const Vindex &V, const AtomicDirectory &Out,
                          StringRef Skip = "") {
  for (const AuxFileRecord &F : V.manifest().Files) {
    if (F.Name == Skip)
      continue;
    Expected<std::unique_ptr<MemoryBuffer>> Buf = V.readAuxFile(F.Name);
    if (!Buf)
      return Buf.takeError();
    if (Error E = writeFileAtomically(Out.file(F.Name), (*Buf)->getBuffer()))
      return E;
  }
  return Error::success();
}

/// labels.vfb as it is (Vindex::open checked it), if the V-index has one.
static Error copyLabelsFile(const Vindex &V, const AtomicDirectory &Out) {
  if (!V.manifest().LabelsFile)
    return Error::success();
  return copyFileAsIs(V, V.manifest().LabelsFile->File, Out);
}

/// The key statistics under stats/ as they are (Vindex::open checked their
/// records; their checksums are checked where they are used), but those of
/// the layers in Except.
static Error copyKeyStatsFiles(const Vindex &V, const AtomicDirectory &Out,
                               ArrayRef<unsigned> Except = {}) {
  for (const KeyStatsRecord &R : V.manifest().KeyStats) {
    if (llvm::is_contained(Except, R.Layer))
      continue;
    if (Error E = createParent(Out.file(R.File)))
      return E;
    if (Error E = copyFileAsIs(V, R.File, Out))
      return E;
  }
  return Error::success();
}

/// The base payload files, copied in the kernel.
static Error copyPayloads(const Vindex &V, const AtomicDirectory &Out,
                          const StringSet<> &Except = {}) {
  StringSet<> Done;
  for (const TensorRecord &T : V.manifest().Tensors) {
    if (Except.contains(T.File) || !Done.insert(T.File).second)
      continue;
    if (Error E = createParent(Out.file(T.File)))
      return E;
    if (Error E = copyMapped(V.payloadFile(T), Out.file(T.File)))
      return E;
  }
  return Error::success();
}

/// Every patch of the view written under patches/ (numbered in stack
/// order), with its record.
static Expected<std::vector<PatchRecord>>
writePatches(const TensorView &View, const AtomicDirectory &Out) {
  std::vector<PatchRecord> Records;
  for (size_t I = 0; I < View.patches().size(); ++I) {
    const Patch &P = *View.patches()[I];
    std::string Bytes = serializePatch(P);
    std::string File = formatv("{0}/{1:d4}.vpatch", kPatchDirectory, I + 1);
    if (Error E = createParent(Out.file(File)))
      return std::move(E);
    if (Error E = writeFileAtomically(Out.file(File), Bytes))
      return std::move(E);
    Records.push_back(
        patchRecord(View.base(), P, File, arrayRefFromStringRef(Bytes)));
  }
  return Records;
}

/// Rewrites one payload file: patched tensors with the view's bytes
/// (uncompressed), the others as stored; updates their records.
static Error materialiseFile(const TensorView &View, StringRef File,
                             ArrayRef<const TensorRecord *> Sources,
                             std::vector<TensorRecord> &Tensors,
                             const AtomicDirectory &Out) {
  const Vindex &V = View.base();
  if (Error E = createParent(Out.file(File)))
    return E;
  Expected<std::unique_ptr<OutputFile>> F = OutputFile::create(Out.file(File));
  if (!F)
    return F.takeError();
  std::vector<size_t> Order;
  for (size_t I = 0; I < Tensors.size(); ++I)
    if (Tensors[I].File == File)
      Order.push_back(I);
  llvm::stable_sort(Order, [&](size_t A, size_t B) {
    return Tensors[A].Offset < Tensors[B].Offset;
  });
  for (size_t I : Order) {
    const TensorRecord &Base = *Sources[I];
    TensorRecord &R = Tensors[I];
    if (Error E = (*F)->padTo(kPayloadAlignment))
      return E;
    R.Offset = (*F)->size();
    if (!View.isPatched(Base)) {
      if (Error E =
              V.read(Base, [](ArrayRef<uint8_t>) { return Error::success(); }))
        return E;
      if (Error E = (*F)->copyFrom(V.payloadFile(Base), Base.Offset,
                                   Base.StoredLength))
        return E;
      continue;
    }
    R = View.record(Base);
    R.Offset = (*F)->size();
    R.Compression = Codec::None;
    R.CodecChunk = 0;
    ChunkedChecksum Sum;
    if (Error E = View.read(Base, [&](ArrayRef<uint8_t> Chunk) {
          Sum.update(Chunk);
          return (*F)->write(Chunk);
        }))
      return E;
    R.StoredLength = R.Length;
    R.Checksum = Sum.final();
  }
  return (*F)->close();
}

/// COMPILE CURRENT INTO VINDEX: the view's tensors as plain payloads.
static Error materialise(const TensorView &View, const AtomicDirectory &Out) {
  const Vindex &V = View.base();
  Manifest M = V.manifest();
  // The view's tensors: the manifest's, then the one a patch created (the
  // untied output matrix), which joins its source's payload file.
  std::vector<const TensorRecord *> Sources = View.tensors();
  for (size_t I = M.Tensors.size(); I < Sources.size(); ++I)
    M.Tensors.push_back(*Sources[I]);
  StringSet<> Rewritten;
  for (size_t I = 0; I < Sources.size(); ++I)
    if (View.isPatched(*Sources[I]))
      Rewritten.insert(M.Tensors[I].File);
  if (Error E = copyPayloads(V, Out, Rewritten))
    return E;
  for (const auto &F : Rewritten)
    if (Error E = materialiseFile(View, F.getKey(), Sources, M.Tensors, Out))
      return E;
  M.Patches.clear();
  for (LayerRecord &L : M.Layers)
    L.Features = View.ffnWidth(L.Index);
  bool Rewrite = View.configChanged();
  if (Rewrite) {
    // The config (manifest and config.json) says the widest layer (the
    // layers record their own widths) and whether the output is tied.
    M.Config = View.writtenConfig();
    auto Cfg = llvm::find_if(M.Files, [](const AuxFileRecord &F) {
      return F.Name == "config.json";
    });
    if (Cfg != M.Files.end()) {
      Expected<std::unique_ptr<MemoryBuffer>> Old = V.readAuxFile(Cfg->Name);
      if (!Old)
        return Old.takeError();
      Expected<std::string> Text =
          writeHFConfig(M.Config, (*Old)->getBuffer(), V.path(Cfg->Name));
      if (!Text)
        return Text.takeError();
      if (Error E = writeFileAtomically(Out.file(Cfg->Name), *Text))
        return E;
      Cfg->Length = Text->size();
      Cfg->Checksum = checksum(arrayRefFromStringRef(*Text));
      // The written config.json describes the text model itself.
      M.Config.SourceModelType = M.Config.Architecture;
    }
  }
  if (Error E = copyAuxFiles(V, Out, Rewrite ? "config.json" : ""))
    return E;
  if (Error E = copyLabelsFile(V, Out))
    return E;
  if (Error E = copyKeyStatsFiles(V, Out))
    return E;
  return writeFileAtomically(Out.file(kManifestFileName), serializeManifest(M));
}

/// The output V-index directory OutDir (atomic; an earlier V-index there is
/// replaced), never V itself.
static Expected<AtomicDirectory> createOutput(const Vindex &V,
                                              StringRef OutDir) {
  if (sys::fs::equivalent(V.directory(), OutDir))
    return fileError(OutDir, "is the input V-index; a V-index is never "
                             "modified in place (write to another path)");
  return AtomicDirectory::create(OutDir, isReplaceableVindex);
}

/// V's payloads, auxiliary files and persisted patches copied into Out, as
/// for a copy that adds a file of its own (labels, key statistics): V's
/// manifest, its patch records those of the copies, for the caller to
/// finish.
static Expected<Manifest> copyWithPatches(const Vindex &V,
                                          const AtomicDirectory &Out) {
  if (Error E = copyPayloads(V, Out))
    return std::move(E);
  if (Error E = copyAuxFiles(V, Out))
    return std::move(E);
  Manifest M = V.manifest();
  if (!V.patches().empty()) {
    Expected<std::vector<PatchRecord>> Records =
        writePatches(TensorView(V), Out);
    if (!Records)
      return Records.takeError();
    M.Patches = std::move(*Records);
  }
  return M;
}

/// Writes M as Out's manifest and puts Out in place.
static Error commitWithManifest(AtomicDirectory &Out, const Manifest &M) {
  if (Error E = writeFileAtomically(Out.file(kManifestFileName),
                                    serializeManifest(M)))
    return E;
  return Out.commit();
}

Error copyVindex(const TensorView &View, StringRef OutDir, PatchMode Mode) {
  const Vindex &V = View.base();
  Expected<AtomicDirectory> Out = createOutput(V, OutDir);
  if (!Out)
    return Out.takeError();
  if (Mode == PatchMode::Materialise && View.hasPatches()) {
    if (Error E = materialise(View, *Out))
      return E;
    return Out->commit();
  }
  if (Error E = copyPayloads(V, *Out))
    return E;
  if (Error E = copyAuxFiles(V, *Out))
    return E;
  if (Error E = copyLabelsFile(V, *Out))
    return E;
  if (Error E = copyKeyStatsFiles(V, *Out))
    return E;
  if (View.patches().empty()) {
    // Byte for byte, as it was.
    if (Error E = copyManifest(V, *Out))
      return E;
    return Out->commit();
  }
  Expected<std::vector<PatchRecord>> Records = writePatches(View, *Out);
  if (!Records)
    return Records.takeError();
  Manifest M = V.manifest();
  M.Patches = std::move(*Records);
  return commitWithManifest(*Out, M);
}

} // namespace vindex

namespace vindex {

Error copyVindexWithLabels(const Vindex &V, StringRef OutDir, const Labels &L,
                           LabelsFileRecord Record) {
  Expected<AtomicDirectory> Out = createOutput(V, OutDir);
  if (!Out)
    return Out.takeError();
  Expected<Manifest> M = copyWithPatches(V, *Out);
  if (!M)
    return M.takeError();
  if (Error E = copyKeyStatsFiles(V, *Out))
    return E;
  std::string Bytes = serializeLabels(L);
  Record.File = kLabelsFileName.str();
  Record.Length = Bytes.size();
  Record.Checksum = checksum(arrayRefFromStringRef(Bytes));
  if (Error E = writeFileAtomically(Out->file(Record.File), Bytes))
    return E;
  M->LabelsFile = std::move(Record);
  for (LayerRecord &R : M->Layers)
    R.Band = uint8_t(L.band(R.Index));
  return commitWithManifest(*Out, *M);
}

Error copyVindexWithKeyStats(const Vindex &V, StringRef OutDir,
                             ArrayRef<KeyStatsFileData> Stats) {
  Expected<AtomicDirectory> Out = createOutput(V, OutDir);
  if (!Out)
    return Out.takeError();
  Expected<Manifest> M = copyWithPatches(V, *Out);
  if (!M)
    return M.takeError();
  if (Error E = copyLabelsFile(V, *Out))
    return E;
  std::vector<unsigned> Replaced;
  for (const KeyStatsFileData &S : Stats)
    Replaced.push_back(S.Record.Layer);
  if (Error E = copyKeyStatsFiles(V, *Out, Replaced))
    return E;
  llvm::erase_if(M->KeyStats, [&](const KeyStatsRecord &R) {
    return llvm::is_contained(Replaced, R.Layer);
  });
  for (const KeyStatsFileData &S : Stats) {
    KeyStatsRecord R = S.Record;
    R.File = keyStatsFileName(R.Layer);
    R.Length = S.Bytes.size();
    R.Checksum = checksum(arrayRefFromStringRef(S.Bytes));
    if (Error E = createParent(Out->file(R.File)))
      return E;
    if (Error E = writeFileAtomically(Out->file(R.File), S.Bytes))
      return E;
    M->KeyStats.push_back(std::move(R));
  }
  llvm::stable_sort(M->KeyStats, [](const KeyStatsRecord &A,
                                    const KeyStatsRecord &B) {
    return A.Layer < B.Layer;
  });
  return commitWithManifest(*Out, *M);
}

} // namespace vindex
