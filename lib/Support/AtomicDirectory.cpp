//===- AtomicDirectory.cpp ------------------------------------------------===//
#include "vindex/Support/AtomicDirectory.h"

#include "vindex/Support/Error.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <mutex>
#include <vector>

using namespace llvm;

namespace vindex {

Error removeTree(StringRef Path) {
  if (!sys::fs::exists(Path))
    return Error::success();
  if (std::error_code EC = sys::fs::remove_directories(Path))
    return fileError(Path, "cannot remove: {0}", EC.message());
  return Error::success();
}

// Temporary directories to remove if the process is interrupted. Removing
// a tree is not async-signal-safe, but the alternative is leaving gigabytes
// behind; LLVM's own RemoveFileOnSignal makes the same trade.
static std::mutex PendingMutex;
static std::vector<std::string> *Pending = new std::vector<std::string>();

static void removePendingOnInterrupt() {
  for (const std::string &P : *Pending)
    sys::fs::remove_directories(P);
}

static void trackPending(const std::string &Path, bool Add) {
  std::lock_guard<std::mutex> Lock(PendingMutex);
  static bool Installed = false;
  if (!Installed) {
    sys::SetInterruptFunction(removePendingOnInterrupt);
    Installed = true;
  }
  if (Add)
    Pending->push_back(Path);
  else
    llvm::erase(*Pending, Path);
}

bool isReplaceableVindex(StringRef Dir) {
  SmallString<256> Manifest(Dir);
  sys::path::append(Manifest, "manifest.vfb");
  if (sys::fs::exists(Manifest))
    return true;
  std::error_code EC;
  return sys::fs::directory_iterator(Dir, EC) ==
             sys::fs::directory_iterator() &&
         !EC;
}

Expected<AtomicDirectory>
AtomicDirectory::create(StringRef Final, ReplaceablePredicate Replaceable) {
  if (sys::fs::exists(Final) &&
      (!sys::fs::is_directory(Final) || !Replaceable(Final)))
    return fileError(Final, "exists and is not an earlier output of this "
                            "tool; refusing to replace it");
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
    std::error_code EC = sys::fs::create_directory(
        Temp, /*IgnoreExisting=*/false, sys::fs::all_all);
    if (EC == std::errc::file_exists)
      continue;
    if (EC)
      return fileError(Temp, "cannot create output directory: {0}",
                       EC.message());
    trackPending(Temp.str().str(), /*Add=*/true);
    return AtomicDirectory(Dir, Temp.str().str(), Replaceable);
  }
  return makeError("{0}: cannot create a temporary output directory", Final);
}

AtomicDirectory::AtomicDirectory(AtomicDirectory &&Other)
    : FinalPath(std::move(Other.FinalPath)),
      TempPath(std::move(Other.TempPath)), Replaceable(Other.Replaceable),
      Committed(Other.Committed) {
  Other.Committed = true;
}

AtomicDirectory::~AtomicDirectory() {
  if (Committed)
    return;
  consumeError(removeTree(TempPath));
  trackPending(TempPath, /*Add=*/false);
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
    // Checked again: the directory may have appeared while we worked.
    if (!sys::fs::is_directory(FinalPath) || !Replaceable(FinalPath))
      return fileError(FinalPath, "exists and is not an earlier output of "
                                  "this tool; refusing to replace it");
    Old = TempPath + ".old";
    if (std::error_code EC = sys::fs::rename(FinalPath, Old))
      return fileError(FinalPath, "cannot replace: {0}", EC.message());
  }
  if (std::error_code EC = sys::fs::rename(TempPath, FinalPath)) {
    if (!Old.empty()) // put the previous output back
      sys::fs::rename(Old, FinalPath);
    return fileError(FinalPath, "cannot rename output into place: {0}",
                     EC.message());
  }
  Committed = true;
  trackPending(TempPath, /*Add=*/false);
  if (!Old.empty())
    return removeTree(Old);
  return Error::success();
}

Error writeFileAtomically(StringRef Path, StringRef Data) {
  SmallString<256> Temp;
  int FD;
  if (std::error_code EC =
          sys::fs::createUniqueFile(Path + ".tmp-%%%%%%", FD, Temp))
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
