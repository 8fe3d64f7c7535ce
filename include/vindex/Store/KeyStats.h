//===- KeyStats.h - Key statistics stored in a V-index ----------*- C++ -*-===//
//
// MODE memit's key statistics, E[k kᵀ] of a layer's FFN keys over a corpus,
// measured once by `larql-probe --key-stats` and stored under stats/ (one
// file per layer, listed in the manifest with its provenance:
// docs/vindex-format.md, "Key statistics"). A record is tied to the weights
// it was measured on by an identity (keyStatsWeightsIdentity), so that an
// entry the weights under it have moved away from is detected, not used.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_KEYSTATS_H
#define VINDEX_STORE_KEYSTATS_H

#include "vindex/Store/Manifest.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vindex {

class TensorView;
class Vindex;

constexpr llvm::StringLiteral kKeyStatsDirectory = "stats";

/// "stats/key-LNNN.f64" (three digits at least).
std::string keyStatsFileName(unsigned Layer);

/// The file's bytes: the upper triangle of the symmetric Moment ([F * F],
/// row-major) row by row (i <= j), little-endian doubles.
std::string serializeKeyStats(llvm::ArrayRef<double> Moment, size_t F);

/// The stored moment of R, [F * F] row-major, both triangles filled; the
/// file is checked against R's length and checksum first.
llvm::Expected<std::vector<double>> readKeyStats(const Vindex &V,
                                                 const KeyStatsRecord &R);

/// What the keys of layer Layer depend on, as one number: xxh3 (the chunked
/// checksum) of the little-endian checksums, in manifest order, of the
/// embedding, every tensor of the layers below Layer and every tensor of
/// Layer but its down projection and post-FFN norm, each taken as View
/// shows it (patched tensors are streamed and summed with their patches
/// applied; the others give their recorded checksum).
llvm::Expected<uint64_t> keyStatsWeightsIdentity(const TensorView &View,
                                                 unsigned Layer);

/// Checks the records of M (Vindex::open): file names as keyStatsFileName
/// says, layers ascending, each once and in range, lengths as the widths
/// imply, each file present with that length.
llvm::Error checkKeyStatsRecords(const Manifest &M, llvm::StringRef Dir,
                                 llvm::StringRef ManifestPath);

} // namespace vindex

#endif // VINDEX_STORE_KEYSTATS_H
