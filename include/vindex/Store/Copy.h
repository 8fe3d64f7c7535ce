//===- Copy.h - Writing a V-index as it is -----------------------*- C++ -*-===//
#ifndef VINDEX_STORE_COPY_H
#define VINDEX_STORE_COPY_H

#include "vindex/Store/Vindex.h"

#include "llvm/Support/Error.h"

namespace vindex {

/// Writes V, byte for byte, to the V-index directory OutDir, atomically:
/// the manifest, every payload file (copied in the kernel, as cp does) and
/// every auxiliary file the manifest lists (checked against its checksum).
/// OutDir may replace an earlier V-index but never V itself: inputs are
/// not modified.
llvm::Error copyVindex(const Vindex &V, llvm::StringRef OutDir);

class TensorView;

/// What a copy does with the view's patches.
enum class PatchMode {
  /// The base payloads are copied as they are and every patch of the view
  /// is written under patches/ with its manifest record (larql-opt -o):
  /// the overlay stays an overlay.
  Keep,
  /// Patched tensors are written with their patches applied, into new
  /// payload files; no patches are left (COMPILE CURRENT INTO VINDEX).
  /// Layers record their FFN widths; a changed width rewrites config.json.
  Materialise
};

/// Writes the V-index the view shows to OutDir, atomically (as above).
llvm::Error copyVindex(const TensorView &V, llvm::StringRef OutDir,
                       PatchMode Mode);

struct Labels;

/// Writes V to OutDir, atomically, as copyVindex does (patches kept as
/// patches), with L as its labels (larql-probe): labels.vfb replaces any
/// earlier labels, the manifest records it (Record's File, Length and
/// Checksum are filled here) and each layer's band.
llvm::Error copyVindexWithLabels(const Vindex &V, llvm::StringRef OutDir,
                                 const Labels &L, LabelsFileRecord Record);

/// One layer's key statistics to store: the record (File, Length and
/// Checksum are filled when written) and the file's bytes
/// (serializeKeyStats).
struct KeyStatsFileData {
  KeyStatsRecord Record;
  std::string Bytes;
};

/// Writes V to OutDir, atomically, as copyVindexWithLabels does (patches
/// and labels kept), with Stats under stats/: they replace any earlier
/// statistics of their layers; the others are kept.
llvm::Error copyVindexWithKeyStats(const Vindex &V, llvm::StringRef OutDir,
                                   llvm::ArrayRef<KeyStatsFileData> Stats);

} // namespace vindex

#endif // VINDEX_STORE_COPY_H
