//===- Copy.cpp - Writing a V-index as it is ------------------------------===//
#include "vindex/Store/Copy.h"
#include "vindex/Support/AtomicDirectory.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/OutputFile.h"

#include "llvm/ADT/StringExtras.h"
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

/// Copies Name from V to Out; with Length/Checksum, only if the file is
/// still what the manifest recorded.
static Error copyFile(const Vindex &V, StringRef Name,
                      const AtomicDirectory &Out,
                      const AuxFileRecord *Expect = nullptr) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(
      V.path(Name), /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(V.path(Name), "cannot read: {0}",
                     Buf.getError().message());
  ArrayRef<uint8_t> Bytes = arrayRefFromStringRef((*Buf)->getBuffer());
  if (Expect &&
      (Bytes.size() != Expect->Length || checksum(Bytes) != Expect->Checksum))
    return fileError(V.path(Name), "checksum mismatch (the file was changed)");
  return writeFileAtomically(Out.file(Name), (*Buf)->getBuffer());
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
  for (const AuxFileRecord &F : V.manifest().Files)
    if (Error E = copyFile(V, F.Name, *Out, &F))
      return E;
  if (Error E = copyFile(V, kManifestFileName, *Out))
    return E;
  return Out->commit();
}

} // namespace vindex
