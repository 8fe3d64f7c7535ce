//===- TensorView.cpp - Tensors through the patch stack -------------------===//
#include "vindex/Store/TensorView.h"

#include "vindex/Store/Codec.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"

#include <cstring>

using namespace llvm;

namespace vindex {

TensorView::TensorView(const Vindex &V, size_t Patches)
    : V(&V), Stack(V.patches().begin(),
                   V.patches().begin() + std::min(Patches, V.patches().size())),
      Persisted(Stack.size()) {
  // Vindex::open checked the persisted patches (by pushing them).
  for (const std::shared_ptr<const Patch> &P : Stack)
    adopt(*P);
}

const ModelConfig &TensorView::config() const {
  return UntiedConfig ? *UntiedConfig : V->config();
}

ModelConfig TensorView::writtenConfig() const {
  ModelConfig C = config();
  if (ffnWidthsChanged())
    C.IntermediateSize = maxFFNWidth();
  return C;
}

const TensorRecord *TensorView::find(StringRef Name) const {
  for (const std::shared_ptr<const TensorRecord> &T : Created)
    if (T->Name == Name)
      return T.get();
  return V->find(Name);
}

const TensorRecord *TensorView::find(TensorRole Role, int Layer) const {
  if (const TensorRecord *T = V->find(Role, Layer))
    return T;
  for (const std::shared_ptr<const TensorRecord> &T : Created)
    if (T->Role == Role && T->Layer == Layer)
      return T.get();
  return nullptr;
}

std::vector<const TensorRecord *> TensorView::tensors() const {
  std::vector<const TensorRecord *> All;
  for (const TensorRecord &T : V->manifest().Tensors)
    All.push_back(&T);
  for (const std::shared_ptr<const TensorRecord> &T : Created)
    All.push_back(T.get());
  return All;
}

Error TensorView::checkCreated(const Patch &P, const TensorEdit &E) const {
  // Only the untied output matrix is ever created: a copy of the embedding
  // of a model without an LM head, under the name untieOutput gives it.
  const TensorRecord *Source = find(E.CopyOf);
  if (find(E.Tensor) || !Source || Source->Role != TensorRole::Embedding ||
      find(TensorRole::LMHead) || E.Tensor != untiedOutputName(Source->Name))
    return makeError("patch '{0}' creates tensor '{1}' as a copy of '{2}', "
                     "which only the untied output matrix of a model whose "
                     "LM head is its embedding may be",
                     P.origin().Name, E.Tensor, E.CopyOf);
  if (E.Type != Source->Type || E.RowElements != rowElements(*Source) ||
      E.BaseRows != rows(*Source) || E.AppendedRows)
    return makeError("patch '{0}' does not copy tensor '{1}' as it is",
                     P.origin().Name, E.CopyOf);
  return Error::success();
}

void TensorView::adopt(const Patch &P) {
  for (const TensorEdit &E : P.edits()) {
    if (E.CopyOf.empty())
      continue;
    Created.push_back(
        std::make_shared<TensorRecord>(untiedOutputRecord(*find(E.CopyOf))));
    auto C = std::make_shared<ModelConfig>(V->config());
    C->TiedEmbeddings = false;
    UntiedConfig = std::move(C);
  }
}

Error TensorView::push(std::shared_ptr<const Patch> P) {
  // Every edit must continue the tensor as the view shows it now, and a
  // layer's FFN must keep one width.
  std::map<int, std::array<uint64_t, 3>> Widths;
  for (const TensorEdit &E : P->edits()) {
    if (!E.CopyOf.empty()) {
      if (Error Err = checkCreated(*P, E))
        return Err;
      continue;
    }
    const TensorRecord *T = find(E.Tensor);
    if (!T)
      return makeError("patch '{0}' changes tensor '{1}', which the V-index "
                       "does not have",
                       P->origin().Name, E.Tensor);
    if (E.Type != T->Type || E.RowElements != rowElements(*T) ||
        E.BaseRows != rows(*T))
      return makeError("patch '{0}' does not fit tensor '{1}' as it is ({2} "
                       "rows of {3} {4} elements; the patch expects {5} rows "
                       "of {6} {7} elements)",
                       P->origin().Name, E.Tensor, rows(*T), rowElements(*T),
                       dtypeName(T->Type), E.BaseRows, E.RowElements,
                       dtypeName(E.Type));
    if (E.AppendedRows && !isFFNRole(T->Role))
      return makeError("patch '{0}' appends rows to tensor '{1}', which is "
                       "not an FFN matrix",
                       P->origin().Name, E.Tensor);
  }
  for (const TensorEdit &E : P->edits()) {
    const TensorRecord *T = find(E.Tensor);
    if (!T || !isFFNRole(T->Role) || !E.AppendedRows)
      continue;
    auto [It, New] = Widths.try_emplace(T->Layer);
    if (New)
      for (int K = 0; K < 3; ++K) {
        static const TensorRole Roles[] = {
            TensorRole::FFNGate, TensorRole::FFNUp, TensorRole::FFNDown};
        const TensorRecord *R = find(Roles[K], T->Layer);
        It->second[K] = R ? rows(*R) : 0;
        if (const TensorEdit *RE = R ? P->find(R->Name) : nullptr)
          It->second[K] += RE->AppendedRows;
      }
  }
  for (const auto &[Layer, W] : Widths)
    if (W[0] != W[1] || W[0] != W[2])
      return makeError("patch '{0}' leaves layer {1}'s gate, up and down with "
                       "different widths ({2}, {3}, {4})",
                       P->origin().Name, Layer, W[0], W[1], W[2]);
  adopt(*P);
  Stack.push_back(std::move(P));
  ++Generation;
  return Error::success();
}

uint64_t TensorView::rowElements(const TensorRecord &T) const {
  if (T.Dims.size() < 2)
    return numElements(T.Dims).value_or(0);
  return numElements(ArrayRef(T.Dims).drop_front()).value_or(0);
}

uint64_t TensorView::rowBytes(const TensorRecord &T) const {
  return rowElements(T) * dtypeSize(T.Type);
}

uint64_t TensorView::rows(const TensorRecord &T) const {
  uint64_t N = T.Dims.size() < 2 ? 1 : T.Dims[0];
  for (const auto &P : Stack)
    if (const TensorEdit *E = P->find(T.Name))
      N += E->AppendedRows;
  return N;
}

bool TensorView::isPatched(const TensorRecord &T) const {
  for (const auto &P : Stack)
    if (P->find(T.Name))
      return true;
  return false;
}

bool TensorView::changedSince(const TensorRecord &T, uint64_t Since) const {
  // Generation G is the stack with G pushed patches on the persisted ones.
  for (size_t I = Persisted + std::min<uint64_t>(Since, Generation);
       I < Stack.size(); ++I)
    if (Stack[I]->find(T.Name))
      return true;
  return false;
}

TensorRecord TensorView::record(const TensorRecord &T) const {
  TensorRecord R = T;
  if (R.Dims.size() >= 2)
    R.Dims[0] = rows(T);
  R.Length = rows(T) * rowBytes(T);
  return R;
}

uint64_t TensorView::ffnWidth(unsigned Layer) const {
  const TensorRecord *G = find(TensorRole::FFNGate, int(Layer));
  return G ? rows(*G) : 0;
}

uint64_t TensorView::maxFFNWidth() const {
  uint64_t W = 0;
  for (unsigned L = 0; L < config().NumLayers; ++L)
    W = std::max(W, ffnWidth(L));
  return W;
}

bool TensorView::ffnWidthsChanged() const {
  for (unsigned L = 0; L < config().NumLayers; ++L)
    if (find(TensorRole::FFNGate, int(L)) &&
        ffnWidth(L) != config().IntermediateSize)
      return true;
  return false;
}

TensorView::Resolved TensorView::resolve(const TensorRecord &T) const {
  Resolved R;
  R.BaseRows = T.Dims.size() < 2 ? 1 : T.Dims[0];
  R.Rows = R.BaseRows;
  R.RowBytes = rowBytes(T);
  for (const auto &P : Stack) {
    const TensorEdit *E = P->find(T.Name);
    if (!E)
      continue;
    for (const auto &[Row, Bytes] : E->Rows) {
      if (Row < R.BaseRows)
        R.Replaced[Row] = Bytes.data();
      else
        R.Extra[Row - R.BaseRows] = Bytes.data();
    }
    for (uint64_t I = 0; I < E->AppendedRows; ++I)
      R.Extra.push_back(E->Appended.data() + I * R.RowBytes);
    R.Rows += E->AppendedRows;
  }
  return R;
}

Error TensorView::readRow(const TensorRecord &T, uint64_t Row,
                          MutableArrayRef<uint8_t> Out) const {
  uint64_t RB = rowBytes(T);
  if (Out.size() != RB)
    return makeError("tensor '{0}': a row has {1} bytes, not {2}", T.Name, RB,
                     Out.size());
  // The newest patch that writes the row wins.
  for (auto It = Stack.rbegin(); It != Stack.rend(); ++It) {
    const TensorEdit *E = (*It)->find(T.Name);
    if (!E)
      continue;
    if (auto R = E->Rows.find(Row); R != E->Rows.end()) {
      std::memcpy(Out.data(), R->second.data(), RB);
      return Error::success();
    }
    if (Row >= E->BaseRows && Row < E->rows()) {
      std::memcpy(Out.data(), E->Appended.data() + (Row - E->BaseRows) * RB,
                  RB);
      return Error::success();
    }
  }
  uint64_t BaseRows = T.Dims.size() < 2 ? 1 : T.Dims[0];
  if (Row >= BaseRows)
    return makeError("tensor '{0}': row {1} is out of range ({2} rows)", T.Name,
                     Row, rows(T));
  if (T.Compression == Codec::None) {
    std::memcpy(Out.data(), V->stored(T).data() + Row * RB, RB);
    return Error::success();
  }
  // Compressed: decode from the start up to the row.
  uint64_t Begin = Row * RB, Done = 0;
  return decodeZstdShuffle(V->stored(T), T.Length, T.CodecChunk,
                           dtypeSize(T.Type), [&](ArrayRef<uint8_t> Chunk) {
                             uint64_t Lo = std::max(Done, Begin),
                                      Hi = std::min(Done + Chunk.size(),
                                                    Begin + RB);
                             if (Lo < Hi)
                               std::memcpy(Out.data() + (Lo - Begin),
                                           Chunk.data() + (Lo - Done), Hi - Lo);
                             Done += Chunk.size();
                             return Error::success();
                           });
}

Error TensorView::readRow(const TensorRecord &T, uint64_t Row,
                          std::vector<float> &Out) const {
  std::vector<uint8_t> Bytes(rowBytes(T));
  if (Error E = readRow(T, Row, Bytes))
    return E;
  uint64_t N = rowElements(T);
  Out.resize(N);
  for (uint64_t I = 0; I < N; ++I) {
    if (T.Type == DType::F32) {
      std::memcpy(&Out[I], &Bytes[4 * I], 4);
      continue;
    }
    uint16_t H;
    std::memcpy(&H, &Bytes[2 * I], 2);
    Out[I] = T.Type == DType::BF16 ? bf16ToFloat(H) : f16ToFloat(H);
  }
  return Error::success();
}

/// Overwrites the replaced rows' bytes that fall in [Off, Off + Chunk.size()).
static void applyReplaced(const std::map<uint64_t, const uint8_t *> &Replaced,
                          uint64_t RowBytes, uint64_t Off,
                          MutableArrayRef<uint8_t> Chunk) {
  if (Replaced.empty() || RowBytes == 0)
    return;
  uint64_t End = Off + Chunk.size();
  for (auto It = Replaced.lower_bound(Off / RowBytes);
       It != Replaced.end() && It->first * RowBytes < End; ++It) {
    uint64_t RowBegin = It->first * RowBytes;
    uint64_t Lo = std::max(RowBegin, Off),
             Hi = std::min(RowBegin + RowBytes, End);
    if (Lo < Hi)
      std::memcpy(Chunk.data() + (Lo - Off), It->second + (Lo - RowBegin),
                  Hi - Lo);
  }
}

Error TensorView::readAll(const TensorRecord &T, std::vector<uint8_t> &Out,
                           uint64_t PadToRows) const {
  Out.clear();
  Out.reserve(std::max(rows(T), PadToRows) * rowBytes(T));
  return read(
      T,
      [&](ArrayRef<uint8_t> Chunk) {
        Out.insert(Out.end(), Chunk.begin(), Chunk.end());
        return Error::success();
      },
      PadToRows);
}

Error TensorView::read(const TensorRecord &T,
                       function_ref<Error(ArrayRef<uint8_t>)> Sink,
                       uint64_t PadToRows) const {
  if (!isPatched(T) && PadToRows <= rows(T))
    return V->read(T, Sink);
  Resolved R = resolve(T);
  std::vector<uint8_t> Buf;
  uint64_t Off = 0;
  if (Error E = V->read(T, [&](ArrayRef<uint8_t> Chunk) {
        Buf.assign(Chunk.begin(), Chunk.end());
        applyReplaced(R.Replaced, R.RowBytes, Off, Buf);
        Off += Chunk.size();
        return Sink(Buf);
      }))
    return E;
  // Appended rows, then zero rows up to PadToRows, in chunks.
  uint64_t PerChunk =
      std::max<uint64_t>(1, kCodecChunk / std::max<uint64_t>(1, R.RowBytes));
  uint64_t Total = std::max(R.Rows, PadToRows);
  for (uint64_t Row = R.BaseRows; Row < Total;) {
    uint64_t N = std::min(PerChunk, Total - Row);
    Buf.assign(N * R.RowBytes, 0);
    for (uint64_t I = 0; I < N; ++I)
      if (Row + I < R.Rows)
        std::memcpy(Buf.data() + I * R.RowBytes, R.Extra[Row + I - R.BaseRows],
                    R.RowBytes);
    if (Error E = Sink(Buf))
      return E;
    Row += N;
  }
  return Error::success();
}

Expected<ArrayRef<uint8_t>>
TensorView::data(const TensorRecord &T, std::vector<uint8_t> &Storage) const {
  if (!isPatched(T))
    return V->data(T, Storage);
  Resolved R = resolve(T);
  std::vector<uint8_t> Base;
  Expected<ArrayRef<uint8_t>> B = V->data(T, Base);
  if (!B)
    return B.takeError();
  Storage.assign(B->begin(), B->end());
  applyReplaced(R.Replaced, R.RowBytes, 0, Storage);
  Storage.resize(R.Rows * R.RowBytes);
  for (uint64_t Row = R.BaseRows; Row < R.Rows; ++Row)
    std::memcpy(Storage.data() + Row * R.RowBytes, R.Extra[Row - R.BaseRows],
                R.RowBytes);
  return ArrayRef<uint8_t>(Storage);
}

} // namespace vindex
