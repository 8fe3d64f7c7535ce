//===- GGUF.h - GGUF v3 files (llama.cpp's model format) --------*- C++ -*-===//
//
// The reader maps the file and validates it whole before any tensor is
// touched: magic, version, that the tensor and KV counts fit the file, every
// string length, every KV and array element type, every tensor info (name
// length and uniqueness, dimension count, ggml type, that the byte size does
// not overflow) and the data section (offsets exactly sequential as
// llama.cpp requires, aligned, in bounds, not overlapping). Errors name the
// file, the byte offset and the key or tensor.
//
// The writer computes the header, the KVs and the tensor infos up front
// from the tensor list; the caller then streams each tensor's bytes in that
// order, padding to the alignment between them.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_FORMATS_GGUF_H
#define VINDEX_FORMATS_GGUF_H

#include "vindex/Support/MappedFile.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vindex {

constexpr uint32_t kGGUFVersion = 3;
constexpr uint32_t kGGUFDefaultAlignment = 32;
/// llama.cpp's GGML_MAX_NAME (the name must fit with its terminator).
constexpr size_t kGGUFMaxNameLength = 63;
constexpr unsigned kGGUFMaxDims = 4;
/// The elements of all array KVs of one file together (each costs a
/// GGUFValue in memory, whatever its size in the file).
constexpr uint64_t kGGUFMaxArrayElements = uint64_t(1) << 23;

/// KV value types (gguf_type).
enum class GGUFType : uint32_t {
  UInt8 = 0,
  Int8 = 1,
  UInt16 = 2,
  Int16 = 3,
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  UInt64 = 10,
  Int64 = 11,
  Float64 = 12,
};
llvm::StringRef ggufTypeName(GGUFType T);

/// Tensor element types (ggml_type) that we read or write.
enum class GGMLType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };
llvm::StringRef ggmlTypeName(GGMLType T);
/// Bytes of a row of N elements; nullopt if N is not a multiple of the block.
std::optional<uint64_t> ggmlRowSize(GGMLType T, uint64_t N);
constexpr uint64_t kQ8_0Block = 32;
constexpr uint64_t kQ8_0BlockBytes = 34; ///< f16 scale + 32 int8.

/// One KV value. Scalars keep their raw little-endian bits, so a value read
/// and written again is the same bytes.
struct GGUFValue {
  GGUFType Type = GGUFType::UInt32;
  GGUFType ElemType = GGUFType::UInt32; ///< For arrays.
  uint64_t Bits = 0;                    ///< Scalars.
  std::string Str;                      ///< Strings.
  std::vector<GGUFValue> Elems;         ///< Arrays.

  static GGUFValue u32(uint32_t V);
  static GGUFValue i32(int32_t V);
  static GGUFValue f32(float V);
  static GGUFValue boolean(bool V);
  static GGUFValue string(std::string V);
  static GGUFValue array(GGUFType ElemType, std::vector<GGUFValue> Elems);

  /// Any integer type (and bool) as an integer; nullopt otherwise.
  std::optional<int64_t> asInt() const;
  /// Float32/Float64 (and integers) as a double; nullopt otherwise.
  std::optional<double> asFloat() const;
  bool isInteger() const;
};

struct GGUFKV {
  std::string Key;
  GGUFValue Value;
};

struct GGUFTensorInfo {
  std::string Name;
  llvm::SmallVector<uint64_t, 4> Ne; ///< ggml order: Ne[0] varies fastest.
  GGMLType Type = GGMLType::F32;
  uint64_t Offset = 0; ///< Relative to the data section.
  uint64_t Length = 0; ///< Byte length.
  /// The shape in row-major (numpy) order: Ne reversed.
  llvm::SmallVector<uint64_t, 4> rowMajorDims() const;
};

/// Bytes of a tensor of type T with dims Ne, or nullopt on overflow or a
/// row that is not a whole number of blocks.
std::optional<uint64_t> ggmlTensorBytes(GGMLType T,
                                        llvm::ArrayRef<uint64_t> Ne);

class GGUFFile {
public:
  /// Maps and validates Path.
  static llvm::Expected<std::unique_ptr<GGUFFile>> open(llvm::StringRef Path);

  llvm::StringRef path() const { return File->path(); }
  const MappedFile &file() const { return *File; }
  llvm::ArrayRef<GGUFKV> kvs() const { return KVs; }
  const GGUFValue *find(llvm::StringRef Key) const;
  /// The STRING value of a required key; an error naming the key if it is
  /// missing or of another type.
  llvm::Expected<llvm::StringRef> requiredString(llvm::StringRef Key) const;
  llvm::ArrayRef<GGUFTensorInfo> tensors() const { return Tensors; }
  const GGUFTensorInfo *findTensor(llvm::StringRef Name) const;
  uint64_t alignment() const { return Alignment; }
  /// Absolute file offset of the data section.
  uint64_t dataOffset() const { return DataOffset; }
  llvm::ArrayRef<uint8_t> data(const GGUFTensorInfo &T) const {
    return File->slice(DataOffset + T.Offset, T.Length);
  }

private:
  llvm::Error parse();
  std::unique_ptr<MappedFile> File;
  std::vector<GGUFKV> KVs;
  llvm::StringMap<size_t> KVIndex;
  std::vector<GGUFTensorInfo> Tensors;
  llvm::StringMap<size_t> TensorIndex;
  uint64_t Alignment = kGGUFDefaultAlignment;
  uint64_t DataOffset = 0;
};

/// Lays out a GGUF file: header() holds everything before the first tensor
/// (header, KVs, tensor infos, padding); tensor I then goes at
/// header().size() + offset(I), each padded to alignment() with zeros.
class GGUFWriter {
public:
  struct Tensor {
    std::string Name;
    llvm::SmallVector<uint64_t, 4> Ne;
    GGMLType Type;
  };
  /// The alignment is general.alignment when KVs holds it, else 32.
  GGUFWriter(std::vector<GGUFKV> KVs, std::vector<Tensor> Tensors);
  const std::string &header() const { return Header; }
  uint64_t alignment() const { return Alignment; }
  uint64_t byteLength(size_t I) const { return Lengths[I]; }
  uint64_t totalSize() const { return Total; }

private:
  std::string Header;
  uint64_t Alignment = kGGUFDefaultAlignment;
  std::vector<uint64_t> Lengths;
  uint64_t Total = 0;
};

//===----------------------------------------------------------------------===//
// Q8_0 (element conversions are in vindex/Formats/DType.h).
//===----------------------------------------------------------------------===//

/// ggml's quantize_row_q8_0_ref: N (a multiple of 32) floats into N/32
/// blocks of an f16 scale and 32 int8.
void quantizeQ8_0(const float *Src, uint64_t N, uint8_t *Dst);
void dequantizeQ8_0(const uint8_t *Src, uint64_t N, float *Dst);

} // namespace vindex

#endif // VINDEX_FORMATS_GGUF_H
