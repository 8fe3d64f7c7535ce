//===- Patch.h - Recorded changes to the tensors of a V-index ---*- C++ -*-===//
//
// A patch is an immutable set of row changes to the tensors of a V-index:
//   - replaced rows of any tensor (a row is a slice along the first stored
//     dimension; FFN gate/up/down are stored feature-major [F, d], so one
//     row is one feature's vector; a 1-D tensor is one row);
//   - feature slots appended to a layer's FFN (gate, up and down each get
//     the same number of new rows, so the layer's FFN width grows);
//   - removed features, which are zeroed rows of gate, up and down (a zero
//     row contributes exactly 0 to the FFN output; feature numbers stay);
//   - an untied output matrix: on a model whose LM head is its input
//     embedding, a new tensor (lm_head.weight) that starts as a copy of the
//     embedding, so that an output row can change without changing what
//     the token means as input (PatchBuilder::untieOutput).
// Rows are kept in the tensor's stored dtype (V-index layout), so a patched
// tensor streams out as plain bytes.
//
// Patches stack in order on a V-index (TensorView): a row is resolved by the
// newest patch that writes it, else by the base payload. A PatchBuilder
// records changes against a view (whose current shapes it checks) and
// yields a Patch. Patches persist under `patches/` of an output V-index
// (docs/vindex-format.md), one file each, with a record in the manifest.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_PATCH_H
#define VINDEX_STORE_PATCH_H

#include "vindex/Formats/DType.h"
#include "vindex/Store/Manifest.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vindex {

class TensorView;
class Vindex;

/// Where a patch came from: recorded in the manifest (provenance of edits).
struct PatchOrigin {
  /// Short name (may be empty).
  std::string Name;
  /// The statement text(s) that made it, as written in the script.
  std::string Statement;
  /// Lower-case hex SHA-256 of the script holding the statements ("" when
  /// they came from -e or the shell).
  std::string ScriptSha256;
};

/// The changes of one patch to one tensor.
struct TensorEdit {
  /// The tensor's name in the manifest (Hugging Face name).
  std::string Tensor;
  DType Type = DType::F32;
  /// Elements per row (the product of the stored dims after the first).
  uint64_t RowElements = 0;
  /// Rows of the tensor below this patch; appended rows start here.
  uint64_t BaseRows = 0;
  /// Replaced rows (indices < BaseRows), each RowElements elements of Type.
  std::map<uint64_t, std::vector<uint8_t>> Rows;
  /// Rows appended after BaseRows, back to back (AppendedRows of them).
  uint64_t AppendedRows = 0;
  std::vector<uint8_t> Appended;
  /// Non-empty: this patch creates Tensor, a copy of tensor CopyOf as the
  /// patches below leave it. Its rows are CopyOf's base payload where Rows
  /// has none: CopyOf's patched rows are copied into Rows when it is made.
  std::string CopyOf;

  uint64_t rowBytes() const { return RowElements * dtypeSize(Type); }
  /// Rows of the tensor above this patch.
  uint64_t rows() const { return BaseRows + AppendedRows; }
};

/// An immutable set of changes (see the file comment).
class Patch {
public:
  const PatchOrigin &origin() const { return Origin; }
  /// One entry per changed tensor, in manifest order.
  llvm::ArrayRef<TensorEdit> edits() const { return Edits; }
  const TensorEdit *find(llvm::StringRef Tensor) const;
  bool empty() const { return Edits.empty(); }

private:
  friend class PatchBuilder;
  friend llvm::Expected<std::shared_ptr<const Patch>>
      readPatchFile(llvm::ArrayRef<uint8_t>, llvm::StringRef);
  PatchOrigin Origin;
  std::vector<TensorEdit> Edits;
};

/// Records changes against View's current state (its shapes and FFN
/// widths, plus the changes already recorded here) and yields a Patch.
/// Values given as floats are rounded to the tensor's dtype (round to
/// nearest even); raw rows must already be in it. Every call checks its
/// arguments and leaves the builder unchanged on error.
class PatchBuilder {
public:
  explicit PatchBuilder(const TensorView &View, PatchOrigin Origin = {});
  ~PatchBuilder();

