//===- Copy.cpp - Writing a V-index as it is ------------------------------===//
#include "vindex/Store/Copy.h"
#include "vindex/Support/AtomicOutput.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/OutputFile.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
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

/// The manifest, as it is (it has no checksum of its own; Vindex::open
/// validated it).
static Error copyManifest(const Vindex &V, const AtomicDirectory &Out) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf =
      MemoryBuffer::getFile(V.path(kManifestFileName), /*IsText=*/false,
                            /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(V.path(kManifestFileName), "cannot read: {0}",
                     Buf.getError().message());
  return writeFileAtomically(Out.file(kManifestFileName), (*Buf)->getBuffer());
}

Error copyVindex(const Vindex &V, StringRef OutDir) {
  if (sys::fs::equivalent(V.directory(), OutDir))
    return fileError(OutDir, "is the input V-index; a V-index is never "
                             "modified in place (write to another path)");
  Expected<AtomicDirectory> Out =
      AtomicDirectory::create(OutDir, isReplaceableVindex);
  if (!Out)
    return Out.takeError();
  StringSet<> Done;
  for (const TensorRecord &T : V.manifest().Tensors) {
    if (!Done.insert(T.File).second)
      continue;
    SmallString<128> Dir(Out->file(T.File));
    sys::path::remove_filename(Dir);
    if (std::error_code EC = sys::fs::create_directories(Dir))
      return fileError(Dir, "cannot create: {0}", EC.message());
    if (Error E = copyMapped(V.payloadFile(T), Out->file(T.File)))
      return E;
  }
  for (const AuxFileRecord &F : V.manifest().Files) {
    Expected<std::unique_ptr<MemoryBuffer>> Buf = V.readAuxFile(F.Name);
    if (!Buf)
      return Buf.takeError();
    if (Error E = writeFileAtomically(Out->file(F.Name), (*Buf)->getBuffer()))
      return E;
  }
  if (Error E = copyManifest(V, *Out))
    return E;
  return Out->commit();
}

} // namespace vindex
