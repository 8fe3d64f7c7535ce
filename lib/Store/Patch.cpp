//===- Patch.cpp - Recording, writing and reading patches -----------------===//
#include "vindex/Store/Patch.h"

#include "Unaligned.h"
#include "vindex/Store/Patch_generated.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cstring>
#include <functional>

using namespace llvm;
namespace fb = vindex::fb;

namespace vindex {

/// The versions of the patch file format this build writes and reads: 2
/// when an edit creates a tensor (copy_of), which version-1 readers would
/// misread as a change to a tensor they do not have; else 1.
constexpr uint32_t kPatchFileVersion = 1;
constexpr uint32_t kPatchFileVersionCopies = 2;

const TensorEdit *Patch::find(StringRef Tensor) const {
  for (const TensorEdit &E : Edits)
    if (E.Tensor == Tensor)
      return &E;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// PatchBuilder
//===----------------------------------------------------------------------===//

std::string untiedOutputName(StringRef Embedding) {
  // A wrapped text model's prefix stays ("language_model.model.embed_tokens
  // .weight" -> "language_model.lm_head.weight").
  StringRef Prefix = Embedding;
  if (!Prefix.consume_back("model.embed_tokens.weight"))
    Prefix = "";
  return (Prefix + "lm_head.weight").str();
}

TensorRecord untiedOutputRecord(const TensorRecord &Embedding) {
  TensorRecord R = Embedding;
  R.Name = untiedOutputName(Embedding.Name);
  R.Role = TensorRole::LMHead;
  R.Layer = -1;
  return R;
}

struct PatchBuilder::Impl {
  const TensorView &View;
  PatchOrigin Origin;
  /// By the tensor's index in the manifest (edits come out in that order);
  /// a tensor a patch creates comes last.
  std::map<size_t, TensorEdit> Edits;
  /// The output matrix untieOutput made here (not yet in View).
  std::unique_ptr<TensorRecord> Untied;

  size_t indexOf(const TensorRecord &T) const {
    const std::vector<TensorRecord> &Base = View.base().manifest().Tensors;
    std::less<const TensorRecord *> Before;
    if (!Before(&T, Base.data()) && Before(&T, Base.data() + Base.size()))
      return &T - Base.data();
    return Base.size(); // the untied output matrix: the one created tensor
  }
  const TensorRecord *find(StringRef Name) const {
    if (Untied && Untied->Name == Name)
      return Untied.get();
    return View.find(Name);
  }
  const TensorEdit *edit(const TensorRecord &T) const {
    auto It = Edits.find(indexOf(T));
    return It == Edits.end() ? nullptr : &It->second;
  }
  TensorEdit &editFor(const TensorRecord &T) {
    auto [It, New] = Edits.try_emplace(indexOf(T));
    TensorEdit &E = It->second;
    if (New) {
      E.Tensor = T.Name;
      E.Type = T.Type;
      E.RowElements = View.rowElements(T);
      E.BaseRows = View.rows(T);
    }
    return E;
  }
  uint64_t rows(const TensorRecord &T) const {
    const TensorEdit *E = edit(T);
    return E ? E->rows() : View.rows(T);
  }
  /// Writes one row (already checked and in T's dtype).
  void write(const TensorRecord &T, uint64_t Row, ArrayRef<uint8_t> Bytes) {
    TensorEdit &E = editFor(T);
    if (Row < E.BaseRows) {
      E.Rows[Row].assign(Bytes.begin(), Bytes.end());
      return;
    }
    std::memcpy(E.Appended.data() + (Row - E.BaseRows) * E.rowBytes(),
                Bytes.data(), Bytes.size());
  }
  void append(const TensorRecord &T, ArrayRef<uint8_t> Bytes) {
    TensorEdit &E = editFor(T);
    E.Appended.insert(E.Appended.end(), Bytes.begin(), Bytes.end());
    ++E.AppendedRows;
  }

  Expected<const TensorRecord *> tensor(StringRef Name) const {
    if (const TensorRecord *T = find(Name))
      return T;
    return makeError("the V-index has no tensor '{0}'", Name);
  }
  Error checkRow(const TensorRecord &T, uint64_t Row, size_t Elements) const {
    uint64_t N = rows(T);
    if (Row >= N)
      return makeError("row {0} of tensor '{1}' is out of range (it has {2} "
                       "rows)",
                       Row, T.Name, N);
    if (Elements != View.rowElements(T))
      return makeError("a row of tensor '{0}' has {1} elements, not {2}",
                       T.Name, View.rowElements(T), Elements);
    return Error::success();
  }
  /// The FFN matrices of Layer, checked to exist and agree.
  Error ffn(unsigned Layer, const TensorRecord *(&Out)[3]) const {
    static const TensorRole Roles[] = {TensorRole::FFNGate, TensorRole::FFNUp,
                                       TensorRole::FFNDown};
    if (Layer >= View.config().NumLayers)
      return makeError("layer {0} is out of range (the model has {1} layers)",
                       Layer, View.config().NumLayers);
    for (int I = 0; I < 3; ++I) {
      Out[I] = View.find(Roles[I], int(Layer));
      if (!Out[I])
        return makeError("layer {0} has no {1} tensor", Layer,
                         roleName(Roles[I]));
    }
    return Error::success();
  }
  Error checkVectors(unsigned Layer, const TensorRecord *const (&T)[3],
                     ArrayRef<float> G, ArrayRef<float> U,
                     ArrayRef<float> D) const {
    ArrayRef<float> V[3] = {G, U, D};
    static const char *Names[] = {"gate", "up", "down"};
    for (int I = 0; I < 3; ++I)
      if (V[I].size() != View.rowElements(*T[I]))
        return makeError("the {0} vector of a feature of layer {1} has {2} "
                         "elements, not {3}",
                         Names[I], Layer, V[I].size(), View.rowElements(*T[I]));
    return Error::success();
  }
};

/// Floats as elements of T (round to nearest even).
static std::vector<uint8_t> encode(ArrayRef<float> Values, DType T) {
  std::vector<uint8_t> Out(Values.size() * dtypeSize(T));
  for (size_t I = 0; I < Values.size(); ++I) {
    if (T == DType::F32) {
      std::memcpy(&Out[4 * I], &Values[I], 4);
      continue;
    }
    uint16_t H =
        T == DType::BF16 ? floatToBF16(Values[I]) : floatToF16(Values[I]);
    std::memcpy(&Out[2 * I], &H, 2);
  }
  return Out;
}

PatchBuilder::PatchBuilder(const TensorView &View, PatchOrigin Origin)
    : I(new Impl{View, std::move(Origin), {}, nullptr}) {}

PatchOrigin &PatchBuilder::origin() { return I->Origin; }
PatchBuilder::~PatchBuilder() = default;

Error PatchBuilder::setRow(StringRef Tensor, uint64_t Row,
                           ArrayRef<float> Values) {
  Expected<const TensorRecord *> Found = I->tensor(Tensor);
  if (!Found)
    return Found.takeError();
  const TensorRecord *T = *Found;
  if (Error E = I->checkRow(*T, Row, Values.size()))
    return E;
  I->write(*T, Row, encode(Values, T->Type));
  return Error::success();
}

Error PatchBuilder::setRowBytes(StringRef Tensor, uint64_t Row,
                                ArrayRef<uint8_t> Bytes) {
  Expected<const TensorRecord *> Found = I->tensor(Tensor);
  if (!Found)
    return Found.takeError();
  const TensorRecord *T = *Found;
  if (Bytes.size() != I->View.rowBytes(*T))
    return makeError("a row of tensor '{0}' has {1} bytes, not {2}", T->Name,
                     I->View.rowBytes(*T), Bytes.size());
  if (Error E = I->checkRow(*T, Row, I->View.rowElements(*T)))
    return E;
  I->write(*T, Row, Bytes);
  return Error::success();
}

Error PatchBuilder::setRows(StringRef Tensor, uint64_t Begin,
                            ArrayRef<float> Values) {
  Expected<const TensorRecord *> Found = I->tensor(Tensor);
  if (!Found)
    return Found.takeError();
  const TensorRecord *T = *Found;
  uint64_t RowElems = I->View.rowElements(*T);
  if (RowElems == 0 || Values.empty() || Values.size() % RowElems)
    return makeError("{0} values are not whole rows of tensor '{1}' ({2} "
                     "elements each)",
                     Values.size(), T->Name, RowElems);
  uint64_t N = Values.size() / RowElems;
  if (Begin > I->rows(*T) || N > I->rows(*T) - Begin)
    return makeError("rows [{0}, {1}) of tensor '{2}' are out of range (it "
                     "has {3} rows)",
                     Begin, Begin + N, T->Name, I->rows(*T));
  for (uint64_t R = 0; R < N; ++R)
    I->write(*T, Begin + R,
             encode(Values.slice(R * RowElems, RowElems), T->Type));
  return Error::success();
}

Error PatchBuilder::setFeature(unsigned Layer, uint64_t Feature,
                               ArrayRef<float> Gate, ArrayRef<float> Up,
                               ArrayRef<float> Down) {
  const TensorRecord *T[3];
  if (Error E = I->ffn(Layer, T))
    return E;
  uint64_t Width = ffnWidth(Layer);
  if (Feature == Width)
    return appendFeature(Layer, Gate, Up, Down).takeError();
  if (Feature > Width)
    return makeError("slot {0} of layer {1} is past its end (the layer has "
                     "{2} features; slot {2} appends one)",
                     Feature, Layer, Width);
  if (Error E = I->checkVectors(Layer, T, Gate, Up, Down))
    return E;
  ArrayRef<float> V[3] = {Gate, Up, Down};
  for (int K = 0; K < 3; ++K)
    I->write(*T[K], Feature, encode(V[K], T[K]->Type));
  return Error::success();
}

Expected<uint64_t> PatchBuilder::appendFeature(unsigned Layer,
                                               ArrayRef<float> Gate,
                                               ArrayRef<float> Up,
                                               ArrayRef<float> Down) {
  const TensorRecord *T[3];
  if (Error E = I->ffn(Layer, T))
    return std::move(E);
  if (Error E = I->checkVectors(Layer, T, Gate, Up, Down))
    return std::move(E);
  uint64_t Width = ffnWidth(Layer);
  if (I->rows(*T[1]) != Width || I->rows(*T[2]) != Width)
    return makeError("layer {0}'s gate, up and down have different widths",
                     Layer);
  ArrayRef<float> V[3] = {Gate, Up, Down};
  for (int K = 0; K < 3; ++K)
    I->append(*T[K], encode(V[K], T[K]->Type));
  return Width;
}

Error PatchBuilder::removeFeature(unsigned Layer, uint64_t Feature) {
  const TensorRecord *T[3];
  if (Error E = I->ffn(Layer, T))
    return E;
  uint64_t Width = ffnWidth(Layer);
  if (Feature >= Width)
    return makeError("feature {0} of layer {1} is out of range (the layer "
                     "has {2} features)",
                     Feature, Layer, Width);
  for (const TensorRecord *R : T)
    I->write(*R, Feature,
             std::vector<uint8_t>(I->View.rowBytes(*R), uint8_t(0)));
  return Error::success();
}

Expected<std::string> PatchBuilder::untieOutput() {
  const TensorView &View = I->View;
  if (View.find(TensorRole::LMHead) || I->Untied)
    return makeError("the model already has an output matrix of its own");
  const TensorRecord *Emb = View.find(TensorRole::Embedding);
  if (!Emb)
    return makeError("the V-index has no embedding to untie an output "
                     "matrix from");
  // The copy is the embedding as this builder sees it: its base payload
  // (shared, not copied) plus every row patched so far.
  std::map<uint64_t, std::vector<uint8_t>> Rows;
  for (const std::shared_ptr<const Patch> &P : View.patches())
    if (const TensorEdit *E = P->find(Emb->Name))
      for (const auto &KV : E->Rows)
        Rows[KV.first];
  for (auto &[Row, Bytes] : Rows) {
    Bytes.resize(View.rowBytes(*Emb));
    if (Error E = View.readRow(*Emb, Row, Bytes))
      return std::move(E);
  }
  if (const TensorEdit *Own = I->edit(*Emb))
    for (const auto &[Row, Bytes] : Own->Rows)
      Rows[Row] = Bytes;
  I->Untied = std::make_unique<TensorRecord>(untiedOutputRecord(*Emb));
  TensorEdit &E = I->editFor(*I->Untied);
  E.CopyOf = Emb->Name;
  E.Rows = std::move(Rows);
  return E.Tensor;
}

uint64_t PatchBuilder::ffnWidth(unsigned Layer) const {
  const TensorRecord *G = I->View.find(TensorRole::FFNGate, int(Layer));
  return G ? I->rows(*G) : 0;
}

uint64_t PatchBuilder::rows(StringRef Tensor) const {
  const TensorRecord *T = I->find(Tensor);
  return T ? I->rows(*T) : 0;
}

uint64_t PatchBuilder::rowElements(StringRef Tensor) const {
  const TensorRecord *T = I->find(Tensor);
  return T ? I->View.rowElements(*T) : 0;
}

bool PatchBuilder::empty() const { return I->Edits.empty(); }

std::shared_ptr<const Patch> PatchBuilder::finish() {
  auto P = std::make_shared<Patch>();
  P->Origin = I->Origin;
  for (auto &[Index, E] : I->Edits)
    P->Edits.push_back(std::move(E));
  I->Edits.clear();
  I->Untied.reset();
  return P;
}

//===----------------------------------------------------------------------===//
// Patch files
//===----------------------------------------------------------------------===//

std::string serializePatch(const Patch &P) {
  flatbuffers::FlatBufferBuilder B(1 << 12);
  auto Str = [&](StringRef S) { return B.CreateString(S.data(), S.size()); };
  std::vector<flatbuffers::Offset<fb::RowEdit>> Edits;
  uint32_t Version = kPatchFileVersion;
  for (const TensorEdit &E : P.edits()) {
    std::vector<uint64_t> Rows;
    std::vector<uint8_t> Data;
    for (const auto &[Row, Bytes] : E.Rows) {
      Rows.push_back(Row);
      Data.insert(Data.end(), Bytes.begin(), Bytes.end());
    }
    Data.insert(Data.end(), E.Appended.begin(), E.Appended.end());
    auto Name = Str(E.Tensor);
    auto RowsVec = B.CreateVector(Rows);
    auto DataVec = B.CreateVector(Data);
    flatbuffers::Offset<flatbuffers::String> CopyOf;
    if (!E.CopyOf.empty()) {
      CopyOf = Str(E.CopyOf);
      Version = kPatchFileVersionCopies;
    }
    Edits.push_back(fb::CreateRowEdit(B, Name, uint8_t(E.Type), E.RowElements,
                                      E.BaseRows, RowsVec, E.AppendedRows,
                                      DataVec, CopyOf));
  }
  const PatchOrigin &O = P.origin();
  auto Root =
      fb::CreatePatchFile(B, Version, Str(O.Name), Str(O.Statement),
                          Str(O.ScriptSha256), B.CreateVector(Edits));
  B.Finish(Root, fb::PatchFileIdentifier());
  return std::string(reinterpret_cast<const char *>(B.GetBufferPointer()),
                     B.GetSize());
}

Expected<std::shared_ptr<const Patch>> readPatchFile(ArrayRef<uint8_t> Bytes,
                                                     StringRef File) {
  if (Bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(
                              Bytes.data(), fb::PatchFileIdentifier()))
    return fileError(File, "not a V-index patch (missing the 'VPAT' "
                           "identifier)");
  flatbuffers::Verifier V(Bytes.data(), Bytes.size(), verifierOptions());
  if (!fb::VerifyPatchFileBuffer(V))
    return fileError(File, "corrupt patch (flatbuffer verification failed)");
  const fb::PatchFile *F = fb::GetPatchFile(Bytes.data());
  if (F->format_version() != kPatchFileVersion &&
      F->format_version() != kPatchFileVersionCopies)
    return fileError(File,
                     "patch format version {0} is not supported (this "
                     "build reads versions {1} and {2})",
                     F->format_version(), kPatchFileVersion,
                     kPatchFileVersionCopies);
  auto Str = [](const flatbuffers::String *S) {
    return S ? S->str() : std::string();
  };
  auto P = std::make_shared<Patch>();
  P->Origin = {Str(F->name()), Str(F->statement()), Str(F->script_sha256())};
  if (F->edits())
    for (const fb::RowEdit *R : *F->edits()) {
      TensorEdit E;
      E.Tensor = Str(R->tensor());
      auto Bad = [&](const char *Problem) {
        return fileError(File, "edit of tensor '{0}': {1}", E.Tensor, Problem);
      };
      if (R->dtype() > uint8_t(DType::BF16))
        return Bad("unknown dtype");
      E.Type = DType(R->dtype());
      E.RowElements = R->row_elements();
      E.BaseRows = R->base_rows();
      E.AppendedRows = R->appended_rows();
      E.CopyOf = Str(R->copy_of());
      if (!E.CopyOf.empty() &&
          (F->format_version() < kPatchFileVersionCopies || E.AppendedRows))
        return Bad("copy_of needs format version 2 and no appended rows");
      uint64_t NRows = R->rows() ? R->rows()->size() : 0;
      bool Overflow = false;
      uint64_t RowBytes = SaturatingMultiply<uint64_t>(
          E.RowElements, dtypeSize(E.Type), &Overflow);
      uint64_t Total = SaturatingMultiply<uint64_t>(
          SaturatingAdd<uint64_t>(NRows, E.AppendedRows, &Overflow), RowBytes,
          &Overflow);
      uint64_t Have = R->data() ? R->data()->size() : 0;
      if (E.Tensor.empty() || E.RowElements == 0 || Overflow || Total != Have)
        return Bad("rows and data disagree");
      const uint8_t *Data = Have ? R->data()->data() : nullptr;
      for (uint64_t I = 0; I < NRows; ++I) {
        uint64_t Row = elementAt(*R->rows(), I);
        if (Row >= E.BaseRows || (I && Row <= elementAt(*R->rows(), I - 1)))
          return Bad("replaced rows must ascend and lie below base_rows");
        E.Rows[Row].assign(Data + I * RowBytes, Data + (I + 1) * RowBytes);
      }
      E.Appended.assign(Data + NRows * RowBytes, Data + Total);
      if (P->find(E.Tensor))
        return Bad("appears twice");
      P->Edits.push_back(std::move(E));
    }
  return std::shared_ptr<const Patch>(std::move(P));
}

//===----------------------------------------------------------------------===//
// Reading persisted patches (Vindex::open)
//===----------------------------------------------------------------------===//

/// The record the manifest holds for P (what it changes).
static std::vector<PatchedTensorRecord> describe(const Vindex &V,
                                                 const Patch &P) {
  std::vector<PatchedTensorRecord> Out;
  for (const TensorEdit &E : P.edits()) {
    PatchedTensorRecord R;
    R.Name = E.Tensor;
    const TensorRecord *T = V.find(E.Tensor);
    R.Layer = T ? T->Layer : -1;
    R.BaseRows = E.BaseRows;
    for (const auto &KV : E.Rows)
      R.Rows.push_back(KV.first);
    R.AppendedRows = E.AppendedRows;
    R.CopyOf = E.CopyOf;
    Out.push_back(std::move(R));
  }
  return Out;
}

static bool sameRecords(ArrayRef<PatchedTensorRecord> A,
                        ArrayRef<PatchedTensorRecord> B) {
  if (A.size() != B.size())
    return false;
  for (size_t I = 0; I < A.size(); ++I)
    if (A[I].Name != B[I].Name || A[I].Layer != B[I].Layer ||
        A[I].BaseRows != B[I].BaseRows || A[I].Rows != B[I].Rows ||
        A[I].AppendedRows != B[I].AppendedRows || A[I].CopyOf != B[I].CopyOf)
      return false;
  return true;
}

PatchRecord patchRecord(const Vindex &V, const Patch &P, StringRef File,
                        ArrayRef<uint8_t> Bytes) {
  PatchRecord R;
  R.Name = P.origin().Name;
  R.File = File.str();
  R.Length = Bytes.size();
  R.Checksum = checksum(Bytes);
  R.Statement = P.origin().Statement;
  R.ScriptSha256 = P.origin().ScriptSha256;
  R.Tensors = describe(V, P);
  return R;
}

Error Vindex::loadPatches() {
  TensorView View(*this);
  for (const PatchRecord &R : M.Patches) {
    std::string Path = path(R.File);
    StringRef Dir = sys::path::parent_path(R.File, sys::path::Style::posix);
    StringRef Name = sys::path::filename(R.File, sys::path::Style::posix);
    if (Dir != kPatchDirectory || Name.empty() || Name == "." || Name == ".." ||
        Name.contains('\\'))
      return fileError(path(kManifestFileName),
                       "patch '{0}': its file '{1}' is not in {2}/", R.Name,
                       R.File, kPatchDirectory);
    Expected<std::unique_ptr<MemoryBuffer>> Buf =
        readListedFile(R.File, R.Length, R.Checksum, "patch file");
    if (!Buf)
      return Buf.takeError();
    ArrayRef<uint8_t> Bytes = arrayRefFromStringRef((*Buf)->getBuffer());
    Expected<std::shared_ptr<const Patch>> P = readPatchFile(Bytes, Path);
    if (!P)
      return P.takeError();
    const PatchOrigin &O = (*P)->origin();
    if (O.Name != R.Name || O.Statement != R.Statement ||
        O.ScriptSha256 != R.ScriptSha256 ||
        !sameRecords(describe(*this, **P), R.Tensors))
      return fileError(Path, "does not match its record in the manifest");
    if (Error E = View.push(*P))
      return fileError(Path, "{0}", toString(std::move(E)));
    Patches.push_back(std::move(*P));
  }
  return Error::success();
}

} // namespace vindex
