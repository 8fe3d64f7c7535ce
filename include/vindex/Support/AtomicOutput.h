//===- AtomicOutput.h - Outputs that appear whole or not at all -*- C++ -*-===//
//
// The one atomic-output primitive, for files and directories. An output is
// written under "<final>.tmp-<pid>-XXXXXX" beside its final path (so that
// the rename stays on one file system) and renamed into place by commit().
// Until then it is removed when the writer gives up (the object is destroyed
// without commit) and when the process is killed by a signal: a file through
// LLVM's sys::RemoveFileOnSignal, a directory through a small registry of
// our own, because LLVM's removes regular files only (see AtomicOutput.cpp).
// A failed or interrupted run leaves nothing behind and never damages an
// older output. SIGKILL runs no handler, so its temporary stays; the next
// run for the same final path removes the temporaries whose process is gone
// (the pid in the name) and says so on stderr.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_ATOMICOUTPUT_H
#define VINDEX_SUPPORT_ATOMICOUTPUT_H

#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace vindex {

class OutputFile;

/// A file written through an OutputFile (its in-kernel copies and sized
/// writes included) that appears at its final path on commit().
class AtomicFile {
public:
  /// Creates "<Final>.tmp-<pid>-XXXXXX" beside Final, new (never truncated: see
  /// OutputFile::createUnique).
  static llvm::Expected<AtomicFile> create(llvm::StringRef Final);

  AtomicFile(AtomicFile &&Other);
  AtomicFile &operator=(AtomicFile &&) = delete;
  ~AtomicFile();

  /// Where the bytes go.
  OutputFile &out() { return *Out; }
  /// Closes the file and renames it over Final.
  llvm::Error commit();

private:
  AtomicFile(std::string Final, std::string Temp,
             std::unique_ptr<OutputFile> Out);
  std::string FinalPath;
  std::string TempPath;
  std::unique_ptr<OutputFile> Out;
  bool Done = false;
};

/// Writes Data to Path atomically (an AtomicFile).
llvm::Error writeFileAtomically(llvm::StringRef Path, llvm::StringRef Data);

/// A directory whose files are written through file(Name) and which appears
/// at its final path on commit().
class AtomicDirectory {
public:
  /// Decides whether an existing directory at the final path may be
  /// replaced: only an earlier output of the same kind of tool may be, never
  /// an arbitrary directory (the input, say).
  using ReplaceablePredicate = bool (*)(llvm::StringRef ExistingDir);

  /// Creates "<Final>.tmp-<pid>-XXXXXX" beside Final. Fails if Final exists and is
  /// not replaceable.
  static llvm::Expected<AtomicDirectory>
  create(llvm::StringRef Final, ReplaceablePredicate Replaceable);

  AtomicDirectory(AtomicDirectory &&Other);
  AtomicDirectory &operator=(AtomicDirectory &&) = delete;
  ~AtomicDirectory();

  /// The directory to write into.
  llvm::StringRef path() const { return TempPath; }
  /// TempPath/Name.
  std::string file(llvm::StringRef Name) const;
  /// Replaces Final (a previous output, if any) with the temporary directory.
  llvm::Error commit();

private:
  AtomicDirectory(std::string Final, std::string Temp,
                  ReplaceablePredicate Replaceable)
      : FinalPath(std::move(Final)), TempPath(std::move(Temp)),
        Replaceable(Replaceable) {}
  std::string FinalPath;
  std::string TempPath;
  ReplaceablePredicate Replaceable;
  bool Committed = false;
};

/// True for an empty directory or one holding a V-index (manifest.vfb).
bool isReplaceableVindex(llvm::StringRef Dir);

/// Removes a directory tree (no error if it does not exist).
llvm::Error removeTree(llvm::StringRef Path);

} // namespace vindex

#endif // VINDEX_SUPPORT_ATOMICOUTPUT_H
