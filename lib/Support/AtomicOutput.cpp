//===- AtomicOutput.cpp ---------------------------------------------------===//
//
// Removal on signals. A temporary file is registered with LLVM's
// sys::RemoveFileOnSignal. LLVM has no such thing for directories (its
// handler skips anything but regular files) and its other hooks do not fit:
// an interrupt function replaces the process's death (the tool would go on
// writing into a removed directory) and signal handlers run on faults only.
// So temporary directories have a registry of their own: a fixed table of
// paths, filled and emptied with atomic exchanges, and handlers for the
// signals that kill (LLVM's list) that remove every registered tree with
// async-signal-safe system calls only (openat, getdents64, unlinkat; no
// allocation, no locks) and then hand the signal on to the handler they
// replaced: LLVM's, which removes its files and re-raises, or the default
// action.
//
//===----------------------------------------------------------------------===//
#include "vindex/Support/AtomicOutput.h"

#include "vindex/Support/Error.h"
#include "vindex/Support/OutputFile.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include <unistd.h>

using namespace llvm;

namespace vindex {

//===----------------------------------------------------------------------===//
// Temporary directories removed on signals
//===----------------------------------------------------------------------===//

namespace {

/// More outputs in flight than this are still removed on failure, only not
/// on a signal.
constexpr size_t kMaxPendingDirectories = 64;
std::atomic<char *> PendingDirectories[kMaxPendingDirectories];

/// The signals whose default action kills the process (LLVM's list).
constexpr int kFatalSignals[] = {SIGHUP,  SIGINT,  SIGTERM, SIGUSR2, SIGPIPE,
                                 SIGQUIT, SIGILL,  SIGTRAP, SIGABRT, SIGFPE,
                                 SIGBUS,  SIGSEGV, SIGSYS,  SIGXCPU, SIGXFSZ};
struct sigaction Replaced[NSIG];

/// Removes Name (relative to the directory DirFD) and, if it is a directory,
/// everything below it. Async-signal-safe: system calls and stack buffers.
void removeTreeAt(int DirFD, const char *Name, unsigned Depth) {
  if (::unlinkat(DirFD, Name, 0) == 0 || errno != EISDIR || Depth > 16)
    return;
  int FD =
      ::openat(DirFD, Name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (FD < 0)
    return;
  // Entries removed while the directory is read may hide others: read it
  // again from the start until it is empty (a few passes at most).
  for (int Pass = 0; Pass < 4; ++Pass) {
    bool Removed = false;
    alignas(8) char Buf[2048];
    ssize_t N;
    while ((N = ::getdents64(FD, Buf, sizeof(Buf))) > 0)
      for (ssize_t Off = 0; Off < N;) {
        const auto *E = reinterpret_cast<const struct dirent64 *>(Buf + Off);
        Off += E->d_reclen;
        if (std::strcmp(E->d_name, ".") && std::strcmp(E->d_name, "..")) {
          removeTreeAt(FD, E->d_name, Depth + 1);
          Removed = true;
        }
      }
    if (!Removed || ::lseek(FD, 0, SEEK_SET) != 0)
      break;
  }
  ::close(FD);
  ::unlinkat(DirFD, Name, AT_REMOVEDIR);
}

void removePendingDirectories(void * = nullptr) {
  int SavedErrno = errno;
  for (std::atomic<char *> &Slot : PendingDirectories)
    if (char *Path = Slot.exchange(nullptr)) // never freed: a handler
      removeTreeAt(AT_FDCWD, Path, 0);
  errno = SavedErrno;
}

void onFatalSignal(int Sig, siginfo_t *Info, void *Context) {
  removePendingDirectories();
  // Hand the signal on (SA_NODEFER: a raise here is delivered at once).
  const struct sigaction &Prev = Replaced[Sig];
  ::sigaction(Sig, &Prev, nullptr);
  if (Prev.sa_flags & SA_SIGINFO) {
    if (Prev.sa_sigaction)
      Prev.sa_sigaction(Sig, Info, Context);
  } else if (Prev.sa_handler == SIG_DFL) {
    ::raise(Sig);
  } else if (Prev.sa_handler != SIG_IGN) {
    Prev.sa_handler(Sig);
  }
}

void installSignalHandlers() {
  // LLVM's handlers first (this installs them if nothing has yet), so that
  // ours run before them: LLVM's leave some signals (abort's) to the
  // default action without passing them on. Its fault-time callbacks
  // remove the directories too, should it ever come first.
  sys::AddSignalHandler(removePendingDirectories, nullptr);
  struct sigaction Action = {};
  Action.sa_sigaction = onFatalSignal;
  Action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&Action.sa_mask);
  for (int Sig : kFatalSignals)
    ::sigaction(Sig, &Action, &Replaced[Sig]);
}

void removeDirectoryOnSignal(StringRef Path) {
  static std::once_flag Installed;
  std::call_once(Installed, installSignalHandlers);
  char *Copy = ::strdup(Path.str().c_str());
  for (std::atomic<char *> &Slot : PendingDirectories) {
    char *Empty = nullptr;
    if (Slot.compare_exchange_strong(Empty, Copy))
      return;
  }
  std::free(Copy);
}

void dontRemoveDirectoryOnSignal(StringRef Path) {
  for (std::atomic<char *> &Slot : PendingDirectories) {
    char *P = Slot.load();
    // A handler that took the slot owns the string: leave it.
    if (P && Path == P && Slot.compare_exchange_strong(P, nullptr)) {
      std::free(P);
      return;
    }
  }
}

/// The process that made a temporary "<Final>.tmp-<pid>-XXXXXX" of Final
/// (nullopt for any other name).
std::optional<long> temporaryOwner(StringRef Name, StringRef FinalName) {
  if (!Name.consume_front(FinalName) || !Name.consume_front(".tmp-"))
    return std::nullopt;
  auto [Pid, Rest] = Name.split('-');
  long N;
  if (Rest.size() != 6 || Pid.getAsInteger(10, N) || N <= 0)
    return std::nullopt;
  return N;
}

/// Removes the temporaries of Final that a process which no longer exists
/// left (SIGKILL, a power cut: nothing ran to remove them), and says so. A
/// temporary of a live process (another run writing the same path) stays.
void removeStaleTemporaries(StringRef Final) {
  StringRef Parent = sys::path::parent_path(Final);
  std::string Dir = Parent.empty() ? "." : Parent.str();
  StringRef FinalName = sys::path::filename(Final);
  std::error_code EC;
  std::vector<std::pair<std::string, long>> Stale;
  for (sys::fs::directory_iterator It(Dir, EC), End; It != End && !EC;
       It.increment(EC)) {
    std::optional<long> Pid =
        temporaryOwner(sys::path::filename(It->path()), FinalName);
    if (Pid && ::kill(pid_t(*Pid), 0) != 0 && errno == ESRCH)
      Stale.emplace_back(It->path(), *Pid);
  }
  for (const auto &[Path, Pid] : Stale) {
    std::error_code RC = sys::fs::is_directory(Path)
                             ? sys::fs::remove_directories(Path)
                             : sys::fs::remove(Path);
    if (!RC)
      errs() << "note: removed '" << Path
             << "', a temporary output left by process " << Pid
             << " (killed before it finished)\n";
  }
}

/// "<Final>.tmp-<pid>-%%%%%%" for an output path, beside it, after removing
/// the stale temporaries of earlier runs; Final is normalised. The process
/// id in the name tells a later run whether the writer is gone.
Expected<std::string> temporaryModel(StringRef Given, std::string &Final) {
  SmallString<256> Path(Given);
  sys::path::remove_dots(Path, /*remove_dot_dot=*/true);
  if (Path.empty() || sys::path::filename(Path).empty())
    return makeError("invalid output path '{0}'", Given);
  Final = Path.str().str();
  removeStaleTemporaries(Final);
  return Final + ".tmp-" + std::to_string(::getpid()) + "-%%%%%%";
}

} // namespace

Error removeTree(StringRef Path) {
  if (!sys::fs::exists(Path))
    return Error::success();
  if (std::error_code EC = sys::fs::remove_directories(Path))
    return fileError(Path, "cannot remove: {0}", EC.message());
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

AtomicFile::AtomicFile(std::string Final, std::string Temp,
                       std::unique_ptr<OutputFile> Out)
    : FinalPath(std::move(Final)), TempPath(std::move(Temp)),
      Out(std::move(Out)) {}

Expected<AtomicFile> AtomicFile::create(StringRef Given) {
  std::string Final;
  Expected<std::string> Model = temporaryModel(Given, Final);
  if (!Model)
    return Model.takeError();
  // The name is registered for removal on signals before the file exists
  // (which also installs the handlers): registered after, a signal between
  // the two (a kill as soon as the file appears) would leave it behind.
  for (int Attempt = 0; Attempt < 64; ++Attempt) {
    SmallString<256> Temp;
    sys::fs::createUniquePath(*Model, Temp, /*MakeAbsolute=*/false);
    sys::RemoveFileOnSignal(Temp);
    Expected<std::unique_ptr<OutputFile>> F = OutputFile::createNew(Temp);
    if (F)
      return AtomicFile(std::move(Final), Temp.str().str(), std::move(*F));
    sys::DontRemoveFileOnSignal(Temp);
    if (!sys::fs::exists(Temp)) // not a name taken by an earlier try
      return F.takeError();
    consumeError(F.takeError());
  }
  return makeError("{0}: cannot create a temporary output file", Given);
}

AtomicFile::AtomicFile(AtomicFile &&Other)
    : FinalPath(std::move(Other.FinalPath)),
      TempPath(std::move(Other.TempPath)), Out(std::move(Other.Out)),
      Done(Other.Done) {
  Other.Done = true;
}

AtomicFile::~AtomicFile() {
  if (Done)
    return;
  Out.reset();
  sys::fs::remove(TempPath);
  sys::DontRemoveFileOnSignal(TempPath);
}

Error AtomicFile::commit() {
  // Closed before the rename, so that a failed close never puts an
  // incomplete file in place.
  if (Error E = Out->close())
    return E;
  if (std::error_code EC = sys::fs::rename(TempPath, FinalPath))
    return fileError(FinalPath, "cannot rename output into place: {0}",
                     EC.message());
  Done = true;
  sys::DontRemoveFileOnSignal(TempPath);
  return Error::success();
}

Error writeFileAtomically(StringRef Path, StringRef Data) {
  Expected<AtomicFile> F = AtomicFile::create(Path);
  if (!F)
    return F.takeError();
  if (Error E = F->out().write(arrayRefFromStringRef(Data)))
    return E;
  return F->commit();
}

//===----------------------------------------------------------------------===//
// Directories
//===----------------------------------------------------------------------===//

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
AtomicDirectory::create(StringRef Given, ReplaceablePredicate Replaceable) {
  if (sys::fs::exists(Given) &&
      (!sys::fs::is_directory(Given) || !Replaceable(Given)))
    return fileError(Given, "exists and is not an earlier output of this "
                            "tool; refusing to replace it");
  std::string Final;
  Expected<std::string> Model = temporaryModel(Given, Final);
  if (!Model)
    return Model.takeError();
  // createUniqueDirectory would prefix the system temp dir; we want the
  // temporary beside the final path so that the rename stays on one device.
  for (int Attempt = 0; Attempt < 64; ++Attempt) {
    SmallString<256> Temp;
    sys::fs::createUniquePath(*Model, Temp, /*MakeAbsolute=*/false);
    // Registered before it exists, as AtomicFile's.
    removeDirectoryOnSignal(Temp);
    std::error_code EC = sys::fs::create_directory(
        Temp, /*IgnoreExisting=*/false, sys::fs::all_all);
    if (EC)
      dontRemoveDirectoryOnSignal(Temp);
    if (EC == std::errc::file_exists)
      continue;
    if (EC)
      return fileError(Temp, "cannot create output directory: {0}",
                       EC.message());
    return AtomicDirectory(Final, Temp.str().str(), Replaceable);
  }
  return makeError("{0}: cannot create a temporary output directory", Given);
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
  dontRemoveDirectoryOnSignal(TempPath);
}

std::string AtomicDirectory::file(StringRef Name) const {
  SmallString<256> P(TempPath);
  sys::path::append(P, Name);
  return P.str().str();
}

/// Swaps two directories in one step (Linux's renameat2 RENAME_EXCHANGE);
/// false where the system or the file system cannot.
static bool exchangePaths(const std::string &A, const std::string &B) {
#if defined(__linux__) && defined(RENAME_EXCHANGE)
  return ::renameat2(AT_FDCWD, A.c_str(), AT_FDCWD, B.c_str(),
                     RENAME_EXCHANGE) == 0;
#else
  (void)A;
  (void)B;
  return false;
#endif
}

Error AtomicDirectory::commit() {
  // rename(2) cannot replace a non-empty directory. Where the system can,
  // the new output and the old one swap places in one step, so that the
  // final path holds one whole output at every instant, even when the
  // process is killed; the old one, now at the temporary path, is then
  // deleted (by the signal handlers too, if a signal comes first).
  // Elsewhere the old output is moved aside first, then the new one swapped
  // in (a kill between the two renames leaves the final path empty).
  std::string Old;
  if (sys::fs::exists(FinalPath)) {
    // Checked again: the directory may have appeared while we worked.
    if (!sys::fs::is_directory(FinalPath) || !Replaceable(FinalPath))
      return fileError(FinalPath, "exists and is not an earlier output of "
                                  "this tool; refusing to replace it");
    if (exchangePaths(TempPath, FinalPath)) {
      Committed = true;
      Error E = removeTree(TempPath);
      dontRemoveDirectoryOnSignal(TempPath);
      return E;
    }
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
  dontRemoveDirectoryOnSignal(TempPath);
  if (!Old.empty())
    return removeTree(Old);
  return Error::success();
}

} // namespace vindex
