//===- AtomicDirectory.h - Output directories that appear whole -*- C++ -*-===//
//
// A tool's output directory is built under a temporary name next to its
// final path and renamed into place by commit(). If the tool fails (or the
// object is destroyed without commit), the temporary directory is removed:
// a failed run leaves nothing behind and never damages an older output.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_ATOMICDIRECTORY_H
#define VINDEX_SUPPORT_ATOMICDIRECTORY_H

#include "llvm/Support/Error.h"

#include <string>

namespace vindex {

class AtomicDirectory {
public:
  /// Decides whether an existing directory at the final path may be
  /// replaced: only an earlier output of the same kind of tool may be, never
  /// an arbitrary directory (the input, say).
  using ReplaceablePredicate = bool (*)(llvm::StringRef ExistingDir);

  /// Creates "<Final>.tmp-XXXXXX" beside Final. Fails if Final exists and is
  /// not replaceable. The temporary directory is also removed if the process
  /// is interrupted (SIGINT, SIGTERM...).
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

/// Writes Data to Path atomically (temporary file + rename).
llvm::Error writeFileAtomically(llvm::StringRef Path, llvm::StringRef Data);

} // namespace vindex

#endif // VINDEX_SUPPORT_ATOMICDIRECTORY_H
