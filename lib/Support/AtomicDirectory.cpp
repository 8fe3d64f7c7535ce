//===- AtomicDirectory.cpp ------------------------------------------------===//
#include "vindex/Support/AtomicDirectory.h"

#include "vindex/Support/Error.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace vindex {

Error removeTree(StringRef Path) {
  if (!sys::fs::exists(Path))
    return Error::success();
  if (std::error_code EC = sys::fs::remove_directories(Path))
    return fileError(Path, "cannot remove: {0}", EC.message());
  return Error::success();
}

Expected<AtomicDirectory> AtomicDirectory::create(StringRef Final) {
  SmallString<256> Model(Final);
  sys::path::remove_dots(Model, /*remove_dot_dot=*/true);
  if (Model.empty() || sys::path::filename(Model).empty())
    return makeError("invalid output path '{0}'", Final);
  std::string Dir = Model.str().str();
  Model += ".tmp-%%%%%%";
  // createUniqueDirectory would prefix the system temp dir; we want the
  // temporary beside the final path so that the rename stays on one device.
  for (int Attempt = 0; Attempt < 64; ++Attempt) {
    SmallString<256> Temp;
    sys::fs::createUniquePath(Model, Temp, /*MakeAbsolute=*/false);
    std::error_code EC = sys::fs::create_directory(Temp, /*IgnoreExisting=*/false,
                                                  sys::fs::all_all);
    if (EC == std::errc::file_exists)
      continue;
    if (EC)
      return fileError(Temp, "cannot create output directory: {0}",
                       EC.message());
    return AtomicDirectory(Dir, Temp.str().str());
  }
  return makeError("{0}: cannot create a temporary output directory", Final);
}

AtomicDirectory::AtomicDirectory(AtomicDirectory &&Other)
    : FinalPath(std::move(Other.FinalPath)),
      TempPath(std::move(Other.TempPath)), Committed(Other.Committed) {
  Other.Committed = true;
}

AtomicDirectory::~AtomicDirectory() {
  if (!Committed)
    consumeError(removeTree(TempPath));
}

std::string AtomicDirectory::file(StringRef Name) const {
  SmallString<256> P(TempPath);
  sys::path::append(P, Name);
  return P.str().str();
}

Error AtomicDirectory::commit() {
  // rename(2) cannot replace a non-empty directory: move the old output
  // aside first, then swap in the new one, then delete the old one.
  std::string Old;
  if (sys::fs::exists(FinalPath)) {
    if (!sys::fs::is_directory(FinalPath)) {
      if (std::error_code EC = sys::fs::remove(FinalPath))
        return fileError(FinalPath, "cannot replace: {0}", EC.message());
    } else {
      Old = TempPath + ".old";
      if (std::error_code EC = sys::fs::rename(FinalPath, Old))
        return fileError(FinalPath, "cannot replace: {0}", EC.message());
    }
  }
  if (std::error_code EC = sys::fs::rename(TempPath, FinalPath))
    return fileError(FinalPath, "cannot rename output into place: {0}",
                     EC.message());
  Committed = true;
  if (!Old.empty())
    return removeTree(Old);
  return Error::success();
}

Error writeFileAtomically(StringRef Path, StringRef Data) {
  SmallString<256> Temp;
  int FD;
  if (std::error_code EC = sys::fs::createUniqueFile(Path + ".tmp-%%%%%%", FD,
                                                     Temp))
    return fileError(Path, "cannot create: {0}", EC.message());
  {
    raw_fd_ostream OS(FD, /*shouldClose=*/true);
    OS << Data;
    OS.close();
    if (OS.has_error()) {
      std::error_code EC = OS.error();
      OS.clear_error();
      sys::fs::remove(Temp);
      return fileError(Path, "cannot write: {0}", EC.message());
    }
  }
  if (std::error_code EC = sys::fs::rename(Temp, Path)) {
    sys::fs::remove(Temp);
    return fileError(Path, "cannot write: {0}", EC.message());
  }
  return Error::success();
}

} // namespace vindex
