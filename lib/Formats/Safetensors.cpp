//===- Safetensors.cpp - safetensors reader and header writer -------------===//
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
//  "__metadata__": {str: str}}, then the data section; offsets are relative
// to the data section, which the tensors must cover exactly.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/Safetensors.h"

#include "vindex/Support/Error.h"
#include "vindex/Support/JSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace vindex {

std::optional<uint64_t> numElements(ArrayRef<uint64_t> S) {
  uint64_t N = 1;
  for (uint64_t D : S) {
    bool Overflow = false;
    N = SaturatingMultiply(N, D, &Overflow);
    if (Overflow)
      return std::nullopt;
  }
  return N;
}

std::string shapeString(ArrayRef<uint64_t> S) {
  std::string Out = "[";
  raw_string_ostream OS(Out);
  interleaveComma(S, OS);
  OS << "]";
  return Out;
}

static Error parseUnsignedArray(const json::Value *V, StringRef What,
                                StringRef Tensor, Shape &Out) {
  const json::Array *A = V ? V->getAsArray() : nullptr;
  if (!A)
    return makeError("tensor '{0}': '{1}' must be an array of non-negative "
                     "integers",
                     Tensor, What);
  for (const json::Value &E : *A) {
    std::optional<uint64_t> N = E.getAsUINT64();
    if (!N)
      return makeError("tensor '{0}': '{1}' must be an array of non-negative "
                       "integers",
                       Tensor, What);
    Out.push_back(*N);
  }
  return Error::success();
}

static Error parseEntry(StringRef Name, const json::Value &V,
                        SafetensorsEntry &E) {
  E.Name = Name.str();
  const json::Object *O = V.getAsObject();
  if (!O)
    return makeError("tensor '{0}': entry must be an object", Name);
  const json::Value *DTypeV = O->get("dtype");
  if (!DTypeV)
    return makeError("tensor '{0}': missing 'dtype'", Name);
  std::optional<StringRef> DTypeName = DTypeV->getAsString();
  if (!DTypeName)
    return makeError("tensor '{0}': 'dtype' must be a string", Name);
  std::optional<DType> T = parseDType(*DTypeName);
  if (!T) {
    if (isKnownSafetensorsDType(*DTypeName))
      return makeError("tensor '{0}': dtype '{1}' is not supported "
                       "(supported: F32, F16, BF16)",
                       Name, *DTypeName);
    return makeError("tensor '{0}': unknown dtype '{1}'", Name, *DTypeName);
  }
  E.Type = *T;
  if (!O->get("shape"))
    return makeError("tensor '{0}': missing 'shape'", Name);
  if (Error Err = parseUnsignedArray(O->get("shape"), "shape", Name, E.Dims))
    return Err;
  if (!O->get("data_offsets"))
    return makeError("tensor '{0}': missing 'data_offsets'", Name);
  Shape Offsets;
  if (Error Err = parseUnsignedArray(O->get("data_offsets"), "data_offsets",
                                     Name, Offsets))
    return Err;
  if (Offsets.size() != 2)
    return makeError("tensor '{0}': 'data_offsets' must have 2 entries, not "
                     "{1}",
                     Name, Offsets.size());
  if (Offsets[0] > Offsets[1])
    return makeError("tensor '{0}': data_offsets [{1}, {2}] end before they "
                     "begin",
                     Name, Offsets[0], Offsets[1]);
  E.Offset = Offsets[0]; // Relative for now; made absolute by the caller.
  E.Length = Offsets[1] - Offsets[0];
  std::optional<uint64_t> Count = numElements(E.Dims);
  uint64_t Need = 0;
  bool Overflow = !Count;
  if (Count)
    Need = SaturatingMultiply<uint64_t>(*Count, dtypeSize(E.Type), &Overflow);
  if (Overflow)
    return makeError("tensor '{0}': shape {1} is too large", Name,
                     shapeString(E.Dims));
  if (Need != E.Length)
    return makeError("tensor '{0}': shape {1} of {2} needs {3} bytes but "
                     "data_offsets [{4}, {5}] span {6}",
                     Name, shapeString(E.Dims), dtypeName(E.Type), Need,
                     Offsets[0], Offsets[1], E.Length);
  return Error::success();
}

