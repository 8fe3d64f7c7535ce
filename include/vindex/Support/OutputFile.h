//===- OutputFile.h - Sequential writes, with in-kernel copies --*- C++ -*-===//
//
// A payload file written front to back. Bytes that are copied unchanged from
// an input go through copy_file_range(2), page cache to page cache, as cp(1)
// does; everything else through write(2). Neither needs a user buffer.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_OUTPUTFILE_H
#define VINDEX_SUPPORT_OUTPUTFILE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace vindex {

class MappedFile;

class OutputFile {
public:
  /// Creates (truncates) Path.
  static llvm::Expected<std::unique_ptr<OutputFile>>
  create(llvm::StringRef Path);
  /// Creates Path, which must not exist yet. Unlike reopening an existing
  /// file for writing, this does not truncate it: ext4 flushes a file that
  /// was truncated when it is closed (auto_da_alloc), which cost about 1.4 s
  /// in close() for a 2 GB GGUF.
  static llvm::Expected<std::unique_ptr<OutputFile>>
  createNew(llvm::StringRef Path);
  ~OutputFile();

  uint64_t size() const { return Pos; }
  llvm::Error write(llvm::ArrayRef<uint8_t> Data);
  /// Appends Length bytes of Src from Offset.
  llvm::Error copyFrom(const MappedFile &Src, uint64_t Offset, uint64_t Length);
  /// Appends zeros up to the next multiple of Alignment.
  llvm::Error padTo(uint64_t Alignment);
  llvm::Error close();

private:
  OutputFile(std::string Path, int FD) : Path(std::move(Path)), FD(FD) {}
  llvm::Error fail(const char *What);
  std::string Path;
  int FD;
  uint64_t Pos = 0;
};

} // namespace vindex

#endif // VINDEX_SUPPORT_OUTPUTFILE_H
