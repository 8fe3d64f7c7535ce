//===- GGUF.cpp - GGUF v3 reader and writer -------------------------------===//
#include "vindex/Formats/GGUF.h"

#include "vindex/Formats/DType.h"

#include "vindex/Support/Error.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstring>

using namespace llvm;

namespace vindex {

StringRef ggufTypeName(GGUFType T) {
  switch (T) {
  case GGUFType::UInt8:
    return "UINT8";
  case GGUFType::Int8:
    return "INT8";
  case GGUFType::UInt16:
    return "UINT16";
  case GGUFType::Int16:
    return "INT16";
  case GGUFType::UInt32:
    return "UINT32";
  case GGUFType::Int32:
    return "INT32";
  case GGUFType::Float32:
    return "FLOAT32";
  case GGUFType::Bool:
    return "BOOL";
  case GGUFType::String:
    return "STRING";
  case GGUFType::Array:
    return "ARRAY";
  case GGUFType::UInt64:
    return "UINT64";
  case GGUFType::Int64:
    return "INT64";
  case GGUFType::Float64:
    return "FLOAT64";
  }
  return "?";
}

StringRef ggmlTypeName(GGMLType T) {
  switch (T) {
  case GGMLType::F32:
    return "F32";
  case GGMLType::F16:
    return "F16";
  case GGMLType::Q8_0:
    return "Q8_0";
  case GGMLType::BF16:
    return "BF16";
  }
  return "?";
}

namespace {

/// Bytes of a scalar KV type; 0 for strings and arrays, nullopt if unknown.
std::optional<unsigned> scalarSize(uint32_t T) {
  switch (GGUFType(T)) {
  case GGUFType::UInt8:
  case GGUFType::Int8:
  case GGUFType::Bool:
    return 1;
  case GGUFType::UInt16:
  case GGUFType::Int16:
    return 2;
  case GGUFType::UInt32:
  case GGUFType::Int32:
  case GGUFType::Float32:
    return 4;
  case GGUFType::UInt64:
  case GGUFType::Int64:
  case GGUFType::Float64:
    return 8;
  case GGUFType::String:
  case GGUFType::Array:
    return 0;
  }
  return std::nullopt;
}

bool isKnownGGMLType(uint32_t T) {
  return T == uint32_t(GGMLType::F32) || T == uint32_t(GGMLType::F16) ||
         T == uint32_t(GGMLType::Q8_0) || T == uint32_t(GGMLType::BF16);
}

} // namespace

std::optional<uint64_t> ggmlRowSize(GGMLType T, uint64_t N) {
  switch (T) {
  case GGMLType::F32:
    return N * 4;
  case GGMLType::F16:
  case GGMLType::BF16:
    return N * 2;
  case GGMLType::Q8_0:
    if (N % kQ8_0Block)
      return std::nullopt;
    return N / kQ8_0Block * kQ8_0BlockBytes;
  }
  return std::nullopt;
}

std::optional<uint64_t> ggmlTensorBytes(GGMLType T, ArrayRef<uint64_t> Ne) {
  if (Ne.empty())
    return std::nullopt;
  // A zero dimension would make a tensor of no bytes whose other
  // dimensions are unchecked; no model has one.
  if (llvm::is_contained(Ne, 0u) || Ne[0] > (uint64_t(1) << 60))
    return std::nullopt;
  std::optional<uint64_t> Bytes = ggmlRowSize(T, Ne[0]);
  if (!Bytes)
    return std::nullopt;
  for (uint64_t D : Ne.drop_front()) {
    if (D && *Bytes > UINT64_MAX / D)
      return std::nullopt;
    *Bytes *= D;
  }
  return Bytes;
}

SmallVector<uint64_t, 4> GGUFTensorInfo::rowMajorDims() const {
  return SmallVector<uint64_t, 4>(Ne.rbegin(), Ne.rend());
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

GGUFValue GGUFValue::u32(uint32_t V) {
  GGUFValue R;
  R.Type = GGUFType::UInt32;
  R.Bits = V;
  return R;
}
GGUFValue GGUFValue::i32(int32_t V) {
  GGUFValue R;
  R.Type = GGUFType::Int32;
  R.Bits = uint32_t(V);
  return R;
}
GGUFValue GGUFValue::f32(float V) {
  GGUFValue R;
  R.Type = GGUFType::Float32;
  uint32_t B;
  std::memcpy(&B, &V, 4);
  R.Bits = B;
  return R;
}
GGUFValue GGUFValue::boolean(bool V) {
  GGUFValue R;
  R.Type = GGUFType::Bool;
  R.Bits = V;
  return R;
}
GGUFValue GGUFValue::string(std::string V) {
  GGUFValue R;
  R.Type = GGUFType::String;
  R.Str = std::move(V);
  return R;
}
GGUFValue GGUFValue::array(GGUFType ElemType, std::vector<GGUFValue> Elems) {
  GGUFValue R;
  R.Type = GGUFType::Array;
  R.ElemType = ElemType;
  R.Elems = std::move(Elems);
  return R;
}

bool GGUFValue::isInteger() const {
  switch (Type) {
  case GGUFType::UInt8:
  case GGUFType::Int8:
  case GGUFType::UInt16:
  case GGUFType::Int16:
  case GGUFType::UInt32:
  case GGUFType::Int32:
  case GGUFType::UInt64:
  case GGUFType::Int64:
    return true;
  default:
    return false;
  }
}

std::optional<int64_t> GGUFValue::asInt() const {
  switch (Type) {
  case GGUFType::UInt8:
  case GGUFType::UInt16:
  case GGUFType::UInt32:
  case GGUFType::UInt64:
  case GGUFType::Bool:
    return int64_t(Bits);
  case GGUFType::Int8:
    return int64_t(int8_t(Bits));
  case GGUFType::Int16:
    return int64_t(int16_t(Bits));
  case GGUFType::Int32:
    return int64_t(int32_t(Bits));
  case GGUFType::Int64:
    return int64_t(Bits);
  default:
    return std::nullopt;
  }
}

std::optional<double> GGUFValue::asFloat() const {
  if (Type == GGUFType::Float32) {
    uint32_t B = uint32_t(Bits);
    float F;
    std::memcpy(&F, &B, 4);
    return F;
  }
  if (Type == GGUFType::Float64) {
    double D;
    std::memcpy(&D, &Bits, 8);
    return D;
  }
  if (std::optional<int64_t> I = asInt(); I && Type != GGUFType::Bool)
    return double(*I);
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

namespace {

/// A bounds-checked little-endian cursor over the mapped file.
class Cursor {
public:
  Cursor(StringRef Path, ArrayRef<uint8_t> Bytes) : Path(Path), Bytes(Bytes) {}
  uint64_t pos() const { return Pos; }
  uint64_t remaining() const { return Bytes.size() - Pos; }

  template <typename... Ts>
  Error fail(uint64_t At, const char *Fmt, Ts &&...Vals) {
    return fileError(Path, "byte {0}: {1}", At,
                     formatv(Fmt, std::forward<Ts>(Vals)...).str());
  }

  Error need(uint64_t N, StringRef What) {
    if (N > remaining())
      return fail(Pos, "{0} runs past the end of the file ({1} bytes)", What,
                  Bytes.size());
    return Error::success();
  }
  Error u32(uint32_t &Out, StringRef What) {
    if (Error E = need(4, What))
      return E;
    Out = support::endian::read32le(Bytes.data() + Pos);
    Pos += 4;
    return Error::success();
  }
  Error u64(uint64_t &Out, StringRef What) {
    if (Error E = need(8, What))
      return E;
    Out = support::endian::read64le(Bytes.data() + Pos);
    Pos += 8;
    return Error::success();
  }
  Error raw(unsigned N, uint64_t &Out, StringRef What) {
    if (Error E = need(N, What))
      return E;
    Out = 0;
    for (unsigned I = 0; I < N; ++I)
      Out |= uint64_t(Bytes[Pos + I]) << (8 * I);
    Pos += N;
    return Error::success();
  }
  Error string(std::string &Out, StringRef What) {
    uint64_t At = Pos, Len;
    if (Error E = u64(Len, What))
      return E;
    if (Len > remaining())
      return fail(At,
                  "{0} has length {1}, past the end of the file ({2} "
                  "bytes)",
                  What, Len, Bytes.size());
    Out.assign(reinterpret_cast<const char *>(Bytes.data() + Pos), Len);
    Pos += Len;
    return Error::success();
  }

  /// Elements of the arrays read so far (bounded by kGGUFMaxArrayElements).
  uint64_t ArrayElements = 0;

private:
  StringRef Path;
  ArrayRef<uint8_t> Bytes;
  uint64_t Pos = 0;
};

Error readValue(Cursor &C, uint32_t Type, GGUFValue &Out, StringRef Key,
                bool InArray) {
  uint64_t At = C.pos();
  std::optional<unsigned> Size = scalarSize(Type);
  if (!Size)
    return C.fail(At, "KV '{0}' has unknown value type {1}", Key, Type);
  Out.Type = GGUFType(Type);
  if (Out.Type == GGUFType::String)
    return C.string(Out.Str, ("value of KV '" + Key + "'").str());
  if (Out.Type != GGUFType::Array) {
    if (Error E = C.raw(*Size, Out.Bits, ("value of KV '" + Key + "'").str()))
      return E;
    if (Out.Type == GGUFType::Bool && Out.Bits > 1)
      return C.fail(At, "KV '{0}' is a BOOL with value {1} (must be 0 or 1)",
                    Key, Out.Bits);
    return Error::success();
  }
  if (InArray)
    return C.fail(At, "KV '{0}' is an array of arrays (not supported)", Key);
  uint32_t Elem;
  uint64_t Count;
  if (Error E = C.u32(Elem, "array type"))
    return E;
  std::optional<unsigned> ElemSize = scalarSize(Elem);
  if (!ElemSize)
    return C.fail(At, "KV '{0}' is an array of unknown type {1}", Key, Elem);
  uint64_t CountAt = C.pos();
  if (Error E = C.u64(Count, "array length"))
    return E;
  // Every element takes at least one byte (a string its 8-byte length).
  uint64_t MinSize = *ElemSize ? *ElemSize : 8;
  if (Count > C.remaining() / MinSize)
    return C.fail(CountAt,
                  "KV '{0}' has {1} elements, past the end of the "
                  "file",
                  Key, Count);
  // An element costs far more in memory than in the file (a GGUFValue,
  // ~80 bytes, for one byte of UINT8), so the elements of all arrays
  // together are bounded, not only each array's; no real vocabulary comes
  // near the bound (262K tokens, ~500K merges, with scores and types).
  if (Count > kGGUFMaxArrayElements - C.ArrayElements)
    return C.fail(CountAt,
                  "KV '{0}' has {1} elements, more than the {2} that arrays "
                  "may hold in total ({3} before it)",
                  Key, Count, kGGUFMaxArrayElements, C.ArrayElements);
  C.ArrayElements += Count;
  Out.ElemType = GGUFType(Elem);
  Out.Elems.resize(Count);
  for (GGUFValue &V : Out.Elems)
    if (Error E = readValue(C, Elem, V, Key, /*InArray=*/true))
      return E;
  return Error::success();
}

} // namespace

Expected<std::unique_ptr<GGUFFile>> GGUFFile::open(StringRef Path) {
  Expected<std::unique_ptr<MappedFile>> F = MappedFile::open(Path);
  if (!F)
    return F.takeError();
  std::unique_ptr<GGUFFile> G(new GGUFFile);
  G->File = std::move(*F);
  if (Error E = G->parse())
    return std::move(E);
  return std::move(G);
}

/// The header after the magic: version, tensor count and KV count, both
/// counts checked against what the file can hold.
static Error readHeader(Cursor &C, uint64_t FileSize, uint64_t &NTensors,
                        uint64_t &NKV) {
  uint32_t Magic, Version;
  if (Error E = C.u32(Magic, "magic"))
    return E;
  if (Error E = C.u32(Version, "version"))
    return E;
  if (Version != kGGUFVersion)
    return C.fail(4, "unsupported GGUF version {0} (supported: {1})", Version,
                  kGGUFVersion);
  if (Error E = C.u64(NTensors, "tensor count"))
    return E;
  if (Error E = C.u64(NKV, "KV count"))
    return E;
  // A KV takes at least 13 bytes, a tensor info at least 32.
  if (NKV > C.remaining() / 13)
    return C.fail(16, "KV count {0} cannot fit in the file ({1} bytes)", NKV,
                  FileSize);
  if (NTensors > (C.remaining() - NKV * 13) / 32)
    return C.fail(8, "tensor count {0} cannot fit in the file ({1} bytes)",
                  NTensors, FileSize);
  return Error::success();
}

/// One KV: its key (not empty), value type and value.
static Error readKV(Cursor &C, GGUFKV &KV) {
  uint64_t At = C.pos();
  if (Error E = C.string(KV.Key, "key"))
    return E;
  if (KV.Key.empty())
    return C.fail(At, "empty key");
  uint32_t Type = 0;
  if (Error E = C.u32(Type, formatv("value type of KV '{0}'", KV.Key).str()))
    return E;
  return readValue(C, Type, KV.Value, KV.Key, false);
}

/// general.alignment if the file has it (a UINT32 power of two), else
/// the default.
static Expected<uint64_t> alignmentOf(const GGUFFile &G) {
  const GGUFValue *A = G.find("general.alignment");
  if (!A)
    return kGGUFDefaultAlignment;
  if (A->Type != GGUFType::UInt32)
    return fileError(G.path(),
                     "KV 'general.alignment' must be UINT32, not "
                     "{0}",
                     ggufTypeName(A->Type));
  if (A->Bits == 0 || !isPowerOf2_64(A->Bits))
    return fileError(G.path(),
                     "KV 'general.alignment' is {0} (must be a "
                     "power of two)",
                     A->Bits);
  return A->Bits;
}

/// One tensor info: name, dimensions, a type we read, offset, and the
/// length its type and shape give.
static Error readTensorInfo(Cursor &C, GGUFTensorInfo &T) {
  uint64_t At = C.pos();
  if (Error E = C.string(T.Name, "tensor name"))
    return E;
  if (T.Name.size() > kGGUFMaxNameLength)
    return C.fail(At, "tensor name '{0}' is longer than {1} bytes", T.Name,
                  kGGUFMaxNameLength);
  uint32_t NDims, Type;
  if (Error E = C.u32(NDims, "dimension count"))
    return E;
  if (NDims == 0 || NDims > kGGUFMaxDims)
    return C.fail(At, "tensor '{0}' has {1} dimensions (1 to {2} allowed)",
                  T.Name, NDims, kGGUFMaxDims);
  for (uint32_t D = 0; D < NDims; ++D) {
    uint64_t N;
    if (Error E = C.u64(N, "dimension"))
      return E;
    T.Ne.push_back(N);
  }
  if (Error E = C.u32(Type, "tensor type"))
    return E;
  if (!isKnownGGMLType(Type))
    return C.fail(At,
                  "tensor '{0}' has unsupported ggml type {1} "
                  "(supported: F32 0, F16 1, Q8_0 8, BF16 30)",
                  T.Name, Type);
  T.Type = GGMLType(Type);
  if (Error E = C.u64(T.Offset, "tensor offset"))
    return E;
  std::optional<uint64_t> Len = ggmlTensorBytes(T.Type, T.Ne);
  if (!Len)
    return C.fail(At, "tensor '{0}' has an invalid shape for {1}", T.Name,
                  ggmlTypeName(T.Type));
  T.Length = *Len;
  return Error::success();
}

/// llama.cpp requires offset_i = sum_{j<i} PAD(nbytes_j, align), each
/// tensor's data inside the file. Errors name the file byte where the
/// tensor's data would start.
static Error checkDataLayout(StringRef Path, ArrayRef<GGUFTensorInfo> Tensors,
                             uint64_t Alignment, uint64_t DataOffset,
                             uint64_t FileSize) {
  uint64_t Expected = 0;
  for (size_t I = 0; I < Tensors.size(); ++I) {
    const GGUFTensorInfo &T = Tensors[I];
    uint64_t At = DataOffset + T.Offset;
    if (T.Offset % Alignment)
      return fileError(Path,
                       "byte {3}: tensor '{0}': data offset {1} is not a "
                       "multiple of the alignment {2}",
                       T.Name, T.Offset, Alignment, At);
    if (I > 0 && T.Offset < Tensors[I - 1].Offset + Tensors[I - 1].Length)
      return fileError(Path,
                       "byte {5}: tensor '{0}': data at offset {1} overlaps "
                       "tensor '{2}' (offsets {3}-{4})",
                       T.Name, T.Offset, Tensors[I - 1].Name,
                       Tensors[I - 1].Offset,
                       Tensors[I - 1].Offset + Tensors[I - 1].Length, At);
    if (T.Offset != Expected)
      return fileError(Path,
                       "byte {3}: tensor '{0}': data offset {1} is not the "
                       "expected {2} (offsets must be sequential)",
                       T.Name, T.Offset, Expected, At);
    uint64_t End = DataOffset + T.Offset;
    if (End > FileSize || T.Length > FileSize - End)
      return fileError(Path,
                       "tensor '{0}': data at bytes {1}-{2} runs "
                       "past the end of the file ({3} bytes)",
                       T.Name, End, End + T.Length, FileSize);
    Expected = alignTo(T.Offset + T.Length, Alignment);
  }
  return Error::success();
}

/// Count items, each read by Read and appended to Items, their names (Name)
/// unique: Index maps each to its place. What names the name in the error.
template <typename T, typename ReadFn, typename NameFn>
static Error readUnique(Cursor &C, uint64_t Count, ReadFn Read, NameFn Name,
                        StringRef What, std::vector<T> &Items,
                        StringMap<size_t> &Index) {
  for (uint64_t I = 0; I < Count; ++I) {
    uint64_t At = C.pos();
    T Item;
    if (Error E = Read(C, Item))
      return E;
    if (!Index.try_emplace(Name(Item), Items.size()).second)
      return C.fail(At, "duplicate {0} '{1}'", What, Name(Item));
    Items.push_back(std::move(Item));
  }
  return Error::success();
}

Error GGUFFile::parse() {
  ArrayRef<uint8_t> Bytes = File->bytes();
  Cursor C(path(), Bytes);
  if (Bytes.size() < 4 || std::memcmp(Bytes.data(), "GGUF", 4) != 0)
    return fileError(path(), "byte 0: not a GGUF file (bad magic {0})",
                     Bytes.size() < 4
                         ? std::string("<file too short>")
                         : formatv("'{0}'", toHex(Bytes.take_front(4))).str());
  uint64_t NTensors, NKV;
  if (Error E = readHeader(C, Bytes.size(), NTensors, NKV))
    return E;
  if (Error E = readUnique<GGUFKV>(
          C, NKV, readKV, [](const GGUFKV &KV) { return KV.Key; }, "key", KVs,
          KVIndex))
    return E;
  Expected<uint64_t> Align = alignmentOf(*this);
  if (!Align)
    return Align.takeError();
  Alignment = *Align;
  if (Error E = readUnique<GGUFTensorInfo>(
          C, NTensors, readTensorInfo,
          [](const GGUFTensorInfo &T) { return T.Name; }, "tensor name",
          Tensors, TensorIndex))
    return E;
  DataOffset = alignTo(C.pos(), Alignment);
  if (DataOffset > Bytes.size() && !Tensors.empty())
    return fileError(path(),
                     "byte {0}: the data section starts past the end "
                     "of the file ({1} bytes)",
                     DataOffset, Bytes.size());
  return checkDataLayout(path(), Tensors, Alignment, DataOffset, Bytes.size());
}

const GGUFValue *GGUFFile::find(StringRef Key) const {
  auto It = KVIndex.find(Key);
  return It == KVIndex.end() ? nullptr : &KVs[It->second].Value;
}

Expected<StringRef> GGUFFile::requiredString(StringRef Key) const {
  const GGUFValue *V = find(Key);
  if (!V)
    return fileError(path(), "missing required key '{0}'", Key);
  if (V->Type != GGUFType::String)
    return fileError(path(), "key '{0}' must be STRING, not {1}", Key,
                     ggufTypeName(V->Type));
  return StringRef(V->Str);
}

const GGUFTensorInfo *GGUFFile::findTensor(StringRef Name) const {
  auto It = TensorIndex.find(Name);
  return It == TensorIndex.end() ? nullptr : &Tensors[It->second];
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

namespace {

void putU32(std::string &S, uint32_t V) {
  char B[4];
  support::endian::write32le(B, V);
  S.append(B, 4);
}
void putU64(std::string &S, uint64_t V) {
  char B[8];
  support::endian::write64le(B, V);
  S.append(B, 8);
}
void putString(std::string &S, StringRef V) {
  putU64(S, V.size());
  S.append(V.data(), V.size());
}
void putValue(std::string &S, const GGUFValue &V) {
  if (V.Type == GGUFType::String)
    return putString(S, V.Str);
  if (V.Type == GGUFType::Array) {
    putU32(S, uint32_t(V.ElemType));
    putU64(S, V.Elems.size());
    for (const GGUFValue &E : V.Elems)
      putValue(S, E);
    return;
  }
  unsigned N = *scalarSize(uint32_t(V.Type));
  for (unsigned I = 0; I < N; ++I)
    S.push_back(char((V.Bits >> (8 * I)) & 0xff));
}

} // namespace

GGUFWriter::GGUFWriter(std::vector<GGUFKV> KVs, std::vector<Tensor> Tensors) {
  for (const GGUFKV &KV : KVs)
    if (KV.Key == "general.alignment")
      Alignment = KV.Value.Bits;
  Header = "GGUF";
  putU32(Header, kGGUFVersion);
  putU64(Header, Tensors.size());
  putU64(Header, KVs.size());
  for (const GGUFKV &KV : KVs) {
    putString(Header, KV.Key);
    putU32(Header, uint32_t(KV.Value.Type));
    putValue(Header, KV.Value);
  }
  uint64_t Offset = 0;
  for (const Tensor &T : Tensors) {
    putString(Header, T.Name);
    putU32(Header, T.Ne.size());
    for (uint64_t D : T.Ne)
      putU64(Header, D);
    putU32(Header, uint32_t(T.Type));
    putU64(Header, Offset);
    uint64_t Len = ggmlTensorBytes(T.Type, T.Ne).value_or(0);
    Lengths.push_back(Len);
    Offset = alignTo(Offset + Len, Alignment);
  }
  Header.resize(alignTo(Header.size(), Alignment), '\0');
  Total = Header.size() + Offset;
}

//===----------------------------------------------------------------------===//
// Element conversions
//===----------------------------------------------------------------------===//

void quantizeQ8_0(const float *Src, uint64_t N, uint8_t *Dst) {
  for (uint64_t B = 0; B < N / kQ8_0Block; ++B) {
    const float *X = Src + B * kQ8_0Block;
    uint8_t *Y = Dst + B * kQ8_0BlockBytes;
    float AMax = 0;
    for (uint64_t J = 0; J < kQ8_0Block; ++J)
      AMax = std::max(AMax, std::fabs(X[J]));
    float D = AMax / 127.0f;
    float ID = D ? 1.0f / D : 0.0f;
    support::endian::write16le(Y, floatToF16(D));
    for (uint64_t J = 0; J < kQ8_0Block; ++J)
      Y[2 + J] = uint8_t(int8_t(std::roundf(X[J] * ID)));
  }
}

void dequantizeQ8_0(const uint8_t *Src, uint64_t N, float *Dst) {
  for (uint64_t B = 0; B < N / kQ8_0Block; ++B) {
    const uint8_t *Y = Src + B * kQ8_0BlockBytes;
    float D = f16ToFloat(support::endian::read16le(Y));
    for (uint64_t J = 0; J < kQ8_0Block; ++J)
      Dst[B * kQ8_0Block + J] = float(int8_t(Y[2 + J])) * D;
  }
}

} // namespace vindex
