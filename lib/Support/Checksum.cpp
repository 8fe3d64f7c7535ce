//===- Checksum.cpp -------------------------------------------------------===//
#include "vindex/Support/Checksum.h"

#include "vindex/Support/MappedFile.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/xxhash.h"

using namespace llvm;

namespace vindex {

void ChunkedChecksum::flushChunk(ArrayRef<uint8_t> Chunk) {
  uint8_t LE[8];
  support::endian::write64le(LE, xxh3_64bits(Chunk));
  ChunkHashes.append(LE, LE + 8);
}

void ChunkedChecksum::update(ArrayRef<uint8_t> Data) {
  if (!Pending.empty()) {
    size_t Take = std::min<size_t>(kChecksumChunk - Pending.size(), Data.size());
    Pending.append(Data.begin(), Data.begin() + Take);
    Data = Data.drop_front(Take);
    if (Pending.size() < kChecksumChunk)
      return;
    flushChunk(Pending);
    Pending.clear();
  }
  // Whole chunks are hashed in place, without a copy.
  while (Data.size() >= kChecksumChunk) {
    flushChunk(Data.take_front(kChecksumChunk));
    Data = Data.drop_front(kChecksumChunk);
  }
  Pending.append(Data.begin(), Data.end());
}

uint64_t ChunkedChecksum::final() {
  if (!Pending.empty()) {
    flushChunk(Pending);
    Pending.clear();
  }
  return xxh3_64bits(ChunkHashes);
}

uint64_t checksum(ArrayRef<uint8_t> Data) {
  ChunkedChecksum C;
  C.update(Data);
  return C.final();
}

std::string sha256Hex(const MappedFile &File) {
  SHA256 Hasher;
  for (uint64_t Done = 0; Done < File.size(); Done += kChecksumChunk) {
    uint64_t N = std::min(kChecksumChunk, File.size() - Done);
    Hasher.update(File.slice(Done, N));
    File.dropPages(Done, N);
  }
  std::array<uint8_t, 32> Digest = Hasher.final();
  return toHex(Digest, /*LowerCase=*/true);
}

} // namespace vindex
