//===- TensorView.h - The one way to read a V-index's tensors ---*- C++ -*-===//
//
// A view stacks patches on an opened V-index: first the patches persisted in
// it (patches/, checked by Vindex::open), then those pushed in memory. Every
// consumer (the engine, both compilers, the V-index copy, the features
// queries) reads tensors through a view, so an edit is seen by all of them
// or by none.
//
// A row of a tensor is a slice along its first stored dimension (for the
// FFN's feature-major gate/up/down [F, d]: one feature). A row resolves to
// the newest patch that writes it, else to the base payload. Appended FFN
// slots make a layer's width (ffnWidth) differ from the config's
// intermediate_size.
//
// A patch may create one tensor: the output matrix of a model whose LM head
// was its input embedding (PatchBuilder::untieOutput). The view then holds
// its record (the embedding's payload under lm_head.weight, role LMHead),
// finds it by name and role, lists it in tensors(), and its config() says
// the embeddings are no longer tied.
//
// generation() changes whenever the stack changes: holders of derived
// caches (the engine's widened copies, walk scales) compare it to rebuild.
// A view is cheap to copy (patches are shared and immutable); the Vindex
// must outlive it.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_TENSORVIEW_H
#define VINDEX_STORE_TENSORVIEW_H

#include "vindex/Store/Manifest.h"
#include "vindex/Store/Patch.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <vector>

namespace vindex {

class Vindex;

class TensorView {
public:
  /// V with its persisted patches, or with only the first Patches of them
  /// (V as an earlier statement found it).
  explicit TensorView(const Vindex &V, size_t Patches = SIZE_MAX);

  const Vindex &base() const { return *V; }
  /// The manifest's config (intermediate_size as recorded; see ffnWidth),
  /// with tie_word_embeddings false once a patch has untied the output.
  const ModelConfig &config() const;
  /// The config an output of this view is written with: config() with the
  /// widest layer's FFN width.
  ModelConfig writtenConfig() const;
  /// True when writtenConfig() differs from the manifest's config (a
  /// config.json or GGUF header must then be written from the view).
  bool configChanged() const { return ffnWidthsChanged() || untied(); }
  /// True when a patch has given the model an output matrix of its own.
  bool untied() const { return !Created.empty(); }
  /// Changes whenever the patch stack changes.
  uint64_t generation() const { return Generation; }

  /// The stack, oldest first: the persisted patches, then pushed ones.
  llvm::ArrayRef<std::shared_ptr<const Patch>> patches() const { return Stack; }
  /// How many of patches() came from the V-index's patches/.
  size_t numPersisted() const { return Persisted; }
  bool hasPatches() const { return !Stack.empty(); }

  /// Puts P on top of the stack. P must have been built against this view
  /// as it is now (its base row counts are checked).
  llvm::Error push(std::shared_ptr<const Patch> P);

  /// Tensor lookup (the base's records and the created one; shapes there
  /// are unpatched).
  const TensorRecord *find(llvm::StringRef Name) const;
  const TensorRecord *find(TensorRole Role, int Layer = -1) const;
  /// Every tensor: the manifest's, in its order, then the created one.
  std::vector<const TensorRecord *> tensors() const;

  /// Layer's FFN width: its gate's rows with appended slots.
  uint64_t ffnWidth(unsigned Layer) const;
  /// The widest layer's FFN width.
  uint64_t maxFFNWidth() const;
  /// True when some layer's width differs from config().IntermediateSize
  /// (a config.json or GGUF header must then be written from the view).
  bool ffnWidthsChanged() const;

  /// True when some patch changes T.
  bool isPatched(const TensorRecord &T) const;
  /// True when a patch pushed after generation Since changes T.
  bool changedSince(const TensorRecord &T, uint64_t Since) const;
  /// T's rows with appended ones (a 1-D tensor is one row).
  uint64_t rows(const TensorRecord &T) const;
  /// Elements in one row of T.
  uint64_t rowElements(const TensorRecord &T) const;
  uint64_t rowBytes(const TensorRecord &T) const;
  /// T's record as the view sees it: Dims and Length include appended rows
  /// (File, Offset, StoredLength, Codec and Checksum still describe the
  /// base payload).
  TensorRecord record(const TensorRecord &T) const;

  /// Row Row of T, in T's dtype (rowBytes(T) bytes into Out), or widened to
  /// f32. Base rows of a compressed tensor are decoded from its start.
  llvm::Error readRow(const TensorRecord &T, uint64_t Row,
                      llvm::MutableArrayRef<uint8_t> Out) const;
  llvm::Error readRow(const TensorRecord &T, uint64_t Row,
                      std::vector<float> &Out) const;

  /// Streams T's bytes in V-index layout with every patch applied, in
  /// order, in chunks of at most kCodecChunk bytes (split anywhere). The
  /// base payload's checksum is checked as it streams. PadToRows > rows(T)
  /// adds zero rows at the end (a config that gives every layer the widest
  /// FFN).
  llvm::Error
  read(const TensorRecord &T,
       llvm::function_ref<llvm::Error(llvm::ArrayRef<uint8_t>)> Sink,
       uint64_t PadToRows = 0) const;
  /// The same, gathered whole into Out (replacing its contents): for the
  /// consumers that must see a whole patched tensor at once (a transpose).
  llvm::Error readAll(const TensorRecord &T, std::vector<uint8_t> &Out,
                      uint64_t PadToRows = 0) const;
  /// T's bytes with patches applied: a view into the mapping when T is
  /// unpatched and uncompressed, otherwise built in Storage. The base
  /// checksum is not checked (as Vindex::data).
  llvm::Expected<llvm::ArrayRef<uint8_t>>
  data(const TensorRecord &T, std::vector<uint8_t> &Storage) const;

private:
  /// The newest bytes of each patched row of T: replaced base rows, and
  /// every appended row (index - base rows).
  struct Resolved {
    uint64_t BaseRows = 0, Rows = 0, RowBytes = 0;
    std::map<uint64_t, const uint8_t *> Replaced;
    std::vector<const uint8_t *> Extra;
  };
  Resolved resolve(const TensorRecord &T) const;
  /// Checks the tensor an edit of P creates (CopyOf) against the view.
  llvm::Error checkCreated(const Patch &P, const TensorEdit &E) const;
  /// Records the tensors P creates.
  void adopt(const Patch &P);

  const Vindex *V;
  /// Tensors created by patches of the stack (shared: a copy of the view
  /// keeps the same records), and the config that goes with them.
  std::vector<std::shared_ptr<const TensorRecord>> Created;
  std::shared_ptr<const ModelConfig> UntiedConfig;
  std::vector<std::shared_ptr<const Patch>> Stack;
  size_t Persisted = 0;
  uint64_t Generation = 0;
};

} // namespace vindex

#endif // VINDEX_STORE_TENSORVIEW_H
