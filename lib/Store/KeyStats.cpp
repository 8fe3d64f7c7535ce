//===- KeyStats.cpp - Key statistics stored in a V-index ------------------===//
#include "vindex/Store/KeyStats.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Checksum.h"
#include "vindex/Support/Error.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cstring>

using namespace llvm;

namespace vindex {

std::string keyStatsFileName(unsigned Layer) {
  return formatv("{0}/key-L{1:d3}.f64", kKeyStatsDirectory, Layer).str();
}

static uint64_t triangleBytes(uint64_t F) { return F * (F + 1) / 2 * 8; }

std::string serializeKeyStats(ArrayRef<double> Moment, size_t F) {
  std::string Bytes;
  Bytes.reserve(triangleBytes(F));
  for (size_t I = 0; I < F; ++I)
    for (size_t J = I; J < F; ++J) {
      uint64_t Bits;
      std::memcpy(&Bits, &Moment[I * F + J], 8);
      char Le[8];
      support::endian::write64le(Le, Bits);
      Bytes.append(Le, 8);
    }
  return Bytes;
}

Expected<std::vector<double>> readKeyStats(const Vindex &V,
                                           const KeyStatsRecord &R) {
  std::string Path = V.path(R.File);
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(
      Path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!Buf)
    return fileError(Path, "cannot read: {0}", Buf.getError().message());
  ArrayRef<uint8_t> Bytes = arrayRefFromStringRef((*Buf)->getBuffer());
  if (Bytes.size() != R.Length || R.Length != triangleBytes(R.Features) ||
      checksum(Bytes) != R.Checksum)
    return fileError(Path,
                     "checksum mismatch (the key statistics were changed)");
  size_t F = R.Features;
  std::vector<double> C(F * F);
  const uint8_t *P = Bytes.data();
  for (size_t I = 0; I < F; ++I)
    for (size_t J = I; J < F; ++J, P += 8) {
      uint64_t Bits = support::endian::read64le(P);
      double D;
      std::memcpy(&D, &Bits, 8);
      C[I * F + J] = C[J * F + I] = D;
    }
  return C;
}

Expected<uint64_t> keyStatsWeightsIdentity(const TensorView &View,
                                           unsigned Layer) {
  std::string Sums;
  for (const TensorRecord &T : View.base().manifest().Tensors) {
    bool Wanted = T.Role == TensorRole::Embedding ||
                  (T.Layer >= 0 && unsigned(T.Layer) < Layer) ||
                  (T.Layer >= 0 && unsigned(T.Layer) == Layer &&
                   T.Role != TensorRole::FFNDown &&
                   T.Role != TensorRole::PostFFNNorm);
    if (!Wanted)
      continue;
    uint64_t Sum = T.Checksum;
    if (View.isPatched(T)) {
      ChunkedChecksum C;
      if (Error E = View.read(T, [&](ArrayRef<uint8_t> Chunk) {
            C.update(Chunk);
            return Error::success();
          }))
        return std::move(E);
      Sum = C.final();
    }
    char Le[8];
    support::endian::write64le(Le, Sum);
    Sums.append(Le, 8);
  }
  return checksum(arrayRefFromStringRef(Sums));
}

Error checkKeyStatsRecords(const Manifest &M, StringRef Dir,
                           StringRef ManifestPath) {
  for (size_t I = 0; I < M.KeyStats.size(); ++I) {
    const KeyStatsRecord &R = M.KeyStats[I];
    if (R.Layer >= M.Config.NumLayers)
      return fileError(ManifestPath,
                       "key statistics of layer {0}: the model has {1} layers",
                       R.Layer, M.Config.NumLayers);
    if (I && M.KeyStats[I - 1].Layer >= R.Layer)
      return fileError(ManifestPath,
                       "key statistics: layers not ascending or repeated "
                       "(layer {0})",
                       R.Layer);
    if (R.File != keyStatsFileName(R.Layer))
      return fileError(ManifestPath,
                       "key statistics of layer {0}: the file must be '{1}', "
                       "not '{2}'",
                       R.Layer, keyStatsFileName(R.Layer), R.File);
    // Bounded so that F * F doubles stay addressable.
    if (R.Features == 0 || R.Features > (uint64_t(1) << 24) ||
        R.Length != triangleBytes(R.Features))
      return fileError(ManifestPath,
                       "key statistics of layer {0}: {1} bytes for {2} "
                       "features",
                       R.Layer, R.Length, R.Features);
    SmallString<128> Path(Dir);
    sys::path::append(Path, R.File);
    uint64_t Size = 0;
    if (std::error_code EC = sys::fs::file_size(Path, Size))
      return fileError(Path, "cannot read: {0}", EC.message());
    if (Size != R.Length)
      return fileError(Path,
                       "checksum mismatch (the key statistics were changed)");
  }
  return Error::success();
}

} // namespace vindex
