//===- Checksum.cpp -------------------------------------------------------===//
#include "vindex/Support/Checksum.h"

#include "vindex/Support/MappedFile.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"

#include <openssl/evp.h>
#include <xxh_x86dispatch.h>
#include <xxhash.h>

using namespace llvm;

namespace vindex {

// libxxhash's run-time dispatch (AVX-512, AVX2 or SSE2, whichever the CPU
// has) rather than llvm::xxh3_64bits, whose portable code hashed 4-6 GB/s
// here against 12-24 GB/s: every payload byte is hashed on decompose, on
// every compile and on verify. The values are the same (XXH3-64, seed 0;
// ChecksumTest compares them with LLVM's).
static uint64_t xxh3(ArrayRef<uint8_t> Data) {
  return XXH3_64bits_dispatch(Data.data(), Data.size());
}

uint64_t chunkHash(ArrayRef<uint8_t> Chunk) { return xxh3(Chunk); }

uint64_t combineChunkHashes(ArrayRef<uint64_t> Hashes) {
  SmallVector<uint8_t, 0> LE(Hashes.size() * 8);
  for (size_t I = 0; I < Hashes.size(); ++I)
    support::endian::write64le(LE.data() + 8 * I, Hashes[I]);
  return xxh3(LE);
}

void ChunkedChecksum::update(ArrayRef<uint8_t> Data) {
  if (!Pending.empty()) {
    size_t Take =
        std::min<size_t>(kChecksumChunk - Pending.size(), Data.size());
    Pending.append(Data.begin(), Data.begin() + Take);
    Data = Data.drop_front(Take);
    if (Pending.size() < kChecksumChunk)
      return;
    ChunkHashes.push_back(chunkHash(Pending));
    Pending.clear();
  }
  // Whole chunks are hashed in place, without a copy.
  while (Data.size() >= kChecksumChunk) {
    ChunkHashes.push_back(chunkHash(Data.take_front(kChecksumChunk)));
    Data = Data.drop_front(kChecksumChunk);
  }
  Pending.append(Data.begin(), Data.end());
}

uint64_t ChunkedChecksum::final() {
  if (!Pending.empty()) {
    ChunkHashes.push_back(chunkHash(Pending));
    Pending.clear();
  }
  return combineChunkHashes(ChunkHashes);
}

uint64_t checksum(ArrayRef<uint8_t> Data) {
  ChunkedChecksum C;
  C.update(Data);
  return C.final();
}

// OpenSSL rather than llvm::SHA256: LLVM's portable implementation hashes
// 0.16 GB/s here, OpenSSL's (SHA extensions) about 1.5 GB/s, and every
// byte of a checkpoint goes through it once (docs/building.md).
std::string sha256Hex(const MappedFile &File) {
  EVP_MD_CTX *Ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(Ctx, EVP_sha256(), nullptr);
  for (uint64_t Done = 0; Done < File.size(); Done += kChecksumChunk) {
    uint64_t N = std::min(kChecksumChunk, File.size() - Done);
    EVP_DigestUpdate(Ctx, File.slice(Done, N).data(), N);
    File.dropPages(Done, N);
  }
  uint8_t Digest[EVP_MAX_MD_SIZE];
  unsigned Len = 0;
  EVP_DigestFinal_ex(Ctx, Digest, &Len);
  EVP_MD_CTX_free(Ctx);
  return toHex(ArrayRef<uint8_t>(Digest, Len), /*LowerCase=*/true);
}

} // namespace vindex
