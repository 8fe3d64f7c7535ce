//===- Checksum.h - Chunked xxh3 checksums of tensor payloads ---*- C++ -*-===//
//
// LLVM's xxh3 has no streaming interface, and tensors are streamed, so the
// V-index defines its checksum over fixed chunks:
//
//   checksum(data) = xxh3_64( le64(xxh3_64(chunk_0)) ++ le64(xxh3_64(chunk_1))
//                             ++ ... )
//
// with chunks of kChecksumChunk bytes (the last one shorter; empty data has no
// chunks). The definition is part of the format (docs/vindex-format.md).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_CHECKSUM_H
#define VINDEX_SUPPORT_CHECKSUM_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <string>

namespace vindex {

constexpr uint64_t kChecksumChunk = 4u << 20;

class ChunkedChecksum {
public:
  /// Feeds the next bytes of the payload (any split is allowed).
  void update(llvm::ArrayRef<uint8_t> Data);
  /// The checksum of everything fed so far.
  uint64_t final();

private:
  llvm::SmallVector<uint8_t, 0> Pending;
  llvm::SmallVector<uint64_t, 0> ChunkHashes;
};

/// The hash of one chunk (at most kChecksumChunk bytes). With
/// combineChunkHashes, lets the chunks of a payload be hashed in parallel.
uint64_t chunkHash(llvm::ArrayRef<uint8_t> Chunk);
/// The checksum of a payload from the hashes of its chunks, in order.
uint64_t combineChunkHashes(llvm::ArrayRef<uint64_t> Hashes);

/// The checksum of a payload held whole in memory.
uint64_t checksum(llvm::ArrayRef<uint8_t> Data);

class MappedFile;
/// Lower-case hex SHA-256 of a whole file (provenance of sources), read in
/// chunks whose pages are released behind the read.
std::string sha256Hex(const MappedFile &File);

} // namespace vindex

#endif // VINDEX_SUPPORT_CHECKSUM_H
