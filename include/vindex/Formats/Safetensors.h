//===- Safetensors.h - safetensors files, single and sharded ----*- C++ -*-===//
//
// The reader maps the file and validates every header field before any
// tensor is touched: the 8-byte header length (and its cap), the JSON, each
// entry's dtype, shape and data_offsets, that shape x dtype size equals the
// byte length, that offsets are in bounds, that no two tensors overlap, that
// no name repeats and that no byte of the data section is left over.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_SAFETENSORS_H
#define VINDEX_FORMATS_SAFETENSORS_H

#include "vindex/Formats/DType.h"
#include "vindex/Support/MappedFile.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llvm {
class raw_ostream;
}

namespace vindex {

/// safetensors caps the header at 100 MB; so do we.
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

using Shape = llvm::SmallVector<uint64_t, 4>;

/// Number of elements of a shape, or nullopt on overflow.
std::optional<uint64_t> numElements(llvm::ArrayRef<uint64_t> S);
/// "[2, 3]".
std::string shapeString(llvm::ArrayRef<uint64_t> S);

struct SafetensorsEntry {
  std::string Name;
  DType Type = DType::F32;
  Shape Dims;
  uint64_t Offset = 0; ///< Absolute file offset of the first byte.
  uint64_t Length = 0; ///< Byte length.
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

class SafetensorsFile {
public:
  /// Maps and validates Path.
  static llvm::Expected<std::unique_ptr<SafetensorsFile>>
  open(llvm::StringRef Path);

  llvm::StringRef path() const { return File->path(); }
  const MappedFile &file() const { return *File; }
  /// Entries in file order (ascending offset).
  llvm::ArrayRef<SafetensorsEntry> entries() const { return Entries; }
  const SafetensorsEntry *find(llvm::StringRef Name) const;
  llvm::ArrayRef<uint8_t> data(const SafetensorsEntry &E) const {
    return File->slice(E.Offset, E.Length);
  }
  /// The "__metadata__" string map, in key order.
  const Metadata &metadata() const { return Meta; }

private:
  std::unique_ptr<MappedFile> File;
  std::vector<SafetensorsEntry> Entries;
  llvm::StringMap<size_t> Index;
  Metadata Meta;
};

/// Validates the header of a safetensors file whose bytes are FileBytes and
/// returns its entries (file order) and metadata. FileName is for messages.
llvm::Error parseSafetensorsHeader(llvm::StringRef FileName,
                                   llvm::ArrayRef<uint8_t> FileBytes,
                                   std::vector<SafetensorsEntry> &Entries,
                                   Metadata &Meta);

/// Streams a safetensors file: the header is computed up front from the
/// tensor list, then each tensor's bytes are written in that order.
class SafetensorsWriter {
public:
  struct Tensor {
    std::string Name;
    DType Type;
    Shape Dims;
  };
  SafetensorsWriter(std::vector<Tensor> Tensors, Metadata Meta);
  /// The header bytes (length prefix, JSON padded with spaces to 8 bytes).
  const std::string &header() const { return Header; }
  uint64_t byteLength(size_t I) const;
  uint64_t totalSize() const;

private:
  std::vector<Tensor> Tensors;
  std::string Header;
};

} // namespace vindex

#endif // VINDEX_FORMATS_SAFETENSORS_H