static Error parseMetadata(const json::Value &V, Metadata &Meta) {
  const json::Object *O = V.getAsObject();
  if (!O)
    return makeError("'__metadata__' must be an object of strings");
  for (const auto &KV : *O) {
    std::optional<StringRef> S = KV.second.getAsString();
    if (!S)
      return makeError("'__metadata__' value of '{0}' must be a string",
                       KV.first.str());
    Meta.emplace_back(KV.first.str(), S->str());
  }
  llvm::sort(Meta);
  return Error::success();
}

// Every byte of the data section belongs to exactly one tensor.
static Error checkLayout(std::vector<SafetensorsEntry> &Entries,
                         uint64_t DataSize) {
  llvm::stable_sort(Entries, [](const SafetensorsEntry &A,
                                const SafetensorsEntry &B) {
    return A.Offset < B.Offset || (A.Offset == B.Offset && A.Length < B.Length);
  });
  uint64_t Cursor = 0;
  const SafetensorsEntry *Prev = nullptr;
  for (const SafetensorsEntry &E : Entries) {
    if (E.Offset + E.Length > DataSize)
      return makeError("tensor '{0}': data_offsets [{1}, {2}] are out of "
                       "bounds (the data section is {3} bytes)",
                       E.Name, E.Offset, E.Offset + E.Length, DataSize);
    if (E.Offset < Cursor)
      return makeError("tensors '{0}' [{1}, {2}] and '{3}' [{4}, {5}] "
                       "overlap",
                       Prev->Name, Prev->Offset, Prev->Offset + Prev->Length,
                       E.Name, E.Offset, E.Offset + E.Length);
    if (E.Offset > Cursor)
      return makeError("data bytes [{0}, {1}) before tensor '{2}' belong to "
                       "no tensor",
                       Cursor, E.Offset, E.Name);
    Cursor = E.Offset + E.Length;
    Prev = &E;
  }
  if (Cursor != DataSize)
    return makeError("{0} trailing bytes after the last tensor (data section "
                     "is {1} bytes, tensors end at {2})",
                     DataSize - Cursor, DataSize, Cursor);
  return Error::success();
}

Error parseSafetensorsHeader(StringRef FileName, ArrayRef<uint8_t> Bytes,
                             std::vector<SafetensorsEntry> &Entries,
                             Metadata &Meta) {
  auto Fail = [&](Error E) { return inFile(FileName, std::move(E)); };
  if (Bytes.size() < 8)
    return fileError(FileName,
                     "file is {0} bytes, too short for the 8-byte header "
                     "length",
                     Bytes.size());
  uint64_t HeaderLen = support::endian::read64le(Bytes.data());
  if (HeaderLen > kSafetensorsMaxHeader)
    return fileError(FileName,
                     "header length {0} exceeds the limit of {1} bytes",
                     HeaderLen, kSafetensorsMaxHeader);
  if (HeaderLen > Bytes.size() - 8)
    return fileError(FileName,
                     "header length {0} runs past the end of the file "
                     "({1} bytes)",
                     HeaderLen, Bytes.size());
  StringRef Text(reinterpret_cast<const char *>(Bytes.data() + 8), HeaderLen);
  Expected<json::Value> Root = parseJSON(Text);
  if (!Root)
    return fileError(FileName, "header is not valid JSON: {0}",
                     toString(Root.takeError()));
  const json::Object *Obj = Root->getAsObject();
  if (!Obj)
    return fileError(FileName, "header must be a JSON object");

  // llvm::json keeps the last of duplicate keys silently, and a duplicate
  // tensor name is an error, so the keys are listed from the text itself.
  StringSet<> Seen;
  for (const JSONKey &Key : topLevelKeys(Text))
    if (!Seen.insert(Key.Name).second)
      return fileError(FileName, "duplicate tensor '{0}' in the header",
                       Key.Name);

  uint64_t DataStart = 8 + HeaderLen;
  uint64_t DataSize = Bytes.size() - DataStart;
  // Sorted by name first, so that errors do not depend on hash order.
  std::vector<StringRef> Names;
  for (const auto &KV : *Obj)
    Names.push_back(KV.first);
  llvm::sort(Names);
  Entries.clear();
  Meta.clear();
  for (StringRef Name : Names) {
    const json::Value &V = *Obj->get(Name);
    if (Name == "__metadata__") {
      if (Error E = parseMetadata(V, Meta))
        return Fail(std::move(E));
      continue;
    }
    SafetensorsEntry E;
    if (Error Err = parseEntry(Name, V, E))
      return Fail(std::move(Err));
    Entries.push_back(std::move(E));
  }
  if (Error E = checkLayout(Entries, DataSize))
    return Fail(std::move(E));
  for (SafetensorsEntry &E : Entries)
    E.Offset += DataStart;
  return Error::success();
}