  /// Replaces row Row of tensor Tensor (any tensor; appended rows too).
  llvm::Error setRow(llvm::StringRef Tensor, uint64_t Row,
                     llvm::ArrayRef<float> Values);
  llvm::Error setRowBytes(llvm::StringRef Tensor, uint64_t Row,
                          llvm::ArrayRef<uint8_t> Bytes);
  /// Replaces rows [Begin, Begin + Values.size() / row elements) of Tensor
  /// from row-major Values (vindex.update_weights).
  llvm::Error setRows(llvm::StringRef Tensor, uint64_t Begin,
                      llvm::ArrayRef<float> Values);

  /// Writes gate, up and down (hidden-size vectors) into feature Feature of
  /// Layer's FFN: Feature < width() replaces it, Feature == width() appends
  /// a slot (vindex.install_feature).
  llvm::Error setFeature(unsigned Layer, uint64_t Feature,
                         llvm::ArrayRef<float> Gate, llvm::ArrayRef<float> Up,
                         llvm::ArrayRef<float> Down);
  /// Appends a feature slot to Layer's FFN; returns its index (the old
  /// width).
  llvm::Expected<uint64_t> appendFeature(unsigned Layer,
                                         llvm::ArrayRef<float> Gate,
                                         llvm::ArrayRef<float> Up,
                                         llvm::ArrayRef<float> Down);
  /// Zeroes feature Feature of Layer (gate, up and down rows): it then
  /// contributes nothing (vindex.remove_feature).
  llvm::Error removeFeature(unsigned Layer, uint64_t Feature);
  /// Gives a model whose LM head is its input embedding an output matrix of
  /// its own, a copy of the embedding as it is now, named untiedOutputName()
  /// (vindex.untie_output); later rows written to it leave the embedding
  /// as it is. Returns the new tensor's name; an error when the model
  /// already has an LM head.
  llvm::Expected<std::string> untieOutput();

  /// What the patch records of where it came from (given at construction).
  PatchOrigin &origin();

  /// Layer's FFN width with the changes recorded so far.
  uint64_t ffnWidth(unsigned Layer) const;
  /// Rows of Tensor with the changes recorded so far (0: no such tensor).
  uint64_t rows(llvm::StringRef Tensor) const;
  /// Elements in one row of Tensor (0: no such tensor).
  uint64_t rowElements(llvm::StringRef Tensor) const;
  bool empty() const;

  /// The recorded changes as a patch; the builder is then empty.
  std::shared_ptr<const Patch> finish();

private:
  struct Impl;
  std::unique_ptr<Impl> I;
};

/// The name of the output matrix that untieOutput gives a model whose
/// embedding is Embedding: its Hugging Face name (lm_head.weight, with the
/// prefix of a wrapped text model's names).
std::string untiedOutputName(llvm::StringRef Embedding);
/// The record of that matrix: Embedding's payload under its own name and
/// role (TensorView gives it to the patches that create it).
TensorRecord untiedOutputRecord(const TensorRecord &Embedding);

/// A persisted patch file's bytes (flatbuffer, identifier "VPAT"), parsed
/// and checked for consistency. FileName is for messages. (The manifest
/// record's length and checksum are checked by the caller: Vindex::open.)
llvm::Expected<std::shared_ptr<const Patch>>
readPatchFile(llvm::ArrayRef<uint8_t> Bytes, llvm::StringRef FileName);
/// The bytes of P's patch file (deterministic).
std::string serializePatch(const Patch &P);
/// The manifest record of P persisted as File (relative to the V-index)
/// with the bytes Bytes; V is the V-index P applies to.
PatchRecord patchRecord(const Vindex &V, const Patch &P, llvm::StringRef File,
                        llvm::ArrayRef<uint8_t> Bytes);

} // namespace vindex

#endif // VINDEX_STORE_PATCH_H
