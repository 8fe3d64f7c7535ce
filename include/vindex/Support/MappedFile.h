//===- MappedFile.h - Read-only memory-mapped input files -------*- C++ -*-===//
//
// Inputs are mapped, not read: a tensor is a view into the page cache. Long
// streaming passes call dropPages() behind themselves so that the resident
// set stays flat however large the checkpoint is.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_MAPPEDFILE_H
#define VINDEX_SUPPORT_MAPPEDFILE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"

#include <memory>
#include <string>

namespace vindex {

/// Where a file's bytes are read from.
enum class Residency {
  /// The page cache, mapped: nothing copied, the file's pages shared with
  /// every process reading it.
  Mapped,
  /// A private copy in anonymous memory with transparent huge pages
  /// advised: one more copy of the file in memory, but far fewer TLB
  /// misses when the whole file is streamed again and again (decoding
  /// reads every weight once per token; llama.cpp's --no-mmap).
  Memory,
};

class MappedFile {
public:
  /// Maps Path read-only (or copies it, with Residency::Memory). An empty
  /// file maps to an empty view.
  static llvm::Expected<std::unique_ptr<MappedFile>>
  open(llvm::StringRef Path, Residency Where = Residency::Mapped);

  llvm::StringRef path() const { return Path; }
  uint64_t size() const { return Size; }
  llvm::ArrayRef<uint8_t> bytes() const {
    return {Data, static_cast<size_t>(Size)};
  }
  llvm::ArrayRef<uint8_t> slice(uint64_t Offset, uint64_t Length) const {
    return bytes().slice(Offset, Length);
  }

  /// Hints that [Offset, Offset+Length) will be read front to back soon.
  void willNeed(uint64_t Offset, uint64_t Length) const;
  /// The open descriptor (for in-kernel copies), valid while this lives.
  int fd() const { return FD; }
  /// Copies [Offset, Offset + Dst.size()) into Dst with pread(2), without
  /// touching the mapping.
  llvm::Error readInto(uint64_t Offset,
                       llvm::MutableArrayRef<uint8_t> Dst) const;

  /// Releases the pages of [Offset, Offset+Length) from this process; the
  /// data stays readable (it is faulted in again on access).
  void dropPages(uint64_t Offset, uint64_t Length) const;

private:
  MappedFile() = default;
  llvm::Error copyToMemory();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

public:
  ~MappedFile();

private:
  int FD = -1;
  std::string Path;
  uint64_t Size = 0;
  llvm::sys::fs::mapped_file_region Region;
  /// The bytes: Region's, or the copy in Copy (Residency::Memory).
  const uint8_t *Data = nullptr;
  void *Copy = nullptr;
  size_t CopySize = 0;
};

} // namespace vindex

#endif // VINDEX_SUPPORT_MAPPEDFILE_H
