//===- Vindex.h - Reading a V-index directory -------------------*- C++ -*-===//
//
// Opening a V-index reads and verifies the manifest and maps the payload
// files it names; nothing else is read until asked for. Uncompressed
// tensors are views into the mapping (no copy); compressed ones are decoded
// chunk by chunk.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_VINDEX_H
#define VINDEX_STORE_VINDEX_H

#include "vindex/Store/Manifest.h"
#include "vindex/Support/MappedFile.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>

namespace vindex {

class Patch;
struct Labels;

class Vindex {
public:
  static llvm::Expected<std::unique_ptr<Vindex>> open(llvm::StringRef Dir);

  llvm::StringRef directory() const { return Dir; }
  const Manifest &manifest() const { return M; }
  const ModelConfig &config() const { return M.Config; }

  const TensorRecord *find(llvm::StringRef Name) const;
  /// The tensor of a role in a layer (Layer -1 for global tensors).
  const TensorRecord *find(TensorRole Role, int Layer = -1) const;

  /// The stored bytes of T (compressed or not), a view into the mapping.
  llvm::ArrayRef<uint8_t> stored(const TensorRecord &T) const;
  /// The mapped payload file holding T.
  const MappedFile &payloadFile(const TensorRecord &T) const;
  /// Streams T's decoded bytes (V-index layout) in order, in chunks of at
  /// most kCodecChunk bytes, checking the checksum at the end.
  llvm::Error
  read(const TensorRecord &T,
       llvm::function_ref<llvm::Error(llvm::ArrayRef<uint8_t>)> Sink) const;
  /// T's decoded bytes: a view into the mapping when uncompressed, otherwise
  /// decoded into Storage. The checksum is not checked (see verify()).
  llvm::Expected<llvm::ArrayRef<uint8_t>>
  data(const TensorRecord &T, std::vector<uint8_t> &Storage) const;

  /// Path of a file inside the V-index.
  std::string path(llvm::StringRef Name) const;
  /// Every file the manifest lists (the manifest itself, payloads, copied
  /// files, patches, labels, key statistics), sorted: what a tool that
  /// reads the V-index depends on (its --depfile).
  std::vector<std::string> files() const;

  /// The bytes of an auxiliary file the manifest lists (config.json,
  /// tokenizer.json...), checked against its recorded length and checksum.
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
  readAuxFile(llvm::StringRef Name) const;

  /// Re-checks every tensor's and every copied file's checksum.
  llvm::Error verify(unsigned Jobs) const;

  /// The patches persisted under patches/, in manifest order, read and
  /// checked against their manifest records on open (TensorView stacks
  /// them on the payloads).
  llvm::ArrayRef<std::shared_ptr<const Patch>> patches() const {
    return Patches;
  }

  /// The labels larql-probe wrote (labels.vfb), read and checked on open;
  /// null when the V-index was never probed.
  const Labels *labels() const { return LabelsData.get(); }

private:
  llvm::Error load();
  /// Tensor record I of the manifest: its type, role, layer, shape, codec
  /// and file name make sense, and its name is new; records the name in
  /// ByName.
  llvm::Error checkTensorRecord(size_t I, llvm::StringRef ManifestPath);
  /// Maps T's payload file (once a file) and checks that T lies inside it.
  llvm::Error mapPayload(const TensorRecord &T);
  llvm::Error loadLabels();
  /// File (relative to the V-index) read whole and checked against its
  /// manifest record's length and checksum; What names it in the message.
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
  readListedFile(llvm::StringRef File, uint64_t Length, uint64_t Checksum,
                 llvm::StringRef What) const;
  llvm::Error checkManifest(llvm::StringRef ManifestPath) const;
  llvm::Error loadPatches(); ///< Patch.cpp
  std::string Dir;
  Manifest M;
  llvm::StringMap<size_t> ByName;
  llvm::StringMap<std::unique_ptr<MappedFile>> Files;
  /// Where the tensor files' bytes live (VINDEX_LOAD).
  Residency Load = Residency::Mapped;
  std::vector<std::shared_ptr<const Patch>> Patches;
  std::shared_ptr<const Labels> LabelsData;
};

} // namespace vindex

#endif // VINDEX_STORE_VINDEX_H