Expected<std::unique_ptr<SafetensorsFile>>
SafetensorsFile::open(StringRef Path) {
  Expected<std::unique_ptr<MappedFile>> File = MappedFile::open(Path);
  if (!File)
    return File.takeError();
  std::unique_ptr<SafetensorsFile> ST(new SafetensorsFile());
  ST->File = std::move(*File);
  if (Error E = parseSafetensorsHeader(Path, ST->File->bytes(), ST->Entries,
                                       ST->Meta))
    return std::move(E);
  for (size_t I = 0; I < ST->Entries.size(); ++I)
    ST->Index[ST->Entries[I].Name] = I;
  return std::move(ST);
}

const SafetensorsEntry *SafetensorsFile::find(StringRef Name) const {
  auto It = Index.find(Name);
  return It == Index.end() ? nullptr : &Entries[It->second];
}

SafetensorsWriter::SafetensorsWriter(std::vector<Tensor> TensorList,
                                     Metadata Meta)
    : Tensors(std::move(TensorList)) {
  // The JSON is written by hand, not through json::Object, to keep the
  // tensors in the order their bytes follow (json::Object sorts nothing but
  // iterates in hash order).
  std::string Json;
  raw_string_ostream OS(Json);
  OS << '{';
  if (!Meta.empty()) {
    OS << "\"__metadata__\":{";
    interleave(
        Meta, OS,
        [&](const std::pair<std::string, std::string> &KV) {
          OS << json::Value(KV.first) << ':' << json::Value(KV.second);
        },
        ",");
    OS << '}';
  }
  uint64_t Offset = 0;
  for (size_t I = 0; I < Tensors.size(); ++I) {
    if (I || !Meta.empty())
      OS << ',';
    uint64_t Len = byteLength(I);
    OS << json::Value(Tensors[I].Name) << ":{\"dtype\":\""
       << dtypeName(Tensors[I].Type) << "\",\"shape\":[";
    interleave(Tensors[I].Dims, OS, ",");
    OS << "],\"data_offsets\":[" << Offset << ',' << Offset + Len << "]}";
    Offset += Len;
  }
  OS << '}';
  // Pad with spaces so that the data section starts 8-byte aligned, as the
  // reference implementation does.
  Json.append(alignTo(Json.size(), 8) - Json.size(), ' ');
  Header.resize(8);
  support::endian::write64le(Header.data(), Json.size());
  Header += Json;
}

uint64_t SafetensorsWriter::byteLength(size_t I) const {
  return *numElements(Tensors[I].Dims) * dtypeSize(Tensors[I].Type);
}

uint64_t SafetensorsWriter::totalSize() const {
  uint64_t Size = Header.size();
  for (size_t I = 0; I < Tensors.size(); ++I)
    Size += byteLength(I);
  return Size;
}

} // namespace vindex
