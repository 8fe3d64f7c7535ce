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

} // namespace vindex

#endif // VINDEX_STORE_COPY_H
