//===- ChecksumTest.cpp ---------------------------------------------------===//
#include "vindex/Support/Checksum.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/xxhash.h"

#include "gtest/gtest.h"

#include <vector>

using namespace vindex;

static std::vector<uint8_t> pattern(size_t N) {
  std::vector<uint8_t> V(N);
  for (size_t I = 0; I < N; ++I)
    V[I] = uint8_t(I * 131 + (I >> 9));
  return V;
}

TEST(Checksum, DefinitionForOneChunk) {
  // By definition: xxh3(le64(xxh3(data))) for data of at most one chunk.
  std::vector<uint8_t> Data = pattern(1000);
  uint8_t LE[8];
  llvm::support::endian::write64le(LE, llvm::xxh3_64bits(Data));
  EXPECT_EQ(checksum(Data), llvm::xxh3_64bits(llvm::ArrayRef<uint8_t>(LE, 8)));
}

TEST(Checksum, IndependentOfHowTheDataIsSplit) {
  std::vector<uint8_t> Data = pattern(2 * kChecksumChunk + 12345);
  uint64_t Whole = checksum(Data);
  for (size_t Piece : {size_t(1) << 10, size_t(3) << 20, size_t(kChecksumChunk),
                       size_t(kChecksumChunk) + 7}) {
    ChunkedChecksum C;
    for (size_t Off = 0; Off < Data.size(); Off += Piece)
      C.update(
          llvm::ArrayRef(Data).slice(Off, std::min(Piece, Data.size() - Off)));
    EXPECT_EQ(C.final(), Whole) << "piece " << Piece;
  }
}

TEST(Checksum, SeesEveryByte) {
  std::vector<uint8_t> Data = pattern(kChecksumChunk + 100);
  uint64_t Before = checksum(Data);
  Data[kChecksumChunk + 50] ^= 1;
  EXPECT_NE(checksum(Data), Before);
}

TEST(Checksum, ChunkHashIsLLVMsXXH3) {
  // The format defines the chunk hash as XXH3-64 with seed 0; LLVM's
  // implementation is the independent reference for the vectorised one.
  std::vector<uint8_t> Data = pattern(kChecksumChunk);
  for (size_t N : {size_t(0), size_t(1), size_t(3), size_t(16), size_t(17),
                   size_t(128), size_t(129), size_t(240), size_t(241),
                   size_t(1000), size_t(1024), size_t(4096) + 5,
                   size_t(1) << 20, size_t(kChecksumChunk)}) {
    llvm::ArrayRef<uint8_t> Part = llvm::ArrayRef(Data).take_front(N);
    EXPECT_EQ(chunkHash(Part), llvm::xxh3_64bits(Part)) << "length " << N;
  }
}
